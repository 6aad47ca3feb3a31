"""Witness co-signing: a partner organisation's key vouches that it saw each checkpoint extend the last.

The gateway operator alone could otherwise show one history to one auditor and another to the next (a fork).
A witness co-signs a checkpoint only after checking the log's signature and an RFC 9162 consistency proof
from the last checkpoint it co-signed, so a forked or rolled-back log cannot collect its signature. Pure:
the CLI fetches notes and proofs, this module decides.
"""

from __future__ import annotations

from collections.abc import Sequence

from .checkpoint import CheckpointError, NoteSigner, NoteVerifier, verify_checkpoint
from .merkle import ProofError, verify_consistency


class WitnessRefusal(Exception):
    """The witness will not co-sign: the checkpoint is not a verified, append-only extension."""


class Witness:
    def __init__(self, signer: NoteSigner, log: NoteVerifier, origin: str | None = None) -> None:
        self.signer = signer
        self.log = log
        self.origin = origin

    def cosign(self, note: bytes, previous: bytes | None, proof: Sequence[bytes] | None) -> bytes:
        """Return `note` with this witness's signature added, or raise WitnessRefusal saying why."""
        try:
            cp = verify_checkpoint(note, self.log, origin=self.origin)
        except CheckpointError as exc:
            raise WitnessRefusal(f"the checkpoint does not verify with the log's key: {exc}") from None
        if previous is not None:
            old = verify_checkpoint(previous, self.log, origin=self.origin)
            if cp.size < old.size:
                raise WitnessRefusal(f"rollback: size {cp.size} is smaller than the {old.size} already co-signed")
            if cp.size == old.size and cp.root_hash != old.root_hash:
                raise WitnessRefusal(f"fork: a different root for size {cp.size} was already co-signed")
            if cp.size > old.size:
                try:
                    verify_consistency(old.size, cp.size, proof or [], old.root_hash, cp.root_hash)
                except ProofError as exc:
                    raise WitnessRefusal(f"fork: size {cp.size} does not extend size {old.size} ({exc})") from None
        return self.signer.add_signature(note)
