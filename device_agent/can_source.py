"""The CAN source: OBD-II polling over ISO-TP and/or passive DBC decoding on one python-can bus."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime

import can

from device_agent.agent import ReadingQueue, utc_now
from device_agent.backoff import Backoff
from device_agent.can_obd import CanObdClient
from device_agent.dbc import DbcDecoder
from device_agent.errors import AdapterError
from device_agent.obd_poller import emit, poll_car
from device_agent.polling import ObdPlan

log = logging.getLogger(__name__)


class CanSource:
    name = "can"

    def __init__(
        self,
        open_bus: Callable[[], can.BusABC],
        readings: ReadingQueue,
        *,
        plan: ObdPlan | None = None,
        decoder: DbcDecoder | None = None,
        on_vin: Callable[[str], None] = lambda vin: None,
        backoff: Backoff | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], datetime] = utc_now,
    ) -> None:
        if plan is None and decoder is None:
            raise ValueError("a CAN source needs OBD-II signals to poll, a DBC to decode, or both")
        self.open_bus = open_bus
        self.readings = readings
        self.plan = plan
        self.decoder = decoder
        self.on_vin = on_vin
        self.backoff = backoff or Backoff(initial_s=1.0, max_s=30.0)
        self.clock = clock
        self.wall = wall

    def _on_frame(self, msg: can.Message) -> None:
        assert self.decoder is not None
        if msg.is_error_frame or msg.is_remote_frame:
            return
        values = self.decoder.decode(msg.arbitration_id, bytes(msg.data), self.clock())
        if values:
            emit(self.readings, values, self.wall())

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                bus = self.open_bus()
            except (can.CanError, OSError, ValueError) as exc:
                self.backoff.wait_after("CAN", AdapterError(f"cannot open the CAN interface: {exc}"), stop)
                continue
            notifier = can.Notifier(bus, [], timeout=0.1)
            client = CanObdClient(bus, notifier) if self.plan else None
            try:
                if self.decoder is not None:
                    notifier.add_listener(self._on_frame)
                if client is not None:
                    self._poll(client, stop)
                else:
                    stop.wait()
            except AdapterError as exc:
                self.backoff.wait_after("CAN", exc, stop)
            finally:
                if client is not None:
                    client.close()
                notifier.stop()
                bus.shutdown()

    def _poll(self, client: CanObdClient, stop: threading.Event) -> None:
        assert self.plan is not None
        client.discover()
        self.backoff.reset()
        poll_car(client, client.supported_pids, self.plan, self.readings, stop, clock=self.clock,
                 wall=self.wall, on_vin=self.on_vin)
