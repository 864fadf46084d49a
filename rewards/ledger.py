"""The ledger's rules: double entry, one asset at a time, each entry chained to the one before.

A transaction's postings sum to zero per asset (money and reward tokens never mix). Entries are
numbered without gaps; each stores the SHA-256 of the previous entry's hash and its own contents,
so changing, removing or inserting a row breaks the chain at that row, and ``verify`` names it.
Balances: the sum of an account's postings (a driver's positive balance is owed to them).
"""

from __future__ import annotations

import bisect
import hashlib
import json
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from rewards.errors import RewardsError

MONEY = "EUR"
TOKENS = "MOTUS"
TOKEN_EXPONENT = 6  # reward tokens are counted in millionths
GENESIS_HASH = bytes(32)


def driver_account(driver_id: object) -> str:
    return f"driver:{driver_id}"


def developer_account(developer_id: object) -> str:
    return f"developer:{developer_id}"


def operator_account(union_id: object) -> str:
    return f"union:{union_id}:operator"


def members_account(union_id: object) -> str:
    return f"union:{union_id}:members"


NETWORK_FEES = "network:fees"
NETWORK_ISSUANCE = "network:issuance"
PAYMENTS_IN = "external:payments-in"


class UnbalancedTransaction(RewardsError):
    pass


@dataclass(frozen=True, slots=True, order=True)
class Posting:
    asset: str
    account: str
    amount: int


@dataclass(frozen=True, slots=True)
class Transaction:
    id: str
    kind: str
    settles: str  # the epoch it settles ("" for top-ups)
    memo: str
    postings: tuple[Posting, ...]

    def __post_init__(self) -> None:
        unbalanced = imbalance(self.postings)
        if unbalanced:
            raise UnbalancedTransaction(f"transaction {self.id} does not balance: {unbalanced}")


def imbalance(postings: Iterable[Posting]) -> dict[str, int]:
    """Per asset, the sum of the postings where it is not zero."""
    sums: dict[str, int] = defaultdict(int)
    for p in postings:
        sums[p.asset] += p.amount
    return {asset: total for asset, total in sorted(sums.items()) if total}


def transaction(id: str, kind: str, settles: str, memo: str,
                amounts: Mapping[tuple[str, str], int]) -> Transaction:
    """A transaction from (asset, account) -> amount, zero amounts left out, postings sorted."""
    postings = tuple(Posting(asset, account, amount)
                     for (asset, account), amount in sorted(amounts.items()) if amount)
    return Transaction(id, kind, settles, memo, postings)


@dataclass(frozen=True, slots=True)
class Entry:
    seq: int
    txn: str
    kind: str
    settles: str
    memo: str
    asset: str
    account: str
    amount: int
    at: str  # ISO 8601 UTC: when the entry takes effect (an epoch's end, a top-up's time)
    prev_hash: bytes
    hash: bytes

    def body(self) -> bytes:
        return entry_body(self.seq, self.txn, self.kind, self.settles, self.memo, self.asset,
                          self.account, self.amount, self.at)


def entry_body(seq: int, txn: str, kind: str, settles: str, memo: str, asset: str, account: str,
               amount: int, at: str) -> bytes:
    """The bytes an entry's hash covers: a JSON array, compact, in a fixed field order."""
    return json.dumps([seq, txn, kind, settles, memo, asset, account, amount, at],
                      ensure_ascii=False, separators=(",", ":")).encode("utf-8")


_PLAIN = re.compile(r'[ !#-\[\]-~]*')  # printable ASCII but the quote and the backslash


def _text(value: str) -> str:
    """``json.dumps(value, ensure_ascii=False)``; text that needs no escaping (ids, accounts,
    assets, times) skips the encoder."""
    return f'"{value}"' if _PLAIN.fullmatch(value) else json.dumps(value, ensure_ascii=False)


def chain_hash(prev_hash: bytes, body: bytes) -> bytes:
    return hashlib.sha256(prev_hash + body).digest()


def chain(transactions: Sequence[Transaction], at: str, first_seq: int, prev_hash: bytes) -> list[Entry]:
    """The entries for ``transactions``, numbered from ``first_seq``, chained after ``prev_hash``."""
    entries: list[Entry] = []
    seq = first_seq
    at_text = _text(at)
    for txn in transactions:
        # entry_body, with the transaction's part encoded once (a test holds them equal)
        head = ",".join(map(_text, (txn.id, txn.kind, txn.settles, txn.memo)))
        for p in txn.postings:
            body = (f"[{seq},{head},{_text(p.asset)},{_text(p.account)},{p.amount},{at_text}]"
                    .encode())
            digest = hashlib.sha256(prev_hash + body).digest()
            entries.append(Entry(seq, txn.id, txn.kind, txn.settles, txn.memo, p.asset, p.account,
                                 p.amount, at, prev_hash, digest))
            prev_hash, seq = digest, seq + 1
    return entries


@dataclass(frozen=True, slots=True)
class Anchor:
    """An epoch's record of the ledger: its entries are seq first..last, the last one's hash."""

    epoch: str
    first_seq: int
    last_seq: int
    head_hash: bytes


def _epoch_of(anchors: Sequence[Anchor], firsts: list[int], seq: int) -> Anchor | None:
    """The closed epoch whose rows include ``seq``."""
    i = bisect.bisect_right(firsts, seq) - 1
    return anchors[i] if i >= 0 and anchors[i].first_seq <= seq <= anchors[i].last_seq else None


def verify(entries: Iterable[Entry], anchors: Sequence[Anchor] | None = None) -> list[str]:
    """Every problem found, each naming the row: gaps, broken links, changed contents,
    transactions that do not balance and, given the closed epochs' records (``anchors``, all of
    them), rows outside or missing from an epoch's record: only top-ups live outside epochs. One
    pass, keeping per transaction only its sums."""
    problems: list[str] = []
    check_epochs = anchors is not None
    ordered = sorted(anchors or (), key=lambda a: a.first_seq)
    firsts = [a.first_seq for a in ordered]
    heads = {a.last_seq: a for a in ordered}
    seen_heads: dict[int, bytes] = {}
    prev_seq, prev_hash = 0, GENESIS_HASH
    sums: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for e in entries:
        if e.seq > prev_seq + 1:
            gap = f"row {prev_seq + 1}" if e.seq == prev_seq + 2 else f"rows {prev_seq + 1}..{e.seq - 1}"
            problems.append(f"{gap} removed: the numbering jumps from {prev_seq} to {e.seq}")
        elif e.seq <= prev_seq:
            problems.append(f"row {e.seq} inserted: it repeats or goes back from row {prev_seq}")
        if e.prev_hash != prev_hash:
            problems.append(f"row {e.seq} does not follow the row before it "
                            f"(a row was removed or inserted before it)")
        if chain_hash(e.prev_hash, e.body()) != e.hash:
            problems.append(f"row {e.seq} changed: its contents do not match its hash "
                            f"({e.txn}, {e.account}, {e.amount} {e.asset})")
        epoch = _epoch_of(ordered, firsts, e.seq)
        if not check_epochs:
            pass
        elif e.kind == "top-up" and epoch is not None:
            problems.append(f"row {e.seq} inserted: a top-up among epoch {epoch.epoch}'s rows")
        elif e.kind != "top-up" and (epoch is None or not e.txn.startswith(epoch.epoch + "/")):
            owner = e.txn.split("/", 1)[0]
            problems.append(f"row(s) {e.seq} inserted: a row of epoch {owner} outside the rows it "
                            f"closed with")
        sums[e.txn][e.asset] += e.amount
        if e.seq in heads:
            seen_heads[e.seq] = e.hash
        prev_seq, prev_hash = max(prev_seq, e.seq), e.hash
    for txn, per_asset in sums.items():
        off = {asset: total for asset, total in sorted(per_asset.items()) if total}
        if off:
            problems.append(f"transaction {txn} does not balance: "
                            + ", ".join(f"{total:+d} {asset}" for asset, total in off.items()))
    for anchor in ordered:
        if seen_heads.get(anchor.last_seq) != anchor.head_hash:
            problems.append(f"epoch {anchor.epoch}: its last row {anchor.last_seq} is not the one "
                            f"recorded when it closed")
    return problems


def balances(entries: Iterable[Entry | Posting]) -> dict[tuple[str, str], int]:
    """(asset, account) -> balance."""
    out: dict[tuple[str, str], int] = defaultdict(int)
    for e in entries:
        out[(e.asset, e.account)] += e.amount
    return dict(out)
