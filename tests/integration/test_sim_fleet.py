"""`motus sim fleet`: registered cars publishing at a given rate, through to the database."""

import os
import subprocess
import sys
from datetime import UTC, datetime

from simulators.fleet import make_fleet
from simulators.publisher import Publisher, publish_paced
from tests.fixtures.helpers import scalar


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


class Recorder(Publisher):
    def __init__(self, clock: FakeClock) -> None:
        super().__init__(lambda car: None)  # type: ignore[arg-type,return-value]
        self.clock = clock
        self.sent: list[tuple[str, float]] = []

    def publish(self, car, topic, payload):
        self.sent.append((car.device_id, self.clock.now))

    def flush(self, timeout_s: float = 60.0) -> None:
        pass


def test_paced_publishing_keeps_the_rate_and_takes_cars_in_turn():
    clock = FakeClock()
    recorder = Recorder(clock)
    cars = make_fleet(4, seed=2, drive_seconds=100)
    run = publish_paced(recorder, cars, events_per_s=40, seconds=2.5,
                        start=datetime(2026, 11, 21, tzinfo=UTC), clock=clock, sleep=clock.sleep)
    assert run.published == 100 == len(recorder.sent)
    assert recorder.sent[99][1] == 99 / 40
    assert [device for device, _ in recorder.sent[:8]] == [c.device_id for c in cars] * 2
    assert run.max_lag_s == 0


def test_sim_fleet_registers_cars_and_their_events_are_stored(local_stack, database_url, running_ingest):
    env = {**os.environ, **local_stack.env(), "MOTUS_DATABASE_URL": database_url}
    result = subprocess.run(
        [sys.executable, "-m", "motus", "sim", "fleet", "--cars", "3", "--rate", "60", "--seconds", "2",
         "--seed", "11"], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "published 120 events from 3 cars" in result.stdout
    assert "the network's receipts settled 120 of 120 events" in result.stdout
    assert scalar(database_url, "SELECT count(*) FROM telemetry_events") == 120  # receipts follow commits
    assert scalar(database_url, "SELECT count(DISTINCT device_id) FROM telemetry_events") == 3
    assert scalar(database_url, "SELECT count(*) FROM quarantine") == 0


def test_sim_fleet_says_what_no_ingest_confirmed(local_stack, database_url):
    """No ingest subscribed: the broker keeps nothing, and a simulated car has no spool. The
    fleet says so, and how to avoid it, instead of leaving the user with an empty database."""
    env = {**os.environ, **local_stack.env(), "MOTUS_DATABASE_URL": database_url}
    result = subprocess.run(
        [sys.executable, "-m", "motus", "sim", "fleet", "--cars", "2", "--rate", "20", "--seconds", "1",
         "--seed", "12", "--settle-s", "2"], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 3, result.stdout + result.stderr
    assert "the network's receipts settled 0 of 20 events" in result.stdout
    assert "Is `motus ingest run` running?" in result.stderr
