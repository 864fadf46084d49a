"""An RFC 9162 Merkle tree: leaf and node hashes, roots, audit paths and their verification.

Pure and stdlib-only. The hashing is RFC 9162 section 2.1 (identical to RFC 6962 section 2.1),
so roots and proofs interoperate with Certificate Transparency tooling. The tree is built
bottom-up, one pass per level; carrying an unpaired last node up unchanged gives the same
shape as the RFC's recursive split at the largest power of two smaller than n.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence

__all__ = [
    "EMPTY_ROOT",
    "MerkleTree",
    "leaf_hash",
    "node_hash",
    "root_of",
    "verify_inclusion",
]

_LEAF_PREFIX = b"\x00"
_NODE_PREFIX = b"\x01"

# RFC 9162 2.1.1: the hash of an empty list is the hash of an empty string.
EMPTY_ROOT = hashlib.sha256(b"").digest()


def leaf_hash(data: bytes) -> bytes:
    """MTH({d(0)}) = HASH(0x00 || d(0)) (RFC 9162 2.1.1)."""
    return hashlib.sha256(_LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """HASH(0x01 || MTH(left) || MTH(right)) (RFC 9162 2.1.1)."""
    return hashlib.sha256(_NODE_PREFIX + left + right).digest()


def _next_level(level: Sequence[bytes]) -> list[bytes]:
    """Hash adjacent pairs; an unpaired last node moves up unchanged."""
    parents = [node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
    if len(level) % 2:
        parents.append(level[-1])
    return parents


class MerkleTree:
    """An immutable Merkle tree over a sequence of leaf data, with every level kept for proofs."""

    def __init__(self, leaves: Sequence[bytes]) -> None:
        level = [leaf_hash(bytes(data)) for data in leaves]
        self._levels: list[list[bytes]] = [level]
        while len(level) > 1:
            level = _next_level(level)
            self._levels.append(level)

    @property
    def size(self) -> int:
        """The number of leaves."""
        return len(self._levels[0])

    @property
    def root(self) -> bytes:
        """The tree head MTH(D[n]); EMPTY_ROOT for no leaves."""
        return self._levels[-1][0] if self.size else EMPTY_ROOT

    def inclusion_proof(self, index: int) -> list[bytes]:
        """The audit path PATH(index, D[n]) of RFC 9162 2.1.3.1, ordered from the leaf upward."""
        self._check_index(index)
        path: list[bytes] = []
        for level in self._levels[:-1]:
            sibling = index ^ 1
            # A node with no sibling at this level is carried up: it adds nothing to the path.
            if sibling < len(level):
                path.append(level[sibling])
            index //= 2
        return path

    def _check_index(self, index: int) -> None:
        if not 0 <= index < self.size:
            raise IndexError(f"leaf index {index} is outside a tree of {self.size} leaves")


def root_of(leaves: Sequence[bytes]) -> bytes:
    """The Merkle tree head of ``leaves``."""
    return MerkleTree(leaves).root


def verify_inclusion(leaf: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes) -> bool:
    """Whether ``proof`` shows leaf data ``leaf`` at ``index`` in the tree of ``size`` with head ``root``.

    RFC 9162 2.1.3.2, step by step. Never raises: any malformed input is simply not a proof.
    """
    if not _is_bytes(leaf) or not _is_bytes(root) or not all(_is_bytes(p) for p in proof):
        return False
    if isinstance(index, bool) or isinstance(size, bool):
        return False
    if not isinstance(index, int) or not isinstance(size, int) or not 0 <= index < size:
        return False  # step 1: leaf_index must be below tree_size
    fn, sn = index, size - 1  # step 2
    r = leaf_hash(leaf)  # step 3
    for p in proof:  # step 4
        if sn == 0:  # 4a: the path is longer than the tree is deep
            return False
        if fn & 1 or fn == sn:  # 4b
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:  # 4b.ii: skip levels where the node had no sibling
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1  # 4c
        sn >>= 1
    return sn == 0 and hmac.compare_digest(r, root)  # step 5


def _is_bytes(value: object) -> bool:
    return isinstance(value, bytes | bytearray | memoryview)
