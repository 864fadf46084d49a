"""NMEA 0183 sentences (RMC and GGA, as a u-blox or SiRF receiver sends them) for a simulated
vehicle's position, written with pynmea2 so the checksums are right."""

from __future__ import annotations

import contextlib
import os
import threading
import tty
from collections.abc import Callable
from datetime import datetime

import pynmea2

from simulators.vehicle import VehicleState

KMH_TO_KNOTS = 1 / 1.852


def _angle(value: float, positive: str, negative: str, degree_digits: int) -> tuple[str, str]:
    hemisphere = positive if value >= 0 else negative
    value = abs(value)
    degrees = int(value)
    minutes = (value - degrees) * 60
    return f"{degrees:0{degree_digits}d}{minutes:07.4f}", hemisphere


def sentences(state: VehicleState, at: datetime, *, satellites: int = 9, hdop: float = 0.9,
              altitude_m: float = 520.0, fix: bool = True) -> list[str]:
    """GGA then RMC for one fix at ``at`` (UTC)."""
    lat, ns = _angle(state.latitude, "N", "S", 2)
    lon, ew = _angle(state.longitude, "E", "W", 3)
    hhmmss = at.strftime("%H%M%S.") + f"{at.microsecond // 10000:02d}"
    gga = pynmea2.GGA("GP", "GGA", (
        hhmmss, lat, ns, lon, ew, "1" if fix else "0", f"{satellites:02d}", f"{hdop:.1f}",
        f"{altitude_m:.1f}", "M", "47.0", "M", "", ""))
    rmc = pynmea2.RMC("GP", "RMC", (
        hhmmss, "A" if fix else "V", lat, ns, lon, ew, f"{state.speed_kmh * KMH_TO_KNOTS:.2f}",
        f"{state.heading_deg:.1f}", at.strftime("%d%m%y"), "", "", "A" if fix else "N"))
    return [str(gga), str(rmc)]


class PtyNmea:
    """A GPS receiver on a pseudo-terminal: ``write(lines)`` sends sentences to whoever opened
    ``port`` (CR LF ended, as NMEA 0183 requires)."""

    def __init__(self) -> None:
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)
        self.port = os.ttyname(self._slave)
        self._lock = threading.Lock()

    def write(self, lines: list[str]) -> None:
        with self._lock:
            os.write(self._master, "".join(line + "\r\n" for line in lines).encode("ascii"))

    def feed_from(self, fix: Callable[[], list[str]], period_s: float, stop: threading.Event) -> None:
        """Send ``fix()`` every ``period_s`` until ``stop``; run it in a thread."""
        while not stop.wait(period_s):
            self.write(fix())

    def close(self) -> None:
        for fd in (self._master, self._slave):
            with contextlib.suppress(OSError):
                os.close(fd)
