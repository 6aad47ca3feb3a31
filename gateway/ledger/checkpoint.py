"""C2SP checkpoints (c2sp.org/tlog-checkpoint) carried in Ed25519 signed notes (c2sp.org/signed-note).

Pure functions, no I/O. The formats are someone else's on purpose: a checkpoint in this shape can be checked
by existing tooling (golang.org/x/mod/sumdb/note, transparency-dev witnesses, sigstore) without trusting any
SafeShare code, and witnesses can co-sign it by appending their own signature line.

Parsing is strict (canonical base64, no leading zeros, no control characters) because a checkpoint is
compared and stored byte for byte: two encodings of "the same" tree head would be a way to equivocate.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

HASH_SIZE = 32
#: signed-note signature type for Ed25519.
ALG_ED25519 = 0x01
ED25519_SIGNATURE_SIZE = 64
#: Go's note.Open refuses more; C2SP asks verifiers to accept at least 16.
MAX_SIGNATURES = 100
#: Checkpoint sizes are uint64 in every other implementation; a larger one could not be re-parsed there.
MAX_TREE_SIZE = (1 << 64) - 1

_SIG_PREFIX = "\u2014 "  # em dash, space
_DECIMAL = re.compile(r"0|[1-9][0-9]*")
_KEY_ID_HEX = re.compile(r"[0-9a-fA-F]{8}")


class CheckpointError(ValueError):
    """A checkpoint, note, signature or key is malformed or does not verify; the message says which."""


# --- helpers ---------------------------------------------------------------------------------------------


def _b64decode_strict(text: str, what: str) -> bytes:
    """Standard base64 that round-trips exactly: no whitespace, no missing padding, no stray low bits."""
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise CheckpointError(f"{what} is not valid standard base64") from None
    if base64.b64encode(raw).decode("ascii") != text:
        raise CheckpointError(f"{what} is not canonical standard base64")
    return raw


def _has_control(text: str) -> bool:
    return any(ord(c) < 0x20 and c != "\n" for c in text)


def _decode_note_text(data: bytes, what: str) -> str:
    """signed-note: MUST be UTF-8 and MUST NOT contain ASCII control characters other than newline."""
    if not isinstance(data, bytes | bytearray):
        raise CheckpointError(f"{what} must be bytes, got {type(data).__name__}")
    try:
        text = bytes(data).decode("utf-8")
    except UnicodeDecodeError:
        raise CheckpointError(f"{what} is not valid UTF-8") from None
    if _has_control(text):
        raise CheckpointError(f"{what} contains a control character other than newline")
    return text


def check_key_name(name: str) -> str:
    """signed-note key names: non-empty, no Unicode spaces, no '+' (the vkey field separator).

    Control characters are refused as well: a note containing one could never be opened.
    """
    if not isinstance(name, str) or not name:
        raise CheckpointError("key name must be a non-empty string")
    if "+" in name:
        raise CheckpointError(f"key name {name!r} contains '+'")
    if any(c.isspace() for c in name):
        raise CheckpointError(f"key name {name!r} contains whitespace")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in name):
        raise CheckpointError(f"key name {name!r} contains a control character")
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        raise CheckpointError(f"key name {name!r} is not valid Unicode text") from None
    return name


def ed25519_key_id(name: str, public_key: bytes) -> bytes:
    """SHA-256(name || 0x0A || 0x01 || key)[:4]: binds the name and algorithm into the 4-byte key ID."""
    return hashlib.sha256(name.encode("utf-8") + b"\n" + bytes([ALG_ED25519]) + public_key).digest()[:4]


def _raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


# --- checkpoint body --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Checkpoint:
    """A log's tree head: who (origin), how many leaves (size) and the RFC 6962 root over them."""

    origin: str
    size: int
    root_hash: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        # Validating here, not only in parse(), means body() can never produce something parse() refuses.
        if not isinstance(self.origin, str) or not self.origin:
            raise CheckpointError("checkpoint origin must be a non-empty string")
        if "\n" in self.origin or _has_control(self.origin):
            raise CheckpointError("checkpoint origin contains a newline or control character")
        if not isinstance(self.size, int) or isinstance(self.size, bool):
            raise CheckpointError(f"checkpoint size must be an integer, got {self.size!r}")
        if not 0 <= self.size <= MAX_TREE_SIZE:
            raise CheckpointError(f"checkpoint size {self.size} is outside 0..2**64-1")
        if not isinstance(self.root_hash, bytes) or len(self.root_hash) != HASH_SIZE:
            raise CheckpointError(f"checkpoint root hash must be {HASH_SIZE} bytes")
        if not isinstance(self.extensions, tuple):
            raise CheckpointError("checkpoint extensions must be a tuple of strings")
        for ext in self.extensions:
            if not isinstance(ext, str) or not ext:
                raise CheckpointError("checkpoint extension lines must be non-empty strings")
            if "\n" in ext or _has_control(ext):
                raise CheckpointError("checkpoint extension line contains a newline or control character")

    def body(self) -> bytes:
        """The note text that gets signed: origin, decimal size, base64 root, then extension lines."""
        lines = [self.origin, str(self.size), base64.b64encode(self.root_hash).decode("ascii"), *self.extensions]
        return "".join(line + "\n" for line in lines).encode("utf-8")

    @classmethod
    def parse(cls, body: bytes) -> Checkpoint:
        """Inverse of body(); refuses every encoding body() would not have produced."""
        text = _decode_note_text(body, "checkpoint")
        if not text.endswith("\n"):
            raise CheckpointError("checkpoint does not end with a newline")
        lines = text[:-1].split("\n")
        if len(lines) < 3:
            raise CheckpointError(f"checkpoint has {len(lines)} lines, needs at least origin, size and root hash")
        origin, size_text, root_text, *extensions = lines
        if not origin:
            raise CheckpointError("checkpoint origin line is empty")
        if not _DECIMAL.fullmatch(size_text):
            raise CheckpointError(f"checkpoint size {size_text!r} is not a decimal number without leading zeros")
        size = int(size_text)
        if size > MAX_TREE_SIZE:
            raise CheckpointError(f"checkpoint size {size_text} does not fit in 64 bits")
        root_hash = _b64decode_strict(root_text, "checkpoint root hash")
        if len(root_hash) != HASH_SIZE:
            raise CheckpointError(f"checkpoint root hash is {len(root_hash)} bytes, expected {HASH_SIZE}")
        for i, ext in enumerate(extensions):
            if not ext:
                raise CheckpointError(f"checkpoint extension line {i + 1} is empty")
        return cls(origin, size, root_hash, tuple(extensions))


# --- signed notes ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _SignatureLine:
    name: str
    key_id: bytes
    signature: bytes
    line: str


def _split_note(note: bytes) -> tuple[bytes, list[_SignatureLine]]:
    """Structural parse, as Go's note.Open: text up to the last blank line, then signature lines."""
    text = _decode_note_text(note, "note")
    split = text.rfind("\n\n")
    if split < 0:
        raise CheckpointError("note has no blank line before its signatures")
    body, sig_block = text[: split + 1], text[split + 2 :]
    if not sig_block or not sig_block.endswith("\n"):
        raise CheckpointError("note has no signature lines, or they do not end with a newline")
    lines = sig_block[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise CheckpointError(f"note has {len(lines)} signatures, more than the limit of {MAX_SIGNATURES}")
    parsed = []
    for i, line in enumerate(lines):
        if not line.startswith(_SIG_PREFIX):
            raise CheckpointError(f"signature line {i + 1} does not start with an em dash and a space")
        name, sep, b64 = line[len(_SIG_PREFIX) :].partition(" ")
        if not sep or not b64:
            raise CheckpointError(f"signature line {i + 1} has no signature after the key name")
        try:
            check_key_name(name)
        except CheckpointError as exc:
            raise CheckpointError(f"signature line {i + 1}: {exc}") from None
        raw = _b64decode_strict(b64, f"signature line {i + 1}")
        if len(raw) < 5:
            raise CheckpointError(f"signature line {i + 1} is too short to hold a key ID and a signature")
        parsed.append(_SignatureLine(name, raw[:4], raw[4:], line))
    return body.encode("utf-8"), parsed


def split_note(note: bytes) -> tuple[bytes, list[tuple[str, bytes, str]]]:
    """Structural parse without verifying anything: (text, [(key name, key ID, signature line)])."""
    body, sigs = _split_note(note)
    return body, [(s.name, s.key_id, s.line) for s in sigs]


def _check_body(body: bytes) -> str:
    text = _decode_note_text(body, "note text")
    if not text.endswith("\n"):
        raise CheckpointError("note text must end with a newline")
    return text


class NoteVerifier:
    """One trusted Ed25519 key, identified in notes by (name, key ID)."""

    __slots__ = ("name", "key_id", "_public_key", "_raw")

    def __init__(self, name: str, public_key: Ed25519PublicKey) -> None:
        self.name = check_key_name(name)
        self._public_key = public_key
        self._raw = _raw_public(public_key)
        self.key_id = ed25519_key_id(name, self._raw)

    @classmethod
    def from_vkey(cls, vkey: str) -> NoteVerifier:
        """Parse `<name>+<hex key ID>+<base64(0x01 || public key)>` (Go's note.NewVerifier format).

        The key ID is recomputed and must match: a vkey pasted with the wrong name is caught here rather
        than as a baffling "no known signature" later.
        """
        if not isinstance(vkey, str):
            raise CheckpointError("vkey must be a string")
        parts = vkey.split("+", 2)  # base64 may itself contain '+', so only the first two are separators
        if len(parts) != 3:
            raise CheckpointError("malformed vkey: expected <name>+<8 hex digit key ID>+<base64 key>")
        name, id_hex, key_b64 = parts
        try:
            check_key_name(name)
        except CheckpointError as exc:
            raise CheckpointError(f"malformed vkey: {exc}") from None
        if not _KEY_ID_HEX.fullmatch(id_hex):
            raise CheckpointError(f"malformed vkey: key ID {id_hex!r} is not 8 hex digits")
        try:
            key = _b64decode_strict(key_b64, "vkey key")
        except CheckpointError as exc:
            raise CheckpointError(f"malformed vkey: {exc}") from None
        if not key:
            raise CheckpointError("malformed vkey: empty key")
        if key[0] != ALG_ED25519:
            raise CheckpointError(f"unsupported vkey signature type 0x{key[0]:02x} (only Ed25519, 0x01)")
        if len(key) != 1 + 32:
            raise CheckpointError(f"malformed vkey: Ed25519 key is {len(key) - 1} bytes, expected 32")
        if bytes.fromhex(id_hex) != ed25519_key_id(name, key[1:]):
            raise CheckpointError(f"vkey key ID {id_hex} does not match its name and key")
        try:
            public_key = Ed25519PublicKey.from_public_bytes(key[1:])
        except ValueError:
            raise CheckpointError("malformed vkey: not an Ed25519 public key") from None
        return cls(name, public_key)

    def vkey(self) -> str:
        return _format_vkey(self.name, self.key_id, self._raw)

    def verify(self, body: bytes, signature: bytes) -> bool:
        if len(signature) != ED25519_SIGNATURE_SIZE:
            return False
        try:
            self._public_key.verify(signature, body)
        except InvalidSignature:
            return False
        return True

    def __repr__(self) -> str:
        return f"NoteVerifier({self.vkey()!r})"


def _format_vkey(name: str, key_id: bytes, raw_public: bytes) -> str:
    return f"{name}+{key_id.hex()}+{base64.b64encode(bytes([ALG_ED25519]) + raw_public).decode('ascii')}"


class NoteSigner:
    """An Ed25519 key that signs notes under `name` (for the ledger, the checkpoint origin)."""

    __slots__ = ("name", "key_id", "_private_key", "_raw_public")

    def __init__(self, name: str, key: Ed25519PrivateKey) -> None:
        self.name = check_key_name(name)
        self._private_key = key
        self._raw_public = _raw_public(key.public_key())
        self.key_id = ed25519_key_id(name, self._raw_public)

    @classmethod
    def from_skey(cls, skey: str) -> NoteSigner:
        """Parse Go's `PRIVATE+KEY+<name>+<hex key ID>+<base64(0x01 || seed)>`, for keys made by Go tooling."""
        if not isinstance(skey, str):
            raise CheckpointError("skey must be a string")
        parts = skey.split("+", 4)
        if len(parts) != 5 or parts[0] != "PRIVATE" or parts[1] != "KEY":
            raise CheckpointError("malformed skey: expected PRIVATE+KEY+<name>+<key ID>+<base64 key>")
        _, _, name, id_hex, key_b64 = parts
        check_key_name(name)
        if not _KEY_ID_HEX.fullmatch(id_hex):
            raise CheckpointError(f"malformed skey: key ID {id_hex!r} is not 8 hex digits")
        key = _b64decode_strict(key_b64, "skey key")
        if not key or key[0] != ALG_ED25519 or len(key) != 33:
            raise CheckpointError("malformed skey: expected 0x01 followed by a 32-byte Ed25519 seed")
        signer = cls(name, Ed25519PrivateKey.from_private_bytes(key[1:]))
        if signer.key_id != bytes.fromhex(id_hex):
            raise CheckpointError(f"skey key ID {id_hex} does not match its name and key")
        return signer

    def vkey(self) -> str:
        """The public half in C2SP/Go vkey form, to hand to verifiers and witnesses."""
        return _format_vkey(self.name, self.key_id, self._raw_public)

    def verifier(self) -> NoteVerifier:
        return NoteVerifier(self.name, self._private_key.public_key())

    def signature_line(self, body: bytes) -> str:
        """One "— <name> <base64(key ID || signature)>" line; signs the text including its final newline."""
        text = _check_body(body)
        signature = self._private_key.sign(text.encode("utf-8"))
        return f"{_SIG_PREFIX}{self.name} {base64.b64encode(self.key_id + signature).decode('ascii')}\n"

    def sign(self, body: bytes) -> bytes:
        """Return the whole note: body, blank line, one signature line."""
        line = self.signature_line(body)  # validates body first, so bad input fails with CheckpointError
        return bytes(body) + b"\n" + line.encode("utf-8")

    def add_signature(self, note: bytes) -> bytes:
        """Co-sign an existing note: keep its signatures, replace any earlier one by this same key.

        This does not verify the existing signatures: a witness must open the note with the log's key (and
        check consistency) before co-signing; that policy belongs to the caller.
        """
        body, sigs = _split_note(note)
        kept = [s.line + "\n" for s in sigs if (s.name, s.key_id) != (self.name, self.key_id)]
        return body + b"\n" + "".join(kept).encode("utf-8") + self.signature_line(body).encode("utf-8")

    def __repr__(self) -> str:
        return f"NoteSigner({self.vkey()!r})"


class AnyVerifier(Protocol):
    """What `open_note` needs of a key: Ed25519 (`NoteVerifier`) or ML-DSA-44 (`mldsa_note.MLDSANoteVerifier`)."""

    name: str
    key_id: bytes

    def verify(self, body: bytes, signature: bytes) -> bool: ...

    def vkey(self) -> str: ...


def _verifier_map(verifiers: Iterable[AnyVerifier]) -> dict[tuple[str, bytes], AnyVerifier]:
    known: dict[tuple[str, bytes], AnyVerifier] = {}
    for v in verifiers:
        if not all(hasattr(v, a) for a in ("name", "key_id", "verify", "vkey")):
            raise TypeError(f"expected a note verifier, got {type(v).__name__}")
        previous = known.setdefault((v.name, v.key_id), v)
        if previous is not v and previous.vkey() != v.vkey():
            # Same (name, ID) for two different keys: the trust list itself is compromised or wrong.
            raise CheckpointError(f"ambiguous verifiers: two different keys for {v.name}+{v.key_id.hex()}")
    return known


def open_note(
    note: bytes, verifiers: Sequence[AnyVerifier], *, require: Collection[str] = ()
) -> tuple[bytes, list[str]]:
    """Verify a signed note; return its text and the names of the known keys whose signatures verified.

    Follows c2sp.org/signed-note: signatures from unknown (name, key ID) pairs are ignored (so witnesses
    and key rotation do not break old verifiers); a signature from a known key that fails is an error
    (stricter than Go, every such line is checked, not just the first); at least one known key must have
    signed; and every name in `require` must be among those that did.
    """
    body, sigs = _split_note(note)
    known = _verifier_map(verifiers)
    verified: list[str] = []
    for s in sigs:
        v = known.get((s.name, s.key_id))
        if v is None:
            continue
        if not v.verify(body, s.signature):
            raise CheckpointError(f"invalid signature for key {s.name}+{s.key_id.hex()}")
        if s.name not in verified:
            verified.append(s.name)
    if not verified:
        raise CheckpointError("note has no valid signature from a known key")
    missing = [name for name in require if name not in verified]
    if missing:
        raise CheckpointError(f"note lacks required signature(s) from: {', '.join(missing)}")
    return body, verified


def sign_checkpoint(cp: Checkpoint, signer: NoteSigner) -> bytes:
    return signer.sign(cp.body())


def verify_checkpoint(note: bytes, verifier: NoteVerifier, *, origin: str | None = None) -> Checkpoint:
    """Open a checkpoint signed by `verifier` (other signatures, e.g. witnesses', are ignored).

    Pass `origin` to pin the log identity: the spec only says the key name SHOULD match the origin, so a
    key could in principle sign checkpoints for several logs, and the caller must say which one it wants.
    """
    body, _ = open_note(note, [verifier], require=[verifier.name])
    cp = Checkpoint.parse(body)
    if origin is not None and cp.origin != origin:
        raise CheckpointError(f"checkpoint origin {cp.origin!r} is not the expected {origin!r}")
    return cp
