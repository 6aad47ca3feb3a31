"""Seek advice first (issue 14; hmg-2018 rule 3, DfE 2024 rule 4): an anonymised question to an adviser role in
the practitioner's own organisation, its answer, and the link from a justification to that answer.

The question carries only the draft's purpose and data categories and the role asked — never a subject reference,
a name or a payload — so an adviser can answer without learning who it is about. Question and answer are ledger
entries (`advice_question`, `advice_answer`); the state (open, answered) is read from the ledger itself, and an
answer is recorded at most once, checked inside the append transaction.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

from .auth import ADVISER_ROLES, Principal
from .justification import PolicyRegistry
from .ledger import entry as ledger_entry
from .refusals import Conflict, Invalid, Malformed, not_found
from .store.protocol import Store

ADVICE_ID_RE: Final = re.compile(r"^adv_[a-z2-7]{24}$")
_ADVICE_KINDS: Final = (ledger_entry.KIND_ADVICE_QUESTION, ledger_entry.KIND_ADVICE_ANSWER)
_TEXT_MAX: Final = 4000
#: The advice a practitioner may cite in one justification, and how many questions a list shows.
MAX_CITED: Final = 10
MAX_LISTED: Final = 500


def new_advice_id() -> str:
    return "adv_" + base64.b32encode(secrets.token_bytes(15)).decode().lower()


def _text_ok(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip()) and len(value) <= _TEXT_MAX


class AdviceUseCases:
    """Given the store, the policies (for the codes a question may carry), the clock and who acts."""

    def __init__(
        self,
        store: Store,
        policies: PolicyRegistry,
        now_str: Callable[[], str],
        actor: Callable[[Principal, str], dict[str, Any]],
    ) -> None:
        self.store = store
        self.policies = policies
        self.now_str = now_str
        self._actor = actor

    async def ask_advice(self, principal: Principal, body: Any) -> dict[str, Any]:
        """Record an anonymised question for the adviser role `to` in the caller's organisation."""
        if not isinstance(body, dict) or set(body) - {"to", "purpose", "data_categories"}:
            raise Malformed(
                "invalid_body",
                'The body must be {"to": adviser role, "purpose": {"code", "description"}, "data_categories": [...]}: '
                "nothing that identifies anyone.",
                field="body",
            )
        if principal.org is None:
            raise Invalid(
                "organisation_required", "Advice is asked within an organisation; your sign-in carries none.", "to"
            )
        to = body.get("to")
        if to not in ADVISER_ROLES:
            raise Invalid("invalid_adviser", f"to must be one of: {', '.join(ADVISER_ROLES)}.", "to")
        purpose = body.get("purpose")
        codes = self.policies.codes("purpose.code")
        if (
            not isinstance(purpose, dict)
            or set(purpose) != {"code", "description"}
            or purpose.get("code") not in codes
            or not _text_ok(purpose.get("description"))
        ):
            raise Invalid(
                "invalid_purpose",
                f"purpose must be {{code, description}}: a code of the policies ({', '.join(codes)}) and non-blank "
                f"text of at most {_TEXT_MAX:,} characters.",
                "purpose",
            )
        categories = body.get("data_categories", [])
        known = self.policies.codes("data_categories")
        if not isinstance(categories, list) or len(categories) > 50 or not all(c in known for c in categories):
            raise Invalid(
                "invalid_data_categories", f"data_categories must list codes of: {', '.join(known)}.", "data_categories"
            )
        advice_id = new_advice_id()
        entry = ledger_entry.advice_entry(
            kind=ledger_entry.KIND_ADVICE_QUESTION,
            time=self.now_str(),
            actor=self._actor(principal, "practitioner"),
            advice={
                "id": advice_id,
                "to": to,
                "org": principal.org,
                "purpose": {"code": purpose["code"], "description": purpose["description"].strip()},
                "data_categories": sorted(set(categories)),
            },
        )
        index = await self.store.record(entry)
        return {"advice_id": advice_id, "ledger_index": index, "to": to, "asked_at": entry["time"]}

    async def answer_advice(self, principal: Principal, advice_id: str, body: Any) -> dict[str, Any]:
        """An adviser of the role asked, in the asker's organisation, answers once; anyone else: no such question."""
        if not isinstance(body, dict) or set(body) != {"answer"} or not _text_ok(body.get("answer")):
            raise Invalid(
                "invalid_answer", f'The body must be {{"answer": non-blank text of at most {_TEXT_MAX:,}}}.', "answer"
            )
        if not ADVICE_ID_RE.match(advice_id):
            raise not_found("question")
        now = self.now_str()
        answer = body["answer"].strip()
        answered: dict[str, Any] = {}

        def make(earlier: list[tuple[int, dict[str, Any]]]) -> Mapping[str, Any]:
            question = next(((i, e) for i, e in earlier if e.get("kind") == ledger_entry.KIND_ADVICE_QUESTION), None)
            if question is None:
                raise not_found("question")
            index, q = question
            role = q["advice"]["to"]
            if q["advice"]["org"] != principal.org or not principal.has(role):
                raise not_found("question")
            done = [i for i, e in earlier if e.get("kind") == ledger_entry.KIND_ADVICE_ANSWER]
            if done:
                raise Conflict(
                    "advice_already_answered", "This question has already been answered.", ledger_index=done[0]
                )
            answered.update(question_index=index, role=role)
            actor = self._actor(principal, role)
            if principal.name:  # the adviser by name (token claim), so the report reads who advised (issue 13)
                actor["name"] = principal.name
            return ledger_entry.advice_entry(
                kind=ledger_entry.KIND_ADVICE_ANSWER,
                time=now,
                actor=actor,
                advice={"id": advice_id, "question_index": index, "to": role, "org": principal.org, "answer": answer},
            )

        index = await self.store.append_for_key(_ADVICE_KINDS, "$.advice.id", advice_id, make)
        return {
            "advice_id": advice_id,
            "ledger_index": index,
            "question_index": answered["question_index"],
            "answered_at": now,
        }

    async def list_advice(self, principal: Principal) -> list[dict[str, Any]]:
        """An adviser's view: questions to any of their adviser roles in their organisation. A practitioner's: their
        own questions. Each with its answer when there is one; newest first."""
        roles = {r for r in ADVISER_ROLES if principal.has(r)}
        as_adviser = bool(roles) and principal.org is not None
        rows = await self.store.advice_entries(
            org=principal.org if as_adviser else None,
            sub=None if as_adviser else principal.sub,
            limit=MAX_LISTED,
        )
        answers: dict[str, dict[str, Any]] = {}
        questions: list[dict[str, Any]] = []
        for row in rows:
            entry = json.loads(row.entry)
            advice = entry.get("advice") or {}
            actor = entry.get("actor") or {}
            if row.kind == ledger_entry.KIND_ADVICE_ANSWER:
                answers[str(advice.get("id"))] = {
                    "answer": advice.get("answer"),
                    "by": {k: actor.get(k) for k in ("sub", "role", "org")}
                    | ({"name": actor["name"]} if isinstance(actor.get("name"), str) else {}),
                    "at": row.time,
                    "ledger_index": row.index,
                }
                continue
            mine = actor.get("sub") == principal.sub and actor.get("iss") == principal.issuer
            if (as_adviser and advice.get("to") not in roles) or (not as_adviser and not mine):
                continue
            questions.append(
                {
                    "advice_id": advice.get("id"),
                    "ledger_index": row.index,
                    "asked_at": row.time,
                    "to": advice.get("to"),
                    "org": advice.get("org"),
                    "purpose": advice.get("purpose"),
                    "data_categories": advice.get("data_categories") or [],
                }
            )
        for q in questions:
            q["answer"] = answers.get(q["advice_id"])
        return questions

    async def cited_advice(self, principal: Principal, ids: Any) -> list[dict[str, Any]]:
        """The answered questions a justification cites (`advice`: the caller's own advice IDs), for its ledger entry:
        who answered (role and reference), when, what they said, and where both entries are."""
        if ids is None:
            return []
        if (
            not isinstance(ids, list)
            or not 1 <= len(ids) <= MAX_CITED
            or not all(isinstance(i, str) and ADVICE_ID_RE.match(i) for i in ids)
        ):
            raise Invalid(
                "invalid_advice",
                f"advice must list 1 to {MAX_CITED} advice IDs (adv_…) of your own questions.",
                "advice",
            )
        mine = {q["advice_id"]: q for q in await self.list_advice_of(principal)}
        out = []
        for i in dict.fromkeys(ids):
            q = mine.get(i)
            if q is None or q["answer"] is None:
                raise Invalid(
                    "advice_not_answered",
                    "Cite only your own questions that have been answered.",
                    "advice",
                    advice_id=i,
                )
            out.append(
                {
                    "id": i,
                    "to": q["to"],
                    "question_index": q["ledger_index"],
                    "answer_index": q["answer"]["ledger_index"],
                    "answered_by": q["answer"]["by"],
                    "answered_at": q["answer"]["at"],
                    "answer": q["answer"]["answer"],
                }
            )
        return out

    async def list_advice_of(self, principal: Principal) -> Sequence[dict[str, Any]]:
        """The caller's own questions, whatever adviser roles they also hold."""
        practitioner = Principal(principal.sub, frozenset({"practitioner"}), principal.org, principal.issuer, 0)
        return await self.list_advice(practitioner)
