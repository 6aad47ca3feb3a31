"""A literal transcription of the RFC 9162 proof-verification pseudo-code, used only by the tests.

It must not import gateway.ledger.merkle: its whole value is to be a second, independently written reading
of the RFC, so that a mistake in the production verifier (which uses a different decomposition) or in the
proof builder shows up as a disagreement. Step numbers in comments are the RFC's.

The node-hash function is a parameter only so that the tests can also run the very same steps over symbolic
values and learn which proofs the algorithm *should* accept for a mutated claim (see tests/test_merkle.py).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

T = TypeVar("T")


def sha256_leaf(data: bytes) -> bytes:
    """RFC 9162 §2.1.1: MTH({d0}) = HASH(0x00 || d0)."""
    return hashlib.sha256(b"\x00" + data).digest()


def sha256_node(left: bytes, right: bytes) -> bytes:
    """RFC 9162 §2.1.1: HASH(0x01 || MTH(D[0:k]) || MTH(D[k:n]))."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def _lsb(x: int) -> bool:
    return x & 1 == 1


def inclusion_root(
    hash_: T, leaf_index: int, tree_size: int, inclusion_path: Sequence[T], node: Callable[[T, T], T]
) -> T | None:
    """Steps 1-4 of §2.1.3.2; returns r, or None where the RFC says "fail" before step 5."""
    # 1. If leaf_index is greater than or equal to tree_size, then fail the proof verification.
    if leaf_index >= tree_size:
        return None
    # 2. Set fn to leaf_index and sn to tree_size - 1.
    fn, sn = leaf_index, tree_size - 1
    # 3. Set r to hash.
    r = hash_
    # 4. For each value p in the inclusion_path array:
    for p in inclusion_path:
        # a. If sn is 0, then stop the iteration and fail the proof verification.
        if sn == 0:
            return None
        # b. If LSB(fn) is set, or if fn is equal to sn, then:
        if _lsb(fn) or fn == sn:
            # i. Set r to HASH(0x01 || p || r).
            r = node(p, r)
            # ii. If LSB(fn) is not set, then right-shift both fn and sn equally until either LSB(fn) is set
            #     or fn is 0.
            if not _lsb(fn):
                while not (_lsb(fn) or fn == 0):
                    fn >>= 1
                    sn >>= 1
        # Otherwise:
        else:
            # i. Set r to HASH(0x01 || r || p).
            r = node(r, p)
        # c. Finally, right-shift both fn and sn one time.
        fn >>= 1
        sn >>= 1
    # 5. Compare sn to 0. (The comparison of r with root_hash is the caller's.)
    if sn != 0:
        return None
    return r


def verify_inclusion(
    hash_: bytes,
    leaf_index: int,
    tree_size: int,
    inclusion_path: Sequence[bytes],
    root_hash: bytes,
    node: Callable[[Any, Any], Any] = sha256_node,
) -> bool:
    """§2.1.3.2 step 5: sn is 0 and r equals root_hash."""
    r = inclusion_root(hash_, leaf_index, tree_size, inclusion_path, node)
    return r is not None and r == root_hash


def consistency_roots(
    first: int, second: int, consistency_path: Sequence[T], first_hash: T, node: Callable[[T, T], T]
) -> tuple[T, T] | None:
    """Steps 1-6 of §2.1.4.2 (defined for 0 < first < second); returns (fr, sr), or None on "fail"."""
    if not 0 < first < second:
        return None
    path = list(consistency_path)
    # 1. If consistency_path is an empty array, stop and fail the proof verification.
    if not path:
        return None
    # 2. If first is an exact power of 2, then prepend first_hash to the consistency_path array.
    if first & (first - 1) == 0:
        path.insert(0, first_hash)
    # 3. Set fn to first - 1 and sn to second - 1.
    fn, sn = first - 1, second - 1
    # 4. If LSB(fn) is set, then right-shift both fn and sn equally until LSB(fn) is not set.
    while _lsb(fn):
        fn >>= 1
        sn >>= 1
    # 5. Set both fr and sr to the first value in the consistency_path array.
    fr = sr = path[0]
    # 6. For each subsequent value c in the consistency_path array:
    for c in path[1:]:
        # a. If sn is 0, then stop the iteration and fail the proof verification.
        if sn == 0:
            return None
        # b. If LSB(fn) is set, or if fn is equal to sn, then:
        if _lsb(fn) or fn == sn:
            # i. Set fr to HASH(0x01 || c || fr).
            fr = node(c, fr)
            # ii. Set sr to HASH(0x01 || c || sr).
            sr = node(c, sr)
            # iii. If LSB(fn) is not set, then right-shift both fn and sn equally until either LSB(fn) is
            #      set or fn is 0.
            if not _lsb(fn):
                while not (_lsb(fn) or fn == 0):
                    fn >>= 1
                    sn >>= 1
        # Otherwise:
        else:
            # i. Set sr to HASH(0x01 || sr || c).
            sr = node(sr, c)
        # c. Finally, right-shift both fn and sn one time.
        fn >>= 1
        sn >>= 1
    # 7. (part) ... and that sn is 0.
    if sn != 0:
        return None
    return fr, sr


def verify_consistency(
    first: int,
    second: int,
    consistency_path: Sequence[bytes],
    first_hash: bytes,
    second_hash: bytes,
    node: Callable[[Any, Any], Any] = sha256_node,
) -> bool:
    """§2.1.4.2 step 7: fr equals first_hash, sr equals second_hash and sn is 0.

    Outside 0 < first < second the RFC gives no algorithm; this returns False there, and the tests only
    compare it with the production verifier inside that domain.
    """
    roots = consistency_roots(first, second, consistency_path, first_hash, node)
    return roots is not None and roots[0] == first_hash and roots[1] == second_hash
