"""Emergency shares' use cases (issue 14): record what is owed, complete it later, list what is still owed.

The share itself goes through `Gateway.prepare_share`/`commit_share` (with `emergency.deferred_problems` deciding
that it may go at once); this object (`Gateway.emergencies`) holds what is particular to emergencies so that
`service.py` only calls it.
Completion is a new ledger entry linked to the share's own (entries are never edited), written in one
transaction that also checks nobody completed it first.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from . import emergency as emergency_rules
from .auth import Principal
from .config import Settings
from .justification import Policy, Problem
from .ledger import entry as ledger_entry
from .refusals import Conflict, Invalid, not_found
from .store.models import Share
from .store.protocol import Store

#: How many of a practitioner's owed justifications are listed at once (each is a share made in an emergency).
MAX_LISTED = 200


class EmergencyUseCases:
    """Given what it shares with `Gateway` as narrow callables (checking a justification, the policy reference,
    who sent a share, who acts), so it depends on those steps and not on the whole sharing class."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        now: Callable[[], datetime],
        now_str: Callable[[], str],
        check_justification: Callable[[Any, Principal | None], tuple[Policy | None, list[Problem]]],
        policy_ref: Callable[[Policy], dict[str, str]],
        actor: Callable[[Principal, str], dict[str, Any]],
        is_sender: Callable[[Principal, Share], bool],
    ) -> None:
        self.settings = settings
        self.store = store
        self.now = now
        self.now_str = now_str
        self.check_justification = check_justification
        self._policy_ref = policy_ref
        self._actor = actor
        self.is_sender = is_sender

    def emergency_record(self, principal: Principal, policy: Policy, owed: Sequence[Problem]) -> dict[str, Any]:
        """What the share's entry records: the deadline (the organisation's, else the policy's) and the answers
        owed — field, rule and code only, which never hold a submitted value."""
        rule = emergency_rules.rule_of(policy)
        assert rule is not None  # owed problems come only from a policy with an emergency rule
        due = rule.due(self.now(), principal.org, self.settings.policies.emergency_hours)
        return {
            "complete_by": ledger_entry.format_time(due),
            "owed": [{"field": p.field, "rule": p.rule, "code": p.code} for p in owed],
        }

    def emergency_preview(
        self, principal: Principal, policy: Policy | None, draft: Any, problems: Sequence[Problem]
    ) -> Any:
        """For the panel (`POST /justifications/validate`): whether this draft may go at once as an emergency."""
        if policy is None:
            return None
        rule = emergency_rules.rule_of(policy)
        if rule is None or not rule.applies(draft):
            return None
        owed = [] if not problems else emergency_rules.deferred_problems(policy, draft, problems)
        return {
            **rule.describe(principal.org, self.settings.policies.emergency_hours),
            "allowed": owed is not None,
            "owed": [p.as_dict() for p in owed or ()],
        }

    async def complete_emergency(self, principal: Principal, share_id: str, draft: Any) -> dict[str, Any]:
        """The sender completes an emergency share's justification: checked in full (no answer may be owed now),
        about the same people, recorded as an `emergency_completed` entry pointing at the share's entry."""
        share = await self.store.get_share(share_id)
        if share is None or not self.is_sender(principal, share):
            raise not_found()
        policy, problems = self.check_justification(draft, principal)
        if problems or policy is None:
            raise Invalid(
                "justification_incomplete",
                "The justification does not yet answer every golden rule; nothing was recorded.",
                problems=[p.as_dict() for p in problems],
            )
        if draft.get("decision") != "share":
            raise Invalid(
                "decision_not_share",
                "The share was made: its justification's decision is 'share'.",
                "justification.decision",
            )
        refs = sorted({s["ref"] for s in draft["subjects"]})
        if refs != sorted(set(share.subjects)):
            raise Invalid(
                "emergency_subjects_differ",
                "The completed justification must be about the same people (subject references) as the share.",
                "justification.subjects",
            )
        now = self.now_str()

        def entry(s: Share, share_entry: dict[str, Any], earlier: int | None) -> Mapping[str, Any]:
            owed = share_entry.get("emergency")
            if not isinstance(owed, dict):
                raise Conflict(
                    "not_emergency_share",
                    "This share was made with a complete justification; there is nothing to complete.",
                )
            if earlier is not None:
                raise Conflict(
                    "emergency_already_completed",
                    "This emergency share's justification has already been completed.",
                    ledger_index=earlier,
                )
            built = ledger_entry.emergency_completed_entry(
                time=now,
                actor=self._actor(principal, "practitioner"),
                share_id=s.id,
                share_index=s.ledger_index,
                justification=draft,
                policy=self._policy_ref(policy),
                complete_by=str(owed.get("complete_by")),
            )
            ledger_entry.check_size(built)
            return built

        try:
            result = await self.store.append_for_share(share_id, ledger_entry.KIND_EMERGENCY_COMPLETED, entry)
        except ledger_entry.EntryTooLarge as exc:
            raise Invalid(
                "entry_too_large",
                "This record would be too large for the ledger; shorten the justification's free text.",
                "justification",
                limit=ledger_entry.MAX_ENTRY_BYTES,
                size=exc.size,
            ) from None
        if result is None:
            raise not_found()
        _, index = result
        return {
            "share_id": share_id,
            "ledger_index": index,
            "share_index": share.ledger_index,
            "completed_at": now,
            "receipt": f"/api/v1/ledger/entries/{index}",
            "receipt_proof": f"/api/v1/ledger/entries/{index}/proof",
        }

    async def owed_justifications(self, principal: Principal) -> list[dict[str, Any]]:
        """The caller's emergency shares still owing their justification, soonest deadline first."""
        now = self.now_str()
        out = []
        for row in await self.store.open_emergencies(principal.sub, limit=MAX_LISTED):
            entry = json.loads(row.entry)
            if (entry.get("actor") or {}).get("iss") != principal.issuer:
                continue
            owed = entry.get("emergency") or {}
            out.append(
                {
                    "share_id": entry.get("share_id"),
                    "ledger_index": row.index,
                    "shared_at": row.time,
                    "purpose": entry.get("purpose"),
                    "subjects": entry.get("subjects"),
                    "complete_by": owed.get("complete_by"),
                    "overdue": str(owed.get("complete_by")) < now,
                    "owed": owed.get("owed") or [],
                }
            )
        out.sort(key=lambda item: str(item["complete_by"]))
        return out
