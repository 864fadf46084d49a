"""The ingest under faults, as real processes under a live fleet: workers killed with SIGKILL
mid-batch, again and again, and PostgreSQL restarted under it. Nothing lost, nothing doubled."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from migrations.runner import upgrade
from motus.demo import ingest_metric
from motus.stack import LocalStack, StackInfo, free_port
from simulators.fleet import PacedRun, make_fleet, publish_paced
from tests.fixtures.helpers import publisher, register, scalar, wait_until

pytestmark = pytest.mark.e2e


def ingest_env(stack: StackInfo, database_url: str, tag: str) -> dict[str, str]:
    return {**os.environ, **stack.env(), "MOTUS_DATABASE_URL": database_url,
            "MOTUS_INGEST_GROUP": f"rel{tag}", "MOTUS_INGEST_CLIENT_ID": f"rel-ingest-{tag}",
            "MOTUS_INGEST_BATCH_SECONDS": "0.1"}


def spawn_ingest(env: dict[str, str], log: Path, *args: str) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen([sys.executable, "-m", "motus", "ingest", "run", *args], env=env,
                                stdout=out, stderr=subprocess.STDOUT)


def stop(process: subprocess.Popen[bytes]) -> int:
    process.send_signal(signal.SIGTERM)
    return process.wait(timeout=60)


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
    log = tmp_path / "ingest.log"
    metrics_port = free_port()
    env = {**ingest_env(local_stack, database_url, "kill"), "MOTUS_INGEST_METRICS_PORT": str(metrics_port)}
    supervisor = spawn_ingest(env, log, "--workers", "2")
    try:
        wait_until(lambda: log.read_text().count("ingesting as") >= 2, 60, "two workers subscribed")
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
        assert log.read_text().count("starting it again") >= kills
        # the killed workers had messages in hand: the broker delivered those again
        received = ingest_metric(metrics_port, "motus_ingest_received_events_total")
        assert received > fleet.total
    finally:
        assert stop(supervisor) == 0, log.read_text()[-3000:]


@pytest.fixture
def own_stack(stack_dir: Path) -> Iterator[tuple[LocalStack, StackInfo, str]]:
    stack = LocalStack(stack_dir)
    info = stack.up()
    with psycopg.connect(info.database_url_for("postgres"), autocommit=True) as conn:
        conn.execute("CREATE DATABASE restart_drill")
    url = info.database_url_for("restart_drill")
    upgrade(url)
    yield stack, info, url


def test_postgres_restart_during_ingest_waits_and_loses_nothing(own_stack, tmp_path):
    stack, info, database_url = own_stack
    log = tmp_path / "ingest.log"
    ingest = spawn_ingest(ingest_env(info, database_url, "pg"), log)
    try:
        wait_until(lambda: "ingesting from" in log.read_text(), 60, "ingest to subscribe")
        with LiveFleet(info, database_url, cars=10, rate=200, seconds=12, seed=61) as fleet:
            wait_until(lambda: scalar(database_url, "SELECT count(*) FROM telemetry_events") != 0,
                       30, "ingest under way")
            stack.restart_postgres(pause_s=3.0)
            assert fleet.publishing  # the fleet kept sending while the database was gone
        assert_each_event_once(database_url, fleet.total)
        assert "database unavailable" in log.read_text() or "registry unavailable" in log.read_text()
    finally:
        assert stop(ingest) == 0, log.read_text()[-3000:]
