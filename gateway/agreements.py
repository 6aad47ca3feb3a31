"""The partnership's agreements: the overarching protocol and the data exchange agreements, as data (pure).

A local safeguarding partnership governs sharing with "an overarching protocol document" and "a specific data
exchange agreement" for adults and one for children, signed up to by the partner organisations. The ICO's
data sharing code asks of every decision: is there a data sharing agreement, and is the recipient party to it?

This module holds the rules and nothing else (no I/O, no clock): what an agreement is, how a new version is
checked, and which problems a share has under the agreements its justification names. Every problem is a
golden-rule problem (rule 6: shared only with those who need it, within what was agreed) with its field, so the
practitioner sees it beside the rest of the justification. Messages name the agreement and the organisation
(administrator-entered data); they never quote the practitioner's free text.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Final

from .inputs import is_text
from .justification import Policy, Problem
from .standard_answers import StandardAnswersError, check_standard_answers
from .store.models import (  # the record itself lives with the store's records; re-exported here
    KIND_WORDS,
    STATUS_ACTIVE,
    STATUS_RETIRED,
    Agreement,
    normalise_org,
)

__all__ = [
    "AGREEMENT_ID_RE",
    "KINDS",
    "NO_AGREEMENT_REASONS",
    "RULE",
    "SCOPES",
    "Agreement",
    "AgreementCheck",
    "AgreementError",
    "check_share",
    "check_named",
    "covers",
    "explain_offer",
    "normalise_org",
    "offers",
    "validate_new",
]

#: Agreement problems belong to golden rule 6 ("only with those who need it"; within the agreed scope).
RULE: Final = 6

AGREEMENT_ID_RE: Final = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
#: Taken by routes (`/api/v1/agreements/offers`).
RESERVED_IDS: Final = frozenset({"offers"})
KINDS: Final = ("protocol", "data_exchange", "other")
SCOPES: Final = ("children", "adults", "both")
SCOPE_WORDS: Final[Mapping[str, str]] = {"children": "children", "adults": "adults", "both": "children and adults"}
#: Where the policies keep the codes an agreement's purposes and categories are drawn from.
PURPOSE_PATH: Final = "purpose.code"
CATEGORIES_PATH: Final = "data_categories"
#: Why a justification names no agreement (the `no_agreement.reason` codes of the policy).
NO_AGREEMENT_REASONS: Final = ("emergency", "statutory_request", "outside_partnership", "other")
#: Subject roles that put a share in an agreement's children's or adults' scope (others are neutral).
_ROLE_SCOPE: Final[Mapping[str, str]] = {"child": "children", "adult_at_risk": "adults"}

MAX_TITLE: Final = 300
MAX_ORG: Final = 200
MAX_SIGNATORIES: Final = 200
MAX_DOCUMENT_BYTES: Final = 20 * 1024 * 1024
#: Document types the gateway serves (never HTML or anything a browser would run in the gateway's origin).
DOCUMENT_TYPES: Final[Mapping[str, str]] = {
    ".pdf": "application/pdf",
    ".txt": "text/plain; charset=utf-8",
    ".md": "text/markdown; charset=utf-8",
    ".odt": "application/vnd.oasis.opendocument.text",
    ".docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
}


class AgreementError(ValueError):
    """A new agreement version that cannot be recorded; `field` names what is wrong."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def _text(value: Any, name: str, cap: int) -> str:
    if not is_text(value, cap):
        raise AgreementError(name, f"{name} must be non-blank text of at most {cap} characters.")
    return " ".join(value.split())


def _codes(value: Any, name: str, allowed: Sequence[str]) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise AgreementError(name, f"{name} must be a list of codes.")
    bad = [v for v in value if v not in allowed]
    if bad:
        raise AgreementError(name, f"{name} must be codes from: {', '.join(allowed)}.")
    return tuple(sorted(set(value), key=allowed.index))


def validate_new(
    fields: Mapping[str, Any],
    purposes: Sequence[str],
    categories: Sequence[str],
    policies: Mapping[str, Policy] | None = None,
) -> dict[str, Any]:
    """Check an administrator's new agreement version (everything but the document bytes); normalised fields.

    `purposes` and `categories` are the codes the loaded policies allow (PolicyRegistry.codes): never copied here.
    `policies` (id -> current Policy) checks the version's standard answers (`standard_answers.py`)."""
    allowed = {
        "id",
        "title",
        "kind",
        "scope",
        "signatories",
        "purposes",
        "categories",
        "review_date",
        "standard_answers",
    }
    unknown = sorted(set(fields) - allowed)
    if unknown:
        raise AgreementError(unknown[0][:64], "Unknown field in the agreement.")
    agreement_id = fields.get("id")
    if not isinstance(agreement_id, str) or not AGREEMENT_ID_RE.match(agreement_id) or agreement_id in RESERVED_IDS:
        raise AgreementError(
            "id", "An agreement ID is 1-64 characters: lower-case letters, digits, '.', '_' or '-' (not 'offers')."
        )
    kind = fields.get("kind")
    if kind not in KINDS:
        raise AgreementError("kind", f"kind must be one of: {', '.join(KINDS)}.")
    scope = fields.get("scope")
    if scope not in SCOPES:
        raise AgreementError("scope", f"scope must be one of: {', '.join(SCOPES)}.")
    signatories = fields.get("signatories")
    if not isinstance(signatories, list | tuple) or not 1 <= len(signatories) <= MAX_SIGNATORIES:
        raise AgreementError("signatories", f"signatories must list 1 to {MAX_SIGNATORIES} organisations.")
    orgs: list[str] = []
    for org in signatories:
        name = _text(org, "signatories", MAX_ORG)
        if normalise_org(name) not in {normalise_org(o) for o in orgs}:
            orgs.append(name)
    review = fields.get("review_date")
    try:
        if not isinstance(review, str) or len(review) != 10:
            raise ValueError
        date.fromisoformat(review)
    except ValueError:
        raise AgreementError("review_date", "review_date must be a date, YYYY-MM-DD.") from None
    return {
        "id": agreement_id,
        "title": _text(fields.get("title"), "title", MAX_TITLE),
        "kind": kind,
        "scope": scope,
        "signatories": tuple(orgs),
        "purposes": _codes(fields.get("purposes"), "purposes", purposes),
        "categories": _codes(fields.get("categories"), "categories", categories),
        "review_date": review,
        "standard_answers": _standard_answers(fields.get("standard_answers"), policies or {}),
    }


def _standard_answers(value: Any, policies: Mapping[str, Policy]) -> tuple[dict[str, Any], ...]:
    try:
        return check_standard_answers(value, policies)
    except StandardAnswersError as exc:
        raise AgreementError(exc.field, exc.message) from None


def covers(agreement: Agreement, purpose: str | None, categories: Iterable[str], roles: Iterable[str]) -> bool:
    """Whether the agreement's scope takes in this purpose, every category and every subject's role."""
    return not _scope_problems(agreement, purpose, list(categories), list(roles), index=0)


def _scope_problems(
    a: Agreement, purpose: str | None, categories: Sequence[str], roles: Sequence[str], index: int
) -> list[Problem]:
    out: list[Problem] = []
    if a.purposes and purpose is not None and purpose not in a.purposes:
        out.append(
            Problem(
                RULE,
                "purpose.code",
                f"The purpose '{purpose}' is outside the scope of {a.title} (agreement {a.id}, version "
                f"{a.version}), which covers: {', '.join(a.purposes)}.",
                "agreement_purpose_out_of_scope",
            )
        )
    if a.categories:
        for j, category in enumerate(categories):
            if category not in a.categories:
                out.append(
                    Problem(
                        RULE,
                        f"data_categories.{j}",
                        f"The data category '{category}' is outside the scope of {a.title} (agreement {a.id}, "
                        f"version {a.version}), which covers: {', '.join(a.categories)}.",
                        "agreement_category_out_of_scope",
                    )
                )
    if a.scope != "both":
        for role in sorted(set(roles)):
            needed = _ROLE_SCOPE.get(role)
            if needed is not None and needed != a.scope:
                out.append(
                    Problem(
                        RULE,
                        f"agreements.{index}",
                        f"{a.title} (agreement {a.id}, version {a.version}) covers {SCOPE_WORDS[a.scope]} only, "
                        f"and a subject of this share is recorded as '{role}'.",
                        "agreement_scope_mismatch",
                    )
                )
    return out


@dataclass(frozen=True)
class AgreementCheck:
    """The outcome of checking a draft against the agreements it names."""

    #: The named agreements that exist (current versions), in the draft's order.
    named: tuple[Agreement, ...] = ()
    problems: tuple[Problem, ...] = ()
    #: Recipient organisations that are not a signatory of any usable named agreement.
    outside: tuple[str, ...] = field(default_factory=tuple)

    def refs(self) -> list[dict[str, Any]]:
        return [a.ref() for a in self.named]


def _named_ids(draft: Mapping[str, Any]) -> list[str]:
    ids = draft.get("agreements")
    if not isinstance(ids, list):
        return []
    return [i for i in ids if isinstance(i, str)]


def check_named(
    draft: Mapping[str, Any],
    current: Mapping[str, Agreement],
    *,
    today: date,
    required: bool,
) -> AgreementCheck:
    """Problems with the agreements a justification names, before recipients are known (also for decisions)."""
    ids = _named_ids(draft)
    problems: list[Problem] = []
    named: list[Agreement] = []
    if required and not ids and not draft.get("no_agreement"):
        problems.append(
            Problem(
                RULE,
                "agreements",
                "Name the partnership agreement(s) this share relies on, or say why none applies (no_agreement).",
                "agreements_required",
            )
        )
    if ids and draft.get("no_agreement"):
        problems.append(
            Problem(
                RULE,
                "no_agreement",
                "Either name the agreements this relies on or say why none applies, not both.",
                "agreements_conflict",
            )
        )
    for i, agreement_id in enumerate(ids):
        a = current.get(agreement_id)
        if a is None:
            problems.append(
                Problem(
                    RULE,
                    f"agreements.{i}",
                    "This gateway holds no agreement with that ID; choose one of the partnership's agreements.",
                    "agreement_unknown",
                )
            )
            continue
        named.append(a)
        if a.status == STATUS_RETIRED:
            problems.append(
                Problem(
                    RULE,
                    f"agreements.{i}",
                    f"{a.title} (agreement {a.id}, version {a.version}) has been retired; it no longer covers sharing.",
                    "agreement_retired",
                )
            )
        elif a.overdue(today):
            problems.append(
                Problem(
                    RULE,
                    f"agreements.{i}",
                    f"{a.title} (agreement {a.id}, version {a.version}) was due for review on {a.review_date} "
                    "and has not been renewed.",
                    "agreement_overdue",
                )
            )
    return AgreementCheck(tuple(named), tuple(problems))


def check_share(
    draft: Mapping[str, Any],
    current: Mapping[str, Agreement],
    recipient_orgs: Sequence[tuple[str, str]],
    *,
    today: date,
    required: bool,
) -> AgreementCheck:
    """Every agreement problem of a share: the named agreements, their scope, and each recipient's organisation.

    `recipient_orgs` is (recipient ID, organisation) for each person the share goes to. A recipient
    organisation must be a signatory of at least one named agreement that is neither retired nor overdue.
    """
    base = check_named(draft, current, today=today, required=required)
    problems = list(base.problems)
    if not base.named:
        return AgreementCheck(base.named, tuple(problems))
    purpose = (draft.get("purpose") or {}).get("code") if isinstance(draft.get("purpose"), dict) else None
    categories = [c for c in draft.get("data_categories") or [] if isinstance(c, str)]
    roles = [s.get("role") for s in draft.get("subjects") or [] if isinstance(s, dict)]
    ids = _named_ids(draft)
    for a in base.named:
        problems += _scope_problems(a, purpose, categories, [r for r in roles if isinstance(r, str)], ids.index(a.id))
    usable = [a for a in base.named if a.status != STATUS_RETIRED and not a.overdue(today)]
    outside: list[str] = []
    seen: set[str] = set()
    for i, (rid, org) in enumerate(recipient_orgs):
        key = normalise_org(org)
        if key in seen:
            continue
        seen.add(key)
        if not any(a.is_signatory(org) for a in usable):
            outside.append(org)
            titles = ", ".join(f"{a.title} ({a.id})" for a in base.named)
            problems.append(
                Problem(
                    RULE,
                    f"recipients.{i}",
                    f"{org} (recipient {rid}) is not a signatory of {titles}"
                    + (" that is in force" if len(usable) < len(base.named) else "")
                    + ": the partnership has not agreed to share with them on these terms.",
                    "recipient_not_signatory",
                )
            )
    return AgreementCheck(base.named, tuple(problems), tuple(outside))


def offers(
    agreements: Iterable[Agreement],
    orgs: Sequence[str],
    purpose: str | None,
    categories: Sequence[str],
    roles: Sequence[str],
    *,
    today: date,
) -> list[dict[str, Any]]:
    """The agreements a practitioner can rely on for this draft, each with who is and is not a signatory."""
    out = []
    for a in agreements:
        if a.status != STATUS_ACTIVE or a.overdue(today):
            continue
        if not covers(a, purpose, categories, roles):
            continue
        missing = [o for o in orgs if not a.is_signatory(o)]
        out.append(
            {
                **a.public(),
                "covers_all_recipients": not missing,
                "not_signatories": missing,
                "explanation": explain_offer(a, missing),
            }
        )
    out.sort(key=lambda o: (not o["covers_all_recipients"], o["kind"] != "data_exchange", o["id"]))
    return out


def describe_ref(ref: Mapping[str, Any]) -> str:
    """A ledger entry's agreement reference in plain words, for reports."""
    kind = KIND_WORDS.get(str(ref.get("kind")), "agreement")
    return f"{ref.get('title') or ref.get('id')} ({kind} '{ref.get('id')}', version {ref.get('version')})"


def explain_offer(a: Agreement, missing: Sequence[str]) -> str:
    if not missing:
        return f"Every recipient's organisation has signed {a.title}."
    names = ", ".join(missing)
    verb = "is not a signatory" if len(missing) == 1 else "are not signatories"
    return (
        f"{names} {verb} of {a.title}. The partnership has not agreed to share with them on these terms: choose "
        "another agreement they have signed, or ask your manager or data protection officer before sharing."
    )
