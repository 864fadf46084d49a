"""Trip segmentation: drives split at long stops, data gaps and ignition-off; short ones dropped."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from movement.proof import Fix, Sample
from movement.trips import TripRules, segment

T0 = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)


def drive(start_s: int, seconds: int, kmh: float = 50.0) -> list[Sample]:
    return [Sample(T0 + timedelta(seconds=start_s + i), kmh) for i in range(seconds)]


def test_one_drive_is_one_trip_with_its_distance_from_the_odometer():
    odometer = [Sample(T0 + timedelta(seconds=10), 1000.0), Sample(T0 + timedelta(seconds=500), 1006.5)]
    fixes = [Fix(T0 + timedelta(seconds=s), 52.5 + s * 1e-4, 13.4) for s in range(0, 600, 10)]
    (trip,) = segment(drive(0, 600), odometer=odometer, fixes=fixes)
    assert (trip.start, trip.end) == (T0, T0 + timedelta(seconds=599))
    assert (trip.distance_km, trip.distance_source) == (6.5, "odometer")
    assert trip.start_fix is not None and trip.start_fix.ts == T0
    assert trip.end_fix is not None and trip.end_fix.ts == T0 + timedelta(seconds=590)


def test_without_odometer_the_speed_integral_gives_the_distance():
    (trip,) = segment(drive(0, 601, kmh=36.0))  # 36 km/h for 600 s = 6 km
    assert trip.distance_source == "speed" and abs(trip.distance_km - 6.0) < 0.01


def test_a_long_stop_or_a_data_gap_splits_the_drive_and_a_short_hop_is_dropped():
    speeds = drive(0, 300) + drive(300, 400, kmh=0.0) + drive(700, 300) + drive(1400, 300) + drive(2000, 60)
    trips = segment(speeds)
    assert [(t.start - T0).total_seconds() for t in trips] == [0, 700, 1400]  # the 60 s hop is too short


def test_switching_the_ignition_off_ends_a_trip_even_after_a_short_stop():
    speeds = drive(0, 300) + drive(330, 300)
    ignition = [Sample(T0 + timedelta(seconds=310), 0.0), Sample(T0 + timedelta(seconds=320), 1.0)]
    assert len(segment(speeds)) == 1
    assert len(segment(speeds, ignition=ignition)) == 2


@given(st.lists(st.tuples(st.integers(0, 20_000), st.floats(0, 200)), max_size=300),
       st.floats(60, 900), st.floats(0, 600))
def test_trips_are_ordered_disjoint_and_long_enough(points, gap, minimum):
    speeds = [Sample(T0 + timedelta(seconds=s), v) for s, v in points]
    trips = segment(speeds, rules=TripRules(max_gap_s=gap, min_duration_s=minimum))
    for trip in trips:
        assert trip.duration_s >= minimum and trip.distance_km >= 0
    for a, b in itertools.pairwise(trips):
        assert a.end < b.start and (b.start - a.end).total_seconds() > gap
