"""RFC 6962 / RFC 9162 Merkle tree: hashing, an append-only compact range, proof building and verification.

Pure functions, no I/O. The ledger's tamper evidence rests on three things kept apart here on purpose:

* hashing (`leaf_hash`, `node_hash`, `root`), which must match every other RFC 6962 implementation byte for
  byte, or outside auditors could not check our checkpoints;
* `CompactRange`, the O(log n) right edge of the tree, so that appending an entry and producing the next
  root never rereads the ledger, and start-up restores the edge from a few stored bytes;
* proofs: builders take callbacks instead of a leaf list, so the store decides where hashes come from, and
  verifiers take nothing but the proof, so a client can check a proof without trusting the server.

Cost of proofs. A proof needs the hashes of O(log n) disjoint subtrees which together cover the whole tree
except the proven leaf (or the old tree). Computed from leaves alone that is about n leaf fetches and n node
hashes per proof: roughly a second or two at a million entries in CPython, fine for an audit export but not
for a per-request endpoint. Hence the optional `get_subtree_hash(start, end)` hook: it is asked only for
*perfect* subtrees (``end - start`` a power of two of at least 2, ``start`` a multiple of it), the nodes that
never change once complete. `CompactRange.append` reports exactly those nodes as they complete, so the store
can persist them (all of them, or only levels >= t to bound storage to n / 2**t rows) at append time with no
extra hashing. With every level >= t stored, a proof costs O(log n) hook calls plus at most
2**t leaf fetches per level, i.e. O(2**t * log n); the hook may return None for anything it lacks and the
builder falls back to recomputing that subtree from its children.

The verifiers deliberately use the "inner / border" decomposition of the proof (as transparency-dev/merkle
does) rather than the RFC 9162 §2.1.3.2 / §2.1.4.2 loops, so the test suite can cross-check them against a
literal transcription of the RFC (tests/rfc9162_verifier.py) and a bug cannot hide in both at once.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

HASH_SIZE = 32
#: MTH({}) per RFC 9162 §2.1.1: the hash of the empty string, not a leaf or node hash.
EMPTY_ROOT = hashlib.sha256(b"").digest()

LeafHashGetter = Callable[[int], bytes]
SubtreeHashGetter = Callable[[int, int], bytes | None]

_COMPACT_MAGIC = b"SSCR"
_COMPACT_VERSION = 1
_COMPACT_HEADER = len(_COMPACT_MAGIC) + 1 + 8
_HEX_DIGITS = frozenset("0123456789abcdef")


class ProofError(ValueError):
    """A proof, or the claim it is checked against, does not hold; the message says which part failed."""


def leaf_hash(data: bytes) -> bytes:
    """The 0x00 prefix keeps a leaf from ever being passed off as an interior node (second preimages)."""
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """The 0x01 prefix is the interior-node half of RFC 6962's domain separation."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(size: int) -> int:
    """Largest power of two strictly below `size` (size >= 2): where RFC 9162 cuts every non-perfect tree."""
    return 1 << ((size - 1).bit_length() - 1)


def _is_perfect(start: int, end: int) -> bool:
    size = end - start
    return size > 0 and size & (size - 1) == 0 and start % size == 0


def _check_hash(value: bytes, what: str) -> bytes:
    if not isinstance(value, bytes | bytearray) or len(value) != HASH_SIZE:
        raise ValueError(f"{what} is not a {HASH_SIZE}-byte hash")
    return bytes(value)


def _check_size(value: int, what: str) -> None:
    # bool is an int subclass; True as a tree size is always a bug, never intent.
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"{what} must be a non-negative integer, got {value!r}")


def root(leaf_hashes: Sequence[bytes]) -> bytes:
    """MTH over already-hashed leaves; iterative so a million leaves do not hit the recursion limit."""
    if not leaf_hashes:
        return EMPTY_ROOT
    compact = CompactRange()
    for h in leaf_hashes:
        compact.append(h)
    return compact.root()


def subtree_hash(
    start: int,
    end: int,
    get_leaf_hash: LeafHashGetter,
    get_subtree_hash: SubtreeHashGetter | None = None,
) -> bytes:
    """MTH(D[start:end]) for a range of the kind proofs use: perfect, or ending at the tree's right edge.

    Public because the store needs the same thing for "root at an earlier size" (`subtree_hash(0, m, ...)`)
    and would otherwise reimplement the cut points. Cost without the hook: end - start leaf fetches.
    """
    _check_size(start, "start")
    _check_size(end, "end")
    if end <= start:
        raise ValueError(f"empty or inverted range [{start}, {end})")
    return _range_hash(start, end, get_leaf_hash, get_subtree_hash)


def _range_hash(
    start: int,
    end: int,
    get_leaf_hash: LeafHashGetter,
    get_subtree_hash: SubtreeHashGetter | None,
) -> bytes:
    size = end - start
    if size == 1:
        return _check_hash(get_leaf_hash(start), f"leaf hash {start}")
    if get_subtree_hash is not None and _is_perfect(start, end):
        cached = get_subtree_hash(start, end)
        if cached is not None:
            return _check_hash(cached, f"cached subtree hash [{start}, {end})")
    k = _split(size)
    # Recursion depth is log2(size) <= 64, so no risk of hitting the interpreter's limit.
    return node_hash(
        _range_hash(start, start + k, get_leaf_hash, get_subtree_hash),
        _range_hash(start + k, end, get_leaf_hash, get_subtree_hash),
    )


def inclusion_proof(
    index: int,
    size: int,
    get_leaf_hash: LeafHashGetter,
    get_subtree_hash: SubtreeHashGetter | None = None,
) -> list[bytes]:
    """PATH(index, D[0:size]) from RFC 9162 §2.1.3.1, leaf-side sibling first.

    Walks down from the root instead of recursing so each sibling is hashed once; see the module docstring
    for what the optional hook saves.
    """
    _check_size(index, "index")
    _check_size(size, "size")
    if index >= size:
        raise ValueError(f"index {index} is not in a tree of size {size}")
    siblings: list[bytes] = []
    start, end = 0, size
    while end - start > 1:
        k = _split(end - start)
        if index < start + k:
            siblings.append(_range_hash(start + k, end, get_leaf_hash, get_subtree_hash))
            end = start + k
        else:
            siblings.append(_range_hash(start, start + k, get_leaf_hash, get_subtree_hash))
            start += k
    siblings.reverse()
    return siblings


def consistency_proof(
    m: int,
    n: int,
    get_leaf_hash: LeafHashGetter,
    get_subtree_hash: SubtreeHashGetter | None = None,
) -> list[bytes]:
    """PROOF(m, D[0:n]) from RFC 9162 §2.1.4.1; empty when m == n and, as in transparency-dev, when m == 0.

    The empty tree is a prefix of every tree, so there is nothing to prove for m == 0.
    """
    _check_size(m, "m")
    _check_size(n, "n")
    if m > n:
        raise ValueError(f"old size {m} is larger than new size {n}")
    if m == 0 or m == n:
        return []
    nodes: list[bytes] = []
    start, end, remaining, is_original = 0, n, m, True
    while True:
        size = end - start
        if remaining == size:
            # SUBPROOF(m, D[m], b): the old root is known to the verifier only at the top level.
            if not is_original:
                nodes.append(_range_hash(start, end, get_leaf_hash, get_subtree_hash))
            break
        k = _split(size)
        if remaining <= k:
            nodes.append(_range_hash(start + k, end, get_leaf_hash, get_subtree_hash))
            end = start + k
        else:
            nodes.append(_range_hash(start, start + k, get_leaf_hash, get_subtree_hash))
            start += k
            remaining -= k
            is_original = False
    nodes.reverse()
    return nodes


# --- verification -------------------------------------------------------------------------------------


def _check_proof(proof: Sequence[bytes]) -> list[bytes]:
    checked = []
    for i, p in enumerate(proof):
        if not isinstance(p, bytes | bytearray) or len(p) != HASH_SIZE:
            raise ProofError(f"proof element {i} is not a {HASH_SIZE}-byte hash")
        checked.append(bytes(p))
    return checked


def _check_claim_hash(value: bytes, what: str) -> bytes:
    if not isinstance(value, bytes | bytearray) or len(value) != HASH_SIZE:
        raise ProofError(f"{what} is not a {HASH_SIZE}-byte hash")
    return bytes(value)


def _check_claim_size(value: int, what: str) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ProofError(f"{what} must be a non-negative integer, got {value!r}")


def _decompose(index: int, size: int) -> tuple[int, int]:
    """Split an inclusion path into `inner` levels (below where the paths to `index` and to the last leaf
    meet) and `border` levels above, where every sibling sits on the left. The lengths alone pin the proof
    size, so a padded or truncated proof fails before any hashing."""
    inner = (index ^ (size - 1)).bit_length()
    border = bin(index >> inner).count("1")
    return inner, border


def _chain_inner(seed: bytes, proof: Sequence[bytes], index: int) -> bytes:
    for level, p in enumerate(proof):
        seed = node_hash(seed, p) if (index >> level) & 1 == 0 else node_hash(p, seed)
    return seed


def _chain_inner_right(seed: bytes, proof: Sequence[bytes], index: int) -> bytes:
    """Only left siblings: what the smaller tree sees of the same path (right siblings did not exist yet)."""
    for level, p in enumerate(proof):
        if (index >> level) & 1 == 1:
            seed = node_hash(p, seed)
    return seed


def _chain_border(seed: bytes, proof: Sequence[bytes]) -> bytes:
    for p in proof:
        seed = node_hash(p, seed)
    return seed


def root_from_inclusion_proof(leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes]) -> bytes:
    """The root a proof implies, for callers that compare against several candidate roots themselves."""
    _check_claim_size(index, "index")
    _check_claim_size(size, "size")
    if index >= size:
        raise ProofError(f"index {index} is not in a tree of size {size}")
    leaf = _check_claim_hash(leaf_hash, "leaf hash")
    nodes = _check_proof(proof)
    inner, border = _decompose(index, size)
    if len(nodes) != inner + border:
        raise ProofError(
            f"inclusion proof for index {index} in size {size} has {len(nodes)} hashes, expected {inner + border}"
        )
    return _chain_border(_chain_inner(leaf, nodes[:inner], index), nodes[inner:])


def verify_inclusion(leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes) -> None:
    """Raise ProofError unless `proof` shows `leaf_hash` at `index` in the tree of `size` with `root`.

    Note that an inclusion proof binds the size only through its shape: callers must take `size` and `root`
    together from one signed checkpoint, never `size` from the request.
    """
    expected = _check_claim_hash(root, "root")
    computed = root_from_inclusion_proof(leaf_hash, index, size, proof)
    if computed != expected:
        raise ProofError(
            f"inclusion proof for index {index} in size {size} leads to root {computed.hex()}, "
            f"not the expected {expected.hex()}"
        )


def verify_consistency(m: int, n: int, proof: Sequence[bytes], old_root: bytes, new_root: bytes) -> None:
    """Raise ProofError unless the tree of size `m` with `old_root` is a prefix of size `n` with `new_root`.

    m == 0 needs an empty proof and, stricter than transparency-dev, `old_root` equal to the empty-tree
    hash: a checkpoint of size 0 can only carry that root, and accepting anything else would hide a bug.
    """
    _check_claim_size(m, "old size")
    _check_claim_size(n, "new size")
    old = _check_claim_hash(old_root, "old root")
    new = _check_claim_hash(new_root, "new root")
    nodes = _check_proof(proof)
    if m > n:
        raise ProofError(f"old size {m} is larger than new size {n}: the log would have shrunk")
    if m == n:
        if nodes:
            raise ProofError(f"consistency proof between equal sizes {m} must be empty, has {len(nodes)} hashes")
        if old != new:
            raise ProofError(f"roots differ at the same size {m}: {old.hex()} != {new.hex()}")
        if m == 0 and old != EMPTY_ROOT:
            raise ProofError(f"root for size 0 must be the empty-tree hash, got {old.hex()}")
        return
    if m == 0:
        if nodes:
            raise ProofError(f"consistency proof from the empty tree must be empty, has {len(nodes)} hashes")
        if old != EMPTY_ROOT:
            raise ProofError(f"old root for size 0 must be the empty-tree hash, got {old.hex()}")
        return
    if not nodes:
        raise ProofError(f"consistency proof from size {m} to {n} is empty")

    # The proof is the tail of the inclusion path of leaf m-1 in the new tree, starting at the level of the
    # largest perfect subtree ending at m; that subtree's hash is sent first unless it is the whole old tree.
    inner, border = _decompose(m - 1, n)
    shift = (m & -m).bit_length() - 1  # trailing zero bits of m
    inner -= shift
    if m == 1 << shift:
        seed, rest = old, nodes
    else:
        seed, rest = nodes[0], nodes[1:]
    if len(rest) != inner + border:
        raise ProofError(
            f"consistency proof from size {m} to {n} has {len(nodes)} hashes, "
            f"expected {inner + border + len(nodes) - len(rest)}"
        )
    mask = (m - 1) >> shift
    computed_old = _chain_border(_chain_inner_right(seed, rest[:inner], mask), rest[inner:])
    if computed_old != old:
        raise ProofError(
            f"consistency proof leads to old root {computed_old.hex()} for size {m}, not the expected {old.hex()}"
        )
    computed_new = _chain_border(_chain_inner(seed, rest[:inner], mask), rest[inner:])
    if computed_new != new:
        raise ProofError(
            f"consistency proof leads to new root {computed_new.hex()} for size {n}, not the expected {new.hex()}"
        )


# --- compact range --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Node:
    """A perfect subtree: leaves [index * 2**level, (index + 1) * 2**level). Immutable once complete."""

    level: int
    index: int
    hash: bytes

    @property
    def start(self) -> int:
        return self.index << self.level

    @property
    def end(self) -> int:
        return (self.index + 1) << self.level


class CompactRange:
    """The right edge of the tree: one perfect-subtree hash per set bit of `size`, largest (leftmost) first.

    This is all that is needed to append and to compute the current root, so the store persists it
    (`to_bytes`) next to the ledger instead of rehashing every entry at start-up. It is not self-verifying:
    after `from_bytes` the caller should compare `root()` with the last signed checkpoint (or recompute from
    leaves) before trusting it.
    """

    __slots__ = ("_size", "_hashes")

    def __init__(self, size: int = 0, hashes: Iterable[bytes] = ()) -> None:
        _check_size(size, "size")
        checked = [_check_hash(h, f"compact range hash {i}") for i, h in enumerate(hashes)]
        if len(checked) != size.bit_count():
            raise ValueError(f"a compact range of size {size} holds {size.bit_count()} hashes, got {len(checked)}")
        self._size = size
        self._hashes = checked

    @property
    def size(self) -> int:
        return self._size

    @property
    def hashes(self) -> tuple[bytes, ...]:
        return tuple(self._hashes)

    def copy(self) -> CompactRange:
        """Appends mutate; a copy lets a transaction build the next state and drop it on rollback."""
        return CompactRange(self._size, self._hashes)

    def append(self, leaf_hash: bytes) -> list[Node]:
        """Add one leaf; return the perfect subtrees this completed (the leaf itself first, then upwards).

        O(1) node hashes amortised, O(log n) worst case. The returned nodes are what a store would keep
        to answer `get_subtree_hash` for proofs; ignore them if it keeps none.
        """
        h = _check_hash(leaf_hash, "leaf hash")
        index = self._size
        completed = [Node(0, index, h)]
        level = 0
        # Each trailing one bit of the old size is a perfect subtree of that level now joined by its twin.
        while (index >> level) & 1:
            h = node_hash(self._hashes.pop(), h)
            level += 1
            completed.append(Node(level, index >> level, h))
        self._hashes.append(h)
        self._size += 1
        return completed

    def push(self, leaf_hash: bytes) -> None:
        """`append` for a caller that computed `leaf_hash` itself and keeps no nodes: no checks, no `Node`
        objects, so verifying a million entries does not pay for a million lists (ledger/verify.py)."""
        hashes = self._hashes
        h = leaf_hash
        index = self._size
        sha = hashlib.sha256
        while index & 1:
            h = sha(b"\x01" + hashes.pop() + h).digest()
            index >>= 1
        hashes.append(h)
        self._size += 1

    def extend(self, leaf_hashes: Iterable[bytes]) -> None:
        for h in leaf_hashes:
            self.append(h)

    def root(self) -> bytes:
        """MTH of everything appended: fold the edge from the smallest (rightmost) subtree leftwards."""
        if not self._hashes:
            return EMPTY_ROOT
        h = self._hashes[-1]
        for left in reversed(self._hashes[:-1]):
            h = node_hash(left, h)
        return h

    def to_bytes(self) -> bytes:
        """b"SSCR" | version 1 | size (8 bytes, big-endian) | hashes: compact, versioned, length-checked."""
        return _COMPACT_MAGIC + bytes([_COMPACT_VERSION]) + self._size.to_bytes(8, "big") + b"".join(self._hashes)

    @classmethod
    def from_bytes(cls, data: bytes) -> CompactRange:
        if len(data) < _COMPACT_HEADER or not data.startswith(_COMPACT_MAGIC):
            raise ValueError("not a serialised compact range")
        if data[len(_COMPACT_MAGIC)] != _COMPACT_VERSION:
            raise ValueError(f"unsupported compact range version {data[len(_COMPACT_MAGIC)]}")
        size = int.from_bytes(data[len(_COMPACT_MAGIC) + 1 : _COMPACT_HEADER], "big")
        body = data[_COMPACT_HEADER:]
        if len(body) != HASH_SIZE * size.bit_count():
            raise ValueError(
                f"compact range of size {size} needs {HASH_SIZE * size.bit_count()} hash bytes, has {len(body)}"
            )
        return cls(size, [body[i : i + HASH_SIZE] for i in range(0, len(body), HASH_SIZE)])

    def to_json(self) -> dict[str, object]:
        """For stores that keep state in JSON columns or files: {"size": n, "hashes": [hex, ...]}."""
        return {"size": self._size, "hashes": [h.hex() for h in self._hashes]}

    @classmethod
    def from_json(cls, obj: object) -> CompactRange:
        if not isinstance(obj, dict) or set(obj) != {"size", "hashes"}:
            raise ValueError('compact range JSON must be an object with exactly "size" and "hashes"')
        size, hashes = obj["size"], obj["hashes"]
        if not isinstance(hashes, list) or not all(isinstance(h, str) for h in hashes):
            raise ValueError('compact range "hashes" must be a list of hex strings')
        if not isinstance(size, int) or isinstance(size, bool):
            raise ValueError('compact range "size" must be an integer')
        # bytes.fromhex skips whitespace; persisted state should be exactly what to_json wrote.
        if not all(len(h) == 2 * HASH_SIZE and all(c in _HEX_DIGITS for c in h) for h in hashes):
            raise ValueError(f"compact range hashes must be {2 * HASH_SIZE} lowercase hex digits each")
        return cls(size, [bytes.fromhex(h) for h in hashes])

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CompactRange):
            return NotImplemented
        return self._size == other._size and self._hashes == other._hashes

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        return f"CompactRange(size={self._size}, root={self.root().hex()})"
