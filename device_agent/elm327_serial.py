"""The thin serial driver for ELM327 adapters (pyserial: USB, Bluetooth rfcomm, or a pty), and
the polling source that reads a car through one."""

from __future__ import annotations

import contextlib
import logging
import termios
import threading
import time
from collections.abc import Callable
from datetime import datetime

import serial

from device_agent.agent import ReadingQueue, utc_now
from device_agent.backoff import Backoff
from device_agent.elm327 import ReplyFramer, encode_command
from device_agent.elm327_client import Elm327Client
from device_agent.errors import AdapterError
from device_agent.obd_poller import poll_car
from device_agent.polling import ObdPlan

log = logging.getLogger(__name__)

#: Rates ELM327 adapters and clones ship with, most common first (datasheet: 9600 or 38400 by
#: the BR pin; clones often 38400 or 115200; STN chips up to 500000+).
BAUD_CANDIDATES = (38400, 9600, 115200, 57600, 230400, 500000)
#: What a serial port raises when the adapter is unplugged mid-read (termios.error is not an OSError).
PORT_ERRORS = (serial.SerialException, OSError, termios.error)


class SerialTransport:
    def __init__(self, port: serial.Serial) -> None:
        self.port = port
        self.framer = ReplyFramer()

    @classmethod
    def open(cls, device: str, baudrate: int = 0, probe_timeout_s: float = 1.0) -> SerialTransport:
        """Open ``device``; with ``baudrate`` 0, find the rate the adapter answers at."""
        rates = (baudrate,) if baudrate else BAUD_CANDIDATES
        last_error = ""
        for rate in rates:
            try:
                port = serial.Serial(device, rate, timeout=0.05, write_timeout=2.0)
            except PORT_ERRORS as exc:
                raise AdapterError(f"cannot open {device}: {exc}") from exc
            transport = cls(port)
            try:
                # A bare CR ends any half-typed command; ATI answers without resetting.
                port.write(b"\r")
                time.sleep(0.05)
                port.reset_input_buffer()
                reply = transport.exchange("ATI", probe_timeout_s)
                if reply.strip():
                    log.info("adapter on %s answers at %d baud: %s", device, rate, reply.strip())
                    return transport
            except AdapterError as exc:
                last_error = str(exc)
            transport.close()
        raise AdapterError(f"no ELM327 answer on {device} at {', '.join(map(str, rates))} baud {last_error}")

    def exchange(self, command: str, timeout_s: float) -> str:
        self.framer.clear()
        try:
            self.port.reset_input_buffer()
            self.port.write(encode_command(command))
            deadline = time.monotonic() + timeout_s
            while time.monotonic() < deadline:
                chunk = self.port.read(self.port.in_waiting or 1)
                if chunk:
                    replies = self.framer.feed(chunk)
                    if replies:
                        return replies[-1]
        except PORT_ERRORS as exc:
            raise AdapterError(f"adapter on {self.port.port} went away: {exc}") from exc
        raise AdapterError(f"adapter on {self.port.port} did not answer {command} within {timeout_s}s")

    def close(self) -> None:
        with contextlib.suppress(*PORT_ERRORS):
            self.port.close()


class ElmSource:
    """Polls a car through an ELM327 adapter; reconnects (and re-initialises) when it drops."""

    name = "elm327"

    def __init__(
        self,
        open_transport: Callable[[], SerialTransport],
        plan: ObdPlan,
        readings: ReadingQueue,
        *,
        on_vin: Callable[[str], None] = lambda vin: None,
        backoff: Backoff | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], datetime] = utc_now,
    ) -> None:
        self.open_transport = open_transport
        self.plan = plan
        self.readings = readings
        self.on_vin = on_vin
        self.backoff = backoff or Backoff(initial_s=1.0, max_s=30.0)
        self.clock = clock
        self.wall = wall
        self.sessions = 0

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                transport = self.open_transport()
            except AdapterError as exc:
                self.backoff.wait_after("ELM327", exc, stop)
                continue
            try:
                self._session(Elm327Client(transport), stop)
            except AdapterError as exc:
                self.backoff.wait_after("ELM327", exc, stop)
            finally:
                transport.close()

    def _session(self, client: Elm327Client, stop: threading.Event) -> None:
        info = client.initialise()
        self.sessions += 1
        self.backoff.reset()
        poll_car(client, info.supported_pids, self.plan, self.readings, stop, clock=self.clock,
                 wall=self.wall, on_vin=self.on_vin)
