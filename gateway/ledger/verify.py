"""Independent checks of a ledger: recompute the Merkle tree from the stored entries and hold it against every
signed checkpoint (local), or check a remote gateway's latest checkpoint against one saved earlier (remote).

Pure functions over rows and notes; the CLI feeds them from SQLite or HTTP. The first failure is reported
with the index it concerns, so an auditor knows where the record stops being trustworthy.
"""

from __future__ import annotations

import hashlib
import itertools
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from .checkpoint import Checkpoint, CheckpointError, NoteVerifier, verify_checkpoint
from .entry import canonical, parse_canonical
from .mac import entry_mac_checker, start_mac_ok
from .merkle import EMPTY_ROOT, HASH_SIZE, ProofError, verify_consistency


@dataclass
class VerifyReport:
    ok: bool = True
    entries: int = 0
    checkpoints: int = 0
    root_hash: bytes = b""
    #: The first index that cannot be trusted, when a failure concerns entries.
    first_bad_index: int | None = None
    problems: list[str] = field(default_factory=list)

    def fail(self, message: str, index: int | None = None) -> VerifyReport:
        self.ok = False
        if index is not None and self.first_bad_index is None:
            self.first_bad_index = index
        self.problems.append(message)
        return self


#: Where a range of rows starts when nothing may come before it (the first range: an index below 0 is caught).
NO_LOWER_BOUND = -(2**63)

#: A character beyond U+FFFF in UTF-8 (its lead byte): RFC 8785 sorts keys by UTF-16 code units, orjson by code
#: points, so an entry holding one is checked the exact way.
_ASTRAL = re.compile(rb"[\xf0-\xff]")


def _has_float(value: Any) -> bool:
    """Does a parsed entry hold a float anywhere? orjson writes floats in its own shortest form (1.0, 1e16),
    RFC 8785 in ECMAScript's (1, 10000000000000000), so an entry with one is checked the exact way. A walk over
    the containers only, with a stack, not recursion (orjson parses up to 1024 levels deep); `_FLOAT_ENDS`
    spares most entries even that."""
    stack = [value]
    pop, push = stack.pop, stack.append
    while stack:
        node = pop()
        for item in node.values() if node.__class__ is dict else node:
            kind = item.__class__
            if kind is float:
                return True
            if kind is dict or kind is list:
                push(item)
    return False


def _float_ends_table() -> bytes:
    table = bytearray(b"x" * 256)
    for char in b",]}":
        table[char] = ord(",")
    for char in b".eE+-":
        table[char] = ord("f")
    return bytes(table)


#: A cheap, sound test that an entry holds no float, on its bytes (two C calls, no parsing): how orjson writes a
#: float, its last digits follow ".", "e", "E", "-" or "+" (1.5, 1e16, 1e-07), and a value in an object or array
#: is followed by ",", "]" or "}". So with the digits deleted and those characters mapped to "f" and ",", every
#: float leaves "f,". Prose can too ("home, and"): only then is the parsed entry walked (`_has_float`).
_FLOAT_ENDS = (_float_ends_table(), b"0123456789", b"f,")


@dataclass
class Checked:
    """What `check_rows` found in one range of rows: the leaf hashes and the perfect subtrees above them.

    `levels[0]` is the concatenated leaf hashes of the entries that passed every per-entry check, in index order
    from the range's first index; `levels[j]` the RFC 6962 node hashes of the complete subtrees of 2**j leaves
    among them (each 32 bytes). `first_stored` is the index of the first row the range held (None: no rows).
    `problem` is the first entry that failed, (index, message); `short` says the rows ran out before the range
    ended (a gap up to the next range's first row, which only the caller can name)."""

    first: int
    count: int
    levels: list[bytes]
    first_stored: int | None = None
    problem: tuple[int, str] | None = None
    short: bool = False


def check_rows(
    rows: Iterable[Sequence[Any]],
    first: int,
    end: int | None = None,
    *,
    mac_key: bytes | None = None,
    mac_from: int = 0,
) -> Checked:
    """Every per-entry check on (index, canonical bytes, stored leaf hash, MAC or None) rows in index order,
    expected to be exactly `first`, `first`+1, ... (up to `end`, exclusive, when given); stops at the first failure.

    Checks, in this order per entry: no index skipped, valid JSON, an object naming its own index, RFC 8785
    canonical form, its bytes hash to the stored leaf hash, and (with `mac_key`, from index `mac_from`) a valid
    MAC. This loop runs once per entry (a million for a big ledger, split over processes by
    `verify_parallel`), so it is written for speed without dropping any of those checks: the common entry is
    parsed and re-encoded by orjson (a few microseconds) and compared with its stored bytes; only an entry that
    holds what orjson may write differently from RFC 8785 (a float, a large integer, a character beyond
    U+FFFF), or whose bytes differ, goes through `parse_canonical` and `canonical`, the exact checks, with the
    same messages. (Running each check as a C-level `map` over batches of rows was tried: no faster, as
    nearly all the time is in orjson, hashlib and hmac themselves.)
    """
    leaves: list[bytes] = []
    put = leaves.append
    sha256, loads, dumps = hashlib.sha256, orjson.loads, orjson.dumps
    options = orjson.OPT_SORT_KEYS | orjson.OPT_STRICT_INTEGER
    bad_json, bad_int, astral, has_float = orjson.JSONDecodeError, orjson.JSONEncodeError, _ASTRAL.search, _has_float
    float_table, digits, float_end = _FLOAT_ENDS
    mac_ok = entry_mac_checker(mac_key) if mac_key is not None else None
    expect = first
    first_stored: int | None = None
    problem: tuple[int, str] | None = None
    it = iter(rows)
    for row in it:
        first_stored = row[0]
        it = itertools.chain((row,), it)
        break
    for index, data, stored, mac in it:
        if index != expect:
            problem = (expect, f"entry {expect} is missing (the next stored entry is {index})")
            break
        if data.__class__ is not bytes:
            if not isinstance(data, (bytearray, memoryview)):
                problem = (index, f"entry {index} is not valid JSON (stored as {type(data).__name__})")
                break
            data = bytes(data)
        try:
            # The fast path: what orjson parses and writes back byte for byte, with no float (`_has_float`), no
            # integer beyond 2**53 (OPT_STRICT_INTEGER refuses one) and no character beyond U+FFFF, is in RFC
            # 8785 form (orjson's string escaping is RFC 8785's: tests/test_ledger_verify_fast.py).
            value = loads(data)
            fast = (
                value.__class__ is dict
                and dumps(value, option=options) == data
                and (data.isascii() or astral(data) is None)
                and (float_end not in data.translate(float_table, digits) or not has_float(value))
            )
        except (bad_json, bad_int):
            fast = False
        if fast:
            if value.get("index") != index:
                problem = (index, f"entry {index} names index {value.get('index')} (rows reordered or replaced)")
                break
        else:
            message = _entry_problem(index, data)
            if message is not None:
                problem = (index, message)
                break
        leaf = sha256(b"\x00" + data).digest()
        if leaf != stored:
            problem = (index, f"entry {index} does not match its recorded leaf hash (edited)")
            break
        if mac_ok is not None and index >= mac_from and not mac_ok(index, leaf, mac):
            problem = (
                index,
                f"entry {index} has no valid MAC: it was not written by the gateway (forged, or edited along with its"
                " leaf hash)",
            )
            break
        put(leaf)
        expect += 1
    short = problem is None and end is not None and expect < end
    return Checked(first, len(leaves), subtree_levels(leaves), first_stored, problem, short)


def _entry_problem(index: int, data: bytes) -> str | None:
    """The exact checks (stdlib parser with its number hooks, `canonical` where it must), for what the fast
    path in `check_rows` leaves: the same checks and messages `verify_ledger` always had."""
    try:
        entry, is_canonical = parse_canonical(data)
    except ValueError:
        return f"entry {index} is not valid JSON"
    if not isinstance(entry, dict) or entry.get("index") != index:
        claimed = entry.get("index") if isinstance(entry, dict) else None
        return f"entry {index} names index {claimed} (rows reordered or replaced)"
    if is_canonical is None:
        try:
            is_canonical = canonical(entry) == data
        except Exception:  # rfc8785 refuses what has no canonical form (an integer beyond 2**53, infinity)
            is_canonical = False
    if not is_canonical:
        return f"entry {index} is not in canonical form (edited outside the gateway)"
    return None


def subtree_levels(leaves: Sequence[bytes]) -> list[bytes]:
    """The tree over `leaves` level by level, each level one bytes object of 32-byte hashes: the complete
    subtrees only (an odd last hash waits for its sibling). One hashlib call per node in a list comprehension,
    no per-node objects: a million leaves cost about a million node hashes, once."""
    sha256 = hashlib.sha256
    levels = [b"".join(leaves)]
    level = list(leaves)
    while len(level) > 1:
        level = [sha256(b"\x01" + left + right).digest() for left, right in zip(level[0::2], level[1::2], strict=False)]
        levels.append(b"".join(level))
    return levels


class LevelTree:
    """The RFC 6962 tree recomputed from ranges of `2**bits` leaves (`Checked.levels`, each starting at a
    multiple of `2**bits`), able to give the root of any prefix: what every signed checkpoint is held against.

    A range's own levels hold every perfect subtree inside it; the levels above `bits` are built here from the
    ranges' roots. The root of the first `n` leaves is the fold of the perfect subtrees `n`'s bits name, as in
    `CompactRange.root`, so checking a thousand checkpoints costs a few hash lookups each.
    """

    def __init__(self, bits: int) -> None:
        self._bits = bits
        self._ranges: list[list[bytes]] = []
        self._upper: list[list[bytes]] = []
        self.size = 0

    def add(self, levels: list[bytes], count: int) -> None:
        """Append a range's levels (the range before it must have been full: `2**bits` leaves)."""
        if self.size & ((1 << self._bits) - 1):
            raise ValueError("only the last range may hold fewer than 2**bits leaves")
        self._ranges.append(levels)
        self.size += count
        if count == 1 << self._bits:
            node = levels[self._bits]
            level = 0
            while True:
                if len(self._upper) == level:
                    self._upper.append([])
                row = self._upper[level]
                row.append(node)
                if len(row) % 2:
                    break
                node = hashlib.sha256(b"\x01" + row[-2] + row[-1]).digest()
                level += 1

    def node(self, level: int, index: int) -> bytes:
        """The hash of the perfect subtree of `2**level` leaves starting at leaf `index * 2**level`."""
        bits = self._bits
        if level > bits:
            return self._upper[level - bits][index]
        shift = bits - level
        chunk = index >> shift
        local = (index - (chunk << shift)) * HASH_SIZE
        return self._ranges[chunk][level][local : local + HASH_SIZE]

    def root(self, size: int | None = None) -> bytes:
        """MTH of the first `size` leaves (all of them by default)."""
        n = self.size if size is None else size
        if not 0 <= n <= self.size:
            raise ValueError(f"the tree has {self.size} leaves, not {n}")
        if n == 0:
            return EMPTY_ROOT
        nodes: list[bytes] = []
        pos = 0
        for level in range(n.bit_length() - 1, -1, -1):
            if n >> level & 1:
                nodes.append(self.node(level, pos >> level))
                pos += 1 << level
        h = nodes[-1]
        for left in reversed(nodes[:-1]):
            h = hashlib.sha256(b"\x01" + left + h).digest()
        return h


def signed_checkpoints(
    report: VerifyReport,
    checkpoints: Sequence[tuple[int, bytes]],
    verifier: NoteVerifier,
    origin: str,
    *,
    mac_key: bytes | None = None,
    mac_start: tuple[int, bytes] | None = None,
    saved: Sequence[tuple[str, bytes]] = (),
) -> tuple[list[tuple[Checkpoint, str | None]], int] | None:
    """Every signature checked before any entry: the verified checkpoints (stored ones first at equal size, then
    the labelled `saved` ones), in size order, and the first index that must carry a MAC. None when `report`
    has failed (the MAC start record, a signature, a stored size, or legacy entries no checkpoint covers)."""
    start = 0
    if mac_key is not None:
        if mac_start is None:
            report.fail(
                "the record of the first authenticated entry (ledger_mac_start) is missing: start the gateway once to"
                " upgrade a ledger written before entry MACs, or it was removed"
            )
            return None
        start = mac_start[0]
        if not start_mac_ok(mac_key, start, mac_start[1]):
            report.fail("the record of the first authenticated entry (ledger_mac_start) was altered")
            return None
    signed: list[tuple[Checkpoint, str | None]] = []
    for size, note in sorted(checkpoints):
        try:
            cp = verify_checkpoint(note, verifier, origin=origin)
        except CheckpointError as exc:
            report.fail(f"checkpoint for size {size} does not verify with the ledger key: {exc}")
            return None
        if cp.size != size:
            report.fail(f"checkpoint stored for size {size} says size {cp.size}")
            return None
        signed.append((cp, None))
    report.checkpoints = len(signed)
    if start > 0 and not any(cp.size >= start for cp, _ in signed):
        report.fail(f"the legacy entries 0..{start - 1} (written before entry MACs) are not covered by a checkpoint")
        return None
    for saved_label, note in saved:
        try:
            cp = verify_checkpoint(note, verifier, origin=origin)
        except CheckpointError as exc:
            report.fail(f"{saved_label} does not verify with the ledger key: {exc}")
            return None
        signed.append((cp, saved_label))
    signed.sort(key=lambda item: (item[0].size, item[1] is not None))
    return signed, start


def judge(
    report: VerifyReport,
    signed: Sequence[tuple[Checkpoint, str | None]],
    tree: LevelTree,
    problem: tuple[int, str] | None,
) -> VerifyReport:
    """Hold the recomputed tree (`tree.size` entries passed every per-entry check) against every signed
    checkpoint, in size order; then report the entry `problem` (the entry after the last good one), if any.

    The order of the verdicts is that of reading the ledger front to back: a checkpoint whose entries all
    passed is checked before the entry that follows it, so the first thing reported is the first thing wrong.
    """
    last_good = 0
    pending: tuple[Checkpoint, str | None] | None = None
    for cp, label in signed:
        if not 0 < cp.size <= tree.size:
            pending = (cp, label)
            break
        if tree.root(cp.size) != cp.root_hash:
            if label is not None:
                return report.fail(
                    f"fork: {label} for size {cp.size} has a different root than entries 0..{cp.size - 1}"
                    " (the ledger was rewritten since it was saved)",
                    last_good,
                )
            return report.fail(
                f"entries {last_good}..{cp.size - 1} do not match the checkpoint signed for size {cp.size}"
                f" (an entry in that range was altered, or the checkpoint is from a fork)",
                last_good,
            )
        last_good = cp.size
    if problem is not None:
        return report.fail(problem[1], problem[0])
    report.entries = tree.size
    report.root_hash = tree.root()
    if pending is not None:
        cp, label = pending
        if label is not None:
            return report.fail(
                f"roll back: {label} covers {cp.size} entries but the ledger has {tree.size} (entries from {tree.size}"
                " on were removed, or the database is an older copy)",
                tree.size,
            )
        return report.fail(
            f"the ledger has {tree.size} entries but a signed checkpoint covers {cp.size}: entries from "
            f"{tree.size} on were removed",
            tree.size,
        )
    return report


def verify_ledger(
    rows: Iterable[Sequence[Any]],
    checkpoints: Sequence[tuple[int, bytes]],
    verifier: NoteVerifier,
    origin: str,
    *,
    mac_key: bytes | None = None,
    mac_start: tuple[int, bytes] | None = None,
    saved: Sequence[tuple[str, bytes]] = (),
) -> VerifyReport:
    """Check entries (index, canonical bytes, stored leaf hash, MAC or None), in index order, against signed
    checkpoints, in this process (`verify_parallel.verify_ranges` does the same over processes).

    Catches: a deleted or inserted row (gap or index mismatch), an edited entry (its bytes no longer hash to
    the stored leaf, or the tree no longer has the signed root), reordered rows (an entry sits at an index
    it does not name), a truncated tail (a checkpoint covers more entries than exist), and a replaced or
    forged checkpoint (bad signature, or a root that is not this tree's: a fork).

    With `mac_key`, every entry from the recorded first authenticated index (`mac_start`: (index, its MAC))
    must carry a valid MAC, so an entry added by someone with the database but not the key is named even when
    no checkpoint covers it yet; entries below that index are legacy and must be covered by a checkpoint.
    `saved` are checkpoints kept elsewhere (an auditor's file, the gateway's `data/ledger-head.note`), each
    labelled: the ledger must still contain them (else: roll back) with the same root (else: fork).
    """
    report = VerifyReport()
    prepared = signed_checkpoints(
        report, checkpoints, verifier, origin, mac_key=mac_key, mac_start=mac_start, saved=saved
    )
    if prepared is None:
        return report
    signed, start = prepared
    checked = check_rows(rows, 0, mac_key=mac_key, mac_from=start)
    tree = LevelTree(64)
    tree.add(checked.levels, checked.count)
    return judge(report, signed, tree, checked.problem)


@dataclass(frozen=True)
class RemoteVerdict:
    ok: bool
    message: str
    old: Checkpoint
    new: Checkpoint | None = None


def verify_remote(
    saved_note: bytes,
    latest_note: bytes,
    proof: Sequence[bytes] | None,
    verifier: NoteVerifier,
    origin: str | None = None,
) -> RemoteVerdict:
    """Is the gateway's latest checkpoint an append-only extension of the one the auditor saved earlier?

    `proof` is the RFC 9162 consistency proof from the saved size to the latest size (None when equal).
    A smaller tree is a rollback; a different root at the same size, or a proof that fails, is a fork.
    """
    old = verify_checkpoint(saved_note, verifier, origin=origin)
    try:
        new = verify_checkpoint(latest_note, verifier, origin=origin or old.origin)
    except CheckpointError as exc:
        return RemoteVerdict(False, f"the gateway's latest checkpoint does not verify: {exc}", old)
    if new.size < old.size:
        return RemoteVerdict(
            False, f"rollback: the gateway now shows {new.size} entries, fewer than the {old.size} saved", old, new
        )
    if new.size == old.size:
        if new.root_hash != old.root_hash:
            return RemoteVerdict(False, f"fork: the root for size {old.size} differs from the one saved", old, new)
        return RemoteVerdict(True, f"unchanged at {old.size} entries; same root", old, new)
    try:
        verify_consistency(old.size, new.size, proof or [], old.root_hash, new.root_hash)
    except ProofError as exc:
        return RemoteVerdict(
            False, f"fork: size {new.size} is not an append-only extension of size {old.size} ({exc})", old, new
        )
    return RemoteVerdict(True, f"consistent: {old.size} -> {new.size} entries, append-only", old, new)


def document_problems(
    stored: Mapping[str, tuple[int, int]], named: Iterable[str], chunks: Callable[[str], Iterable[bytes]]
) -> list[str]:
    """What is wrong with the agreement documents: each named one must be stored, and each stored one must be the
    bytes its name (SHA-256) and row (size, pieces) say.

    Why: documents are immutable by trigger, but a database superuser can drop a trigger and change the bytes a
    share was made under; the ledger names each document by its digest, so re-hashing them catches that, as the
    Merkle tree catches a changed entry. Pieces are hashed as they come: a document is never held whole.
    """
    problems = [
        f"agreement document {sha} is named by the ledger or an agreement but is not in the database"
        for sha in sorted(set(named) - set(stored))
    ]
    for sha, (size, count) in sorted(stored.items()):
        h, length, pieces = hashlib.sha256(), 0, 0
        for piece in chunks(sha):
            h.update(piece)
            length += len(piece)
            pieces += 1
        if h.hexdigest() != sha or length != size or pieces != count:
            problems.append(
                f"agreement document {sha} has been changed: its stored bytes ({length} bytes in {pieces} pieces) "
                f"do not hash to its name (declared {size} bytes in {count})"
            )
    return problems
