"""Issue 18, golden rule 7 for sharing done elsewhere: a share decision recorded without a payload says how,
with whom, what and when; the ledger, the sender's view, the subject report and the statistics show it apart
from shares through SafeShare. One validator (gateway/disclosure.py) for the API, the CLI and the panel."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from gateway import disclosure as dr
from tests.conftest import Api, example
from tests.test_cli import call, safeshare, serve

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
PHONE = {
    "channel": "phone",
    "with": [{"name": "Sam Okafor", "role": "Duty social worker", "organisation": "Northshire MASH"}],
    "summary": "Told the MASH duty line about the bruising and the child's disclosure; gave the school's contact.",
    "at": "2026-12-03T09:30:00Z",
}
MEETING = {
    "channel": "meeting",
    "with": [
        {"name": "Ade Bello", "role": "Team manager", "organisation": "Northshire children's social care"},
        {"name": "DS Carr", "role": "Detective sergeant", "organisation": "Northshire Police CAIT"},
        {"recipient": "alice"},
    ],
    "summary": "Strategy discussion: shared the school's chronology and attendance.",
    "at": "2026-12-03T11:00:00+01:00",
}


def fields(problems: list[Any]) -> list[tuple[str, str]]:
    return [(p.field, p.code) for p in problems]


# -- the validator ----------------------------------------------------------------------------------------


def test_a_complete_disclosure_passes_and_not_share_needs_none() -> None:
    assert dr.problems(PHONE, "share", NOW) == []
    assert dr.problems(MEETING, "share", NOW) == []
    assert dr.problems(None, "not_share", NOW) == []


def test_a_share_decision_without_a_disclosure_is_refused_naming_the_field() -> None:
    [p] = dr.problems(None, "share", NOW)
    assert (p.rule, p.field, p.code) == (7, "disclosure", "disclosure_required")
    assert "with whom" in p.message


def test_a_not_share_decision_with_a_disclosure_is_refused() -> None:
    assert fields(dr.problems(PHONE, "not_share", NOW)) == [("disclosure", "not_shared")]


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"channel": "fax"}, [("disclosure.channel", "invalid")]),
        ({"channel": None}, [("disclosure.channel", "invalid")]),
        ({"with": []}, [("disclosure.with", "invalid")]),
        ({"with": [{"name": "Sam", "role": "SW"}]}, [("disclosure.with.0", "invalid")]),
        ({"with": [{"recipient": "Not An ID!"}]}, [("disclosure.with.0", "invalid")]),
        ({"with": [{"name": " ", "role": "SW", "organisation": "MASH"}]}, [("disclosure.with.0", "invalid")]),
        ({"with": [{"name": "x" * 201, "role": "SW", "organisation": "MASH"}]}, [("disclosure.with.0", "invalid")]),
        ({"with": [PHONE["with"][0]] * 51}, [("disclosure.with", "invalid")]),
        ({"summary": "   "}, [("disclosure.summary", "invalid")]),
        ({"summary": "x" * 2001}, [("disclosure.summary", "invalid")]),
        ({"at": "2026-12-03 09:30"}, [("disclosure.at", "invalid")]),
        ({"at": "2026-12-03T09:30:00"}, [("disclosure.at", "invalid")]),
        ({"at": "2026-12-03T13:00:00Z"}, [("disclosure.at", "in_the_future")]),
        ({"at": "2026-02-30T09:30:00Z"}, [("disclosure.at", "invalid")]),
        ({"at": "0001-01-01T00:00:00+01:00"}, [("disclosure.at", "too_early")]),
        ({"at": "1989-12-31T23:59:59Z"}, [("disclosure.at", "too_early")]),
        ({"extra": 1}, [("disclosure", "unknown_field")]),
    ],
)
def test_each_field_is_checked(change: dict[str, Any], expected: list[tuple[str, str]]) -> None:
    assert fields(dr.problems({**PHONE, **change}, "share", NOW)) == expected


@pytest.mark.parametrize("missing", ["channel", "with", "summary", "at"])
def test_every_field_is_required(missing: str) -> None:
    d = {k: v for k, v in PHONE.items() if k != missing}
    assert fields(dr.problems(d, "share", NOW)) == [(f"disclosure.{missing}", "required")]


def test_messages_never_quote_what_was_typed() -> None:
    secret = "Child X told me about Uncle Y"
    for p in dr.problems({**PHONE, "summary": secret * 200, "at": secret}, "share", NOW):
        assert "Uncle" not in p.message


def test_the_cli_with_argument() -> None:
    assert dr.parse_with("Sam Okafor, Duty social worker, Northshire MASH") == PHONE["with"][0]
    assert dr.parse_with("alice") == {"recipient": "alice"}
    for bad in ("Sam Okafor", "Sam, SW", "Sam, , MASH", "a, b, c, d"):
        with pytest.raises(ValueError):
            dr.parse_with(bad)


def test_the_description_reads_as_a_sentence() -> None:
    assert dr.describe(PHONE) == (
        "by phone to Sam Okafor (Duty social worker, Northshire MASH) at 2026-12-03T09:30:00Z"
    )


# -- through the API ----------------------------------------------------------------------------------------


def share_decision() -> dict[str, Any]:
    return example("share")


async def test_phone_and_meeting_disclosures_are_recorded_and_shown_everywhere(api: Api, alice: Any, bob: Any) -> None:
    await api.add_recipient("alice", alice, org="Hereford MASH")
    h = api.auth("pat", "practitioner", "Northshire Primary")
    url = "/api/v1/decisions"

    r = await api.client.post(url, json=share_decision(), headers=h)
    assert r.status == 422
    body = await r.json()
    assert body["error"] == "justification_incomplete"
    assert [(p["rule"], p["field"], p["code"]) for p in body["problems"]] == [(7, "disclosure", "disclosure_required")]
    r = await api.client.post(
        url, json={"justification": share_decision(), "disclosure": {**PHONE, "channel": "fax"}}, headers=h
    )
    assert r.status == 422 and [p["field"] for p in (await r.json())["problems"]] == ["disclosure.channel"]
    r = await api.client.post(url, json={"justification": example("not-share"), "disclosure": PHONE}, headers=h)
    assert r.status == 422 and [p["code"] for p in (await r.json())["problems"]] == ["not_shared"]
    r = await api.client.post(
        url,
        json={"justification": share_decision(), "disclosure": {**MEETING, "with": [{"recipient": "nobody"}]}},
        headers=h,
    )
    assert r.status == 422 and (await r.json())["field"] == "disclosure.with"
    assert await api.ledger() == [e for e in await api.ledger() if e["kind"] != "decision"]

    r = await api.client.post(url, json={"justification": share_decision(), "disclosure": PHONE}, headers=h)
    assert r.status == 201, await r.text()
    phone = await r.json()
    assert phone["decision"] == "share" and phone["recipients"] == []
    assert phone["disclosure"]["description"] == (
        "by phone to Sam Okafor (Duty social worker, Northshire MASH) at 2026-12-03T09:30:00.000Z"
    )
    r = await api.client.post(url, json={"justification": share_decision(), "disclosure": MEETING}, headers=h)
    assert r.status == 201, await r.text()
    # A share through SafeShare and a decision not to share, to count apart.
    assert (await api.share(b"notes", ["alice"], share_decision())).status == 201
    assert (await api.client.post(url, json=example("not-share"), headers=h)).status == 201

    # The ledger: the disclosure as recorded (time normalised, directory ID resolved), no payload.
    [meeting, call_] = [e["entry"] for e in await api.ledger(kind="decision", decision="share")]
    assert call_["disclosure"] == {**PHONE, "at": "2026-12-03T09:30:00.000Z"}
    assert meeting["disclosure"]["at"] == "2026-12-03T10:00:00.000Z"
    assert meeting["disclosure"]["with"][2] == {"recipient": "alice", "name": "Alice", "org": "Hereford MASH"}
    assert "payload" not in meeting and meeting["actor"]["sub"] == "pat"

    # The sender's view: own decisions, newest first, "by phone to …"; nobody else's.
    mine = (await (await api.client.get(url, headers=h)).json())["decisions"]
    assert [d["decision"] for d in mine] == ["not_share", "share", "share"]
    assert mine[1]["disclosure"]["description"].startswith("at a meeting to Ade Bello (Team manager")
    assert mine[2]["disclosure"]["description"].startswith("by phone to Sam Okafor")
    other = (await (await api.client.get(url, headers=api.auth("sam", "practitioner"))).json())["decisions"]
    assert other == []
    assert (await api.client.get(url, headers=api.auth("audrey", "auditor"))).status == 403

    # Statistics: SafeShare shares, disclosures by channel and decisions not to share, each apart.
    auditor = api.auth("audrey", "auditor")
    totals = (await (await api.client.get("/api/v1/ledger/stats", headers=auditor)).json())["totals"]
    assert totals["shares"] == 1
    assert totals["disclosures_elsewhere"] == 2
    assert totals["disclosures_by_channel"] == {"meeting": 1, "phone": 1}
    assert totals["decisions_not_to_share"] == 1
    assert totals["decision"] == {"not_share": 1, "share": 3}

    # The subject report: in the JSON and on the printable page.
    params = {"subject": "CASE-2026-0412", "format": "json"}
    report = await (await api.client.get("/api/v1/ledger/report", params=params, headers=auditor)).json()
    assert [d["channel"] for d in report["disclosures"]] == ["phone", "meeting"]
    assert report["disclosures"][0]["sender"]["sub"] == "pat"
    html = await (
        await api.client.get("/api/v1/ledger/report", params={"subject": "CASE-2026-0412"}, headers=auditor)
    ).text()
    assert "Shared another way (phone, meetings, letters)" in html
    assert "by phone to Sam Okafor (Duty social worker, Northshire MASH)" in html
    assert "Northshire Police CAIT" in html


async def test_validate_checks_the_disclosure_by_the_same_rules(api: Api) -> None:
    h = api.auth("pat", "practitioner")
    v = "/api/v1/justifications/validate"
    body = await (
        await api.client.post(v, json={"justification": share_decision(), "disclosure": PHONE}, headers=h)
    ).json()
    assert body["valid"] is True
    body = await (
        await api.client.post(v, json={"justification": share_decision(), "disclosure": None}, headers=h)
    ).json()
    assert body["valid"] is False and [p["field"] for p in body["problems"]] == ["disclosure"]
    future = (datetime.now(UTC) + timedelta(hours=2)).isoformat()
    body = await (
        await api.client.post(
            v, json={"justification": share_decision(), "disclosure": {**PHONE, "at": future}}, headers=h
        )
    ).json()
    assert [p["code"] for p in body["problems"]] == ["in_the_future"]
    ancient = {"justification": share_decision(), "disclosure": {**PHONE, "at": "0001-01-01T00:00:00+01:00"}}
    r = await api.client.post("/api/v1/decisions", json=ancient, headers=h)
    assert r.status == 422 and [p["code"] for p in (await r.json())["problems"]] == ["too_early"]
    # Without a disclosure key the draft is a share through SafeShare, as before.
    assert (await (await api.client.post(v, json=share_decision(), headers=h)).json())["valid"] is True


# -- the CLI against a real `safeshare serve` --------------------------------------------------------------


@pytest.fixture
def running(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    home = tmp_path / "home"
    with serve(home, tmp_path / "server.log") as url:
        yield home, url


def test_cli_decide_records_a_phone_disclosure(running: tuple[Path, str], tmp_path: Path) -> None:
    home, url = running
    pt = safeshare(home, "token", "issue", "--sub", "pat", "--role", "practitioner").stdout.strip()
    at = safeshare(home, "token", "issue", "--sub", "audrey", "--role", "auditor").stdout.strip()
    share = tmp_path / "share.json"
    share.write_text(json.dumps(example("share")))
    base = ["decide", "--gateway", url, "--token", pt, "--justification", str(share)]

    # Refused before anything is sent, by the gateway's own validator (the gateway would refuse it too).
    r = safeshare(home, *base, check=False)
    assert r.returncode == 2 and "disclosure: A decision to share recorded without a file" in r.stderr
    r = safeshare(home, *base, "--channel", "phone", "--with", "Sam Okafor", check=False)
    assert r.returncode == 2 and "NAME, ROLE, ORGANISATION" in r.stderr
    r = safeshare(
        home, *base, "--channel", "phone", "--with", "Sam Okafor, Duty social worker, Northshire MASH", check=False
    )
    assert r.returncode == 2 and "disclosure.summary" in r.stderr and "disclosure.at" in r.stderr

    r = safeshare(
        home,
        *base,
        "--channel",
        "phone",
        "--with",
        "Sam Okafor, Duty social worker, Northshire MASH",
        "--with",
        "Ade Bello, Team manager, Northshire children's social care",
        "--summary",
        PHONE["summary"],
        "--at",
        "2026-12-03T09:30:00Z",
    )
    out = json.loads(r.stdout)
    assert out["decision"] == "share" and out["disclosure"]["description"].startswith("by phone to Sam Okafor")
    status, body = call(url + "/api/v1/ledger?kind=decision", at)
    assert status == 200
    [entry] = [e["entry"] for e in json.loads(body)["entries"]]
    assert [w["name"] for w in entry["disclosure"]["with"]] == ["Sam Okafor", "Ade Bello"]
