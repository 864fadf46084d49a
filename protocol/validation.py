"""Checks of an event's readings against the signal catalog and the receiver's clock.

Pure: the caller passes ``now``; nothing here reads the clock.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from protocol.catalog import Catalog, SignalSpec, ValueType
from protocol.envelope import Location, ReadingRefusal, SignalReading, TelemetryEvent
from protocol.errors import InvalidSignal, Reason
from protocol.limits import MAX_FUTURE_SKEW, MAX_READING_AGE


def _check_value(index: int, reading: SignalReading, spec: SignalSpec) -> None:
    value = reading.value
    if type(value) is float and spec.type is ValueType.FLOAT and not spec.boolean and spec.in_range(value):
        return  # the common case, decided without building a message
    where = f"data.signals.{index} ({reading.name})"
    if spec.type is ValueType.LOCATION:
        if not isinstance(value, Location):
            raise InvalidSignal(f"{where}: expected a location object", Reason.WRONG_VALUE_TYPE)
        return
    if spec.type is ValueType.STRING:
        if not isinstance(value, str):
            raise InvalidSignal(f"{where}: expected a string", Reason.WRONG_VALUE_TYPE)
        return
    if not isinstance(value, float):
        raise InvalidSignal(f"{where}: expected a number", Reason.WRONG_VALUE_TYPE)
    # VSS integer types take a fraction as sent (DIMO's pipeline keeps float64 values too);
    # a boolean is 0 or 1 (docs/protocol.md, "The event").
    if spec.boolean and value not in (0.0, 1.0):
        raise InvalidSignal(f"{where}: a boolean is 0 or 1, got {value}", Reason.WRONG_VALUE_TYPE)
    if not spec.in_range(value):
        raise InvalidSignal(
            f"{where}: {value} {spec.unit} is outside [{spec.min}, {spec.max}]",
            Reason.OUT_OF_RANGE,
        )


def _check_time(where: str, moment: datetime, now: datetime) -> None:
    if moment > now + MAX_FUTURE_SKEW:
        raise InvalidSignal(
            f"{where} {moment.isoformat()} is more than {MAX_FUTURE_SKEW} ahead of the receiver",
            Reason.TIMESTAMP_OUT_OF_BOUNDS,
        )
    if moment < now - MAX_READING_AGE:
        raise InvalidSignal(
            f"{where} {moment.isoformat()} is older than {MAX_READING_AGE.days} days: clock not set?",
            Reason.TIMESTAMP_OUT_OF_BOUNDS,
        )


def check_readings(event: TelemetryEvent, catalog: Catalog, now: datetime) -> None:
    """Raise InvalidSignal (with its reason) at the first reading that breaks a rule."""
    check_event_time(event, now)
    check_signals(event.data.signals, catalog, now)


def check_event_time(event: TelemetryEvent, now: datetime) -> None:
    """The event's own ``time`` within the clock bounds: a rule of the whole event."""
    _check_time("time", event.time, now)


def sort_readings(
    signals: Sequence[SignalReading], positions: Sequence[int], catalog: Catalog, now: datetime,
    raw_signals: Sequence[Any],
) -> tuple[list[SignalReading], list[ReadingRefusal]]:
    """The readings that pass the catalog and the clock, and a refusal for each other one
    (``positions``: where each reading stood in ``raw_signals``, the readings as they came)."""
    good: list[SignalReading] = []
    refused: list[ReadingRefusal] = []
    for reading, index in zip(signals, positions, strict=True):
        try:
            check_signals([reading], catalog, now, first_index=index)
        except InvalidSignal as error:
            refused.append(ReadingRefusal(index, reading.name, error.reason, error.detail,
                                          raw_signals[index]))
        else:
            good.append(reading)
    return good, refused


def check_signals(signals: Sequence[SignalReading], catalog: Catalog, now: datetime,
                  first_index: int = 0) -> None:
    """The per-reading rules of ``check_readings``, for producers checking before they sign."""
    earliest, latest = now - MAX_READING_AGE, now + MAX_FUTURE_SKEW
    for index, reading in enumerate(signals, start=first_index):
        spec = catalog.get(reading.name)
        if spec is None:
            raise InvalidSignal(
                f"data.signals.{index}: {reading.name!r} is not in the signal catalog",
                Reason.UNKNOWN_SIGNAL,
            )
        _check_value(index, reading, spec)
        if not earliest <= reading.timestamp <= latest:
            _check_time(f"data.signals.{index}.timestamp", reading.timestamp, now)
