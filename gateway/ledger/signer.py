"""The gateway's checkpoint signer: one Ed25519 key, named after the log's origin (C2SP signed-note).

Auditors pin the verifier key (`vkey`) once; from then on every checkpoint the gateway publishes is bound
to that key, so a rewritten or forked ledger cannot be presented as the one they saw.
"""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from .checkpoint import Checkpoint, NoteSigner, NoteVerifier, sign_checkpoint


class LedgerSigner:
    def __init__(self, origin: str, key: Ed25519PrivateKey) -> None:
        self.origin = origin
        self._signer = NoteSigner(origin, key)

    def sign(self, size: int, root_hash: bytes) -> bytes:
        return sign_checkpoint(Checkpoint(self.origin, size, root_hash), self._signer)

    @property
    def vkey(self) -> str:
        return self._signer.vkey()

    def verifier(self) -> NoteVerifier:
        return self._signer.verifier()
