"""The TimescaleDB path (pytest --timescaledb): hypertables, their indexes, compression and
retention policies, and compressed chunks that answer exactly as uncompressed ones."""

from __future__ import annotations

import math
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest

from ingest.pipeline import Accepted, process_message
from ingest.store import TelemetryStore, housekeeping
from movement.store import prove_day
from protocol.catalog import load_catalog
from registry.directory import DeviceDirectory
from simulators.fleet import drive_events, make_fleet
from stack.probes import count, poll_until
from tests.fixtures.helpers import register, scalar
from tests.fixtures.scenarios import START
from tests.fixtures.stack import fresh_database
from tests.integration.test_movement_db import DAY, NOW, store_scenarios

pytestmark = [pytest.mark.integration, pytest.mark.timescaledb]

READING_TABLES = ("signals_numeric", "signals_text", "signals_location")


def rows(database_url: str, query: str, params: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    with psycopg.connect(database_url) as conn:
        return conn.execute(query.encode(), params).fetchall()


def test_reading_tables_are_hypertables_of_daily_chunks(database_url):
    dimensions = rows(database_url, "SELECT hypertable_name, column_name, time_interval FROM"
                      " timescaledb_information.dimensions ORDER BY hypertable_name")
    assert dimensions == [(t, "ts", timedelta(days=1)) for t in sorted(READING_TABLES)]


def test_hypertables_carry_our_index_and_not_the_default_one(database_url):
    for table in READING_TABLES:
        indexes = rows(database_url, "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = %s",
                       (table,))
        assert [name for name, _ in indexes] == [f"{table}_vehicle_name_ts"], indexes
        assert "(vehicle_id, name, ts DESC)" in str(indexes[0][1])


def test_compression_segments_by_vehicle_and_orders_by_signal_and_time(database_url):
    settings = rows(database_url, "SELECT hypertable::text, segmentby, orderby FROM"
                    " timescaledb_information.hypertable_compression_settings ORDER BY 1")
    assert settings == [(t, "vehicle_id", "name,ts DESC") for t in sorted(READING_TABLES)]


def test_policies_compress_after_two_days_and_drop_after_the_retention_setting(database_url):
    def policies() -> dict[tuple[str, str], dict[str, str]]:
        found = rows(database_url, "SELECT hypertable_name, proc_name, config FROM"
                     " timescaledb_information.jobs WHERE hypertable_name IS NOT NULL")
        return {(str(t), str(p)): c for t, p, c in found}  # type: ignore[misc]

    jobs = policies()
    for table in READING_TABLES:
        assert jobs[(table, "policy_compression")]["compress_after"] == "2 days"
        assert jobs[(table, "policy_retention")]["drop_after"] == "395 days"
    with psycopg.connect(database_url) as conn:
        conn.execute("UPDATE raw_retention SET keep = INTERVAL '30 days'")
        conn.commit()
        done = housekeeping(conn, START.date())
    assert done is not None and done.retention_policies_changed == 3
    jobs = policies()
    assert all(jobs[(t, "policy_retention")]["drop_after"] == "30 days" for t in READING_TABLES)
    with psycopg.connect(database_url) as conn:
        again = housekeeping(conn, START.date())
    assert again is not None and again.retention_policies_changed == 0  # already in line


def compress_everything(database_url: str) -> int:
    with psycopg.connect(database_url, autocommit=True) as conn:
        chunks = [row[0] for table in READING_TABLES for row in conn.execute(
            "SELECT show_chunks(%s::regclass)", (table,))]
        for chunk in chunks:
            conn.execute("SELECT compress_chunk(%s::regclass, if_not_compressed => true)", (chunk,))
    return len(chunks)


def proofs(database_url: str) -> list[tuple[object, ...]]:
    with psycopg.connect(database_url) as conn:
        prove_day(conn, DAY - timedelta(days=1))
        prove_day(conn, DAY)
    return rows(database_url, "SELECT vehicle_id, day, verdict, distance_km, gps_km, odometer_km, speed_km,"
                " odometer_first_km, odometer_last_km, fixes_used, fixes_dropped, checks, reasons"
                " FROM movement_proofs ORDER BY vehicle_id, day")


def rollups(database_url: str) -> list[tuple[object, ...]]:
    with psycopg.connect(database_url) as conn:
        conn.execute("INSERT INTO rollup_invalidations (hour) SELECT DISTINCT date_trunc('hour', ts)"
                     " FROM signals_numeric")
        conn.execute("SELECT motus_refresh_rollups(now() + INTERVAL '1 hour')")
        conn.commit()
    return rows(database_url, "SELECT * FROM signals_hourly ORDER BY vehicle_id, name, hour")


def test_compressed_chunks_prove_and_roll_up_the_same_and_still_take_late_readings(database_url):
    store_scenarios(database_url)
    before = (proofs(database_url), rollups(database_url))
    assert len(before[0]) > 10 and len(before[1]) > 10
    assert compress_everything(database_url) >= 4  # numeric and location readings, two days each
    compressed = scalar(database_url, "SELECT count(*) FROM timescaledb_information.chunks"
                        " WHERE is_compressed AND hypertable_name = 'signals_numeric'")
    assert isinstance(compressed, int) and compressed >= 2
    assert proofs(database_url) == before[0]  # the same, to the last bit
    # sums over the same readings in another order: equal but for the last bits of a double
    after = rollups(database_url)
    # (vehicle, name, hour, samples, sum, min, max, first, last): all equal but the sum
    assert [row[:4] + row[5:] for row in after] == [row[:4] + row[5:] for row in before[1]]
    assert all(math.isclose(a[4], b[4], rel_tol=1e-12)  # type: ignore[arg-type]
               for a, b in zip(after, before[1], strict=True))

    # a car back online after days: its readings land in the compressed chunk
    late = make_fleet(1, seed=91, drive_seconds=30)
    register(database_url, late)
    numeric_before = count(database_url, "SELECT count(*) FROM signals_numeric")
    store = TelemetryStore(database_url)
    with psycopg.connect(database_url) as conn:
        directory = DeviceDirectory(conn)
        accepted = [process_message(t, p, directory.lookup, load_catalog(), NOW)
                    for t, p in drive_events(late[0], START, 30)]
        assert all(isinstance(a, Accepted) for a in accepted)
        result = store.write([a for a in accepted if isinstance(a, Accepted)], [])
    store.close()
    assert result.events_stored == 30
    assert count(database_url, "SELECT count(*) FROM signals_numeric") == numeric_before + 30 * 9


def test_policy_jobs_of_several_databases_all_get_a_background_worker(local_stack):
    """Each database with the extension has its job scheduler, and each due policy job a
    background worker of its own: the stack leaves room for a few databases at once."""
    log = Path(local_stack.dir) / "postgres" / "postgres.log"
    start = log.stat().st_size
    databases = [fresh_database(local_stack) for _ in range(3)]
    urls = [next(db) for db in databases]
    try:
        stats = ("SELECT job_id, last_run_status, total_runs FROM timescaledb_information.job_stats"
                 " WHERE hypertable_name IS NOT NULL")
        runs_before = {url: {job: int(str(runs)) for job, _, runs in rows(url, stats)} for url in urls}
        for url in urls:
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute("SELECT alter_job(job_id, next_start => now()) FROM timescaledb_information.jobs"
                             " WHERE hypertable_name IS NOT NULL")

        def all_ran(url: str) -> bool:  # each job ran again, here, and succeeded
            now = rows(url, stats)
            before = runs_before[url]
            return len(now) == 6 and all(status == "Success" and int(str(runs)) > before.get(job, 0)
                                         for job, status, runs in now)

        # generous: on a loaded 2-core machine a job waits its turn for a worker and the CPU
        ran = poll_until(lambda: all(all_ran(url) for url in urls), 240)
        # on failure: each job's state and why a run failed (job_history, TimescaleDB 2.15+)
        assert ran, [(rows(url, "SELECT hypertable_name, last_run_status, total_runs, total_failures"
                                " FROM timescaledb_information.job_stats"),
                      rows(url, "SELECT job_id, proc_name, sqlerrcode, err_message"
                                " FROM timescaledb_information.job_history WHERE NOT succeeded"))
                     for url in urls]
    finally:
        for db in databases:
            next(db, None)  # the generator drops its database
    said = log.read_text(errors="replace")[start:]
    assert "out of background workers" not in said and "failed to start a background worker" not in said
