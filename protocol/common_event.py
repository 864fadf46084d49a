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
from typing import Annotated, Any, Final, Literal, Union

import msgspec

from protocol.catalog import Catalog, SignalSpec, ValueType
from protocol.envelope import DATA_CONTENT_TYPE, TELEMETRY_TYPE, Place, Reading, split_event_id
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

def _number(low: float | None = None, high: float | None = None) -> Any:
    """An int or a float in [low, high], and within I-JSON: below 2^53 in magnitude."""
    limit = int(MAX_ABS_NUMBER)
    low = -limit if low is None or low <= -limit else low
    high = limit if high is None or high >= limit else high
    # Bounds of an int must be ints: the whole numbers within [low, high].
    ints = msgspec.Meta(ge=max(math.ceil(low), -limit + 1), le=min(math.floor(high), limit - 1))
    floats = msgspec.Meta(**({"gt": low} if low == -limit else {"ge": low}),  # type: ignore[call-overload]
                          **({"lt": high} if high == limit else {"le": high}))
    return Annotated[int, ints] | Annotated[float, floats]


_LATITUDE, _LONGITUDE, _HDOP = _number(-90, 90), _number(-180, 180), _number(0, 100)


class _Location(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, omit_defaults=True, gc=False):
    hdop: _HDOP | None = None  # type: ignore[valid-type]
    latitude: _LATITUDE  # type: ignore[valid-type]
    longitude: _LONGITUDE  # type: ignore[valid-type]


class _Reading(msgspec.Struct, forbid_unknown_fields=True, tag_field="name", gc=False):
    """A reading of one catalog signal: the subclass (its tag, the member ``name``) says which,
    and its ``value`` type holds the signal's type and range (the classes are built by
    ``_decoder`` from the catalog)."""

    timestamp: str


def _value_type(spec: SignalSpec) -> Any:
    if spec.type is ValueType.STRING:
        return Annotated[str, msgspec.Meta(max_length=MAX_STRING_VALUE_CHARS)]
    if spec.type is ValueType.LOCATION:
        return _Location
    if spec.boolean:
        return Literal[0, 1]  # a VSS boolean travels as 0 or 1
    return _number(spec.min, spec.max)


@lru_cache(maxsize=8)
def _decoder(catalog: Catalog) -> tuple[msgspec.json.Decoder[Any], dict[type, str]]:
    """A decoder of events whose readings are each a catalog signal of the right type and
    range, checked by msgspec as it parses; and each reading class's signal name."""
    classes = [msgspec.defstruct(f"_Reading_{spec.name}", [("value", _value_type(spec))], bases=(_Reading,),
                                 tag=spec.name, gc=False) for spec in catalog]

    data = msgspec.defstruct("_Data", [("signals", list[Union[tuple(classes)]])],  # type: ignore[misc]  # noqa: UP007
                             forbid_unknown_fields=True, gc=False)
    event = msgspec.defstruct("_Event", [
        ("data", data), ("datacontenttype", str | None, None), ("id", str), ("signature", str),
        ("source", str), ("specversion", str), ("time", str), ("type", str),
    ], kw_only=True, forbid_unknown_fields=True, omit_defaults=True, gc=False)
    return msgspec.json.Decoder(event), {cls: spec.name for cls, spec in zip(classes, catalog, strict=True)}


_ENCODER: Final = msgspec.json.Encoder()
_SIGNATURE_MEMBER: Final = b',"signature":"'


def _printed_alike(value: float) -> bool:
    """Whether msgspec prints this float as RFC 8785 does (section 3.2.2.3): all below 2^53 but
    the integral ones ("50.0", where RFC 8785 prints "50") and those in [1e-6, 1e-5), which
    msgspec writes in exponent form ("1.5e-6" for "0.0000015"); tests/unit/test_common_event.py.
    The few small ones below that (printed alike) are left to the full path too."""
    return not value.is_integer() and not -1e-5 < value < 1e-5


@dataclass(slots=True)  # not frozen: made once per event on the hot path, a frozen __init__ costs more
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


def _place(value: _Location) -> Place | None:
    numbers = (value.latitude, value.longitude, 1 if value.hdop is None else value.hdop)
    if not all(type(n) is int or _printed_alike(n) for n in numbers):
        return None
    return Place(float(value.latitude), float(value.longitude),
                 None if value.hdop is None else float(value.hdop))


def _readings(signals: list[Any], names: dict[type, str], earliest: datetime,
              latest: datetime) -> list[Reading] | None:
    """The readings as stored, or None if a timestamp breaks the rules (the rest msgspec checked)."""
    out: list[Reading] = []
    append = out.append
    last_text, stamp = "", earliest
    for raw in signals:
        if raw.timestamp != last_text:  # the readings of an event mostly share one stamp
            try:
                stamp = parse_timestamp(raw.timestamp)
            except ValueError:
                return None
            if not earliest <= stamp <= latest:
                return None
            last_text = raw.timestamp
        value = raw.value
        kind = type(value)
        if kind is float:  # not _printed_alike(value), inline: this runs for nearly every reading
            if value.is_integer() or -1e-5 < value < 1e-5:
                return None
            append((names[type(raw)], stamp, value))
        elif kind is int:
            append((names[type(raw)], stamp, float(value)))
        elif kind is str:
            append((names[type(raw)], stamp, value))
        else:
            place = _place(value)
            if place is None:
                return None
            append((names[type(raw)], stamp, place))
    return out


def decode_common_event(payload: bytes, catalog: Catalog, now: datetime) -> CommonEvent | None:
    """The event in ``payload`` when it is a common one that passes every rule the full path
    checks without the device registry; None to send it down the full path."""
    # ASCII without a backslash: no string needs an escape, so every string is its own
    # canonical form, and member names sort by code point (RFC 8785 section 3.2.3).
    if len(payload) > MAX_EVENT_BYTES or not payload.isascii() or b"\\" in payload:
        return None
    decoder, names = _decoder(catalog)
    try:
        event = decoder.decode(payload)
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
    readings = _readings(signals, names, earliest, latest)
    if readings is None:
        return None
    # "id" and "source" are always present, so the member sits between two others.
    start = payload.index(_SIGNATURE_MEMBER)
    end = start + len(_SIGNATURE_MEMBER) + len(event.signature) + 1
    return CommonEvent(event.source, *boot_seq, time, readings,
                       signature, payload[:start] + payload[end:])
