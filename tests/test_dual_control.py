"""Issue 14, dual control: an organisation requires a second person's approval for shares of given purposes or risk
levels. The envelopes are made but every fetch is refused (409 `share_awaiting_approval`) until an approver with the
right role in the sending organisation, not the sender, signs off; the approval is a ledger entry linked to the
share, and the share is then released. A real app on a real SQLite file."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pyrage
import pytest

from gateway.app import create_app
from gateway.config import PolicySettings, Settings, load_settings
from gateway.home import HomeKeys
from tests.conftest import Api, example

RULE = ("test-org", ("s47_enquiry",), ("immediate",), ("dsl", "manager"))


@pytest.fixture
async def held_api(aiohttp_client: Any, settings: Settings, keys: HomeKeys, token: Any) -> Api:
    own = dataclasses.replace(settings, policies=PolicySettings(dual_control=(RULE,)))
    return Api(await aiohttp_client(create_app(own, keys)), token)


def s47() -> dict[str, Any]:
    d = example("share")
    d["purpose"]["code"] = "s47_enquiry"
    return d


async def test_held_until_a_second_person_approves_then_released(held_api: Api, alice: Any) -> None:
    api = held_api
    await api.add_recipient("alice", alice)
    r = await api.share(b"strategy notes", ["alice"], s47())
    assert r.status == 201, await r.text()
    body = await r.json()
    sid = body["share_id"]
    assert body["dual_control"] == {"approvers": ["dsl", "manager"], "because": {"purpose": "s47_enquiry"}}
    envelope = f"/api/v1/shares/{sid}/envelope"
    r = await api.client.get(envelope, headers=api.auth("alice", "recipient"))
    assert r.status == 409 and (await r.json())["error"] == "share_awaiting_approval"
    r = await api.client.get(envelope + "/header", headers=api.auth("alice", "recipient"))
    assert r.status == 409

    # The approver's list; the wrong people cannot approve.
    r = await api.client.get("/api/v1/approvals", headers=api.auth("dee", "dsl"))
    [held] = (await r.json())["shares"]
    assert held["share_id"] == sid and held["because"] == {"purpose": "s47_enquiry"}
    url = f"/api/v1/shares/{sid}/approve"
    r = await api.client.post(url, headers=api.auth("pat", "practitioner"))
    assert r.status == 403  # a practitioner is not an approver (and the sender could not approve their own)
    r = await api.client.post(url, headers=api.auth("oda", "dsl", "other-org"))
    assert r.status == 404
    r = await api.client.post(url, json={"note": "Strategy discussion agreed it."}, headers=api.auth("dee", "dsl"))
    assert r.status == 201, await r.text()
    approved = await r.json()
    assert approved["share_index"] == body["ledger_index"]
    [entry] = await api.ledger(kind="share_approved")
    assert entry["entry"]["share_id"] == sid and entry["entry"]["actor"]["role"] == "dsl"
    assert entry["entry"]["note"] == "Strategy discussion agreed it."
    r = await api.client.post(url, headers=api.auth("max", "manager"))
    assert r.status == 409 and (await r.json())["error"] == "share_already_approved"

    r = await api.client.get(envelope, headers=api.auth("alice", "recipient"))
    assert r.status == 200
    assert pyrage.decrypt(await r.read(), [alice]) == b"strategy notes"
    r = await api.client.get("/api/v1/approvals", headers=api.auth("dee", "dsl"))
    assert (await r.json())["shares"] == []


async def test_the_sender_cannot_approve_their_own(held_api: Api, alice: Any) -> None:
    api = held_api
    await api.add_recipient("alice", alice)
    r = await api.client.post(
        "/api/v1/shares",
        data=_form(s47()),
        headers={"Authorization": f"Bearer {api.token('dee', 'practitioner')}"},
    )
    assert r.status == 201, await r.text()
    sid = (await r.json())["share_id"]
    # The same person, now with an approver role: still the sender.
    both = api.token("dee", "dsl")
    r = await api.client.post(f"/api/v1/shares/{sid}/approve", headers={"Authorization": f"Bearer {both}"})
    assert r.status == 403 and (await r.json())["error"] == "approver_is_sender"


def _form(justification: dict[str, Any]) -> Any:
    import json

    import aiohttp

    form = aiohttp.FormData()
    meta = {"recipients": ["alice"], "justification": justification, "payload_content_type": "text/plain"}
    form.add_field("share", json.dumps(meta), content_type="application/json")
    form.add_field("payload", b"x", filename="payload", content_type="application/octet-stream")
    return form


async def test_other_purposes_are_not_held_nor_can_they_be_approved(held_api: Api, alice: Any) -> None:
    api = held_api
    await api.add_recipient("alice", alice)
    r = await api.share(b"referral", ["alice"], example("share"))
    assert r.status == 201 and "dual_control" not in await r.json()
    sid = (await r.json())["share_id"]
    r = await api.client.get(f"/api/v1/shares/{sid}/envelope", headers=api.auth("alice", "recipient"))
    assert r.status == 200
    r = await api.client.post(f"/api/v1/shares/{sid}/approve", headers=api.auth("dee", "dsl"))
    assert r.status == 409 and (await r.json())["error"] == "not_held_for_approval"


def test_configuration(tmp_path: Path) -> None:
    (tmp_path / "safeshare.toml").write_text(
        '[policies.dual_control."test-org"]\npurposes = ["s47_enquiry"]\nrisk_levels = ["immediate"]\n'
        'approvers = ["dsl", "manager"]\n'
    )
    assert load_settings(tmp_path).policies.dual_control == (RULE,)
    (tmp_path / "safeshare.toml").write_text('[policies.dual_control."test-org"]\npurposes = ["s47_enquiry"]\n')
    with pytest.raises(ValueError, match="approver"):
        load_settings(tmp_path)


async def test_a_passphrase_share_is_held_too(held_api: Api) -> None:
    """An address without a key, opened with a passphrase on /open/: refused while the share waits for approval."""
    api = held_api
    r = await api.share(
        b"strategy notes",
        ["someone@example.net"],
        s47(),
        unenrolled="passphrase",
        passphrase="correct horse battery staple lantern",
    )
    assert r.status == 201, await r.text()
    sid = (await r.json())["share_id"]
    for tail in ("header", "envelope"):
        r = await api.client.get(f"/api/v1/open/{sid}/{tail}")
        assert r.status == 409 and (await r.json())["error"] == "share_awaiting_approval"
    r = await api.client.post(f"/api/v1/shares/{sid}/approve", headers=api.auth("dee", "dsl"))
    assert r.status == 201, await r.text()
    r = await api.client.get(f"/api/v1/open/{sid}/header")
    assert r.status == 200
