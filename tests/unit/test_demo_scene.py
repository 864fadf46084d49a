"""The demo places its simulated drives, and waits for its real-time one, so that each is proved
on one UTC day, whatever the hour the demo runs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from motus.demo_movement import scene_end, wait_for_one_day

instants = st.datetimes(min_value=datetime(2000, 1, 2), max_value=datetime(2100, 1, 1),
                        timezones=st.just(UTC))
spans = st.timedeltas(min_value=timedelta(seconds=1), max_value=timedelta(hours=23))


@given(instants, spans)
def test_the_scene_ends_by_now_and_lies_in_one_day(now, span):
    end = scene_end(now, span)
    assert end <= now
    assert (end - span).date() == end.date()
    assert now - end <= span + timedelta(seconds=1)  # never older than it has to be


@given(instants, spans)
def test_a_scene_that_fits_today_ends_now(now, span):
    if (now - span).date() == now.date():
        assert scene_end(now, span) == now


def test_a_scene_across_midnight_ends_just_before_it():
    now = datetime(2026, 12, 1, 0, 4, 30, tzinfo=UTC)
    assert scene_end(now, timedelta(minutes=11)) == datetime(2026, 11, 30, 23, 59, 59, tzinfo=UTC)


def test_a_scene_of_a_day_or_more_cannot_fit_and_ends_now():
    now = datetime(2026, 12, 1, 12, tzinfo=UTC)
    assert scene_end(now, timedelta(days=1)) == now


@given(instants, st.floats(min_value=0, max_value=3600))
def test_after_the_wait_a_real_time_drive_ends_on_the_day_it_starts(now, seconds):
    wait = wait_for_one_day(now, seconds)
    start = now + timedelta(seconds=wait)
    assert start.date() == (start + timedelta(seconds=seconds)).date()
    if (now + timedelta(seconds=seconds)).date() == now.date():
        assert wait == 0


def test_a_drive_that_would_cross_midnight_waits_past_it():
    assert wait_for_one_day(datetime(2026, 11, 30, 23, 59, 50, tzinfo=UTC), 45) == 11.0
