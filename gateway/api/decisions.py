"""Justifications: live validation for the extension, and recording a decision with no payload."""

from __future__ import annotations

import base64
import json
from typing import Any

from aiohttp import web

from .. import disclosure as disclosure_rules
from .. import idempotency, tenancy
from .. import reconsider as reconsider_rules
from ..auth import Principal
from ..errors import ApiError
from ..idempotency import INFLIGHT, Idempotency
from ..ledger.entry import format_time, parse_time
from ..service import DecisionRequest
from ..store import audit
from ..store.idempotency import IdempotencyHit
from ..store.models import LedgerRow
from .common import gateway, json_response, paging, principal, query_str, read_json, read_json_raw

routes = web.RouteTableDef()

_WRAPPED = frozenset({"justification", "disclosure", "explanation", "advice", "started_from"})


def _unwrap(body: Any) -> tuple[Any, Any]:
    """The body is the justification itself, or `{"justification": {...}, "disclosure": {...}?, ...}`."""
    if isinstance(body, dict) and "justification" in body and set(body) <= _WRAPPED:
        return body["justification"], body.get("disclosure")
    return body, None


def _explanation(body: Any) -> Any:
    """A not-share decision's explanation given to whoever asked (issue 14), beside the justification."""
    return _wrapped(body, "explanation")


def _wrapped(body: Any, key: str) -> Any:
    """A part beside the justification in the wrapped body (explanation, advice cited), or None."""
    if isinstance(body, dict) and "justification" in body and set(body) <= _WRAPPED:
        return body.get(key)
    return None


@routes.post("/api/v1/justifications/validate")
async def validate(request: web.Request) -> web.Response:
    """Problems for a draft, recording nothing: the extension calls this as the practitioner types.

    With `{"justification", "disclosure"}` the disclosure made elsewhere is checked too, by the same rules as
    `POST /api/v1/decisions`. `safety_nets` lists each principle of the policy that applies to the draft as it
    stands (e.g. not sharing although a child faces significant harm), for the panel to show at that moment.
    Problems with the partnership agreements the draft names (rule 6) are included; the recipients' organisations
    are checked only when the share is made.
    """
    caller = principal(request, "practitioner", "admin", "partnership_admin")
    body = await read_json(request, "justification")
    draft, disclosure = _unwrap(body)
    gw = gateway(request)
    policy, problems = gw.check_justification(draft, caller)
    if isinstance(body, dict) and "disclosure" in body and isinstance(draft, dict):
        problems = [*problems, *disclosure_rules.problems(disclosure, draft.get("decision"), gw.now())]
    if _explanation(body) is not None and isinstance(draft, dict):
        problems = [
            *problems,
            *reconsider_rules.explanation_problems(policy, _explanation(body), draft.get("decision")),
        ]
    # Agreement problems (rule 6), except on a field the policy already found wrong (e.g. an ID's pattern).
    taken = {p.field for p in problems}
    problems = [*problems, *(p for p in await gw.agreements.draft_agreement_problems(draft) if p.field not in taken)]
    result: dict[str, Any] = {
        "valid": not problems,
        "problems": [p.as_dict() for p in problems],
        "policy": None if policy is None else {"id": policy.id, "version": policy.version, "digest": policy.digest},
        "safety_nets": [] if policy is None else policy.notices(draft),
    }
    emergency = gw.emergencies.emergency_preview(caller, policy, draft, problems)
    if emergency is not None:  # only for a share at immediate risk: other drafts' answers keep their shape
        result["emergency"] = emergency
    return json_response(result)


@routes.post("/api/v1/decisions")
async def record_decision(request: web.Request) -> web.Response:
    """Golden rule 7: a decision recorded with its reasons, with no payload.

    The body is the justification itself, or `{"justification": {...}, "disclosure": {...}}`. A `share`
    decision needs the disclosure (it was shared another way: phone, meeting, letter…); `not_share` none.
    """
    p = principal(request, "practitioner")
    gw = gateway(request)
    key = idempotency.header_key(request)
    if key is None:
        return await _record_decision(request, p, None)
    idem = Idempotency(
        idempotency.scope(p), key, request.method, request.path, gw.settings.limits.idempotency_key_ttl_seconds
    )
    with request.app[INFLIGHT].hold(idem.principal, key):
        idem.stored = await gw.store.idempotent_answer(idem.principal, key, gw.now_str())
        return await _record_decision(request, p, idem)


async def _record_decision(request: web.Request, p: Principal, idem: Idempotency | None) -> web.Response:
    body, raw = await read_json_raw(request, "justification")
    draft, disclosure = _unwrap(body)
    replayed = False
    if idem is not None:
        idem.update(b"body", raw)
        if idem.stored is not None:
            result, replayed = idem.answer(idem.stored), True
    if not replayed:
        try:
            result = await gateway(request).record_decision(
                p,
                DecisionRequest(draft, disclosure),
                idem,
                _explanation(body),
                advice=_wrapped(body, "advice"),
                started_from=_wrapped(body, "started_from"),
            )
        except IdempotencyHit as hit:  # taken meanwhile (another node): the same rules
            assert idem is not None
            result, replayed = idem.answer(hit.stored), True
    # Same shape as a share's response, without share_id: nothing was sent through SafeShare.
    resp = json_response({**result, "recipients": [], "expires_at": None}, status=201)
    if replayed:
        resp.headers["Idempotent-Replayed"] = "true"
    return resp


@routes.post("/api/v1/decisions/{index}/reconsider")
async def reconsider_decision(request: web.Request) -> web.Response:
    """A decision not to share, reconsidered on new information (issue 14; DfE 2024 rule 7): a new decision linked to
    the earlier one. Body: `{"justification", "new_information", "disclosure"?, "explanation"?}`. A practitioner of the
    organisation that refused; anyone else 404."""
    p = principal(request, "practitioner")
    raw = request.match_info["index"]
    if not raw.isdigit() or len(raw) > 18:
        raise ApiError(404, "not_found", "No such decision, or it is not yours to see.")
    body = await read_json(request, "justification")
    result = await gateway(request).reconsideration.reconsider(p, int(raw), body)
    return json_response({**result, "recipients": [], "expires_at": None}, status=201)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _time_param(request: web.Request, name: str) -> str | None:
    raw = query_str(request, name, 64)
    if raw is None:
        return None
    try:
        return format_time(parse_time(raw))
    except ValueError:
        raise ApiError(
            400,
            "invalid_parameter",
            f"{name} must be an RFC 3339 time with a zone, e.g. 2026-11-25T09:00:00Z.",
            field=name,
        ) from None


def _decision_view(row: LedgerRow) -> dict[str, Any]:
    entry: dict[str, Any] = json.loads(row.entry)
    view: dict[str, Any] = {
        "index": row.index,
        "time": row.time,
        "decision": entry.get("decision"),
        "purpose": entry.get("purpose"),
        "subjects": entry.get("subjects"),
        "actor": {k: (entry.get("actor") or {}).get(k) for k in ("sub", "role", "org")}
        | {k: v for k in ("name", "job_title") if (v := (entry.get("actor") or {}).get(k)) is not None},
        "flags": entry.get("flags") or [],
        "leaf_hash": _b64(row.leaf_hash),
    }
    disclosure = entry.get("disclosure")
    if isinstance(disclosure, dict):
        view["disclosure"] = {**disclosure, "description": disclosure_rules.describe(disclosure)}
    for key in ("explanation", "reconsiders"):  # issue 14: a refusal explained, a reconsideration's link
        if isinstance(entry.get(key), dict):
            view[key] = entry[key]
    return view


@routes.get("/api/v1/decisions")
async def list_own_decisions(request: web.Request) -> web.Response:
    """The practitioner's own decisions recorded without a payload (the sender's view beside `GET /shares`):
    disclosures made another way ("by phone to …") and decisions not to share, newest first.

    `awaiting_justification` lists, on every page, the caller's emergency shares whose full justification is
    still owed (issue 14), soonest deadline first, each marked `overdue` once past it: the extension's reminder.
    """
    p = principal(request, "practitioner")
    gw = gateway(request)
    limit, before = paging(request, gw.settings.limits.page_size_max)
    rows = await gw.store.own_decisions(p.sub, before=before, limit=limit)
    mine = [r for r in rows if (json.loads(r.entry).get("actor") or {}).get("iss") == p.issuer]
    return json_response(
        {
            "decisions": [_decision_view(r) for r in mine],
            "next_cursor": str(rows[-1].index) if len(rows) == limit else None,
            "awaiting_justification": await gw.emergencies.owed_justifications(p),
        }
    )


@routes.get("/api/v1/decisions/not-shared-despite-risk")
async def list_not_shared_despite_risk(request: web.Request) -> web.Response:
    """For the designated safeguarding lead or auditor: decisions not to share although a child or an adult at
    risk faced significant harm or immediate risk, each with its other route or senior sign-off, newest first.
    `org` narrows to one organisation's practitioners; `from`/`to` to a period. An `auditor` sees only their own
    organisation's decisions (tenancy.py); a `partnership_auditor` sees every organisation's."""
    scope = tenancy.auditor_scope(principal(request, *tenancy.AUDITOR_ROLES))
    gw = gateway(request)
    limit, before = paging(request, gw.settings.limits.page_size_max)
    org = query_str(request, "org", 200)
    time_from, time_to = _time_param(request, "from"), _time_param(request, "to")
    if not isinstance(scope, tenancy.Everywhere):
        if org is not None and org != scope:
            # Another organisation's decisions do not involve this auditor's: nothing to list (as /ledger).
            return json_response({"decisions": [], "next_cursor": None})
        org = scope
    rows = await gw.store.flagged_decisions(
        audit.FLAG_NOT_SHARED_DESPITE_RISK,
        org=org,
        time_from=time_from,
        time_to=time_to,
        before=before,
        limit=limit,
    )
    out = []
    for r in rows:
        view = _decision_view(r)
        entry = json.loads(r.entry)
        rules = (entry.get("justification") or {}).get("rules") or {}
        view["risk_level"] = (rules.get("5_safety_wellbeing") or {}).get("risk_level")
        view["not_shared_reason"] = (rules.get("7_record") or {}).get("not_shared_reason")
        view["safety_net"] = (rules.get("7_record") or {}).get("safety_net")
        out.append(view)
    return json_response({"decisions": out, "next_cursor": str(rows[-1].index) if len(rows) == limit else None})
