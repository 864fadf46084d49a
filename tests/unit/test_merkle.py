"""The RFC 9162 Merkle tree (rewards.merkle) and the standalone payout verifier (rewards.verifier)."""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from hypothesis import given, settings
from hypothesis import strategies as st

from rewards.merkle import EMPTY_ROOT, MerkleTree, leaf_hash, node_hash, root_of, verify_inclusion
from rewards.verifier import PAYOUT_ROOT_DOMAIN, signed_root_message, verify_payout_proof

REPO_ROOT = Path(__file__).resolve().parents[2]

# --- a reference written straight from RFC 9162 2.1.1 (MTH) and 2.1.3.1 (PATH), recursive ---


def _split(n: int) -> int:
    """The largest power of two smaller than n (n > 1)."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def ref_mth(d: list[bytes]) -> bytes:
    n = len(d)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return hashlib.sha256(b"\x00" + d[0]).digest()
    k = _split(n)
    return hashlib.sha256(b"\x01" + ref_mth(d[:k]) + ref_mth(d[k:])).digest()


def ref_path(m: int, d: list[bytes]) -> list[bytes]:
    n = len(d)
    if n == 1:
        return []
    k = _split(n)
    if m < k:
        return [*ref_path(m, d[:k]), ref_mth(d[k:])]
    return [*ref_path(m - k, d[k:]), ref_mth(d[:k])]


# --- the RFC 6962 test vectors ---
# From transparency-dev/merkle, proof/verify_test.go (`leaves`, `roots`, `inclusionProofs`);
# the same data as Certificate Transparency's merkle_tree_test.cc.

VECTOR_LEAVES = [
    bytes.fromhex(h)
    for h in (
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    )
]
VECTOR_ROOTS = {
    1: "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    2: "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    3: "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    4: "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    5: "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    6: "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    7: "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    8: "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
}
# (0-based leaf index, tree size, audit path). verify_test.go numbers leaves from 1:
# its {1, 8}, {6, 8}, {3, 3}, {2, 5} are the entries below.
VECTOR_PROOFS = [
    (0, 1, []),
    (
        0,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        5,
        8,
        [
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (2, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (
        1,
        5,
        [
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
]


def test_hashes_are_domain_separated_sha256():
    assert leaf_hash(b"x") == hashlib.sha256(b"\x00x").digest()
    assert node_hash(b"a", b"b") == hashlib.sha256(b"\x01ab").digest()
    assert EMPTY_ROOT.hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def test_empty_tree():
    tree = MerkleTree([])
    assert tree.size == 0
    assert tree.root == EMPTY_ROOT == root_of([])
    with pytest.raises(IndexError):
        tree.inclusion_proof(0)


@pytest.mark.parametrize("size", sorted(VECTOR_ROOTS))
def test_rfc6962_vector_roots(size):
    tree = MerkleTree(VECTOR_LEAVES[:size])
    assert tree.size == size
    assert tree.root.hex() == VECTOR_ROOTS[size]
    assert ref_mth(VECTOR_LEAVES[:size]).hex() == VECTOR_ROOTS[size]


@pytest.mark.parametrize(("index", "size", "path"), VECTOR_PROOFS)
def test_rfc6962_vector_audit_paths(index, size, path):
    tree = MerkleTree(VECTOR_LEAVES[:size])
    proof = tree.inclusion_proof(index)
    assert [p.hex() for p in proof] == path
    root = bytes.fromhex(VECTOR_ROOTS[size])
    assert verify_inclusion(VECTOR_LEAVES[index], index, size, [bytes.fromhex(p) for p in path], root)


@pytest.mark.parametrize(("index", "size", "path"), [v for v in VECTOR_PROOFS if v[2]])
def test_rfc6962_vector_audit_paths_reject_corruption(index, size, path):
    # The corruptions of verify_test.go's corruptInclusionProof.
    leaf, root = VECTOR_LEAVES[index], bytes.fromhex(VECTOR_ROOTS[size])
    proof = [bytes.fromhex(p) for p in path]
    some_hash = bytes.fromhex("abacaba000000000000000000000000000000000000000000060061e00123456")
    flipped = [bytes([proof[0][0] ^ 8]) + proof[0][1:], *proof[1:]]
    probes = [
        (leaf, index - 1, size, proof, root),
        (leaf, index + 1, size, proof, root),
        (leaf, index ^ 2, size, proof, root),
        (leaf, index, size * 2, proof, root),
        (leaf, index, size // 2, proof, root),
        (b"WrongLeaf", index, size, proof, root),
        (leaf, index, size, proof, EMPTY_ROOT),
        (leaf, index, size, proof, some_hash),
        (leaf, index, size, [*proof, b""], root),
        (leaf, index, size, [*proof, root], root),
        (leaf, index, size, [b"", *proof], root),
        (leaf, index, size, [root, *proof], root),
        (leaf, index, size, flipped, root),
        (leaf, index, size, proof[:-1], root),
    ]
    accepted = [i for i, probe in enumerate(probes) if verify_inclusion(*probe)]
    assert accepted == []


def test_small_trees_match_the_recursive_reference_exhaustively():
    for n in range(1, 40):
        leaves = [n.to_bytes(2, "big") + i.to_bytes(2, "big") for i in range(n)]
        tree = MerkleTree(leaves)
        assert tree.root == ref_mth(leaves), n
        for m in range(n):
            assert tree.inclusion_proof(m) == ref_path(m, leaves), (n, m)


def test_a_large_tree():
    n = 100_003
    leaves = [i.to_bytes(4, "big") for i in range(n)]
    tree = MerkleTree(leaves)
    assert tree.size == n
    assert tree.root == ref_mth(leaves)
    for m in (0, 1, 65_535, 65_536, 99_999, n - 1):
        proof = tree.inclusion_proof(m)
        assert proof == ref_path(m, leaves)
        assert verify_inclusion(leaves[m], m, n, proof, tree.root)
    with pytest.raises(IndexError):
        tree.inclusion_proof(n)


@pytest.mark.parametrize("index", [-1, 3, 4])
def test_out_of_range_index_raises_index_error(index):
    with pytest.raises(IndexError):
        MerkleTree([b"a", b"b", b"c"]).inclusion_proof(index)


@pytest.mark.parametrize(
    ("leaf", "index", "size", "proof", "root"),
    [
        (b"a", 0, 0, [], EMPTY_ROOT),
        (b"a", -1, 1, [], leaf_hash(b"a")),
        (b"a", 1, 1, [], leaf_hash(b"a")),
        (b"a", True, 2, [leaf_hash(b"a")], node_hash(leaf_hash(b"a"), leaf_hash(b"a"))),
        ("a", 0, 1, [], leaf_hash(b"a")),
        (b"a", 0, 1, [], "not bytes"),
        (b"a", 0, 2, ["not bytes"], leaf_hash(b"a")),
        (b"a", 0, 1, [leaf_hash(b"a")], leaf_hash(b"a")),  # a path longer than the tree is deep
    ],
)
def test_verify_inclusion_returns_false_on_bad_input(leaf, index, size, proof, root):
    assert verify_inclusion(leaf, index, size, proof, root) is False


def test_single_leaf_tree_verifies_with_an_empty_path():
    assert verify_inclusion(b"a", 0, 1, [], leaf_hash(b"a")) is True
    assert MerkleTree([b"a"]).root == leaf_hash(b"a")


# --- properties ---

leaf_lists = st.lists(st.binary(max_size=12), max_size=200)
unique_leaf_lists = st.lists(st.binary(max_size=12), min_size=1, max_size=200, unique=True)


@settings(max_examples=150, deadline=None)
@given(leaf_lists)
def test_root_matches_reference_and_every_proof_verifies(leaves):
    tree = MerkleTree(leaves)
    assert tree.root == ref_mth(leaves) == root_of(leaves)
    for m, data in enumerate(leaves):
        assert verify_inclusion(data, m, len(leaves), tree.inclusion_proof(m), tree.root)


@settings(max_examples=150, deadline=None)
@given(unique_leaf_lists, st.data())
def test_proof_matches_reference_path(leaves, data):
    m = data.draw(st.integers(0, len(leaves) - 1))
    assert MerkleTree(leaves).inclusion_proof(m) == ref_path(m, leaves)


@settings(max_examples=200, deadline=None)
@given(unique_leaf_lists, st.data())
def test_proof_fails_when_anything_is_changed(leaves, data):
    # Unique leaves: with two equal leaves a proof can legitimately verify at the other index.
    tree, n = MerkleTree(leaves), len(leaves)
    m = data.draw(st.integers(0, n - 1))
    leaf, proof, root = leaves[m], tree.inclusion_proof(m), tree.root
    assert verify_inclusion(leaf, m, n, proof, root)

    assert not verify_inclusion(leaf + b"!", m, n, proof, root)
    for wrong in {m - 1, m + 1, m ^ 1, n}:
        if wrong != m:
            assert not verify_inclusion(leaf, wrong, n, proof, root)
    # size * 2 always needs a longer path; size == index leaves the tree.
    assert not verify_inclusion(leaf, m, n * 2, proof, root)
    assert not verify_inclusion(leaf, m, m, proof, root)
    if proof:
        assert not verify_inclusion(leaf, m, n, proof[:-1], root)
    bit = data.draw(st.integers(0, 255))
    flipped = bytearray(root)
    flipped[bit // 8] ^= 1 << (bit % 8)
    assert not verify_inclusion(leaf, m, n, proof, bytes(flipped))


# --- the payout verifier ---

EPOCH = "2026-W47"
PAYOUT_LINES = ["member:alice amount:12.50 EUR", "member:bob amount:3.10 EUR", "member:chloé amount:0.40 EUR"]


def _raw_public(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def _proof_document(
    index: int = 1, key: Ed25519PrivateKey | None = None
) -> tuple[dict[str, Any], Ed25519PrivateKey]:
    key = key or Ed25519PrivateKey.generate()
    leaves = [line.encode("utf-8") for line in PAYOUT_LINES]
    tree = MerkleTree(leaves)
    signature = key.sign(signed_root_message(EPOCH, tree.root))
    document = {
        "format": "motus-payout-proof-v1",
        "epoch": EPOCH,
        "tree_size": tree.size,
        "leaf_index": index,
        "leaf": PAYOUT_LINES[index],
        "audit_path": [h.hex() for h in tree.inclusion_proof(index)],
        "root": tree.root.hex(),
        "root_signature": base64.b64encode(signature).decode("ascii"),
        "network_public_key": _raw_public(key).hex(),
    }
    return document, key


def test_signed_root_message_layout():
    root = bytes(range(32))
    assert PAYOUT_ROOT_DOMAIN == b"motus-payout-root-v1\n"
    assert signed_root_message(EPOCH, root) == b"motus-payout-root-v1\n2026-W47\n" + root
    with pytest.raises(ValueError):
        signed_root_message(EPOCH, root[:31])


@pytest.mark.parametrize("index", range(len(PAYOUT_LINES)))
def test_a_genuine_proof_is_valid(index):
    document, key = _proof_document(index)
    assert verify_payout_proof(document) == []
    assert verify_payout_proof(document, _raw_public(key)) == []


def test_a_changed_leaf_is_not_in_the_tree():
    document, _ = _proof_document()
    document["leaf"] = "member:bob amount:31.00 EUR"
    problems = verify_payout_proof(document)
    assert len(problems) == 1
    assert problems[0].startswith("leaf not in tree")


def test_a_bad_signature_is_named():
    document, _ = _proof_document()
    forged = Ed25519PrivateKey.generate().sign(signed_root_message(EPOCH, bytes.fromhex(document["root"])))
    document["root_signature"] = base64.b64encode(forged).decode("ascii")
    problems = verify_payout_proof(document)
    assert len(problems) == 1
    assert problems[0].startswith("bad signature")


def test_a_signature_for_another_epoch_is_bad():
    document, _ = _proof_document()
    document["epoch"] = "2026-W48"
    assert [p.split(":")[0] for p in verify_payout_proof(document)] == ["bad signature"]


def test_a_key_other_than_the_trusted_one_is_refused():
    document, _ = _proof_document()
    trusted = _raw_public(Ed25519PrivateKey.generate())
    problems = verify_payout_proof(document, trusted)
    assert len(problems) == 1
    assert problems[0].startswith("untrusted key")


def test_a_self_consistent_forgery_fails_only_on_the_trusted_key():
    network = Ed25519PrivateKey.generate()
    document, _ = _proof_document(key=Ed25519PrivateKey.generate())
    assert verify_payout_proof(document) == []
    assert [p.split(":")[0] for p in verify_payout_proof(document, _raw_public(network))] == ["untrusted key"]


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("format", "motus-payout-proof-v2", "wrong format"),
        ("tree_size", "3", "malformed proof"),
        ("leaf_index", True, "malformed proof"),
        ("audit_path", ["zz"], "malformed proof"),
        ("root", "abcd", "malformed proof"),
        ("network_public_key", None, "malformed proof"),
        ("root_signature", 7, "malformed proof"),
        ("root_signature", "not base64!", "bad signature"),
        ("epoch", "2026-W47é", "malformed proof"),
    ],
)
def test_malformed_documents_are_reported_not_raised(field, value, expected):
    document, _ = _proof_document()
    document[field] = value
    problems = verify_payout_proof(document)
    assert problems
    assert problems[0].startswith(expected)


def test_a_non_object_document_is_reported():
    assert verify_payout_proof([]) == ["malformed proof: the document must be a JSON object"]  # type: ignore[arg-type]


def _run_verifier(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rewards.verifier", *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def test_command_line_accepts_a_valid_proof(tmp_path):
    document, key = _proof_document(2)
    path = tmp_path / "proof.json"
    path.write_text(json.dumps(document), encoding="utf-8")
    result = _run_verifier(str(path), "--key", _raw_public(key).hex())
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == f"valid: {PAYOUT_LINES[2]}"


def test_command_line_rejects_an_invalid_proof(tmp_path):
    document, _ = _proof_document()
    document["leaf"] = "member:bob amount:999.00 EUR"
    path = tmp_path / "proof.json"
    path.write_text(json.dumps(document), encoding="utf-8")
    result = _run_verifier(str(path), "--key", _raw_public(Ed25519PrivateKey.generate()).hex())
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert [line.split(":")[0] for line in lines] == ["leaf not in tree", "untrusted key"]


def test_command_line_rejects_an_unreadable_file(tmp_path):
    result = _run_verifier(str(tmp_path / "missing.json"))
    assert result.returncode == 1
    assert result.stdout.startswith("cannot read proof")
