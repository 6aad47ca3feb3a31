"""The recipient directory's use cases: people and their keys, teams and membership, self-enrolment.

Every change is one transaction with its ledger entry: who could receive, with which key, from when, and
who decided, is part of the record an auditor reads. `service.Gateway` holds one as `gw.directory`, given
the store and the gateway's clock; its own `enrol` and `decide_enrolment` add what an approved key means for
held shares (issue 10), so callers enrol through the Gateway and manage the directory through `gw.directory`.
"""

from __future__ import annotations

import base64
import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from . import envelope, inputs, tenancy
from .auth import Principal
from .ledger import entry as ledger_entry
from .refusals import Conflict, Forbidden, Invalid, NotFound, Refusal, not_found
from .store.models import RECIPIENT_DISABLED, Enrolment, Recipient, RecipientExists
from .store.protocol import Store

if TYPE_CHECKING:
    from .config import Settings

RECIPIENT_ID_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")


@dataclass(frozen=True)
class EnrolmentRequest:
    """A recipient's enrolment (parsed by `api/recipients.py`): the public key made in their browser, still to
    be parsed as an age recipient (`_key_for`, which knows the organisation's post-quantum rule)."""

    age_recipient: str


def enrolment_request(age_recipient: object) -> EnrolmentRequest:
    """The enrolment a client sent, or the `invalid_enrolment` refusal when the key is not even text."""
    if not isinstance(age_recipient, str):
        raise Invalid("invalid_enrolment", "age_recipient (an age1… public key) is required.", "age_recipient")
    return EnrolmentRequest(age_recipient)


class DirectoryUseCases:
    store: Store
    settings: Settings

    def __init__(self, store: Store, now_str: Callable[[], str], settings: Settings) -> None:
        self.store = store
        self.settings = settings
        #: The gateway's clock, as the ledger's time format: every entry here is timed by the same clock.
        self.now_str = now_str

    @staticmethod
    def _actor(principal: Principal, role: str) -> dict[str, Any]:
        return ledger_entry.actor(principal.sub, role, principal.org, principal.issuer)

    @staticmethod
    def _scoped(actor: Mapping[str, Any], by: Principal | None, org: str | None, missing: Refusal) -> Mapping[str, Any]:
        """The actor of a directory change to `org`'s entry, once `by` is known to administer that organisation.

        `by` is the administrator behind an API call (None: the operator's own command line, unrestricted).
        `missing` is raised when `org` lies outside what `by` administers (see tenancy.py).
        """
        if by is None:
            return actor
        if not tenancy.within(tenancy.admin_scope(by), org):
            raise missing
        return {**actor, "role": tenancy.acting_role(by, org)}

    @staticmethod
    def _outside(org: str) -> Forbidden:
        return Forbidden(
            "outside_organisation",
            "You administer your own organisation only; an administrator of that organisation (or of the "
            "partnership) must do this.",
            "org",
        )

    def _key_for(self, org: str | None, text: str, code: str) -> str:
        """The canonical form of a person's new key, refused (with `code`, or `post_quantum_required`) when
        it is not an age recipient, or is a classic one where the organisation requires post-quantum keys.

        Why per organisation and only for new keys: an organisation that keeps records for decades can insist
        that what is encrypted from now on resists "harvest now, decrypt later", without cutting off the
        recipients it already has (their keys keep working until they enrol a new one)."""
        try:
            key = envelope.parse_recipient(text)
        except envelope.InvalidRecipient as exc:
            raise Invalid(code, f"Not an age recipient (age1… or age1pq1…): {exc}", "age_recipient") from None
        if not envelope.is_post_quantum(key) and self.settings.requires_post_quantum(org):
            raise Invalid(
                "post_quantum_required",
                "This organisation accepts only post-quantum keys (age1pq1…) for new recipients: make a "
                "post-quantum key and enrol it instead.",
                "age_recipient",
            )
        return str(key)

    async def add_recipient(self, actor: Mapping[str, Any], rec: Recipient, *, by: Principal | None = None) -> int:
        self._check_directory_fields(rec)
        actor = self._scoped(actor, by, rec.org.strip(), self._outside(rec.org))
        canonical_key = self._key_for(rec.org.strip(), rec.age_recipient, "invalid_recipient")
        rec = Recipient(rec.id, rec.name.strip(), rec.org.strip(), rec.email.strip().lower(), canonical_key)
        entry = ledger_entry.recipient_entry(
            kind=ledger_entry.KIND_RECIPIENT_ADD,
            time=self.now_str(),
            actor=actor,
            recipient={"id": rec.id, "org": rec.org, "age_recipient": canonical_key},
        )
        try:
            return await self.store.add_recipient(rec, entry)
        except RecipientExists:
            raise Conflict("recipient_exists", f"A recipient with ID {rec.id!r} already exists.", "id") from None

    @staticmethod
    def _check_directory_fields(rec: Recipient) -> None:
        if not RECIPIENT_ID_RE.match(rec.id):
            raise Invalid(
                "invalid_recipient",
                "A recipient ID is 1-64 characters: lower-case letters, digits, '.', '_' or '-', starting with "
                "a letter or digit.",
                "id",
            )
        for name, value, cap in (("name", rec.name, 200), ("org", rec.org, 200), ("email", rec.email, 320)):
            inputs.text(value, name, "invalid_recipient", cap=cap)
        if "@" not in rec.email:
            raise Invalid("invalid_recipient", "email must be an e-mail address.", "email")

    async def add_team(
        self, actor: Mapping[str, Any], team_id: str, name: str, org: str, email: str, *, by: Principal | None = None
    ) -> int:
        """A team address (e.g. a MASH duty inbox): shares to it go to each active member's own key."""
        rec = Recipient(team_id, name, org, email, "", kind="team")
        self._check_directory_fields(rec)
        actor = self._scoped(actor, by, rec.org.strip(), self._outside(rec.org))
        rec = Recipient(rec.id, rec.name.strip(), rec.org.strip(), rec.email.strip().lower(), "", kind="team")
        entry = ledger_entry.recipient_entry(
            kind=ledger_entry.KIND_RECIPIENT_ADD,
            time=self.now_str(),
            actor=actor,
            recipient={"id": rec.id, "org": rec.org, "kind": "team"},
        )
        try:
            return await self.store.add_recipient(rec, entry)
        except RecipientExists:
            raise Conflict("recipient_exists", f"A recipient with ID {rec.id!r} already exists.", "id") from None

    async def set_membership(
        self, actor: Mapping[str, Any], team_id: str, member_id: str, add: bool, *, by: Principal | None = None
    ) -> int:
        """Membership changes are recorded; a new member gets only shares made after joining.

        The team's organisation administers its membership; members may be people of any organisation (a
        multi-agency team such as a MASH has police, health and council members).
        """
        ids = [i for i in (team_id, member_id) if RECIPIENT_ID_RE.match(i)]
        found = await self.store.get_recipients(ids)
        team, member = found.get(team_id), found.get(member_id)
        if team is None or team.kind != "team":
            raise not_found("team")
        actor = self._scoped(actor, by, team.org, not_found("team"))
        if member is None or member.kind != "person":
            raise Invalid("invalid_member", "A member must be a person in the directory.", "member")
        kind = ledger_entry.KIND_TEAM_MEMBER_ADD if add else ledger_entry.KIND_TEAM_MEMBER_REMOVE
        entry = ledger_entry.recipient_entry(
            kind=kind,
            time=self.now_str(),
            actor=actor,
            recipient={"id": team_id, "org": team.org},
            member={"id": member_id, "org": member.org},
        )
        index = await self.store.set_membership(team_id, member_id, add, entry)
        if index is None:
            state = "already a member" if add else "not a member"
            raise Conflict("membership_unchanged", f"{member_id} is {state} of {team_id}.", "member")
        return index

    async def disable_recipient(
        self, actor: Mapping[str, Any], recipient_id: str, *, by: Principal | None = None
    ) -> int:
        found = await self.store.get_recipients([recipient_id]) if RECIPIENT_ID_RE.match(recipient_id) else {}
        if recipient_id not in found:
            raise not_found("recipient")
        actor = self._scoped(actor, by, found[recipient_id].org, not_found("recipient"))
        entry = ledger_entry.recipient_entry(
            kind=ledger_entry.KIND_RECIPIENT_DISABLE,
            time=self.now_str(),
            actor=actor,
            recipient={"id": recipient_id, "org": found[recipient_id].org},
        )
        index = await self.store.set_recipient_status(recipient_id, RECIPIENT_DISABLED, entry)
        if index is None:
            raise not_found("recipient")
        return index

    # -- enrolment (keys generated on the recipient's device) --------------------------------------

    async def enrol(self, principal: Principal, req: EnrolmentRequest) -> dict[str, Any]:
        """A recipient asks to receive with a public key from their browser; identity comes from the token."""
        if not RECIPIENT_ID_RE.match(principal.sub):
            raise Invalid(
                "enrolment_refused",
                "Your sign-in name cannot be used as a recipient ID; ask an administrator.",
                "token.sub",
            )
        if not principal.org or not principal.email:
            raise Invalid(
                "enrolment_refused",
                "Your sign-in token does not say which organisation and e-mail address you have; ask an administrator.",
                "token.org" if not principal.org else "token.email",
            )
        key = self._key_for(principal.org, req.age_recipient, "invalid_enrolment")
        enrolment = Enrolment(
            id="en_" + base64.b32encode(secrets.token_bytes(10)).decode().lower(),
            recipient_id=principal.sub,
            name=(principal.name or principal.email)[:200],
            org=principal.org[:200],
            email=principal.email,
            age_recipient=key,
            requested_at=self.now_str(),
        )
        entry = ledger_entry.recipient_entry(
            kind=ledger_entry.KIND_ENROLMENT_REQUEST,
            time=enrolment.requested_at,
            actor=self._actor(principal, "recipient"),
            recipient={"id": enrolment.recipient_id, "org": enrolment.org, "age_recipient": key},
            enrolment_id=enrolment.id,
        )
        index = await self.store.request_enrolment(enrolment, entry)
        return {"enrolment": enrolment.public(), "ledger_index": index}

    async def decide_enrolment(
        self,
        actor: Mapping[str, Any],
        recipient_id: str,
        approve: bool,
        reason: str | None = None,
        *,
        by: Principal | None = None,
    ) -> dict[str, Any]:
        """Approve (the key becomes active for new shares; the old one is retired) or reject; both recorded.

        Only an administrator of the organisation the enrolment names (from the recipient's token) decides it;
        checked inside the transaction, against the enrolment actually decided.
        """
        reason = inputs.optional_reason(reason)
        kind = ledger_entry.KIND_ENROLMENT_APPROVE if approve else ledger_entry.KIND_ENROLMENT_REJECT
        nothing = NotFound("no_pending_enrolment", f"No pending enrolment for {recipient_id[:64]!r}.")
        if by is not None:
            scope = tenancy.admin_scope(by)  # 403 org_required before anything is looked up
            # Approving rotates an existing recipient's key: the recipient's organisation must be the
            # administrator's too, whatever organisation the enrolling token claimed.
            existing = await self.store.get_recipients([recipient_id]) if RECIPIENT_ID_RE.match(recipient_id) else {}
            if recipient_id in existing and not tenancy.within(scope, existing[recipient_id].org):
                raise nothing

        def entry(e: Enrolment) -> dict[str, Any]:
            return ledger_entry.recipient_entry(
                kind=kind,
                time=self.now_str(),
                actor=self._scoped(actor, by, e.org, nothing),
                recipient={"id": e.recipient_id, "org": e.org, "age_recipient": e.age_recipient},
                enrolment_id=e.id,
                **({"reason": reason} if reason else {}),
            )

        result = await self.store.decide_enrolment(recipient_id, approve, str(actor.get("sub")), entry)
        if result is None:
            raise nothing
        enrolment, index = result
        return {
            "enrolment": {**enrolment.public(), "status": "approved" if approve else "rejected"},
            "ledger_index": index,
        }
