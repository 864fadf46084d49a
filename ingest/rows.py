"""Pure: accepted events -> the rows ingest writes (readings by storage type, newest values)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from uuid import UUID

import msgspec

from ingest.pipeline import Accepted
from protocol.envelope import Place, StoredValue

#: Rows carry the vehicle id as its 16 bytes (RFC 4122 order): binary COPY sends a uuid as
#: exactly those bytes, and building them once per event spares a per-row conversion.
NumericRow = tuple[datetime, bytes, str, str, float]
TextRow = tuple[datetime, bytes, str, str, str]
LocationRow = tuple[datetime, bytes, str, str, float, float, float | None]
LatestRow = tuple[bytes, str, datetime, str, str]  # vehicle, name, ts, value as JSON, device
_JSON = msgspec.json.Encoder()


def json_value(value: StoredValue) -> str:
    """A value as the JSON the API serves it: a number, a string or a location object."""
    if isinstance(value, Place):
        place = {"latitude": value.latitude, "longitude": value.longitude}
        return _JSON.encode(place if value.hdop is None else {**place, "hdop": value.hdop}).decode()
    return _JSON.encode(value).decode()


@dataclass(slots=True)
class ReadingRows:
    numeric: list[NumericRow] = field(default_factory=list)
    text: list[TextRow] = field(default_factory=list)
    location: list[LocationRow] = field(default_factory=list)
    #: vehicle -> signal name -> (ts, value, device) of the newest reading.
    latest: dict[UUID, dict[str, tuple[datetime, StoredValue, str]]] = field(default_factory=dict)
    #: The distinct timestamps of the numeric readings.
    numeric_stamps: set[datetime] = field(default_factory=set)

    @property
    def count(self) -> int:
        return len(self.numeric) + len(self.text) + len(self.location)

    def numeric_hours(self) -> list[datetime]:
        """The UTC hours the numeric readings fall in (what their rollups must recompute)."""
        # From the epoch seconds: a batch holds about one stamp per event, and this is a fifth
        # of the cost of astimezone() and replace() on each.
        hours = {int(ts.timestamp() // 3600) for ts in self.numeric_stamps}
        return [datetime.fromtimestamp(hour * 3600, UTC) for hour in sorted(hours)]

    def latest_rows(self) -> list[LatestRow]:
        return [(vehicle.bytes, name, ts, json_value(value), device)
                for vehicle, names in self.latest.items() for name, (ts, value, device) in names.items()]


def distinct_stamps(events: Iterable[Accepted]) -> set[datetime]:
    """The timestamps the events' readings carry, each once."""
    stamps: set[datetime] = set()
    for accepted in events:
        last = None
        for _, ts, _ in accepted.readings:
            if ts is not last:  # the readings of an event mostly share one stamp object
                stamps.add(ts)
                last = ts
    return stamps


def reading_rows(events: Iterable[Accepted]) -> ReadingRows:
    rows = ReadingRows()
    numeric, text, location = rows.numeric.append, rows.text.append, rows.location.append
    stamps = rows.numeric_stamps
    for accepted in events:
        device = accepted.source
        vehicle = accepted.vehicle_id.bytes
        newest = rows.latest.setdefault(accepted.vehicle_id, {})
        last = None
        for name, ts, value in accepted.readings:
            if type(value) is float:
                numeric((ts, vehicle, device, name, value))
                if ts is not last:
                    stamps.add(ts)
                    last = ts
            elif isinstance(value, Place):
                location((ts, vehicle, device, name, value.latitude, value.longitude, value.hdop))
            elif isinstance(value, str):
                text((ts, vehicle, device, name, value))
            else:
                numeric((ts, vehicle, device, name, float(value)))
                stamps.add(ts)
            known = newest.get(name)
            if known is None or ts > known[0]:
                newest[name] = (ts, value, device)
    return rows
