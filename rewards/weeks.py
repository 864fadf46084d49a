"""Epochs are ISO 8601 weeks in UTC: Monday 00:00 to the next Monday 00:00."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from rewards.errors import EpochError

_WEEK = re.compile(r"^(\d{4})-W(\d{2})$")


@dataclass(frozen=True, slots=True, order=True)
class Week:
    year: int
    number: int

    @classmethod
    def parse(cls, text: str) -> Week:
        match = _WEEK.match(text.strip())
        if not match:
            raise EpochError(f"{text!r} is not an ISO week like 2026-W47")
        week = cls(int(match[1]), int(match[2]))
        if not 2000 <= week.year <= 9000:
            raise EpochError(f"{text!r}: epochs are weeks of the years 2000 to 9000")
        try:
            date.fromisocalendar(week.year, week.number, 1)
        except ValueError:
            raise EpochError(f"{text!r}: {week.year} has no week {week.number}") from None
        return week

    @classmethod
    def of(cls, day: date) -> Week:
        iso = day.isocalendar()
        return cls(iso.year, iso.week)

    def __str__(self) -> str:
        return f"{self.year}-W{self.number:02d}"

    @property
    def first_day(self) -> date:
        return date.fromisocalendar(self.year, self.number, 1)

    @property
    def start(self) -> datetime:
        return datetime.combine(self.first_day, time(0), tzinfo=UTC)

    @property
    def end(self) -> datetime:
        return self.start + timedelta(days=7)

    def shifted(self, weeks: int) -> Week:
        return Week.of(self.first_day + timedelta(weeks=weeks))

    def index_from(self, genesis: Week) -> int:
        """Weeks since ``genesis`` (0 for the genesis week itself, negative before it)."""
        return (self.first_day - genesis.first_day).days // 7
