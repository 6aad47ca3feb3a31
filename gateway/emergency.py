"""Emergency shares (issue 14): a child or adult at immediate risk is never kept waiting by the form.

When a draft is one the policy's ``x-emergency`` block describes (its ``when``, a JSON Schema over the whole
draft: a decision to share at ``risk_level: immediate``), the share may go at once with only the policy's
``minimum`` fields answered (purpose, the risk, the lawful basis…). Everything else the full justification
asks for is *deferred*: recorded as owed, to be completed within ``complete_within_hours`` (per organisation
in ``[policies] emergency_complete_within_hours``). Only a *missing* answer can wait: a value that is present
but wrong (an unknown code, a contradiction) is refused as usual, and so is any problem on a minimum field,
because the ledger must never hold a malformed record.

The policy decides which fields are the minimum, as data; this module only interprets the block. Pure: no
I/O; messages and recorded problems never quote a submitted value.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from .justification import Policy, Problem

__all__ = [
    "FLAG",
    "EmergencyRule",
    "deferred_problems",
    "rule_of",
]

#: The flag an emergency share's ledger entry carries until (and after) its justification is completed.
FLAG: Final = "emergency_share"
_MAX_HOURS: Final = 24 * 14


@dataclass(frozen=True)
class EmergencyRule:
    """A policy's ``x-emergency`` block, parsed."""

    when: Draft202012Validator = field(repr=False)
    minimum: tuple[str, ...]
    complete_within_hours: int
    title: str
    guidance: str

    @classmethod
    def parse(cls, block: Any) -> EmergencyRule:
        if not isinstance(block, Mapping):
            raise ValueError("x-emergency must be an object")
        when = block.get("when")
        if not isinstance(when, Mapping):
            raise ValueError("x-emergency.when must be a JSON Schema object")
        try:
            Draft202012Validator.check_schema(dict(when))
        except SchemaError as exc:
            raise ValueError(f"x-emergency.when is not a valid JSON Schema: {exc.message}") from exc
        minimum = block.get("minimum")
        if not isinstance(minimum, list) or not minimum or not all(isinstance(m, str) and m for m in minimum):
            raise ValueError("x-emergency.minimum must list at least one field path")
        hours = block.get("complete_within_hours")
        if not isinstance(hours, int) or isinstance(hours, bool) or not 1 <= hours <= _MAX_HOURS:
            raise ValueError(f"x-emergency.complete_within_hours must be a whole number of hours, 1 to {_MAX_HOURS}")
        texts = {k: block.get(k) for k in ("title", "guidance")}
        for key, value in texts.items():
            if not isinstance(value, str) or not value.strip():
                raise ValueError(f"x-emergency.{key} must be non-empty text")
        return cls(
            when=Draft202012Validator(dict(when)),
            minimum=tuple(minimum),
            complete_within_hours=hours,
            title=str(texts["title"]),
            guidance=str(texts["guidance"]),
        )

    def applies(self, draft: Any) -> bool:
        """Whether the draft is an emergency the policy lets go at once (never raises on hostile shapes)."""
        try:
            return bool(self.when.is_valid(draft))
        except Exception:
            return False

    def is_minimum(self, field_name: str) -> bool:
        """A problem at or under a minimum field (or above one: its parent missing) can never wait."""
        return any(
            field_name == m or field_name.startswith(m + ".") or m.startswith(field_name + ".") or not field_name
            for m in self.minimum
        )

    def hours_for(self, org: str | None, overrides: Sequence[tuple[str, int]]) -> int:
        """The organisation's own deadline when configured, else the policy's."""
        for name, hours in overrides:
            if org is not None and " ".join(name.split()).casefold() == " ".join(org.split()).casefold():
                return hours
        return self.complete_within_hours

    def due(self, now: datetime, org: str | None, overrides: Sequence[tuple[str, int]]) -> datetime:
        return now + timedelta(hours=self.hours_for(org, overrides))

    def describe(self, org: str | None, overrides: Sequence[tuple[str, int]]) -> dict[str, Any]:
        """What the panel and the API show: the policy's words, the minimum and the deadline in hours."""
        return {
            "title": self.title,
            "guidance": self.guidance,
            "minimum": list(self.minimum),
            "complete_within_hours": self.hours_for(org, overrides),
        }


_CACHE: dict[str, EmergencyRule | None] = {}


def rule_of(policy: Policy) -> EmergencyRule | None:
    """The policy's emergency rule, or None when the edition has no ``x-emergency`` block (cached by digest)."""
    if policy.digest not in _CACHE:
        block = policy.schema.get("x-emergency")
        _CACHE[policy.digest] = None if block is None else EmergencyRule.parse(block)
    return _CACHE[policy.digest]


def _value_at(draft: Any, field_name: str) -> Any:
    node = draft
    for part in field_name.split(".") if field_name else ():
        if isinstance(node, Mapping):
            node = node.get(part)
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return None
    return node


def _missing(value: Any) -> bool:
    """Absent, blank text, or an empty list: an answer not yet given (as opposed to a wrong one)."""
    return value is None or (isinstance(value, str) and not value.strip()) or value == [] or value == {}


def deferred_problems(policy: Policy, draft: Any, problems: Sequence[Problem]) -> list[Problem] | None:
    """The problems an emergency share may leave for later, or None when the draft may not go at once.

    None when the policy has no emergency rule, the draft is not an emergency, or any problem is on a minimum
    field or about a value that is present but wrong. An empty ``problems`` is not an emergency share at all.
    """
    rule = rule_of(policy)
    if rule is None or not problems or not isinstance(draft, Mapping) or not rule.applies(draft):
        return None
    for problem in problems:
        if problem.rule is None or rule.is_minimum(problem.field) or not _missing(_value_at(draft, problem.field)):
            return None
    return list(problems)
