"""Refusals explained and reconsidered (issue 14; DfE 2024 rule 7): the explanation a practitioner gave to whoever
asked for information they decided not to share, and the new information that made them reconsider.

Both travel beside the justification in the body of `POST /api/v1/decisions` (`explanation`) and
`POST /api/v1/decisions/{index}/reconsider` (`new_information`), like a disclosure made elsewhere, so the
policies' schemas (and their editions) are untouched. Pure: no I/O; messages never quote a submitted value. The
rule number is the policy's own (the section holding the record, `rules.7_record`, in both editions).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from .justification import Policy, Problem

__all__ = ["EXPLANATION_FIELD", "NEW_INFORMATION_FIELD", "explanation_problems", "new_information_problems"]

EXPLANATION_FIELD: Final = "explanation"
NEW_INFORMATION_FIELD: Final = "new_information"
_RECORD: Final = "rules.7_record"
_TEXT_MAX: Final = 4000
_WHO_MAX: Final = 200


def _text_ok(value: Any, limit: int) -> bool:
    return isinstance(value, str) and bool(value.strip()) and len(value) <= limit


def explanation_problems(policy: Policy | None, value: Any, decision: Any) -> list[Problem]:
    """`{"to": who asked, "explanation": what they were told}`, only with a decision not to share."""
    if value is None:
        return []
    rule = None if policy is None else policy.rule_for(_RECORD)
    if decision != "not_share":
        return [
            Problem(
                rule,
                EXPLANATION_FIELD,
                "The explanation given to whoever asked belongs with a decision not to share; leave it out.",
                "explanation_not_allowed",
            )
        ]
    if not isinstance(value, Mapping) or set(value) - {"to", "explanation"}:
        return [
            Problem(
                rule,
                EXPLANATION_FIELD,
                'The explanation must be {"to": who asked, "explanation": what you told them}.',
                "invalid_explanation",
            )
        ]
    problems = []
    if not _text_ok(value.get("to"), _WHO_MAX):
        problems.append(
            Problem(
                rule,
                f"{EXPLANATION_FIELD}.to",
                f"Who asked (their role and organisation) must be non-blank text of at most {_WHO_MAX} characters.",
                "required",
            )
        )
    if not _text_ok(value.get("explanation"), _TEXT_MAX):
        problems.append(
            Problem(
                rule,
                f"{EXPLANATION_FIELD}.explanation",
                f"What you told them must be non-blank text of at most {_TEXT_MAX:,} characters.",
                "required",
            )
        )
    return problems


def new_information_problems(policy: Policy | None, value: Any) -> list[Problem]:
    """A reconsideration says what is new: the reason the earlier refusal is looked at again."""
    if _text_ok(value, _TEXT_MAX):
        return []
    return [
        Problem(
            None if policy is None else policy.rule_for(_RECORD),
            NEW_INFORMATION_FIELD,
            f"Say what new information led you to reconsider (non-blank text of at most {_TEXT_MAX:,} characters).",
            "required",
        )
    ]
