"""The partnership's agreements as use cases: add a version, retire, list, offer, and check a share.

`service.Gateway` composes them as `gw.agreements`, given the agreements' records (their documents included, in
the database), the policies, the settings and the clock. Every change is one transaction with its ledger entry;
the rules themselves are in the pure `agreements` module.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import PurePath
from typing import Any

from . import agreements as rules
from . import inputs
from .agreements import Agreement, AgreementCheck, AgreementError
from .auth import Principal
from .config import Settings
from .justification import Policy, PolicyRegistry, Problem
from .ledger import entry as ledger_entry
from .refusals import Conflict, Invalid, not_found
from .standard_answers import StandardAnswersError, started_from_record
from .store.agreements import AgreementExists, DocumentImport, import_document_files
from .store.models import Recipient
from .store.protocol import AgreementRecords


def agreement_problems_error(check: AgreementCheck, overridable: bool, why: str | None = None) -> Invalid:
    return Invalid(
        "agreement_problems",
        why
        or (
            "The share is outside what the partnership's agreements allow; nothing was shared or recorded."
            + (
                " Your organisation allows an override with a recorded reason (agreement_override)."
                if overridable
                else ""
            )
        ),
        "justification.agreements",
        problems=[p.as_dict() for p in check.problems],
        overridable=overridable,
        not_signatories=list(check.outside),
    )


@dataclass(frozen=True)
class Retirement:
    """An agreement's retirement (parsed by `api/agreements.py` and `cli.py`): the reason recorded with it."""

    reason: str


def retirement(reason: object) -> Retirement:
    """The retirement a client sent, or the `invalid_reason` refusal."""
    return Retirement(
        inputs.text(reason, "reason", "invalid_reason", "A reason for retiring the agreement is required.")
    )


class AgreementUseCases:
    """The partnership's agreements: its own object (not a mixin on `Gateway`), given what it needs."""

    def __init__(
        self,
        settings: Settings,
        policies: PolicyRegistry,
        records: AgreementRecords,
        now_str: Callable[[], str],
    ) -> None:
        self.settings = settings
        self.policies = policies
        self.records = records
        self.now_str = now_str

    async def import_document_files(self) -> DocumentImport:
        """At start-up: a home from before documents were in the database has them in `data/agreements/`; move
        them in (checked against their digests) so every node serves them. Nothing to do once that is done."""
        return await import_document_files(self.records, self.settings.data_dir / "agreements")

    def today(self) -> date:
        return date.fromisoformat(self.now_str()[:10])

    # -- administration ---------------------------------------------------------------------------

    async def add_agreement(
        self,
        actor: Mapping[str, Any],
        fields: Mapping[str, Any],
        document: bytes,
        document_name: str,
    ) -> dict[str, Any]:
        """Record a new agreement, or a new version of one: never an edit of an earlier version."""
        try:
            clean = rules.validate_new(
                fields,
                self.policies.codes(rules.PURPOSE_PATH),
                self.policies.codes(rules.CATEGORIES_PATH),
                {p.id: p for p in self.policies.all()},
            )
        except AgreementError as exc:
            raise Invalid("invalid_agreement", exc.message, exc.field) from None
        name = PurePath(document_name.replace("\\", "/")).name if isinstance(document_name, str) else ""
        suffix = PurePath(name).suffix.lower()
        if not name or len(name) > 200 or suffix not in rules.DOCUMENT_TYPES:
            raise Invalid(
                "invalid_agreement",
                f"The document must be a file named *{', *'.join(rules.DOCUMENT_TYPES)} (at most 200 characters).",
                "document",
            )
        if not document or len(document) > rules.MAX_DOCUMENT_BYTES:
            raise Invalid(
                "invalid_agreement",
                f"The document must be 1 to {rules.MAX_DOCUMENT_BYTES} bytes.",
                "document",
                limit=rules.MAX_DOCUMENT_BYTES,
            )
        if suffix == ".pdf" and not document.startswith(b"%PDF-"):
            raise Invalid("invalid_agreement", "A .pdf document must be a PDF file.", "document")
        sha256 = await self.records.put_document(document)
        doc = {"sha256": sha256, "size": len(document), "name": name, "content_type": rules.DOCUMENT_TYPES[suffix]}
        now = self.now_str()

        def entry_for(version: int) -> dict[str, Any]:
            return ledger_entry.agreement_entry(
                kind=ledger_entry.KIND_AGREEMENT_ADD,
                time=now,
                actor=actor,
                agreement={
                    # Standard answers, where the version has any, are recorded whole: what was agreed.
                    **{
                        k: list(v) if isinstance(v, tuple) else v
                        for k, v in clean.items()
                        if v or k != "standard_answers"
                    },
                    "version": version,
                    "document_sha256": sha256,
                    "document_size": len(document),
                    "document_name": name,
                },
            )

        version, index = await self.records.add_version(clean, doc, entry_for)
        added = await self.records.version(clean["id"], version)
        assert added is not None
        return {"agreement": added.public(), "ledger_index": index}

    async def retire_agreement(self, actor: Mapping[str, Any], agreement_id: str, req: Retirement) -> dict[str, Any]:
        reason = req.reason
        if not rules.AGREEMENT_ID_RE.match(agreement_id):
            raise not_found("agreement")
        now = self.now_str()
        try:
            result = await self.records.retire(
                agreement_id,
                reason,
                lambda a: ledger_entry.agreement_entry(
                    kind=ledger_entry.KIND_AGREEMENT_RETIRE,
                    time=now,
                    actor=actor,
                    agreement={
                        "id": a.id,
                        "version": a.version,
                        "title": a.title,
                        "document_sha256": a.document_sha256,
                    },
                    reason=reason,
                ),
            )
        except AgreementExists:
            raise Conflict("agreement_retired", "The agreement is already retired.", "id") from None
        if result is None:
            raise not_found("agreement")
        current = await self.records.version(agreement_id, result[0].version)
        assert current is not None
        return {"agreement": current.public(), "ledger_index": result[1]}

    # -- reading ----------------------------------------------------------------------------------

    async def agreement_versions(self, agreement_id: str) -> list[Agreement]:
        if not rules.AGREEMENT_ID_RE.match(agreement_id):
            return []
        return await self.records.versions(agreement_id)

    async def agreement_offers(
        self, orgs: Sequence[str], purpose: str | None, categories: Sequence[str], roles: Sequence[str]
    ) -> list[dict[str, Any]]:
        current = await self.records.current()
        return rules.offers(current.values(), orgs, purpose, categories, roles, today=self.today())

    async def started_from(
        self,
        value: Any,
        draft: Mapping[str, Any],
        policy: Policy,
        refs: Sequence[Mapping[str, Any]],
        field: str,
    ) -> dict[str, Any] | None:
        """What the ledger keeps of a justification's starting point in an agreement's standard answers
        (`standard_answers.started_from_record`), or None when the client gave none. The version must be one the
        justification itself names (`refs`), so the entry's agreements list holds the document it came from."""
        if value is None:
            return None
        wanted = (value.get("agreement"), value.get("version")) if isinstance(value, Mapping) else None
        ref = next((r for r in refs if wanted is not None and (r.get("id"), r.get("version")) == wanted), None)
        agreement = await self.records.version(str(ref["id"]), int(ref["version"])) if ref is not None else None
        try:
            return started_from_record(value, agreement=agreement, policy=policy, justification=draft)
        except StandardAnswersError as exc:
            raise Invalid("invalid_started_from", exc.message, f"{field}.{exc.field}".rstrip(".")) from None

    async def agreements_required(self) -> bool:
        return self.settings.agreements.required

    # -- checking ---------------------------------------------------------------------------------

    async def named_agreements(self, draft: Mapping[str, Any]) -> list[dict[str, Any]]:
        """The refs (id, version, digest) of the agreements a decision names; an unknown one is refused."""
        if not draft.get("agreements"):
            return []
        check = rules.check_named(draft, await self.records.current(), today=self.today(), required=False)
        unknown = [p for p in check.problems if p.code == "agreement_unknown"]
        if unknown:
            raise agreement_problems_error(AgreementCheck(check.named, tuple(unknown)), False)
        return check.refs()

    async def draft_agreement_problems(self, draft: Any) -> list[Problem]:
        """Live validation (`POST /api/v1/justifications/validate`): what is wrong with the agreements a draft names
        before its recipients are known — unknown, retired or overdue agreements, scope, naming both agreements and
        no_agreement, and (for a share, where the gateway requires it) naming none. A decision not to share is only
        refused for an unknown agreement, so only that is reported for it. Recipients' organisations are checked
        when the share is made."""
        if not isinstance(draft, Mapping):
            return []
        share = draft.get("decision") == "share"
        required = share and await self.agreements_required()
        if not draft.get("agreements") and not required:
            return []  # nothing named, nothing required: no store read while the practitioner types
        current = await self.records.current()
        if share:
            return list(rules.check_share(draft, current, [], today=self.today(), required=required).problems)
        check = rules.check_named(draft, current, today=self.today(), required=False)
        return [p for p in check.problems if p.code == "agreement_unknown"]

    async def check_share_agreements(
        self, principal: Principal, draft: Mapping[str, Any], people: Sequence[Recipient], override: Any
    ) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
        """Rule 6 against the partnership's agreements; returns the refs to record and the override, if any."""
        if override is not None:
            override = inputs.text(
                override,
                "share.agreement_override",
                "invalid_share",
                "agreement_override must be non-blank text (the reason) of at most 4000 characters.",
            )
        required = await self.agreements_required()
        if not draft.get("agreements") and not required:
            return [], None  # nothing named, nothing required: no store read on the share's hot path
        check = rules.check_share(
            draft,
            await self.records.current(),
            [(r.id, r.org) for r in people],
            today=self.today(),
            required=required,
        )
        if not check.problems:
            return check.refs(), None
        overridable = self.settings.agreements.overridable(principal.org)
        if override is None:
            raise agreement_problems_error(check, overridable)
        if not overridable:
            raise agreement_problems_error(
                check,
                False,
                "The share is outside what the partnership's agreements allow, and your organisation does not "
                "allow an override; nothing was shared or recorded.",
            )
        return check.refs(), {"reason": override, "problems": [p.as_dict() for p in check.problems]}
