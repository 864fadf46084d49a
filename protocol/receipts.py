"""Receipts: the network tells a device which of its events are settled (docs/protocol.md,
"Receipts").

The MQTT acknowledgement is hop by hop (MQTT 5 section 4.3.2: the broker has the message); a
receipt is end to end: ingest publishes it on the device's own ``receipts`` topic after the
transaction holding the events committed. An event is settled when it is stored (now, or
before: a re-send) or refused for good (it sits in the quarantine with its reason). A device
keeps every event until a receipt settles it and sends again what stays unsettled.

Pure: receipts are built from (boot id, seq) pairs and parsed back; no I/O.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from protocol.errors import ProtocolError
from protocol.limits import MAX_BOOT_ID_CHARS, MAX_SEQ

RECEIPT_TYPE = "motus.receipt.v1"


class ReceiptError(ProtocolError):
    """A receipt that does not follow docs/protocol.md."""


def merge_ranges(ranges: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """Sorted inclusive ranges with overlapping and adjacent ones joined: [(3,4), (0,2)] -> [(0,4)]."""
    merged: list[tuple[int, int]] = []
    for lo, hi in sorted(ranges):
        if merged and lo <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(hi, merged[-1][1]))
        else:
            merged.append((lo, hi))
    return merged


def seq_ranges(seqs: Iterable[int]) -> list[tuple[int, int]]:
    """Sorted, merged, inclusive ranges covering exactly ``seqs``: {0,1,2,5} -> [(0,2), (5,5)]."""
    return merge_ranges((seq, seq) for seq in seqs)


@dataclass(slots=True)
class BootReceipt:
    """What is settled of one boot: stored ranges and refused seqs with their reasons."""

    boot: str
    stored: list[tuple[int, int]] = field(default_factory=list)
    refused: dict[int, str] = field(default_factory=dict)

    def settled_ranges(self) -> list[tuple[int, int]]:
        """Every settled seq (stored or refused) as merged ranges."""
        return merge_ranges([*self.stored, *((seq, seq) for seq in self.refused)])

    def covers(self, seq: int) -> bool:
        return seq in self.refused or any(lo <= seq <= hi for lo, hi in self.stored)


@dataclass(slots=True)
class ReceiptBuilder:
    """Collects one device's settled events of a batch, boot by boot."""

    stored: dict[str, set[int]] = field(default_factory=dict)
    refused: dict[str, dict[int, str]] = field(default_factory=dict)

    def add_stored(self, boot: str, seq: int) -> None:
        self.stored.setdefault(boot, set()).add(seq)

    def add_refused(self, boot: str, seq: int, reason: str) -> None:
        self.refused.setdefault(boot, {})[seq] = reason

    def boots(self) -> list[BootReceipt]:
        names = sorted(set(self.stored) | set(self.refused))
        return [BootReceipt(boot, seq_ranges(self.stored.get(boot, ())),
                            dict(sorted(self.refused.get(boot, {}).items()))) for boot in names]


def encode_receipt(boots: Iterable[BootReceipt]) -> bytes:
    document: dict[str, Any] = {"type": RECEIPT_TYPE, "boots": [
        {"boot": b.boot, "stored": [list(r) for r in b.stored],
         "refused": [{"seq": seq, "reason": reason} for seq, reason in b.refused.items()]}
        for b in boots]}
    return json.dumps(document, separators=(",", ":")).encode()


class _Refusal(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)
    seq: int = Field(ge=0, le=MAX_SEQ)
    reason: str = Field(max_length=64)


class _Boot(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)
    boot: str = Field(pattern=rf"^[A-Za-z0-9_-]{{1,{MAX_BOOT_ID_CHARS}}}$")
    stored: list[tuple[int, int]] = Field(default_factory=list)
    refused: list[_Refusal] = Field(default_factory=list)


class _Receipt(BaseModel):
    # Members this version does not know are ignored, so later versions may add some.
    model_config = ConfigDict(extra="ignore", strict=True)
    type: str
    boots: list[_Boot]


def parse_receipt(payload: bytes) -> list[BootReceipt]:
    """The boots a receipt settles; ReceiptError for anything else (an unknown ``type`` too)."""
    try:
        receipt = _Receipt.model_validate_json(payload)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "receipt"
        raise ReceiptError(f"not a receipt: {where}: {first['msg']}") from None
    if receipt.type != RECEIPT_TYPE:
        raise ReceiptError(f"unknown receipt type {receipt.type!r}")
    out = []
    for boot in receipt.boots:
        for lo, hi in boot.stored:
            if not 0 <= lo <= hi <= MAX_SEQ:
                raise ReceiptError(f"boot {boot.boot}: range [{lo}, {hi}] is not 0 <= low <= high")
        out.append(BootReceipt(boot.boot, list(boot.stored), {r.seq: r.reason for r in boot.refused}))
    return out
