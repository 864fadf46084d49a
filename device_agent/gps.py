"""GPS from an NMEA 0183 receiver: RMC and GGA sentences (parsed by pynmea2) become location,
heading, altitude, HDOP and satellite readings. Pure: lines in, readings out.

A reading is stamped with the receiver's own UTC time (RMC date and time), which is right even on
a Pi without a real-time clock. Fixes the receiver marks void (RMC status V, GGA quality 0) give no
location."""

from __future__ import annotations

from dataclasses import dataclass

import pynmea2

from protocol.envelope import Location, SignalReading

KNOTS_TO_KMH = 1.852


@dataclass
class _Fix:
    quality: int = 0
    satellites: int | None = None
    hdop: float | None = None
    altitude_m: float | None = None


class NmeaDecoder:
    def __init__(self, *, speed_from_gps: bool = False) -> None:
        self.speed_from_gps = speed_from_gps
        self._fix = _Fix()
        self.bad_sentences = 0

    def feed(self, line: str) -> list[SignalReading]:
        """Readings completed by one sentence (RMC completes a fix; GGA only updates it)."""
        line = line.strip()
        if not line.startswith("$"):
            return []
        try:
            sentence = pynmea2.parse(line, check=True)
        except (pynmea2.ParseError, ValueError, AttributeError):
            self.bad_sentences += 1
            return []
        if isinstance(sentence, pynmea2.GGA):
            self._update_fix(sentence)
            return []
        if isinstance(sentence, pynmea2.RMC):
            return self._readings(sentence)
        return []

    def _update_fix(self, gga: pynmea2.GGA) -> None:
        try:
            self._fix = _Fix(
                quality=int(gga.gps_qual or 0),
                satellites=int(gga.num_sats) if gga.num_sats else None,
                hdop=float(gga.horizontal_dil) if gga.horizontal_dil else None,
                altitude_m=float(gga.altitude) if gga.altitude is not None else None,
            )
        except (TypeError, ValueError):
            self.bad_sentences += 1

    def _readings(self, rmc: pynmea2.RMC) -> list[SignalReading]:
        if rmc.status != "A" or self._fix.quality == 0 or not rmc.lat or not rmc.lon:
            return []
        try:
            at = rmc.datetime
            lat, lon = float(rmc.latitude), float(rmc.longitude)
        except (TypeError, ValueError, AttributeError):
            self.bad_sentences += 1
            return []
        fix = self._fix
        hdop = fix.hdop if fix.hdop is not None and fix.hdop <= 100 else None

        def r(name: str, value: float | Location) -> SignalReading:
            return SignalReading(name=name, timestamp=at, value=value)

        out = [r("currentLocationCoordinates", Location(latitude=lat, longitude=lon, hdop=hdop))]
        if rmc.true_course not in (None, ""):
            out.append(r("currentLocationHeading", float(rmc.true_course) % 360))
        if fix.altitude_m is not None:
            out.append(r("currentLocationAltitude", fix.altitude_m))
        if hdop is not None:
            out.append(r("dimoAftermarketHDOP", hdop))
        if fix.satellites is not None:
            out.append(r("dimoAftermarketNSAT", float(fix.satellites)))
        if self.speed_from_gps and rmc.spd_over_grnd not in (None, ""):
            out.append(r("speed", round(float(rmc.spd_over_grnd) * KNOTS_TO_KMH, 2)))
        return out
