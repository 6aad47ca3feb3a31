"""The gateway's use cases: share, decide, fetch, revoke, expire — each one transaction with its ledger entry.

This is the imperative shell around the pure modules (`justification`, `envelope`, `ledger.entry`): it owns
the clock, the store, the envelope files and the keyed digest key. HTTP handlers and the CLI both call it.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import hashlib
import hmac
import io
import logging
import re
import secrets
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from . import disclosure as disclosure_rules
from . import emergency as emergency_rules
from . import envelope, inputs, tenancy
from . import reconsider as reconsider_rules
from . import retention as retention_rules
from .advice import AdviceUseCases
from .auth import Principal
from .config import Settings
from .directory import RECIPIENT_ID_RE, DirectoryUseCases, EnrolmentRequest
from .dual_control import DualControlUseCases
from .emergencies import EmergencyUseCases
from .holding import HoldingUseCases
from .idempotency import Idempotency
from .justification import ORG_TYPES, Policy, PolicyRegistry, Problem, SharerContext
from .justification import validate as validate_justification
from .ledger import entry as ledger_entry
from .ledger.signer import LedgerSigner
from .partnership import AgreementUseCases
from .reconsideration import ReconsiderationUseCases
from .refusals import Conflict, Gone, Invalid, TooLarge, not_found
from .retention_review import RetentionUseCases
from .store.envelopes import ESCROW_ID, OpenEnvelope, envelope_store
from .store.models import (
    RECIPIENT_ACTIVE,
    SHARE_ACTIVE,
    SHARE_EXPIRED,
    Recipient,
    Share,
    ShareRecipient,
)
from .store.protocol import Store

log = logging.getLogger("safeshare.service")

#: Envelope files younger than this are left by the start-up sweep when nodes share the database (and so the
#: envelopes directory): a share another node is writing is not yet in the database.
SHARED_SWEEP_GRACE_SECONDS = 3600.0

#: Bytes read to find an envelope's age header (one recipient's stanza, post-quantum ones included, and the MAC).
HEADER_LIMIT = 64 * 1024

SHARE_ID_RE = re.compile(r"^sh_[a-z2-7]{24}$")
CONTENT_TYPE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}$")
#: Encrypt in slices of this size off the event loop: big enough to amortise the thread hop.
ENCRYPT_SLICE = 1024 * 1024
#: A payload up to this size is encrypted and its envelopes finished on the event loop (ChaCha20-Poly1305 over
#: 64 KiB is ~50 µs): a thread hand-off costs more than that in loop time and latency (issue 15).
INLINE_SLICE = 64 * 1024

#: Recipient types whose wrap is a public-key operation (~0.1 ms), and how many of them are wrapped on the loop.
PUBLIC_KEY_RECIPIENTS = (envelope.X25519Recipient, envelope.MLKEM768X25519Recipient)
INLINE_WRAPS = 8

#: Recipients' age keys parsed once: bech32 decoding an ``age1pq1…`` key (1,960 characters) in Python costs
#: about a millisecond per share. Parsed keys are immutable public keys; bounded like any per-key cache.
_parse_recipient = functools.lru_cache(maxsize=4096)(envelope.parse_recipient)

MIN_EXPIRY_SECONDS = 60


def receipt_url(index: int) -> str:
    """Where the actor can later fetch the entry with its inclusion proof and a signed checkpoint."""
    return f"/api/v1/ledger/entries/{index}"


def _check_entry_size(entry: Mapping[str, Any]) -> None:
    """Refuse, before anything is stored, an entry too large for a C2SP tlog-tiles entry bundle (64 KiB)."""
    try:
        ledger_entry.check_size(entry)
    except ledger_entry.EntryTooLarge as exc:
        raise Invalid(
            "entry_too_large",
            f"This record would take {exc.size} bytes in the ledger, more than its limit of "
            f"{ledger_entry.MAX_ENTRY_BYTES}; shorten the justification's free text.",
            "justification",
            limit=ledger_entry.MAX_ENTRY_BYTES,
            size=exc.size,
        ) from None


def new_share_id() -> str:
    """Unguessable (120 bits) because it appears in notification e-mails; lower-case base32 for URLs."""
    return "sh_" + base64.b32encode(secrets.token_bytes(15)).decode().lower()


#: As long as every share ID, for measuring an entry before its share has one (no random bytes spent on it).
SIZING_SHARE_ID = "sh_" + "a" * 24


def justification_problems_error(problems: Sequence[Problem]) -> Invalid:
    return Invalid(
        "justification_incomplete",
        "The justification does not yet answer every golden rule; nothing was shared or recorded.",
        problems=[p.as_dict() for p in problems],
    )


#: What `ShareRequest.expires_in` holds when the client named no expiry (JSON `null` is refused, not defaulted).
DEFAULT_EXPIRY: Any = object()


@dataclass(frozen=True)
class ShareRequest:
    """A share's description as the client sent it (the JSON `share` part, parsed by `api/shares.py`).

    Only its shape is settled here — the fields are the ones a share has, and a justification is present —
    because every value is checked by `prepare_share` in a fixed order (justification first, then recipients,
    agreements, content type, expiry, download cap), and a client relies on which refusal comes first. The
    values are therefore still as sent (`object`): narrowing them is `prepare_share`'s job.
    """

    justification: object
    recipients: object = None
    payload_content_type: object = "application/octet-stream"
    #: `DEFAULT_EXPIRY` when absent: the gateway's `limits.default_expiry_seconds`.
    expires_in: object = DEFAULT_EXPIRY
    max_downloads: object = None
    agreement_override: object = None
    unenrolled: object = None
    passphrase: object = field(default=None, repr=False)
    #: Answers to questions for advice (issue 14) cited in the justification: their ids, checked by the use case.
    advice: object = None
    #: The agreement's standard answers the justification started from (issue 13), checked by the use case.
    started_from: object = None


@dataclass(frozen=True)
class DecisionRequest:
    """A decision recorded without a payload (`POST /api/v1/decisions`, parsed by `api/decisions.py`): the
    justification, and for a `share` decision the disclosure made another way. Like `ShareRequest`, the values
    are still as sent: the policy and `disclosure.problems` check them, in that order."""

    justification: object
    disclosure: object = None


@dataclass(frozen=True)
class Acknowledgement:
    """A recipient's "received and actioned" (parsed by `api/shares.py`): the note the sender sees."""

    note: str


@dataclass(frozen=True)
class EscrowRelease:
    """An administrator's release of the escrow envelope (parsed by `api/shares.py`): the reason recorded."""

    reason: str


def acknowledgement(note: object) -> Acknowledgement:
    """The acknowledgement a client sent, or the `invalid_acknowledgement` refusal."""
    return Acknowledgement(inputs.text(note, "note", "invalid_acknowledgement"))


def escrow_release(reason: object) -> EscrowRelease:
    """The escrow release a client sent, or the `invalid_reason` refusal."""
    return EscrowRelease(
        inputs.text(
            reason, "reason", "invalid_reason", "A reason (e.g. the court order or request reference) is required."
        )
    )


@dataclass(frozen=True)
class PreparedShare:
    """A share request whose metadata has been fully checked; only the payload remains to be read."""

    principal: Principal
    justification: Mapping[str, Any]
    policy: Policy
    #: Who gets an envelope: named people, and each active member of a named team (one envelope per person).
    recipients: tuple[Recipient, ...]
    age_recipients: tuple[envelope.AgeRecipient, ...]
    #: Parallel to `recipients`: the team a person receives through, or None when named directly.
    via: tuple[str | None, ...]
    content_type: str
    expires_at: datetime
    max_downloads: int | None
    #: The partnership agreements (id, version, document digest) the share is made under, and an override.
    agreements: tuple[Mapping[str, Any], ...] = ()
    agreement_override: Mapping[str, Any] | None = None
    #: Addresses without a key (issue 10): held for an e-mail claim, or opened with a passphrase.
    held: tuple[str, ...] = ()
    unenrolled: str | None = None
    passphrase: str | None = field(default=None, repr=False)
    #: An emergency share (issue 14): when its justification is due and which answers are owed.
    emergency: Mapping[str, Any] | None = None
    #: The answered advice the justification cites (issue 14): who answered, when, what they said.
    advice: tuple[Mapping[str, Any], ...] = ()
    #: Held for a second person's approval (issue 14): the approver roles, and which purpose or risk level.
    dual_control: Mapping[str, Any] | None = None
    #: The standard answers the justification started from, as the ledger keeps it (issue 13).
    started_from: Mapping[str, Any] | None = None
    #: The policy's retention class for this share (issue 14), and whether it shortened the requested lifetime.
    retention: Mapping[str, Any] | None = None
    #: The sender's and organisation's names for people to read (`Gateway._sender_names`), or None for each.
    sender_names: tuple[str | None, str | None] = (None, None)


class Gateway:
    """Sharing use cases. The others are their own objects, composed here and given what they need: the
    directory's (recipients, teams, enrolment) are `self.directory`'s, the held shares' and claims'
    `self.holding`'s, the partnership agreements' `self.agreements`'s. Issue 14's are `self.emergencies`,
    `self.reconsideration`, `self.advice`, `self.dual_control` and `self.retention`: what they share with this
    class (`record_decision`, `_actor`, `is_sender`, the clock) is handed to them as bound callables, never the
    whole object, so each depends only on the steps it uses."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        policies: PolicyRegistry,
        digest_key: bytes,
        signer: LedgerSigner,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.settings = settings
        self.signer = signer
        self.escrow = envelope.parse_recipient(settings.escrow_recipient) if settings.escrow_recipient else None
        self.store = store
        # In PostgreSQL by default there, so every node reads every share; else a directory (store/envelopes.py).
        self.envelopes = envelope_store(
            store, settings.envelopes_dir, settings.envelopes_in_database, shared=_shared_database(settings)
        )
        self.policies = policies
        self._digest_key = digest_key
        self._clock = clock
        self.directory = DirectoryUseCases(store, self.now_str, settings)
        self.holding = HoldingUseCases(settings, store, self.envelopes, self.now, digest_key, self.directory)
        self.agreements = AgreementUseCases(settings, policies, store.agreements, self.now_str)
        self.emergencies = EmergencyUseCases(
            settings,
            store,
            self.now,
            self.now_str,
            self.check_justification,
            self._policy_ref,
            self._actor,
            self.is_sender,
        )
        self.reconsideration = ReconsiderationUseCases(store, self.record_decision)
        self.advice = AdviceUseCases(store, policies, self.now_str, self._actor)
        self.dual_control = DualControlUseCases(settings, store, self.now_str, self._actor, self.is_sender)
        self.retention = RetentionUseCases(store, self.now_str)

    def now(self) -> datetime:
        return self._clock()

    def now_str(self) -> str:
        return ledger_entry.format_time(self.now())

    @staticmethod
    def _actor(principal: Principal, role: str) -> dict[str, Any]:
        return ledger_entry.actor(principal.sub, role, principal.org, principal.issuer)

    # -- start-up ---------------------------------------------------------------------------------

    async def sweep_orphans(self, min_age: float | None = None) -> int:
        """Remove envelope files the database does not vouch for (interrupted shares or deletions).

        `min_age`: spare files younger than this many seconds; by default, an hour where other processes may be
        writing right now (README, "Several nodes"), nothing otherwise."""
        live = await self.store.live_envelopes()
        if min_age is None:
            min_age = SHARED_SWEEP_GRACE_SECONDS if _shared_database(self.settings) else 0.0
        removed = await self.envelopes.sweep(live, min_age)
        if removed:
            log.info("start-up sweep removed %d orphaned envelope file(s)", removed)
        return removed

    # -- keys made after an e-mail claim (issue 10) ---------------------------------------------------

    async def enrol(self, principal: Principal, req: EnrolmentRequest) -> dict[str, Any]:
        result = await self.directory.enrol(principal, req)
        if await self.holding.after_enrol(principal):
            result["enrolment"]["status"] = "approved"
        return result

    async def decide_enrolment(
        self,
        actor: Mapping[str, Any],
        recipient_id: str,
        approve: bool,
        reason: str | None = None,
        *,
        by: Principal | None = None,
    ) -> dict[str, Any]:
        result = await self.directory.decide_enrolment(actor, recipient_id, approve, reason, by=by)
        if approve:
            await self.holding.rewrap_held(recipient_id)  # held envelopes the address claimed become this key's
        return result

    # -- justification ----------------------------------------------------------------------------

    def check_justification(
        self, draft: Any, principal: Principal | None = None
    ) -> tuple[Policy | None, list[Problem]]:
        """Check a draft against the policy it names, else the caller's organisation's default policy."""
        context = None if principal is None else self.sharer_context(principal)
        return validate_justification(self.policies, draft, None if principal is None else principal.org, context)

    def sharer_context(self, principal: Principal) -> SharerContext:
        """The organisation's type and appropriate policy document: from the token, else `[policies]` configuration.

        Never from the draft: whether legitimate interests is available depends on what the organisation is, which
        a practitioner should not have to (or be able to) assert per share.
        """
        configured = dict(self.settings.policies.org_type)
        org_type = principal.org_type if principal.org_type in ORG_TYPES else None
        if org_type is None and principal.org is not None:
            org_type = configured.get(principal.org)
        document = None
        ref = dict(self.settings.policies.policy_document).get(principal.org) if principal.org is not None else None
        if ref is not None:
            doc_id, _, version = ref.partition("@")
            document = {"id": doc_id.strip(), "version": version.strip()}
        return SharerContext(org_type=org_type, policy_document=document)

    def _decider(self, principal: Principal, role: str) -> dict[str, Any]:
        """Who decided, for the ledger (rule 7, ICO Annex B): the token's actor plus their name, job title, the
        organisation's name, type and appropriate policy document where known — never taken from the request body.
        The organisation's name is recorded so that an organisation that only ever decided not to share is named
        too where the ledger is read (nothing else beside the ledger names it: no share row, perhaps no directory
        entry)."""
        actor = self._actor(principal, role)
        context = self.sharer_context(principal)
        for key, value in (
            ("name", principal.name),
            ("job_title", principal.job_title),
            ("org_name", principal.org_name),
            ("org_type", context.org_type),
            ("policy_document", context.policy_document),
        ):
            if value is not None:
                actor[key] = value
        return actor

    def _policy_ref(self, policy: Policy) -> dict[str, str]:
        return {"id": policy.id, "version": policy.version, "digest": policy.digest}

    # -- decisions --------------------------------------------------------------------------------

    async def record_decision(
        self,
        principal: Principal,
        req: DecisionRequest,
        idempotency: Idempotency | None = None,
        explanation: Any = None,
        reconsiders: Mapping[str, Any] | None = None,
        advice: Any = None,
        started_from: Any = None,
    ) -> dict[str, Any]:
        """Golden rule 7 without a payload: a decision not to share, or a disclosure made elsewhere.

        `explanation` (not-share only): what whoever asked was told (`gateway.reconsider`). `reconsiders`: the
        earlier refusal this decision looks at again, with the new information (checked by the caller).

        A `share` decision must carry a `disclosure` (how, with whom, what, when; `gateway.disclosure`); a
        not-share decision the policy's safety net challenges is recorded with its flag (its sign-off or
        other route is in the justification, which the policy has already required).
        """
        draft: Any = req.justification
        disclosure: Any = req.disclosure
        policy, problems = self.check_justification(draft, principal)
        decision = draft.get("decision") if isinstance(draft, dict) else None
        extra = [
            *disclosure_rules.problems(disclosure, decision, self.now()),
            *reconsider_rules.explanation_problems(policy, explanation, decision),
        ]
        if problems or policy is None or extra:
            raise justification_problems_error([*problems, *extra])
        recorded = None if disclosure is None else await self._disclosure_record(disclosure)
        cited = await self.advice.cited_advice(principal, advice)
        flags = [net.id for net in policy.safety_nets_for(draft)]
        entry = ledger_entry.decision_entry(
            time=self.now_str(),
            actor=self._decider(principal, "practitioner"),
            justification=draft,
            policy=self._policy_ref(policy),
            disclosure=recorded,
            flags=flags,
        )
        named = await self.agreements.named_agreements(draft)
        if named:
            entry["agreements"] = named
        started = await self.agreements.started_from(started_from, draft, policy, named, "started_from")
        if started is not None:
            entry["started_from"] = started
        if explanation is not None:
            entry["explanation"] = {k: str(v).strip() for k, v in explanation.items()}
        if reconsiders is not None:
            entry["reconsiders"] = dict(reconsiders)
        if cited:
            entry["advice"] = cited

        _check_entry_size(entry)

        def respond(index: int) -> dict[str, Any]:
            result: dict[str, Any] = {
                "ledger_index": index,
                "decision": draft["decision"],
                "recorded_at": entry["time"],
                "receipt": receipt_url(index),
                "receipt_proof": receipt_url(index) + "/proof",
            }
            if recorded is not None:
                result["disclosure"] = {**recorded, "description": disclosure_rules.describe(recorded)}
            if flags:
                result["flags"] = flags
            if reconsiders is not None:
                result["reconsiders"] = reconsiders["index"]
            return result

        index = await self.store.record(entry, None if idempotency is None else idempotency.write(respond))
        return respond(index)

    async def _disclosure_record(self, disclosure: Mapping[str, Any]) -> dict[str, Any]:
        """The ledger's copy: directory IDs resolved to name and organisation (any status: a phone call to a
        disabled recipient still happened), the time normalised to the ledger's format."""
        people = [dict(w) for w in disclosure["with"]]
        ids = [w["recipient"] for w in people if "recipient" in w]
        found = await self.store.get_recipients(ids) if ids else {}
        unknown = [i for i in ids if i not in found]
        if unknown:
            raise Invalid(
                "unknown_recipients",
                "Some people are named by a directory ID the directory does not hold; name them by name, role and "
                "organisation instead.",
                "disclosure.with",
                unknown=unknown,
            )
        for w in people:
            if "recipient" in w:
                r = found[w["recipient"]]
                w.update({"name": r.name, "org": r.org})
        out: dict[str, Any] = {
            "channel": disclosure["channel"],
            "with": people,
            "summary": disclosure["summary"],
            "at": ledger_entry.format_time(disclosure_rules.normalised_time(disclosure["at"])),
        }
        return out

    # -- shares -----------------------------------------------------------------------------------

    async def prepare_share(self, principal: Principal, req: ShareRequest) -> PreparedShare:
        """Check everything about a share before a single payload byte is read."""
        draft: Any = req.justification
        policy, problems = self.check_justification(draft, principal)
        # Someone at immediate risk: the share goes at once with the policy's minimum, the rest owed (issue 14).
        owed = None if policy is None else emergency_rules.deferred_problems(policy, draft, problems)
        if (problems and owed is None) or policy is None:
            raise justification_problems_error(problems)
        if draft.get("decision") != "share":
            raise Invalid(
                "decision_not_share",
                "A share needs a justification whose decision is 'share'; record other decisions at /api/v1/decisions.",
                "share.justification.decision",
            )
        _check_entry_size(
            ledger_entry.share_entry(
                time=self.now_str(),
                actor=self._decider(principal, "practitioner"),
                share_id=SIZING_SHARE_ID,
                justification=draft,
                policy=self._policy_ref(policy),
                recipients=[],
                payload={},
                expires_at="",
                max_downloads=None,
            )
        )
        cited = await self.advice.cited_advice(principal, req.advice)
        ids, held, mode, passphrase = await self.holding.split_addresses(req.recipients, req.unenrolled, req.passphrase)
        sender = principal.sub if self._needs_sender_entry(principal) else None
        if ids or not held:
            recipients, via, sender_entry = await self._resolve_recipients(ids, sender)
        else:
            recipients, via = [], []
            sender_entry = (await self.store.get_recipients([sender])).get(sender) if sender is not None else None
        # Addresses without a key carry no organisation yet: the agreements are checked for the keyed recipients.
        agreement_refs, override = await self.agreements.check_share_agreements(
            principal, draft, recipients, req.agreement_override
        )
        started = await self.agreements.started_from(
            req.started_from, draft, policy, agreement_refs, "share.started_from"
        )
        content_type = req.payload_content_type
        if not isinstance(content_type, str) or not CONTENT_TYPE_RE.match(content_type):
            raise Invalid(
                "invalid_share",
                "payload_content_type must be a media type such as 'message/rfc822' or 'text/plain'.",
                "share.payload_content_type",
            )
        limits = self.settings.limits
        expires_in = limits.default_expiry_seconds if req.expires_in is DEFAULT_EXPIRY else req.expires_in
        if (
            not isinstance(expires_in, int)
            or isinstance(expires_in, bool)
            or not MIN_EXPIRY_SECONDS <= expires_in <= limits.max_expiry_seconds
        ):
            raise Invalid(
                "invalid_share",
                f"expires_in must be a whole number of seconds between {MIN_EXPIRY_SECONDS} and "
                f"{limits.max_expiry_seconds}.",
                "share.expires_in",
                limit=limits.max_expiry_seconds,
            )
        # The policy's retention class caps the envelopes' lifetime (issue 14); the ledger entry says so.
        kept = retention_rules.class_for(policy, draft)
        if kept is not None:
            kept["capped"] = expires_in > kept["max_days"] * retention_rules.DAY
            expires_in = min(expires_in, kept["max_days"] * retention_rules.DAY)
        max_downloads = req.max_downloads
        if max_downloads is not None and (
            not isinstance(max_downloads, int)
            or isinstance(max_downloads, bool)
            or not 1 <= max_downloads <= limits.max_downloads_cap
        ):
            raise Invalid(
                "invalid_share",
                f"max_downloads must be a whole number between 1 and {limits.max_downloads_cap}, or absent.",
                "share.max_downloads",
                limit=limits.max_downloads_cap,
            )
        return PreparedShare(
            principal=principal,
            justification=draft,
            policy=policy,
            recipients=tuple(recipients),
            age_recipients=tuple(_parse_recipient(r.age_recipient) for r in recipients),
            via=tuple(via),
            content_type=content_type,
            expires_at=self.now() + timedelta(seconds=expires_in),
            max_downloads=max_downloads,
            agreements=tuple(agreement_refs),
            agreement_override=override,
            held=tuple(held),
            unenrolled=mode,
            passphrase=passphrase,
            emergency=None if owed is None else self.emergencies.emergency_record(principal, policy, owed),
            advice=tuple(cited),
            dual_control=self.dual_control.dual_control_for(principal, draft),
            started_from=started,
            retention=kept,
            sender_names=self._sender_names(principal, sender_entry),
        )

    @staticmethod
    def _needs_sender_entry(principal: Principal) -> bool:
        return principal.name is None or principal.org_name is None

    @staticmethod
    def _sender_names(principal: Principal, entry: Recipient | None) -> tuple[str | None, str | None]:
        """The sender's and their organisation's names as people read them (issue 13: recipients and the Sent view
        should not see "dev-practitioner (dev-org)"): the token's `name` and `org_name` claims, else the
        directory's `entry` for the same ID (a practitioner who also receives), else None — readers then show the
        identifiers. The entry is read with the recipients (`_resolve_recipients`), and only when a claim is
        missing, so a token with both costs nothing and one without costs no extra read."""
        name, org_name = principal.name, principal.org_name
        if entry is not None and entry.kind == "person":
            name = name or entry.name or None
            org_name = org_name or entry.org or None
        return name, org_name

    async def _resolve_recipients(
        self, ids: Any, sender: str | None = None
    ) -> tuple[list[Recipient], list[str | None], Recipient | None]:
        """Named recipients, with teams expanded to their active members (each person once), and the `sender`'s
        own directory entry if asked for (read in the same query: one store round trip per share, not two)."""
        limit = self.settings.limits.max_recipients
        if not isinstance(ids, list) or not ids or len(ids) > limit or not all(isinstance(i, str) for i in ids):
            raise Invalid(
                "invalid_share",
                f"recipients must be a list of 1 to {limit} recipient IDs.",
                "share.recipients",
                limit=limit,
            )
        if len(set(ids)) != len(ids):
            raise Invalid("invalid_share", "A recipient is listed more than once.", "share.recipients")
        bad = [i for i in ids if not RECIPIENT_ID_RE.match(i)]
        wanted = [i for i in ids if i not in bad]
        found = await self.store.get_recipients(wanted if sender is None or sender in wanted else [*wanted, sender])
        sender_entry = None if sender is None else found.get(sender)
        unknown = bad + [i for i in ids if i not in bad and i not in found]
        disabled = [i for i in ids if i in found and found[i].status != RECIPIENT_ACTIVE]
        teams = await self.store.team_members([i for i in ids if i in found and found[i].kind == "team"])
        empty = [t for t, members in teams.items() if not members and t not in disabled]
        if unknown or disabled or empty:
            raise Invalid(
                "unknown_recipients",
                "Some recipients are not in the directory, are disabled, or are teams with no active members; "
                "nothing was shared. Ask an administrator, or choose another recipient.",
                "share.recipients",
                unknown=[i[:64] for i in unknown],
                disabled=disabled,
                empty_teams=empty,
            )
        people: dict[str, tuple[Recipient, str | None]] = {}
        for i in ids:
            if found[i].kind == "person":
                people[i] = (found[i], None)
        for i in ids:
            for member in teams.get(i, []):
                people.setdefault(member.id, (member, i))
        if len(people) > limit:
            raise Invalid("invalid_share", f"More than {limit} people in all.", "share.recipients", limit=limit)
        return [r for r, _ in people.values()], [v for _, v in people.values()], sender_entry

    async def commit_share(
        self, prepared: PreparedShare, chunks: AsyncIterator[bytes], idempotency: Idempotency | None = None
    ) -> dict[str, Any]:
        """Stream the payload into one age envelope per recipient, then store everything in one transaction."""
        limit = self.settings.limits.max_payload_bytes
        rids = [r.id for r in prepared.recipients]
        keys: list[envelope.Recipient] = list(prepared.age_recipients)
        held_keys = self.holding.held_keys(prepared.held, prepared.unenrolled, prepared.passphrase)
        for _, stem, key in held_keys:
            rids.append(stem)
            keys.append(key)
        if self.escrow is not None:
            rids.append(ESCROW_ID)
            keys.append(self.escrow)
        spool = await self.envelopes.spool(rids)
        share_id = new_share_id()
        try:
            # Off the event loop: a passphrase (scrypt) wrap costs about a second of CPU by design. Public keys
            # (X25519, ML-KEM-768+X25519) wrap in ~0.1 ms: on the loop, without a thread hand-off.
            if len(keys) <= INLINE_WRAPS and all(isinstance(k, PUBLIC_KEY_RECIPIENTS) for k in keys):
                encryptors = [envelope.Encryptor([k]) for k in keys]
            else:
                encryptors = await asyncio.to_thread(lambda: [envelope.Encryptor([k]) for k in keys])
            for rid, enc in zip(rids, encryptors, strict=True):
                spool.write(rid, enc.header())
            mac = hmac.new(self._digest_key, digestmod=hashlib.sha256)
            size = 0

            sinks = [spool.writer(rid) for rid in rids]

            def encrypt_slice(data: bytes) -> None:
                mac.update(data)
                for sink, enc in zip(sinks, encryptors, strict=True):
                    enc.update_to(data, sink)

            pending = bytearray()
            async for chunk in chunks:
                size += len(chunk)
                if size > limit:
                    raise TooLarge(
                        "payload_too_large",
                        f"The payload is larger than this gateway accepts ({limit} bytes).",
                        "payload",
                        limit=limit,
                    )
                pending += chunk
                if len(pending) >= ENCRYPT_SLICE:
                    data, pending = bytes(pending), bytearray()
                    await asyncio.to_thread(encrypt_slice, data)
                    await spool.flush()
            if size == 0:
                raise Invalid("payload_empty", "The payload part is empty; there is nothing to share.", "payload")

            def finish() -> None:
                if pending:
                    encrypt_slice(bytes(pending))
                for rid, enc in zip(rids, encryptors, strict=True):
                    spool.write(rid, enc.finalize())

            if len(pending) * len(encryptors) <= INLINE_SLICE:
                finish()  # a small share's (or a large one's last) slice: cheaper than a thread hand-off
            else:
                await asyncio.to_thread(finish)
            await spool.seal()

            now = self.now_str()
            expires_at = ledger_entry.format_time(prepared.expires_at)
            share_recipients = []
            for r, via in zip(prepared.recipients, prepared.via, strict=True):
                sha, esize = spool.digest(r.id)
                share_recipients.append(ShareRecipient(r.id, r.org, sha, esize, via_team=via))
            escrow_digest = spool.digest(ESCROW_ID) if self.escrow is not None else None
            held_rows = self.holding.held_rows(
                share_id, prepared.held, prepared.unenrolled, {stem: spool.digest(stem) for _, stem, _ in held_keys}
            )
            p = prepared.principal
            j = prepared.justification
            sender_name, sender_org_name = prepared.sender_names
            share = Share(
                id=share_id,
                created_at=now,
                sender_sub=p.sub,
                sender_iss=p.issuer,
                sender_org=p.org,
                purpose_code=j["purpose"]["code"],
                purpose_description=j["purpose"]["description"],
                subjects=tuple(s["ref"] for s in j["subjects"]),
                data_categories=tuple(j.get("data_categories", ())),
                payload_content_type=prepared.content_type,
                payload_size=size,
                expires_at=expires_at,
                max_downloads=prepared.max_downloads,
                recipients=tuple(share_recipients),
                escrow_sha256=escrow_digest[0] if escrow_digest else None,
                escrow_size=escrow_digest[1] if escrow_digest else None,
                sender_name=sender_name,
                sender_org_name=sender_org_name,
            )
            entry = ledger_entry.share_entry(
                time=now,
                actor=self._decider(p, "practitioner"),
                share_id=share_id,
                justification=j,
                policy=self._policy_ref(prepared.policy),
                handling=prepared.policy.handling(j),
                emergency=prepared.emergency,
                recipients=[
                    {
                        "id": sr.recipient_id,
                        "org": sr.recipient_org,
                        "envelope_sha256": sr.envelope_sha256,
                        "envelope_size": sr.envelope_size,
                        **({"via": sr.via_team} if sr.via_team else {}),
                    }
                    for sr in share_recipients
                ]
                + [
                    {
                        "id": h.recipient_id,
                        "org": h.address.rpartition("@")[2],
                        "address": h.address,
                        "mode": h.mode,
                        "envelope_sha256": h.envelope_sha256,
                        "envelope_size": h.envelope_size,
                    }
                    for h in held_rows
                ],
                payload={
                    "size": size,
                    "content_type": prepared.content_type,
                    "hmac_sha256": mac.hexdigest(),
                },
                expires_at=expires_at,
                max_downloads=prepared.max_downloads,
                escrow=None
                if escrow_digest is None
                else {
                    "age_recipient": str(self.escrow),
                    "envelope_sha256": escrow_digest[0],
                    "envelope_size": escrow_digest[1],
                },
            )
            if prepared.agreements:
                entry["agreements"] = [dict(a) for a in prepared.agreements]
            if prepared.agreement_override is not None:
                entry["agreement_override"] = dict(prepared.agreement_override)
            if prepared.advice:
                entry["advice"] = [dict(a) for a in prepared.advice]
            if prepared.dual_control is not None:
                entry["dual_control"] = dict(prepared.dual_control)
            if prepared.started_from is not None:
                entry["started_from"] = dict(prepared.started_from)
            if prepared.retention is not None:
                entry["retention"] = dict(prepared.retention)

            _check_entry_size(entry)

            def respond(index: int) -> dict[str, Any]:
                return {
                    "share_id": share_id,
                    "ledger_index": index,
                    "recipients": [
                        {
                            "id": r.id,
                            "name": r.name,
                            "org": r.org,
                            "envelope_sha256": sr.envelope_sha256,
                            "envelope_size": sr.envelope_size,
                            "via": sr.via_team,
                            "recipient": r.id,
                            "mode": "key",
                        }
                        for r, sr in zip(prepared.recipients, share_recipients, strict=True)
                    ]
                    + [{**h.public(), "state": h.state} for h in held_rows],
                    "expires_at": expires_at,
                    "max_downloads": prepared.max_downloads,
                    "payload_size": size,
                    "receipt": receipt_url(index),
                    "agreements": [dict(a) for a in prepared.agreements],
                    "receipt_proof": receipt_url(index) + "/proof",
                    **({"emergency": dict(prepared.emergency)} if prepared.emergency is not None else {}),
                    **({"dual_control": dict(prepared.dual_control)} if prepared.dual_control is not None else {}),
                    **({"retention": dict(prepared.retention)} if prepared.retention is not None else {}),
                }

            placement = spool.placement(share_id)
            index = await self.store.create_share(
                share,
                entry,
                before_commit=placement.before_commit,
                durable=placement.durable,
                spool=placement.spool,
                idempotency=None if idempotency is None else idempotency.write(respond),
                held=held_rows,
            )
        except BaseException:
            # The share ID is new, so whatever exists under it was made by this request alone.
            await spool.discard(share_id)
            raise
        return respond(index)

    # -- recipients' side -------------------------------------------------------------------------

    async def open_envelope(self, principal: Principal, share_id: str) -> tuple[OpenEnvelope | None, Share, int, bool]:
        """Record a fetch and open the envelope (None if it is gone meanwhile); 404 for anyone the share is not
        addressed to."""
        if not SHARE_ID_RE.match(share_id):
            raise not_found()
        share = await self.store.get_share(share_id)
        if share is not None and share.recipient(principal.sub) is not None:
            await self.dual_control.check_released(share_id)  # dual control: refused while it waits for approval
        outcome = await self.store.record_fetch(
            share_id,
            principal.sub,
            self.now_str(),
            lambda share: ledger_entry.share_event_entry(
                kind=ledger_entry.KIND_FETCH,
                time=self.now_str(),
                actor=self._actor(principal, "recipient"),
                share_id=share.id,
                share_index=share.ledger_index,
                subjects=share.subjects,
                recipients=[
                    {"id": principal.sub, "org": mine.recipient_org}
                    for mine in share.recipients
                    if mine.recipient_id == principal.sub
                ],
                envelope_sha256=next(m.envelope_sha256 for m in share.recipients if m.recipient_id == principal.sub),
            ),
        )
        if outcome is None:
            raise not_found()
        if outcome.refused is not None:
            raise gone(outcome.refused)
        assert outcome.ledger_index is not None  # set whenever not refused
        return (
            await self.envelopes.open(share_id, principal.sub),
            outcome.share,
            outcome.ledger_index,
            outcome.exhausted,
        )

    async def envelope_header(self, principal: Principal, share_id: str) -> bytes:
        """The age header of the caller's envelope (through the MAC line), neither counted nor recorded: a
        recipient checks that their identity opens it before the counted download (a wrong key uses up nothing).
        The same refusals as the download (404 if not theirs, 410 once revoked, expired or used up)."""
        if not SHARE_ID_RE.match(share_id):
            raise not_found()
        share = await self.store.get_share(share_id)
        mine = share.recipient(principal.sub) if share is not None else None
        if share is None or mine is None:
            raise not_found()
        if mine.state != SHARE_ACTIVE:
            raise gone(mine.state)
        if share.expires_at <= self.now_str():
            raise gone(SHARE_EXPIRED)
        await self.dual_control.check_released(share_id)
        head = await self.envelopes.head(share_id, principal.sub, HEADER_LIMIT)
        try:
            if head is None:
                raise OSError("envelope gone")
            return envelope.read_header(io.BytesIO(head))[1]
        except (OSError, envelope.EnvelopeError):
            raise gone(share.state) from None

    async def destroy_envelope(self, share_id: str, recipient_id: str) -> None:
        await self.envelopes.destroy(share_id, [recipient_id])

    async def acknowledge(self, principal: Principal, share_id: str, req: Acknowledgement) -> dict[str, Any]:
        """The recipient marks a share "received and actioned"; recorded, and shown to the sender."""
        note = req.note
        if not SHARE_ID_RE.match(share_id):
            raise not_found()
        now = self.now_str()
        result = await self.store.acknowledge(
            share_id,
            principal.sub,
            note,
            now,
            lambda share: ledger_entry.share_event_entry(
                kind=ledger_entry.KIND_ACKNOWLEDGE,
                time=now,
                actor=self._actor(principal, "recipient"),
                share_id=share.id,
                share_index=share.ledger_index,
                subjects=share.subjects,
                recipients=[
                    {"id": principal.sub, "org": r.recipient_org}
                    for r in share.recipients
                    if r.recipient_id == principal.sub
                ],
                note=note,
            ),
        )
        if result is None:
            raise not_found()
        return {
            "share_id": share_id,
            "acknowledged_at": now,
            "ledger_index": result[1],
            "receipt": receipt_url(result[1]),
            "receipt_proof": receipt_url(result[1]) + "/proof",
        }

    async def inbox(self, principal: Principal, before: int | None, limit: int) -> list[Share]:
        return await self.store.inbox(principal.sub, before, limit)

    # -- revocation and expiry --------------------------------------------------------------------

    async def revoke(self, principal: Principal, share_id: str, reason: Any) -> dict[str, Any]:
        """The sender, or an administrator of the sending organisation, withdraws a share (optionally saying why):
        recorded, then every envelope destroyed."""
        reason = inputs.optional_reason(reason)
        if not SHARE_ID_RE.match(share_id):
            raise not_found()
        share = await self.store.get_share(share_id)
        # The sender (as a practitioner), or an administrator of the sending organisation (tenancy.py).
        as_sender = share is not None and principal.has("practitioner") and self.is_sender(principal, share)
        if share is None or not (as_sender or tenancy.admin_may_act_on(principal, share.sender_org)):
            raise not_found()
        role = "practitioner" if as_sender else tenancy.acting_role(principal, share.sender_org)
        result = await self.store.revoke(
            share_id,
            lambda s: ledger_entry.share_event_entry(
                kind=ledger_entry.KIND_REVOKE,
                time=self.now_str(),
                actor=self._actor(principal, role),
                share_id=s.id,
                share_index=s.ledger_index,
                subjects=s.subjects,
                recipients=[
                    {"id": r.recipient_id, "org": r.recipient_org} for r in s.recipients if r.state == SHARE_ACTIVE
                ],
                reason=reason,
            ),
        )
        assert result is not None  # the share existed a moment ago and shares are never deleted
        share, index = result
        if index is None:
            raise Conflict(
                "share_not_active", f"The share is already {share.state}; nothing to revoke.", state=share.state
            )
        await self.envelopes.destroy(share.id, self._live_files(share))
        await self.holding.revoke_held(share.id)
        return {"share_id": share.id, "state": "revoked", "ledger_index": index}

    @staticmethod
    def is_sender(principal: Principal, share: Share) -> bool:
        return share.sender_sub == principal.sub and share.sender_iss == principal.issuer

    async def expire_due(self) -> list[Share]:
        """Crypto-shred every share past its expiry: record `expire`, then delete the envelopes."""
        await self.holding.expire_held()
        now = self.now_str()
        done = await self.store.expire_due(
            now,
            lambda s: ledger_entry.share_event_entry(
                kind=ledger_entry.KIND_EXPIRE,
                time=now,
                actor=None,
                share_id=s.id,
                share_index=s.ledger_index,
                subjects=s.subjects,
                recipients=[
                    {"id": r.recipient_id, "org": r.recipient_org} for r in s.recipients if r.state == SHARE_ACTIVE
                ],
                reason="expired",
                **({"escrow_destroyed": True} if s.escrow_sha256 else {}),
            ),
        )
        for share in done:
            await self.envelopes.destroy(share.id, self._live_files(share))
        return done

    @staticmethod
    def _live_files(share: Share) -> list[str]:
        """The envelope files a share still has on disk (as loaded before its state changed)."""
        live = [r.recipient_id for r in share.recipients if r.state == SHARE_ACTIVE]
        return live + ([ESCROW_ID] if share.escrow_sha256 else [])

    async def release_escrow(
        self, principal: Principal, share_id: str, req: EscrowRelease
    ) -> tuple[OpenEnvelope | None, Share, int]:
        """An administrator releases the organisational recovery envelope; the reason is recorded first."""
        reason = req.reason
        if not SHARE_ID_RE.match(share_id):
            raise not_found()

        def entry(s: Share) -> dict[str, Any]:
            # Checked inside the transaction: only an administrator of the sending organisation (or of the
            # partnership) releases its escrow; anyone else learns nothing, as if there were no such share.
            if not tenancy.admin_may_act_on(principal, s.sender_org):
                raise not_found("escrow envelope")
            return ledger_entry.share_event_entry(
                kind=ledger_entry.KIND_FETCH,
                time=self.now_str(),
                actor=self._actor(principal, tenancy.acting_role(principal, s.sender_org)),
                share_id=s.id,
                share_index=s.ledger_index,
                subjects=s.subjects,
                recipients=[],
                escrow=True,
                envelope_sha256=s.escrow_sha256,
                reason=reason,
            )

        share = await self.store.record_escrow_release(share_id, entry)
        if share is None:
            raise not_found("escrow envelope")
        return await self.envelopes.open(share.id, ESCROW_ID), share, share.ledger_index

    # -- ledger -----------------------------------------------------------------------------------

    async def checkpoint(self) -> tuple[int, bytes] | None:
        """Sign a checkpoint over every committed entry, if the ledger grew since the last one."""
        return await self.store.checkpoint(self.signer.sign, self.now_str())


def _shared_database(settings: Settings) -> bool:
    """Several processes may write this database (PostgreSQL, or `serve --workers N`): sweeps spare what another
    one is writing."""
    return settings.workers > 1 or settings.database_url.startswith(("postgresql://", "postgres://"))


GONE_MESSAGES = {
    "revoked": ("share_revoked", "The sender revoked this share; its envelope has been destroyed."),
    "expired": ("share_expired", "This share has expired; its envelope has been destroyed."),
    "exhausted": ("download_limit_reached", "This share has been downloaded as many times as allowed."),
}


def gone(state: str) -> Gone:
    code, message = GONE_MESSAGES.get(state, ("share_gone", "This share is no longer available."))
    return Gone(code, message, state=state)
