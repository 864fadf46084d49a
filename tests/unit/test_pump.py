"""The agent's pump against a link that does what the test says: events leave the spool only
when a receipt settles them, unsettled ones are sent again after a growing wait, and with
receipts off the broker's acknowledgement suffices."""

import json
from datetime import UTC, datetime

import pytest

from device_agent.agent import Pump, ReadingQueue, ReceiptWait
from device_agent.events import EventBuilder
from device_agent.link import Ack
from device_agent.spool import Spool
from protocol.envelope import SignalReading
from protocol.receipts import BootReceipt
from protocol.signing import private_key_from_seed

BOOT = "b00t"


class ScriptedLink:
    def __init__(self, *, receipts: bool = True) -> None:
        self.connected = self.ready = True
        self.receipts = receipts
        self.published: list[tuple[int, str]] = []  # (mid, event id)
        self.acks: list[Ack] = []
        self.incoming: list[BootReceipt] = []
        self._mid = 0
        self._acked: set[int] = set()

    def service(self, _timeout_s: float) -> None:
        pass

    def publish(self, _topic: str, payload: bytes) -> int:
        self._mid += 1
        self.published.append((self._mid, json.loads(payload)["id"]))
        return self._mid

    def ack_all(self) -> None:
        """The broker acknowledges everything published and not acknowledged yet."""
        self.acks += [Ack(mid, None) for mid, _ in self.published if mid not in self._acked]
        self._acked |= {mid for mid, _ in self.published}

    def take_acks(self) -> list[Ack]:
        acks, self.acks = self.acks, []
        return acks

    def take_receipts(self) -> list[BootReceipt]:
        receipts, self.incoming = self.incoming, []
        return receipts

    def publish_status(self) -> None:
        pass

    def close(self) -> None:
        self.connected = self.ready = False


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def rig(tmp_path):
    def make(*, receipts: bool = True, window: int = 100, events: int = 5):
        link, clock = ScriptedLink(receipts=receipts), Clock()
        spool = Spool(tmp_path / "s.sqlite", max_bytes=10**7, durable=False)
        builder = EventBuilder("dev-pump", private_key_from_seed(b"p" * 32), BOOT)
        at = datetime(2026, 11, 30, 12, tzinfo=UTC)
        for i in range(events):
            spool.append(builder.build([SignalReading(name="speed", timestamp=at, value=i)], at))
        pump = Pump(spool=spool, link=link, builder=builder, readings=ReadingQueue(), window=window,
                    receipt_wait=ReceiptWait(initial_s=10, max_s=40), monotonic=clock)
        return pump, link, spool, clock
    return make


def sent_ids(link: ScriptedLink) -> list[str]:
    return [event_id for _, event_id in link.published]


def test_the_broker_acknowledging_is_not_enough_the_receipt_is(rig):
    pump, link, spool, _ = rig()
    pump.step()
    assert sent_ids(link) == [f"{BOOT}:{i}" for i in range(5)]
    link.ack_all()
    pump.step()
    assert spool.stats().events == 5  # the broker has them; the network did not say stored
    link.incoming.append(BootReceipt(BOOT, stored=[(0, 2)], refused={4: "out_of_range"}))
    pump.step()
    assert [json.loads(e.payload)["id"] for e in spool.pending(0, 10)] == [f"{BOOT}:3"]
    assert (pump.counters.settled_events, pump.counters.refused_by_network) == (4, 1)


def test_what_no_receipt_settles_is_sent_again_after_a_growing_wait(rig):
    pump, link, spool, clock = rig(events=3)
    pump.step()
    link.ack_all()
    pump.step()
    clock.now += 9.9
    pump.step()
    assert len(link.published) == 3  # not yet
    for wait in (10, 20, 40, 40):  # doubled each round without a receipt, up to the max
        clock.now += wait
        pump.step()
        link.ack_all()
        pump.step()
    assert sent_ids(link) == [f"{BOOT}:{i}" for i in range(3)] * 5
    assert pump.counters.resent_events == 12
    link.incoming.append(BootReceipt(BOOT, stored=[(0, 2)]))
    pump.step()
    assert spool.stats().events == 0
    clock.now += 100
    pump.step()
    assert len(link.published) == 15  # settled: never sent again


def test_a_receipt_that_overtakes_the_broker_acknowledgement_settles_the_event(rig):
    pump, link, spool, clock = rig(events=2)
    pump.step()
    link.incoming.append(BootReceipt(BOOT, stored=[(0, 1)]))
    pump.step()
    link.ack_all()
    pump.step()
    clock.now += 1000
    pump.step()
    assert spool.stats().events == 0 and len(link.published) == 2


def test_the_window_counts_events_waiting_for_their_receipt(rig):
    pump, link, _spool, _ = rig(window=3, events=5)
    pump.step()
    link.ack_all()
    pump.step()
    assert len(link.published) == 3  # acknowledged by the broker, still unsettled: no room
    link.incoming.append(BootReceipt(BOOT, stored=[(0, 0)]))
    pump.step()
    assert sent_ids(link) == [f"{BOOT}:{i}" for i in range(4)]


def test_with_receipts_off_the_broker_acknowledgement_settles(rig):
    pump, link, spool, _ = rig(receipts=False)
    pump.step()
    link.ack_all()
    pump.step()
    assert spool.stats().events == 0


def test_a_broker_that_refuses_receipts_falls_back_to_acknowledgements(rig):
    pump, link, spool, _ = rig()
    pump.step()
    link.ack_all()
    pump.step()
    assert spool.stats().events == 5
    link.receipts = False  # the subscription was refused (a broker set up before receipts)
    pump.step()
    assert spool.stats().events == 0


def test_while_the_network_is_silent_only_a_probe_is_sent_again(rig):
    pump, link, spool, clock = rig(events=30)
    pump.step()
    link.ack_all()
    pump.step()
    clock.now += 10
    pump.step()
    assert sent_ids(link)[30:] == [f"{BOOT}:{i}" for i in range(20)]  # the oldest 20 only
    link.ack_all()
    pump.step()
    link.incoming.append(BootReceipt(BOOT, stored=[(0, 4)]))  # the network is back
    pump.step()
    assert sorted(sent_ids(link)[50:], key=lambda e: int(e.split(":")[1])) == [
        f"{BOOT}:{i}" for i in range(20, 30)]  # everything else overdue, at once
    assert spool.stats().events == 25
