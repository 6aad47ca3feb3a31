"""Public routes for recipients without a key (issue 10): claim a held share by e-mail code; open a passphrase share.

No bearer token: the share ID (120 random bits) plus the e-mail code, or the passphrase (which never reaches
the gateway), are what protect them. Every route is rate-limited per client address; `claims/start` answers
the same whether or not the share or address exists.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from .. import claims
from ..errors import ApiError
from ..service import SHARE_ID_RE
from .common import ISSUER, gateway, json_response, read_json
from .shares import _stream_envelope

routes = web.RouteTableDef()

#: Exact paths and the prefix that the auth middleware lets through without a token.
PUBLIC_PATHS = frozenset({"/api/v1/claims/start", "/api/v1/claims/verify"})
PUBLIC_PREFIX = "/api/v1/open/"


def _base(request: web.Request) -> str:
    base = gateway(request).settings.public_url or f"{request.scheme}://{request.host}"
    return base.rstrip("/")


async def _claim_body(request: web.Request, fields: set[str]) -> tuple[str, str, dict[str, Any]]:
    gateway(request).holding.check_ip_rate(request.remote)
    body = await read_json(request)
    if not isinstance(body, dict) or set(body) != fields:
        names = ", ".join(f'"{f}"' for f in sorted(fields))
        raise ApiError(400, "invalid_body", f"The body must be a JSON object with exactly {names}.", field="body")
    share_id = body["share_id"]
    if not isinstance(share_id, str) or not SHARE_ID_RE.match(share_id):
        raise ApiError(400, "invalid_body", "share_id must be a share reference (sh_…).", field="share_id")
    address = claims.normalise_address(body["email"])
    if address is None:
        raise ApiError(400, "invalid_body", "email must be an e-mail address.", field="email")
    return share_id, address, body


@routes.post("/api/v1/claims/start")
async def start_claim(request: web.Request) -> web.Response:
    share_id, address, _ = await _claim_body(request, {"share_id", "email"})
    link = f"{_base(request)}/open/#/s/{share_id}"
    await gateway(request).holding.start_claim(share_id, address, link)
    return json_response({"status": "sent_if_held", "expires_in": claims.CODE_TTL_SECONDS}, status=202)


@routes.post("/api/v1/claims/verify")
async def verify_claim(request: web.Request) -> web.Response:
    share_id, address, body = await _claim_body(request, {"share_id", "email", "code"})
    code = body["code"].strip() if isinstance(body["code"], str) else None
    if not claims.well_formed_code(code):
        raise ApiError(400, "code_invalid", f"The code is {claims.CODE_DIGITS} digits.", field="code")
    assert code is not None
    result = await gateway(request).holding.verify_claim(share_id, address, code, request.app[ISSUER])
    return json_response(result)


def _share_id(request: web.Request) -> str:
    share_id = request.match_info["share_id"]
    if not SHARE_ID_RE.match(share_id):
        raise ApiError(404, "not_found", "No such passphrase share.")
    return share_id


@routes.get("/api/v1/open/{share_id}/header")
async def passphrase_header(request: web.Request) -> web.Response:
    """The age header only (through the MAC line), to check a passphrase locally; not counted, not recorded."""
    gw = gateway(request)
    gw.holding.check_ip_rate(request.remote)
    await gw.dual_control.check_released(_share_id(request))  # dual control (issue 14): not while it waits for approval
    header = await gw.holding.passphrase_header(_share_id(request))
    return web.Response(body=header, content_type="application/octet-stream", headers={"Cache-Control": "no-store"})


@routes.get("/api/v1/open/{share_id}/envelope", allow_head=False)
async def passphrase_envelope(request: web.Request) -> web.StreamResponse:
    """The whole passphrase envelope: counted as a download (max_downloads honoured) and recorded (`fetch`)."""
    gw = gateway(request)
    gw.holding.check_ip_rate(request.remote)
    share_id = _share_id(request)
    await gw.dual_control.check_released(share_id)  # dual control (issue 14): not while it waits for approval
    opened, row, index, exhausted = await gw.holding.open_passphrase(share_id)
    headers = {
        "Content-Disposition": f'attachment; filename="{share_id}.age"',
        "Content-Length": str(row.envelope_size),
        "X-SafeShare-Ledger-Index": str(index),
        "X-SafeShare-Envelope-SHA256": row.envelope_sha256,
    }

    async def destroy() -> None:
        await gw.destroy_envelope(share_id, row.envelope)

    return await _stream_envelope(request, opened, headers, destroy if exhausted else None)
