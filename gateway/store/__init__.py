"""Persistence: recipients, shares, envelopes' metadata and the ledger, behind one interface.

Every state change is one transaction that also appends its ledger entry, so the record can never disagree
with what happened. `sqlite` is the embedded default; a PostgreSQL store implements the same interface.
"""

from .models import (
    FetchOutcome,
    LedgerRow,
    Recipient,
    RecipientExists,
    Share,
    ShareRecipient,
    StoreError,
)

__all__ = [
    "FetchOutcome",
    "LedgerRow",
    "Recipient",
    "RecipientExists",
    "Share",
    "ShareRecipient",
    "StoreError",
]
