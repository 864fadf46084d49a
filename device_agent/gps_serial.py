"""The GPS source: reads NMEA lines from a serial receiver (USB, UART, or a pty) with pyserial."""

from __future__ import annotations

import logging
import threading

import serial

from device_agent.agent import ReadingQueue
from device_agent.backoff import Backoff
from device_agent.elm327_serial import PORT_ERRORS
from device_agent.gps import NmeaDecoder

log = logging.getLogger(__name__)


class GpsSource:
    name = "gps"

    def __init__(self, port: str, readings: ReadingQueue, *, baudrate: int = 9600,
                 decoder: NmeaDecoder | None = None, backoff: Backoff | None = None) -> None:
        self.port = port
        self.baudrate = baudrate
        self.readings = readings
        self.decoder = decoder or NmeaDecoder()
        self.backoff = backoff or Backoff(initial_s=1.0, max_s=30.0)

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                with serial.Serial(self.port, self.baudrate, timeout=0.5) as port:
                    self.backoff.reset()
                    while not stop.is_set():
                        line = port.readline()
                        if line:
                            self.readings.put(self.decoder.feed(line.decode("ascii", errors="replace")))
            except PORT_ERRORS as exc:
                self.backoff.wait_after(f"GPS receiver on {self.port}", exc, stop)
