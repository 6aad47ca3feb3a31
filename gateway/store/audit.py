"""The audit queries' value types, shared by every store backend: the filter, its input errors, a stored checkpoint.

Nothing here touches a database. The API builds an `AuditFilter` from checked query parameters and hands it to
the store (`protocol.AuditQueries`); each backend turns it into its own SQL. Full text arrives as `fts_query`'s
output, a list of quoted words (with an optional trailing `*` for a prefix) ANDed: FTS5 reads it as is, and
another backend can split it back into words without ever seeing raw user input.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

#: Longest full-text query accepted, and most words in it: enough for any real search, bounded work.
MAX_TEXT_QUERY = 500
MAX_TEXT_TERMS = 16
#: Counting a filter's matches stops here: enough to tell a selective filter from a broad one, cheaply.
ESTIMATE_CAP = 5000
#: When every filter is broad, they are counted again up to here (~5 ms each at 0.1 µs an index entry): the
#: rarest of several broad filters can still be ten times rarer than the others, and the walk costs a row
#: read per candidate.
BROAD_CAP = 50_000
#: Above every real ledger index; the default upper bound of a range.
MAX_INDEX = 2**62

#: A word as FTS5's unicode61 tokenizer sees it (letters and digits; '_' separates), optionally a prefix.
_WORD = re.compile(r"([^\W_]+)(\*?)")


class QueryError(ValueError):
    """User input that cannot become a query (the API turns it into a 400 naming `field`)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def fts_query(text: str) -> str:
    """Turn free text into an FTS5 query that cannot be a syntax error: every word a quoted phrase, ANDed.

    FTS5's own syntax (AND/OR/NOT/NEAR, parentheses, column filters, `^`) is not exposed: auditors type
    words, and hostile input must not be able to produce an error or an expensive query. A trailing `*`
    on a word keeps its meaning (prefix search) since it cannot be misparsed after a closing quote.
    """
    if len(text) > MAX_TEXT_QUERY:
        raise QueryError("q", f"q is longer than {MAX_TEXT_QUERY} characters.")
    words = _WORD.findall(text)
    if not words:
        raise QueryError("q", "q must contain at least one word (letters or digits).")
    if len(words) > MAX_TEXT_TERMS:
        raise QueryError("q", f"q has more than {MAX_TEXT_TERMS} words.")
    return " ".join(f'"{word}"' + ("*" if star else "") for word, star in words)


@dataclass(frozen=True)
class AuditFilter:
    """Every filter the auditor routes accept; all given ones must hold (AND). Values are already checked."""

    subject: str | None = None
    practitioner: str | None = None
    recipient: str | None = None
    org: str | None = None
    kind: str | None = None
    decision: str | None = None
    purpose: str | None = None
    article_6: str | None = None
    article_9: str | None = None
    dpa_schedule_1: str | None = None
    #: A partnership agreement's ID: entries made under (or about) any version of it.
    agreement: str | None = None
    #: An FTS5 expression made by `fts_query`, never raw user input.
    text: str | None = None
    time_from: str | None = None
    time_to: str | None = None
    #: Tenancy (gateway/tenancy.py): only entries involving this organisation (the actor's or a recipient's,
    #: as `ledger_orgs` holds them); None for a partnership-wide auditor. Not a user filter: set from the token.
    scope: str | None = None


@dataclass(frozen=True)
class StoredCheckpoint:
    size: int
    time: str
    note: bytes


#: The flag a policy's safety net puts on a decision not to share despite significant harm or immediate risk.
FLAG_NOT_SHARED_DESPITE_RISK = "not_share_despite_risk"


#: The statistics' per-month counters keyed by value (decision, purpose, lawful bases, organisation, edition).
STATS_DIMENSIONS = ("decision", "purpose", "article_6", "article_9", "dpa_schedule_1", "org", "policy")


def empty_month(m: str) -> dict[str, Any]:
    return {
        "month": m,
        "decisions": 0,
        **{dim: {} for dim in STATS_DIMENSIONS},
        "shares": 0,
        "disclosures_elsewhere": 0,
        "disclosures_by_channel": {},
        "decisions_not_to_share": 0,
        "not_shared_despite_risk": 0,
        "shares_later_revoked": 0,
        "emergency_shares_not_completed": 0,
        "emergency_justifications_open": 0,
        "emergency_justifications_overdue": 0,
    }


def fold_months(months: dict[str, dict[str, Any]]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The months in order (their counters sorted) and the totals over them: the same arithmetic whichever
    database counted the months, so both backends give the same figures."""
    ordered = [months[m] for m in sorted(months)]
    totals: dict[str, Any] = {
        "decisions": 0,
        "shares": 0,
        "decisions_not_to_share": 0,
        "disclosures_elsewhere": 0,
        "disclosures_by_channel": {},
        "not_shared_despite_risk": 0,
        "shares_later_revoked": 0,
        "emergency_shares_not_completed": 0,
        "emergency_justifications_open": 0,
        "emergency_justifications_overdue": 0,
        **{dim: {} for dim in STATS_DIMENSIONS},
    }
    for bucket in ordered:
        for dim in STATS_DIMENSIONS:
            bucket[dim] = dict(sorted(bucket[dim].items()))
            for key, n in bucket[dim].items():
                totals[dim][key] = totals[dim].get(key, 0) + n
        totals["decisions"] += bucket["decisions"]
        for key in ("shares", "disclosures_elsewhere", "not_shared_despite_risk"):
            totals[key] += bucket[key]
        bucket["disclosures_by_channel"] = dict(sorted(bucket["disclosures_by_channel"].items()))
        for key, n in bucket["disclosures_by_channel"].items():
            totals["disclosures_by_channel"][key] = totals["disclosures_by_channel"].get(key, 0) + n
        totals["shares_later_revoked"] += bucket["shares_later_revoked"]
        for key in (
            "emergency_shares_not_completed",
            "emergency_justifications_open",
            "emergency_justifications_overdue",
        ):
            totals[key] += bucket[key]
    for dim in STATS_DIMENSIONS:
        totals[dim] = dict(sorted(totals[dim].items()))
    totals["disclosures_by_channel"] = dict(sorted(totals["disclosures_by_channel"].items()))
    return ordered, totals
