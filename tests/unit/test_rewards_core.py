"""The pure cores of the money side: exact splits, streaks, coverage, epoch settlement, the ledger.

Everything here is computed from values built by hand (no database): rewards.money,
rewards.streaks, rewards.coverage, rewards.epoch and rewards.ledger.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import random
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from datetime import date, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import TypeVar
from uuid import UUID, uuid4

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rewards.bylaws import Bylaws, MemberSplit, Purpose, check_bylaws, parse_bylaws
from rewards.coverage import covered_days, covered_now, day_starts, refusal, week_members
from rewards.epoch import (
    EpochInputs,
    NetworkTerms,
    Settlement,
    adjustment,
    payout_leaves,
    payout_tree,
    settle,
)
from rewards.knob import Knob
from rewards.ledger import (
    GENESIS_HASH,
    MONEY,
    NETWORK_FEES,
    NETWORK_ISSUANCE,
    TOKENS,
    Anchor,
    Entry,
    Posting,
    Transaction,
    UnbalancedTransaction,
    balances,
    chain,
    chain_hash,
    driver_account,
    entry_body,
    imbalance,
    transaction,
    verify,
)
from rewards.money import BPS, split_by_weights
from rewards.records import Interval, KnobSetting, LicenceTerms, Membership, Strike
from rewards.streaks import LEVELS, PROVEN_WEEK_POINTS, Streak, advance, points_for
from rewards.weeks import Week

EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "examples" / "bylaws.toml"
NETWORK_FEE = 500
EXAMPLE_BYLAWS = parse_bylaws(EXAMPLE.read_text(encoding="utf-8"), network_fee_bps=NETWORK_FEE)

WEEK = Week(2026, 10)
EPOCH = str(WEEK)
INDEX = 10  # WEEK's index from the genesis week in the hand-built examples
TERMS = NetworkTerms(network_fee_bps=NETWORK_FEE, weekly_pool=1_000_000_000, pool_decay_bps=1000,
                     genesis=WEEK.shifted(-INDEX))
DAY_STARTS = day_starts(WEEK.first_day)
T = TypeVar("T")

NON_LOCATION = ("non-location",)
LOCATION = ("location",)
BOTH = ("non-location", "location")


def at(days: float) -> datetime:
    """An instant ``days`` after the start of WEEK (Monday 00:00 UTC)."""
    return WEEK.start + timedelta(days=days)


def make_bylaws(member_share: int = 8000, operator_fee: int = 1500, *, network_fee: int = NETWORK_FEE,
                privileges: Sequence[str] = BOTH, min_price: int = 0,
                split: MemberSplit = MemberSplit.VEHICLE_DAYS) -> Bylaws:
    return check_bylaws({
        "name": "Test Union",
        "purpose": "Pool vehicle data for research.",
        "member_share_bps": member_share,
        "operator_fee_bps": operator_fee,
        "privileges": list(privileges),
        "allowed_purposes": ["research", "maintenance", "safety"],
        "forbidden_purposes": ["marketing"],
        "min_price_minor": min_price,
        "admission": "open",
        "member_split": split.value,
        "strike": {"called_by": "operator"},
    }, network_fee_bps=network_fee)


def make_licence(union: UUID, *, price: int = 300, scope: tuple[str, ...] = NON_LOCATION,
                 purpose: Purpose = Purpose.RESEARCH, developer: UUID | None = None,
                 licence_id: UUID | None = None, starts: date | None = None, ends: date | None = None,
                 revoked_at: datetime | None = None) -> LicenceTerms:
    starts = WEEK.first_day - timedelta(days=30) if starts is None else starts
    return LicenceTerms(
        id=licence_id or uuid4(), union_id=union, developer_id=developer or uuid4(), purpose=purpose,
        scope=scope, starts=starts, ends=ends or starts + timedelta(days=90), price_minor=price,
        granted_at=datetime.combine(starts, datetime.min.time(), tzinfo=WEEK.start.tzinfo),
        revoked_at=revoked_at)


@dataclasses.dataclass
class Fleet:
    """Vehicles with owners, their unions' bylaws, memberships, knobs, strikes and licences."""

    owners: dict[UUID, UUID]  # vehicle -> driver
    unions: list[UUID]
    bylaws: dict[UUID, Bylaws | None]
    memberships: list[Membership]
    knobs: dict[UUID, list[KnobSetting]] = dataclasses.field(default_factory=dict)
    strikes: list[Strike] = dataclasses.field(default_factory=list)
    licences: list[LicenceTerms] = dataclasses.field(default_factory=list)
    proven: dict[UUID, frozenset[int]] = dataclasses.field(default_factory=dict)
    rows_served: dict[tuple[UUID, UUID], int] = dataclasses.field(default_factory=dict)
    terms: NetworkTerms = TERMS

    @property
    def vehicles(self) -> list[UUID]:
        return list(self.owners)

    def inputs(self) -> EpochInputs:
        return EpochInputs(WEEK, self.owners, self.proven, self.licences,
                           week_members(WEEK.first_day, self.memberships, self.knobs), self.bylaws,
                           self.strikes, self.rows_served)

    def shuffled_inputs(self, rnd: random.Random) -> EpochInputs:
        def mixed(items: Iterable[T]) -> list[T]:
            out = list(items)
            rnd.shuffle(out)
            return out

        members = week_members(WEEK.first_day, mixed(self.memberships), dict(mixed(self.knobs.items())))
        return EpochInputs(
            WEEK, dict(mixed(self.owners.items())), dict(mixed(self.proven.items())), mixed(self.licences),
            {union: mixed(weeks) for union, weeks in mixed(members.items())},
            dict(mixed(self.bylaws.items())), tuple(mixed(self.strikes)),
            dict(mixed(self.rows_served.items())))

    def settle(self) -> Settlement:
        return settle(self.inputs(), self.terms)


def make_fleet(n: int, *, unions: int = 1, bylaws: Bylaws = EXAMPLE_BYLAWS, price: int = 300) -> Fleet:
    """``n`` vehicles, each with its own driver, members of ``unions`` unions (round robin) since
    well before WEEK, each proving movement every week; one running licence per union."""
    union_ids = [uuid4() for _ in range(unions)]
    owners = {uuid4(): uuid4() for _ in range(n)}
    memberships = [Membership(v, d, union_ids[i % unions], Interval(at(-60)))
                   for i, (v, d) in enumerate(owners.items())]
    return Fleet(owners=owners, unions=union_ids, bylaws=dict.fromkeys(union_ids, bylaws),
                 memberships=memberships, licences=[make_licence(u, price=price) for u in union_ids],
                 proven={v: frozenset(range(INDEX + 1)) for v in owners})


def amount_to(txns: Iterable[Transaction], account: str, asset: str) -> int:
    return sum(p.amount for t in txns for p in t.postings if p.account == account and p.asset == asset)


def postings_of(txns: Iterable[Transaction]) -> list[Posting]:
    return [p for t in txns for p in t.postings]


# =============================================================================================
# money: largest remainder
# =============================================================================================

WEIGHTS = st.dictionaries(st.text("abcdefgh", min_size=1, max_size=3),
                          st.one_of(st.integers(0, 50), st.integers(0, 10**12)), min_size=1, max_size=8
                          ).filter(lambda w: any(w.values()))


@given(total=st.one_of(st.integers(0, 100), st.integers(0, 10**15)), weights=WEIGHTS,
       rnd=st.randoms(use_true_random=False))
def test_split_by_weights_is_exact_proportional_and_order_free(total, weights, rnd):
    shares = split_by_weights(total, weights)
    assert set(shares) == set(weights)
    assert sum(shares.values()) == total
    whole = sum(weights.values())
    for key, weight in weights.items():
        floor, remainder = divmod(total * weight, whole)
        assert shares[key] - floor in ({0} if remainder == 0 else {0, 1}), key
    items = list(weights.items())
    rnd.shuffle(items)
    assert split_by_weights(total, dict(items)) == shares


@given(total=st.integers(0, 10**9), weights=WEIGHTS)
def test_split_by_weights_gives_the_leftover_units_to_the_largest_remainders(total, weights):
    shares = split_by_weights(total, weights)
    whole = sum(weights.values())
    got_one = [(total * w) % whole for k, w in weights.items() if shares[k] > total * w // whole]
    passed_over = [(total * w) % whole for k, w in weights.items() if shares[k] == total * w // whole]
    if got_one and passed_over:
        assert min(got_one) >= max(passed_over)


def test_split_ties_are_broken_by_key():
    assert split_by_weights(1, {"b": 1, "a": 1}) == {"a": 1, "b": 0}
    assert split_by_weights(2, {"c": 1, "b": 1, "a": 1}) == {"a": 1, "b": 1, "c": 0}
    assert split_by_weights(5, {"x": 0, "y": 3}) == {"x": 0, "y": 5}
    assert split_by_weights(0, {"x": 0, "y": 0}) == {"x": 0, "y": 0}


def test_split_refuses_negative_totals_negative_weights_and_no_weight():
    with pytest.raises(ValueError, match="negative amount"):
        split_by_weights(-1, {"a": 1})
    with pytest.raises(ValueError, match="must not be negative"):
        split_by_weights(10, {"a": 2, "b": -1})
    with pytest.raises(ValueError, match="no positive weight"):
        split_by_weights(10, {"a": 0})


# =============================================================================================
# streaks
# =============================================================================================


def total_points(proven: set[int], last_week: int) -> int:
    streak, total = Streak(), 0
    for week in range(last_week + 1):
        streak, points = advance(streak, week in proven)
        total += points
    return total


@st.composite
def proven_sets(draw: st.DrawFn) -> tuple[set[int], set[int]]:
    """(A, B) with A a subset of B, both within weeks 0..119; B made of runs so streaks grow long."""
    runs = draw(st.lists(st.tuples(st.integers(0, 119), st.integers(1, 45)), max_size=5))
    scattered = draw(st.sets(st.integers(0, 119), max_size=20))
    b = {w for start, length in runs for w in range(start, min(start + length, 120))} | scattered
    keep = draw(st.lists(st.booleans(), min_size=len(b), max_size=len(b)))
    a = {w for w, kept in zip(sorted(b), keep, strict=True) if kept}
    return a, b


@settings(max_examples=150)
@given(sets=proven_sets(), week=st.integers(0, 119))
def test_more_proven_weeks_never_lower_the_total_points(sets, week):
    a, b = sets
    assert total_points(b, week) >= total_points(a, week)


@settings(max_examples=150)
@given(sets=proven_sets(), week=st.integers(0, 119))
def test_more_proven_weeks_never_lower_a_proven_weeks_points(sets, week):
    a, b = sets
    if week in a:
        assert points_for(week, b)[1] >= points_for(week, a)[1]


def test_the_fourth_consecutive_proven_week_reaches_level_one():
    weeks = {0, 1, 2, 3}
    assert [points_for(w, weeks)[1] for w in range(4)] == [PROVEN_WEEK_POINTS] * 3 + [2000]
    streak, points = points_for(3, weeks)
    assert streak == Streak(4, 0) and streak.level == 1
    assert points == LEVELS[1][1] + PROVEN_WEEK_POINTS == 2000


def test_a_missed_week_earns_nothing_and_pauses_the_streak():
    assert points_for(4, {0, 1, 2, 3}) == (Streak(4, 1), 0)
    assert points_for(5, {0, 1, 2, 3, 5})[1] == 2000  # the streak resumes at level 1 (5 weeks)
    assert advance(Streak(40, 0), False) == (Streak(40, 1), 0)


def test_three_missed_weeks_in_a_row_drop_one_level():
    proven = set(range(25))  # 25 weeks: level 2
    assert points_for(24, proven)[0].level == 2
    assert points_for(26, proven)[0] == Streak(25, 2)  # two misses: still level 2
    assert points_for(27, proven)[0] == Streak(LEVELS[1][0], 3)  # three: the minimum of level 1
    assert points_for(28, proven | {28}) == (Streak(LEVELS[1][0] + 1, 0), 2000)
    # from level 3, every third miss in a row drops one more level
    long = set(range(40))
    assert [points_for(39 + k, long)[0].level for k in range(1, 10)] == [3, 3, 2, 2, 2, 1, 1, 1, 0]
    assert points_for(42, long)[0].weeks == LEVELS[2][0]


# =============================================================================================
# coverage: the week count agrees with the one-instant judge
# =============================================================================================

HOURS = st.integers(-10 * 24, 9 * 24)  # hour granularity: day starts (h % 24 == 0) come up often


def instants() -> st.SearchStrategy[datetime]:
    return HOURS.map(lambda h: WEEK.start + timedelta(hours=h))


def mostly(value: st.SearchStrategy[T], otherwise: st.SearchStrategy[T]) -> st.SearchStrategy[T]:
    """``value`` seven times in eight (so that most generated worlds cover someone)."""
    return st.integers(0, 7).flatmap(lambda i: otherwise if i == 0 else value)


@st.composite
def memberships(draw: st.DrawFn, vehicle: UUID, owner: UUID, union: UUID) -> Membership:
    joined = draw(mostly(st.just(at(-30)), instants()))
    leaving: st.SearchStrategy[datetime | None] = st.integers(1, 10 * 24).map(
        lambda h: joined + timedelta(hours=h))
    left = draw(mostly(st.none(), leaving))
    pauses: list[Interval] = []
    t = joined
    for _ in range(draw(mostly(st.just(0), st.integers(1, 2)))):
        start = max(t, at(-2)) + timedelta(hours=draw(st.integers(1, 72)))
        length = draw(st.none() | st.integers(1, 72))
        end = None if length is None else start + timedelta(hours=length)
        pauses.append(Interval(start, end))
        if end is None:
            break
        t = end
    return Membership(vehicle, owner, union, Interval(joined, left), tuple(pauses))


@st.composite
def knob_history(draw: st.DrawFn, driver: UUID) -> list[KnobSetting]:
    level = mostly(st.just(Knob.LOCATION), st.sampled_from(list(Knob)))
    settings_ = draw(st.lists(st.tuples(instants(), level), max_size=3))
    return [KnobSetting(driver, when, int(level)) for when, level in sorted(settings_, key=lambda s: s[0])]


@st.composite
def licences(draw: st.DrawFn, union: UUID, developer: UUID, licence_id: UUID) -> LicenceTerms:
    starts = WEEK.first_day + timedelta(days=draw(mostly(st.integers(-30, 0), st.integers(-3, 6))))
    return make_licence(
        union, price=draw(mostly(st.integers(300, 3000), st.integers(0, 600))),
        scope=draw(mostly(st.just(NON_LOCATION), st.sampled_from([LOCATION, BOTH]))),
        purpose=draw(mostly(st.sampled_from([Purpose.RESEARCH, Purpose.SAFETY]),
                            st.sampled_from([Purpose.MARKETING, Purpose.FLEET]))),
        developer=developer, licence_id=licence_id, starts=starts,
        ends=starts + timedelta(days=draw(mostly(st.integers(40, 90), st.integers(1, 10)))),
        revoked_at=draw(mostly(st.none(), instants())))


@st.composite
def strikes(draw: st.DrawFn, unions: Sequence[UUID], developers: Sequence[UUID]) -> Strike:
    start = draw(instants())
    end = draw(st.none() | st.integers(1, 5 * 24).map(lambda h: start + timedelta(hours=h)))
    return Strike(draw(st.sampled_from(unions)), draw(st.none() | st.sampled_from(developers)),
                  Interval(start, end), reason=draw(st.sampled_from(["", "unpaid"])))


def id_maker(rnd: random.Random) -> Callable[[], UUID]:
    """Random ids that never repeat within one example, as primary keys never do: the low 32
    bits count (while shrinking, Hypothesis' random gives the same small numbers again)."""
    counter = itertools.count(1)
    return lambda: UUID(int=(rnd.getrandbits(96) << 32) | next(counter), version=4)


@dataclasses.dataclass
class CoverageWorld:
    licence: LicenceTerms
    memberships: list[Membership]
    knobs: dict[UUID, list[KnobSetting]]
    bylaws: Bylaws | None
    strikes: list[Strike]


@st.composite
def coverage_worlds(draw: st.DrawFn) -> CoverageWorld:
    new_id = id_maker(draw(st.randoms(use_true_random=False)))
    union, other, developer = new_id(), new_id(), new_id()
    bylaws = draw(mostly(st.builds(make_bylaws, privileges=st.sampled_from([NON_LOCATION, BOTH]),
                                   min_price=st.integers(0, 400)), st.none()))
    drivers = [new_id() for _ in range(draw(st.integers(1, 3)))]
    members = [draw(memberships(new_id(), draw(st.sampled_from(drivers)),
                                draw(st.sampled_from([union, union, other]))))
               for _ in range(draw(st.integers(1, 6)))]
    knobs = {d: draw(knob_history(d)) for d in drivers}
    some_strikes = st.lists(strikes([union, other], [developer, new_id()]), max_size=2)
    strike_list = draw(mostly(st.just([]), some_strikes))
    return CoverageWorld(draw(licences(union, developer, new_id())), members, knobs, bylaws, strike_list)


@settings(max_examples=200, deadline=None)
@given(world=coverage_worlds())
def test_covered_days_counts_the_day_starts_the_one_instant_judge_accepts(world):
    w = world
    members = week_members(WEEK.first_day, w.memberships, w.knobs)
    got = covered_days(WEEK.first_day, w.licence, members, w.bylaws, w.strikes)
    expected: dict[UUID, int] = {}
    for m in w.memberships:  # a vehicle's stretches of membership add up
        days = sum(refusal(w.licence, m, w.knobs, w.bylaws, w.strikes, t) is None for t in DAY_STARTS)
        if days:
            expected[m.vehicle_id] = expected.get(m.vehicle_id, 0) + days
    assert got == expected
    for t in DAY_STARTS:  # and each day start's list is what covered_days counted
        now = covered_now(w.licence, w.memberships, w.knobs, w.bylaws, w.strikes, t)
        assert set(now) <= set(got)


def test_a_vehicle_that_leaves_and_rejoins_in_the_week_is_covered_on_both_stretches():
    union, vehicle, driver = uuid4(), uuid4(), uuid4()
    licence = make_licence(union)
    before = Membership(vehicle, driver, union, Interval(at(-10), at(1.5)))  # covers days 0, 1
    again = Membership(vehicle, driver, union, Interval(at(3.5), None))  # covers days 4, 5, 6
    judged = sum(any(refusal(licence, m, {}, EXAMPLE_BYLAWS, [], t) is None for m in (before, again))
                 for t in DAY_STARTS)
    assert judged == 5
    for order in ([before, again], [again, before]):
        members = week_members(WEEK.first_day, order, {})
        assert covered_days(WEEK.first_day, licence, members, EXAMPLE_BYLAWS, []) == {vehicle: 5}


class TestCoveredNow:
    def setup_method(self) -> None:
        self.union, self.vehicle, self.driver = uuid4(), uuid4(), uuid4()
        self.licence = make_licence(self.union)

    def covered(self, membership: Membership, when: datetime, *, strikes: Sequence[Strike] = (),
                knobs: dict[UUID, list[KnobSetting]] | None = None, licence: LicenceTerms | None = None,
                bylaws: Bylaws | None = EXAMPLE_BYLAWS) -> list[UUID]:
        return covered_now(licence or self.licence, [membership], knobs or {}, bylaws, strikes, when)

    def test_it_stops_listing_a_member_after_they_leave(self):
        m = Membership(self.vehicle, self.driver, self.union, Interval(at(-5), at(2.5)))
        assert self.covered(m, at(2.5) - timedelta(microseconds=1)) == [self.vehicle]
        assert self.covered(m, at(2.5)) == []
        assert self.covered(m, at(6)) == []
        assert refusal(self.licence, m, {}, EXAMPLE_BYLAWS, [], at(3)) == \
            "the vehicle is not a member of the licensing union"

    def test_it_stops_listing_a_member_while_paused(self):
        m = Membership(self.vehicle, self.driver, self.union, Interval(at(-5)), (Interval(at(1), at(3)),))
        assert self.covered(m, at(0.5)) == [self.vehicle]
        assert self.covered(m, at(1)) == []
        assert refusal(self.licence, m, {}, EXAMPLE_BYLAWS, [], at(2)) == "the vehicle's membership is paused"
        assert self.covered(m, at(3)) == [self.vehicle]

    def test_it_stops_listing_members_when_a_strike_starts(self):
        m = Membership(self.vehicle, self.driver, self.union, Interval(at(-5)))
        strike = Strike(self.union, None, Interval(at(4)), reason="fair pay")
        other_developer = Strike(self.union, uuid4(), Interval(at(0)))
        other_union = Strike(uuid4(), None, Interval(at(0)))
        assert self.covered(m, at(3.9), strikes=[strike, other_developer, other_union]) == [self.vehicle]
        assert self.covered(m, at(4), strikes=[strike]) == []
        assert self.covered(m, at(5), strikes=[other_developer, other_union]) == [self.vehicle]
        against_this_developer = Strike(self.union, self.licence.developer_id, Interval(at(0)))
        assert self.covered(m, at(5), strikes=[against_this_developer]) == []
        assert refusal(self.licence, m, {}, EXAMPLE_BYLAWS, [strike], at(5)) == \
            "the union is on strike: fair pay"

    def test_a_location_licence_does_not_cover_a_driver_whose_knob_is_vehicle(self):
        law = make_bylaws(privileges=BOTH)
        located = make_licence(self.union, scope=LOCATION, price=500)
        m = Membership(self.vehicle, self.driver, self.union, Interval(at(-5)))
        vehicle_knob = {self.driver: [KnobSetting(self.driver, at(-1), int(Knob.VEHICLE))]}
        location_knob = {self.driver: [KnobSetting(self.driver, at(-1), int(Knob.LOCATION))]}
        for knobs in ({}, vehicle_knob):  # VEHICLE is also the default for a knob never turned
            assert self.covered(m, at(1), knobs=knobs, licence=located, bylaws=law) == []
            reason = refusal(located, m, knobs, law, [], at(1))
            assert reason is not None and "does not share location data" in reason
        assert self.covered(m, at(1), knobs=location_knob, licence=located, bylaws=law) == [self.vehicle]

    def test_a_price_below_the_knobs_floor_is_refused(self):
        law = make_bylaws(privileges=BOTH, min_price=0)
        m = Membership(self.vehicle, self.driver, self.union, Interval(at(-5)))
        location_knob = {self.driver: [KnobSetting(self.driver, at(-1), int(Knob.LOCATION))]}
        cheap = make_licence(self.union, price=99)
        assert self.covered(m, at(1), licence=cheap, bylaws=law) == []
        reason = refusal(cheap, m, {}, law, [], at(1))
        assert reason is not None and "asks at least 100" in reason
        at_floor = make_licence(self.union, price=100)
        assert self.covered(m, at(1), licence=at_floor, bylaws=law) == [self.vehicle]
        cheap_location = make_licence(self.union, scope=LOCATION, price=299)
        assert self.covered(m, at(1), knobs=location_knob, licence=cheap_location, bylaws=law) == []
        fair = make_licence(self.union, scope=LOCATION, price=300)
        assert self.covered(m, at(1), knobs=location_knob, licence=fair, bylaws=law) == [self.vehicle]

    def test_a_private_knob_refuses_every_licence(self):
        m = Membership(self.vehicle, self.driver, self.union, Interval(at(-5)))
        knobs = {self.driver: [KnobSetting(self.driver, at(-1), int(Knob.PRIVATE)),
                               KnobSetting(self.driver, at(2), int(Knob.VEHICLE))]}
        assert self.covered(m, at(1), knobs=knobs) == []
        assert self.covered(m, at(2), knobs=knobs) == [self.vehicle]


# =============================================================================================
# epoch settlement
# =============================================================================================


@st.composite
def fleets(draw: st.DrawFn) -> Fleet:
    new_id = id_maker(draw(st.randoms(use_true_random=False)))
    network_fee = draw(st.integers(0, 1500))
    unions = [new_id() for _ in range(draw(st.integers(1, 2)))]
    bylaws: dict[UUID, Bylaws | None] = {}
    for union in unions:
        member_share = draw(st.integers(7000, BPS - network_fee))
        operator_fee = draw(st.integers(0, min(2500, BPS - network_fee - member_share)))
        bylaws[union] = make_bylaws(
            member_share, operator_fee, network_fee=network_fee,
            privileges=draw(st.sampled_from([NON_LOCATION, BOTH])), min_price=draw(st.integers(0, 300)),
            split=draw(st.sampled_from(list(MemberSplit))))
    drivers = [new_id() for _ in range(draw(st.integers(1, 4)))]
    owners = {new_id(): draw(st.sampled_from(drivers)) for _ in range(draw(st.integers(1, 6)))}
    index = draw(st.integers(0, 60))
    proven: dict[UUID, frozenset[int]] = {}
    for vehicle in owners:
        moved = draw(st.lists(st.booleans(), min_size=index + 1, max_size=index + 1))
        if any(moved) or draw(st.booleans()):
            proven[vehicle] = frozenset(w for w, m in enumerate(moved) if m)
    members = [draw(memberships(v, d, draw(st.sampled_from(unions))))
               for v, d in owners.items() if draw(st.integers(0, 4))]
    developers = [new_id() for _ in range(draw(st.integers(1, 2)))]
    licence_list = [draw(licences(draw(st.sampled_from(unions)), draw(st.sampled_from(developers)), new_id()))
                    for _ in range(draw(st.integers(0, 4)))]
    rows = {(lic.id, v): n for lic in licence_list for v in owners if (n := draw(st.integers(0, 20)))}
    terms = NetworkTerms(network_fee_bps=network_fee, weekly_pool=draw(st.integers(0, 10**12)),
                         pool_decay_bps=draw(st.integers(0, 5000)), genesis=WEEK.shifted(-index))
    return Fleet(owners=owners, unions=unions, bylaws=bylaws, memberships=members,
                 knobs={d: draw(knob_history(d)) for d in drivers},
                 strikes=draw(mostly(st.just([]), st.lists(strikes(unions, developers), max_size=2))),
                 licences=licence_list, proven=proven, rows_served=rows, terms=terms)


EPOCH_SETTINGS = settings(max_examples=80, deadline=None)


@EPOCH_SETTINGS
@given(fleet=fleets())
def test_every_transaction_of_an_epoch_balances_per_asset(fleet):
    for txn in fleet.settle().transactions:
        assert imbalance(txn.postings) == {}, txn.id
        assert txn.settles == EPOCH and txn.id.startswith(EPOCH + "/")


@EPOCH_SETTINGS
@given(fleet=fleets())
def test_an_epoch_conserves_tokens_and_money(fleet):
    s = fleet.settle()
    index = WEEK.index_from(fleet.terms.genesis)
    pool = fleet.terms.pool_for(WEEK)
    assert s.pool == pool
    moved = any(index in weeks for weeks in fleet.proven.values())
    tokens = balances(p for p in postings_of(s.transactions) if p.asset == TOKENS)
    to_drivers = sum(a for (_, account), a in tokens.items() if account.startswith("driver:"))
    assert to_drivers == (pool if moved else 0)
    assert tokens.get((TOKENS, NETWORK_ISSUANCE), 0) == -to_drivers

    money = balances(p for p in postings_of(s.transactions) if p.asset == MONEY)
    developers = -sum(a for (_, account), a in money.items() if account.startswith("developer:"))
    network = money.get((MONEY, NETWORK_FEES), 0)
    operators = sum(a for (_, account), a in money.items() if account.endswith(":operator"))
    drivers = sum(a for (_, account), a in money.items() if account.startswith("driver:"))
    assert developers == network + operators + drivers
    assert all(a == 0 for (_, account), a in money.items() if account.endswith(":members"))
    assert developers == sum(line.charge for line in s.licences)
    assert all(a >= 0 for (_, account), a in money.items() if not account.startswith("developer:"))


@EPOCH_SETTINGS
@given(fleet=fleets())
def test_each_licence_line_charges_the_covered_days_and_gives_members_at_least_their_share(fleet):
    s = fleet.settle()
    by_id = {lic.id: lic for lic in fleet.licences}
    for line in s.licences:
        licence, law = by_id[line.licence_id], fleet.bylaws[line.union_id]
        assert law is not None
        judged: dict[UUID, int] = {}
        for m in fleet.memberships:  # a vehicle's stretches of membership add up
            n = sum(refusal(licence, m, fleet.knobs, law, fleet.strikes, t) is None for t in DAY_STARTS)
            if n:
                judged[m.vehicle_id] = judged.get(m.vehicle_id, 0) + n
        assert (line.vehicles, line.vehicle_days) == (len(judged), sum(judged.values()))
        assert line.charge == licence.price_minor * line.vehicle_days // 30
        assert line.charge == line.network_fee + line.operator_fee + line.members_share
        assert line.members_share >= line.charge * law.member_share_bps // BPS
        assert line.network_fee <= -(-line.charge * fleet.terms.network_fee_bps // BPS)
    for developer in {lic.developer_id for lic in fleet.licences}:  # each pays exactly its lines
        lines = [line.charge for line in s.licences if line.developer_id == developer]
        assert amount_to(s.transactions, f"developer:{developer}", MONEY) == -sum(lines)


@EPOCH_SETTINGS
@given(fleet=fleets(), rnd=st.randoms(use_true_random=False))
def test_an_epoch_does_not_depend_on_the_order_of_its_inputs(fleet, rnd):
    s = fleet.settle()
    again = settle(fleet.shuffled_inputs(rnd), fleet.terms)
    assert again.transactions == s.transactions
    assert again.licences == s.licences and dict(again.points) == dict(s.points)
    assert payout_leaves(WEEK, again.transactions) == payout_leaves(WEEK, s.transactions)
    assert payout_tree(WEEK, again.transactions)[1].root == payout_tree(WEEK, s.transactions)[1].root


@EPOCH_SETTINGS
@given(fleet=fleets())
def test_only_movement_earns_tokens_and_only_coverage_earns_money(fleet):
    s = fleet.settle()
    index = WEEK.index_from(fleet.terms.genesis)
    assert set(s.points) == {v for v, weeks in fleet.proven.items() if index in weeks}
    covered = {m.vehicle_id for lic in fleet.licences for m in fleet.memberships for t in DAY_STARTS
               if refusal(lic, m, fleet.knobs, fleet.bylaws.get(lic.union_id), fleet.strikes, t) is None}
    for driver in set(fleet.owners.values()):
        theirs = [v for v, d in fleet.owners.items() if d == driver]
        if not any(v in s.points for v in theirs):
            assert amount_to(s.transactions, driver_account(driver), TOKENS) == 0
        if not any(v in covered for v in theirs):
            assert amount_to(s.transactions, driver_account(driver), MONEY) == 0


def test_a_vehicle_without_a_moved_week_gets_no_tokens():
    fleet = make_fleet(3)
    idle, earlier, moving = fleet.vehicles
    fleet.proven[idle] = frozenset()
    fleet.proven[earlier] = frozenset(range(INDEX))  # moved every week but this one
    s = fleet.settle()
    pool = TERMS.pool_for(WEEK)
    assert pool > 0 and set(s.points) == {moving}
    assert amount_to(s.transactions, driver_account(fleet.owners[idle]), TOKENS) == 0
    assert amount_to(s.transactions, driver_account(fleet.owners[earlier]), TOKENS) == 0
    assert amount_to(s.transactions, driver_account(fleet.owners[moving]), TOKENS) == pool


def test_no_vehicle_moved_issues_nothing():
    fleet = make_fleet(2)
    fleet.proven = {v: frozenset() for v in fleet.vehicles}
    s = fleet.settle()
    assert s.points == {} and all(p.asset != TOKENS for p in postings_of(s.transactions))


def test_tokens_follow_streak_points():
    fleet = make_fleet(2)
    veteran, newcomer = fleet.vehicles
    fleet.proven[newcomer] = frozenset({INDEX})  # first proven week: 1000 points; the veteran: 2000
    s = fleet.settle()
    assert dict(s.points) == {veteran: 2000, newcomer: 1000}
    assert TERMS.pool_for(WEEK) == 1_000_000_000
    # 2/3 and 1/3 of the pool; the unit left over goes to the larger remainder (the veteran's)
    assert amount_to(s.transactions, driver_account(fleet.owners[veteran]), TOKENS) == 666_666_667
    assert amount_to(s.transactions, driver_account(fleet.owners[newcomer]), TOKENS) == 333_333_333


def _exclude(fleet: Fleet, vehicle: UUID, how: str) -> None:
    """Make ``vehicle`` uncovered for all of WEEK, the way ``how`` says."""
    driver = fleet.owners[vehicle]
    i = next(i for i, m in enumerate(fleet.memberships) if m.vehicle_id == vehicle)
    m = fleet.memberships[i]
    if how == "knob private":
        fleet.knobs[driver] = [KnobSetting(driver, at(-1), int(Knob.PRIVATE))]
    elif how == "left":
        fleet.memberships[i] = dataclasses.replace(m, period=Interval(m.period.start, at(-1)))
    elif how == "paused":
        fleet.memberships[i] = dataclasses.replace(m, pauses=(Interval(at(-1)),))
    else:
        raise AssertionError(how)


@pytest.mark.parametrize("how", ["knob private", "left", "paused"])
def test_a_vehicle_not_covered_gets_no_money_from_the_licence(how):
    fleet = make_fleet(2)
    covered, excluded = fleet.vehicles
    _exclude(fleet, excluded, how)
    s = fleet.settle()
    [line] = s.licences
    assert (line.vehicles, line.vehicle_days) == (1, 7)
    assert line.charge == 300 * 7 // 30
    assert amount_to(s.transactions, driver_account(fleet.owners[excluded]), MONEY) == 0
    assert amount_to(s.transactions, driver_account(fleet.owners[covered]), MONEY) == line.members_share > 0
    # the excluded vehicle still earns its baseline tokens: movement, not coverage, earns those
    assert amount_to(s.transactions, driver_account(fleet.owners[excluded]), TOKENS) > 0


def test_a_strike_on_the_union_stops_its_licence_charging_anyone():
    fleet = make_fleet(2, unions=2)
    striking, working = fleet.unions
    fleet.strikes.append(Strike(striking, None, Interval(at(-1)), reason="fair pay"))
    s = fleet.settle()
    assert [line.union_id for line in s.licences] == [working]
    for membership in fleet.memberships:
        paid = amount_to(s.transactions, driver_account(membership.owner_id), MONEY)
        assert (paid > 0) == (membership.union_id == working)


def test_a_strike_from_midweek_charges_the_days_before_it():
    fleet = make_fleet(1)
    fleet.strikes.append(Strike(fleet.unions[0], None, Interval(at(2.5), at(5.5))))
    [line] = fleet.settle().licences
    assert line.vehicle_days == 4  # days 0, 1, 2 and 6


def test_rows_served_bylaws_split_by_readings_served():
    fleet = make_fleet(2, bylaws=make_bylaws(split=MemberSplit.ROWS_SERVED))
    busy, quiet = fleet.vehicles
    [licence] = fleet.licences
    fleet.rows_served = {(licence.id, busy): 30, (licence.id, quiet): 0}
    s = fleet.settle()
    [line] = s.licences
    assert amount_to(s.transactions, driver_account(fleet.owners[busy]), MONEY) == line.members_share
    assert amount_to(s.transactions, driver_account(fleet.owners[quiet]), MONEY) == 0


@st.composite
def balanced_amounts(draw: st.DrawFn) -> dict[tuple[str, str], int]:
    accounts = st.sampled_from(["driver:a", "driver:b", "developer:x", NETWORK_FEES, "union:u:members"])
    amounts: dict[tuple[str, str], int] = defaultdict(int)
    for asset in (MONEY, TOKENS):
        items = draw(st.lists(st.tuples(accounts, st.integers(-10**6, 10**6)), max_size=4))
        for account, amount in items:
            amounts[(asset, account)] += amount
        amounts[(asset, "external:payments-in")] -= sum(a for _, a in items)
    return dict(amounts)


@given(due=balanced_amounts(), posted=st.none() | balanced_amounts())
def test_adjustment_posts_exactly_the_difference(due, posted):
    posted = dict(due) if posted is None else posted
    earlier = WEEK.shifted(-2)
    adjusted = adjustment(WEEK, earlier, due, posted)
    nonzero = {k: v for k, v in due.items() if v} != {k: v for k, v in posted.items() if v}
    if not nonzero:
        assert adjusted is None
        return
    assert adjusted is not None
    assert imbalance(adjusted.postings) == {}
    assert adjusted.settles == str(earlier) and adjusted.id == f"{WEEK}/adjust/{earlier}"
    diff = balances(adjusted.postings)
    for key in set(due) | set(posted) | set(diff):
        assert due.get(key, 0) == posted.get(key, 0) + diff.get(key, 0), key


def test_adjustment_of_a_settled_epoch_after_late_data():
    fleet = make_fleet(3)
    posted = balances(postings_of(fleet.settle().transactions))
    assert adjustment(WEEK.shifted(1), WEEK, posted, dict(posted)) is None
    fleet.proven[fleet.vehicles[0]] = frozenset()  # its movement proof turned out false
    due = balances(postings_of(fleet.settle().transactions))
    adjusted = adjustment(WEEK.shifted(1), WEEK, due, posted)
    assert adjusted is not None and imbalance(adjusted.postings) == {}
    assert amount_to([adjusted], driver_account(fleet.owners[fleet.vehicles[0]]), TOKENS) < 0


# =============================================================================================
# ledger: double entry and the hash chain
# =============================================================================================

AT = WEEK.end.isoformat()


def ledger_transactions() -> list[Transaction]:
    return [
        transaction(f"{EPOCH}/issuance", "issuance", EPOCH, "baseline",
                    {(TOKENS, "driver:a"): 600, (TOKENS, "driver:b"): 400,
                     (TOKENS, NETWORK_ISSUANCE): -1000}),
        transaction(f"{EPOCH}/licence/1", "licence-charge", EPOCH, "7 vehicle-days",
                    {(MONEY, "developer:x"): -100, (MONEY, NETWORK_FEES): 5, (MONEY, "union:u:operator"): 15,
                     (MONEY, "union:u:members"): 80}),
        transaction(f"{EPOCH}/members/u", "members-share", EPOCH, "members' share",
                    {(MONEY, "driver:a"): 50, (MONEY, "driver:b"): 30, (MONEY, "union:u:members"): -80}),
    ]


def ledger() -> tuple[list[Entry], Anchor]:
    entries = chain(ledger_transactions(), AT, 1, GENESIS_HASH)
    return entries, Anchor(EPOCH, 1, entries[-1].seq, entries[-1].hash)


ROWS = len(chain(ledger_transactions(), AT, 1, GENESIS_HASH))


def forged(seq: int, after: Entry | None, *, txn: str = f"{EPOCH}/forged", amount: int = 500) -> Entry:
    """A row chained correctly after ``after`` (the genesis when None)."""
    prev = GENESIS_HASH if after is None else after.hash
    body = entry_body(seq, txn, "issuance", EPOCH, "forged", TOKENS, "driver:mallory", amount, AT)
    return Entry(seq, txn, "issuance", EPOCH, "forged", TOKENS, "driver:mallory", amount, AT, prev,
                 chain_hash(prev, body))


def test_a_chained_ledger_verifies_clean():
    entries, anchor = ledger()
    assert [e.seq for e in entries] == list(range(1, ROWS + 1))
    assert entries[0].prev_hash == GENESIS_HASH
    assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(entries))
    assert verify(entries, [anchor]) == []


def test_chaining_continues_from_a_later_row():
    entries, _ = ledger()
    more = chain(ledger_transactions()[:1], AT, ROWS + 1, entries[-1].hash)
    assert verify(entries + more) == []


def test_a_real_epoch_chains_and_verifies_clean():
    entries = chain(make_fleet(4, unions=2).settle().transactions, AT, 1, GENESIS_HASH)
    assert entries and verify(entries, [Anchor(EPOCH, 1, entries[-1].seq, entries[-1].hash)]) == []


@given(k=st.integers(1, ROWS), delta=st.integers(-1000, 1000).filter(bool))
def test_a_changed_amount_is_named(k, delta):
    entries, anchor = ledger()
    row = entries[k - 1]
    entries[k - 1] = dataclasses.replace(row, amount=row.amount + delta)
    problems = verify(entries, [anchor])
    assert any(p.startswith(f"row {k} changed: ") for p in problems), problems
    assert any(p.startswith(f"transaction {row.txn} does not balance") for p in problems)


@given(k=st.integers(1, ROWS - 1))
def test_a_changed_row_whose_hash_was_recomputed_breaks_the_link_to_the_next(k):
    entries, anchor = ledger()
    row = entries[k - 1]
    changed = dataclasses.replace(row, account="driver:mallory")
    entries[k - 1] = dataclasses.replace(changed, hash=chain_hash(changed.prev_hash, changed.body()))
    problems = verify(entries, [anchor])
    assert f"row {k + 1} does not follow the row before it (a row was removed or inserted before it)" \
        in problems


@given(k=st.integers(1, ROWS))
def test_a_removed_row_is_named(k):
    entries, anchor = ledger()
    removed = entries.pop(k - 1)
    problems = verify(entries, [anchor])
    if k < ROWS:
        assert f"row {k} removed: the numbering jumps from {k - 1} to {k + 1}" in problems
    else:  # the last row: only the epoch's record knows it was there
        assert f"epoch {EPOCH}: its last row {k} is not the one recorded when it closed" in problems
    assert any(p.startswith(f"transaction {removed.txn} does not balance") for p in problems)


def test_an_appended_forged_row_is_named_by_its_transaction_and_the_epochs_record():
    entries, anchor = ledger()
    row = forged(ROWS + 1, entries[-1])
    assert verify([*entries, row]) == [f"transaction {EPOCH}/forged does not balance: +500 MOTUS"]
    problems = verify([*entries, row], [anchor])
    assert f"row(s) {ROWS + 1} inserted: a row of epoch {EPOCH} outside the rows it closed with" in problems
    assert f"transaction {EPOCH}/forged does not balance: +500 MOTUS" in problems


@given(k=st.integers(1, ROWS))
def test_a_row_inserted_in_the_middle_is_named(k):
    entries, anchor = ledger()
    row = forged(k, entries[k - 1])  # repeats row k's number, chained after it
    tampered = [*entries[:k], row, *entries[k:]]
    problems = verify(tampered, [anchor])
    assert f"row {k} inserted: it repeats or goes back from row {k}" in problems
    if k < ROWS:
        assert f"row {k + 1} does not follow the row before it (a row was removed or inserted before it)" \
            in problems


def test_an_inserted_balanced_pair_with_the_rest_renumbered_is_caught_by_the_anchor():
    _, anchor = ledger()
    pair = transaction(f"{EPOCH}/forged", "issuance", EPOCH, "forged",
                       {(TOKENS, "driver:mallory"): 500, (TOKENS, NETWORK_ISSUANCE): -500})
    txns = ledger_transactions()
    rewritten = chain([*txns[:1], pair, *txns[1:]], AT, 1, GENESIS_HASH)
    problems = verify(rewritten, [anchor])
    assert f"epoch {EPOCH}: its last row {ROWS} is not the one recorded when it closed" in problems


def test_an_anchor_whose_head_is_not_the_last_row_is_named():
    entries, _ = ledger()
    wrong_head = Anchor(EPOCH, 1, ROWS, entries[-2].hash)
    assert verify(entries, [wrong_head]) == [
        f"epoch {EPOCH}: its last row {ROWS} is not the one recorded when it closed"]
    beyond = Anchor(EPOCH, 1, ROWS + 1, entries[-1].hash)
    assert verify(entries, [beyond]) == [
        f"epoch {EPOCH}: its last row {ROWS + 1} is not the one recorded when it closed"]
    short = Anchor(EPOCH, 1, ROWS - 1, entries[-2].hash)  # the last row lies outside the record
    assert verify(entries, [short]) == [
        f"row(s) {ROWS} inserted: a row of epoch {EPOCH} outside the rows it closed with"]


def test_an_unbalanced_transaction_cannot_be_built():
    with pytest.raises(UnbalancedTransaction, match="does not balance"):
        transaction("t", "licence-charge", EPOCH, "",
                    {(MONEY, "developer:x"): -100, (MONEY, NETWORK_FEES): 99})
    with pytest.raises(UnbalancedTransaction):  # money and tokens never offset each other
        transaction("t", "issuance", EPOCH, "", {(MONEY, "driver:a"): 5, (TOKENS, NETWORK_ISSUANCE): -5})
    with pytest.raises(UnbalancedTransaction):
        Transaction("t", "issuance", EPOCH, "", (Posting(TOKENS, "driver:a", 1),))
    postings = [Posting(MONEY, "a", 3), Posting(TOKENS, "b", -2), Posting(MONEY, "c", -3)]
    assert imbalance(postings) == {TOKENS: -2}
    ok = transaction("t", "x", EPOCH, "", {(MONEY, "b"): 5, (MONEY, "a"): -5, (MONEY, "z"): 0})
    assert ok.postings == (Posting(MONEY, "a", -5), Posting(MONEY, "b", 5))  # sorted, zeros left out


@given(member=st.integers(7000, 10_000), operator=st.integers(0, 2500), network=st.integers(0, 3000))
def test_the_members_share_is_guaranteed_even_if_the_network_fee_rose(member, operator, network):
    from rewards.epoch import fee_split

    bylaws = SimpleNamespace(member_share_bps=member, operator_fee_bps=operator)
    parts = fee_split(bylaws, network)  # type: ignore[arg-type]
    assert sum(parts.values()) == 10_000 and min(parts.values()) >= 0
    assert parts["members"] >= member
    assert parts["operator"] <= operator and parts["network"] <= network
    if member + operator + network <= 10_000:  # within the bylaws: fees exactly as set
        assert (parts["operator"], parts["network"]) == (operator, network)


@given(st.sets(st.integers(0, 80)), st.integers(0, 80))
def test_the_fast_streak_replay_is_advance_week_by_week(proven, week):
    from rewards.streaks import Streak, advance, points_for

    streak, points = Streak(), 0
    for w in range(week + 1):
        streak, points = advance(streak, w in proven)
    assert points_for(week, proven) == (streak, points)


@given(st.integers(-(2**53) + 1, 2**53 - 1), st.integers(0, 2**53 - 1))
def test_payout_lines_are_rfc8785_json(money, tokens):
    from protocol import jcs
    from rewards.epoch import payout_leaf
    from rewards.weeks import Week

    driver = str(uuid4())
    expected = jcs.dumps({"epoch": "2026-W47", "driver": driver, "amounts": {"EUR": money, "MOTUS": tokens}})
    assert payout_leaf(Week.parse("2026-W47"), driver, {"EUR": money, "MOTUS": tokens}) == expected


@given(st.lists(st.tuples(st.text(max_size=8), st.integers(1, 10**9)), min_size=1, max_size=6))
def test_chained_entries_hash_what_entry_body_encodes(parts):
    from rewards.ledger import Posting, Transaction, chain, entry_body

    postings = tuple(Posting("EUR", f"acct:{name}", amount) for name, amount in parts)
    sink = Posting("EUR", "sink", -sum(a for _, a in parts))
    txn = Transaction("t/1", "kind \u00e9\"", "2026-W47", "memo\n\u2603", (*postings, sink))
    for e in chain([txn], "2026-11-30T00:00:00+00:00", 7, bytes(32)):
        assert e.body() == entry_body(e.seq, e.txn, e.kind, e.settles, e.memo, e.asset, e.account,
                                      e.amount, e.at)
        assert hashlib.sha256(e.prev_hash + e.body()).digest() == e.hash


def test_a_balanced_forgery_appended_after_the_last_epoch_is_named():
    entries, anchor = ledger()
    last = entries[-1]
    forged = chain([transaction("2026-W11/members/x", "members-share", "2026-W11", "forged",
                                {(MONEY, "driver:me"): 10**6, (MONEY, "network:fees"): -10**6})],
                   last.at, last.seq + 1, last.hash)
    assert verify([*entries, *forged]) == []  # the chain alone cannot tell
    problems = verify([*entries, *forged], [anchor])
    assert f"row(s) {last.seq + 1} inserted: a row of epoch 2026-W11 outside the rows it closed with" \
        in problems
    topup = chain([transaction("topup/d/p", "top-up", "", "paid", {(MONEY, "developer:d"): 5,
                                                                    (MONEY, "external:payments-in"): -5})],
                  last.at, last.seq + 1, last.hash)
    assert verify([*entries, *topup], [anchor]) == []  # money paid in lives outside epochs
