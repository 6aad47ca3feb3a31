"""age v1 envelopes (X25519, post-quantum mlkem768x25519 and scrypt recipients), built from pyca/cryptography.

Why this module exists instead of shelling out to ``age`` or binding rage: the gateway encrypts
one upload to N recipients *while it streams in*, so it needs a push-based encryptor that it can
feed chunk by chunk, with bounded memory per recipient, and with output that any age v1 tool
(age, rage/pyrage, typage) decrypts. The format follows the C2SP age specification
(https://age-encryption.org/v1) and, where the specification leaves room, mirrors the behaviour
of the reference Go implementation (filippo.io/age) so the two accept and reject the same files.

Scope: the binary (not ASCII-armored) format; X25519, MLKEM768-X25519 (the spec's hybrid
post-quantum type: ``age1pq1…`` / ``AGE-SECRET-KEY-PQ-1…``, HPKE from pyca/cryptography) and scrypt
(passphrase) recipients and identities, behind the two-method ``Recipient``/``Identity`` protocols
(age's ``Recipient.Wrap`` and ``Identity.Unwrap``), so other stanza types plug in beside them without touching
``Encryptor``. Stanzas of other types (plugins, grease) are parsed and skipped, exactly like
age does for identities that do not recognise them. ``rewrap_header``/``rewrap_stream`` give a
file new recipients by rewriting only its header: the payload bytes are copied unchanged.

Error messages describe *what* was malformed; they never quote the input, because the input
may be (or contain) a secret key, and never include plaintext.
"""

from __future__ import annotations

import base64
import binascii
import errno
import hashlib
import hmac
import io
import os
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import BinaryIO, Final, Protocol, runtime_checkable

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, hpke
from cryptography.hazmat.primitives.asymmetric.mlkem import MLKEM768PrivateKey, MLKEM768PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

__all__ = [
    "AGE_IDENTITY_HRP",
    "AGE_RECIPIENT_HRP",
    "AGE_VERSION_LINE",
    "CHUNK_SIZE",
    "ENCRYPTED_CHUNK_SIZE",
    "FILE_KEY_SIZE",
    "HEADER_LABEL",
    "MLKEM768X25519_LABEL",
    "MLKEM768X25519_STANZA_TYPE",
    "PQ_IDENTITY_HRP",
    "PQ_RECIPIENT_HRP",
    "PAYLOAD_LABEL",
    "PAYLOAD_NONCE_SIZE",
    "TAG_SIZE",
    "X25519_LABEL",
    "X25519_STANZA_TYPE",
    "DecryptionError",
    "SCRYPT_LABEL",
    "SCRYPT_SALT_SIZE",
    "SCRYPT_STANZA_TYPE",
    "SCRYPT_WORK_FACTOR",
    "Encryptor",
    "EnvelopeError",
    "AgeIdentity",
    "AgeRecipient",
    "Identity",
    "MLKEM768X25519Identity",
    "MLKEM768X25519Recipient",
    "Recipient",
    "ScryptIdentity",
    "ScryptRecipient",
    "InvalidIdentity",
    "InvalidRecipient",
    "Stanza",
    "X25519Identity",
    "X25519Recipient",
    "decrypt",
    "decrypt_stream",
    "encrypt",
    "encrypt_stream",
    "is_post_quantum",
    "parse_identities",
    "parse_identity",
    "parse_recipient",
    "read_header",
    "rewrap_header",
    "rewrap_stream",
    "unwrap_header",
]

# --------------------------------------------------------------------------------------------
# Constants from the specification. Labels are bytes because that is what goes on the wire and
# into HKDF; the Bech32 human-readable parts are text because that is how keys are exchanged.
# --------------------------------------------------------------------------------------------

AGE_RECIPIENT_HRP: Final = "age"
AGE_IDENTITY_HRP: Final = "AGE-SECRET-KEY-"

AGE_VERSION_LINE: Final = b"age-encryption.org/v1"
#: The hybrid post-quantum type (C2SP age, "The MLKEM768-X25519 (i.e. X-Wing) hybrid post-quantum recipient type").
PQ_RECIPIENT_HRP: Final = "age1pq"
PQ_IDENTITY_HRP: Final = "AGE-SECRET-KEY-PQ-"
MLKEM768X25519_STANZA_TYPE: Final = "mlkem768x25519"
#: HPKE ``info`` of the stanza's SealBase (the spec's label; ``aad`` is empty).
MLKEM768X25519_LABEL: Final = b"age-encryption.org/mlkem768x25519"
X25519_LABEL: Final = b"age-encryption.org/v1/X25519"
X25519_STANZA_TYPE: Final = "X25519"
SCRYPT_LABEL: Final = b"age-encryption.org/v1/scrypt"
SCRYPT_STANZA_TYPE: Final = "scrypt"
#: log2 of scrypt's N for new passphrase files: age's default (about 1 s and 256 MiB here).
SCRYPT_WORK_FACTOR: Final = 18
#: The highest work factor an identity accepts (age's default maximum): bounds what a hostile file can cost.
SCRYPT_MAX_WORK_FACTOR: Final = 22
SCRYPT_SALT_SIZE: Final = 16
HEADER_LABEL: Final = b"header"
PAYLOAD_LABEL: Final = b"payload"

FILE_KEY_SIZE: Final = 16
PAYLOAD_NONCE_SIZE: Final = 16
TAG_SIZE: Final = 16
CHUNK_SIZE: Final = 64 * 1024
ENCRYPTED_CHUNK_SIZE: Final = CHUNK_SIZE + TAG_SIZE
STANZA_COLUMNS: Final = 64  # base64 characters per full stanza body line
STANZA_LINE_BYTES: Final = 48  # decoded bytes per full stanza body line
HEADER_MAC_SIZE: Final = 32

# Not from the spec (which sets no limit): the header is read into memory, so cap it to keep
# decrypt_stream's memory bounded on hostile input. ~8000 X25519 stanzas fit.
MAX_HEADER_SIZE: Final = 1024 * 1024

_X25519_KEY_SIZE: Final = 32
_PQ_SEED_SIZE: Final = 32  # the identity: a seed, expanded per draft-ietf-hpke-pq (SHAKE256 to 96 bytes)
_MLKEM768_PUBLIC_SIZE: Final = 1184
_PQ_PUBLIC_SIZE: Final = _MLKEM768_PUBLIC_SIZE + _X25519_KEY_SIZE  # ML-KEM-768 ek || X25519 public key
_PQ_ENC_SIZE: Final = 1088 + _X25519_KEY_SIZE  # ML-KEM-768 ciphertext || X25519 ephemeral share
#: KEM MLKEM768-X25519, KDF HKDF-SHA256, AEAD ChaCha20Poly1305: the suite the spec names for the stanza.
_PQ_SUITE: Final = hpke.Suite(hpke.KEM.MLKEM768_X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.CHACHA20_POLY1305)
_ZERO_NONCE: Final = bytes(12)
_STREAM_COUNTER_LIMIT: Final = 1 << 88  # 11-byte big-endian counter
_LAST_FLAG: Final = b"\x01"
_NOT_LAST_FLAG: Final = b"\x00"
_ARMOR_BEGIN: Final = b"-----BEGIN AGE ENCRYPTED FILE-----"
_VCHAR_ARG = re.compile(r"[\x21-\x7e]+")  # spec: arguments are non-empty VCHAR strings
_B64_ALPHABET = re.compile(rb"[A-Za-z0-9+/]*")


# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------


class EnvelopeError(ValueError):
    """Base of every data error here, so callers can catch one type at a trust boundary."""


class InvalidRecipient(EnvelopeError):
    """A recipient string or key cannot be used to encrypt to."""


class InvalidIdentity(EnvelopeError):
    """A secret key string or identity file cannot be used to decrypt with."""


class DecryptionError(EnvelopeError):
    """The file cannot be decrypted: not for us, malformed, tampered with, truncated or extended."""


# --------------------------------------------------------------------------------------------
# Bech32 (BIP 173, *not* Bech32m). age uses it without BIP 173's 90-character limit, and keys
# are either all lowercase (recipients) or all uppercase (identities).
# --------------------------------------------------------------------------------------------

_BECH32_CHARSET: Final = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
_BECH32_VALUES: Final = {c: i for i, c in enumerate(_BECH32_CHARSET)}
_BECH32_GENERATOR: Final = (0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)
_BECH32_CONST: Final = 1  # Bech32m would be 0x2BC830A3


class _Bech32Error(ValueError):
    """Internal; re-raised as InvalidRecipient/InvalidIdentity with the right context."""


def _bech32_polymod(values: Iterable[int]) -> int:
    chk = 1
    for value in values:
        top = chk >> 25
        chk = ((chk & 0x1FFFFFF) << 5) ^ value
        for i, gen in enumerate(_BECH32_GENERATOR):
            if (top >> i) & 1:
                chk ^= gen
    return chk


def _bech32_hrp_expand(hrp: str) -> list[int]:
    return [ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp]


def _convert_bits(data: Iterable[int], from_bits: int, to_bits: int, pad: bool) -> list[int]:
    acc = 0
    bits = 0
    out: list[int] = []
    max_value = (1 << to_bits) - 1
    for value in data:
        acc = (acc << from_bits) | value
        bits += from_bits
        while bits >= to_bits:
            bits -= to_bits
            out.append((acc >> bits) & max_value)
    if pad:
        if bits:
            out.append((acc << (to_bits - bits)) & max_value)
    elif bits >= from_bits:
        raise _Bech32Error("invalid bech32 padding (too many leftover bits)")
    elif (acc << (to_bits - bits)) & max_value:
        raise _Bech32Error("non-zero bech32 padding")
    return out


def _bech32_encode(hrp: str, data: bytes) -> str:
    """Case follows the HRP, as in age: uppercase HRP gives an all-uppercase string."""
    if not hrp or any(not 33 <= ord(c) <= 126 for c in hrp):
        raise _Bech32Error("invalid human-readable part")
    lower = hrp.lower()
    if hrp != lower and hrp != hrp.upper():
        raise _Bech32Error("mixed-case human-readable part")
    values = _convert_bits(data, 8, 5, pad=True)
    polymod = _bech32_polymod(_bech32_hrp_expand(lower) + values + [0] * 6) ^ _BECH32_CONST
    checksum = [(polymod >> 5 * (5 - i)) & 31 for i in range(6)]
    encoded = lower + "1" + "".join(_BECH32_CHARSET[v] for v in values + checksum)
    return encoded if hrp == lower else encoded.upper()


def _bech32_decode_5bit(s: str) -> tuple[str, list[int]]:
    """Returns the HRP in its original case and the 5-bit data groups without the checksum."""
    for i, c in enumerate(s):
        if not 33 <= ord(c) <= 126:
            raise _Bech32Error(f"invalid character at position {i}")
    lower = s.lower()
    if s != lower and s != s.upper():
        raise _Bech32Error("mixed case")
    pos = lower.rfind("1")
    if pos < 1:
        raise _Bech32Error("missing separator '1' or empty human-readable part")
    if len(s) - pos - 1 < 6:
        raise _Bech32Error("too short: data part is shorter than the 6-character checksum")
    values: list[int] = []
    for i in range(pos + 1, len(lower)):
        value = _BECH32_VALUES.get(lower[i])
        if value is None:
            raise _Bech32Error(f"invalid character at position {i} (not in the bech32 alphabet)")
        values.append(value)
    if _bech32_polymod(_bech32_hrp_expand(lower[:pos]) + values) != _BECH32_CONST:
        raise _Bech32Error("invalid bech32 checksum")
    return s[:pos], values[:-6]


def _bech32_decode(s: str) -> tuple[str, bytes]:
    hrp, values = _bech32_decode_5bit(s)
    return hrp, bytes(_convert_bits(values, 5, 8, pad=False))


# --------------------------------------------------------------------------------------------
# Encoding helpers
# --------------------------------------------------------------------------------------------


def _b64encode(data: bytes) -> str:
    return base64.b64encode(data).rstrip(b"=").decode("ascii")


def _b64decode(text: str | bytes) -> bytes:
    """Strict unpadded standard base64, as the spec requires: no padding, no whitespace, and
    canonical (zero) trailing bits, so a header has exactly one valid encoding and the MAC over
    its bytes cannot be sidestepped by re-encoding."""
    raw = text.encode("ascii", "replace") if isinstance(text, str) else bytes(text)
    if not _B64_ALPHABET.fullmatch(raw) or len(raw) % 4 == 1:
        raise ValueError("not unpadded standard base64")
    try:
        decoded = base64.b64decode(raw + b"=" * (-len(raw) % 4), validate=True)
    except binascii.Error as exc:  # pragma: no cover - excluded by the checks above
        raise ValueError("not unpadded standard base64") from exc
    if base64.b64encode(decoded).rstrip(b"=") != raw:
        raise ValueError("non-canonical base64 (non-zero trailing bits)")
    return decoded


def _hkdf(ikm: bytes, salt: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=info).derive(ikm)


def _header_mac(file_key: bytes, mac_input: bytes) -> bytes:
    return hmac.new(_hkdf(file_key, b"", HEADER_LABEL), mac_input, "sha256").digest()


def _stream_nonce(counter: int, last: bool) -> bytes:
    if counter >= _STREAM_COUNTER_LIMIT:
        raise EnvelopeError("payload too large: STREAM chunk counter exhausted")
    return counter.to_bytes(11, "big") + (_LAST_FLAG if last else _NOT_LAST_FLAG)


def _is_low_order(public_key: X25519PublicKey) -> bool:
    """Low-order points give an all-zero shared secret for *every* private key (the scalar is a
    multiple of the cofactor), so one throwaway exchange tells whether a public key is one."""
    try:
        return X25519PrivateKey.generate().exchange(public_key) == bytes(32)
    except ValueError:  # OpenSSL refuses to return the all-zero secret
        return True


# --------------------------------------------------------------------------------------------
# Stanzas and keys
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Stanza:
    """One recipient stanza: ``-> type args...`` followed by the base64 body lines."""

    type: str
    args: tuple[str, ...]
    body: bytes


@runtime_checkable
class Recipient(Protocol):
    """Anything a file key can be wrapped to: age's ``Recipient`` interface (``Wrap``), as in x25519.go.

    ``wrap`` returns the stanzas to put in the header. A recipient whose stanza must be the only one in
    the header (scrypt, per the spec) says so with ``alone = True``; ``Encryptor`` enforces it.
    """

    def wrap(self, file_key: bytes) -> list[Stanza]: ...


@runtime_checkable
class Identity(Protocol):
    """Anything that can recover a file key from a header: age's ``Identity`` interface (``Unwrap``).

    ``unwrap`` returns the file key, or None when no stanza is for this identity; it raises
    DecryptionError for a stanza of its own type that is malformed (age rejects such files).
    """

    def unwrap(self, stanzas: Sequence[Stanza]) -> bytes | None: ...


class X25519Recipient:
    """Public half of an age X25519 key; mirrors ``X25519Recipient`` in age's x25519.go."""

    __slots__ = ("_public_bytes", "_public_key")

    def __init__(self, public_key: bytes) -> None:
        """Take the raw 32-byte key; low-order points are refused up front because every file
        encrypted to them would be decryptable by anyone (age refuses them at wrap time)."""
        if len(public_key) != _X25519_KEY_SIZE:
            raise InvalidRecipient(f"malformed recipient: wrong key length {len(public_key)} bytes (expected 32)")
        key = X25519PublicKey.from_public_bytes(bytes(public_key))
        if _is_low_order(key):
            raise InvalidRecipient("malformed recipient: low-order X25519 point")
        self._public_bytes = bytes(public_key)
        self._public_key = key

    @classmethod
    def _from_identity(cls, public_key: bytes) -> X25519Recipient:
        """Skip the low-order probe: a key derived from a clamped scalar never is one."""
        self = cls.__new__(cls)
        self._public_bytes = public_key
        self._public_key = X25519PublicKey.from_public_bytes(public_key)
        return self

    @classmethod
    def parse(cls, s: str) -> X25519Recipient:
        if not isinstance(s, str):
            raise InvalidRecipient("malformed recipient: expected a string")
        if s.upper().startswith(AGE_IDENTITY_HRP):
            # Someone pasted their secret key where a public one belongs: say so, quote nothing.
            raise InvalidRecipient(
                "malformed recipient: this is a secret key (AGE-SECRET-KEY-...), not a public "
                "recipient (age1...); do not share it"
            )
        if s != s.lower() and s == s.upper():
            raise InvalidRecipient("malformed recipient: must be lowercase (age1...), got uppercase")
        try:
            hrp, data = _bech32_decode(s)
        except _Bech32Error as exc:
            raise InvalidRecipient(f"malformed recipient: {exc}") from None
        if hrp != AGE_RECIPIENT_HRP:
            raise InvalidRecipient("malformed recipient: wrong human-readable prefix (expected 'age', as in age1...)")
        return cls(data)

    def wrap(self, file_key: bytes) -> list[Stanza]:
        if len(file_key) != FILE_KEY_SIZE:
            raise ValueError(f"file key must be {FILE_KEY_SIZE} bytes")
        ephemeral = X25519PrivateKey.generate()
        share = ephemeral.public_key().public_bytes_raw()
        try:
            shared = ephemeral.exchange(self._public_key)
        except ValueError:
            shared = bytes(32)
        if hmac.compare_digest(shared, bytes(32)):  # spec: MUST reject the all-zero secret
            raise InvalidRecipient("malformed recipient: low-order X25519 point")
        wrap_key = _hkdf(shared, share + self._public_bytes, X25519_LABEL)
        body = ChaCha20Poly1305(wrap_key).encrypt(_ZERO_NONCE, file_key, None)
        return [Stanza(X25519_STANZA_TYPE, (_b64encode(share),), body)]

    @property
    def public_bytes(self) -> bytes:
        return self._public_bytes

    def __str__(self) -> str:
        return _bech32_encode(AGE_RECIPIENT_HRP, self._public_bytes)

    def __repr__(self) -> str:
        return f"X25519Recipient({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, X25519Recipient):
            return NotImplemented
        return self._public_bytes == other._public_bytes

    def __hash__(self) -> int:
        return hash(self._public_bytes)


class X25519Identity:
    """Secret half of an age X25519 key; mirrors ``X25519Identity`` in age's x25519.go.

    ``repr()`` shows only the public recipient, so identities can appear in logs and tracebacks
    without leaking; ``str()`` is the secret ``AGE-SECRET-KEY-...`` encoding.
    """

    __slots__ = ("_private_key", "_public_bytes", "_secret")

    def __init__(self, secret_key: bytes) -> None:
        if len(secret_key) != _X25519_KEY_SIZE:
            raise InvalidIdentity(f"malformed secret key: wrong key length {len(secret_key)} bytes (expected 32)")
        self._secret = bytes(secret_key)
        self._private_key = X25519PrivateKey.from_private_bytes(self._secret)
        self._public_bytes = self._private_key.public_key().public_bytes_raw()

    @classmethod
    def generate(cls) -> X25519Identity:
        return cls(X25519PrivateKey.generate().private_bytes_raw())

    @classmethod
    def parse(cls, s: str) -> X25519Identity:
        if not isinstance(s, str):
            raise InvalidIdentity("malformed secret key: expected a string")
        if s != s.upper() and s == s.lower():
            if s.startswith(AGE_RECIPIENT_HRP + "1"):
                raise InvalidIdentity("malformed secret key: this is a public recipient (age1...), not a secret key")
            raise InvalidIdentity("malformed secret key: must be uppercase (AGE-SECRET-KEY-...)")
        try:
            hrp, data = _bech32_decode(s)
        except _Bech32Error as exc:
            raise InvalidIdentity(f"malformed secret key: {exc}") from None
        if hrp != AGE_IDENTITY_HRP:
            raise InvalidIdentity("malformed secret key: wrong human-readable prefix (expected 'AGE-SECRET-KEY-')")
        return cls(data)

    def recipient(self) -> X25519Recipient:
        return X25519Recipient._from_identity(self._public_bytes)

    def unwrap(self, stanzas: Sequence[Stanza]) -> bytes | None:
        """Like age's multiUnwrap: stanzas of other types and X25519 stanzas that fail to
        authenticate are not ours and are skipped; an X25519 stanza that is *malformed* aborts,
        because a well-formed file never contains one and age rejects the file too."""
        for stanza in stanzas:
            if stanza.type != X25519_STANZA_TYPE:
                continue
            if len(stanza.args) != 1:
                raise DecryptionError(f"malformed X25519 stanza: expected 1 argument, got {len(stanza.args)}")
            try:
                share = _b64decode(stanza.args[0])
            except ValueError as exc:
                raise DecryptionError(f"malformed X25519 stanza: ephemeral share: {exc}") from None
            if len(share) != _X25519_KEY_SIZE:
                raise DecryptionError(f"malformed X25519 stanza: ephemeral share is {len(share)} bytes (expected 32)")
            try:
                shared = self._private_key.exchange(X25519PublicKey.from_public_bytes(share))
            except ValueError:
                shared = bytes(32)
            if hmac.compare_digest(shared, bytes(32)):
                raise DecryptionError("malformed X25519 stanza: low-order ephemeral share")
            if len(stanza.body) != FILE_KEY_SIZE + TAG_SIZE:
                raise DecryptionError(
                    f"malformed X25519 stanza: wrapped file key is {len(stanza.body)} bytes "
                    f"(expected {FILE_KEY_SIZE + TAG_SIZE})"
                )
            wrap_key = _hkdf(shared, share + self._public_bytes, X25519_LABEL)
            try:
                return ChaCha20Poly1305(wrap_key).decrypt(_ZERO_NONCE, stanza.body, None)
            except InvalidTag:
                continue
        return None

    def __str__(self) -> str:
        return _bech32_encode(AGE_IDENTITY_HRP, self._secret)

    def __repr__(self) -> str:
        return f"X25519Identity(recipient={str(self.recipient())!r})"


def _pq_keys(seed: bytes) -> tuple[MLKEM768PrivateKey, X25519PrivateKey]:
    """The two private keys behind an ``AGE-SECRET-KEY-PQ-`` seed: draft-ietf-hpke-pq's MLKEM768-X25519
    expands the 32-byte seed with SHAKE256 to 96 bytes, the first 64 the ML-KEM-768 seed (d || z), the
    last 32 the X25519 scalar. pyca/cryptography takes the two halves, not the seed, so we expand it here;
    the spec's example identity and recipient pin this (tests/test_envelope_pq.py)."""
    expanded = hashlib.shake_256(seed).digest(96)
    return MLKEM768PrivateKey.from_seed_bytes(expanded[:64]), X25519PrivateKey.from_private_bytes(expanded[64:])


class MLKEM768X25519Recipient:
    """Public half of an age hybrid post-quantum key (``age1pq1…``, 1216 bytes: ML-KEM-768 || X25519).

    The file key is sealed with HPKE SealBase (KEM MLKEM768-X25519, HKDF-SHA256, ChaCha20Poly1305,
    ``info = "age-encryption.org/mlkem768x25519"``, empty aad); the stanza is
    ``-> mlkem768x25519 <base64 enc>`` with the 32-byte HPKE ciphertext as its body. Opening it needs
    breaking *both* ML-KEM-768 and X25519, so a file recorded today stays closed to a future quantum computer.
    """

    __slots__ = ("_public_bytes", "_public_key")
    post_quantum: Final = True

    def __init__(self, public_key: bytes) -> None:
        """Take the raw 1216 bytes; the ML-KEM half is checked by pyca/cryptography (FIPS 203 modulus check)."""
        if len(public_key) != _PQ_PUBLIC_SIZE:
            raise InvalidRecipient(
                f"malformed recipient: wrong key length {len(public_key)} bytes (expected {_PQ_PUBLIC_SIZE})"
            )
        data = bytes(public_key)
        try:
            mlkem = MLKEM768PublicKey.from_public_bytes(data[:_MLKEM768_PUBLIC_SIZE])
        except ValueError:
            raise InvalidRecipient("malformed recipient: invalid ML-KEM-768 public key") from None
        classic = X25519PublicKey.from_public_bytes(data[_MLKEM768_PUBLIC_SIZE:])
        self._public_bytes = data
        self._public_key = hpke.MLKEM768X25519PublicKey(mlkem, classic)

    @classmethod
    def parse(cls, s: str) -> MLKEM768X25519Recipient:
        if not isinstance(s, str):
            raise InvalidRecipient("malformed recipient: expected a string")
        if s.upper().startswith(AGE_IDENTITY_HRP):
            raise InvalidRecipient(
                "malformed recipient: this is a secret key (AGE-SECRET-KEY-PQ-...), not a public "
                "recipient (age1pq1...); do not share it"
            )
        if s != s.lower():
            raise InvalidRecipient("malformed recipient: must be lowercase (age1pq1...)")
        try:
            hrp, data = _bech32_decode(s)
        except _Bech32Error as exc:
            raise InvalidRecipient(f"malformed recipient: {exc}") from None
        if hrp != PQ_RECIPIENT_HRP:
            raise InvalidRecipient(
                "malformed recipient: wrong human-readable prefix (expected 'age1pq', as in age1pq1...)"
            )
        return cls(data)

    def wrap(self, file_key: bytes) -> list[Stanza]:
        if len(file_key) != FILE_KEY_SIZE:
            raise ValueError(f"file key must be {FILE_KEY_SIZE} bytes")
        sealed = _PQ_SUITE.encrypt(file_key, self._public_key, info=MLKEM768X25519_LABEL)
        enc, body = sealed[:_PQ_ENC_SIZE], sealed[_PQ_ENC_SIZE:]
        return [Stanza(MLKEM768X25519_STANZA_TYPE, (_b64encode(enc),), body)]

    @property
    def public_bytes(self) -> bytes:
        return self._public_bytes

    def __str__(self) -> str:
        return _bech32_encode(PQ_RECIPIENT_HRP, self._public_bytes)

    def __repr__(self) -> str:
        return f"MLKEM768X25519Recipient({str(self)[:24]!r}...)"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, MLKEM768X25519Recipient):
            return NotImplemented
        return self._public_bytes == other._public_bytes

    def __hash__(self) -> int:
        return hash(self._public_bytes)


class MLKEM768X25519Identity:
    """Secret half of an age hybrid post-quantum key: a 32-byte seed, ``AGE-SECRET-KEY-PQ-1…``.

    ``repr()`` shows only the start of the public recipient; ``str()`` is the secret encoding.
    """

    __slots__ = ("_private_key", "_public_bytes", "_secret")

    def __init__(self, seed: bytes) -> None:
        if len(seed) != _PQ_SEED_SIZE:
            raise InvalidIdentity(f"malformed secret key: wrong key length {len(seed)} bytes (expected 32)")
        self._secret = bytes(seed)
        mlkem, classic = _pq_keys(self._secret)
        self._private_key = hpke.MLKEM768X25519PrivateKey(mlkem, classic)
        self._public_bytes = mlkem.public_key().public_bytes_raw() + classic.public_key().public_bytes_raw()

    @classmethod
    def generate(cls) -> MLKEM768X25519Identity:
        return cls(os.urandom(_PQ_SEED_SIZE))

    @classmethod
    def parse(cls, s: str) -> MLKEM768X25519Identity:
        if not isinstance(s, str):
            raise InvalidIdentity("malformed secret key: expected a string")
        if s != s.upper():
            if s.lower().startswith(PQ_RECIPIENT_HRP + "1"):
                raise InvalidIdentity("malformed secret key: this is a public recipient (age1pq1...), not a secret key")
            raise InvalidIdentity("malformed secret key: must be uppercase (AGE-SECRET-KEY-PQ-...)")
        try:
            hrp, data = _bech32_decode(s)
        except _Bech32Error as exc:
            raise InvalidIdentity(f"malformed secret key: {exc}") from None
        if hrp != PQ_IDENTITY_HRP:
            raise InvalidIdentity("malformed secret key: wrong human-readable prefix (expected 'AGE-SECRET-KEY-PQ-')")
        return cls(data)

    def recipient(self) -> MLKEM768X25519Recipient:
        return MLKEM768X25519Recipient(self._public_bytes)

    def unwrap(self, stanzas: Sequence[Stanza]) -> bytes | None:
        """The spec's rules: ignore other types; reject a stanza of ours with other than two words, an
        enc that is not canonical base64 of 1120 bytes, or a body that is not exactly 32 bytes (checked
        before decrypting: partitioning oracles); one that fails to open is someone else's."""
        for stanza in stanzas:
            if stanza.type != MLKEM768X25519_STANZA_TYPE:
                continue
            if len(stanza.args) != 1:
                raise DecryptionError(f"malformed mlkem768x25519 stanza: expected 1 argument, got {len(stanza.args)}")
            try:
                enc = _b64decode(stanza.args[0])
            except ValueError as exc:
                raise DecryptionError(f"malformed mlkem768x25519 stanza: encapsulated key: {exc}") from None
            if len(enc) != _PQ_ENC_SIZE:
                raise DecryptionError(
                    f"malformed mlkem768x25519 stanza: encapsulated key is {len(enc)} bytes (expected {_PQ_ENC_SIZE})"
                )
            if len(stanza.body) != FILE_KEY_SIZE + TAG_SIZE:
                raise DecryptionError(
                    f"malformed mlkem768x25519 stanza: wrapped file key is {len(stanza.body)} bytes "
                    f"(expected {FILE_KEY_SIZE + TAG_SIZE})"
                )
            if _is_low_order(X25519PublicKey.from_public_bytes(enc[-_X25519_KEY_SIZE:])):
                # The X25519 half would give the all-zero secret, which the KEM forbids; checked here
                # rather than relying on how the library reports it.
                raise DecryptionError("malformed mlkem768x25519 stanza: low-order X25519 share")
            try:
                return _PQ_SUITE.decrypt(enc + stanza.body, self._private_key, info=MLKEM768X25519_LABEL)
            except (InvalidTag, ValueError):
                continue
        return None

    def __str__(self) -> str:
        return _bech32_encode(PQ_IDENTITY_HRP, self._secret)

    def __repr__(self) -> str:
        return f"MLKEM768X25519Identity(recipient={str(self.recipient())[:24]!r}...)"


#: Every recipient type a person's key may be (scrypt is for held shares only, never a directory key).
AgeRecipient = X25519Recipient | MLKEM768X25519Recipient
AgeIdentity = X25519Identity | MLKEM768X25519Identity


def parse_recipient(s: str) -> AgeRecipient:
    """An ``age1…`` (X25519) or ``age1pq1…`` (hybrid post-quantum) recipient, by its prefix."""
    if isinstance(s, str) and s.lower().startswith(PQ_RECIPIENT_HRP + "1"):
        return MLKEM768X25519Recipient.parse(s)
    return X25519Recipient.parse(s)


def parse_identity(s: str) -> AgeIdentity:
    """An ``AGE-SECRET-KEY-1…`` or ``AGE-SECRET-KEY-PQ-1…`` identity, by its prefix."""
    if isinstance(s, str) and s.upper().startswith(PQ_IDENTITY_HRP + "1"):
        return MLKEM768X25519Identity.parse(s)
    return X25519Identity.parse(s)


def is_post_quantum(recipient: Recipient) -> bool:
    """Whether files wrapped to ``recipient`` stay closed to a future quantum computer."""
    return bool(getattr(recipient, "post_quantum", False))


def _scrypt_key(passphrase: bytes, salt: bytes, work_factor: int) -> bytes:
    # 128 * r * N bytes of memory (256 MiB at the default work factor 18); hashlib's default cap is 32 MiB.
    return hashlib.scrypt(
        passphrase,
        salt=SCRYPT_LABEL + salt,
        n=1 << work_factor,
        r=8,
        p=1,
        maxmem=129 * 8 * (1 << work_factor) + 1024 * 1024,
        dklen=32,
    )


def _passphrase_bytes(passphrase: str | bytes) -> bytes:
    data = passphrase.encode("utf-8") if isinstance(passphrase, str) else bytes(passphrase)
    if not data:
        raise InvalidRecipient("the passphrase is empty")
    return data


class ScryptRecipient:
    """A passphrase: age's ``ScryptRecipient`` (scrypt.go). Its stanza must be the only one in the header.

    ``-> scrypt <base64 16-byte salt> <log2 N>``; body = ChaCha20-Poly1305 of the file key under
    scrypt(passphrase, "age-encryption.org/v1/scrypt" || salt, N, r=8, p=1), zero nonce.
    """

    __slots__ = ("_passphrase", "work_factor")
    alone: Final = True

    def __init__(self, passphrase: str | bytes, work_factor: int = SCRYPT_WORK_FACTOR) -> None:
        if isinstance(work_factor, bool) or not isinstance(work_factor, int) or not 1 <= work_factor <= 30:
            raise InvalidRecipient("scrypt work factor must be a whole number from 1 to 30")
        self._passphrase = _passphrase_bytes(passphrase)
        self.work_factor = work_factor

    def wrap(self, file_key: bytes) -> list[Stanza]:
        if len(file_key) != FILE_KEY_SIZE:
            raise ValueError(f"file key must be {FILE_KEY_SIZE} bytes")
        salt = os.urandom(SCRYPT_SALT_SIZE)
        key = _scrypt_key(self._passphrase, salt, self.work_factor)
        body = ChaCha20Poly1305(key).encrypt(_ZERO_NONCE, file_key, None)
        return [Stanza(SCRYPT_STANZA_TYPE, (_b64encode(salt), str(self.work_factor)), body)]

    def __repr__(self) -> str:
        return f"ScryptRecipient(work_factor={self.work_factor})"


class ScryptIdentity:
    """Opens passphrase files: age's ``ScryptIdentity``. Refuses work factors above ``max_work_factor``
    (a hostile file could otherwise cost any amount of memory and time) and scrypt stanzas that are not
    alone in the header (the spec requires it, so nobody else can be given the same file key)."""

    __slots__ = ("_passphrase", "max_work_factor")

    def __init__(self, passphrase: str | bytes, max_work_factor: int = SCRYPT_MAX_WORK_FACTOR) -> None:
        try:
            self._passphrase = _passphrase_bytes(passphrase)
        except InvalidRecipient:
            raise InvalidIdentity("the passphrase is empty") from None
        self.max_work_factor = max_work_factor

    def unwrap(self, stanzas: Sequence[Stanza]) -> bytes | None:
        for stanza in stanzas:
            if stanza.type != SCRYPT_STANZA_TYPE:
                continue
            if len(stanzas) != 1:
                raise DecryptionError("malformed header: an scrypt stanza must be the only one")
            if len(stanza.args) != 2:
                raise DecryptionError(f"malformed scrypt stanza: expected 2 arguments, got {len(stanza.args)}")
            try:
                salt = _b64decode(stanza.args[0])
            except ValueError as exc:
                raise DecryptionError(f"malformed scrypt stanza: salt: {exc}") from None
            if len(salt) != SCRYPT_SALT_SIZE:
                raise DecryptionError(f"malformed scrypt stanza: salt is {len(salt)} bytes (expected 16)")
            factor = stanza.args[1]
            if not re.fullmatch(r"[1-9][0-9]?", factor):  # decimal, no leading zero, no sign
                raise DecryptionError("malformed scrypt stanza: invalid work factor")
            if int(factor) > self.max_work_factor:
                raise DecryptionError(
                    f"scrypt work factor {int(factor)} is above the maximum accepted ({self.max_work_factor})"
                )
            if len(stanza.body) != FILE_KEY_SIZE + TAG_SIZE:
                raise DecryptionError("malformed scrypt stanza: wrapped file key has the wrong size")
            key = _scrypt_key(self._passphrase, salt, int(factor))
            try:
                return ChaCha20Poly1305(key).decrypt(_ZERO_NONCE, stanza.body, None)
            except InvalidTag:
                raise DecryptionError("incorrect passphrase") from None
        return None

    def __repr__(self) -> str:
        return "ScryptIdentity(...)"


def parse_identities(text: str) -> list[AgeIdentity]:
    """Parse an identity file as written by ``age-keygen``.

    Like age's ParseIdentities, blank lines and ``#`` comments are skipped, CRLF is tolerated and
    an empty file is an error; additionally surrounding whitespace is ignored, since it cannot
    be part of a key. Errors name the line number only, never its content.
    """
    identities: list[AgeIdentity] = []
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.upper().startswith("AGE-PLUGIN-"):
            raise InvalidIdentity(f"line {number}: plugin identities are not supported")
        try:
            identities.append(parse_identity(line))
        except InvalidIdentity as exc:
            raise InvalidIdentity(f"line {number}: {exc}") from None
    if not identities:
        raise InvalidIdentity("no secret keys found")
    return identities


# --------------------------------------------------------------------------------------------
# Header
# --------------------------------------------------------------------------------------------


def _marshal_stanza(stanza: Stanza) -> bytes:
    words = (stanza.type, *stanza.args)
    for word in words:
        if not isinstance(word, str) or not _VCHAR_ARG.fullmatch(word):
            raise EnvelopeError("invalid stanza: type and arguments must be non-empty VCHAR strings")
    encoded = _b64encode(stanza.body)
    # Full 64-column lines, then a final line that is always shorter than 64 columns; when the
    # encoding is a multiple of 64 columns (or empty) that final line is empty.
    lines = [encoded[i : i + STANZA_COLUMNS] for i in range(0, len(encoded), STANZA_COLUMNS)]
    if len(encoded) % STANZA_COLUMNS == 0:
        lines.append("")
    return ("-> " + " ".join(words) + "\n" + "".join(line + "\n" for line in lines)).encode("ascii")


def _marshal_header_without_mac(stanzas: Iterable[Stanza]) -> bytes:
    parts = [AGE_VERSION_LINE, b"\n"]
    parts.extend(_marshal_stanza(stanza) for stanza in stanzas)
    parts.append(b"---")
    return b"".join(parts)


@dataclass(frozen=True)
class _Header:
    stanzas: list[Stanza]
    mac_input: bytes  # everything up to and including "---"
    mac: bytes
    raw: bytes  # the header exactly as read, MAC line included


def _parse_header(src: BinaryIO) -> _Header:
    """Read exactly the header (line by line, never past its end) so the payload can follow."""
    raw = bytearray()

    def read_line() -> bytes:
        budget = MAX_HEADER_SIZE - len(raw)
        line = src.readline(budget)
        if not line.endswith(b"\n"):
            if len(line) >= budget:
                raise DecryptionError(f"malformed header: longer than {MAX_HEADER_SIZE} bytes")
            raise DecryptionError("truncated header: unexpected end of file")
        raw.extend(line)
        return line[:-1]

    first = read_line()
    if first != AGE_VERSION_LINE:
        if first == AGE_VERSION_LINE + b"\r":
            raise DecryptionError("malformed header: lines end with CRLF (was the file transferred in text mode?)")
        if first.startswith(_ARMOR_BEGIN):
            raise DecryptionError("ASCII-armored age files are not supported; remove the armor first")
        if first.startswith(b"age-encryption.org/"):
            raise DecryptionError("unsupported age format version (only age-encryption.org/v1)")
        raise DecryptionError("not an age file: missing the 'age-encryption.org/v1' version line")

    stanzas: list[Stanza] = []
    while True:
        line = read_line()
        if line.startswith(b"---"):
            parts = line.split(b" ")
            if parts[0] != b"---" or len(parts) != 2:
                raise DecryptionError("malformed header MAC line: expected '--- <base64 MAC>'")
            try:
                mac = _b64decode(parts[1])
            except ValueError as exc:
                raise DecryptionError(f"malformed header MAC line: {exc}") from None
            if len(mac) != HEADER_MAC_SIZE:
                raise DecryptionError(
                    f"malformed header MAC line: MAC is {len(mac)} bytes (expected {HEADER_MAC_SIZE})"
                )
            mac_input = bytes(raw[: len(raw) - len(line) - 1 + 3])
            return _Header(stanzas, mac_input, mac, bytes(raw))
        if not line.startswith(b"->"):
            raise DecryptionError("malformed header: expected a stanza ('-> ') or the MAC line ('--- ')")
        parts = line.split(b" ")
        if parts[0] != b"->" or len(parts) < 2:
            raise DecryptionError("malformed stanza: expected '-> TYPE [ARGUMENTS...]'")
        words: list[str] = []
        for part in parts[1:]:
            word = part.decode("ascii", "replace")
            if not _VCHAR_ARG.fullmatch(word):
                raise DecryptionError("malformed stanza: empty argument or character outside printable ASCII")
            words.append(word)
        body = bytearray()
        while True:
            body_line = read_line()
            if len(body_line) > STANZA_COLUMNS:
                raise DecryptionError(f"malformed stanza body: line longer than {STANZA_COLUMNS} columns")
            try:
                body += _b64decode(body_line)
            except ValueError as exc:
                raise DecryptionError(f"malformed stanza body: {exc}") from None
            if len(body_line) < STANZA_COLUMNS:  # the short (possibly empty) final line
                break
        stanzas.append(Stanza(words[0], tuple(words[1:]), bytes(body)))


def read_header(src: BinaryIO) -> tuple[list[Stanza], bytes]:
    """Parse (without decrypting or authenticating) the header of an age file.

    Returns the stanzas and the raw header bytes, MAC line included. ``src`` is left positioned
    at the payload nonce. Useful to tell whom a file is for; the header is only authenticated by
    ``decrypt``, once a file key has been recovered.
    """
    header = _parse_header(src)
    return header.stanzas, header.raw


def _unwrap_file_key(header: _Header, identities: Sequence[Identity]) -> bytes:
    if not identities:
        raise InvalidIdentity("no identities specified")
    for identity in identities:
        file_key = identity.unwrap(header.stanzas)
        if file_key is None:
            continue
        if len(file_key) != FILE_KEY_SIZE:  # pragma: no cover - unwrap enforces the body size
            raise DecryptionError("malformed stanza: wrong file key size")
        if not hmac.compare_digest(_header_mac(file_key, header.mac_input), header.mac):
            raise DecryptionError("header MAC mismatch: the header was modified or corrupted")
        return file_key
    raise DecryptionError("no identity matched any of the file's recipients")


def _make_header(file_key: bytes, recipients: Sequence[Recipient]) -> bytes:
    """The header (version line, stanzas, MAC line) wrapping ``file_key`` to ``recipients``."""
    if not recipients:
        raise InvalidRecipient("no recipients specified")
    if len(recipients) > 1 and any(getattr(r, "alone", False) for r in recipients):
        raise InvalidRecipient("a passphrase (scrypt) recipient must be the only recipient of a file")
    if len({is_post_quantum(r) for r in recipients}) > 1:
        # The spec: a hybrid recipient's file SHOULD NOT also be wrapped to a classic key, which a quantum
        # computer would open; age refuses the mix too. SafeShare writes one envelope per key instead.
        raise InvalidRecipient("post-quantum (age1pq1...) and classic recipients cannot share one file")
    stanzas = [stanza for recipient in recipients for stanza in recipient.wrap(file_key)]
    header = _marshal_header_without_mac(stanzas)
    mac = _header_mac(file_key, header)
    return b"".join((header, b" ", _b64encode(mac).encode("ascii"), b"\n"))


def unwrap_header(header: bytes, identities: Sequence[Identity]) -> bytes:
    """The file key of a header (MAC line included, nothing after it), authenticated by its MAC."""
    src = io.BytesIO(header)
    parsed = _parse_header(src)
    if src.read(1):
        raise DecryptionError("trailing bytes after the header")
    return _unwrap_file_key(parsed, identities)


def rewrap_header(header: bytes, file_key: bytes, recipients: Sequence[Recipient]) -> bytes:
    """Pure: an authenticated header and its file key -> a new header for ``recipients``, same file key.

    The payload (nonce and chunks) depends only on the file key, so it stays valid unchanged after the
    new header: giving a file to a new recipient costs a header, whatever the payload's size. The old
    header's MAC is checked first, so a key that does not belong to it cannot be used.
    """
    src = io.BytesIO(header)
    parsed = _parse_header(src)
    if src.read(1):
        raise DecryptionError("trailing bytes after the header")
    if len(file_key) != FILE_KEY_SIZE or not hmac.compare_digest(_header_mac(file_key, parsed.mac_input), parsed.mac):
        raise DecryptionError("header MAC mismatch: this file key does not belong to this header")
    return _make_header(file_key, recipients)


def rewrap_stream(
    src: BinaryIO, dst: BinaryIO, identities: Sequence[Identity], recipients: Sequence[Recipient]
) -> tuple[bytes, bytes]:
    """Copy an age file with a new header: unwrap with ``identities``, wrap to ``recipients``; the bytes
    after the header (nonce and payload) are copied as they are, in slices. Returns (old, new) header."""
    parsed = _parse_header(src)
    file_key = _unwrap_file_key(parsed, identities)
    new_header = _make_header(file_key, recipients)
    _write_all(dst, new_header)
    buf = memoryview(bytearray(CHUNK_SIZE * 4))
    while size := _read_full(src, buf):
        _write_all(dst, buf[:size])
    return parsed.raw, new_header


# --------------------------------------------------------------------------------------------
# I/O helpers
# --------------------------------------------------------------------------------------------


def _read_full(src: BinaryIO, view: memoryview) -> int:
    """Fill ``view`` unless EOF comes first: raw files and sockets may return short reads, and
    the STREAM framing depends on knowing whether a chunk is full."""
    readinto = getattr(src, "readinto", None)
    filled = 0
    total = len(view)
    while filled < total:
        if readinto is not None:
            got = readinto(view[filled:])
        else:
            data = src.read(total - filled)
            got = None if data is None else len(data)
            if got:
                view[filled : filled + got] = data
        if got is None:  # a non-blocking source with nothing ready must not look like EOF
            raise BlockingIOError(errno.EAGAIN, "source is non-blocking; pass a blocking stream")
        if not got:
            break
        filled += got
    return filled


def _write_all(dst: BinaryIO, data: bytes | memoryview) -> int:
    """Loop on short writes, which raw (unbuffered) files are allowed to do."""
    view = memoryview(data)
    total = len(view)
    written = dst.write(view)
    if written is None:
        return total
    while written < total:
        more = dst.write(view[written:])
        if not more:
            raise OSError("short write to destination")
        written += more
    return total


# --------------------------------------------------------------------------------------------
# Encryption
# --------------------------------------------------------------------------------------------

_NEW, _STREAMING, _FINALIZED = range(3)


class Encryptor:
    """Push-based streaming encryptor for ONE age file to one or more recipients.

    Protocol: write ``header()`` first (it is the header, MAC line and 16-byte payload nonce),
    then the result of every ``update()``, then ``finalize()``. Calling out of order raises
    RuntimeError rather than silently producing an undecryptable file.

    Memory stays at one 64 KiB plaintext buffer whatever the payload size: STREAM marks the
    final chunk, so a full chunk can only be sealed once the next byte arrives; at most one
    chunk is held back. Pieces of at most 64 KiB are the cheapest (each ``update()`` then returns
    at most one chunk, straight from the AEAD); larger pushes cost one join of their chunks.
    """

    __slots__ = ("_aead", "_buffer", "_buffered", "_counter", "_header", "_out", "_state", "_view")

    def __init__(self, recipients: Sequence[Recipient]) -> None:
        # One read of the system's CSPRNG for both (each os.urandom call hands the GIL over, and on a busy
        # gateway's event loop taking it back was measured as costly as the rest of this constructor).
        seed = os.urandom(FILE_KEY_SIZE + PAYLOAD_NONCE_SIZE)
        file_key, nonce = seed[:FILE_KEY_SIZE], seed[FILE_KEY_SIZE:]
        self._header = _make_header(file_key, recipients) + nonce
        self._aead = ChaCha20Poly1305(_hkdf(file_key, nonce, PAYLOAD_LABEL))
        self._counter = 0
        self._buffer = bytearray(CHUNK_SIZE)
        self._view = memoryview(self._buffer)
        self._buffered = 0
        self._out: memoryview | None = None
        self._state = _NEW

    def header(self) -> bytes:
        if self._state != _NEW:
            raise RuntimeError("Encryptor.header() may only be called once, before update()")
        self._state = _STREAMING
        return self._header

    def update(self, data: bytes | bytearray | memoryview) -> bytes:
        if self._state != _STREAMING:
            raise RuntimeError("Encryptor.update() needs header() to have been called, and not finalize()")
        view = memoryview(data)
        if view.format != "B" or view.ndim != 1:
            view = view.cast("B")
        size = len(view)
        if not size:
            return b""
        out: list[bytes] = []
        pos = 0
        buffered = self._buffered
        if buffered:
            take = min(CHUNK_SIZE - buffered, size)
            self._view[buffered : buffered + take] = view[:take]
            pos = take
            if pos == size:  # all absorbed; a now-full buffer might still be the last chunk
                self._buffered = buffered + take
                return b""
            out.append(self._seal(self._view, last=False))  # full, and more data follows
        while size - pos > CHUNK_SIZE:
            out.append(self._seal(view[pos : pos + CHUNK_SIZE], last=False))
            pos += CHUNK_SIZE
        rest = size - pos
        self._view[:rest] = view[pos:]
        self._buffered = rest
        if not out:
            return b""
        return out[0] if len(out) == 1 else b"".join(out)

    def update_to(self, data: bytes | bytearray | memoryview, sink: Callable[[memoryview], object]) -> None:
        """``update``, but each sealed chunk is handed to ``sink`` as a view into one buffer reused for every
        chunk, which ``sink`` must consume before returning (a buffered file's ``write``, a hash's ``update``).

        Why: the gateway encrypts every upload once per recipient; ``update`` allocates a fresh 64 KiB bytes
        per chunk (and joins them), which for a large file is mostly page faults, i.e. system time.
        """
        if self._state != _STREAMING:
            raise RuntimeError("Encryptor.update_to() needs header() to have been called, and not finalize()")
        view = memoryview(data)
        if view.format != "B" or view.ndim != 1:
            view = view.cast("B")
        size = len(view)
        if not size:
            return
        out = self._out
        if out is None:
            out = self._out = memoryview(bytearray(ENCRYPTED_CHUNK_SIZE))
        pos = 0
        buffered = self._buffered
        if buffered:
            take = min(CHUNK_SIZE - buffered, size)
            self._view[buffered : buffered + take] = view[:take]
            pos = take
            if pos == size:
                self._buffered = buffered + take
                return
            self._seal_into(self._view, False, out)
            sink(out)
        while size - pos > CHUNK_SIZE:
            self._seal_into(view[pos : pos + CHUNK_SIZE], False, out)
            sink(out)
            pos += CHUNK_SIZE
        rest = size - pos
        self._view[:rest] = view[pos:]
        self._buffered = rest

    def finalize(self) -> bytes:
        """Seal the held-back chunk as the last one (an empty payload gives one empty chunk)."""
        if self._state != _STREAMING:
            raise RuntimeError("Encryptor.finalize() needs header() first and may only be called once")
        self._state = _FINALIZED
        chunk = self._seal(self._view[: self._buffered], last=True)
        self._buffered = 0
        return chunk

    def _seal(self, plaintext: memoryview, last: bool) -> bytes:
        nonce = _stream_nonce(self._counter, last)
        self._counter += 1
        return self._aead.encrypt(nonce, plaintext, None)

    def _seal_into(self, plaintext: memoryview, last: bool, out: memoryview) -> None:
        nonce = _stream_nonce(self._counter, last)
        self._counter += 1
        self._aead.encrypt_into(nonce, plaintext, None, out)


def encrypt_stream(src: BinaryIO, dst: BinaryIO, recipients: Sequence[Recipient]) -> int:
    """Encrypt all of ``src`` into ``dst``; returns the number of bytes written.

    Uses two alternating read buffers and one output buffer, so there is no allocation per
    chunk. ``dst.write`` must consume the data before returning (every ``io`` class does).
    """
    enc = Encryptor(recipients)
    written = _write_all(dst, enc.header())
    views = (memoryview(bytearray(CHUNK_SIZE)), memoryview(bytearray(CHUNK_SIZE)))
    out = memoryview(bytearray(ENCRYPTED_CHUNK_SIZE))
    current = 0
    size = _read_full(src, views[current])
    while True:
        following = 0
        if size < CHUNK_SIZE:
            last = True
        else:
            following = _read_full(src, views[1 - current])
            last = following == 0
        sealed = out[: size + TAG_SIZE]
        enc._seal_into(views[current][:size], last, sealed)
        written += _write_all(dst, sealed)
        if last:
            break
        current, size = 1 - current, following
    enc._state = _FINALIZED
    return written


def encrypt(data: bytes | bytearray | memoryview, recipients: Sequence[Recipient]) -> bytes:
    dst = io.BytesIO()
    encrypt_stream(io.BytesIO(data), dst, recipients)
    return dst.getvalue()


# --------------------------------------------------------------------------------------------
# Decryption
# --------------------------------------------------------------------------------------------


def _decrypt_payload(src: BinaryIO, file_key: bytes) -> Iterator[memoryview]:
    """Yield each authenticated plaintext chunk as a view into a reused buffer (consume it
    before advancing). Framing rules are age's stream.go: a short read marks the last chunk; a
    full chunk that fails as non-last is retried as last; the last chunk may only be empty if
    it is the only one; nothing may follow it."""
    nonce = bytearray(PAYLOAD_NONCE_SIZE)
    if _read_full(src, memoryview(nonce)) != PAYLOAD_NONCE_SIZE:
        raise DecryptionError("truncated file: missing or short payload nonce")
    aead = ChaCha20Poly1305(_hkdf(file_key, bytes(nonce), PAYLOAD_LABEL))
    in_view = memoryview(bytearray(ENCRYPTED_CHUNK_SIZE))
    out_view = memoryview(bytearray(CHUNK_SIZE))
    counter = 0
    while True:
        size = _read_full(src, in_view)
        if size == 0:
            raise DecryptionError("truncated file: payload ends without a final chunk")
        last = size < ENCRYPTED_CHUNK_SIZE
        if last and size < TAG_SIZE:
            raise DecryptionError(f"truncated file: payload chunk {counter} is shorter than its tag")
        if last and size == TAG_SIZE and counter > 0:
            raise DecryptionError("malformed payload: empty final chunk after a non-empty chunk")
        ciphertext = in_view[:size]
        plaintext = out_view[: size - TAG_SIZE]
        try:
            aead.decrypt_into(_stream_nonce(counter, last), ciphertext, None, plaintext)
        except InvalidTag:
            if last:
                raise DecryptionError(
                    f"payload chunk {counter} failed to authenticate (tampered or truncated)"
                ) from None
            last = True  # a full-size chunk can still be the final one
            try:
                aead.decrypt_into(_stream_nonce(counter, last), ciphertext, None, plaintext)
            except InvalidTag:
                raise DecryptionError(
                    f"payload chunk {counter} failed to authenticate (tampered or truncated)"
                ) from None
        counter += 1
        if last:
            if src.read(1):
                raise DecryptionError("trailing data after the end of the encrypted payload")
            yield plaintext
            return
        yield plaintext


def decrypt_stream(src: BinaryIO, dst: BinaryIO, identities: Sequence[Identity]) -> int:
    """Decrypt ``src`` into ``dst`` with bounded memory; returns the plaintext bytes written.

    Only authenticated chunks are written, but a file truncated or tampered with *after* its
    first chunks raises DecryptionError once those have already been written. Callers must
    therefore write to a temporary file and rename it into place only on success (or discard
    ``dst`` on error), never expose a partially written output.
    """
    header = _parse_header(src)
    file_key = _unwrap_file_key(header, identities)
    written = 0
    for chunk in _decrypt_payload(src, file_key):
        written += _write_all(dst, chunk)
    return written


def decrypt(data: bytes | bytearray | memoryview, identities: Sequence[Identity]) -> bytes:
    dst = io.BytesIO()
    decrypt_stream(io.BytesIO(data), dst, identities)
    return dst.getvalue()
