"""Proof of movement, the driver: read a UTC day of readings, run the core, store the verdicts.

Days are proved in order (a daily job proves yesterday): a replay is found against the
fingerprints of days proved before, and the odometer is compared with the last proved day's.
Proving a day again replaces its proofs and fingerprints.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from uuid import UUID

import psycopg
from psycopg.types.json import Jsonb

from movement.proof import (
    DEFAULT_TOLERANCES,
    LOCATION,
    ODOMETER,
    SPEED,
    Fix,
    Measures,
    Proof,
    Sample,
    Tolerances,
    TraceMatch,
    VehicleDay,
    judge,
    measure,
)

#: How far back a trace is looked for when checking for replays.
REPLAY_LOOKBACK = timedelta(days=28)

Conn = psycopg.Connection[tuple[object, ...]]


def day_bounds(day: date) -> tuple[datetime, datetime]:
    start = datetime.combine(day, time(0), tzinfo=UTC)
    return start, start + timedelta(days=1)


def vehicles_active(conn: Conn, day: date) -> list[UUID]:
    """Vehicles with GPS, speed or odometer readings that day.

    signals_latest narrows the search to vehicles heard from since the day began; the
    per-vehicle index then answers whether each has readings inside the day.
    """
    start, end = day_bounds(day)
    rows = conn.execute(
        """
        SELECT l.vehicle_id FROM signals_latest l
        WHERE l.ts >= %(start)s AND l.name = ANY(%(names)s)
          AND (EXISTS (SELECT 1 FROM signals_numeric n WHERE n.vehicle_id = l.vehicle_id
                       AND n.name = l.name AND n.ts >= %(start)s AND n.ts < %(end)s)
               OR EXISTS (SELECT 1 FROM signals_location g WHERE g.vehicle_id = l.vehicle_id
                          AND g.name = l.name AND g.ts >= %(start)s AND g.ts < %(end)s))
        GROUP BY l.vehicle_id ORDER BY l.vehicle_id
        """,
        {"start": start, "end": end, "names": [LOCATION, SPEED, ODOMETER]},
    ).fetchall()
    return [row[0] for row in rows]  # type: ignore[misc]


def load_vehicle_day(conn: Conn, vehicle_id: UUID, day: date) -> VehicleDay:
    """The day's fixes and samples in a total order: readings at one instant (a cloned device
    in two cars) come in the same order whatever the storage (partitions, compressed chunks),
    so proving a day again gives the same proof."""
    start, end = day_bounds(day)
    fixes = [
        Fix(ts, lat, lon, hdop)  # type: ignore[arg-type]
        for ts, lat, lon, hdop in conn.execute(
            "SELECT ts, latitude, longitude, hdop FROM signals_location"
            " WHERE vehicle_id = %s AND name = %s AND ts >= %s AND ts < %s"
            " ORDER BY ts, device_id, latitude, longitude, hdop",
            (vehicle_id, LOCATION, start, end),
        )
    ]
    series: dict[str, list[Sample]] = {SPEED: [], ODOMETER: []}
    for name, ts, value in conn.execute(
        "SELECT name, ts, value FROM signals_numeric"
        " WHERE vehicle_id = %s AND name = ANY(%s) AND ts >= %s AND ts < %s ORDER BY ts, device_id, value",
        (vehicle_id, [SPEED, ODOMETER], start, end),
    ):
        series[name].append(Sample(ts, value))  # type: ignore[arg-type, index]
    return VehicleDay(vehicle_id, day, fixes, series[SPEED], series[ODOMETER])


def _previous_odometer(conn: Conn, vehicle_id: UUID, day: date) -> float | None:
    row = conn.execute(
        "SELECT odometer_last_km FROM movement_proofs WHERE vehicle_id = %s AND day < %s"
        " AND odometer_last_km IS NOT NULL ORDER BY day DESC LIMIT 1", (vehicle_id, day),
    ).fetchone()
    return None if row is None else float(row[0])  # type: ignore[arg-type]


def _store_fingerprints(conn: Conn, day: date, measured: list[Measures]) -> None:
    conn.execute("DELETE FROM movement_fingerprints WHERE day = %s", (day,))
    with conn.cursor() as cur, cur.copy(
            "COPY movement_fingerprints (vehicle_id, day, hash) FROM STDIN (FORMAT BINARY)") as copy:
        copy.set_types(["uuid", "date", "int8"])
        for m in measured:
            for value in m.fingerprint:
                copy.write_row((m.vehicle_id, day, value))


def _trace_matches(conn: Conn, day: date) -> dict[UUID, list[TraceMatch]]:
    """For each vehicle proved on ``day``: the other vehicle-days sharing its windows, that day
    (other vehicles) or in the lookback (any vehicle, itself included)."""
    matches: dict[UUID, list[TraceMatch]] = {}
    for vehicle, other, other_day, shared in conn.execute(
        """
        SELECT a.vehicle_id, b.vehicle_id, b.day, count(*)
        FROM movement_fingerprints a
        JOIN movement_fingerprints b ON b.hash = a.hash
             AND b.day BETWEEN %(first)s AND %(day)s
             AND (b.day < a.day OR b.vehicle_id <> a.vehicle_id)
        WHERE a.day = %(day)s
        GROUP BY a.vehicle_id, b.vehicle_id, b.day
        """,
        {"day": day, "first": day - REPLAY_LOOKBACK},
    ):
        matches.setdefault(vehicle, []).append(TraceMatch(other, other_day, shared))  # type: ignore[arg-type]
    return matches


def _store_proofs(conn: Conn, day: date, proofs: list[Proof]) -> None:
    conn.execute("DELETE FROM movement_proofs WHERE day = %s", (day,))
    with conn.cursor() as cur:
        cur.executemany(
            """
            INSERT INTO movement_proofs (vehicle_id, day, verdict, distance_km, gps_km, odometer_km,
                speed_km, odometer_first_km, odometer_last_km, fixes_used, fixes_dropped, checks, reasons)
            VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
            """,
            [(p.vehicle_id, day, str(p.verdict), p.distance_km, p.measures.gps_km,
              p.measures.odometer_km, p.measures.speed_km, p.measures.odometer_first_km,
              p.measures.odometer_last_km, p.measures.fixes_used, p.measures.fixes_dropped,
              Jsonb([c.to_json() for c in p.checks]), [str(r) for r in p.reasons]) for p in proofs],
        )


def lock_proofs(conn: Conn) -> None:
    """Until the transaction ends, nobody else writes proofs or closes an epoch over them."""
    conn.execute("SELECT pg_advisory_xact_lock(hashtext('motus-movement-proofs'))")


def prove_day(conn: Conn, day: date, tol: Tolerances = DEFAULT_TOLERANCES) -> list[Proof]:
    """Prove every active vehicle's ``day`` in one transaction; return the proofs stored."""
    with conn.transaction():
        lock_proofs(conn)
        measured = [
            measure(load_vehicle_day(conn, vehicle, day), _previous_odometer(conn, vehicle, day), tol)
            for vehicle in vehicles_active(conn, day)
        ]
        _store_fingerprints(conn, day, measured)
        matches = _trace_matches(conn, day)
        proofs = [judge(m, matches.get(m.vehicle_id, ()), tol) for m in measured]
        _store_proofs(conn, day, proofs)
    return proofs


def days_between(first: date, last: date) -> Iterator[date]:
    day = first
    while day <= last:
        yield day
        day += timedelta(days=1)
