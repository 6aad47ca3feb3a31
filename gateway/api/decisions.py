"""Justifications: live validation for the extension, and recording a decision with no payload."""

from __future__ import annotations

from aiohttp import web

from .common import gateway, json_response, principal, read_json

routes = web.RouteTableDef()


@routes.post("/api/v1/justifications/validate")
async def validate(request: web.Request) -> web.Response:
    """Problems for a draft, recording nothing: the extension calls this as the practitioner types."""
    principal(request, "practitioner", "admin", "partnership_admin")
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
    body = await read_json(request, "justification")
    if isinstance(body, dict) and set(body) == {"justification"}:
        body = body["justification"]
    result = await gateway(request).record_decision(p, body)
    # Same shape as a share's response, without share_id: nothing was sent to anyone.
    return json_response({**result, "recipients": [], "expires_at": None}, status=201)
