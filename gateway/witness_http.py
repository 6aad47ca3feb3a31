"""C2SP tlog-witness over HTTP: `safeshare witness serve` (the witness side) and the gateway's submitter.

The witness keeps, per log origin, the latest checkpoint it cosigned in `tlog-state.json`, replaced
atomically (temporary file, fsync, rename, directory fsync) under one lock together with the check, as the
spec requires. The gateway submits each new checkpoint with a consistency proof from the size the witness
last cosigned; on 409 it takes the witness's size from the `text/x.tlog.size` body, re-proves and retries
once. Returned cosignature lines are kept only if they verify with the configured witness key.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from .ledger.checkpoint import AnyVerifier, CheckpointError, open_note, split_note
from .ledger.tlog_witness import (
    SIZE_CONTENT_TYPE,
    AddCheckpointError,
    CosignatureV1Signer,
    CosignatureV1Verifier,
    LogState,
    add_checkpoint,
    format_request,
)

log = logging.getLogger("safeshare.witness")

STATE_FILE = "tlog-state.json"
MAX_BODY = 64 * 1024


def load_state(path: Path) -> dict[str, LogState]:
    if not path.exists():
        return {}
    raw = json.loads(path.read_text())
    return {o: LogState(int(v["size"]), base64.b64decode(v["root_hash"])) for o, v in raw.items()}


def save_state(path: Path, state: dict[str, LogState]) -> None:
    data = json.dumps(
        {o: {"size": s.size, "root_hash": base64.b64encode(s.root_hash).decode()} for o, s in sorted(state.items())}
    ).encode()
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    dfd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def witness_app(
    directory: Path, signer: CosignatureV1Signer, logs: dict[str, Sequence[AnyVerifier]]
) -> web.Application:
    """`POST /add-checkpoint` exactly as c2sp.org/tlog-witness specifies."""
    state_path = directory / STATE_FILE
    lock = asyncio.Lock()

    async def handle(request: web.Request) -> web.Response:
        body = await request.content.read(MAX_BODY + 1)
        if len(body) > MAX_BODY:
            return web.Response(status=400, text="request too large\n")
        async with lock:  # check and persist atomically
            state = load_state(state_path)
            try:
                origin, new, lines = add_checkpoint(body, logs, state, signer, int(time.time()))
            except AddCheckpointError as exc:
                ctype = SIZE_CONTENT_TYPE if exc.status == 409 else "text/plain"
                return web.Response(status=exc.status, body=exc.body.encode(), content_type=ctype)
            state[origin] = new
            await asyncio.to_thread(save_state, state_path, state)
        return web.Response(text=lines, content_type="text/plain", charset="utf-8")

    app = web.Application(client_max_size=MAX_BODY)
    app.router.add_post("/add-checkpoint", handle)
    return app


ProofSource = Callable[[int, int], Awaitable[list[bytes]]]


class WitnessRejected(Exception):
    pass


async def submit_checkpoint(
    session: aiohttp.ClientSession,
    url: str,
    witness: CosignatureV1Verifier,
    note: bytes,
    size: int,
    known_size: int,
    consistency: ProofSource,
) -> tuple[str, int]:
    """Submit `note` (of tree `size`) to a witness; return (its verified cosignature line, size it now holds).

    `known_size` is what we believe the witness last cosigned (0 if unknown): a 409 corrects it once.
    """
    old = known_size
    for _attempt in range(2):
        proof = [] if old in (0, size) else await consistency(old, size)
        body = format_request(old, proof, note)
        async with session.post(url.rstrip("/") + "/add-checkpoint", data=body) as resp:
            text = await resp.read()
            if resp.status == 409 and resp.headers.get("Content-Type", "").startswith(SIZE_CONTENT_TYPE):
                try:
                    witness_size = int(text.decode("ascii").strip())
                except ValueError:
                    raise WitnessRejected("409 without a valid size") from None
                if witness_size > size or witness_size == old:
                    raise WitnessRejected(f"witness holds size {witness_size}; cannot prove from it to {size}")
                old = witness_size
                continue
            if resp.status != 200:
                raise WitnessRejected(f"witness answered {resp.status}: {text[:200]!r}")
        lines = [line for line in text.decode("utf-8").splitlines() if line]
        for line in lines:
            candidate = split_note(note)[0] + b"\n" + (line + "\n").encode()
            try:
                open_note(candidate, [witness])
            except CheckpointError:
                continue
            return line, size
        raise WitnessRejected("no cosignature from the configured witness key verifies")
    raise WitnessRejected("witness kept answering 409")


def parse_witness_setting(item: str) -> tuple[str, CosignatureV1Verifier]:
    """`tlog_witnesses` entries: "<submission URL> <cosignature/v1 vkey>"."""
    url, _, vkey = item.strip().partition(" ")
    if not url.startswith(("http://", "https://")) or not vkey.strip():
        raise ValueError(f"tlog_witnesses entry {item!r} must be '<URL> <vkey>'")
    return url, CosignatureV1Verifier.from_vkey(vkey.strip())


class WitnessSubmitter:
    """After each checkpoint: submit it to every configured tlog-witness and store the cosignatures."""

    def __init__(self, witnesses: Sequence[tuple[str, CosignatureV1Verifier]], timeout: float = 10.0) -> None:
        self.witnesses = list(witnesses)
        self.known: dict[str, int] = {}
        self.timeout = timeout
        self.errors: dict[str, str] = {}

    async def round(self, store: Any) -> int:
        """Returns how many witnesses cosigned the latest checkpoint in this round."""
        latest = await store.latest_checkpoint()
        if latest is None or not self.witnesses:
            return 0
        size, note = latest
        done: dict[str, str] = {}
        timeout = aiohttp.ClientTimeout(total=self.timeout)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            for url, verifier in self.witnesses:
                if self.known.get(url) == size:
                    continue
                try:
                    line, held = await submit_checkpoint(
                        session, url, verifier, note, size, self.known.get(url, 0), store.consistency_proof
                    )
                except (WitnessRejected, aiohttp.ClientError, TimeoutError) as exc:
                    self.errors[url] = str(exc) or type(exc).__name__
                    log.warning("witness %s did not cosign size %d: %s", url, size, self.errors[url])
                    continue
                self.known[url] = held
                self.errors.pop(url, None)
                done[verifier.name] = line
        if done:
            await store.add_cosignatures(size, done)
        return len(done)
