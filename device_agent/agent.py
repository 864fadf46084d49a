"""The agent's pump: readings from the sources -> signed events in the spool -> the broker.

One thread owns the link; sources run in their own threads and hand readings over through a
bounded queue (``ReadingQueue``) or, when they must answer only once a reading is durable (the
phone bridge), append to the spool themselves (``DurableSink``).
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from device_agent.events import EventBuilder
from device_agent.link import Ack
from device_agent.spool import Spool
from protocol.envelope import SignalReading
from protocol.receipts import BootReceipt

log = logging.getLogger(__name__)


def utc_now() -> datetime:
    return datetime.now(UTC)


class ReadingQueue:
    """Where polling sources put readings; the pump batches them into one event per interval.

    Bounded: if the pump stalls (a full disk), the oldest readings waiting here are dropped and
    counted rather than the agent growing without limit."""

    def __init__(self, max_batches: int = 10_000) -> None:
        self._queue: queue.Queue[Sequence[SignalReading]] = queue.Queue(max_batches)

    def put(self, readings: Sequence[SignalReading]) -> None:
        if not readings:
            return
        while True:
            try:
                self._queue.put_nowait(readings)
                return
            except queue.Full:
                with contextlib.suppress(queue.Empty):
                    dropped = len(self._queue.get_nowait())
                    log.warning("readings wait too long for the spool: dropped the oldest %d", dropped)

    def take_all(self) -> list[SignalReading]:
        out: list[SignalReading] = []
        while True:
            try:
                out.extend(self._queue.get_nowait())
            except queue.Empty:
                return out


class Link(Protocol):
    """What the pump needs of the broker connection (device_agent.link.BrokerLink)."""

    connected: bool
    receipts: bool

    @property
    def ready(self) -> bool: ...
    def service(self, timeout_s: float) -> None: ...
    def publish(self, topic: str, payload: bytes) -> int: ...
    def publish_status(self) -> None: ...
    def take_acks(self) -> list[Ack]: ...
    def take_receipts(self) -> list[BootReceipt]: ...
    def close(self) -> None: ...


@dataclass
class DurableSink:
    """Signs ``readings`` into an event and commits it to the spool before returning."""

    builder: EventBuilder
    spool: Spool
    clock: Callable[[], datetime] = utc_now

    def commit(self, readings: Sequence[SignalReading]) -> list[str]:
        events = self.builder.build(readings, self.clock())
        self.spool.append(events)
        return [e.event_id for e in events]


@dataclass
class PumpCounters:
    spooled_events: int = 0
    spooled_readings: int = 0
    published_events: int = 0
    acked_events: int = 0
    refused_events: int = 0
    #: Events a receipt settled: stored by the network, or refused for good (below).
    settled_events: int = 0
    refused_by_network: int = 0
    #: Events published again because no receipt covered them in time.
    resent_events: int = 0


@dataclass(frozen=True, slots=True)
class ReceiptWait:
    """How long an event the broker acknowledged may wait for its receipt before it is sent
    again; the wait doubles after each round without any receipt (the ingest is away), up to
    ``max_s``, and is back to ``initial_s`` with the next receipt. A round after a silent wait
    sends only the oldest ``probe_events``: while the network is away a fleet's re-sends stay
    small, and the probe's receipt says it is back (then everything overdue goes at once)."""

    initial_s: float = 10.0
    max_s: float = 60.0
    probe_events: int = 20


class Pump:
    """Moves readings to the spool every ``event_interval_s`` and spooled events to the broker,
    keeping at most ``window`` events with the link that no receipt settled yet (in flight to
    the broker, or acknowledged by it and waiting for their receipt)."""

    def __init__(
        self,
        *,
        spool: Spool,
        link: Link,
        builder: EventBuilder,
        readings: ReadingQueue,
        event_interval_s: float = 1.0,
        window: int = 500,
        status_changed: threading.Event | None = None,
        receipt_wait: ReceiptWait = ReceiptWait(),
        clock: Callable[[], datetime] = utc_now,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.spool = spool
        self.link = link
        self.builder = builder
        self.readings = readings
        self.event_interval_s = event_interval_s
        self.window = window
        self._clock = clock
        self._monotonic = monotonic
        self._buffer: list[SignalReading] = []
        self._next_flush = monotonic() + event_interval_s
        self._inflight: dict[int, int] = {}  # MQTT packet id -> spool row id
        self._inflight_rows: set[int] = set()
        #: Spool row id -> when the broker acknowledged it; waiting for its receipt.
        self._awaiting: dict[int, float] = {}
        #: Rows a receipt settled while their PUBACK was still due (the receipt overtook it).
        self._settled_early: set[int] = set()
        self._receipt_wait = receipt_wait
        self._wait_s = receipt_wait.initial_s
        self._heard = False  # a receipt arrived since the last round of re-sends
        self._last_handed = 0  # highest spool row id handed to the link
        self._paused_until = 0.0
        self.counters = PumpCounters()
        #: Set (by any thread) when the retained status should be published again.
        self.status_changed = status_changed or threading.Event()

    def flush_readings(self) -> None:
        """Sign and spool whatever readings are waiting (also called on shutdown)."""
        self._buffer.extend(self.readings.take_all())
        if self._buffer:
            events = self.builder.build(self._buffer, self._clock())
            self.spool.append(events)
            self.counters.spooled_events += len(events)
            self.counters.spooled_readings += len(self._buffer)
            self._buffer = []

    def step(self, io_timeout_s: float = 0.02) -> None:
        if self._monotonic() >= self._next_flush:
            self.flush_readings()
            self._next_flush = self._monotonic() + self.event_interval_s
        self.link.service(io_timeout_s)
        if self.status_changed.is_set() and self.link.connected:
            self.status_changed.clear()
            self.link.publish_status()
        self._settle_acks()
        self._settle_receipts()
        if self.link.ready and self._monotonic() >= self._paused_until:
            self._resend_overdue()
            self._hand_over()

    def _settle_acks(self) -> None:
        done = []
        now = self._monotonic()
        for ack in self.link.take_acks():
            row_id = self._inflight.pop(ack.mid, None)
            if row_id is None:
                continue  # the status message
            self._inflight_rows.discard(row_id)
            if row_id in self._settled_early:
                self._settled_early.discard(row_id)
                continue
            if ack.refused is None:
                if self.link.receipts:
                    self._awaiting[row_id] = now  # the broker has it; the spool keeps it
                else:
                    done.append(row_id)
                continue
            # Kept in the spool: refused now (revoked, quota) is not lost; retried later.
            self.counters.refused_events += 1
            log.error("broker refused spooled event (row %d): %s; pausing publishes", row_id, ack.refused)
            self._last_handed = min(self._last_handed, row_id - 1)
            self._paused_until = self._monotonic() + 30.0
        if done:
            self.spool.delete(done)
            self.counters.acked_events += len(done)

    def _settle_receipts(self) -> None:
        """Forget what the network's receipts settled (stored, or refused with a reason)."""
        receipts = self.link.take_receipts()
        for receipt in receipts:
            for seq, reason in receipt.refused.items():
                log.error("the network refused event %s:%d for good: %s (it is in its quarantine)",
                          receipt.boot, seq, reason)
            self.counters.refused_by_network += len(receipt.refused)
            for row_id in self.spool.settle(receipt.boot, receipt.settled_ranges()):
                self.counters.settled_events += 1
                if self._awaiting.pop(row_id, None) is None and row_id in self._inflight_rows:
                    self._settled_early.add(row_id)
        if receipts:
            self._wait_s = self._receipt_wait.initial_s
            self._heard = True
        if not self.link.receipts and self._awaiting:
            # Receipts were refused after events already waited for them: PUBACK suffices now.
            self.spool.delete(list(self._awaiting))
            self._awaiting.clear()

    def _resend_overdue(self) -> None:
        """Send again what the broker took but no receipt settled within the wait (the broker
        lost it, or no ingest was subscribed); the ingest stores a copy once and answers it."""
        if not self._awaiting:
            return
        now = self._monotonic()
        overdue = sorted(row for row, acked_at in self._awaiting.items() if now - acked_at >= self._wait_s)
        if not overdue:
            return
        if not self._heard:
            overdue = overdue[:self._receipt_wait.probe_events]
        self._heard = False
        for row_id in overdue:
            del self._awaiting[row_id]
        events = self.spool.events(overdue)
        for event in events:
            mid = self.link.publish(event.topic, event.payload)
            self._inflight[mid] = event.row_id
            self._inflight_rows.add(event.row_id)
        self.counters.resent_events += len(events)
        log.info("no receipt within %.0f s for %d events: sent them again", self._wait_s, len(events))
        self._wait_s = min(self._wait_s * 2, self._receipt_wait.max_s)

    def _hand_over(self) -> None:
        room = self.window - len(self._inflight) - len(self._awaiting)
        if room <= 0:
            return
        for event in self.spool.pending(self._last_handed, room):
            if event.row_id in self._inflight_rows or event.row_id in self._awaiting:
                continue  # still with the link after a refusal rewind
            mid = self.link.publish(event.topic, event.payload)
            self._inflight[mid] = event.row_id
            self._inflight_rows.add(event.row_id)
            self._last_handed = event.row_id
            self.counters.published_events += 1

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            self.step()

    def finish(self, grace_s: float = 2.0) -> None:
        """Spool what is waiting, then give the network ``grace_s`` to take and settle what it
        can; the rest stays in the spool and is sent at the next start. Then say offline."""
        self.flush_readings()
        deadline = self._monotonic() + grace_s
        while self.link.ready and self._monotonic() < deadline:
            self._hand_over()
            if not self._inflight and not self._awaiting:
                break
            self.link.service(0.05)
            self._settle_acks()
            self._settle_receipts()
        self.link.close()
