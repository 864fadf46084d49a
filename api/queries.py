"""The API's reads and the access log, as SQL on a connection the route holds."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from uuid import UUID

from movement.proof import Fix, Sample
from protocol.catalog import ValueType, load_catalog


def latest(conn: Any, vehicle_id: UUID, names: Sequence[str] | None) -> list[tuple[str, datetime, Any]]:
    return list(conn.execute(
        "SELECT name, ts, value FROM signals_latest WHERE vehicle_id = %s"
        " AND (%s::text[] IS NULL OR name = ANY(%s::text[])) ORDER BY name",
        (vehicle_id, names, names)).fetchall())


#: Intervals a series may use, in seconds.
INTERVALS = {"1m": 60, "5m": 300, "15m": 900, "1h": 3600, "6h": 21600, "1d": 86400}
NUMERIC_AGGREGATIONS = ("avg", "min", "max", "median", "first", "last")
ORDERED_AGGREGATIONS = ("first", "last")  # the only ones for text and locations
ROLLUP_AGGREGATIONS = ("avg", "min", "max")  # what the hourly rollups hold


@dataclass(frozen=True, slots=True)
class SeriesQuery:
    vehicle_id: UUID
    name: str
    start: datetime
    end: datetime
    interval_s: int
    aggregation: str
    limit: int


def uses_rollups(q: SeriesQuery) -> bool:
    spec = load_catalog()[q.name]
    return (spec.type is ValueType.FLOAT and q.aggregation in ROLLUP_AGGREGATIONS
            and q.interval_s % 3600 == 0
            and q.start.minute == q.start.second == q.start.microsecond == 0)


_NUMERIC_SQL = {
    "avg": "avg(value)", "min": "min(value)", "max": "max(value)",
    "median": "percentile_cont(0.5) WITHIN GROUP (ORDER BY value)",
    "first": "(array_agg(value ORDER BY ts))[1]", "last": "(array_agg(value ORDER BY ts DESC))[1]",
}
_ROLLUP_SQL = {"avg": "sum(sum) / sum(samples)", "min": "min(min)", "max": "max(max)"}


def series(conn: Any, q: SeriesQuery) -> list[tuple[datetime, Any]]:
    """Up to ``limit`` buckets of [start, end) aligned on ``start``, oldest first."""
    spec = load_catalog()[q.name]
    bucket = "date_bin(%(step)s, {col}, %(origin)s)"
    params = {"step": timedelta(seconds=q.interval_s), "origin": q.start, "vehicle": q.vehicle_id,
              "name": q.name, "start": q.start, "end": q.end, "limit": q.limit}
    if uses_rollups(q):
        sql = (f"SELECT {bucket.format(col='hour')} AS b, {_ROLLUP_SQL[q.aggregation]} FROM signals_hourly"
               " WHERE vehicle_id = %(vehicle)s AND name = %(name)s AND hour >= %(start)s AND hour < %(end)s"
               " GROUP BY b ORDER BY b LIMIT %(limit)s")
    elif spec.type is ValueType.FLOAT:
        sql = (f"SELECT {bucket.format(col='ts')} AS b, {_NUMERIC_SQL[q.aggregation]} FROM signals_numeric"
               " WHERE vehicle_id = %(vehicle)s AND name = %(name)s AND ts >= %(start)s AND ts < %(end)s"
               " GROUP BY b ORDER BY b LIMIT %(limit)s")
    elif spec.type is ValueType.LOCATION:
        order = "ts" if q.aggregation == "first" else "ts DESC"
        sql = (f"SELECT {bucket.format(col='ts')} AS b, json_build_object("
               f"'latitude', (array_agg(latitude ORDER BY {order}))[1],"
               f" 'longitude', (array_agg(longitude ORDER BY {order}))[1],"
               f" 'hdop', (array_agg(hdop ORDER BY {order}))[1]) FROM signals_location"
               " WHERE vehicle_id = %(vehicle)s AND name = %(name)s AND ts >= %(start)s AND ts < %(end)s"
               " GROUP BY b ORDER BY b LIMIT %(limit)s")
    else:
        order = "ts" if q.aggregation == "first" else "ts DESC"
        sql = (f"SELECT {bucket.format(col='ts')} AS b, (array_agg(value ORDER BY {order}))[1]"
               " FROM signals_text WHERE vehicle_id = %(vehicle)s AND name = %(name)s"
               " AND ts >= %(start)s AND ts < %(end)s GROUP BY b ORDER BY b LIMIT %(limit)s")
    return [(r[0], r[1]) for r in conn.execute(sql, params).fetchall()]


def log_access(conn: Any, *, developer_id: UUID, key_id: str | None, licence_id: UUID, purpose: str,
               vehicle_id: UUID, signals: Sequence[str], start: datetime, end: datetime, rows: int,
               at: datetime) -> None:
    """One ``data_access`` row (migration 0007), in the transaction that read the data."""
    conn.execute(
        "INSERT INTO data_access (at, developer_id, api_key_id, licence_id, purpose, vehicle_id, signals,"
        " range_from, range_to, rows) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
        (at, developer_id, key_id, licence_id, purpose, vehicle_id, list(signals), start, end, rows))


def access_log(conn: Any, driver_id: UUID, before_id: int | None, limit: int) -> list[tuple[Any, ...]]:
    """Reads of the driver's vehicles, newest first."""
    return list(conn.execute(
        "SELECT a.id, a.at, d.organisation, a.developer_id, a.api_key_id, a.licence_id, a.purpose,"
        " a.vehicle_id, a.signals, a.range_from, a.range_to, a.rows FROM data_access a"
        " JOIN vehicles v ON v.id = a.vehicle_id JOIN developers d ON d.id = a.developer_id"
        " WHERE v.owner_id = %s AND (%s::bigint IS NULL OR a.id < %s) ORDER BY a.id DESC LIMIT %s",
        (driver_id, before_id, before_id, limit)).fetchall())


def own_vehicles(conn: Any, driver_id: UUID) -> list[tuple[UUID, str | None]]:
    return [(r[0], r[1]) for r in conn.execute(
        "SELECT id, vin FROM vehicles WHERE owner_id = %s ORDER BY id", (driver_id,)).fetchall()]


def owner_of(conn: Any, vehicle_id: UUID) -> UUID | None:
    row = conn.execute("SELECT owner_id FROM vehicles WHERE id = %s", (vehicle_id,)).fetchone()
    return None if row is None else row[0]


def export_rows(conn: Any, driver_id: UUID) -> Any:
    """Every reading of the driver's vehicles, streamed from a server-side cursor."""
    with conn.cursor(name="motus_export") as cur:
        cur.itersize = 5000
        cur.execute(
            "SELECT r.vehicle_id, r.ts, r.name, r.value FROM ("
            " SELECT vehicle_id, ts, name, to_jsonb(value) AS value FROM signals_numeric"
            " UNION ALL SELECT vehicle_id, ts, name, to_jsonb(value) FROM signals_text"
            " UNION ALL SELECT vehicle_id, ts, name, jsonb_build_object('latitude', latitude,"
            "  'longitude', longitude, 'hdop', hdop) FROM signals_location) r"
            " JOIN vehicles v ON v.id = r.vehicle_id WHERE v.owner_id = %s"
            " ORDER BY r.vehicle_id, r.ts, r.name",
            (driver_id,))
        yield from cur


def delete_telemetry(conn: Any, driver_id: UUID) -> int:
    """Delete every reading of the driver's vehicles and what is derived from them (latest values,
    hourly rollups); returns how many readings went."""
    vehicles = [r[0] for r in conn.execute("SELECT id FROM vehicles WHERE owner_id = %s",
                                           (driver_id,)).fetchall()]
    deleted = 0
    for table in ("signals_numeric", "signals_text", "signals_location"):
        deleted += conn.execute(f"DELETE FROM {table} WHERE vehicle_id = ANY(%s)", (vehicles,)).rowcount
    for table in ("signals_latest", "signals_hourly"):
        conn.execute(f"DELETE FROM {table} WHERE vehicle_id = ANY(%s)", (vehicles,))
    return deleted


def numeric_samples(conn: Any, vehicle_id: UUID, name: str, start: datetime, end: datetime) -> list[Sample]:
    return [Sample(r[0], r[1]) for r in conn.execute(
        "SELECT ts, value FROM signals_numeric WHERE vehicle_id = %s AND name = %s AND ts >= %s AND ts < %s"
        " ORDER BY ts", (vehicle_id, name, start, end)).fetchall()]


def location_fixes(conn: Any, vehicle_id: UUID, start: datetime, end: datetime) -> list[Fix]:
    return [Fix(r[0], r[1], r[2], r[3]) for r in conn.execute(
        "SELECT ts, latitude, longitude, hdop FROM signals_location WHERE vehicle_id = %s"
        " AND name = 'currentLocationCoordinates' AND ts >= %s AND ts < %s ORDER BY ts",
        (vehicle_id, start, end)).fetchall()]


def daily_proofs(conn: Any, vehicle_id: UUID, first: date,
                 last: date) -> list[tuple[date, str, float | None]]:
    return [(r[0], r[1], r[2]) for r in conn.execute(
        "SELECT day, verdict, distance_km FROM movement_proofs WHERE vehicle_id = %s"
        " AND day BETWEEN %s AND %s ORDER BY day", (vehicle_id, first, last)).fetchall()]
