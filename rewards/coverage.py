"""Which vehicles a licence covers: membership, the owner's knob, the union's bylaws and strikes.

Pure: the caller passes the state (as stored, with history) and the instant. ``refusal`` explains
one vehicle at one instant; ``covered_days`` counts, for a week, the days each vehicle is covered,
judging each day at 00:00 UTC, the state at that instant. The two agree (a property test holds
them equal); the week count works on 7-bit day masks so an epoch over 100,000 vehicles stays fast.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from uuid import UUID

from rewards.bylaws import Bylaws, licensable
from rewards.knob import DEFAULT_KNOB, Knob, knob_allows, knob_refusal
from rewards.records import KnobSetting, LicenceTerms, Membership, Strike

DAYS = 7
ALL_DAYS = (1 << DAYS) - 1
KnobHistory = Mapping[UUID, Sequence[KnobSetting]]  # per driver, oldest first


def day_starts(week_start: date) -> list[datetime]:
    return [datetime.combine(week_start + timedelta(days=d), time(0), tzinfo=UTC) for d in range(DAYS)]


def knob_at(history: Sequence[KnobSetting], at: datetime) -> Knob:
    """The level in force at ``at``: the last one set at or before it, else the default."""
    i = bisect.bisect_right([s.at for s in history], at)
    return Knob(history[i - 1].level) if i else DEFAULT_KNOB


def licence_refusal(licence: LicenceTerms, bylaws: Bylaws | None, strikes: Iterable[Strike],
                    at: datetime) -> str | None:
    """Why the licence covers nobody at ``at``, or None."""
    if not licence.running_at(at):
        return "the licence is not running"
    if bylaws is None:
        return "the union has no bylaws in force"
    reasons = licensable(bylaws, licence.purpose, set(licence.privileges), licence.price_minor)
    if reasons:
        return "the union's bylaws refuse it: " + "; ".join(reasons)
    for strike in strikes:
        if strike.stops(licence, at):
            return f"the union is on strike{': ' + strike.reason if strike.reason else ''}"
    return None


def refusal(licence: LicenceTerms, membership: Membership | None, knobs: KnobHistory,
            bylaws: Bylaws | None, strikes: Iterable[Strike], at: datetime) -> str | None:
    """Why the licence does not cover this vehicle at ``at``, or None when it does."""
    whole = licence_refusal(licence, bylaws, strikes, at)
    if whole:
        return whole
    if membership is None or membership.union_id != licence.union_id or not membership.period.contains(at):
        return "the vehicle is not a member of the licensing union"
    if not membership.active_at(at):
        return "the vehicle's membership is paused"
    level = knob_at(knobs.get(membership.owner_id, ()), at)
    return knob_refusal(level, licence.privileges, licence.price_minor)


def covered_now(licence: LicenceTerms, memberships: Iterable[Membership], knobs: KnobHistory,
                bylaws: Bylaws | None, strikes: Sequence[Strike], at: datetime) -> list[UUID]:
    """The vehicles the licence covers at ``at``, sorted (``refusal`` for each, the licence's
    own part judged once)."""
    if licence_refusal(licence, bylaws, strikes, at) is not None:
        return []
    privileges, price = licence.privileges, licence.price_minor
    return sorted(m.vehicle_id for m in memberships
                  if m.union_id == licence.union_id and m.active_at(at)
                  and knob_allows(knob_at(knobs.get(m.owner_id, ()), at), privileges, price))


def _mask(days: Sequence[datetime], test: Callable[[datetime], bool]) -> int:
    return sum(1 << d for d, at in enumerate(days) if test(at))


@dataclass(frozen=True, slots=True)
class MemberWeek:
    """One membership's week: the days it is active and its owner's knob on each day."""

    vehicle_id: UUID
    days_active: int  # bit d: active at 00:00 UTC of day d
    levels: tuple[Knob, ...]


def week_members(week_start: date, memberships: Iterable[Membership],
                 knobs: KnobHistory) -> dict[UUID, list[MemberWeek]]:
    """Per union, its members' weeks (computed once per epoch, shared by every licence)."""
    days = day_starts(week_start)
    first, last = days[0], days[-1]
    unchanged = (DEFAULT_KNOB,) * DAYS
    out: dict[UUID, list[MemberWeek]] = {}
    levels_of: dict[UUID, tuple[Knob, ...]] = {}
    for m in memberships:
        whole_week = (not m.pauses and m.period.start <= first
                      and (m.period.end is None or m.period.end > last))
        active = ALL_DAYS if whole_week else _mask(days, m.active_at)
        if not active:
            continue
        levels = levels_of.get(m.owner_id)
        if levels is None:
            history = knobs.get(m.owner_id, ())
            if not history:
                levels = unchanged
            elif history[-1].at <= first:  # set before the week: one level all week
                levels = (Knob(history[-1].level),) * DAYS
            else:
                levels = tuple(knob_at(history, at) for at in days)
            levels_of[m.owner_id] = levels
        out.setdefault(m.union_id, []).append(MemberWeek(m.vehicle_id, active, levels))
    return out


def covered_days(week_start: date, licence: LicenceTerms, members: Mapping[UUID, list[MemberWeek]],
                 bylaws: Bylaws | None, strikes: Sequence[Strike]) -> dict[UUID, int]:
    """Days of the week each vehicle is covered by the licence (vehicles with none left out)."""
    days = day_starts(week_start)
    licence_mask = _mask(days, lambda at: licence_refusal(licence, bylaws, strikes, at) is None)
    if not licence_mask:
        return {}
    privileges, price = licence.privileges, licence.price_minor
    knob_masks: dict[tuple[Knob, ...], int] = {}
    out: dict[UUID, int] = {}
    for m in members.get(licence.union_id, ()):
        knob_mask = knob_masks.get(m.levels)
        if knob_mask is None:
            knob_mask = knob_masks[m.levels] = sum(
                1 << d for d, level in enumerate(m.levels) if knob_allows(level, privileges, price))
        covered = (m.days_active & licence_mask & knob_mask).bit_count()
        if covered:  # a car that left and rejoined within the week: its stretches add up
            out[m.vehicle_id] = out.get(m.vehicle_id, 0) + covered
    return out
