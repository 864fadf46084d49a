"""Cores read no clock of their own: the time they stamp or wait by is the one passed in."""

from __future__ import annotations

import queue
import threading
from datetime import UTC, datetime

from connections.mqtt_bulk import Publish
from device_agent.agent import ReadingQueue
from device_agent.obd import Mode01Value
from device_agent.obd_poller import poll_car
from device_agent.polling import ObdPlan
from ingest.consumer import Arrival, IngestWorker
from ingest.settings import IngestSettings

WHEN = datetime(2031, 5, 6, 7, 8, 9, 123000, tzinfo=UTC)


class OneAnswerCar:
    """Answers one speed reading, then asks the poller to stop."""

    def __init__(self, stop: threading.Event) -> None:
        self.stop = stop

    def read_vin(self) -> str | None:
        return None

    def read_dtcs(self) -> list[str] | None:
        return None

    def read_mode01(self, pid: int, wanted: set[str] | None = None) -> list[Mode01Value] | None:
        self.stop.set()
        return [Mode01Value("speed", 42.0)]


def test_polled_readings_carry_the_injected_wall_clock():
    stop = threading.Event()
    readings = ReadingQueue()
    ticks = iter(range(1000))
    poll_car(OneAnswerCar(stop), [0x0D], ObdPlan({"speed": 1.0}, dtc_interval_s=3600), readings, stop,
             clock=lambda: float(next(ticks)), wall=lambda: WHEN, on_vin=lambda _vin: None)
    taken = readings.take_all()
    assert [(r.name, r.value, r.timestamp) for r in taken] == [("speed", 42.0, WHEN)]


def test_a_batch_closes_by_the_injected_monotonic_clock():
    """Two messages arrived at t=1e9 on the worker's clock, which now reads 1e9 + 11: past their
    batch's deadline (10 s after the oldest), so the batch closes at once. By the real clock
    (far below 1e9) the deadline would be years away and the batch would wait for more."""
    settings = IngestSettings(ingest_batch_seconds=10, ingest_batch_events=1000)
    worker = IngestWorker(settings, monotonic=lambda: 1e9 + 11)
    worker._inbox.put(Arrival(1e9, [Publish("t", b"{}", mid, 1, False) for mid in (1, 2)]))
    batches: queue.Queue[list[Publish]] = queue.Queue()
    taker = threading.Thread(target=lambda: batches.put(worker._next_batch()), daemon=True)
    taker.start()
    taker.join(timeout=5)
    assert not taker.is_alive(), "the batch waited on the real clock"
    assert [d.mid for d in batches.get_nowait()] == [1, 2]
