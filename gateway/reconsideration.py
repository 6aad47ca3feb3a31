"""Reconsidering a refusal (issue 14; DfE 2024 rule 7): a decision not to share looked at again on new information.

The reconsideration is a new decision (share another way, or not share again) recorded like any other, with a
`reconsiders` link to the earlier entry and the new information; entries are never edited, so the chain is read
by following the links (the subject report does). Kept apart from `service.py`, which only records decisions.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

from . import reconsider as reconsider_rules
from .auth import Principal
from .idempotency import Idempotency
from .ledger import entry as ledger_entry
from .refusals import Conflict, Invalid, Malformed, not_found
from .store.protocol import Store

if TYPE_CHECKING:
    from .service import DecisionRequest

_BODY = frozenset({"justification", "new_information", "disclosure", "explanation"})


class RecordDecision(Protocol):
    """`Gateway.record_decision`: a reconsideration is recorded like any other decision, so it is handed that step."""

    async def __call__(
        self,
        principal: Principal,
        req: DecisionRequest,
        idempotency: Idempotency | None = None,
        explanation: Any = None,
        reconsiders: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]: ...


class ReconsiderationUseCases:
    """Given the store and the decision step it shares with `Gateway`, not the whole sharing class."""

    def __init__(self, store: Store, record_decision: RecordDecision) -> None:
        self.store = store
        self.record_decision = record_decision

    async def reconsider(self, principal: Principal, index: int, body: Any) -> dict[str, Any]:
        """Record a new decision that reconsiders the refusal at ledger entry `index`.

        Any practitioner of the organisation that refused may reconsider (the one who decided may have moved on);
        anyone else is told there is no such decision. The new decision must concern at least one of the same people.
        """
        if not isinstance(body, dict) or "justification" not in body or set(body) - _BODY:
            raise Malformed(
                "invalid_body",
                'The body must be {"justification": {...}, "new_information": text} (with "disclosure" when the '
                'new decision is a share made another way, "explanation" when it is a refusal again).',
                field="body",
            )
        row = await self.store.ledger_entry(index)
        earlier: dict[str, Any] = json.loads(row.entry) if row is not None else {}
        actor = earlier.get("actor") or {}
        same_org = principal.org is not None and actor.get("org") == principal.org
        mine = actor.get("sub") == principal.sub and actor.get("iss") == principal.issuer
        if row is None or earlier.get("kind") != ledger_entry.KIND_DECISION or not (same_org or mine):
            raise not_found("decision")
        if earlier.get("decision") != "not_share":
            raise Conflict(
                "not_a_refusal",
                "Only a decision not to share can be reconsidered; this decision was to share.",
                field="index",
            )
        problems = reconsider_rules.new_information_problems(None, body.get("new_information"))
        if problems:
            raise Invalid("invalid_new_information", problems[0].message, "new_information")
        draft = body["justification"]
        subjects = draft.get("subjects") if isinstance(draft, dict) else None
        listed = subjects if isinstance(subjects, list) else []
        refs = {s["ref"] for s in listed if isinstance(s, dict) and isinstance(s.get("ref"), str)}
        if not refs & set(earlier.get("subjects") or ()):
            raise Invalid(
                "reconsider_subjects_differ",
                "A reconsideration concerns at least one of the people the earlier decision was about (same ref).",
                "justification.subjects",
            )
        from .service import DecisionRequest  # service composes this class: import when called

        return await self.record_decision(
            principal,
            DecisionRequest(draft, body.get("disclosure")),
            None,
            body.get("explanation"),
            reconsiders={"index": index, "new_information": str(body["new_information"]).strip()},
        )
