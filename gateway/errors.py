"""One error shape for the whole API, so clients can branch on a stable code instead of parsing prose."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from . import refusals

#: The one place a use case's refusal kind becomes an HTTP status (`refusals` says why each kind exists).
REFUSAL_STATUS: dict[type[refusals.Refusal], int] = {
    refusals.Malformed: 400,
    refusals.Forbidden: 403,
    refusals.NotFound: 404,
    refusals.Conflict: 409,
    refusals.Gone: 410,
    refusals.TooLarge: 413,
    refusals.Invalid: 422,
    refusals.Locked: 423,
    refusals.RateLimited: 429,
}


class ApiError(Exception):
    """An expected refusal: becomes `{"error": code, "message": ..., **details}` with `status`.

    Messages are written for the practitioner or operator reading them and must never quote submitted
    free text, payload bytes or tokens back: error bodies end up in logs and screenshots.
    """

    def __init__(self, status: int, code: str, message: str, **details: Any) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details

    def response(self) -> web.Response:
        return error_response(self.status, self.code, self.message, **self.details)


def refusal_status(exc: refusals.Refusal) -> int:
    """The status of the nearest kind in the refusal's class hierarchy (a bare `Refusal` is a 422)."""
    for kind in type(exc).__mro__:
        if kind in REFUSAL_STATUS:
            return REFUSAL_STATUS[kind]
    return 422


def refusal_response(exc: refusals.Refusal) -> web.Response:
    """A use case's refusal as the API's error response; a rate limit also says when to retry in a header."""
    resp = web.Response(status=refusal_status(exc), text=json.dumps(exc.body()), content_type="application/json")
    if isinstance(exc, refusals.RateLimited):
        resp.headers["Retry-After"] = str(exc.retry_after)
    return resp


def error_response(status: int, code: str, message: str, **details: Any) -> web.Response:
    body = {"error": code, "message": message, **details}
    return web.Response(status=status, text=json.dumps(body), content_type="application/json")


def field_error(code: str, field: str, message: str, status: int = 422, **details: Any) -> ApiError:
    """A refusal about one named input field."""
    return ApiError(status, code, message, field=field, **details)


def not_found(what: str = "share") -> ApiError:
    return ApiError(404, "not_found", f"No such {what}, or it is not yours to see.")
