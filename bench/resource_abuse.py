"""Resource abuse against a real `safeshare serve`: what each attack costs the gateway in memory, and whether
real work still gets through while it runs.

Each case runs against a fresh gateway on loopback and prints its peak resident memory (VmHWM of the server
process) beside the same process's idle figure measured in the same run, the count of 5xx answers, and whether
/healthz and a real share still succeeded during the attack. Bounded in count and time; loopback only.

    python bench/resource_abuse.py [--connections 900] [--upload-mib 512]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import pyrage  # noqa: E402

from gateway.auth import EmbeddedIssuer  # noqa: E402
from gateway.config import load_settings  # noqa: E402
from gateway.home import init_home  # noqa: E402

HOST = "127.0.0.1"
JUSTIFICATION = json.loads((ROOT / "tests/fixtures/justifications/justification-share.json").read_text())
LIMITS = """
[limits]
header_timeout_seconds = 3
body_idle_timeout_seconds = 3
min_upload_bytes_per_second = 4096
min_upload_rate_window_seconds = 3
max_payload_bytes = 1073741824
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def vm(pid: int, field: str) -> int:
    """A /proc/PID/status figure in KiB (VmRSS now, VmHWM the peak so far)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


class Gateway:
    def __init__(self, home: Path, proc: subprocess.Popen[bytes], url: str, issuer: EmbeddedIssuer) -> None:
        self.home, self.proc, self.url, self.issuer = home, proc, url, issuer

    def token(self, sub: str, role: str) -> str:
        return self.issuer.issue(sub, [role], org="bench-org", ttl=3600)

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(self.url + "/healthz", timeout=10) as r:
                return bool(r.status == 200)
        except (OSError, urllib.error.URLError):
            return False

    def share(self, payload_reader: Callable[[], Iterator[bytes]] | bytes = b"notes") -> int:
        """POST a share (streamed when given a generator factory); the HTTP status."""
        boundary = uuid.uuid4().hex
        meta = {"recipients": ["alice"], "justification": JUSTIFICATION, "payload_content_type": "text/plain"}
        head = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="share"\r\nContent-Type: application/json\r\n\r\n'
            f'{json.dumps(meta)}\r\n--{boundary}\r\nContent-Disposition: form-data; name="payload";'
            ' filename="p"\r\nContent-Type: application/octet-stream\r\n\r\n'
        ).encode()
        tail = f"\r\n--{boundary}--\r\n".encode()

        def body() -> Iterator[bytes]:
            yield head
            if isinstance(payload_reader, bytes):
                yield payload_reader
            else:
                yield from payload_reader()
            yield tail

        req = urllib.request.Request(
            self.url + "/api/v1/shares",
            data=body(),
            method="POST",
            headers={
                "Authorization": f"Bearer {self.token('pat', 'practitioner')}",
                "Content-Type": f"multipart/form-data; boundary={boundary}",
                "Transfer-Encoding": "chunked",
            },
        )
        try:
            with urllib.request.urlopen(req, timeout=600) as r:
                return int(r.status)
        except urllib.error.HTTPError as exc:
            return int(exc.code)


@contextlib.contextmanager
def gateway(nofile: int | None = None) -> Iterator[Gateway]:
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        home.mkdir()
        (home / "safeshare.toml").write_text(LIMITS)
        settings = load_settings(home)
        keys = init_home(settings)
        issuer = EmbeddedIssuer(keys.token_key, settings.issuer, settings.audience)
        port = free_port()
        cmd = [sys.executable, "-m", "gateway.cli", "--home", str(home), "serve", "--port", str(port)]
        if nofile is not None:
            cmd = ["prlimit", f"--nofile={nofile}:{nofile}", *cmd]
        log = open(home / "serve.log", "wb")  # closed in the finally below
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONPATH": str(ROOT)})
        gw = Gateway(home, proc, f"http://{HOST}:{port}", issuer)
        try:
            for _ in range(200):
                if gw.healthy():
                    break
                time.sleep(0.1)
            alice = pyrage.x25519.Identity.generate()
            subprocess.run(
                [sys.executable, "-m", "gateway.cli", "--home", str(home), "recipient", "add", "alice", "--name", "A",
                 "--org", "Hereford MASH", "--email", "alice@example.org", "--age-recipient", str(alice.to_public())],
                check=True, capture_output=True, env={**os.environ, "PYTHONPATH": str(ROOT)},
            )  # fmt: skip
            yield gw
        finally:
            proc.terminate()
            proc.wait(30)
            log.close()


def report(name: str, gw: Gateway, idle_kib: int, extra: dict[str, Any]) -> None:
    peak = vm(gw.proc.pid, "VmHWM")
    figures = ", ".join(f"{k} {v}" for k, v in extra.items())
    growth = (peak - idle_kib) / 1024
    print(f"{name:<34} peak RSS {peak / 1024:7.1f} MiB (idle {idle_kib / 1024:6.1f} MiB, +{growth:5.1f}); {figures}")


def silent_connections(count: int) -> None:
    """More silent connections than the open-file limit allows: real work must still get through."""
    with gateway(nofile=1024) as gw:
        gw.share()
        idle = vm(gw.proc.pid, "VmHWM")
        socks = []
        for _ in range(count):
            with contextlib.suppress(OSError):
                socks.append(socket.create_connection((HOST, int(gw.url.rsplit(":", 1)[1])), timeout=5))
        time.sleep(0.5)
        ok_health, share_status = gw.healthy(), gw.share()
        time.sleep(4)  # past the header timeout: the silent ones are closed
        closed = 0
        for s in socks:
            s.settimeout(0.01)
            try:
                closed += s.recv(1) == b""
            except (TimeoutError, OSError):
                pass
            s.close()
        log = (gw.home / "serve.log").read_text(errors="replace")
        report(
            f"{count} silent connections",
            gw,
            idle,
            {"healthz": ok_health, "share": share_status, "closed by server": f"{closed}/{len(socks)}",
             "'Too many open files' lines": log.count("Too many open files")},
        )  # fmt: skip


def oversized_headers(count: int) -> None:
    with gateway() as gw:
        idle = vm(gw.proc.pid, "VmHWM")
        statuses: dict[int, int] = {}
        for i in range(count):
            req = urllib.request.Request(gw.url + "/api/v1/inbox", headers={"X-Big": "a" * (64 * 1024 + i)})
            try:
                with urllib.request.urlopen(req, timeout=10) as r:
                    st = r.status
            except urllib.error.HTTPError as exc:
                st = exc.code
            except OSError:
                st = 0
            statuses[st] = statuses.get(st, 0) + 1
        report(f"{count} oversized headers", gw, idle, {"statuses": statuses, "healthz": gw.healthy()})


def big_json(count: int) -> None:
    with gateway() as gw:
        idle = vm(gw.proc.pid, "VmHWM")
        statuses: dict[int, int] = {}
        body = b'{"a": "' + b"x" * (4 * 1024 * 1024) + b'"}'
        lock = threading.Lock()

        def one() -> None:
            req = urllib.request.Request(
                gw.url + "/api/v1/justifications/validate",
                data=body,
                method="POST",
                headers={
                    "Authorization": f"Bearer {gw.token('pat', 'practitioner')}",
                    "Content-Type": "application/json",
                },
            )
            try:
                with urllib.request.urlopen(req, timeout=30) as r:
                    st = r.status
            except urllib.error.HTTPError as exc:
                st = exc.code
            except OSError:
                st = 0
            with lock:
                statuses[st] = statuses.get(st, 0) + 1

        threads = [threading.Thread(target=one) for _ in range(count)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        report(f"{count} concurrent 4 MiB JSON bodies", gw, idle, {"statuses": statuses, "healthz": gw.healthy()})


def large_upload(mib: int) -> None:
    with gateway() as gw:
        gw.share()
        idle = vm(gw.proc.pid, "VmHWM")
        chunk = os.urandom(1024 * 1024)

        def gen() -> Iterator[bytes]:
            for _ in range(mib):
                yield chunk

        start = time.perf_counter()
        status = gw.share(gen)
        secs = time.perf_counter() - start
        report(f"{mib} MiB upload", gw, idle, {"status": status, "MB/s": round(mib * 1.048576 / secs)})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--connections", type=int, default=900)
    ap.add_argument("--headers", type=int, default=200)
    ap.add_argument("--json", type=int, default=32)
    ap.add_argument("--upload-mib", type=int, default=512)
    args = ap.parse_args()
    silent_connections(args.connections)
    oversized_headers(args.headers)
    big_json(args.json)
    large_upload(args.upload_mib)


if __name__ == "__main__":
    main()
