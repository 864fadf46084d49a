"""Closing a weekly epoch, the pure core: from stored inputs to ledger transactions.

Three things are settled per epoch, each to the minor unit (largest remainder, ties by key):

* baseline issuance: the week's pool of reward tokens (fixed, decaying yearly) over the vehicles
  with proven movement that week, by streak points (rewards/streaks.py);
* licence charges: per licence, price x covered vehicle-days / 30 (floored: a developer never
  pays more than the price), split into the network fee, the operator fee and the members' share
  by the bylaws in force that week;
* the members' share, per licence, over its covered vehicles by the union's basis (covered
  vehicle-days, or rows served from the access log), paid to the vehicles' owners.

The result depends on the inputs only, never on their order: the same inputs give the same
transactions, byte for byte, and so the same payout root.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from uuid import UUID

from rewards.bylaws import Bylaws, MemberSplit
from rewards.coverage import MemberWeek, covered_days
from rewards.ledger import (
    MONEY,
    NETWORK_FEES,
    NETWORK_ISSUANCE,
    TOKENS,
    Transaction,
    developer_account,
    driver_account,
    members_account,
    operator_account,
    transaction,
)
from rewards.merkle import MerkleTree
from rewards.money import BPS, split_by_weights
from rewards.records import LicenceTerms, Strike
from rewards.streaks import points_for
from rewards.weeks import Week

DAYS_PER_PRICE_PERIOD = 30  # a licence's price is per covered vehicle per 30 days


@dataclass(frozen=True, slots=True)
class NetworkTerms:
    network_fee_bps: int
    weekly_pool: int  # token minor units issued in the genesis year's weeks
    pool_decay_bps: int  # the pool shrinks by this every 52 weeks
    genesis: Week

    def pool_for(self, week: Week) -> int:
        index = week.index_from(self.genesis)
        if index < 0:
            return 0
        years = index // 52
        kept: int = pow(BPS - self.pool_decay_bps, years)
        whole: int = pow(BPS, years)
        return self.weekly_pool * kept // whole


@dataclass(frozen=True, slots=True)
class EpochInputs:
    week: Week
    owners: Mapping[UUID, UUID]  # vehicle -> driver
    proven_weeks: Mapping[UUID, frozenset[int]]  # vehicle -> week indices (from genesis) it moved
    licences: Sequence[LicenceTerms]
    members: Mapping[UUID, list[MemberWeek]]  # union -> its members' week
    bylaws: Mapping[UUID, Bylaws | None]  # union -> bylaws in force that week
    strikes: Sequence[Strike] = ()
    rows_served: Mapping[tuple[UUID, UUID], int] = field(default_factory=dict)  # (licence, vehicle)


@dataclass(frozen=True, slots=True)
class LicenceLine:
    licence_id: UUID
    union_id: UUID
    developer_id: UUID
    vehicles: int
    vehicle_days: int
    charge: int
    network_fee: int
    operator_fee: int
    members_share: int


@dataclass(frozen=True, slots=True)
class Settlement:
    week: Week
    transactions: tuple[Transaction, ...]
    points: Mapping[UUID, int]  # vehicle -> streak points this week (proven vehicles only)
    pool: int
    licences: tuple[LicenceLine, ...]


def driver_accounts(inputs: EpochInputs) -> dict[UUID, str]:
    """Each vehicle's owner's ledger account, named once per epoch."""
    return {vehicle: driver_account(owner) for vehicle, owner in inputs.owners.items()}


def issuance(inputs: EpochInputs, terms: NetworkTerms, accounts: Mapping[UUID, str] | None = None
             ) -> tuple[Transaction | None, dict[UUID, int], int]:
    index = inputs.week.index_from(terms.genesis)
    pool = terms.pool_for(inputs.week)
    points: dict[UUID, int] = {}
    for vehicle, weeks in inputs.proven_weeks.items():
        if index in weeks:
            points[vehicle] = points_for(index, weeks, first_week=min(weeks))[1]
    if pool == 0 or not points:
        return None, points, pool
    accounts = driver_accounts(inputs) if accounts is None else accounts
    shares = split_by_weights(pool, points)
    amounts: dict[tuple[str, str], int] = defaultdict(int)
    for vehicle, share in shares.items():
        amounts[(TOKENS, accounts[vehicle])] += share
    amounts[(TOKENS, NETWORK_ISSUANCE)] = -pool
    week = str(inputs.week)
    memo = f"baseline rewards: {len(points)} vehicles with proven movement"
    return transaction(f"{week}/issuance", "issuance", week, memo, amounts), points, pool


def fee_split(bylaws: Bylaws, network_fee_bps: int) -> dict[str, int]:
    """Basis points of a licence charge for the network, the operator and the members. The
    members' share in the bylaws is a guarantee: should the network fee have risen since they were
    adopted, the operator fee gives way first, then the network fee."""
    network, operator = network_fee_bps, bylaws.operator_fee_bps
    short = bylaws.member_share_bps - (BPS - network - operator)
    if short > 0:
        from_operator = min(operator, short)
        operator -= from_operator
        network -= short - from_operator
    return {"network": network, "operator": operator, "members": BPS - network - operator}


def _member_weights(bylaws: Bylaws, licence: LicenceTerms, days: Mapping[UUID, int],
                    rows_served: Mapping[tuple[UUID, UUID], int]) -> Mapping[UUID, int]:
    if bylaws.member_split is MemberSplit.ROWS_SERVED:
        rows = {v: rows_served.get((licence.id, v), 0) for v in days}
        if any(rows.values()):
            return rows
    # vehicle-days, and the fallback when nothing was served: nobody's share is lost.
    return days


def licence_settlement(inputs: EpochInputs, terms: NetworkTerms, licence: LicenceTerms,
                       accounts: Mapping[UUID, str] | None = None
                       ) -> tuple[list[Transaction], LicenceLine | None, dict[str, int]]:
    """The licence's charge and its split, and each driver's share of it (by ledger account)."""
    bylaws = inputs.bylaws.get(licence.union_id)
    days = covered_days(inputs.week.first_day, licence, inputs.members, bylaws, inputs.strikes)
    vehicle_days = sum(days.values())
    charge = licence.price_minor * vehicle_days // DAYS_PER_PRICE_PERIOD
    if bylaws is None or charge == 0:
        return [], None, {}
    fees = fee_split(bylaws, terms.network_fee_bps)
    # The fees are rounded down and the members take the rest: they never get less than their
    # share because of rounding.
    network, operator = charge * fees["network"] // BPS, charge * fees["operator"] // BPS
    parts = {"network": network, "operator": operator, "members": charge - network - operator}
    week = str(inputs.week)
    charged = transaction(
        f"{week}/licence/{licence.id}", "licence-charge", week,
        f"{vehicle_days} covered vehicle-days at {licence.price_minor} per 30",
        {(MONEY, developer_account(licence.developer_id)): -charge,
         (MONEY, NETWORK_FEES): parts["network"],
         (MONEY, operator_account(licence.union_id)): parts["operator"],
         (MONEY, members_account(licence.union_id)): parts["members"]})
    accounts = driver_accounts(inputs) if accounts is None else accounts
    shares = split_by_weights(parts["members"], _member_weights(bylaws, licence, days, inputs.rows_served))
    per_driver: dict[str, int] = defaultdict(int)
    for vehicle, share in shares.items():
        per_driver[accounts[vehicle]] += share
    line = LicenceLine(licence.id, licence.union_id, licence.developer_id, len(days), vehicle_days,
                       charge, parts["network"], parts["operator"], parts["members"])
    return [charged], line, per_driver


def settle(inputs: EpochInputs, terms: NetworkTerms) -> Settlement:
    """Every transaction of the epoch, in a fixed order: issuance, licence charges by licence id,
    the members' payouts by union id."""
    week = str(inputs.week)
    txns: list[Transaction] = []
    accounts = driver_accounts(inputs)
    issued, points, pool = issuance(inputs, terms, accounts)
    if issued:
        txns.append(issued)
    lines: list[LicenceLine] = []
    payouts: dict[UUID, dict[str, int]] = defaultdict(lambda: defaultdict(int))  # union -> account
    for licence in sorted(inputs.licences, key=lambda lic: lic.id):
        charged, line, per_driver = licence_settlement(inputs, terms, licence, accounts)
        txns.extend(charged)
        if line:
            lines.append(line)
            for driver, amount in per_driver.items():
                payouts[licence.union_id][driver] += amount
    for union in sorted(payouts):
        per_driver = payouts[union]
        total = sum(per_driver.values())
        amounts = {(MONEY, account): a for account, a in per_driver.items()}
        amounts[(MONEY, members_account(union))] = -total
        txns.append(transaction(f"{week}/members/{union}", "members-share", week,
                                f"members' share to {sum(1 for a in per_driver.values() if a)} drivers",
                                amounts))
    return Settlement(inputs.week, tuple(txns), points, pool, tuple(lines))


def adjustment(week: Week, settles: Week, due: Mapping[tuple[str, str], int],
               posted: Mapping[tuple[str, str], int]) -> Transaction | None:
    """What ``settles`` (closed earlier) owes now that its inputs changed: ``due`` minus what was
    ``posted`` for it, per (asset, account); None when nothing changed."""
    diff = {key: due.get(key, 0) - posted.get(key, 0) for key in set(due) | set(posted)}
    if not any(diff.values()):
        return None
    return transaction(f"{week}/adjust/{settles}", "adjustment", str(settles),
                       f"late data for {settles}", diff)


# -- payouts: one Merkle leaf per driver -------------------------------------------------------

def payout_leaves(epoch: Week, transactions: Sequence[Transaction]) -> list[tuple[str, bytes]]:
    """Each driver's totals of the epoch's transactions as (driver, RFC 8785 JSON line), sorted
    by driver id."""
    totals: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for txn in transactions:
        for p in txn.postings:
            if p.account.startswith("driver:"):
                totals[p.account[len("driver:"):]][p.asset] += p.amount
    return [(driver, payout_leaf(epoch, driver, totals[driver])) for driver in sorted(totals)]


def payout_leaf(epoch: Week, driver: str, amounts: Mapping[str, int]) -> bytes:
    """``{"amounts":{"EUR":..,"MOTUS":..},"driver":"..","epoch":".."}``, written out directly:
    for ASCII keys and integers RFC 8785 JSON is exactly this (a test holds it equal to
    protocol.jcs)."""
    return (f'{{"amounts":{{"{MONEY}":{amounts.get(MONEY, 0)},"{TOKENS}":{amounts.get(TOKENS, 0)}}},'
            f'"driver":"{driver}","epoch":"{epoch}"}}').encode("ascii")


def payout_tree(epoch: Week, transactions: Sequence[Transaction]
                ) -> tuple[list[tuple[str, bytes]], MerkleTree]:
    leaves = payout_leaves(epoch, transactions)
    return leaves, MerkleTree([leaf for _, leaf in leaves])
