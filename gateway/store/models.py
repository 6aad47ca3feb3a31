"""Plain records passed between the store and the rest of the gateway (no I/O)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Final

RECIPIENT_ACTIVE = "active"
RECIPIENT_DISABLED = "disabled"

SHARE_ACTIVE = "active"
SHARE_REVOKED = "revoked"
SHARE_EXPIRED = "expired"
#: A recipient's envelope reached max_downloads and was destroyed.
SHARE_EXHAUSTED = "exhausted"


class StoreError(Exception):
    """A store-level refusal the API turns into a structured error."""


class StoreUnavailable(StoreError):
    """The database could not complete the operation (disk or I/O error, busy, connection lost): nothing of it was
    stored, and the store carries on. HTTP answers 503 `store_unavailable` with Retry-After."""


class SchemaTooNew(StoreError):
    """The database was written by a newer SafeShare (its schema version is above the code's): refusing to start
    is the only safe answer, since this code would misread or damage what it does not know."""


class RecipientExists(StoreError):
    pass


@dataclass(frozen=True)
class Recipient:
    id: str
    name: str
    org: str
    email: str
    age_recipient: str
    status: str = RECIPIENT_ACTIVE
    created_at: str = ""
    #: "person" (has its own key) or "team" (a shared address; shares go to each active member's key).
    kind: str = "person"

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "name": self.name,
            "org": self.org,
            "email": self.email,
            "age_recipient": self.age_recipient or None,
            "status": self.status,
            "created_at": self.created_at,
        }


@dataclass(frozen=True)
class Enrolment:
    """A recipient's request to receive with a public key generated on their own device."""

    id: str
    recipient_id: str
    name: str
    org: str
    email: str
    age_recipient: str
    status: str = "pending"
    requested_at: str = ""
    decided_at: str | None = None

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "recipient_id": self.recipient_id,
            "name": self.name,
            "org": self.org,
            "email": self.email,
            "age_recipient": self.age_recipient,
            "status": self.status,
            "requested_at": self.requested_at,
            "decided_at": self.decided_at,
        }


@dataclass(frozen=True)
class ShareRecipient:
    recipient_id: str
    recipient_org: str
    envelope_sha256: str
    envelope_size: int
    downloads: int = 0
    state: str = SHARE_ACTIVE
    #: When the recipient marked the share "received and actioned", and their note for the sender.
    acknowledged_at: str | None = None
    acknowledgement: str | None = None
    #: The team this envelope was made for, when the member received it as part of a team.
    via_team: str | None = None
    #: When this recipient first and last downloaded the envelope (None: never opened).
    first_downloaded_at: str | None = None
    last_downloaded_at: str | None = None


@dataclass(frozen=True)
class Share:
    id: str
    created_at: str
    sender_sub: str
    sender_iss: str
    sender_org: str | None
    purpose_code: str
    purpose_description: str
    subjects: tuple[str, ...]
    data_categories: tuple[str, ...]
    payload_content_type: str
    payload_size: int
    expires_at: str
    max_downloads: int | None
    state: str = SHARE_ACTIVE
    ledger_index: int = -1
    recipients: tuple[ShareRecipient, ...] = field(default_factory=tuple)
    #: The organisational recovery (escrow) envelope, when the gateway's policy makes one.
    escrow_sha256: str | None = None
    escrow_size: int | None = None
    #: The sender's and their organisation's names for people to read (token claims or the directory, at the
    #: time of sharing; issue 13); None for shares made before they were kept, which show the identifiers.
    sender_name: str | None = None
    sender_org_name: str | None = None

    def recipient(self, recipient_id: str) -> ShareRecipient | None:
        return next((r for r in self.recipients if r.recipient_id == recipient_id), None)


@dataclass(slots=True)
class LedgerRow:
    """One stored ledger entry as read back, in the column order every query selects (`LedgerRow(*row)`).

    Read-only by convention rather than `frozen`: an export builds one per entry, and a frozen dataclass's
    `__init__` (five `object.__setattr__` calls) cost 0.85 µs of the 1.1 µs per row here, about a second of a
    million-entry export on each store; nothing keeps or hashes rows."""

    index: int
    time: str
    kind: str
    entry: bytes
    leaf_hash: bytes


@dataclass(frozen=True)
class FetchOutcome:
    """Result of trying to release one envelope to its recipient."""

    share: Share
    #: None when the fetch was allowed and recorded.
    refused: str | None = None
    ledger_index: int | None = None
    #: The download used up max_downloads: destroy the envelope once it has been sent.
    exhausted: bool = False


# -- the partnership's agreements (rules in gateway/agreements.py) ------------------------------------------------

KIND_WORDS: Final[Mapping[str, str]] = {
    "protocol": "overarching protocol",
    "data_exchange": "data exchange agreement",
    "other": "agreement",
}
STATUS_ACTIVE: Final = "active"
STATUS_SUPERSEDED: Final = "superseded"
STATUS_RETIRED: Final = "retired"


def normalise_org(org: str) -> str:
    """Organisations are compared as their names, ignoring case and runs of white space."""
    return " ".join(org.split()).casefold()


@dataclass(frozen=True)
class Agreement:
    """One version of an agreement. Versions are never edited: a change is version n+1."""

    id: str
    version: int
    title: str
    kind: str
    scope: str
    signatories: tuple[str, ...]
    #: Empty: every purpose (and every category) is covered.
    purposes: tuple[str, ...]
    categories: tuple[str, ...]
    review_date: str
    document_sha256: str
    document_size: int
    document_name: str
    document_type: str
    status: str = STATUS_ACTIVE
    created_at: str = ""
    retired_at: str | None = None
    retired_reason: str | None = None
    #: The partnership's agreed answers for kinds of share under this version (`gateway/standard_answers.py`).
    standard_answers: tuple[Mapping[str, Any], ...] = ()

    def ref(self) -> dict[str, Any]:
        """What a ledger entry carries: the exact document the share was made under, and its title in plain words."""
        return {
            "id": self.id,
            "version": self.version,
            "document_sha256": self.document_sha256,
            "title": self.title,
            "kind": self.kind,
        }

    @property
    def document_url(self) -> str:
        return f"/agreements/documents/{self.document_sha256}"

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "version": self.version,
            "title": self.title,
            "kind": self.kind,
            "scope": self.scope,
            "signatories": list(self.signatories),
            "purposes": list(self.purposes),
            "categories": list(self.categories),
            "review_date": self.review_date,
            "status": self.status,
            "created_at": self.created_at,
            "retired_at": self.retired_at,
            "retired_reason": self.retired_reason,
            "document": {
                "sha256": self.document_sha256,
                "size": self.document_size,
                "name": self.document_name,
                "content_type": self.document_type,
                "url": self.document_url,
            },
            "standard_answers": [dict(s) for s in self.standard_answers],
        }

    def is_signatory(self, org: str | None) -> bool:
        return org is not None and normalise_org(org) in {normalise_org(s) for s in self.signatories}

    def overdue(self, today: date) -> bool:
        return date.fromisoformat(self.review_date) < today

    def describe(self) -> str:
        """Plain words for reports: 'the Example Children's Data Exchange Agreement (version 2)'."""
        return f"{self.title} ({KIND_WORDS.get(self.kind, 'agreement')}, version {self.version})"


# -- held and passphrase shares (issue 6): rows of `held_recipients`, the outcome of a claim-code check ------


@dataclass(frozen=True)
class HeldRow:
    share_id: str
    address: str
    mode: str
    envelope: str
    envelope_sha256: str
    envelope_size: int
    state: str
    recipient_id: str
    downloads: int = 0

    def public(self) -> dict[str, Any]:
        """What the sender sees (never the passphrase, never a code)."""
        return {
            "recipient": self.address,
            "id": self.recipient_id,
            "mode": "held" if self.mode == "held" else "passphrase",
            "state": self.state,
            "downloads": self.downloads,
            "envelope_sha256": self.envelope_sha256,
            "envelope_size": self.envelope_size,
        }


@dataclass(frozen=True)
class CodeCheck:
    """Outcome of checking a code: 'accepted', 'invalid' (attempts_left), 'locked', 'gone' or 'none'."""

    outcome: str
    attempts_left: int = 0
    share: Share | None = None
