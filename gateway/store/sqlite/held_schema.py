"""Tables for shares held for addresses without a key, passphrase shares, and one-time claim codes (issue 10)."""

from __future__ import annotations

HELD_SCHEMA = """
-- One row per address a share was made for without a key: 'held' (wrapped to the gateway's holding key) until
-- the address is proven ('claimed') and the envelope re-wrapped to the recipient's key ('rewrapped'; it then
-- has a share_recipients row); or 'passphrase' mode (one scrypt envelope per share, 'active' until used up).
CREATE TABLE IF NOT EXISTS held_recipients (
    share_id TEXT NOT NULL REFERENCES shares (id),
    address TEXT NOT NULL,
    mode TEXT NOT NULL CHECK (mode IN ('held', 'passphrase')),
    envelope TEXT NOT NULL,
    envelope_sha256 TEXT NOT NULL,
    envelope_size INTEGER NOT NULL,
    state TEXT NOT NULL
        CHECK (state IN ('held', 'claimed', 'rewrapped', 'active', 'exhausted', 'expired', 'revoked')),
    recipient_id TEXT NOT NULL,
    downloads INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (share_id, address)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS held_by_recipient ON held_recipients (recipient_id, state);

-- One-time codes: only a keyed MAC of the code (bound to share and address) is stored.
CREATE TABLE IF NOT EXISTS claim_codes (
    id INTEGER PRIMARY KEY,
    share_id TEXT NOT NULL,
    address TEXT NOT NULL,
    code_mac BLOB NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    state TEXT NOT NULL CHECK (state IN ('live', 'used', 'locked', 'superseded'))
);
CREATE INDEX IF NOT EXISTS claim_codes_by_claim ON claim_codes (share_id, address, id);
"""

#: States in which a held/passphrase envelope file must still exist on disk.
LIVE_HELD_STATES = ("held", "claimed", "active")
