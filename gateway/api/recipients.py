"""The recipient directory: practitioners look addresses up; administrators register and disable keys."""

from __future__ import annotations

from aiohttp import web

from .. import tenancy
from ..directory import enrolment_request
from ..errors import ApiError
from ..ledger.entry import actor
from ..store.models import RECIPIENT_ACTIVE, Recipient
from .common import gateway, json_response, principal, query_int, query_str, read_json

routes = web.RouteTableDef()

RECIPIENT_FIELDS = ("id", "name", "org", "email", "age_recipient")
ENROLMENT_STATES = ("pending", "approved", "rejected", "superseded")


@routes.get("/api/v1/recipients")
async def list_recipients(request: web.Request) -> web.Response:
    p = principal(request, "practitioner", *tenancy.ADMIN_ROLES)
    q = query_str(request, "q", 200)
    limit = query_int(request, "limit", 100, 1, 500)
    flag = request.query.get("include_disabled")
    if flag not in (None, "1", "true"):
        raise ApiError(400, "invalid_parameter", "include_disabled may only be 1 or true.", field="include_disabled")
    admin = p.has(tenancy.ADMIN) or p.has(tenancy.PARTNERSHIP_ADMIN)
    include_disabled = admin and flag is not None
    found = await gateway(request).store.list_recipients(q, include_disabled, limit)
    if include_disabled:
        # The active directory is the partnership's; disabled entries only to those who administer them.
        scope = tenancy.admin_scope(p)
        found = [r for r in found if r.status == RECIPIENT_ACTIVE or tenancy.within(scope, r.org)]
    return json_response({"recipients": [r.public() for r in found]})


@routes.post("/api/v1/recipients")
async def add_recipient(request: web.Request) -> web.Response:
    p = principal(request, *tenancy.ADMIN_ROLES)
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
    index = await gw.directory.add_recipient(actor(p.sub, "admin", p.org, p.issuer), rec, by=p)
    stored = (await gw.store.get_recipients([rec.id]))[rec.id]
    return json_response({"recipient": stored.public(), "ledger_index": index}, status=201)


@routes.post("/api/v1/recipients/{recipient_id}/disable")
async def disable_recipient(request: web.Request) -> web.Response:
    p = principal(request, *tenancy.ADMIN_ROLES)
    rid = request.match_info["recipient_id"]
    index = await gateway(request).directory.disable_recipient(actor(p.sub, "admin", p.org, p.issuer), rid, by=p)
    return json_response({"id": rid, "status": "disabled", "ledger_index": index})


@routes.post("/api/v1/recipients/enrol")
async def enrol(request: web.Request) -> web.Response:
    """A recipient enrols the public key generated in their browser; pending until an administrator approves.

    Identity, organisation and e-mail come from the token, never from the body.
    """
    p = principal(request, "recipient")
    body = await read_json(request)
    if not isinstance(body, dict) or set(body) - {"age_recipient"}:
        raise ApiError(400, "invalid_body", 'The body must be {"age_recipient": "age1…"}.', field="body")
    result = await gateway(request).enrol(p, enrolment_request(body.get("age_recipient")))
    return json_response(result, status=202)


@routes.get("/api/v1/recipients/me")
async def me(request: web.Request) -> web.Response:
    """The caller's directory entry, key history and enrolments: what the extension shows at set-up."""
    p = principal(request, "recipient")
    gw = gateway(request)
    found = await gw.store.get_recipients([p.sub])
    keys = await gw.store.recipient_keys(p.sub)
    return json_response(
        {
            "id": p.sub,
            "recipient": found[p.sub].public() if p.sub in found else None,
            "keys": [
                {"age_recipient": k, "status": st, "since": since, "until": until} for k, st, since, until in keys
            ],
            "enrolments": [e.public() for e in await gw.store.enrolments(recipient_id=p.sub)],
            "post_quantum_required": gw.settings.requires_post_quantum(p.org),
        }
    )


@routes.get("/api/v1/enrolments")
async def list_enrolments(request: web.Request) -> web.Response:
    scope = tenancy.admin_scope(principal(request, *tenancy.ADMIN_ROLES))
    status = query_str(request, "status", 16)
    if status is not None and status not in ENROLMENT_STATES:
        raise ApiError(
            400, "invalid_parameter", f"status must be one of: {', '.join(ENROLMENT_STATES)}.", field="status"
        )
    found = await gateway(request).store.enrolments(status=status)
    return json_response({"enrolments": [e.public() for e in found if tenancy.within(scope, e.org)]})


async def _decide(request: web.Request, approve: bool) -> web.Response:
    p = principal(request, *tenancy.ADMIN_ROLES)
    reason = None
    if request.can_read_body:
        body = await read_json(request)
        if not isinstance(body, dict) or set(body) - {"reason"}:
            raise ApiError(400, "invalid_body", 'The body may only carry {"reason": text}.', field="body")
        reason = body.get("reason")  # checked by the use case (inputs.optional_reason)
    result = await gateway(request).decide_enrolment(
        actor(p.sub, "admin", p.org, p.issuer), request.match_info["recipient_id"], approve, reason, by=p
    )
    return json_response(result)


@routes.post("/api/v1/recipients/{recipient_id}/approve")
async def approve_enrolment(request: web.Request) -> web.Response:
    return await _decide(request, True)


@routes.post("/api/v1/recipients/{recipient_id}/reject")
async def reject_enrolment(request: web.Request) -> web.Response:
    return await _decide(request, False)
