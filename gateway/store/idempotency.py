"""What the store keeps of an idempotent request (the IETF httpapi Idempotency-Key draft): its stored answer,
and the write that records it in the same transaction as the share or decision. No HTTP here: the store
knows nothing above it."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class StoredResponse:
    fingerprint: str
    status: int
    body: dict[str, Any]


class IdempotencyHit(Exception):
    """Raised inside a store transaction when the key is already taken: nothing was written."""

    def __init__(self, stored: StoredResponse) -> None:
        super().__init__("idempotency key already used")
        self.stored = stored


@dataclass(frozen=True)
class IdempotentWrite:
    """What the store records with a share or decision: the answer, built from its ledger index."""

    principal: str
    key: str
    fingerprint: Callable[[], str]
    respond: Callable[[int], dict[str, Any]]
    status: int
    ttl_seconds: int

    def row(self, index: int, now: str, expires_at: str) -> tuple[str, str, str, int, str, str, str]:
        body = json.dumps(self.respond(index))
        return (self.principal, self.key, self.fingerprint(), self.status, body, now, expires_at)
