"""Shares: create (multipart, streamed), list one's own, look one up, revoke, and fetch one's envelope."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

from aiohttp import BodyPartReader, MultipartReader, multipart, web
from aiohttp.http_exceptions import HttpProcessingError

from .. import idempotency, tenancy
from ..auth import Principal
from ..errors import ApiError, field_error, not_found
from ..idempotency import INFLIGHT, Idempotency
from ..service import DEFAULT_EXPIRY, SHARE_ID_RE, Gateway, ShareRequest, acknowledgement, escrow_release
from ..store.envelopes import OpenEnvelope
from ..store.idempotency import IdempotencyHit
from ..store.models import Recipient, Share
from .common import gateway, json_response, media_type, paging, parse_json, principal, read_json, read_limited

routes = web.RouteTableDef()

PAYLOAD_READ = 256 * 1024
#: Multipart framing (boundaries, part headers) allowed on top of the JSON and payload limits.
MULTIPART_OVERHEAD = 64 * 1024


#: The fields of the JSON `share` part (the `ShareRequest` dataclass's fields).
SHARE_FIELDS = frozenset(ShareRequest.__dataclass_fields__)


def share_request(meta: Any) -> ShareRequest:
    """The `share` part as the use case's input: an object of known fields with a justification (in that
    order of refusal); checking the values is `Gateway.prepare_share`'s."""
    if not isinstance(meta, dict):
        raise field_error("invalid_share", "share", "The share part must be a JSON object.", status=400)
    unknown = sorted(set(meta) - SHARE_FIELDS)
    if unknown:
        raise field_error("invalid_share", f"share.{unknown[0]}", f"Unknown field in share: {unknown[0][:64]!r}.")
    if meta.get("justification") is None:
        raise field_error("invalid_share", "share.justification", "A justification is required.")
    return ShareRequest(**{"expires_in": DEFAULT_EXPIRY, **meta})


#: The Content-Disposition of a part as clients send it (`form-data; name="share"`, optionally with a plain
#: `filename`): such a header means exactly what aiohttp's full RFC 6266/5987 parser makes of it, so it is read
#: here without that parser, which rebuilds a 128-character regex escape on every call (34-100 µs; aiohttp's
#: reader calls it for every part, to look for a `_charset_` part, and again for `part.name`: up to a tenth of
#: the event loop's time per share). Anything else (escapes, extended or continued parameters, other spacing)
#: goes to aiohttp's parser.
_PLAIN_DISPOSITION = re.compile(r'form-data; name="(share|payload)"(?:; filename="([A-Za-z0-9._ -]{0,255})")?')
_full_parse = multipart.parse_content_disposition


def parse_content_disposition(header: str | None) -> tuple[str | None, dict[str, str]]:
    """aiohttp's `parse_content_disposition`, with the shortcut above for the headers clients send."""
    plain = _PLAIN_DISPOSITION.fullmatch(header) if header else None
    if plain is None:
        return _full_parse(header)
    name, filename = plain.groups()
    return "form-data", {"name": name} if filename is None else {"name": name, "filename": filename}


# aiohttp's reader looks the function up in its module at each call: the shortcut must be put there to take effect
# inside `MultipartReader.next()` (the same answers, checked against aiohttp's in tests/test_part_names.py).
multipart.parse_content_disposition = parse_content_disposition


async def _next_part(reader: MultipartReader) -> BodyPartReader | None:
    try:
        part = await reader.next()
    except (ValueError, AssertionError, RuntimeError, HttpProcessingError) as exc:
        raise ApiError(400, "invalid_multipart", f"The multipart body is malformed: {type(exc).__name__}.") from None
    if part is not None and not isinstance(part, BodyPartReader):
        raise ApiError(400, "invalid_multipart", "Nested multipart bodies are not accepted.")
    return part


@routes.post("/api/v1/shares")
async def create_share(request: web.Request) -> web.Response:
    p = principal(request, "practitioner")
    gw = gateway(request)
    key = idempotency.header_key(request)
    if key is None:
        return await _create_share(request, p, gw, None)
    ttl = gw.settings.limits.idempotency_key_ttl_seconds
    idem = Idempotency(idempotency.scope(p), key, request.method, request.path, ttl)
    with request.app[INFLIGHT].hold(idem.principal, key):
        idem.stored = await gw.store.idempotent_answer(idem.principal, key, gw.now_str())
        return await _create_share(request, p, gw, idem)


async def _create_share(request: web.Request, p: Principal, gw: Gateway, idem: Idempotency | None) -> web.Response:
    limits = gw.settings.limits
    if media_type(request) != "multipart/form-data":
        raise ApiError(
            415,
            "unsupported_media_type",
            "Send a share as multipart/form-data with a 'share' part (JSON) and a 'payload' part.",
            expected="multipart/form-data",
        )
    cap = limits.max_payload_bytes + limits.max_json_bytes + MULTIPART_OVERHEAD
    if request.content_length is not None and request.content_length > cap:
        raise ApiError(
            413,
            "payload_too_large",
            f"The payload is larger than this gateway accepts ({limits.max_payload_bytes} bytes).",
            field="payload",
            limit=limits.max_payload_bytes,
        )
    try:
        reader = await request.multipart()
    except (ValueError, AssertionError, KeyError) as exc:
        raise ApiError(400, "invalid_multipart", f"The multipart body is malformed: {type(exc).__name__}.") from None
    part = await _next_part(reader)
    if part is None or part.name != "share":
        raise ApiError(
            400,
            "missing_part",
            "The first part must be 'share' (the JSON description), then 'payload'.",
            field="share",
        )
    meta_bytes = await read_limited(part, limits.max_json_bytes, "share")
    meta = parse_json(meta_bytes, "share")
    if idem is not None:
        idem.update(b"share", meta_bytes)
    prepared = await gw.prepare_share(p, share_request(meta)) if idem is None or idem.stored is None else None
    payload = await _next_part(reader)
    if payload is None or payload.name != "payload":
        raise ApiError(400, "missing_part", "A 'payload' part must follow the 'share' part.", field="payload")
    if idem is not None:
        idem.update(b"payload", b"")

    async def chunks() -> AsyncIterator[bytes]:
        try:
            while chunk := await payload.read_chunk(PAYLOAD_READ):
                if idem is not None:
                    idem.feed(chunk)
                yield chunk
        except ValueError as exc:
            raise ApiError(400, "invalid_multipart", f"The payload part is malformed: {type(exc).__name__}.") from None
        if await _next_part(reader) is not None:
            raise ApiError(400, "unexpected_part", "Only the 'share' and 'payload' parts are accepted.")

    replayed = False
    if prepared is None:  # a retry of a request already answered: read it only to compare, store nothing
        assert idem is not None and idem.stored is not None
        size = 0
        async for chunk in chunks():
            size += len(chunk)
            if size > limits.max_payload_bytes:
                raise ApiError(413, "payload_too_large", "The payload is larger than this gateway accepts.")
        result, replayed = dict(idem.answer(idem.stored)), True
    else:
        try:
            result = await gw.commit_share(prepared, chunks(), idem)
        except IdempotencyHit as hit:  # the key was taken meanwhile (e.g. on another node): the same rules
            assert idem is not None
            result, replayed = dict(idem.answer(hit.stored)), True
    base = gw.settings.public_url or f"{request.scheme}://{request.host}"
    result["notice_url"] = f"{base.rstrip('/')}/s/{result['share_id']}"
    for r in result["recipients"]:
        r["link"] = result["notice_url"]
    if not replayed and any(r["mode"] == "held" for r in result["recipients"]):
        rows = (await gw.holding.held.rows([result["share_id"]])).get(result["share_id"], [])
        await gw.holding.notify_held_addresses(result["share_id"], rows, result["notice_url"], p.org_name or p.org)
    resp = json_response(result, status=201)
    if replayed:
        resp.headers["Idempotent-Replayed"] = "true"
    return resp


def share_view(
    share: Share, *, for_recipient: str | None = None, names: Mapping[str, Recipient] | None = None
) -> dict[str, Any]:
    """What a sender (all recipients) or one recipient (only their own envelope) may see of a share.

    Names for people to read (issue 13): the sender's and organisation's as kept with the share, the identifiers
    for shares made before they were kept; each recipient's from `names` (the directory), else their ID."""
    view: dict[str, Any] = {
        "id": share.id,
        "from": {
            "sub": share.sender_sub,
            "org": share.sender_org,
            "name": share.sender_name or share.sender_sub,
            "org_name": share.sender_org_name or share.sender_org,
        },
        "purpose": {"code": share.purpose_code, "description": share.purpose_description},
        "subjects": list(share.subjects),
        "data_categories": list(share.data_categories),
        "created_at": share.created_at,
        "expires_at": share.expires_at,
        "max_downloads": share.max_downloads,
        "payload_content_type": share.payload_content_type,
        "size": share.payload_size,
        "ledger_index": share.ledger_index,
    }
    if for_recipient is None:
        view["receipt_proof"] = f"/api/v1/ledger/entries/{share.ledger_index}/proof"  # the sender's tlog-proof
        view["state"] = share.state
        view["escrow"] = share.escrow_sha256 is not None
        view["recipients"] = [
            {
                "id": r.recipient_id,
                "name": names[r.recipient_id].name if names and r.recipient_id in names else r.recipient_id,
                "org": r.recipient_org,
                "state": r.state,
                "downloads": r.downloads,
                "acknowledged_at": r.acknowledged_at,
                "acknowledgement": r.acknowledgement,
                "envelope_sha256": r.envelope_sha256,
                "envelope_size": r.envelope_size,
                "via": r.via_team,
                "first_downloaded_at": r.first_downloaded_at,
                "last_downloaded_at": r.last_downloaded_at,
            }
            for r in share.recipients
        ]
    else:
        mine = share.recipient(for_recipient)
        assert mine is not None  # callers only pass a recipient of this share
        view["state"] = mine.state
        view["downloads"] = mine.downloads
        view["envelope_sha256"] = mine.envelope_sha256
        view["envelope_size"] = mine.envelope_size
        view["acknowledged_at"] = mine.acknowledged_at
        # The recipient's own note: the extension shows it back in the share view.
        view["acknowledgement"] = mine.acknowledgement
        # The team this envelope was made for, so a team member sees why they have it.
        view["via"] = mine.via_team
    return view


async def with_justification(gw: Gateway, share: Share, view: dict[str, Any]) -> dict[str, Any]:
    """Add the justification recorded in the share's own ledger entry (and the policy it was checked against).

    A recipient needs it beside the content (purpose, lawful basis, handling: why they have it and what they may
    do with it); the sender needs it to review. Both are named in that entry, so they may read it there anyway.
    """
    row = await gw.store.ledger_entry(share.ledger_index)
    entry = json.loads(row.entry) if row is not None else {}
    view["justification"] = entry.get("justification")
    view["policy"] = entry.get("policy")
    # The policy's handling instruction (DfE 2024 rule 5: whose identity to protect, and how), or null.
    view["handling"] = entry.get("handling")
    return view


async def recipient_names(gw: Gateway, shares: list[Share]) -> Mapping[str, Recipient]:
    """The directory's entries for every recipient of these shares, read once for a page (the Sent view)."""
    return await gw.store.get_recipients(sorted({r.recipient_id for s in shares for r in s.recipients}))


def page(items: list[Share], limit: int) -> str | None:
    return str(items[-1].ledger_index) if len(items) == limit else None


@routes.get("/api/v1/shares")
async def list_sent(request: web.Request) -> web.Response:
    p = principal(request, "practitioner")
    gw = gateway(request)
    limit, before = paging(request, gw.settings.limits.page_size_max)
    shares = await gw.store.sent(p.sub, p.issuer, before, limit)
    held = await gw.holding.held.rows([s.id for s in shares])
    names = await recipient_names(gw, shares)
    views = [{**share_view(s, names=names), "held": [h.public() for h in held.get(s.id, [])]} for s in shares]
    return json_response({"shares": views, "next_cursor": page(shares, limit)})


@routes.get("/api/v1/shares/{share_id}")
async def get_share(request: web.Request) -> web.Response:
    p = principal(request, "practitioner", "recipient", *tenancy.ADMIN_ROLES)
    gw = gateway(request)
    share_id = request.match_info["share_id"]
    share = await gw.store.get_share(share_id) if SHARE_ID_RE.match(share_id) else None
    if share is None:
        raise not_found()
    # The sender, or an administrator of the sending organisation (tenancy.py), sees the whole share.
    if tenancy.admin_may_act_on(p, share.sender_org) or (p.has("practitioner") and gw.is_sender(p, share)):
        held = (await gw.holding.held.rows([share.id])).get(share.id, [])
        view = {**share_view(share, names=await recipient_names(gw, [share])), "held": [h.public() for h in held]}
        return json_response(await with_justification(gw, share, view))
    if p.has("recipient") and share.recipient(p.sub) is not None:
        return json_response(await with_justification(gw, share, share_view(share, for_recipient=p.sub)))
    raise not_found()


@routes.post("/api/v1/shares/{share_id}/revoke")
async def revoke_share(request: web.Request) -> web.Response:
    p = principal(request, "practitioner", *tenancy.ADMIN_ROLES)
    reason = None
    if request.can_read_body:
        body = await read_json(request)
        if not isinstance(body, dict) or set(body) - {"reason"}:
            raise ApiError(400, "invalid_body", 'The body may only carry {"reason": text}.', field="body")
        reason = body.get("reason")  # checked by the use case (inputs.optional_reason)
    result = await gateway(request).revoke(p, request.match_info["share_id"], reason)
    return json_response(result)


# GET only: aiohttp would answer HEAD by running this handler, which counts and records a download (and on the
# last permitted one shreds the envelope) for bytes never sent. Link scanners and proxies send HEAD, so HEAD
# gets 405 with `Allow: GET` and changes nothing.
@routes.get("/api/v1/shares/{share_id}/envelope", allow_head=False)
async def fetch_envelope(request: web.Request) -> web.StreamResponse:
    p = principal(request, "recipient")
    gw = gateway(request)
    opened, share, index, exhausted = await gw.open_envelope(p, request.match_info["share_id"])
    mine = share.recipient(p.sub)
    assert mine is not None  # open_envelope only succeeds for a recipient of the share
    headers = {
        "Content-Disposition": f'attachment; filename="{share.id}.age"',
        "Content-Length": str(mine.envelope_size),
        "X-SafeShare-Ledger-Index": str(index),
        "X-SafeShare-Envelope-SHA256": mine.envelope_sha256,
        "X-SafeShare-Payload-Content-Type": share.payload_content_type,
    }
    # On the last permitted download, destroy it at once where the open envelope still reads (a file: gone from
    # disk before the recipient has even finished receiving it), else as soon as the last byte is sent.
    unlink = (lambda: gw.destroy_envelope(share.id, p.sub)) if exhausted else None
    return await _stream_envelope(request, opened, headers, unlink)


@routes.get("/api/v1/shares/{share_id}/envelope/header", allow_head=False)
async def envelope_header(request: web.Request) -> web.Response:
    """The caller's envelope header only, to check their identity opens it before the counted download."""
    p = principal(request, "recipient")
    header = await gateway(request).envelope_header(p, request.match_info["share_id"])
    return web.Response(body=header, content_type="application/octet-stream", headers={"Cache-Control": "no-store"})


async def _stream_envelope(
    request: web.Request,
    opened: OpenEnvelope | None,
    headers: dict[str, str],
    after_open: Callable[[], Awaitable[None]] | None = None,
) -> web.StreamResponse:
    """Stream an envelope in slices from wherever it is stored (flat memory at any size).

    `after_open` (the last permitted download's destruction) runs before the first byte where the open envelope
    survives it (a file), else once every byte has been read from the store, before the last slice is sent, or
    when sending fails (a crash in between leaves an envelope the database says is used up, which the start-up
    sweep removes)."""
    if opened is None:
        raise ApiError(410, "share_gone", "This envelope no longer exists.")
    resp = web.StreamResponse(
        headers={"Content-Type": "application/octet-stream", "Cache-Control": "no-store", **headers}
    )
    # Destroyed at most once: at once where the open envelope survives it, else after the last read.
    pending: list[Callable[[], Awaitable[None]]] = [after_open] if after_open is not None else []
    try:
        if pending and opened.readable_after_destroy:
            await pending.pop()()
        await resp.prepare(request)
        last: bytes | None = None
        async for data in opened.chunks():
            if last is not None:
                await resp.write(last)
            last = data
        # Every byte has been read from the store: destroy it before the last slice goes out, so a client that
        # has the whole envelope never finds it still stored.
        if pending:
            await pending.pop()()
        if last is not None:
            await resp.write(last)
        await resp.write_eof()
    finally:
        await opened.close()
        if pending:
            await pending.pop()()
    return resp


@routes.post("/api/v1/shares/{share_id}/acknowledge")
async def acknowledge_share(request: web.Request) -> web.Response:
    """The recipient marks the share "received and actioned" with a note the sender sees."""
    p = principal(request, "recipient")
    body = await read_json(request)
    if not isinstance(body, dict) or set(body) - {"note"}:
        raise ApiError(400, "invalid_body", 'The body must be {"note": text}.', field="body")
    result = await gateway(request).acknowledge(p, request.match_info["share_id"], acknowledgement(body.get("note")))
    return json_response(result)


@routes.post("/api/v1/shares/{share_id}/justification")
async def complete_emergency_justification(request: web.Request) -> web.Response:
    """The sender completes an emergency share's justification (issue 14): a new ledger entry linked to the share.

    The body is the full justification, or `{"justification": {...}}`; it is checked in full, and must be about
    the same people as the share. 404 for anyone but the sender; 409 when there is nothing (left) to complete.
    """
    p = principal(request, "practitioner")
    body = await read_json(request, "justification")
    if isinstance(body, dict) and set(body) == {"justification"}:
        body = body["justification"]
    share_id = request.match_info["share_id"]
    if not SHARE_ID_RE.match(share_id):
        raise not_found()
    result = await gateway(request).emergencies.complete_emergency(p, share_id, body)
    return json_response(result, status=201)


@routes.post("/api/v1/shares/{share_id}/approve")
async def approve_share(request: web.Request) -> web.Response:
    """Dual control (issue 14): a second person with an approver role of the sending organisation releases a share
    held for approval. Optional body `{"note": text}`. Any signed-in caller may try: the roles are the organisation's
    configuration, checked by the use case."""
    p = principal(request)
    note = None
    if request.can_read_body:
        body = await read_json(request)
        if not isinstance(body, dict) or set(body) - {"note"}:
            raise ApiError(400, "invalid_body", 'The body may only carry {"note": text}.', field="body")
        note = body.get("note")
    share_id = request.match_info["share_id"]
    if not SHARE_ID_RE.match(share_id):
        raise not_found()
    return json_response(await gateway(request).dual_control.approve_share(p, share_id, note), status=201)


@routes.get("/api/v1/approvals")
async def list_approvals(request: web.Request) -> web.Response:
    """Dual control: the caller's organisation's shares held for approval that the caller's roles may approve."""
    p = principal(request)
    return json_response({"shares": await gateway(request).dual_control.approvals(p)})


@routes.get("/api/v1/retention/schedule")
async def retention_schedule(request: web.Request) -> web.Response:
    """Issue 14: what will be destroyed when (live shares, soonest first, with their retention class). An `admin`
    sees their organisation's shares, a `partnership_admin` every organisation's; the auditor reads what was
    destroyed in the ledger (`kind=expire`) and the reviews (`kind=retention_review`)."""
    p = principal(request, *tenancy.ADMIN_ROLES)
    return json_response({"shares": await gateway(request).retention.retention_schedule(p)})


@routes.post("/api/v1/shares/{share_id}/escrow")
async def release_escrow(request: web.Request) -> web.StreamResponse:
    """Organisational recovery: an administrator takes the escrow envelope, with a reason recorded first."""
    p = principal(request, *tenancy.ADMIN_ROLES)
    body = await read_json(request)
    if not isinstance(body, dict) or set(body) - {"reason"}:
        raise ApiError(400, "invalid_body", 'The body must be {"reason": text}.', field="body")
    req = escrow_release(body.get("reason"))
    gw = gateway(request)
    opened, share, _ = await gw.release_escrow(p, request.match_info["share_id"], req)
    headers = {
        "Content-Disposition": f'attachment; filename="{share.id}.escrow.age"',
        "X-SafeShare-Envelope-SHA256": share.escrow_sha256 or "",
        "X-SafeShare-Payload-Content-Type": share.payload_content_type,
    }
    return await _stream_envelope(request, opened, headers)
