"""Store-and-forward spool: SQLite in WAL mode.

A signed event is committed here before it is published and deleted only once the network's
receipt says it is stored or refused for good (docs/protocol.md, "Receipts"; or, with receipts
off, once the broker acknowledged it: MQTT 5 section 4.3.2, QoS 1 PUBACK), so a crash, a
kill -9, a power cut or a broker that loses messages loses nothing that was spooled. Rows drain
in the order they were written, keyed by their event's (boot id, seq). The spool is bounded by
the bytes it holds: past the bound the oldest rows are dropped and counted.

Payloads are stored deflate-compressed (RFC 1951) with a preset dictionary of the wire format's
recurring text (catalog names, member names), which shrinks a typical 20-signal event about
fivefold; each row holds only what draining needs, so a week offline at 1 Hz x 20 signals
stays near 250 MB.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from device_agent.errors import SpoolError
from protocol.catalog import load_catalog
from protocol.envelope import split_event_id

SCHEMA = """
-- AUTOINCREMENT: row ids are never reused, so they order the drain and name in-flight messages.
CREATE TABLE IF NOT EXISTS outbox (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    topic_id INTEGER NOT NULL,
    payload  BLOB NOT NULL,
    readings INTEGER NOT NULL,
    boot     TEXT,
    seq      INTEGER
);
CREATE TABLE IF NOT EXISTS topics (
    id   INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE
);
CREATE TABLE IF NOT EXISTS counters (
    name  TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
INSERT OR IGNORE INTO counters VALUES ('bytes', 0), ('dropped_events', 0), ('dropped_readings', 0);
"""


@cache
def compression_dictionary() -> bytes:
    """zlib preset dictionary (RFC 1950 section 2.2): the text events repeat most.

    Both sides of the spool are this process, so the dictionary may change between releases
    only together with a spool format change; its checksum is kept in the file to catch that."""
    names = sorted(spec.name for spec in load_catalog())
    members = '{"data":{"signals":[{"name":"","timestamp":"","value":},"datacontenttype":' \
              '"application/json","id":"","signature":"","source":"","specversion":"1.0",' \
              '"time":"","type":"motus.telemetry.v1"}{"latitude":,"longitude":,"hdop":}'
    # zlib favours the end of the dictionary: the most frequent text goes last.
    return ("".join(f'"name":"{n}",' for n in names) + members).encode()


#: Raw deflate: no zlib header or checksum per row (SQLite pages carry no corruption guard
#: either way; a damaged row fails to inflate and is reported).
_WBITS = -15
SPOOL_FORMAT = 2


def compress(payload: bytes) -> bytes:
    c = zlib.compressobj(level=9, wbits=_WBITS, zdict=compression_dictionary())
    return c.compress(payload) + c.flush()


def decompress(blob: bytes) -> bytes:
    d = zlib.decompressobj(wbits=_WBITS, zdict=compression_dictionary())
    return d.decompress(blob) + d.flush()


@dataclass(frozen=True, slots=True)
class SpooledEvent:
    row_id: int
    topic: str
    payload: bytes
    readings: int


@dataclass(frozen=True, slots=True)
class SpoolStats:
    events: int
    readings: int
    stored_bytes: int
    file_bytes: int
    dropped_events: int
    dropped_readings: int


@dataclass(frozen=True, slots=True)
class NewEvent:
    event_id: str
    topic: str
    payload: bytes
    readings: int


def _event_key(event_id: str) -> tuple[str | None, int | None]:
    parts = split_event_id(event_id)
    return parts if parts is not None else (None, None)


class Spool:
    """Thread-safe: the sources that answer only once a reading is durable (the phone bridge)
    append from their own threads, the publisher reads and deletes from its own."""

    def __init__(self, path: Path, *, max_bytes: int, durable: bool = True) -> None:
        if max_bytes <= 0:
            raise SpoolError("the spool's size bound must be positive")
        self.path = path
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._topics: dict[str, int] = {}
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            # FULL: a commit survives a power cut, not only a crash (sqlite.org/pragma.html).
            self._db.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
            self._db.execute("PRAGMA busy_timeout=5000")
            self._db.executescript(SCHEMA)
            self._check_dictionary()
            self._add_event_keys()
        except sqlite3.Error as exc:
            raise SpoolError(f"cannot open the spool {path}: {exc}") from exc

    def _check_dictionary(self) -> None:
        crc = zlib.crc32(compression_dictionary() + bytes([SPOOL_FORMAT]))
        self._db.execute("INSERT OR IGNORE INTO counters VALUES ('zdict_crc', ?)", (crc,))
        (stored,) = self._db.execute("SELECT value FROM counters WHERE name='zdict_crc'").fetchone()
        if stored != crc:
            raise SpoolError(
                f"{self.path} was written in another spool format or payload dictionary; drain it "
                "with the agent version that wrote it")

    def _add_event_keys(self) -> None:
        """A spool written before receipts has no (boot, seq) columns: add them and fill them
        from the stored events' ids, once."""
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(outbox)")}
        if "boot" not in columns:
            self._db.execute("ALTER TABLE outbox ADD COLUMN boot TEXT")
            self._db.execute("ALTER TABLE outbox ADD COLUMN seq INTEGER")
        missing = self._db.execute("SELECT id, payload FROM outbox WHERE boot IS NULL").fetchall()
        keys = []
        for row_id, blob in missing:
            parts = split_event_id(str(json.loads(decompress(blob)).get("id", "")))
            keys.append((*(parts or (None, None)), row_id))
        self._db.executemany("UPDATE outbox SET boot = ?, seq = ? WHERE id = ?", keys)
        self._db.execute("CREATE INDEX IF NOT EXISTS outbox_event ON outbox (boot, seq)")

    def append(self, events: Sequence[NewEvent]) -> None:
        """Commit ``events`` (one transaction), then drop the oldest rows past the bound."""
        if not events:
            return
        blobs = [compress(e.payload) for e in events]
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                rows = [(self._topic_id(e.topic), blob, e.readings, *_event_key(e.event_id))
                        for e, blob in zip(events, blobs, strict=True)]
                self._db.executemany(
                    "INSERT INTO outbox (topic_id, payload, readings, boot, seq) VALUES (?, ?, ?, ?, ?)",
                    rows)
                self._bump("bytes", sum(len(blob) for blob in blobs))
                self._enforce_bound()
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                self._rollback()
                raise SpoolError(f"cannot write to the spool {self.path}: {exc}") from exc

    def _topic_id(self, topic: str) -> int:
        topic_id = self._topics.get(topic)
        if topic_id is None:
            self._db.execute("INSERT OR IGNORE INTO topics (name) VALUES (?)", (topic,))
            (topic_id,) = self._db.execute("SELECT id FROM topics WHERE name = ?", (topic,)).fetchone()
            self._topics[topic] = topic_id
        return int(topic_id)

    def _bump(self, name: str, by: int) -> None:
        self._db.execute("UPDATE counters SET value = value + ? WHERE name = ?", (by, name))

    def _counter(self, name: str) -> int:
        (value,) = self._db.execute("SELECT value FROM counters WHERE name = ?", (name,)).fetchone()
        return int(value)

    def _enforce_bound(self) -> None:
        excess = self._counter("bytes") - self.max_bytes
        if excess <= 0:
            return
        # Oldest first, until the bound holds again.
        doomed = self._db.execute(
            "SELECT id, length(payload), readings FROM outbox ORDER BY id").fetchmany(100_000)
        ids, freed, readings = [], 0, 0
        for row_id, size, count in doomed:
            if freed >= excess:
                break
            ids.append((row_id,))
            freed += size
            readings += count
        self._db.executemany("DELETE FROM outbox WHERE id = ?", ids)
        self._bump("bytes", -freed)
        self._bump("dropped_events", len(ids))
        self._bump("dropped_readings", readings)

    def _rollback(self) -> None:
        if self._db.in_transaction:
            self._db.execute("ROLLBACK")

    def pending(self, after_row_id: int, limit: int) -> list[SpooledEvent]:
        """Up to ``limit`` events written after ``after_row_id``, oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT outbox.id, topics.name, payload, readings FROM outbox "
                "JOIN topics ON topics.id = outbox.topic_id WHERE outbox.id > ? "
                "ORDER BY outbox.id LIMIT ?", (after_row_id, limit)).fetchall()
        return [SpooledEvent(r[0], r[1], decompress(r[2]), r[3]) for r in rows]

    def events(self, row_ids: Iterable[int]) -> list[SpooledEvent]:
        """The events still spooled under ``row_ids`` (to send again), oldest first."""
        wanted = sorted(set(row_ids))
        out: list[SpooledEvent] = []
        with self._lock:
            for start in range(0, len(wanted), 500):
                chunk = wanted[start:start + 500]
                out += [SpooledEvent(r[0], r[1], decompress(r[2]), r[3]) for r in self._db.execute(
                    "SELECT outbox.id, topics.name, payload, readings FROM outbox JOIN topics ON "
                    f"topics.id = outbox.topic_id WHERE outbox.id IN ({','.join('?' * len(chunk))}) "
                    "ORDER BY outbox.id", chunk)]
        return out

    def settle(self, boot: str, ranges: Iterable[tuple[int, int]]) -> list[int]:
        """Delete the events of ``boot`` whose seq lies in one of ``ranges`` (inclusive): a
        receipt settled them. Returns the row ids deleted."""
        deleted: list[int] = []
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                freed = 0
                for low, high in ranges:
                    for row_id, size in self._db.execute(
                            "DELETE FROM outbox WHERE boot = ? AND seq BETWEEN ? AND ? "
                            "RETURNING id, length(payload)", (boot, low, high)).fetchall():
                        deleted.append(row_id)
                        freed += size
                self._bump("bytes", -freed)
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                self._rollback()
                raise SpoolError(f"cannot delete from the spool {self.path}: {exc}") from exc
        return deleted

    def delete(self, row_ids: Iterable[int]) -> None:
        """Forget events by row id (the broker acknowledged them, with receipts off)."""
        ids = [(row_id,) for row_id in row_ids]
        if not ids:
            return
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                freed = 0
                for (row_id,) in ids:
                    row = self._db.execute(
                        "DELETE FROM outbox WHERE id = ? RETURNING length(payload)", (row_id,)).fetchone()
                    freed += row[0] if row else 0
                self._bump("bytes", -freed)
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                self._rollback()
                raise SpoolError(f"cannot delete from the spool {self.path}: {exc}") from exc

    def stats(self) -> SpoolStats:
        with self._lock:
            events, readings = self._db.execute(
                "SELECT count(*), coalesce(sum(readings), 0) FROM outbox").fetchone()
            stored = self._counter("bytes")
            dropped_events = self._counter("dropped_events")
            dropped_readings = self._counter("dropped_readings")
        files = [self.path, self.path.with_name(self.path.name + "-wal")]
        file_bytes = sum(p.stat().st_size for p in files if p.exists())
        return SpoolStats(events, readings, stored, file_bytes, dropped_events, dropped_readings)

    def close(self) -> None:
        with self._lock:
            self._db.close()
