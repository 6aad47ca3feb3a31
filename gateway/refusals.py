"""What a use case says when it will not do what was asked: a stable code, a message, the field at fault.

The use cases (`service`, `directory`, `holding`, `partnership`, `tenancy`) speak the domain, not HTTP: they
raise a `Refusal` of the kind that describes the situation (not found, forbidden, conflict, …). Each front end
translates the kind once — `errors.refusal_response` maps kinds to HTTP statuses for the API, `cli.main` prints
any refusal one way — so a use case can be called from either without knowing which. The hierarchy follows
sigstore-python's `Error`: the class says what kind of trouble it is, the instance carries the details.

Messages are written for the practitioner or operator reading them and must never quote submitted free text,
payload bytes or tokens back: refusals end up in logs, terminals and screenshots.
"""

from __future__ import annotations

from typing import Any


class Refusal(Exception):
    """An expected refusal; on the wire `{"error": code, "message": ..., "field"?: ..., **details}`."""

    def __init__(self, code: str, message: str, field: str | None = None, **details: Any) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field
        self.details = details

    def body(self) -> dict[str, Any]:
        """The JSON body every front end shows: `field` (when there is one) before the other details."""
        out: dict[str, Any] = {"error": self.code, "message": self.message}
        if self.field is not None:
            out["field"] = self.field
        out.update(self.details)
        return out


class Malformed(Refusal):
    """The input is not of the shape the use case takes (not an object, not a number), or a one-time code
    that is not right: HTTP 400."""


class Invalid(Refusal):
    """The input is well formed but its content is refused (a missing answer, an out-of-range value): 422."""


class Forbidden(Refusal):
    """The caller is known but may not do this (another organisation's record, no organisation): 403."""


class NotFound(Refusal):
    """No such thing, or not the caller's to see — the two are not told apart: 404."""


class Conflict(Refusal):
    """The thing is not in a state that allows this (already revoked, already retired): 409."""


class Gone(Refusal):
    """The thing existed but can no longer be used (expired, revoked, used up): 410."""


class TooLarge(Refusal):
    """The input is larger than this gateway accepts; `limit` says how large it may be: 413."""


class Locked(Refusal):
    """Too many failed attempts have locked the thing: 423."""


class RateLimited(Refusal):
    """Too many requests from this caller; `retry_after` seconds says when to try again: 429."""

    def __init__(self, retry_after: float) -> None:
        seconds = max(1, int(retry_after + 0.999))
        super().__init__("rate_limited", f"Too many requests; try again in {seconds} seconds.", retry_after=seconds)
        self.retry_after = seconds


def not_found(what: str = "share") -> NotFound:
    """The one message for everything hidden from the caller, so a refusal does not reveal that it exists."""
    return NotFound("not_found", f"No such {what}, or it is not yours to see.")
