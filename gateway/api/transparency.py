"""What anyone needs to check the ledger independently: signed checkpoints, the verifier key, entries with
their canonical bytes, and RFC 9162 inclusion and consistency proofs."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from .. import tenancy
from ..encoding import b64 as _b64
from ..errors import ApiError, not_found
from ..ledger.checkpoint import Checkpoint, NoteVerifier, split_note
from ..ledger.receipt import Receipt
from ..store.models import LedgerRow
from ..transparency import accept_cosignature
from .common import SIGNER, WITNESSES, gateway, principal, query_int, read_limited

routes = web.RouteTableDef()

MAX_INDEX = 2**62


def _checkpoint_json(size: int, note: bytes) -> dict[str, Any]:
    body, _ = split_note(note)
    return {"size": size, "root_hash": _b64(Checkpoint.parse(body).root_hash), "note": note.decode()}


@routes.get("/api/v1/ledger/checkpoint")
async def latest_checkpoint(request: web.Request) -> web.Response:
    """The latest signed checkpoint (C2SP tlog-checkpoint in a signed note), with any witness co-signatures.

    Public: it reveals only the tree size and root. `?witnessed=1` gives the latest checkpoint that at least
    one witness has co-signed instead.
    """
    store = gateway(request).store
    witnessed = request.query.get("witnessed")
    if witnessed not in (None, "1", "true"):
        raise ApiError(400, "invalid_parameter", "witnessed may only be 1 or true.", field="witnessed")
    if witnessed is not None:
        size = await store.latest_cosigned_size()
        note = None if size is None else await store.checkpoint_note(size)
        if size is None or note is None:
            raise ApiError(404, "no_checkpoint", "No checkpoint has been co-signed by a witness yet.")
        latest: tuple[int, bytes] | None = (size, note)
    else:
        latest = await store.latest_checkpoint()
    if latest is None:
        raise ApiError(404, "no_checkpoint", "The ledger is empty; there is no checkpoint yet.")
    size, note = latest
    cosigs = await store.cosignature_lines(size)
    if cosigs:
        note = note + "".join(line + "\n" for line in cosigs).encode()
    return web.Response(
        body=note, content_type="text/plain", charset="utf-8", headers={"X-SafeShare-Tree-Size": str(size)}
    )


MAX_NOTE_BYTES = 64 * 1024


@routes.post("/api/v1/ledger/cosignatures")
async def add_cosignature(request: web.Request) -> web.Response:
    """A witness returns a checkpoint it co-signed. Authenticated by the witness's signature, not a token:
    only keys listed in the gateway's `witnesses` setting count, and only over a checkpoint this gateway signed.
    """
    witnesses: tuple[NoteVerifier, ...] = request.app[WITNESSES]
    done = await accept_cosignature(
        gateway(request).store, witnesses, lambda: read_limited(request.content, MAX_NOTE_BYTES, "note")
    )
    return web.json_response({"size": done.size, "witnesses": list(done.witnesses)}, status=201)


@routes.get("/api/v1/ledger/vkey")
async def verifier_key(request: web.Request) -> web.Response:
    """The checkpoint verifier key in C2SP vkey form (name+keyhash+base64(0x01‖pubkey)); pin it once.
    `?alg=ml-dsa-44`: the ML-DSA-44 key (type 0x06) that signs each checkpoint as well."""
    signer = request.app[SIGNER]
    alg = request.query.get("alg", "ed25519")
    if alg not in ("ed25519", "ml-dsa-44"):
        raise ApiError(400, "invalid_parameter", "alg must be ed25519 or ml-dsa-44.", field="alg")
    vkey = signer.vkey if alg == "ed25519" else signer.pq_vkey
    if vkey is None:
        raise ApiError(404, "not_found", "This gateway has no ML-DSA-44 ledger key.")
    return web.Response(text=vkey + "\n", content_type="text/plain", charset="utf-8")


@routes.get("/api/v1/ledger/entries/{index}")
async def ledger_entry(request: web.Request) -> web.Response:
    """One entry, its canonical bytes, and an inclusion proof against the latest signed checkpoint.

    This is the receipt a practitioner or recipient keeps: with the pinned vkey it proves the entry (and,
    for a share, each envelope's SHA-256) is in the ledger the gateway signed.
    """
    p = principal(request, *tenancy.AUDITOR_ROLES, "practitioner", "recipient", *tenancy.ADMIN_ROLES)
    try:
        index = int(request.match_info["index"])
    except ValueError:
        raise not_found("ledger entry") from None
    gw = gateway(request)
    row: LedgerRow | None = await gw.store.ledger_entry(index) if 0 <= index < MAX_INDEX else None
    if row is None:
        raise not_found("ledger entry")
    entry = json.loads(row.entry)
    if not tenancy.may_see_entry(p, entry):
        raise not_found("ledger entry")
    body: dict[str, Any] = {
        "index": row.index,
        "entry": entry,
        "leaf": _b64(row.entry),
        "leaf_hash": _b64(row.leaf_hash),
        "checkpoint": None,
        "inclusion_proof": None,
    }
    latest = await gw.store.latest_checkpoint()
    if latest is not None and latest[0] > index:
        size, note = latest
        body["checkpoint"] = _checkpoint_json(size, note)
        hashes = await gw.store.inclusion_proof(index, size)
        body["inclusion_proof"] = {"index": index, "size": size, "hashes": [_b64(h) for h in hashes]}
    else:
        body["retry_after_seconds"] = max(1, round(gw.settings.checkpoint_interval_seconds * 2))
    return web.json_response(body)


@routes.get("/api/v1/ledger/entries/{index}/proof")
async def ledger_entry_proof(request: web.Request) -> web.Response:
    """The same receipt as an offline file: a C2SP tlog-proof (`c2sp.org/tlog-proof@v1`) carrying the entry's
    canonical bytes as `extra`, checked by `safeshare ledger verify-receipt FILE --vkey V` or any tlog-proof
    verifier. Who may fetch it is as for the entry; 409 until a signed checkpoint covers the entry."""
    p = principal(request, *tenancy.AUDITOR_ROLES, "practitioner", "recipient", *tenancy.ADMIN_ROLES)
    try:
        index = int(request.match_info["index"])
    except ValueError:
        raise not_found("ledger entry") from None
    gw = gateway(request)
    row: LedgerRow | None = await gw.store.ledger_entry(index) if 0 <= index < MAX_INDEX else None
    if row is None or not tenancy.may_see_entry(p, json.loads(row.entry)):
        raise not_found("ledger entry")
    latest = await gw.store.latest_checkpoint()
    if latest is None or latest[0] <= index:
        retry = max(1, round(gw.settings.checkpoint_interval_seconds * 2))
        raise ApiError(
            409,
            "not_yet_checkpointed",
            "No signed checkpoint covers this entry yet; try again shortly.",
            retry_after_seconds=retry,
        )
    size, note = latest
    cosigs = await gw.store.cosignature_lines(size)
    note += "".join(line + "\n" for line in cosigs).encode()
    hashes = await gw.store.inclusion_proof(index, size)
    data = Receipt(index, tuple(hashes), note, extra=row.entry).to_bytes()
    return web.Response(
        body=data,
        content_type="text/plain",
        charset="utf-8",
        headers={"Content-Disposition": f'attachment; filename="safeshare-ledger-{index}.tlog-proof"'},
    )


@routes.get("/api/v1/ledger/proof/inclusion")
async def inclusion_proof(request: web.Request) -> web.Response:
    principal(request, *tenancy.AUDITOR_ROLES)
    gw = gateway(request)
    size_now = await gw.store.tree_size()
    size = query_int(request, "size", None, 1, max(1, size_now))
    index = query_int(request, "index", None, 0, MAX_INDEX)
    if size is None or index is None:
        raise ApiError(
            400, "invalid_parameter", "index and size are required.", field="index" if index is None else "size"
        )
    if size > size_now:
        raise ApiError(400, "invalid_parameter", f"size must be at most the tree size {size_now}.", field="size")
    if index >= size:
        raise ApiError(400, "invalid_parameter", "index must be smaller than size.", field="index")
    hashes = await gw.store.inclusion_proof(index, size)
    return web.json_response({"index": index, "size": size, "hashes": [_b64(h) for h in hashes]})


@routes.get("/api/v1/ledger/proof/consistency")
async def consistency_proof(request: web.Request) -> web.Response:
    principal(request, *tenancy.AUDITOR_ROLES)
    gw = gateway(request)
    size_now = await gw.store.tree_size()
    first = query_int(request, "first", None, 1, MAX_INDEX)
    second = query_int(request, "second", None, 1, MAX_INDEX)
    if first is None or second is None:
        raise ApiError(
            400, "invalid_parameter", "first and second are required.", field="first" if first is None else "second"
        )
    if second > size_now:
        raise ApiError(400, "invalid_parameter", f"second must be at most the tree size {size_now}.", field="second")
    if first > second:
        raise ApiError(400, "invalid_parameter", "first must not be larger than second.", field="first")
    hashes = await gw.store.consistency_proof(first, second)
    return web.json_response({"first": first, "second": second, "hashes": [_b64(h) for h in hashes]})
