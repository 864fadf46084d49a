import os
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from ingest.pipeline import Accepted, Rejected, StoreReason, process_message
from ingest.store import TelemetryStore
from migrations import runner
from protocol.catalog import load_catalog
from registry.directory import DeviceDirectory
from simulators.fleet import drive_events, make_fleet
from tests.fixtures.helpers import register, scalar

pytestmark = pytest.mark.integration


def test_migrations_are_recorded_and_idempotent(database_url):
    assert runner.upgrade(database_url) == []  # the template was migrated already
    recorded = runner.applied_versions(database_url)
    assert [v for v, _ in recorded] == [m.version for m in runner.available_migrations()]


def test_a_migration_edited_after_it_ran_is_an_error(database_url, monkeypatch):
    edited = [runner.Migration(m.version, m.name, m.sql + "\n-- edited")
              for m in runner.available_migrations()]
    monkeypatch.setattr(runner, "available_migrations", lambda: edited)
    with pytest.raises(runner.MigrationError, match="changed after it was applied"):
        runner.upgrade(database_url)


@pytest.mark.plain_partitions
def test_plain_postgres_gets_daily_partitions_ahead_and_on_demand(database_url):
    today = datetime.now(UTC).date()
    with psycopg.connect(database_url) as conn:
        parts = {r[0] for r in conn.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
            " WHERE i.inhparent = 'signals_numeric'::regclass")}
        assert f"signals_numeric_{today:%Y%m%d}" in parts
        assert f"signals_numeric_{today + timedelta(days=7):%Y%m%d}" in parts
        old = today - timedelta(days=40)
        created = conn.execute("SELECT motus_ensure_daily_partitions(%s, %s)", (old, old))
        assert created.fetchone() == (3,)  # one per reading table
        again = conn.execute("SELECT motus_ensure_daily_partitions(%s, %s)", (old, old))
        assert again.fetchone() == (0,)


def _accepted(database_url, cars, seconds):
    register(database_url, cars)
    now = datetime.now(UTC)
    with psycopg.connect(database_url) as conn:
        directory = DeviceDirectory(conn)
        return [
            process_message(t, p, directory.lookup, load_catalog(), now)
            for car in cars
            for t, p in drive_events(car, now - timedelta(seconds=seconds + 1), seconds)
        ]


def test_redeliveries_and_re_sends_are_stored_once_and_counted(database_url):
    cars = make_fleet(2, seed=11, drive_seconds=20)
    accepted = _accepted(database_url, cars, 20)
    assert all(isinstance(a, Accepted) for a in accepted)
    redelivered = [replace(a, redelivered=True) for a in accepted]
    store = TelemetryStore(database_url)
    first = store.write(accepted, [])
    again = store.write(redelivered + redelivered[:5], [])
    resent = store.write(accepted[:3], [])  # the device sent them again (no DUP flag)
    store.close()
    assert (first.events_stored, first.duplicates, first.readings_stored) == (40, 0, 400)
    assert (again.events_stored, again.duplicates, again.readings_stored, again.resent) == (0, 45, 0, 0)
    assert again.quarantined == 0
    assert (resent.events_stored, resent.duplicates, resent.resent, resent.quarantined) == (0, 3, 3, 0)
    assert scalar(database_url, "SELECT count(*) FROM quarantine") == 0
    assert scalar(database_url, "SELECT count(*) FROM telemetry_events") == 40
    assert scalar(database_url, "SELECT count(*) FROM signals_numeric") == 40 * 9
    assert scalar(database_url, "SELECT count(*) FROM signals_location") == 40
    # the newest value per vehicle and signal, from the last second of each drive
    assert scalar(database_url, "SELECT count(*) FROM signals_latest") == 2 * 10
    newest = scalar(database_url, "SELECT max(ts) FROM signals_numeric")
    assert scalar(database_url, "SELECT min(ts) FROM signals_latest") == newest


def test_a_batch_of_new_events_and_copies_of_stored_ones_stores_the_new_ones(database_url):
    """The ids of a batch go in by COPY unless one was stored before: then the batch's new
    events are found and stored all the same, in the same transaction."""
    cars = make_fleet(1, seed=13, drive_seconds=10)
    accepted = _accepted(database_url, cars, 10)
    store = TelemetryStore(database_url)
    first = store.write(accepted[:6], [])
    mixed = store.write(accepted[4:], [])
    store.close()
    assert (first.events_stored, first.duplicates) == (6, 0)
    assert (mixed.events_stored, mixed.duplicates, mixed.resent, mixed.readings_stored) == (4, 2, 2, 40)
    assert scalar(database_url, "SELECT count(*) FROM telemetry_events") == 10
    assert scalar(database_url, "SELECT count(*) FROM signals_numeric") == 10 * 9


def test_copies_inside_one_batch_are_stored_once(database_url):
    cars = make_fleet(1, seed=12, drive_seconds=5)
    accepted = _accepted(database_url, cars, 5)
    store = TelemetryStore(database_url)
    result = store.write(accepted + [replace(a, redelivered=True) for a in accepted[:3]]
                         + accepted[3:], [])
    store.close()
    # three redelivered by the broker, two sent again by the device: all counted, none kept
    assert (result.events_stored, result.duplicates, result.resent, result.quarantined) == (5, 5, 2, 0)
    assert result.store_rejects == ()
    assert scalar(database_url, "SELECT count(*) FROM signals_numeric") == 5 * 9


def test_latest_value_never_goes_back_in_time(database_url):
    cars = make_fleet(1, seed=13, drive_seconds=10)
    accepted = _accepted(database_url, cars, 10)
    store = TelemetryStore(database_url)
    store.write(accepted[5:], [])
    store.write(accepted[:5], [])  # older events arrive late (a spool drain)
    store.close()
    last = accepted[-1]
    assert isinstance(last, Accepted)
    assert scalar(database_url, "SELECT min(ts) FROM signals_latest") == last.time


def test_rejections_are_quarantined_whole(database_url):
    rejected = [Rejected("motus/v1/devices/abc/telemetry", b"\x00\xffraw", "malformed_json",
                         "payload is not valid JSON", "abc", None)]
    store = TelemetryStore(database_url)
    store.write([], rejected)
    store.close()
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT topic, device_id, reason, detail, payload FROM quarantine").fetchone()
    assert row == ("motus/v1/devices/abc/telemetry", "abc", "malformed_json",
                   "payload is not valid JSON", b"\x00\xffraw")


def test_events_the_database_refuses_are_quarantined_raw_and_the_rest_stored(database_url):
    from ingest.consumer import _write_isolating

    cars = make_fleet(2, seed=14, drive_seconds=3)
    accepted = [a for a in _accepted(database_url, cars, 3) if isinstance(a, Accepted)]
    with psycopg.connect(database_url) as conn:  # the device vanishes between lookup and write
        conn.execute("DELETE FROM devices WHERE id = %s", (cars[1].device_id,))
    store = TelemetryStore(database_url)
    result = _write_isolating(store, accepted, [])
    store.close()
    assert (result.events_stored, result.quarantined) == (3, 3)
    with psycopg.connect(database_url) as conn:
        rows = conn.execute("SELECT reason, device_id, payload FROM quarantine").fetchall()
    refused = [a for a in accepted if a.source == cars[1].device_id]
    assert sorted(bytes(p) for _, _, p in rows) == sorted(a.payload for a in refused)
    assert {(r, d) for r, d, _ in rows} == {(StoreReason.STORAGE_ERROR, cars[1].device_id)}
    assert scalar(database_url, "SELECT count(*) FROM telemetry_events") == 3


def test_hourly_rollups_match_the_raw_readings_and_follow_late_data(database_url):
    cars = make_fleet(2, seed=15, drive_seconds=30)
    accepted = [a for a in _accepted(database_url, cars, 30) if isinstance(a, Accepted)]
    store = TelemetryStore(database_url)
    store.write(accepted[:40], [])
    raw = ("SELECT vehicle_id, name, date_bin('1 hour', ts, '2000-01-01'), count(*), sum(value),"
           " min(value), max(value), min(ts), max(ts) FROM signals_numeric GROUP BY 1, 2, 3 ORDER BY 1, 2, 3")
    rolled = ("SELECT vehicle_id, name, hour, samples, sum, min, max, first_ts, last_ts"
              " FROM signals_hourly ORDER BY 1, 2, 3")
    with psycopg.connect(database_url) as conn:
        assert scalar(database_url, "SELECT count(*) FROM rollup_invalidations") != 0
        # hours still open are left for later; rolling up to an hour ahead includes them
        conn.execute("SELECT motus_refresh_rollups(now() - INTERVAL '2 hours')")
        assert conn.execute(rolled).fetchall() == []
        assert conn.execute("SELECT motus_refresh_rollups(now() + INTERVAL '1 hour')").fetchone() != (0,)
        first = conn.execute(rolled).fetchall()
        assert first and first == [tuple(pytest.approx(v) if isinstance(v, float) else v for v in row)
                                   for row in conn.execute(raw).fetchall()]
        conn.commit()
    store.write(accepted[40:], [])  # late readings for hours already rolled up
    store.close()
    with psycopg.connect(database_url) as conn:
        conn.execute("SELECT motus_refresh_rollups(now() + INTERVAL '1 hour')")
        conn.commit()
        after = conn.execute(rolled).fetchall()
        assert sum(row[3] for row in after) == scalar(database_url, "SELECT count(*) FROM signals_numeric")
        assert after == [tuple(pytest.approx(v) if isinstance(v, float) else v for v in row)
                         for row in conn.execute(raw).fetchall()]
        assert scalar(database_url, "SELECT count(*) FROM rollup_invalidations") == 0


@pytest.mark.plain_partitions
def test_housekeeping_keeps_partitions_ahead_and_drops_expired_ones(database_url):
    from ingest.store import PARTITIONS_AHEAD_DAYS, housekeeping

    today = datetime.now(UTC).date()
    expired = today - timedelta(days=400)
    with psycopg.connect(database_url) as conn:
        conn.execute("SELECT motus_ensure_daily_partitions(%s, %s)", (expired, expired))
        conn.commit()
        done = housekeeping(conn, today + timedelta(days=5))
        parts = {r[0] for r in conn.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
            " WHERE i.inhparent = 'signals_location'::regclass")}
    assert done is not None and done.partitions_dropped == 3 and done.partitions_created == 3 * 5
    assert f"signals_location_{expired:%Y%m%d}" not in parts
    assert f"signals_location_{today + timedelta(days=5 + PARTITIONS_AHEAD_DAYS):%Y%m%d}" in parts
    assert f"signals_location_{today - timedelta(days=7):%Y%m%d}" in parts  # inside the retention


def test_only_one_worker_does_housekeeping_at_a_time(database_url):
    from ingest.store import housekeeping

    with psycopg.connect(database_url) as holder, psycopg.connect(database_url) as other:
        holder.execute("SELECT pg_advisory_xact_lock(hashtext('motus_housekeeping'))")
        assert housekeeping(other, datetime.now(UTC).date()) is None
        holder.rollback()
        assert housekeeping(other, datetime.now(UTC).date()) is not None


def test_the_template_takes_no_connections_so_clones_never_find_it_busy(local_stack, database_url):
    from tests.fixtures.stack import TEMPLATE

    with psycopg.connect(local_stack.database_url_for("postgres")) as conn:
        row = conn.execute("SELECT datallowconn, datistemplate FROM pg_database WHERE datname = %s",
                           (TEMPLATE,)).fetchone()
    assert row == (False, True)
    with pytest.raises(psycopg.OperationalError, match="not currently accepting connections"):
        psycopg.connect(local_stack.database_url_for(TEMPLATE)).close()


def test_the_retention_setting_is_read_when_used(local_stack, database_url):
    import subprocess
    import sys

    env = {**local_stack.env(), "MOTUS_DATABASE_URL": database_url}

    def retention(*args: str) -> str:
        result = subprocess.run([sys.executable, "-m", "motus", "db", "retention", *args],
                                capture_output=True, text=True, timeout=60, env={**os.environ, **env})
        assert result.returncode == 0, result.stderr
        return result.stdout.strip()

    assert retention() == "raw readings are kept 395 days"
    assert retention("30") == "raw readings are kept 30 days"
    assert scalar(database_url, "SELECT motus_raw_retention()") == timedelta(days=30)
    cutoff = datetime.now(UTC).date() - timedelta(days=31)
    with psycopg.connect(database_url) as conn:
        conn.execute("SELECT motus_ensure_daily_partitions(%s, %s)", (cutoff, cutoff))
        conn.commit()
        dropped = conn.execute("SELECT motus_drop_expired_partitions()").fetchone()
    assert dropped == ((0,) if local_stack.timescaledb else (3,))  # past 30 days now (plain path)


def test_refused_readings_are_quarantined_once_with_their_event_and_place(database_url):
    """The event is stored with its good readings; each refused one is a quarantine row of its
    own (event id, place in data.signals, the reading as it came); a copy adds nothing."""
    from protocol.envelope import SignalReading, build_event
    from protocol.signing import sign_document
    from simulators.fleet import encode

    cars = make_fleet(1, seed=14, drive_seconds=5)
    register(database_url, cars)
    car, now = cars[0], datetime.now(UTC)
    stamp = now.strftime("%Y-%m-%dT%H:%M:%S.123456789Z")
    event = build_event(device_id=car.device_id, boot_id="mixed", seq=0, time=now,
                        signals=[SignalReading(name="speed", timestamp=now, value=1)])
    document = event.to_wire()
    document["data"] = {"signals": [
        {"name": "speed", "timestamp": stamp, "value": 50},
        {"name": "speed", "timestamp": stamp, "value": 5000},
        {"name": "warpDriveFlux", "timestamp": stamp, "value": 1},
        {"name": "chassisAxleRow1WheelLeftTirePressure", "timestamp": stamp, "value": 231.5},
    ]}
    payload = encode(sign_document(document, car.topic, car.key))
    with psycopg.connect(database_url) as conn:
        accepted = process_message(car.topic, payload, DeviceDirectory(conn).lookup, load_catalog(), now)
    assert isinstance(accepted, Accepted)
    store = TelemetryStore(database_url)
    first = store.write([accepted], [])
    again = store.write([accepted], [])  # sent again: a duplicate, nothing more quarantined
    store.close()
    assert (first.events_stored, first.readings_stored, first.readings_refused) == (
        1, 2, {"out_of_range": 1, "unknown_signal": 1})
    assert (again.events_stored, again.duplicates, again.readings_refused) == (0, 1, {})
    with psycopg.connect(database_url) as conn:
        rows = conn.execute("SELECT event_id, reading, reason, payload FROM quarantine ORDER BY reading"
                            ).fetchall()
        kept = conn.execute("SELECT name, value, ts FROM signals_numeric ORDER BY name").fetchall()
    assert [(e, i, r) for e, i, r, _ in rows] == [
        ("mixed:0", 1, "out_of_range"), ("mixed:0", 2, "unknown_signal")]
    assert bytes(rows[0][3]) == b'{"name":"speed","timestamp":"' + stamp.encode() + b'","value":5000}'
    assert [(n, v) for n, v, _ in kept] == [("chassisAxleRow1WheelLeftTirePressure", 231.5), ("speed", 50.0)]
    assert {ts.microsecond for _, _, ts in kept} == {123456}  # nine digits kept to the microsecond
    assert scalar(database_url, "SELECT signal_count FROM telemetry_events") == 2
