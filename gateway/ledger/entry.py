"""Ledger entries: what is recorded for every decision and event, as canonical (RFC 8785) JSON.

Pure functions, no I/O. An entry is built from the authenticated principal, the server clock and data the
gateway has already checked; it never contains payload bytes, key material or tokens. The canonical bytes
are what the Merkle tree hashes, so the same entry always gives the same leaf.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import rfc8785

from .merkle import leaf_hash

ENTRY_VERSION = 1

KIND_SHARE = "share"
KIND_DECISION = "decision"
KIND_FETCH = "fetch"
KIND_REVOKE = "revoke"
KIND_EXPIRE = "expire"
KIND_ACKNOWLEDGE = "acknowledge"
KIND_RECIPIENT_ADD = "recipient_add"
KIND_RECIPIENT_DISABLE = "recipient_disable"
KIND_ENROLMENT_REQUEST = "enrolment_request"
KIND_ENROLMENT_APPROVE = "enrolment_approve"
KIND_ENROLMENT_REJECT = "enrolment_reject"
KIND_TEAM_MEMBER_ADD = "team_member_add"
KIND_TEAM_MEMBER_REMOVE = "team_member_remove"
KIND_AGREEMENT_ADD = "agreement_add"
KIND_AGREEMENT_RETIRE = "agreement_retire"
#: An emergency share's justification completed after the share went at once (issue 14).
KIND_EMERGENCY_COMPLETED = "emergency_completed"
#: Advice sought before deciding (issue 14): an anonymised question to an adviser role, and its answer.
KIND_ADVICE_QUESTION = "advice_question"
KIND_ADVICE_ANSWER = "advice_answer"
#: Dual control (issue 14): a second person with the right role releases a share held for approval.
KIND_SHARE_APPROVED = "share_approved"
#: A periodic retention review (issue 14): what was destroyed since the last, what is still live.
KIND_RETENTION_REVIEW = "retention_review"
# Recipients without a key (issue 10): a share held for an address, claimed by e-mail code, re-wrapped.
KIND_CLAIM_CODE_SENT = "claim_code_sent"
KIND_CLAIM_CODE_ACCEPTED = "claim_code_accepted"
KIND_CLAIM_CODE_REFUSED = "claim_code_refused"
KIND_CLAIM_LOCKED = "claim_locked"
KIND_REWRAPPED = "rewrapped"
KIND_EXPIRED_UNCLAIMED = "expired_unclaimed"
CLAIM_KINDS = (
    KIND_CLAIM_CODE_SENT,
    KIND_CLAIM_CODE_ACCEPTED,
    KIND_CLAIM_CODE_REFUSED,
    KIND_CLAIM_LOCKED,
    KIND_REWRAPPED,
    KIND_EXPIRED_UNCLAIMED,
)
DIRECTORY_KINDS = (
    KIND_RECIPIENT_ADD,
    KIND_RECIPIENT_DISABLE,
    KIND_ENROLMENT_REQUEST,
    KIND_ENROLMENT_APPROVE,
    KIND_ENROLMENT_REJECT,
    KIND_TEAM_MEMBER_ADD,
    KIND_TEAM_MEMBER_REMOVE,
)
KINDS = (
    KIND_SHARE,
    KIND_DECISION,
    KIND_FETCH,
    KIND_REVOKE,
    KIND_EXPIRE,
    KIND_ACKNOWLEDGE,
    KIND_RECIPIENT_ADD,
    KIND_RECIPIENT_DISABLE,
    KIND_ENROLMENT_REQUEST,
    KIND_ENROLMENT_APPROVE,
    KIND_ENROLMENT_REJECT,
    KIND_TEAM_MEMBER_ADD,
    KIND_TEAM_MEMBER_REMOVE,
    *CLAIM_KINDS,
    KIND_AGREEMENT_ADD,
    KIND_AGREEMENT_RETIRE,
    KIND_EMERGENCY_COMPLETED,
    KIND_ADVICE_QUESTION,
    KIND_ADVICE_ANSWER,
    KIND_SHARE_APPROVED,
    KIND_RETENTION_REVIEW,
)


#: RFC 8785 (via I-JSON) allows integers only up to 2**53 - 1 in magnitude.
_MAX_SAFE_INT = 2**53 - 1


def _plain(obj: Any, depth: int = 0) -> bool:
    """True when the stdlib encoder's output is already RFC 8785 canonical for `obj`.

    That holds without floats (whose ECMAScript formatting differs) and with ASCII-only object keys
    (RFC 8785 sorts keys by UTF-16 code units, Python by code points; they agree on ASCII). Ledger entries
    always qualify: the justification schema allows no floats and no keys outside its ASCII field names.
    """
    if depth > 64:
        return False
    if obj is None or isinstance(obj, (bool, str)):
        return True
    if isinstance(obj, int):
        return -_MAX_SAFE_INT <= obj <= _MAX_SAFE_INT
    if isinstance(obj, dict):
        return all(isinstance(k, str) and k.isascii() and _plain(v, depth + 1) for k, v in obj.items())
    if isinstance(obj, (list, tuple)):
        return all(_plain(v, depth + 1) for v in obj)
    return False


def canonical(obj: Any) -> bytes:
    """RFC 8785 JSON canonicalisation: sorted keys, no insignificant whitespace, fixed number form.

    The common case goes through the C JSON encoder (about five times faster than the pure-Python
    `rfc8785` package, which dominated append cost); anything else falls back to `rfc8785` itself.
    Both produce identical bytes where the fast path applies (checked by a property test).
    """
    return _dumps(obj) if _plain(obj) else rfc8785.dumps(obj)


class _NotPlain(Exception):
    """Raised from the JSON parser's hooks: this value holds something the C encoder does not write as RFC 8785."""


def _not_plain(_: str) -> Any:
    raise _NotPlain


def _safe_int(text: str) -> int:
    value = int(text)
    if not -_MAX_SAFE_INT <= value <= _MAX_SAFE_INT:
        raise _NotPlain
    return value


def parse_canonical(data: bytes) -> tuple[Any, bool | None]:
    """Parse a stored ledger entry and say whether it is in RFC 8785 form: (value, True/False), or
    (value, None) when only `canonical` can tell. ValueError when `data` is not JSON.

    The fastest exact route for `ledger verify`, which checks a million entries: the stdlib parser's hooks see
    every float, NaN/Infinity and integer (as in `canonical_if_plain`); for what remains, orjson's sorted-key
    encoding is byte-for-byte RFC 8785 unless the text has characters beyond U+FFFF (RFC 8785 sorts keys by
    UTF-16 code units, orjson by code points). Its escaping was checked against the `rfc8785` package over
    the Basic Multilingual Plane (tests/test_ledger_verify_fast.py). It encodes several times faster than the
    stdlib encoder, which was most of what verification cost.
    """
    text = data.decode("utf-8")  # UnicodeDecodeError is a ValueError: not JSON text
    try:
        value = _PLAIN_DECODER.decode(text)
    except _NotPlain:
        return json.loads(text), None
    if not data.isascii() and len(text.encode("utf-16-le", "surrogatepass")) != 2 * len(text):
        return value, None
    try:
        return value, orjson.dumps(value, option=orjson.OPT_SORT_KEYS) == data
    except TypeError:  # a lone surrogate from a \\u escape: orjson will not encode it
        return value, None


def canonical_if_plain(data: bytes) -> tuple[Any, bytes | None]:
    """Parse `data` and, when the C encoder's output is RFC 8785 for what it holds, return that output too.

    Why: `ledger verify` must check that every stored entry is in canonical form, and `canonical`'s
    per-node `_plain` walk cost more than everything else in verification put together. The same
    conditions are checked here while parsing instead: the parser's hooks see every float (and NaN or
    Infinity) and every integer; key order agrees with RFC 8785's UTF-16 order unless the text has
    characters beyond U+FFFF (a lone surrogate cannot be encoded and also lands on the slow path).
    Returns (value, bytes) on the fast path, (value, None) when only `canonical` can say; ValueError
    when `data` is not JSON.
    """
    text = data.decode("utf-8")  # UnicodeDecodeError is a ValueError: not JSON text
    try:
        value = _PLAIN_DECODER.decode(text)
    except _NotPlain:
        return json.loads(text), None
    if not data.isascii() and len(text.encode("utf-16-le", "surrogatepass")) != 2 * len(text):
        return value, None
    try:
        return value, _ENCODER.encode(value).encode()
    except (UnicodeEncodeError, ValueError, RecursionError):
        return value, None


_PLAIN_DECODER = json.JSONDecoder(parse_float=_not_plain, parse_int=_safe_int, parse_constant=_not_plain)
_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _dumps(obj: Any) -> bytes:
    # The prebuilt encoder (below): json.dumps with these options would build a new one per call, per append.
    return _ENCODER.encode(obj).encode()


def utc_now() -> str:
    return format_time(datetime.now(UTC))


def format_time(t: datetime) -> str:
    """RFC 3339 UTC with milliseconds: fixed width, so string order is time order in every store.

    Every field is formatted explicitly: `strftime("%Y")` gives years before 1000 without their leading
    zeros on glibc (`474-08-12T…`), which is not a date-time, and breaks the fixed width.
    """
    t = t.astimezone(UTC)
    return (
        f"{t.year:04d}-{t.month:02d}-{t.day:02d}T{t.hour:02d}:{t.minute:02d}:{t.second:02d}."
        f"{t.microsecond // 1000:03d}Z"
    )


#: RFC 3339 `date-time` exactly (what JSON Schema's `format: date-time` accepts, case-insensitively): a
#: four-digit year, a zone (`Z` or `±hh:mm`); no leap second (Python cannot hold one), no ISO 8601 variants.
_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})T([01]\d|2[0-3]):([0-5]\d):([0-5]\d)(?:\.(\d+))?(Z|[+-](?:[01]\d|2[0-3]):[0-5]\d)",
    re.ASCII | re.IGNORECASE,
)


def parse_time(s: str) -> datetime:
    """An RFC 3339 date-time with its zone, as UTC; ValueError for anything else (naive times are ambiguous).

    A valid time that UTC cannot hold (year 1 with a positive offset, year 9999 with a negative one) is
    clamped to the first or last representable instant, which is the same bound for a query.
    """
    m = _RFC3339.fullmatch(s)
    if m is None:
        raise ValueError("not an RFC 3339 date-time with a zone")
    year, month, day, hour, minute, second = (int(g) for g in m.groups()[:6])
    micro = int((m.group(7) or "0")[:6].ljust(6, "0"))
    zone = m.group(8).upper()
    offset = (
        timedelta(0)
        if zone == "Z"
        else (1 if zone[0] == "+" else -1) * timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6]))
    )
    local = datetime(year, month, day, hour, minute, second, micro)  # ValueError: no such day, or year 0
    try:
        return (local - offset).replace(tzinfo=UTC)
    except OverflowError:
        return datetime.min.replace(tzinfo=UTC) if offset > timedelta(0) else datetime.max.replace(tzinfo=UTC)


#: C2SP tlog-tiles entry bundles prefix each entry with a uint16 length: no entry may exceed 65,535 bytes.
MAX_ENTRY_BYTES = 0xFFFF


class EntryTooLarge(ValueError):
    """An entry's canonical bytes would not fit a tlog-tiles entry bundle."""

    def __init__(self, size: int) -> None:
        super().__init__(f"ledger entry of {size} bytes exceeds the {MAX_ENTRY_BYTES}-byte limit")
        self.size = size


def entry_size(entry: Mapping[str, Any]) -> int:
    """The entry's size once sealed at the largest possible index: check before storing anything."""
    return len(_fast_dumps({**entry, "index": _MAX_SAFE_INT}))


def check_size(entry: Mapping[str, Any]) -> int:
    size = entry_size(entry)
    if size > MAX_ENTRY_BYTES:
        raise EntryTooLarge(size)
    return size


def seal(entry: Mapping[str, Any], index: int) -> tuple[bytes, bytes]:
    """Fix the entry's position and return (canonical bytes, leaf hash). Called inside the append transaction.

    Entries come from the builders below over schema-validated justifications, which hold only strings,
    booleans, null and bounded integers under ASCII keys: for those the C encoder's output is already RFC 8785,
    so the per-node check in `canonical` is skipped on this hot path (`ledger verify` re-checks every entry).
    """
    parts = split_encode(entry)
    if parts is None:
        data = _dumps({**entry, "index": index})
    else:
        data = join_encoded(parts, index)
    if len(data) > MAX_ENTRY_BYTES:  # last line of defence: the append transaction rolls back
        raise EntryTooLarge(len(data))
    return data, leaf_hash(data)


#: orjson options giving the stdlib encoder's bytes (`_ENCODER`): sorted keys, compact, UTF-8 unescaped. Types
#: the stdlib refuses and orjson would write (datetimes, dataclasses) are passed through, so they are refused still.
_ORJSON_OPTIONS = orjson.OPT_SORT_KEYS | orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS


def _fast_dumps(obj: Any) -> bytes:
    """`_dumps`, about seven times faster (issue 15: JSON encoding was the largest part of an append).

    For what ledger entries hold (strings, booleans, null, integers, lists and objects with string keys) orjson
    writes byte for byte what the stdlib encoder writes (tests/test_ledger_encoding.py compares them over every
    code point); what orjson refuses (integers beyond 64 bits, non-string keys, other types) goes to the stdlib
    encoder, which writes or refuses it exactly as before. Floats are the one difference (exponent form, NaN):
    no entry holds one (no justification schema has a number field; the builders write integers), and `ledger
    verify` would report one as not RFC 8785 either way.
    """
    try:
        return orjson.dumps(obj, option=_ORJSON_OPTIONS)
    except orjson.JSONEncodeError:
        return _dumps(obj)


def split_encode(entry: Mapping[str, Any]) -> tuple[bytes, bytes] | None:
    """The entry's canonical bytes around its index, which only the append transaction knows: (head, tail) with
    `head + b'"index":' + str(index) + tail` equal to `_dumps({**entry, "index": index})`.

    Why: encoding is most of an append's CPU, so callers encode before they queue (off the writer thread), and
    the writer only joins the parts (`join_encoded`). With sorted keys, "index" falls between the keys that
    sort before it and those after: each side is encoded on its own. None when a top-level key is not a string
    (the caller then seals the entry whole, as `seal` does).
    """
    before: dict[str, Any] = {}
    after: dict[str, Any] = {}
    for key, value in entry.items():
        if type(key) is not str:
            return None
        if key != "index":
            (before if key < "index" else after)[key] = value
    head = _fast_dumps(before)[:-1] + (b"," if before else b"")
    tail = (b"," if after else b"") + _fast_dumps(after)[1:]
    return head, tail


def join_encoded(parts: tuple[bytes, bytes], index: int) -> bytes:
    """The canonical bytes of an entry encoded by `split_encode`, at `index`."""
    if type(index) is not int or not 0 <= index <= _MAX_SAFE_INT:
        raise ValueError(f"ledger index {index!r} is out of range")
    return b'%s"index":%d%s' % (parts[0], index, parts[1])


def actor(sub: str, role: str, org: str | None, issuer: str) -> dict[str, Any]:
    return {"sub": sub, "role": role, "org": org, "iss": issuer}


def _justification_summary(justification: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "subjects": [s["ref"] for s in justification.get("subjects", [])],
        "data_categories": list(justification.get("data_categories", [])),
        "purpose": dict(justification["purpose"]),
        "decision": justification["decision"],
    }


def decision_entry(
    *,
    time: str,
    actor: Mapping[str, Any],
    justification: Mapping[str, Any],
    policy: Mapping[str, str],
    disclosure: Mapping[str, Any] | None = None,
    flags: Sequence[str] = (),
) -> dict[str, Any]:
    """A decision recorded without a payload (golden rule 7): not to share, or a disclosure made elsewhere.

    `disclosure` (share decisions only): channel, with whom (name, role, organisation; directory IDs resolved),
    a bounded summary and when — never a payload. `flags`: the policy's safety nets that challenged the
    decision (e.g. `not_share_despite_risk`), for the DSL's list, the statistics and the subject report.
    Both keys are present only when they say something, so earlier entries keep their exact shape.
    """
    entry: dict[str, Any] = {
        "v": ENTRY_VERSION,
        "kind": KIND_DECISION,
        "time": time,
        "actor": dict(actor),
        **_justification_summary(justification),
        "recipients": [],
        "justification": dict(justification),
        "policy": dict(policy),
    }
    if disclosure is not None:
        entry["disclosure"] = dict(disclosure)
    if flags:
        entry["flags"] = list(flags)
    return entry


def share_entry(
    *,
    time: str,
    actor: Mapping[str, Any],
    share_id: str,
    justification: Mapping[str, Any],
    policy: Mapping[str, str],
    recipients: Sequence[Mapping[str, Any]],
    payload: Mapping[str, Any],
    expires_at: str,
    max_downloads: int | None,
    escrow: Mapping[str, Any] | None = None,
    handling: Mapping[str, Any] | None = None,
    emergency: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A share: who sent what (size + keyed digest, never content) to whom (with each envelope's SHA-256), why.

    `handling` is the policy's handling instruction for the recipients (DfE 2024 rule 5, protect identities),
    recorded only when the justification gives one. `emergency` (issue 14) marks a share made at once with the
    policy's minimum answers: when its justification is due and which answers are owed; the entry is then
    flagged `emergency_share`, and an `emergency_completed` entry later points back at it.
    """
    entry = {
        "v": ENTRY_VERSION,
        "kind": KIND_SHARE,
        "time": time,
        "actor": dict(actor),
        "share_id": share_id,
        **_justification_summary(justification),
        "recipients": [dict(r) for r in recipients],
        "payload": dict(payload),
        "expires_at": expires_at,
        "max_downloads": max_downloads,
        "escrow": None if escrow is None else dict(escrow),
        "justification": dict(justification),
        "policy": dict(policy),
    }
    if handling is not None:
        entry["handling"] = dict(handling)
    if emergency is not None:
        entry["emergency"] = dict(emergency)
        entry["flags"] = ["emergency_share"]
    return entry


def emergency_completed_entry(
    *,
    time: str,
    actor: Mapping[str, Any],
    share_id: str,
    share_index: int,
    justification: Mapping[str, Any],
    policy: Mapping[str, str],
    complete_by: str,
) -> dict[str, Any]:
    """The full justification of an emergency share, completed later: a new entry linked to the share's own.

    It carries the subjects, purpose and lawful basis like a decision (so the subject report and the audit
    filters find it) but no top-level `decision`: the share was already counted when it was made.
    """
    summary = _justification_summary(justification)
    summary.pop("decision")
    return {
        "v": ENTRY_VERSION,
        "kind": KIND_EMERGENCY_COMPLETED,
        "time": time,
        "actor": dict(actor),
        "share_id": share_id,
        "share_index": share_index,
        **summary,
        "recipients": [],
        "justification": dict(justification),
        "policy": dict(policy),
        "completes": {"share_index": share_index, "complete_by": complete_by, "late": time > complete_by},
    }


def share_event_entry(
    *,
    kind: str,
    time: str,
    actor: Mapping[str, Any] | None,
    share_id: str,
    share_index: int,
    subjects: Sequence[str],
    recipients: Sequence[Mapping[str, Any]],
    **details: Any,
) -> dict[str, Any]:
    """A later event on a share (fetch, revocation, expiry): points back at the share's own entry."""
    if kind not in (KIND_FETCH, KIND_REVOKE, KIND_EXPIRE, KIND_ACKNOWLEDGE, KIND_SHARE_APPROVED, *CLAIM_KINDS):
        raise ValueError(f"not a share event kind: {kind}")
    return {
        "v": ENTRY_VERSION,
        "kind": kind,
        "time": time,
        "actor": dict(actor) if actor else None,
        "share_id": share_id,
        "share_index": share_index,
        "subjects": list(subjects),
        "recipients": [dict(r) for r in recipients],
        **details,
    }


def recipient_entry(
    *, kind: str, time: str, actor: Mapping[str, Any], recipient: Mapping[str, Any], **details: Any
) -> dict[str, Any]:
    """Directory changes are recorded too: who could receive, with which key, and from when."""
    if kind not in DIRECTORY_KINDS:
        raise ValueError(f"not a directory event kind: {kind}")
    return {
        "v": ENTRY_VERSION,
        "kind": kind,
        "time": time,
        "actor": dict(actor),
        "subjects": [],
        "recipients": [dict(recipient)],
        **details,
    }


def agreement_entry(
    *, kind: str, time: str, actor: Mapping[str, Any], agreement: Mapping[str, Any], **details: Any
) -> dict[str, Any]:
    """A partnership agreement's new version or retirement: what was agreed, with the document's SHA-256."""
    if kind not in (KIND_AGREEMENT_ADD, KIND_AGREEMENT_RETIRE):
        raise ValueError(f"not an agreement event kind: {kind}")
    return {
        "v": ENTRY_VERSION,
        "kind": kind,
        "time": time,
        "actor": dict(actor),
        "subjects": [],
        "recipients": [],
        "agreement": dict(agreement),
        "agreements": [
            {"id": agreement["id"], "version": agreement["version"], "document_sha256": agreement["document_sha256"]}
        ],
        **details,
    }


def advice_entry(*, kind: str, time: str, actor: Mapping[str, Any], advice: Mapping[str, Any]) -> dict[str, Any]:
    """A question for advice or its answer: no subject references and no payload, ever (the question carries only
    the draft's purpose and data categories, and the adviser role it is for)."""
    if kind not in (KIND_ADVICE_QUESTION, KIND_ADVICE_ANSWER):
        raise ValueError(f"not an advice event kind: {kind}")
    return {
        "v": ENTRY_VERSION,
        "kind": kind,
        "time": time,
        "actor": dict(actor),
        "subjects": [],
        "recipients": [],
        "advice": dict(advice),
    }
