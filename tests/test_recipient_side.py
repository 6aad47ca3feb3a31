"""The recipient's side on the gateway: acknowledgements the sender sees, the notification page, .eml files."""

from __future__ import annotations

import email
import email.policy
import hashlib
import json
import os
import subprocess
import sys
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pyrage

from tests.conftest import Api, example
from tests.test_cli import call, multipart, safeshare, serve


async def test_acknowledgement_is_recorded_and_shown_to_the_sender(
    api: Api, alice: Any, share_justification: dict[str, Any]
) -> None:
    await api.add_recipient("alice", alice)
    sid = (await (await api.share(b"notes", ["alice"], share_justification)).json())["share_id"]
    h = api.auth("alice", "recipient")
    r = await api.client.post(f"/api/v1/shares/{sid}/acknowledge", json={"note": "Strategy meeting booked."}, headers=h)
    assert r.status == 200, await r.text()
    r = await api.client.post(
        f"/api/v1/shares/{sid}/acknowledge", json={"note": "x"}, headers=api.auth("bob", "recipient")
    )
    assert r.status == 404
    r = await api.client.post(f"/api/v1/shares/{sid}/acknowledge", json={"note": "  "}, headers=h)
    assert r.status == 422 and (await r.json())["field"] == "note"
    sent = (await (await api.client.get("/api/v1/shares", headers=api.auth("pat", "practitioner"))).json())["shares"]
    mine = sent[0]["recipients"][0]
    assert mine["acknowledgement"] == "Strategy meeting booked." and mine["acknowledged_at"]
    entry = (await api.ledger(kind="acknowledge"))[0]["entry"]
    assert entry["share_id"] == sid and entry["note"] == "Strategy meeting booked."
    assert entry["subjects"] == ["CASE-2026-0412"]


async def test_notification_page_reveals_nothing_but_the_reference(api: Api) -> None:
    r = await api.client.get("/s/sh_abcdefghijklmnopqrstuvwx")
    assert r.status == 200 and r.content_type == "text/html"
    text = await r.text()
    assert "sh_abcdefghijklmnopqrstuvwx" in text and "Set up receiving" in text
    assert "default-src 'none'" in r.headers["Content-Security-Policy"]
    r = await api.client.get("/s/<script>alert(1)</script>")
    assert "<script>" not in await r.text()


def test_fetch_writes_an_eml_for_a_mail_message(tmp_path: Path) -> None:
    home = tmp_path / "home"
    alice = pyrage.x25519.Identity.generate()
    (tmp_path / "alice.key").write_text(f"{alice}\n")
    msg = EmailMessage()
    msg["Subject"] = "Referral"
    msg.set_content("Body text.")
    msg.add_attachment(os.urandom(5000), maintype="application", subtype="pdf", filename="notes.pdf")
    raw = msg.as_bytes()
    with serve(home, tmp_path / "server.log") as url:
        safeshare(
            home,
            "recipient",
            "add",
            "alice",
            "--name",
            "A",
            "--org",
            "MASH",
            "--email",
            "a@example.org",
            "--age-recipient",
            str(alice.to_public()),
        )
        pt = safeshare(home, "token", "issue", "--sub", "pat", "--role", "practitioner").stdout.strip()
        rt = safeshare(home, "token", "issue", "--sub", "alice", "--role", "recipient").stdout.strip()
        body, ctype = multipart(
            {"recipients": ["alice"], "justification": example("share"), "payload_content_type": "message/rfc822"}, raw
        )
        status, resp = call(url + "/api/v1/shares", pt, body, ctype)
        sid = json.loads(resp)["share_id"]
        out = tmp_path / "inbox"
        out.mkdir()
        r = subprocess.run(
            [
                sys.executable,
                "-m",
                "gateway.cli",
                "fetch",
                "--gateway",
                url,
                "--token",
                rt,
                "--identity",
                str(tmp_path / "alice.key"),
                "-o",
                str(out),
                sid,
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert r.returncode == 0, r.stderr
        eml = out / f"{sid}.eml"
        parsed = email.message_from_bytes(eml.read_bytes(), policy=email.policy.default)
        assert parsed["Subject"] == "Referral"
        assert [p.get_filename() for p in parsed.iter_attachments()] == ["notes.pdf"]


async def test_escrow_off_by_default(api: Api, alice: Any, share_justification: dict[str, Any]) -> None:
    await api.add_recipient("alice", alice)
    sid = (await (await api.share(b"notes", ["alice"], share_justification)).json())["share_id"]
    entry = (await api.ledger(kind="share"))[0]["entry"]
    assert entry["escrow"] is None
    assert await _stored(api, sid) == ["alice"]
    r = await api.client.post(f"/api/v1/shares/{sid}/escrow", json={"reason": "x"}, headers=api.auth("root", "admin"))
    assert r.status == 404


async def test_escrow_recovery(
    aiohttp_client: Any, settings: Any, keys: Any, token: Any, alice: Any, share_justification: dict[str, Any]
) -> None:
    import dataclasses

    from gateway.app import create_app

    records_team = pyrage.x25519.Identity.generate()
    escrowed = dataclasses.replace(settings, escrow_recipient=str(records_team.to_public()))
    api = Api(await aiohttp_client(create_app(escrowed, keys)), token)
    await api.add_recipient("alice", alice)
    payload = os.urandom(100_000)
    share = await (await api.share(payload, ["alice"], share_justification)).json()
    sid = share["share_id"]
    entry = (await api.ledger(kind="share"))[0]["entry"]
    assert entry["escrow"]["age_recipient"] == str(records_team.to_public())
    # The recipient's own envelope is not readable with the escrow key: escrow is a separate envelope.
    blob = await (await api.client.get(f"/api/v1/shares/{sid}/envelope", headers=api.auth("alice", "recipient"))).read()
    assert pyrage.decrypt(blob, [alice]) == payload
    try:
        pyrage.decrypt(blob, [records_team])
        raise AssertionError("escrow key opened the recipient's envelope")
    except pyrage.DecryptError:
        pass
    admin = api.auth("root", "admin")
    r = await api.client.post(f"/api/v1/shares/{sid}/escrow", json={}, headers=admin)
    assert r.status == 422 and (await r.json())["field"] == "reason"
    r = await api.client.post(f"/api/v1/shares/{sid}/escrow", json={"reason": "x"}, headers=api.auth("a", "auditor"))
    assert r.status == 403
    r = await api.client.post(f"/api/v1/shares/{sid}/escrow", json={"reason": "Court order 2026/123"}, headers=admin)
    assert r.status == 200
    escrow_blob = await r.read()
    assert pyrage.decrypt(escrow_blob, [records_team]) == payload
    assert hashlib.sha256(escrow_blob).hexdigest() == entry["escrow"]["envelope_sha256"]
    release = [e["entry"] for e in await api.ledger(kind="fetch") if e["entry"].get("escrow")][0]
    assert release["reason"] == "Court order 2026/123" and release["actor"]["role"] == "admin"
    # Revocation destroys the escrow envelope too, and a restart's sweep keeps live escrow envelopes.
    assert (
        await api.client.post(f"/api/v1/shares/{sid}/revoke", headers=api.auth("pat", "practitioner"))
    ).status == 200
    assert await _stored(api, sid) == []
    sid2 = (await (await api.share(payload, ["alice"], share_justification)).json())["share_id"]
    await api.gateway.sweep_orphans()
    assert await _stored(api, sid2) == ["_escrow", "alice"]


async def test_share_lookup_carries_the_justification_and_the_recipients_own_note(
    api: Api, alice: Any, bob: Any, share_justification: dict[str, Any]
) -> None:
    """The extension's share view shows why the recipient has it (the recorded justification) and their note."""
    await api.add_recipient("alice", alice)
    await api.add_recipient("bob", bob)
    admin = api.auth("root", "admin", "Hereford MASH")
    team = {"id": "duty", "name": "Duty", "org": "Hereford MASH", "email": "duty@example.org"}
    assert (await api.client.post("/api/v1/teams", json=team, headers=admin)).status == 201
    r = await api.client.post("/api/v1/teams/duty/members", json={"member": "bob"}, headers=admin)
    assert r.status == 201
    sid = (await (await api.share(b"notes", ["alice", "duty"], share_justification)).json())["share_id"]
    ha, hb = api.auth("alice", "recipient"), api.auth("bob", "recipient")
    mine = await (await api.client.get(f"/api/v1/shares/{sid}", headers=ha)).json()
    assert mine["justification"] == share_justification
    assert mine["policy"]["id"] == "hmg-2018" and mine["policy"]["digest"].startswith("sha256:")
    assert mine["acknowledgement"] is None and mine["via"] is None
    assert "recipients" not in mine  # still only the caller's own envelope
    theirs = await (await api.client.get(f"/api/v1/shares/{sid}", headers=hb)).json()
    assert theirs["via"] == "duty"
    # The inbox rows stay light: no justification there.
    rows = (await (await api.client.get("/api/v1/inbox", headers=ha)).json())["shares"]
    assert [row["id"] for row in rows] == [sid] and "justification" not in rows[0]
    r = await api.client.post(f"/api/v1/shares/{sid}/acknowledge", json={"note": "Visit arranged."}, headers=ha)
    assert r.status == 200
    mine = await (await api.client.get(f"/api/v1/shares/{sid}", headers=ha)).json()
    assert mine["acknowledgement"] == "Visit arranged." and mine["acknowledged_at"]
    sender = await (await api.client.get(f"/api/v1/shares/{sid}", headers=api.auth("pat", "practitioner"))).json()
    assert sender["justification"]["rules"] == share_justification["rules"]
    by_id = {x["id"]: x for x in sender["recipients"]}
    assert by_id["alice"]["acknowledgement"] == "Visit arranged." and by_id["alice"]["via"] is None
    assert by_id["bob"]["acknowledged_at"] is None and by_id["bob"]["via"] == "duty"
    # Someone else's share is still a plain 404.
    r = await api.client.get(f"/api/v1/shares/{sid}", headers=api.auth("mallory", "recipient"))
    assert r.status == 404


async def test_notification_page_says_the_extension_opens_the_share(api: Api) -> None:
    r = await api.client.get("/s/sh_abcdefghijklmnopqrstuvwx")
    text = await r.text()
    assert "opening this link takes you straight to the share in the\nextension" in text
    assert r.headers["X-Frame-Options"] == "DENY"


async def _stored(api: Api, sid: str) -> list[str]:
    """Which of a share's envelopes are stored (files, or chunks in PostgreSQL)."""
    return [n for n in ("_escrow", "alice", "bob") if await api.gateway.envelopes.head(sid, n, 1) is not None]
