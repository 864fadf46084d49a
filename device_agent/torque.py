"""Torque Pro's "upload to web server" format, pure: one GET query -> catalog readings.

Torque sends ``eml``, ``v``, ``session``, ``id``, ``time`` (ms since the epoch) and one ``k<hex>``
key per sensor: standard mode 01 PIDs unpadded (``kd`` speed, ``kc`` rpm; some builds pad,
``k0d``), Torque's own sensors in the ff range (``kff1005``/``kff1006`` GPS longitude/latitude,
``kff1001`` GPS speed, ...). Values arrive decoded, in Torque's default metric units. Requests
carrying ``userUnit``/``userShortName``/``defaultUnit`` keys describe the sensors and hold no
readings. Keys may repeat with the same value (seen in real uploads).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from device_agent.errors import AgentError
from device_agent.obd import mode01_signals
from protocol.envelope import Location, SignalReading

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
    """The query is not a usable Torque upload (no time, bad number)."""


@dataclass(frozen=True)
class TorqueUpload:
    session: str
    torque_id: str
    readings: list[SignalReading]
    ignored_keys: list[str] = field(default_factory=list)


def _number(key: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise TorqueError(f"{key}={text!r} is not a number") from None
    if not math.isfinite(value):
        raise TorqueError(f"{key}={text!r} is not a finite number")
    return value


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
    at = datetime.fromtimestamp(_number("time", values["time"]) / 1000, UTC)
    sensors = {key[1:].lower(): value for key, value in values.items()
               if key.startswith("k") and len(key) > 1}
    readings: list[SignalReading] = []
    ignored: list[str] = []

    def add(name: str, value: float | Location) -> None:
        readings.append(SignalReading(name=name, timestamp=at, value=value))

    by_pid = mode01_signals()
    for code, text in sensors.items():
        if code in (GPS_LATITUDE, GPS_LONGITUDE, GPS_ACCURACY_M, GPS_SPEED_KMH):
            continue
        if code in TORQUE_SIGNALS:
            add(TORQUE_SIGNALS[code], _number("k" + code, text))
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
        add(specs[0].name, _number("k" + code, text))
    if GPS_SPEED_KMH in sensors and not any(r.name == "speed" for r in readings):
        add("speed", _number("k" + GPS_SPEED_KMH, sensors[GPS_SPEED_KMH]))
    location = _location(sensors)
    if location is not None:
        add("currentLocationCoordinates", location)
    return TorqueUpload(session, torque_id, readings, sorted(ignored))


def _location(sensors: Mapping[str, str]) -> Location | None:
    if GPS_LATITUDE not in sensors or GPS_LONGITUDE not in sensors:
        return None
    lat = _number("k" + GPS_LATITUDE, sensors[GPS_LATITUDE])
    lon = _number("k" + GPS_LONGITUDE, sensors[GPS_LONGITUDE])
    if lat == 0 and lon == 0:
        return None  # Torque sends 0,0 before the phone has a fix
    accuracy = sensors.get(GPS_ACCURACY_M)
    if accuracy is not None and _number("k" + GPS_ACCURACY_M, accuracy) > MAX_GPS_ACCURACY_M:
        return None
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise TorqueError(f"GPS position {lat},{lon} is not on Earth")
    return Location(latitude=lat, longitude=lon)
