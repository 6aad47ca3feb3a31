"""The printable subject report: everything the organisation recorded about one person, in order, with proof.

Pure (no I/O): the API hands in ledger rows, the checkpoint stamp and the inclusion-proof results, and gets
back the report as data (served as JSON) and as one self-contained HTML page. The page is meant to be read,
printed and filed by an auditor, an inspector or a court, so it must be safe to open anywhere: every value
from the ledger is escaped (free text in a justification is whatever a practitioner typed), there is no
script, no external resource of any kind (fonts, images, styles), and the CSS is inline and print-friendly.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from html import escape
from typing import Any
from zoneinfo import ZoneInfo

from .agreements import describe_ref
from .disclosure import describe as describe_disclosure
from .encoding import b64 as _b64
from .justification import Policy, PolicyRegistry, UnknownPolicy
from .store.models import LedgerRow

#: Realistic reports hold a few hundred entries; this bounds the page size and the proof work.
REPORT_CAP = 5000

#: Rule sections' titles, their rule numbers and the common themes across editions all come from the policies
#: loaded (`PolicyRegistry`): each entry is read with the policy it names, so a new edition needs no code here.
#: How a decision's flags read in the report (the ids come from the policy's x-safety-nets).
FLAG_TITLES = {
    "not_share_despite_risk": "Decision not to share despite risk of significant harm or immediate risk",
    "emergency_share": "Emergency share: made at once with the minimum answers, the rest owed",
}
KIND_TITLES = {
    "share": "Shared",
    "decision": "Decision recorded",
    "fetch": "Envelope fetched",
    "revoke": "Share revoked",
    "expire": "Envelopes destroyed",
    "acknowledge": "Receipt acknowledged",
    "emergency_completed": "Emergency share's justification completed",
    "share_approved": "Share approved by a second person (dual control)",
    # Recipients without a key (issue 10).
    "claim_code_sent": "One-time code sent",
    "claim_code_accepted": "One-time code accepted",
    "claim_code_refused": "Wrong one-time code",
    "claim_locked": "Claim locked (too many wrong codes)",
    "rewrapped": "Held envelope re-wrapped to the recipient's key",
    "expired_unclaimed": "Held envelopes destroyed, unclaimed",
}
CLAIM_DETAILS = ("attempts_left", "code_expires_at", "old_envelope_sha256", "envelope_sha256", "reason")


def _actor(entry: Mapping[str, Any]) -> dict[str, Any] | None:
    actor = entry.get("actor")
    if not isinstance(actor, Mapping):
        return None
    return {k: actor.get(k) for k in ("sub", "role", "org")}


def _sections(
    policies: PolicyRegistry | None, entry: Mapping[str, Any], answered: Mapping[str, Any]
) -> list[dict[str, Any]]:
    """The entry's rule sections in its policy's order, titled in that edition's words, with their common themes.

    A section of a policy this gateway no longer loads is still shown (under its key), never dropped.
    """
    ref = entry.get("policy")
    policy_id = ref.get("id") if isinstance(ref, Mapping) else None
    if not isinstance(policy_id, str):
        policy_id = ""
    known = []
    if policies is not None and policy_id:
        try:
            known = policies.get(policy_id).sections()
        except UnknownPolicy:
            known = []
    out = [
        {
            "key": s.key,
            "rule": s.rule,
            "title": s.title,
            "themes": policies.themes(policy_id, s.rule) if policies else [],
        }
        for s in known
        if s.key in answered
    ]
    listed = {s["key"] for s in out}
    out += [{"key": k, "rule": None, "title": k.replace("_", " "), "themes": []} for k in answered if k not in listed]
    return out


def _event(
    row: LedgerRow,
    proofs: Mapping[int, str | None],
    covered: int | None,
    why_unchecked: str,
    policies: PolicyRegistry | None = None,
) -> dict[str, Any]:
    """One timeline item: the facts an auditor reads, plus the whole entry so the JSON can be re-verified."""
    entry: dict[str, Any] = json.loads(row.entry)
    justification = entry.get("justification") or {}
    event: dict[str, Any] = {
        "index": row.index,
        "time": row.time,
        "kind": row.kind,
        "leaf_hash": _b64(row.leaf_hash),
        "actor": _actor(entry),
        "share_id": entry.get("share_id"),
        "subjects": list(entry.get("subjects") or []),
    }
    if row.kind in ("share", "decision", "emergency_completed"):
        event["decision"] = entry.get("decision")
        event["purpose"] = entry.get("purpose")
        event["data_categories"] = list(entry.get("data_categories") or [])
        rules = justification.get("rules")
        answered: Mapping[str, Any] = rules if isinstance(rules, Mapping) else {}
        event["rule_sections"] = _sections(policies, entry, answered)
        event["rules"] = {s["key"]: answered[s["key"]] for s in event["rule_sections"]}
        event["policy"] = entry.get("policy")
        event["agreements"] = list(entry.get("agreements") or [])
        event["no_agreement"] = justification.get("no_agreement")
        event["agreement_override"] = entry.get("agreement_override")
        event["started_from"] = entry.get("started_from")
        if entry.get("handling") is not None:
            event["handling"] = entry.get("handling")
    if row.kind in ("share", "decision"):
        event["flags"] = [str(f) for f in entry.get("flags") or []]
        # Issue 14: an emergency share's deadline; a refusal's explanation; the refusal a decision reconsiders.
        for key in ("emergency", "explanation", "reconsiders", "dual_control", "retention"):
            if isinstance(entry.get(key), Mapping):
                event[key] = dict(entry[key])
        if isinstance(entry.get("advice"), list):  # advice cited: who answered, when, what they said
            event["advice"] = [dict(a) for a in entry["advice"] if isinstance(a, Mapping)]
    if row.kind == "emergency_completed":
        event["completes"] = entry.get("completes")
        event["share_index"] = entry.get("share_index")
    if row.kind == "share_approved":
        event["share_index"] = entry.get("share_index")
        event["note"] = entry.get("note")
    if row.kind == "decision":
        disclosure = entry.get("disclosure")
        if isinstance(disclosure, Mapping):
            event["disclosure"] = {**disclosure, "description": describe_disclosure(disclosure)}
    if row.kind == "share":
        event["recipients"] = [
            {k: r.get(k) for k in ("id", "org", "envelope_sha256", "envelope_size")}
            | {k: r[k] for k in ("address", "mode") if k in r}  # an address without a key (issue 10)
            for r in entry.get("recipients") or []
        ]
        payload = entry.get("payload") or {}
        event["payload"] = {"size": payload.get("size"), "content_type": payload.get("content_type")}
        event["expires_at"] = entry.get("expires_at")
        event["max_downloads"] = entry.get("max_downloads")
    elif row.kind == "fetch":
        event["recipients"] = [{k: r.get(k) for k in ("id", "org")} for r in entry.get("recipients") or []]
        event["envelope_sha256"] = entry.get("envelope_sha256")
        event["download"] = entry.get("download")
        event["share_index"] = entry.get("share_index")
    elif row.kind in ("revoke", "expire"):
        event["recipients"] = [{k: r.get(k) for k in ("id", "org")} for r in entry.get("recipients") or []]
        event["reason"] = entry.get("reason")
        event["share_index"] = entry.get("share_index")
    elif row.kind == "acknowledge":
        event["recipients"] = [{k: r.get(k) for k in ("id", "org")} for r in entry.get("recipients") or []]
        event["note"] = entry.get("note")
        event["share_index"] = entry.get("share_index")
    elif row.kind in KIND_TITLES:  # the steps of an address without a key
        event["recipients"] = [{k: r.get(k) for k in ("id", "org", "address")} for r in entry.get("recipients") or []]
        event["share_index"] = entry.get("share_index")
        event.update({k: entry[k] for k in CLAIM_DETAILS if k in entry})
    if covered is None or row.index >= covered:
        event["inclusion_verified"] = None
        event["inclusion_error"] = why_unchecked if covered is None else "not yet covered by the checkpoint"
    else:
        error = proofs.get(row.index, "not checked")
        event["inclusion_verified"] = error is None
        event["inclusion_error"] = error
    event["entry"] = entry
    return event


def _named(event: dict[str, Any], people: Mapping[str, Mapping[str, str]]) -> dict[str, Any]:
    """The event with its actor's and recipients' names beside their IDs (the entry itself is left as it is)."""
    recorded = (event["entry"].get("actor") or {}).get("name")
    actor = event.get("actor")
    if actor is not None:
        known = people.get(str(actor.get("sub")), {})
        name = recorded if isinstance(recorded, str) and recorded else known.get("name")
        event["actor"] = actor | {k: v for k, v in (("name", name), ("org_name", known.get("org_name"))) if v}
    if "recipients" in event:
        event["recipients"] = [
            r | {k: v for k in ("name", "org_name") if (v := people.get(str(r.get("id")), {}).get(k))}
            for r in event["recipients"]
        ]
    for advice in event.get("advice") or []:  # who gave the advice cited, by name where known
        by = advice.get("answered_by")
        if isinstance(by, Mapping):
            known = people.get(str(by.get("sub")), {})
            names = {"name": by.get("name") or known.get("name"), "org_name": known.get("org_name")}
            advice["answered_by"] = dict(by) | {k: v for k, v in names.items() if isinstance(v, str) and v}
    return event


def _shares(events: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Who received what, and what became of it: one line per share, folded from the timeline."""
    shares: dict[str, dict[str, Any]] = {}
    for e in events:
        sid = e.get("share_id")
        if not sid:
            continue
        if e["kind"] == "share":
            shares[sid] = {
                "share_id": sid,
                "index": e["index"],
                "time": e["time"],
                "sender": e["actor"],
                "purpose": (e.get("purpose") or {}).get("code"),
                "payload_size": (e.get("payload") or {}).get("size"),
                "recipients": e.get("recipients", []),
                "fetches": [],
                "acknowledged": [],
                "ended": None,
            }
        elif sid in shares and e["kind"] in ("fetch", "acknowledge"):
            actor = e.get("actor") or {}
            # Who, by ID (the stable key) and by name where known (issue 13).
            item = {"time": e["time"], "recipient": actor.get("sub"), "index": e["index"]}
            item |= {k: actor[k] for k in ("name", "org_name") if actor.get(k)}
            shares[sid]["fetches" if e["kind"] == "fetch" else "acknowledged"].append(item)
        elif sid in shares and e["kind"] in ("revoke", "expire"):
            shares[sid]["ended"] = {"kind": e["kind"], "time": e["time"], "reason": e.get("reason")}
    return list(shares.values())


def build_report(
    *,
    subject: str,
    rows: Sequence[LedgerRow],
    capped: bool,
    generated_at: str,
    checkpoint: Mapping[str, Any] | None,
    proofs: Mapping[int, str | None],
    cap: int,
    policies: PolicyRegistry | None = None,
    scope: str | None = None,
    people: Mapping[str, Mapping[str, str]] | None = None,
    scope_name: str | None = None,
) -> dict[str, Any]:
    """The report as data, oldest event first. `checkpoint` is the stamp the API verified (or None); `scope` is
    the organisation the auditor reads within (None: the whole partnership), stated on the report's cover by
    `scope_name` (the auditor's token's `org_name`) where known.
    `people` names the IDs (`audit.people_named`): each actor and recipient then carries `name` and `org_name`
    beside its ID, so the report reads "Pat Jones (practitioner, Hereford Primary School; ID pat)".

    An entry counts as proven only when the checkpoint's signature held (or could not be checked) and
    its own inclusion proof verified against that checkpoint's root; entries after the checkpoint are
    listed as not yet covered rather than silently passed.
    """
    if checkpoint is None:
        covered, why = None, "no signed checkpoint yet"
    elif checkpoint.get("signature") == "invalid":
        covered, why = None, "the checkpoint's signature is invalid, so its root proves nothing"
    else:
        covered, why = int(checkpoint["size"]), ""
    events = [_named(_event(r, proofs, covered, why, policies), people or {}) for r in rows]
    checked = [e for e in events if e["inclusion_verified"] is not None]
    return {
        "subject": subject,
        "scope": {"organisation": scope} | ({"organisation_name": scope_name} if scope and scope_name else {}),
        "generated_at": generated_at,
        "count": len(events),
        "capped": capped,
        "cap": cap,
        "checkpoint": dict(checkpoint) if checkpoint is not None else None,
        "verification": {
            "entries_checked": len(checked),
            "entries_verified": sum(1 for e in checked if e["inclusion_verified"]),
            "entries_failed": sum(1 for e in checked if not e["inclusion_verified"]),
            "entries_not_covered": len(events) - len(checked),
        },
        "shares": _shares(events),
        "disclosures": [
            {"index": e["index"], "time": e["time"], "sender": e["actor"], **e["disclosure"]}
            for e in events
            if e.get("disclosure")
        ],
        "not_shared_despite_risk": [e["index"] for e in events if "not_share_despite_risk" in (e.get("flags") or [])],
        "reconsiderations": _chains(events),
        "themes": _themes(events),
        "events": events,
    }


def _chains(events: Sequence[Mapping[str, Any]]) -> list[list[dict[str, Any]]]:
    """Each refusal and the decisions that reconsidered it, in order: one chain per first refusal (issue 14).

    A link to an entry outside this report (another subject's) starts the chain at the reconsideration.
    """
    by_index = {e["index"]: e for e in events}
    parent: dict[int, int] = {}
    for e in events:
        link = e.get("reconsiders")
        if isinstance(link, Mapping) and isinstance(link.get("index"), int) and link["index"] in by_index:
            parent[e["index"]] = link["index"]
    children: dict[int, list[int]] = {}
    for child, up in parent.items():
        children.setdefault(up, []).append(child)
    chains = []
    for e in events:
        if e["index"] in parent or e["index"] not in children:
            continue
        chain, todo = [], [e["index"]]
        while todo:
            i = todo.pop(0)
            item = by_index[i]
            link = item.get("reconsiders") or {}
            chain.append(
                {
                    "index": i,
                    "time": item["time"],
                    "decision": item.get("decision"),
                    "reconsiders": link.get("index"),
                    "new_information": link.get("new_information"),
                    "explanation": item.get("explanation"),
                }
            )
            todo.extend(sorted(children.get(i, [])))
        chains.append(chain)
    return chains


def _themes(events: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The answers grouped by common theme (the base edition's rules, via each edition's ``x-rule-map``), so a
    subject's decisions made under different editions read side by side: "lawful basis" is 2018's rule 1 and
    2024's rules 1 and 3."""
    themes: dict[tuple[str, int], dict[str, Any]] = {}
    for e in events:
        policy = (e.get("policy") or {}).get("id")
        for section in e.get("rule_sections") or []:
            for theme in section["themes"]:
                item = themes.setdefault(
                    (theme["policy"], theme["rule"]),
                    {"policy": theme["policy"], "rule": theme["rule"], "title": theme["title"], "answers": []},
                )
                item["answers"].append(
                    {"index": e["index"], "policy": policy, "rule": section["rule"], "section": section["key"]}
                )
    return [themes[k] for k in sorted(themes)]


# -- HTML ------------------------------------------------------------------------------------------------

#: Report times are shown as the people reading it live them: UK local time (GMT or BST), never raw ISO.
UK_TIME = ZoneInfo("Europe/London")
MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)
#: How each kind of entry reads in the report's timeline (a share's downloads are grouped, see `_timeline`).
KIND_WORDS = {
    "share": "Shared",
    "decision": "Decision recorded",
    "fetch": "Downloaded",
    "revoke": "Withdrawn (share revoked)",
    "expire": "Expired: encrypted copies destroyed",
    "acknowledge": "Receipt acknowledged by the recipient",
    "emergency_completed": "Emergency share's reasons completed",
    "share_approved": "Released after a second person's approval",
    "advice_question": "Advice asked",
    "advice_answer": "Advice given",
}
ROLE_WORDS = {
    "practitioner": "practitioner",
    "recipient": "recipient",
    "admin": "administrator",
    "auditor": "auditor",
    # The adviser roles (auth.ADVISER_ROLES) a practitioner may ask before deciding (issue 14).
    "dsl": "designated safeguarding lead",
    "manager": "manager",
    "dpo": "data protection officer",
    "caldicott_guardian": "Caldicott Guardian",
    "legal": "legal adviser",
}

#: The report's styles, for screen and for print, scoped to `.report` (the report's <main>): the one stylesheet
#: both the API's page (inline, below) and the console (gateway/web/console/report.css, written from this by
#: `python -m gateway.web`, byte for byte) print with, so that the two print alike (a few A4 pages).
REPORT_CSS = """\
/* The subject report (gateway/audit_report.py, REPORT_CSS; console/report.css is written from it by
   `python -m gateway.web`): for screen and print, scoped to .report. */
.report { font-family: system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", arial, sans-serif;
  font-size: 1rem; line-height: 1.35; color: #0b0c0c; }
.report .caption { color: #484949; margin: 0; }
.report h1 { font-size: 2rem; margin: 0 0 10px 0; }
.report h2 { font-size: 1.4rem; margin: 30px 0 10px 0; border-bottom: 2px solid #0b0c0c; }
.report h3 { font-size: 1.1rem; margin: 0 0 5px 0; }
.report h4 { font-size: 1rem; margin: 8px 0 2px 0; }
.report p { margin: 0 0 10px 0; }
.report .cover { border-bottom: 4px solid #0b0c0c; padding-bottom: 10px; }
.report .stamp { border: 3px double #0b0c0c; padding: 10px 15px; margin: 15px 0; }
.report .stamp h2 { border: 0; margin-top: 0; }
.report .stamp.ok { border-color: #00703c; }
.report .stamp.bad { border-color: #b71c1c; }
.report .ok { color: #00703c; }
.report .bad { color: #b71c1c; font-weight: 700; }
.report .pending { color: #6d4c00; }
.report .notice { border-left: 5px solid #b71c1c; padding: 5px 10px; }
.report .flag { border: 2px solid #b71c1c; color: #b71c1c; font-weight: 700; padding: 3px 8px; }
.report pre, .report code, .report .hash { font-family: ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace;
  font-size: 0.85em; white-space: pre-wrap; overflow-wrap: anywhere; }
.report table { border-collapse: collapse; width: 100%; margin: 5px 0 15px 0; }
.report th, .report td { border: 1px solid #b1b4b6; padding: 4px 6px; text-align: left;
  vertical-align: top; }
.report th { background: #f3f2f1; }
.report .event { border-left: 5px solid #505a5f; padding: 2px 0 2px 12px; margin: 12px 0; }
.report .event.share { border-left-color: #1d70b8; }
.report .event.decision { border-left-color: #6a1b9a; }
.report .event.fetch { border-left-color: #00703c; }
.report .event.revoke, .report .event.expire { border-left-color: #b71c1c; }
.report dl { display: grid; grid-template-columns: 13rem 1fr; gap: 2px 12px; margin: 4px 0; }
.report dt { font-weight: 700; }
.report dd { margin: 0; overflow-wrap: anywhere; }
.report dl dl { grid-template-columns: 11rem 1fr; }
.report ul { margin: 0; padding-left: 20px; }
.report .rules__title { column-span: all; margin: 8px 0 0 0; }
.report footer { margin-top: 20px; color: #484949; font-size: 0.9em; }

/* Print: the report in a few A4 pages. */
@page { size: A4; margin: 14mm 13mm; }
@media print {
  .report { font-size: 8.5pt; line-height: 1.2; }
  .report h1 { font-size: 16pt; }
  .report h2 { font-size: 12pt; margin-top: 14px; break-after: avoid; page-break-after: avoid; }
  .report h3, .report h4 { font-size: 9.5pt; break-after: avoid; page-break-after: avoid; }
  .report .event { margin: 4px 0; padding-top: 0; padding-bottom: 0; }
  .report dl { grid-template-columns: 8.5rem 1fr; }
  .report .stamp { padding: 4px 10px; margin: 8px 0; }
  .report dl dl { grid-template-columns: 9rem 1fr; }
  .report .rules { columns: 2; column-gap: 15px; }
  .report .rules dl { grid-template-columns: 8rem 1fr; break-inside: avoid; }
  .report tr, .report .stamp { break-inside: avoid; page-break-inside: avoid; }
  .report th { background: none; }
  .report a { color: inherit; text-decoration: none; }
  .report .appendix { border-top: 4px solid #0b0c0c; margin-top: 14px; font-size: 7.5pt; }
  /* The appendix is for checking by machine or by a patient reader: smaller, and the raw note in small type. */
  .report .appendix h2 { font-size: 11pt; }
  .report .appendix h3 { font-size: 8.5pt; }
  .report .appendix pre { font-size: 5.5pt; line-height: 1.1; }
  .report .appendix dl { grid-template-columns: 7rem 1fr; }
  .report th, .report td { padding: 2px 4px; }
  .report table { font-size: 8pt; }
  /* Times and IDs break between words, not between characters: a narrow column of one letter a line
     (a share ID split over seven lines) made the summary table half a page for four shares. */
  .report table code, .report table .hash { overflow-wrap: normal; word-break: normal; }
  .report td, .report th { overflow-wrap: break-word; }
}
"""
#: The API's page around the report: a readable column on screen, the whole sheet in print.
PAGE_CSS = (
    "body { margin: 2rem auto; max-width: 60rem; padding: 0 1rem; background: #fff; }\n"
    "@media print { body { margin: 0; max-width: none; padding: 0; } }\n"
)


def uk_time(value: Any, *, seconds: bool = False) -> str:
    """An RFC 3339 time as UK people read it: "3 December 2026 at 9:05am" (GMT or BST, as the clock showed)."""
    if not isinstance(value, str) or not value:
        return "—"
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return value
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    local = moment.astimezone(UK_TIME)
    hour = local.hour % 12 or 12
    clock = f"{hour}:{local.minute:02d}" + (f":{local.second:02d}" if seconds else "")
    return f"{local.day} {MONTHS[local.month - 1]} {local.year} at {clock}{'am' if local.hour < 12 else 'pm'}"


def uk_date(value: Any) -> str:
    """Just the UK date of an RFC 3339 time ("3 December 2026")."""
    full = uk_time(value)
    return full.split(" at ", 1)[0]


def _e(value: Any) -> str:
    """Escape anything for HTML text or attribute context; None shows as an em dash."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return escape(str(value), quote=True)


def _humanise(key: Any) -> str:
    text = str(key).replace("_", " ").strip()
    text = text.lstrip("0123456789 ").strip() or text
    return text[:1].upper() + text[1:]


class Words:
    """The policy's own words for a decision's fields and coded values (``x-labels``, schema titles), so the
    report never shows a raw code such as ``public_task``; a code a policy no longer describes is humanised."""

    def __init__(self, policies: PolicyRegistry | None) -> None:
        self.policies = policies

    def _policy(self, policy_id: Any) -> Policy | None:
        if self.policies is None:
            return None
        try:
            return self.policies.get(str(policy_id)) if policy_id else self.policies.default
        except UnknownPolicy:
            return None

    def title(self, policy_id: Any, path: Sequence[str | int]) -> str:
        policy = self._policy(policy_id)
        found = policy.field_title(path) if policy else None
        return found or _humanise(path[-1])

    def value(self, policy_id: Any, path: Sequence[str | int], value: Any) -> str:
        """One answer in words: a coded value by its label, free text as typed (escaped), yes/no for booleans."""
        policy = self._policy(policy_id)
        if isinstance(value, Mapping):
            if not value:
                return "—"
            items = "".join(
                f"<dt>{_e(self.title(policy_id, [*path, k]))}</dt><dd>{self.value(policy_id, [*path, k], v)}</dd>"
                for k, v in value.items()
            )
            return f"<dl>{items}</dl>"
        if isinstance(value, list):
            parts = [self.value(policy_id, [*path, i], v) for i, v in enumerate(value)]
            return "; ".join(parts) if parts else "none"
        label = policy.value_label(path, value) if policy and isinstance(value, str | bool) else None
        if label is not None:
            return _e(label)
        return _e(value)

    def code(self, path: Sequence[str | int], code: Any, policy_id: Any = None) -> str:
        """A code in words from the entry's policy, else from any loaded policy that labels it."""
        if code is None:
            return "—"
        candidates = [self._policy(policy_id)] if policy_id else []
        candidates += list(self.policies.all()) if self.policies else []
        for policy in candidates:
            label = policy.value_label(path, code) if policy else None
            if label is not None:
                return _e(label)
        return _e(_humanise(code))


def _who(actor: Mapping[str, Any] | None) -> str:
    """Who acted, by name where known, with their ID too (two people may share a name, and the ID is what the
    ledger and every other record use): "Pat Jones (practitioner, Hereford Primary School; ID pat)"."""
    if not actor:
        return "the gateway (automatic)"
    sub = actor.get("sub")
    name = actor.get("name") or sub
    role = ROLE_WORDS.get(str(actor.get("role")), actor.get("role"))
    org_name = actor.get("org_name") or actor.get("org")
    org = f", {_e(org_name)}" if org_name else ""
    ident = f"; ID {_e(sub)}" if name != sub else ""
    return f"{_e(name)} ({_e(role)}{org}{ident})"


def _person(r: Mapping[str, Any]) -> str:
    """A recipient (person or team) as people read it: "Alice Smith (Hereford MASH; ID alice)", or the ID (or an
    address without a key) and organisation when the directory has no name."""
    ident = r.get("id") or r.get("address")
    org = r.get("org_name") or r.get("org")
    if r.get("name") and r.get("name") != ident:
        return f"{_e(r['name'])} ({_e(org)}; ID {_e(ident)})" if org else f"{_e(r['name'])} (ID {_e(ident)})"
    return f"{_e(ident)} ({_e(org)})"


def _downloader(item: Mapping[str, Any], same_name: set[str]) -> str:
    """A recipient who downloaded or acknowledged a share (their actor ID in `recipient`), by name where known
    ("Alice Able"), else by ID. The Recipients column beside it gives each one's organisation and ID, so the ID is
    repeated here only for a name two of the share's people have (`same_name`): the table stays a few A4 pages."""
    ident = item.get("recipient")
    name = item.get("name")
    if not name or name == ident:
        return _e(ident if ident else "unknown")
    return f"{_e(name)} (ID {_e(ident)})" if name in same_name else _e(name)


def _same_names(share: Mapping[str, Any]) -> set[str]:
    """Names two different people of one share carry (recipients, downloaders, acknowledgers)."""
    seen: dict[str, set[str]] = {}
    people = [(r.get("name"), r.get("id")) for r in share.get("recipients") or []]
    people += [(x.get("name"), x.get("recipient")) for x in [*share.get("fetches", []), *share.get("acknowledged", [])]]
    for name, ident in people:
        if name:
            seen.setdefault(str(name), set()).add(str(ident))
    return {n for n, ids in seen.items() if len(ids) > 1}


def _proof_word(event: Mapping[str, Any]) -> str:
    verified = event.get("inclusion_verified")
    if verified is True:
        return '<span class="ok">verified</span>'
    if verified is False:
        return f'<span class="bad">inclusion proof FAILED: {_e(event.get("inclusion_error"))}</span>'
    return f'<span class="pending">not yet checked: {_e(event.get("inclusion_error") or "no checkpoint")}</span>'


def _agreement_rows(e: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The partnership agreements a decision relied on, in plain words (or why none applied, or an override)."""
    rows: list[tuple[str, str]] = []
    refs = e.get("agreements") or []
    if refs:
        # The document's digest says exactly which text was relied on, years later (the title alone may be reused).
        items = "".join(
            f"<li>{_e(describe_ref(r))}"
            + (
                f"; document SHA-256 <span class=hash>{_e(r['document_sha256'])}</span>"
                if r.get("document_sha256")
                else ""
            )
            + "</li>"
            for r in refs
        )
        rows.append(("Made under the partnership's agreements", f"<ul>{items}</ul>"))
    none = e.get("no_agreement")
    if isinstance(none, Mapping):
        rows.append(("No partnership agreement applied", f"{_e(none.get('reason'))}: {_e(none.get('explanation'))}"))
    started = e.get("started_from")
    if isinstance(started, Mapping):
        changed = [str(c) for c in started.get("changed") or []]
        rules = ", ".join(str(n) for n in started.get("confirmed_rules") or [])
        rows.append(
            (
                "Started from the partnership's agreed answers",
                f"“{_e(started.get('set'))}” in agreement {_e(started.get('agreement'))}, version "
                f"{_e(started.get('version'))}. The practitioner confirmed rule{'s' if ',' in rules else ''} "
                f"{_e(rules)} for this case. "
                + (
                    "Agreed answers changed or left out: " + _e(", ".join(changed)) + "."
                    if changed
                    else "Every agreed answer was kept as agreed."
                ),
            )
        )
    override = e.get("agreement_override")
    if isinstance(override, Mapping):
        problems = "".join(f"<li>{_e(p.get('message'))}</li>" for p in override.get("problems") or [])
        rows.append(
            (
                "Shared despite agreement problems, with this reason",
                f"{_e(override.get('reason'))}<ul>{problems}</ul>",
            )
        )
    return rows


def _size(n: Any) -> str:
    if not isinstance(n, int):
        return "—"
    if n < 1024:
        return f"{n} bytes"
    if n < 1024 * 1024:
        return f"{n / 1024:.1f} KB"
    return f"{n / (1024 * 1024):.1f} MB"


def _reasons_key(e: Mapping[str, Any]) -> str:
    """What makes two decisions' recorded reasons the same (the edition and every rule answer)."""
    return json.dumps([e.get("policy"), e.get("rules"), e.get("handling")], sort_keys=True, default=str)


def _decision_html(
    e: Mapping[str, Any], words: Words, same_as: Mapping[str, Any] | None = None
) -> list[tuple[str, str]]:
    """A share's or decision's reasons, each rule section in its edition's words; when they repeat an earlier
    entry's answers word for word (a practitioner's follow-up shares), a pointer to it instead of a copy."""
    policy_id = (e.get("policy") or {}).get("id")
    purpose = e.get("purpose") or {}
    rows: list[tuple[str, str]] = [
        ("Decision", words.code(["decision"], e.get("decision"), policy_id)),
        (
            "Purpose",
            f"{words.code(['purpose', 'code'], purpose.get('code'), policy_id)}: {_e(purpose.get('description'))}",
        ),
        (
            "Information",
            "; ".join(
                words.code(["data_categories", i], c, policy_id) for i, c in enumerate(e.get("data_categories") or [])
            )
            or "none recorded",
        ),
    ]
    sections = []
    if same_as is not None:
        rows.append(
            (
                "Reasons, rule by rule",
                f"The same answers, word for word, as the entry of {_e(uk_time(same_as['time']))} "
                f"(ledger entry {_e(same_as['index'])}) above.",
            )
        )
    for section in [] if same_as is not None else e.get("rule_sections") or []:
        answers = (e.get("rules") or {}).get(section["key"])
        body = words.value(policy_id, ["rules", section["key"]], answers)
        # Issue 14: the rules of the other editions this one corresponds to, so 2018 and 2024 read side by side.
        across = "; ".join(f"{t['policy']} rule {t['rule']} ({t['title']})" for t in section.get("themes") or [])
        sections.append(
            f"<h4>{_e(section['title'])}</h4>"
            + (f'<p class="caption">Across editions: {_e(across)}</p>' if across else "")
            + (body if body.startswith("<dl>") else f"<p>{body}</p>")
        )
    if sections:
        rows.append(
            (
                "Reasons",
                '<div class="rules"><p class="rules__title"><strong>Reasons, rule by rule</strong></p>'
                + "".join(sections)
                + "</div>",
            )
        )
    if isinstance(e.get("handling"), Mapping):
        rows.append(("Handling instruction sent", words.value(policy_id, ["handling"], e["handling"])))
    policy = e.get("policy") or {}
    title = words._policy(policy.get("id"))
    rows.append(
        ("Rules followed", f"{_e(title.title if title else policy.get('id'))} (version {_e(policy.get('version'))})")
    )
    rows += _agreement_rows(e)
    return rows


def _fetch_group_html(group: Sequence[Mapping[str, Any]]) -> str:
    """A run of downloads of one share, as one timeline item: who downloaded it, how often, from when to when."""
    first, last = group[0], group[-1]
    people: dict[str, int] = {}
    for f in group:
        actor = f.get("actor") or {}
        sub = actor.get("sub") or "unknown"
        who = f"{_e(actor['name'])} (ID {_e(sub)})" if actor.get("name") and actor["name"] != sub else _e(sub)
        people[who] = people.get(who, 0) + 1
    by = ", ".join(f"{p} ({n} time{'s' if n != 1 else ''})" for p, n in people.items())
    start, end = uk_time(first["time"]), uk_time(last["time"])
    if start == end:
        when = start
    elif start.split(" at ")[0] == end.split(" at ")[0]:
        when = f"{start} to {end.split(' at ')[1]}"
    else:
        when = f"{start} to {end}"
    proofs = {_proof_word(f) for f in group}
    proof = proofs.pop() if len(proofs) == 1 else "; ".join(f"entry {_e(f['index'])}: {_proof_word(f)}" for f in group)
    count = f"{len(group)} download{'s' if len(group) != 1 else ''}"
    return (
        f'<section class="event fetch"><h3>{_e(when)} · Downloaded: {count}</h3><dl>'
        f"<dt>Share</dt><dd><code>{_e(first.get('share_id'))}</code></dd>"
        f"<dt>By</dt><dd>{by}</dd>"
        f"<dt>Ledger entries</dt><dd>{', '.join(_e(f['index']) for f in group)} ({proof})</dd>"
        "</dl></section>"
    )


def _event_html(e: Mapping[str, Any], words: Words, same_as: Mapping[str, Any] | None = None) -> str:
    kind = str(e["kind"])
    rows: list[tuple[str, str]] = [("By", _who(e.get("actor")))]
    disclosure = e.get("disclosure")
    if isinstance(disclosure, Mapping):
        people = "".join(
            f"<tr><td>{_e(w.get('name') or w.get('recipient'))}</td><td>{_e(w.get('role'))}</td>"
            f"<td>{_e(w.get('organisation') or w.get('org'))}</td></tr>"
            for w in disclosure.get("with") or []
            if isinstance(w, Mapping)
        )
        rows.append(("Shared", _e("Shared " + str(disclosure.get("description")))))
        rows.append(("When shared", _e(uk_time(disclosure.get("at")))))
        rows.append(("Shared with", f"<table><tr><th>Name</th><th>Role</th><th>Organisation</th></tr>{people}</table>"))
        rows.append(("What was shared", _e(disclosure.get("summary"))))
    if e.get("share_id"):
        rows.append(("Share", f"<code>{_e(e['share_id'])}</code>"))
    # Issue 14: the refusal a decision reconsiders, the explanation given, an emergency share's deadline and
    # its completion, the retention class that caps a share's lifetime.
    reconsiders = e.get("reconsiders")
    if isinstance(reconsiders, Mapping):
        rows.append(("Reconsiders", f"the decision not to share in ledger entry {_e(reconsiders.get('index'))}"))
        rows.append(("New information", _e(reconsiders.get("new_information"))))
    explanation = e.get("explanation")
    if isinstance(explanation, Mapping):
        rows.append(("Explained to", _e(explanation.get("to"))))
        rows.append(("Explanation given", _e(explanation.get("explanation"))))
    emergency = e.get("emergency")
    if isinstance(emergency, Mapping):
        owed = ", ".join(
            _humanise(str(o.get("field")).rsplit(".", 1)[-1])
            for o in emergency.get("owed") or []
            if isinstance(o, Mapping)
        )
        rows.append(("Emergency share", "made at once on the minimum answers: someone was at immediate risk"))
        rows.append(("Full reasons due by", _e(uk_time(emergency.get("complete_by")))))
        rows.append(("Answers still owed when shared", _e(owed) or "none"))
    for a in e.get("advice") or []:
        by = a.get("answered_by") or {}
        adviser = _humanise(ROLE_WORDS.get(str(a.get("to")), a.get("to")))
        rows.append(
            (
                "Advice sought first",
                f"{_e(adviser)}: {_who(by)} answered on {_e(uk_time(a.get('answered_at')))}: "
                f"{_e(a.get('answer'))} (ledger entries {_e(a.get('question_index'))} and {_e(a.get('answer_index'))})",
            )
        )
    control = e.get("dual_control")
    if isinstance(control, Mapping):
        approvers = ", ".join(_humanise(r) for r in control.get("approvers") or [])
        rows.append(("Held until a second person approves", f"one of: {_e(approvers)}"))
    if kind == "share_approved" and e.get("note"):
        rows.append(("Approval note", _e(e.get("note"))))
    completes = e.get("completes")
    if isinstance(completes, Mapping):
        late = ", after the deadline" if completes.get("late") else ", in time"
        rows.append(("Completes", f"the emergency share in ledger entry {_e(completes.get('share_index'))}{late}"))
    if kind in ("share", "decision"):
        rows += _decision_html(e, words, same_as)
    elif kind == "emergency_completed":
        rows += [r for r in _decision_html(e, words) if r[0] != "Decision"]
    retention = e.get("retention")
    if isinstance(retention, Mapping):
        capped = "; the requested lifetime was shortened to it" if retention.get("capped") else ""
        title = retention.get("title") or _humanise(retention.get("class"))
        rows.append(
            (
                "Retention class",
                f"{_e(title)}: the encrypted copies are kept at most {_e(retention.get('max_days'))} days{capped}",
            )
        )
    if kind == "share":
        recips = "; ".join(_person(r) for r in e.get("recipients") or [])
        rows.append(("Sent to", recips or "—"))
        payload = e.get("payload") or {}
        rows.append(("What was sent", f"{_e(_size(payload.get('size')))}, encrypted for each recipient"))
        limit = f"; at most {_e(e.get('max_downloads'))} downloads" if e.get("max_downloads") else ""
        rows.append(("Available until", f"{_e(uk_time(e.get('expires_at')))}{limit}"))
    elif kind in ("revoke", "expire"):
        rows.append(("Reason", _e(e.get("reason"))))
        rows.append(("Encrypted copies destroyed for", "; ".join(_person(r) for r in e.get("recipients") or []) or "—"))
    elif kind == "acknowledge":
        rows.append(("Note to the sender", _e(e.get("note"))))
    elif kind in KIND_TITLES and kind != "decision":  # the steps of an address without a key (no code, ever)
        rows.append(("Address", _e(", ".join(str(r.get("address")) for r in e.get("recipients") or []))))
        for key in CLAIM_DETAILS:
            if key in e:
                value = uk_time(e[key]) if key.endswith("_at") else e[key]
                rows.append((key.replace("_", " ").capitalize(), _e(value)))
    rows.append(("Ledger entry", f"{_e(e['index'])} ({_proof_word(e)})"))
    # The rule-by-rule reasons take the item's full width (two columns on paper), after its facts.
    reasons = "".join(v for _, v in rows if v.startswith('<div class="rules">'))
    body = "".join(f"<dt>{_e(k)}</dt><dd>{v}</dd>" for k, v in rows if not v.startswith('<div class="rules">'))
    title = KIND_WORDS.get(kind) or KIND_TITLES.get(kind, _humanise(kind))
    if kind == "decision":
        title = (
            f"Decision recorded: {_e(words.code(['decision'], e.get('decision'), (e.get('policy') or {}).get('id')))}"
        )
    if e.get("disclosure"):
        title = "Shared another way (recorded decision)"
    flags = "".join(f'<p class="flag">⚑ {_e(FLAG_TITLES.get(str(f), f))}</p>' for f in e.get("flags") or [])
    return (
        f'<section class="event {_e(kind)}"><h3>{_e(uk_time(e["time"]))} · {title}</h3>{flags}<dl>{body}</dl>'
        f"{reasons}</section>"
    )


def _timeline(events: Sequence[Mapping[str, Any]], words: Words) -> str:
    """The timeline, oldest first, with each run of downloads of the same share folded into one item, and
    reasons repeated word for word shown once."""
    out: list[str] = []
    seen: dict[str, Mapping[str, Any]] = {}
    i = 0
    while i < len(events):
        e = events[i]
        if e["kind"] == "fetch":
            j = i
            while (
                j + 1 < len(events)
                and events[j + 1]["kind"] == "fetch"
                and events[j + 1].get("share_id") == e.get("share_id")
            ):
                j += 1
            out.append(_fetch_group_html(events[i : j + 1]))
            i = j + 1
            continue
        same_as = None
        if e["kind"] in ("share", "decision") and e.get("rule_sections"):
            key = _reasons_key(e)
            same_as = seen.get(key)
            seen.setdefault(key, e)
        out.append(_event_html(e, words, same_as))
        i += 1
    return "".join(out) or "<p>No ledger entries about this subject.</p>"


def _verification_summary(report: Mapping[str, Any]) -> str:
    """The stamp on the cover: what was checked, in one box; the raw signed note is in the appendix."""
    cp = report.get("checkpoint")
    v = report["verification"]
    if cp is None:
        return (
            '<div class="stamp"><h2>Verification</h2><p class="pending">No signed checkpoint exists yet, so no '
            "entry in this report can be proven. Request the report again once the ledger has been checkpointed."
            "</p></div>"
        )
    signature = cp.get("signature")
    sig_text = {
        "verified": '<span class="ok">signature verified with the gateway\'s ledger key</span>',
        "invalid": f'<span class="bad">signature INVALID: {_e(cp.get("signature_error"))}</span>',
    }.get(str(signature), '<span class="pending">signature not checked (no verifier key configured)</span>')
    good = signature != "invalid" and v["entries_failed"] == 0
    failed = f", {_e(v['entries_failed'])} FAILED" if v["entries_failed"] else ""
    later = (
        f"; {_e(v['entries_not_covered'])} later entries not yet covered by a checkpoint"
        if v["entries_not_covered"]
        else ""
    )
    return (
        f'<div class="stamp {"ok" if good else "bad"}"><h2>Verification</h2><dl>'
        f"<dt>Signed checkpoint</dt><dd>{_e(uk_time(cp.get('time')))}, covering {_e(cp.get('size'))} entries"
        f" of the ledger; {sig_text}</dd>"
        f"<dt>Inclusion proofs</dt><dd>{_e(v['entries_verified'])} of {_e(v['entries_checked'])} verified"
        f"{failed}{later}</dd>"
        "</dl><p>The checkpoint's root hash and signed note are in the appendix, to check independently.</p></div>"
    )


def _shares_html(shares: Sequence[Mapping[str, Any]], words: Words) -> str:
    if not shares:
        return "<p>No shares about this subject.</p>"
    rows = []
    for s in shares:
        recips = ", ".join(_person(r) for r in s.get("recipients") or [])
        fetched: dict[str, list[str]] = {}
        same = _same_names(s)
        for f in s.get("fetches") or []:
            fetched.setdefault(_downloader(f, same), []).append(f["time"])
        downloads = (
            "<br>".join(
                f"{who}: {len(times)} time{'s' if len(times) != 1 else ''}, first {_e(uk_time(times[0]))}"
                for who, times in fetched.items()
            )
            or "not downloaded"
        )
        acks = "<br>".join(f"{_downloader(a, same)}, {_e(uk_time(a['time']))}" for a in s.get("acknowledged") or [])
        acks = acks or "—"
        ended = s.get("ended")
        state = (
            "—"
            if not ended
            else f"{'Withdrawn' if ended['kind'] == 'revoke' else 'Expired'} {_e(uk_time(ended['time']))}"
            + (f" ({_e(ended.get('reason'))})" if ended.get("reason") else "")
        )
        rows.append(
            f"<tr><td>{_e(uk_time(s['time']))}<br><code>{_e(s['share_id'])}</code></td>"
            f"<td>{words.code(['purpose', 'code'], s.get('purpose'))}</td><td>{_who(s.get('sender'))}</td>"
            f"<td>{recips}</td><td>{downloads}</td><td>{acks}</td><td>{state}</td></tr>"
        )
    return (
        "<table><tr><th>Shared</th><th>Purpose</th><th>By</th><th>Recipients</th>"
        f"<th>Downloads</th><th>Acknowledged</th><th>Withdrawn or expired</th></tr>{''.join(rows)}</table>"
    )


def _disclosures_html(disclosures: Sequence[Mapping[str, Any]]) -> str:
    if not disclosures:
        return ""
    rows = "".join(
        f"<tr><td>{_e(uk_time(d.get('at')))}</td><td>{_e(d.get('description'))}</td>"
        f"<td>{_who(d.get('sender'))}</td><td>{_e(d.get('summary'))}</td><td>{_e(d.get('index'))}</td></tr>"
        for d in disclosures
    )
    return (
        "<h2>Shared another way (phone, meetings, letters)</h2>"
        "<table><tr><th>Shared</th><th>How and with whom</th><th>Recorded by</th><th>What was shared</th>"
        f"<th>Ledger entry</th></tr>{rows}</table>"
    )


def _chains_html(chains: Sequence[Sequence[Mapping[str, Any]]]) -> str:
    """Each refusal and its reconsiderations, in order (issue 14)."""
    out = []
    for chain in chains:
        steps = "".join(
            f"<li>{_e(uk_time(c.get('time')))} (ledger entry {_e(c.get('index'))}): "
            + ("shared" if c.get("decision") == "share" else "not shared")
            + (f" — on new information: {_e(c.get('new_information'))}" if c.get("reconsiders") is not None else "")
            + (
                f" — explained to {_e((c.get('explanation') or {}).get('to'))}: "
                f"{_e((c.get('explanation') or {}).get('explanation'))}"
                if isinstance(c.get("explanation"), Mapping)
                else ""
            )
            + "</li>"
            for c in chain
        )
        out.append(f"<ol class=chain>{steps}</ol>")
    return "".join(out)


def _themes_html(themes: Sequence[Mapping[str, Any]]) -> str:
    if not themes:
        return "<p>No rule answers to group.</p>"
    rows = "".join(
        f"<tr><td>{_e(t['policy'])} rule {_e(t['rule'])}: {_e(t['title'])}</td><td>"
        + ", ".join(f"entry {_e(a['index'])} ({_e(a['policy'])} rule {_e(a['rule'])})" for a in t["answers"])
        + "</td></tr>"
        for t in themes
    )
    return f"<table><tr><th>Common theme</th><th>Answered in</th></tr>{rows}</table>"


def _appendix_html(report: Mapping[str, Any]) -> str:
    """What a verifier needs and a reader does not: the checkpoint's note and each entry's leaf hash."""
    cp = report.get("checkpoint")
    checkpoint = (
        "<p>No signed checkpoint exists yet.</p>"
        if cp is None
        else (
            f"<dl><dt>Checkpoint origin</dt><dd>{_e(cp.get('origin'))}</dd>"
            f"<dt>Tree size</dt><dd>{_e(cp.get('size'))} entries</dd>"
            f"<dt>Root hash (base64)</dt><dd class=hash>{_e(cp.get('root_hash'))}</dd>"
            f"<dt>Signed at</dt><dd>{_e(uk_time(cp.get('time'), seconds=True))} ({_e(cp.get('time'))})</dd></dl>"
            "<p>Signed checkpoint note (C2SP signed note; check it with the published verifier key):</p>"
            f"<pre>{_e(cp.get('note'))}</pre>"
        )
    )
    leaves = "".join(
        f"<tr><td>{_e(e['index'])}</td><td>{_e(e['kind'])}</td>"
        f"<td class=hash>{_e(e.get('leaf_hash'))}</td><td>{_proof_word(e)}</td></tr>"
        for e in report["events"]
    )
    return (
        '<section class="appendix"><h2>Appendix: verification details</h2>'
        f"{checkpoint}<h3>Ledger entries in this report</h3>"
        "<table><tr><th>Entry</th><th>Kind</th><th>Leaf hash (base64)</th>"
        f"<th>Inclusion proof</th></tr>{leaves}</table>"
        f"<h3>Across editions of the rules</h3>{_themes_html(report.get('themes') or [])}"
        "<footer>Each entry is RFC 8785 canonical JSON; its leaf hash is SHA-256(0x00 ‖ entry). The inclusion "
        "proofs are RFC 9162 audit paths to the root in the signed checkpoint above. The same data is available "
        "as JSON (format=json) for independent checking.</footer></section>"
    )


def report_body(report: Mapping[str, Any], policies: PolicyRegistry | None = None) -> str:
    """The report's content (no <html> wrapper): what the API page and the auditor's console both show."""
    words = Words(policies)
    subject = _e(report["subject"])
    events = report["events"]
    scope = report.get("scope") or {}
    organisation = scope.get("organisation")
    org_name = scope.get("organisation_name")
    # The organisation by name, with its ID (the stable key every entry holds), or the ID alone.
    org_words = f"{_e(org_name)} (ID {_e(organisation)})" if org_name and org_name != organisation else _e(organisation)
    period = f"{_e(uk_date(events[0]['time']))} to {_e(uk_date(events[-1]['time']))}" if events else "no entries"
    counts: dict[str, int] = {}
    for e in events:
        counts[e["kind"]] = counts.get(e["kind"], 0) + 1
    tally = ", ".join(
        f"{n} {KIND_WORDS.get(k, _humanise(k)).split(' (')[0].split(':')[0].lower()}" for k, n in sorted(counts.items())
    )
    cap_notice = (
        f'<p class="notice">This report is capped at the oldest {_e(report["cap"])} entries about this subject; '
        "more exist. Use the ledger export (format=csv or jsonl, subject filter) for the complete record.</p>"
        if report.get("capped")
        else ""
    )
    flagged = (
        f'<p class="flag">⚑ {_e(len(report["not_shared_despite_risk"]))} decision(s) not to share despite risk of '
        "significant harm or immediate risk: see the flagged entries in the timeline.</p>"
        if report.get("not_shared_despite_risk")
        else ""
    )
    cover = (
        '<header class="cover"><p class="caption">SafeShare subject report</p>'
        f"<h1>Subject report: {subject}</h1><dl>"
        f"<dt>Subject reference</dt><dd>{subject}</dd>"
        f"<dt>Organisation</dt><dd>{org_words if organisation else 'All organisations in the partnership'}</dd>"
        "<dt>Scope</dt><dd>"
        + (
            f"Every ledger entry about this subject reference that {_e(org_name or organisation)} took part in (as "
            "sender or "
            "recipient)"
            if organisation
            else "Every ledger entry about this subject reference, whichever organisation made it"
        )
        + f"</dd><dt>Period</dt><dd>{period}</dd>"
        f"<dt>Entries</dt><dd>{_e(report['count'])}{': ' + _e(tally) if tally else ''}</dd>"
        f"<dt>Produced</dt><dd>{_e(uk_time(report['generated_at']))}; all times are UK time</dd>"
        f"</dl></header>{cap_notice}{_verification_summary(report)}{flagged}"
    )
    return (
        cover
        + f"<h2>Shares: who received what</h2>{_shares_html(report['shares'], words)}"
        + _disclosures_html(report.get("disclosures") or [])
        + (
            f"<h2>Refusals reconsidered</h2>{_chains_html(report['reconsiderations'])}"
            if report.get("reconsiderations")
            else ""
        )
        + f"<h2>Timeline</h2>{_timeline(events, words)}"
        + _appendix_html(report)
    )


def render_html(report: Mapping[str, Any], policies: PolicyRegistry | None = None) -> str:
    """One self-contained, printable page; nothing in it is fetched or executed by the browser."""
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en-GB"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="referrer" content="no-referrer">'
        f"<title>SafeShare subject report — {_e(report['subject'])}</title><style>{PAGE_CSS}{REPORT_CSS}</style>"
        f'</head><body><main class="report">{report_body(report, policies)}</main></body></html>\n'
    )
