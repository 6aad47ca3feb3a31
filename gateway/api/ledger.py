"""The auditor's view of the ledger: query, export, the printable subject report and oversight statistics.

Golden rule 7 makes the ledger the organisation's record; these routes are how an auditor, an inspector or
a court reads it. Every route needs the `auditor` role. Everything returned carries what is needed to check
it independently of this gateway: each entry's index and leaf hash, and the signed checkpoint the export or
report was taken against.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
from typing import Any

from aiohttp import web

from .. import audit, audit_report, tenancy
from ..encoding import b64 as _b64
from ..errors import ApiError
from ..justification import PolicyRegistry
from ..ledger.entry import KINDS, format_time, parse_time
from ..store import audit as store_audit
from ..store.models import LedgerRow
from .common import SIGNER, gateway, json_response, paging, principal, query_str

#: The console's deciders by name (`audit.DeciderIndex`): read whole once, then only what the ledger gained.
DECIDERS = web.AppKey("deciders", audit.DeciderIndex)

routes = web.RouteTableDef()

#: Filter → the justification field whose codes (in any loaded policy) it accepts: derived, never listed here.
CODED_FILTERS = {
    "decision": "decision",
    "purpose": "purpose.code",
    "article_6": "rules.1_lawful_basis.article_6",
    "article_9": "rules.1_lawful_basis.article_9",
    "dpa_schedule_1": "rules.1_lawful_basis.dpa_schedule_1",
}
#: Rows per database page of an export: a few MB in memory whatever the size of the ledger.
EXPORT_PAGE_SIZE = 1000
EXPORT_FORMATS = ("json", "csv", "jsonl")
#: Each ID column keeps the ID (the stable key every record uses) and has a `…_name(s)` column beside it with the
#: name people read (issue 13; `audit.people_named`), or the ID again when no name is known.
CSV_COLUMNS = (
    "index",
    "time",
    "kind",
    "actor_sub",
    "actor_name",
    "actor_role",
    "actor_org",
    "actor_org_name",
    "decision",
    "share_id",
    "subjects",
    "recipients",
    "recipient_names",
    "purpose_code",
    "purpose_description",
    "article_6",
    "article_9",
    "dpa_schedule_1",
    "leaf_hash",
    "entry_json",
)
#: A spreadsheet treats a cell starting with one of these as a formula (OWASP "CSV injection").
CSV_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
#: What the report page may do: nothing but show itself with its inline styles.
REPORT_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src 'none'; base-uri 'none'; form-action 'none'"
STREAM_HEADERS = {"X-Content-Type-Options": "nosniff", "Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}


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


def _choice(request: web.Request, name: str, allowed: tuple[str, ...]) -> str | None:
    value = query_str(request, name, 64)
    if value is not None and value not in allowed:
        raise ApiError(
            400,
            "invalid_parameter",
            f"{name} must be one of: {', '.join(allowed)}.",
            field=name,
            allowed=list(allowed),
        )
    return value


def _text_param(request: web.Request) -> str | None:
    raw = request.query.get("q")
    if raw is None or raw.strip() == "":
        return None
    try:
        return store_audit.fts_query(raw)
    except store_audit.QueryError as exc:
        raise ApiError(400, "invalid_parameter", exc.message, field=exc.field) from None


def _scope(request: web.Request) -> str | None:
    """The organisation an auditor reads within (None: the partnership-wide auditor reads everything)."""
    scope = tenancy.auditor_scope(principal(request, *tenancy.AUDITOR_ROLES))
    return None if isinstance(scope, tenancy.Everywhere) else scope


def _coded(request: web.Request, name: str) -> str | None:
    return _choice(request, name, gateway(request).policies.codes(CODED_FILTERS[name]))


def _filter(request: web.Request) -> store_audit.AuditFilter:
    return store_audit.AuditFilter(
        scope=_scope(request),
        subject=query_str(request, "subject", 64),
        practitioner=query_str(request, "practitioner", 256),
        recipient=query_str(request, "recipient", 64),
        org=query_str(request, "org", 200),
        kind=_choice(request, "kind", KINDS),
        decision=_coded(request, "decision"),
        purpose=_coded(request, "purpose"),
        article_6=_coded(request, "article_6"),
        article_9=_coded(request, "article_9"),
        dpa_schedule_1=_coded(request, "dpa_schedule_1"),
        agreement=query_str(request, "agreement", 64),
        text=_text_param(request),
        time_from=_time_param(request, "from"),
        time_to=_time_param(request, "to"),
    )


def _query_error(exc: store_audit.QueryError) -> ApiError:
    return ApiError(400, "invalid_parameter", exc.message, field=exc.field)


@routes.get("/api/v1/ledger")
async def query_ledger(request: web.Request) -> web.StreamResponse:
    """A page of matching entries, newest first; or, with format=csv|jsonl, every match as a streamed export."""
    principal(request, *tenancy.AUDITOR_ROLES)
    gw = gateway(request)
    fmt = _choice(request, "format", EXPORT_FORMATS) or "json"
    f = _filter(request)
    if fmt != "json":
        for name in ("cursor", "limit"):
            if request.query.get(name):
                raise ApiError(
                    400,
                    "invalid_parameter",
                    f"{name} applies to JSON pages only; an export always holds every matching entry.",
                    field=name,
                )
        return await _export(request, f, fmt)
    limit, before = paging(request, gw.settings.limits.page_size_max)
    try:
        rows = await gw.store.query_page(f, before=before, limit=limit)
    except store_audit.QueryError as exc:
        raise _query_error(exc) from None
    return json_response(
        {
            "entries": [
                {
                    "index": r.index,
                    "time": r.time,
                    "kind": r.kind,
                    "entry": json.loads(r.entry),
                    "leaf_hash": _b64(r.leaf_hash),
                }
                for r in rows
            ],
            "next_cursor": str(rows[-1].index) if len(rows) == limit else None,
            # Names beside the IDs the entries hold (the entries themselves are as hashed into the ledger).
            "people": await audit.people_named(gw, rows),
        }
    )


# -- export ----------------------------------------------------------------------------------------------


def _csv_cell(value: Any) -> Any:
    """Neutralise spreadsheet formulas by a leading apostrophe (strip it to recover the value)."""
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(CSV_FORMULA_STARTS):
        return "'" + value
    return value


def _csv_row(r: LedgerRow, people: dict[str, dict[str, str]]) -> list[Any]:
    entry = json.loads(r.entry)
    actor = entry.get("actor") or {}
    purpose = entry.get("purpose") or {}
    basis = ((entry.get("justification") or {}).get("rules") or {}).get("1_lawful_basis") or {}
    recips = entry.get("recipients") or []
    recipients = "; ".join(f"{x.get('id')} ({x.get('org')})" for x in recips)

    def name(ident: Any) -> Any:
        return people.get(str(ident), {}).get("name") or ident

    def org_name(ident: Any, org: Any) -> Any:
        return people.get(str(ident), {}).get("org_name") or org

    # The name the entry itself recorded for its actor (the token's, then) comes first, as on the search page.
    actor_name = actor.get("name") if isinstance(actor.get("name"), str) and actor.get("name") else None
    named = "; ".join(
        f"{name(x.get('id') or x.get('address'))} ({org_name(x.get('id'), x.get('org'))})" for x in recips
    )
    system = actor.get("role") == "system"
    cells = [
        r.index,
        r.time,
        r.kind,
        actor.get("sub"),
        actor.get("sub") if system else actor_name or name(actor.get("sub")),
        actor.get("role"),
        actor.get("org"),
        actor.get("org") if system else org_name(actor.get("sub"), actor.get("org")),
        entry.get("decision"),
        entry.get("share_id"),
        ";".join(entry.get("subjects") or []),
        recipients,
        named,
        purpose.get("code"),
        purpose.get("description"),
        basis.get("article_6"),
        basis.get("article_9"),
        basis.get("dpa_schedule_1"),
        _b64(r.leaf_hash),
        r.entry.decode("utf-8"),
    ]
    return [_csv_cell(c) for c in cells]


def _csv_page(rows: list[LedgerRow], people: dict[str, dict[str, str]]) -> bytes:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerows(_csv_row(r, people) for r in rows)
    return buf.getvalue().encode("utf-8")


def _jsonl_page(rows: list[LedgerRow], people: dict[str, dict[str, str]]) -> bytes:
    """The canonical entry bytes are spliced in unchanged: hashing `entry` as sent gives the leaf hash (`people` is
    unused: the entries are the record, and `GET /api/v1/ledger` pages name them)."""
    out = bytearray()
    for r in rows:
        out += b'{"index":%d,"time":%s,"kind":%s,"leaf_hash":"%s","entry":' % (
            r.index,
            json.dumps(r.time).encode(),
            json.dumps(r.kind).encode(),
            _b64(r.leaf_hash).encode(),
        )
        out += r.entry
        out += b"}\n"
    return bytes(out)


async def _export(request: web.Request, f: store_audit.AuditFilter, fmt: str) -> web.StreamResponse:
    """Stream every match up to the latest signed checkpoint, so the export can be checked against it.

    Before any checkpoint exists the export runs to the current end of the ledger and says so
    (`checkpoint: null`). Rows go out one database page at a time, awaiting the client between pages.
    """
    gw = gateway(request)
    cp = await gw.store.latest_stored_checkpoint()
    upto = cp.size if cp is not None else await gw.store.ledger_end()
    try:
        pages = await gw.store.export_pages(f, upto=upto, page_size=EXPORT_PAGE_SIZE)
    except store_audit.QueryError as exc:
        raise _query_error(exc) from None
    ext = "csv" if fmt == "csv" else "jsonl"
    resp = web.StreamResponse(
        headers={
            **STREAM_HEADERS,
            "Content-Disposition": f'attachment; filename="safeshare-ledger-{upto}.{ext}"',
            "X-SafeShare-Export-Size": str(upto),
        }
    )
    resp.content_type = "text/csv" if fmt == "csv" else "application/x-ndjson"
    resp.charset = "utf-8"
    if cp is not None:
        resp.headers["X-SafeShare-Checkpoint"] = _b64(cp.note)
    await resp.prepare(request)
    if fmt == "csv":
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\r\n").writerow(CSV_COLUMNS)
        await resp.write(buf.getvalue().encode())
        encode = _csv_page
    else:
        first = {"checkpoint": None if cp is None else {"size": cp.size, "note": cp.note.decode()}, "size": upto}
        await resp.write(json.dumps(first).encode() + b"\n")
        encode = _jsonl_page
    names = audit.NameCache()
    async for page in pages:
        # Names for the CSV's name columns, looked up once per person across the whole export.
        people = await audit.people_named(gw, page, names) if fmt == "csv" else {}
        # Encoding a page (CSV parses every entry) takes tens of ms: off the event loop, other requests go on.
        await resp.write(await asyncio.to_thread(encode, page, people))
    await resp.write_eof()
    return resp


# -- subject report --------------------------------------------------------------------------------------


def _report_format(request: web.Request) -> str:
    fmt = _choice(request, "format", ("html", "json"))
    if fmt is not None:
        return fmt
    accept = request.headers.get("Accept", "")
    return "json" if "application/json" in accept and "text/html" not in accept else "html"


@routes.get("/api/v1/ledger/report")
async def subject_report(request: web.Request) -> web.Response:
    """Everything recorded about one subject, oldest first, with a verification stamp: HTML or JSON."""
    scope = _scope(request)
    fmt = _report_format(request)
    subject = query_str(request, "subject", 64)
    if subject is None:
        raise ApiError(400, "invalid_parameter", "subject is required.", field="subject")
    gw = gateway(request)
    signer = request.app.get(SIGNER)
    verifier = None if signer is None else signer.verifier()
    org_name = principal(request, *tenancy.AUDITOR_ROLES).org_name
    report = await audit.subject_report(gw, subject, scope, verifier, org_name)
    if fmt == "json":
        return json_response(report)
    return web.Response(
        text=audit_report.render_html(report, gw.policies),
        content_type="text/html",
        charset="utf-8",
        headers={"Content-Security-Policy": REPORT_CSP},
    )


# -- people, for the console's search form -------------------------------------------------------------------


@routes.get("/api/v1/ledger/people")
async def ledger_people(request: web.Request) -> web.Response:
    """The practitioners, recipients and organisations an auditor may pick by name when searching (issue 13),
    within their scope only (`audit.known_people`); the search itself still takes the IDs."""
    scope = _scope(request)
    org_name = principal(request, *tenancy.AUDITOR_ROLES).org_name
    return json_response(await audit.known_people(gateway(request), scope, org_name, request.app[DECIDERS]))


# -- statistics ------------------------------------------------------------------------------------------


@routes.get("/api/v1/ledger/stats")
async def ledger_stats(request: web.Request) -> web.Response:
    """Monthly counts for oversight boards (decisions, purposes, lawful bases, organisations, outcomes).

    Emergency shares whose justification is overdue are counted against the server clock at the time of asking.
    """
    scope = _scope(request)
    time_from = _time_param(request, "from")
    time_to = _time_param(request, "to")
    gw = gateway(request)
    result = await gw.store.stats(time_from, time_to, scope=scope, now=gw.now_str())
    result["themes"] = _theme_legend(gw.policies)
    return json_response(result)


def _theme_legend(policies: PolicyRegistry) -> list[dict[str, Any]]:
    """How the editions' rules line up (each edition's `x-rule-map` onto the base edition's rules): the key for
    reading `totals.policy` and the per-rule figures of different editions side by side."""
    base = policies.theme_base
    legend = []
    for rule, title in sorted(base.rule_titles().items()):
        editions: dict[str, list[int]] = {base.id: [rule]}
        for policy in policies.all():
            if policy.id != base.id:
                editions[policy.id] = sorted(r for r, onto in policy.rule_map(base.id).items() if rule in onto)
        legend.append({"policy": base.id, "rule": rule, "title": title, "editions": editions})
    return legend
