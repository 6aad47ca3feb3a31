"""Recipients without a key (issue 10), at API level: held shares claimed by e-mail code (real SMTP server on
loopback, real SQLite), re-wrapped to the key the recipient makes; passphrase shares; expiry; refusals."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import io
import subprocess
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pyrage
import pytest

from gateway import claims, envelope
from gateway.app import create_app
from gateway.auth import EmbeddedIssuer
from gateway.config import Settings
from gateway.home import HomeKeys

from .age_tty import age_with_passphrase
from .conftest import Api, require_tool
from .smtp_sink import code_in, smtp  # noqa: F401 - the fixture

ADDR = "Jo.Bloggs@School.Example.org"
ADDR_N = ADDR.lower()
PASS = "kettle ninety lantern orchard"


@pytest.fixture
async def mapi(aiohttp_client: Any, settings: Settings, keys: HomeKeys, token: Callable[..., str], smtp: Any) -> Any:  # noqa: F811 - the imported fixture
    sink, url = smtp
    client = await aiohttp_client(create_app(dataclasses.replace(settings, smtp_url=url), keys))
    return Api(client, token), sink


async def start(api: Api, share_id: str, email: str) -> Any:
    return await api.client.post("/api/v1/claims/start", json={"share_id": share_id, "email": email})


async def verify(api: Api, share_id: str, email: str, code: str) -> Any:
    return await api.client.post("/api/v1/claims/verify", json={"share_id": share_id, "email": email, "code": code})


def wrong(code: str) -> str:
    return f"{(int(code) + 1) % 10**6:06d}"


async def test_held_share_claimed_end_to_end(mapi: Any, justification_copy: Any, tmp_path: Path) -> None:
    api, sink = mapi
    j = justification_copy()
    payload = b"Referral notes for a held share\n" * 5000
    r = await api.share(payload, [ADDR], j, unenrolled="verify")
    assert r.status == 201, await r.text()
    body = await r.json()
    share_id = body["share_id"]
    [rec] = body["recipients"]
    assert rec["recipient"] == ADDR_N and rec["mode"] == "held" and rec["link"].endswith(f"/s/{share_id}")
    gw = api.gateway
    held = (share_id, claims.held_envelope_stem(ADDR_N))
    held_bytes = await _stored(gw, *held)
    assert held_bytes is not None
    stanzas, held_header = envelope.read_header(io.BytesIO(held_bytes))
    assert [s.type for s in stanzas] == ["X25519"]
    assert envelope.decrypt(held_bytes, [gw.holding.holding_identity()]) == payload

    # The code, read from the message the real SMTP server received.
    r = await start(api, share_id, ADDR)
    assert r.status == 202 and await r.json() == {"status": "sent_if_held", "expires_in": 600}
    msg = await sink.arrival(ADDR_N)
    code = code_in(msg)
    assert msg["Subject"] == "Your SafeShare code"
    raw = sink.raw[-1].decode()
    headers = raw.replace("\r\n", "\n").split("\n\n", 1)[0]
    assert code not in headers
    for secret in (j["purpose"]["description"], j["subjects"][0]["ref"], "Referral notes"):
        assert secret not in raw  # no content, no justification anywhere in the message

    r = await verify(api, share_id, ADDR, wrong(code))
    assert r.status == 400 and (await r.json())["error"] == "code_invalid"
    assert (await r.json())["attempts_left"] == 4
    r = await verify(api, share_id, ADDR, code)
    assert r.status == 200, await r.text()
    claim = await r.json()
    assert claim["expires_in"] == 900 and claim["recipient"] == claims.recipient_id_for(ADDR_N)
    auth = {"Authorization": f"Bearer {claim['token']}"}

    # The code is single-use.
    r = await verify(api, share_id, ADDR, code)
    assert r.status == 400 and (await r.json())["error"] == "code_invalid"

    # A key made by an independent implementation, enrolled with the claim token: active at once (default).
    key = pyrage.x25519.Identity.generate()
    r = await api.client.post("/api/v1/recipients/enrol", json={"age_recipient": str(key.to_public())}, headers=auth)
    assert r.status == 202, await r.text()
    assert (await r.json())["enrolment"]["status"] == "approved"
    assert await _stored(gw, *held) is None  # the held wrapping is destroyed

    r = await api.client.get("/api/v1/inbox", headers=auth)
    assert [s["id"] for s in (await r.json())["shares"]] == [share_id]
    r = await api.client.get(f"/api/v1/shares/{share_id}/envelope", headers=auth)
    assert r.status == 200
    env = await r.read()
    assert pyrage.decrypt(env, [key]) == payload
    _, new_header = envelope.read_header(io.BytesIO(env))
    assert env[len(new_header) :] == held_bytes[len(held_header) :]  # payload bytes untouched by the re-wrap
    (tmp_path / "key").write_text(str(key))
    age = require_tool("age")
    done = subprocess.run(  # noqa: ASYNC221 - a short local decryption in a test
        [age, "-d", "-i", str(tmp_path / "key")], input=env, capture_output=True, check=False
    )
    assert done.returncode == 0 and done.stdout == payload

    entries = await api.ledger(subject=j["subjects"][0]["ref"])
    kinds = [e["kind"] for e in reversed(entries)]
    assert kinds[:1] == ["share"]
    for kind in ("claim_code_sent", "claim_code_refused", "claim_code_accepted", "rewrapped", "fetch"):
        assert kind in kinds
    as_text = str(entries)
    assert code not in as_text.replace(share_id, "")
    rewrapped = next(e for e in entries if e["kind"] == "rewrapped")["entry"]
    assert rewrapped["old_envelope_sha256"] == hashlib.sha256(held_bytes).hexdigest()
    assert rewrapped["envelope_sha256"] == hashlib.sha256(env).hexdigest() == r.headers["X-SafeShare-Envelope-SHA256"]

    # The subject report shows every step (the address, never the code).
    r = await api.client.get(
        "/api/v1/ledger/report",
        params={"subject": j["subjects"][0]["ref"], "format": "html"},
        # Claim entries involve the address's organisation (its domain), not the sender's: the partnership's
        # auditor reads both (tenancy, tests/test_tenants.py).
        headers=api.auth("audrey", "partnership_auditor"),
    )
    report = await r.text()
    assert r.status == 200 and "One-time code sent" in report and "re-wrapped to the recipient" in report
    assert ADDR_N in report and code not in report.replace(share_id, "")

    # The sender's view shows the held recipient and the recipient the envelope now belongs to.
    r = await api.client.get(f"/api/v1/shares/{share_id}", headers=api.auth("pat", "practitioner"))
    view = await r.json()
    assert view["held"][0]["state"] == "rewrapped" and view["recipients"][0]["id"] == claim["recipient"]


async def test_a_code_for_one_address_cannot_claim_another(mapi: Any, justification_copy: Any) -> None:
    api, sink = mapi
    a = await (await api.share(b"for a", ["a@one.example.org"], justification_copy(), unenrolled="verify")).json()
    b = await (await api.share(b"for b", ["b@two.example.org"], justification_copy(), unenrolled="verify")).json()
    assert (await start(api, a["share_id"], "a@one.example.org")).status == 202
    code = code_in(await sink.arrival("a@one.example.org"))
    for share_id, email in ((b["share_id"], "b@two.example.org"), (b["share_id"], "a@one.example.org")):
        r = await verify(api, share_id, email, code)
        assert r.status == 400 and (await r.json())["error"] == "code_invalid"
    # Unknown share or address: the same 202, and no message.
    assert (await start(api, b["share_id"], "a@one.example.org")).status == 202
    assert (await start(api, "sh_" + "a" * 24, "a@one.example.org")).status == 202
    await asyncio.sleep(0.3)  # codes are sent after the answer: give a wrongly sent one time to arrive
    assert len(sink.sent_to("a@one.example.org")) == 1
    assert (await verify(api, a["share_id"], "a@one.example.org", code)).status == 200


async def test_too_many_wrong_codes_lock_the_claim(mapi: Any, justification_copy: Any) -> None:
    api, sink = mapi
    share_id = (await (await api.share(b"x", [ADDR], justification_copy(), unenrolled="verify")).json())["share_id"]
    await start(api, share_id, ADDR)
    code = code_in(await sink.arrival(ADDR_N))
    for left in (4, 3, 2, 1):
        r = await verify(api, share_id, ADDR, wrong(code))
        assert r.status == 400 and (await r.json())["attempts_left"] == left
    r = await verify(api, share_id, ADDR, wrong(code))
    assert r.status == 423 and (await r.json())["error"] == "claim_locked"
    r = await verify(api, share_id, ADDR, code)  # even the right code, now
    assert r.status == 423
    kinds = [e["kind"] for e in await api.ledger(kind="claim_locked")]
    assert kinds == ["claim_locked"]


async def test_code_requests_are_rate_limited(mapi: Any, justification_copy: Any) -> None:
    api, sink = mapi
    share_id = (await (await api.share(b"x", [ADDR], justification_copy(), unenrolled="verify")).json())["share_id"]
    for _ in range(3):
        assert (await start(api, share_id, ADDR)).status == 202
    r = await start(api, share_id, ADDR)
    assert r.status == 429 and (await r.json())["error"] == "rate_limited"
    assert int(r.headers["Retry-After"]) == (await r.json())["retry_after"] > 0
    await sink.arrival(ADDR_N, 3)
    await asyncio.sleep(0.3)
    assert len(sink.sent_to(ADDR_N)) == 3
    # Only the newest code works; the older ones were superseded (messages may arrive in any order).
    codes = [code_in(m) for m in sink.sent_to(ADDR_N)]
    statuses = [(await verify(api, share_id, ADDR, c)).status for c in codes]
    assert sorted(statuses) == [200, 400, 400]


async def test_unclaimed_share_expires_and_is_shredded(mapi: Any, justification_copy: Any) -> None:
    api, sink = mapi
    j = justification_copy()
    share_id = (await (await api.share(b"x", [ADDR], j, unenrolled="verify", expires_in=60)).json())["share_id"]
    gw = api.gateway
    held = (share_id, claims.held_envelope_stem(ADDR_N))
    assert await _stored(gw, *held) is not None
    await start(api, share_id, ADDR)
    code = code_in(await sink.arrival(ADDR_N))
    later = gw.now() + timedelta(seconds=61)
    gw._clock = lambda: later
    assert (await verify(api, share_id, ADDR, code)).status == 410  # refused even before the sweep
    await gw.expire_due()
    assert await _stored(gw, *held) is None
    r = await start(api, share_id, ADDR)
    assert r.status == 410 and (await r.json())["error"] == "gone"
    assert (await verify(api, share_id, ADDR, code)).status == 410
    [entry] = await api.ledger(kind="expired_unclaimed")
    assert entry["entry"]["recipients"][0]["address"] == ADDR_N


async def test_passphrase_share(mapi: Any, justification_copy: Any, tmp_path: Path) -> None:
    api, _ = mapi
    j = justification_copy()
    for weak in ("tiny-pw9", "password1234", "aaaaaaaaaaaaaaaa"):
        r = await api.share(b"x", [ADDR], j, unenrolled="passphrase", passphrase=weak)
        body = await r.json()
        assert r.status == 422 and body["error"] == "passphrase_weak" and body["field"] == "passphrase"
        assert weak not in body["message"]
    payload = b"passphrase-protected notes\n" * 3000
    r = await api.share(payload, [ADDR], j, unenrolled="passphrase", passphrase=PASS, max_downloads=2)
    assert r.status == 201, await r.text()
    share_id = (await r.json())["share_id"]
    assert (await r.json())["recipients"][0]["mode"] == "passphrase"

    r = await api.client.get(f"/api/v1/open/{share_id}/header")
    assert r.status == 200
    header = await r.read()
    stanzas, raw = envelope.read_header(io.BytesIO(header))
    assert raw == header and [(s.type, s.args[1]) for s in stanzas] == [("scrypt", "18")]
    file_key = envelope.unwrap_header(header, [envelope.ScryptIdentity(PASS)])  # the passphrase checks locally
    assert len(file_key) == 16

    r = await api.client.get(f"/api/v1/open/{share_id}/envelope")
    assert r.status == 200 and r.content_type == "application/octet-stream"
    env = await r.read()
    assert env.startswith(header)
    assert pyrage.passphrase.decrypt(env, PASS) == payload
    (tmp_path / "f.age").write_bytes(env)
    age = require_tool("age")
    rc, err = age_with_passphrase([age, "-d", "-o", str(tmp_path / "out"), str(tmp_path / "f.age")], PASS)
    assert rc == 0, err
    assert (tmp_path / "out").read_bytes() == payload
    assert PASS not in str(await api.ledger())
    if not api.gateway.settings.database:  # the SQLite file (PostgreSQL's tables: test_store_contract.py)
        assert PASS.encode() not in (api.gateway.settings.db_path).read_bytes()

    assert (await api.client.get(f"/api/v1/open/{share_id}/envelope")).status == 200  # the 2nd of 2
    assert (await api.client.get(f"/api/v1/open/{share_id}/envelope")).status == 410
    assert (await api.client.get(f"/api/v1/open/{share_id}/header")).status == 404
    fetches = await api.ledger(kind="fetch")
    assert [f["entry"]["mode"] for f in fetches] == ["passphrase", "passphrase"]
    assert (await api.client.get("/api/v1/open/sh_aaaaaaaaaaaaaaaaaaaaaaaa/header")).status == 404


async def test_addresses_need_a_mode_and_known_ones_resolve(mapi: Any, justification_copy: Any, alice: Any) -> None:
    api, _ = mapi
    r = await api.share(b"x", [ADDR], justification_copy())
    body = await r.json()
    assert r.status == 422 and body["error"] == "unknown_recipients" and body["unknown"] == [ADDR_N]
    r = await api.share(b"x", ["not an address@"], justification_copy(), unenrolled="verify")
    assert r.status == 422 and (await r.json())["error"] == "invalid_share"
    await api.add_recipient("alice", alice)
    r = await api.share(b"x", ["ALICE@example.org"], justification_copy())
    assert r.status == 201, await r.text()
    [rec] = (await r.json())["recipients"]
    assert rec["id"] == "alice" and rec["mode"] == "key"


async def test_verify_mode_needs_a_mail_relay(api: Api, justification_copy: Any) -> None:
    r = await api.share(b"x", [ADDR], justification_copy(), unenrolled="verify")
    body = await r.json()
    assert r.status == 422 and body["error"] == "mail_not_configured" and body["field"] == "unenrolled"


async def test_claimed_key_waits_for_approval_when_required(
    aiohttp_client: Any,
    settings: Settings,
    keys: HomeKeys,
    token: Callable[..., str],
    smtp: Any,  # noqa: F811 - the imported fixture
    justification_copy: Any,
) -> None:
    sink, url = smtp
    client = await aiohttp_client(
        create_app(dataclasses.replace(settings, smtp_url=url, claim_requires_approval=True), keys)
    )
    api = Api(client, token)
    share_id = (await (await api.share(b"wait for it", [ADDR], justification_copy(), unenrolled="verify")).json())[
        "share_id"
    ]
    await start(api, share_id, ADDR)
    claim = await (await verify(api, share_id, ADDR, code_in(await sink.arrival(ADDR_N)))).json()
    auth = {"Authorization": f"Bearer {claim['token']}"}
    key = pyrage.x25519.Identity.generate()
    r = await client.post("/api/v1/recipients/enrol", json={"age_recipient": str(key.to_public())}, headers=auth)
    assert (await r.json())["enrolment"]["status"] == "pending"
    assert (await (await client.get("/api/v1/inbox", headers=auth)).json())["shares"] == []
    held = (share_id, claims.held_envelope_stem(ADDR_N))
    assert await _stored(api.gateway, *held) is not None
    # A claimed recipient's organisation is the address's domain: an administrator of that organisation, or
    # of the partnership, approves (tenancy).
    r = await client.post(
        f"/api/v1/recipients/{claim['recipient']}/approve", headers=api.auth("root", "admin", "school.example.org")
    )
    assert r.status == 200, await r.text()
    assert await _stored(api.gateway, *held) is None
    env = await (await client.get(f"/api/v1/shares/{share_id}/envelope", headers=auth)).read()
    assert pyrage.decrypt(env, [key]) == b"wait for it"


async def test_revoking_a_share_destroys_held_and_passphrase_envelopes(mapi: Any, justification_copy: Any) -> None:
    api, _ = mapi
    gw = api.gateway
    held = (await (await api.share(b"x", [ADDR], justification_copy(), unenrolled="verify")).json())["share_id"]
    pp = (await (await api.share(b"x", [ADDR], justification_copy(), unenrolled="passphrase", passphrase=PASS)).json())[
        "share_id"
    ]
    paths = [(held, claims.held_envelope_stem(ADDR_N)), (pp, claims.PASSPHRASE_STEM)]
    assert await gw.sweep_orphans() == 0  # the start-up sweep knows held and passphrase envelopes are live
    assert all([await _stored(gw, *p) is not None for p in paths])
    for share_id in (held, pp):
        r = await api.client.post(f"/api/v1/shares/{share_id}/revoke", headers=api.auth("pat", "practitioner"))
        assert r.status == 200
    assert not any([await _stored(gw, *p) is not None for p in paths])
    assert (await start(api, held, ADDR)).status == 410
    assert (await api.client.get(f"/api/v1/open/{pp}/envelope")).status == 410


async def test_notice_for_held_addresses_when_turned_on(
    aiohttp_client: Any,
    settings: Settings,
    keys: HomeKeys,
    issuer: EmbeddedIssuer,
    smtp: Any,  # noqa: F811 - the imported fixture
    justification_copy: Any,
) -> None:
    sink, url = smtp
    client = await aiohttp_client(create_app(dataclasses.replace(settings, smtp_url=url, notify_held=True), keys))

    def token(sub: str, role: str, org: str = "test-org", ttl: int = 600) -> str:
        # The sender's organisation by name (issue 13): the notice says who it is from in words.
        return issuer.issue(sub, [role], org=org, ttl=ttl, org_name="Hereford Primary School")

    api = Api(client, token)
    j = justification_copy()
    r = await api.share(b"notice test content", [ADDR, "second@other.example.org"], j, unenrolled="verify")
    assert r.status == 201
    share_id = (await r.json())["share_id"]
    for to in (ADDR_N, "second@other.example.org"):
        msg = await sink.arrival(to)
        assert msg["Subject"] == "A SafeShare share is waiting for you"
        text = msg.get_body(preferencelist=("plain",)).get_content()
        assert f"/s/{share_id}" in text
        assert "from Hereford Primary School" in text and "test-org" not in text
    raw = b"".join(sink.raw).decode()
    for secret in (j["purpose"]["description"], j["subjects"][0]["ref"], "notice test content"):
        assert secret not in raw
    r = await api.share(b"x", [f"a{i}@x.example.org" for i in range(51)], j, unenrolled="verify")
    assert r.status == 422 and (await r.json())["field"] == "share.recipients"


def test_smtp_url_from_environment_wins_and_is_parsed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from gateway.config import load_settings
    from gateway.mail import parse_smtp_url

    (tmp_path / "safeshare.toml").write_text('smtp_url = "smtp://toml.example:25"\nnotify_held = true\n')
    monkeypatch.delenv("SAFESHARE_SMTP_URL", raising=False)
    assert load_settings(tmp_path).smtp_url == "smtp://toml.example:25"
    monkeypatch.setenv("SAFESHARE_SMTP_URL", "smtp://u%40x:p%3Ass@relay.example:587?starttls=1")
    s = load_settings(tmp_path)
    c = parse_smtp_url(s.smtp_url or "")
    assert (c.hostname, c.port, c.username, c.password, c.start_tls, c.use_tls) == (
        "relay.example",
        587,
        "u@x",
        "p:ss",
        True,
        False,
    )
    assert parse_smtp_url("smtps://relay.example").port == 465 and parse_smtp_url("smtps://relay.example").use_tls
    for bad in ("http://relay.example", "smtp://", "smtp://h:99999", "smtp://h?tls=1"):
        with pytest.raises(ValueError) as exc:
            parse_smtp_url(bad)
        assert "relay.example" not in str(exc.value)


async def _stored(gw: Any, share_id: str, name: str) -> bytes | None:
    """An envelope as stored (a file, or chunks in PostgreSQL); None once destroyed."""
    return await gw.envelopes.head(share_id, name, 1 << 30)
