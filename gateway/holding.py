"""Use cases for recipients without a key (issue 10): shares held for an address, claimed by e-mail code and
re-wrapped to the key the recipient then makes; passphrase shares. `service.Gateway` composes them as
`gw.holding`, given the store, the envelope files, the clock, the settings and the directory's use cases.

The payload is encrypted once per envelope as usual; a held envelope's file key is wrapped to the gateway's
holding key until the address is proven, then the header alone is rewritten for the recipient's key (the
payload bytes are copied unchanged) and the held wrapping destroyed. Every step is a ledger entry.
"""

from __future__ import annotations

import asyncio
import io
import logging
import time
from collections.abc import Callable, Coroutine, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from . import claims, envelope
from .auth import EmbeddedIssuer, Principal
from .config import Settings
from .directory import DirectoryUseCases
from .home import load_or_create_holding_identity
from .ledger import entry as ledger_entry
from .mail import Mail, Mailer, MailError
from .refusals import Gone, Invalid, Locked, Malformed, NotFound, RateLimited
from .store.envelopes import EnvelopeSpool, EnvelopeStore, OpenEnvelope
from .store.models import RECIPIENT_ACTIVE, HeldRow, Recipient, Share, StoreError
from .store.protocol import HeldShares, Store

log = logging.getLogger("safeshare.holding")

#: The system actor for what the gateway does by itself (re-wrap, expiry, approval of a claimed key).
#: Bytes read to find a held envelope's age header (its stanza and MAC line; a passphrase stanza is small).
REWRAP_HEADER_LIMIT = 64 * 1024
SYSTEM_ACTOR = ledger_entry.actor("safeshare-gateway", "system", None, "safeshare-gateway")


class SlidingWindow:
    """In-memory rate limit: at most `limit` events per `window` seconds per key (bounded number of keys)."""

    def __init__(self, limit: int, window: float, max_keys: int = 100_000) -> None:
        self.limit = limit
        self.window = window
        self.max_keys = max_keys
        self._events: dict[Any, list[float]] = {}

    def hit(self, key: Any) -> float | None:
        """Record an event; None if allowed, else the seconds until one is allowed again."""
        now = time.monotonic()
        events = [t for t in self._events.get(key, ()) if now - t < self.window]
        if len(events) >= self.limit:
            self._events[key] = events
            return self.window - (now - events[0])
        if len(self._events) >= self.max_keys and key not in self._events:
            self._events = {k: v for k, v in self._events.items() if v and now - v[-1] < self.window}
        events.append(now)
        self._events[key] = events
        return None


class HoldingUseCases:
    """Shares held for addresses without a key, their e-mail claims and re-wrapping, passphrase shares.

    Its own object (not a mixin on `Gateway`) so that what it needs is visible in `__init__`: the store, the
    envelope files, the clock, the key that makes claim codes unguessable, and the directory (a claimed key is
    approved through the directory's own enrolment decision). `mailer` is set by `app.create_app` when the
    gateway sends e-mail.
    """

    def __init__(
        self,
        settings: Settings,
        store: Store,
        envelopes: EnvelopeStore,
        clock: Callable[[], datetime],
        digest_key: bytes,
        directory: DirectoryUseCases,
    ) -> None:
        self.settings = settings
        self.store = store
        self.envelopes = envelopes
        self._clock = clock
        self._digest_key = digest_key
        self.directory = directory
        self.mailer: Mailer | None = None
        self._holding_identity: envelope.AgeIdentity | None = None
        #: Claim codes per address, and requests per client address on the public claim routes.
        self._claim_limits = (
            SlidingWindow(claims.CODES_PER_WINDOW, claims.CODE_WINDOW_SECONDS),
            SlidingWindow(60, 60.0),
        )
        self._mail_tasks: set[asyncio.Task[None]] = set()

    def now(self) -> datetime:
        return self._clock()

    def now_str(self) -> str:
        return ledger_entry.format_time(self.now())

    # -- set-up -------------------------------------------------------------------------------------

    @property
    def held(self) -> HeldShares:
        return self.store.held

    def holding_identity(self) -> envelope.AgeIdentity:
        if self._holding_identity is None:
            self._holding_identity = load_or_create_holding_identity(self.settings.holding_key_path)
        return self._holding_identity

    def check_ip_rate(self, ip: str | None) -> None:
        """Public claim/open routes: at most 60 requests a minute per client address."""
        wait = self._claim_limits[1].hit(ip or "?")
        if wait is not None:
            raise RateLimited(wait)

    # -- sharing with addresses -----------------------------------------------------------------------

    async def split_addresses(
        self, entries: Any, mode: Any, passphrase: Any
    ) -> tuple[list[str], list[str], str | None, str | None]:
        """(directory IDs, held addresses, mode, passphrase): an address of an active person with a key is that
        person; any other address needs `unenrolled` (verify | passphrase [+ passphrase])."""
        if (
            not isinstance(entries, list)
            or not entries
            or len(entries) > self.settings.limits.max_recipients
            or not all(isinstance(i, str) for i in entries)
        ):
            return entries, [], None, None  # _resolve_recipients refuses it
        ids: list[str] = []
        addresses: list[str] = []
        bad: list[str] = []
        for entry in entries:
            if not claims.is_address(entry):
                ids.append(entry)
                continue
            address = claims.normalise_address(entry)
            if address is None:
                bad.append(entry[:64])
            elif address not in addresses:
                addresses.append(address)
        if bad:
            raise Invalid(
                "invalid_share",
                "Some entries contain '@' but are not e-mail addresses.",
                "share.recipients",
                invalid=bad,
            )
        unknown: list[str] = []
        for address in addresses:
            found = await self._person_by_email(address)
            if found is not None:
                if found.id not in ids:
                    ids.append(found.id)
            else:
                unknown.append(address)
        if mode is not None and mode not in claims.UNENROLLED_MODES:
            raise Invalid("invalid_share", "unenrolled must be 'verify' or 'passphrase'.", "share.unenrolled")
        if passphrase is not None and mode != claims.MODE_PASSPHRASE:
            raise Invalid(
                "invalid_share", "A passphrase is only accepted with unenrolled: 'passphrase'.", "share.passphrase"
            )
        if unknown and mode is None:
            raise Invalid(
                "unknown_recipients",
                "Some addresses have no key in the directory; choose how they may open the share "
                "(unenrolled: 'verify' or 'passphrase'). Nothing was shared.",
                "share.recipients",
                unknown=unknown,
                disabled=[],
                empty_teams=[],
            )
        if unknown and mode == claims.MODE_VERIFY and self.mailer is None:
            raise Invalid(
                "mail_not_configured",
                "This gateway has no e-mail relay (SAFESHARE_SMTP_URL), so it cannot send the one-time codes a "
                "'verify' share needs. Use a passphrase, or ask the administrator to configure the relay.",
                "unenrolled",
            )
        if unknown and mode == claims.MODE_PASSPHRASE:
            problem = claims.passphrase_problem(passphrase)
            if problem is not None:
                raise Invalid("passphrase_weak", problem, "passphrase")
        return ids, unknown, (mode if unknown else None), (passphrase if unknown else None)

    async def _person_by_email(self, address: str) -> Recipient | None:
        return await self.store.person_by_email(address)

    def held_keys(
        self, addresses: Sequence[str], mode: str | None, passphrase: str | None
    ) -> list[tuple[str, str, envelope.Recipient]]:
        """(address, envelope stem, age recipient) for each held envelope: one per address to the holding key, or
        one scrypt envelope for all the addresses of a passphrase share."""
        if not addresses:
            return []
        if mode == claims.MODE_PASSPHRASE:
            assert passphrase is not None
            return [("", claims.PASSPHRASE_STEM, envelope.ScryptRecipient(passphrase))]
        holding = self.holding_identity().recipient()
        return [(a, claims.held_envelope_stem(a), holding) for a in addresses]

    @staticmethod
    def held_rows(
        share_id: str, addresses: Sequence[str], mode: str | None, digests: Mapping[str, tuple[str, int]]
    ) -> list[HeldRow]:
        rows = []
        for address in addresses:
            if mode == claims.MODE_PASSPHRASE:
                stem, row_mode, state = claims.PASSPHRASE_STEM, "passphrase", "active"
            else:
                stem, row_mode, state = claims.held_envelope_stem(address), "held", "held"
            sha, size = digests[stem]
            rows.append(HeldRow(share_id, address, row_mode, stem, sha, size, state, claims.recipient_id_for(address)))
        return rows

    async def notify_held_addresses(self, share_id: str, rows: Sequence[HeldRow], link: str, org: str | None) -> None:
        """Optional notice (config notify_held) to each held address: no content, no justification."""
        if not self.settings.notify_held or self.mailer is None:
            return
        for row in rows:
            if row.mode != "held":
                continue
            try:
                await self.mailer.send(
                    Mail(row.address, claims.NOTICE_SUBJECT, claims.notice_mail_body(share_id, link, org))
                )
            except MailError as exc:
                log.warning("notice e-mail not sent: %s", exc)

    # -- claim by e-mail code -----------------------------------------------------------------------

    def _claim_recipient(self, row_or_address: str) -> dict[str, Any]:
        return {
            "id": claims.recipient_id_for(row_or_address),
            "org": claims.address_domain(row_or_address),
            "address": row_or_address,
        }

    async def start_claim(self, share_id: str, address: str, link: str) -> None:
        """Send a code if `address` is held for this live share; otherwise do nothing (the caller cannot tell)."""
        wait = self._claim_limits[0].hit((share_id, address))
        if wait is not None:
            raise RateLimited(wait)
        code = claims.new_code()
        mac = claims.code_mac(claims.code_key(self._digest_key), share_id, address, code)
        now = self.now()
        expires = ledger_entry.format_time(now + timedelta(seconds=claims.CODE_TTL_SECONDS))
        outcome = await self.held.issue_code(
            share_id,
            address,
            mac,
            ledger_entry.format_time(now),
            expires,
            lambda s: ledger_entry.share_event_entry(
                kind=ledger_entry.KIND_CLAIM_CODE_SENT,
                time=ledger_entry.format_time(now),
                actor=None,
                share_id=s.id,
                share_index=s.ledger_index,
                subjects=s.subjects,
                recipients=[self._claim_recipient(address)],
                code_expires_at=expires,
            ),
        )
        if outcome == "gone":
            raise Gone("gone", "This share has expired or was withdrawn; it can no longer be opened.")
        if outcome != "sent" or self.mailer is None:
            return
        body = claims.code_mail_body(code, share_id, claims.CODE_TTL_SECONDS // 60, link)
        # Sent after answering: waiting for the relay only when the address is held would tell by the timing.
        self._in_background(self._send(Mail(address, claims.CODE_SUBJECT, body)))

    def _in_background(self, job: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(job)
        self._mail_tasks.add(task)  # keep a reference until done (the loop holds only weak ones)
        task.add_done_callback(self._mail_tasks.discard)

    async def _send(self, mail: Mail) -> None:
        assert self.mailer is not None
        try:
            await self.mailer.send(mail)
        except MailError as exc:
            log.warning("e-mail not sent: %s", exc)

    async def verify_claim(self, share_id: str, address: str, code: str, issuer: EmbeddedIssuer) -> dict[str, Any]:
        key = claims.code_key(self._digest_key)
        now = self.now_str()
        recipient = self._claim_recipient(address)

        def entries(outcome: str, share: Share, left: int) -> dict[str, Any]:
            kind = {
                "accepted": ledger_entry.KIND_CLAIM_CODE_ACCEPTED,
                "refused": ledger_entry.KIND_CLAIM_CODE_REFUSED,
                "locked": ledger_entry.KIND_CLAIM_LOCKED,
            }[outcome]
            details: dict[str, Any] = {"attempts_left": left} if outcome == "refused" else {}
            return ledger_entry.share_event_entry(
                kind=kind,
                time=now,
                actor=None,
                share_id=share.id,
                share_index=share.ledger_index,
                subjects=share.subjects,
                recipients=[recipient],
                **details,
            )

        result = await self.held.check_code(
            share_id,
            address,
            now,
            lambda stored: claims.code_matches(key, share_id, address, code, stored),
            claims.CODE_MAX_ATTEMPTS,
            claims.CLAIM_MAX_WRONG,
            entries,
        )
        if result.outcome == "gone":
            raise Gone("gone", "This share has expired or was withdrawn; it can no longer be opened.")
        if result.outcome == "locked":
            raise Locked(
                "claim_locked",
                "Too many wrong codes. Ask for a new code (if this share still allows it) or contact the sender.",
            )
        if result.outcome != "accepted":
            details: dict[str, Any] = {"attempts_left": result.attempts_left} if result.outcome == "invalid" else {}
            raise Malformed(
                "code_invalid", "That code is not right, or has expired. Check it or ask for a new one.", **details
            )
        rid = recipient["id"]
        token = issuer.issue(
            rid,
            ["recipient"],
            org=recipient["org"],
            ttl=claims.CLAIM_TOKEN_TTL,
            email=address,
            extra={"claim": share_id},
        )
        found = (await self.store.get_recipients([rid])).get(rid)
        if found is not None and found.status == RECIPIENT_ACTIVE and found.age_recipient:
            await self.rewrap_held(rid)  # already has a key: the share is theirs at once
        return {"token": token, "expires_in": claims.CLAIM_TOKEN_TTL, "recipient": rid}

    async def after_enrol(self, principal: Principal) -> bool:
        """A key enrolled with a claim: approved at once unless the organisation wants an administrator to."""
        if self.settings.claim_requires_approval:
            return False
        if not await self.held.claimed_for(principal.sub):
            return False
        found = (await self.store.get_recipients([principal.sub])).get(principal.sub)
        if found is not None and found.age_recipient:
            return False  # an existing recipient's key change still needs an administrator
        await self.directory.decide_enrolment(SYSTEM_ACTOR, principal.sub, True, "claimed by e-mail code")
        await self.rewrap_held(principal.sub)  # what Gateway.decide_enrolment does after an approval
        return True

    async def rewrap_held(self, recipient_id: str) -> list[int]:
        """Re-wrap every claimed envelope of this recipient to their active key; returns the ledger indexes."""
        found = (await self.store.get_recipients([recipient_id])).get(recipient_id)
        if found is None or found.status != RECIPIENT_ACTIVE or not found.age_recipient:
            return []
        key = envelope.parse_recipient(found.age_recipient)
        done = []
        for row in await self.held.claimed_for(recipient_id):
            index = await self._rewrap_one(row, found, key)
            if index is not None:
                done.append(index)
        return done

    async def _rewrap_one(self, row: HeldRow, rec: Recipient, key: envelope.AgeRecipient) -> int | None:
        # Only the header changes: the new one is made from the held one, the nonce and payload after it are
        # copied as they are, chunk by chunk, from wherever the envelopes live (flat memory at any size).
        head = await self.envelopes.head(row.share_id, row.envelope, REWRAP_HEADER_LIMIT)
        try:
            if head is None:
                raise OSError("held envelope gone")
            old_header = envelope.read_header(io.BytesIO(head))[1]
            file_key = envelope.unwrap_header(old_header, [self.holding_identity()])
            new_header = envelope.rewrap_header(old_header, file_key, [key])
        except (OSError, envelope.EnvelopeError) as exc:
            log.error("re-wrap failed: %s", type(exc).__name__)
            return None
        spool = await self.envelopes.spool([rec.id])
        try:
            await self._copy_rewrapped(row, rec.id, spool, len(old_header), new_header)
        except (OSError, StoreError) as exc:
            await spool.discard(row.share_id)
            log.error("re-wrap failed: %s", type(exc).__name__)
            return None
        old_sha = row.envelope_sha256  # as recorded at share time
        new_sha, size = spool.digest(rec.id)
        placement = spool.placement(row.share_id)
        place = placement.before_commit
        durable = list((placement.durable or {}).values())

        def place_durably() -> None:
            if place is not None:
                place()
            for job in durable:
                job()

        try:
            index = await self.held.complete_rewrap(
                row,
                rec.org,
                new_sha,
                size,
                lambda s: ledger_entry.share_event_entry(
                    kind=ledger_entry.KIND_REWRAPPED,
                    time=self.now_str(),
                    actor=SYSTEM_ACTOR,
                    share_id=s.id,
                    share_index=s.ledger_index,
                    subjects=s.subjects,
                    recipients=[{"id": rec.id, "org": rec.org, "address": row.address}],
                    old_envelope_sha256=old_sha,
                    envelope_sha256=new_sha,
                    envelope_size=size,
                    age_recipient=str(key),
                ),
                place_durably,
                spool=placement.spool,
            )
        except BaseException:
            await spool.discard(row.share_id)
            raise
        if index is None:
            await spool.discard(row.share_id)
        else:
            await self.envelopes.destroy(row.share_id, [row.envelope])  # the held wrapping
        return index

    async def _copy_rewrapped(
        self, row: HeldRow, name: str, spool: EnvelopeSpool, skip: int, new_header: bytes
    ) -> None:
        """Write `new_header`, then the held envelope's bytes after its first `skip` (its old header)."""
        opened = await self.envelopes.open(row.share_id, row.envelope)
        if opened is None:
            raise OSError("held envelope gone")
        try:
            await asyncio.to_thread(spool.write, name, new_header)
            async for data in opened.chunks():
                if skip:
                    cut = min(skip, len(data))
                    data, skip = data[cut:], skip - cut
                if data:
                    await asyncio.to_thread(spool.write, name, data)
                    await spool.flush()
        finally:
            await opened.close()
        await spool.seal()

    # -- passphrase shares --------------------------------------------------------------------------

    async def passphrase_header(self, share_id: str) -> bytes:
        found = await self.held.passphrase_row(share_id)
        if found is None:
            raise NotFound("not_found", "No such passphrase share.")
        share, row = found
        if row.state != "active" or share.state != "active" or share.expires_at <= self.now_str():
            raise NotFound("not_found", "No such passphrase share.")
        head = await self.envelopes.head(share_id, row.envelope, REWRAP_HEADER_LIMIT)
        try:
            if head is None:
                raise OSError("envelope gone")
            return envelope.read_header(io.BytesIO(head))[1]
        except (OSError, envelope.EnvelopeError):
            raise NotFound("not_found", "No such passphrase share.") from None

    async def open_passphrase(self, share_id: str) -> tuple[OpenEnvelope | None, HeldRow, int, bool]:
        now = self.now_str()
        outcome, row, index = await self._passphrase_fetch(share_id, now)
        if outcome == "none" or row is None:
            raise NotFound("not_found", "No such passphrase share.")
        if outcome == "gone":
            raise Gone("gone", "This share has expired, was withdrawn or has been downloaded as often as allowed.")
        opened = await self.envelopes.open(share_id, row.envelope)
        return opened, row, index, outcome == "exhausted_now"

    async def _passphrase_fetch(self, share_id: str, now: str) -> tuple[str, HeldRow | None, int]:
        found = await self.held.passphrase_row(share_id)
        sha = found[1].envelope_sha256 if found else ""
        return await self.held.passphrase_fetch(
            share_id,
            now,
            lambda s: ledger_entry.share_event_entry(
                kind=ledger_entry.KIND_FETCH,
                time=now,
                actor=None,
                share_id=s.id,
                share_index=s.ledger_index,
                subjects=s.subjects,
                recipients=[],
                mode="passphrase",
                envelope_sha256=sha,
            ),
        )

    # -- expiry -------------------------------------------------------------------------------------

    async def expire_held(self) -> list[str]:
        """Crypto-shred held and passphrase envelopes of shares past expiry (`expired_unclaimed`)."""
        now = self.now_str()
        share_ids = await self.held.expire_held(
            now,
            lambda s, rows: ledger_entry.share_event_entry(
                kind=ledger_entry.KIND_EXPIRED_UNCLAIMED,
                time=now,
                actor=None,
                share_id=s.id,
                share_index=s.ledger_index,
                subjects=s.subjects,
                recipients=[{**self._claim_recipient(r.address), "mode": r.mode} for r in rows],
                reason="expired",
            ),
        )
        for share_id in share_ids:
            rows = (await self.held.rows([share_id])).get(share_id, [])
            await self.envelopes.destroy(share_id, sorted({r.envelope for r in rows}))
        return share_ids

    async def revoke_held(self, share_id: str) -> None:
        """After the revocation (which closed the held rows in its own transaction): destroy their envelopes."""
        rows = [r for r in (await self.held.rows([share_id])).get(share_id, []) if r.state == "revoked"]
        if rows:
            await self.envelopes.destroy(share_id, sorted({r.envelope for r in rows}))
