"""`Idempotency-Key` on POST /api/v1/shares and /api/v1/decisions (IETF httpapi idempotency-key draft).

A client that sends a share and never sees the 201 (a dropped connection, a timeout) retries with the same
key; the gateway then answers with the first response instead of making a second share and ledger entry.

- Same key, same request (fingerprint: method, path, caller, digest of the body's content) → the first
  answer, replayed (same status and body, with `Idempotent-Replayed: true`).
- Same key, different request → 422 `idempotency_key_reused`.
- Same key while the first request is still being handled → 409 `idempotency_request_in_progress`.
- Keys are scoped to the caller (issuer and subject), stored with the share or decision in the same
  transaction (so they survive restarts and are shared by every node on the same database), and forgotten
  after `limits.idempotency_key_ttl_seconds`.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from .auth import Principal
from .errors import ApiError
from .store.idempotency import IdempotentWrite, StoredResponse

HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 255
#: Visible ASCII without the quote and backslash (an sf-string's content without escapes), 1 to 255 of them.
KEY_RE = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]{1,255}")


def header_key(request: web.Request) -> str | None:
    """The request's Idempotency-Key (a structured-field string; a bare token is accepted too), or None."""
    values = request.headers.getall(HEADER, [])
    if not values:
        return None
    if len(values) > 1:
        raise ApiError(400, "invalid_idempotency_key", "Send one Idempotency-Key header.", field=HEADER)
    raw = values[0].strip()
    if len(raw) >= 2 and raw[0] == raw[-1] == '"':
        raw = raw[1:-1]
    if not KEY_RE.fullmatch(raw):
        raise ApiError(
            400,
            "invalid_idempotency_key",
            f"The Idempotency-Key must be 1 to {MAX_KEY_LENGTH} visible ASCII characters (a UUID is ideal).",
            field=HEADER,
        )
    return raw


def scope(principal: Principal) -> str:
    """Keys are per caller: the same key from two people is two keys."""
    return f"{principal.issuer}\n{principal.sub}"


@dataclass
class Idempotency:
    """One keyed request: its scope and key, a running digest of what it sent, and any stored answer."""

    principal: str
    key: str
    method: str
    path: str
    ttl_seconds: int
    stored: StoredResponse | None = None
    _digest: Any = field(default_factory=hashlib.sha256)

    def update(self, label: bytes, data: bytes) -> None:
        """Add a labelled piece of the request's content (e.g. the share part, the payload)."""
        self._digest.update(label + b"\0" + len(data).to_bytes(8, "big"))
        self._digest.update(data)

    def feed(self, data: bytes) -> None:
        """Add streamed payload bytes (after a `update(b"payload", b"")` marker)."""
        self._digest.update(data)

    def fingerprint(self) -> str:
        h = hashlib.sha256()
        for part in (self.method, self.path, self.principal):
            h.update(part.encode() + b"\0")
        h.update(self._digest.copy().digest())
        return h.hexdigest()

    def answer(self, stored: StoredResponse) -> dict[str, Any]:
        """The stored body if this request is the one that made it; 422 if the key was used for another."""
        if stored.fingerprint != self.fingerprint():
            raise ApiError(
                422,
                "idempotency_key_reused",
                "This Idempotency-Key was already used for a different request; use a new key for a new request.",
                field=HEADER,
            )
        return stored.body

    def write(self, respond: Callable[[int], dict[str, Any]], status: int = 201) -> IdempotentWrite:
        return IdempotentWrite(self.principal, self.key, self.fingerprint, respond, status, self.ttl_seconds)


class InFlight:
    """Keys whose first request is still being handled on this node (409 for a concurrent duplicate)."""

    def __init__(self) -> None:
        self._held: set[tuple[str, str]] = set()

    @contextmanager
    def hold(self, principal: str, key: str) -> Iterator[None]:
        k = (principal, key)
        if k in self._held:
            raise ApiError(
                409,
                "idempotency_request_in_progress",
                "A request with this Idempotency-Key is still being handled; wait for it, then retry.",
                field=HEADER,
            )
        self._held.add(k)
        try:
            yield
        finally:
            self._held.discard(k)


INFLIGHT = web.AppKey("idempotency_inflight", InFlight)
