"""The auditor's and administrator's console, `/console/`: the ledger and the directory without curl.

Static files shipped in the package (`gateway/web/console/`), served from memory with the same strict policy as
the recipient's page (`/open/`): scripts and styles only from this origin, each with Subresource Integrity
(imported modules through the page's import map, its one inline script, allowed by its hash alone), API calls
only to this origin and the configured sign-in services' token endpoints (the OAuth authorization-code
exchange), no frames at all, never framed. Everything the console shows comes from the existing API routes,
called with the signed-in person's token, so the gateway's role and organisation checks apply unchanged.
"""

from __future__ import annotations

import functools
from urllib.parse import urlsplit

from aiohttp import web

from ..config import Settings
from ..errors import not_found
from ..web import StaticFile, inline_script_hashes, load_site
from .common import gateway

routes = web.RouteTableDef()


def content_security_policy(settings: Settings) -> str:
    """The console's policy: like `/open/`'s, but with no frames (nothing is decrypted or shown in a frame);
    `blob:` links are only the CSV downloads the page builds."""
    connect = ["'self'"]
    for o in settings.oidc:
        if o.token_endpoint:
            parts = urlsplit(o.token_endpoint)
            origin = f"{parts.scheme}://{parts.netloc}"
            if parts.scheme in ("https", "http") and parts.netloc and origin not in connect:
                connect.append(origin)
    return "; ".join(
        [
            "default-src 'none'",
            " ".join(["script-src 'self'", *_import_map_hashes()]),
            "style-src 'self'",
            "img-src 'self' data:",
            f"connect-src {' '.join(connect)}",
            "frame-src 'none'",
            "frame-ancestors 'none'",
            "base-uri 'none'",
            # Every form is sent by the page's own script (fetch); one the browser sent itself, before the script
            # had wired it, would put what was typed (an e-mail address, a token) in the page's URL.
            "form-action 'none'",
        ]
    )


@functools.cache
def _site() -> dict[str, StaticFile]:
    """The console's files, read from the package once."""
    return load_site("console")


@functools.cache
def _import_map_hashes() -> tuple[str, ...]:
    """The hash sources of the pages' import maps (their only inline scripts)."""
    site = _site()
    return tuple(
        h for path in sorted(site) if path.endswith(".html") for h in inline_script_hashes(site[path].body.decode())
    )


def _serve(request: web.Request, path: str) -> web.Response:
    f = _site().get(path)
    if f is None:
        raise not_found("page")
    return web.Response(
        body=f.body,
        headers={
            "Content-Type": f.content_type,
            "Content-Security-Policy": content_security_policy(gateway(request).settings),
            "X-Frame-Options": "DENY",
            "Cross-Origin-Opener-Policy": "same-origin",
            "Cross-Origin-Resource-Policy": "same-origin",
            "Referrer-Policy": "no-referrer",
            "Cache-Control": "no-cache",
            "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=(), usb=()",
        },
    )


@routes.get("/console")
async def console_redirect(request: web.Request) -> web.Response:
    raise web.HTTPPermanentRedirect("/console/")


@routes.get("/console/")
async def console_index(request: web.Request) -> web.Response:
    return _serve(request, "index.html")


@routes.get("/console/{file:.+}")
async def console_file(request: web.Request) -> web.Response:
    return _serve(request, request.match_info["file"])
