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
from html import escape
from typing import Any

from .agreements import describe_ref
from .disclosure import describe as describe_disclosure
from .encoding import b64 as _b64
from .justification import PolicyRegistry, UnknownPolicy
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
        elif sid in shares and e["kind"] == "fetch":
            who = (e.get("actor") or {}).get("sub")
            shares[sid]["fetches"].append({"time": e["time"], "recipient": who, "index": e["index"]})
        elif sid in shares and e["kind"] == "acknowledge":
            who = (e.get("actor") or {}).get("sub")
            shares[sid]["acknowledged"].append({"time": e["time"], "recipient": who, "index": e["index"]})
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
) -> dict[str, Any]:
    """The report as data, oldest event first. `checkpoint` is the stamp the API verified (or None).

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
    events = [_event(r, proofs, covered, why, policies) for r in rows]
    checked = [e for e in events if e["inclusion_verified"] is not None]
    return {
        "subject": subject,
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

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #111; margin: 2rem auto;
       max-width: 60rem; padding: 0 1rem; line-height: 1.4; font-size: 11pt; }
h1 { font-size: 1.5rem; margin-bottom: 0.2rem; } h2 { font-size: 1.15rem; margin-top: 2rem;
     border-bottom: 2px solid #333; } h3 { font-size: 1rem; margin: 0 0 0.4rem 0; }
.meta { color: #444; margin: 0; }
.stamp { border: 3px double #333; padding: 0.8rem 1rem; margin: 1.2rem 0; }
.stamp.ok { border-color: #1b5e20; } .stamp.bad { border-color: #b71c1c; }
.ok { color: #1b5e20; } .bad { color: #b71c1c; font-weight: bold; } .pending { color: #6d4c00; }
.notice { border-left: 4px solid #b71c1c; padding: 0.4rem 0.8rem; background: #fff3f3; }
.flag { border: 2px solid #b71c1c; color: #b71c1c; font-weight: bold; padding: 0.2rem 0.5rem; margin: 0 0 0.4rem 0; }
pre, code, .hash { font-family: ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace; font-size: 0.85em;
                   overflow-wrap: anywhere; white-space: pre-wrap; }
table { border-collapse: collapse; width: 100%; margin: 0.5rem 0; }
th, td { border: 1px solid #bbb; padding: 0.25rem 0.4rem; text-align: left; vertical-align: top; }
th { background: #eee; }
.event { border: 1px solid #bbb; border-left: 6px solid #555; padding: 0.6rem 0.9rem; margin: 0.8rem 0;
         break-inside: avoid; page-break-inside: avoid; }
.event.share { border-left-color: #0d47a1; } .event.decision { border-left-color: #6a1b9a; }
.event.fetch { border-left-color: #2e7d32; } .event.revoke, .event.expire { border-left-color: #b71c1c; }
dl { display: grid; grid-template-columns: 13rem 1fr; gap: 0.15rem 0.8rem; margin: 0.3rem 0; }
dt { font-weight: 600; color: #333; } dd { margin: 0; overflow-wrap: anywhere; }
dl dl { grid-template-columns: 11rem 1fr; }
footer { margin-top: 2rem; color: #555; font-size: 0.85em; }
@media print {
  body { margin: 0; max-width: none; font-size: 10pt; }
  .stamp, .event, th { background: none !important; }
  h2 { break-after: avoid; page-break-after: avoid; }
  a { color: inherit; text-decoration: none; }
}
"""


def _e(value: Any) -> str:
    """Escape anything for HTML text or attribute context; None shows as an em dash."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return escape(str(value), quote=True)


def _value(value: Any) -> str:
    """Nested justification answers as nested definition lists; every leaf goes through `_e`."""
    if isinstance(value, Mapping):
        if not value:
            return "—"
        items = "".join(f"<dt>{_e(_label(k))}</dt><dd>{_value(v)}</dd>" for k, v in value.items())
        return f"<dl>{items}</dl>"
    if isinstance(value, list):
        return ", ".join(_value(v) for v in value) if value else "—"
    return _e(value)


def _label(key: str) -> str:
    return key.replace("_", " ")


def _who(actor: Mapping[str, Any] | None) -> str:
    if not actor:
        return "the gateway (automatic)"
    org = f" — {_e(actor.get('org'))}" if actor.get("org") else ""
    return f"{_e(actor.get('sub'))} ({_e(actor.get('role'))}){org}"


def _proof(event: Mapping[str, Any]) -> str:
    verified = event.get("inclusion_verified")
    if verified is True:
        return '<span class="ok">✔ inclusion proof verified against the checkpoint</span>'
    if verified is False:
        return f'<span class="bad">✘ inclusion proof FAILED: {_e(event.get("inclusion_error"))}</span>'
    return f'<span class="pending">not yet checked: {_e(event.get("inclusion_error") or "no checkpoint")}</span>'


def _agreement_rows(e: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The partnership agreements a decision relied on, in plain words (or why none applied, or an override)."""
    rows: list[tuple[str, str]] = []
    refs = e.get("agreements") or []
    if refs:
        items = "".join(
            f"<li>{_e(describe_ref(r))}; document SHA-256 <span class=hash>{_e(r.get('document_sha256'))}</span></li>"
            for r in refs
        )
        rows.append(("Made under the partnership's agreements", f"<ul>{items}</ul>"))
    none = e.get("no_agreement")
    if isinstance(none, Mapping):
        rows.append(("No partnership agreement applied", f"{_e(none.get('reason'))}: {_e(none.get('explanation'))}"))
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


def _event_html(e: Mapping[str, Any]) -> str:
    kind = str(e["kind"])
    rows: list[tuple[str, str]] = [("Who", _who(e.get("actor")))]
    disclosure = e.get("disclosure")
    if isinstance(disclosure, Mapping):
        people = "".join(
            f"<tr><td>{_e(w.get('name') or w.get('recipient'))}</td><td>{_e(w.get('role'))}</td>"
            f"<td>{_e(w.get('organisation') or w.get('org'))}</td><td>{_e(w.get('recipient'))}</td></tr>"
            for w in disclosure.get("with") or []
            if isinstance(w, Mapping)
        )
        rows.append(("Shared", _e("Shared " + str(disclosure.get("description")))))
        rows.append(("Channel", _e(disclosure.get("channel"))))
        rows.append(("When shared", _e(disclosure.get("at"))))
        rows.append(
            (
                "Shared with",
                f"<table><tr><th>Name</th><th>Role</th><th>Organisation</th><th>Directory ID</th></tr>{people}</table>",
            )
        )
        rows.append(("What was shared", _e(disclosure.get("summary"))))
    if e.get("share_id"):
        rows.append(("Share", f"<code>{_e(e['share_id'])}</code>"))
    reconsiders = e.get("reconsiders")
    if isinstance(reconsiders, Mapping):
        rows.append(("Reconsiders", f"the decision at entry #{_e(reconsiders.get('index'))}"))
        rows.append(("New information", _e(reconsiders.get("new_information"))))
    explanation = e.get("explanation")
    if isinstance(explanation, Mapping):
        rows.append(("Explained to", _e(explanation.get("to"))))
        rows.append(("Explanation given", _e(explanation.get("explanation"))))
    emergency = e.get("emergency")
    if isinstance(emergency, Mapping):
        owed = ", ".join(str(o.get("field")) for o in emergency.get("owed") or [] if isinstance(o, Mapping))
        rows.append(("Justification due by", _e(emergency.get("complete_by"))))
        rows.append(("Answers owed when shared", _e(owed)))
    for a in e.get("advice") or []:
        by = a.get("answered_by") or {}
        rows.append(
            (
                "Advice sought",
                f"{_e(a.get('to'))} ({_e(by.get('sub'))}) at {_e(a.get('answered_at'))}: {_e(a.get('answer'))} "
                f"(entries #{_e(a.get('question_index'))}, #{_e(a.get('answer_index'))})",
            )
        )
    control = e.get("dual_control")
    if isinstance(control, Mapping):
        rows.append(("Held for approval by", _value(control.get("approvers") or [])))
    kept = e.get("retention")
    if isinstance(kept, Mapping):
        rows.append(("Retention class", f"{_e(kept.get('title'))}: envelopes at most {_e(kept.get('max_days'))} days"))
    if kind == "share_approved" and e.get("note"):
        rows.append(("Approval note", _e(e.get("note"))))
    completes = e.get("completes")
    if isinstance(completes, Mapping):
        late = " (late)" if completes.get("late") else ""
        rows.append(("Completes", f"the emergency share at entry #{_e(completes.get('share_index'))}{_e(late)}"))
    if kind in ("share", "decision", "emergency_completed"):
        purpose = e.get("purpose") or {}
        if kind != "emergency_completed":
            rows.append(("Decision", _e(e.get("decision"))))
        rows.append(("Purpose", f"{_e(purpose.get('code'))}: {_e(purpose.get('description'))}"))
        rows.append(("Data categories", _value(e.get("data_categories") or [])))
        for section in e.get("rule_sections") or []:
            across = "; ".join(f"{t['policy']} rule {t['rule']} ({t['title']})" for t in section["themes"])
            title = section["title"] + (f" — across editions: {across}" if across else "")
            rows.append((title, _value((e.get("rules") or {}).get(section["key"]))))
        if isinstance(e.get("handling"), Mapping):
            rows.append(("Handling instruction sent to the recipient", _value(e["handling"])))
        policy = e.get("policy") or {}
        rows.append(("Policy", f"{_e(policy.get('id'))} {_e(policy.get('version'))}"))
        rows += _agreement_rows(e)
    if kind == "share":
        recips = "".join(
            f"<tr><td>{_e(r.get('id'))}</td><td>{_e(r.get('org'))}</td><td>{_e(r.get('envelope_size'))}</td>"
            f"<td class=hash>{_e(r.get('envelope_sha256'))}</td></tr>"
            for r in e.get("recipients") or []
        )
        rows.append(
            (
                "Sent to",
                "<table><tr><th>Recipient</th><th>Organisation</th><th>Envelope bytes</th>"
                f"<th>Envelope SHA-256</th></tr>{recips}</table>",
            )
        )
        payload = e.get("payload") or {}
        rows.append(("Payload", f"{_e(payload.get('size'))} bytes, {_e(payload.get('content_type'))}"))
        rows.append(("Expires", _e(e.get("expires_at"))))
        rows.append(("Max downloads", _e(e.get("max_downloads"))))
    elif kind == "fetch":
        rows.append(("Envelope SHA-256", f"<span class=hash>{_e(e.get('envelope_sha256'))}</span>"))
        rows.append(("Download number", _e(e.get("download"))))
    elif kind in ("revoke", "expire"):
        rows.append(("Reason", _e(e.get("reason"))))
        rows.append(("Envelopes destroyed for", _value([r.get("id") for r in e.get("recipients") or []])))
    elif kind == "acknowledge":
        rows.append(("Note to the sender", _e(e.get("note"))))
    elif kind in KIND_TITLES:  # the steps of an address without a key (never a code or a passphrase)
        rows.append(("Address", _value([r.get("address") for r in e.get("recipients") or []])))
        for key in CLAIM_DETAILS:
            if key in e:
                rows.append((key.replace("_", " ").capitalize(), _e(e[key])))
    rows.append(("Ledger leaf hash", f"<span class=hash>{_e(e.get('leaf_hash'))}</span>"))
    rows.append(("Proof", _proof(e)))
    body = "".join(f"<dt>{_e(k)}</dt><dd>{v}</dd>" for k, v in rows)
    title = KIND_TITLES.get(kind, kind)
    if e.get("disclosure"):
        title = "Shared another way (recorded decision)"
    flags = "".join(f'<p class="flag">⚑ {_e(FLAG_TITLES.get(str(f), f))}</p>' for f in e.get("flags") or [])
    return (
        f'<section class="event {_e(kind)}"><h3>{_e(e["time"])} · {_e(title)} · entry #{_e(e["index"])}</h3>'
        f"{flags}<dl>{body}</dl></section>"
    )


def _stamp_html(report: Mapping[str, Any]) -> str:
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
        "verified": '<span class="ok">✔ signature verified with the gateway\'s ledger key</span>',
        "invalid": f'<span class="bad">✘ signature INVALID: {_e(cp.get("signature_error"))}</span>',
    }.get(str(signature), '<span class="pending">signature not checked (no verifier key configured)</span>')
    good = signature != "invalid" and v["entries_failed"] == 0
    return (
        f'<div class="stamp {"ok" if good else "bad"}"><h2>Verification</h2><dl>'
        f"<dt>Checkpoint origin</dt><dd>{_e(cp.get('origin'))}</dd>"
        f"<dt>Tree size</dt><dd>{_e(cp.get('size'))} entries</dd>"
        f"<dt>Root hash (base64)</dt><dd class=hash>{_e(cp.get('root_hash'))}</dd>"
        f"<dt>Checkpoint signed at</dt><dd>{_e(cp.get('time'))}</dd>"
        f"<dt>Signature</dt><dd>{sig_text}</dd>"
        f"<dt>Inclusion proofs</dt><dd>{_e(v['entries_verified'])} of {_e(v['entries_checked'])} verified"
        f"{', ' + _e(v['entries_failed']) + ' FAILED' if v['entries_failed'] else ''}"
        f"{'; ' + _e(v['entries_not_covered']) + ' later entries not yet covered' if v['entries_not_covered'] else ''}"
        f"</dd></dl><p>Signed checkpoint note (C2SP signed note; check it with the published verifier key):</p>"
        f"<pre>{_e(cp.get('note'))}</pre></div>"
    )


def _shares_html(shares: Sequence[Mapping[str, Any]]) -> str:
    if not shares:
        return "<p>No shares about this subject.</p>"
    rows = []
    for s in shares:
        recips = ", ".join(f"{_e(r.get('id'))} ({_e(r.get('org'))})" for r in s.get("recipients") or [])
        fetches = "<br>".join(f"{_e(f['time'])} by {_e(f['recipient'])}" for f in s.get("fetches") or []) or "never"
        acks = "<br>".join(f"{_e(a['time'])} by {_e(a['recipient'])}" for a in s.get("acknowledged") or []) or "—"
        ended = s.get("ended")
        state = "—" if not ended else f"{_e(ended['kind'])} at {_e(ended['time'])} ({_e(ended.get('reason'))})"
        rows.append(
            f"<tr><td>{_e(s['time'])}</td><td><code>{_e(s['share_id'])}</code></td><td>{_e(s.get('purpose'))}</td>"
            f"<td>{_e(s.get('payload_size'))}</td><td>{recips}</td><td>{fetches}</td><td>{acks}</td><td>{state}</td></tr>"
        )
    return (
        "<table><tr><th>Shared</th><th>Share</th><th>Purpose</th><th>Bytes</th><th>Recipients</th>"
        f"<th>Fetched</th><th>Acknowledged</th><th>Revoked / destroyed</th></tr>{''.join(rows)}</table>"
    )


def _disclosures_html(disclosures: Sequence[Mapping[str, Any]]) -> str:
    if not disclosures:
        return "<p>No disclosures about this subject recorded as made another way.</p>"
    rows = "".join(
        f"<tr><td>{_e(d.get('at'))}</td><td>{_e(d.get('channel'))}</td><td>{_e(d.get('description'))}</td>"
        f"<td>{_who(d.get('sender'))}</td><td>{_e(d.get('summary'))}</td><td>#{_e(d.get('index'))}</td></tr>"
        for d in disclosures
    )
    return (
        "<table><tr><th>Shared at</th><th>Channel</th><th>How and with whom</th><th>By</th><th>What was shared</th>"
        f"<th>Entry</th></tr>{rows}</table>"
    )


def _chains_html(chains: Sequence[Sequence[Mapping[str, Any]]]) -> str:
    """Each refusal and its reconsiderations, in order (issue 14)."""
    out = []
    for chain in chains:
        steps = "".join(
            f"<li>#{_e(c.get('index'))} {_e(c.get('time'))}: {_e(c.get('decision'))}"
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
        f"<tr><td>{_e(t['policy'])} rule {_e(t['rule'])} — {_e(t['title'])}</td><td>"
        + "<br>".join(f"#{_e(a['index'])}: {_e(a['policy'])} rule {_e(a['rule'])}" for a in t["answers"])
        + "</td></tr>"
        for t in themes
    )
    return f"<table><tr><th>Common theme</th><th>Answered in (entry: edition, rule)</th></tr>{rows}</table>"


def render_html(report: Mapping[str, Any]) -> str:
    """One self-contained, printable page; nothing in it is fetched or executed by the browser."""
    subject = _e(report["subject"])
    cap_notice = (
        f'<p class="notice">This report is capped at the oldest {_e(report["cap"])} entries about this subject; '
        "more exist. Use the ledger export (format=csv or jsonl, subject filter) for the complete record.</p>"
        if report.get("capped")
        else ""
    )
    events = "".join(_event_html(e) for e in report["events"]) or "<p>No ledger entries about this subject.</p>"
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="referrer" content="no-referrer">'
        f"<title>SafeShare subject report — {subject}</title><style>{CSS}</style></head><body>"
        f"<header><h1>Subject report: {subject}</h1>"
        f'<p class="meta">Every ledger entry about this subject reference, oldest first: {_e(report["count"])} '
        f"entries. Generated {_e(report['generated_at'])}.</p></header>"
        f"{cap_notice}{_stamp_html(report)}"
        f"<h2>Shares: who received what</h2>{_shares_html(report['shares'])}"
        f"<h2>Shared another way (phone, meetings, letters)</h2>{_disclosures_html(report.get('disclosures') or [])}"
        + (
            f'<p class="flag">⚑ {_e(len(report["not_shared_despite_risk"]))} decision(s) not to share despite risk of '
            "significant harm or immediate risk: see the flagged entries in the timeline.</p>"
            if report.get("not_shared_despite_risk")
            else ""
        )
        + (
            f"<h2>Refusals reconsidered</h2>{_chains_html(report['reconsiderations'])}"
            if report.get("reconsiderations")
            else ""
        )
        + f"<h2>Across editions of the rules</h2>{_themes_html(report.get('themes') or [])}"
        + f"<h2>Timeline</h2>{events}"
        "<footer>Each entry is RFC 8785 canonical JSON; its leaf hash is SHA-256(0x00 ‖ entry). The inclusion "
        "proofs are RFC 9162 audit paths to the root in the signed checkpoint above. The same data is available "
        "as JSON (format=json) for independent checking.</footer>"
        "</body></html>\n"
    )
