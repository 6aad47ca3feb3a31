"""The golden-rules policies as data: the extension renders its form from these documents."""

from __future__ import annotations

from aiohttp import web

from ..errors import not_found
from ..justification import Policy, UnknownPolicy
from .common import gateway, principal

routes = web.RouteTableDef()


def _policy_response(policy: Policy) -> web.Response:
    return web.json_response(
        dict(policy.schema),
        headers={"ETag": f'"{policy.digest}"', "X-SafeShare-Policy-Digest": policy.digest},
    )


@routes.get("/api/v1/policy")
async def default_policy(request: web.Request) -> web.Response:
    """The policy the caller's organisation works to (`[policies] org_default`), else the gateway's default."""
    caller = principal(request)
    return _policy_response(gateway(request).policies.default_for(caller.org))


@routes.get("/api/v1/policies")
async def list_policies(request: web.Request) -> web.Response:
    caller = principal(request)
    reg = gateway(request).policies
    items = [reg.get(i) for i in reg.ids()]
    return web.json_response(
        {
            "default": reg.default.id,
            "yours": reg.default_for(caller.org).id,
            "policies": [{"id": p.id, "version": p.version, "title": p.title, "digest": p.digest} for p in items],
        }
    )


@routes.get("/api/v1/policies/{policy_id}")
async def get_policy(request: web.Request) -> web.Response:
    principal(request)
    try:
        policy = gateway(request).policies.get(request.match_info["policy_id"])
    except UnknownPolicy:
        raise not_found("policy") from None
    return _policy_response(policy)


@routes.get("/api/v1/auth/config")
async def auth_config(request: web.Request) -> web.Response:
    """Public: how clients sign in — the embedded issuer, and each external issuer's public OAuth details."""
    settings = gateway(request).settings
    return web.json_response(
        {
            "audience": settings.audience,
            "embedded_issuer": {"issuer": settings.issuer} if settings.embedded_issuer else None,
            "oidc": [
                {
                    "issuer": o.issuer,
                    "audience": o.audience,
                    "authorization_endpoint": o.authorization_endpoint,
                    "token_endpoint": o.token_endpoint,
                    "client_id": o.client_id,
                    "scopes": list(o.scopes),
                }
                for o in settings.oidc
            ],
        }
    )
