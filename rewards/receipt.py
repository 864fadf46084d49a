"""Provenance receipts: what a union granted, to whom, for what, over which vehicles, signed.

A receipt holds the licence's terms, the hash of the bylaws it was granted under and an RFC 9162
Merkle root over the covered vehicles (leaves: their ids as text, sorted), signed with the
network's Ed25519 key over ``b"motus-licence-receipt-v1\\n"`` + the RFC 8785 JSON of the
receipt without its ``signature`` member. Anyone with the network's public key can check it.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from typing import Any
from uuid import UUID

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from protocol import jcs
from protocol.signing import public_key_bytes
from rewards.ledger import MONEY
from rewards.merkle import MerkleTree
from rewards.records import LicenceTerms

RECEIPT_FORMAT = "motus-licence-receipt-v1"
RECEIPT_DOMAIN = b"motus-licence-receipt-v1\n"


def covered_root(vehicles: Sequence[UUID]) -> bytes:
    return MerkleTree([str(v).encode("ascii") for v in sorted(vehicles, key=str)]).root


def receipt_document(terms: LicenceTerms, *, union: str, developer: str, bylaws_sha256: str,
                     covered: Sequence[UUID], key: Ed25519PrivateKey) -> dict[str, Any]:
    document: dict[str, Any] = {
        "format": RECEIPT_FORMAT,
        "licence": {
            "id": str(terms.id), "union": union, "union_id": str(terms.union_id),
            "developer": developer, "developer_id": str(terms.developer_id),
            "purpose": terms.purpose.value, "scope": sorted(terms.scope),
            "privileges": sorted(p.value for p in terms.privileges),
            "starts": terms.starts.isoformat(), "ends": terms.ends.isoformat(),
            "price_minor_per_vehicle_30_days": terms.price_minor, "currency": MONEY,
            "granted_at": terms.granted_at.isoformat(),
        },
        "bylaws_sha256": bylaws_sha256,
        "covered": {"vehicles": len(covered), "merkle_root": covered_root(covered).hex()},
        "network_public_key": public_key_bytes(key).hex(),
    }
    signature = key.sign(RECEIPT_DOMAIN + jcs.dumps(document))
    return {**document, "signature": base64.b64encode(signature).decode("ascii")}


def verify_receipt(receipt: dict[str, Any], trusted_public_key: bytes) -> list[str]:
    """Problems with the receipt (empty: signed by the trusted key, untouched)."""
    problems: list[str] = []
    if receipt.get("format") != RECEIPT_FORMAT:
        problems.append(f"not a licence receipt (format {receipt.get('format')!r})")
    if receipt.get("network_public_key") != trusted_public_key.hex():
        problems.append("signed by another key than the network's")
    try:
        signature = base64.b64decode(str(receipt.get("signature", "")), validate=True)
        unsigned = {k: v for k, v in receipt.items() if k != "signature"}
        Ed25519PublicKey.from_public_bytes(trusted_public_key).verify(
            signature, RECEIPT_DOMAIN + jcs.dumps(unsigned))
    except (InvalidSignature, binascii.Error, ValueError):
        problems.append("the signature does not match the receipt: it was changed or forged")
    return problems
