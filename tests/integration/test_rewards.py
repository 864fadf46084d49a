"""The money side on a real PostgreSQL: unions, licences, epochs, the ledger and payout proofs."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from uuid import UUID

import psycopg
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from protocol.signing import public_key_bytes
from registry.developers import Developer, add_developer
from registry.store import add_driver, add_vehicle
from rewards import service, store
from rewards.bylaws import Purpose, parse_bylaws
from rewards.epoch import NetworkTerms
from rewards.errors import LicenceError, MembershipError
from rewards.knob import Knob
from rewards.ledger import MONEY, NETWORK_FEES, TOKENS, balances, developer_account, driver_account
from rewards.ledger import verify as verify_ledger
from rewards.receipt import verify_receipt
from rewards.verifier import verify_payout_proof
from rewards.weeks import Week
from tests.fixtures.stack import clone_database

pytestmark = pytest.mark.integration

EXAMPLE = Path(__file__).parents[2] / "docs" / "examples" / "bylaws.toml"
WEEK = Week.parse("2026-W40")
BEFORE = WEEK.start - timedelta(days=3)
AFTER = WEEK.end + timedelta(hours=1)
TERMS = NetworkTerms(network_fee_bps=500, weekly_pool=1_000_000, pool_decay_bps=1500,
                     genesis=Week.parse("2026-W01"))


def bylaws(**changes: object):
    text = EXAMPLE.read_text()
    for key, value in changes.items():
        old = next(line for line in text.splitlines() if line.startswith(f"{key} ="))
        text = text.replace(old, f"{key} = {json.dumps(value)}")
    return parse_bylaws(text, network_fee_bps=TERMS.network_fee_bps)


@dataclass
class Network:
    conn: psycopg.Connection
    key: Ed25519PrivateKey
    union: store.Union
    developer: Developer
    drivers: dict[str, UUID]
    vehicles: dict[str, UUID]

    def prove(self, name: str, *days: int, week: Week = WEEK, verdict: str = "moved") -> None:
        for day in days:
            self.conn.execute(
                "INSERT INTO movement_proofs (vehicle_id, day, verdict, fixes_used, fixes_dropped, checks,"
                " reasons) VALUES (%s, %s, %s, 10, 0, '{}', '{}')",
                (self.vehicles[name], week.first_day + timedelta(days=day), verdict))

    def grant(self, scope=("non-location",), price=300, purpose=Purpose.RESEARCH, days=60):
        return service.grant(self.conn, self.union, self.developer, purpose=purpose, scope=scope,
                             starts=BEFORE, days=days, price_minor=price, key=self.key, now=BEFORE)

    def close(self, week: Week = WEEK, now=None):
        return service.close_epoch(self.conn, week, TERMS, self.key, now or week.end + timedelta(hours=1))


def build(conn: psycopg.Connection, *, admission: str = "open", split: str = "vehicle-days") -> Network:
    key = Ed25519PrivateKey.generate()
    union = store.create_union(conn, "lakeside", "op@lakeside.example",
                               bylaws(admission=admission, member_split=split), BEFORE - timedelta(days=30))
    developer = add_developer(conn, "Road Research Ltd", "data@road.example")
    drivers, vehicles = {}, {}
    for name in ("ana", "ben", "cem"):
        drivers[name] = add_driver(conn, f"{name}@example.com")
        vehicles[name] = add_vehicle(conn, drivers[name])
        store.join(conn, vehicles[name], union.id, BEFORE - timedelta(days=1), admitted=True)
    service.top_up(conn, developer, 100_000, "pay-1", BEFORE - timedelta(days=2))
    return Network(conn, key, union, developer, drivers, vehicles)


@pytest.fixture
def network(database_url):
    with psycopg.connect(database_url) as conn:
        yield build(conn)


def money_of(conn, account):
    return store.balance(conn, account, MONEY)


def test_an_epoch_pays_proven_drivers_tokens_and_covered_members_the_licence_money(network):
    n = network
    store.set_knob(n.conn, n.drivers["cem"], Knob.PRIVATE, BEFORE)  # cem shares nothing
    granted = n.grant(price=300)
    assert granted.covered == sorted([n.vehicles["ana"], n.vehicles["ben"]], key=str)
    n.prove("ana", 0, 1, 2)
    n.prove("cem", 3)
    n.prove("ben", 4, verdict="still")  # ben's car stood still: no tokens
    closed = n.close()
    assert closed.written > 0
    summary = closed.record.summary
    # 2 covered vehicles x 7 days x 300 / 30 = 140; 5% network, 15% operator, 80% members.
    assert (summary["vehicle_days"], summary["charged"]) == (14, 140)
    assert (summary["network_fees"], summary["operator_fees"], summary["members_share"]) == (7, 21, 112)
    assert money_of(n.conn, driver_account(n.drivers["ana"])) == 56
    assert money_of(n.conn, driver_account(n.drivers["ben"])) == 56
    assert money_of(n.conn, driver_account(n.drivers["cem"])) == 0
    assert money_of(n.conn, developer_account(n.developer.id)) == 100_000 - 140
    assert money_of(n.conn, NETWORK_FEES) == 7
    tokens = {name: store.balance(n.conn, driver_account(d), TOKENS) for name, d in n.drivers.items()}
    assert tokens["ben"] == 0 and tokens["ana"] > 0 and tokens["cem"] > 0
    assert sum(tokens.values()) == TERMS.pool_for(WEEK)  # the whole pool, to the minor unit
    assert verify_ledger(store.entries(n.conn), [closed.record.anchor()]) == []


def test_closing_twice_writes_nothing_and_another_database_gives_identical_entries(database_url,
                                                                                   local_stack):
    with psycopg.connect(database_url) as conn:
        n = build(conn)
        n.grant()
        n.prove("ana", 0)
        n.prove("ben", 1, 2)
        dbname = conn.info.dbname
    twin = f"twin_{dbname}"
    clone_database(local_stack, dbname, twin)
    try:
        with psycopg.connect(database_url) as conn:
            first = service.close_epoch(conn, WEEK, TERMS, n.key, AFTER)
            assert first.written > 0
            assert service.close_epoch(conn, WEEK, TERMS, n.key, AFTER).written == 0
            rows = list(store.entries(conn))
        with psycopg.connect(local_stack.database_url_for(twin)) as other:
            again = service.close_epoch(other, WEEK, TERMS, n.key, AFTER + timedelta(days=3))
            assert again.record.payout_root == first.record.payout_root
            assert list(store.entries(other)) == rows  # byte for byte, hashes included
    finally:
        with psycopg.connect(local_stack.database_url_for("postgres"), autocommit=True) as admin:
            admin.execute(f"DROP DATABASE {twin} WITH (FORCE)")


def test_the_ledger_refuses_update_and_delete(network):
    n = network
    n.conn.commit()  # the top-up's rows
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
        n.conn.execute("UPDATE ledger_entries SET amount = amount + 1")
    n.conn.rollback()
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
        n.conn.execute("DELETE FROM ledger_entries")
    n.conn.rollback()
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
        n.conn.execute("TRUNCATE ledger_entries")
    n.conn.rollback()
    assert store.balance(n.conn, developer_account(n.developer.id), MONEY) == 100_000


def _tampered(n: Network, sql: str) -> list[str]:
    n.conn.execute("ALTER TABLE ledger_entries DISABLE TRIGGER USER")
    n.conn.execute(sql)
    anchors = [a for r in store.epoch_records(n.conn) if (a := r.anchor())]
    return verify_ledger(store.entries(n.conn), anchors)


@pytest.fixture
def closed_network(network):
    network.grant()
    network.prove("ana", 0, 1)
    network.prove("ben", 2)
    closed = network.close()
    assert verify_ledger(store.entries(network.conn), [closed.record.anchor()]) == []
    return network, closed


def test_ledger_verify_names_a_changed_amount(closed_network):
    n, closed = closed_network
    seq = closed.record.first_seq + 1
    problems = _tampered(n, f"UPDATE ledger_entries SET amount = amount + 100 WHERE seq = {seq}")
    assert any(p.startswith(f"row {seq} changed") for p in problems), problems


def test_ledger_verify_names_a_removed_row(closed_network):
    n, closed = closed_network
    seq = closed.record.first_seq + 1
    problems = _tampered(n, f"DELETE FROM ledger_entries WHERE seq = {seq}")
    assert any(p.startswith(f"row {seq} removed") for p in problems), problems


def test_ledger_verify_names_an_inserted_row(closed_network):
    n, closed = closed_network
    last = closed.record.last_seq
    # A well-formed row (its hash chained correctly) crediting a driver after the epoch closed.
    from rewards.ledger import chain, transaction

    head = next(e for e in store.entries(n.conn) if e.seq == last)
    forged = chain([transaction(f"{WEEK}/issuance", "issuance", str(WEEK), "forged",
                                {(TOKENS, driver_account(n.drivers["cem"])): 5,
                                 (TOKENS, "network:issuance"): -5})], head.at, last + 1, head.hash)[0]
    n.conn.execute("INSERT INTO ledger_entries VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                   (forged.seq, forged.txn, forged.kind, forged.settles, forged.memo, forged.asset,
                    forged.account, forged.amount, forged.at, forged.prev_hash, forged.hash))
    problems = verify_ledger(store.entries(n.conn), [closed.record.anchor()])
    assert f"row(s) {last + 1} inserted: a row of epoch {WEEK} outside the rows it closed with" in problems
    assert any(p.startswith(f"transaction {WEEK}/issuance does not balance") for p in problems), problems


def test_payout_proofs_verify_with_the_network_key_and_fail_with_another(closed_network):
    n, _ = closed_network
    public = public_key_bytes(n.key)
    outsider = add_driver(n.conn, "outsider@example.com")
    proofs = service.payout_proofs(n.conn, WEEK, [*n.drivers.values(), outsider], public)
    assert set(proofs) == set(n.drivers.values())  # the outsider was paid nothing: no line
    for proof in proofs.values():
        assert verify_payout_proof(proof, public) == []
    other = public_key_bytes(Ed25519PrivateKey.generate())
    assert verify_payout_proof(next(iter(proofs.values())), other) != []
    leaf = json.loads(proofs[n.drivers["ana"]]["leaf"])
    assert leaf["amounts"][MONEY] == store.balance(n.conn, driver_account(n.drivers["ana"]), MONEY)


def test_late_proofs_are_settled_by_an_adjustment_in_the_next_epoch(closed_network):
    n, closed = closed_network
    before = [e for e in store.entries(n.conn)]
    n.prove("cem", 5)  # arrives after the epoch closed
    nxt = n.close(WEEK.shifted(1))
    assert nxt.record.summary["adjustments"] == 1
    assert [e for e in store.entries(n.conn) if e.seq <= closed.record.last_seq] == before  # untouched
    posted = store.posted_for(n.conn, WEEK)
    tokens = {name: posted.get((TOKENS, driver_account(d)), 0) for name, d in n.drivers.items()}
    assert tokens["cem"] > 0 and sum(tokens.values()) == TERMS.pool_for(WEEK)
    anchors = [a for r in store.epoch_records(n.conn) if (a := r.anchor())]
    assert verify_ledger(store.entries(n.conn), anchors) == []
    assert n.close(WEEK.shifted(2)).record.summary["adjustments"] == 0  # settled once


def test_a_licence_stops_covering_a_member_who_leaves_pauses_or_strikes(network):
    n = network
    terms = n.grant().terms
    at = BEFORE + timedelta(hours=1)
    everyone = sorted(n.vehicles.values(), key=str)
    assert service.covered_vehicles(n.conn, terms, at) == everyone
    store.leave(n.conn, n.vehicles["ana"], at)
    store.pause(n.conn, n.vehicles["ben"], at)
    later = at + timedelta(minutes=1)
    assert service.covered_vehicles(n.conn, terms, later) == [n.vehicles["cem"]]
    store.resume(n.conn, n.vehicles["ben"], later)
    assert n.vehicles["ben"] in service.covered_vehicles(n.conn, terms, later + timedelta(seconds=1))
    store.call_strike(n.conn, n.union.id, None, "member-vote", 3, "price too low",
                      later + timedelta(seconds=2))
    assert service.covered_vehicles(n.conn, terms, later + timedelta(seconds=3)) == []


def test_the_knob_decides_which_licences_cover_a_drivers_cars(database_url):
    with psycopg.connect(database_url) as conn:
        n = build(conn)
        store.adopt_bylaws(conn, n.union.id, bylaws(privileges=["non-location", "location"]),
                           BEFORE - timedelta(days=14))
        location = n.grant(scope=("currentLocationCoordinates", "speed"), price=300).terms
        cheap = n.grant(scope=("speed",), price=250).terms  # at the union's minimum price
        store.set_knob(conn, n.drivers["ana"], Knob.LOCATION, BEFORE)
        store.set_knob(conn, n.drivers["ben"], Knob.PRIVATE, BEFORE)
        at = BEFORE + timedelta(hours=1)
        assert service.covered_vehicles(conn, location, at) == [n.vehicles["ana"]]
        assert service.covered_vehicles(conn, cheap, at) == sorted(
            [n.vehicles["ana"], n.vehicles["cem"]], key=str)


def test_bylaws_refuse_a_licence_and_a_change_applies_from_the_next_epoch(network):
    n = network
    with pytest.raises(LicenceError, match="marketing"):
        n.grant(purpose=Purpose.MARKETING)
    with pytest.raises(LicenceError, match="location"):
        n.grant(scope=("currentLocationCoordinates",))
    version, effective = store.adopt_bylaws(n.conn, n.union.id, bylaws(operator_fee_bps=500), BEFORE)
    assert version == 2 and effective == Week.of(BEFORE.date()).shifted(1).first_day
    now_in_force = store.bylaws_in_force(n.conn, n.union.id, BEFORE.date())
    then_in_force = store.bylaws_in_force(n.conn, n.union.id, effective)
    assert now_in_force is not None and now_in_force[0] == 1
    assert then_in_force is not None and then_in_force[0] == 2
    assert then_in_force[1].operator_fee_bps == 500


def test_a_vehicle_belongs_to_one_union_at_a_time(network):
    n = network
    other = store.create_union(n.conn, "hillside", "op@hill.example", bylaws(), BEFORE)
    with pytest.raises(MembershipError, match="one union at a time"):
        store.join(n.conn, n.vehicles["ana"], other.id, BEFORE, admitted=True)
    store.leave(n.conn, n.vehicles["ana"], BEFORE)
    store.join(n.conn, n.vehicles["ana"], other.id, BEFORE + timedelta(seconds=1), admitted=True)


def test_grant_needs_funds_and_its_receipt_verifies_until_changed(network):
    n = network
    poor = add_developer(n.conn, "Tiny Startup", "hi@tiny.example")
    with pytest.raises(LicenceError, match="top up first"):
        service.grant(n.conn, n.union, poor, purpose=Purpose.RESEARCH, scope=("speed",), starts=BEFORE,
                      days=30, price_minor=300, key=n.key, now=BEFORE)
    receipt = n.grant().receipt
    public = public_key_bytes(n.key)
    assert verify_receipt(receipt, public) == []
    assert receipt["covered"]["vehicles"] == 3
    changed = {**receipt, "licence": {**receipt["licence"], "price_minor_per_vehicle_30_days": 1}}
    assert verify_receipt(changed, public) != []


def test_rows_served_split_follows_the_access_log(database_url):
    with psycopg.connect(database_url) as conn:
        n = build(conn, split="rows-served")
        terms = n.grant(price=300).terms
        for name, rows in (("ana", 300), ("ben", 100)):
            conn.execute(
                "INSERT INTO data_access (at, developer_id, licence_id, purpose, vehicle_id, signals,"
                " range_from, range_to, rows) VALUES (%s, %s, %s, 'research', %s, '{speed}', %s, %s, %s)",
                (WEEK.start + timedelta(days=1), n.developer.id, terms.id, n.vehicles[name],
                 WEEK.start, WEEK.start + timedelta(hours=1), rows))
        closed = n.close()
        # 3 x 7 x 300 / 30 = 210: fees rounded down (10 and 31), the members take the rest
        assert closed.record.summary["members_share"] == 169
        paid = {k: money_of(conn, driver_account(d)) for k, d in n.drivers.items()}
        assert paid == {"ana": 127, "ben": 42, "cem": 0}  # 3:1 by rows served, largest remainder


def test_money_balances_after_an_epoch(closed_network):
    n, _ = closed_network
    totals = balances(store.entries(n.conn))
    assert sum(v for (asset, _), v in totals.items() if asset == MONEY) == 0
    assert sum(v for (asset, _), v in totals.items() if asset == TOKENS) == 0
    assert all(v == 0 for (asset, account), v in totals.items() if account.endswith(":members"))


def test_the_standalone_verifier_accepts_a_proof_file(closed_network, tmp_path):
    n, _ = closed_network
    public = public_key_bytes(n.key)
    proof = service.payout_proofs(n.conn, WEEK, [n.drivers["ana"]], public)[n.drivers["ana"]]
    path = tmp_path / "proof.json"
    path.write_text(json.dumps(proof))
    ok = subprocess.run([sys.executable, "-m", "rewards.verifier", str(path), "--key", public.hex()],
                        capture_output=True, text=True, cwd=Path(__file__).parents[2])
    assert ok.returncode == 0 and ok.stdout.startswith("valid:"), ok.stdout + ok.stderr


def test_a_payment_recorded_twice_is_credited_once(network):
    n = network
    assert service.top_up(n.conn, n.developer, 500, "pay-2", BEFORE) is True
    assert service.top_up(n.conn, n.developer, 500, "pay-2", BEFORE) is False
    assert money_of(n.conn, developer_account(n.developer.id)) == 100_500
    from rewards.ledger import PAYMENTS_IN, transaction

    again = transaction(f"topup/{n.developer.id}/pay-2", "top-up", "", "again",
                        {(MONEY, developer_account(n.developer.id)): 500, (MONEY, PAYMENTS_IN): -500})
    with pytest.raises(psycopg.errors.UniqueViolation):  # the database refuses it too
        store.append(n.conn, [again], BEFORE.isoformat())
