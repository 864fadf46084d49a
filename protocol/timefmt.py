"""Timestamps on the wire: RFC 3339, UTC, 'Z' suffix, up to nine fractional digits (Go's
RFC3339Nano, what DIMO's producers send); kept at PostgreSQL's microsecond precision, the digits
beyond the sixth cut off (never rounded up into the next second)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from functools import lru_cache

#: e.g. 2026-11-21T08:30:00Z, 2026-11-21T08:30:00.125Z or 2024-06-11T15:30:00.123456789Z
TIMESTAMP_PATTERN = r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?Z"
_TIMESTAMP = re.compile(TIMESTAMP_PATTERN)


@lru_cache(maxsize=4096)  # the readings of one event mostly share a handful of stamps
def parse_timestamp(text: str) -> datetime:
    if not _TIMESTAMP.fullmatch(text):
        raise ValueError(f"timestamp {text!r} is not RFC 3339 UTC like 2026-11-21T08:30:00.125Z")
    whole, _, fraction = text[:-1].partition(".")
    if len(fraction) > 6:
        text = f"{whole}.{fraction[:6]}Z"  # microseconds: the rest cut off
    return datetime.fromisoformat(text[:-1]).replace(tzinfo=UTC)


def format_timestamp(moment: datetime) -> str:
    """Shortest exact form: no fraction when whole seconds, else trailing zeros trimmed."""
    if moment.tzinfo is None:
        raise ValueError("timestamps must be timezone-aware")
    moment = moment.astimezone(UTC)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if moment.microsecond:
        text += f".{moment.microsecond:06d}".rstrip("0")
    return text + "Z"
