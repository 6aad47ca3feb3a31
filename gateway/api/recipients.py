"""The recipient directory: practitioners look addresses up; administrators register and disable keys."""

from __future__ import annotations

from aiohttp import web

from ..errors import ApiError
from ..ledger.entry import actor
from ..store.models import Recipient
from .common import gateway, json_response, principal, query_int, query_str, read_json

routes = web.RouteTableDef()

RECIPIENT_FIELDS = ("id", "name", "org", "email", "age_recipient")


@routes.get("/api/v1/recipients")
async def list_recipients(request: web.Request) -> web.Response:
    p = principal(request, "practitioner", "admin")
    q = query_str(request, "q", 200)
    limit = query_int(request, "limit", 100, 1, 500)
    assert limit is not None  # noqa: S101 - has a default
    include_disabled = p.has("admin") and request.query.get("include_disabled") in ("1", "true")
    found = await gateway(request).store.list_recipients(q, include_disabled, limit)
    return json_response({"recipients": [r.public() for r in found]})


@routes.post("/api/v1/recipients")
async def add_recipient(request: web.Request) -> web.Response:
    p = principal(request, "admin")
    body = await read_json(request)
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_body", "The body must be a JSON object.", field="body")
    unknown = sorted(set(body) - set(RECIPIENT_FIELDS))
    if unknown:
        raise ApiError(422, "invalid_recipient", "Unknown field.", field=unknown[0][:64])
    for name in RECIPIENT_FIELDS:
        if not isinstance(body.get(name), str):
            raise ApiError(422, "invalid_recipient", f"{name} is required (text).", field=name)
    rec = Recipient(**{k: body[k] for k in RECIPIENT_FIELDS})
    gw = gateway(request)
    index = await gw.add_recipient(actor(p.sub, "admin", p.org, p.issuer), rec)
    stored = (await gw.store.get_recipients([rec.id]))[rec.id]
    return json_response({"recipient": stored.public(), "ledger_index": index}, status=201)


@routes.post("/api/v1/recipients/{recipient_id}/disable")
async def disable_recipient(request: web.Request) -> web.Response:
    p = principal(request, "admin")
    rid = request.match_info["recipient_id"]
    index = await gateway(request).disable_recipient(actor(p.sub, "admin", p.org, p.issuer), rid)
    return json_response({"id": rid, "status": "disabled", "ledger_index": index})
