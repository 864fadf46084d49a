"""The telemetry event: one CloudEvents 1.0 event in structured JSON mode.

The ``data`` member uses DIMO's default shape (``{"signals": [{name, timestamp, value}]}``) so
DIMO-style producers can feed us. The ``signature`` extension attribute holds an Ed25519
signature over the canonical form (see ``protocol.signing``). docs/protocol.md is the reference.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Final, Literal, NamedTuple

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationError,
    field_validator,
    model_validator,
)

from protocol import jcs
from protocol.errors import (
    EventTooLarge,
    InvalidEnvelope,
    InvalidSignal,
    MalformedEvent,
    Reason,
    ValueOutOfBounds,
)
from protocol.limits import (
    MAX_ABS_NUMBER,
    MAX_BOOT_ID_CHARS,
    MAX_EVENT_BYTES,
    MAX_SEQ,
    MAX_SIGNALS_PER_EVENT,
    MAX_STRING_VALUE_CHARS,
)
from protocol.timefmt import format_timestamp, parse_timestamp
from protocol.topics import DEVICE_ID_PATTERN

SPEC_VERSION = "1.0"
TELEMETRY_TYPE = "motus.telemetry.v1"
DATA_CONTENT_TYPE: Final = "application/json"
_EVENT_ID = re.compile(rf"([A-Za-z0-9_-]{{1,{MAX_BOOT_ID_CHARS}}}):(0|[1-9][0-9]{{0,18}})")


def _to_datetime(value: Any) -> Any:
    if isinstance(value, str):
        return parse_timestamp(value)
    if isinstance(value, datetime):
        return value
    # One rule, docs/protocol.md "Timestamps": numbers (epoch seconds or milliseconds?) are refused.
    raise ValueError("timestamps are RFC 3339 strings like 2026-11-21T08:30:00Z, not numbers")


Timestamp = Annotated[
    datetime,
    BeforeValidator(_to_datetime),
    PlainSerializer(format_timestamp, return_type=str),
]


class Location(BaseModel):
    """DIMO's location value: WGS 84 degrees plus the fix's HDOP when known."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    latitude: float = Field(ge=-90, le=90, allow_inf_nan=False)
    longitude: float = Field(ge=-180, le=180, allow_inf_nan=False)
    hdop: float | None = Field(default=None, ge=0, le=100, allow_inf_nan=False)

    @field_validator("latitude", "longitude", "hdop", mode="before")
    @classmethod
    def _numbers_only(cls, value: Any) -> Any:
        if isinstance(value, bool):
            raise ValueError("must be a number, not a boolean")
        return float(value) if isinstance(value, int) else value


SignalValue = float | str | Location


class SignalReading(BaseModel):
    """One reading: a catalog name, when it was measured, and its value."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1, max_length=128)
    timestamp: Timestamp
    value: SignalValue

    @field_validator("value", mode="before")
    @classmethod
    def _value_shape(cls, value: Any) -> Any:
        # Checked by hand so that true/"12"/NaN are errors, never silently coerced.
        if isinstance(value, bool):
            raise ValueError("booleans travel as the numbers 0 or 1")
        if isinstance(value, int | float):
            if not math.isfinite(value):
                raise ValueError("numbers must be finite")
            if abs(value) >= MAX_ABS_NUMBER:
                raise ValueOutOfBounds("numbers must be below 2^53 in magnitude (I-JSON, RFC 7493)")
            return float(value)
        if isinstance(value, str):
            if len(value) > MAX_STRING_VALUE_CHARS:
                raise ValueOutOfBounds(f"strings are at most {MAX_STRING_VALUE_CHARS} characters")
            if "\x00" in value:
                raise ValueError("strings must not contain NUL characters")
            return value
        if isinstance(value, dict | Location):
            return Location.model_validate(value)
        raise ValueError("value must be a number, a string or a location object")


class Place(NamedTuple):
    """A location that passed every rule, as the network stores it (a plain tuple: ingest makes
    one per event, where a pydantic ``Location`` cost several times as much)."""

    latitude: float
    longitude: float
    hdop: float | None = None


StoredValue = float | str | Place

#: A reading that passed every rule, as the network stores it: (name, timestamp, value), numbers
#: as floats, locations as ``Place``. A plain tuple: ingest makes one per reading of every event.
Reading = tuple[str, datetime, StoredValue]


def stored_reading(reading: SignalReading) -> Reading:
    value = reading.value
    if isinstance(value, Location):
        return (reading.name, reading.timestamp, Place(value.latitude, value.longitude, value.hdop))
    return (reading.name, reading.timestamp, value)


class TelemetryData(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    #: On the wire 1 to 2000 readings (``validate_envelope`` checks); after validation only the
    #: valid ones, possibly none.
    signals: list[SignalReading]


#: CloudEvents 1.0 attribute names: lower-case ASCII letters and digits (spec section "Attribute
#: Naming Convention"); extension values are strings, integers or booleans in JSON.
_ATTRIBUTE_NAME = re.compile(r"[a-z0-9]{1,64}")
_INTEGER_RANGE = (-(2**31), 2**31 - 1)  # CloudEvents "Integer": 32-bit signed


def _check_extension(name: str, value: Any) -> None:
    if not _ATTRIBUTE_NAME.fullmatch(name):
        raise ValueError(f"attribute {name!r}: CloudEvents names are lower-case letters and digits")
    if isinstance(value, bool | str):
        return
    if isinstance(value, int) and _INTEGER_RANGE[0] <= value <= _INTEGER_RANGE[1]:
        return
    raise ValueError(f"extension attribute {name!r}: a string, a 32-bit integer or a boolean")


class TelemetryEvent(BaseModel):
    """A validated telemetry event. ``signature`` is None only before signing."""

    # Extension attributes (CloudEvents 1.0) are kept, checked by ``_extensions`` and signed
    # like every member; ``signature`` is this protocol's own extension.
    model_config = ConfigDict(frozen=True, extra="allow")

    specversion: Literal["1.0"]
    type: Literal["motus.telemetry.v1"]
    source: str = Field(pattern=rf"^{DEVICE_ID_PATTERN}$")
    id: str
    time: Timestamp
    datacontenttype: Literal["application/json"] = DATA_CONTENT_TYPE
    #: Optional CloudEvents attributes: what the event is about, and the schema of ``data``.
    subject: str | None = Field(default=None, min_length=1, max_length=256)
    dataschema: str | None = Field(default=None, min_length=1, max_length=1024)
    data: TelemetryData
    signature: str | None = None

    @model_validator(mode="after")
    def _extensions(self) -> TelemetryEvent:
        for name, value in (self.model_extra or {}).items():
            _check_extension(name, value)
        return self

    @field_validator("id")
    @classmethod
    def _event_id(cls, value: str) -> str:
        match = _EVENT_ID.fullmatch(value)
        if match is None or int(match.group(2)) > MAX_SEQ:
            raise ValueError("id must be '<boot id>:<seq>' (boot id [A-Za-z0-9_-]{1,64}, seq 0..2^63-1)")
        return value

    @property
    def boot_id(self) -> str:
        return self.id.rsplit(":", 1)[0]

    @property
    def seq(self) -> int:
        return int(self.id.rsplit(":", 1)[1])

    def to_wire(self) -> dict[str, Any]:
        """The JSON object exactly as it travels (no null members)."""
        return self.model_dump(mode="json", exclude_none=True)


@dataclass(frozen=True, slots=True)
class ReadingRefusal:
    """One reading refused on its own: where it was, why, and the reading as it came."""

    index: int
    name: str | None
    reason: Reason
    detail: str
    raw: Any


def _refusal(index: int, raw: Any, exc: ValidationError) -> ReadingRefusal:
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first["loc"])
    name = raw.get("name") if isinstance(raw, dict) and isinstance(raw.get("name"), str) else None
    label = f"data.signals.{index}" + (f" ({name})" if name else "")
    reason = Reason.INVALID_READING
    if first["loc"][:1] == ("value",):
        bounded = first["type"] in {"less_than_equal", "greater_than_equal", "less_than", "greater_than"}
        beyond = isinstance((first.get("ctx") or {}).get("error"), ValueOutOfBounds)
        reason = Reason.OUT_OF_RANGE if bounded or beyond else Reason.WRONG_VALUE_TYPE
    return ReadingRefusal(index, name, reason, f"{label}: {where or 'reading'}: {first['msg']}", raw)


@dataclass(frozen=True, slots=True)
class Envelope:
    """A validated envelope: the event with the readings shaped like readings, where each of
    them stood in ``data.signals`` (``positions``), and the readings refused for their shape."""

    event: TelemetryEvent
    positions: list[int]
    refused: list[ReadingRefusal]


def _sort_raw_readings(raw_signals: list[Any]) -> tuple[list[SignalReading], list[int], list[ReadingRefusal]]:
    good: list[SignalReading] = []
    positions: list[int] = []
    refused: list[ReadingRefusal] = []
    for index, raw in enumerate(raw_signals):
        try:
            good.append(SignalReading.model_validate(raw))
            positions.append(index)
        except ValidationError as exc:
            refused.append(_refusal(index, raw, exc))
    return good, positions, refused


def event_id(boot_id: str, seq: int) -> str:
    return f"{boot_id}:{seq}"


def split_event_id(value: str) -> tuple[str, int] | None:
    """(boot id, seq) of a well-formed event id, else None."""
    match = _EVENT_ID.fullmatch(value)
    if match is None or int(match.group(2)) > MAX_SEQ:
        return None
    return match.group(1), int(match.group(2))


def build_event(
    *, device_id: str, boot_id: str, seq: int, time: datetime, signals: list[SignalReading]
) -> TelemetryEvent:
    """An unsigned event; sign it with ``protocol.signing.sign_event``."""
    if not signals:
        raise ValueError("an event carries at least one reading")
    return TelemetryEvent(
        specversion=SPEC_VERSION,
        type=TELEMETRY_TYPE,
        source=device_id,
        id=event_id(boot_id, seq),
        time=time,
        data=TelemetryData(signals=signals),
    )


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # Duplicate members would let the signed and the stored value differ (RFC 8259 section 4).
    out = dict(pairs)
    if len(out) != len(pairs):
        seen: set[str] = set()
        duplicate = next(key for key, _ in pairs if key in seen or seen.add(key))  # type: ignore[func-returns-value]
        raise ValueError(f"duplicate member {duplicate!r}")
    return out


def parse_json_object(payload: bytes) -> dict[str, Any]:
    """Strict JSON: UTF-8, no NaN/Infinity, no duplicate members, an object at the top."""
    if len(payload) > MAX_EVENT_BYTES:
        raise EventTooLarge(f"event is {len(payload)} bytes, the limit is {MAX_EVENT_BYTES}")
    try:
        document = jcs.loads(
            payload.decode("utf-8"),
            parse_constant=_reject_constant,
            object_pairs_hook=_no_duplicate_keys,
        )
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise MalformedEvent(f"payload is not valid JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise MalformedEvent("payload must be a JSON object")
    return document


def _describe(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "event"
    more = f" (+{exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return f"{where}: {first['msg']}{more}"


def validate_envelope(document: dict[str, Any]) -> Envelope:
    """The envelope's shape, whole or not at all (InvalidEnvelope); its readings one by one:
    the event keeps those shaped like a reading, the others come back as refusals. Names and
    values against the catalog are ``protocol.validation``'s."""
    data = document.get("data")
    signals = data.get("signals") if isinstance(data, dict) else None
    if not isinstance(signals, list):
        raise InvalidEnvelope("data.signals: a list of readings is required")
    if not signals:
        raise InvalidEnvelope("data.signals: an event carries at least one reading")
    if len(signals) > MAX_SIGNALS_PER_EVENT:
        raise InvalidEnvelope(
            f"event has {len(signals)} signals, the limit is {MAX_SIGNALS_PER_EVENT}",
            Reason.TOO_MANY_SIGNALS,
        )
    good, positions, refused = _sort_raw_readings(signals)
    assert isinstance(data, dict)
    try:
        event = TelemetryEvent.model_validate({**document, "data": {**data, "signals": good}})
    except ValidationError as exc:
        raise InvalidEnvelope(_describe(exc)) from exc
    return Envelope(event, positions, refused)


def validate_event(document: dict[str, Any]) -> TelemetryEvent:
    """The whole event or nothing: ``validate_envelope``, raising InvalidSignal (with its reason)
    for the first reading refused."""
    envelope = validate_envelope(document)
    if envelope.refused:
        raise InvalidSignal(envelope.refused[0].detail, envelope.refused[0].reason)
    return envelope.event
