"""The command line against a real `safeshare serve` subprocess on loopback, as a new user would drive it.

`serve`, and the commands whose process matters (standard input and output as files, the environment, the
exit status of the interpreter), run as real processes; the other commands run in-process through
`gateway.cli.main` — the same code the console script calls — which saves a Python start-up per call."""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import contextlib
import io
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyrage
import pytest

from gateway import cli
from tests.conftest import example, require_tool


def safeshare(home: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """`safeshare --home HOME ARGS` in-process: exit status, standard output and standard error, as a process
    would give them (argparse's usage errors included). Not for `serve`, which runs until stopped."""
    assert "serve" not in args[:1], "use serve() for a real server process"
    argv = ["--home", str(home), *args]

    def run() -> subprocess.CompletedProcess[str]:
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = cli.main(argv)
            except SystemExit as exc:  # argparse: --help, usage errors
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        return subprocess.CompletedProcess(["safeshare", *argv], code, out.getvalue(), err.getvalue())

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        r = run()
    else:
        # Called from an async test: the command's own asyncio.run needs a thread without a running loop.
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            r = pool.submit(run).result(timeout=60)
    if check and r.returncode:
        raise AssertionError(f"safeshare {args}: exit {r.returncode}\n{r.stdout}\n{r.stderr}")
    return r


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def call(
    url: str, token: str | None = None, data: bytes | None = None, ctype: str | None = None, method: str | None = None
) -> tuple[int, bytes]:
    req = urllib.request.Request(url, data=data, method=method)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    if ctype:
        req.add_header("Content-Type", ctype)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def multipart(meta: dict[str, Any], payload: bytes) -> tuple[bytes, str]:
    b = uuid.uuid4().hex
    body = (
        f'--{b}\r\nContent-Disposition: form-data; name="share"\r\nContent-Type: application/json\r\n\r\n'.encode()
        + json.dumps(meta).encode()
        + f'\r\n--{b}\r\nContent-Disposition: form-data; name="payload"; filename="p"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n".encode()
        + payload
        + f"\r\n--{b}--\r\n".encode()
    )
    return body, f"multipart/form-data; boundary={b}"


@contextlib.contextmanager
def serve(home: Path, log_path: Path, *extra: str) -> Iterator[str]:
    """A real `safeshare serve` on a free loopback port (with `extra` arguments, e.g. --dev); yields its base URL
    once /healthz answers."""
    port = free_port()
    log = open(log_path, "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway.cli", "--home", str(home), "serve", "--port", str(port), *extra],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if urllib.request.urlopen(url + "/healthz", timeout=1).status == 200:
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(log_path.read_text()) from None
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    home = tmp_path / "home"
    with serve(home, tmp_path / "server.log") as url:
        yield home, url


def dev_banner(log: str) -> dict[str, str]:
    """The token printed for each role by `serve --dev` (a line of two words: role, token)."""
    words = (line.split() for line in log.splitlines())
    return {w[0]: w[1] for w in words if len(w) == 2 and w[0] in {"practitioner", "recipient", "auditor", "admin"}}


def test_serve_dev_gives_a_new_user_everything_to_try_it(tmp_path: Path) -> None:
    """The README's first command: a demo recipient and a token per role, each of which works as printed."""
    home = tmp_path / "home"
    with serve(home, tmp_path / "dev.log", "--dev") as url:
        tok = dev_banner((tmp_path / "dev.log").read_text())
        assert set(tok) == {"practitioner", "recipient", "auditor", "admin"}
        identity_file = home / "keys" / "demo-recipient.agekey"
        assert identity_file.stat().st_mode & 0o077 == 0
        identity = pyrage.x25519.Identity.from_str(identity_file.read_text().split()[-1])

        payload = b"Referral notes for the demo recipient\n"
        body, ctype = multipart(
            {"recipients": ["demo-recipient"], "justification": example("share"), "payload_content_type": "text/plain"},
            payload,
        )
        status, resp = call(url + "/api/v1/shares", tok["practitioner"], body, ctype)
        assert status == 201, resp
        share_id = json.loads(resp)["share_id"]
        # The dev tokens carry names: the demo recipient reads who sent it, not "dev-practitioner" (issue 13).
        status, resp = call(url + "/api/v1/inbox", tok["recipient"])
        sender = json.loads(resp)["shares"][0]["from"]
        assert (sender["name"], sender["org_name"]) == ("Demo Practitioner", "Demo MASH")
        status, env = call(f"{url}/api/v1/shares/{share_id}/envelope", tok["recipient"])
        assert status == 200 and pyrage.decrypt(env, [identity]) == payload
        status, resp = call(url + "/api/v1/ledger?subject=CASE-2026-0412", tok["auditor"])
        assert status == 200 and share_id in resp.decode()

        # The recipient token carries organisation and e-mail, so "Set up receiving" in the extension works
        # with it; the administrator's token approves (the demo recipient's key is rotated).
        browser_key = pyrage.x25519.Identity.generate().to_public()
        enrol = json.dumps({"age_recipient": str(browser_key)}).encode()
        status, resp = call(url + "/api/v1/recipients/enrol", tok["recipient"], enrol, "application/json")
        assert status == 202, resp  # accepted, pending the administrator's approval
        assert json.loads(resp)["enrolment"]["org"] == "Demo MASH"
        status, resp = call(url + "/api/v1/recipients/demo-recipient/approve", tok["admin"], b"{}", "application/json")
        assert status == 200, resp
        status, resp = call(url + "/api/v1/recipients/me", tok["recipient"])
        me = json.loads(resp)
        assert me["recipient"]["age_recipient"] == str(browser_key) and me["recipient"]["email"] == "demo@example.org"

    # Again on the same home: the same identity file, no second demo recipient.
    with serve(home, tmp_path / "dev2.log", "--dev"):
        assert identity_file.read_text().split()[-1] == str(identity)
    listed = json.loads(safeshare(home, "recipient", "list", "--json").stdout)
    assert [r["id"] for r in listed] == ["demo-recipient"]


def test_token_issue_carries_names(tmp_path: Path) -> None:
    """`--name` and `--org-name` become the `name` and `org_name` claims people read instead of identifiers."""
    home = tmp_path / "home"
    tok = safeshare(
        home, "token", "issue", "--sub", "pat", "--role", "practitioner", "--org", "hp",
        "--name", "Pat Jones", "--org-name", "Hereford Primary School",
    ).stdout.strip()  # fmt: skip
    claims = json.loads(base64.urlsafe_b64decode(tok.split(".")[1] + "=="))
    assert (claims["sub"], claims["org"], claims["name"], claims["org_name"]) == (
        "pat", "hp", "Pat Jones", "Hereford Primary School"
    )  # fmt: skip
    assert "--org-name" in safeshare(home, "token", "issue", "--help").stdout


def test_init_is_idempotent_and_never_overwrites_keys(tmp_path: Path) -> None:
    home = tmp_path / "home"
    safeshare(home, "init")
    keys = {p.name: p.read_bytes() for p in (home / "keys").iterdir()}
    assert set(keys) >= {"token-issuer.ed25519.pem", "ledger-signing.ed25519.pem", "payload-digest.hmac"}
    for p in (home / "keys").iterdir():
        assert p.stat().st_mode & 0o077 == 0, f"{p.name} is readable by others"
    assert (home / "data" / "safeshare.sqlite3").exists()
    safeshare(home, "init")
    assert {p.name: p.read_bytes() for p in (home / "keys").iterdir()} == keys


def test_home_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "envhome"
    monkeypatch.setenv("SAFESHARE_HOME", str(home))
    assert cli.main(["init"]) == 0
    assert (home / "keys" / "token-issuer.ed25519.pem").exists()


def test_recipient_add_validates_the_age_key(tmp_path: Path) -> None:
    home = tmp_path / "home"
    r = safeshare(
        home,
        "recipient",
        "add",
        "alice",
        "--name",
        "Alice",
        "--org",
        "MASH",
        "--email",
        "a@example.org",
        "--age-recipient",
        "age1qqqqnotakey",
        check=False,
    )
    assert r.returncode == 2 and "age_recipient" in r.stderr
    r = safeshare(home, "token", "issue", "--sub", "x", "--role", "wizard", check=False)
    assert r.returncode != 0


def test_share_and_fetch_through_the_cli(served: tuple[Path, str], tmp_path: Path) -> None:
    home, url = served
    alice = pyrage.x25519.Identity.generate()
    (tmp_path / "alice.key").write_text(f"# test identity\n{alice}\n")
    safeshare(
        home,
        "recipient",
        "add",
        "alice",
        "--name",
        "Alice",
        "--org",
        "MASH",
        "--email",
        "alice@example.org",
        "--age-recipient",
        str(alice.to_public()),
    )
    listed = json.loads(safeshare(home, "recipient", "list", "--json").stdout)
    assert [r["id"] for r in listed] == ["alice"] and listed[0]["status"] == "active"

    tok = {
        role: safeshare(home, "token", "issue", "--sub", sub, "--role", role, "--org", "t").stdout.split()[-1]
        for role, sub in (("practitioner", "pat"), ("recipient", "alice"), ("auditor", "audrey"))
    }
    payload = os.urandom(300_000) + "…the end".encode()
    body, ctype = multipart(
        {
            "recipients": ["alice"],
            "justification": example("share"),
            "payload_content_type": "application/octet-stream",
        },
        payload,
    )
    status, resp = call(url + "/api/v1/shares", tok["practitioner"], body, ctype)
    assert status == 201, resp
    share_id = json.loads(resp)["share_id"]

    out = tmp_path / "out.bin"
    fetch = ("fetch", "--gateway", url, "--token", tok["recipient"])
    safeshare(home, *fetch, "--identity", str(tmp_path / "alice.key"), share_id, "-o", str(out))
    assert out.read_bytes() == payload

    # To standard output, as `age -d` would (a real process: its standard output is the decrypted bytes).
    r2 = subprocess.run(
        [
            sys.executable,
            "-m",
            "gateway.cli",
            "fetch",
            "--gateway",
            url,
            "--token",
            tok["recipient"],
            "--identity",
            str(tmp_path / "alice.key"),
            share_id,
        ],
        capture_output=True,
        timeout=60,
    )
    assert r2.returncode == 0 and r2.stdout == payload

    # A wrong identity cannot decrypt, and says so.
    other = pyrage.x25519.Identity.generate()
    (tmp_path / "other.key").write_text(f"{other}\n")
    r3 = safeshare(
        home, *fetch, "--identity", str(tmp_path / "other.key"), share_id, "-o", str(tmp_path / "nope"), check=False
    )
    assert r3.returncode == 1 and "decrypt" in r3.stderr and not (tmp_path / "nope").exists()

    # Both fetches are in the ledger, and only they: the wrong identity was refused on the envelope's header,
    # before the counted download (issue 13). A disabled recipient can no longer be shared with.
    status, resp = call(url + "/api/v1/ledger?kind=fetch", tok["auditor"])
    assert status == 200 and len(json.loads(resp)["entries"]) == 2
    safeshare(home, "recipient", "disable", "alice")
    status, resp = call(url + "/api/v1/shares", tok["practitioner"], body, ctype)
    assert status == 422 and json.loads(resp)["disabled"] == ["alice"]


def test_envelope_decrypts_with_the_age_cli(served: tuple[Path, str], tmp_path: Path) -> None:
    age = require_tool("age")
    keygen = require_tool("age-keygen")
    home, url = served
    subprocess.run([keygen, "-o", str(tmp_path / "k")], check=True, capture_output=True)
    pub = subprocess.run([keygen, "-y", str(tmp_path / "k")], check=True, capture_output=True, text=True).stdout
    safeshare(
        home,
        "recipient",
        "add",
        "bob",
        "--name",
        "Bob",
        "--org",
        "PPU",
        "--email",
        "bob@example.org",
        "--age-recipient",
        pub.strip(),
    )
    pt = safeshare(home, "token", "issue", "--sub", "pat", "--role", "practitioner").stdout.strip()
    rt = safeshare(home, "token", "issue", "--sub", "bob", "--role", "recipient").stdout.strip()
    payload = os.urandom(200_000)
    body, ctype = multipart({"recipients": ["bob"], "justification": example("share")}, payload)
    status, resp = call(url + "/api/v1/shares", pt, body, ctype)
    assert status == 201, resp
    status, blob = call(url + f"/api/v1/shares/{json.loads(resp)['share_id']}/envelope", rt)
    assert status == 200
    out = subprocess.run([age, "-d", "-i", str(tmp_path / "k")], input=blob, capture_output=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout == payload


def test_share_and_decide_commands(served: tuple[Path, str], tmp_path: Path) -> None:
    home, url = served
    alice = pyrage.x25519.Identity.generate()
    safeshare(
        home,
        "recipient",
        "add",
        "alice",
        "--name",
        "Alice",
        "--org",
        "MASH",
        "--email",
        "alice@example.org",
        "--age-recipient",
        str(alice.to_public()),
    )
    pt = safeshare(home, "token", "issue", "--sub", "pat", "--role", "practitioner").stdout.strip()
    rt = safeshare(home, "token", "issue", "--sub", "alice", "--role", "recipient").stdout.strip()
    payload = tmp_path / "notes.txt"
    payload.write_bytes(os.urandom(2_500_000))
    good = tmp_path / "share.json"
    good.write_text(json.dumps(example("share")))
    incomplete = example("share")
    del incomplete["rules"]["6_necessary_proportionate"]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(incomplete))

    r = safeshare(
        home,
        "share",
        "--gateway",
        url,
        "--token",
        pt,
        "--to",
        "alice",
        "--justification",
        str(bad),
        str(payload),
        check=False,
    )
    assert r.returncode == 1
    assert "justification_incomplete" in r.stderr and "rule 6" in r.stderr

    r = safeshare(
        home,
        "share",
        "--gateway",
        url,
        "--token",
        pt,
        "--to",
        "alice",
        "--justification",
        str(good),
        "--max-downloads",
        "1",
        str(payload),
    )
    share_id = json.loads(r.stdout)["share_id"]
    status, blob = call(url + f"/api/v1/shares/{share_id}/envelope", rt)
    assert status == 200 and pyrage.decrypt(blob, [alice]) == payload.read_bytes()

    ns = tmp_path / "not-share.json"
    ns.write_text(json.dumps(example("not-share")))
    r = safeshare(home, "decide", "--gateway", url, "--token", pt, "--justification", str(ns))
    assert json.loads(r.stdout)["decision"] == "not_share"


def test_a_malformed_token_argument_is_refused_cleanly(tmp_path: Path) -> None:
    r = safeshare(
        tmp_path / "home",
        "fetch",
        "--gateway",
        "http://127.0.0.1:9",
        "--token",
        "abc\ndef",
        "--identity",
        str(tmp_path / "none"),
        "sh_x",
        check=False,
    )
    assert r.returncode == 2 and "Traceback" not in r.stderr and "--token" in r.stderr
