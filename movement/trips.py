"""Trip segmentation (pure): where a vehicle's drives begin and end, from its readings.

A trip is a run of moving instants (speed at or above ``moving_kmh``) with no gap longer than
``max_gap_s`` between them (a long stop or a hole in the data ends it) and no ignition-off in
between; trips shorter than ``min_duration_s`` are dropped. The defaults are DIMO's segment
defaults (telemetry-api schema/segments.graphqls: max gap 300 s, minimum segment 240 s).
Distance: the odometer's advance when it reported twice within the trip, else the integral of
speed, else the GPS path.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from movement.proof import DEFAULT_TOLERANCES, Fix, Sample, path_km, speed_integral_km, usable_fixes


@dataclass(frozen=True, slots=True)
class TripRules:
    moving_kmh: float = 3.0
    max_gap_s: float = 300.0
    min_duration_s: float = 240.0


DEFAULT_RULES = TripRules()


@dataclass(frozen=True, slots=True)
class Trip:
    start: datetime
    end: datetime
    distance_km: float
    distance_source: str  # "odometer", "speed" or "gps"
    start_fix: Fix | None
    end_fix: Fix | None

    @property
    def duration_s(self) -> float:
        return (self.end - self.start).total_seconds()


def _runs(speeds: Sequence[Sample], ignition_off: Sequence[datetime],
          rules: TripRules) -> list[tuple[datetime, datetime]]:
    moving = sorted(s.ts for s in speeds if s.value >= rules.moving_kmh)
    offs = sorted(ignition_off)
    runs: list[tuple[datetime, datetime]] = []
    for ts in moving:
        if runs:
            start, end = runs[-1]
            gap = (ts - end).total_seconds()
            # an ignition-off in (end, ts]: binary search, a month of 1 Hz data stays linear
            switched_off = bisect.bisect_right(offs, end) < bisect.bisect_right(offs, ts)
            if gap <= rules.max_gap_s and not switched_off:
                runs[-1] = (start, ts)
                continue
        runs.append((ts, ts))
    return runs


def _within(items: Sequence[Sample], start: datetime, end: datetime) -> list[Sample]:
    """The samples in [start, end] of a time-ordered list."""
    first = bisect.bisect_left(items, start, key=lambda s: s.ts)
    return list(items[first:bisect.bisect_right(items, end, key=lambda s: s.ts)])


def _distance(start: datetime, end: datetime, speeds: Sequence[Sample], odometer: Sequence[Sample],
              fixes: Sequence[Fix]) -> tuple[float, str]:
    readings = sorted(_within(odometer, start, end), key=lambda s: s.ts)
    if len(readings) >= 2 and readings[-1].value >= readings[0].value:
        return readings[-1].value - readings[0].value, "odometer"
    integral = speed_integral_km(_within(speeds, start, end), DEFAULT_TOLERANCES)
    if integral is not None:
        return integral, "speed"
    return path_km(fixes, DEFAULT_TOLERANCES), "gps"  # the trip's fixes


def _nearest(fixes: Sequence[Fix], at: datetime) -> Fix | None:
    return min(fixes, key=lambda f: abs((f.ts - at).total_seconds()), default=None)


def segment(speeds: Sequence[Sample], *, ignition: Sequence[Sample] = (), odometer: Sequence[Sample] = (),
            fixes: Sequence[Fix] = (), rules: TripRules = DEFAULT_RULES) -> list[Trip]:
    """The trips in these readings, oldest first."""
    offs = [s.ts for s in ignition if s.value < 0.5]
    usable, _ = usable_fixes(fixes, DEFAULT_TOLERANCES)
    speeds, odometer = sorted(speeds, key=lambda s: s.ts), sorted(odometer, key=lambda s: s.ts)
    trips = []
    for start, end in _runs(speeds, offs, rules):
        if (end - start).total_seconds() < rules.min_duration_s:
            continue
        window = usable[bisect.bisect_left(usable, start, key=lambda f: f.ts):
                        bisect.bisect_right(usable, end, key=lambda f: f.ts)]
        distance, source = _distance(start, end, speeds, odometer, window)
        trips.append(Trip(start, end, round(distance, 3), source, _nearest(window, start),
                          _nearest(window, end)))
    return trips
