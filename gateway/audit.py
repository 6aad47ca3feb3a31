"""The auditor's use cases that do more than read: the subject report's verification stamp and proofs.

A subject report (everything recorded about one child or adult, oldest first) is only worth printing if a
reader can trust it was not edited: it carries the latest signed checkpoint, that checkpoint's signature as
checked with the gateway's own ledger key, and for each entry whether its inclusion proof against that
checkpoint verifies. Those checks are rules of the ledger, so they live here rather than in the HTTP handler
(`api/ledger.py` parses the request and renders the report as HTML or JSON).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from . import audit_report
from .encoding import b64
from .ledger.checkpoint import Checkpoint, CheckpointError, NoteVerifier, verify_checkpoint
from .ledger.entry import utc_now
from .service import Gateway
from .store.audit import StoredCheckpoint
from .store.models import LedgerRow


def checkpoint_stamp(
    cp: StoredCheckpoint, verifier: NoteVerifier | None, origin: str
) -> tuple[dict[str, Any], bytes | None]:
    """The stamp shown on the report, and the root to prove against (None if the checkpoint is not usable).

    The signature is checked with the gateway's own ledger key (`verifier`; None: not checked, only parsed); a
    checkpoint that fails is reported as such and its root is not used, since it would prove nothing.
    """
    stamp: dict[str, Any] = {"size": cp.size, "time": cp.time, "note": cp.note.decode("utf-8", "replace")}
    try:
        if verifier is not None:
            parsed = verify_checkpoint(cp.note, verifier, origin=origin)
            stamp["signature"] = "verified"
        else:
            split = cp.note.rfind(b"\n\n")
            parsed = Checkpoint.parse(cp.note[: split + 1] if split >= 0 else cp.note)
            stamp["signature"] = "not_checked"
        if parsed.size != cp.size:
            raise CheckpointError(f"the note says size {parsed.size}, the store {cp.size}")
    except CheckpointError as exc:
        stamp.update(signature="invalid", signature_error=str(exc), origin=None, root_hash=None)
        return stamp, None
    stamp.update(origin=parsed.origin, root_hash=b64(parsed.root_hash))
    return stamp, parsed.root_hash


async def subject_report(
    gw: Gateway, subject: str, scope: str | None, verifier: NoteVerifier | None, scope_name: str | None = None
) -> dict[str, Any]:
    """The report on `subject` (entries within `scope`, an organisation, or everywhere when None; `scope_name`
    is that organisation's name, from the auditor's token), stamped with the latest checkpoint and each entry's
    inclusion proof against it (`audit_report.build_report`)."""
    # The checkpoint first: every entry listed below its size is then provable against it.
    cp = await gw.store.latest_stored_checkpoint()
    cap = audit_report.REPORT_CAP
    rows, capped = await gw.store.subject_events(subject, cap, scope=scope)
    stamp: dict[str, Any] | None = None
    proofs: dict[int, str | None] = {}
    if cp is not None:
        stamp, root = checkpoint_stamp(cp, verifier, gw.settings.log_origin)
        if root is not None:
            proofs = await gw.store.verify_inclusions(cp.size, root, [(r.index, r.entry) for r in rows])
    return audit_report.build_report(
        subject=subject,
        rows=rows,
        people=await people_named(gw, rows),
        capped=capped,
        cap=cap,
        generated_at=utc_now(),
        checkpoint=stamp,
        proofs=proofs,
        policies=gw.policies,
        scope=scope,
        scope_name=scope_name,
    )


@dataclass
class NameCache:
    """Names found so far, kept across `people_named` calls (an export names page after page): an ID looked up
    once (`settled`) is not looked up again, whether or not a name was found for it."""

    names: dict[str, dict[str, str]] = field(default_factory=dict)
    settled: set[str] = field(default_factory=set)


async def people_named(
    gw: Gateway, rows: Sequence[LedgerRow], known: NameCache | None = None
) -> dict[str, dict[str, str]]:
    """The names people read for the IDs in `rows` (issue 13: an auditor should not have to look up "pat" or
    "mash-duty"): each actor's, recipient's and cited adviser's `name` and `org_name` where known, by ID.

    The ledger's entries cannot change (they are hashed into the log), so names come from beside them: a
    decider's (or adviser's) name and organisation's name recorded in the entry itself (the token's `name` and
    `org_name` claims), a share's sender names
    kept with the share when it was made (token claims or the directory), else the directory's entry for the ID
    (people and teams). An ID with no name anywhere is left out, and readers show the ID. Where a person has
    several names over time, the newest row's wins.

    `known` is kept across calls (an export names page after page; there the first name found for an ID is
    kept). Every ID named comes from `rows`, which the caller may read, so no name is looked up for anyone the
    auditor's scope does not already show.
    """
    cache = known if known is not None else NameCache()
    entries = [(r, json.loads(r.entry)) for r in sorted(rows, key=lambda r: r.index, reverse=True)]
    named: dict[str, dict[str, str]] = {}

    def done(person_id: str) -> bool:
        return person_id in cache.settled or len(named.get(person_id) or {}) >= 2

    def add(person_id: Any, name: Any, org_name: Any) -> None:
        if not isinstance(person_id, str) or not person_id:
            return
        found = named.setdefault(person_id, dict(cache.names.get(person_id, {})))
        if isinstance(name, str) and name and "name" not in found:
            found["name"] = name
        if isinstance(org_name, str) and org_name and "org_name" not in found:
            found["org_name"] = org_name

    ids: set[str] = set()
    share_ids: list[str] = []
    for row, entry in entries:
        actor = entry.get("actor")
        if isinstance(actor, Mapping) and actor.get("role") != "system" and isinstance(actor.get("sub"), str):
            ids.add(actor["sub"])
            add(actor["sub"], actor.get("name"), actor.get("org_name"))
        for r in entry.get("recipients") or []:
            if isinstance(r, Mapping) and isinstance(r.get("id"), str):
                ids.add(r["id"])
                add(r["id"], None, None)
        for a in entry.get("advice") if isinstance(entry.get("advice"), list) else ():
            by = a.get("answered_by") if isinstance(a, Mapping) else None
            if isinstance(by, Mapping) and isinstance(by.get("sub"), str):
                ids.add(by["sub"])
                add(by["sub"], by.get("name"), None)
        sid = entry.get("share_id")
        if row.kind == "share" and isinstance(sid, str) and sid not in share_ids:
            if not (isinstance(actor, Mapping) and isinstance(actor.get("sub"), str) and done(actor["sub"])):
                share_ids.append(sid)
    for sid in share_ids:
        share = await gw.store.get_share(sid)
        if share is not None:
            add(share.sender_sub, share.sender_name, share.sender_org_name)
    missing = sorted(i for i in ids if not done(i))
    for rid, rec in (await gw.store.get_recipients(missing)).items() if missing else ():
        add(rid, rec.name, rec.org)
    result = {k: v for k, v in named.items() if v}
    cache.names.update(result)
    cache.settled.update(named)
    return result


#: How many practitioners and recipients the console's search form offers by name (more: it says so, and an ID
#: can still be typed).
PEOPLE_CAP = 1000


class DeciderIndex:
    """Each decider's latest decision row, by (actor ID, organisation), kept up to date from the ledger.

    Why: finding each practitioner's latest decision is a pass over every decision in the ledger (a third of a
    second at 300,000 entries on SQLite, seconds at millions), and the console asks at every search form it opens.
    Ledger entries never change, so the answer only grows: the index reads the whole ledger the first time it is
    asked and afterwards, at each ask, only the entries appended since. One row per decider is kept (a
    partnership's practitioners: thousands of rows, a few megabytes at most). Each node keeps its own; every node
    reads the one ledger, so they agree.
    """

    def __init__(self) -> None:
        self._latest: dict[tuple[str, str | None], LedgerRow] = {}
        self._upto = 0
        self._lock = asyncio.Lock()

    async def refresh(self, gw: Gateway) -> None:
        async with self._lock:  # one full read at a time, however many consoles open at once
            end = await gw.store.ledger_end()  # read first: what lands meanwhile is read again next time
            rows = await gw.store.latest_decisions_by_decider(None, limit=_ALL, after=self._upto)
            for row in rows:
                actor = json.loads(row.entry).get("actor") or {}
                sub, org = actor.get("sub"), actor.get("org")
                if not isinstance(sub, str) or not (org is None or isinstance(org, str)):
                    continue
                key = (sub, org)
                if key not in self._latest or self._latest[key].index < row.index:
                    self._latest[key] = row
            self._upto = max(self._upto, end)

    async def rows(self, gw: Gateway, scope: str | None, limit: int) -> list[LedgerRow]:
        """The latest decision rows of `scope`'s deciders (everyone's for None), newest first, at most `limit`."""
        await self.refresh(gw)
        chosen = [r for (_, org), r in self._latest.items() if scope is None or org == scope]
        return sorted(chosen, key=lambda r: r.index, reverse=True)[:limit]


#: No limit on the rows `DeciderIndex.refresh` reads (one per decider).
_ALL = 2**62


def _recorded(actor: Mapping[str, Any], key: str) -> str | None:
    """A name an entry's actor records (`name`, `org_name`), if it is one."""
    value = actor.get(key)
    return value if isinstance(value, str) and value else None


async def known_people(
    gw: Gateway, scope: str | None, scope_name: str | None, deciders: DeciderIndex
) -> dict[str, Any]:
    """Who an auditor may pick by name in the console's search form (issue 13), each with the ID it searches by.

    Tenancy: an auditor of one organisation is offered only that organisation's practitioners (those who decided
    or shared in it), the directory's recipients and teams in it, and the organisation itself — never a name from
    another organisation, even one that took part in an entry they can read. A partnership-wide auditor (`scope`
    None) is offered everyone. Names come from where `people_named` finds them; no name: the ID alone.
    """
    rows = await deciders.rows(gw, scope, PEOPLE_CAP + 1)
    capped = len(rows) > PEOPLE_CAP
    rows = rows[:PEOPLE_CAP]
    names = await people_named(gw, rows)
    practitioners: dict[tuple[str, str | None], dict[str, Any]] = {}
    for row in rows:
        actor = json.loads(row.entry).get("actor") or {}
        sub, org = actor.get("sub"), actor.get("org")
        if not isinstance(sub, str) or (sub, org) in practitioners:
            continue
        known = names.get(sub, {})
        person: dict[str, Any] = {"id": sub, "org": org}
        # What the decider's latest decision recorded wins over a name found elsewhere (they may have changed).
        name, org_name = (_recorded(actor, key) or known.get(key) for key in ("name", "org_name"))
        if scope is not None and org == scope and scope_name:
            org_name = scope_name
        person |= {k: v for k, v in (("name", name), ("org_name", org_name)) if v}
        practitioners[(sub, org)] = person
    directory = await gw.store.list_recipients(include_disabled=True, limit=PEOPLE_CAP * 10)
    recipients = [
        {"id": r.id, "name": r.name, "org": r.org, "kind": r.kind} for r in directory if scope is None or r.org == scope
    ]
    capped = capped or len(directory) == PEOPLE_CAP * 10 or len(recipients) > PEOPLE_CAP
    recipients = recipients[:PEOPLE_CAP]
    orgs: dict[str, str | None] = {}
    if scope is not None:
        orgs[scope] = scope_name
    else:
        for p in practitioners.values():
            if isinstance(p.get("org"), str):
                orgs[p["org"]] = orgs.get(p["org"]) or p.get("org_name")
        for r in recipients:
            orgs.setdefault(r["org"], None)
    return {
        "scope": {"organisation": scope},
        "practitioners": sorted(practitioners.values(), key=lambda p: (str(p.get("name", p["id"])).lower(), p["id"])),
        "recipients": sorted(recipients, key=lambda r: (r["name"].lower(), r["id"])),
        "organisations": sorted(
            ({"id": o} | ({"name": n} if n else {}) for o, n in orgs.items()),
            key=lambda o: (str(o.get("name", o["id"])).lower(), o["id"]),
        ),
        "capped": capped,
    }
