"""Organisations as tenants: a route × role × ownership matrix against a real gateway on a real SQLite file.

Two organisations share one gateway. In ORG, the practitioner `pat` has shared with the recipient `rita`
(escrow on); ORG also has a team, a disabled recipient and a pending enrolment; OTHER has recorded a decision
of its own. Every route is called with no token and with each role in ORG and in OTHER, by the owner and by a
non-owner, and by the partnership-wide roles, and must answer exactly as designed (gateway/tenancy.py):
401 without a token, 403 for a role the route does not accept, 404 for something outside the caller's
organisation or not theirs (existence is not revealed), 2xx otherwise — and a 200 list shows the caller only
what is theirs.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pyrage
import pytest

from gateway.api.common import GATEWAY
from gateway.app import create_app
from gateway.auth import EmbeddedIssuer
from gateway.config import Settings
from gateway.home import init_home
from tests.conftest import example

ORG = "Hereford Council"
OTHER = "Leominster Police"
SUBJECT = "CASE-2026-0412"

#: caller -> (sub, role, org). "owner" sent the share; "impostor" is a recipient-role token carrying the
#: owner's `sub` (ledger receipts must match on role as well as identity).
CALLERS: dict[str, tuple[str, str, str | None]] = {
    "owner": ("pat", "practitioner", ORG),
    "practitioner": ("sam", "practitioner", ORG),
    "practitioner_other": ("pia", "practitioner", OTHER),
    "recipient": ("rita", "recipient", ORG),
    "recipient_other": ("ron", "recipient", OTHER),
    "impostor": ("pat", "recipient", ORG),
    "admin": ("ada", "admin", ORG),
    "admin_other": ("oz", "admin", OTHER),
    "auditor": ("aud", "auditor", ORG),
    "auditor_other": ("aus", "auditor", OTHER),
    "partnership_admin": ("pa", "partnership_admin", OTHER),
    "partnership_auditor": ("pau", "partnership_auditor", OTHER),
}
PRACTITIONERS = ("owner", "practitioner", "practitioner_other")
RECIPIENTS = ("recipient", "recipient_other", "impostor")
ADMINS = ("admin", "admin_other", "partnership_admin")
AUDITORS = ("auditor", "auditor_other", "partnership_auditor")
EVERYONE = tuple(CALLERS)


@dataclass
class World:
    client: Any
    issuer: EmbeddedIssuer
    share_id: str = ""
    share_index: int = 0

    def headers(self, caller: str) -> dict[str, str]:
        if caller == "none":
            return {}
        sub, role, org = CALLERS[caller]
        token = self.issuer.issue(sub, [role], org=org, email=f"{sub}@example.org", name=sub.title())
        return {"Authorization": f"Bearer {token}"}


@dataclass(frozen=True)
class Route:
    name: str
    method: str
    path: str
    #: caller -> expected status; a caller not listed gets 403 (its role is not accepted here).
    expect: dict[str, int]
    body: Any = None
    #: For a 2xx answer: does what the caller got show ORG's share (or its entries)? Checked against `sees`.
    shows: Callable[[World, Any], bool] | None = None
    sees: tuple[str, ...] = ()
    public: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


def _all(status: int, callers: tuple[str, ...]) -> dict[str, int]:
    return dict.fromkeys(callers, status)


def _shares_listed(w: World, body: Any) -> bool:
    return any(s["id"] == w.share_id for s in body["shares"])


def _entries_listed(w: World, body: Any) -> bool:
    return any(e["entry"].get("share_id") == w.share_id for e in body["entries"])


def _jsonl_listed(w: World, body: Any) -> bool:
    return any(json.loads(line).get("entry", {}).get("share_id") == w.share_id for line in body.splitlines()[1:])


def _report_listed(w: World, body: Any) -> bool:
    return w.share_id in json.dumps(body)


def _stats_decisions(w: World, body: Any) -> bool:
    return bool(body["totals"]["decision"].get("share"))


def _people_listed(w: World, body: Any) -> bool:
    """ORG's practitioner (the owner, pat) or recipient (rita) offered by name in the console's search form."""
    return any(p["id"] == "pat" for p in body["practitioners"]) or any(r["id"] == "rita" for r in body["recipients"])


def _enrolment_listed(w: World, body: Any) -> bool:
    return any(e["recipient_id"] == "newbie" for e in body["enrolments"])


def _decisions_listed(w: World, body: Any) -> bool:
    return bool(body["decisions"])


def _disabled_listed(w: World, body: Any) -> bool:
    return any(r["id"] == "gone" for r in body["recipients"])


TLOG_BUNDLE = "/tlog/tile/entries/000.p/9"
SHARE_READERS = {"owner": 200, "recipient": 200, "admin": 200, "partnership_admin": 200}
OUTSIDERS_404 = ("practitioner", "practitioner_other", "recipient_other", "impostor", "admin_other")

ROUTES = [
    Route("create share", "POST", "/api/v1/shares", _all(201, PRACTITIONERS), extra={"form": True}),
    Route(
        "list sent shares",
        "GET",
        "/api/v1/shares",
        _all(200, PRACTITIONERS),
        shows=_shares_listed,
        sees=("owner",),
    ),
    Route(
        "share view",
        "GET",
        "/api/v1/shares/{share}",
        {**_all(404, OUTSIDERS_404), **SHARE_READERS},
    ),
    Route(
        "revoke",
        "POST",
        "/api/v1/shares/{share}/revoke",
        {
            **_all(404, ("practitioner", "practitioner_other", "admin_other")),
            "owner": 200,
            "admin": 200,
            "partnership_admin": 200,
        },
        body={"reason": "sent in error"},
    ),
    Route("envelope", "GET", "/api/v1/shares/{share}/envelope", {"recipient": 200, **_all(404, RECIPIENTS[1:])}),
    Route(
        "acknowledge",
        "POST",
        "/api/v1/shares/{share}/acknowledge",
        {"recipient": 200, **_all(404, RECIPIENTS[1:])},
        body={"note": "seen, acting on it"},
    ),
    Route(
        "complete emergency justification",
        "POST",
        "/api/v1/shares/{share}/justification",
        # The world's share had a complete justification: its sender learns there is nothing to complete.
        {**_all(404, ("practitioner", "practitioner_other")), "owner": 409},
        body=example("share"),
    ),
    Route(
        "reconsider a refusal",
        "POST",
        "/api/v1/decisions/{index}/reconsider",
        # {index} is the world's share, not a decision: no practitioner finds a refusal there (tests/test_reconsider.py
        # covers the organisation's own refusals); every other role is refused by role.
        _all(404, PRACTITIONERS),
        body={"justification": example("not-share"), "new_information": "A verified request arrived."},
    ),
    Route("list advice", "GET", "/api/v1/advice", _all(200, PRACTITIONERS)),
    Route(
        "ask advice",
        "POST",
        "/api/v1/advice",
        _all(201, PRACTITIONERS),
        body={"to": "dsl", "purpose": {"code": "referral", "description": "Is this a referral?"}},
    ),
    # Only the adviser role asked, in the asker's organisation, answers (tests/test_advice.py); no caller here holds
    # an adviser role, so every one is refused by role.
    Route("answer advice", "POST", "/api/v1/advice/{advice}/answer", {}, body={"answer": "Refer today."}),
    # Dual control: the world's share is not held; only its sender (pat, whatever the role) learns that (409).
    Route(
        "approve share", "POST", "/api/v1/shares/{share}/approve", {**_all(404, CALLERS), "owner": 409, "impostor": 409}
    ),
    Route("approvals", "GET", "/api/v1/approvals", _all(200, CALLERS)),
    Route("retention schedule", "GET", "/api/v1/retention/schedule", _all(200, ADMINS)),
    Route(
        "escrow release",
        "POST",
        "/api/v1/shares/{share}/escrow",
        {"admin": 200, "partnership_admin": 200, "admin_other": 404},
        body={"reason": "Court order 2026/123"},
    ),
    Route("inbox", "GET", "/api/v1/inbox", _all(200, RECIPIENTS), shows=_shares_listed, sees=("recipient",)),
    Route(
        "validate justification",
        "POST",
        "/api/v1/justifications/validate",
        _all(200, PRACTITIONERS + ADMINS),
        body=example("share"),
    ),
    Route("record decision", "POST", "/api/v1/decisions", _all(201, PRACTITIONERS), body=example("not-share")),
    Route("default policy", "GET", "/api/v1/policy", _all(200, EVERYONE)),
    Route("policy list", "GET", "/api/v1/policies", _all(200, EVERYONE)),
    Route("one policy", "GET", "/api/v1/policies/hmg-2018", _all(200, EVERYONE)),
    Route("directory", "GET", "/api/v1/recipients", _all(200, PRACTITIONERS + ADMINS)),
    Route(
        "directory with disabled",
        "GET",
        "/api/v1/recipients?include_disabled=1",
        _all(200, PRACTITIONERS + ADMINS),
        shows=_disabled_listed,
        sees=("admin", "partnership_admin"),
    ),
    Route(
        "add recipient",
        "POST",
        "/api/v1/recipients",
        {"admin": 201, "partnership_admin": 201, "admin_other": 403},
        body={"id": "newcomer", "name": "Newcomer", "org": ORG, "email": "new@example.org"},
        extra={"age_recipient": True},
    ),
    Route(
        "disable recipient",
        "POST",
        "/api/v1/recipients/rita/disable",
        {"admin": 200, "partnership_admin": 200, "admin_other": 404},
    ),
    Route(
        "enrol",
        "POST",
        "/api/v1/recipients/enrol",
        _all(202, RECIPIENTS),
        extra={"age_recipient": True},
    ),
    Route("me", "GET", "/api/v1/recipients/me", _all(200, RECIPIENTS)),
    Route(
        "enrolments",
        "GET",
        "/api/v1/enrolments",
        _all(200, ADMINS),
        shows=_enrolment_listed,
        sees=("admin", "partnership_admin"),
    ),
    Route(
        "approve enrolment",
        "POST",
        "/api/v1/recipients/newbie/approve",
        {"admin": 200, "partnership_admin": 200, "admin_other": 404},
    ),
    Route(
        "reject enrolment",
        "POST",
        "/api/v1/recipients/newbie/reject",
        {"admin": 200, "partnership_admin": 200, "admin_other": 404},
        body={"reason": "not known to us"},
    ),
    Route(
        "add team",
        "POST",
        "/api/v1/teams",
        {"admin": 201, "partnership_admin": 201, "admin_other": 403},
        body={"id": "night", "name": "Night duty", "org": ORG, "email": "night@example.org"},
    ),
    Route(
        "team members",
        "GET",
        "/api/v1/teams/duty/members",
        {"admin": 200, "partnership_admin": 200, "admin_other": 404},
    ),
    Route(
        "add team member",
        "POST",
        "/api/v1/teams/duty/members",
        {"admin": 201, "partnership_admin": 201, "admin_other": 404},
        body={"member": "otto"},
    ),
    Route(
        "remove team member",
        "POST",
        "/api/v1/teams/duty/members/rita/remove",
        {"admin": 200, "partnership_admin": 200, "admin_other": 404},
    ),
    Route(
        "ledger query",
        "GET",
        "/api/v1/ledger",
        _all(200, AUDITORS),
        shows=_entries_listed,
        sees=("auditor", "partnership_auditor"),
    ),
    Route(
        "ledger export",
        "GET",
        "/api/v1/ledger?format=jsonl",
        _all(200, AUDITORS),
        shows=_jsonl_listed,
        sees=("auditor", "partnership_auditor"),
    ),
    Route(
        "subject report",
        "GET",
        f"/api/v1/ledger/report?subject={SUBJECT}&format=json",
        _all(200, AUDITORS),
        shows=_report_listed,
        sees=("auditor", "partnership_auditor"),
    ),
    Route(
        "statistics",
        "GET",
        "/api/v1/ledger/stats",
        _all(200, AUDITORS),
        shows=_stats_decisions,
        sees=("auditor", "partnership_auditor"),
    ),
    Route(
        "people to search by",
        "GET",
        "/api/v1/ledger/people",
        _all(200, AUDITORS),
        shows=_people_listed,
        sees=("auditor", "partnership_auditor"),
    ),
    Route(
        "ledger receipt",
        "GET",
        "/api/v1/ledger/entries/{index}",
        {
            **_all(404, PRACTITIONERS[1:] + RECIPIENTS[1:] + ADMINS + ("auditor_other",)),
            "owner": 200,
            "recipient": 200,
            "auditor": 200,
            "partnership_auditor": 200,
        },
    ),
    Route("inclusion proof", "GET", "/api/v1/ledger/proof/inclusion?index=0&size=1", _all(200, AUDITORS)),
    Route("consistency proof", "GET", "/api/v1/ledger/proof/consistency?first=1&second=1", _all(200, AUDITORS)),
    Route("checkpoint", "GET", "/api/v1/ledger/checkpoint", _all(200, EVERYONE), public=True),
    Route("verifier key", "GET", "/api/v1/ledger/vkey", _all(200, EVERYONE), public=True),
    Route("auth config", "GET", "/api/v1/auth/config", _all(200, EVERYONE), public=True),
    Route("openapi", "GET", "/api/v1/openapi.json", _all(200, EVERYONE), public=True),
    Route("health", "GET", "/healthz", _all(200, EVERYONE), public=True),
    Route("notice page", "GET", "/s/{share}", _all(200, EVERYONE), public=True),
    # No witnesses are configured: nobody can add a co-signature, with or without a token.
    Route("co-signature", "POST", "/api/v1/ledger/cosignatures", _all(404, EVERYONE), public=True, body="x"),
    Route(
        "own decisions",
        "GET",
        "/api/v1/decisions",
        _all(200, PRACTITIONERS),
        shows=_decisions_listed,
        sees=("practitioner_other",),
    ),
    # The DSL's list is scoped like the ledger (who sees which flagged decision: tests/test_safety_net.py).
    Route("not shared despite risk", "GET", "/api/v1/decisions/not-shared-despite-risk", _all(200, AUDITORS)),
    # Recipients without a key: public by design (the share ID plus an e-mail code, or a passphrase, protect
    # them), and a token changes nothing. ORG's share is for a keyed recipient: nothing is held or opened.
    Route(
        "claim start",
        "POST",
        "/api/v1/claims/start",
        _all(202, EVERYONE),
        public=True,
        extra={"claim": {}},
    ),
    Route(
        "claim verify",
        "POST",
        "/api/v1/claims/verify",
        _all(400, EVERYONE),
        public=True,
        extra={"claim": {"code": "123456"}},
    ),
    Route("passphrase header", "GET", "/api/v1/open/{share}/header", _all(404, EVERYONE), public=True),
    Route("passphrase envelope", "GET", "/api/v1/open/{share}/envelope", _all(404, EVERYONE), public=True),
    Route("recipient page", "GET", "/open/", _all(200, EVERYONE), public=True),
    Route("recipient page redirect", "GET", "/open", _all(200, EVERYONE), public=True),
    Route("recipient page file", "GET", "/open/app.js", _all(200, EVERYONE), public=True),
    Route("console page", "GET", "/console/", _all(200, EVERYONE), public=True),
    Route("console page redirect", "GET", "/console", _all(200, EVERYONE), public=True),
    Route("console page file", "GET", "/console/app.js", _all(200, EVERYONE), public=True),
    Route(
        "envelope header",
        "GET",
        "/api/v1/shares/{share}/envelope/header",
        {"recipient": 200, **_all(404, RECIPIENTS[1:])},
    ),
    Route(
        "ledger receipt proof",
        "GET",
        "/api/v1/ledger/entries/{index}/proof",
        {
            **_all(404, PRACTITIONERS[1:] + RECIPIENTS[1:] + ADMINS + ("auditor_other",)),
            "owner": 200,
            "recipient": 200,
            "auditor": 200,
            "partnership_auditor": 200,
        },
    ),
    Route("tlog checkpoint", "GET", "/tlog/checkpoint", _all(200, EVERYONE), public=True),
    # Entry bundles hold every organisation's justifications: the partnership's auditor only. (The world's
    # checkpoint covers its 9 entries: a partial bundle of width 9.)
    Route("tlog entry bundle", "GET", TLOG_BUNDLE, {"partnership_auditor": 200}),
    # The partnership's agreements: read by every member organisation, kept by the partnership-wide admin.
    Route("agreements", "GET", "/api/v1/agreements", _all(200, PRACTITIONERS + AUDITORS + ADMINS)),
    Route(
        "agreement offers",
        "GET",
        "/api/v1/agreements/offers?purpose=referral",
        _all(200, PRACTITIONERS + AUDITORS + ADMINS),
    ),
    Route(
        "one agreement",
        "GET",
        "/api/v1/agreements/nope",
        _all(404, PRACTITIONERS + AUDITORS + ADMINS),
    ),
    Route("record agreement", "POST", "/api/v1/agreements", {"partnership_admin": 415}, body={}),
    Route(
        "retire agreement",
        "POST",
        "/api/v1/agreements/nope/retire",
        {"partnership_admin": 404},
        body={"reason": "replaced"},
    ),
    Route("agreement document", "GET", "/agreements/documents/" + "0" * 64, _all(404, EVERYONE), public=True),
]


async def make_world(aiohttp_client: Any, settings: Settings, home: Path) -> World:
    """A fresh gateway (its own home and database) with the world described at the top of this module."""
    escrowed = dataclasses.replace(
        settings, home=home, escrow_recipient=str(pyrage.x25519.Identity.generate().to_public())
    )
    keys = init_home(escrowed)
    issuer = EmbeddedIssuer(keys.token_key, escrowed.issuer, escrowed.audience)
    w = World(await aiohttp_client(create_app(escrowed, keys)), issuer)
    c = w.client

    def admin_of(org: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {issuer.issue('setup', ['admin'], org=org)}"}

    for rid, org in (("rita", ORG), ("gone", ORG), ("otto", OTHER)):
        key = str(pyrage.x25519.Identity.generate().to_public())
        body = {"id": rid, "name": rid.title(), "org": org, "email": f"{rid}@example.org", "age_recipient": key}
        r = await c.post("/api/v1/recipients", json=body, headers=admin_of(org))
        assert r.status == 201, await r.text()
    assert (await c.post("/api/v1/recipients/gone/disable", headers=admin_of(ORG))).status == 200
    team = {"id": "duty", "name": "Duty", "org": ORG, "email": "duty@example.org"}
    assert (await c.post("/api/v1/teams", json=team, headers=admin_of(ORG))).status == 201
    r = await c.post("/api/v1/teams/duty/members", json={"member": "rita"}, headers=admin_of(ORG))
    assert r.status == 201
    newbie = issuer.issue("newbie", ["recipient"], org=ORG, email="newbie@example.org")
    key = str(pyrage.x25519.Identity.generate().to_public())
    r = await c.post(
        "/api/v1/recipients/enrol", json={"age_recipient": key}, headers={"Authorization": f"Bearer {newbie}"}
    )
    assert r.status == 202

    form = aiohttp.FormData()
    meta = {"recipients": ["rita"], "justification": example("share"), "payload_content_type": "text/plain"}
    form.add_field("share", json.dumps(meta), content_type="application/json")
    form.add_field("payload", b"referral notes", filename="payload", content_type="application/octet-stream")
    r = await c.post("/api/v1/shares", data=form, headers=w.headers("owner"))
    assert r.status == 201, await r.text()
    created = await r.json()
    w.share_id, w.share_index = created["share_id"], created["ledger_index"]
    r = await c.post("/api/v1/decisions", json=example("not-share"), headers=w.headers("practitioner_other"))
    assert r.status == 201
    await c.app[GATEWAY].checkpoint()
    return w


@pytest.fixture
async def world(aiohttp_client: Any, settings: Settings, tmp_path: Path) -> World:
    return await make_world(aiohttp_client, settings, tmp_path / "world")


def _expected(route: Route, caller: str) -> int:
    if caller == "none":
        return route.expect["owner"] if route.public else 401
    return route.expect.get(caller, 403)


def share_form(**extra: Any) -> aiohttp.FormData:
    form = aiohttp.FormData()
    meta = {"recipients": ["rita"], "justification": example("share"), "payload_content_type": "text/plain", **extra}
    form.add_field("share", json.dumps(meta), content_type="application/json")
    form.add_field("payload", b"referral notes", filename="payload", content_type="application/octet-stream")
    return form


async def _call(world: World, route: Route, caller: str) -> None:
    path = route.path.format(share=world.share_id, index=world.share_index, advice="adv_" + "a" * 24)
    kwargs: dict[str, Any] = {"headers": world.headers(caller)}
    body = route.body
    if "claim" in route.extra:
        # One address per caller: codes are rate-limited per share and address.
        body = {"share_id": world.share_id, **route.extra["claim"], "email": f"{caller}@example.org"}
    if route.extra.get("age_recipient"):
        body = {**(body or {}), "age_recipient": str(pyrage.x25519.Identity.generate().to_public())}
    if route.extra.get("form"):
        kwargs["data"] = share_form()
    elif isinstance(body, str):
        kwargs["data"] = body
    elif body is not None:
        kwargs["json"] = body
    r = await world.client.request(route.method, path, **kwargs)
    text = (await r.read()).decode("utf-8", "replace")
    want = _expected(route, caller)
    assert r.status == want, (route.name, caller, r.status, text[:300])
    if r.status in (401, 403):
        error = json.loads(text)["error"]
        assert error == "token_missing" if r.status == 401 else error in ("forbidden", "outside_organisation")
    if route.shows is not None and r.status == 200:
        got = json.loads(text) if r.content_type == "application/json" else text
        assert route.shows(world, got) == (caller in route.sees), (route.name, caller, "visibility")


@pytest.mark.parametrize("route", ROUTES, ids=lambda r: r.name)
async def test_route_role_ownership_matrix(
    aiohttp_client: Any, settings: Settings, tmp_path: Path, route: Route
) -> None:
    """Each route, called by no one and by every caller. Refusals come first, all in one world: a refused call
    must change nothing, so the callers allowed afterwards still find the world as set up. Each allowed caller
    after the first gets a fresh world, since an allowed call may change it (a revoked share stays revoked)."""
    callers = ["none", *CALLERS]
    allowed = [c for c in callers if _expected(route, c) < 400]
    refused = [c for c in callers if c not in allowed]
    world = await make_world(aiohttp_client, settings, tmp_path / "w0")
    for caller in refused:
        await _call(world, route, caller)
    for n, caller in enumerate(allowed):
        if n and not route.public and route.method == "POST":
            world = await make_world(aiohttp_client, settings, tmp_path / f"w{n}")
        await _call(world, route, caller)


async def test_every_route_is_in_the_matrix(world: World) -> None:
    """A route added without a row here would escape the tenancy checks: the matrix covers the app's routes."""
    covered = {(r.method, r.path.split("?")[0]) for r in ROUTES}
    app_routes = {
        (route.method, route.resource.canonical)
        for route in world.client.app.router.routes()
        if route.method != "HEAD" and route.resource is not None
    }
    placeholders = {
        "{share_id}": "{share}",
        "{index}": "{index}",
        "{advice_id}": "{advice}",
        "{policy_id}": "hmg-2018",
        "{agreement_id}": "nope",
        "{sha256}": "0" * 64,
    }
    normalised = set()
    for method, path in app_routes:
        for old, new in placeholders.items():
            path = path.replace(old, new)
        path = path.replace("{recipient_id}", "rita" if path.endswith("disable") else "newbie")
        path = path.replace("{team_id}", "duty").replace("{member_id}", "rita").replace("{file}", "app.js")
        path = path.replace("/tlog/tile/{tail}", TLOG_BUNDLE)
        normalised.add((method, path))
    assert normalised - covered == set()


async def test_a_token_without_an_organisation_acts_on_nothing(world: World) -> None:
    """Organisation-scoped roles need the `org` claim: without it, 403 org_required rather than an empty world."""
    for role, path in (("admin", "/api/v1/enrolments"), ("auditor", "/api/v1/ledger")):
        token = world.issuer.issue("x", [role])
        r = await world.client.get(path, headers={"Authorization": f"Bearer {token}"})
        assert r.status == 403 and (await r.json())["error"] == "org_required"
    token = world.issuer.issue("x", ["admin"])
    r = await world.client.get(f"/api/v1/shares/{world.share_id}", headers={"Authorization": f"Bearer {token}"})
    assert r.status == 404


async def test_actions_are_recorded_under_the_role_that_permitted_them(world: World) -> None:
    """An administrator of the organisation acts as `admin`; across organisations only as `partnership_admin`."""
    c = world.client
    r = await c.post("/api/v1/recipients/rita/disable", headers=world.headers("partnership_admin"))
    assert r.status == 200
    index = (await r.json())["ledger_index"]
    r = await c.get(f"/api/v1/ledger/entries/{index}", headers=world.headers("partnership_admin"))
    assert r.status == 200  # its own entry, made in a role it holds
    assert (await r.json())["entry"]["actor"]["role"] == "partnership_admin"
    r = await c.post(f"/api/v1/shares/{world.share_id}/revoke", headers=world.headers("admin"))
    assert r.status == 200
    r = await c.get("/api/v1/ledger?kind=revoke", headers=world.headers("auditor"))
    (entry,) = (await r.json())["entries"]
    assert entry["entry"]["actor"]["role"] == "admin" and entry["entry"]["actor"]["org"] == ORG


async def test_the_auditors_of_each_organisation_see_their_own_decisions(world: World) -> None:
    """Counts and queries follow the organisation: ORG shared once, OTHER decided not to share once."""
    c = world.client
    totals = {}
    for caller in AUDITORS:
        r = await c.get("/api/v1/ledger/stats", headers=world.headers(caller))
        totals[caller] = (await r.json())["totals"]["decision"]
    assert totals == {
        "auditor": {"share": 1},
        "auditor_other": {"not_share": 1},
        "partnership_auditor": {"not_share": 1, "share": 1},
    }
    # Asking for another organisation's entries by filter gives nothing beyond one's own.
    r = await c.get("/api/v1/ledger", params={"org": OTHER}, headers=world.headers("auditor"))
    assert (await r.json())["entries"] == []
    r = await c.get("/api/v1/ledger", params={"org": OTHER}, headers=world.headers("partnership_auditor"))
    assert [e["kind"] for e in (await r.json())["entries"]] == ["decision", "recipient_add"]


async def test_an_enrolment_cannot_take_over_another_organisations_recipient(world: World) -> None:
    """A recipient token of OTHER carrying the `sub` of ORG's recipient enrols a key: OTHER's administrator
    cannot approve it (that would rotate ORG's recipient's key), nor can ORG's (the enrolment is OTHER's)."""
    c = world.client
    token = world.issuer.issue("rita", ["recipient"], org=OTHER, email="mallory@example.org")
    key = str(pyrage.x25519.Identity.generate().to_public())
    r = await c.post(
        "/api/v1/recipients/enrol", json={"age_recipient": key}, headers={"Authorization": f"Bearer {token}"}
    )
    assert r.status == 202
    for caller in ("admin_other", "admin"):
        r = await c.post("/api/v1/recipients/rita/approve", headers=world.headers(caller))
        assert r.status == 404 and (await r.json())["error"] == "no_pending_enrolment", caller
    r = await c.get("/api/v1/recipients?q=rita", headers=world.headers("owner"))
    (rita,) = [x for x in (await r.json())["recipients"] if x["id"] == "rita"]
    assert rita["age_recipient"] != key
