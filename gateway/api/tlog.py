"""The ledger as a C2SP tiled transparency log (c2sp.org/tlog-tiles) under the prefix `/tlog`.

`/tlog/checkpoint` and the hash tiles `/tlog/tile/<L>/<N>[.p/<W>]` reveal only counts and hashes and are
public; the entry bundles `/tlog/tile/entries/<N>[.p/<W>]` hold justifications and need the auditor role
(the auth middleware checks the token for that prefix). Tiles are range reads of the hashes the store
keeps as the log grows; only tiles covered by the latest signed checkpoint are served, so every tile a
client can fetch is one the spec says must exist and will never change.
"""

from __future__ import annotations

import asyncio
import gzip

from aiohttp import web

from ..ledger.tiles import TILE_WIDTH, TilePathError, encode_bundle, parse_tile_path
from .common import gateway, principal

routes = web.RouteTableDef()

#: Tiles and bundles never change once served (the spec: "immutable, long-lived").
IMMUTABLE = "public, max-age=31536000, immutable"
#: Entry bundles are immutable too, but personal data: only the auditor's own cache may keep them.
IMMUTABLE_PRIVATE = "private, max-age=31536000, immutable"
#: The checkpoint changes as the log grows: "SHOULD prevent caching beyond a few seconds".
CHECKPOINT_CACHE = "public, max-age=5"
ENTRIES_PREFIX = "/tlog/tile/entries/"
#: Who may read entry bundles. Whole-log bundles cross organisations: once organisation-scoped auditors
#: exist (branch i9-tenants), this should become the partnership-wide auditor role.
ENTRY_BUNDLE_ROLES = ("auditor",)


def _not_found() -> web.Response:
    return web.Response(
        status=404,
        text="not found\n",
        content_type="text/plain",
        charset="utf-8",
        headers={"Cache-Control": "no-store"},
    )


@routes.get("/tlog/checkpoint")
async def tlog_checkpoint(request: web.Request) -> web.Response:
    """The latest signed checkpoint with any stored witness cosignatures, as `text/plain; charset=utf-8`."""
    store = gateway(request).store
    latest = await store.latest_checkpoint()
    if latest is None:
        return _not_found()
    size, note = latest
    cosigs = await store.cosignature_lines(size)
    if cosigs:
        note = note + "".join(line + "\n" for line in cosigs).encode()
    return web.Response(
        body=note, content_type="text/plain", charset="utf-8", headers={"Cache-Control": CHECKPOINT_CACHE}
    )


@routes.get("/tlog/tile/{tail:.+}")
async def tlog_tile(request: web.Request) -> web.Response:
    """A hash tile or an entry bundle, byte-exact per tlog-tiles; 404 for anything not (yet) covered."""
    try:
        ref = parse_tile_path(request.match_info["tail"])
    except TilePathError:
        return _not_found()
    if ref.level is None:
        principal(request, *ENTRY_BUNDLE_ROLES)
    store = gateway(request).store
    latest = await store.latest_checkpoint()
    if latest is None or ref.leaves_needed() > latest[0]:
        return _not_found()
    if ref.level is None:
        entries = await store.entry_bundle(ref.index, ref.width)
        if len(entries) != ref.width:
            return _not_found()
        # Up to 256 entries of 64 KiB: encode and compress off the event loop.
        body = await asyncio.to_thread(lambda: gzip.compress(encode_bundle(entries), compresslevel=6, mtime=0))
        return web.Response(
            body=body,
            content_type="application/octet-stream",
            headers={"Cache-Control": IMMUTABLE_PRIVATE, "Content-Encoding": "gzip"},
        )
    hashes = await store.tile(ref.level, ref.index, ref.width)
    if len(hashes) != ref.width:
        return _not_found()
    assert ref.width <= TILE_WIDTH
    return web.Response(
        body=b"".join(hashes), content_type="application/octet-stream", headers={"Cache-Control": IMMUTABLE}
    )
