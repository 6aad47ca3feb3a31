"""The transparency log's use cases that are not the ledger's own appends: accepting a witness's co-signature.

A witness (C2SP tlog-witness) returns a checkpoint it co-signed. Whether to keep its signature lines is a rule
of the log, not of HTTP: only keys in the gateway's `witnesses` setting count, only over a checkpoint this
gateway signed, and only signatures that verify. `api/transparency.py` reads the note and shapes the answer;
the decision is here, beside the other use cases, so a witness that posts by another route gets the same.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from .ledger.checkpoint import Checkpoint, CheckpointError, NoteVerifier, open_note, split_note
from .refusals import Invalid, Malformed, NotFound


class CosignatureStore(Protocol):
    """What accepting a co-signature needs from the store: the note signed at a size, and where to add lines."""

    async def checkpoint_note(self, size: int) -> bytes | None: ...

    async def add_cosignatures(self, size: int, lines: Mapping[str, str]) -> None: ...


@dataclass(frozen=True)
class Cosigned:
    """The checkpoint size co-signed, and the configured witnesses whose signatures were kept."""

    size: int
    witnesses: tuple[str, ...]


async def accept_cosignature(
    store: CosignatureStore, witnesses: Sequence[NoteVerifier], read_note: Callable[[], Awaitable[bytes]]
) -> Cosigned:
    """Keep the signature lines of every configured witness that validly signed a checkpoint this gateway signed.

    Refused: no witnesses configured (`NotFound`), not a signed checkpoint note (`Malformed`), a checkpoint this
    gateway never signed (`NotFound`, so a witness cannot plant a root), no valid configured signature
    (`Invalid`). The note's body must be byte-identical to the stored one: a co-signature covers exactly it.
    The note is read (`read_note`) only once a witness is configured: no body is read for nothing.
    """
    if not witnesses:
        raise NotFound("no_witnesses", "This gateway has no witnesses configured.")
    note = await read_note()
    try:
        body, sigs = split_note(note)
        cp = Checkpoint.parse(body)
    except CheckpointError as exc:
        raise Malformed("invalid_note", f"Not a signed checkpoint note: {exc}", "note") from None
    stored = await store.checkpoint_note(cp.size)
    if stored is None or split_note(stored)[0] != body:
        raise NotFound("not_found", "This gateway signed no such checkpoint.", "note")
    lines: dict[str, str] = {}
    for v in witnesses:
        try:
            open_note(note, [v], require=[v.name])
        except CheckpointError:
            continue
        lines[v.name] = next(line for name, kid, line in sigs if (name, kid) == (v.name, v.key_id))
    if not lines:
        raise Invalid("cosignature_invalid", "The note carries no valid signature from a configured witness.", "note")
    await store.add_cosignatures(cp.size, lines)
    return Cosigned(cp.size, tuple(sorted(lines)))
