"""One error shape for the whole API, so clients can branch on a stable code instead of parsing prose."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web


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


def error_response(status: int, code: str, message: str, **details: Any) -> web.Response:
    body = {"error": code, "message": message, **details}
    return web.Response(status=status, text=json.dumps(body), content_type="application/json")


def field_error(code: str, field: str, message: str, status: int = 422, **details: Any) -> ApiError:
    """A refusal about one named input field."""
    return ApiError(status, code, message, field=field, **details)


def not_found(what: str = "share") -> ApiError:
    return ApiError(404, "not_found", f"No such {what}, or it is not yours to see.")
