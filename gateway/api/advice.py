"""Advice before deciding (issue 14): a practitioner asks an adviser role anonymously; the adviser answers."""

from __future__ import annotations

from aiohttp import web

from ..auth import ADVISER_ROLES
from .common import gateway, json_response, principal, read_json

routes = web.RouteTableDef()


@routes.post("/api/v1/advice")
async def ask_advice(request: web.Request) -> web.Response:
    """Ask the adviser role `to` in one's own organisation: only the draft's purpose and data categories travel."""
    p = principal(request, "practitioner")
    body = await read_json(request)
    return json_response(await gateway(request).advice.ask_advice(p, body), status=201)


@routes.get("/api/v1/advice")
async def list_advice(request: web.Request) -> web.Response:
    """An adviser sees the questions put to their roles in their organisation; a practitioner their own questions."""
    p = principal(request, "practitioner", *ADVISER_ROLES)
    return json_response({"questions": await gateway(request).advice.list_advice(p)})


@routes.post("/api/v1/advice/{advice_id}/answer")
async def answer_advice(request: web.Request) -> web.Response:
    """The adviser answers, once; recorded in the ledger, then citable in the asker's justification."""
    p = principal(request, *ADVISER_ROLES)
    body = await read_json(request)
    return json_response(
        await gateway(request).advice.answer_advice(p, request.match_info["advice_id"], body), status=201
    )
