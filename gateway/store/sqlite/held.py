"""Store operations for held and passphrase shares and claim codes; each change is one transaction with its entry."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ..models import SHARE_ACTIVE, CodeCheck, HeldRow, Share
from .envelopes import insert_blobs
from .repository import SQLiteStore, _load_share
from .tree import append_entry

EntryFor = Callable[[Share], Mapping[str, Any]]


_COLUMNS = "share_id, address, mode, envelope, envelope_sha256, envelope_size, state, recipient_id, downloads"


def _row(r: Sequence[Any]) -> HeldRow:
    return HeldRow(r[0], r[1], r[2], r[3], r[4], int(r[5]), r[6], r[7], int(r[8]))


def insert_held(conn: sqlite3.Connection, rows: Sequence[HeldRow]) -> None:
    conn.executemany(
        f"INSERT INTO held_recipients ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",  # noqa: S608
        [
            (
                r.share_id,
                r.address,
                r.mode,
                r.envelope,
                r.envelope_sha256,
                r.envelope_size,
                r.state,
                r.recipient_id,
                r.downloads,
            )
            for r in rows
        ],
    )


def _held(conn: sqlite3.Connection, share_id: str, address: str) -> HeldRow | None:
    r = conn.execute(
        f"SELECT {_COLUMNS} FROM held_recipients WHERE share_id = ? AND address = ?",  # noqa: S608
        (share_id, address),
    ).fetchone()
    return None if r is None else _row(r)


class HeldStore:
    def __init__(self, store: SQLiteStore) -> None:
        self.store = store

    async def rows(self, share_ids: Sequence[str]) -> dict[str, list[HeldRow]]:
        if not share_ids:
            return {}
        marks = ",".join("?" * len(share_ids))
        out: dict[str, list[HeldRow]] = {}
        async with self.store.reader.execute(
            f"SELECT {_COLUMNS} FROM held_recipients WHERE share_id IN ({marks}) ORDER BY address",  # noqa: S608
            tuple(share_ids),
        ) as cur:
            for r in await cur.fetchall():
                out.setdefault(r[0], []).append(_row(tuple(r)))
        return out

    async def claimed_for(self, recipient_id: str) -> list[HeldRow]:
        async with self.store.reader.execute(
            f"SELECT {_COLUMNS} FROM held_recipients WHERE recipient_id = ? AND state = 'claimed'",  # noqa: S608
            (recipient_id,),
        ) as cur:
            return [_row(tuple(r)) for r in await cur.fetchall()]

    async def issue_code(
        self, share_id: str, address: str, mac: bytes, now: str, expires_at: str, make_entry: EntryFor
    ) -> str:
        """Record a new code (older live ones are superseded): 'sent', 'none' (not held here) or 'gone'."""

        def op(conn: sqlite3.Connection) -> str:
            held = _held(conn, share_id, address)
            if held is None or held.mode != "held" or held.state == "rewrapped":
                return "none"
            share = _load_share(conn, share_id)
            if share is None:
                return "none"
            if held.state not in ("held", "claimed") or share.state != SHARE_ACTIVE or share.expires_at <= now:
                return "gone"
            conn.execute(
                "UPDATE claim_codes SET state = 'superseded' WHERE share_id = ? AND address = ? AND state = 'live'",
                (share_id, address),
            )
            conn.execute(
                "INSERT INTO claim_codes (share_id, address, code_mac, created_at, expires_at, attempts, state)"
                " VALUES (?, ?, ?, ?, ?, 0, 'live')",
                (share_id, address, mac, now, expires_at),
            )
            append_entry(conn, make_entry(share))
            return "sent"

        return await self.store._writer.submit(op)

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
        """Check a code against the latest live one, count the attempt, and record the outcome, atomically."""

        def op(conn: sqlite3.Connection) -> CodeCheck:
            held = _held(conn, share_id, address)
            share = _load_share(conn, share_id) if held is not None else None
            if held is None or share is None or held.mode != "held":
                return CodeCheck("none")
            if held.state not in ("held", "claimed") or share.state != SHARE_ACTIVE or share.expires_at <= now:
                return CodeCheck("gone", share=share)
            wrong = conn.execute(
                "SELECT coalesce(sum(attempts), 0) FROM claim_codes WHERE share_id = ? AND address = ?",
                (share_id, address),
            ).fetchone()[0]
            code = conn.execute(
                "SELECT id, code_mac, attempts, expires_at, state FROM claim_codes WHERE share_id = ? AND address = ?"
                " ORDER BY id DESC LIMIT 1",
                (share_id, address),
            ).fetchone()
            if wrong >= max_wrong or (code is not None and code[4] == "locked"):
                return CodeCheck("locked", share=share)
            if code is None or code[4] != "live" or code[3] <= now:
                return CodeCheck("none", share=share)
            code_id, mac, attempts = code[0], bytes(code[1]), int(code[2])
            if matches(mac):
                conn.execute("UPDATE claim_codes SET state = 'used' WHERE id = ?", (code_id,))
                conn.execute(
                    "UPDATE held_recipients SET state = 'claimed'"
                    " WHERE share_id = ? AND address = ? AND state = 'held'",
                    (share_id, address),
                )
                append_entry(conn, entries("accepted", share, 0))
                return CodeCheck("accepted", share=share)
            attempts += 1
            left = max(0, min(max_attempts - attempts, max_wrong - wrong - 1))
            conn.execute("UPDATE claim_codes SET attempts = ? WHERE id = ?", (attempts, code_id))
            append_entry(conn, entries("refused", share, left))
            if left == 0:
                conn.execute("UPDATE claim_codes SET state = 'locked' WHERE id = ?", (code_id,))
                append_entry(conn, entries("locked", share, 0))
                return CodeCheck("locked", share=share)
            return CodeCheck("invalid", attempts_left=left, share=share)

        return await self.store._writer.submit(op)

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
        """The re-wrapped envelope becomes the recipient's own (a share_recipients row; the share then shows in
        their inbox); the held row is closed; `place` renames the new file into place inside the transaction."""

        def op(conn: sqlite3.Connection) -> int | None:
            held = _held(conn, row.share_id, row.address)
            share = _load_share(conn, row.share_id)
            if held is None or held.state != "claimed" or share is None or share.state != SHARE_ACTIVE:
                return None
            if share.recipient(row.recipient_id) is not None:
                return None
            conn.execute(
                "INSERT INTO share_recipients (share_id, recipient_id, recipient_org, envelope_sha256,"
                " envelope_size, downloads, state) VALUES (?, ?, ?, ?, ?, 0, ?)",
                (row.share_id, row.recipient_id, recipient_org, sha256, size, SHARE_ACTIVE),
            )
            conn.execute(
                "UPDATE held_recipients SET state = 'rewrapped' WHERE share_id = ? AND address = ?",
                (row.share_id, row.address),
            )
            idx = append_entry(conn, make_entry(share))
            insert_blobs(conn, spool, row.share_id)
            if place is not None:
                place()
            return idx

        return await self.store._writer.submit(op)

    async def expire_held(self, now: str, make_entry: Callable[[Share, list[HeldRow]], Mapping[str, Any]]) -> list[str]:
        """Held/passphrase envelopes of shares past expiry: closed with an `expired_unclaimed` entry per share."""

        def op(conn: sqlite3.Connection) -> list[str]:
            found = conn.execute(
                f"SELECT {', '.join('h.' + c.strip() for c in _COLUMNS.split(','))} FROM held_recipients h"  # noqa: S608
                " JOIN shares s ON s.id = h.share_id"
                " WHERE h.state IN ('held', 'claimed', 'active') AND s.expires_at <= ? LIMIT 1000",
                (now,),
            ).fetchall()
            by_share: dict[str, list[HeldRow]] = {}
            for r in found:
                by_share.setdefault(r[0], []).append(_row(r))
            for share_id, rows in by_share.items():
                share = _load_share(conn, share_id)
                assert share is not None
                conn.execute(
                    "UPDATE held_recipients SET state = 'expired'"
                    " WHERE share_id = ? AND state IN ('held', 'claimed', 'active')",
                    (share_id,),
                )
                append_entry(conn, make_entry(share, rows))
            return list(by_share)

        return await self.store._writer.submit(op)

    async def passphrase_row(self, share_id: str) -> tuple[Share, HeldRow] | None:
        share = await self.store.get_share(share_id)
        if share is None:
            return None
        rows = (await self.rows([share_id])).get(share_id, [])
        row = next((r for r in rows if r.mode == "passphrase"), None)
        return None if row is None else (share, row)

    async def passphrase_fetch(self, share_id: str, now: str, make_entry: EntryFor) -> tuple[str, HeldRow | None, int]:
        """Count one download of a passphrase envelope: ('ok'|'none'|'gone'|'exhausted_now', row, ledger index)."""

        def op(conn: sqlite3.Connection) -> tuple[str, HeldRow | None, int]:
            share = _load_share(conn, share_id)
            rows = [
                _row(r)
                for r in conn.execute(
                    f"SELECT {_COLUMNS} FROM held_recipients WHERE share_id = ? AND mode = 'passphrase'",  # noqa: S608
                    (share_id,),
                ).fetchall()
            ]
            if share is None or not rows:
                return "none", None, -1
            row = rows[0]
            if row.state != "active" or share.state != SHARE_ACTIVE or share.expires_at <= now:
                return "gone", row, -1
            downloads = row.downloads + 1
            exhausted = share.max_downloads is not None and downloads >= share.max_downloads
            conn.execute(
                "UPDATE held_recipients SET downloads = ?, state = ? WHERE share_id = ? AND mode = 'passphrase'",
                (downloads, "exhausted" if exhausted else "active", share_id),
            )
            entry = dict(make_entry(share))
            entry["download"] = downloads
            idx = append_entry(conn, entry)
            return ("exhausted_now" if exhausted else "ok"), row, idx

        return await self.store._writer.submit(op)
