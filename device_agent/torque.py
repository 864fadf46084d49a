"""Torque Pro's "upload to web server" format, pure: one GET query -> catalog readings.

Torque sends ``eml``, ``v``, ``session``, ``id``, ``time`` (ms since the epoch) and one ``k<hex>``
key per sensor: standard mode 01 PIDs unpadded (``kd`` speed, ``kc`` rpm; some builds pad,
``k0d``), Torque's own sensors in the ff range (``kff1005``/``kff1006`` GPS longitude/latitude,
``kff1001`` GPS speed, ...). Values arrive decoded, in Torque's default metric units. Requests
carrying ``userUnit``/``userShortName``/``defaultUnit`` keys describe the sensors and hold no
readings. Keys may repeat with the same value (seen in real uploads).

A value that is not a finite number on a mapped key (``k0d=-``, ``k0c=NaN``, ``k5=inf``,
``kff1001=``: a sensor that did not answer) costs only itself: it lands in
``TorqueUpload.rejected`` with its reason and the other readings are kept. Only what concerns the
whole upload is a ``TorqueError``: no ``time=``, a ``time=`` that is not a moment, a key sent twice
with different values.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from device_agent.errors import AgentError
from device_agent.obd import mode01_signals
from protocol.envelope import Location, SignalReading
from protocol.limits import MAX_ABS_NUMBER

GPS_LONGITUDE = "ff1005"
GPS_LATITUDE = "ff1006"
GPS_SPEED_KMH = "ff1001"
GPS_BEARING = "ff1007"
GPS_ALTITUDE_M = "ff1010"
GPS_ACCURACY_M = "ff1239"
GPS_SATELLITES = "ff123a"
#: A fix this imprecise (metres, Torque's kff1239) says too little about where the car is.
MAX_GPS_ACCURACY_M = 50.0

TORQUE_SIGNALS = {
    GPS_BEARING: "currentLocationHeading",
    GPS_ALTITUDE_M: "currentLocationAltitude",
    GPS_SATELLITES: "dimoAftermarketNSAT",
}
META_PREFIXES = ("userUnit", "userShortName", "userFullName", "defaultUnit", "profile")


class TorqueError(AgentError, ValueError):
    """The query as a whole is not a usable Torque upload (no time, bad time, conflicting keys)."""


@dataclass(frozen=True)
class TorqueUpload:
    session: str
    torque_id: str
    readings: list[SignalReading]
    #: Keys the catalog has no place for (unknown sensors, PIDs holding several signals).
    ignored_keys: list[str] = field(default_factory=list)
    #: (key, reason) of each value on a mapped or GPS key that is not a usable number.
    rejected: list[tuple[str, str]] = field(default_factory=list)


def _number(text: str) -> float | str:
    """The value in ``text``, or why there is none (a reason, as a string)."""
    try:
        value = float(text)
    except ValueError:
        return f"{text!r} is not a number"
    if not math.isfinite(value):
        return f"{text!r} is not a finite number"
    if abs(value) >= MAX_ABS_NUMBER:
        return f"{text!r} is too large (numbers stay below 2^53 in magnitude)"
    return value


def _moment(text: str) -> datetime:
    """``time=``: milliseconds since the epoch."""
    millis = _number(text)
    if isinstance(millis, str):
        raise TorqueError(f"time={millis}")
    try:
        return datetime.fromtimestamp(millis / 1000, UTC)
    except (OverflowError, OSError, ValueError):
        raise TorqueError(f"time={text!r} is not a moment (milliseconds since the epoch)") from None


def _first_values(query: Sequence[tuple[str, str]]) -> dict[str, str]:
    values: dict[str, str] = {}
    for key, value in query:
        if key in values and values[key] != value:
            raise TorqueError(f"key {key} is sent twice with different values")
        values[key] = value
    return values


def is_metadata(query: Mapping[str, str]) -> bool:
    return any(key.startswith(META_PREFIXES) for key in query)


def parse_upload(query: Sequence[tuple[str, str]]) -> TorqueUpload:
    """Readings in one Torque upload (a list of query pairs, in order)."""
    values = _first_values(query)
    session, torque_id = values.get("session", ""), values.get("id", "")
    if is_metadata(values):
        return TorqueUpload(session, torque_id, [], [])
    if "time" not in values:
        raise TorqueError("the upload has no time= (milliseconds since the epoch)")
    at = _moment(values["time"])
    sensors = {key[1:].lower(): value for key, value in values.items()
               if key.startswith("k") and len(key) > 1}
    readings: list[SignalReading] = []
    ignored: list[str] = []
    rejected: list[tuple[str, str]] = []

    def number(code: str) -> float | None:
        value = _number(sensors[code])
        if isinstance(value, str):
            rejected.append(("k" + code, value))
            return None
        return value

    def add(name: str, value: float | Location | None) -> None:
        if value is not None:
            readings.append(SignalReading(name=name, timestamp=at, value=value))

    gps = {code: number(code) for code in (GPS_LATITUDE, GPS_LONGITUDE, GPS_ACCURACY_M, GPS_SPEED_KMH)
           if code in sensors}
    by_pid = mode01_signals()
    for code in sensors:
        if code in gps:
            continue
        if code in TORQUE_SIGNALS:
            add(TORQUE_SIGNALS[code], number(code))
            continue
        try:
            pid = int(code, 16)
        except ValueError:
            ignored.append("k" + code)
            continue
        specs = by_pid.get(pid, ()) if len(code) <= 2 else ()
        if len(specs) != 1:  # unknown, or a PID whose bytes hold several signals
            ignored.append("k" + code)
            continue
        add(specs[0].name, number(code))
    if not any(r.name == "speed" for r in readings):  # GPS speed stands in for the car's
        add("speed", gps.get(GPS_SPEED_KMH))
    add("currentLocationCoordinates", _location(gps, sensors, rejected))
    return TorqueUpload(session, torque_id, readings, sorted(ignored), sorted(rejected))


def _location(gps: Mapping[str, float | None], sensors: Mapping[str, str],
              rejected: list[tuple[str, str]]) -> Location | None:
    lat, lon = gps.get(GPS_LATITUDE), gps.get(GPS_LONGITUDE)
    if lat is None or lon is None:
        return None  # not sent, or not a number (then in ``rejected`` already)
    if lat == 0 and lon == 0:
        return None  # Torque sends 0,0 before the phone has a fix
    if GPS_ACCURACY_M in sensors:
        accuracy = gps[GPS_ACCURACY_M]
        if accuracy is None or accuracy > MAX_GPS_ACCURACY_M:
            return None  # an unknown accuracy (sent, but not a number) vouches for nothing
    on_earth = True
    if not -90 <= lat <= 90:
        rejected.append(("k" + GPS_LATITUDE, f"latitude {lat} is outside [-90, 90]"))
        on_earth = False
    if not -180 <= lon <= 180:
        rejected.append(("k" + GPS_LONGITUDE, f"longitude {lon} is outside [-180, 180]"))
        on_earth = False
    return Location(latitude=lat, longitude=lon) if on_earth else None
