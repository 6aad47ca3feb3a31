"""Rows to value types, for every store backend: both drivers' rows answer `row["column"]` and the tables have
the same columns, so one conversion serves SQLite and PostgreSQL alike."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from .models import Enrolment, Recipient, Share, ShareRecipient


def share_from_rows(row: Any, rrows: Sequence[Any]) -> Share:
    return Share(
        id=row["id"],
        created_at=row["created_at"],
        sender_sub=row["sender_sub"],
        sender_iss=row["sender_iss"],
        sender_org=row["sender_org"],
        purpose_code=row["purpose_code"],
        purpose_description=row["purpose_description"],
        subjects=tuple(json.loads(row["subjects"])),
        data_categories=tuple(json.loads(row["data_categories"])),
        payload_content_type=row["payload_content_type"],
        payload_size=row["payload_size"],
        expires_at=row["expires_at"],
        max_downloads=row["max_downloads"],
        state=row["state"],
        ledger_index=row["ledger_index"],
        escrow_sha256=row["escrow_sha256"],
        escrow_size=row["escrow_size"],
        sender_name=row["sender_name"],
        sender_org_name=row["sender_org_name"],
        recipients=tuple(
            ShareRecipient(
                recipient_id=r["recipient_id"],
                recipient_org=r["recipient_org"],
                envelope_sha256=r["envelope_sha256"],
                envelope_size=r["envelope_size"],
                downloads=r["downloads"],
                state=r["state"],
                acknowledged_at=r["acknowledged_at"],
                acknowledgement=r["acknowledgement"],
                via_team=r["via_team"],
                first_downloaded_at=r["first_downloaded_at"],
                last_downloaded_at=r["last_downloaded_at"],
            )
            for r in rrows
        ),
    )


def enrolment_from_row(row: Any) -> Enrolment:
    return Enrolment(
        id=row["id"],
        recipient_id=row["recipient_id"],
        name=row["name"],
        org=row["org"],
        email=row["email"],
        age_recipient=row["age_recipient"],
        status=row["status"],
        requested_at=row["requested_at"],
        decided_at=row["decided_at"],
    )


def recipient_from_row(row: Any) -> Recipient:
    return Recipient(
        id=row["id"],
        name=row["name"],
        org=row["org"],
        email=row["email"],
        age_recipient=row["age_recipient"],
        status=row["status"],
        created_at=row["created_at"],
        kind=row["kind"],
    )


def ledger_columns(entry: Mapping[str, Any]) -> tuple[Any, ...]:
    """The `ledger` table's columns derived from an entry, between `idx` and the entry bytes, in the order both
    backends' INSERT names them (time, kind, actor, decision, share, purpose, lawful basis): one derivation, so an
    audit filter can never find different rows on SQLite and on PostgreSQL."""
    actor = entry.get("actor") or {}
    purpose = entry.get("purpose") or {}
    basis = ((entry.get("justification") or {}).get("rules") or {}).get("1_lawful_basis") or {}
    return (
        entry["time"],
        entry["kind"],
        actor.get("sub"),
        actor.get("org"),
        entry.get("decision"),
        entry.get("share_id"),
        purpose.get("code"),
        basis.get("article_6"),
        basis.get("article_9"),
        basis.get("dpa_schedule_1"),
    )
