"""The money side's tables (migration 0007): plain SQL on a connection the caller holds; the
caller owns the transaction. Rows in, value objects out; the rules live in the pure cores."""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, cast
from uuid import UUID, uuid4

import psycopg
from psycopg.types.json import Jsonb

from rewards.bylaws import Bylaws, Purpose, bylaws_document, bylaws_from_json, bylaws_hash
from rewards.errors import MembershipError, UnknownRecord
from rewards.knob import Knob
from rewards.ledger import GENESIS_HASH, Anchor, Entry, Transaction, chain
from rewards.records import Interval, KnobSetting, LicenceTerms, Membership, Strike
from rewards.weeks import Week

Conn = psycopg.Connection[tuple[Any, ...]]


# -- unions and bylaws -------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Union:
    id: UUID
    slug: str
    operator_email: str
    created_at: datetime


SLUG = re.compile(r"[a-z0-9][a-z0-9-]{1,39}")


def create_union(conn: Conn, slug: str, operator_email: str, bylaws: Bylaws, now: datetime) -> Union:
    if not SLUG.fullmatch(slug):
        raise MembershipError(f"{slug!r} cannot name a union: 2 to 40 lower-case letters, digits and "
                              "dashes, starting with a letter or digit")
    row = conn.execute(
        "INSERT INTO unions (slug, operator_email, created_at) VALUES (%s, %s, %s)"
        " ON CONFLICT (slug) DO NOTHING RETURNING id", (slug, operator_email, now)).fetchone()
    if row is None:
        raise MembershipError(f"a union named {slug!r} exists already")
    union = Union(row[0], slug, operator_email, now)
    _insert_bylaws(conn, union.id, 1, Week.of(now.date()).first_day, bylaws, now)
    return union


def _insert_bylaws(conn: Conn, union_id: UUID, version: int, effective_from: date, bylaws: Bylaws,
                   now: datetime) -> None:
    conn.execute(
        "INSERT INTO union_bylaws (union_id, version, effective_from, adopted_at, document, sha256)"
        " VALUES (%s, %s, %s, %s, %s, %s)",
        (union_id, version, effective_from, now, Jsonb(bylaws_document(bylaws)), bylaws_hash(bylaws)))


def adopt_bylaws(conn: Conn, union_id: UUID, bylaws: Bylaws, now: datetime) -> tuple[int, date]:
    """A new version, in force from the next epoch (next Monday); returns (version, from)."""
    conn.execute("SELECT 1 FROM unions WHERE id = %s FOR UPDATE", (union_id,))  # one adoption at a time
    row = conn.execute("SELECT coalesce(max(version), 0) + 1 FROM union_bylaws WHERE union_id = %s",
                       (union_id,)).fetchone()
    version = int(row[0]) if row else 1
    effective = Week.of(now.date()).shifted(1).first_day
    # A second change in the same week replaces the first one's effective date, not its record.
    _insert_bylaws(conn, union_id, version, effective, bylaws, now)
    return version, effective


def union_by_slug(conn: Conn, slug: str) -> Union:
    row = conn.execute("SELECT id, slug, operator_email, created_at FROM unions WHERE slug = %s",
                       (slug,)).fetchone()
    if row is None:
        raise UnknownRecord(f"no union named {slug!r} (see `motus union list`)")
    return Union(*row)


def union_by_id(conn: Conn, union_id: UUID) -> Union:
    row = conn.execute("SELECT id, slug, operator_email, created_at FROM unions WHERE id = %s",
                       (union_id,)).fetchone()
    if row is None:
        raise UnknownRecord(f"no union with id {union_id}")
    return Union(*row)


def list_unions(conn: Conn) -> list[Union]:
    return [Union(*r) for r in conn.execute(
        "SELECT id, slug, operator_email, created_at FROM unions ORDER BY slug").fetchall()]


def _bylaws(document: object) -> Bylaws:
    # Checked against the network fee when adopted; stored ones load as they were adopted.
    return bylaws_from_json(json.dumps(document), network_fee_bps=0)


def bylaws_in_force(conn: Conn, union_id: UUID, day: date) -> tuple[int, Bylaws] | None:
    row = conn.execute(
        "SELECT version, document FROM union_bylaws WHERE union_id = %s AND effective_from <= %s"
        " ORDER BY effective_from DESC, version DESC LIMIT 1", (union_id, day)).fetchone()
    return None if row is None else (int(row[0]), _bylaws(row[1]))


def bylaws_for_week(conn: Conn, week: Week) -> dict[UUID, Bylaws]:
    rows = conn.execute(
        "SELECT DISTINCT ON (union_id) union_id, document FROM union_bylaws"
        " WHERE effective_from <= %s ORDER BY union_id, effective_from DESC, version DESC",
        (week.first_day,)).fetchall()
    return {r[0]: _bylaws(r[1]) for r in rows}


@dataclass(frozen=True, slots=True)
class BylawsVersion:
    version: int
    effective_from: date
    adopted_at: datetime
    sha256: str


def bylaws_versions(conn: Conn, union_id: UUID) -> list[BylawsVersion]:
    return [BylawsVersion(*r) for r in conn.execute(
        "SELECT version, effective_from, adopted_at, sha256 FROM union_bylaws WHERE union_id = %s"
        " ORDER BY version", (union_id,)).fetchall()]


# -- memberships -------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class OpenMembership:
    id: int
    union_id: UUID
    requested_at: datetime
    joined_at: datetime | None
    paused_at: datetime | None


def open_membership(conn: Conn, vehicle_id: UUID) -> OpenMembership | None:
    row = conn.execute(
        "SELECT m.id, m.union_id, m.requested_at, m.joined_at, p.paused_at FROM memberships m"
        " LEFT JOIN membership_pauses p ON p.membership_id = m.id AND p.resumed_at IS NULL"
        " WHERE m.vehicle_id = %s AND m.left_at IS NULL", (vehicle_id,)).fetchone()
    return None if row is None else OpenMembership(*row)


def join(conn: Conn, vehicle_id: UUID, union_id: UUID, now: datetime, *, admitted: bool) -> None:
    current = open_membership(conn, vehicle_id)
    if current is not None:
        same = current.union_id == union_id
        raise MembershipError("the vehicle is already a member of this union" if same else
                              "a vehicle belongs to one union at a time: leave the other union first")
    conn.execute("INSERT INTO memberships (vehicle_id, union_id, requested_at, joined_at)"
                 " VALUES (%s, %s, %s, %s)", (vehicle_id, union_id, now, now if admitted else None))


def approve(conn: Conn, vehicle_id: UUID, union_id: UUID, now: datetime) -> None:
    done = conn.execute(
        "UPDATE memberships SET joined_at = %s WHERE vehicle_id = %s AND union_id = %s"
        " AND left_at IS NULL AND joined_at IS NULL", (now, vehicle_id, union_id)).rowcount
    if not done:
        raise MembershipError("the vehicle has no request waiting for this union's approval")


def _require_open(conn: Conn, vehicle_id: UUID) -> OpenMembership:
    current = open_membership(conn, vehicle_id)
    if current is None:
        raise MembershipError("the vehicle is not a member of any union")
    return current


def leave(conn: Conn, vehicle_id: UUID, now: datetime) -> UUID:
    current = _require_open(conn, vehicle_id)
    conn.execute("UPDATE membership_pauses SET resumed_at = %s WHERE membership_id = %s"
                 " AND resumed_at IS NULL", (now, current.id))
    conn.execute("UPDATE memberships SET left_at = %s WHERE id = %s", (now, current.id))
    return current.union_id


def pause(conn: Conn, vehicle_id: UUID, now: datetime) -> None:
    current = _require_open(conn, vehicle_id)
    if current.paused_at is not None:
        raise MembershipError(f"the membership is paused already (since {current.paused_at:%Y-%m-%d %H:%M})")
    conn.execute("INSERT INTO membership_pauses (membership_id, paused_at) VALUES (%s, %s)",
                 (current.id, now))


def resume(conn: Conn, vehicle_id: UUID, now: datetime) -> None:
    current = _require_open(conn, vehicle_id)
    if current.paused_at is None:
        raise MembershipError("the membership is not paused")
    conn.execute("UPDATE membership_pauses SET resumed_at = %s WHERE membership_id = %s"
                 " AND resumed_at IS NULL", (now, current.id))


def memberships_between(conn: Conn, start: datetime, end: datetime, union_id: UUID | None = None,
                        vehicle_id: UUID | None = None) -> list[Membership]:
    """Admitted memberships that overlap [start, end) (of one union, or one vehicle), with their
    pauses and owners."""
    overlapping = ("SELECT m.id, m.vehicle_id, v.owner_id, m.union_id, m.joined_at, m.left_at"
                   " FROM memberships m JOIN vehicles v ON v.id = m.vehicle_id"
                   " WHERE m.joined_at IS NOT NULL AND m.joined_at < %(end)s"
                   " AND (m.left_at IS NULL OR m.left_at > %(start)s)"
                   " AND (%(union)s::uuid IS NULL OR m.union_id = %(union)s::uuid)"
                   " AND (%(vehicle)s::uuid IS NULL OR m.vehicle_id = %(vehicle)s::uuid)")
    params = {"start": start, "end": end, "union": union_id, "vehicle": vehicle_id}
    pauses: dict[int, list[Interval]] = defaultdict(list)
    for membership, paused, resumed in conn.execute(
            f"SELECT p.membership_id, p.paused_at, p.resumed_at FROM membership_pauses p"
            f" JOIN ({overlapping}) m ON m.id = p.membership_id"
            f" WHERE p.paused_at < %(end)s AND (p.resumed_at IS NULL OR p.resumed_at > %(start)s)"
            f" ORDER BY p.paused_at", params).fetchall():
        pauses[membership].append(Interval(paused, resumed))
    rows = conn.execute(overlapping + " ORDER BY m.id", params).fetchall()
    return [Membership(r[1], r[2], r[3], Interval(r[4], r[5]), tuple(pauses.get(r[0], ())))
            for r in rows]


def pending_requests(conn: Conn, union_id: UUID) -> list[tuple[UUID, datetime]]:
    return [(r[0], r[1]) for r in conn.execute(
        "SELECT vehicle_id, requested_at FROM memberships WHERE union_id = %s AND joined_at IS NULL"
        " AND left_at IS NULL ORDER BY requested_at", (union_id,)).fetchall()]


def member_vehicles(conn: Conn, union_id: UUID) -> list[tuple[UUID, datetime, bool]]:
    """The union's admitted members now: (vehicle, joined at, paused)."""
    return [(r[0], r[1], bool(r[2])) for r in conn.execute(
        "SELECT m.vehicle_id, m.joined_at, EXISTS (SELECT 1 FROM membership_pauses p"
        " WHERE p.membership_id = m.id AND p.resumed_at IS NULL) FROM memberships m"
        " WHERE m.union_id = %s AND m.joined_at IS NOT NULL AND m.left_at IS NULL ORDER BY m.joined_at, m.id",
        (union_id,)).fetchall()]


def member_count(conn: Conn, union_id: UUID) -> int:
    row = conn.execute("SELECT count(*) FROM memberships WHERE union_id = %s AND joined_at IS NOT NULL"
                       " AND left_at IS NULL", (union_id,)).fetchone()
    return int(row[0]) if row else 0


# -- the knob ----------------------------------------------------------------------------------

def set_knob(conn: Conn, driver_id: UUID, level: Knob, now: datetime) -> None:
    conn.execute("INSERT INTO knob_settings (driver_id, set_at, level) VALUES (%s, %s, %s)"
                 " ON CONFLICT (driver_id, set_at) DO UPDATE SET level = EXCLUDED.level",
                 (driver_id, now, int(level)))


def knob_histories(conn: Conn, until: datetime,
                   drivers: Sequence[UUID] | None = None) -> dict[UUID, list[KnobSetting]]:
    """Per driver (all, or these), the knob settings made before ``until``, oldest first."""
    out: dict[UUID, list[KnobSetting]] = defaultdict(list)
    for driver, at, level in conn.execute(
            "SELECT driver_id, set_at, level FROM knob_settings WHERE set_at < %s"
            " AND (%s::uuid[] IS NULL OR driver_id = ANY(%s::uuid[])) ORDER BY driver_id, set_at",
            (until, drivers, drivers)).fetchall():
        out[driver].append(KnobSetting(driver, at, level))
    return dict(out)


# -- strikes -----------------------------------------------------------------------------------

def call_strike(conn: Conn, union_id: UUID, developer_id: UUID | None, called_by: str,
                votes: int | None, reason: str, now: datetime) -> None:
    running = conn.execute(
        "SELECT 1 FROM strikes WHERE union_id = %s AND developer_id IS NOT DISTINCT FROM %s"
        " AND ended_at IS NULL", (union_id, developer_id)).fetchone()
    if running:
        raise MembershipError("this strike is already on")
    conn.execute("INSERT INTO strikes (union_id, developer_id, called_by, votes, reason, started_at)"
                 " VALUES (%s, %s, %s, %s, %s, %s)",
                 (union_id, developer_id, called_by, votes, reason, now))


def end_strike(conn: Conn, union_id: UUID, developer_id: UUID | None, now: datetime) -> None:
    ended = conn.execute(
        "UPDATE strikes SET ended_at = %s WHERE union_id = %s AND developer_id IS NOT DISTINCT FROM %s"
        " AND ended_at IS NULL", (now, union_id, developer_id)).rowcount
    if not ended:
        raise MembershipError("no such strike is on")


def strikes_between(conn: Conn, start: datetime, end: datetime) -> list[Strike]:
    return [Strike(r[0], r[1], Interval(r[2], r[3]), r[4]) for r in conn.execute(
        "SELECT union_id, developer_id, started_at, ended_at, reason FROM strikes"
        " WHERE started_at < %s AND (ended_at IS NULL OR ended_at > %s) ORDER BY id",
        (end, start)).fetchall()]


# -- licences ----------------------------------------------------------------------------------

_LICENCE_COLUMNS = ("id, union_id, developer_id, purpose, scope, starts, ends, price_minor, granted_at,"
                    " revoked_at")


def _licence(row: Sequence[Any]) -> LicenceTerms:
    return LicenceTerms(row[0], row[1], row[2], Purpose(row[3]), tuple(row[4]), row[5], row[6],
                        int(row[7]), row[8], row[9])


def insert_licence(conn: Conn, terms: LicenceTerms, receipt: dict[str, Any]) -> None:
    conn.execute(
        f"INSERT INTO licences ({_LICENCE_COLUMNS}, receipt) VALUES ({', '.join(['%s'] * 11)})",
        (terms.id, terms.union_id, terms.developer_id, terms.purpose.value, list(terms.scope),
         terms.starts, terms.ends, terms.price_minor, terms.granted_at, terms.revoked_at, Jsonb(receipt)))


def licence(conn: Conn, licence_id: UUID) -> tuple[LicenceTerms, dict[str, Any]]:
    row = conn.execute(f"SELECT {_LICENCE_COLUMNS}, receipt FROM licences WHERE id = %s",
                       (licence_id,)).fetchone()
    if row is None:
        raise UnknownRecord(f"no licence with id {licence_id}")
    return _licence(row), cast(dict[str, Any], row[10])


def revoke_licence(conn: Conn, licence_id: UUID, now: datetime) -> datetime:
    row = conn.execute("UPDATE licences SET revoked_at = coalesce(revoked_at, %s) WHERE id = %s"
                       " RETURNING revoked_at", (now, licence_id)).fetchone()
    if row is None:
        raise UnknownRecord(f"no licence with id {licence_id}")
    return cast(datetime, row[0])


def licences_between(conn: Conn, first_day: date, end_day: date, *, union_id: UUID | None = None,
                     developer_id: UUID | None = None) -> list[LicenceTerms]:
    """Licences whose period overlaps [first_day, end_day)."""
    rows = conn.execute(
        f"SELECT {_LICENCE_COLUMNS} FROM licences WHERE starts < %s AND ends > %s"
        " AND (%s::uuid IS NULL OR union_id = %s::uuid) AND (%s::uuid IS NULL OR developer_id = %s::uuid)"
        " ORDER BY granted_at, id",
        (end_day, first_day, union_id, union_id, developer_id, developer_id)).fetchall()
    return [_licence(r) for r in rows]


def rows_served(conn: Conn, start: datetime, end: datetime) -> dict[tuple[UUID, UUID], int]:
    return {(r[0], r[1]): int(r[2]) for r in conn.execute(
        "SELECT licence_id, vehicle_id, sum(rows) FROM data_access WHERE at >= %s AND at < %s"
        " GROUP BY licence_id, vehicle_id", (start, end)).fetchall()}


# -- movement and ownership, as the epochs read them -------------------------------------------

def proven_weeks(conn: Conn, genesis: Week, week: Week) -> dict[UUID, tuple[UUID, frozenset[int]]]:
    """Vehicles with a ``moved`` day in ``week``: their owner and every week (index from
    genesis) they moved."""
    rows = conn.execute(
        "SELECT p.vehicle_id, v.owner_id, p.weeks FROM (SELECT vehicle_id,"
        " array_agg(DISTINCT (day - %(genesis)s) / 7) AS weeks FROM movement_proofs"
        " WHERE verdict = 'moved' AND day >= %(genesis)s AND day < %(end)s GROUP BY vehicle_id"
        " HAVING bool_or(day >= %(start)s)) p JOIN vehicles v ON v.id = p.vehicle_id",
        {"genesis": genesis.first_day, "start": week.first_day,
         "end": week.first_day + timedelta(days=7)}).fetchall()
    return {r[0]: (r[1], frozenset(r[2])) for r in rows}


def database_clock(conn: Conn) -> datetime:
    """The database's clock now (what proofs are stamped with), not the transaction's start."""
    row = conn.execute("SELECT clock_timestamp()").fetchone()
    assert row is not None
    return cast(datetime, row[0])


def proofs_changed_since(conn: Conn, week: Week, since: datetime) -> bool:
    """Whether a proof of a day of ``week`` was (re)computed after ``since``: the only input of
    a closed epoch that can change later (every other input takes effect when it is recorded)."""
    return conn.execute(
        "SELECT 1 FROM movement_proofs WHERE day >= %s AND day < %s AND proved_at > %s LIMIT 1",
        (week.first_day, week.first_day + timedelta(days=7), since)).fetchone() is not None


# -- the ledger --------------------------------------------------------------------------------

_ENTRY_COLUMNS = "seq, txn, kind, settles, memo, asset, account, amount, at, prev_hash, hash"


def lock_ledger(conn: Conn) -> None:
    """One writer at a time, until the caller's transaction ends (readers are not blocked)."""
    conn.execute("LOCK TABLE ledger_entries IN EXCLUSIVE MODE")


def append(conn: Conn, transactions: Sequence[Transaction], at: str) -> list[Entry]:
    """Chain the transactions after the ledger's last row and write them (one writer at a time)."""
    if not transactions:
        return []
    lock_ledger(conn)
    head = conn.execute("SELECT seq, hash FROM ledger_entries ORDER BY seq DESC LIMIT 1").fetchone()
    seq, prev = (int(head[0]), bytes(head[1])) if head else (0, GENESIS_HASH)
    entries = chain(transactions, at, seq + 1, prev)
    with conn.cursor().copy(f"COPY ledger_entries ({_ENTRY_COLUMNS}) FROM STDIN (FORMAT BINARY)") as copy:
        copy.set_types(["int8", "text", "text", "text", "text", "text", "text", "int8", "text", "bytea",
                        "bytea"])
        for e in entries:
            copy.write_row((e.seq, e.txn, e.kind, e.settles, e.memo, e.asset, e.account, e.amount,
                            e.at, e.prev_hash, e.hash))
    return entries


def transaction_exists(conn: Conn, txn: str) -> bool:
    return conn.execute("SELECT 1 FROM ledger_entries WHERE txn = %s LIMIT 1", (txn,)).fetchone() is not None


def _entry(r: Sequence[Any]) -> Entry:
    return Entry(int(r[0]), r[1], r[2], r[3], r[4], r[5], r[6], int(r[7]), r[8], bytes(r[9]), bytes(r[10]))


def entries(conn: Conn, *, account: str | None = None, txn_prefix: str | None = None) -> Iterator[Entry]:
    """Ledger rows in order (streamed), all or one account's or one epoch's."""
    with conn.cursor(name=f"ledger_rows_{uuid4().hex}") as cur:
        cur.itersize = 10_000
        cur.execute(f"SELECT {_ENTRY_COLUMNS} FROM ledger_entries"
                    " WHERE (%s::text IS NULL OR account = %s::text)"
                    " AND (%s::text IS NULL OR starts_with(txn, %s::text)) ORDER BY seq",
                    (account, account, txn_prefix, txn_prefix))
        for r in cur:
            yield _entry(r)


def balance(conn: Conn, account: str, asset: str) -> int:
    row = conn.execute("SELECT coalesce(sum(amount), 0) FROM ledger_entries WHERE account = %s"
                       " AND asset = %s", (account, asset)).fetchone()
    return int(row[0]) if row else 0


def posted_for(conn: Conn, week: Week) -> dict[tuple[str, str], int]:
    """What the ledger holds for a closed epoch, its adjustments included: (asset, account) -> net."""
    return {(r[0], r[1]): int(r[2]) for r in conn.execute(
        "SELECT asset, account, sum(amount) FROM ledger_entries WHERE settles = %s"
        " GROUP BY asset, account", (str(week),)).fetchall() if int(r[2])}


# -- epochs ------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class EpochRecord:
    week: str
    closed_at: datetime
    first_seq: int | None
    last_seq: int | None
    head_hash: bytes | None
    payout_root: bytes
    root_signature: bytes
    summary: dict[str, Any]

    def anchor(self) -> Anchor | None:
        if self.first_seq is None or self.last_seq is None or self.head_hash is None:
            return None
        return Anchor(self.week, self.first_seq, self.last_seq, self.head_hash)


_EPOCH_COLUMNS = "week, closed_at, first_seq, last_seq, head_hash, payout_root, root_signature, summary"


def _epoch(r: Sequence[Any]) -> EpochRecord:
    return EpochRecord(r[0], r[1], r[2], r[3], bytes(r[4]) if r[4] is not None else None,
                       bytes(r[5]), bytes(r[6]), r[7])


def epoch_record(conn: Conn, week: Week) -> EpochRecord | None:
    row = conn.execute(f"SELECT {_EPOCH_COLUMNS} FROM epochs WHERE week = %s", (str(week),)).fetchone()
    return None if row is None else _epoch(row)


def epoch_records(conn: Conn) -> list[EpochRecord]:
    return [_epoch(r) for r in conn.execute(f"SELECT {_EPOCH_COLUMNS} FROM epochs ORDER BY week").fetchall()]


def record_epoch(conn: Conn, record: EpochRecord, leaves: Sequence[tuple[UUID | str, bytes]],
                 lines: Sequence[tuple[Any, ...]]) -> None:
    conn.execute(f"INSERT INTO epochs ({_EPOCH_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                 (record.week, record.closed_at, record.first_seq, record.last_seq, record.head_hash,
                  record.payout_root, record.root_signature, Jsonb(record.summary)))
    with conn.cursor().copy("COPY epoch_payouts (week, leaf_index, driver_id, leaf) FROM STDIN") as copy:
        for index, (driver, leaf) in enumerate(leaves):
            copy.write_row((record.week, index, driver, leaf))
    with conn.cursor().copy("COPY epoch_licences (week, licence_id, vehicles, vehicle_days, charge,"
                            " network_fee, operator_fee, members_share) FROM STDIN") as copy:
        for line in lines:
            copy.write_row((record.week, *line))


def payout_leaves(conn: Conn, week: Week) -> list[tuple[UUID, bytes]]:
    return [(r[0], bytes(r[1])) for r in conn.execute(
        "SELECT driver_id, leaf FROM epoch_payouts WHERE week = %s ORDER BY leaf_index",
        (str(week),)).fetchall()]


def epoch_licence_lines(conn: Conn, week: Week) -> list[tuple[Any, ...]]:
    return list(conn.execute(
        "SELECT e.licence_id, u.slug, d.organisation, l.purpose, e.vehicles, e.vehicle_days, e.charge,"
        " e.network_fee, e.operator_fee, e.members_share FROM epoch_licences e"
        " JOIN licences l ON l.id = e.licence_id JOIN unions u ON u.id = l.union_id"
        " JOIN developers d ON d.id = l.developer_id WHERE e.week = %s ORDER BY u.slug, e.licence_id",
        (str(week),)).fetchall())
