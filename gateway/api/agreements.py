"""The partnership's agreements over HTTP: administrators add versions and retire; everyone signed in reads them;
practitioners ask which agreements cover a draft; the documents themselves are public, addressed by SHA-256.

Documents are public because the partnership publishes them anyway ("offered for download" on its website) and
because a practitioner's panel links to them in a browser tab that carries no token. Nothing about shares is
reachable from them. They are served with a sandboxing CSP and never as HTML.
"""

from __future__ import annotations

from aiohttp import BodyPartReader, MultipartReader, web
from aiohttp.http_exceptions import HttpProcessingError

from ..agreements import CATEGORIES_PATH, MAX_DOCUMENT_BYTES, PURPOSE_PATH
from ..directory import RECIPIENT_ID_RE
from ..errors import ApiError, not_found
from ..partnership import retirement
from .common import gateway, json_response, media_type, parse_json, principal, query_str, read_json, read_limited

routes = web.RouteTableDef()

READERS = ("practitioner", "auditor", "admin", "partnership_admin", "partnership_auditor")
#: Agreements bind several organisations, so one organisation's administrator cannot record or retire them:
#: that is the partnership-wide administrator's (see "Organisations as tenants" in the README).
KEEPER = "partnership_admin"
_ROLES = ("child", "adult_at_risk", "carer", "alleged_perpetrator", "third_party")


def _actor(request: web.Request, role: str) -> dict[str, object]:
    p = principal(request, role)
    return gateway(request)._actor(p, role)


async def _part(reader: MultipartReader) -> BodyPartReader | None:
    try:
        part = await reader.next()
    except (ValueError, AssertionError, RuntimeError, HttpProcessingError) as exc:
        raise ApiError(400, "invalid_multipart", f"The multipart body is malformed: {type(exc).__name__}.") from None
    if part is not None and not isinstance(part, BodyPartReader):
        raise ApiError(400, "invalid_multipart", "Nested multipart bodies are not accepted.")
    return part


@routes.get("/api/v1/agreements")
async def list_agreements(request: web.Request) -> web.Response:
    principal(request, *READERS)
    gw = gateway(request)
    current = await gw.agreements.records.current()
    return json_response(
        {
            "agreements": [a.public() for a in sorted(current.values(), key=lambda a: a.id)],
            "required": await gw.agreements.agreements_required(),
        }
    )


def _codes(request: web.Request, name: str, allowed: tuple[str, ...]) -> list[str]:
    raw = query_str(request, name, 2000)
    values = [v for v in (raw or "").split(",") if v]
    if any(v not in allowed for v in values) or len(values) > 50:
        raise ApiError(400, "invalid_parameter", f"{name} must be a comma-separated list of known codes.", field=name)
    return values


@routes.get("/api/v1/agreements/offers")
async def offers(request: web.Request) -> web.Response:
    """The agreements in force that cover a draft's purpose, categories and subjects, with each recipient's org."""
    principal(request, *READERS)
    gw = gateway(request)
    ids = _codes_free(request, "recipients")
    found = await gw.store.get_recipients(ids)
    teams = await gw.store.team_members([i for i in ids if i in found and found[i].kind == "team"])
    orgs: list[str] = []
    for i in ids:
        # A team's share goes to each member: their organisations are the ones that must have signed.
        people = teams[i] if i in teams else ([found[i]] if i in found else [])
        for r in people:
            if r.org not in orgs:
                orgs.append(r.org)
    purposes = _codes(request, "purpose", gw.policies.codes(PURPOSE_PATH))
    result = await gw.agreements.agreement_offers(
        orgs,
        purposes[0] if purposes else None,
        _codes(request, "categories", gw.policies.codes(CATEGORIES_PATH)),
        _codes(request, "roles", _ROLES),
    )
    return json_response(
        {
            "agreements": result,
            "organisations": orgs,
            "unknown_recipients": [i for i in ids if i not in found],
            "required": await gw.agreements.agreements_required(),
        }
    )


def _codes_free(request: web.Request, name: str) -> list[str]:
    raw = query_str(request, name, 4000)
    values = [v for v in (raw or "").split(",") if v]
    if len(values) > 50 or not all(RECIPIENT_ID_RE.match(v) for v in values):
        raise ApiError(400, "invalid_parameter", f"{name} must be a comma-separated list of recipient IDs.", field=name)
    return values


@routes.get("/api/v1/agreements/{agreement_id}")
async def get_agreement(request: web.Request) -> web.Response:
    principal(request, *READERS)
    versions = await gateway(request).agreements.agreement_versions(request.match_info["agreement_id"])
    if not versions:
        raise not_found("agreement")
    return json_response(
        {"id": versions[-1].id, "current": versions[-1].public(), "versions": [v.public() for v in versions]}
    )


@routes.post("/api/v1/agreements")
async def add_agreement(request: web.Request) -> web.Response:
    """multipart/form-data: an `agreement` part (JSON fields), then a `document` part (the file, with its name)."""
    actor = _actor(request, KEEPER)
    gw = gateway(request)
    if media_type(request) != "multipart/form-data":
        raise ApiError(
            415,
            "unsupported_media_type",
            "Send an agreement as multipart/form-data with an 'agreement' part (JSON) and a 'document' part.",
            expected="multipart/form-data",
        )
    try:
        reader = await request.multipart()
    except (ValueError, AssertionError, RuntimeError, HttpProcessingError) as exc:
        raise ApiError(400, "invalid_multipart", f"The multipart body is malformed: {type(exc).__name__}.") from None
    part = await _part(reader)
    if part is None or part.name != "agreement":
        raise ApiError(400, "invalid_multipart", "The first part must be 'agreement' (JSON).", field="agreement")
    fields = parse_json(await read_limited(part, gw.settings.limits.max_json_bytes, "agreement"), "agreement")
    if not isinstance(fields, dict):
        raise ApiError(422, "invalid_agreement", "The agreement part must be a JSON object.", field="agreement")
    doc = await _part(reader)
    if doc is None or doc.name != "document" or not doc.filename:
        raise ApiError(
            400, "invalid_multipart", "The second part must be 'document', with a file name.", field="document"
        )
    data = await read_limited(doc, MAX_DOCUMENT_BYTES, "document")
    if await _part(reader) is not None:
        raise ApiError(400, "invalid_multipart", "Only the 'agreement' and 'document' parts are accepted.")
    result = await gw.agreements.add_agreement(actor, fields, data, doc.filename)
    return json_response(result, status=201)


@routes.post("/api/v1/agreements/{agreement_id}/retire")
async def retire_agreement(request: web.Request) -> web.Response:
    actor = _actor(request, KEEPER)
    body = await read_json(request)
    req = retirement(body.get("reason") if isinstance(body, dict) else None)
    result = await gateway(request).agreements.retire_agreement(actor, request.match_info["agreement_id"], req)
    return json_response(result)


@routes.get("/agreements/documents/{sha256}")
async def document(request: web.Request) -> web.StreamResponse:
    """Public and immutable: the bytes whose SHA-256 is in the URL (and in every ledger entry made under them).

    From the database (any node serves any document), streamed a chunk at a time: the endpoint is public, so a
    request never costs a whole document's memory or holds a database connection while the client reads."""
    gw = gateway(request)
    sha = request.match_info["sha256"]
    records = gw.agreements.records
    size = await records.document_size(sha)
    agreement = await records.by_document(sha) if size is not None else None
    if size is None or agreement is None:
        raise not_found("document")
    safe_name = "".join(c if c.isalnum() or c in "._-" else "_" for c in agreement.document_name)[:200]
    response = web.StreamResponse(
        headers={
            "Content-Type": agreement.document_type,
            "Content-Disposition": f'inline; filename="{safe_name}"',
            # PDF viewers refuse sandboxed documents; the other types (text, office files) get the sandbox.
            "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'"
            + ("" if agreement.document_type == "application/pdf" else "; sandbox"),
            "Cache-Control": "public, max-age=31536000, immutable",
            "ETag": f'"{sha}"',
            "X-Content-Type-Options": "nosniff",
        },
    )
    response.content_length = size
    await response.prepare(request)
    if request.method != "HEAD":
        async for piece in records.document_chunks(sha):
            await response.write(piece)
    await response.write_eof()
    return response
