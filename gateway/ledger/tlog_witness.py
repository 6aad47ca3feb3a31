"""C2SP tlog-witness (`POST <prefix>/add-checkpoint`) and Ed25519 `cosignature/v1` lines (tlog-cosignature,
signed-note type 0x04). Pure, no I/O: the witness server, its state file and the gateway's client live in
the CLI; this module parses, decides and signs.

Request body:  "old <size>\\n" + consistency proof lines (base64, at most 63) + "\\n" + the signed checkpoint.
Responses:     200 signature lines; 400 malformed or old > size; 403 no trusted log signature; 404 unknown
               origin; 409 `text/x.tlog.size` "<latest cosigned size>\\n" (old size mismatch, or same size and
               another root); 422 consistency proof does not verify.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from .checkpoint import AnyVerifier, Checkpoint, CheckpointError, _b64decode_strict, check_key_name, open_note
from .merkle import ProofError, verify_consistency

ALG_COSIGNATURE_V1 = 0x04
MAX_PROOF_LINES = 63
MAX_REQUEST_BYTES = 64 * 1024
SIZE_CONTENT_TYPE = "text/x.tlog.size"


class AddCheckpointError(ValueError):
    def __init__(self, status: int, message: str, body: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.body = body if body is not None else message + "\n"


def cosignature_key_id(name: str, public_key: bytes) -> bytes:
    return hashlib.sha256(name.encode("utf-8") + b"\n" + bytes([ALG_COSIGNATURE_V1]) + public_key).digest()[:4]


def cosigned_v1_message(body: bytes, timestamp: int) -> bytes:
    return b"cosignature/v1\ntime %d\n" % timestamp + body


class CosignatureV1Signer:
    def __init__(self, name: str, key: Ed25519PrivateKey) -> None:
        self.name = check_key_name(name)
        self._key = key
        self._raw = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        self.key_id = cosignature_key_id(name, self._raw)

    def vkey(self) -> str:
        raw = base64.b64encode(bytes([ALG_COSIGNATURE_V1]) + self._raw).decode("ascii")
        return f"{self.name}+{self.key_id.hex()}+{raw}"

    def line(self, body: bytes, timestamp: int) -> str:
        if not 0 < timestamp < 1 << 63:
            raise CheckpointError("cosignature timestamp out of range")
        sig = self._key.sign(cosigned_v1_message(body, timestamp))
        blob = self.key_id + timestamp.to_bytes(8, "big") + sig
        return f"\u2014 {self.name} {base64.b64encode(blob).decode('ascii')}\n"


class CosignatureV1Verifier:
    """Duck-types NoteVerifier for `open_note`: a witness's cosignature/v1 key."""

    def __init__(self, name: str, public_key: bytes) -> None:
        self.name = check_key_name(name)
        self._raw = public_key
        self._key = Ed25519PublicKey.from_public_bytes(public_key)
        self.key_id = cosignature_key_id(name, public_key)

    @classmethod
    def from_vkey(cls, vkey: str) -> CosignatureV1Verifier:
        parts = vkey.split("+", 2)
        if len(parts) != 3:
            raise CheckpointError("malformed vkey")
        name, id_hex, b64 = parts
        raw = _b64decode_strict(b64, "vkey key")
        if len(raw) != 33 or raw[0] != ALG_COSIGNATURE_V1:
            raise CheckpointError("not a cosignature/v1 (0x04) Ed25519 vkey")
        v = cls(name, raw[1:])
        if v.key_id.hex() != id_hex.lower():
            raise CheckpointError("vkey key ID does not match its name and key")
        return v

    def vkey(self) -> str:
        raw = base64.b64encode(bytes([ALG_COSIGNATURE_V1]) + self._raw).decode("ascii")
        return f"{self.name}+{self.key_id.hex()}+{raw}"

    def verify(self, body: bytes, signature: bytes) -> bool:
        if len(signature) != 8 + 64:
            return False
        try:
            self._key.verify(signature[8:], cosigned_v1_message(body, int.from_bytes(signature[:8], "big")))
        except InvalidSignature:
            return False
        return True


# --- request ------------------------------------------------------------------------------------------


def format_request(old_size: int, proof: Sequence[bytes], note: bytes) -> bytes:
    lines = [f"old {old_size}"] + [base64.b64encode(h).decode("ascii") for h in proof]
    return ("\n".join(lines) + "\n\n").encode("ascii") + note


def parse_request(data: bytes) -> tuple[int, list[bytes], bytes]:
    if len(data) > MAX_REQUEST_BYTES:
        raise AddCheckpointError(400, "request too large")
    head, sep, note = data.partition(b"\n\n")
    if not sep:
        raise AddCheckpointError(400, "no empty line before the checkpoint")
    try:
        lines = head.decode("ascii").split("\n")
    except UnicodeDecodeError:
        raise AddCheckpointError(400, "header is not ASCII") from None
    first = lines[0]
    digits = first[4:]
    if not first.startswith("old ") or not digits.isdigit() or not digits.isascii() or digits != str(int(digits)):
        raise AddCheckpointError(400, "first line must be 'old <size>'")
    if len(lines) - 1 > MAX_PROOF_LINES:
        raise AddCheckpointError(400, "more than 63 consistency proof lines")
    try:
        proof = [_b64decode_strict(line, "proof line") for line in lines[1:]]
    except CheckpointError as exc:
        raise AddCheckpointError(400, str(exc)) from None
    if any(len(h) != 32 for h in proof):
        raise AddCheckpointError(400, "a proof line is not a SHA-256 hash")
    return int(digits), proof, note


# --- the witness's decision ---------------------------------------------------------------------------


@dataclass(frozen=True)
class LogState:
    size: int
    root_hash: bytes


def add_checkpoint(
    data: bytes,
    logs: Mapping[str, Sequence[AnyVerifier]],
    state: Mapping[str, LogState],
    signer: CosignatureV1Signer,
    now: int,
) -> tuple[str, LogState, str]:
    """Check an add-checkpoint request: (origin, new state to persist, response body of signature lines).

    Raises AddCheckpointError with the spec's status code. The caller must persist the new state before
    responding, atomically with reading `state` (one lock around both).
    """
    old, proof, note = parse_request(data)
    try:
        head = note.partition(b"\n")[0].decode("utf-8")
    except UnicodeDecodeError:
        raise AddCheckpointError(400, "checkpoint origin is not UTF-8") from None
    verifiers = logs.get(head)
    if verifiers is None:
        raise AddCheckpointError(404, "unknown log origin")
    try:
        body, _ = open_note(note, verifiers)
        cp = Checkpoint.parse(body)
    except CheckpointError as exc:
        raise AddCheckpointError(403, f"no trusted log signature verifies ({exc})") from None
    if cp.origin != head:
        raise AddCheckpointError(400, "origin mismatch")
    if old > cp.size:
        raise AddCheckpointError(400, "old size is larger than the checkpoint size")
    current = state.get(cp.origin, LogState(0, b""))
    if old != current.size:
        raise AddCheckpointError(409, "old size is not the latest cosigned size", f"{current.size}\n")
    if old == cp.size:
        if old and cp.root_hash != current.root_hash:
            raise AddCheckpointError(409, "same size, different root", f"{current.size}\n")
        if proof:
            raise AddCheckpointError(422, "proof must be empty between equal sizes")
    elif old == 0:
        if proof:
            raise AddCheckpointError(422, "proof must be empty from size 0")
    else:
        try:
            verify_consistency(old, cp.size, proof, current.root_hash, cp.root_hash)
        except ProofError as exc:
            raise AddCheckpointError(422, f"consistency proof does not verify: {exc}") from None
    return cp.origin, LogState(cp.size, cp.root_hash), signer.line(body, now)
