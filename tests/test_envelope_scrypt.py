"""Passphrase (scrypt) envelopes and header re-wrap, checked against pyrage and the `age` CLI both ways."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pyrage
import pytest

from gateway import envelope as e

from .age_tty import age_with_passphrase
from .conftest import require_tool

PASS = "correct horse battery staple"


def test_scrypt_file_opens_with_pyrage_and_age(tmp_path: Path) -> None:
    data = os.urandom(150_000)
    blob = e.encrypt(data, [e.ScryptRecipient(PASS)])
    stanzas, _ = e.read_header(io.BytesIO(blob))
    assert [(s.type, s.args[1]) for s in stanzas] == [("scrypt", "18")]
    assert pyrage.passphrase.decrypt(blob, PASS) == data
    age = require_tool("age")
    (tmp_path / "f.age").write_bytes(blob)
    rc, err = age_with_passphrase([age, "-d", "-o", str(tmp_path / "out"), str(tmp_path / "f.age")], PASS)
    assert rc == 0, err
    assert (tmp_path / "out").read_bytes() == data
    rc, err = age_with_passphrase([age, "-d", "-o", str(tmp_path / "bad"), str(tmp_path / "f.age")], PASS + "x")
    assert rc != 0 and b"incorrect passphrase" in err


def test_files_from_pyrage_and_age_open_with_scrypt_identity(tmp_path: Path) -> None:
    data = b"referral notes\n" * 1000
    assert e.decrypt(pyrage.passphrase.encrypt(data, PASS), [e.ScryptIdentity(PASS)]) == data
    age = require_tool("age")
    (tmp_path / "in").write_bytes(data)
    rc, err = age_with_passphrase([age, "-p", "-o", str(tmp_path / "f.age"), str(tmp_path / "in")], PASS, prompts=2)
    assert rc == 0, err
    assert e.decrypt((tmp_path / "f.age").read_bytes(), [e.ScryptIdentity(PASS)]) == data


def test_scrypt_refusals() -> None:
    blob = e.encrypt(b"x", [e.ScryptRecipient(PASS, work_factor=10)])
    with pytest.raises(e.DecryptionError, match="incorrect passphrase"):
        e.decrypt(blob, [e.ScryptIdentity("not the passphrase")])
    with pytest.raises(e.DecryptionError, match="above the maximum"):
        e.decrypt(blob, [e.ScryptIdentity(PASS, max_work_factor=9)])
    # The spec: an scrypt stanza must be alone, on both sides.
    with pytest.raises(e.InvalidRecipient, match="only recipient"):
        e.encrypt(b"x", [e.ScryptRecipient(PASS), e.X25519Identity.generate().recipient()])
    other = e.X25519Identity.generate().recipient().wrap(bytes(16))[0]
    stanzas, raw = e.read_header(io.BytesIO(blob))
    with pytest.raises(e.DecryptionError, match="only one"):
        e.ScryptIdentity(PASS).unwrap([*stanzas, other])
    with pytest.raises(e.InvalidRecipient):
        e.ScryptRecipient("")


def test_recipient_and_identity_protocols() -> None:
    ident = e.X25519Identity.generate()
    for r in (ident.recipient(), e.ScryptRecipient(PASS, work_factor=10)):
        assert isinstance(r, e.Recipient)
    for i in (ident, e.ScryptIdentity(PASS)):
        assert isinstance(i, e.Identity)


def test_rewrap_keeps_payload_bytes_and_opens_with_new_key_only(tmp_path: Path) -> None:
    holding = e.X25519Identity.generate()
    new = pyrage.x25519.Identity.generate()
    data = os.urandom(3 * e.CHUNK_SIZE + 17)
    blob = e.encrypt(data, [holding.recipient()])
    dst = io.BytesIO()
    old_header, new_header = e.rewrap_stream(
        io.BytesIO(blob), dst, [holding], [e.X25519Recipient.parse(str(new.to_public()))]
    )
    out = dst.getvalue()
    assert blob.startswith(old_header) and out.startswith(new_header)
    assert out[len(new_header) :] == blob[len(old_header) :]  # nonce + payload untouched
    assert pyrage.decrypt(out, [new]) == data
    with pytest.raises(e.DecryptionError):
        e.decrypt(out, [holding])  # the held wrapping is not in the new file
    (tmp_path / "k").write_text(str(new))
    age = require_tool("age")
    import subprocess

    done = subprocess.run([age, "-d", "-i", str(tmp_path / "k")], input=out, capture_output=True, check=False)
    assert done.returncode == 0 and done.stdout == data


def test_rewrap_header_is_pure_and_checks_the_file_key() -> None:
    holding = e.X25519Identity.generate()
    blob = e.encrypt(b"payload", [holding.recipient()])
    _, raw = e.read_header(io.BytesIO(blob))
    file_key = e.unwrap_header(raw, [holding])
    new = e.X25519Identity.generate()
    header = e.rewrap_header(raw, file_key, [new.recipient()])
    assert e.decrypt(header + blob[len(raw) :], [new]) == b"payload"
    with pytest.raises(e.DecryptionError, match="MAC"):
        e.rewrap_header(raw, bytes(16), [new.recipient()])
    # To a passphrase too: the same payload, now opened with the passphrase.
    header = e.rewrap_header(raw, file_key, [e.ScryptRecipient(PASS, work_factor=10)])
    assert pyrage.passphrase.decrypt(header + blob[len(raw) :], PASS) == b"payload"


# Official testkit scrypt vectors (headers only; see tests/fixtures/age/scrypt-headers/README.md).
SCRYPT_VECTORS = Path(__file__).parent / "fixtures" / "age" / "scrypt-headers"


def _vector(name: str) -> tuple[dict[str, list[str]], bytes]:
    preamble, _, header = (SCRYPT_VECTORS / name).read_bytes().partition(b"\n\n")
    fields: dict[str, list[str]] = {}
    for line in preamble.decode().splitlines():
        key, _, value = line.partition(": ")
        fields.setdefault(key, []).append(value)
    return fields, header


@pytest.mark.parametrize("name", ["scrypt_and_x25519", "scrypt_double", "scrypt_work_factor_23"])
def test_testkit_scrypt_vectors_fail_at_the_header(name: str) -> None:
    fields, header = _vector(name)
    assert fields["expect"] == ["header failure"]
    with pytest.raises(e.DecryptionError) as exc:
        e.unwrap_header(header, [e.ScryptIdentity(p) for p in fields["passphrase"]])
    assert "incorrect passphrase" not in str(exc.value)  # refused for its shape, not for a wrong passphrase


@pytest.mark.parametrize("name", ["scrypt_and_x25519", "scrypt_double"])
def test_testkit_scrypt_stanza_alone_gives_the_kits_file_key(name: str) -> None:
    """Our scrypt KDF and unwrap agree with the reference: the vector's stanza, taken alone, yields its file key."""
    fields, header = _vector(name)
    stanzas, _ = e.read_header(io.BytesIO(header))
    first = next(s for s in stanzas if s.type == "scrypt")
    file_key = e.ScryptIdentity(fields["passphrase"][0]).unwrap([first])
    assert file_key == bytes.fromhex(fields["file key"][0])
    if name == "scrypt_double":  # and the header MAC the reference computed with it matches ours
        parsed = e._parse_header(io.BytesIO(header))
        assert e._header_mac(file_key, parsed.mac_input) == parsed.mac
