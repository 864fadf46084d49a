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

from device_agent.events import EventBuilder
from device_agent.link import BrokerLink
from device_agent.spool import Spool
from protocol.envelope import SignalReading

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


class Pump:
    """Moves readings to the spool every ``event_interval_s`` and spooled events to the broker,
    keeping at most ``window`` unacknowledged messages with the link."""

    def __init__(
        self,
        *,
        spool: Spool,
        link: BrokerLink,
        builder: EventBuilder,
        readings: ReadingQueue,
        event_interval_s: float = 1.0,
        window: int = 500,
        status_changed: threading.Event | None = None,
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
        if self.link.connected and self._monotonic() >= self._paused_until:
            self._hand_over()

    def _settle_acks(self) -> None:
        done = []
        for ack in self.link.take_acks():
            row_id = self._inflight.pop(ack.mid, None)
            if row_id is None:
                continue  # the status message
            self._inflight_rows.discard(row_id)
            if ack.refused is None:
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

    def _hand_over(self) -> None:
        room = self.window - len(self._inflight)
        if room <= 0:
            return
        for event in self.spool.pending(self._last_handed, room):
            if event.row_id in self._inflight_rows:
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
        """Spool what is waiting, then give the broker ``grace_s`` to take and acknowledge what
        it can; the rest stays in the spool for the next start. Then say offline."""
        self.flush_readings()
        deadline = self._monotonic() + grace_s
        while self.link.connected and self._monotonic() < deadline:
            self._hand_over()
            if not self._inflight:
                break
            self.link.service(0.05)
            self._settle_acks()
        self.link.close()
