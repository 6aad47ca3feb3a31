"""Held and passphrase shares and their one-time claim codes on PostgreSQL (`protocol.HeldShares`).

The same operations as `store/held.py`, each one transaction with its ledger entry through the node's writer,
so a code's attempts, its single use and a passphrase envelope's download count are exact across nodes: every
write is serialised by the ledger's coordinator row (see `repository.py`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..models import SHARE_ACTIVE, CodeCheck, HeldRow, Share
from .envelopes import PgSpool

if TYPE_CHECKING:
    from .repository import PostgresStore

EntryFor = Callable[[Share], Mapping[str, Any]]
Conn = Any

_COLUMNS = "share_id, address, mode, envelope, envelope_sha256, envelope_size, state, recipient_id, downloads"


def _row(r: Sequence[Any]) -> HeldRow:
    return HeldRow(r[0], r[1], r[2], r[3], r[4], int(r[5]), r[6], r[7], int(r[8]))


async def insert_held(conn: Conn, rows: Sequence[HeldRow]) -> None:
    if rows:
        await conn.executemany(
            f"INSERT INTO held_recipients ({_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",  # noqa: S608
            [
                (r.share_id, r.address, r.mode, r.envelope, r.envelope_sha256, r.envelope_size, r.state)
                + (r.recipient_id, r.downloads)
                for r in rows
            ],
        )


async def _held(conn: Conn, share_id: str, address: str) -> HeldRow | None:
    r = await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM held_recipients WHERE share_id = $1 AND address = $2 FOR UPDATE",  # noqa: S608
        share_id,
        address,
    )
    return None if r is None else _row(r)


class PgHeldStore:
    def __init__(self, store: PostgresStore) -> None:
        self.store = store

    async def rows(self, share_ids: Sequence[str]) -> dict[str, list[HeldRow]]:
        if not share_ids:
            return {}
        out: dict[str, list[HeldRow]] = {}
        async with self.store._read() as conn:
            rows = await conn.fetch(
                f"SELECT {_COLUMNS} FROM held_recipients WHERE share_id = ANY($1::text[])"  # noqa: S608
                ' ORDER BY address COLLATE "C"',
                list(share_ids),
            )
        for r in rows:
            out.setdefault(r[0], []).append(_row(r))
        return out

    async def claimed_for(self, recipient_id: str) -> list[HeldRow]:
        async with self.store._read() as conn:
            rows = await conn.fetch(
                f"SELECT {_COLUMNS} FROM held_recipients WHERE recipient_id = $1 AND state = 'claimed'",  # noqa: S608
                recipient_id,
            )
        return [_row(r) for r in rows]

    async def issue_code(
        self, share_id: str, address: str, mac: bytes, now: str, expires_at: str, make_entry: EntryFor
    ) -> str:
        from .repository import _load_share

        async def op(conn: Conn) -> str:
            held = await _held(conn, share_id, address)
            if held is None or held.mode != "held" or held.state == "rewrapped":
                return "none"
            share = await _load_share(conn, share_id)
            if share is None:
                return "none"
            if held.state not in ("held", "claimed") or share.state != SHARE_ACTIVE or share.expires_at <= now:
                return "gone"
            await conn.execute(
                "UPDATE claim_codes SET state = 'superseded' WHERE share_id = $1 AND address = $2 AND state = 'live'",
                share_id,
                address,
            )
            await conn.execute(
                "INSERT INTO claim_codes (share_id, address, code_mac, created_at, expires_at, attempts, state)"
                " VALUES ($1, $2, $3, $4, $5, 0, 'live')",
                share_id,
                address,
                mac,
                now,
                expires_at,
            )
            await self.store._append(conn, make_entry(share))
            return "sent"

        return await self.store._submit(op)

    async def check_code(
        self,
        share_id: str,
        address: str,
        now: str,
        matches: Callable[[bytes], bool],
        max_attempts: int,
        max_wrong: int,
        entries: Callable[[str, Share, int], Mapping[str, Any]],
    ) -> CodeCheck:
        from .repository import _load_share

        async def op(conn: Conn) -> CodeCheck:
            held = await _held(conn, share_id, address)
            share = await _load_share(conn, share_id) if held is not None else None
            if held is None or share is None or held.mode != "held":
                return CodeCheck("none")
            if held.state not in ("held", "claimed") or share.state != SHARE_ACTIVE or share.expires_at <= now:
                return CodeCheck("gone", share=share)
            wrong = int(
                await conn.fetchval(
                    "SELECT coalesce(sum(attempts), 0) FROM claim_codes WHERE share_id = $1 AND address = $2",
                    share_id,
                    address,
                )
            )
            code = await conn.fetchrow(
                "SELECT id, code_mac, attempts, expires_at, state FROM claim_codes WHERE share_id = $1"
                " AND address = $2 ORDER BY id DESC LIMIT 1",
                share_id,
                address,
            )
            if wrong >= max_wrong or (code is not None and code[4] == "locked"):
                return CodeCheck("locked", share=share)
            if code is None or code[4] != "live" or code[3] <= now:
                return CodeCheck("none", share=share)
            code_id, code_mac, attempts = int(code[0]), bytes(code[1]), int(code[2])
            if matches(code_mac):
                await conn.execute("UPDATE claim_codes SET state = 'used' WHERE id = $1", code_id)
                await conn.execute(
                    "UPDATE held_recipients SET state = 'claimed'"
                    " WHERE share_id = $1 AND address = $2 AND state = 'held'",
                    share_id,
                    address,
                )
                await self.store._append(conn, entries("accepted", share, 0))
                return CodeCheck("accepted", share=share)
            attempts += 1
            left = max(0, min(max_attempts - attempts, max_wrong - wrong - 1))
            await conn.execute("UPDATE claim_codes SET attempts = $1 WHERE id = $2", attempts, code_id)
            await self.store._append(conn, entries("refused", share, left))
            if left == 0:
                await conn.execute("UPDATE claim_codes SET state = 'locked' WHERE id = $1", code_id)
                await self.store._append(conn, entries("locked", share, 0))
                return CodeCheck("locked", share=share)
            return CodeCheck("invalid", attempts_left=left, share=share)

        return await self.store._submit(op)

    async def complete_rewrap(
        self,
        row: HeldRow,
        recipient_org: str,
        sha256: str,
        size: int,
        make_entry: EntryFor,
        place: Callable[[], None] | None,
        spool: object | None = None,
    ) -> int | None:
        from .repository import _load_share

        async def op(conn: Conn) -> int | None:
            held = await _held(conn, row.share_id, row.address)
            share = await _load_share(conn, row.share_id)
            if held is None or held.state != "claimed" or share is None or share.state != SHARE_ACTIVE:
                return None
            if share.recipient(row.recipient_id) is not None:
                return None
            await conn.execute(
                "INSERT INTO share_recipients (share_id, recipient_id, recipient_org, envelope_sha256,"
                " envelope_size, downloads, state) VALUES ($1, $2, $3, $4, $5, 0, $6)",
                row.share_id,
                row.recipient_id,
                recipient_org,
                sha256,
                size,
                SHARE_ACTIVE,
            )
            await conn.execute(
                "UPDATE held_recipients SET state = 'rewrapped' WHERE share_id = $1 AND address = $2",
                row.share_id,
                row.address,
            )
            idx = await self.store._append(conn, make_entry(share))
            if isinstance(spool, PgSpool):
                await spool.place(conn, row.share_id)
            if place is not None:
                place()
            return idx

        return await self.store._submit(op)

    async def expire_held(self, now: str, make_entry: Callable[[Share, list[HeldRow]], Mapping[str, Any]]) -> list[str]:
        from .repository import _load_share

        async def op(conn: Conn) -> list[str]:
            found = await conn.fetch(
                f"SELECT {', '.join('h.' + c.strip() for c in _COLUMNS.split(','))} FROM held_recipients h"  # noqa: S608
                " JOIN shares s ON s.id = h.share_id"
                " WHERE h.state IN ('held', 'claimed', 'active') AND s.expires_at <= $1 LIMIT 1000",
                now,
            )
            by_share: dict[str, list[HeldRow]] = {}
            for r in found:
                by_share.setdefault(r[0], []).append(_row(r))
            for share_id, rows in by_share.items():
                share = await _load_share(conn, share_id)
                assert share is not None
                await conn.execute(
                    "UPDATE held_recipients SET state = 'expired'"
                    " WHERE share_id = $1 AND state IN ('held', 'claimed', 'active')",
                    share_id,
                )
                await self.store._append(conn, make_entry(share, rows))
            return list(by_share)

        return await self.store._submit(op)

    async def passphrase_row(self, share_id: str) -> tuple[Share, HeldRow] | None:
        share = await self.store.get_share(share_id)
        if share is None:
            return None
        rows = (await self.rows([share_id])).get(share_id, [])
        row = next((r for r in rows if r.mode == "passphrase"), None)
        return None if row is None else (share, row)

    async def passphrase_fetch(self, share_id: str, now: str, make_entry: EntryFor) -> tuple[str, HeldRow | None, int]:
        from .repository import _load_share

        async def op(conn: Conn) -> tuple[str, HeldRow | None, int]:
            share = await _load_share(conn, share_id)
            rows = [
                _row(r)
                for r in await conn.fetch(
                    f"SELECT {_COLUMNS} FROM held_recipients WHERE share_id = $1 AND mode = 'passphrase'",  # noqa: S608
                    share_id,
                )
            ]
            if share is None or not rows:
                return "none", None, -1
            row = rows[0]
            if row.state != "active" or share.state != SHARE_ACTIVE or share.expires_at <= now:
                return "gone", row, -1
            downloads = row.downloads + 1
            exhausted = share.max_downloads is not None and downloads >= share.max_downloads
            await conn.execute(
                "UPDATE held_recipients SET downloads = $1, state = $2 WHERE share_id = $3 AND mode = 'passphrase'",
                downloads,
                "exhausted" if exhausted else "active",
                share_id,
            )
            entry = dict(make_entry(share))
            entry["download"] = downloads
            idx = await self.store._append(conn, entry)
            return ("exhausted_now" if exhausted else "ok"), row, idx

        return await self.store._submit(op)
