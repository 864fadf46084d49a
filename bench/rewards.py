"""`motus bench rewards`: closing a weekly epoch over a synthetic network, against the goals of
the rewards issue and beside DIMO's formula on the same pool, in one run.

On a throwaway local PostgreSQL:

- the network: drivers (some with two cars), vehicles, ~10 unions with varied bylaws (operator
  fees, privileges, floors, some dividing the members' share by rows served), memberships (a
  few leaving, pausing or joining mid-week), knob settings with history, ~20 developers who paid
  in, ~3 licences per union granted through the service (some location-scoped, one starting
  mid-week, one ending, one revoked, one below the knob's floor), a union-wide strike for two
  days and a strike against one developer, movement proofs for the week and streak history for
  earlier weeks, and the access log of the rows-served unions. Bulk rows go in with COPY.
- epoch_s: the first `close_epoch` of the week, commit included.
- identical_twice: the second close writes 0 rows, and settling again from the same stored inputs
  gives the stored ledger rows field by field (re-chained) and the stored payout root.
- conserved: tokens credited to drivers equal the pool; each licence's charge equals network fee
  + operator fee + members' share (ledger and epoch report agree); the unions' members accounts
  net to 0; every transaction balances per asset.
- ledger_verified / verify_s: `rewards.ledger.verify` over the whole ledger and the epoch anchors.
- proofs_verified: sampled drivers' payout proofs checked with the standalone verifier against
  the trusted key, and their leaves against the driver's ledger rows.
- dimo_unpaid_tokens_minor: what DIMO's rule (each vehicle gets points * pool // total points,
  remainders never paid) would leave unpaid of the same pool with the same points.
"""

from __future__ import annotations

import cProfile
import io
import json
import pstats
import random
import tempfile
import time
import tomllib
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import psycopg
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from bench.agent import bench_stack
from migrations.runner import upgrade
from protocol.signing import public_key_bytes
from registry.developers import Developer, add_developer
from rewards import service, store
from rewards.bylaws import Bylaws, Purpose, check_bylaws
from rewards.epoch import NetworkTerms, payout_tree, settle
from rewards.ledger import GENESIS_HASH, MONEY, NETWORK_ISSUANCE, TOKENS, Entry, chain, verify
from rewards.settings import RewardsSettings
from rewards.verifier import verify_payout_proof
from rewards.weeks import Week

GOALS: dict[str, tuple[str, float]] = {"epoch_s": ("<=", 10.0), "member_share_min_bps": (">=", 7000)}
WEEK = Week(2026, 47)
#: When the network was set up: unions founded, bylaws in force from that Monday.
FOUNDED = WEEK.start - timedelta(days=70)
#: The close happens a day after the week ends (passed in; nothing sleeps).
CLOSE_AT = WEEK.end + timedelta(days=1)
SEED = 4747
UNIONS = 10
DEVELOPERS = 20
TOP_UP_MINOR = 10**9
BYLAWS_TEMPLATE = Path(__file__).resolve().parent.parent / "docs" / "examples" / "bylaws.toml"
VIN_ALPHABET = "0123456789ABCDEFGHJKLMNPRSTUVWXYZ"  # ISO 3779: no I, O or Q
COPY_CHUNK = 5000  # rows between progress updates
console = Console(stderr=True)

Conn = store.Conn


@dataclass(frozen=True, slots=True)
class UnionPlan:
    """One union's bylaws knobs (the rest comes from the template)."""

    slug: str
    weight: int  # relative size
    operator_fee_bps: int
    location: bool
    min_price_minor: int
    rows_served: bool
    purposes: tuple[Purpose, ...]


UNION_PLANS: tuple[UnionPlan, ...] = tuple(
    UnionPlan(f"bench-union-{i:02d}", weight, fee, i % 3 == 0, floor, i in (2, 5, 8), purposes)
    for i, (weight, fee, floor, purposes) in enumerate([
        (20, 1500, 250, (Purpose.RESEARCH, Purpose.MAINTENANCE, Purpose.SAFETY)),
        (15, 2500, 0, (Purpose.INSURANCE, Purpose.FLEET)),
        (12, 0, 100, (Purpose.MAPPING, Purpose.RESEARCH)),
        (10, 1000, 150, (Purpose.SAFETY, Purpose.MAINTENANCE, Purpose.FLEET)),
        (10, 500, 200, (Purpose.RESEARCH,)),
        (8, 2000, 0, (Purpose.MARKETING, Purpose.INSURANCE, Purpose.MAPPING)),
        (8, 1500, 300, (Purpose.MAINTENANCE, Purpose.SAFETY)),
        (7, 2500, 120, (Purpose.FLEET, Purpose.RESEARCH)),
        (5, 1200, 250, (Purpose.INSURANCE, Purpose.SAFETY, Purpose.RESEARCH)),
        (5, 800, 100, (Purpose.MAPPING, Purpose.MAINTENANCE)),
    ])
)


@dataclass
class Network:
    """What was built, as the checks need it."""

    vehicles: list[UUID] = field(default_factory=list)
    drivers: list[UUID] = field(default_factory=list)
    unions: list[store.Union] = field(default_factory=list)
    developers: list[Developer] = field(default_factory=list)
    licences: list[service.Grant] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)


# -- building the network ----------------------------------------------------------------------

def _uuid(rng: random.Random) -> UUID:
    return uuid.UUID(int=rng.getrandbits(128), version=4)


def _vin(index: int) -> str:
    digits = ""
    for _ in range(14):
        index, d = divmod(index, len(VIN_ALPHABET))
        digits = VIN_ALPHABET[d] + digits
    return "MTS" + digits


def _at(start: datetime, end: datetime, rng: random.Random) -> datetime:
    """A random instant in [start, end), to the second."""
    return start + timedelta(seconds=rng.randrange(int((end - start).total_seconds())))


def _copy(conn: Conn, progress: Progress, task: TaskID, sql: str,
          rows: Iterable[tuple[Any, ...] | None]) -> int:
    """COPY the rows; a None in ``rows`` advances the progress by one unit (one source item)."""
    written = pending = 0
    with conn.cursor().copy(sql) as copy:
        for row in rows:
            if row is None:
                pending += 1
                if pending >= COPY_CHUNK:
                    progress.advance(task, pending)
                    pending = 0
                continue
            copy.write_row(row)
            written += 1
    progress.advance(task, pending)
    return written


def _union_bylaws(plan: UnionPlan, network_fee_bps: int) -> Bylaws:
    document: dict[str, Any] = tomllib.loads(BYLAWS_TEMPLATE.read_text(encoding="utf-8"))
    document.update(
        name=plan.slug.replace("-", " ").title(),
        member_share_bps=10_000 - network_fee_bps - plan.operator_fee_bps,
        operator_fee_bps=plan.operator_fee_bps,
        privileges=["non-location", "location"] if plan.location else ["non-location"],
        allowed_purposes=[p.value for p in plan.purposes],
        forbidden_purposes=[p.value for p in Purpose if p not in plan.purposes][:2],
        min_price_minor=plan.min_price_minor,
        admission="open" if plan.weight % 2 else "approval",
        member_split="rows-served" if plan.rows_served else "vehicle-days",
        strike={"called_by": "operator"} if plan.operator_fee_bps % 1000 == 0
        else {"called_by": "member-vote", "quorum_bps": 3334},
    )
    return check_bylaws(document, network_fee_bps=network_fee_bps)


LicencePlan = tuple[Purpose, tuple[str, ...], datetime, int, int, datetime, bool]


def _licence_plans(i: int, plan: UnionPlan, rng: random.Random) -> list[LicencePlan]:
    """A union's three licences: (purpose, scope, starts, days, price, granted at, revoked mid-week)."""
    start = WEEK.start

    def price(floor: int) -> int:
        return max(plan.min_price_minor, floor) + rng.randrange(300)

    first, last = plan.purposes[0], plan.purposes[-1]
    early = start - timedelta(days=10)
    plans: list[LicencePlan] = [(first, ("non-location",), early, 60, price(100), early, False)]
    # from mid-week: location where the union licenses it, else two named signals
    mid, asked = start + timedelta(days=1 + i % 5), start - timedelta(days=3)
    if plan.location:
        plans.append((last, ("location", "non-location"), mid, 30, price(300), asked, False))
    else:
        plans.append((last, ("obdEngineLoad", "speed"), mid, 30, price(100), asked, False))
    # one that ends mid-week, one revoked mid-week, or one below the knob's floor (covers nobody)
    before = start - timedelta(days=5)
    if i % 3 == 0:
        early = start - timedelta(days=25)
        plans.append((first, ("non-location",), early, 28, price(100), early, False))
    elif i % 3 == 1 or plan.min_price_minor > 90:
        plans.append((first, ("non-location",), before, 90, price(100), before, True))
    else:
        plans.append((first, ("non-location",), before, 30, 90, before, False))
    return plans


def build_network(conn: Conn, n_vehicles: int, terms: NetworkTerms, key: Ed25519PrivateKey,
                  rng: random.Random, progress: Progress) -> Network:
    net = Network()
    n_drivers = max(1, int(n_vehicles * 0.8))
    start, end = WEEK.start, WEEK.end

    # drivers and vehicles (the first n_drivers cars one each, the rest to random drivers)
    t0 = time.perf_counter()
    net.drivers = [_uuid(rng) for _ in range(n_drivers)]
    net.vehicles = [_uuid(rng) for _ in range(n_vehicles)]
    owner = [i if i < n_drivers else rng.randrange(n_drivers) for i in range(n_vehicles)]
    task = progress.add_task("drivers", total=n_drivers)

    def driver_rows() -> Iterable[tuple[Any, ...] | None]:
        for i, d in enumerate(net.drivers):
            yield d, f"driver{i}@bench.motus.example", FOUNDED
            yield None

    _copy(conn, progress, task, "COPY drivers (id, email, created_at) FROM STDIN", driver_rows())
    task = progress.add_task("vehicles", total=n_vehicles)
    makes = (("VW", "Golf"), ("Toyota", "Corolla"), ("BMW", "320d"), ("Renault", "Zoe"), ("Skoda", "Octavia"))

    def vehicle_rows() -> Iterable[tuple[Any, ...] | None]:
        for i, v in enumerate(net.vehicles):
            make, model = makes[i % len(makes)]
            yield (v, net.drivers[owner[i]], None if i % 20 == 19 else _vin(i), make, model,
                   2005 + i % 20, FOUNDED)
            yield None

    _copy(conn, progress, task,
          "COPY vehicles (id, owner_id, vin, make, model, year, created_at) FROM STDIN", vehicle_rows())
    conn.commit()
    net.counts.update(drivers=n_drivers, vehicles=n_vehicles)

    # unions (through the store: their bylaws are checked and versioned)
    for plan in UNION_PLANS[:UNIONS]:
        net.unions.append(store.create_union(conn, plan.slug, f"operator@{plan.slug}.example",
                                             _union_bylaws(plan, terms.network_fee_bps), FOUNDED))
    conn.commit()
    net.counts["unions"] = len(net.unions)

    # memberships: 85% of the cars; some leave, pause or join mid-week; a few moved unions earlier
    task = progress.add_task("memberships", total=n_vehicles)
    weights = [p.weight for p in UNION_PLANS[:UNIONS]]
    pauses: list[tuple[int, datetime, datetime | None]] = []
    settled_from = FOUNDED + timedelta(days=12)

    def membership_rows() -> Iterable[tuple[Any, ...] | None]:
        next_id = 1
        for v in net.vehicles:
            yield None
            r = rng.random()
            if r >= 0.85:
                if r >= 0.995:  # a request still waiting for approval
                    u = rng.randrange(UNIONS)
                    at = _at(settled_from, start, rng)
                    yield next_id, v, net.unions[u].id, at, None, None
                    next_id += 1
                continue
            u = rng.choices(range(UNIONS), weights)[0]
            if rng.random() < 0.01:  # an earlier membership elsewhere, left before this one
                other = (u + 1) % UNIONS
                yield (next_id, v, net.unions[other].id, FOUNDED + timedelta(days=1),
                       FOUNDED + timedelta(days=1), FOUNDED + timedelta(days=10))
                next_id += 1
            kind = rng.random()
            if kind < 0.02:  # joins mid-week
                joined = _at(start, end - timedelta(hours=1), rng)
                yield next_id, v, net.unions[u].id, joined, joined, None
            else:
                joined = _at(settled_from, start - timedelta(hours=1), rng)
                leaves = kind < 0.05
                left = _at(start + timedelta(hours=12), end - timedelta(hours=12), rng) if leaves else None
                yield next_id, v, net.unions[u].id, joined - timedelta(hours=1), joined, left
                if 0.05 <= kind < 0.08:  # paused mid-week, half of them resume within it
                    paused = _at(start, end - timedelta(days=2), rng)
                    resumed = paused + timedelta(days=rng.randint(1, 2)) if kind < 0.065 else None
                    pauses.append((next_id, paused, resumed))
            next_id += 1

    net.counts["memberships"] = _copy(
        conn, progress, task,
        "COPY memberships (id, vehicle_id, union_id, requested_at, joined_at, left_at) FROM STDIN",
        membership_rows())
    conn.execute("SELECT setval(pg_get_serial_sequence('memberships', 'id'),"
                 " (SELECT max(id) FROM memberships))")
    with conn.cursor().copy("COPY membership_pauses (membership_id, paused_at, resumed_at)"
                            " FROM STDIN") as copy:
        for row in pauses:
            copy.write_row(row)
    conn.commit()

    # the knob: 40% never turned it (the default), the rest 0/1/2; 5% of those turn it mid-week
    task = progress.add_task("knob settings", total=n_drivers)

    def knob_rows() -> Iterable[tuple[Any, ...] | None]:
        for d in net.drivers:
            yield None
            r = rng.random()
            if r < 0.4:
                continue
            level = 0 if r < 0.55 else 1 if r < 0.7 else 2
            yield d, _at(FOUNDED, start - timedelta(days=1), rng), level
            if rng.random() < 0.05:
                yield d, _at(start, end, rng), (level + rng.randint(1, 2)) % 3

    net.counts["knob_settings"] = _copy(
        conn, progress, task, "COPY knob_settings (driver_id, set_at, level) FROM STDIN", knob_rows())
    conn.commit()

    # movement proofs: 70% of the cars move 1-7 days this week; the movers have streak history
    task = progress.add_task("movement proofs", total=n_vehicles)
    index = WEEK.index_from(terms.genesis)
    genesis_day = terms.genesis.first_day
    history_lengths, history_weights = (0, 3, 8, 22, 40), (40, 15, 20, 15, 10)

    def proof(v: UUID, day: date, verdict: str) -> tuple[Any, ...]:
        moved = verdict == "moved"
        return (v, day, verdict, round(rng.uniform(1, 120), 1) if moved else None,
                rng.randint(300, 5000) if verdict != "insufficient" else rng.randint(0, 20),
                rng.randint(0, 30), "{}", "{}" if verdict != "insufficient" else "{too few fixes}")

    def movement_rows() -> Iterable[tuple[Any, ...] | None]:
        first = WEEK.first_day
        for v in net.vehicles:
            yield None
            if rng.random() < 0.7:
                moved = set(rng.sample(range(7), rng.randint(1, 7)))
                for d in range(7):
                    if d in moved:
                        yield proof(v, first + timedelta(days=d), "moved")
                    elif rng.random() < 0.3:
                        verdict = "still" if rng.random() < 0.75 else "insufficient"
                        yield proof(v, first + timedelta(days=d), verdict)
                length = rng.choices(history_lengths, history_weights)[0]
                for w in range(max(0, index - length), index):
                    if rng.random() < 0.8:
                        yield proof(v, genesis_day + timedelta(days=7 * w + rng.randrange(7)), "moved")
            else:
                for d in range(7):
                    r = rng.random()
                    if r < 0.3:
                        yield proof(v, first + timedelta(days=d), "still")
                    elif r < 0.4:
                        yield proof(v, first + timedelta(days=d), "insufficient")
                    elif r < 0.41:
                        yield proof(v, first + timedelta(days=d), "refused")

    net.counts["movement_proofs"] = _copy(
        conn, progress, task,
        "COPY movement_proofs (vehicle_id, day, verdict, distance_km, fixes_used, fixes_dropped, checks,"
        " reasons) FROM STDIN", movement_rows())
    conn.commit()

    # developers, paid in through the service
    for i in range(DEVELOPERS):
        developer = add_developer(conn, f"Bench Developer {i:02d}", f"dev{i:02d}@bench.motus.example")
        service.top_up(conn, developer, TOP_UP_MINOR, f"bench-payment-{i:02d}", FOUNDED + timedelta(days=1))
        net.developers.append(developer)
    conn.commit()

    # licences through the service (bylaws, funds, receipts), 3 per union
    t_grant = time.perf_counter()
    task = progress.add_task("licences (grant)", total=3 * len(net.unions))
    revoke: list[UUID] = []
    for i, (union, plan) in enumerate(zip(net.unions, UNION_PLANS, strict=False)):
        for purpose, scope, starts, days, price, granted_at, revoked in _licence_plans(i, plan, rng):
            developer = net.developers[rng.randrange(DEVELOPERS)]
            granted = service.grant(conn, union, developer, purpose=purpose, scope=scope, starts=starts,
                                    days=days, price_minor=price, key=key, now=granted_at)
            net.licences.append(granted)
            if revoked:
                revoke.append(granted.terms.id)
            progress.advance(task)
    for licence_id in revoke:
        store.revoke_licence(conn, licence_id, start + timedelta(days=4, hours=6))
    conn.commit()
    net.timings["grant_s"] = time.perf_counter() - t_grant
    net.counts["licences"] = len(net.licences)

    # strikes: one union-wide for two days (Thursday and Friday at 00:00), one against a developer
    struck = net.unions[3 % len(net.unions)]
    store.call_strike(conn, struck.id, None, "operator", None, "bench: union-wide strike",
                      start + timedelta(days=2, hours=6))
    store.end_strike(conn, struck.id, None, start + timedelta(days=4, hours=12))
    target = net.unions[4 % len(net.unions)]
    against = next((g.terms.developer_id for g in net.licences if g.terms.union_id == target.id), None)
    if against is not None:
        store.call_strike(conn, target.id, against, "member-vote", 1234,
                          "bench: strike against one developer", start + timedelta(days=5, hours=1))
    conn.commit()

    # the access log for the unions that divide by rows served: a few reads per covered car
    rows_unions = {u.id for u, p in zip(net.unions, UNION_PLANS, strict=False) if p.rows_served}
    served = [g for g in net.licences if g.terms.union_id in rows_unions]
    task = progress.add_task("data access", total=sum(len(g.covered) for g in served))

    def access_rows() -> Iterable[tuple[Any, ...] | None]:
        for g in served:
            t = g.terms
            for v in g.covered:
                yield None
                if rng.random() < 0.1:
                    continue
                for _ in range(rng.randint(1, 4)):
                    at = _at(start, end, rng)
                    yield (at, t.developer_id, t.id, t.purpose.value, v, "{speed,obdEngineLoad}",
                           at - timedelta(hours=1), at, rng.randint(10, 5000))

    net.counts["data_access"] = _copy(
        conn, progress, task,
        "COPY data_access (at, developer_id, licence_id, purpose, vehicle_id, signals, range_from, range_to,"
        " rows) FROM STDIN", access_rows())
    conn.commit()
    conn.execute("ANALYZE")
    conn.commit()
    net.timings["build_s"] = time.perf_counter() - t0
    return net


# -- checking the epoch ------------------------------------------------------------------------

def _prev_hash(conn: Conn, first_seq: int) -> bytes:
    if first_seq <= 1:
        return GENESIS_HASH
    row = conn.execute("SELECT hash FROM ledger_entries WHERE seq = %s", (first_seq - 1,)).fetchone()
    return bytes(row[0]) if row else b""


def check_conservation(stored: Sequence[Entry], lines: Sequence[tuple[Any, ...]], pool: int
                       ) -> tuple[dict[str, bool], int, dict[str, dict[str, int]]]:
    """(each check's outcome, tokens credited to drivers, per-driver totals per asset)."""
    per_txn: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    members_net: dict[str, int] = defaultdict(int)
    drivers: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    tokens_to_drivers = issued = 0
    charges: dict[str, dict[str, int]] = defaultdict(dict)
    for e in stored:
        per_txn[e.txn][e.asset] += e.amount
        if e.account.startswith("driver:"):
            drivers[e.account.removeprefix("driver:")][e.asset] += e.amount
            if e.asset == TOKENS:
                tokens_to_drivers += e.amount
        if e.account.startswith("union:") and e.account.endswith(":members"):
            members_net[e.account] += e.amount
        if e.account == NETWORK_ISSUANCE and e.asset == TOKENS:
            issued -= e.amount
        if e.kind == "licence-charge":
            role = e.account.split(":")[-1] if e.account.startswith("union:") else e.account.split(":")[0]
            charges[e.txn.rsplit("/", 1)[-1]][role] = e.amount
    lines_ok = True
    for line in lines:
        charge, network, operator, members = (int(x) for x in line[6:10])
        posted = charges.get(str(line[0]), {})
        lines_ok &= (charge == network + operator + members and posted.get("developer") == -charge
                     and posted.get("network", 0) == network and posted.get("operator", 0) == operator
                     and posted.get("members", 0) == members)
    lines_ok &= len(charges) == len(lines)
    checks = {
        "tokens_equal_pool": tokens_to_drivers == pool == issued,
        "charges_split_exactly": lines_ok,
        "members_accounts_net_zero": all(v == 0 for v in members_net.values()),
        "transactions_balance": all(not any(a.values()) for a in per_txn.values()),
    }
    return checks, tokens_to_drivers, drivers


def _timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def run_epoch(conn: Conn, net: Network, terms: NetworkTerms, key: Ed25519PrivateKey, rng: random.Random,
              proofs: int, profile: Path | None) -> dict[str, Any]:
    out: dict[str, Any] = {}

    # the first close, timed with its commit
    profiler = cProfile.Profile() if profile else None
    t = time.perf_counter()
    if profiler:
        profiler.enable()
    first = service.close_epoch(conn, WEEK, terms, key, CLOSE_AT)
    conn.commit()
    if profiler:
        profiler.disable()
    out["epoch_s"] = round(time.perf_counter() - t, 2)
    if profiler and profile:
        profiler.dump_stats(str(profile))
        text = io.StringIO()
        stats = pstats.Stats(profiler, stream=text)
        stats.sort_stats("cumulative").print_stats(25)
        stats.sort_stats("tottime").print_stats(20)
        console.print(text.getvalue())
    console.print(f"first close: {first.written:,} ledger rows in {out['epoch_s']} s")

    # the second close writes nothing; settling again gives the same rows and root
    second = service.close_epoch(conn, WEEK, terms, key, CLOSE_AT + timedelta(hours=1))
    conn.commit()
    record = first.record
    t = time.perf_counter()
    again = settle(service.epoch_inputs(conn, WEEK, terms), terms)
    out["recompute_s"] = round(time.perf_counter() - t, 2)
    _, tree = payout_tree(WEEK, again.transactions)
    stored = list(store.entries(conn, txn_prefix=str(WEEK)))
    same_rows = False
    if record.first_seq is not None:
        rechained = chain(again.transactions, WEEK.end.isoformat(), record.first_seq,
                          _prev_hash(conn, record.first_seq))
        same_rows = rechained == stored
    out["identical_twice"] = (second.written == 0 and second.record == record and same_rows
                              and tree.root == record.payout_root)
    out["second_close_rows"] = second.written

    # conservation
    lines = store.epoch_licence_lines(conn, WEEK)
    pool = terms.pool_for(WEEK)
    checks, to_drivers, per_driver = check_conservation(stored, lines, pool)
    out["conserved"] = all(checks.values())
    if not out["conserved"]:
        out["conservation_failures"] = [name for name, ok in checks.items() if not ok]
    charged = [(int(x[6]), int(x[9])) for x in lines if int(x[6]) > 0]
    out["member_share_min_bps"] = min((m * 10_000 // c for c, m in charged), default=None)
    out["member_share_min_pct"] = round(min((100 * m / c for c, m in charged), default=0.0), 5)

    # the whole ledger
    anchors = [a for r in store.epoch_records(conn) if (a := r.anchor()) is not None]
    problems, verify_s = _timed(lambda: verify(store.entries(conn), anchors))
    out["ledger_verified"] = problems == []
    out["verify_s"] = round(verify_s, 2)
    if problems:
        out["ledger_problems"] = problems[:5]
    row = conn.execute("SELECT count(*) FROM ledger_entries").fetchone()
    out["ledger_rows"] = int(row[0]) if row else 0
    out["epoch_ledger_rows"] = first.written
    out["drivers_paid"] = int(record.summary["drivers_paid"])
    out["licences_charged"] = len(charged)

    # sampled payout proofs, checked against the trusted key and the driver's ledger rows
    leaves = store.payout_leaves(conn, WEEK)
    sample = rng.sample([d for d, _ in leaves], min(proofs, len(leaves)))
    public = public_key_bytes(key)
    documents = service.payout_proofs(conn, WEEK, sample, public)
    valid = 0
    for driver in sample:
        document = documents.get(driver)
        if document is None or verify_payout_proof(document, public):
            continue
        amounts = json.loads(document["leaf"])["amounts"]
        totals = per_driver.get(str(driver), {})
        valid += amounts == {MONEY: totals.get(MONEY, 0), TOKENS: totals.get(TOKENS, 0)}
    out["proofs_sampled"] = len(sample)
    out["proofs_verified"] = valid
    conn.commit()

    # DIMO's rule on the same pool and points: floor per vehicle, remainders never paid
    total_points = sum(again.points.values())
    dimo_paid = sum(p * pool // total_points for p in again.points.values()) if total_points else 0
    out["pool_tokens_minor"] = pool
    out["dimo_unpaid_tokens_minor"] = pool - dimo_paid if total_points else pool
    out["ours_unpaid_tokens_minor"] = pool - to_drivers
    out["proven_vehicles"] = len(again.points)
    return out


# -- the run -----------------------------------------------------------------------------------

def measure(vehicles: int, proofs: int, seed: int, profile: Path | None) -> dict[str, Any]:
    rng = random.Random(seed)
    terms = RewardsSettings().terms()
    if terms.genesis >= WEEK:
        raise SystemExit(f"genesis {terms.genesis} is not before the bench week {WEEK}")
    with tempfile.TemporaryDirectory(prefix="motus-bench-rewards-") as tmp:
        root = Path(tmp)
        t = time.perf_counter()
        stack, info = bench_stack(root, timescaledb=False)
        try:
            upgrade(info.database_url)
            stack_s = time.perf_counter() - t
            key = service.network_key(root / "network.key")
            with psycopg.connect(info.database_url) as conn:
                with Progress(TextColumn("{task.description:<18}"), BarColumn(bar_width=30),
                              MofNCompleteColumn(), TimeElapsedColumn(), console=console) as progress:
                    net = build_network(conn, vehicles, terms, key, rng, progress)
                figures = run_epoch(conn, net, terms, key, rng, proofs, profile)
        finally:
            stack.down()
    return {
        "vehicles": vehicles, "week": str(WEEK), **figures,
        "drivers": net.counts["drivers"], "unions": net.counts["unions"], "licences": net.counts["licences"],
        "memberships": net.counts["memberships"], "knob_settings": net.counts["knob_settings"],
        "movement_proofs": net.counts["movement_proofs"], "data_access_rows": net.counts["data_access"],
        "setup_s": round(net.timings["build_s"], 2), "grant_s": round(net.timings["grant_s"], 2),
        "stack_s": round(stack_s, 2),
    }


def _report(figures: dict[str, Any]) -> None:
    table = Table(title=f"motus bench rewards: closing {WEEK} over {figures['vehicles']:,} vehicles")
    table.add_column("figure")
    table.add_column("value", justify="right")
    table.add_column("goal", justify="right")
    for name, value in figures.items():
        if isinstance(value, list):
            continue
        goal = GOALS.get(name)
        shown = f"{value:,}" if isinstance(value, int | float) and not isinstance(value, bool) else str(value)
        table.add_row(name, shown, f"{goal[0]} {goal[1]:,}" if goal else "")
    console.print(table, width=80)


def main(vehicles: int, proofs: int, seed: int = SEED, profile: Path | None = None) -> None:
    figures = measure(vehicles, proofs, seed, profile)
    _report(figures)
    print(json.dumps(figures))
