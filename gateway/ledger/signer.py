"""The gateway's checkpoint signer: an Ed25519 key and, besides it, an ML-DSA-44 key, both named after the
log's origin (C2SP signed-note; the ML-DSA-44 line is type 0x06, see mldsa_note.py).

Auditors pin the verifier key (`vkey`, and/or `pq_vkey`) once; from then on every checkpoint the gateway
publishes is bound to that key, so a rewritten or forked ledger cannot be presented as the one they saw.
The Ed25519 line comes first and is always there (the public witness network requires it).
"""

from __future__ import annotations

import time

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.mldsa import MLDSA44PrivateKey

from .checkpoint import Checkpoint, NoteSigner, NoteVerifier, sign_checkpoint
from .mldsa_note import MLDSANoteSigner, MLDSANoteVerifier


class LedgerSigner:
    def __init__(self, origin: str, key: Ed25519PrivateKey, pq_key: MLDSA44PrivateKey | None = None) -> None:
        self.origin = origin
        self._signer = NoteSigner(origin, key)
        self._pq = None if pq_key is None else MLDSANoteSigner(origin, pq_key)

    def sign(self, size: int, root_hash: bytes) -> bytes:
        cp = Checkpoint(self.origin, size, root_hash)
        note = sign_checkpoint(cp, self._signer)
        if self._pq is not None:
            note += self._pq.signature_line(cp.body(), int(time.time())).encode("utf-8")
        return note

    @property
    def vkey(self) -> str:
        return self._signer.vkey()

    @property
    def pq_vkey(self) -> str | None:
        return None if self._pq is None else self._pq.vkey()

    def verifier(self) -> NoteVerifier:
        return self._signer.verifier()

    def pq_verifier(self) -> MLDSANoteVerifier | None:
        return None if self._pq is None else self._pq.verifier()
