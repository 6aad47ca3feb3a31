"""Issue 14, retention: each policy's retention classes (by purpose and data category, as data) cap how long a
share's envelopes live; the ledger entry stays; a periodic retention review is itself a ledger entry; the
administrator sees what will be destroyed when, the auditor what was. A real app on a real SQLite file."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from gateway.justification import PolicyRegistry
from gateway.ledger.entry import parse_time
from gateway.retention import class_for
from tests.conftest import Api, example

REGISTRY = PolicyRegistry.builtin()
DAY = 86400


def draft(purpose: str = "referral", categories: tuple[str, ...] = ("identity",)) -> dict[str, Any]:
    d = example("share")
    d["purpose"]["code"] = purpose
    d["data_categories"] = list(categories)
    return d


@pytest.mark.parametrize("policy_id", ["hmg-2018", "dfe-2024"])
def test_classes_are_policy_data(policy_id: str) -> None:
    policy = REGISTRY.get(policy_id)
    assert class_for(policy, draft())["class"] == "routine"  # type: ignore[index]
    assert class_for(policy, draft("s47_enquiry"))["max_days"] == 60  # type: ignore[index]
    staff = class_for(policy, draft(categories=("identity", "criminal_allegation")))
    assert staff is not None and staff["class"] == "allegation_against_staff" and staff["max_days"] == 90


async def test_lifetime_capped_by_class_schedule_review_and_what_was_destroyed(api: Api, alice: Any) -> None:
    await api.add_recipient("alice", alice)
    start = api.gateway.now()
    made = {}
    for name, justification in (("routine", draft()), ("staff", draft(categories=("criminal_allegation",)))):
        r = await api.share(b"notes", ["alice"], justification, expires_in=80 * DAY)
        assert r.status == 201, await r.text()
        made[name] = await r.json()
    routine, staff = made["routine"], made["staff"]
    assert routine["retention"] == {"class": "routine", "title": routine["retention"]["title"], "max_days": 30,
                                    "capped": True}  # fmt: skip
    assert parse_time(routine["expires_at"]) - start < timedelta(days=30, minutes=1)
    assert staff["retention"]["class"] == "allegation_against_staff" and staff["retention"]["capped"] is False
    entries = {e["entry"]["share_id"]: e["entry"] for e in await api.ledger(kind="share")}
    assert entries[routine["share_id"]]["retention"]["class"] == "routine"

    # The administrator's schedule: soonest first; a practitioner may not see it; another organisation's admin
    # sees nothing of this one's.
    r = await api.client.get("/api/v1/retention/schedule", headers=api.auth("ada", "admin"))
    assert r.status == 200, await r.text()
    schedule = (await r.json())["shares"]
    assert [s["share_id"] for s in schedule] == [routine["share_id"], staff["share_id"]]
    assert schedule[0]["retention_class"] == "routine" and schedule[0]["destroy_at"] == routine["expires_at"]
    r = await api.client.get("/api/v1/retention/schedule", headers=api.auth("pat", "practitioner"))
    assert r.status == 403
    r = await api.client.get("/api/v1/retention/schedule", headers=api.auth("oz", "admin", "other-org"))
    assert (await r.json())["shares"] == []

    # Time passes: the routine envelopes are destroyed; the review records it; the ledger entry stays.
    later = start + timedelta(days=31)
    api.gateway._clock = lambda: later
    await api.gateway.expire_due()
    review = await api.gateway.retention.retention_review()
    assert review["destroyed_since"] == 1 and review["live_shares"] == 1
    assert review["next_destruction_at"] == staff["expires_at"]
    [recorded] = await api.ledger(kind="retention_review")
    assert recorded["entry"]["review"]["destroyed_since"] == 1
    [destroyed] = await api.ledger(kind="expire")  # what was destroyed, for the auditor
    assert destroyed["entry"]["share_id"] == routine["share_id"]
    assert {e["entry"]["share_id"] for e in await api.ledger(kind="share")} == {routine["share_id"], staff["share_id"]}
    again = await api.gateway.retention.retention_review()
    assert again["destroyed_since"] == 0 and again["previous_review_index"] == recorded["index"]
    # Every node runs the periodic review: one recorded in the last half period stands for the others'.
    assert await api.gateway.retention.retention_review(not_within=12 * 3600) is None
    api.gateway._clock = lambda: later + timedelta(hours=13)
    assert await api.gateway.retention.retention_review(not_within=12 * 3600) is not None
    assert len(await api.ledger(kind="retention_review")) == 3
