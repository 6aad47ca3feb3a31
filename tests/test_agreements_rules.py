"""The pure agreement rules (gateway/agreements.py): boundaries the API tests do not reach."""

from __future__ import annotations

import dataclasses
from datetime import date

import pytest

from gateway.agreements import Agreement, AgreementError, check_named, check_share, offers, validate_new

from .conftest import example

A = Agreement(
    id="dea",
    version=3,
    title="DEA",
    kind="data_exchange",
    scope="both",
    signatories=("Hereford  MASH", "County Police"),
    purposes=(),
    categories=(),
    review_date="2027-03-31",
    document_sha256="a" * 64,
    document_size=10,
    document_name="dea.pdf",
    document_type="application/pdf",
)


def draft(**changes: object) -> dict[str, object]:
    j = example("share")
    j.update(changes)
    return j


def test_review_date_is_inclusive_and_organisations_compare_ignoring_case_and_spacing() -> None:
    orgs = [("alice", "hereford mash"), ("bob", "COUNTY  POLICE")]
    on_the_day = check_share(draft(agreements=["dea"]), {"dea": A}, orgs, today=date(2027, 3, 31), required=False)
    assert on_the_day.problems == () and on_the_day.refs()[0]["version"] == 3
    after = check_share(draft(agreements=["dea"]), {"dea": A}, orgs, today=date(2027, 4, 1), required=False)
    codes = [p.code for p in after.problems]
    # Overdue, and then no named agreement in force covers either recipient.
    assert codes == ["agreement_overdue", "recipient_not_signatory", "recipient_not_signatory"]
    assert "that is in force" in after.problems[1].message


def test_naming_an_agreement_and_saying_none_applies_is_a_conflict() -> None:
    j = draft(agreements=["dea"], no_agreement={"reason": "emergency", "explanation": "x"})
    result = check_named(j, {"dea": A}, today=date(2026, 1, 1), required=False)
    assert [(p.code, p.field, p.rule) for p in result.problems] == [("agreements_conflict", "no_agreement", 6)]


def test_a_second_named_agreement_can_cover_a_recipient_the_first_does_not() -> None:
    other = dataclasses.replace(A, id="protocol", signatories=("Elsewhere Trust",))
    orgs = [("alice", "Hereford MASH"), ("eve", "Elsewhere Trust")]
    result = check_share(
        draft(agreements=["dea", "protocol"]),
        {"dea": A, "protocol": other},
        orgs,
        today=date(2026, 1, 1),
        required=True,
    )
    assert result.problems == ()
    assert [r["id"] for r in result.refs()] == ["dea", "protocol"]


def test_unknown_ids_are_not_echoed_and_offers_skip_what_is_not_in_force() -> None:
    result = check_named(draft(agreements=["nope"]), {}, today=date(2026, 1, 1), required=False)
    assert result.problems[0].code == "agreement_unknown" and "nope" not in result.problems[0].message
    retired = dataclasses.replace(A, id="old", status="retired")
    overdue = dataclasses.replace(A, id="late", review_date="2020-01-01")
    offered = offers(
        [A, retired, overdue], ["Hereford MASH"], "referral", ["health"], ["child"], today=date(2026, 1, 1)
    )
    assert [o["id"] for o in offered] == ["dea"] and offered[0]["covers_all_recipients"] is True


@pytest.mark.parametrize(
    ("field", "value"),
    [("signatories", ["  "]), ("title", "x" * 301), ("review_date", "2026-1-1"), ("categories", "health")],
)
def test_validate_new_names_the_field(field: str, value: object) -> None:
    fields = {
        "id": "dea",
        "title": "T",
        "kind": "other",
        "scope": "both",
        "signatories": ["A"],
        "review_date": "2026-01-01",
        field: value,
    }
    with pytest.raises(AgreementError) as e:
        validate_new(fields, purposes=("referral",), categories=("health",))
    assert e.value.field == field
