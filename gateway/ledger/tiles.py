"""C2SP tlog-tiles (c2sp.org/tlog-tiles): tile paths, tile coordinates and entry bundles. Pure, no I/O.

A tile at level L, index N holds up to 256 consecutive Merkle tree hashes at tree height 8*L: level 0 tiles
are leaf hashes, level L >= 1 tiles are the roots of full tiles one level below, i.e. the perfect subtrees of
2**(8L) leaves. Those are exactly what the store already keeps as the log grows (`ledger.leaf_hash` and
`ledger_nodes`, written in the append transaction), so a tile is a range read of stored hashes, never a
recomputation.

Entry bundles are the same coordinates at level 0 holding the entries themselves, each prefixed by its
length as a big-endian uint16: an entry can therefore be at most 65,535 bytes (`MAX_ENTRY_BYTES`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

TILE_WIDTH = 256
TILE_HEIGHT = 8
MAX_LEVEL = 63
#: The uint16 length prefix of an entry in a bundle.
MAX_ENTRY_BYTES = 0xFFFF

_LEVEL = re.compile(r"0|[1-9][0-9]?")
_WIDTH = re.compile(r"[1-9][0-9]{0,2}")
_GROUP = re.compile(r"[0-9]{3}")


class TilePathError(ValueError):
    """A path that is not a tile or bundle path in the spec's exact encoding."""


@dataclass(frozen=True)
class TileRef:
    """`level` is None for an entry bundle. `width` is 256 for a full tile, 1..255 for a partial one."""

    level: int | None
    index: int
    width: int

    @property
    def hash_level(self) -> int:
        """The Merkle tree level (height) of the hashes in this tile; entry bundles mirror level 0."""
        return TILE_HEIGHT * (self.level or 0)

    def first(self) -> int:
        """The tree-level index of the tile's first hash (a leaf index at level 0)."""
        return self.index * TILE_WIDTH

    def leaves_needed(self) -> int:
        """The tree size from which every hash of this tile (at its width) exists."""
        return (self.index * TILE_WIDTH + self.width) << self.hash_level

    def path(self) -> str:
        return tile_path(self.level, self.index, self.width)


def encode_index(n: int) -> str:
    """1234067 -> "x001/x234/067": 3-digit groups, all but the last prefixed with x."""
    if not isinstance(n, int) or isinstance(n, bool) or n < 0:
        raise ValueError(f"tile index must be a non-negative integer, got {n!r}")
    groups = [f"{n % 1000:03d}"]
    n //= 1000
    while n > 0:
        groups.append(f"x{n % 1000:03d}")
        n //= 1000
    return "/".join(reversed(groups))


def tile_path(level: int | None, index: int, width: int = TILE_WIDTH) -> str:
    """The path below the log prefix, e.g. "tile/0/x001/234.p/17" or "tile/entries/000"."""
    head = "entries" if level is None else str(level)
    suffix = "" if width == TILE_WIDTH else f".p/{width}"
    return f"tile/{head}/{encode_index(index)}{suffix}"


def parse_tile_path(rest: str) -> TileRef:
    """Parse what follows "<prefix>/tile/": "<L>/<N>[.p/<W>]" or "entries/<N>[.p/<W>]", refusing any other
    spelling (leading zeros, missing x, a width of 0 or 256) so that each tile has exactly one URL."""
    parts = rest.split("/")
    if len(parts) < 2:
        raise TilePathError("too short")
    head, rest_parts = parts[0], parts[1:]
    level: int | None
    if head == "entries":
        level = None
    elif _LEVEL.fullmatch(head) and int(head) <= MAX_LEVEL:
        level = int(head)
    else:
        raise TilePathError("bad level")
    width = TILE_WIDTH
    if len(rest_parts) >= 2 and rest_parts[-2].endswith(".p"):
        w = rest_parts[-1]
        if not _WIDTH.fullmatch(w) or not 1 <= int(w) < TILE_WIDTH:
            raise TilePathError("bad width")
        width = int(w)
        rest_parts = [*rest_parts[:-2], rest_parts[-2][:-2]]
    *prefixed, last = rest_parts
    if not _GROUP.fullmatch(last):
        raise TilePathError("bad index")
    index = 0
    for g in prefixed:
        if not g.startswith("x") or not _GROUP.fullmatch(g[1:]):
            raise TilePathError("bad index")
        index = index * 1000 + int(g[1:])
    index = index * 1000 + int(last)
    if prefixed and prefixed[0] == "x000":
        raise TilePathError("bad index")  # a leading zero group would be a second URL for the same tile
    if index >= 1 << 64:
        raise TilePathError("index too large")
    return TileRef(level, index, width)


def partial_width(level: int, tree_size: int) -> int:
    """Width of the partial tile at `level` for a tree of `tree_size` (0 if there is none)."""
    return (tree_size >> (TILE_HEIGHT * level)) % TILE_WIDTH


def encode_bundle(entries: Iterable[bytes]) -> bytes:
    out = bytearray()
    for e in entries:
        if len(e) > MAX_ENTRY_BYTES:
            raise ValueError(f"entry of {len(e)} bytes does not fit a tlog-tiles entry bundle")
        out += len(e).to_bytes(2, "big") + e
    return bytes(out)


def decode_bundle(data: bytes) -> list[bytes]:
    out, i = [], 0
    while i < len(data):
        if i + 2 > len(data):
            raise ValueError("truncated entry length")
        n = int.from_bytes(data[i : i + 2], "big")
        if i + 2 + n > len(data):
            raise ValueError("truncated entry")
        out.append(data[i + 2 : i + 2 + n])
        i += 2 + n
    return out


def concat_hashes(hashes: Sequence[bytes]) -> bytes:
    return b"".join(hashes)
