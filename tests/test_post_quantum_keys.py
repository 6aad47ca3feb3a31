"""Recipients with post-quantum hybrid keys (age1pq1…), and organisations that require them for new keys.

A share to such a recipient must carry only an ``mlkem768x25519`` stanza (no classic key can open it), and
an organisation listed in ``post_quantum_required`` refuses classic keys for enrolments and new recipients
with ``post_quantum_required`` while other organisations and existing keys are unaffected."""

from __future__ import annotations

import dataclasses
import io
from pathlib import Path
from typing import Any

import pyrage
import pytest

from gateway import envelope
from gateway.app import create_app
from gateway.config import Settings, load_settings
from tests.conftest import Api

PAYLOAD = b"strategy discussion minutes"
STRICT_ORG = "Hereford MASH"


class _Key:
    """What Api.add_recipient expects of an identity (pyrage's shape), for one of ours."""

    def __init__(self, identity: envelope.AgeIdentity) -> None:
        self.identity = identity

    def to_public(self) -> str:
        return str(self.identity.recipient())


@pytest.fixture
async def strict_api(aiohttp_client: Any, settings: Settings, keys: Any, token: Any) -> Api:
    strict = dataclasses.replace(settings, post_quantum_required=(" hereford  mash",))
    return Api(await aiohttp_client(create_app(strict, keys)), token)


def _recipient(api: Api, issuer: Any, sub: str, org: str) -> dict[str, str]:
    tok = issuer.issue(sub, ["recipient"], org=org, email=f"{sub}@example.org", name=sub)
    return {"Authorization": f"Bearer {tok}"}


async def test_post_quantum_recipient_gets_a_hybrid_only_envelope(
    api: Api, share_justification: dict[str, Any]
) -> None:
    identity = envelope.MLKEM768X25519Identity.generate()
    await api.add_recipient("pq-duty", _Key(identity))
    r = await api.share(PAYLOAD, ["pq-duty"], share_justification)
    assert r.status == 201, await r.text()
    share_id = (await r.json())["share_id"]
    blob = await (
        await api.client.get(f"/api/v1/shares/{share_id}/envelope", headers=api.auth("pq-duty", "recipient"))
    ).read()
    assert [s.type for s in envelope.read_header(io.BytesIO(blob))[0]] == ["mlkem768x25519"]
    assert envelope.decrypt(blob, [identity]) == PAYLOAD
    entry = (await api.ledger(kind="recipient_add"))[-1]["entry"]
    assert entry["recipients"][0]["age_recipient"] == str(identity.recipient())


async def test_organisation_requiring_post_quantum_keys(strict_api: Api, issuer: Any) -> None:
    api = strict_api
    classic = str(pyrage.x25519.Identity.generate().to_public())
    hybrid = str(envelope.MLKEM768X25519Identity.generate().recipient())
    h = _recipient(api, issuer, "mash-duty", STRICT_ORG)
    # The extension asks first, and makes a post-quantum key when told to.
    assert (await (await api.client.get("/api/v1/recipients/me", headers=h)).json())["post_quantum_required"] is True
    r = await api.client.post("/api/v1/recipients/enrol", json={"age_recipient": classic}, headers=h)
    body = await r.json()
    assert r.status == 422 and body["error"] == "post_quantum_required" and body["field"] == "age_recipient"
    assert classic not in str(body)
    r = await api.client.post("/api/v1/recipients/enrol", json={"age_recipient": hybrid}, headers=h)
    assert r.status == 202, await r.text()
    assert (await r.json())["enrolment"]["age_recipient"] == hybrid

    # An administrator adding a classic key for that organisation is refused the same way.
    r = await api.client.post(
        "/api/v1/recipients",
        headers=api.auth("root", "admin", STRICT_ORG),
        json={"id": "mash-2", "name": "Two", "org": STRICT_ORG, "email": "two@example.org", "age_recipient": classic},
    )
    assert r.status == 422 and (await r.json())["error"] == "post_quantum_required"

    # Other organisations keep classic keys.
    other = _recipient(api, issuer, "gp-lead", "Hereford GP Practice")
    assert (await (await api.client.get("/api/v1/recipients/me", headers=other)).json())[
        "post_quantum_required"
    ] is False
    r = await api.client.post("/api/v1/recipients/enrol", json={"age_recipient": classic}, headers=other)
    assert r.status == 202, await r.text()
    # Nothing refused reached the ledger: only the two accepted requests.
    assert len(await api.ledger(kind="enrolment_request")) == 2


def test_setting_is_read_from_safeshare_toml(tmp_path: Path) -> None:
    (tmp_path / "safeshare.toml").write_text('post_quantum_required = ["Hereford MASH"]\n', encoding="utf-8")
    settings = load_settings(tmp_path)
    assert settings.requires_post_quantum("hereford mash") and not settings.requires_post_quantum("Other")
    assert not settings.requires_post_quantum(None)
    assert Settings(home=tmp_path, post_quantum_required=("*",)).requires_post_quantum(None)
