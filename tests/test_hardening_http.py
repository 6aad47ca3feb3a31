"""Issue 9, the HTTP server's own behaviour, against a real `safeshare serve` subprocess on loopback.

HEAD never counts as a download; silent and trickling connections are dropped while real work goes on;
malformed HTTP and bad input get the API's JSON errors (never a 500, never an echo); a full disk gives a
507 with Retry-After and an unhealthy /healthz that recovers by itself; Idempotency-Key replays a retried
share or decision instead of duplicating it.
"""

from __future__ import annotations

import base64
import contextlib
import errno
import json
import os
import re
import resource
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyrage
import pytest

from gateway.auth import EmbeddedIssuer
from gateway.config import load_settings
from gateway.home import init_home
from tests.conftest import example

HOST = "127.0.0.1"

#: Small limits so each timeout shows within seconds.
FAST_LIMITS = """
[limits]
header_timeout_seconds = 1.5
keepalive_timeout_seconds = 5.0
body_idle_timeout_seconds = 1.5
min_upload_bytes_per_second = 4096
min_upload_rate_window_seconds = 2.0
max_payload_bytes = 8388608
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def call(
    url: str,
    token: str | None = None,
    data: bytes | None = None,
    ctype: str | None = None,
    method: str | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], bytes]:
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    if ctype:
        req.add_header("Content-Type", ctype)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def multipart(meta: dict[str, Any], payload: bytes, boundary: str | None = None) -> tuple[bytes, str]:
    b = boundary or uuid.uuid4().hex
    body = (
        f'--{b}\r\nContent-Disposition: form-data; name="share"\r\nContent-Type: application/json\r\n\r\n'.encode()
        + json.dumps(meta).encode()
        + f'\r\n--{b}\r\nContent-Disposition: form-data; name="payload"; filename="p"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n".encode()
        + payload
        + f"\r\n--{b}--\r\n".encode()
    )
    return body, f"multipart/form-data; boundary={b}"


def raw(port: int, data: bytes, timeout: float = 5.0) -> bytes:
    """Send bytes on a fresh connection; everything the server answers until it closes."""
    with socket.create_connection((HOST, port), timeout=timeout) as s:
        s.sendall(data)
        out = b""
        with contextlib.suppress(OSError):
            while chunk := s.recv(65536):
                out += chunk
    return out


def split_response(resp: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = resp.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return int(lines[0].split()[1]), headers, body


@dataclass
class Served:
    home: Path
    url: str
    port: int
    log: Path
    issuer: EmbeddedIssuer
    alice: Any

    def token(self, sub: str, role: str) -> str:
        return self.issuer.issue(sub, [role], org="test-org", ttl=600)

    def share(
        self, payload: bytes = b"notes", key: str | None = None, sender: str = "pat", **extra: Any
    ) -> tuple[int, dict[str, str], bytes]:
        meta = {
            "recipients": ["alice"],
            "justification": example("share"),
            "payload_content_type": "text/plain",
            **extra,
        }
        body, ctype = multipart(meta, payload)  # a new boundary each time, as a browser's FormData makes
        headers = {"Idempotency-Key": key} if key else {}
        return call(self.url + "/api/v1/shares", self.token(sender, "practitioner"), body, ctype, headers=headers)

    def decide(self, key: str | None, justification: Any = None) -> tuple[int, dict[str, str], bytes]:
        body = json.dumps(justification or example("not-share")).encode()
        headers = {"Idempotency-Key": key} if key else {}
        pt = self.token("pat", "practitioner")
        return call(self.url + "/api/v1/decisions", pt, body, "application/json", headers=headers)

    def ledger_size(self) -> int:
        status, _, body = call(self.url + "/api/v1/ledger?limit=500", self.token("audrey", "auditor"))
        assert status == 200, body
        return len(json.loads(body)["entries"])


@contextlib.contextmanager
def serve(
    tmp_path: Path, toml: str = "", nofile: int | None = None, mount: str | None = None, restart: bool = False
) -> Iterator[Served]:
    """A real `safeshare serve` with `toml` as safeshare.toml (and, optionally, a lowered open-file limit)."""
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    (home / "safeshare.toml").write_text(toml)
    if mount is not None:  # a small file system of its own for the data directory (see test_full_disk)
        (home / "data").mkdir(mode=0o700)
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={mount},mode=0700", "tmpfs", str(home / "data")], check=True
        )
    settings = load_settings(home)
    keys = init_home(settings)
    issuer = EmbeddedIssuer(keys.token_key, settings.issuer, settings.audience)
    port = free_port()
    log_path = tmp_path / "server.log"

    def limit_files() -> None:
        if nofile is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

    log = open(log_path, "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway.cli", "--home", str(home), "serve", "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        preexec_fn=limit_files,
    )
    url = f"http://{HOST}:{port}"
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
        alice = pyrage.x25519.Identity.generate()
        # Administrators act within their own organisation (gateway/tenancy.py): the recipient's.
        admin = issuer.issue("root", ["admin"], org="Hereford MASH", ttl=600)
        rec = {
            "id": "alice",
            "name": "Alice",
            "org": "Hereford MASH",
            "email": "alice@example.org",
            "age_recipient": str(alice.to_public()),
        }
        status, _, body = call(url + "/api/v1/recipients", admin, json.dumps(rec).encode(), "application/json")
        assert status == 201 or (restart and status == 409), body
        yield Served(home, url, port, log_path, issuer, alice)
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        log.close()
        if mount is not None:
            subprocess.run(["umount", str(home / "data")], check=False)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    with serve(tmp_path, FAST_LIMITS) as s:
        yield s


# -- 1. HEAD never counts, records or shreds -----------------------------------------------------------------


def test_head_on_a_one_time_share_changes_nothing(served: Served) -> None:
    status, _, body = served.share(b"one time only", max_downloads=1)
    assert status == 201, body
    share_id = json.loads(body)["share_id"]
    rt = served.token("alice", "recipient")
    before = served.ledger_size()

    # What a link scanner or proxy does: HEAD on the envelope (several times).
    for _ in range(3):
        status, headers, body = call(f"{served.url}/api/v1/shares/{share_id}/envelope", rt, method="HEAD")
        assert status == 405
        assert headers["Allow"] == "GET"
    # HEAD on every other GET route a recipient can reach: answered (or refused) without a ledger entry.
    for path in (f"/api/v1/shares/{share_id}", "/api/v1/inbox", "/api/v1/recipients/me", "/healthz", "/s/" + share_id):
        status, _, _ = call(served.url + path, rt, method="HEAD")
        assert status < 500, path
    assert served.ledger_size() == before, "a HEAD request wrote a ledger entry"

    status, _, body = call(f"{served.url}/api/v1/shares/{share_id}", rt)
    view = json.loads(body)
    assert view["downloads"] == 0 and view["state"] == "active"
    # The one permitted download still works, and then the share is spent.
    status, _, blob = call(f"{served.url}/api/v1/shares/{share_id}/envelope", rt)
    assert status == 200 and pyrage.decrypt(blob, [served.alice]) == b"one time only"
    status, _, _ = call(f"{served.url}/api/v1/shares/{share_id}/envelope", rt)
    assert status == 410


# -- 2. Slowloris: timeouts, minimum rate, connection cap, quiet logs -----------------------------------------


def test_silent_connections_do_not_starve_real_work(tmp_path: Path) -> None:
    """More silent connections than the gateway may hold (its open-file limit is lowered to 400): /healthz and
    a real share still succeed while they are open, and every silent one is closed after the header timeout."""
    with serve(tmp_path, FAST_LIMITS, nofile=400) as s:
        silent = []
        t0 = time.monotonic()
        for _ in range(420):
            c = socket.create_connection((HOST, s.port), timeout=10)
            silent.append(c)
        opened = time.monotonic()
        print(f"opened {len(silent)} connections in {opened - t0:.2f}s")
        status, _, body = call(s.url + "/healthz")
        assert status == 200, body
        status, _, body = s.share(b"urgent referral")
        assert status == 201, body
        share_id = json.loads(body)["share_id"]
        status, _, blob = call(f"{s.url}/api/v1/shares/{share_id}/envelope", s.token("alice", "recipient"))
        assert status == 200 and pyrage.decrypt(blob, [s.alice]) == b"urgent referral"

        for c in silent:
            c.settimeout(max(0.1, opened + 6 - time.monotonic()))
            try:
                assert c.recv(1) == b""  # closed by the gateway
            except ConnectionResetError:
                pass
            c.close()
        assert time.monotonic() - opened < 6
        log = s.log.read_text()
        assert "Too many open files" not in log
        assert "at most 350 connections" in log  # 400 minus headroom
        # Repeated warnings are rate-limited: far fewer lines than connections dropped.
        assert 1 <= log.count("dropping connection") < 20
        assert len(log) < 50_000


def test_trickled_headers_are_dropped_even_on_a_kept_alive_connection(served: Served) -> None:
    """Classic slowloris: headers sent a byte at a time, never finishing. Dropped after the header timeout
    (1.5 s here) although bytes keep coming; the same on a connection that already served a request."""

    def trickle(c: socket.socket, start: float) -> float:
        for byte in b"X-Slow: " + b"a" * 100:
            try:
                c.sendall(bytes([byte]))
                c.settimeout(0.2)
                if c.recv(65536) == b"":
                    return time.monotonic() - start
            except TimeoutError:
                continue
            except OSError:
                return time.monotonic() - start
        raise AssertionError("still open after 20 s of trickled headers")

    with socket.create_connection((HOST, served.port), timeout=5) as c:
        c.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        assert 1.4 < trickle(c, time.monotonic()) < 4.0
    with socket.create_connection((HOST, served.port), timeout=5) as c:
        c.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")  # kept alive after this answer
        c.settimeout(5)
        assert c.recv(65536).startswith(b"HTTP/1.1 200")
        time.sleep(2.0)  # idle between requests: the keep-alive timeout (5 s here), not the header timeout
        start = time.monotonic()
        c.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        assert 1.4 < trickle(c, start) < 4.0


def _slow_share(
    port: int, token: str, body: bytes, ctype: str, piece: int, pause: float, stop_after: int | None
) -> bytes:
    head = (
        f"POST /api/v1/shares HTTP/1.1\r\nHost: {HOST}\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Type: {ctype}\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode()
    with socket.create_connection((HOST, port), timeout=20) as c:
        c.sendall(head)
        sent = 0
        try:
            while sent < len(body):
                if stop_after is not None and sent >= stop_after:
                    time.sleep(4)  # stall
                    break
                c.sendall(body[sent : sent + piece])
                sent += piece
                time.sleep(pause)
        except OSError:
            pass  # the gateway dropped us
        out = b""
        with contextlib.suppress(OSError):
            while chunk := c.recv(65536):
                out += chunk
    return out


def test_slow_but_steady_upload_succeeds_and_stalled_or_trickling_ones_are_dropped(served: Served) -> None:
    token = served.token("pat", "practitioner")
    meta = {"recipients": ["alice"], "justification": example("share"), "payload_content_type": "text/plain"}
    payload = os.urandom(48 * 1024)
    body, ctype = multipart(meta, payload)
    before = served.ledger_size()

    # ~16 KiB/s for ~4 s: slower than the window is long, faster than the 4 KiB/s floor.
    t0 = time.monotonic()
    resp = _slow_share(served.port, token, body, ctype, piece=4096, pause=0.25, stop_after=None)
    assert time.monotonic() - t0 > 2.5
    status, _, rbody = split_response(resp)
    assert status == 201, resp[:500]
    assert served.ledger_size() == before + 1

    # Stalls after 10 KB: dropped after the body idle timeout, nothing stored.
    t0 = time.monotonic()
    resp = _slow_share(served.port, token, body, ctype, piece=2048, pause=0.05, stop_after=10_000)
    assert not resp.startswith(b"HTTP/1.1 201"), resp[:300]
    # Trickles 200 B/s (never idle as long as the idle timeout): dropped by the minimum rate.
    resp = _slow_share(served.port, token, body, ctype, piece=100, pause=0.5, stop_after=None)
    assert not resp.startswith(b"HTTP/1.1 201"), resp[:300]
    assert time.monotonic() - t0 < 20
    assert served.ledger_size() == before + 1
    assert list((served.home / "data" / "envelopes" / ".tmp").iterdir()) == []  # nothing half-written
    log = served.log.read_text()
    assert "request body stalled" in log or "minimum upload rate" in log


def test_repeated_log_lines_are_rate_limited() -> None:
    import logging

    from gateway.server import RepeatFilter

    records: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record.getMessage())

    logger = logging.getLogger("test.repeat")
    handler = Keep()
    handler.addFilter(RepeatFilter(interval=1.5))
    logger.addHandler(handler)
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    try:
        for i in range(1000):
            logger.error("socket.accept() out of system resource\nsocket: fd=%d", i)
        logger.info("access line")
        logger.info("access line")
        time.sleep(1.6)
        logger.error("socket.accept() out of system resource\nsocket: fd=%d", 1)
    finally:
        logger.removeHandler(handler)
    assert records[0].startswith("socket.accept() out of system resource")
    assert records[1:3] == ["access line", "access line"]  # below WARNING: never held back
    assert len(records) == 4 and "999 similar line(s) suppressed" in records[3]


# -- 4. Bad input never gives a 5xx ---------------------------------------------------------------------------


def _jwt_with_header(header: bytes) -> str:
    def seg(b: bytes) -> str:
        return base64.urlsafe_b64encode(b).rstrip(b"=").decode()

    return f"{seg(header)}.{seg(b'{}')}.{seg(b'x' * 64)}"


def test_bad_input_gets_structured_4xx(served: Served) -> None:
    pt = served.token("pat", "practitioner")
    b = uuid.uuid4().hex
    cases: list[tuple[str, bytes, str]] = [
        ('name="a\x7f"', b"", "control character in a part name"),
        ('name="share\x00"', b"", "NUL in a part name"),
        ('name="\xff\xfe"'.encode("latin-1").decode("latin-1"), b"", "non-UTF-8 part name"),
        ("name*=UTF-8''%FF%FE", b"", "bad RFC 2231 encoding"),
        ("name", b"", "no value"),
    ]
    for disposition, _, what in cases:
        body = (
            f"--{b}\r\nContent-Disposition: form-data; {disposition}\r\nContent-Type: application/json\r\n\r\n"
            "{}\r\n"
            f"--{b}--\r\n"
        ).encode("latin-1")
        status, _, rbody = call(served.url + "/api/v1/shares", pt, body, f"multipart/form-data; boundary={b}")
        assert 400 <= status < 500, (what, status, rbody)
        assert "error" in json.loads(rbody), what

    # A part header line that is not a header at all.
    body = f'--{b}\r\nContent-Disposition form-data name="share"\r\n\r\n{{}}\r\n--{b}--\r\n'.encode()
    status, _, rbody = call(served.url + "/api/v1/shares", pt, body, f"multipart/form-data; boundary={b}")
    assert 400 <= status < 500 and "error" in json.loads(rbody)

    # A JWT whose header kid is a lone surrogate, or a control character: 401 with a stable code.
    for kid in (b'"\\ud800"', b'"a\\u0000b"', b'"' + b"k" * 5000 + b'"'):
        token = _jwt_with_header(b'{"alg":"EdDSA","typ":"JWT","kid":' + kid + b"}")
        status, headers, rbody = call(served.url + "/api/v1/inbox", token)
        assert status == 401, (kid[:20], rbody)
        assert json.loads(rbody)["error"] == "token_malformed"

    # Non-UTF-8 bytes in the Authorization header and in a JSON body.
    resp = raw(
        served.port,
        b"GET /api/v1/inbox HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \xff\xfe\xfd\r\nConnection: close\r\n\r\n",
    )
    status, _, rbody = split_response(resp)
    assert 400 <= status < 500 and "error" in json.loads(rbody)
    for payload in (
        b'{"decision": "\xff"}',
        b'{"decision": "\\ud800"}',
        b"\xef\xbb\xbf{}",
        b"[" * 100_000,
        b"[" + b"9" * 5000 + b"]",
    ):
        status, _, rbody = call(served.url + "/api/v1/decisions", pt, payload, "application/json")
        assert 400 <= status < 500, (payload[:20], rbody)
        assert "error" in json.loads(rbody)
    # Odd Content-Type parameters on the share route.
    for ctype in ("multipart/form-data", "multipart/form-data; boundary=", "multipart/form-data; boundary=\x7f"):
        status, _, rbody = call(served.url + "/api/v1/shares", pt, b"--x--\r\n", ctype)
        assert 400 <= status < 500, (ctype, rbody)
    assert "internal_error" not in served.log.read_text()


# -- 7. Errors below the application are the API's too ---------------------------------------------------------


def test_protocol_errors_are_json_and_echo_nothing(served: Served) -> None:
    secret = "SECRETSECRETSECRET"
    cases = {
        "oversized header": (
            b"GET /healthz HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
            + secret.encode()
            + b"A" * 20000
            + b"\r\n\r\n",
            431,
            "request_header_too_large",
        ),
        "too many headers": (
            b"GET /healthz HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
            + secret.encode()
            + b"\r\n"
            + b"".join(b"X-H%d: v\r\n" % i for i in range(200))
            + b"\r\n",
            431,
            "too_many_headers",
        ),
        "over-long request line": (
            b"GET /" + secret.encode() * 1200 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
            414,
            "request_line_too_long",
        ),
        "not HTTP": (b"\x16\x03\x01\x02\x00" + secret.encode() + b"\r\n\r\n", 400, "malformed_request"),
        "bad header name": (
            b"GET /healthz HTTP/1.1\r\nHo st: " + secret.encode() + b"\r\n\r\n",
            400,
            "malformed_request",
        ),
        "bad chunked body": (
            b"POST /api/v1/decisions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nZZZ\r\n"
            + secret.encode(),
            400,
            "malformed_request",
        ),
    }
    for what, (data, want_status, want_code) in cases.items():
        resp = raw(served.port, data)
        status, headers, body = split_response(resp)
        assert status == want_status, (what, resp[:300])
        assert headers["content-type"].startswith("application/json"), what
        assert json.loads(body)["error"] == want_code, what
        assert secret.encode() not in resp and b"SECRET" not in resp, what
    assert secret not in served.log.read_text()

    # Every 405 says what is allowed, in JSON; unknown routes are JSON 404s.
    admin = served.token("root", "admin")
    for method, path in (("DELETE", "/healthz"), ("PUT", "/api/v1/shares"), ("GET", "/api/v1/justifications/validate")):
        status, headers, body = call(served.url + path, admin, method=method)
        assert status == 405, (method, path)
        assert headers.get("Allow"), (method, path)
        assert json.loads(body)["error"] == "method_not_allowed"
    status, headers, body = call(served.url + "/no/such/route")
    assert status == 404 and json.loads(body)["error"] == "not_found"
    # Every documented route: a method it does not answer is a JSON 405 naming the ones it does.
    doc = json.loads((Path(__file__).parent.parent / "gateway" / "openapi.json").read_text())
    for path, item in doc["paths"].items():
        concrete = re.sub(r"\{[^}]+\}", "x1", path)
        status, headers, body = call(served.url + concrete, admin, method="PATCH")
        assert status == 405, path
        allowed = {m.strip() for m in headers["Allow"].split(",")}
        assert {m.upper() for m in item if m in ("get", "post", "put", "delete")} <= allowed, path
        assert json.loads(body)["error"] == "method_not_allowed", path


# -- 5. A full disk: a clear 507, unhealthy while it lasts, recovery by itself, nothing lost ------------------


def tmpfs_available(tmp_path: Path) -> str | None:
    """Why a small tmpfs cannot be mounted here (None if it can): needs root and a kernel that allows it."""
    if os.geteuid() != 0:
        return "mounting a small tmpfs needs root"
    probe = tmp_path / "probe"
    probe.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(probe)], capture_output=True, text=True)
    if r.returncode:
        return f"cannot mount a tmpfs here: {r.stderr.strip()}"
    subprocess.run(["umount", str(probe)], check=True)
    return None


def fill(directory: Path) -> Path:
    """Write a filler file until the file system is full (ENOSPC); returns it."""
    filler = directory / "filler"
    block = b"\0" * 65536
    with open(filler, "wb", buffering=0) as fh:
        for size in (65536, 4096, 512, 1):
            try:
                while True:
                    fh.write(block[:size])
            except OSError as exc:
                assert exc.errno == errno.ENOSPC, exc
    return filler


def test_full_disk_gives_507_unhealthy_then_recovers_losing_nothing(tmp_path: Path) -> None:
    why = tmpfs_available(tmp_path)
    if why is not None:
        pytest.skip(why)
    with serve(tmp_path, FAST_LIMITS, mount="6m") as s:
        rt = s.token("alice", "recipient")
        status, _, body = s.share(b"before the disk filled")
        assert status == 201, body
        first = json.loads(body)["share_id"]
        before = s.ledger_size()

        filler = fill(s.home / "data")
        status, headers, body = s.share(os.urandom(300_000))
        assert status == 507, body
        err = json.loads(body)
        assert err["error"] == "storage_full" and err["message"]
        assert int(headers["Retry-After"]) > 0
        # A decision has no payload: if SQLite cannot grow its log either, the same clear refusal.
        status, headers, body = call(
            s.url + "/api/v1/decisions",
            s.token("pat", "practitioner"),
            json.dumps(example("not-share")).encode(),
            "application/json",
        )
        assert status in (201, 507), body
        decided = status == 201
        if not decided:
            assert json.loads(body)["error"] == "storage_full" and "Retry-After" in headers

        status, headers, body = call(s.url + "/healthz")
        assert status == 503, body
        assert json.loads(body)["reason"] == "storage_full" and "Retry-After" in headers
        # A download is recorded before it is released, so it waits for space too (and is not counted).
        status, _, body = call(f"{s.url}/api/v1/shares/{first}/envelope", rt)
        assert status == 507 and json.loads(body)["error"] == "storage_full"
        status, _, body = call(f"{s.url}/api/v1/shares/{first}", rt)
        assert status == 200 and json.loads(body)["downloads"] == 0

        filler.unlink()  # space comes back: healthy again with no restart
        status, _, body = call(s.url + "/healthz")
        assert status == 200, body
        status, _, body = s.share(b"after the disk recovered")
        assert status == 201, body
        second = json.loads(body)["share_id"]
        status, _, blob = call(f"{s.url}/api/v1/shares/{second}/envelope", rt)
        assert status == 200 and pyrage.decrypt(blob, [s.alice]) == b"after the disk recovered"
        status, _, blob = call(f"{s.url}/api/v1/shares/{first}/envelope", rt)
        assert status == 200 and pyrage.decrypt(blob, [s.alice]) == b"before the disk filled"

        # Nothing half-written: no spool files, no envelope directory but the two shares', every entry accounted.
        envelopes = s.home / "data" / "envelopes"
        assert list((envelopes / ".tmp").iterdir()) == []
        assert {p.name for p in envelopes.iterdir() if p.name != ".tmp"} <= {first, second}
        # The second share and the two fetches (and the decision if it got in), nothing else.
        assert s.ledger_size() == before + 3 + (1 if decided else 0)
        # The gateway signs within a second of new entries; verify once it has (this test can take less).
        status, _, note = call(s.url + "/api/v1/ledger/checkpoint")
        deadline = time.monotonic() + 10
        while not (status == 200 and int(note.split(b"\n")[1]) >= s.ledger_size()):
            assert time.monotonic() < deadline, "no checkpoint covering every entry"
            time.sleep(0.05)
            status, _, note = call(s.url + "/api/v1/ledger/checkpoint")
        r = subprocess.run(
            [sys.executable, "-m", "gateway.cli", "--home", str(s.home), "ledger", "verify"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert r.returncode == 0 and "ledger OK" in r.stdout, r.stderr


# -- 6. Idempotency-Key -----------------------------------------------------------------------------------------


def test_idempotency_key_replays_refuses_reuse_and_survives_a_restart(tmp_path: Path) -> None:
    key = str(uuid.uuid4())
    with serve(tmp_path, FAST_LIMITS) as s:
        before = s.ledger_size()
        status, headers, first = s.share(b"referral", key=key)
        assert status == 201, first
        assert "Idempotent-Replayed" not in headers
        # The client never saw that answer and retries: the same answer, no second share or ledger entry.
        status, headers, again = s.share(b"referral", key=key)
        assert status == 201 and headers["Idempotent-Replayed"] == "true"
        assert json.loads(again) == json.loads(first)
        assert s.ledger_size() == before + 1
        # Same key, different request: refused, nothing stored.
        status, _, body = s.share(b"another referral", key=key)
        assert status == 422 and json.loads(body)["error"] == "idempotency_key_reused"
        status, _, body = s.share(b"referral", key=key, max_downloads=2)
        assert status == 422
        # Keys are per caller: another practitioner's identical key is a new share.
        status, _, other = s.share(b"referral", key=key, sender="priya")
        assert status == 201 and json.loads(other)["share_id"] != json.loads(first)["share_id"]
        # Decisions: the same rules.
        dkey = "decision-" + uuid.uuid4().hex
        status, _, d1 = s.decide(dkey)
        status2, headers, d2 = s.decide(dkey)
        assert status == status2 == 201 and json.loads(d1) == json.loads(d2)
        assert headers["Idempotent-Replayed"] == "true"
        different = example("not-share")
        different["purpose"]["description"] += " (amended)"
        status, _, body = s.decide(dkey, different)
        assert status == 422 and json.loads(body)["error"] == "idempotency_key_reused"
        assert s.ledger_size() == before + 3
        # Key syntax: visible ASCII, at most 255 characters; quoted (a structured-field string) is the same key.
        for bad in ("has space", "x" * 256, "caf\u00e9", ""):
            status, _, body = s.share(b"x", key=bad) if bad else (400, {}, b'{"error": "invalid_idempotency_key"}')
            assert status == 400 and json.loads(body)["error"] == "invalid_idempotency_key", bad
        status, _, body = s.share(b"referral", key=f'"{key}"')
        assert status == 201 and json.loads(body)["share_id"] == json.loads(first)["share_id"]

    # After a restart (the key lives in the database, written with the share): still the first answer.
    with serve(tmp_path, FAST_LIMITS, restart=True) as s:
        status, headers, again = s.share(b"referral", key=key)
        assert status == 201 and headers["Idempotent-Replayed"] == "true"
        assert json.loads(again)["share_id"] == json.loads(first)["share_id"]
        status, _, again = s.decide(dkey)
        assert json.loads(again)["ledger_index"] == json.loads(d1)["ledger_index"]
        assert s.ledger_size() == before + 3


def test_concurrent_duplicate_gets_409_and_expired_keys_are_forgotten(tmp_path: Path) -> None:
    toml = FAST_LIMITS + "idempotency_key_ttl_seconds = 3\n"
    with serve(tmp_path, toml) as s:
        key = uuid.uuid4().hex
        token = s.token("pat", "practitioner")
        meta = {"recipients": ["alice"], "justification": example("share"), "payload_content_type": "text/plain"}
        body, ctype = multipart(meta, os.urandom(40_000))
        head = (
            f"POST /api/v1/shares HTTP/1.1\r\nHost: {HOST}\r\nAuthorization: Bearer {token}\r\n"
            f"Idempotency-Key: {key}\r\nContent-Type: {ctype}\r\nContent-Length: {len(body)}\r\n"
            "Connection: close\r\n\r\n"
        ).encode()
        with socket.create_connection((HOST, s.port), timeout=20) as slow:
            slow.sendall(head + body[:20_000])  # the first request is still arriving...
            time.sleep(0.3)
            status, _, dup = call(s.url + "/api/v1/shares", token, body, ctype, headers={"Idempotency-Key": key})
            assert status == 409 and json.loads(dup)["error"] == "idempotency_request_in_progress"
            slow.sendall(body[20_000:])
            out = b""
            with contextlib.suppress(OSError):
                while chunk := slow.recv(65536):
                    out += chunk
        status, _, first = split_response(out)
        assert status == 201, out[:300]
        status, headers, again = call(s.url + "/api/v1/shares", token, body, ctype, headers={"Idempotency-Key": key})
        assert status == 201 and headers["Idempotent-Replayed"] == "true"
        time.sleep(3.2)  # past the key's lifetime: the same key now makes a new share
        status, headers, fresh = call(s.url + "/api/v1/shares", token, body, ctype, headers={"Idempotency-Key": key})
        assert status == 201 and "Idempotent-Replayed" not in headers
        assert json.loads(fresh)["share_id"] != json.loads(first)["share_id"]


def test_cli_share_and_decide_send_an_idempotency_key(tmp_path: Path) -> None:
    with serve(tmp_path, FAST_LIMITS) as s:
        payload = tmp_path / "notes.txt"
        payload.write_bytes(b"notes")
        good = tmp_path / "share.json"
        good.write_text(json.dumps(example("share")))
        ns = tmp_path / "not-share.json"
        ns.write_text(json.dumps(example("not-share")))
        pt = s.token("pat", "practitioner")
        cli = [sys.executable, "-m", "gateway.cli", "--home", str(s.home)]
        r = subprocess.run(
            [
                *cli,
                "share",
                "--gateway",
                s.url,
                "--token",
                pt,
                "--to",
                "alice",
                "--justification",
                str(good),
                str(payload),
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert r.returncode == 0, r.stderr
        r = subprocess.run(
            [*cli, "decide", "--gateway", s.url, "--token", pt, "--justification", str(ns)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert r.returncode == 0, r.stderr
        import sqlite3

        with contextlib.closing(sqlite3.connect(s.home / "data" / "safeshare.sqlite3")) as db:
            rows = db.execute("SELECT key, status FROM idempotency_keys WHERE principal LIKE '%pat'").fetchall()
        assert len(rows) == 2 and all(len(k) == 32 and st == 201 for k, st in rows)


async def test_sqlite_writer_survives_a_savepoint_that_cannot_be_rolled_back(tmp_path: Path) -> None:
    """When ROLLBACK TO itself fails (as it can on a full disk), the batch's callers are told and the writer
    thread carries on: later writes still commit."""
    import asyncio
    import sqlite3

    from gateway.store.models import StoreError
    from gateway.store.sqlite import SQLiteStore

    store = await SQLiteStore.open(tmp_path / "db.sqlite3")
    try:

        def breaks_its_savepoint(conn: sqlite3.Connection) -> None:
            conn.execute("RELEASE op")  # the writer's ROLLBACK TO op will now fail: "no such savepoint"
            raise RuntimeError("operation failed")

        def fine(conn: sqlite3.Connection) -> int:
            return int(conn.execute("SELECT 1").fetchone()[0])

        writer = store._writer
        results = await asyncio.wait_for(
            asyncio.gather(
                writer.submit(fine), writer.submit(breaks_its_savepoint), writer.submit(fine), return_exceptions=True
            ),
            10,
        )
        assert isinstance(results[1], StoreError), results
        for r in (results[0], results[2]):  # in that batch (rolled back with it) or in a batch of their own
            assert r == 1 or isinstance(r, StoreError), results
        # The writer thread is alive and commits.
        assert await asyncio.wait_for(writer.submit(fine), 10) == 1
        assert await asyncio.wait_for(store.record({"kind": "decision", "time": "2026-01-01T00:00:00.000Z"}), 10) >= 0
    finally:
        await store.close()


class AnswerLosingProxy:
    """A loopback TCP proxy that forwards the first connection's request to the gateway but drops the gateway's
    answer (the client sees the connection close): the trial's 209 shares committed whose client never saw
    the 201. Later connections are forwarded both ways."""

    def __init__(self, target_port: int) -> None:
        import threading

        self.target = target_port
        self.listener = socket.create_server((HOST, 0))
        self.port = int(self.listener.getsockname()[1])
        self.connections = 0
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _pipe(self, src: socket.socket, dst: socket.socket | None) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                if dst is not None:
                    dst.sendall(data)
        if dst is not None:
            with contextlib.suppress(OSError):
                dst.shutdown(socket.SHUT_WR)

    def _serve(self) -> None:
        import threading

        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            upstream = socket.create_connection((HOST, self.target))
            lose = self.connections == 1
            threading.Thread(target=self._pipe, args=(client, upstream), daemon=True).start()
            if lose:

                def swallow(up: socket.socket = upstream, c: socket.socket = client) -> None:
                    self._pipe(up, None)  # read the whole answer, pass none of it on
                    with contextlib.suppress(OSError):
                        c.shutdown(socket.SHUT_RDWR)
                    c.close()
                    up.close()

                threading.Thread(target=swallow, daemon=True).start()
            else:
                threading.Thread(target=self._pipe, args=(upstream, client), daemon=True).start()

    def close(self) -> None:
        self.listener.close()


def test_cli_retry_after_a_lost_answer_does_not_duplicate_the_share(tmp_path: Path) -> None:
    with serve(tmp_path, FAST_LIMITS) as s:
        before = s.ledger_size()
        proxy = AnswerLosingProxy(s.port)
        try:
            payload = tmp_path / "notes.txt"
            payload.write_bytes(os.urandom(100_000))
            good = tmp_path / "share.json"
            good.write_text(json.dumps(example("share")))
            r = subprocess.run(
                [
                    *(sys.executable, "-m", "gateway.cli", "--home", str(s.home), "share"),
                    *("--gateway", f"http://{HOST}:{proxy.port}", "--token", s.token("pat", "practitioner")),
                    *("--to", "alice", "--justification", str(good), str(payload)),
                ],
                capture_output=True,
                text=True,
                timeout=60,
            )
        finally:
            proxy.close()
        assert r.returncode == 0, r.stderr
        assert "retrying with the same Idempotency-Key" in r.stderr
        assert proxy.connections == 2
        share_id = json.loads(r.stdout)["share_id"]
        assert s.ledger_size() == before + 1  # one share, one ledger entry, though it was sent twice
        status, _, blob = call(f"{s.url}/api/v1/shares/{share_id}/envelope", s.token("alice", "recipient"))
        assert status == 200 and pyrage.decrypt(blob, [s.alice]) == payload.read_bytes()
