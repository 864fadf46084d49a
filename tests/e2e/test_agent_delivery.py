"""The agent never loses or duplicates a reading: kill -9 while spooling and while draining,
and a broker that is down for a minute. The agent runs as its own process (`motus agent run`)
with its phone bridge as the source, so the test knows exactly which readings the agent
acknowledged (it answers only once a reading is on disk)."""

import signal
import time
from collections import Counter
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

import httpx
import pytest

from device_agent.events import EventBuilder
from device_agent.spool import Spool
from protocol.envelope import SignalReading
from tests.fixtures.agent import AgentProcess, provision_agent, stored_markers
from tests.fixtures.helpers import scalar, wait_until
from tests.fixtures.proxy import TcpRelay


def post_many(agent: AgentProcess, client: httpx.Client, markers: range, acked: list[int]) -> None:
    for marker in markers:
        if agent.post(client, marker):
            acked.append(marker)


def assert_exactly_once(database_url: str, device_id: str, acked: list[int], timeout_s: float = 60) -> None:
    wait_until(lambda: len(stored_markers(database_url, device_id)) >= len(acked), timeout_s,
               f"{len(acked)} acknowledged readings in the database")
    stored = Counter(stored_markers(database_url, device_id))
    assert sorted(stored) == sorted(float(m) for m in acked), "lost or unexpected readings"
    assert max(stored.values()) == 1, "a reading was stored twice"


def test_kill_9_while_spooling_loses_nothing(local_stack, database_url, running_ingest, tmp_path: Path):
    device = provision_agent(local_stack, database_url, tmp_path, "spool@test.example")
    device.write_config(broker_reachable=False)
    acked: list[int] = []
    with httpx.Client() as client:
        for round_ in range(3):  # offline: every reading only in the spool; killed mid-stream
            agent = AgentProcess(device)
            post_many(agent, client, range(round_ * 1000, round_ * 1000 + 40), acked)
            agent.kill()
            assert not agent.post(client, -1)  # really gone
    assert len(acked) == 120
    device.write_config(broker_reachable=True)
    agent = AgentProcess(device)
    try:
        assert_exactly_once(database_url, device.device_id, acked)
        wait_until(lambda: Spool(device.directory / "spool.sqlite", max_bytes=1 << 30).stats().events == 0,
                   30, "an empty spool")
    finally:
        agent.stop()


def test_kill_9_while_draining_loses_nothing_and_stores_nothing_twice(
        local_stack, database_url, running_ingest, tmp_path: Path):
    device = provision_agent(local_stack, database_url, tmp_path, "drain@test.example")
    device.write_config(broker_reachable=True, window=200)
    # A week offline in small: 6000 signed events waiting in the spool, written as the agent does.
    spool_path = device.directory / "spool.sqlite"
    spool = Spool(spool_path, max_bytes=1 << 30, durable=False)
    builder = EventBuilder(device.device_id, device.key, "offline1")
    now = datetime.now(UTC)
    for start in range(0, 6000, 500):
        batch = []
        for marker in range(start, start + 500):
            readings = [
                SignalReading(name="powertrainTransmissionTravelledDistance", timestamp=now, value=marker),
                SignalReading(name="speed", timestamp=now, value=42)]
            batch += builder.build(readings, now)
        spool.append(batch)

    def waiting() -> int:
        return spool.stats().events

    def drained_to(threshold: int) -> bool:
        return waiting() <= threshold

    kills = 0
    for threshold in (5000, 3500, 2000):  # kill -9 three times in the middle of the drain
        agent = AgentProcess(device)
        wait_until(partial(drained_to, threshold), 60, "the drain to progress")
        agent.kill()
        kills += 1
        assert waiting() > 0, "the drain finished before the kill; the test proves nothing"
    agent = AgentProcess(device)
    try:
        assert_exactly_once(database_url, device.device_id, list(range(6000)), timeout_s=120)
        wait_until(lambda: waiting() == 0, 30, "an empty spool")
    finally:
        agent.stop()
        spool.close()
    events = scalar(database_url, "SELECT count(*) FROM telemetry_events WHERE device_id = %s",
                    (device.device_id,))
    assert events == 6000
    # Sent again after a kill: taken by the network but not yet settled by a receipt. Ingest
    # counts them as duplicates and stores nothing twice; at most one window per kill.
    assert scalar(database_url, "SELECT count(*) FROM quarantine WHERE device_id = %s",
                  (device.device_id,)) == 0
    assert running_ingest.worker.totals.resent <= kills * 200


@pytest.mark.slow
def test_broker_out_of_reach_for_a_minute_then_everything_arrives(
        local_stack, database_url, running_ingest, tmp_path: Path):
    """The agent reaches the broker through a relay that goes down for 60 s: it keeps taking
    readings, reconnects with backoff, and drains; the broker and the ingest run throughout."""
    relay = TcpRelay(("127.0.0.1", local_stack.mqtt_tls_port))
    device = provision_agent(local_stack, database_url, tmp_path, "outage@test.example")
    device.write_config(broker_reachable=True, broker_port=relay.port)
    agent = AgentProcess(device)
    acked: list[int] = []
    try:
        with httpx.Client() as client:
            post_many(agent, client, range(0, 10), acked)
            wait_until(lambda: len(stored_markers(database_url, device.device_id)) == 10, 30,
                       "the first readings")
            relay.down()
            outage_end = time.monotonic() + 60
            marker = 10
            while time.monotonic() < outage_end:
                post_many(agent, client, range(marker, marker + 1), acked)
                marker += 1
                time.sleep(0.5)
            assert len(stored_markers(database_url, device.device_id)) == 10  # nothing got through
            relay.up()
            post_many(agent, client, range(marker, marker + 10), acked)
        assert len(acked) > 120
        assert_exactly_once(database_url, device.device_id, acked, timeout_s=60)
    finally:
        agent.stop()
        relay.down()
    assert "reconnect" in agent.log_text() or "connection attempt" in agent.log_text()


def test_signals_in_quick_succession_stop_the_agent_cleanly(local_stack, database_url, tmp_path: Path):
    """As `timeout` or a double Ctrl-C sends them: the agent stops, saying what it did, every time."""
    device = provision_agent(local_stack, database_url, tmp_path, "signals@test.example")
    device.write_config(broker_reachable=False)
    for burst in (2, 3, 5):
        agent = AgentProcess(device)
        for _ in range(burst):
            agent.service.process.send_signal(signal.SIGTERM)
        assert agent.service.process.wait(timeout=30) == 0, agent.log_text()
        assert "polled" in agent.log_text()  # the summary it prints after a clean stop
