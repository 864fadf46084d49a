"""Check a Motus payout proof yourself: your payout line is in the signed tree for the epoch.

Each epoch the network publishes the root of an RFC 9162 Merkle tree over every payout line
and signs it with its Ed25519 key. A driver's payout proof is a JSON document::

    {"format": "motus-payout-proof-v1", "epoch": "2026-W47", "tree_size": 3, "leaf_index": 1,
     "leaf": "<the payout line; its UTF-8 bytes are the leaf data>",
     "audit_path": ["<hex SHA-256>", ...], "root": "<hex SHA-256>",
     "root_signature": "<base64 Ed25519 signature>",
     "network_public_key": "<hex of the raw 32-byte Ed25519 public key>"}

The signature covers ``b"motus-payout-root-v1\\n" + epoch (ASCII) + b"\\n" + root (32 bytes)``.

Usage, with nothing but Python 3.11+ and the ``cryptography`` package::

    python verifier.py proof.json --key <the network's public key in hex>
    python -m rewards.verifier proof.json

It prints ``valid: <leaf>`` and exits 0, or prints each problem and exits 1. Without ``--key``
it trusts the key inside the document, which proves the tree is self-consistent but not that
the network signed it: get the key from somewhere other than the proof.

This file is deliberately self-contained (no imports from the rest of Motus) so it can be
copied and audited alone; that is why it repeats the ~15-line inclusion check of
``rewards.merkle`` instead of importing it.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import hashlib
import hmac
import json
import sys
from collections.abc import Sequence
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

PROOF_FORMAT = "motus-payout-proof-v1"
PAYOUT_ROOT_DOMAIN = b"motus-payout-root-v1\n"
_HASH_SIZE = 32
_KEY_SIZE = 32


def signed_root_message(epoch: str, root: bytes) -> bytes:
    """The exact bytes the network signs for an epoch's payout root."""
    if len(root) != _HASH_SIZE:
        raise ValueError(f"a payout root is {_HASH_SIZE} bytes, not {len(root)}")
    return PAYOUT_ROOT_DOMAIN + epoch.encode("ascii") + b"\n" + bytes(root)


# --- RFC 9162 2.1 hashing and 2.1.3.2 inclusion verification (a copy of rewards.merkle's) ---


def _leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def _node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _verify_inclusion(leaf: bytes, index: int, size: int, path: Sequence[bytes], root: bytes) -> bool:
    if not 0 <= index < size:
        return False
    fn, sn, r = index, size - 1, _leaf_hash(leaf)
    for p in path:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = _node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = _node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and hmac.compare_digest(r, root)


# --- the proof document ---


def _field(document: dict[str, Any], name: str, kind: type) -> Any:
    value = document.get(name)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ValueError(f"malformed proof: {name!r} must be a {kind.__name__}")
    return value


def _hex(value: object, name: str, size: int) -> bytes:
    try:
        raw = bytes.fromhex(value) if isinstance(value, str) else b""
    except ValueError:
        raw = b""
    if len(raw) != size:
        raise ValueError(f"malformed proof: {name!r} must be {size} bytes of hex")
    return raw


def _check_signature(public_key: bytes, signature_b64: str, message: bytes) -> str | None:
    try:
        signature = base64.b64decode(signature_b64, validate=True)
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature, message)
    except (binascii.Error, ValueError, InvalidSignature):
        return "bad signature: root_signature is not the network key's signature of this epoch's root"
    return None


def _problems(document: dict[str, Any], trusted_public_key: bytes | None) -> list[str]:
    if document.get("format") != PROOF_FORMAT:
        return [f"wrong format: expected {PROOF_FORMAT!r}, got {document.get('format')!r}"]
    epoch = _field(document, "epoch", str)
    if not epoch.isascii():
        raise ValueError("malformed proof: 'epoch' must be ASCII")
    size = _field(document, "tree_size", int)
    index = _field(document, "leaf_index", int)
    leaf = _field(document, "leaf", str)
    path = [_hex(h, "audit_path", _HASH_SIZE) for h in _field(document, "audit_path", list)]
    root = _hex(document.get("root"), "root", _HASH_SIZE)
    key = _hex(document.get("network_public_key"), "network_public_key", _KEY_SIZE)
    signature = _field(document, "root_signature", str)

    problems = []
    if not _verify_inclusion(leaf.encode("utf-8"), index, size, path, root):
        problems.append(f"leaf not in tree: the audit path does not lead from leaf {index} of {size} to root")
    bad_signature = _check_signature(key, signature, signed_root_message(epoch, root))
    if bad_signature:
        problems.append(bad_signature)
    if trusted_public_key is not None and not hmac.compare_digest(key, bytes(trusted_public_key)):
        problems.append("untrusted key: network_public_key is not the trusted network key")
    return problems


def verify_payout_proof(document: dict[str, Any], trusted_public_key: bytes | None = None) -> list[str]:
    """The problems with a payout proof document; an empty list means it is valid.

    ``trusted_public_key`` is the network's raw 32-byte Ed25519 key obtained out of band; when
    given, a document carrying any other key is refused.
    """
    if not isinstance(document, dict):
        return ["malformed proof: the document must be a JSON object"]
    try:
        return _problems(document, trusted_public_key)
    except ValueError as exc:  # a field missing or not of the documented shape
        return [str(exc)]


def main(argv: Sequence[str] | None = None) -> int:
    """Verify a proof file; print ``valid: <leaf>`` (exit 0) or each problem (exit 1)."""
    parser = argparse.ArgumentParser(description="Verify a Motus payout proof (motus-payout-proof-v1).")
    parser.add_argument("proof", help="path to the payout proof JSON document")
    parser.add_argument("--key", help="the network's Ed25519 public key, 64 hex digits (trusted)")
    args = parser.parse_args(argv)

    trusted: bytes | None = None
    if args.key is not None:
        try:
            trusted = bytes.fromhex(args.key)
        except ValueError:
            parser.error("--key must be hex")
        if len(trusted) != _KEY_SIZE:
            parser.error(f"--key must be {_KEY_SIZE} bytes ({2 * _KEY_SIZE} hex digits)")
    try:
        with open(args.proof, encoding="utf-8") as handle:
            document = json.load(handle)
    except (OSError, ValueError) as exc:
        print(f"cannot read proof: {exc}")
        return 1

    problems = verify_payout_proof(document, trusted)
    for problem in problems:
        print(problem)
    if problems:
        return 1
    print(f"valid: {document['leaf']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
