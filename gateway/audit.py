"""The auditor's use cases that do more than read: the subject report's verification stamp and proofs.

A subject report (everything recorded about one child or adult, oldest first) is only worth printing if a
reader can trust it was not edited: it carries the latest signed checkpoint, that checkpoint's signature as
checked with the gateway's own ledger key, and for each entry whether its inclusion proof against that
checkpoint verifies. Those checks are rules of the ledger, so they live here rather than in the HTTP handler
(`api/ledger.py` parses the request and renders the report as HTML or JSON).
"""

from __future__ import annotations

from typing import Any

from . import audit_report
from .encoding import b64
from .ledger.checkpoint import Checkpoint, CheckpointError, NoteVerifier, verify_checkpoint
from .ledger.entry import utc_now
from .service import Gateway
from .store.audit import StoredCheckpoint


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


async def subject_report(gw: Gateway, subject: str, scope: str | None, verifier: NoteVerifier | None) -> dict[str, Any]:
    """The report on `subject` (entries within `scope`, an organisation, or everywhere when None), stamped
    with the latest checkpoint and each entry's inclusion proof against it (`audit_report.build_report`)."""
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
        capped=capped,
        cap=cap,
        generated_at=utc_now(),
        checkpoint=stamp,
        proofs=proofs,
        policies=gw.policies,
        scope=scope,
    )
