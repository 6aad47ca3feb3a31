"""Merkle tree tests: published vectors, a reference transcription of the RFC definitions, and properties.

Three independent sources have to agree: gateway.ledger.merkle (inner/border verifier, iterative builders),
tests/rfc9162_verifier.py (the RFC's own verification loops) and the recursive PATH / SUBPROOF definitions
written out below. Known answers are transparency-dev/merkle's `testonly` and `proof` vectors (the same
eight leaves as certificate-transparency-go's tests).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.ledger import merkle
from gateway.ledger.merkle import (
    EMPTY_ROOT,
    CompactRange,
    Node,
    ProofError,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    node_hash,
    root,
    root_from_inclusion_proof,
    subtree_hash,
    verify_consistency,
    verify_inclusion,
)
from tests import rfc9162_verifier as rfc

# --- known answers (transparency-dev/merkle testonly/constants.go, proof/verify_test.go,
#     testonly/reference_test.go) ---------------------------------------------------------------------------

LEAF_INPUTS = [
    bytes.fromhex(h)
    for h in ["", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f"]
]

NODE_HASHES = [
    [
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
        "0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7",
        "07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7",
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        "4271a26be0d8a84f0bd54c8c302e7cb3a3b5d1fa6780a40bcce2873477dab658",
        "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
        "46f6ffadd3d06a09ff3c5860d2755c8b9819db7df44251788c7d8e3180de8eb1",
    ],
    [
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
        "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
    ],
    [
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
    ],
    ["5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"],
]

# Indexed by tree size, 0..8.
ROOT_HASHES = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]


def _nh(level: int, index: int) -> str:
    return NODE_HASHES[level][index]


# (size, compact range hashes, leftmost first): testonly CompactTrees().
COMPACT_TREES = [
    (0, []),
    (1, [_nh(0, 0)]),
    (2, [_nh(1, 0)]),
    (3, [_nh(1, 0), _nh(0, 2)]),
    (4, [_nh(2, 0)]),
    (5, [_nh(2, 0), _nh(0, 4)]),
    (6, [_nh(2, 0), _nh(1, 2)]),
    (7, [_nh(2, 0), _nh(1, 2), _nh(0, 6)]),
    (8, [_nh(3, 0)]),
]

# (index (0-based), size, proof): reference_test.go TestRefInclusionProof plus verify_test.go inclusionProofs.
INCLUSION_VECTORS = [
    (0, 1, []),
    (0, 2, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"]),
    (1, 2, ["6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"]),
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
]

# (m, n, proof): reference_test.go TestRefConsistencyProof plus verify_test.go consistencyProofs.
CONSISTENCY_VECTORS = [
    (1, 1, []),
    (
        1,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        2,
        5,
        [
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
    (
        6,
        8,
        [
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (
        6,
        7,
        [
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
]

KAT_LEAVES = [leaf_hash(d) for d in LEAF_INPUTS]
SOME_HASH = bytes.fromhex("abacaba000000000000000000000000000000000000000000060061e00123456")


def _hexes(hashes: Sequence[bytes]) -> list[str]:
    return [h.hex() for h in hashes]


def _leaves(n: int) -> list[bytes]:
    """Distinct leaf data, so no two subtrees share a hash and every mutation below is detectable."""
    return [leaf_hash(b"entry-%d" % i) for i in range(n)]


# --- reference definitions, written straight from RFC 9162 §2.1.1, §2.1.3.1, §2.1.4.1 -------------------


def _k(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def ref_mth(d: Sequence[bytes]) -> bytes:
    if len(d) == 0:
        return hashlib.sha256(b"").digest()
    if len(d) == 1:
        return d[0]
    k = _k(len(d))
    return rfc.sha256_node(ref_mth(d[:k]), ref_mth(d[k:]))


def ref_path(m: int, d: Sequence[bytes]) -> list[bytes]:
    if len(d) == 1:
        return []
    k = _k(len(d))
    if m < k:
        return ref_path(m, d[:k]) + [ref_mth(d[k:])]
    return ref_path(m - k, d[k:]) + [ref_mth(d[:k])]


def ref_subproof(m: int, d: Sequence[bytes], b: bool) -> list[bytes]:
    n = len(d)
    if m == n:
        return [] if b else [ref_mth(d)]
    k = _k(n)
    if m <= k:
        return ref_subproof(m, d[:k], b) + [ref_mth(d[k:])]
    return ref_subproof(m - k, d[k:], False) + [ref_mth(d[:k])]


def ref_proof(m: int, d: Sequence[bytes]) -> list[bytes]:
    return ref_subproof(m, d, True)


# --- both verifiers as booleans ----------------------------------------------------------------------------


def module_inclusion_ok(leaf: bytes, index: int, size: int, proof: Sequence[bytes], root_: bytes) -> bool:
    try:
        verify_inclusion(leaf, index, size, proof, root_)
    except ProofError:
        return False
    return True


def module_consistency_ok(m: int, n: int, proof: Sequence[bytes], old: bytes, new: bytes) -> bool:
    try:
        verify_consistency(m, n, proof, old, new)
    except ProofError:
        return False
    return True


def _sym_node(left: Any, right: Any) -> Any:
    return ("H", left, right)


def expected_inclusion_ok(index: int, size: int, wrong_index: int, wrong_size: int, proof_len: int) -> bool:
    """Whether a correct proof for (index, size) must also pass as one for (wrong_index, wrong_size).

    Run the RFC loop over symbols instead of hashes: with distinct leaves, hashes collide exactly when the
    symbolic expressions are equal. An inclusion proof binds the size only through the tree's shape, so
    some wrong sizes legitimately verify (e.g. index 0 in sizes 3 and 4); this says which.
    """
    syms = [("p", i) for i in range(proof_len)]
    want = rfc.inclusion_root("leaf", index, size, syms, _sym_node)
    got = rfc.inclusion_root("leaf", wrong_index, wrong_size, syms, _sym_node)
    return want is not None and got == want


def expected_consistency_ok(m: int, n: int, wrong_m: int, wrong_n: int, proof_len: int) -> bool:
    """As expected_inclusion_ok, for consistency proofs: (4, 8) and (4, 5) proofs, e.g., have one shape."""
    syms = [("p", i) for i in range(proof_len)]
    want = rfc.consistency_roots(m, n, syms, "old", _sym_node)
    assert want is not None
    # The old root is the atom "old" when m is a power of two, else an expression over the proof.
    got = rfc.consistency_roots(wrong_m, wrong_n, syms, want[0], _sym_node)
    return got == want


# --- known-answer tests ------------------------------------------------------------------------------------


def test_leaf_and_node_hash_domain_separation() -> None:
    assert leaf_hash(b"") == hashlib.sha256(b"\x00").digest()
    assert node_hash(b"a" * 32, b"b" * 32) == hashlib.sha256(b"\x01" + b"a" * 32 + b"b" * 32).digest()
    assert EMPTY_ROOT.hex() == ROOT_HASHES[0]


@pytest.mark.parametrize("size", range(9))
def test_root_known_answers(size: int) -> None:
    assert root(KAT_LEAVES[:size]).hex() == ROOT_HASHES[size]
    assert ref_mth(KAT_LEAVES[:size]).hex() == ROOT_HASHES[size]


def test_node_hashes_known_answers() -> None:
    for level, row in enumerate(NODE_HASHES):
        for index, expected in enumerate(row):
            start, end = index << level, (index + 1) << level
            assert subtree_hash(start, end, KAT_LEAVES.__getitem__).hex() == expected


@pytest.mark.parametrize(("size", "expected"), COMPACT_TREES)
def test_compact_range_known_answers(size: int, expected: list[str]) -> None:
    cr = CompactRange()
    cr.extend(KAT_LEAVES[:size])
    assert _hexes(cr.hashes) == expected
    assert cr.root().hex() == ROOT_HASHES[size]


@pytest.mark.parametrize(("index", "size", "expected"), INCLUSION_VECTORS)
def test_inclusion_proof_known_answers(index: int, size: int, expected: list[str]) -> None:
    proof = inclusion_proof(index, size, KAT_LEAVES.__getitem__)
    assert _hexes(proof) == expected
    root_ = bytes.fromhex(ROOT_HASHES[size])
    verify_inclusion(KAT_LEAVES[index], index, size, proof, root_)
    assert rfc.verify_inclusion(KAT_LEAVES[index], index, size, proof, root_)
    assert root_from_inclusion_proof(KAT_LEAVES[index], index, size, proof) == root_


@pytest.mark.parametrize(("m", "n", "expected"), CONSISTENCY_VECTORS)
def test_consistency_proof_known_answers(m: int, n: int, expected: list[str]) -> None:
    proof = consistency_proof(m, n, KAT_LEAVES.__getitem__)
    assert _hexes(proof) == expected
    old, new = bytes.fromhex(ROOT_HASHES[m]), bytes.fromhex(ROOT_HASHES[n])
    verify_consistency(m, n, proof, old, new)
    if m < n:
        assert rfc.verify_consistency(m, n, proof, old, new)


# Port of transparency-dev/merkle proof/verify_test.go corruptInclusionProof / corruptConsistencyProof.


def _inclusion_probes(
    index: int, size: int, proof: list[bytes], root_: bytes, leaf: bytes
) -> list[tuple[str, int, int, list[bytes], bytes, bytes]]:
    probes = [
        ("index - 1", index - 1, size, proof, root_, leaf),
        ("index + 1", index + 1, size, proof, root_, leaf),
        ("index ^ 2", index ^ 2, size, proof, root_, leaf),
        ("size * 2", index, size * 2, proof, root_, leaf),
        ("size / 2", index, size // 2, proof, root_, leaf),
        ("wrong leaf", index, size, proof, root_, b"WrongLeaf"),
        ("wrong leaf (32 bytes)", index, size, proof, root_, SOME_HASH),
        ("empty root", index, size, proof, EMPTY_ROOT, leaf),
        ("random root", index, size, proof, SOME_HASH, leaf),
        ("trailing garbage", index, size, [*proof, b""], root_, leaf),
        ("trailing root", index, size, [*proof, root_], root_, leaf),
        ("preceding garbage", index, size, [b"", *proof], root_, leaf),
        ("preceding root", index, size, [root_, *proof], root_, leaf),
    ]
    for i in range(len(proof)):
        wrong = list(proof)
        wrong[i] = bytes([wrong[i][0] ^ 8]) + wrong[i][1:]
        probes.append((f"modified proof[{i}] bit 3", index, size, wrong, root_, leaf))
    if proof:
        probes.append(("removed component", index, size, proof[:-1], root_, leaf))
    if len(proof) > 1:
        probes.append(("inserted component", index, size, [proof[0], SOME_HASH, *proof[1:]], root_, leaf))
    return probes


@pytest.mark.parametrize(("index", "size", "expected"), INCLUSION_VECTORS[1:])
def test_inclusion_corruptions_rejected(index: int, size: int, expected: list[str]) -> None:
    proof = [bytes.fromhex(h) for h in expected]
    root_ = bytes.fromhex(ROOT_HASHES[size])
    for desc, i, s, p, r, leaf in _inclusion_probes(index, size, proof, root_, KAT_LEAVES[index]):
        if i < 0:
            continue
        assert not module_inclusion_ok(leaf, i, s, p, r), desc
        assert not rfc.verify_inclusion(leaf, i, s, p, r), desc


@pytest.mark.parametrize(("m", "n", "expected"), CONSISTENCY_VECTORS[1:])
def test_consistency_corruptions_rejected(m: int, n: int, expected: list[str]) -> None:
    proof = [bytes.fromhex(h) for h in expected]
    r1, r2 = bytes.fromhex(ROOT_HASHES[m]), bytes.fromhex(ROOT_HASHES[n])
    probes = [
        ("size1 - 1", m - 1, n, proof, r1, r2),
        ("size1 + 1", m + 1, n, proof, r1, r2),
        ("size1 ^ 2", m ^ 2, n, proof, r1, r2),
        ("size2 * 2", m, n * 2, proof, r1, r2),
        ("size2 / 2", m, n // 2, proof, r1, r2),
        ("wrong root1", m, n, proof, SOME_HASH, r2),
        ("wrong root2", m, n, proof, r1, SOME_HASH),
        ("swapped roots", m, n, proof, r2, r1),
        ("empty proof", m, n, [], r1, r2),
        ("trailing garbage", m, n, [*proof, b""], r1, r2),
        ("trailing root1", m, n, [*proof, r1], r1, r2),
        ("trailing root2", m, n, [*proof, r2], r1, r2),
        ("preceding garbage", m, n, [b"", *proof], r1, r2),
        ("preceding root1", m, n, [r1, *proof], r1, r2),
        ("preceding root2", m, n, [r2, *proof], r1, r2),
        ("preceding proof[0]", m, n, [proof[0], *proof], r1, r2),
        ("truncated proof", m, n, proof[:-1], r1, r2),
    ]
    for i in range(len(proof)):
        wrong = list(proof)
        wrong[i] = bytes([wrong[i][0] ^ 16]) + wrong[i][1:]
        probes.append((f"modified proof[{i}] bit 4", m, n, wrong, r1, r2))
    for desc, m2, n2, p, a, b in probes:
        assert not module_consistency_ok(m2, n2, p, a, b), desc
        assert not rfc.verify_consistency(m2, n2, p, a, b), desc


# --- edge cases -------------------------------------------------------------------------------------------


def test_inclusion_single_entry() -> None:
    h = leaf_hash(b"data")
    verify_inclusion(h, 0, 1, [], h)
    with pytest.raises(ProofError, match="root"):
        verify_inclusion(h, 0, 1, [], SOME_HASH)
    with pytest.raises(ProofError, match="leaf hash"):
        verify_inclusion(b"", 0, 1, [], h)
    with pytest.raises(ProofError, match="root"):
        verify_inclusion(h, 0, 1, [], b"")


@pytest.mark.parametrize(("index", "size"), [(0, 0), (1, 0), (1, 1), (2, 1), (-1, 5)])
def test_inclusion_index_out_of_range(index: int, size: int) -> None:
    with pytest.raises(ProofError):
        verify_inclusion(SOME_HASH, index, size, [], EMPTY_ROOT)
    if index >= 0:
        with pytest.raises(ValueError, match="not in a tree"):
            inclusion_proof(index, size, _leaves(max(size, 1)).__getitem__)


def test_proof_error_says_what_failed() -> None:
    leaves = _leaves(5)
    proof = inclusion_proof(2, 5, leaves.__getitem__)
    with pytest.raises(ProofError, match="has 2 hashes, expected 3"):
        verify_inclusion(leaves[2], 2, 5, proof[:2], root(leaves))
    with pytest.raises(ProofError, match="proof element 1"):
        verify_inclusion(leaves[2], 2, 5, [proof[0], b"short", proof[2]], root(leaves))
    assert issubclass(ProofError, ValueError)
    cproof = consistency_proof(3, 5, leaves.__getitem__)
    with pytest.raises(ProofError, match="old root"):
        verify_consistency(3, 5, cproof, SOME_HASH, root(leaves))
    with pytest.raises(ProofError, match="new root"):
        verify_consistency(3, 5, cproof, root(leaves[:3]), SOME_HASH)
    with pytest.raises(ProofError, match="shrunk"):
        verify_consistency(5, 3, cproof, root(leaves), root(leaves[:3]))


def test_consistency_trivial_sizes() -> None:
    r1, r2 = SOME_HASH, hashlib.sha256(b"other").digest()
    verify_consistency(0, 0, [], EMPTY_ROOT, EMPTY_ROOT)
    verify_consistency(0, 1, [], EMPTY_ROOT, r2)
    verify_consistency(1, 1, [], r2, r2)
    bad = [
        (0, 0, [], r1, r1),  # size 0 has exactly one root
        (0, 0, [], EMPTY_ROOT, r2),
        (0, 1, [], r1, r2),
        (1, 1, [], r1, r2),
        (1, 0, [], r1, r2),
        (2, 1, [], r1, r2),
        (1, 2, [], r1, r2),
        (0, 0, [EMPTY_ROOT], EMPTY_ROOT, EMPTY_ROOT),
        (0, 1, [EMPTY_ROOT], EMPTY_ROOT, r2),
        (1, 1, [EMPTY_ROOT], r2, r2),
        (-1, 1, [], r1, r2),
    ]
    for m, n, proof, a, b in bad:
        assert not module_consistency_ok(m, n, proof, a, b), (m, n)
    assert consistency_proof(0, 5, _leaves(5).__getitem__) == []
    assert consistency_proof(5, 5, _leaves(5).__getitem__) == []
    with pytest.raises(ValueError, match="larger"):
        consistency_proof(6, 5, _leaves(6).__getitem__)


# --- builders against the recursive RFC definitions, exhaustively for small trees ---------------------------


def test_builders_match_rfc_definitions_exhaustively() -> None:
    leaves = _leaves(40)
    for n in range(1, 41):
        d = leaves[:n]
        assert root(d) == ref_mth(d)
        for i in range(n):
            assert inclusion_proof(i, n, leaves.__getitem__) == ref_path(i, d), (i, n)
        for m in range(1, n + 1):
            assert consistency_proof(m, n, leaves.__getitem__) == ref_proof(m, d), (m, n)


# --- properties -----------------------------------------------------------------------------------------------


def _flip(proof: list[bytes], i: int, bit: int) -> list[bytes]:
    wrong = list(proof)
    wrong[i] = bytes([wrong[i][0] ^ (1 << bit)]) + wrong[i][1:]
    return wrong


@st.composite
def inclusion_cases(draw: st.DrawFn) -> tuple[int, int]:
    n = draw(st.integers(1, 300))
    return draw(st.integers(0, n - 1)), n


@settings(max_examples=150, deadline=None)
@given(case=inclusion_cases(), data=st.data())
def test_inclusion_property(case: tuple[int, int], data: st.DataObject) -> None:
    index, n = case
    leaves = _leaves(n + 1)
    root_ = root(leaves[:n])
    leaf = leaves[index]
    proof = inclusion_proof(index, n, leaves.__getitem__)

    assert module_inclusion_ok(leaf, index, n, proof, root_)
    assert rfc.verify_inclusion(leaf, index, n, proof, root_)

    def both_reject(i: int, s: int, p: list[bytes], r: bytes, lf: bytes = leaf) -> None:
        assert not module_inclusion_ok(lf, i, s, p, r)
        assert not rfc.verify_inclusion(lf, i, s, p, r)

    # Wrong index, same size: a different root-to-leaf path, so it can never verify.
    if n > 1:
        other = data.draw(st.integers(0, n - 1).filter(lambda j: j != index), label="wrong index")
        both_reject(other, n, proof, root_)
    both_reject(index, 2 * n, proof, root_)
    if index < n // 2:
        both_reject(index, n // 2, proof, root_)
    # Any other size: accepted exactly when the tree shape along the path is the same.
    wrong_size = data.draw(st.integers(1, 600).filter(lambda s: s != n), label="wrong size")
    expected = expected_inclusion_ok(index, n, index, wrong_size, len(proof))
    assert module_inclusion_ok(leaf, index, wrong_size, proof, root_) == expected
    assert rfc.verify_inclusion(leaf, index, wrong_size, proof, root_) == expected

    if proof:
        i = data.draw(st.integers(0, len(proof) - 1), label="flipped element")
        bit = data.draw(st.integers(0, 7), label="bit")
        both_reject(index, n, _flip(proof, i, bit), root_)
        both_reject(index, n, proof[:-1], root_)
        both_reject(index, n, proof[1:], root_)
    both_reject(index, n, [*proof, SOME_HASH], root_)
    both_reject(index, n, [*proof, root_], root_)
    both_reject(index, n, [SOME_HASH, *proof], root_)
    both_reject(index, n, proof, SOME_HASH)
    both_reject(index, n, proof, root(leaves[: n + 1]))
    both_reject(index, n, proof, root_, leaf_hash(b"not the leaf"))


@st.composite
def consistency_cases(draw: st.DrawFn) -> tuple[int, int]:
    n = draw(st.integers(2, 300))
    return draw(st.integers(1, n - 1)), n


@settings(max_examples=150, deadline=None)
@given(case=consistency_cases(), data=st.data())
def test_consistency_property(case: tuple[int, int], data: st.DataObject) -> None:
    m, n = case
    leaves = _leaves(2 * n)
    get = leaves.__getitem__
    old, new = root(leaves[:m]), root(leaves[:n])
    proof = consistency_proof(m, n, get)
    assert proof

    assert module_consistency_ok(m, n, proof, old, new)
    assert rfc.verify_consistency(m, n, proof, old, new)

    def both_reject(m2: int, n2: int, p: list[bytes], a: bytes, b: bytes) -> None:
        assert not module_consistency_ok(m2, n2, p, a, b)
        assert not rfc.verify_consistency(m2, n2, p, a, b)

    i = data.draw(st.integers(0, len(proof) - 1), label="flipped element")
    bit = data.draw(st.integers(0, 7), label="bit")
    both_reject(m, n, _flip(proof, i, bit), old, new)
    both_reject(m, n, proof[:-1], old, new)
    both_reject(m, n, proof[1:], old, new)
    both_reject(m, n, [*proof, SOME_HASH], old, new)
    both_reject(m, n, [*proof, new], old, new)
    both_reject(m, n, [old, *proof], old, new)
    both_reject(m, n, [], old, new)
    both_reject(m, n, proof, SOME_HASH, new)
    both_reject(m, n, proof, old, SOME_HASH)
    both_reject(m, n, proof, new, old)
    both_reject(m, n, proof, root(leaves[: m + 1]) if m + 1 < n else SOME_HASH, new)
    both_reject(m, n, proof, old, root(leaves[: n + 1]))
    both_reject(m, 2 * n, proof, old, new)

    # Wrong sizes: accepted exactly when the proof has the same shape for them (see expected_*).
    m2 = data.draw(st.one_of(st.just(m), st.integers(0, 2 * n)), label="claimed old size")
    n2 = data.draw(st.one_of(st.just(n), st.integers(0, 2 * n)), label="claimed new size")
    if (m2, n2) != (m, n):
        expected = 0 < m2 < n2 and expected_consistency_ok(m, n, m2, n2, len(proof))
        assert module_consistency_ok(m2, n2, proof, old, new) == expected, (m2, n2)
        if 0 < m2 < n2:
            assert rfc.verify_consistency(m2, n2, proof, old, new) == expected, (m2, n2)


@settings(max_examples=60, deadline=None)
@given(n=st.integers(0, 300), data=st.data())
def test_consistency_including_trivial_sizes_verifies(n: int, data: st.DataObject) -> None:
    m = data.draw(st.integers(0, n), label="m")
    leaves = _leaves(n)
    proof = consistency_proof(m, n, leaves.__getitem__)
    verify_consistency(m, n, proof, root(leaves[:m]), root(leaves))
    assert (proof == []) == (m in (0, n))


# --- compact range ------------------------------------------------------------------------------------------------


def test_compact_range_every_prefix_and_serialisation() -> None:
    leaves = _leaves(300)
    cr = CompactRange()
    assert cr.root() == EMPTY_ROOT
    for i, h in enumerate(leaves):
        nodes = cr.append(h)
        size = i + 1
        assert cr.size == size
        assert cr.root() == ref_mth(leaves[:size])
        assert len(cr.hashes) == size.bit_count()
        # Every completed node is a perfect subtree ending at the new leaf, smallest first.
        assert nodes[0] == Node(0, i, h)
        for node in nodes:
            assert node.end == size
            assert node.hash == subtree_hash(node.start, node.end, leaves.__getitem__)
        assert len(nodes) == 1 + ((size & -size).bit_length() - 1)
        restored = CompactRange.from_bytes(cr.to_bytes())
        assert restored == cr
        assert CompactRange.from_json(cr.to_json()) == cr
    # A restored range keeps appending exactly like the original.
    restored = CompactRange.from_bytes(cr.to_bytes())
    more = [leaf_hash(b"more-%d" % i) for i in range(37)]
    restored.extend(more)
    assert restored.root() == root(leaves + more)


@settings(max_examples=100, deadline=None)
@given(n=st.integers(0, 1 << 20))
def test_compact_range_serialisation_roundtrip_any_size(n: int) -> None:
    hashes = [hashlib.sha256(b"%d" % i).digest() for i in range(n.bit_count())]
    cr = CompactRange(n, hashes)
    assert CompactRange.from_bytes(cr.to_bytes()) == cr
    assert CompactRange.from_json(cr.to_json()) == cr
    assert len(cr.to_bytes()) == 13 + 32 * n.bit_count()


def test_compact_range_rejects_malformed_state() -> None:
    good = CompactRange(3, [SOME_HASH, SOME_HASH]).to_bytes()
    for bad in [b"", b"XXXX" + good[4:], good[:4] + b"\x02" + good[5:], good[:-1], good + b"\x00" * 32]:
        with pytest.raises(ValueError):
            CompactRange.from_bytes(bad)
    with pytest.raises(ValueError, match="holds 2 hashes"):
        CompactRange(3, [SOME_HASH])
    with pytest.raises(ValueError):
        CompactRange(1, [b"short"])
    with pytest.raises(ValueError):
        CompactRange(-1, [])
    good_json = CompactRange(3, [SOME_HASH, SOME_HASH]).to_json()
    for bad_json in [
        [],
        {"size": 3},
        {**good_json, "extra": 1},
        {"size": "3", "hashes": good_json["hashes"]},
        {"size": 3, "hashes": [" " + SOME_HASH.hex()[1:], SOME_HASH.hex()]},
        {"size": 3, "hashes": [SOME_HASH.hex().upper(), SOME_HASH.hex()]},
    ]:
        with pytest.raises(ValueError):
            CompactRange.from_json(bad_json)
    with pytest.raises(ValueError):
        CompactRange().append(b"short")


def test_compact_range_copy_is_independent() -> None:
    cr = CompactRange()
    cr.extend(_leaves(5))
    snapshot = cr.copy()
    cr.append(SOME_HASH)
    assert snapshot.size == 5 and cr.size == 6
    assert snapshot.root() == root(_leaves(5))


# --- the subtree-hash hook ------------------------------------------------------------------------------------


def _counting(fn: Callable[[int], bytes]) -> tuple[Callable[[int], bytes], list[int]]:
    calls: list[int] = []

    def wrapped(i: int) -> bytes:
        calls.append(i)
        return fn(i)

    return wrapped, calls


def test_subtree_hook_makes_proofs_cheap_and_identical() -> None:
    n = (1 << 14) + 1234
    leaves = _leaves(n)
    cr = CompactRange()
    stored: dict[tuple[int, int], bytes] = {}
    min_level = 4
    for h in leaves:
        for node in cr.append(h):
            if node.level >= min_level:
                stored[(node.start, node.end)] = node.hash
    assert cr.root() == root(leaves)

    asked: list[tuple[int, int]] = []

    def hook(start: int, end: int) -> bytes | None:
        size = end - start
        assert size >= 2 and size & (size - 1) == 0 and start % size == 0, "hook asked for a non-perfect range"
        asked.append((start, end))
        return stored.get((start, end))

    get, calls = _counting(leaves.__getitem__)
    for index in [0, 1, 4095, 8191, 12345, n - 1]:
        calls.clear()
        proof = inclusion_proof(index, n, get, hook)
        assert proof == inclusion_proof(index, n, leaves.__getitem__)
        verify_inclusion(leaves[index], index, n, proof, cr.root())
        # At most 2**min_level leaves below each of the ~log2(n) proof levels.
        assert len(calls) <= (1 << min_level) * 2 * n.bit_length()
    for m in [1, 7, 16, 1000, 8192, n - 1]:
        calls.clear()
        proof = consistency_proof(m, n, get, hook)
        assert proof == consistency_proof(m, n, leaves.__getitem__)
        verify_consistency(m, n, proof, subtree_hash(0, m, get, hook), cr.root())
        assert len(calls) <= (1 << min_level) * 4 * n.bit_length()
    assert asked


def test_subtree_hook_result_is_checked() -> None:
    leaves = _leaves(8)
    with pytest.raises(ValueError, match="cached subtree hash"):
        inclusion_proof(0, 8, leaves.__getitem__, lambda s, e: b"short")
    with pytest.raises(ValueError, match="leaf hash"):
        inclusion_proof(0, 8, lambda i: b"short")
    # A hook that knows nothing changes nothing.
    assert inclusion_proof(3, 8, leaves.__getitem__, lambda s, e: None) == ref_path(3, leaves)


def test_subtree_hash_is_root_of_prefix() -> None:
    leaves = _leaves(100)
    for m in range(1, 101):
        assert subtree_hash(0, m, leaves.__getitem__) == ref_mth(leaves[:m])
    with pytest.raises(ValueError):
        subtree_hash(5, 5, leaves.__getitem__)


def test_module_does_not_share_code_with_reference_verifier() -> None:
    """The cross-checks above are only worth something if the RFC transcription stands alone."""
    import inspect

    source = inspect.getsource(rfc)
    assert "gateway" not in source.replace("must not import gateway.ledger.merkle", "")
    assert merkle.verify_inclusion is not rfc.verify_inclusion
