"""Issue 14, seek advice first: an anonymised question (purpose and categories only) to an adviser role in the
practitioner's organisation; the adviser sees and answers it; the answer is cited in the justification's ledger
entry (who, when, what); question and answer are ledger entries. A real app on a real SQLite file, every response
checked against the OpenAPI document."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.conftest import Api, example
from tests.test_cli import call, safeshare, serve

QUESTION = {
    "to": "dsl",
    "purpose": {"code": "referral", "description": "Possible referral after a disclosure at school."},
    "data_categories": ["health", "safeguarding_concern"],
}
DISCLOSURE = {
    "channel": "phone",
    "with": [{"name": "Sam Okafor", "role": "Duty social worker", "organisation": "Northshire MASH"}],
    "summary": "Told the MASH about the disclosure.",
    "at": "2026-12-03T10:00:00Z",
}


async def _ask(api: Api, body: dict[str, Any] | None = None, sub: str = "pat") -> dict[str, Any]:
    r = await api.client.post("/api/v1/advice", json=body or QUESTION, headers=api.auth(sub, "practitioner"))
    assert r.status == 201, await r.text()
    return dict(await r.json())


async def test_question_seen_by_the_role_asked_answered_once_and_cited(api: Api, alice: Any) -> None:
    asked = await _ask(api)
    aid = asked["advice_id"]
    [q] = await api.ledger(kind="advice_question")
    assert q["entry"]["subjects"] == [] and q["entry"]["advice"]["to"] == "dsl"
    assert set(q["entry"]["advice"]) == {"id", "to", "org", "purpose", "data_categories"}  # nothing about anyone

    # The DSL of the same organisation sees it; a manager, or a DSL elsewhere, does not.
    r = await api.client.get("/api/v1/advice", headers=api.auth("dee", "dsl"))
    [seen] = (await r.json())["questions"]
    assert seen["advice_id"] == aid and seen["answer"] is None and seen["purpose"] == QUESTION["purpose"]
    r = await api.client.get("/api/v1/advice", headers=api.auth("max", "manager"))
    assert (await r.json())["questions"] == []
    r = await api.client.get("/api/v1/advice", headers=api.auth("oda", "dsl", "other-org"))
    assert (await r.json())["questions"] == []
    url = f"/api/v1/advice/{aid}/answer"
    r = await api.client.post(url, json={"answer": "Yes"}, headers=api.auth("oda", "dsl", "other-org"))
    assert r.status == 404
    r = await api.client.post(url, json={"answer": "Yes"}, headers=api.auth("max", "manager"))
    assert r.status == 404
    r = await api.client.post(url, json={"answer": "Yes"}, headers=api.auth("pat", "practitioner"))
    assert r.status == 403

    answer = "Threshold met: refer to the MASH today; do not tell the parents first."
    r = await api.client.post(url, json={"answer": answer}, headers=api.auth("dee", "dsl"))
    assert r.status == 201, await r.text()
    answered = await r.json()
    assert answered["question_index"] == asked["ledger_index"]
    r = await api.client.post(url, json={"answer": "Again"}, headers=api.auth("dee", "dsl"))
    assert r.status == 409 and (await r.json())["error"] == "advice_already_answered"

    # The practitioner sees the answer, and cites it in a share and in a decision recorded elsewhere.
    r = await api.client.get("/api/v1/advice", headers=api.auth("pat", "practitioner"))
    [mine] = (await r.json())["questions"]
    assert mine["answer"]["answer"] == answer and mine["answer"]["by"]["role"] == "dsl"
    await api.add_recipient("alice", alice)
    r = await api.share(b"notes", ["alice"], example("share"), advice=[aid])
    assert r.status == 201, await r.text()
    [share] = await api.ledger(kind="share")
    [cited] = share["entry"]["advice"]
    assert cited["answer"] == answer and cited["answered_by"]["sub"] == "dee"
    assert cited["question_index"] == asked["ledger_index"] and cited["answer_index"] == answered["ledger_index"]
    body = {"justification": example("share"), "disclosure": DISCLOSURE, "advice": [aid]}
    r = await api.client.post("/api/v1/decisions", json=body, headers=api.auth("pat", "practitioner"))
    assert r.status == 201, await r.text()
    [decision] = await api.ledger(kind="decision")
    assert decision["entry"]["advice"][0]["id"] == aid

    # Someone else cannot cite it; an unanswered question cannot be cited.
    r = await api.share(b"notes", ["alice"], example("share"), sender="sam", advice=[aid])
    assert r.status == 422 and (await r.json())["error"] == "advice_not_answered"
    open_q = await _ask(api)
    r = await api.share(b"notes", ["alice"], example("share"), advice=[open_q["advice_id"]])
    assert r.status == 422 and (await r.json())["error"] == "advice_not_answered"


async def test_a_question_carries_nothing_that_identifies_anyone(api: Api) -> None:
    for bad, field in (
        ({**QUESTION, "subjects": [{"ref": "CASE-1"}]}, "body"),
        ({**QUESTION, "to": "headteacher"}, "to"),
        ({**QUESTION, "purpose": {"code": "referral", "description": " "}}, "purpose"),
        ({**QUESTION, "data_categories": ["names"]}, "data_categories"),
    ):
        r = await api.client.post("/api/v1/advice", json=bad, headers=api.auth("pat", "practitioner"))
        assert r.status in (400, 422) and (await r.json())["field"] == field, await r.text()
    assert await api.ledger(kind="advice_question") == []


def test_cli_lists_and_answers_against_a_real_server(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    with serve(home, tmp_path / "server.log") as url:
        pat = safeshare(home, "token", "issue", "--sub", "pat", "--role", "practitioner", "--org", "Northshire").stdout
        dee = safeshare(home, "token", "issue", "--sub", "dee", "--role", "dsl", "--org", "Northshire").stdout
        pat, dee = pat.split()[-1], dee.split()[-1]
        status, body = call(f"{url}/api/v1/advice", pat, json.dumps(QUESTION).encode(), "application/json")
        assert status == 201, body
        aid = json.loads(body)["advice_id"]
        listed = safeshare(home, "advice", "list", "--gateway", url, "--token", dee, "--open")
        assert aid in listed.stdout and "OPEN" in listed.stdout and "referral" in listed.stdout
        answered = safeshare(home, "advice", "answer", aid, "Refer today.", "--gateway", url, "--token", dee)
        assert json.loads(answered.stdout)["advice_id"] == aid
        again = safeshare(home, "advice", "answer", aid, "Again.", "--gateway", url, "--token", dee, check=False)
        assert again.returncode == 1 and "advice_already_answered" in again.stderr
        mine = json.loads(safeshare(home, "advice", "list", "--gateway", url, "--token", pat, "--json").stdout)
        assert mine[0]["answer"]["answer"] == "Refer today."
        assert safeshare(home, "advice", "list", "--gateway", url, "--token", dee, "--open").stdout == ""


async def test_the_subject_report_shows_the_advice_cited(api: Api, alice: Any) -> None:
    aid = (await _ask(api))["advice_id"]
    r = await api.client.post(
        f"/api/v1/advice/{aid}/answer", json={"answer": "Refer today."}, headers=api.auth("dee", "dsl")
    )
    assert r.status == 201
    await api.add_recipient("alice", alice)
    r = await api.share(b"notes", ["alice"], example("share"), advice=[aid])
    assert r.status == 201, await r.text()
    subject = example("share")["subjects"][0]["ref"]
    auditor = api.auth("audrey", "partnership_auditor")
    r = await api.client.get("/api/v1/ledger/report", params={"subject": subject}, headers=auditor)
    page = await r.text()
    assert "Advice sought" in page and "Refer today." in page and "Retention class" in page
