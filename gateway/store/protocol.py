"""The store boundary: everything the use cases, HTTP handlers and CLI may ask of persistence, as typed Protocols.

Why a Protocol and not a base class: a backend (SQLite today, PostgreSQL from issue 11) shares no code with
another, only a contract, and mypy checks each against it structurally (`_check` at the bottom of each
backend's module). Nothing above `gateway/store/` names a backend: it gets a `Store` from `open_store(url)`
(`gateway/store/__init__.py`) and uses only what is declared here.

The contract every implementation keeps, whatever the database:
- every state change is ONE transaction that also appends its ledger entry (the `entry` / `make_entry` argument),
  so the record can never disagree with what happened; a callback (`make_entry`, `entry_for`) runs inside that
  transaction, may be called at most once, and must not do I/O;
- ledger indexes are unique and contiguous from 0; a checkpoint is signed only over committed entries, and
  never two checkpoints of the same size with different roots;
- reads see committed data only;
- a failure of the database (disk full, I/O error, lost connection) fails only the calls it touched, with
  `StoreUnavailable` (HTTP 503 with Retry-After) — or an `OSError` for a full disk (507) — and the store goes on
  serving the next calls when the database comes back; `writable()` says whether it can write now.

The value types crossing the boundary live in `store/models.py`, `store/audit.py` and `store/idempotency.py`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from typing import Any, Protocol

from ..ledger.guard import CheckpointGuard
from ..ledger.merkle import CompactRange
from .audit import AuditFilter, StoredCheckpoint
from .idempotency import IdempotentWrite, StoredResponse
from .models import Agreement, CodeCheck, Enrolment, FetchOutcome, HeldRow, LedgerRow, Recipient, Share

#: Builds a share's ledger entry from the share as it stands inside the transaction.
EntryBuilder = Callable[[Share], Mapping[str, Any]]


class DirectoryStore(Protocol):
    """Recipients (people and teams), team membership, key enrolment."""

    async def add_recipient(self, rec: Recipient, entry: Mapping[str, Any]) -> int:
        """Insert (raising `RecipientExists` if the id is taken) with its ledger entry; the ledger index."""
        ...

    async def set_membership(self, team_id: str, member_id: str, add: bool, entry: Mapping[str, Any]) -> int | None:
        """Add or end a membership with its entry; None when it is already so (nothing recorded)."""
        ...

    async def team_members(self, team_ids: Sequence[str]) -> dict[str, list[Recipient]]:
        """Current members of each team (only active people with a key); every asked id is a key."""
        ...

    async def request_enrolment(self, enrolment: Enrolment, entry: Mapping[str, Any]) -> int:
        """Record a pending enrolment (superseding an earlier pending one of the same recipient)."""
        ...

    async def decide_enrolment(
        self,
        recipient_id: str,
        approve: bool,
        decided_by: str,
        make_entry: Callable[[Enrolment], Mapping[str, Any]],
    ) -> tuple[Enrolment, int] | None:
        """Approve (the key becomes the active one) or reject the pending enrolment; None if none is pending."""
        ...

    async def enrolments(self, recipient_id: str | None = None, status: str | None = None) -> list[Enrolment]: ...

    async def recipient_keys(self, recipient_id: str) -> list[tuple[str, str, str, str | None]]:
        """(age_recipient, status, since, until), newest first."""
        ...

    async def set_recipient_status(self, recipient_id: str, status: str, entry: Mapping[str, Any]) -> int | None:
        """The ledger index, or None when there is no such recipient (nothing recorded)."""
        ...

    async def get_recipients(self, ids: Sequence[str]) -> dict[str, Recipient]: ...

    async def list_recipients(
        self, q: str | None = None, include_disabled: bool = False, limit: int = 100
    ) -> list[Recipient]: ...

    async def person_by_email(self, address: str) -> Recipient | None:
        """The active person with a key at this address (the lowest id if several), else None."""
        ...


class ShareStore(Protocol):
    """Shares and their envelopes' states: create, fetch, acknowledge, revoke, expire, escrow release."""

    async def create_share(
        self,
        share: Share,
        entry: Mapping[str, Any],
        before_commit: Callable[[], None] | None = None,
        idempotency: IdempotentWrite | None = None,
        held: Sequence[HeldRow] = (),
        durable: Mapping[object, Callable[[], None]] | None = None,
        spool: object | None = None,
    ) -> int:
        """Insert the share, its recipients, its held rows and its ledger entry in one transaction.

        `spool` (`envelopes.Placement.spool`): envelopes this store keeps itself, adopted in the same transaction.

        `before_commit` runs inside the transaction just before it commits (the envelope files are put in place
        there): if it raises, nothing is recorded. `durable` (keyed jobs such as directory fsyncs) must all
        have run before the transaction commits; a store may run them once per group commit. Raises
        `IdempotencyHit` when the key is already taken.
        """
        ...

    async def get_share(self, share_id: str) -> Share | None: ...

    async def inbox(self, recipient_id: str, before: int | None, limit: int) -> list[Share]:
        """The recipient's shares, newest first; paged by the share's ledger index."""
        ...

    async def sent(self, sender_sub: str, sender_iss: str, before: int | None, limit: int) -> list[Share]: ...

    async def record_fetch(
        self, share_id: str, recipient_id: str, now: str, make_entry: EntryBuilder
    ) -> FetchOutcome | None:
        """Count and record one release of an envelope, atomically with the max_downloads check."""
        ...

    async def acknowledge(
        self, share_id: str, recipient_id: str, note: str, now: str, make_entry: EntryBuilder
    ) -> tuple[Share, int] | None: ...

    async def record_escrow_release(self, share_id: str, make_entry: EntryBuilder) -> Share | None: ...

    async def revoke(self, share_id: str, make_entry: EntryBuilder) -> tuple[Share, int | None] | None:
        """(share, index), or (share, None) when nothing was still active; None when there is no such share."""
        ...

    async def expire_due(self, now: str, make_entry: EntryBuilder, limit: int = 500) -> list[Share]:
        """Mark up to `limit` shares past their expiry as expired, one `expire` entry each."""
        ...

    async def live_envelopes(self) -> set[tuple[str, str]]:
        """(share_id, recipient_id) of every envelope that should still exist (orphan sweeping)."""
        ...


class IdempotencyStore(Protocol):
    async def idempotent_answer(self, principal: str, key: str, now: str) -> StoredResponse | None:
        """The stored answer for a caller's Idempotency-Key, unless there is none or it has expired."""
        ...


class LedgerStore(Protocol):
    """The ledger as a Merkle-tree log: appends that change nothing else, checkpoints, proofs, C2SP tiles."""

    #: Set by the home (`home.open_ledger_store`): checkpoints are signed only over a tree proven to extend the
    #: last one signed (gateway/ledger/guard.py). None: unguarded (tests, benchmarks).
    guard: CheckpointGuard | None

    async def record(self, entry: Mapping[str, Any], idempotency: IdempotentWrite | None = None) -> int:
        """Append an entry that changes no other state (a decision not to share); its index."""
        ...

    async def record_unless_since(self, entry: Mapping[str, Any], since: str) -> int | None:
        """Append `entry` (a periodic job's own act) unless the ledger has an entry of its kind timed at or after
        `since`; its index, or None. The check and the append are one transaction, so that several nodes (or
        workers) running the same job record it once."""
        ...

    async def append_for_share(
        self,
        share_id: str,
        kind: str,
        make_entry: Callable[[Share, dict[str, Any], int | None], Mapping[str, Any]],
    ) -> tuple[Share, int] | None:
        """Append an entry about a share, built from the share, its own ledger entry and the index of the first
        earlier entry of `kind` about it (None if none), in one transaction: two racing requests cannot both see
        "none" (an emergency completed twice, a share approved twice). `make_entry` may raise to refuse, and then
        nothing is written. None when there is no such share."""
        ...

    async def append_for_key(
        self,
        kinds: Sequence[str],
        path: str,
        key: str,
        make_entry: Callable[[list[tuple[int, dict[str, Any]]]], Mapping[str, Any]],
    ) -> int:
        """Append an entry built from the earlier entries of `kinds` whose JSON at `path` (`$.advice.id`) equals
        `key`, in one transaction, so that a check such as "not answered yet" cannot race; its index.
        `make_entry` may raise to refuse."""
        ...

    async def checkpoint(self, sign: Callable[[int, bytes], bytes], now: str) -> tuple[int, bytes] | None:
        """Sign the committed tree if it grew since the last checkpoint: (size, note), or None if unchanged."""
        ...

    async def latest_checkpoint(self) -> tuple[int, bytes] | None: ...

    async def checkpoint_note(self, size: int) -> bytes | None: ...

    async def add_cosignatures(self, size: int, lines: Mapping[str, str]) -> None: ...

    async def cosignature_lines(self, size: int) -> list[str]: ...

    async def latest_cosigned_size(self) -> int | None: ...

    async def tree_size(self) -> int: ...

    async def ledger_entry(self, index: int) -> LedgerRow | None: ...

    async def inclusion_proof(self, index: int, size: int) -> list[bytes]: ...

    async def consistency_proof(self, first: int, second: int) -> list[bytes]: ...

    async def tile(self, level: int, index: int, width: int) -> list[bytes]:
        """C2SP tlog-tiles: hashes of tile `level`/`index`; fewer than `width` if not all exist yet."""
        ...

    async def entry_bundle(self, index: int, width: int) -> list[bytes]:
        """The canonical entry bytes of leaves [256 * index, 256 * index + width), in order."""
        ...


class AuditQueries(Protocol):
    """The auditor's read side: filtered pages, streamed exports, subject timelines, statistics, decisions.

    Input that cannot become a query raises `audit.QueryError` (a 400 naming its field).
    """

    async def query_page(self, f: AuditFilter, *, before: int | None, limit: int) -> list[LedgerRow]:
        """The newest `limit` matching entries below index `before`."""
        ...

    async def export_pages(self, f: AuditFilter, *, upto: int, page_size: int) -> AsyncIterator[list[LedgerRow]]:
        """Every match below index `upto`, oldest first, a page at a time. Awaiting this checks the filter (and
        raises QueryError) before any row is read, so a caller can refuse before it starts streaming."""
        ...

    async def latest_stored_checkpoint(self) -> StoredCheckpoint | None: ...

    async def ledger_end(self) -> int:
        """One past the highest committed index."""
        ...

    async def subject_events(self, ref: str, cap: int, *, scope: str | None = None) -> tuple[list[LedgerRow], bool]:
        """Every entry about one subject, oldest first, at most `cap`; True if there were more."""
        ...

    async def verify_inclusions(
        self, size: int, root: bytes, entries: Sequence[tuple[int, bytes]]
    ) -> dict[int, str | None]:
        """For each (index, canonical entry bytes): None if its inclusion in the tree (size, root) verifies,
        else why not. Proofs come from one read snapshot; the leaf is recomputed from the bytes given."""
        ...

    async def flagged_decisions(
        self,
        flag: str,
        *,
        org: str | None,
        time_from: str | None,
        time_to: str | None,
        before: int | None,
        limit: int,
    ) -> list[LedgerRow]: ...

    async def own_decisions(self, sub: str, *, before: int | None, limit: int) -> list[LedgerRow]: ...

    async def stats(
        self, time_from: str | None, time_to: str | None, *, scope: str | None = None, now: str | None = None
    ) -> dict[str, Any]:
        """Monthly counts for oversight boards (the shape of `GET /api/v1/ledger/stats`); emergency shares whose
        justification is still owed count as overdue once their deadline is before `now`."""
        ...

    # -- issue 14: emergencies, dual control, advice, retention ---------------------------------------------

    async def open_emergencies(self, sub: str, *, limit: int) -> list[LedgerRow]:
        """A practitioner's emergency shares whose justification is not completed yet, oldest first (the caller
        checks the issuer in each entry)."""
        ...

    async def awaiting_approval(self, share_id: str) -> bool:
        """Whether a share is held for a second person's approval and not approved yet (every fetch asks)."""
        ...

    async def shares_awaiting_approval(self, org: str, *, limit: int) -> list[LedgerRow]:
        """An organisation's share entries held for approval, oldest first."""
        ...

    async def retention_schedule(self, org: str | None, *, limit: int) -> list[tuple[Any, ...]]:
        """Live shares (an organisation's, or all), soonest destruction first: (share ID, created, expires,
        purpose code, ledger index, retention class or None)."""
        ...

    async def retention_facts(self) -> dict[str, Any]:
        """What a retention review records: `previous_review_index`, `destroyed_since`, `live_shares`,
        `next_destruction_at`."""
        ...

    async def advice_entries(self, *, org: str | None, sub: str | None, limit: int) -> list[LedgerRow]:
        """Questions for advice and their answers, newest first: an organisation's, or (with `sub`) one
        practitioner's own questions with the answers."""
        ...

    async def latest_decisions_by_decider(self, org: str | None, *, limit: int, after: int = 0) -> list[LedgerRow]:
        """Each practitioner's latest decision (a `share` or `decision` entry) at index `after` or later, one per
        actor ID and organisation, newest first: an organisation's deciders (their own organisation's,
        `actor_org`), or everyone's (None). The auditor's console offers them by name in its search form (issue
        13), from `audit.DeciderIndex`, which reads the whole ledger once and then only what is new (`after`)."""
        ...


class HeldShares(Protocol):
    """Held and passphrase envelopes (addresses without a key yet) and their claim codes (issue 6)."""

    async def rows(self, share_ids: Sequence[str]) -> dict[str, list[HeldRow]]: ...

    async def claimed_for(self, recipient_id: str) -> list[HeldRow]: ...

    async def issue_code(
        self, share_id: str, address: str, mac: bytes, now: str, expires_at: str, make_entry: EntryBuilder
    ) -> str:
        """Record a new code (older live ones superseded): 'sent', 'none' (not held here) or 'gone'."""
        ...

    async def check_code(
        self,
        share_id: str,
        address: str,
        now: str,
        matches: Callable[[bytes], bool],
        max_attempts: int,
        max_wrong: int,
        entries: Callable[[str, Share, int], Mapping[str, Any]],
    ) -> CodeCheck: ...

    async def complete_rewrap(
        self,
        row: HeldRow,
        recipient_org: str,
        sha256: str,
        size: int,
        make_entry: EntryBuilder,
        place: Callable[[], None] | None,
        spool: object | None = None,
    ) -> int | None: ...

    async def expire_held(
        self, now: str, make_entry: Callable[[Share, list[HeldRow]], Mapping[str, Any]]
    ) -> list[str]: ...

    async def passphrase_row(self, share_id: str) -> tuple[Share, HeldRow] | None: ...

    async def passphrase_fetch(
        self, share_id: str, now: str, make_entry: EntryBuilder
    ) -> tuple[str, HeldRow | None, int]: ...


class AgreementRecords(Protocol):
    """Data-sharing agreements' versions and their documents (content-addressed, in chunks: `store/agreements.py`)."""

    async def put_document(self, data: bytes) -> str:
        """Store a document (committed before this returns) and give its SHA-256; storing the same bytes again
        changes nothing. Written before the version that names it, so a ledger entry's digest always finds it."""
        ...

    async def document_size(self, sha256: str) -> int | None:
        """The stored document's size in bytes, or None when there is none with that digest."""
        ...

    def document_chunks(self, sha256: str) -> AsyncIterator[bytes]:
        """The document's bytes, a chunk at a time (each chunk its own short read: a slow reader holds no
        database connection between chunks); nothing for an unknown digest."""
        ...

    async def add_version(
        self,
        fields: Mapping[str, Any],
        document: Mapping[str, Any],
        entry_for: Callable[[int], Mapping[str, Any]],
    ) -> tuple[int, int]:
        """Record version n+1 with its ledger entry: (version, ledger index)."""
        ...

    async def retire(
        self, agreement_id: str, reason: str, entry_for: Callable[[Agreement], Mapping[str, Any]]
    ) -> tuple[Agreement, int] | None:
        """Retire the current version (raising `AgreementExists` if it already is); None if there is none."""
        ...

    async def current(self) -> dict[str, Agreement]: ...

    async def versions(self, agreement_id: str) -> list[Agreement]: ...

    async def version(self, agreement_id: str, version: int) -> Agreement | None: ...

    async def by_document(self, sha256: str) -> Agreement | None: ...

    async def any_in_force(self) -> bool: ...


class Store(DirectoryStore, ShareStore, IdempotencyStore, LedgerStore, AuditQueries, Protocol):
    """The whole store as the gateway holds it (`Gateway.store`)."""

    @property
    def held(self) -> HeldShares: ...

    @property
    def agreements(self) -> AgreementRecords: ...

    async def writable(self) -> bool:
        """False while the store cannot commit (its last write failed on the database's side, or a cheap write
        probe fails): `/healthz` then answers 503."""
        ...

    async def close(self) -> None: ...


class LedgerSnapshot(Protocol):
    """One consistent read of the whole ledger for `safeshare ledger verify` (blocking; no gateway needed)."""

    #: Every stored signed checkpoint: (size, note).
    checkpoints: list[tuple[int, bytes]]
    #: The first MAC-authenticated index and its MAC, or None if never recorded.
    mac_start: tuple[int, bytes] | None
    #: How many entries there are.
    total: int
    #: The tree state the store keeps (its size and hashes), to compare with the one recomputed from the entries.
    tree: CompactRange

    def rows(self) -> Iterator[tuple[int, bytes, bytes, bytes | None]]:
        """(index, canonical entry, stored leaf hash, entry MAC or None), in index order."""
        ...

    #: The largest stored index (None: no entries): where the rows `reader()` gives end.
    last_index: int | None

    def reader(self) -> LedgerRangeReader:
        """The same rows for other processes (`ledger/verify_parallel.py`): each opens its own read-only
        connection, to this very snapshot where the database can share one."""
        ...

    def documents(self) -> dict[str, tuple[int, int]]:
        """Every stored agreement document: sha256 -> (size, number of chunks), as its row declares them."""
        ...

    def document_chunks(self, sha256: str) -> Iterator[bytes]:
        """The stored pieces of one document, in order (whatever rows exist: the verifier checks them)."""
        ...

    def named_documents(self) -> set[str]:
        """Every document digest the agreements table or a ledger entry names (`document_sha256`)."""
        ...


class LedgerRangeReader(Protocol):
    """Picklable: sent to a worker process, which reads its range of the ledger through its own connection."""

    def rows(self, lo: int, hi: int) -> Iterator[Sequence[Any]]:
        """(index, canonical entry, stored leaf hash, entry MAC or None) for lo <= index < hi, in index order.
        Values are as the driver gives them (a tampered row may hold another type): the verifier checks."""
        ...
