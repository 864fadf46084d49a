"""Baseline rewards: DIMO's streak levels, gated by proven movement instead of "any signal".

DIMO-Network/rewards-api (internal/services/streak.go): a connected week adds 1 to the streak and
earns its level's points; a missed week earns nothing and pauses the streak; every third missed
week in a row drops the streak to the minimum of the level below. Here a week counts only if the
vehicle has at least one day with a ``moved`` proof (movement/). A proven week also earns
``PROVEN_WEEK_POINTS`` (where DIMO adds points per connected device), so a new car earns from its
first proven week.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

#: (minimum streak weeks, points) per level, lowest first (DIMO's four levels).
LEVELS: tuple[tuple[int, int], ...] = ((0, 0), (4, 1000), (21, 2000), (36, 3000))
PROVEN_WEEK_POINTS = 1000
MISSES_PER_LEVEL_DROP = 3


@dataclass(frozen=True, slots=True)
class Streak:
    weeks: int = 0    # the streak: proven weeks counted toward the level
    missed: int = 0   # missed weeks in a row

    @property
    def level(self) -> int:
        """0-based level index into LEVELS."""
        return max(i for i, (minimum, _) in enumerate(LEVELS) if self.weeks >= minimum)


def advance(streak: Streak, proven: bool) -> tuple[Streak, int]:
    """The streak after one week, and the points that week earns."""
    if proven:
        after = Streak(streak.weeks + 1, 0)
        return after, LEVELS[after.level][1] + PROVEN_WEEK_POINTS
    missed = streak.missed + 1
    weeks = streak.weeks
    if missed % MISSES_PER_LEVEL_DROP == 0:
        weeks = LEVELS[max(streak.level - 1, 0)][0]
    return Streak(weeks, missed), 0


_MINIMUMS = tuple(minimum for minimum, _ in LEVELS)
_POINTS = tuple(points for _, points in LEVELS)


def _level(weeks: int) -> int:
    level = 0
    while level + 1 < len(_MINIMUMS) and weeks >= _MINIMUMS[level + 1]:
        level += 1
    return level


def points_for(week_index: int, proven_weeks: Iterable[int], first_week: int = 0) -> tuple[Streak, int]:
    """The streak at the end of week ``week_index`` and that week's points, replayed from
    ``first_week`` over the weeks (indices) in which the vehicle proved movement: ``advance``
    week by week, in plain integers (an epoch replays every proven vehicle's history)."""
    proven = proven_weeks if isinstance(proven_weeks, set | frozenset) else set(proven_weeks)
    weeks = missed = points = 0
    for week in range(first_week, week_index + 1):
        if week in proven:
            weeks, missed = weeks + 1, 0
            points = _POINTS[_level(weeks)] + PROVEN_WEEK_POINTS
        else:
            missed, points = missed + 1, 0
            if missed % MISSES_PER_LEVEL_DROP == 0:
                weeks = _MINIMUMS[max(_level(weeks) - 1, 0)]
    return Streak(weeks, missed), points
