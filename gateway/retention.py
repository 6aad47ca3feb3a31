"""Retention classes (issue 14): how long a share's envelopes may live, by purpose and data category, as policy data.

A policy's ``x-retention`` block lists classes in order; the first whose ``purposes`` or ``data_categories`` match
the justification applies, and the last (with neither) is the default. A share's requested lifetime is capped at
its class's ``max_envelope_days``; the ledger entry is kept whatever the class (only envelopes are destroyed).
Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .justification import Policy

__all__ = ["class_for"]

DAY = 86400


def class_for(policy: Policy, draft: Mapping[str, Any]) -> dict[str, Any] | None:
    """The retention class of a justification under its policy: id, title and maximum lifetime; None without one."""
    block = policy.schema.get("x-retention")
    classes = block.get("classes") if isinstance(block, Mapping) else None
    if not isinstance(classes, list):
        return None
    purpose = (draft.get("purpose") or {}).get("code") if isinstance(draft.get("purpose"), Mapping) else None
    categories = set(draft.get("data_categories") or ()) if isinstance(draft.get("data_categories"), list) else set()
    for c in classes:
        if not isinstance(c, Mapping) or not isinstance(c.get("max_envelope_days"), int):
            continue
        purposes, cats = c.get("purposes") or [], c.get("data_categories") or []
        if (not purposes and not cats) or purpose in purposes or categories & set(cats):
            return {"class": str(c.get("id")), "title": str(c.get("title")), "max_days": int(c["max_envelope_days"])}
    return None
