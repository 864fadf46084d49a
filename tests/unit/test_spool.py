"""The SQLite spool: order, durability across reopen, the size bound and compression."""

import json
import sqlite3

import pytest

from device_agent.errors import SpoolError
from device_agent.spool import NewEvent, Spool, SpooledEvent, compress, decompress


def event(i: int, size: int = 200) -> NewEvent:
    payload = (f'{{"id":"boot:{i}","data":{{"signals":[{{"name":"speed","value":{i}}}]}}}}'
               + " " * size).encode()
    return NewEvent(f"boot:{i}", "motus/v1/devices/dev1/telemetry", payload, readings=1)


def event_id(spooled: SpooledEvent) -> str:
    return str(json.loads(spooled.payload)["id"])


def test_events_drain_in_order_and_leave_after_delete(tmp_path):
    spool = Spool(tmp_path / "s.sqlite", max_bytes=10**7)
    spool.append([event(i) for i in range(5)])
    pending = spool.pending(0, 3)
    assert [event_id(p) for p in pending] == ["boot:0", "boot:1", "boot:2"]
    assert pending[0].payload == event(0).payload
    assert [event_id(p) for p in spool.pending(pending[-1].row_id, 10)] == ["boot:3", "boot:4"]
    spool.delete([p.row_id for p in pending])
    assert [event_id(p) for p in spool.pending(0, 10)] == ["boot:3", "boot:4"]
    assert spool.stats().events == 2


def test_spooled_events_survive_reopening(tmp_path):
    path = tmp_path / "s.sqlite"
    spool = Spool(path, max_bytes=10**7)
    spool.append([event(1), event(2)])
    spool.close()  # a kill -9 leaves the WAL behind: SQLite replays it on open
    again = Spool(path, max_bytes=10**7)
    assert [event_id(p) for p in again.pending(0, 10)] == ["boot:1", "boot:2"]


def test_bound_drops_oldest_and_counts(tmp_path):
    spool = Spool(tmp_path / "s.sqlite", max_bytes=2_000)
    for i in range(100):
        spool.append([event(i, size=2000)])
    stats = spool.stats()
    assert stats.stored_bytes <= 2_000
    assert stats.dropped_events == 100 - stats.events
    assert stats.dropped_readings == stats.dropped_events
    newest = spool.pending(0, 1000)
    assert event_id(newest[-1]) == "boot:99"


def test_compression_round_trips_and_shrinks_events():
    from datetime import UTC, datetime

    from device_agent.events import EventBuilder
    from protocol.envelope import SignalReading
    from protocol.signing import private_key_from_seed
    from simulators.fleet import make_fleet

    car = make_fleet(1, seed=3, drive_seconds=60)[0]
    car.vehicle.step(1.0)
    at = datetime(2026, 11, 21, 8, 0, tzinfo=UTC)
    readings = [SignalReading(name=r.name, timestamp=at, value=r.value) for r in car.vehicle.readings(at)]
    builder = EventBuilder(car.device_id, private_key_from_seed(b"k" * 32), "b00t")
    [built] = builder.build(readings * 2, at)
    packed = compress(built.payload)
    assert decompress(packed) == built.payload
    assert len(packed) < len(built.payload) / 2.5


def test_a_spool_written_with_another_dictionary_is_refused(tmp_path):
    path = tmp_path / "s.sqlite"
    Spool(path, max_bytes=10**6).close()
    with sqlite3.connect(path) as db:
        db.execute("UPDATE counters SET value = 1 WHERE name = 'zdict_crc'")
    with pytest.raises(SpoolError, match="another spool format"):
        Spool(path, max_bytes=10**6)


def test_a_receipt_settles_exactly_the_events_it_covers(tmp_path):
    spool = Spool(tmp_path / "s.sqlite", max_bytes=10**7)
    spool.append([event(i) for i in range(10)])
    spool.append([NewEvent("other:3", "motus/v1/devices/dev1/telemetry", b'{"id":"other:3"}', 1)])
    before = spool.stats().stored_bytes
    deleted = spool.settle("boot", [(0, 2), (5, 5), (8, 40)])
    assert len(deleted) == 6
    assert [event_id(p) for p in spool.pending(0, 100)] == ["boot:3", "boot:4", "boot:6", "boot:7", "other:3"]
    assert spool.settle("boot", [(0, 2)]) == []  # a second receipt for the same events: nothing
    assert spool.stats().stored_bytes < before
    assert [event_id(e) for e in spool.events([deleted[0], *[p.row_id for p in spool.pending(0, 2)]])] == [
        "boot:3", "boot:4"]


def test_a_spool_written_before_receipts_gets_its_event_keys(tmp_path):
    """An outbox without (boot, seq) columns, as the previous release wrote it: opening it adds
    them from the stored events' ids, so receipts settle the old rows too."""
    path = tmp_path / "s.sqlite"
    Spool(path, max_bytes=10**7).close()
    with sqlite3.connect(path) as db:
        db.execute("DROP TABLE outbox")
        db.execute("CREATE TABLE outbox (id INTEGER PRIMARY KEY AUTOINCREMENT, topic_id INTEGER NOT NULL,"
                   " payload BLOB NOT NULL, readings INTEGER NOT NULL)")
        db.execute("INSERT INTO topics (id, name) VALUES (1, 'motus/v1/devices/dev1/telemetry')")
        for i in range(3):
            db.execute("INSERT INTO outbox (topic_id, payload, readings) VALUES (1, ?, 1)",
                       (compress(event(i).payload),))
    spool = Spool(path, max_bytes=10**7)
    assert len(spool.settle("boot", [(0, 1)])) == 2
    assert [event_id(p) for p in spool.pending(0, 10)] == ["boot:2"]
