"""The money side's operations: each reads the stored inputs, runs a pure core and writes the
outcome in the caller's transaction. Clocks and the network key are passed in."""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from movement.store import lock_proofs
from protocol.agent_config import write_private
from protocol.signing import private_key_from_pem
from registry.developers import Developer
from rewards import store
from rewards.bylaws import Purpose, bylaws_hash, licensable
from rewards.coverage import covered_now, week_members
from rewards.epoch import EpochInputs, NetworkTerms, Settlement, adjustment, payout_tree, settle
from rewards.errors import EpochError, LicenceError, MissingNetworkKey
from rewards.ledger import MONEY, PAYMENTS_IN, balances, developer_account, transaction
from rewards.merkle import MerkleTree
from rewards.receipt import receipt_document
from rewards.records import LicenceTerms, Membership, scope_privileges
from rewards.verifier import PROOF_FORMAT, signed_root_message
from rewards.weeks import Week

Conn = store.Conn


def network_key(path: Path, *, create: bool = True) -> Ed25519PrivateKey:
    """The network's signing key; with ``create``, made (0600) the first time it is needed. Made
    aside and linked into place, so two first uses agree on one key and nobody reads half a file."""
    if not path.exists():
        if not create:
            raise MissingNetworkKey(f"the network's signing key is not at {path}: `motus rewards key` "
                                    "creates it (MOTUS_NETWORK_KEY_FILE says where it is)")
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fresh = path.with_name(f".{path.name}.{os.getpid()}.new")
        write_private(fresh, Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
        try:
            os.link(fresh, path)  # fails if another process made the key first: theirs stands
        except FileExistsError:
            pass
        finally:
            fresh.unlink()
    return private_key_from_pem(path.read_bytes())


# -- money in ----------------------------------------------------------------------------------

def top_up(conn: Conn, developer: Developer, amount_minor: int, reference: str, now: datetime) -> bool:
    """Record money a developer paid in; the reference (a payment id) makes it idempotent.
    Returns False when that payment was recorded already."""
    if amount_minor <= 0:
        raise LicenceError(f"a top-up is a positive amount, not {amount_minor}")
    txn_id = f"topup/{developer.id}/{reference}"
    store.lock_ledger(conn)  # before the check: two recordings of one payment cannot both pass it
    if store.transaction_exists(conn, txn_id):
        return False
    store.append(conn, [transaction(txn_id, "top-up", "", f"paid in: {reference}",
                                    {(MONEY, developer_account(developer.id)): amount_minor,
                                     (MONEY, PAYMENTS_IN): -amount_minor})], now.isoformat())
    return True


# -- licences ----------------------------------------------------------------------------------

def _current_members(conn: Conn, union_id: UUID, at: datetime) -> list[Membership]:
    return store.memberships_between(conn, at, at + timedelta(microseconds=1), union_id)


def covered_vehicles(conn: Conn, terms: LicenceTerms, at: datetime) -> list[UUID]:
    """The vehicles the licence covers at ``at`` (membership, knobs, bylaws, strikes)."""
    in_force = store.bylaws_in_force(conn, terms.union_id, at.date())
    members = _current_members(conn, terms.union_id, at)
    return covered_now(terms, members,
                       store.knob_histories(conn, at + timedelta(microseconds=1),
                                            [m.owner_id for m in members]),
                       in_force[1] if in_force else None,
                       store.strikes_between(conn, at, at + timedelta(microseconds=1)), at)


@dataclass(frozen=True, slots=True)
class Grant:
    terms: LicenceTerms
    receipt: dict[str, Any]
    covered: list[UUID]


def grant(conn: Conn, union: store.Union, developer: Developer, *, purpose: Purpose,
          scope: tuple[str, ...], starts: datetime, days: int, price_minor: int,
          key: Ed25519PrivateKey, now: datetime) -> Grant:
    """Grant a licence under the union's bylaws in force, with its signed provenance receipt.
    The developer must have paid in at least one period for the vehicles covered today."""
    if days < 1:
        raise LicenceError("a licence runs at least one day")
    if starts.date() < now.date():
        raise LicenceError(f"a licence cannot start in the past ({starts.date()}): it covers from when it "
                           "is granted")
    privileges = scope_privileges(scope)
    in_force = store.bylaws_in_force(conn, union.id, now.date())
    if in_force is None:
        raise LicenceError(f"union {union.slug} has no bylaws in force")
    refused = licensable(in_force[1], purpose, set(privileges), price_minor)
    if refused:
        raise LicenceError(f"union {union.slug}'s bylaws refuse this licence: " + "; ".join(refused))
    if starts.year > 9000 or days > 3660:
        raise LicenceError("a licence runs at most 10 years and starts before the year 9000")
    terms = LicenceTerms(uuid4(), union.id, developer.id, purpose, tuple(sorted(set(scope))),
                         starts.date(), starts.date() + timedelta(days=days), price_minor, now)
    covered = covered_vehicles(conn, terms, max(now, starts))
    funds = store.balance(conn, developer_account(developer.id), MONEY)
    needed = price_minor * len(covered)
    if funds < needed:
        raise LicenceError(f"{developer.organisation} has {funds} paid in; the first 30 days for the "
                           f"{len(covered)} vehicles covered today cost {needed}: top up first")
    receipt = receipt_document(terms, union=union.slug, developer=developer.organisation,
                               bylaws_sha256=bylaws_hash(in_force[1]), covered=covered, key=key)
    store.insert_licence(conn, terms, receipt)
    return Grant(terms, receipt, covered)


# -- epochs ------------------------------------------------------------------------------------

def epoch_inputs(conn: Conn, week: Week, terms: NetworkTerms) -> EpochInputs:
    """Everything an epoch is computed from, as stored now."""
    memberships = store.memberships_between(conn, week.start, week.end)
    knobs = store.knob_histories(conn, week.end)
    proven = store.proven_weeks(conn, terms.genesis, week)
    owners = {m.vehicle_id: m.owner_id for m in memberships}
    owners.update((vehicle, owner) for vehicle, (owner, _) in proven.items())
    return EpochInputs(
        week=week,
        owners=owners,
        proven_weeks={vehicle: weeks for vehicle, (_, weeks) in proven.items()},
        licences=store.licences_between(conn, week.first_day, week.first_day + timedelta(days=7)),
        members=week_members(week.first_day, memberships, knobs),
        bylaws=store.bylaws_for_week(conn, week),
        strikes=store.strikes_between(conn, week.start, week.end),
        rows_served=store.rows_served(conn, week.start, week.end),
    )


@dataclass(frozen=True, slots=True)
class Closed:
    record: store.EpochRecord
    written: int  # ledger rows written by this call (0: the epoch was closed already)


def close_epoch(conn: Conn, week: Week, terms: NetworkTerms, key: Ed25519PrivateKey, now: datetime,
                adjust_weeks: int = 4) -> Closed:
    """Close ``week``: settle it, settle late data of the closed weeks before it, chain the
    transactions into the ledger, and sign the payout root. Closing it again writes nothing."""
    conn.execute("SELECT pg_advisory_xact_lock(hashtext('motus-epoch-close'))")
    lock_proofs(conn)  # proofs being written now are either all in, or written after closed_at
    existing = store.epoch_record(conn, week)
    if existing is not None:
        return Closed(existing, 0)
    if now < week.end:
        raise EpochError(f"{week} is not over until {week.end:%Y-%m-%d %H:%M} UTC")
    settlement = settle(epoch_inputs(conn, week, terms), terms)
    txns = list(settlement.transactions)
    for back in range(adjust_weeks, 0, -1):
        earlier = week.shifted(-back)
        closed = store.epoch_record(conn, earlier)
        if closed is None or not store.proofs_changed_since(conn, earlier, closed.closed_at):
            continue
        then = terms_of(closed, terms)  # settled again under the terms it closed with
        due = balances(p for t in settle(epoch_inputs(conn, earlier, then), then).transactions
                       for p in t.postings)
        adjusted = adjustment(week, earlier, due, store.posted_for(conn, earlier))
        if adjusted:
            txns.append(adjusted)
    leaves, tree = payout_tree(week, txns)
    written = store.append(conn, txns, week.end.isoformat())
    record = store.EpochRecord(
        week=str(week), closed_at=store.database_clock(conn),
        first_seq=written[0].seq if written else None, last_seq=written[-1].seq if written else None,
        head_hash=written[-1].hash if written else None, payout_root=tree.root,
        root_signature=key.sign(signed_root_message(str(week), tree.root)),
        summary=summary(settlement, len(leaves), len(txns) - len(settlement.transactions), terms))
    store.record_epoch(conn, record, leaves,
                       [(line.licence_id, line.vehicles, line.vehicle_days, line.charge,
                         line.network_fee, line.operator_fee, line.members_share)
                        for line in settlement.licences])
    return Closed(record, len(written))


def terms_of(record: store.EpochRecord, current: NetworkTerms) -> NetworkTerms:
    """The network terms an epoch was closed under (recorded in its summary)."""
    saved = record.summary.get("terms")
    if not isinstance(saved, dict):
        return current
    return NetworkTerms(network_fee_bps=int(saved["network_fee_bps"]),
                        weekly_pool=int(saved["weekly_pool"]), pool_decay_bps=int(saved["pool_decay_bps"]),
                        genesis=Week.parse(str(saved["genesis"])))


def summary(settlement: Settlement, drivers: int, adjustments: int, terms: NetworkTerms) -> dict[str, Any]:
    lines = settlement.licences
    return {
        "terms": {"network_fee_bps": terms.network_fee_bps, "weekly_pool": terms.weekly_pool,
                  "pool_decay_bps": terms.pool_decay_bps, "genesis": str(terms.genesis)},
        "pool": settlement.pool, "proven_vehicles": len(settlement.points),
        "points": sum(settlement.points.values()),
        "licences_charged": len(lines), "vehicle_days": sum(x.vehicle_days for x in lines),
        "charged": sum(x.charge for x in lines), "network_fees": sum(x.network_fee for x in lines),
        "operator_fees": sum(x.operator_fee for x in lines),
        "members_share": sum(x.members_share for x in lines),
        "drivers_paid": drivers, "adjustments": adjustments,
    }


# -- payout proofs -----------------------------------------------------------------------------

def payout_proofs(conn: Conn, week: Week, drivers: list[UUID],
                  public_key: bytes) -> dict[UUID, dict[str, Any]]:
    """Inclusion proofs (rewards/verifier.py's format) of these drivers' payout lines."""
    record = store.epoch_record(conn, week)
    if record is None:
        raise EpochError(f"{week} is not closed")
    leaves = store.payout_leaves(conn, week)
    tree = MerkleTree([leaf for _, leaf in leaves])
    index_of = {driver: i for i, (driver, _) in enumerate(leaves)}
    out: dict[UUID, dict[str, Any]] = {}
    for driver in drivers:
        if driver not in index_of:
            continue
        i = index_of[driver]
        out[driver] = {
            "format": PROOF_FORMAT, "epoch": str(week), "tree_size": tree.size, "leaf_index": i,
            "leaf": leaves[i][1].decode("utf-8"),
            "audit_path": [h.hex() for h in tree.inclusion_proof(i)],
            "root": record.payout_root.hex(),
            "root_signature": base64.b64encode(record.root_signature).decode("ascii"),
            "network_public_key": public_key.hex(),
        }
    return out
