"""Disclosures made elsewhere (golden rule 7): a decision to share recorded without a payload says how, with
whom, what and when it was shared — a phone call to the MASH, a strategy meeting, a letter.

One validator for every client: the API (`POST /api/v1/decisions`, `POST /api/v1/justifications/validate`),
the CLI (`safeshare decide --channel …`, which checks before it sends) and, through the validate route, the
browser panel. Pure: no I/O. The schema is JSON Schema 2020-12 so it can be published in the OpenAPI document;
messages never quote a submitted value (disclosures name people and describe children).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Final

from jsonschema import Draft202012Validator

from .justification import Problem

__all__ = [
    "CHANNELS",
    "CHANNEL_WORDS",
    "FIELD",
    "SCHEMA",
    "describe",
    "parse_with",
    "problems",
]

#: Where the problems point: the disclosure sits beside the justification in the request body.
FIELD: Final = "disclosure"
RULE: Final = 7
CHANNELS: Final = ("phone", "meeting", "in_person", "letter", "other_system", "other")
#: "… by phone to …": how each channel reads in the report, the sender's view and the CLI.
CHANNEL_WORDS: Final[Mapping[str, str]] = {
    "phone": "by phone",
    "meeting": "at a meeting",
    "in_person": "in person",
    "letter": "by letter",
    "other_system": "through another system",
    "other": "another way",
}
MAX_WITH: Final = 50
MAX_LINE: Final = 200
MAX_SUMMARY: Final = 2000
#: A disclosure recorded as made in the future is a typo (or worse); allow for clock skew only.
FUTURE_SKEW: Final = timedelta(minutes=5)
#: Anything earlier is a typo (and year 1 with a positive offset cannot even be converted to UTC).
EARLIEST_YEAR: Final = 1990
RECIPIENT_ID_PATTERN: Final = r"^[a-z0-9][a-z0-9._-]{0,63}$"
TIME_PATTERN: Final = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,9})?)?([Zz]|[+-][0-9]{2}:[0-9]{2})$"
)

_LINE: Final = {"type": "string", "minLength": 1, "maxLength": MAX_LINE, "pattern": r"\S"}
SCHEMA: Final[dict[str, Any]] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "A disclosure made outside SafeShare",
    "type": "object",
    "additionalProperties": False,
    "required": ["channel", "with", "summary", "at"],
    "properties": {
        "channel": {"type": "string", "enum": list(CHANNELS)},
        "with": {
            "type": "array",
            "minItems": 1,
            "maxItems": MAX_WITH,
            "items": {
                "oneOf": [
                    {
                        "type": "object",
                        "additionalProperties": False,
                        "required": ["name", "role", "organisation"],
                        "properties": {"name": _LINE, "role": _LINE, "organisation": _LINE},
                    },
                    {
                        "type": "object",
                        "additionalProperties": False,
                        "required": ["recipient"],
                        "properties": {"recipient": {"type": "string", "pattern": RECIPIENT_ID_PATTERN}},
                    },
                ]
            },
        },
        "summary": {"type": "string", "minLength": 1, "maxLength": MAX_SUMMARY, "pattern": r"\S"},
        "at": {"type": "string", "maxLength": 40, "pattern": TIME_PATTERN},
    },
}
_VALIDATOR: Final = Draft202012Validator(SCHEMA)

_MESSAGES: Final[Mapping[str, str]] = {
    "channel": "How it was shared must be one of: " + ", ".join(CHANNELS) + ".",
    "with": (
        "With whom must list each person it was shared with, as their name, role and organisation, or as a "
        f"SafeShare directory ID (1 to {MAX_WITH} people)."
    ),
    "summary": f"What was shared must be a sentence or two (at most {MAX_SUMMARY:,} characters), not blank.",
    "at": "When it was shared must be a date and time with its zone, e.g. 2026-12-03T09:30:00Z.",
}


def _problem(field: str, message: str, code: str) -> Problem:
    return Problem(RULE, field, message, code)


def problems(disclosure: Any, decision: Any, now: datetime | None = None) -> list[Problem]:
    """Every problem with the disclosure that goes with a decision; empty means acceptable.

    A `share` decision recorded without a payload must carry one (golden rule 7: what, with whom, why);
    a `not_share` decision must not (nothing was shared). `now` (the server clock) refuses future times.
    """
    if decision == "not_share":
        if disclosure is not None:
            return [_problem(FIELD, "A disclosure must be left out when the decision is not to share.", "not_shared")]
        return []
    if decision != "share":
        return []  # the justification's own problems say what is wrong with the decision
    if disclosure is None:
        return [
            _problem(
                FIELD,
                "A decision to share recorded without a file must say how it was shared (channel), with whom, what "
                "was shared (summary) and when (at). Golden rule 7: record what you shared, with whom and why.",
                "disclosure_required",
            )
        ]
    if not isinstance(disclosure, Mapping):
        return [_problem(FIELD, "The disclosure must be a JSON object with channel, with, summary and at.", "type")]
    found: dict[str, Problem] = {}
    for error in _VALIDATOR.iter_errors(dict(disclosure)):
        path = [str(p) for p in error.absolute_path]
        if error.validator == "required" and not path:
            for name in error.validator_value:
                if name not in disclosure and isinstance(name, str):
                    found[name] = _problem(f"{FIELD}.{name}", _MESSAGES[name], "required")
            continue
        if error.validator == "additionalProperties" and not path:
            found["_unknown"] = _problem(
                FIELD,
                "The disclosure contains a field it does not know: use channel, with, summary and at.",
                "unknown_field",
            )
            continue
        top = path[0] if path else ""
        if top in _MESSAGES:
            where = ".".join([FIELD, *path[:2]])
            found.setdefault(where, _problem(where, _MESSAGES[top], "invalid"))
    if "at" in disclosure and f"{FIELD}.at" not in found and isinstance(disclosure["at"], str):
        try:
            at = datetime.fromisoformat(disclosure["at"].replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            found[f"{FIELD}.at"] = _problem(f"{FIELD}.at", _MESSAGES["at"], "invalid")
        else:
            if at.tzinfo is None:
                found[f"{FIELD}.at"] = _problem(f"{FIELD}.at", _MESSAGES["at"], "invalid")
            elif at.year < EARLIEST_YEAR:
                found[f"{FIELD}.at"] = _problem(
                    f"{FIELD}.at", f"When it was shared must not be before {EARLIEST_YEAR}.", "too_early"
                )
            elif now is not None and at > now + FUTURE_SKEW:
                found[f"{FIELD}.at"] = _problem(
                    f"{FIELD}.at", "When it was shared must not be in the future.", "in_the_future"
                )
    return sorted(found.values(), key=lambda p: p.field)


def normalised_time(text: str) -> datetime:
    """The disclosure's time (already checked by `problems`) as an aware datetime."""
    return datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))


def parse_with(text: str) -> dict[str, str]:
    """The CLI's `--with "NAME, ROLE, ORGANISATION"` (or `--with RECIPIENT_ID`) as one `with` item."""
    parts = [p.strip() for p in text.split(",")]
    if len(parts) == 1 and re.fullmatch(RECIPIENT_ID_PATTERN, parts[0]):
        return {"recipient": parts[0]}
    if len(parts) != 3 or not all(parts):
        raise ValueError('give --with as "NAME, ROLE, ORGANISATION" (three parts) or as a directory recipient ID')
    return {"name": parts[0], "role": parts[1], "organisation": parts[2]}


def person(item: Mapping[str, Any]) -> str:
    """One `with` item in words: "A Smith (duty social worker, Northshire MASH)"."""
    name = item.get("name") or item.get("recipient") or "?"
    extra = [str(x) for x in (item.get("role"), item.get("organisation") or item.get("org")) if x]
    return f"{name} ({', '.join(extra)})" if extra else str(name)


def describe(disclosure: Mapping[str, Any]) -> str:
    """ "by phone to A Smith (duty social worker, Northshire MASH) at 2026-12-03T09:30:00Z" """
    people: Sequence[Mapping[str, Any]] = [w for w in disclosure.get("with") or [] if isinstance(w, Mapping)]
    words = CHANNEL_WORDS.get(str(disclosure.get("channel")), "another way")
    return f"{words} to {', '.join(person(w) for w in people)} at {disclosure.get('at')}"
