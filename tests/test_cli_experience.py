"""Issue 13, the command line: progress on a terminal only, the token and gateway from the environment or a file,
a wrong identity that uses up no download, `ledger verify` that never says "OK" with nothing signed, `-o` that
never overwrites silently, one error format, and recall (`revoke` with a reason, `sent` with who opened what).

One real `safeshare serve` on loopback for the module; the commands whose terminal matters run as real
processes (stderr on a pseudo-terminal, or on a pipe), the others in-process through `gateway.cli.main`."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pyrage
import pytest

from tests.conftest import example
from tests.test_cli import call, safeshare, serve

ERROR_LINE = re.compile(r"^safeshare: error: \S")


@dataclass
class World:
    home: Path
    url: str
    tmp: Path
    practitioner: str
    recipient: str
    auditor: str
    identity: Path  # alice's
    wrong_identity: Path
    justification: Path


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("cli-experience")
    home = tmp / "home"
    with serve(home, tmp / "server.log") as url:
        alice, other = pyrage.x25519.Identity.generate(), pyrage.x25519.Identity.generate()
        (tmp / "alice.key").write_text(f"{alice}\n")
        (tmp / "other.key").write_text(f"{other}\n")
        safeshare(home, "recipient", "add", "alice", "--name", "Alice", "--org", "MASH", "--email", "a@example.org",
                  "--age-recipient", str(alice.to_public()))  # fmt: skip
        tok = {
            role: safeshare(home, "token", "issue", "--sub", sub, "--role", role, "--org", "t").stdout.strip()
            for role, sub in (("practitioner", "pat"), ("recipient", "alice"), ("auditor", "audrey"))
        }
        (tmp / "justification.json").write_text(json.dumps(example("share")))
        yield World(
            home,
            url,
            tmp,
            tok["practitioner"],
            tok["recipient"],
            tok["auditor"],
            tmp / "alice.key",
            tmp / "other.key",
            tmp / "justification.json",
        )


def share(w: World, payload: Path, *extra: str) -> str:
    r = safeshare(w.home, "share", "--gateway", w.url, "--token", w.practitioner, "--to", "alice",
                  "--justification", str(w.justification), *extra, str(payload))  # fmt: skip
    return str(json.loads(r.stdout)["share_id"])


def sent_view(w: World, share_id: str) -> dict[str, object]:
    r = safeshare(w.home, "sent", "--gateway", w.url, "--token", w.practitioner, "--json")
    return next(s for s in json.loads(r.stdout) if s["id"] == share_id)


def payload_file(w: World, name: str, size: int = 50_000) -> Path:
    path = w.tmp / name
    path.write_bytes(os.urandom(size))
    return path


# -- the token and the gateway ---------------------------------------------------------------------------------


def test_token_and_gateway_from_the_environment_or_a_token_file(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    w = world
    payload = payload_file(w, "env.bin")
    monkeypatch.setenv("SAFESHARE_GATEWAY", w.url)
    monkeypatch.setenv("SAFESHARE_TOKEN", w.practitioner)
    r = safeshare(w.home, "share", "--to", "alice", "--justification", str(w.justification), str(payload))
    share_id = json.loads(r.stdout)["share_id"]

    # --token-file wins over the environment; here it is the recipient's token, and the fetch works with it.
    (w.tmp / "recipient.token").write_text(w.recipient + "\n")
    out = w.tmp / "env.out"
    safeshare(w.home, "fetch", "--token-file", str(w.tmp / "recipient.token"), "--identity", str(w.identity),
              share_id, "-o", str(out))  # fmt: skip
    assert out.read_bytes() == payload.read_bytes()
    r = safeshare(w.home, "sent")  # gateway and token from the environment
    assert share_id in r.stdout

    # Missing, doubled or empty: refused before anything is sent, in the one error format, exit 2.
    monkeypatch.delenv("SAFESHARE_TOKEN")
    r = safeshare(w.home, "sent", check=False)
    assert r.returncode == 2 and ERROR_LINE.match(r.stderr) and "SAFESHARE_TOKEN" in r.stderr
    r = safeshare(w.home, "sent", "--token", w.practitioner, "--token-file", str(w.tmp / "recipient.token"),
                  check=False)  # fmt: skip
    assert r.returncode == 2 and "not both" in r.stderr
    (w.tmp / "empty.token").write_text("")
    r = safeshare(w.home, "sent", "--token-file", str(w.tmp / "empty.token"), check=False)
    assert r.returncode == 2 and "empty" in r.stderr
    monkeypatch.delenv("SAFESHARE_GATEWAY")
    r = safeshare(w.home, "sent", "--token", w.practitioner, check=False)
    assert r.returncode == 2 and ERROR_LINE.match(r.stderr) and "SAFESHARE_GATEWAY" in r.stderr


def test_safeshare_gateway_does_not_turn_a_local_ledger_verify_remote(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    deadline = time.monotonic() + 20  # the gateway signs within a second of new entries
    while call(world.url + "/api/v1/ledger/checkpoint")[0] != 200 and time.monotonic() < deadline:
        time.sleep(0.2)
    monkeypatch.setenv("SAFESHARE_GATEWAY", "http://127.0.0.1:9")
    r = safeshare(world.home, "ledger", "verify")
    assert r.returncode == 0 and "ledger OK" in r.stdout


# -- a wrong identity uses up no download ----------------------------------------------------------------------


def test_a_fetch_with_the_wrong_identity_uses_up_no_download(world: World) -> None:
    w = world
    payload = payload_file(w, "once.bin")
    share_id = share(w, payload, "--max-downloads", "1")
    fetch = ("fetch", "--gateway", w.url, "--token", w.recipient)
    for _ in range(2):
        r = safeshare(w.home, *fetch, "--identity", str(w.wrong_identity), share_id, "-o", str(w.tmp / "x"),
                      check=False)  # fmt: skip
        assert r.returncode == 1 and "no download was used up" in r.stderr and not (w.tmp / "x").exists()
    mine = sent_view(w, share_id)["recipients"][0]  # type: ignore[index]
    assert mine["downloads"] == 0 and mine["state"] == "active" and mine["first_downloaded_at"] is None

    # The one permitted download is still there for the right key; then the share is used up.
    safeshare(w.home, *fetch, "--identity", str(w.identity), share_id, "-o", str(w.tmp / "once.out"))
    assert (w.tmp / "once.out").read_bytes() == payload.read_bytes()
    r = safeshare(w.home, *fetch, "--identity", str(w.identity), share_id, "-o", str(w.tmp / "twice"), check=False)
    assert r.returncode == 1 and ERROR_LINE.match(r.stderr) and "410" in r.stderr


def test_the_header_route_is_the_recipients_own_and_uncounted(world: World) -> None:
    w = world
    share_id = share(w, payload_file(w, "hdr.bin"), "--max-downloads", "1")
    url = f"{w.url}/api/v1/shares/{share_id}/envelope/header"
    for _ in range(3):
        status, header = call(url, w.recipient)
        assert status == 200 and header.startswith(b"age-encryption.org/v1\n") and b"\n--- " in header
    status, body = call(url, w.practitioner)  # not a recipient: the same 403/404 as the envelope
    assert status in (403, 404), body
    status, body = call(f"{w.url}/api/v1/shares/sh_{'a' * 24}/envelope/header", w.recipient)
    assert status == 404 and json.loads(body)["error"] == "not_found"
    status, _ = call(url, w.recipient, method="HEAD")
    assert status == 405
    status, resp = call(f"{w.url}/api/v1/ledger?kind=fetch&limit=500", w.auditor)
    assert status == 200 and not [e for e in json.loads(resp)["entries"] if e["entry"]["share_id"] == share_id]
    assert sent_view(w, share_id)["recipients"][0]["downloads"] == 0  # type: ignore[index]


# -- -o never overwrites silently ------------------------------------------------------------------------------


def test_output_is_never_overwritten_without_force(world: World) -> None:
    w = world
    payload = payload_file(w, "ow.bin")
    share_id = share(w, payload)
    out = w.tmp / "precious.txt"
    out.write_text("do not lose me")
    fetch = ("fetch", "--gateway", w.url, "--token", w.recipient, "--identity", str(w.identity), share_id)
    r = safeshare(w.home, *fetch, "-o", str(out), check=False)
    assert r.returncode == 2 and "--force" in r.stderr and ERROR_LINE.match(r.stderr)
    assert out.read_text() == "do not lose me"
    assert sent_view(w, share_id)["recipients"][0]["downloads"] == 0  # type: ignore[index]  # refused first
    safeshare(w.home, *fetch, "-o", str(out), "--force")
    assert out.read_bytes() == payload.read_bytes()

    # Into a directory: the file named after the share is not replaced either.
    d = w.tmp / "outdir"
    d.mkdir()
    (d / f"{share_id}.bin").write_text("earlier")
    r = safeshare(w.home, *fetch, "-o", str(d), check=False)
    assert r.returncode == 2 and (d / f"{share_id}.bin").read_text() == "earlier"
    assert [p.name for p in d.iterdir()] == [f"{share_id}.bin"]  # no temporary left behind

    cp = w.tmp / "cp.note"
    cp.write_text("mine")
    r = safeshare(w.home, "ledger", "checkpoint", "--gateway", w.url, "-o", str(cp), check=False)
    assert r.returncode == 2 and cp.read_text() == "mine"
    safeshare(w.home, "ledger", "checkpoint", "--gateway", w.url, "-o", str(cp), "--force")
    assert cp.read_text().startswith(w.home.name) or "\n\n" in cp.read_text()


# -- ledger verify with nothing signed -------------------------------------------------------------------------


def test_ledger_verify_with_no_signed_checkpoint_is_not_ok(tmp_path: Path) -> None:
    home = tmp_path / "home"
    safeshare(home, "init")
    safeshare(home, "recipient", "list")  # creates the (empty) database
    r = safeshare(home, "ledger", "verify")
    assert "ledger empty" in r.stdout and "ledger OK" not in r.stdout
    key = pyrage.x25519.Identity.generate().to_public()
    safeshare(home, "recipient", "add", "bob", "--name", "B", "--org", "O", "--email", "b@example.org",
              "--age-recipient", str(key))  # fmt: skip
    r = safeshare(home, "ledger", "verify", check=False)
    assert r.returncode == 3, (r.stdout, r.stderr)
    assert "ledger OK" not in r.stdout and "NOT VERIFIED against a signature" in r.stdout
    assert "nothing was checked against a signature" in r.stdout
    assert r.stderr.startswith("safeshare: warning: no signed checkpoint")

    # Once the gateway has run (it signs within a second of new entries), the same ledger is OK.
    with serve(home, tmp_path / "server.log") as url:
        deadline = time.monotonic() + 20
        while call(url + "/api/v1/ledger/checkpoint")[0] != 200 and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(1.0)
    r = safeshare(home, "ledger", "verify")
    assert r.returncode == 0 and "ledger OK" in r.stdout and "1 signed checkpoint" in r.stdout


# -- one error format ------------------------------------------------------------------------------------------


def test_every_command_fails_in_one_format(world: World, tmp_path: Path) -> None:
    w = world
    cases = [
        ("fetch", "--gateway", "http://127.0.0.1:9", "--token", w.recipient, "--identity", str(w.identity), "sh_x"),
        ("fetch", "--gateway", w.url, "--token", w.recipient, "--identity", str(tmp_path / "none"), "sh_x"),
        ("revoke", "--gateway", w.url, "--token", w.practitioner, "--reason", "x", f"sh_{'b' * 24}"),
        ("sent", "--gateway", w.url, "--token", w.recipient),
        ("ledger", "verify", "--gateway", w.url),
        (
            "share",
            "--gateway",
            w.url,
            "--token",
            w.practitioner,
            "--to",
            "alice",
            "--justification",
            str(tmp_path / "none.json"),
            str(tmp_path / "none.bin"),
        ),  # fmt: skip
    ]
    for args in cases:
        r = safeshare(tmp_path / "h", *args, check=False)
        assert r.returncode in (1, 2), (args, r.stderr)
        assert ERROR_LINE.match(r.stderr), (args, r.stderr)
        assert "Traceback" not in r.stderr


# -- recall: revoke with a reason, and the Sent list -----------------------------------------------------------


def test_revoke_with_a_reason_and_the_sent_list_shows_who_opened_it(world: World) -> None:
    w = world
    share_id = share(w, payload_file(w, "recall.bin"))
    r = safeshare(w.home, "sent", "--gateway", w.url, "--token", w.practitioner)
    block = r.stdout.split(share_id, 1)[1].split("\nsh_", 1)[0]
    assert "alice" in block and "not opened" in block

    before = time.strftime("%Y-%m-%dT%H:%M", time.gmtime())
    safeshare(w.home, "fetch", "--gateway", w.url, "--token", w.recipient, "--identity", str(w.identity), share_id,
              "-o", str(w.tmp / "recall.out"))  # fmt: skip
    mine = sent_view(w, share_id)["recipients"][0]  # type: ignore[index]
    assert mine["downloads"] == 1 and mine["first_downloaded_at"] >= before
    assert mine["last_downloaded_at"] == mine["first_downloaded_at"]
    r = safeshare(w.home, "sent", "--gateway", w.url, "--token", w.practitioner)
    block = r.stdout.split(share_id, 1)[1].split("\nsh_", 1)[0]
    assert f"opened {mine['first_downloaded_at']}" in block and "1 download(s)" in block

    # Only the sender (or an administrator) may recall it; the reason is recorded in the ledger.
    r = safeshare(w.home, "revoke", "--gateway", w.url, "--token", w.recipient, "--reason", "x", share_id, check=False)
    assert r.returncode == 1 and ERROR_LINE.match(r.stderr)
    reason = "Sent to the wrong Alice: the referral was meant for the MASH duty team"
    r = safeshare(w.home, "revoke", "--gateway", w.url, "--token", w.practitioner, "--reason", reason, share_id)
    assert "revoked" in r.stderr
    status, resp = call(f"{w.url}/api/v1/ledger?kind=revoke&limit=500", w.auditor)
    entries = [e["entry"] for e in json.loads(resp)["entries"] if e["entry"]["share_id"] == share_id]
    assert status == 200 and len(entries) == 1 and entries[0]["reason"] == reason
    assert entries[0]["actor"]["sub"] == "pat"
    assert sent_view(w, share_id)["state"] == "revoked"
    r = safeshare(w.home, "fetch", "--gateway", w.url, "--token", w.recipient, "--identity", str(w.identity),
                  share_id, "-o", str(w.tmp / "late.out"), check=False)  # fmt: skip
    assert r.returncode == 1 and "410" in r.stderr and not (w.tmp / "late.out").exists()
    r = safeshare(w.home, "revoke", "--gateway", w.url, "--token", w.practitioner, "--reason", reason, share_id,
                  check=False)  # fmt: skip
    assert r.returncode == 1 and "share_not_active" in r.stderr


# -- progress: on a terminal, and never in a pipe --------------------------------------------------------------


def run_on(stderr_tty: bool, *args: str, cwd: Path) -> tuple[int, bytes, bytes]:
    """`safeshare ARGS` as a real process, stdout to a pipe and stderr to a pseudo-terminal or a pipe."""
    env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": "100", "PYTHONPATH": str(Path.cwd())}
    cmd = [sys.executable, "-m", "gateway.cli", *args]
    if not stderr_tty:
        r = subprocess.run(cmd, capture_output=True, timeout=120, env=env, cwd=cwd)
        return r.returncode, r.stdout, r.stderr
    master, slave = pty.openpty()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=slave, env=env, cwd=cwd)
    os.close(slave)
    seen = b""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            seen += chunk
        elif proc.poll() is not None:
            break
    out = proc.stdout.read() if proc.stdout else b""
    proc.wait(30)
    os.close(master)
    return proc.returncode, out, seen


@pytest.mark.parametrize("tty", [True, False], ids=["terminal", "pipe"])
def test_progress_shows_on_a_terminal_and_never_in_a_pipe(world: World, tty: bool) -> None:
    w = world
    big = payload_file(w, f"big-{tty}.bin", 24 * 1024 * 1024)
    (w.tmp / "p.token").write_text(w.practitioner)
    (w.tmp / "r.token").write_text(w.recipient)
    (w.tmp / "a.token").write_text(w.auditor)
    code, out, err = run_on(tty, "share", "--gateway", w.url, "--token-file", str(w.tmp / "p.token"), "--to",
                            "alice", "--justification", str(w.justification), str(big), cwd=w.tmp)  # fmt: skip
    assert code == 0, err
    share_id = json.loads(out)["share_id"]
    assert (b"sending big" in err) is tty and (b"MB" in err) is tty

    code, out, err = run_on(tty, "fetch", "--gateway", w.url, "--token-file", str(w.tmp / "r.token"), "--identity",
                            str(w.identity), share_id, "-o", str(w.tmp / f"big-{tty}.out"), cwd=w.tmp)  # fmt: skip
    assert code == 0, err
    assert (w.tmp / f"big-{tty}.out").read_bytes() == big.read_bytes()
    assert (b"downloading" in err) is tty and (b"decrypting" in err) is tty

    code, out, err = run_on(tty, "--home", str(w.home), "ledger", "verify", cwd=w.tmp)
    assert code == 0 and b"ledger OK" in out, err
    assert (b"verifying the ledger" in err) is tty

    code, out, err = run_on(tty, "ledger", "export", "--gateway", w.url, "--token-file", str(w.tmp / "a.token"),
                            "-o", str(w.tmp / f"export-{tty}.csv"), cwd=w.tmp)  # fmt: skip
    assert code == 0, err
    assert (b"exporting" in err) is tty
    if not tty:
        assert b"\x1b[" not in err  # not one escape sequence when stderr is not a terminal
        assert b"\r" not in err


def test_ledger_export_streams_to_a_file_and_never_overwrites(world: World) -> None:
    w = world
    out = w.tmp / "export.csv"
    base = ("ledger", "export", "--gateway", w.url, "--token", w.auditor, "--kind", "share")
    r = safeshare(w.home, *base, "-o", str(out))
    lines = out.read_text().splitlines()
    assert len(lines) >= 2 and "exported the ledger" in r.stderr
    assert all(",share," in line for line in lines[1:])
    r = safeshare(w.home, *base, "-o", str(out), check=False)
    assert r.returncode == 2 and out.read_text().splitlines() == lines
    assert not [p for p in w.tmp.iterdir() if p.name.startswith(".safeshare-export-")]
    safeshare(w.home, *base, "--format", "jsonl", "-o", str(w.tmp / "export.jsonl"))
    first = json.loads((w.tmp / "export.jsonl").read_text().splitlines()[0])
    assert first["size"] >= 1 and first["checkpoint"] is not None
    r = safeshare(w.home, "ledger", "export", "--gateway", w.url, "--token", w.recipient, "-o", str(w.tmp / "no"),
                  check=False)  # fmt: skip
    assert r.returncode == 1 and ERROR_LINE.match(r.stderr) and not (w.tmp / "no").exists()
