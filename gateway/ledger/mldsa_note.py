"""ML-DSA-44 signature lines on checkpoints (signed-note signature type 0x06, c2sp.org/tlog-cosignature).

Pure, no I/O. The signed-note spec's own text (as available here) assigns no ML-DSA type for a log's
signature; the one ML-DSA-44 type C2SP defines is 0x06, the timestamped (sub)tree signature of
tlog-cosignature, which the spec recommends for new deployments. The ledger signs each checkpoint with it
as a whole-tree signature (start 0, end = size) under the log's own name, *besides* the Ed25519 line the
public witness network requires. Verifiers pin either key, or both, and a checkpoint passes when every
pinned key's line verifies.

    key ID  = SHA-256(name || 0x0A || 0x06 || 1312-byte public key)[:4]
    line    = "— " name " " base64(key ID || u64 timestamp || 2420-byte ML-DSA-44 signature)
    message = "subtree/v1\\n\\0" || u8 len || name || u64 timestamp || u8 len || origin
              || u64 start || u64 end || 32-byte root hash
"""

from __future__ import annotations

import base64
import hashlib
import re

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.mldsa import MLDSA44PrivateKey, MLDSA44PublicKey

from .checkpoint import Checkpoint, CheckpointError, _b64decode_strict, _check_body, check_key_name

ALG_MLDSA44 = 0x06
PUBLIC_KEY_SIZE = 1312
SIGNATURE_SIZE = 2420
LABEL = b"subtree/v1\n\x00"
_KEY_ID_HEX = re.compile(r"[0-9a-fA-F]{8}")


def mldsa_key_id(name: str, public_key: bytes) -> bytes:
    return hashlib.sha256(name.encode("utf-8") + b"\n" + bytes([ALG_MLDSA44]) + public_key).digest()[:4]


def _opaque8(value: bytes, what: str) -> bytes:
    if not 1 <= len(value) <= 255:
        raise CheckpointError(f"{what} must be 1..255 bytes for an ML-DSA-44 signature")
    return bytes([len(value)]) + value


def cosigned_message(name: str, timestamp: int, origin: str, start: int, end: int, root_hash: bytes) -> bytes:
    """The `cosigned_message` structure of tlog-cosignature (RFC 8446 presentation language)."""
    if not 0 <= timestamp < 1 << 63:
        raise CheckpointError("timestamp out of range")
    return (
        LABEL
        + _opaque8(name.encode("utf-8"), "key name")
        + timestamp.to_bytes(8, "big")
        + _opaque8(origin.encode("utf-8"), "origin")
        + start.to_bytes(8, "big")
        + end.to_bytes(8, "big")
        + root_hash
    )


def _message_for(name: str, timestamp: int, body: bytes) -> bytes:
    cp = Checkpoint.parse(body)
    return cosigned_message(name, timestamp, cp.origin, 0, cp.size, cp.root_hash)


class MLDSANoteVerifier:
    """One trusted ML-DSA-44 key; duck-types `NoteVerifier` so `open_note` can mix both kinds."""

    __slots__ = ("name", "key_id", "_public_key", "_raw")

    def __init__(self, name: str, public_key: MLDSA44PublicKey) -> None:
        self.name = check_key_name(name)
        self._public_key = public_key
        self._raw = public_key.public_bytes_raw()
        self.key_id = mldsa_key_id(name, self._raw)

    @classmethod
    def from_vkey(cls, vkey: str) -> MLDSANoteVerifier:
        parts = vkey.split("+", 2) if isinstance(vkey, str) else []
        if len(parts) != 3:
            raise CheckpointError("malformed vkey: expected <name>+<8 hex digit key ID>+<base64 key>")
        name, id_hex, key_b64 = parts
        check_key_name(name)
        if not _KEY_ID_HEX.fullmatch(id_hex):
            raise CheckpointError(f"malformed vkey: key ID {id_hex!r} is not 8 hex digits")
        key = _b64decode_strict(key_b64, "vkey key")
        if not key or key[0] != ALG_MLDSA44 or len(key) != 1 + PUBLIC_KEY_SIZE:
            raise CheckpointError("malformed vkey: expected 0x06 followed by a 1312-byte ML-DSA-44 public key")
        if bytes.fromhex(id_hex) != mldsa_key_id(name, key[1:]):
            raise CheckpointError(f"vkey key ID {id_hex} does not match its name and key")
        try:
            public_key = MLDSA44PublicKey.from_public_bytes(key[1:])
        except ValueError:
            raise CheckpointError("malformed vkey: not an ML-DSA-44 public key") from None
        return cls(name, public_key)

    def vkey(self) -> str:
        raw = base64.b64encode(bytes([ALG_MLDSA44]) + self._raw).decode("ascii")
        return f"{self.name}+{self.key_id.hex()}+{raw}"

    def verify(self, body: bytes, signature: bytes) -> bool:
        if len(signature) != 8 + SIGNATURE_SIZE:
            return False
        timestamp = int.from_bytes(signature[:8], "big")
        try:
            message = _message_for(self.name, timestamp, body)
            self._public_key.verify(signature[8:], message)
        except (CheckpointError, InvalidSignature):
            return False
        return True

    def __repr__(self) -> str:
        return f"MLDSANoteVerifier({self.name!r}, {self.key_id.hex()})"


class MLDSANoteSigner:
    __slots__ = ("name", "key_id", "_private_key", "_raw_public")

    def __init__(self, name: str, key: MLDSA44PrivateKey) -> None:
        self.name = check_key_name(name)
        self._private_key = key
        self._raw_public = key.public_key().public_bytes_raw()
        self.key_id = mldsa_key_id(name, self._raw_public)

    def verifier(self) -> MLDSANoteVerifier:
        return MLDSANoteVerifier(self.name, self._private_key.public_key())

    def vkey(self) -> str:
        return self.verifier().vkey()

    def signature_line(self, body: bytes, timestamp: int) -> str:
        """One "— <name> <base64(key ID || timestamp || signature)>" line over a checkpoint body."""
        if timestamp <= 0:
            raise CheckpointError("an ML-DSA-44 checkpoint signature needs a non-zero timestamp")
        text = _check_body(body)
        signature = self._private_key.sign(_message_for(self.name, timestamp, text.encode("utf-8")))
        blob = self.key_id + timestamp.to_bytes(8, "big") + signature
        return f"\u2014 {self.name} {base64.b64encode(blob).decode('ascii')}\n"
