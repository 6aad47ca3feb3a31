"""Team inboxes (e.g. a MASH duty team): administrators create them and manage membership, all recorded.

A share to a team is encrypted separately to each active member's own key, so each member's fetch is
recorded and crypto-shredded on its own, and a member who leaves is simply not encrypted to from then on.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from .. import tenancy
from ..errors import ApiError, not_found
from ..ledger.entry import actor
from .common import gateway, json_response, principal, read_json

routes = web.RouteTableDef()


def _body(raw: Any, fields: tuple[str, ...]) -> dict[str, str]:
    if not isinstance(raw, dict) or set(raw) - set(fields):
        raise ApiError(400, "invalid_body", f"The body must be a JSON object with: {', '.join(fields)}.", field="body")
    for name in fields:
        if not isinstance(raw.get(name), str):
            raise ApiError(422, "invalid_recipient", f"{name} is required (text).", field=name)
    return raw


@routes.post("/api/v1/teams")
async def add_team(request: web.Request) -> web.Response:
    p = principal(request, *tenancy.ADMIN_ROLES)
    body = _body(await read_json(request), ("id", "name", "org", "email"))
    gw = gateway(request)
    index = await gw.directory.add_team(
        actor(p.sub, "admin", p.org, p.issuer), body["id"], body["name"], body["org"], body["email"], by=p
    )
    team = (await gw.store.get_recipients([body["id"]]))[body["id"]]
    return json_response({"team": team.public(), "ledger_index": index}, status=201)


@routes.get("/api/v1/teams/{team_id}/members")
async def list_members(request: web.Request) -> web.Response:
    scope = tenancy.admin_scope(principal(request, *tenancy.ADMIN_ROLES))
    team_id = request.match_info["team_id"]
    gw = gateway(request)
    found = await gw.store.get_recipients([team_id])
    if team_id not in found or found[team_id].kind != "team" or not tenancy.within(scope, found[team_id].org):
        raise not_found("team")
    members = (await gw.store.team_members([team_id]))[team_id]
    return json_response({"team": team_id, "members": [m.public() for m in members]})


@routes.post("/api/v1/teams/{team_id}/members")
async def add_member(request: web.Request) -> web.Response:
    p = principal(request, *tenancy.ADMIN_ROLES)
    body = _body(await read_json(request), ("member",))
    index = await gateway(request).directory.set_membership(
        actor(p.sub, "admin", p.org, p.issuer), request.match_info["team_id"], body["member"], add=True, by=p
    )
    return json_response(
        {"team": request.match_info["team_id"], "member": body["member"], "ledger_index": index}, status=201
    )


@routes.post("/api/v1/teams/{team_id}/members/{member_id}/remove")
async def remove_member(request: web.Request) -> web.Response:
    p = principal(request, *tenancy.ADMIN_ROLES)
    team_id, member_id = request.match_info["team_id"], request.match_info["member_id"]
    index = await gateway(request).directory.set_membership(
        actor(p.sub, "admin", p.org, p.issuer), team_id, member_id, add=False, by=p
    )
    return json_response({"team": team_id, "member": member_id, "ledger_index": index})
