"""C2SP tlog-witness: `safeshare witness serve` on a real loopback port, the gateway's submitter (409 handled
by re-proving), cosignature/v1 lines stored and served, state persisted; checked with tests/tlog_client.py."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import aiohttp
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gateway.cli import witness_serve_app
from gateway.ledger.tlog_witness import CosignatureV1Signer, CosignatureV1Verifier, format_request
from gateway.witness_http import WitnessSubmitter

from . import tlog_client as tc
from .conftest import Api
from .test_cli import safeshare
from .test_tlog import _grow


async def _serve(app: web.Application) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"http://127.0.0.1:{port}"


async def test_tlog_witness_end_to_end(api: Api, tmp_path: Path) -> None:
    signer = api.gateway.signer
    wdir = tmp_path / "witness"
    r = safeshare(
        tmp_path / "w-home",
        "witness",
        "init",
        "--dir",
        str(wdir),
        "--name",
        "partner.example/w",
        "--log-vkey",
        signer.vkey,
    )
    assert r.returncode == 0, r.stderr
    (wdir / "log.vkey").write_text(f"{signer.vkey}\n{signer.pq_vkey}\n")
    app, cosig_vkey = witness_serve_app(wdir)
    runner, url = await _serve(app)
    try:
        verifier = CosignatureV1Verifier.from_vkey(cosig_vkey)
        size1, note1 = await _grow(api, 10)
        store = api.gateway.store
        assert await WitnessSubmitter([(url, verifier)]).round(store) == 1
        lines = await store.cosignature_lines(size1)
        assert len(lines) == 1 and lines[0].startswith("\u2014 partner.example/w ")
        served = await (await api.client.get("/tlog/checkpoint")).read()
        public = base64.b64decode(cosig_vkey.split("+", 2)[2])[1:]
        assert tc.verify_cosignature_v1(tc.parse_note(served), "partner.example/w", public)
        state = json.loads((wdir / "tlog-state.json").read_text())
        assert state[signer.origin]["size"] == size1

        # A fresh submitter believes the witness is at 0: the 409 tells it 10, it re-proves 10 -> 20.
        size2, note2 = await _grow(api, 20)
        sub = WitnessSubmitter([(url, verifier)])
        assert await sub.round(store) == 1 and sub.known[url] == size2
        assert json.loads((wdir / "tlog-state.json").read_text())[signer.origin]["size"] == size2

        # Offline receipts under a C2SP tlog-policy: log keys (either), witnesses, quorum.
        r = await api.client.get("/api/v1/ledger/entries/15/proof", headers=api.auth("aud", "auditor"))
        receipt = tmp_path / "r.tlog-proof"
        receipt.write_bytes(await r.read())
        other = CosignatureV1Signer("other.example/w", Ed25519PrivateKey.generate()).vkey()
        policies = {
            f"log {signer.vkey}\nwitness W {cosig_vkey}\nquorum W\n": 0,
            f"# PQ only\nlog {signer.pq_vkey}\nquorum none\n": 0,
            f"log {signer.vkey}\nlog {signer.pq_vkey}\nwitness W {cosig_vkey}\nwitness V {other}\n"
            "group G any W V\nquorum G\n": 0,
            f"log {signer.vkey}\nwitness W {cosig_vkey}\nwitness V {other}\ngroup G all W V\nquorum G\n": 1,
            f"log {other}\nquorum none\n": 2,
            f"log {signer.vkey}\nquorum W\n": 2,
        }
        for i, (text, code) in enumerate(policies.items()):
            pfile = tmp_path / f"policy{i}"
            pfile.write_text(text)
            out = safeshare(
                tmp_path / "nowhere", "ledger", "verify-receipt", str(receipt), "--policy", str(pfile), check=False
            )
            assert out.returncode == code, (text, out.stderr)
            if code == 1:
                assert "quorum" in out.stderr

        async with aiohttp.ClientSession() as s:

            async def post(body: bytes) -> tuple[int, str, bytes]:
                async with s.post(url + "/add-checkpoint", data=body) as resp:
                    return resp.status, resp.headers.get("Content-Type", ""), await resp.read()

            status, ctype, body = await post(format_request(0, [], note2))
            assert (status, ctype, body) == (409, "text/x.tlog.size", b"20\n")  # rollback refused
            status, _, body = await post(format_request(25, [], note2))
            assert status == 400
            unknown = b"other.example/log\n1\n" + note2.split(b"\n", 3)[3]
            assert (await post(format_request(0, [], unknown)))[0] == 404
            forged = note2.replace(b"\n20\n", b"\n21\n", 1)
            assert (await post(format_request(20, [], forged)))[0] == 403
            size3, note3 = await _grow(api, 30)
            good = await store.consistency_proof(size2, size3)
            bad = [bytes(32)] * len(good)
            assert (await post(format_request(size2, bad, note3)))[0] == 422
            assert (await post(b"old 020\n\n" + note3))[0] == 400
            status, _, body = await post(format_request(size2, good, note3))
            assert status == 200 and body.startswith("\u2014 partner.example/w ".encode())
    finally:
        await runner.cleanup()

    # State survives a restart: the restarted witness still refuses to go back to 0.
    app2, _ = witness_serve_app(wdir)
    runner2, url2 = await _serve(app2)
    try:
        async with (
            aiohttp.ClientSession() as s,
            s.post(url2 + "/add-checkpoint", data=format_request(0, [], note1)) as resp,
        ):
            assert resp.status == 409 and await resp.read() == b"30\n"
    finally:
        await runner2.cleanup()


def test_real_gateway_submits_to_a_real_witness_process(tmp_path: Path) -> None:
    """`safeshare serve` configured with `tlog_witnesses` submits each checkpoint to `safeshare witness serve`
    (both real processes on loopback); the cosignature lands in /tlog/checkpoint within seconds."""
    import subprocess
    import sys
    import time

    from gateway.config import load_settings
    from gateway.home import init_home
    from gateway.ledger.signer import LedgerSigner

    from .conftest import example
    from .test_cli import call, free_port, serve

    home = tmp_path / "gw"
    assert safeshare(home, "init").returncode == 0
    settings = load_settings(home)
    keys = init_home(settings)
    signer = LedgerSigner(settings.log_origin, keys.ledger_key, keys.ledger_pq_key)
    wdir = tmp_path / "witness"
    init = ("witness", "init", "--dir", str(wdir), "--name", "partner.example/w", "--log-vkey", signer.vkey)
    assert safeshare(tmp_path / "w-home", *init).returncode == 0
    (wdir / "log.vkey").write_text(f"{signer.vkey}\n{signer.pq_vkey}\n")
    port = free_port()
    witness = subprocess.Popen(
        [sys.executable, "-m", "gateway.cli", "witness", "serve", "--dir", str(wdir), "--listen", f"127.0.0.1:{port}"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert witness.stdout is not None
        cosig_vkey = witness.stdout.readline().strip()
        (home / "safeshare.toml").write_text(f'tlog_witnesses = ["http://127.0.0.1:{port} {cosig_vkey}"]\n')
        token = safeshare(home, "token", "issue", "--sub", "pat", "--role", "practitioner").stdout.strip()
        with serve(home, tmp_path / "serve.log") as url:
            body = json.dumps(example("not-share")).encode()
            assert call(url + "/api/v1/decisions", token, body, "application/json")[0] == 201
            public = base64.b64decode(cosig_vkey.split("+", 2)[2])[1:]
            deadline = time.monotonic() + 30
            while True:
                status, note = call(url + "/tlog/checkpoint")
                if status == 200 and tc.verify_cosignature_v1(tc.parse_note(note), "partner.example/w", public):
                    break
                assert time.monotonic() < deadline, note
                time.sleep(0.2)
    finally:
        witness.terminate()
        witness.wait(10)
    assert json.loads((wdir / "tlog-state.json").read_text())[settings.log_origin]["size"] >= 1
    # The full offline verification still passes over checkpoints with both log lines and witness lines.
    out = safeshare(home, "ledger", "verify", check=False)
    assert out.returncode == 0, out.stderr
