#!/usr/bin/env python3
"""Gateway benchmarks, each printed next to a baseline measured in the same run on the same machine.

1. Shares per second (1 KiB payload, 1 and 5 recipients, durable: on SQLite a small share's envelopes are
   rows committed with its ledger entry at synchronous=FULL, a large one's files fsynced before that commit)
   through a real `safeshare serve --workers N` subprocess for each N in `--workers` (default 1 and 2), with
   p50/p99 latency at each client count in `--clients` (default 16 and 64), against a bare aiohttp handler's
   requests per second and latency (same client, same concurrency). Server CPU is the gateway's processes' (the
   parent and its workers). Target (issue 15): 1,000 shares/s, 1 recipient.
2. Envelope encryption throughput in-process (`envelope.Encryptor`) against a raw ChaCha20-Poly1305 loop
   over the same bytes in 64 KiB chunks (the floor for any age implementation in Python).
3. A large payload (default 512 MiB) streamed through the gateway: upload MB/s and the server's peak RSS,
   which must stay flat (< 100 MiB) whatever the size.

Usage: python bench/bench_gateway.py [--large-mib 512] [--requests 2000] [--clients 16,64] [--crypto-mib 512]
       [--recipients 1,5] [--workers 1,2]
Shares only: --crypto-mib 0 --large-mib 0 --recipients 1
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pyrage
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gateway import envelope  # noqa: E402

JUSTIFICATION = json.loads((ROOT / "tests/fixtures/justifications/justification-share.json").read_text())
CHUNK = 64 * 1024

BARE_SERVER = """
import sys
from aiohttp import web
async def ok(request):
    return web.json_response({"ok": True})
app = web.Application()
app.router.add_post("/", ok)
app.router.add_get("/", ok)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_healthy(url: str, proc: subprocess.Popen[bytes]) -> None:
    import urllib.request

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=1)  # loopback only
            return
        except Exception:
            if proc.poll() is not None:
                raise SystemExit("server exited") from None
            time.sleep(0.1)
    raise SystemExit(f"{url} never answered")


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def worker_pids(pid: int) -> list[int]:
    """The gateway's serving processes: `pid` itself, or its children when it runs `serve --workers N`."""
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return [pid]
    return [int(c) for c in children] or [pid]


def tree_cpu_seconds(pid: int) -> tuple[float, float]:
    """(all CPU, event-loop threads' CPU) of the gateway `pid` and its workers."""
    workers = worker_pids(pid)
    total = sum(cpu_seconds(w) for w in workers) + (cpu_seconds(pid) if workers != [pid] else 0.0)
    return total, sum(cpu_seconds(w, w) for w in workers)


def server_rss_mib(pid: int) -> float:
    """The largest peak RSS of the gateway's serving processes (each worker streams its own requests)."""
    return max(peak_rss_mib(w) for w in worker_pids(pid))


def cpu_seconds(pid: int, thread: int | None = None) -> float:
    """User + system CPU a process (or one of its threads) has used, from /proc: per request, it says what the
    server costs whatever else the machine was doing, where requests per second on a shared 2-core machine also
    measure the neighbours. The main thread's share matters most: the event loop runs there, one core at most."""
    stat = f"/proc/{pid}/stat" if thread is None else f"/proc/{pid}/task/{thread}/stat"
    fields = Path(stat).read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Result(float):
    """Requests per second, with the latencies (ms) it was measured from and the CPU each request cost."""

    latencies: list[float]
    server_cpu_ms: float = float("nan")
    loop_cpu_ms: float = float("nan")
    client_cpu_ms: float = float("nan")

    def pct(self, p: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(len(ordered) * p))] if ordered else float("nan")

    def line(self) -> str:
        return (
            f"{float(self):7.0f}/s  p50 {self.pct(0.5):6.1f} ms  p99 {self.pct(0.99):6.1f} ms  "
            f"CPU/request server {self.server_cpu_ms:.2f} ms (event loop {self.loop_cpu_ms:.2f}) "
            f"client {self.client_cpu_ms:.2f} ms"
        )


async def hammer(n: int, concurrency: int, make_request, server_pid: int) -> Result:  # type: ignore[no-untyped-def]
    """Run n requests with `concurrency` in flight; returns requests per second and each one's latency."""
    connector = aiohttp.TCPConnector(limit=concurrency)
    latencies: list[float] = []
    async with aiohttp.ClientSession(connector=connector) as session:
        todo = iter(range(n))

        async def worker() -> None:
            for _ in todo:
                start = time.perf_counter()
                async with make_request(session) as r:
                    await r.read()
                    if r.status >= 300:
                        raise SystemExit(f"request failed: {r.status} {await r.text()}")
                latencies.append((time.perf_counter() - start) * 1000)

        (server0, loop0), t0, client0 = tree_cpu_seconds(server_pid), time.perf_counter(), time.process_time()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        result = Result(n / (time.perf_counter() - t0))
        result.latencies = latencies
        server1, loop1 = tree_cpu_seconds(server_pid)
        result.server_cpu_ms = (server1 - server0) * 1000 / n
        result.loop_cpu_ms = (loop1 - loop0) * 1000 / n
        result.client_cpu_ms = (time.process_time() - client0) * 1000 / n
        return result


def share_body(recipients: list[str], payload: bytes) -> tuple[bytes, str]:
    """One share request's multipart body and its Content-Type, encoded once and sent for every request: the load
    generator shares the 2 cores with the gateway, and re-encoding the same form each time (aiohttp's FormData)
    cost it about 0.17 ms of CPU per request (0.33 ms, now 0.15). The gateway does the same work for every copy."""
    boundary = "safeshare-bench-" + os.urandom(8).hex()
    meta = json.dumps({"recipients": recipients, "justification": JUSTIFICATION}).encode()
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="share"\r\n'
        "Content-Type: application/json\r\n\r\n".encode()
        + meta
        + f'\r\n--{boundary}\r\nContent-Disposition: form-data; name="payload"; filename="p"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n".encode()
        + payload
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return body, f"multipart/form-data; boundary={boundary}"


def cli(home: Path, *args: str) -> str:
    return subprocess.run(
        [sys.executable, "-m", "gateway.cli", "--home", str(home), *args], check=True, capture_output=True, text=True
    ).stdout


def bench_encryption(total_mib: int) -> None:
    data = os.urandom(CHUNK * 16)  # 1 MiB reused: measures crypto, not the RNG
    pushes = total_mib
    key = ChaCha20Poly1305(os.urandom(32))
    t0 = time.perf_counter()
    counter = 0
    for _ in range(pushes):
        for off in range(0, len(data), CHUNK):
            key.encrypt(counter.to_bytes(11, "big") + b"\x00", data[off : off + CHUNK], None)
            counter += 1
    raw = total_mib / (time.perf_counter() - t0)
    rcpt = pyrage.x25519.Identity.generate().to_public()
    enc = envelope.Encryptor([envelope.X25519Recipient.parse(str(rcpt))])
    t0 = time.perf_counter()
    enc.header()
    for _ in range(pushes):
        enc.update(data)
    enc.finalize()
    ours = total_mib / (time.perf_counter() - t0)
    print(
        f"envelope encryption ({total_mib} MiB in-process): {ours:8.1f} MB/s   "
        f"raw ChaCha20-Poly1305 baseline {raw:8.1f} MB/s   ratio {ours / raw:.2f}"
    )


async def bench_http(
    home: Path,
    requests: int,
    clients: list[int],
    large_mib: int,
    recipients: list[int],
    workers: list[int],
    profile: str | None,
) -> None:
    port = free_port()
    cli(home, "init")
    ids = []
    for i in range(5):
        ident = pyrage.x25519.Identity.generate()
        rid = f"r{i}"
        cli(
            home,
            "recipient",
            "add",
            rid,
            "--name",
            rid,
            "--org",
            "bench",
            "--email",
            f"{rid}@example.org",
            "--age-recipient",
            str(ident.to_public()),
        )
        ids.append(rid)
    token = cli(home, "token", "issue", "--sub", "bench", "--role", "practitioner", "--ttl", "7200").strip()
    # --profile: the server's event-loop (main) thread under cProfile, written when it stops on SIGTERM.
    profiler = ["-m", "cProfile", "-o", profile] if profile else []

    def start(count: int) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [sys.executable, *(profiler if count == 1 else []), "-m", "gateway.cli", "--home", str(home), "serve"]
            + ["--port", str(port), "--workers", str(count)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    server = start(workers[0])
    url = f"http://127.0.0.1:{port}"
    bare_port = free_port()
    bare = subprocess.Popen([sys.executable, "-c", BARE_SERVER, str(bare_port)])
    try:
        wait_healthy(url + "/healthz", server)
        wait_healthy(f"http://127.0.0.1:{bare_port}/", bare)
        print(
            f"load before: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f} "
            f"(1/5/15 min), {os.cpu_count()} CPUs",
            flush=True,
        )
        headers = {"Authorization": f"Bearer {token}"}
        payload = os.urandom(1024)
        for w, count in enumerate(workers if requests else ()):
            if w:  # the next worker count: the same home and database, a new `serve`
                server.terminate()
                server.wait()
                server = start(count)
                wait_healthy(url + "/healthz", server)
            for n, c in ((n, c) for n in recipients for c in clients):
                # The bare handler is measured right before each run (same client, same concurrency, same
                # machine state), so the ratio is what the figures mean on a shared machine.
                bare_rps = await hammer(
                    requests, c, lambda s: s.post(f"http://127.0.0.1:{bare_port}/", data=b"x" * 1024), bare.pid
                )
                body, ctype = share_body(ids[:n], payload)
                rps = await hammer(
                    requests,
                    c,
                    lambda s, body=body, ctype=ctype: s.post(
                        url + "/api/v1/shares", data=body, headers={**headers, "Content-Type": ctype}
                    ),
                    server.pid,
                )
                print(
                    f"shares, 1 KiB, {n} recipient(s), {count} worker(s), {c:3d} clients: {rps.line()}   "
                    f"bare aiohttp handler {bare_rps.line()}   ratio {rps / bare_rps:.3f}"
                    + ("   target 1000/s" if n == 1 else ""),
                    flush=True,
                )
        print(f"load after: {os.getloadavg()[0]:.2f} (1 min)", flush=True)
        if not large_mib:
            return

        # Large payload, streamed from a generator so the client holds no copy either.
        block = os.urandom(1024 * 1024)

        async def body() -> AsyncIterator[bytes]:
            for _ in range(large_mib):
                yield block

        before = server_rss_mib(server.pid)
        writer = aiohttp.MultipartWriter("form-data")
        part = writer.append_json(
            {"recipients": ids[:1], "justification": JUSTIFICATION, "payload_content_type": "application/octet-stream"}
        )
        part.set_content_disposition("form-data", name="share")
        part = writer.append(body(), {"Content-Type": "application/octet-stream"})
        part.set_content_disposition("form-data", name="payload", filename="big.bin")
        timeout = aiohttp.ClientTimeout(total=3600)
        async with aiohttp.ClientSession(timeout=timeout) as s:
            t0 = time.perf_counter()
            async with s.post(url + "/api/v1/shares", data=writer, headers=headers) as r:
                text = await r.text()
                if r.status != 201:
                    raise SystemExit(f"large share failed: {r.status} {text}")
            secs = time.perf_counter() - t0
        print(
            f"large payload {large_mib} MiB through the gateway (1 recipient): {large_mib / secs:8.1f} MB/s, "
            f"server peak RSS {server_rss_mib(server.pid):.1f} MiB (before: {before:.1f} MiB; limit 100 MiB)"
        )
        # And back out (from the envelope store: a file, or chunks in PostgreSQL), read in slices by the client.
        share_id = json.loads(text)["share_id"]
        fetch_token = cli(home, "token", "issue", "--sub", ids[0], "--role", "recipient", "--ttl", "7200").strip()
        async with aiohttp.ClientSession(timeout=timeout) as s:
            t0 = time.perf_counter()
            got = 0
            async with s.get(
                f"{url}/api/v1/shares/{share_id}/envelope", headers={"Authorization": f"Bearer {fetch_token}"}
            ) as r:
                if r.status != 200:
                    raise SystemExit(f"large fetch failed: {r.status}")
                async for data in r.content.iter_chunked(1024 * 1024):
                    got += len(data)
            secs = time.perf_counter() - t0
        print(
            f"large envelope {got / 2**20:.0f} MiB fetched back: {got / 2**20 / secs:8.1f} MB/s, "
            f"server peak RSS {server_rss_mib(server.pid):.1f} MiB (limit 100 MiB)"
            f"   envelopes in {os.environ.get('SAFESHARE_DATABASE', 'SQLite').split('@')[-1]}"
        )
    finally:
        bare.terminate()
        bare.wait()
        server.terminate()
        server.wait()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--large-mib", type=int, default=512, help="0 skips the large payload")
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--clients", default="16,64", help="comma-separated concurrent client counts")
    ap.add_argument("--crypto-mib", type=int, default=512, help="0 skips the encryption benchmark")
    ap.add_argument("--profile", help="write a cProfile of the gateway's event-loop thread to this file")
    ap.add_argument("--recipients", default="1,5", help="comma-separated recipient counts per share")
    ap.add_argument(
        "--workers", default="1,2", help="comma-separated `serve --workers` counts (the large payload uses the last)"
    )
    args = ap.parse_args()
    if args.crypto_mib:
        bench_encryption(args.crypto_mib)
    with tempfile.TemporaryDirectory(prefix="safeshare-bench-") as tmp:
        limits = f"[limits]\nmax_payload_bytes = {(args.large_mib + 16) * 1024 * 1024}\n"
        (Path(tmp) / "safeshare.toml").write_text(limits)
        clients = [int(c) for c in args.clients.split(",")]
        recipients = [int(n) for n in args.recipients.split(",")]
        workers = [int(w) for w in args.workers.split(",")]
        asyncio.run(bench_http(Path(tmp), args.requests, clients, args.large_mib, recipients, workers, args.profile))


if __name__ == "__main__":
    main()
