"""Issue 19: lawful bases a data protection officer would sign off.

A table of legal situations, each with its verdict and the provision that decides it, run against the validator
(``Policy.validate`` with the sharer's context) and against ``POST /api/v1/justifications/validate`` (where the
organisation type and the appropriate policy document come from ``[policies]`` configuration, never the body), in
both editions of the rules (``hmg-2018`` and ``dfe-2024``). Also: the domain examples stay valid, ledger entries
written against the superseded editions still resolve, and who decided is recorded from the token.
"""

from __future__ import annotations

import copy
import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from gateway.config import PolicySettings, Settings, load_settings
from gateway.justification import PolicyRegistry, SharerContext
from tests.conftest import Api, api_settings

FIXTURES = Path(__file__).parent / "fixtures" / "justifications"
SHARE = json.loads((FIXTURES / "justification-share.json").read_text())
NOT_SHARE = json.loads((FIXTURES / "justification-not-share.json").read_text())
REGISTRY = PolicyRegistry.builtin()

LB = "rules.1_lawful_basis"
OP = "rules.2_openness"
TR = "rules.4_transparency"
SW = "rules.5_safety_wellbeing"
NP = "rules.6_necessary_proportionate"

# The partnership's organisations, as `[policies]` configures them (type; appropriate policy document).
COUNCIL = "Northshire Children's Services"
TRUST = "Hope Family Trust"
POLICE = "Northshire Police"
SCHOOL = "Riverside Academy"  # no appropriate policy document configured
ORGS: dict[str, tuple[str, str | None]] = {
    COUNCIL: ("public_authority", "APD-NCS@3"),
    TRUST: ("voluntary", "APD-HOPE@1"),
    POLICE: ("police", "APD-NP@2"),
    SCHOOL: ("school", None),
}


def context(org: str) -> SharerContext:
    kind, ref = ORGS[org]
    document = None if ref is None else dict(zip(("id", "version"), ref.split("@"), strict=True))
    return SharerContext(org_type=kind, policy_document=document)


def build(base: dict[str, Any], *changes: tuple[str, Any]) -> dict[str, Any]:
    """A copy of ``base`` with dotted paths set (``None`` deletes)."""
    draft = copy.deepcopy(base)
    for path, value in changes:
        *parents, last = path.split(".")
        node: Any = draft
        for key in parents:
            node = node[int(key)] if isinstance(node, list) else node.setdefault(key, {})
        if isinstance(node, list):
            if int(last) == len(node):
                node.append(value)
            else:
                node[int(last)] = value
        elif value is None:
            node.pop(last, None)
        else:
            node[last] = value
    return draft


CHILD = {"ref": "CASE-2026-0412", "role": "child", "age_band": "5-11"}
ADULT_TESTS = {"care_and_support_needs": True, "experiencing_or_at_risk_of_harm": True, "unable_to_protect_self": True}
ADULT = {"ref": "ADULT-88-1930", "role": "adult_at_risk", "age_band": "65+", "adult_at_risk_tests": ADULT_TESTS}
SOUGHT_NONE = (OP, {"agreement_sought": False, "not_sought_reason": "cannot_give", "explanation": "Lacks capacity."})
REQUEST = {
    "organisation": "Northshire Safeguarding Adults Board",
    "name": "A. Chair",
    "position": "Board manager",
    "received_on": "2026-11-30",
}
CONSENTED = build(
    SHARE,
    ("data_categories", ["identity", "family", "safeguarding_concern"]),
    (f"{LB}.article_9", None),
    (f"{LB}.dpa_schedule_1", None),
    (f"{LB}.statutory_gateways", None),
    (OP, {"agreement_sought": True}),
    (TR, {"consent": "given", "will_inform": "already"}),
    (f"{SW}.risk_level", "welfare_need"),
    ("purpose.code", "referral"),
)
ADULT_SHARE = build(
    SHARE,
    ("purpose.code", "s42_enquiry"),
    ("subjects", [ADULT]),
    (f"{SW}.at_risk", [ADULT["ref"]]),
    (f"{LB}.statutory_gateways", ["care_act_2014_s42"]),
    SOUGHT_NONE,
    (f"{TR}.consent", "unable"),
)
CRIMINAL = build(
    SHARE,
    ("subjects", [CHILD, {"ref": "CASE-2026-0412-P1", "role": "alleged_perpetrator"}]),
    ("data_categories", ["identity", "criminal_allegation"]),
    (f"{LB}.article_9", None),
    (f"{LB}.dpa_schedule_1", "p10_preventing_crime"),
    (f"{LB}.p10_consent_would_prejudice", True),
)

Case = tuple[str, str, dict[str, Any], str, set[str]]
LAWFUL = "lawful"

# (situation, sharer's organisation, draft, deciding provision, expected problem codes — empty when lawful)
CASES: list[Case] = [
    (
        "referral at significant harm, consent not sought (it would prejudice the protection)",
        COUNCIL,
        SHARE,
        "DPA 2018 Sch 1 para 18(2)(c)",
        set(),
    ),
    (
        "paragraph 18 with no risk identified and nobody at risk",
        COUNCIL,
        build(SHARE, (f"{SW}.risk_level", "none_identified"), (f"{SW}.at_risk", [])),
        "DPA 2018 Sch 1 para 18(1)(a)",
        {"p18_needs_risk", "p18_needs_someone_at_risk"},
    ),
    (
        "paragraph 18 protecting an adult carer with no care and support needs",
        COUNCIL,
        build(
            SHARE,
            ("subjects", [{"ref": "CARER-1", "role": "carer", "age_band": "30-39"}]),
            (f"{SW}.at_risk", ["CARER-1"]),
        ),
        "DPA 2018 Sch 1 para 18(1)(b), 18(3)",
        {"p18_nobody_under_18_or_at_risk"},
    ),
    (
        "paragraph 18 for an adult who can protect themselves",
        COUNCIL,
        build(ADULT_SHARE, ("subjects.0.adult_at_risk_tests.unable_to_protect_self", False)),
        "DPA 2018 Sch 1 para 18(3)(c)",
        {"p18_adult_not_at_risk_18_3"},
    ),
    (
        "paragraph 18 for an adult at risk meeting all three 18(3) tests, who cannot consent",
        COUNCIL,
        ADULT_SHARE,
        "DPA 2018 Sch 1 para 18(2)(a), 18(3)",
        set(),
    ),
    (
        "paragraph 18 after a refusal without an 18(2) reason",
        COUNCIL,
        build(
            SHARE,
            (OP, {"agreement_sought": True}),
            (TR, {"consent": "refused", "will_inform": "already", "overriding_reason": "Significant harm."}),
        ),
        "DPA 2018 Sch 1 para 18(1)(c), 18(2)",
        {"p18_refused_needs_18_2_reason"},
    ),
    (
        "paragraph 18 after a refusal, consent cannot reasonably be obtained",
        COUNCIL,
        build(
            SHARE,
            (OP, {"agreement_sought": True}),
            (TR, {"consent": "refused", "will_inform": "already", "overriding_reason": "Significant harm."}),
            (f"{LB}.consent_reason_18_2", "not_reasonably_obtainable"),
        ),
        "DPA 2018 Sch 1 para 18(2)(b)",
        set(),
    ),
    (
        "paragraph 10 relied on although the person consented",
        POLICE,
        build(CRIMINAL, (OP, {"agreement_sought": True}), (TR, {"consent": "given", "will_inform": "already"})),
        "DPA 2018 Sch 1 para 10(1)(b)",
        {"p10_consent_given"},
    ),
    ("paragraph 10 where asking would tip off the suspect", POLICE, CRIMINAL, "DPA 2018 Sch 1 para 10", set()),
    (
        "paragraph 10 where asking would not prejudice the crime's detection",
        POLICE,
        build(CRIMINAL, (f"{LB}.p10_consent_would_prejudice", False)),
        "DPA 2018 Sch 1 para 10(1)(b)",
        {"p10_needs_consent_prejudice"},
    ),
    (
        "Article 9(2)(h) used for a police prosecution",
        POLICE,
        build(
            SHARE,
            ("purpose.code", "crime_prevention"),
            (f"{LB}.article_9", "health_social_care"),
            (f"{LB}.dpa_schedule_1", "p2_health_social_care"),
            (f"{LB}.professional", "health_professional"),
        ),
        "UK GDPR Art 9(2)(h); DPA 2018 Sch 1 para 2",
        {"health_social_care_not_for_crime", "health_social_care_police"},
    ),
    (
        "Article 9(2)(h) without a professional under a duty of confidentiality",
        COUNCIL,
        build(SHARE, (f"{LB}.article_9", "health_social_care"), (f"{LB}.dpa_schedule_1", "p2_health_social_care")),
        "DPA 2018 s.11(1)",
        {"health_social_care_needs_paragraph_2"},
    ),
    (
        "Article 9(2)(h) by a social worker under paragraph 2",
        COUNCIL,
        build(
            SHARE,
            (f"{LB}.article_9", "health_social_care"),
            (f"{LB}.dpa_schedule_1", "p2_health_social_care"),
            (f"{LB}.professional", "social_work_professional"),
        ),
        "UK GDPR Art 9(2)(h); DPA 2018 Sch 1 para 2, s.11",
        set(),
    ),
    (
        "Article 9(2)(b) with no Schedule 1 Part 1 condition",
        COUNCIL,
        build(SHARE, (f"{LB}.article_9", "social_protection"), (f"{LB}.dpa_schedule_1", None)),
        "DPA 2018 s.10(2), Sch 1 para 1",
        {"social_protection_needs_paragraph_1"},
    ),
    (
        "Article 9(2)(b) with paragraph 1",
        COUNCIL,
        build(
            SHARE, (f"{LB}.article_9", "social_protection"), (f"{LB}.dpa_schedule_1", "p1_employment_social_protection")
        ),
        "DPA 2018 Sch 1 para 1",
        set(),
    ),
    (
        "Article 9(2)(g) with a Part 1 condition",
        COUNCIL,
        build(SHARE, (f"{LB}.dpa_schedule_1", "p2_health_social_care")),
        "DPA 2018 s.10(3), Sch 1 Part 2",
        {"substantial_public_interest_needs_part_2", "paragraph_2_needs_article_9h"},
    ),
    (
        "vital interests for a routine attendance concern",
        SCHOOL,
        build(
            CONSENTED,
            ("purpose.code", "other"),
            (OP, {"agreement_sought": False, "not_sought_reason": "inappropriate", "explanation": "Routine."}),
            (f"{TR}.consent", "not_sought"),
            (f"{LB}.article_6", "vital_interests"),
        ),
        "UK GDPR Art 6(1)(d), recital 46",
        {"vital_interests_needs_serious_risk"},
    ),
    (
        "vital interests at immediate risk, shared immediately",
        COUNCIL,
        build(
            SHARE,
            (f"{LB}.article_6", "vital_interests"),
            (f"{SW}.risk_level", "immediate"),
            (f"{NP}.urgency", "immediate"),
        ),
        "UK GDPR Art 6(1)(d)",
        set(),
    ),
    (
        "legal obligation resting on Crime and Disorder Act s.115 (a power)",
        POLICE,
        build(
            SHARE,
            (f"{LB}.article_6", "legal_obligation"),
            (f"{LB}.statutory_gateways", ["crime_and_disorder_act_1998_s115"]),
        ),
        "UK GDPR Art 6(1)(c), 6(3); CDA 1998 s.115",
        {"legal_obligation_needs_duty"},
    ),
    (
        "legal obligation: a Safeguarding Adults Board's s.45 request",
        COUNCIL,
        build(
            ADULT_SHARE,
            ("purpose.code", "other"),
            (f"{LB}.article_6", "legal_obligation"),
            (f"{LB}.legal_duty", "care_act_2014_s45"),
            (f"{LB}.statutory_gateways", ["care_act_2014_s45"]),
            ("request", REQUEST),
        ),
        "UK GDPR Art 6(1)(c); Care Act 2014 s.45",
        set(),
    ),
    (
        "legal obligation under a court order that is not named",
        COUNCIL,
        build(SHARE, (f"{LB}.article_6", "legal_obligation"), (f"{LB}.legal_duty", "court_order")),
        "UK GDPR Art 6(3)",
        {"legal_duty_needs_detail"},
    ),
    (
        "consent marked given although agreement was never sought",
        COUNCIL,
        build(SHARE, (f"{TR}.consent", "given")),
        "golden rules 2 and 4; DPA 2018 Sch 1 para 18(1)(c)",
        {"consent_contradicts_openness", "p18_consent_given"},
    ),
    (
        "consent as the basis where the share would happen anyway (significant harm)",
        COUNCIL,
        build(CONSENTED, (f"{LB}.article_6", "consent"), (f"{SW}.risk_level", "significant_harm")),
        "UK GDPR Art 4(11), 7(4); Art 6(1)(a)",
        {"consent_basis_share_anyway"},
    ),
    (
        "consent as the basis for a s.47 enquiry",
        COUNCIL,
        build(CONSENTED, (f"{LB}.article_6", "consent"), ("purpose.code", "s47_enquiry")),
        "UK GDPR Art 6(1)(a); Children Act 1989 s.47",
        {"consent_basis_share_anyway"},
    ),
    (
        "consent as the basis: the mother's consent used for the father's data",
        TRUST,
        build(
            CONSENTED,
            (f"{LB}.article_6", "consent"),
            (
                "subjects",
                [
                    {**CHILD, "consent": {"sought": True, "who": "parental_responsibility", "response": "given"}},
                    {"ref": "CASE-2026-0412-F", "role": "carer"},
                ],
            ),
        ),
        "UK GDPR Art 6(1)(a) (the data subject's consent)",
        {"consent_for_another"},
    ),
    (
        "consent as the basis for early help, each person agreeing",
        TRUST,
        build(
            CONSENTED,
            (f"{LB}.article_6", "consent"),
            (f"{TR}.consent", "per_person"),
            (
                "subjects",
                [
                    {
                        **CHILD,
                        "consent": {
                            "sought": True,
                            "who": "parental_responsibility",
                            "response": "given",
                            "childs_views": "Wants help with things at home.",
                        },
                    },
                    {
                        "ref": "CASE-2026-0412-M",
                        "role": "carer",
                        "consent": {"sought": True, "who": "person", "response": "given"},
                    },
                ],
            ),
        ),
        "UK GDPR Art 6(1)(a)",
        set(),
    ),
    (
        "alleged perpetrator not asked while the mother agreed for the child",
        COUNCIL,
        build(
            CRIMINAL,
            ("data_categories", ["identity", "family", "criminal_allegation"]),
            (f"{LB}.dpa_schedule_1", "p18_safeguarding"),
            (f"{LB}.p10_consent_would_prejudice", None),
            (OP, {"agreement_sought": True}),
            (TR, {"consent": "per_person", "will_inform": "after", "reason": "Later."}),
            ("subjects.0.consent", {"sought": True, "who": "parental_responsibility", "response": "given"}),
            ("subjects.1.consent", {"sought": False, "not_sought_reason": "would_prejudice_protection"}),
        ),
        "DPA 2018 Sch 1 para 18(2)(c), applied per data subject",
        set(),
    ),
    (
        "the alleged perpetrator not asked because it would be 'inappropriate' (not an 18(2) reason)",
        COUNCIL,
        build(
            CRIMINAL,
            (f"{LB}.dpa_schedule_1", "p18_safeguarding"),
            (f"{LB}.p10_consent_would_prejudice", None),
            (OP, {"agreement_sought": True}),
            (TR, {"consent": "per_person", "will_inform": "after", "reason": "Later."}),
            ("subjects.0.consent", {"sought": True, "who": "parental_responsibility", "response": "given"}),
            ("subjects.1.consent", {"sought": False, "not_sought_reason": "inappropriate"}),
        ),
        "DPA 2018 Sch 1 para 18(2)",
        {"p18_reason_not_in_18_2"},
    ),
    (
        "parental responsibility recorded for an adult carer",
        COUNCIL,
        build(
            SHARE,
            ("subjects.0.consent", {"sought": False, "not_sought_reason": "would_prejudice_protection"}),
            (
                "subjects.1",
                {
                    "ref": "C-1",
                    "role": "carer",
                    "consent": {"sought": True, "who": "parental_responsibility", "response": "unable"},
                },
            ),
        ),
        "Children Act 1989 s.3 (parental responsibility is for a child)",
        {"consent_who_child_only"},
    ),
    (
        "best-interests decision without who assessed capacity or when",
        COUNCIL,
        build(
            ADULT_SHARE,
            ("subjects.0.consent", {"sought": False, "not_sought_reason": "cannot_give", "who": "best_interests"}),
        ),
        "Mental Capacity Act 2005 ss.2-4",
        {"best_interests_needs_assessment"},
    ),
    (
        "best-interests decision with the capacity assessment recorded",
        COUNCIL,
        build(
            ADULT_SHARE,
            (
                "subjects.0.consent",
                {
                    "sought": False,
                    "not_sought_reason": "cannot_give",
                    "who": "best_interests",
                    "capacity_assessed_by": "Dr B, consultant psychiatrist",
                    "capacity_assessed_on": "2026-11-28",
                },
            ),
        ),
        "Mental Capacity Act 2005 s.4; DPA 2018 Sch 1 para 18(2)(a)",
        set(),
    ),
    (
        "paragraph 19: economic well-being of an adult at economic risk",
        COUNCIL,
        build(
            ADULT_SHARE,
            ("data_categories", ["identity", "financial", "health"]),
            (f"{LB}.dpa_schedule_1", "p19_economic_wellbeing"),
            ("subjects.0.economic_risk", True),
        ),
        "DPA 2018 Sch 1 para 19",
        set(),
    ),
    (
        "paragraph 19 for a child",
        COUNCIL,
        build(SHARE, (f"{LB}.dpa_schedule_1", "p19_economic_wellbeing"), ("subjects.0.economic_risk", True)),
        "DPA 2018 Sch 1 para 19(1)(b), (3)",
        {"economic_risk_adult_only", "p19_needs_individual_at_economic_risk"},
    ),
    (
        "legitimate interests relied on by a council",
        COUNCIL,
        build(CONSENTED, (f"{LB}.article_6", "legitimate_interests")),
        "UK GDPR Art 6(1) (final subparagraph)",
        {"legitimate_interests_public_authority"},
    ),
    (
        "recognised legitimate interest relied on by a school",
        SCHOOL,
        build(CONSENTED, (f"{LB}.article_6", "recognised_legitimate_interest")),
        "UK GDPR Art 6(1)(ea) and 6(1A) (Data (Use and Access) Act 2025)",
        {"legitimate_interests_public_authority"},
    ),
    (
        "recognised legitimate interest relied on by a voluntary organisation at significant harm",
        TRUST,
        build(
            CONSENTED, (f"{LB}.article_6", "recognised_legitimate_interest"), (f"{SW}.risk_level", "significant_harm")
        ),
        "UK GDPR Art 6(1)(ea), Annex 1 (safeguarding)",
        set(),
    ),
    (
        "genetic information shared without an Article 9 condition",
        COUNCIL,
        build(CONSENTED, ("data_categories", ["identity", "genetic"])),
        "UK GDPR Art 9(1)",
        {"special_category_needs_article_9"},
    ),
    (
        "information about sexual abuse: is it data about sex life?",
        COUNCIL,
        build(
            SHARE,
            ("data_categories", ["identity", "sexual_abuse"]),
            (f"{LB}.article_9", None),
            (f"{LB}.dpa_schedule_1", None),
        ),
        "UK GDPR Art 9(1) (data concerning sex life)",
        {"sexual_abuse_ask_sex_life"},
    ),
    (
        "information about sexual abuse revealing sex life, under paragraph 18",
        COUNCIL,
        build(SHARE, ("data_categories", ["identity", "sexual_abuse"]), (f"{LB}.sexual_abuse_reveals_sex_life", True)),
        "UK GDPR Art 9(2)(g); DPA 2018 Sch 1 para 18",
        set(),
    ),
    (
        "'routine' urgency at immediate risk",
        COUNCIL,
        build(SHARE, (f"{SW}.risk_level", "immediate"), (f"{NP}.urgency", "routine")),
        "golden rule 6 (timely)",
        {"routine_at_immediate_risk"},
    ),
    (
        "an unverified disclosure, honestly caveated, at significant harm",
        COUNCIL,
        build(
            SHARE,
            (f"{NP}.accurate_and_current", False),
            (
                f"{NP}.information_quality",
                {"source": "disclosure_by_person", "verified": False, "nature": "mixed", "as_of": "2026-12-02"},
            ),
        ),
        "UK GDPR Art 5(1)(d) (accuracy: opinion recorded as opinion)",
        set(),
    ),
    (
        "accuracy not confirmed and nothing said about the information",
        COUNCIL,
        build(SHARE, (f"{NP}.accurate_and_current", False)),
        "UK GDPR Art 5(1)(d)",
        {"caveat_needs_quality"},
    ),
    (
        "a school relying on paragraph 18 with no appropriate policy document",
        SCHOOL,
        SHARE,
        "DPA 2018 Sch 1 para 5, Part 4",
        {"schedule_1_needs_policy_document"},
    ),
    (
        "a school naming its appropriate policy document",
        SCHOOL,
        build(SHARE, (f"{LB}.policy_document", {"id": "RA-APD", "version": "2025-09"})),
        "DPA 2018 Sch 1 para 5, 39",
        set(),
    ),
    (
        "paragraph 6 without naming the enactment",
        COUNCIL,
        build(SHARE, (f"{LB}.dpa_schedule_1", "p6_statutory_purposes"), (f"{LB}.statutory_gateways", None)),
        "DPA 2018 Sch 1 para 6(1)",
        {"p6_needs_enactment"},
    ),
    (
        "paragraph 36 with no criminal offence information",
        TRUST,
        build(CONSENTED, (f"{LB}.dpa_schedule_1", "p36_criminal_extension")),
        "DPA 2018 Sch 1 para 36; UK GDPR Art 10",
        {"p36_only_criminal_data"},
    ),
    (
        "paragraph 36 for a conviction a voluntary organisation holds",
        TRUST,
        build(
            CONSENTED,
            ("data_categories", ["identity", "criminal_conviction"]),
            (f"{LB}.article_6", "legitimate_interests"),
            (f"{LB}.dpa_schedule_1", "p36_criminal_extension"),
            (
                OP,
                {
                    "agreement_sought": False,
                    "not_sought_reason": "would_prejudice_protection",
                    "explanation": "Tipping off.",
                },
            ),
            (f"{TR}.consent", "not_sought"),
            (f"{SW}.risk_level", "risk_of_harm"),
        ),
        "DPA 2018 Sch 1 para 36 (with para 18)",
        set(),
    ),
    (
        "not sharing, answering a named request",
        COUNCIL,
        build(NOT_SHARE, ("request", {**REQUEST, "organisation": "Northshire Homes"})),
        "ICO Data Sharing Code, Annex B",
        set(),
    ),
    (
        "a request recorded without who made it",
        COUNCIL,
        build(NOT_SHARE, ("request", {"organisation": "Northshire Homes", "received_on": "2026-11-30"})),
        "ICO Data Sharing Code, Annex B",
        {"required"},
    ),
]
assert len(CASES) >= 30


def to_dfe(draft: dict[str, Any]) -> dict[str, Any]:
    """The same situation recorded under the DfE 2024 edition (its own rule 5: protect identities)."""
    out = {**copy.deepcopy(draft), "policy": "dfe-2024"}
    out["rules"].setdefault("5_protect_identities", {"identities_at_risk": False})
    return out


EDITIONS = {"hmg-2018": lambda d: d, "dfe-2024": to_dfe}


def codes(problems: list[dict[str, Any]]) -> set[str]:
    return {p["code"] for p in problems}


@pytest.mark.parametrize("edition", sorted(EDITIONS))
@pytest.mark.parametrize(("situation", "org", "draft", "provision", "expected"), CASES, ids=[c[0] for c in CASES])
def test_the_validator_decides_each_situation(
    situation: str, org: str, draft: dict[str, Any], provision: str, expected: set[str], edition: str
) -> None:
    policy = REGISTRY.get(edition)
    problems = [p.as_dict() for p in policy.validate(EDITIONS[edition](draft), context(org))]
    assert codes(problems) == expected, (situation, provision, problems)
    lawful = policy.rule_for("rules.1_lawful_basis")
    for p in problems:
        # plain words that name the law, and never the submitted values
        assert p["message"] and "CASE-2026-0412" not in p["message"]
        if p["code"].startswith(("p18_", "p10_", "p19_", "p36_", "legitimate_", "schedule_1_", "legal_")):
            assert p["rule"] == lawful, p  # a condition's own test is reported under the lawful-basis rule


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    base = api_settings(tmp_path / "home")
    return dataclasses.replace(
        base,
        policies=PolicySettings(
            org_type=tuple(sorted((org, kind) for org, (kind, _) in ORGS.items())),
            policy_document=tuple(sorted((org, ref) for org, (_, ref) in ORGS.items() if ref is not None)),
        ),
    )


async def test_the_api_decides_each_situation_in_both_editions(api: Api) -> None:
    """The same table through POST /api/v1/justifications/validate: the sharer's organisation type and appropriate
    policy document come from configuration (the token's `org`), never from the body."""
    wrong = []
    for edition, convert in EDITIONS.items():
        for situation, org, draft, provision, expected in CASES:
            r = await api.client.post(
                "/api/v1/justifications/validate", json=convert(draft), headers=api.auth("pat", "practitioner", org)
            )
            assert r.status == 200
            body = await r.json()
            if codes(body["problems"]) != expected or body["valid"] != (not expected):
                wrong.append((edition, situation, provision, body["problems"]))
            assert body["policy"]["id"] == edition
    assert wrong == []


async def test_legitimate_interests_follows_the_token_org_type_claim(api: Api, issuer: Any) -> None:
    """A token's `org_type` claim takes precedence over configuration: an unconfigured organisation whose token says
    it is a public authority is refused legitimate interests; one whose token says voluntary is not."""
    draft = build(CONSENTED, (f"{LB}.article_6", "legitimate_interests"))
    for kind, valid in (("public_authority", False), ("voluntary", True)):
        token = issuer.issue("pat", ["practitioner"], org="Elsewhere", extra={"org_type": kind})
        r = await api.client.post(
            "/api/v1/justifications/validate", json=draft, headers={"Authorization": f"Bearer {token}"}
        )
        assert (await r.json())["valid"] is valid, kind


def test_both_domain_examples_stay_valid_in_the_new_editions() -> None:
    for name in (
        "justification-share.json",
        "justification-not-share.json",
        "dfe-2024-share.json",
        "dfe-2024-not-share.json",
    ):
        draft = json.loads((FIXTURES / name).read_text())
        policy = REGISTRY.get(draft.get("policy", "hmg-2018"))
        assert policy.validate(draft) == [], name
        assert policy.validate(draft, context(COUNCIL)) == [], name


def test_superseded_editions_stay_loadable_for_old_ledger_entries() -> None:
    for policy_id, old in (("hmg-2018", "2018.1"), ("dfe-2024", "2024.1")):
        current = REGISTRY.get(policy_id)
        archived = REGISTRY.version(policy_id, old)
        assert archived.version == old and current.version != old
        assert REGISTRY.by_digest(archived.digest) is archived
        assert [s.key for s in archived.sections()] == [s.key for s in current.sections()]
    # An old-shape justification (accuracy ticked, no per-person consent) is as valid under 2018.1 as it was.
    assert REGISTRY.version("hmg-2018", "2018.1").validate(SHARE) == []


def test_policies_settings_name_organisation_types_and_policy_documents(tmp_path: Path) -> None:
    (tmp_path / "safeshare.toml").write_text(
        "[policies]\n"
        'org_type = { "Northshire Police" = "police", "Hope Family Trust" = "voluntary" }\n'
        'policy_document = { "Northshire Police" = "APD-NP@2" }\n'
    )
    s = load_settings(tmp_path)
    assert dict(s.policies.org_type) == {"Northshire Police": "police", "Hope Family Trust": "voluntary"}
    assert dict(s.policies.policy_document) == {"Northshire Police": "APD-NP@2"}
    for bad, match in (
        ('org_type = { "X" = "charity" }', "org_type"),
        ('policy_document = { "X" = "no-version" }', "id@version"),
    ):
        (tmp_path / "safeshare.toml").write_text(f"[policies]\n{bad}\n")
        with pytest.raises(ValueError, match=match):
            load_settings(tmp_path)


async def test_who_decided_is_recorded_from_the_token(api: Api, issuer: Any) -> None:
    """Rule 7 / ICO Annex B: the decider's name and job title (token claims), the organisation's type and its
    appropriate policy document (configuration) are in the ledger entry; none of it is taken from the body."""
    token = issuer.issue(
        "pat", ["practitioner"], org=COUNCIL, name="Pat Example", extra={"job_title": "Senior social worker"}
    )
    draft = build(NOT_SHARE, ("request", {**REQUEST, "organisation": "Northshire Homes"}))
    r = await api.client.post("/api/v1/decisions", json=draft, headers={"Authorization": f"Bearer {token}"})
    assert r.status == 201, await r.text()
    r = await api.client.get("/api/v1/decisions", headers={"Authorization": f"Bearer {token}"})
    [view] = (await r.json())["decisions"]
    assert view["actor"] == {
        "sub": "pat",
        "role": "practitioner",
        "org": COUNCIL,
        "name": "Pat Example",
        "job_title": "Senior social worker",
    }
    r = await api.client.get("/api/v1/ledger", headers=api.auth("audit", "partnership_auditor", COUNCIL))
    entries = [e["entry"] for e in (await r.json())["entries"] if e["entry"].get("kind") == "decision"]
    assert entries[0]["actor"]["org_type"] == "public_authority"
    assert entries[0]["actor"]["policy_document"] == {"id": "APD-NCS", "version": "3"}
    assert entries[0]["justification"]["request"]["organisation"] == "Northshire Homes"
