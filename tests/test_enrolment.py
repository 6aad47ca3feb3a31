"""Recipients enrol keys generated on their own device; administrators approve or reject; keys rotate."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyrage

from tests.conftest import Api
from tests.test_cli import call, safeshare, serve

PAYLOAD = b"MASH research notes"


def _recipient_headers(api: Api, issuer: Any, sub: str = "hereford-mash-duty", **claims: Any) -> dict[str, str]:
    tok = issuer.issue(
        sub,
        ["recipient"],
        org=claims.pop("org", "Hereford MASH"),
        email=claims.pop("email", "duty@hereford.example"),
        name=claims.pop("name", "MASH duty"),
    )
    return {"Authorization": f"Bearer {tok}"}


async def test_enrol_approve_rotate(api: Api, issuer: Any, share_justification: dict[str, Any]) -> None:
    first, second = pyrage.x25519.Identity.generate(), pyrage.x25519.Identity.generate()
    h = _recipient_headers(api, issuer)
    # Identity comes from the token; the body carries only the public key.
    r = await api.client.post("/api/v1/recipients/enrol", json={"age_recipient": str(first.to_public())}, headers=h)
    assert r.status == 202, await r.text()
    assert (await r.json())["enrolment"]["status"] == "pending"
    r = await api.client.post("/api/v1/recipients/enrol", json={"age_recipient": "x", "org": "Evil"}, headers=h)
    assert r.status == 400
    # Pending: not yet in the directory, so nothing can be shared to it.
    r = await api.share(PAYLOAD, ["hereford-mash-duty"], share_justification)
    assert r.status == 422 and (await r.json())["unknown"] == ["hereford-mash-duty"]
    admin = api.auth("root", "admin", "Hereford MASH")
    r = await api.client.get("/api/v1/enrolments?status=pending", headers=admin)
    assert [e["recipient_id"] for e in (await r.json())["enrolments"]] == ["hereford-mash-duty"]
    r = await api.client.post("/api/v1/recipients/hereford-mash-duty/approve", headers=api.auth("pat", "practitioner"))
    assert r.status == 403
    r = await api.client.post("/api/v1/recipients/hereford-mash-duty/approve", headers=admin)
    assert r.status == 200 and (await r.json())["enrolment"]["status"] == "approved"
    r = await api.client.post("/api/v1/recipients/hereford-mash-duty/approve", headers=admin)
    assert r.status == 404 and (await r.json())["error"] == "no_pending_enrolment"

    old_share = await (await api.share(PAYLOAD, ["hereford-mash-duty"], share_justification)).json()

    # Rotation: a new enrolment, approved, is used for new shares; old shares stay openable with the old key.
    r = await api.client.post("/api/v1/recipients/enrol", json={"age_recipient": str(second.to_public())}, headers=h)
    assert r.status == 202
    assert (await api.client.post("/api/v1/recipients/hereford-mash-duty/approve", headers=admin)).status == 200
    new_share = await (await api.share(PAYLOAD, ["hereford-mash-duty"], share_justification)).json()
    blob_old = await (await api.client.get(f"/api/v1/shares/{old_share['share_id']}/envelope", headers=h)).read()
    blob_new = await (await api.client.get(f"/api/v1/shares/{new_share['share_id']}/envelope", headers=h)).read()
    assert pyrage.decrypt(blob_old, [first]) == PAYLOAD
    assert pyrage.decrypt(blob_new, [second]) == PAYLOAD
    me = await (await api.client.get("/api/v1/recipients/me", headers=h)).json()
    assert me["recipient"]["age_recipient"] == str(second.to_public())
    assert [(k["age_recipient"], k["status"]) for k in me["keys"]] == [
        (str(second.to_public()), "active"),
        (str(first.to_public()), "retired"),
    ]
    kinds = [e["kind"] for e in await api.ledger(recipient="hereford-mash-duty")]
    assert kinds.count("enrolment_request") == 2 and kinds.count("enrolment_approve") == 2


async def test_reject_and_refusals(api: Api, issuer: Any) -> None:
    key = str(pyrage.x25519.Identity.generate().to_public())
    h = _recipient_headers(api, issuer, sub="gp-lead")
    assert (await api.client.post("/api/v1/recipients/enrol", json={"age_recipient": key}, headers=h)).status == 202
    r = await api.client.post(
        "/api/v1/recipients/gp-lead/reject",
        json={"reason": "not known to us"},
        headers=api.auth("root", "admin", "Hereford MASH"),
    )
    assert r.status == 200 and (await r.json())["enrolment"]["status"] == "rejected"
    entry = (await api.ledger(kind="enrolment_reject"))[0]["entry"]
    assert entry["reason"] == "not known to us" and entry["recipients"][0]["id"] == "gp-lead"
    # A token without an e-mail claim cannot enrol; a malformed key is refused with the field named.
    no_email = {"Authorization": f"Bearer {issuer.issue('gp-lead', ['recipient'], org='GP')}"}
    r = await api.client.post("/api/v1/recipients/enrol", json={"age_recipient": key}, headers=no_email)
    assert r.status == 422 and (await r.json())["field"] == "token.email"
    r = await api.client.post("/api/v1/recipients/enrol", json={"age_recipient": "age1nope"}, headers=h)
    assert r.status == 422 and (await r.json())["field"] == "age_recipient"


def test_cli_approve(tmp_path: Path) -> None:
    home = tmp_path / "home"
    ident = pyrage.x25519.Identity.generate()
    with serve(home, tmp_path / "server.log") as url:
        tok = safeshare(
            home,
            "token",
            "issue",
            "--sub",
            "ppu-desk",
            "--role",
            "recipient",
            "--org",
            "Police PPU",
            "--email",
            "ppu@police.example",
        ).stdout.strip()
        status, _ = call(
            url + "/api/v1/recipients/enrol",
            tok,
            f'{{"age_recipient": "{ident.to_public()}"}}'.encode(),
            "application/json",
        )
        assert status == 202
        assert "ppu-desk" in safeshare(home, "recipient", "pending").stdout
        r = safeshare(home, "recipient", "approve", "ppu-desk")
        assert "approved" in r.stderr
        listed = safeshare(home, "recipient", "list").stdout
        assert "ppu-desk\tactive\tPolice PPU\tppu@police.example" in listed
        assert safeshare(home, "recipient", "approve", "ppu-desk", check=False).returncode == 2


async def test_rotation_of_an_administrator_registered_key(api: Api, issuer: Any) -> None:
    old, new = pyrage.x25519.Identity.generate(), pyrage.x25519.Identity.generate()
    await api.add_recipient("hereford-mash-duty", old)
    h = _recipient_headers(api, issuer)
    r = await api.client.post("/api/v1/recipients/enrol", json={"age_recipient": str(new.to_public())}, headers=h)
    assert r.status == 202
    assert (
        await api.client.post(
            "/api/v1/recipients/hereford-mash-duty/approve", headers=api.auth("root", "admin", "Hereford MASH")
        )
    ).status == 200
    me = await (await api.client.get("/api/v1/recipients/me", headers=h)).json()
    assert [(k["age_recipient"], k["status"]) for k in me["keys"]] == [
        (str(new.to_public()), "active"),
        (str(old.to_public()), "retired"),
    ]
