"""Offline receipts: C2SP tlog-proof files (`c2sp.org/tlog-proof@v1`) for one ledger entry. Pure, no I/O.

    c2sp.org/tlog-proof@v1
    extra <base64 of the entry's canonical bytes>
    index <n>
    <base64 inclusion proof hash, leaf's sibling first>...
    <empty line>
    <the signed checkpoint, verbatim, with any cosignatures>

The spec leaves `extra` to the application and says not to trust it: here it carries the entry's canonical
bytes so the receipt is self-contained, and it is trusted only through the proof: its RFC 6962 leaf hash
must lead, at `index`, to the root of a checkpoint signed by every pinned key. A practitioner can thus show
years later, offline, that their decision was recorded as it was.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass

from .checkpoint import AnyVerifier, Checkpoint, CheckpointError, _b64decode_strict, open_note
from .merkle import ProofError, leaf_hash, verify_inclusion
from .tlog_policy import Policy

HEADER = "c2sp.org/tlog-proof@v1"
#: A receipt is an entry (<= 64 KiB), 64 hashes and a checkpoint with a few PQ signatures: well under 1 MiB.
MAX_RECEIPT_BYTES = 1024 * 1024


class ReceiptError(ValueError):
    """The receipt is malformed or does not verify; the message says which part."""


@dataclass(frozen=True)
class Receipt:
    index: int
    proof: tuple[bytes, ...]
    checkpoint_note: bytes
    extra: bytes | None = None

    def to_bytes(self) -> bytes:
        lines = [HEADER]
        if self.extra is not None:
            lines.append("extra " + base64.b64encode(self.extra).decode("ascii"))
        lines.append(f"index {self.index}")
        lines += [base64.b64encode(h).decode("ascii") for h in self.proof]
        return ("\n".join(lines) + "\n\n").encode("ascii") + self.checkpoint_note

    @classmethod
    def parse(cls, data: bytes) -> Receipt:
        if len(data) > MAX_RECEIPT_BYTES:
            raise ReceiptError("receipt is larger than 1 MiB")
        head, sep, note = data.partition(b"\n\n")
        if not sep:
            raise ReceiptError("no empty line between the proof and the checkpoint")
        try:
            lines = head.decode("ascii").split("\n")
        except UnicodeDecodeError:
            raise ReceiptError("the proof part is not ASCII") from None
        if lines[0] != HEADER:
            raise ReceiptError(f"first line is not {HEADER}")
        i = 1
        extra = None
        try:
            if i < len(lines) and lines[i].startswith("extra "):
                extra = _b64decode_strict(lines[i][6:], "extra")
                i += 1
            if i >= len(lines) or not lines[i].startswith("index "):
                raise ReceiptError("no index line")
            text = lines[i][6:]
            if not text.isdigit() or (len(text) > 1 and text[0] == "0") or not text.isascii():
                raise ReceiptError("index is not a decimal without leading zeros")
            proof = tuple(_b64decode_strict(line, f"proof line {n + 1}") for n, line in enumerate(lines[i + 1 :]))
        except CheckpointError as exc:
            raise ReceiptError(str(exc)) from None
        if any(len(h) != 32 for h in proof):
            raise ReceiptError("a proof line is not a SHA-256 hash")
        return cls(int(text), proof, note, extra)


def verify_receipt(
    data: bytes,
    verifiers: Sequence[AnyVerifier],
    *,
    origin: str | None = None,
    entry: bytes | None = None,
    policy: Policy | None = None,
) -> tuple[Receipt, Checkpoint, bytes]:
    """Check a receipt; return it, its checkpoint and the entry bytes it proves.

    Every key in `verifiers` must have signed the checkpoint (pin the Ed25519 key, the ML-DSA-44 key, or
    both, as the verifying policy demands). `entry` (if the receipt has no `extra`) is the entry to prove.
    """
    if not verifiers and policy is None:
        raise ReceiptError("no verifier key or policy given")
    r = Receipt.parse(data)
    leaf = entry if entry is not None else r.extra
    if leaf is None:
        raise ReceiptError("the receipt carries no entry (extra) and none was given")
    if entry is not None and r.extra is not None and entry != r.extra:
        raise ReceiptError("the entry given differs from the one in the receipt")
    try:
        if policy is not None:  # C2SP tlog-policy: any listed log key, and the witness quorum
            cp = policy.check(r.checkpoint_note)[0]
        if verifiers:
            body, _ = open_note(r.checkpoint_note, verifiers, require=[v.name for v in verifiers])
            # open_note requires names; every pinned (name, key ID) must have verified too.
            for v in verifiers:
                open_note(r.checkpoint_note, [v])
            cp = Checkpoint.parse(body)
    except CheckpointError as exc:
        raise ReceiptError(f"checkpoint: {exc}") from None
    if origin is not None and cp.origin != origin:
        raise ReceiptError(f"checkpoint origin {cp.origin!r} is not the expected {origin!r}")
    try:
        verify_inclusion(leaf_hash(leaf), r.index, cp.size, list(r.proof), cp.root_hash)
    except ProofError as exc:
        raise ReceiptError(f"inclusion: {exc}") from None
    return r, cp, leaf


def verifier_from_vkey(vkey: str) -> AnyVerifier:
    """A vkey of either kind the ledger signs with: Ed25519 (type 0x01) or ML-DSA-44 (type 0x06)."""
    from .checkpoint import NoteVerifier
    from .mldsa_note import ALG_MLDSA44, MLDSANoteVerifier

    parts = vkey.split("+", 2)
    try:
        alg = base64.b64decode(parts[2][:4])[0] if len(parts) == 3 else None
    except (ValueError, IndexError):
        alg = None
    return MLDSANoteVerifier.from_vkey(vkey) if alg == ALG_MLDSA44 else NoteVerifier.from_vkey(vkey)
