"""Helpers every handler shares: the caller's principal, bounded JSON bodies, query parameters."""

from __future__ import annotations

import json
from typing import Any, NamedTuple, overload

import orjson
from aiohttp import hdrs, web

from ..auth import EmbeddedIssuer, Forbidden, Principal, require
from ..errors import ApiError
from ..ledger.checkpoint import NoteVerifier
from ..ledger.signer import LedgerSigner
from ..service import Gateway

GATEWAY = web.AppKey("gateway", Gateway)
SIGNER = web.AppKey("signer", LedgerSigner)
#: The embedded token issuer (claim tokens for recipients who proved their address are issued with it).
ISSUER = web.AppKey("issuer", EmbeddedIssuer)
WITNESSES = web.AppKey("witnesses", tuple[NoteVerifier, ...])
#: The authenticated caller, set by the auth middleware (a typed key: no NotAppKeyWarning, checked by mypy).
PRINCIPAL = web.RequestKey("principal", Principal)


def gateway(request: web.Request) -> Gateway:
    return request.app[GATEWAY]


def media_type(request: web.Request) -> str:
    """The body's media type, lower case without parameters: what ``request.content_type`` answers, without
    its email.headerregistry parse. aiohttp caches that parse per distinct header (56 of them), and a multipart
    header is distinct on every request (its boundary), so each share paid ~0.3 ms on the event loop for it
    (issue 15). Only ever compared with one exact media type, so the parses cannot disagree on a verdict."""
    raw = request.headers.get(hdrs.CONTENT_TYPE)
    if raw is None:
        return "application/octet-stream"
    media = raw.partition(";")[0].strip().lower()
    return media if media.count("/") == 1 else "application/octet-stream"


def principal(request: web.Request, *roles: str) -> Principal:
    """The authenticated caller, who must hold one of `roles` (403 otherwise)."""
    p: Principal | None = request.get(PRINCIPAL)
    if p is None:  # the auth middleware guarantees one on /api/ routes; this is belt and braces
        raise ApiError(401, "token_missing", "This route needs a bearer token.")
    if roles:
        try:
            require(p, *roles)
        except Forbidden:
            raise ApiError(
                403,
                "forbidden",
                f"This action needs the role {' or '.join(roles)}.",
                required_roles=list(roles),
            ) from None
    return p


async def read_limited(stream: Any, limit: int, field: str) -> bytes:
    """Read a body or part without trusting Content-Length: count bytes and stop at the limit."""
    buf = bytearray()
    while True:
        chunk = await stream.read_chunk(65536) if hasattr(stream, "read_chunk") else await stream.read(65536)
        if not chunk:
            return bytes(buf)
        buf += chunk
        if len(buf) > limit:
            raise ApiError(
                413,
                "payload_too_large",
                f"{field} is larger than this gateway accepts ({limit} bytes).",
                field=field,
                limit=limit,
            )


def parse_json(data: bytes, field: str) -> Any:
    try:
        value = json.loads(data)
        # JSON escapes can smuggle in unpaired surrogates, which no UTF-8 store or ledger entry can hold.
        json.dumps(value, ensure_ascii=False).encode()
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        where = f" (line {exc.lineno}, column {exc.colno})" if isinstance(exc, json.JSONDecodeError) else ""
        raise ApiError(400, "invalid_json", f"{field} is not valid JSON{where}.", field=field) from None
    except UnicodeEncodeError:
        raise ApiError(400, "invalid_json", f"{field} contains an unpaired surrogate escape.", field=field) from None
    except ValueError:  # e.g. an integer longer than Python converts (4,300 digits)
        raise ApiError(400, "invalid_json", f"{field} contains a number too long to read.", field=field) from None
    return value


async def read_json(request: web.Request, field: str = "body") -> Any:
    return (await read_json_raw(request, field))[0]


async def read_json_raw(request: web.Request, field: str = "body") -> tuple[Any, bytes]:
    """The parsed body and the bytes it was parsed from (for an Idempotency-Key fingerprint)."""
    if request.content_type != "application/json":
        raise ApiError(
            415,
            "unsupported_media_type",
            "Send the body as application/json.",
            field=field,
            expected="application/json",
        )
    limit = gateway(request).settings.limits.max_json_bytes
    if request.content_length is not None and request.content_length > limit:
        raise ApiError(413, "payload_too_large", f"{field} is larger than {limit} bytes.", field=field, limit=limit)
    data = await read_limited(request.content, limit, field)
    return parse_json(data, field), data


@overload
def query_int(request: web.Request, name: str, default: int, lo: int, hi: int) -> int: ...
@overload
def query_int(request: web.Request, name: str, default: None, lo: int, hi: int) -> int | None: ...
def query_int(request: web.Request, name: str, default: int | None, lo: int, hi: int) -> int | None:
    """A whole-number query parameter from `lo` to `hi`; absent or empty gives `default` (typed: an `int`
    default gives an `int`)."""
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        value = lo - 1
    if not lo <= value <= hi:
        raise ApiError(400, "invalid_parameter", f"{name} must be a whole number from {lo} to {hi}.", field=name)
    return value


#: A cursor is a ledger index or row ID: a whole number below 2**62.
MAX_CURSOR = 2**62


class Page(NamedTuple):
    """A list route's paging parameters: at most `limit` items, those before `cursor` (exclusive) if given."""

    limit: int
    cursor: int | None


def paging(request: web.Request, most: int, default: int = 50) -> Page:
    """`limit` (1 to `most`, default `default`) and `cursor`: the same rules and refusals on every list route."""
    return Page(query_int(request, "limit", default, 1, most), query_int(request, "cursor", None, 0, MAX_CURSOR))


def query_str(request: web.Request, name: str, max_len: int = 200) -> str | None:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return None
    if len(raw) > max_len:
        raise ApiError(400, "invalid_parameter", f"{name} is longer than {max_len} characters.", field=name)
    return raw


#: Types the stdlib encoder refuses are passed through to `default` (which refuses them), as `json.dumps` would.
_ORJSON_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS


def _refuse(value: Any) -> Any:
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def json_response(body: Any, status: int = 200) -> web.Response:
    """Every JSON answer, encoded by orjson (a tenth of the stdlib's time: a share's answer was 2-3% of its
    event-loop CPU). What orjson cannot encode but the stdlib can (a lone surrogate echoed from a request's
    ``\\ud800`` escape, an integer beyond 64 bits) falls back to the stdlib, so no answer becomes a 500."""
    try:
        data = orjson.dumps(body, default=_refuse, option=_ORJSON_OPTIONS)
    except TypeError:
        return web.json_response(body, status=status)
    return web.Response(body=data, status=status, content_type="application/json", charset="utf-8")
