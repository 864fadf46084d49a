"""Nothing lost between the car and the database, whatever fails: real agent processes
(`motus agent run`, fed through their phone bridges), real Mosquitto, PostgreSQL and
`motus ingest run` on a stack of this module's own, and the cases of `motus bench faults`.
Each case asserts: readings stored == readings the cars measured, none twice."""

import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from bench.faults import CASES, CaseResult, CaseTiming, FaultStage, run_case
from device_agent.spool import Spool
from tests.fixtures.agent import AgentProcess, AgentUnderTest, provision_agent

pytestmark = pytest.mark.database_agnostic
TIMING = CaseTiming(load_before_s=3.0, between_kills_s=2.0, ingest_down_s=120.0, before_ingest_s=8.0)
CARS = 3


class AgentProcesses:
    """``CARS`` agents, each `motus agent run` in its own process; a feeder posts one marked
    reading to each every ``interval_s``; what an agent answered for is what it measured."""

    def __init__(self, stage: FaultStage, tag: str, interval_s: float = 0.25) -> None:
        self._devices: list[AgentUnderTest] = []
        self._agents: list[AgentProcess] = []
        for i in range(CARS):
            device = provision_agent(stage.info, stage.database_url, stage.root / tag / f"car{i}",
                                     f"car{i}.{tag}@faults.test.example")
            device.write_config(broker_reachable=True)
            self._devices.append(device)
            self._agents.append(AgentProcess(device))
        self.device_ids = [d.device_id for d in self._devices]
        self._measured: dict[str, list[int]] = {d: [] for d in self.device_ids}
        self._lock = threading.Lock()
        self._measuring = threading.Event()
        self._measuring.set()
        self._feeder = threading.Thread(target=self._feed, args=(interval_s,), daemon=True)
        self._feeder.start()

    def _feed(self, interval_s: float) -> None:
        marker = 0
        with httpx.Client() as client:
            while self._measuring.is_set():
                for agent in self._agents:
                    if agent.post(client, marker):
                        with self._lock:
                            self._measured[agent.device.device_id].append(marker)
                marker += 1
                time.sleep(interval_s)

    def measured(self) -> dict[str, list[int]]:
        with self._lock:
            return {device: list(markers) for device, markers in self._measured.items()}

    def stop_measuring(self) -> None:
        self._measuring.clear()
        self._feeder.join(timeout=10)

    def spooled_events(self) -> int:
        total = 0
        for device in self._devices:
            spool = Spool(device.directory / "spool.sqlite", max_bytes=1 << 30)
            total += spool.stats().events
            spool.close()
        return total

    def close(self) -> None:
        self.stop_measuring()
        for agent in self._agents:
            agent.stop()


@pytest.fixture(scope="module")
def stage() -> Iterator[FaultStage]:
    root = Path(tempfile.mkdtemp(prefix="motus-faults-"))
    root.chmod(0o711)
    stage = FaultStage.create(root / "faults")
    try:
        yield stage
    finally:
        stage.close()


def assert_exact(result: CaseResult) -> None:
    assert result.measured > 0
    assert (result.lost, result.duplicated) == (0, 0), result
    assert result.stored == result.measured
    assert result.spooled_left == 0


@pytest.mark.parametrize("name", ["broker_kill", "broker_term", "before_ingest", "persistence_lost"])
def test_every_reading_arrives_once(stage, name):
    assert_exact(run_case(stage, CASES[name], AgentProcesses, TIMING))


@pytest.mark.slow
def test_every_reading_arrives_once_with_the_ingest_away_for_two_minutes(stage):
    assert_exact(run_case(stage, CASES["ingest_down"], AgentProcesses, TIMING))
