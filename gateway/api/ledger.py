"""The auditor's view of the ledger: every recorded decision and event, newest first, filterable."""

from __future__ import annotations

import base64
import json

from aiohttp import web

from ..errors import ApiError
from ..ledger.entry import KINDS, format_time, parse_time
from ..store.models import LedgerFilter
from .common import gateway, json_response, principal, query_int, query_str

routes = web.RouteTableDef()

DECISIONS = ("share", "not_share")


def _time_param(request: web.Request, name: str) -> str | None:
    raw = query_str(request, name, 64)
    if raw is None:
        return None
    try:
        return format_time(parse_time(raw))
    except ValueError:
        raise ApiError(
            400,
            "invalid_parameter",
            f"{name} must be an RFC 3339 time with a zone, e.g. 2026-11-25T09:00:00Z.",
            field=name,
        ) from None


def _choice(request: web.Request, name: str, allowed: tuple[str, ...]) -> str | None:
    value = query_str(request, name, 64)
    if value is not None and value not in allowed:
        raise ApiError(
            400,
            "invalid_parameter",
            f"{name} must be one of: {', '.join(allowed)}.",
            field=name,
            allowed=list(allowed),
        )
    return value


@routes.get("/api/v1/ledger")
async def query_ledger(request: web.Request) -> web.Response:
    principal(request, "auditor")
    gw = gateway(request)
    limit = query_int(request, "limit", 50, 1, gw.settings.limits.page_size_max)
    assert limit is not None  # noqa: S101 - has a default
    f = LedgerFilter(
        subject=query_str(request, "subject", 64),
        practitioner=query_str(request, "practitioner", 256),
        recipient=query_str(request, "recipient", 64),
        kind=_choice(request, "kind", KINDS),
        decision=_choice(request, "decision", DECISIONS),
        time_from=_time_param(request, "from"),
        time_to=_time_param(request, "to"),
        before=query_int(request, "cursor", None, 0, 2**62),
        limit=limit,
    )
    rows = await gw.ledger(f)
    return json_response(
        {
            "entries": [
                {
                    "index": r.index,
                    "time": r.time,
                    "kind": r.kind,
                    "entry": json.loads(r.entry),
                    "leaf_hash": base64.b64encode(r.leaf_hash).decode(),
                }
                for r in rows
            ],
            "next_cursor": str(rows[-1].index) if len(rows) == limit else None,
        }
    )
