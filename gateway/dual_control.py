"""Dual control (issue 14): an organisation may require a second person's approval before a share of given purposes
or risk levels is released. The envelopes are made and the share recorded as usual, flagged `dual_control` in its
ledger entry; every fetch is refused (409 `share_awaiting_approval`) until someone holding one of the configured
approver roles in the sending organisation, other than the sender, approves it (`share_approved`, a ledger entry
linked to the share, written once in one transaction).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from .auth import Principal
from .config import Settings
from .ledger import entry as ledger_entry
from .refusals import Conflict, Forbidden, Invalid, not_found
from .store.models import SHARE_ACTIVE, Share
from .store.protocol import Store

MAX_LISTED = 200


def _same(a: str | None, b: str | None) -> bool:
    return a is not None and b is not None and " ".join(a.split()).casefold() == " ".join(b.split()).casefold()


class DualControlUseCases:
    """Given the settings (which organisations hold which shares), the store, the clock, who acts and who sent a
    share: what it shares with `Gateway`, as narrow callables."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        now_str: Callable[[], str],
        actor: Callable[[Principal, str], dict[str, Any]],
        is_sender: Callable[[Principal, Share], bool],
    ) -> None:
        self.settings = settings
        self.store = store
        self.now_str = now_str
        self._actor = actor
        self.is_sender = is_sender

    def _rule(self, org: str | None) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]] | None:
        for name, purposes, risks, approvers in self.settings.policies.dual_control:
            if _same(name, org):
                return purposes, risks, approvers
        return None

    def dual_control_for(self, principal: Principal, draft: Mapping[str, Any]) -> dict[str, Any] | None:
        """What the share's entry records when the sender's organisation holds such shares for approval."""
        rule = self._rule(principal.org)
        if rule is None:
            return None
        purposes, risks, approvers = rule
        purpose = (draft.get("purpose") or {}).get("code")
        risk = ((draft.get("rules") or {}).get("5_safety_wellbeing") or {}).get("risk_level")
        because = {
            k: v for k, v, listed in (("purpose", purpose, purposes), ("risk_level", risk, risks)) if v in listed
        }
        return {"approvers": list(approvers), "because": because} if because else None

    async def check_released(self, share_id: str) -> None:
        """Refuse a fetch (or a look at the envelope's header) while the share waits for approval."""
        if await self.store.awaiting_approval(share_id):
            raise Conflict(
                "share_awaiting_approval",
                "This share waits for a second person's approval in the sending organisation; try again later.",
            )

    async def approve_share(self, principal: Principal, share_id: str, note: Any) -> dict[str, Any]:
        """An approver of the sending organisation (not the sender) releases a share held for approval."""
        if note is not None and (not isinstance(note, str) or not note.strip() or len(note) > 4000):
            raise Invalid("invalid_note", "note must be non-blank text of at most 4000 characters.", "note")
        now = self.now_str()

        def entry(s: Share, share_entry: dict[str, Any], earlier: int | None) -> Mapping[str, Any]:
            control = share_entry.get("dual_control")
            roles = [r for r in (control or {}).get("approvers", []) if principal.has(r)]
            configured = self._rule(principal.org)
            may_know = self.is_sender(principal, s) or any(principal.has(r) for r in (configured or ((), (), ()))[2])
            if not _same(s.sender_org, principal.org) or not (roles or may_know):
                raise not_found()  # nobody else learns that the share exists
            if not isinstance(control, dict):
                raise Conflict("not_held_for_approval", "This share was not held for approval.")
            if earlier is not None:
                raise Conflict("share_already_approved", "This share has already been approved.", ledger_index=earlier)
            if not roles:
                raise Forbidden(
                    "forbidden",
                    f"Approving this share needs the role {' or '.join(control.get('approvers', []))}.",
                    required_roles=list(control.get("approvers", [])),
                )
            if self.is_sender(principal, s):
                raise Forbidden("approver_is_sender", "A second person must approve: not the one who shared.")
            if s.state != SHARE_ACTIVE:
                raise Conflict("share_not_active", f"The share is already {s.state}.", state=s.state)
            return ledger_entry.share_event_entry(
                kind=ledger_entry.KIND_SHARE_APPROVED,
                time=now,
                actor=self._actor(principal, roles[0]),
                share_id=s.id,
                share_index=s.ledger_index,
                subjects=s.subjects,
                recipients=[],
                **({"note": note.strip()} if isinstance(note, str) else {}),
            )

        result = await self.store.append_for_share(share_id, ledger_entry.KIND_SHARE_APPROVED, entry)
        if result is None:
            raise not_found()
        share, index = result
        return {"share_id": share.id, "ledger_index": index, "share_index": share.ledger_index, "approved_at": now}

    async def approvals(self, principal: Principal) -> list[dict[str, Any]]:
        """The caller's organisation's shares held for approval that the caller's roles may approve."""
        if principal.org is None:
            return []
        out = []
        for row in await self.store.shares_awaiting_approval(principal.org, limit=MAX_LISTED):
            entry = json.loads(row.entry)
            control = entry.get("dual_control") or {}
            if not any(principal.has(r) for r in control.get("approvers", [])):
                continue
            actor = entry.get("actor") or {}
            out.append(
                {
                    "share_id": entry.get("share_id"),
                    "ledger_index": row.index,
                    "shared_at": row.time,
                    "sender": {k: actor.get(k) for k in ("sub", "org")},
                    "purpose": entry.get("purpose"),
                    "subjects": entry.get("subjects"),
                    "data_categories": entry.get("data_categories"),
                    "because": control.get("because"),
                    "approvers": control.get("approvers"),
                }
            )
        return out
