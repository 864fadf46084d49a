"""The ingest under faults, as real processes under a live fleet: workers killed with SIGKILL
mid-batch, again and again, and PostgreSQL restarted under it. Nothing lost, nothing doubled."""

from __future__ import annotations

import os
import random
import signal
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from migrations.runner import upgrade
from simulators.fleet import make_fleet
from simulators.publisher import PacedRun, publish_paced
from stack.local import LocalStack, StackInfo
from stack.services import scrape, start_ingest
from tests.fixtures.helpers import publisher, register, scalar, wait_until

pytestmark = pytest.mark.e2e


def ingest_settings(database_url: str, tag: str) -> dict[str, str]:
    return {"database_url": database_url, "ingest_group": f"rel{tag}",
            "ingest_client_id": f"rel-ingest-{tag}", "ingest_batch_seconds": "0.1"}


def worker_pids(supervisor: int) -> list[int]:
    """The supervisor's worker processes (multiprocessing spawn children, not its tracker)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if f"\nPPid:\t{supervisor}\n" in status and b"spawn_main" in cmdline:
            pids.append(int(entry.name))
    return pids


class LiveFleet:
    """Cars publishing at a steady rate from a thread, for the length of a test."""

    def __init__(self, stack: StackInfo, database_url: str, *, cars: int, rate: float, seconds: float,
                 seed: int) -> None:
        self.cars = make_fleet(cars, seed=seed, drive_seconds=10)
        register(database_url, self.cars, stack)
        self.total = int(rate * seconds)
        self._publisher = publisher(stack)
        start = datetime.now(UTC) - timedelta(seconds=seconds * rate / cars + 5)
        self.result: PacedRun | None = None
        self._thread = threading.Thread(target=self._run, args=(rate, seconds, start), daemon=True)

    def _run(self, rate: float, seconds: float, start: datetime) -> None:
        self.result = publish_paced(self._publisher, self.cars, events_per_s=rate, seconds=seconds,
                                    start=start)

    def __enter__(self) -> LiveFleet:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._thread.join(timeout=120)
        self._publisher.close()

    @property
    def publishing(self) -> bool:
        return self._thread.is_alive()


def assert_each_event_once(database_url: str, total: int) -> None:
    wait_until(lambda: scalar(database_url, "SELECT count(*) FROM telemetry_events") == total, 120,
               f"{total} events stored")
    assert scalar(database_url, "SELECT count(*) FROM signals_numeric") == total * 9  # no reading twice
    assert scalar(database_url, "SELECT count(*) FROM signals_location") == total
    assert scalar(database_url, "SELECT count(*) FROM quarantine") == 0


def test_workers_killed_mid_batch_again_and_again_lose_and_double_nothing(
        local_stack, database_url, tmp_path):
    supervisor = start_ingest(local_stack, tmp_path / "ingest.log", workers=2,
                              settings=ingest_settings(database_url, "kill"))
    try:
        rng = random.Random(5)
        kills = 0
        with LiveFleet(local_stack, database_url, cars=20, rate=400, seconds=16, seed=51) as fleet:
            while fleet.publishing:
                time.sleep(rng.uniform(1.5, 2.5))
                pids = worker_pids(supervisor.pid)
                if not pids or not fleet.publishing:
                    continue
                os.kill(rng.choice(pids), signal.SIGKILL)
                kills += 1
        assert fleet.result is not None
        assert kills >= 5
        assert_each_event_once(database_url, fleet.total)
        assert supervisor.log_text(0).count("starting it again") >= kills
        # the killed workers had messages in hand: the broker delivered those again
        received = scrape(supervisor.ports["metrics"]).value("motus_ingest_received_events_total")
        assert received > fleet.total
    finally:
        assert supervisor.stop() == 0, supervisor.log_text()


@pytest.fixture
def own_stack(stack_dir: Path, timescaledb: bool) -> Iterator[tuple[LocalStack, StackInfo, str]]:
    stack = LocalStack(stack_dir, timescaledb=timescaledb)
    info = stack.up()
    with psycopg.connect(info.database_url_for("postgres"), autocommit=True) as conn:
        conn.execute("CREATE DATABASE restart_drill")
    url = info.database_url_for("restart_drill")
    upgrade(url)
    yield stack, info, url


def test_postgres_restart_during_ingest_waits_and_loses_nothing(own_stack, tmp_path):
    stack, info, database_url = own_stack
    ingest = start_ingest(info, tmp_path / "ingest.log", settings=ingest_settings(database_url, "pg"))
    try:
        with LiveFleet(info, database_url, cars=10, rate=200, seconds=12, seed=61) as fleet:
            wait_until(lambda: scalar(database_url, "SELECT count(*) FROM telemetry_events") != 0,
                       30, "ingest under way")
            stack.restart_postgres(pause_s=3.0)
            assert fleet.publishing  # the fleet kept sending while the database was gone
        # the restarted server is on the stack's path still (TimescaleDB preloaded, or not)
        preloaded = scalar(database_url, "SHOW shared_preload_libraries")
        assert ("timescaledb" in str(preloaded)) == info.timescaledb
        assert_each_event_once(database_url, fleet.total)
        log = ingest.log_text(0)
        assert "database unavailable" in log or "registry unavailable" in log
    finally:
        assert ingest.stop() == 0, ingest.log_text()
