"""Retention use cases (issue 14): the periodic review, recorded in the ledger, and the administrator's schedule.

Envelopes are destroyed by the expiry sweep at the time their retention class allows (`retention.class_for`
caps it when the share is made); the ledger entries stay. The review is itself a ledger entry, so an auditor can
see that retention was looked at, when, and what had been destroyed since the previous review (the `expire`
entries themselves list what was destroyed).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from . import tenancy
from .auth import Principal
from .ledger import entry as ledger_entry
from .store.protocol import Store

MAX_LISTED = 1000


class RetentionUseCases:
    """Given the store and the clock: a review is the gateway's own act, so it needs nothing else of `Gateway`."""

    def __init__(self, store: Store, now_str: Callable[[], str]) -> None:
        self.store = store
        self.now_str = now_str

    async def retention_review(self, not_within: float = 0.0) -> dict[str, Any] | None:
        """Record a retention review (the gateway's own act: no actor), or None when one was recorded in the last
        `not_within` seconds: every node (or worker) runs the periodic review, and the ledger gets one a period."""
        facts = await self.store.retention_facts()
        now = self.now_str()
        entry = {
            "v": ledger_entry.ENTRY_VERSION,
            "kind": ledger_entry.KIND_RETENTION_REVIEW,
            "time": now,
            "actor": None,
            "subjects": [],
            "recipients": [],
            "review": facts,
        }
        if not_within <= 0:
            index: int | None = await self.store.record(entry)
        else:
            since = ledger_entry.format_time(ledger_entry.parse_time(now) - timedelta(seconds=not_within))
            index = await self.store.record_unless_since(entry, since)
        if index is None:
            return None
        return {"ledger_index": index, "reviewed_at": entry["time"], **facts}

    async def retention_schedule(self, principal: Principal) -> list[dict[str, Any]]:
        """What will be destroyed when: an administrator's organisation's live shares (every organisation's for a
        partnership administrator), soonest first."""
        scope = tenancy.admin_scope(principal)
        org = None if isinstance(scope, tenancy.Everywhere) else scope
        rows = await self.store.retention_schedule(org, limit=MAX_LISTED)
        return [
            {
                "share_id": r[0],
                "created_at": r[1],
                "destroy_at": r[2],
                "purpose": r[3],
                "ledger_index": r[4],
                "retention_class": r[5],
            }
            for r in rows
        ]
