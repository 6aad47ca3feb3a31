"""Tests for gateway.envelope (age v1, X25519).

Correctness is established three ways: round trips through our own code, interoperability with
two independent implementations (rage via pyrage, and the Go ``age`` CLI), and the official age
testkit vectors. The negative tests check that every kind of damage (tampering, truncation,
extension, spec-violating framing) is rejected, and that errors never echo secrets.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import os
import random
import shutil
import subprocess
import tracemalloc
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway import envelope as env
from gateway.envelope import (
    CHUNK_SIZE,
    ENCRYPTED_CHUNK_SIZE,
    TAG_SIZE,
    DecryptionError,
    Encryptor,
    EnvelopeError,
    InvalidIdentity,
    InvalidRecipient,
    Stanza,
    X25519Identity,
    X25519Recipient,
    decrypt,
    decrypt_stream,
    encrypt,
    encrypt_stream,
    parse_identities,
    read_header,
)

try:
    import pyrage
except ImportError:  # pragma: no cover - pyrage is a test dependency
    pyrage = None

needs_pyrage = pytest.mark.skipif(pyrage is None, reason="pyrage (rage bindings) not installed")

FIXTURES = Path(__file__).parent / "fixtures" / "age"
K = CHUNK_SIZE

ID_A = X25519Identity.generate()
ID_B = X25519Identity.generate()
ID_C = X25519Identity.generate()
ALL_IDS = [ID_A, ID_B, ID_C]


def data_of(size: int, seed: int = 0) -> bytes:
    return random.Random(seed * 1_000_003 + size).randbytes(size)


def payload_size(plaintext_size: int) -> int:
    """Spec: 16-byte nonce, then ceil(n/64KiB) chunks (at least one), each with a 16-byte tag."""
    chunks = max(1, -(-plaintext_size // K))
    return 16 + plaintext_size + TAG_SIZE * chunks


def split_file(data: bytes) -> tuple[bytes, bytes, bytes]:
    """(header incl. MAC line, payload nonce, chunks)."""
    end = data.index(b"\n", data.index(b"\n--- ") + 1) + 1
    return data[:end], data[end : end + 16], data[end + 16 :]


def hkdf(ikm: bytes, salt: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=info).derive(ikm)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode().rstrip("=")


def marshal_stanza(stanza: Stanza) -> bytes:
    """Independent spec rendering: 64-column lines, always ending with a short (maybe empty) line."""
    encoded = b64(stanza.body)
    lines = [encoded[i : i + 64] for i in range(0, len(encoded), 64)]
    if len(encoded) % 64 == 0:
        lines.append("")
    return ("-> " + " ".join((stanza.type, *stanza.args)) + "\n" + "".join(x + "\n" for x in lines)).encode()


def craft(
    recipient: X25519Recipient,
    chunks: Sequence[tuple[bytes, bool]],
    extra_stanzas: Sequence[Stanza] = (),
) -> bytes:
    """Build an age file from raw primitives, with arbitrary (possibly invalid) STREAM framing."""
    file_key = os.urandom(16)
    header = b"age-encryption.org/v1\n"
    header += b"".join(marshal_stanza(s) for s in [*recipient.wrap(file_key), *extra_stanzas])
    header += b"---"
    mac = hmac.new(hkdf(file_key, b"", b"header"), header, "sha256").digest()
    nonce = os.urandom(16)
    aead = ChaCha20Poly1305(hkdf(file_key, nonce, b"payload"))
    out = header + b" " + b64(mac).encode() + b"\n" + nonce
    for counter, (plaintext, last) in enumerate(chunks):
        out += aead.encrypt(counter.to_bytes(11, "big") + bytes([last]), plaintext, None)
    return out


def encrypt_in_pieces(data: bytes, recipients: Sequence[X25519Recipient], sizes: Sequence[int]) -> bytes:
    enc = Encryptor(recipients)
    out = [enc.header()]
    pos = 0
    i = 0
    while pos < len(data):
        step = sizes[i % len(sizes)]
        i += 1
        out.append(enc.update(data[pos : pos + step]))
        pos += step
    out.append(enc.finalize())
    return b"".join(out)


class TrickleReader(io.RawIOBase):
    """Returns short reads, as sockets and raw files may."""

    def __init__(self, data: bytes, seed: int = 1) -> None:
        self._data = memoryview(data)
        self._pos = 0
        self._rng = random.Random(seed)

    def readable(self) -> bool:
        return True

    def readinto(self, b: memoryview) -> int:  # type: ignore[override]
        n = min(len(b), self._rng.randint(1, 5000), len(self._data) - self._pos)
        b[:n] = self._data[self._pos : self._pos + n]
        self._pos += n
        return n


# ---------------------------------------------------------------------------------------------
# Round trips
# ---------------------------------------------------------------------------------------------


def test_spec_constants() -> None:
    assert env.AGE_RECIPIENT_HRP == "age"
    assert env.AGE_IDENTITY_HRP == "AGE-SECRET-KEY-"
    assert env.AGE_VERSION_LINE == b"age-encryption.org/v1"
    assert env.X25519_LABEL == b"age-encryption.org/v1/X25519"
    assert (env.HEADER_LABEL, env.PAYLOAD_LABEL) == (b"header", b"payload")
    assert (CHUNK_SIZE, ENCRYPTED_CHUNK_SIZE, env.FILE_KEY_SIZE) == (65536, 65552, 16)


@pytest.mark.parametrize("size", [0, 1, K - 1, K, K + 1, 3 * K])
@pytest.mark.parametrize("n_recipients", [1, 3])
def test_round_trip(size: int, n_recipients: int) -> None:
    data = data_of(size)
    identities = ALL_IDS[:n_recipients]
    ct = encrypt(data, [i.recipient() for i in identities])
    header, _, _ = split_file(ct)
    assert len(ct) - len(header) == payload_size(size)
    for identity in identities:
        assert decrypt(ct, [identity]) == data
    assert decrypt(ct, [X25519Identity.generate(), identities[-1]]) == data


def test_encryptor_odd_pieces_match_encrypt_layout() -> None:
    data = data_of(3 * K + 12345, seed=7)
    ct = encrypt_in_pieces(data, [ID_A.recipient(), ID_B.recipient()], [1, 7, K - 1, K, K + 1, 0, 12345, 3])
    assert decrypt(ct, [ID_B]) == data
    header, _, _ = split_file(ct)
    assert len(ct) - len(header) == payload_size(len(data))


def test_encryptor_holds_back_exactly_one_chunk() -> None:
    enc = Encryptor([ID_A.recipient()])
    parts = [enc.header()]
    assert enc.update(b"") == b""
    first = enc.update(data_of(K))
    assert first == b""  # a full chunk may still be the last one
    second = enc.update(b"x")
    assert len(second) == ENCRYPTED_CHUNK_SIZE  # ...until one more byte arrives
    big = enc.update(data_of(2 * K + 5))
    assert len(big) == 2 * ENCRYPTED_CHUNK_SIZE  # 1 + 2K + 5 bytes buffered -> 2 sealed, K+6 held
    last = enc.finalize()
    assert len(last) == 6 + TAG_SIZE
    parts += [first, second, big, last]
    assert decrypt(b"".join(parts), [ID_A]) == data_of(K) + b"x" + data_of(2 * K + 5)


def test_encryptor_exact_multiple_ends_with_full_final_chunk() -> None:
    enc = Encryptor([ID_A.recipient()])
    ct = enc.header() + enc.update(data_of(2 * K)) + enc.finalize()
    _, _, chunks = split_file(ct)
    assert len(chunks) == 2 * ENCRYPTED_CHUNK_SIZE  # no empty trailing chunk
    assert decrypt(ct, [ID_A]) == data_of(2 * K)


def test_encryptor_empty_payload_is_one_empty_final_chunk() -> None:
    enc = Encryptor([ID_A.recipient()])
    ct = enc.header() + enc.finalize()
    assert len(split_file(ct)[2]) == TAG_SIZE
    assert decrypt(ct, [ID_A]) == b""


def test_encryptor_accepts_buffers() -> None:
    import array

    words = array.array("H", range(40000))  # itemsize 2: update must see raw bytes
    enc = Encryptor([ID_A.recipient()])
    ct = enc.header() + enc.update(bytearray(b"ab")) + enc.update(memoryview(words)) + enc.finalize()
    assert decrypt(ct, [ID_A]) == b"ab" + words.tobytes()


def test_encryptor_enforces_call_order() -> None:
    enc = Encryptor([ID_A.recipient()])
    with pytest.raises(RuntimeError):
        enc.update(b"x")
    with pytest.raises(RuntimeError):
        enc.finalize()
    enc.header()
    with pytest.raises(RuntimeError):
        enc.header()
    enc.finalize()
    with pytest.raises(RuntimeError):
        enc.update(b"x")
    with pytest.raises(RuntimeError):
        enc.finalize()


def test_encryptor_requires_recipients() -> None:
    with pytest.raises(InvalidRecipient, match="no recipients"):
        Encryptor([])


def test_encryptor_memory_is_bounded() -> None:
    enc = Encryptor([ID_A.recipient()])
    enc.header()
    piece = data_of(K - 3)
    tracemalloc.start()
    try:
        for _ in range(64):  # ~4 MiB through the encryptor, output discarded
            enc.update(piece)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 * ENCRYPTED_CHUNK_SIZE


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    size=st.integers(min_value=0, max_value=3 * K + 100),
    cuts=st.lists(st.integers(min_value=0, max_value=3 * K + 100), max_size=8),
    n_recipients=st.integers(min_value=1, max_value=3),
)
def test_round_trip_random_sizes_and_splits(size: int, cuts: list[int], n_recipients: int) -> None:
    data = data_of(size, seed=len(cuts))
    recipients = [i.recipient() for i in ALL_IDS[:n_recipients]]
    enc = Encryptor(recipients)
    out = [enc.header()]
    previous = 0
    for cut in sorted(c for c in cuts if c <= size) + [size]:
        out.append(enc.update(data[previous:cut]))
        previous = cut
    out.append(enc.finalize())
    ct = b"".join(out)
    assert decrypt(ct, [ALL_IDS[n_recipients - 1]]) == data
    sink = io.BytesIO()
    assert decrypt_stream(TrickleReader(ct, seed=size), sink, [ALL_IDS[0]]) == size
    assert sink.getvalue() == data


def test_streams_with_short_reads() -> None:
    data = data_of(2 * K + 99)
    ct_sink = io.BytesIO()
    written = encrypt_stream(TrickleReader(data), ct_sink, [ID_A.recipient()])
    assert written == len(ct_sink.getvalue())
    pt_sink = io.BytesIO()
    assert decrypt_stream(TrickleReader(ct_sink.getvalue(), seed=3), pt_sink, [ID_A]) == len(data)
    assert pt_sink.getvalue() == data


class NotReady(io.RawIOBase):
    def readable(self) -> bool:
        return True

    def readinto(self, b: memoryview) -> None:  # type: ignore[override]
        return None  # non-blocking source with no data yet


def test_non_blocking_source_is_not_mistaken_for_eof() -> None:
    with pytest.raises(BlockingIOError):
        encrypt_stream(NotReady(), io.BytesIO(), [ID_A.recipient()])


def test_file_streams(tmp_path: Path) -> None:
    src, ct, out = tmp_path / "in", tmp_path / "ct.age", tmp_path / "out"
    src.write_bytes(data_of(K + 5))
    with src.open("rb") as s, ct.open("wb") as d:
        encrypt_stream(s, d, [ID_A.recipient()])
    with ct.open("rb") as s, out.open("wb") as d:
        decrypt_stream(s, d, [ID_A])
    assert out.read_bytes() == data_of(K + 5)


# ---------------------------------------------------------------------------------------------
# Wire format, checked against the spec with independent code
# ---------------------------------------------------------------------------------------------


def test_header_layout_mac_and_stream_construction() -> None:
    ct = encrypt(b"hello", [ID_A.recipient(), ID_B.recipient()])
    header, nonce, chunks = split_file(ct)
    lines = header.decode("ascii").split("\n")
    assert lines[0] == "age-encryption.org/v1"
    for stanza_line, body_line in ((lines[1], lines[2]), (lines[3], lines[4])):
        kind, share = stanza_line[3:].split(" ")
        assert stanza_line.startswith("-> ") and kind == "X25519"
        assert len(share) == 43 and len(base64.b64decode(share + "=")) == 32
        assert len(body_line) == 43 and len(base64.b64decode(body_line + "=")) == 32
    assert lines[1] != lines[3]  # one ephemeral key per recipient
    assert lines[5].startswith("--- ") and len(lines[5]) == 4 + 43 and lines[6] == ""

    stanzas, raw = read_header(io.BytesIO(ct))
    assert raw == header
    file_key = ID_A.unwrap(stanzas)
    assert file_key is not None and len(file_key) == 16
    assert ID_B.unwrap(stanzas) == file_key
    mac = hmac.new(hkdf(file_key, b"", b"header"), header[: header.index(b"\n--- ") + 4], "sha256").digest()
    assert lines[5] == "--- " + b64(mac)
    aead = ChaCha20Poly1305(hkdf(file_key, nonce, b"payload"))
    assert aead.decrypt(bytes(11) + b"\x01", chunks, None) == b"hello"


def test_x25519_wrap_matches_spec() -> None:
    file_key = os.urandom(16)
    (stanza,) = ID_A.recipient().wrap(file_key)
    share = base64.b64decode(stanza.args[0] + "=")
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

    secret = X25519PrivateKey.from_private_bytes(env._bech32_decode(str(ID_A))[1])
    shared = secret.exchange(X25519PublicKey.from_public_bytes(share))
    key = hkdf(shared, share + ID_A.recipient().public_bytes, b"age-encryption.org/v1/X25519")
    assert ChaCha20Poly1305(key).decrypt(bytes(12), stanza.body, None) == file_key


@pytest.mark.parametrize("body_len", [0, 1, 47, 48, 49, 95, 96, 97, 150])
def test_stanza_body_wrapping(body_len: int) -> None:
    body = data_of(body_len)
    rendered = env._marshal_stanza(Stanza("some-grease", ("a", "b+/="), body))
    assert rendered == marshal_stanza(Stanza("some-grease", ("a", "b+/="), body))
    lines = rendered.split(b"\n")[1:-1]
    assert all(len(line) == 64 for line in lines[:-1]) and len(lines[-1]) < 64
    if body_len % 48 == 0:
        assert lines[-1] == b""
    ct = craft(ID_A.recipient(), [(b"data", True)], [Stanza("some-grease", ("a", "b+/="), body)])
    stanzas, _ = read_header(io.BytesIO(ct))
    assert stanzas[1] == Stanza("some-grease", ("a", "b+/="), body)
    assert decrypt(ct, [ID_A]) == b"data"  # unknown stanza types are skipped


class GreasyRecipient:
    """Wraps like X25519 but adds an unknown stanza, to check other tools accept our wrapping."""

    def __init__(self, inner: X25519Recipient, body: bytes) -> None:
        self.inner, self.body = inner, body

    def wrap(self, file_key: bytes) -> list[Stanza]:
        return [Stanza("x-grease", ("arg",), self.body), *self.inner.wrap(file_key)]


@needs_pyrage
@pytest.mark.parametrize("body_len", [0, 48, 96, 100])
def test_pyrage_accepts_our_stanza_wrapping(body_len: int) -> None:
    ct = encrypt(b"greasy", [GreasyRecipient(ID_A.recipient(), data_of(body_len))])  # type: ignore[list-item]
    assert pyrage.decrypt(ct, [pyrage.x25519.Identity.from_str(str(ID_A))]) == b"greasy"


# ---------------------------------------------------------------------------------------------
# Interoperability: rage (pyrage)
# ---------------------------------------------------------------------------------------------


@needs_pyrage
@pytest.mark.parametrize("size", [0, 1, K - 1, K, K + 1, 3 * K + 5])
def test_pyrage_decrypts_ours(size: int) -> None:
    data = data_of(size)
    their = pyrage.x25519.Identity.generate()
    ct = encrypt(data, [ID_A.recipient(), X25519Recipient.parse(str(their.to_public()))])
    assert pyrage.decrypt(ct, [their]) == data


@needs_pyrage
@pytest.mark.parametrize("size", [0, 1, K, 2 * K, 2 * K + 1])
def test_we_decrypt_pyrage(size: int) -> None:
    data = data_of(size)
    their = pyrage.x25519.Identity.generate()
    ours = X25519Identity.parse(str(their))
    ct = pyrage.encrypt(data, [pyrage.x25519.Recipient.from_str(str(ID_B.recipient())), their.to_public()])
    assert decrypt(ct, [ours]) == data
    assert decrypt(ct, [ID_B]) == data


@needs_pyrage
def test_key_encodings_match_pyrage() -> None:
    for _ in range(5):
        their = pyrage.x25519.Identity.generate()
        ours = X25519Identity.parse(str(their))
        assert str(ours) == str(their)
        assert str(ours.recipient()) == str(their.to_public())
        assert str(X25519Recipient.parse(str(their.to_public()))) == str(their.to_public())
    mine = X25519Identity.generate()
    assert str(pyrage.x25519.Identity.from_str(str(mine)).to_public()) == str(mine.recipient())


# ---------------------------------------------------------------------------------------------
# Interoperability: the Go age CLI
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def age_cli() -> tuple[str, str]:
    age, keygen = shutil.which("age"), shutil.which("age-keygen")
    if not age or not keygen:
        if os.environ.get("CI"):
            pytest.fail("the age / age-keygen CLI is required in CI but was not found on PATH")
        pytest.skip("the age / age-keygen CLI is not installed")
    return age, keygen


@pytest.mark.parametrize("size", [0, K, 2 * K + 7])
def test_age_cli_decrypts_ours(age_cli: tuple[str, str], tmp_path: Path, size: int) -> None:
    age, keygen = age_cli
    key_file = tmp_path / "key.txt"
    subprocess.run([keygen, "-o", str(key_file)], check=True, capture_output=True)
    key_text = key_file.read_text()
    (identity,) = parse_identities(key_text)
    public_line = next(x for x in key_text.splitlines() if x.startswith("# public key: "))
    assert str(identity.recipient()) == public_line.removeprefix("# public key: ")
    data = data_of(size)
    (tmp_path / "ct.age").write_bytes(encrypt(data, [ID_C.recipient(), identity.recipient()]))
    result = subprocess.run([age, "-d", "-i", str(key_file), str(tmp_path / "ct.age")], check=True, capture_output=True)
    assert result.stdout == data


@pytest.mark.parametrize("size", [0, 1, K, 2 * K + 7])
def test_we_decrypt_age_cli(age_cli: tuple[str, str], tmp_path: Path, size: int) -> None:
    age, keygen = age_cli
    other = X25519Identity.generate()
    data = data_of(size)
    (tmp_path / "pt").write_bytes(data)
    subprocess.run(
        [
            age,
            "-r",
            str(ID_A.recipient()),
            "-r",
            str(other.recipient()),
            "-o",
            str(tmp_path / "ct.age"),
            str(tmp_path / "pt"),
        ],
        check=True,
        capture_output=True,
    )
    ct = (tmp_path / "ct.age").read_bytes()
    assert decrypt(ct, [ID_A]) == data
    assert decrypt(ct, [other]) == data


def test_age_cli_agrees_on_public_key(age_cli: tuple[str, str], tmp_path: Path) -> None:
    _, keygen = age_cli
    (tmp_path / "k").write_text(str(ID_B) + "\n")
    result = subprocess.run([keygen, "-y", str(tmp_path / "k")], check=True, capture_output=True, text=True)
    assert result.stdout.strip() == str(ID_B.recipient())


# ---------------------------------------------------------------------------------------------
# Official testkit vectors
# ---------------------------------------------------------------------------------------------

VECTORS = sorted(p.name for p in FIXTURES.iterdir() if p.is_file() and p.suffix != ".md")


def classify(exc: DecryptionError) -> str:
    message = str(exc)
    if "no identity matched" in message:
        return "no match"
    if "header MAC mismatch" in message:
        return "HMAC failure"
    if any(w in message for w in ("payload", "chunk", "truncated file", "trailing data")):
        return "payload failure"
    return "header failure"


def test_vectors_present() -> None:
    assert len(VECTORS) >= 9, "tests/fixtures/age vectors are missing"


@pytest.mark.parametrize("name", VECTORS)
def test_testkit_vector(name: str) -> None:
    raw = (FIXTURES / name).read_bytes()
    preamble, _, age_file = raw.partition(b"\n\n")
    meta: dict[str, list[str]] = {}
    for line in preamble.decode().splitlines():
        key, _, value = line.partition(": ")
        meta.setdefault(key, []).append(value)
    identities = [X25519Identity.parse(x) for x in meta["identity"]]
    expect = meta["expect"][0]
    sink = io.BytesIO()
    if expect == "success":
        decrypt_stream(io.BytesIO(age_file), sink, identities)
        assert hashlib.sha256(sink.getvalue()).hexdigest() == meta["payload"][0]
        stanzas, _ = read_header(io.BytesIO(age_file))
        assert identities[0].unwrap(stanzas) == bytes.fromhex(meta["file key"][0])
        return
    with pytest.raises(DecryptionError) as info:
        decrypt_stream(io.BytesIO(age_file), sink, identities)
    assert classify(info.value) == expect, str(info.value)
    if "payload" in meta:  # only authenticated plaintext may have been written
        assert hashlib.sha256(sink.getvalue()).hexdigest() == meta["payload"][0]


# ---------------------------------------------------------------------------------------------
# Rejection of damaged and malformed files
# ---------------------------------------------------------------------------------------------


def test_wrong_identity() -> None:
    ct = encrypt(b"secret", [ID_A.recipient()])
    with pytest.raises(DecryptionError, match="no identity matched"):
        decrypt(ct, [ID_B, ID_C])
    with pytest.raises(EnvelopeError):
        decrypt(ct, [])


def test_every_header_byte_is_authenticated() -> None:
    ct = encrypt(b"payload", [ID_B.recipient(), ID_A.recipient()])
    header, _, _ = split_file(ct)
    for i in range(len(header)):
        for bit in (0x01, 0x20):
            damaged = bytearray(ct)
            damaged[i] ^= bit
            with pytest.raises(DecryptionError):
                decrypt(bytes(damaged), [ID_A])


def test_other_recipients_stanza_is_covered_by_mac() -> None:
    ct = encrypt(b"payload", [ID_B.recipient(), ID_A.recipient()])
    header, _, _ = split_file(ct)
    body_b = header.split(b"\n")[2]
    replacement = body_b[:10] + (b"A" if body_b[10:11] != b"A" else b"B") + body_b[11:]
    with pytest.raises(DecryptionError, match="header MAC mismatch"):
        decrypt(ct.replace(body_b, replacement), [ID_A])


def test_flipped_mac() -> None:
    ct = encrypt(b"payload", [ID_A.recipient()])
    at = ct.index(b"\n--- ") + 10
    damaged = ct[:at] + (b"A" if ct[at : at + 1] != b"A" else b"B") + ct[at + 1 :]
    with pytest.raises(DecryptionError, match="header MAC mismatch"):
        decrypt(damaged, [ID_A])


def test_flipped_payload_bytes() -> None:
    data = data_of(2 * K + 100)
    ct = encrypt(data, [ID_A.recipient()])
    start = len(split_file(ct)[0])
    chunk1 = start + 16 + ENCRYPTED_CHUNK_SIZE
    chunk2 = chunk1 + ENCRYPTED_CHUNK_SIZE
    for offset in (start, start + 15, start + 16, start + 16 + K, chunk1 + 5, chunk2, len(ct) - 1):
        damaged = bytearray(ct)
        damaged[offset] ^= 0x80
        with pytest.raises(DecryptionError):
            decrypt(bytes(damaged), [ID_A])


def test_swapped_chunks() -> None:
    data = data_of(3 * K)
    ct = encrypt(data, [ID_A.recipient()])
    body = len(split_file(ct)[0]) + 16
    c0, c1 = ct[body : body + ENCRYPTED_CHUNK_SIZE], ct[body + ENCRYPTED_CHUNK_SIZE : body + 2 * ENCRYPTED_CHUNK_SIZE]
    with pytest.raises(DecryptionError, match="chunk 0"):
        decrypt(ct[:body] + c1 + c0 + ct[body + 2 * ENCRYPTED_CHUNK_SIZE :], [ID_A])


@pytest.mark.parametrize(
    "cut",
    [
        pytest.param(lambda ct, body: body + 2 * ENCRYPTED_CHUNK_SIZE, id="drop-last-chunk"),
        pytest.param(lambda ct, body: body + ENCRYPTED_CHUNK_SIZE + 1000, id="mid-chunk"),
        pytest.param(lambda ct, body: len(ct) - 1, id="last-byte"),
        pytest.param(lambda ct, body: body + TAG_SIZE - 1, id="inside-first-tag"),
        pytest.param(lambda ct, body: body, id="no-chunks"),
        pytest.param(lambda ct, body: body - 3, id="mid-nonce"),
        pytest.param(lambda ct, body: body - 30, id="mid-header"),
    ],
)
def test_truncated(cut: Callable[[bytes, int], int]) -> None:
    ct = encrypt(data_of(2 * K + 10), [ID_A.recipient()])
    body = len(split_file(ct)[0]) + 16
    with pytest.raises(DecryptionError):
        decrypt(ct[: cut(ct, body)], [ID_A])


def test_truncation_after_full_chunks_writes_only_authenticated_chunks() -> None:
    data = data_of(2 * K + 10)
    ct = encrypt(data, [ID_A.recipient()])
    body = len(split_file(ct)[0]) + 16
    sink = io.BytesIO()
    with pytest.raises(DecryptionError, match="truncated"):
        decrypt_stream(io.BytesIO(ct[: body + 2 * ENCRYPTED_CHUNK_SIZE]), sink, [ID_A])
    assert sink.getvalue() == data[: 2 * K]  # hence: write to a temp file, rename on success


@pytest.mark.parametrize("size", [10, K, 2 * K])
@pytest.mark.parametrize(
    "extra", [b"\x00", b"garbage" * 100, bytes(ENCRYPTED_CHUNK_SIZE)], ids=["one-byte", "garbage", "chunk-of-zeros"]
)
def test_trailing_data(size: int, extra: bytes) -> None:
    ct = encrypt(data_of(size), [ID_A.recipient()])
    # After a full final chunk the extension is detected as such; after a short one the extra
    # bytes merge into that chunk, which then fails to authenticate (as in age).
    expected = "trailing data" if size % K == 0 else "trailing data|failed to authenticate"
    with pytest.raises(DecryptionError, match=expected):
        decrypt(ct + extra, [ID_A])


def test_final_full_chunk_followed_by_another_chunk() -> None:
    ct = craft(ID_A.recipient(), [(data_of(K), True), (b"more", True)])
    with pytest.raises(DecryptionError, match="trailing data"):
        decrypt(ct, [ID_A])


def test_empty_final_chunk_after_first_is_rejected() -> None:
    ct = craft(ID_A.recipient(), [(data_of(K), False), (b"", True)])
    with pytest.raises(DecryptionError, match="empty final chunk"):
        decrypt(ct, [ID_A])


def test_missing_last_flag_is_rejected() -> None:
    for chunks in ([(b"short", False)], [(data_of(K), False)], [(data_of(K), False), (b"x", False)]):
        with pytest.raises(DecryptionError):
            decrypt(craft(ID_A.recipient(), chunks), [ID_A])


def test_valid_framings_built_independently() -> None:
    assert decrypt(craft(ID_A.recipient(), [(b"", True)]), [ID_A]) == b""
    assert decrypt(craft(ID_A.recipient(), [(data_of(K), True)]), [ID_A]) == data_of(K)
    assert decrypt(craft(ID_A.recipient(), [(data_of(K), False), (b"z", True)]), [ID_A]) == data_of(K) + b"z"


def _replace_line(ct: bytes, index: int, new: bytes) -> bytes:
    header, rest = ct.split(b"\n--- ", 1)
    lines = header.split(b"\n")
    lines[index] = new
    return b"\n".join(lines) + b"\n--- " + rest


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda ct: ct.replace(b"age-encryption.org/v1", b"age-encryption.org/v2", 1), "unsupported"),
        (lambda ct: b"AGE" + ct, "not an age file"),
        (lambda ct: b"-----BEGIN AGE ENCRYPTED FILE-----\nYWdl\n", "armored"),
        (lambda ct: ct.replace(b"\n", b"\r\n", 1), "CRLF"),
        (lambda ct: b"\x00" + ct, "not an age file"),
        (lambda ct: _replace_line(ct, 1, b"->  X25519 abc"), "malformed stanza"),
        (lambda ct: _replace_line(ct, 1, b"-> X25519\tabc"), "malformed stanza"),
        (lambda ct: _replace_line(ct, 1, b"->"), "malformed stanza"),
        (lambda ct: _replace_line(ct, 1, b"-- X25519 abc"), "malformed header"),
        (lambda ct: _replace_line(ct, 2, b"QUJD="), "base64"),
        (lambda ct: _replace_line(ct, 2, b"QUJDB"), "base64"),  # non-canonical trailing bits
        (lambda ct: _replace_line(ct, 2, b"QUJD RA"), "base64"),
        (lambda ct: _replace_line(ct, 2, b"A" * 65), "64 columns"),
        (lambda ct: _replace_line(ct, 2, b"A" * 64), "base64"),  # no short final line: MAC line read as body
        (lambda ct: ct.replace(b"\n--- ", b"\n---", 1), "MAC line"),
        (lambda ct: ct.replace(b"\n--- ", b"\n--- x ", 1), "MAC line"),
        (lambda ct: ct[: ct.index(b"\n--- ") + 5] + b"AAAA\n" + bytes(40), "MAC is 3 bytes"),
        (lambda ct: b"age-encryption.org/v1\n-> a\n" + (b"A" * 64 + b"\n") * 17000, "longer than"),
        (lambda ct: b"age-encryption.org/v1\n-> X25519", "truncated header"),
    ],
)
def test_malformed_headers(mutate: Callable[[bytes], bytes], message: str) -> None:
    ct = encrypt(b"x", [ID_A.recipient()])
    with pytest.raises(DecryptionError, match=message):
        decrypt(mutate(ct), [ID_A])


def test_non_canonical_share_is_rejected() -> None:
    ct = encrypt(b"x", [ID_A.recipient()])
    share_line = ct.split(b"\n")[1]
    alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    last = alphabet.index(share_line[-1:])
    bumped = share_line[:-1] + alphabet[last + 1 : last + 2]  # sets a padding bit (testkit trick)
    with pytest.raises(DecryptionError, match="canonical"):
        decrypt(ct.replace(share_line, bumped), [ID_A])


def test_unwrap_contract() -> None:
    file_key = os.urandom(16)
    (ours,) = ID_A.recipient().wrap(file_key)
    grease = Stanza("x-grease", ("q",), b"\x00" * 20)
    assert ID_A.unwrap([grease, ours]) == file_key
    assert ID_B.unwrap([grease, ours]) is None
    assert ID_A.unwrap([]) is None
    malformed = [
        (Stanza("X25519", (), ours.body), "expected 1 argument"),
        (Stanza("X25519", (ours.args[0], "x"), ours.body), "expected 1 argument"),
        (Stanza("X25519", (b64(bytes(31)),), ours.body), "31 bytes"),
        (Stanza("X25519", (ours.args[0] + "=",), ours.body), "base64"),
        (Stanza("X25519", (b64(bytes(32)),), ours.body), "low-order"),
        (Stanza("X25519", ours.args, ours.body + b"\x00"), "wrapped file key is 33 bytes"),
    ]
    for stanza, message in malformed:
        with pytest.raises(DecryptionError, match=message):
            ID_A.unwrap([stanza, ours])


# ---------------------------------------------------------------------------------------------
# Keys: Bech32 codec, parsing, and never leaking secrets
# ---------------------------------------------------------------------------------------------

BIP173_VALID = [
    "A12UEL5L",
    "a12uel5l",
    "an83characterlonghumanreadablepartthatcontainsthenumber1andtheexcludedcharactersbio1tt5tgs",
    "abcdef1qpzry9x8gf2tvdw0s3jn54khce6mua7lmqqqxw",
    "11" + "q" * 82 + "c8247j",
    "split1checkupstagehandshakeupstreamerranterredcaperred2y9e3w",
    "?1ezyfcl",
]
BIP173_INVALID = [
    "\x201nwldj5",  # HRP character out of range
    "\x7f1axkwrx",
    "pzry9x0s0muk",  # no separator
    "1pzry9x0s0muk",  # empty HRP
    "x1b4n0q5v",  # invalid data character
    "li1dgmt3",  # too short checksum
    "A1G7SGD8",  # checksum computed with uppercase HRP
    "10a06t8",  # empty HRP
    "1qzzfhee",  # empty HRP
    "A1LQFN3A",  # valid Bech32m, not Bech32
    "a1lqfn3a",
]


@pytest.mark.parametrize("s", BIP173_VALID)
def test_bech32_valid_vectors(s: str) -> None:
    hrp, values = env._bech32_decode_5bit(s)
    assert hrp.lower() == s[: s.rfind("1")].lower()


@pytest.mark.parametrize("s", BIP173_INVALID)
def test_bech32_invalid_vectors(s: str) -> None:
    with pytest.raises(ValueError):
        env._bech32_decode_5bit(s)


def test_bech32_round_trip_without_length_limit() -> None:
    for n in (0, 1, 31, 32, 33, 100):
        payload = data_of(n)
        for hrp in ("age", "AGE-SECRET-KEY-"):
            encoded = env._bech32_encode(hrp, payload)
            assert encoded == (encoded.upper() if hrp.isupper() else encoded.lower())
            assert env._bech32_decode(encoded) == (hrp, payload)


def test_known_testkit_key_pair() -> None:
    # The public testkit identity, read from the vendored vector rather than repeated in code.
    text = (Path(__file__).parent / "fixtures" / "age" / "x25519").read_bytes().split(b"\n\n", 1)[0].decode()
    secret = next(line.split(": ", 1)[1] for line in text.splitlines() if line.startswith("identity: "))
    identity = X25519Identity.parse(secret)
    assert str(identity) == secret
    recipient = identity.recipient()
    assert X25519Recipient.parse(str(recipient)) == recipient
    assert str(recipient).startswith("age1") and len(str(recipient)) == 62


def _with_checksum(hrp: str, values: list[int]) -> str:
    polymod = env._bech32_polymod(env._bech32_hrp_expand(hrp) + values + [0] * 6) ^ 1
    checksum = [(polymod >> 5 * (5 - i)) & 31 for i in range(6)]
    return hrp + "1" + "".join(env._BECH32_CHARSET[v] for v in values + checksum)


GOOD = str(ID_A.recipient())
GOOD_VALUES = env._bech32_decode_5bit(GOOD)[1]


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (GOOD[:-1] + ("q" if GOOD[-1] != "q" else "p"), "checksum"),
        (GOOD[:20] + ("q" if GOOD[20] != "q" else "p") + GOOD[21:], "checksum"),
        (GOOD.upper(), "lowercase"),
        (GOOD[:10] + GOOD[10:].upper(), "mixed case"),
        (env._bech32_encode("agf", ID_A.recipient().public_bytes), "prefix"),
        (env._bech32_encode("bc", ID_A.recipient().public_bytes), "prefix"),
        (env._bech32_encode("age", ID_A.recipient().public_bytes[:31]), "length 31"),
        (env._bech32_encode("age", ID_A.recipient().public_bytes + b"\x01"), "length 33"),
        (_with_checksum("age", GOOD_VALUES[:-1] + [GOOD_VALUES[-1] | 1]), "padding"),
        (env._bech32_encode("age", bytes(32)), "low-order"),
        (GOOD[:30] + "b" + GOOD[31:], "invalid character"),
        (GOOD + " ", "invalid character"),
        ("", "separator"),
        ("age1", "too short"),
        ("age", "separator"),
        (str(ID_A), "secret key"),
    ],
    # Named, not shown: the values come from a key made at import, so they differ between processes (pytest-xdist
    # requires every worker to collect the same test ids), and one of them is a secret key.
    ids=(
        "checksum-last checksum-middle uppercase mixed-case prefix-agf prefix-bc length-31 length-33 padding low-order "
        "invalid-character trailing-space empty no-data no-separator secret-key"
    ).split(),
)
def test_bad_recipients(bad: str, message: str) -> None:
    with pytest.raises(InvalidRecipient, match=message) as info:
        X25519Recipient.parse(bad)
    assert bad not in str(info.value) or bad == ""
    assert str(ID_A) not in str(info.value)


SECRET = str(ID_A)


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (SECRET.lower(), "uppercase"),
        (SECRET[:20] + SECRET[20:].lower(), "mixed case"),
        (SECRET[:-1] + ("Q" if SECRET[-1] != "Q" else "P"), "checksum"),
        (env._bech32_encode("AGE-SECRET-KEY-", data_of(31)), "length 31"),
        (env._bech32_encode("AGE-SECRET-KEX-", data_of(32)), "prefix"),
        (GOOD, "public recipient"),
        (SECRET[:40] + "B" + SECRET[41:], "invalid character"),
    ],
    # Named, not shown: made from a key generated at import (see test_bad_recipients).
    ids=["lowercase", "mixed-case", "checksum", "length-31", "prefix", "public-recipient", "invalid-character"],
)
def test_bad_identities(bad: str, message: str) -> None:
    with pytest.raises(InvalidIdentity, match=message) as info:
        X25519Identity.parse(bad)
    text = str(info.value)
    assert bad not in text and SECRET not in text
    assert SECRET[16:].lower() not in text.lower()  # not even the data part


def test_secrets_never_in_messages_or_repr() -> None:
    data_part = SECRET[len(env.AGE_IDENTITY_HRP) + 1 :]
    messages: list[str] = []
    for attempt in (
        lambda: X25519Recipient.parse(SECRET),
        lambda: X25519Recipient.parse(SECRET.lower()),
        lambda: X25519Identity.parse(SECRET + "Q"),
        lambda: X25519Identity.parse(" " + SECRET),
        lambda: parse_identities("# comment\n" + SECRET[:-2] + "\n"),
        lambda: decrypt(encrypt(b"x", [ID_B.recipient()]), [ID_A]),
        lambda: decrypt(SECRET.encode(), [ID_A]),
    ):
        with pytest.raises(EnvelopeError) as info:
            attempt()
        messages.append(str(info.value))
    for message in messages:
        assert data_part.lower() not in message.lower(), message
    assert data_part not in repr(ID_A) and str(ID_A.recipient()) in repr(ID_A)


def test_parse_identities() -> None:
    text = f"# created: now\r\n# public key: {ID_A.recipient()}\r\n{ID_A}\r\n\n   \n{ID_B}  \n"
    assert [str(i) for i in parse_identities(text)] == [str(ID_A), str(ID_B)]
    with pytest.raises(InvalidIdentity, match="no secret keys"):
        parse_identities("# nothing here\n\n")
    with pytest.raises(InvalidIdentity, match=r"line 3: .*checksum"):
        parse_identities(f"{ID_A}\n\n{SECRET[:-1]}{'Q' if SECRET[-1] != 'Q' else 'P'}\n")
    with pytest.raises(InvalidIdentity, match="plugin"):
        parse_identities("AGE-PLUGIN-YUBIKEY-1QQQQQQ\n")


def test_identity_round_trip_and_equality() -> None:
    again = X25519Identity.parse(str(ID_C))
    assert str(again) == str(ID_C) and again.recipient() == ID_C.recipient()
    assert hash(again.recipient()) == hash(ID_C.recipient())
    assert ID_A.recipient() != ID_B.recipient()
    assert str(ID_C).startswith(env.AGE_IDENTITY_HRP + "1") and len(str(ID_C)) == 74
