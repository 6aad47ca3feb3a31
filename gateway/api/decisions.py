"""Justifications: live validation for the extension, and recording a decision with no payload."""

from __future__ import annotations

from aiohttp import web

from .. import idempotency
from ..auth import Principal
from ..idempotency import INFLIGHT, Idempotency, IdempotencyHit
from .common import gateway, json_response, principal, read_json, read_json_raw

routes = web.RouteTableDef()


@routes.post("/api/v1/justifications/validate")
async def validate(request: web.Request) -> web.Response:
    """Problems for a draft, recording nothing: the extension calls this as the practitioner types."""
    principal(request, "practitioner", "admin")
    draft = await read_json(request, "justification")
    policy, problems = gateway(request).check_justification(draft)
    return json_response(
        {
            "valid": not problems,
            "problems": [p.as_dict() for p in problems],
            "policy": None if policy is None else {"id": policy.id, "version": policy.version, "digest": policy.digest},
        }
    )


@routes.post("/api/v1/decisions")
async def record_decision(request: web.Request) -> web.Response:
    """Golden rule 7: a decision (typically not to share) is recorded with its reasons, with no payload.

    The body is the justification itself, or `{"justification": {...}}`.
    """
    p = principal(request, "practitioner")
    gw = gateway(request)
    key = idempotency.header_key(request)
    if key is None:
        return await _record_decision(request, p, None)
    idem = Idempotency(
        idempotency.scope(p), key, request.method, request.path, gw.settings.limits.idempotency_key_ttl_seconds
    )
    with request.app[INFLIGHT].hold(idem.principal, key):
        idem.stored = await gw.store.idempotent_answer(idem.principal, key, gw.now_str())
        return await _record_decision(request, p, idem)


async def _record_decision(request: web.Request, p: Principal, idem: Idempotency | None) -> web.Response:
    body, raw = await read_json_raw(request, "justification")
    if isinstance(body, dict) and set(body) == {"justification"}:
        body = body["justification"]
    replayed = False
    if idem is not None:
        idem.update(b"body", raw)
        if idem.stored is not None:
            result, replayed = idem.answer(idem.stored), True
    if not replayed:
        try:
            result = await gateway(request).record_decision(p, body, idem)
        except IdempotencyHit as hit:  # taken meanwhile (another node): the same rules
            assert idem is not None  # noqa: S101 - only raised for a keyed request
            result, replayed = idem.answer(hit.stored), True
    # Same shape as a share's response, without share_id: nothing was sent to anyone.
    resp = json_response({**result, "recipients": [], "expires_at": None}, status=201)
    if replayed:
        resp.headers["Idempotent-Replayed"] = "true"
    return resp
