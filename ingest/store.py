"""Writing a batch: exact dedup, binary COPY of readings, newest values, quarantine.

One transaction per batch: the event ids and their readings commit together or not at all,
so an event is stored exactly once however often the broker delivers it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta

import psycopg
from psycopg.adapt import PyFormat

from ingest.pipeline import Accepted, Rejected
from ingest.rows import ReadingRows, distinct_stamps, reading_rows
from protocol import jcs
from protocol.errors import ProtocolError


@dataclass(frozen=True, slots=True)
class BatchResult:
    events_stored: int
    #: Copies of events stored before (not kept again): broker redeliveries and device re-sends.
    duplicates: int
    readings_stored: int
    quarantined: int
    #: Of ``duplicates``, the copies the device sent again (no MQTT DUP flag): an event whose
    #: receipt it did not get (docs/protocol.md, "Receipts").
    resent: int = 0
    #: Quarantined because the database refused them, already written to the quarantine with
    #: the batch; counted in ``quarantined``.
    store_rejects: tuple[Rejected, ...] = ()
    #: Readings refused on their own in the events stored now (reason -> count), quarantined.
    readings_refused: dict[str, int] | None = None


_INCOMING = """
CREATE TEMP TABLE IF NOT EXISTS incoming_events (
    device_id text, boot_id text, seq bigint, event_time timestamptz, signal_count integer
) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS incoming_latest_json (
    vehicle_id bytea, name text, ts timestamptz, value text, device_id text
) ON COMMIT DELETE ROWS;
"""


class TelemetryStore:
    """Writes batches through one connection (one store per ingest worker)."""

    def __init__(self, conninfo: str) -> None:
        self.conninfo = conninfo
        self._days_ready: set[date] = set()
        self.conn = self._connect()

    def _connect(self) -> psycopg.Connection[tuple[object, ...]]:
        conn = psycopg.connect(self.conninfo)
        # COPY's bytea columns by the plain bytes dumper (C in psycopg's binary build), not the
        # DB-API ``Binary`` one registered for the same type after it, which is Python per row.
        conn.adapters.register_dumper(bytes, psycopg.adapters.get_dumper(bytes, PyFormat.BINARY))
        conn.execute(_INCOMING.encode())
        conn.commit()
        return conn

    def reconnect(self) -> None:
        if not self.conn.closed:
            self.conn.close()
        self.conn = self._connect()

    def close(self) -> None:
        self.conn.close()

    def write(self, accepted: Sequence[Accepted], rejected: Sequence[Rejected]) -> BatchResult:
        unique: dict[tuple[str, str, int], Accepted] = {}
        copies: list[Accepted] = []  # second and later copies within this batch
        for a in accepted:
            key = a.key
            (copies.append(a) if key in unique else unique.__setitem__(key, a))
        self._ensure_partitions({ts.date() for ts in distinct_stamps(unique.values())})
        with self.conn.transaction():
            new_keys = self._claim_event_ids(list(unique.values()))
            fresh = [a for key, a in unique.items() if key in new_keys]
            stored_before = [a for key, a in unique.items() if key not in new_keys] + copies
            rows = reading_rows(fresh)
            self._copy_readings(rows)
            self._invalidate_rollups(rows)
            self._upsert_latest(rows)
            self._quarantine(rejected)
            refused = self._quarantine_readings(fresh)
        return BatchResult(
            events_stored=len(fresh),
            duplicates=len(stored_before),
            readings_stored=rows.count,
            quarantined=len(rejected),
            resent=sum(1 for a in stored_before if not a.redelivered),
            readings_refused=refused,
        )

    def _ensure_partitions(self, days: set[date]) -> None:
        missing = days - self._days_ready
        if not missing:
            return
        with self.conn.transaction():
            self.conn.execute(
                "SELECT motus_ensure_daily_partitions(%s, %s)", (min(missing), max(missing))
            )
        self._days_ready |= {d for d in missing}

    def _claim_event_ids(self, events: Sequence[Accepted]) -> set[tuple[str, str, int]]:
        """Insert the batch's ids; return those that were not stored before (the dedup).

        Most batches hold no copy of an event stored before: their ids go straight into
        telemetry_events by COPY, in a savepoint. When the primary key refuses one, the savepoint
        is rolled back and the ids go through a staging table and ON CONFLICT DO NOTHING, which
        says which were new. Both insert in key order (byte order), so that concurrent workers
        lock keys in one order."""
        if not events:
            return set()
        ids = sorted((a.source, a.boot_id, a.seq, a.time, len(a.readings)) for a in events)
        columns = "(device_id, boot_id, seq, event_time, signal_count)"
        types = ["text", "text", "int8", "timestamptz", "int4"]
        try:
            with self.conn.transaction(), self.conn.cursor() as cur:
                _copy_binary(cur, f"telemetry_events {columns}", types, ids)
            return {(device, boot, seq) for device, boot, seq, _, _ in ids}
        except psycopg.errors.UniqueViolation:
            pass  # a copy of a stored event: the savepoint is undone, nothing else
        with self.conn.cursor() as cur:
            _copy_binary(cur, f"incoming_events {columns}", types, ids)
            cur.execute(
                f"INSERT INTO telemetry_events {columns}"
                " SELECT device_id, boot_id, seq, event_time, signal_count FROM incoming_events"
                ' ORDER BY device_id COLLATE "C", boot_id COLLATE "C", seq'
                " ON CONFLICT DO NOTHING RETURNING device_id, boot_id, seq"
            )
            return {(str(d), str(b), int(s)) for d, b, s in cur.fetchall()}  # type: ignore[call-overload]

    def _copy_readings(self, rows: ReadingRows) -> None:
        # vehicle_id goes as its 16 raw bytes: bytea's binary form is the bytes as they are,
        # which is exactly uuid's binary form (PostgreSQL uuid_recv), without a per-row dump.
        key_columns, key_types = "ts, vehicle_id, device_id, name", ["timestamptz", "bytea", "text", "text"]
        tables: tuple[tuple[str, str, list[str], Sequence[Sequence[object]]], ...] = (
            ("signals_numeric", "value", ["float8"], rows.numeric),
            ("signals_text", "value", ["text"], rows.text),
            ("signals_location", "latitude, longitude, hdop", ["float8", "float8", "float4"],
             rows.location),
        )
        with self.conn.cursor() as cur:
            for table, value_columns, value_types, table_rows in tables:
                if table_rows:
                    _copy_binary(cur, f"{table} ({key_columns}, {value_columns})",
                                 [*key_types, *value_types], table_rows)

    def _invalidate_rollups(self, rows: ReadingRows) -> None:
        """Mark the hours this batch adds numeric readings to (motus_refresh_rollups)."""
        hours = rows.numeric_hours()
        if hours:
            self.conn.execute(
                "INSERT INTO rollup_invalidations (hour) SELECT unnest(%s::timestamptz[])", (hours,))

    def _upsert_latest(self, rows: ReadingRows) -> None:
        """The newest value of each vehicle and signal; staged with the vehicle as its 16 bytes
        and the value as JSON text (dumped in C, not per row in Python), upserted in key order
        so that concurrent writers lock rows in one order (no deadlocks)."""
        latest = rows.latest_rows()
        if not latest:
            return
        with self.conn.cursor() as cur:
            _copy_binary(cur, "incoming_latest_json (vehicle_id, name, ts, value, device_id)",
                         ["bytea", "text", "timestamptz", "text", "text"], latest)
            cur.execute(
                "INSERT INTO signals_latest AS l (vehicle_id, name, ts, value, device_id)"
                " SELECT encode(vehicle_id, 'hex')::uuid, name, ts, value::jsonb, device_id"
                " FROM incoming_latest_json ORDER BY 1, 2"
                " ON CONFLICT (vehicle_id, name) DO UPDATE"
                " SET ts = EXCLUDED.ts, value = EXCLUDED.value, device_id = EXCLUDED.device_id"
                " WHERE l.ts < EXCLUDED.ts"
            )

    def _quarantine(self, rejected: Sequence[Rejected]) -> None:
        if not rejected:
            return
        with self.conn.cursor() as cur:
            _copy_binary(
                cur, "quarantine (topic, device_id, event_id, reason, detail, payload)",
                ["text", "text", "text", "text", "text", "bytea"],
                [(r.topic, r.device_id, r.event_id, str(r.reason), r.detail, r.payload)
                 for r in rejected],
            )


    def _quarantine_readings(self, fresh: Sequence[Accepted]) -> dict[str, int]:
        """The refused readings of events stored for the first time (a copy adds none)."""
        rows = [(a.topic, a.source, a.event_id, str(r.reason), r.detail, _reading_json(r.raw), r.index)
                for a in fresh for r in a.refused_readings]
        if not rows:
            return {}
        with self.conn.cursor() as cur:
            _copy_binary(
                cur, "quarantine (topic, device_id, event_id, reason, detail, payload, reading)",
                ["text", "text", "text", "text", "text", "bytea", "int4"], rows)
        counts: dict[str, int] = {}
        for row in rows:
            counts[row[3]] = counts.get(row[3], 0) + 1
        return counts


def _reading_json(raw: object) -> bytes:
    try:
        return jcs.dumps(raw)
    except (TypeError, ValueError, ProtocolError):
        return repr(raw).encode()  # not JSON-encodable as it is (a non-finite number)


@dataclass(frozen=True, slots=True)
class Housekeeping:
    partitions_created: int
    hours_rolled_up: int
    partitions_dropped: int
    #: TimescaleDB retention policies brought in line with motus_raw_retention().
    retention_policies_changed: int


#: Daily partitions are kept ready this many days ahead (and one behind, for late clocks).
PARTITIONS_AHEAD_DAYS = 7


def housekeeping(conn: psycopg.Connection[tuple[object, ...]], today: date) -> Housekeeping | None:
    """Partitions ahead, rollups of closed hours, expired partitions dropped, retention policies
    following the retention setting.

    One ingest worker at a time does it (the others skip, None): a transaction-level advisory
    lock, so a worker killed while holding it releases it with its connection.
    """
    with conn.transaction():
        got = conn.execute("SELECT pg_try_advisory_xact_lock(hashtext('motus_housekeeping'))").fetchone()
        if not got or not got[0]:
            return None
        created = conn.execute("SELECT motus_ensure_daily_partitions(%s, %s)",
                               (today - timedelta(days=1), today + timedelta(days=PARTITIONS_AHEAD_DAYS))
                               ).fetchone()
        rolled = conn.execute("SELECT motus_refresh_rollups()").fetchone()
        dropped = conn.execute("SELECT motus_drop_expired_partitions()").fetchone()
        policies = conn.execute("SELECT motus_apply_retention()").fetchone()
    return Housekeeping(*(int(row[0]) if row else 0  # type: ignore[call-overload]
                          for row in (created, rolled, dropped, policies)))


def _copy_binary(
    cur: psycopg.Cursor[tuple[object, ...]], target: str, types: list[str],
    rows: Sequence[Sequence[object]],
) -> None:
    """Binary COPY of ``rows`` into ``target`` ("table (columns)"); types are PostgreSQL names."""
    with cur.copy(f"COPY {target} FROM STDIN (FORMAT BINARY)".encode()) as copy:
        copy.set_types(types)
        for row in rows:
            copy.write_row(row)
