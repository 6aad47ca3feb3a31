"""Independent checks of a ledger: recompute the Merkle tree from the stored entries and hold it against every
signed checkpoint (local), or check a remote gateway's latest checkpoint against one saved earlier (remote).

Pure functions over rows and notes; the CLI feeds them from SQLite or HTTP. The first failure is reported
with the index it concerns, so an auditor knows where the record stops being trustworthy.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .checkpoint import Checkpoint, CheckpointError, NoteVerifier, verify_checkpoint
from .entry import canonical, parse_canonical
from .mac import entry_mac_checker, start_mac_ok
from .merkle import CompactRange, ProofError, verify_consistency


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


def verify_ledger(
    rows: Iterable[Sequence[Any]],
    checkpoints: Sequence[tuple[int, bytes]],
    verifier: NoteVerifier,
    origin: str,
    *,
    mac_key: bytes | None = None,
    mac_start: tuple[int, bytes | None] | None = None,
    saved: Sequence[tuple[str, bytes]] = (),
) -> VerifyReport:
    """Check entries (index, canonical bytes, stored leaf hash[, MAC]), in index order, against signed checkpoints.

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
    start = 0
    if mac_key is not None:
        if mac_start is None:
            return report.fail(
                "the record of the first authenticated entry (ledger_mac_start) is missing: start the gateway once to"
                " upgrade a ledger written before entry MACs, or it was removed"
            )
        start = mac_start[0]
        if not start_mac_ok(mac_key, start, mac_start[1]):
            return report.fail("the record of the first authenticated entry (ledger_mac_start) was altered")
    signed: list[tuple[Checkpoint, str | None]] = []
    for size, note in sorted(checkpoints):
        try:
            cp = verify_checkpoint(note, verifier, origin=origin)
        except CheckpointError as exc:
            return report.fail(f"checkpoint for size {size} does not verify with the ledger key: {exc}")
        if cp.size != size:
            return report.fail(f"checkpoint stored for size {size} says size {cp.size}")
        signed.append((cp, None))
    report.checkpoints = len(signed)
    if start > 0 and not any(cp.size >= start for cp, _ in signed):
        return report.fail(
            f"the legacy entries 0..{start - 1} (written before entry MACs) are not covered by a checkpoint"
        )
    for saved_label, note in saved:
        try:
            cp = verify_checkpoint(note, verifier, origin=origin)
        except CheckpointError as exc:
            return report.fail(f"{saved_label} does not verify with the ledger key: {exc}")
        signed.append((cp, saved_label))
    signed.sort(key=lambda item: (item[0].size, item[1] is not None))
    pending = iter(signed)
    next_cp = next(pending, None)
    last_good = 0
    tree = CompactRange()
    # The loop runs once per entry (a million for a big ledger), so what it calls is bound to locals, the
    # canonical-form check takes orjson's fast path (`parse_canonical`), the MAC is the one-shot C
    # HMAC, and the tree grows with `push` (no per-leaf objects). Same checks, same order, same messages.
    mac_ok = entry_mac_checker(mac_key) if mac_key is not None else None
    sha256, push, size = hashlib.sha256, tree.push, 0
    for row in rows:
        index, data, stored_leaf = row[0], row[1], row[2]
        if index != size:
            return report.fail(f"entry {size} is missing (the next stored entry is {index})", size)
        try:
            entry, is_canonical = parse_canonical(data)
        except ValueError:
            return report.fail(f"entry {index} is not valid JSON", index)
        if not isinstance(entry, dict) or entry.get("index") != index:
            claimed = entry.get("index") if isinstance(entry, dict) else None
            return report.fail(f"entry {index} names index {claimed} (rows reordered or replaced)", index)
        if is_canonical is False or (is_canonical is None and canonical(entry) != data):
            return report.fail(f"entry {index} is not in canonical form (edited outside the gateway)", index)
        leaf = sha256(b"\x00" + data).digest()
        if leaf != stored_leaf:
            return report.fail(f"entry {index} does not match its recorded leaf hash (edited)", index)
        if mac_ok is not None and index >= start and not mac_ok(index, leaf, _mac(row)):
            return report.fail(
                f"entry {index} has no valid MAC: it was not written by the gateway (forged, or edited along with its"
                " leaf hash)",
                index,
            )
        push(leaf)
        size += 1
        while next_cp is not None and next_cp[0].size == size:
            cp, label = next_cp
            if tree.root() != cp.root_hash:
                if label is not None:
                    return report.fail(
                        f"fork: {label} for size {cp.size} has a different root than entries 0..{cp.size - 1}"
                        " (the ledger was rewritten since it was saved)",
                        last_good,
                    )
                return report.fail(
                    f"entries {last_good}..{tree.size - 1} do not match the checkpoint signed for size {tree.size}"
                    f" (an entry in that range was altered, or the checkpoint is from a fork)",
                    last_good,
                )
            last_good = tree.size
            next_cp = next(pending, None)
    report.entries = tree.size
    report.root_hash = tree.root()
    if next_cp is not None:
        cp, label = next_cp
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


def _mac(row: Sequence[Any]) -> bytes | None:
    return bytes(row[3]) if len(row) > 3 and row[3] is not None else None


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
