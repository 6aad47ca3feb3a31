"""The aiohttp application: `create_app(settings)` wires auth, errors, the store and the routes together.

Deny by default: every `/api/` route needs a verified bearer token except the few listed in PUBLIC_PATHS;
handlers then demand a role. Every refusal leaves as structured JSON; an unexpected exception becomes a
500 with no detail, logged by type only so that nothing submitted can leak into logs.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from importlib import resources
from typing import Any

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.http_exceptions import HttpProcessingError

from .api import (
    advice,
    agreements,
    claims,
    console_page,
    decisions,
    inbox,
    ledger,
    notice,
    open_page,
    policies,
    recipients,
    shares,
    teams,
    transparency,
)
from .api.common import GATEWAY, ISSUER, PRINCIPAL, SIGNER, WITNESSES
from .api.ledger import DECIDERS
from .api.tlog import ENTRIES_PREFIX as TLOG_ENTRIES_PREFIX
from .api.tlog import routes as tlog_routes
from .audit import DeciderIndex
from .auth import AuthError, EmbeddedIssuer, TokenVerifier, bearer_token
from .config import Settings
from .errors import ApiError, error_response, refusal_response
from .home import HomeKeys, init_home, open_ledger_store
from .idempotency import INFLIGHT, InFlight
from .justification import PolicyRegistry
from .ledger.checkpoint import NoteVerifier
from .ledger.guard import REASON as LEDGER_INCONSISTENT
from .ledger.signer import LedgerSigner
from .mail import mailer_from_settings
from .refusals import Refusal
from .service import Gateway
from .storage_health import StorageHealth, is_storage_full
from .store.models import StoreUnavailable
from .witness_http import WitnessSubmitter, parse_witness_setting

STORE_UNAVAILABLE = "store_unavailable"

log = logging.getLogger("safeshare.app")

VERIFIER = web.AppKey("verifier", TokenVerifier)
SETTINGS = web.AppKey("settings", Settings)
OPENAPI = web.AppKey("openapi", bytes)
STORAGE = web.AppKey("storage", StorageHealth)

#: Routes under /api/ that need no token: the API description, what anyone needs to check the ledger's signed
#: checkpoints (they reveal only the tree size and root hash), and witness co-signatures (authenticated by the
#: witness's own signature against the configured witness keys), and how to sign in.
PUBLIC_PATHS = frozenset(
    {
        "/api/v1/openapi.json",
        "/api/v1/auth/config",
        "/api/v1/ledger/checkpoint",
        "/api/v1/ledger/vkey",
        "/api/v1/ledger/cosignatures",
    }
)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

HTTP_ERROR_CODES = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
}


class AccessLogger(AbstractAccessLogger):
    """Method, path (no query string: it may carry subject references), status, size, time. Never headers."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        self.logger.info(
            '%s "%s %s" %s %s %.4fs',
            request.remote,
            request.method,
            request.path,
            response.status,
            response.body_length,
            time,
        )

    @property
    def enabled(self) -> bool:
        return self.logger.isEnabledFor(logging.INFO)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as exc:
        return exc.response()
    except Refusal as exc:
        return refusal_response(exc)
    except AuthError as exc:
        resp = error_response(401, exc.code, exc.message)
        resp.headers["WWW-Authenticate"] = exc.www_authenticate()
        return resp
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = HTTP_ERROR_CODES.get(exc.status, "http_error")
        details: dict[str, Any] = {}
        if exc.status == 413:
            details["limit"] = request.app[SETTINGS].limits.max_json_bytes
        resp = error_response(exc.status, code, exc.reason, **details)
        if "Allow" in exc.headers:  # every 405 says what is allowed
            resp.headers["Allow"] = exc.headers["Allow"]
        return resp
    except (asyncio.CancelledError, ConnectionResetError):
        raise
    except HttpProcessingError as exc:  # malformed input found while parsing (multipart part headers, ...)
        log.info("malformed request (%s) on %s %s", type(exc).__name__, request.method, request.path)
        return error_response(400, "malformed_request", "The request could not be parsed.")
    except UnicodeError as exc:  # undecodable or unencodable text (lone surrogates, non-UTF-8) in the input
        log.info("undecodable input (%s) on %s %s", type(exc).__name__, request.method, request.path)
        return error_response(400, "invalid_encoding", "The request contains text that is not valid UTF-8.")
    except Exception as exc:
        if is_storage_full(exc):
            request.app[STORAGE].note_full()
            log.error("storage full while handling %s %s", request.method, request.path)
            retry = request.app[SETTINGS].limits.storage_full_retry_after_seconds
            resp = error_response(
                507,
                "storage_full",
                "The gateway's storage is full, so nothing was stored. Try again later; if it persists, tell the"
                " gateway's administrator.",
                retry_after=retry,
            )
            resp.headers["Retry-After"] = str(retry)
            return resp
        if isinstance(exc, StoreUnavailable):
            # The database failed this request's transaction (I/O error, busy, connection lost): nothing of it was
            # stored, and the store carries on, so the client may simply retry.
            log.error("store unavailable while handling %s %s", request.method, request.path)
            retry = request.app[SETTINGS].limits.storage_full_retry_after_seconds
            resp = error_response(
                503,
                STORE_UNAVAILABLE,
                "The gateway could not reach or write its database, so nothing was stored. Try again shortly.",
                retry_after=retry,
            )
            resp.headers["Retry-After"] = str(retry)
            return resp
        log.error(
            "unexpected %s while handling %s %s",
            type(exc).__name__,
            request.method,
            request.path,
            exc_info=log.isEnabledFor(logging.DEBUG),
        )
        return error_response(500, "internal_error", "The gateway could not complete this request.")


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if (
        request.path.startswith("/api/")
        and request.path not in PUBLIC_PATHS
        and request.path not in claims.PUBLIC_PATHS
        and not request.path.startswith(claims.PUBLIC_PREFIX)
    ) or request.path.startswith(TLOG_ENTRIES_PREFIX):  # tlog entry bundles hold justifications: auditors only
        token = bearer_token(request.headers.get("Authorization"))
        request[PRINCIPAL] = await request.app[VERIFIER].verify(token)
    return await handler(request)


CORS_ALLOW_HEADERS = "Authorization, Content-Type, Idempotency-Key"
CORS_ALLOW_METHODS = "GET, POST, OPTIONS"


@web.middleware
async def cors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """CORS only for the extension origins an administrator pinned (`cors_origins`), never for web pages.

    Chromium extensions calling from their service worker with host permissions need no CORS at all; a
    pinned `chrome-extension://ID` / `moz-extension://UUID` covers extension pages that fetch directly.
    """
    origin = request.headers.get("Origin")
    allowed = origin is not None and origin in request.app[SETTINGS].cors_origins
    if request.method == "OPTIONS" and origin is not None and request.headers.get("Access-Control-Request-Method"):
        if not allowed:
            return error_response(403, "origin_not_allowed", "This origin may not call the gateway.")
        resp: web.StreamResponse = web.Response(status=204)
    else:
        resp = await handler(request)
    if allowed:
        resp.headers["Access-Control-Allow-Origin"] = origin  # type: ignore[assignment]
        resp.headers["Access-Control-Allow-Headers"] = CORS_ALLOW_HEADERS
        resp.headers["Access-Control-Allow-Methods"] = CORS_ALLOW_METHODS
        resp.headers["Access-Control-Max-Age"] = "600"
        resp.headers["Vary"] = "Origin"
    return resp


@web.middleware
async def security_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    resp = await handler(request)
    resp.headers.setdefault("X-Content-Type-Options", "nosniff")
    resp.headers.setdefault("Cache-Control", "no-store")
    resp.headers.setdefault("Referrer-Policy", "no-referrer")
    return resp


async def healthz(request: web.Request) -> web.Response:
    if not await request.app[STORAGE].writable():
        retry = request.app[SETTINGS].limits.storage_full_retry_after_seconds
        body = {
            "status": "unhealthy",
            "reason": "storage_full",
            "error": "storage_full",
            "message": "The gateway cannot write to its storage.",
        }
        resp = web.json_response(body, status=503)
        resp.headers["Retry-After"] = str(retry)
        return resp
    if GATEWAY in request.app and not await request.app[GATEWAY].store.writable():
        resp = web.json_response(
            {
                "status": "unhealthy",
                "reason": STORE_UNAVAILABLE,
                "error": STORE_UNAVAILABLE,
                "message": "The gateway cannot write to its database.",
            },
            status=503,
        )
        resp.headers["Retry-After"] = str(request.app[SETTINGS].limits.storage_full_retry_after_seconds)
        return resp
    guard = request.app[GATEWAY].store.guard if GATEWAY in request.app else None
    if guard is not None and guard.problem is not None:
        # The ledger no longer extends what the gateway signed: no checkpoint is signed until an operator acts.
        return web.json_response(
            {
                "status": "unhealthy",
                "reason": LEDGER_INCONSISTENT,
                "error": LEDGER_INCONSISTENT,
                "message": guard.problem,
            },
            status=503,
        )
    return web.json_response({"status": "ok"})


async def openapi(request: web.Request) -> web.Response:
    return web.Response(body=request.app[OPENAPI], content_type="application/json")


def load_openapi() -> bytes:
    return resources.files("gateway").joinpath("openapi.json").read_bytes()


@contextlib.asynccontextmanager
async def periodic(
    name: str, interval: float, step: Callable[[], Awaitable[object]], *, first_after: bool = False
) -> AsyncIterator[None]:
    """Run `step` now (or, with `first_after`, one `interval` from now: a step that records a ledger entry each
    time should not record one at every start-up) and then every `interval` seconds while the block runs;
    cancelled (and awaited) on exit.

    Every background task of the gateway goes through here, so they share one behaviour: a failed round is
    logged by its exception's type only (an exception's text can quote stored data) and the next round retries;
    shutting down cancels the task and waits for it, so nothing runs against a closed store.
    """

    async def loop() -> None:
        if first_after:
            await asyncio.sleep(interval)
        while True:
            try:
                await step()
            except Exception as exc:  # keep going; the next round retries
                log.error("%s failed: %s", name, type(exc).__name__)
            await asyncio.sleep(interval)

    task = asyncio.create_task(loop(), name=f"safeshare {name}")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def create_app(settings: Settings, keys: HomeKeys | None = None, background: bool = True) -> web.Application:
    """Build the application; the store opens (and orphans are swept) when the app starts.

    `background`: run the periodic jobs (checkpoints, the expiry sweep, retention reviews). Under
    `serve --workers N` only the first worker runs them: the others would repeat the checkpoint's proof over the
    same entries and record one retention review each a day (gateway/workers.py)."""
    keys = keys or init_home(settings)
    issuer = EmbeddedIssuer(keys.token_key, settings.issuer, settings.audience)
    app = web.Application(
        middlewares=[security_headers, cors_middleware, error_middleware, auth_middleware],
        client_max_size=settings.limits.max_json_bytes,
        # Long enough for any query the API accepts, so an over-long one gets the API's own JSON error.
        handler_args={"max_line_size": 16384, "max_field_size": 16384},
    )
    app[SETTINGS] = settings
    app[STORAGE] = StorageHealth(settings.data_dir)
    app[INFLIGHT] = InFlight()
    app[ISSUER] = issuer
    app[OPENAPI] = json.dumps(json.loads(load_openapi())).encode()
    policy_registry = PolicyRegistry.builtin(
        settings.default_policy, dict(settings.policies.org_default), settings.policies.dir
    )
    signer = LedgerSigner(settings.log_origin, keys.ledger_key, keys.ledger_pq_key)
    app[SIGNER] = signer
    app[WITNESSES] = tuple(NoteVerifier.from_vkey(v) for v in settings.witnesses)
    submitter = WitnessSubmitter([parse_witness_setting(w) for w in settings.tlog_witnesses])

    async def verifier_ctx(app: web.Application) -> AsyncIterator[None]:
        app[VERIFIER] = TokenVerifier(issuer if settings.embedded_issuer else None, settings.oidc)
        yield
        await app[VERIFIER].close()

    async def store_ctx(app: web.Application) -> AsyncIterator[None]:
        store = await open_ledger_store(settings, keys, signer.verifier())
        gw = Gateway(settings, store, policy_registry, keys.digest_key, signer)
        gw.holding.mailer = mailer_from_settings(settings)
        app[GATEWAY] = gw
        await gw.sweep_orphans()
        await gw.agreements.import_document_files()  # a home's documents from before they were in the database
        yield
        await store.close()

    async def checkpoint_ctx(app: web.Application) -> AsyncIterator[None]:
        """Sign a checkpoint soon after entries land, so each new entry is covered within about a second."""
        last = -1

        async def sign_if_grown() -> None:
            nonlocal last
            gw = app[GATEWAY]
            size = await gw.store.tree_size()
            if size != last:
                await gw.checkpoint()
                last = size
                if submitter.witnesses:  # C2SP tlog-witness cosignatures, stored with the checkpoint
                    await submitter.round(gw.store)

        if settings.checkpoint_interval_seconds <= 0:  # checkpointing off (benchmarks only)
            yield
            return
        async with periodic("checkpoint", settings.checkpoint_interval_seconds, sign_if_grown):
            yield
        await app[GATEWAY].checkpoint()  # cover whatever landed since the last round

    async def expiry_ctx(app: web.Application) -> AsyncIterator[None]:
        async with periodic("expiry sweep", settings.expiry_sweep_seconds, lambda: app[GATEWAY].expire_due()):
            yield

    async def retention_ctx(app: web.Application) -> AsyncIterator[None]:
        """A retention review recorded every `retention_review_seconds` (the first one period after start-up)."""
        if settings.retention_review_seconds <= 0:
            yield
            return
        retention = app[GATEWAY].retention
        period = settings.retention_review_seconds

        async def review() -> None:
            # Several nodes run this too: a review another recorded in the last half period stands for this one.
            await retention.retention_review(not_within=period / 2)

        async with periodic("retention review", period, review, first_after=True):
            yield

    app.cleanup_ctx.extend([verifier_ctx, store_ctx])
    if background:
        app.cleanup_ctx.extend([checkpoint_ctx, expiry_ctx, retention_ctx])
    app[DECIDERS] = DeciderIndex()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/api/v1/openapi.json", openapi)
    for module in (
        shares,
        inbox,
        decisions,
        policies,
        recipients,
        teams,
        ledger,
        transparency,
        notice,
        claims,
        agreements,
        advice,
    ):
        app.router.add_routes(module.routes)
    app.router.add_routes(open_page.routes)  # the recipient's web page, /open/
    app.router.add_routes(console_page.routes)  # the auditor's and administrator's console, /console/
    app.router.add_routes(tlog_routes)  # the ledger as a C2SP tiled transparency log, /tlog/
    return app
