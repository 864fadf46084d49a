"""The common telemetry event, decoded and checked in one pass: the ingest's fast path.

Most events arrive as a producer following docs/protocol.md writes them: RFC 8785 canonical
JSON, ASCII, the required CloudEvents members only, every reading one the catalog accepts. For
those, one typed decode (msgspec) validates the shape while it parses, and encoding the decoded
event again gives back the received bytes, which proves they already are their canonical form:
the bytes the signature covers are then the payload with its ``signature`` member cut out
(protocol.signing), no canonical form rebuilt.

Anything else gets None here and goes through the full path (``protocol.envelope``,
``protocol.validation``), which gives the verdict and the reason: an extension attribute, an
escape in a string, a number RFC 8785 prints otherwise than msgspec, a reading a rule refuses.
The fast path only ever says yes to an event the full path would accept with the same readings;
tests/unit/test_common_event.py holds the two paths equal on generated events.
"""

from __future__ import annotations

import binascii
import math
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Final

import msgspec

from protocol.catalog import Catalog, ValueType
from protocol.envelope import DATA_CONTENT_TYPE, TELEMETRY_TYPE, Location, Reading, split_event_id
from protocol.limits import (
    MAX_ABS_NUMBER,
    MAX_EVENT_BYTES,
    MAX_FUTURE_SKEW,
    MAX_READING_AGE,
    MAX_SIGNALS_PER_EVENT,
    MAX_STRING_VALUE_CHARS,
)
from protocol.timefmt import parse_timestamp
from protocol.topics import is_device_id

# Members in the order RFC 8785 sorts them (section 3.2.3), so that msgspec, which writes
# fields in their declared order, writes the canonical form. Numbers come as int or float as
# written (50 stays 50, 50.5 stays 50.5).


class _Location(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, omit_defaults=True):
    hdop: int | float | None = None
    latitude: int | float
    longitude: int | float


class _Reading(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    timestamp: str
    value: int | float | str | _Location


class _Data(msgspec.Struct, forbid_unknown_fields=True):
    signals: list[_Reading]


class _Event(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, omit_defaults=True):
    data: _Data
    datacontenttype: str | None = None
    id: str
    signature: str
    source: str
    specversion: str
    time: str
    type: str


_DECODER: Final = msgspec.json.Decoder(_Event)
_ENCODER: Final = msgspec.json.Encoder()
_SIGNATURE_MEMBER: Final = b',"signature":"'


@dataclass(frozen=True, slots=True)
class CommonEvent:
    """An event whose shape, canonical form and readings hold; its signature is still to check."""

    source: str
    boot_id: str
    seq: int
    time: datetime
    readings: list[Reading]
    #: The 64 signature bytes and the canonical JSON of the event without them.
    signature: bytes
    unsigned: bytes


def _canonical_number(value: int | float) -> bool:
    """Printed the same by msgspec and by RFC 8785 (section 3.2.2.3), and an I-JSON number
    (protocol.limits): an integer, or a float with a fraction at least 1e-4 in magnitude, both
    below 2^53, where both print plain shortest digits."""
    if type(value) is int:
        return -MAX_ABS_NUMBER < value < MAX_ABS_NUMBER
    return not value.is_integer() and 1e-4 <= abs(value) < MAX_ABS_NUMBER  # type: ignore[union-attr]


def _location(value: _Location) -> Location | None:
    lat, lon, hdop = value.latitude, value.longitude, value.hdop
    if not (_canonical_number(lat) and _canonical_number(lon) and -90 <= lat <= 90 and -180 <= lon <= 180):
        return None
    if hdop is not None and not (_canonical_number(hdop) and 0 <= hdop <= 100):
        return None
    if hdop is None:  # as validation makes it: hdop unset, not set to None
        return Location.model_construct(latitude=float(lat), longitude=float(lon))
    return Location.model_construct(latitude=float(lat), longitude=float(lon), hdop=float(hdop))


_NUMBER, _BOOLEAN, _TEXT, _PLACE = range(4)


@lru_cache(maxsize=8)
def _rules(catalog: Catalog) -> dict[str, tuple[int, float, float]]:
    """Name -> (kind, lowest, highest) of each catalog signal, for a loop without calls."""
    kinds = {ValueType.STRING: _TEXT, ValueType.LOCATION: _PLACE}
    return {spec.name: (_BOOLEAN if spec.boolean else kinds.get(spec.type, _NUMBER),
                        -math.inf if spec.min is None else spec.min,
                        math.inf if spec.max is None else spec.max) for spec in catalog}


def _readings(signals: list[_Reading], catalog: Catalog, earliest: datetime,
              latest: datetime) -> list[Reading] | None:
    out: list[Reading] = []
    rules = _rules(catalog)
    last_text, stamp = "", earliest
    for raw in signals:
        rule = rules.get(raw.name)
        if rule is None:
            return None
        if raw.timestamp != last_text:  # the readings of an event mostly share one stamp
            try:
                stamp = parse_timestamp(raw.timestamp)
            except ValueError:
                return None
            if not earliest <= stamp <= latest:
                return None
            last_text = raw.timestamp
        value = raw.value
        kind, lowest, highest = rule
        if type(value) is float or type(value) is int:
            if kind > _BOOLEAN or not lowest <= value <= highest:
                return None
            if type(value) is float and (value.is_integer() or not 1e-4 <= abs(value) < MAX_ABS_NUMBER):
                return None  # printed otherwise by RFC 8785, or not I-JSON (see _canonical_number)
            if type(value) is int and not -MAX_ABS_NUMBER < value < MAX_ABS_NUMBER:
                return None
            if kind == _BOOLEAN and value != 0 and value != 1:
                return None
            out.append((raw.name, stamp, float(value)))
        elif type(value) is str:
            if kind != _TEXT or len(value) > MAX_STRING_VALUE_CHARS:
                return None
            out.append((raw.name, stamp, value))
        else:
            place = _location(value) if kind == _PLACE else None  # type: ignore[arg-type]
            if place is None:
                return None
            out.append((raw.name, stamp, place))
    return out


def decode_common_event(payload: bytes, catalog: Catalog, now: datetime) -> CommonEvent | None:
    """The event in ``payload`` when it is a common one that passes every rule the full path
    checks without the device registry; None to send it down the full path."""
    # ASCII without a backslash: no string needs an escape, so every string is its own
    # canonical form, and member names sort by code point (RFC 8785 section 3.2.3).
    if len(payload) > MAX_EVENT_BYTES or not payload.isascii() or b"\\" in payload:
        return None
    try:
        event = _DECODER.decode(payload)
    except msgspec.DecodeError:  # malformed JSON, and ValidationError (a subclass): wrong shape
        return None
    if _ENCODER.encode(event) != payload:
        return None  # not canonical: whitespace, member order, duplicates, number forms
    if (event.specversion != "1.0" or event.type != TELEMETRY_TYPE
            or event.datacontenttype not in (None, DATA_CONTENT_TYPE) or not is_device_id(event.source)):
        return None
    boot_seq = split_event_id(event.id)
    if boot_seq is None:
        return None
    signals = event.data.signals
    if not 0 < len(signals) <= MAX_SIGNALS_PER_EVENT:
        return None
    try:
        time = parse_timestamp(event.time)
        signature = binascii.a2b_base64(event.signature, strict_mode=True)
    except (ValueError, binascii.Error):
        return None
    earliest, latest = now - MAX_READING_AGE, now + MAX_FUTURE_SKEW
    if len(signature) != 64 or not earliest <= time <= latest:
        return None
    readings = _readings(signals, catalog, earliest, latest)
    if readings is None:
        return None
    # "id" and "source" are always present, so the member sits between two others.
    start = payload.index(_SIGNATURE_MEMBER)
    end = start + len(_SIGNATURE_MEMBER) + len(event.signature) + 1
    return CommonEvent(event.source, *boot_seq, time, readings,
                       signature, payload[:start] + payload[end:])
