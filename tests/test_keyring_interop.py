"""The browser keyring (extension/lib/keyring.js, run in Node on the bundled age-encryption) against
independent age implementations: rage (pyrage), the Go `age` CLI, and the gateway's own Python encryptor.

What a recipient relies on: a key backup made in the browser opens with any age tool and its identities
decrypt with the CLI; a backup made with those tools restores in the browser; and whatever the gateway
encrypts for a browser-made key, the browser decrypts byte for byte."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import select
import subprocess
import termios
import time
from pathlib import Path
from typing import Any

import pyrage
import pytest

from gateway import envelope
from tests.conftest import require_tool
from tests.extension_build import ensure_built

KEYRING = (Path(__file__).resolve().parents[1] / "extension" / "lib" / "keyring.js").as_uri()
PASSPHRASE = "plum orbit — kettle 47 lantern"


@pytest.fixture(scope="module")
def node() -> str:
    path = require_tool("node")
    ensure_built()
    return path


def run_node(node: str, body: str, **args: Any) -> Any:
    """Run `body` as an ES module with `keyring` imported and `args` (JSON) in scope; it returns JSON by
    printing it. Paths go through the environment, never through the script text."""
    script = (
        f"import * as keyring from {json.dumps(KEYRING)};\n"
        "import { readFileSync, writeFileSync } from 'node:fs';\n"
        "const args = JSON.parse(process.env.KEYRING_ARGS);\n"
        f"const result = await (async () => {{ {body} }})();\n"
        "process.stdout.write(JSON.stringify(result ?? null));\n"
    )
    r = subprocess.run(
        [node, "--input-type=module", "-e", script],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "KEYRING_ARGS": json.dumps(args)},
        check=False,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout)


def age_with_passphrase(age: str, args: list[str], passphrase: str, timeout: float = 60.0) -> None:
    """Run the age CLI, which reads passphrases only from its terminal, on a pseudo-terminal."""
    master, slave = pty.openpty()

    def controlling_tty() -> None:
        os.setsid()
        fcntl.ioctl(slave, termios.TIOCSCTTY, 0)

    proc = subprocess.Popen(
        [age, *args], stdin=slave, stdout=subprocess.DEVNULL, stderr=slave, preexec_fn=controlling_tty
    )
    os.close(slave)
    seen = b""
    answered = 0
    deadline = time.monotonic() + timeout
    try:
        while proc.poll() is None and time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if not ready:
                continue
            try:
                chunk = os.read(master, 4096)
            except OSError:
                break
            seen += chunk
            # One answer per prompt ("Enter passphrase…", and "Confirm passphrase…" when encrypting).
            while seen.lower().count(b"passphrase") > answered:
                os.write(master, passphrase.encode() + b"\r")
                answered += 1
        proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
    assert proc.returncode == 0, f"age {' '.join(args)} failed: {seen.decode(errors='replace')}"


def test_browser_backup_opens_with_rage_and_its_identity_file_works_with_the_age_cli(node: str, tmp_path: Path) -> None:
    age = require_tool("age")
    made = run_node(
        node,
        """
        const older = await keyring.generateKey();
        const newer = await keyring.generateKey();
        const armored = await keyring.lock([older, newer], args.passphrase);
        writeFileSync(args.backup, armored);
        return { keys: [older, newer] };
        """,
        passphrase=PASSPHRASE,
        backup=str(tmp_path / "safeshare-keys.age"),
    )
    keys = made["keys"]
    backup = (tmp_path / "safeshare-keys.age").read_bytes()
    assert backup.startswith(b"-----BEGIN AGE ENCRYPTED FILE-----\n")

    # rage opens it with the passphrase; the plaintext is an ordinary age identity file.
    identity_file = pyrage.passphrase.decrypt(backup, PASSPHRASE).decode()
    assert [line for line in identity_file.splitlines() if line.startswith("AGE-SECRET-KEY-1")] == [
        k["identity"] for k in keys
    ]
    assert f"# public key: {keys[1]['recipient']}" in identity_file
    with pytest.raises(pyrage.DecryptError):
        pyrage.passphrase.decrypt(backup, PASSPHRASE + "!")
    # rage agrees on each public key.
    assert [str(pyrage.x25519.Identity.from_str(k["identity"]).to_public()) for k in keys] == [
        k["recipient"] for k in keys
    ]

    # The Go CLI opens the same backup with the passphrase, typed on its terminal.
    age_with_passphrase(
        age, ["-d", "-o", str(tmp_path / "cli-identities.txt"), str(tmp_path / "safeshare-keys.age")], PASSPHRASE
    )
    assert (tmp_path / "cli-identities.txt").read_text() == identity_file

    # ... and uses the identity file to decrypt files made for either key, by the CLI and by rage.
    ids = tmp_path / "identities.txt"
    ids.write_text(identity_file)
    payload = os.urandom(150_000)
    (tmp_path / "payload.bin").write_bytes(payload)
    for i, key in enumerate(keys):
        by_cli = tmp_path / f"cli-{i}.age"
        subprocess.run([age, "-r", key["recipient"], "-o", str(by_cli), str(tmp_path / "payload.bin")], check=True)
        by_rage = tmp_path / f"rage-{i}.age"
        by_rage.write_bytes(pyrage.encrypt(payload, [pyrage.x25519.Recipient.from_str(key["recipient"])]))
        for encrypted in (by_cli, by_rage):
            out = subprocess.run([age, "-d", "-i", str(ids), str(encrypted)], capture_output=True, check=True).stdout
            assert out == payload


def test_backups_made_by_age_tools_restore_in_the_browser(node: str, tmp_path: Path) -> None:
    """A recipient who made their backup (or keys) with rage or `age -p` can restore it in the extension."""
    age = require_tool("age")
    keygen = require_tool("age-keygen")
    generated = subprocess.run(
        [str(keygen), "-o", str(tmp_path / "key.txt")], capture_output=True, text=True, check=True
    )
    recipient = generated.stderr.split("Public key:")[1].strip()
    identity_text = (tmp_path / "key.txt").read_text()
    (tmp_path / "rage.age").write_bytes(pyrage.passphrase.encrypt(identity_text.encode(), PASSPHRASE))
    age_with_passphrase(age, ["-p", "-a", "-o", str(tmp_path / "cli.age"), str(tmp_path / "key.txt")], PASSPHRASE)
    restored = run_node(
        node,
        """
        const fromRage = await keyring.unlock(new Uint8Array(readFileSync(args.rage)), args.passphrase);
        const fromCli = await keyring.unlock(readFileSync(args.cli, "utf8"), args.passphrase);
        let wrong = null;
        try { await keyring.unlock(readFileSync(args.cli, "utf8"), args.passphrase + "x"); }
        catch (e) { wrong = e.code; }
        return { fromRage, fromCli, wrong };
        """,
        rage=str(tmp_path / "rage.age"),
        cli=str(tmp_path / "cli.age"),
        passphrase=PASSPHRASE,
    )
    secret = next(line for line in identity_text.splitlines() if line.startswith("AGE-SECRET-KEY-1"))
    created = next(line for line in identity_text.splitlines() if line.startswith("# created:")).split(": ", 1)[1]
    expected = [{"identity": secret, "recipient": recipient, "created": created}]
    assert restored["fromRage"] == expected
    assert restored["fromCli"] == expected
    assert restored["wrong"] == "wrong_passphrase"


def test_gateway_envelopes_decrypt_in_the_browser_keyring(node: str, tmp_path: Path) -> None:
    """What the gateway encrypts (its own Python age encryptor) for browser-made keys, the browser opens,
    including after a key rotation and in a file with several recipients (a team share or escrow)."""
    keys = run_node(node, "return [await keyring.generateKey(), await keyring.generateKey()];")
    older, newer = keys
    other = pyrage.x25519.Identity.generate()
    sizes = {"empty": 0, "one-chunk": 1000, "exact-chunk": 64 * 1024, "several-chunks": 3 * 64 * 1024 + 123}
    cases: dict[str, dict[str, Any]] = {}
    for name, size in sizes.items():
        payload = os.urandom(size)
        to = envelope.X25519Recipient.parse(older["recipient"] if size % 2 == 0 else newer["recipient"])
        recipients = [envelope.X25519Recipient.parse(str(other.to_public())), to]
        (tmp_path / f"{name}.age").write_bytes(envelope.encrypt(payload, recipients))
        (tmp_path / f"{name}.expected").write_bytes(payload)
        cases[name] = {"envelope": str(tmp_path / f"{name}.age"), "out": str(tmp_path / f"{name}.out")}
    stranger = envelope.encrypt(b"not for you", [envelope.X25519Recipient.parse(str(other.to_public()))])
    (tmp_path / "stranger.age").write_bytes(stranger)

    result = run_node(
        node,
        """
        for (const c of Object.values(args.cases)) {
          const plain = await keyring.decrypt(new Uint8Array(readFileSync(c.envelope)), args.keys);
          writeFileSync(c.out, plain);
        }
        try { await keyring.decrypt(new Uint8Array(readFileSync(args.stranger)), args.keys); return "opened"; }
        catch (e) { return e.code; }
        """,
        cases=cases,
        keys=[newer, older],
        stranger=str(tmp_path / "stranger.age"),
    )
    for name in sizes:
        assert (tmp_path / f"{name}.out").read_bytes() == (tmp_path / f"{name}.expected").read_bytes(), name
    assert result == "no_matching_key"
