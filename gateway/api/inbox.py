"""A recipient's inbox: only shares addressed to the caller, never anyone else's."""

from __future__ import annotations

from aiohttp import web

from .common import gateway, json_response, paging, principal
from .shares import page, share_view

routes = web.RouteTableDef()


@routes.get("/api/v1/inbox")
async def inbox(request: web.Request) -> web.Response:
    p = principal(request, "recipient")
    gw = gateway(request)
    limit, before = paging(request, gw.settings.limits.page_size_max)
    shares = await gw.inbox(p, before, limit)
    return json_response(
        {"shares": [share_view(s, for_recipient=p.sub) for s in shares], "next_cursor": page(shares, limit)}
    )
