"""Entry authentication: an HMAC-SHA-256 per ledger entry, keyed by a secret that lives in `keys/`, not the database.

Pure functions, no I/O. The Merkle tree and signed checkpoints make the ledger tamper-*evident* after a
checkpoint; they cannot tell a genuine entry appended since the last checkpoint from one written straight
into the SQLite file. The MAC can: whoever holds the database alone cannot compute it, so a row they add
(in the middle, or at the tail with the tree state updated) does not verify, and the checkpoint signer
refuses to sign over it.

The MAC binds the entry's index and its RFC 6962 leaf hash (which already covers the canonical bytes, which
name the index): an entry cannot be moved to another position or edited without its MAC failing.

Ledgers written before entries had MACs keep their old entries as "legacy": the first authenticated index is
recorded once, in the database, under its own MAC (so it cannot be raised to cover forged rows), and the
legacy entries are covered by the signed checkpoint of that time.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable

MAC_SIZE = 32
KEY_SIZE = 32
_BLOCK = 64  # SHA-256's block size, for HMAC's key padding
_ENTRY_DOMAIN = b"safeshare/ledger-entry-mac/v1\n"
_START_DOMAIN = b"safeshare/ledger-mac-start/v1\n"


def _u64(value: int) -> bytes:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 1 << 64:
        raise ValueError(f"index {value!r} is not a 64-bit unsigned integer")
    return value.to_bytes(8, "big")


def _check_key(key: bytes) -> bytes:
    if not isinstance(key, bytes) or len(key) != KEY_SIZE:
        raise ValueError(f"ledger entry MAC key must be {KEY_SIZE} bytes")
    return key


def entry_mac_checker(key: bytes) -> Callable[[int, bytes, bytes | None], bool]:
    """`entry_mac_ok` for one key, for checking a whole ledger, which `ledger verify` does a million times.

    HMAC (RFC 2104) = H((K ^ opad) || H((K ^ ipad) || message)). The SHA-256 states after the padded key blocks
    (and, inside, the domain prefix every entry MAC starts with) are the same for every entry, so they are
    computed once and copied per entry: half the cost of the one-shot `hmac.digest`, which sets the key up
    again each time. The same bytes as `entry_mac` (tests/test_ledger_verify_fast.py)."""
    padded = _check_key(key).ljust(_BLOCK, b"\0")  # a 32-byte key: no hashing of the key first
    inner = hashlib.sha256(bytes(b ^ 0x36 for b in padded) + _ENTRY_DOMAIN)
    outer = hashlib.sha256(bytes(b ^ 0x5C for b in padded))
    inner_copy, outer_copy, compare = inner.copy, outer.copy, hmac.compare_digest

    def ok(index: int, leaf_hash: bytes, mac: bytes | None) -> bool:
        if not isinstance(mac, bytes) or len(mac) != MAC_SIZE or len(leaf_hash) != 32:
            return False
        h = inner_copy()
        h.update(index.to_bytes(8, "big") + leaf_hash)  # OverflowError beyond 64 bits, as `_u64` refuses
        o = outer_copy()
        o.update(h.digest())
        return compare(o.digest(), mac)

    return ok


def entry_mac(key: bytes, index: int, leaf_hash: bytes) -> bytes:
    """HMAC-SHA-256(key, domain || index (8 bytes, big-endian) || leaf hash)."""
    if not isinstance(leaf_hash, bytes) or len(leaf_hash) != 32:
        raise ValueError("leaf hash must be 32 bytes")
    # One-shot C HMAC: this runs once per append in the writer thread (the same bytes as hmac.new(...).digest()).
    return hmac.digest(_check_key(key), _ENTRY_DOMAIN + _u64(index) + leaf_hash, "sha256")


def entry_mac_ok(key: bytes, index: int, leaf_hash: bytes, mac: bytes | None) -> bool:
    """Constant-time check; a missing or wrongly sized MAC is simply not valid."""
    if not isinstance(mac, bytes) or len(mac) != MAC_SIZE or len(leaf_hash) != 32:
        return False
    return hmac.compare_digest(entry_mac(key, index, leaf_hash), mac)


def start_mac(key: bytes, start: int) -> bytes:
    """MAC over the first authenticated index (every entry below it is legacy, written before MACs existed)."""
    return hmac.new(_check_key(key), _START_DOMAIN + _u64(start), hashlib.sha256).digest()


def start_mac_ok(key: bytes, start: int, mac: bytes | None) -> bool:
    if not isinstance(mac, bytes) or len(mac) != MAC_SIZE:
        return False
    return hmac.compare_digest(start_mac(key, start), mac)
