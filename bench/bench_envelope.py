#!/usr/bin/env python3
"""Envelope encryption of one large file (default 1 GiB) through `gateway.envelope`, beside its limits
measured in the same run on the same file:

- the Go `age` CLI encrypting the same file to the same kind of key (X25519; `age` here is Debian's);
- a raw ChaCha20-Poly1305 loop over the same bytes in 64 KiB chunks with preallocated buffers (reads
  included), the floor for any age implementation built on pyca/cryptography.

Each line gives wall time and the CPU split (user/system), because per-chunk allocations show up as
system time (page faults on fresh buffers). Also a post-quantum (age1pq1…) envelope: the hybrid KEM costs
once per file, so its throughput should match X25519's.

The machine is shared, so each contender runs `--rounds` times, interleaved, and the median round is shown.

Usage: python bench/bench_envelope.py [--mib 1024] [--rounds 3] [--dir /tmp]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gateway import envelope  # noqa: E402

CHUNK = 64 * 1024


def measure(fn: Callable[[], None], children: bool = False) -> tuple[float, float, float]:
    """Wall, user and system seconds of `fn` (of its child processes when `children`)."""
    who = resource.RUSAGE_CHILDREN if children else resource.RUSAGE_SELF
    r0, t0 = resource.getrusage(who), time.perf_counter()
    fn()
    wall, r1 = time.perf_counter() - t0, resource.getrusage(who)
    return wall, r1.ru_utime - r0.ru_utime, r1.ru_stime - r0.ru_stime


def raw_loop(src: Path, dst: Path) -> None:
    """Read, seal, write: what encrypt_stream must at least do, with nothing else."""
    aead = ChaCha20Poly1305(os.urandom(32))
    buf = memoryview(bytearray(CHUNK))
    out = memoryview(bytearray(CHUNK + 16))
    counter = 0
    with open(src, "rb", buffering=0) as fin, open(dst, "wb", buffering=0) as fout:
        while n := fin.readinto(buf):
            aead.encrypt_into(counter.to_bytes(11, "big") + b"\x00", buf[:n], None, out[: n + 16])
            fout.write(out[: n + 16])
            counter += 1


def ours(src: Path, dst: Path, recipient: envelope.Recipient) -> None:
    with open(src, "rb", buffering=0) as fin, open(dst, "wb", buffering=0) as fout:
        envelope.encrypt_stream(fin, fout, [recipient])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mib", type=int, default=1024)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--dir", default=None, help="where the input and outputs go (needs 3x the size free)")
    args = ap.parse_args()
    age = shutil.which("age")
    with tempfile.TemporaryDirectory(prefix="safeshare-bench-envelope-", dir=args.dir) as tmp:
        src, out = Path(tmp) / "in.bin", Path(tmp) / "out.age"
        block = os.urandom(1 << 20)
        with open(src, "wb") as fh:
            for _ in range(args.mib):
                fh.write(block)
        identity = envelope.X25519Identity.generate()
        pq = envelope.MLKEM768X25519Identity.generate()
        contenders: list[tuple[str, Callable[[], tuple[float, float, float]]]] = [
            ("raw ChaCha20-Poly1305 loop (limit)", lambda: measure(lambda: raw_loop(src, out))),
            ("gateway.envelope, X25519", lambda: measure(lambda: ours(src, out, identity.recipient()))),
            ("gateway.envelope, mlkem768x25519", lambda: measure(lambda: ours(src, out, pq.recipient()))),
        ]
        if age:
            version = subprocess.run([age, "--version"], capture_output=True, text=True, check=False).stdout.strip()
            cmd = [age, "-r", str(identity.recipient()), "-o", str(out), str(src)]
            contenders.append(
                (f"Go age CLI {version}, X25519", lambda: measure(lambda: subprocess.run(cmd, check=True), True))
            )
        samples: dict[str, list[tuple[float, float, float]]] = {name: [] for name, _ in contenders}
        for _ in range(args.rounds):
            for name, run in contenders:
                samples[name].append(run())
        with open(out, "rb") as fh:  # spot-check: the last file timed is a valid envelope
            envelope.read_header(fh)
        rows = [
            (name, min(s, key=lambda x: abs(x[0] - statistics.median(y[0] for y in s)))) for name, s in samples.items()
        ]
        print(f"envelope encryption of {args.mib} MiB (file to file), median of {args.rounds} interleaved rounds:")
        for name, (wall, user, system) in rows:
            print(
                f"  {name:38s} {wall:6.2f} s wall {args.mib / wall:7.1f} MB/s   user {user:5.2f} s  sys {system:5.2f} s"
            )
        go = next((r for n, r in rows if n.startswith("Go age")), None)
        if go:
            print(f"  gateway.envelope / Go age wall-time ratio: {rows[1][1][0] / go[0]:.2f} (<= 1.00 is the target)")


if __name__ == "__main__":
    main()
