"""An independent C2SP client, written from the spec texts alone (tlog-tiles, signed-note, tlog-checkpoint,
tlog-cosignature, tlog-proof, RFC 6962/9162). It imports nothing from `gateway`: hashing, tile arithmetic,
proof construction from tiles, signed-note parsing and both signature types are re-derived here, so a bug in
the gateway's own code cannot hide in the check of itself.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.mldsa import MLDSA44PublicKey

# --- RFC 6962 §2.1 ---------------------------------------------------------------------------------------


def leaf(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def largest_pow2_below(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


# --- tlog-tiles -----------------------------------------------------------------------------------------


def tile_index_path(n: int) -> str:
    """ "index 1234067 will be encoded as x001/x234/067"."""
    s = f"{n:03d}"
    while len(s) % 3:
        s = "0" + s
    groups = [s[i : i + 3] for i in range(0, len(s), 3)]
    return "/".join(["x" + g for g in groups[:-1]] + [groups[-1]])


def tile_url(level: int | str, n: int, width: int) -> str:
    return f"/tlog/tile/{level}/{tile_index_path(n)}" + ("" if width == 256 else f".p/{width}")


Fetch = Callable[[str], Awaitable[bytes]]


class TiledLog:
    """Computes any MTH(D[a:b]) of a tree of `size` leaves from the log's tiles, fetched on demand."""

    def __init__(self, fetch: Fetch, size: int) -> None:
        self.fetch = fetch
        self.size = size
        self.tiles: dict[tuple[int, int], list[bytes]] = {}

    async def _tile(self, level: int, n: int) -> list[bytes]:
        # "The partial tile at level l for a tree of size s has floor(s / 256**l) mod 256 entries."
        count = self.size // 256**level
        width = min(256, count - n * 256)
        key = (level, n)
        if key not in self.tiles:
            data = await self.fetch(tile_url(level, n, width))
            assert len(data) == 32 * width, (level, n, width, len(data))
            self.tiles[key] = [data[i : i + 32] for i in range(0, len(data), 32)]
        return self.tiles[key]

    async def perfect(self, height: int, index: int) -> bytes:
        """Hash of the perfect subtree of 2**height leaves starting at index * 2**height."""
        tile_level, sub = divmod(height, 8)
        first = index << sub  # index of the first tile entry at height 8 * tile_level
        n = first // 256
        hashes = await self._tile(tile_level, n)
        row = hashes[first % 256 : first % 256 + (1 << sub)]
        assert len(row) == 1 << sub
        while len(row) > 1:
            row = [node(row[i], row[i + 1]) for i in range(0, len(row), 2)]
        return row[0]

    async def mth(self, a: int, b: int) -> bytes:
        """RFC 6962 MTH(D[a:b]) for the ranges its recursion produces."""
        n = b - a
        if n == 0:
            return hashlib.sha256(b"").digest()
        if n & (n - 1) == 0 and a % n == 0:
            return await self.perfect(n.bit_length() - 1, a // n)
        k = largest_pow2_below(n)
        return node(await self.mth(a, a + k), await self.mth(a + k, b))

    async def path(self, m: int, a: int, b: int) -> list[bytes]:
        """RFC 6962 §2.1.1 PATH(m, D[a:b])."""
        n = b - a
        if n == 1:
            return []
        k = largest_pow2_below(n)
        if m < k:
            return [*await self.path(m, a, a + k), await self.mth(a + k, b)]
        return [*await self.path(m - k, a + k, b), await self.mth(a, a + k)]

    async def subproof(self, m: int, a: int, b: int, complete: bool) -> list[bytes]:
        """RFC 6962 §2.1.2 SUBPROOF(m, D[a:b], b)."""
        n = b - a
        if m == n:
            return [] if complete else [await self.mth(a, b)]
        k = largest_pow2_below(n)
        if m <= k:
            return [*await self.subproof(m, a, a + k, complete), await self.mth(a + k, b)]
        return [*await self.subproof(m - k, a + k, b, False), await self.mth(a, a + k)]


def decode_bundle(data: bytes) -> list[bytes]:
    """ "sequences of big-endian uint16 length-prefixed log entries"."""
    out, i = [], 0
    while i < len(data):
        n = int.from_bytes(data[i : i + 2], "big")
        out.append(data[i + 2 : i + 2 + n])
        assert len(out[-1]) == n, "truncated bundle"
        i += 2 + n
    return out


# --- signed-note, tlog-checkpoint, tlog-cosignature --------------------------------------------------------


@dataclass
class Note:
    text: bytes
    sigs: list[tuple[str, bytes, bytes]]  # (key name, key ID, signature)


def parse_note(data: bytes) -> Note:
    text = data.decode("utf-8")
    i = text.rindex("\n\n")
    body, sig_text = text[: i + 1], text[i + 2 :]
    sigs = []
    for line in sig_text.splitlines():
        assert line.startswith("\u2014 "), line
        name, b64 = line[2:].split(" ")
        raw = base64.b64decode(b64, validate=True)
        sigs.append((name, raw[:4], raw[4:]))
    return Note(body.encode("utf-8"), sigs)


def parse_checkpoint(text: bytes) -> tuple[str, int, bytes]:
    origin, size, root = text.decode("utf-8").split("\n")[:3]
    return origin, int(size), base64.b64decode(root)


def verify_ed25519(note: Note, name: str, public: bytes) -> bool:
    """signed-note 0x01: key ID = SHA-256(name || 0x0A || 0x01 || key)[:4], signature over the note text."""
    kid = hashlib.sha256(name.encode() + b"\n\x01" + public).digest()[:4]
    for n, k, sig in note.sigs:
        if (n, k) == (name, kid):
            try:
                Ed25519PublicKey.from_public_bytes(public).verify(sig, note.text)
                return True
            except InvalidSignature:
                return False
    return False


def verify_mldsa44(note: Note, name: str, public: bytes) -> bool:
    """tlog-cosignature 0x06: timestamped_signature over cosigned_message, start 0, end = checkpoint size."""
    kid = hashlib.sha256(name.encode() + b"\n\x06" + public).digest()[:4]
    origin, size, root = parse_checkpoint(note.text)
    for n, k, sig in note.sigs:
        if (n, k) != (name, kid):
            continue
        if len(sig) != 8 + 2420:
            return False
        timestamp = sig[:8]
        msg = (
            b"subtree/v1\n\x00"
            + bytes([len(name.encode())])
            + name.encode()
            + timestamp
            + bytes([len(origin.encode())])
            + origin.encode()
            + (0).to_bytes(8, "big")
            + size.to_bytes(8, "big")
            + root
        )
        try:
            MLDSA44PublicKey.from_public_bytes(public).verify(sig[8:], msg)
            return True
        except InvalidSignature:
            return False
    return False


# --- tlog-proof -------------------------------------------------------------------------------------------


@dataclass
class Proof:
    extra: bytes | None
    index: int
    hashes: list[bytes]
    checkpoint: bytes


def parse_tlog_proof(data: bytes) -> Proof:
    head, _, checkpoint = data.partition(b"\n\n")
    lines = head.decode("ascii").split("\n")
    assert lines[0] == "c2sp.org/tlog-proof@v1"
    rest = lines[1:]
    extra = None
    if rest[0].startswith("extra "):
        extra = base64.b64decode(rest[0][6:], validate=True)
        rest = rest[1:]
    assert rest[0].startswith("index ")
    return Proof(extra, int(rest[0][6:]), [base64.b64decode(h, validate=True) for h in rest[1:]], checkpoint)


def verify_cosignature_v1(note: Note, name: str, public: bytes) -> bool:
    """tlog-cosignature 0x04: Ed25519 over "cosignature/v1\\ntime <t>\\n" || note text; blob = u64 t || sig."""
    kid = hashlib.sha256(name.encode() + b"\n\x04" + public).digest()[:4]
    for n, k, sig in note.sigs:
        if (n, k) == (name, kid) and len(sig) == 72:
            t = int.from_bytes(sig[:8], "big")
            try:
                Ed25519PublicKey.from_public_bytes(public).verify(sig[8:], b"cosignature/v1\ntime %d\n" % t + note.text)
                return t > 0
            except InvalidSignature:
                return False
    return False
