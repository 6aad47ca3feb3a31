"""Rules for recipients who have no key yet (pure, no I/O): addresses, claim codes, passphrase strength.

The gateway holds a share for an address (wrapped to its holding key) until the address is proven with a
one-time code sent by e-mail, then re-wraps it to the key the recipient makes; or the sender gives a
passphrase they tell the recipient by another channel.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from typing import Final

import zxcvbn  # type: ignore[import-untyped]  # no stubs published

MODE_VERIFY: Final = "verify"
MODE_PASSPHRASE: Final = "passphrase"  # noqa: S105 - a mode name, not a secret
UNENROLLED_MODES: Final = (MODE_VERIFY, MODE_PASSPHRASE)

#: A code lives 10 minutes, is used once, and is locked after 5 wrong tries.
CODE_TTL_SECONDS: Final = 600
CODE_MAX_ATTEMPTS: Final = 5
CODE_DIGITS: Final = 6
#: At most 3 codes per address and share in any 15 minutes.
CODES_PER_WINDOW: Final = 3
CODE_WINDOW_SECONDS: Final = 900
#: After this many wrong codes in all (over every code), the claim of that address to that share is locked.
CLAIM_MAX_WRONG: Final = 15
#: The token a verified code gives: long enough to make a key and enrol it.
CLAIM_TOKEN_TTL: Final = 900

PASSPHRASE_MIN_LENGTH: Final = 12
PASSPHRASE_MAX_LENGTH: Final = 1024
#: zxcvbn score (0-4) a passphrase needs: 3 = "safely unguessable: moderate protection from offline attack".
PASSPHRASE_MIN_SCORE: Final = 3

MAX_ADDRESS_LENGTH: Final = 254
_LOCAL = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]{1,64}$")
_LABEL = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
_CODE = re.compile(rf"^[0-9]{{{CODE_DIGITS}}}$")

CODE_SUBJECT: Final = "Your SafeShare code"
NOTICE_SUBJECT: Final = "A SafeShare share is waiting for you"


def is_address(entry: str) -> bool:
    """In a share's `recipients`, an entry containing "@" is an e-mail address; anything else a directory ID."""
    return "@" in entry


def normalise_address(raw: object) -> str | None:
    """Lower-cased address, or None when it is not a plain addr-spec (no display names, comments or IP literals)."""
    if not isinstance(raw, str) or len(raw) > MAX_ADDRESS_LENGTH:
        return None
    address = raw.strip().lower()
    local, sep, domain = address.rpartition("@")
    if not sep or not _LOCAL.match(local) or local.startswith(".") or local.endswith(".") or ".." in local:
        return None
    labels = domain.split(".")
    if len(labels) < 2 or not all(_LABEL.match(label) for label in labels) or labels[-1].isdigit():
        return None
    return address


def address_domain(address: str) -> str:
    return address.rpartition("@")[2]


def recipient_id_for(address: str) -> str:
    """A stable directory ID for an address (matches RECIPIENT_ID_RE; reveals nothing readable of it)."""
    digest = hashlib.sha256(b"safeshare/claim-recipient\0" + address.encode()).digest()
    return "claim-" + base64.b32encode(digest[:15]).decode().lower()


def held_envelope_stem(address: str) -> str:
    """File stem of the envelope held for an address; starts with "_" so it never clashes with a recipient ID."""
    digest = hashlib.sha256(b"safeshare/held-envelope\0" + address.encode()).digest()
    return "_held-" + base64.b32encode(digest[:15]).decode().lower()


PASSPHRASE_STEM: Final = "_passphrase"  # noqa: S105 - a file stem


def new_code() -> str:
    return f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"


def well_formed_code(code: object) -> bool:
    return isinstance(code, str) and bool(_CODE.match(code))


def code_key(digest_key: bytes) -> bytes:
    """The key codes are MACed with: derived from a key file (never stored in the database)."""
    return hmac.new(digest_key, b"safeshare/claim-code-key", hashlib.sha256).digest()


def code_mac(key: bytes, share_id: str, address: str, code: str) -> bytes:
    """Only this is stored: bound to the share and address, so a code cannot be used for another one."""
    return hmac.new(key, f"{share_id}\0{address}\0{code}".encode(), hashlib.sha256).digest()


def code_matches(key: bytes, share_id: str, address: str, code: str, stored: bytes) -> bool:
    return hmac.compare_digest(code_mac(key, share_id, address, code), stored)


def passphrase_problem(passphrase: object) -> str | None:
    """None if the passphrase is acceptable, else a plain explanation (which never quotes it)."""
    if not isinstance(passphrase, str) or not passphrase:
        return "A passphrase is required for a passphrase share."
    if len(passphrase) > PASSPHRASE_MAX_LENGTH:
        return f"The passphrase is longer than {PASSPHRASE_MAX_LENGTH} characters."
    if len(passphrase) < PASSPHRASE_MIN_LENGTH:
        return (
            f"The passphrase is too short: use at least {PASSPHRASE_MIN_LENGTH} characters, for example "
            "four or more unrelated words."
        )
    score = zxcvbn.zxcvbn(passphrase[:100])["score"]
    if score < PASSPHRASE_MIN_SCORE:
        return (
            "The passphrase is too easy to guess (common words, names, dates, keyboard patterns or repeats). "
            "Use four or more unrelated words, or a longer mix."
        )
    return None


def code_mail_body(code: str, share_id: str, minutes: int, link: str) -> str:
    return (
        "Someone asked to open a SafeShare share sent to this address.\n\n"
        f"Your code: {code}\n\n"
        f"Reference: {share_id}\n"
        f"The code works once, for {minutes} minutes. Enter it on the page you came from:\n{link}\n\n"
        "If you did not ask for it, ignore this message; nobody can open the share without the code.\n"
    )


def notice_mail_body(share_id: str, link: str, sender_org: str | None) -> str:
    org = f" from {sender_org}" if sender_org else ""
    return (
        f"A practitioner{org} has shared information with you securely through SafeShare.\n\n"
        f"Open it here: {link}\n"
        f"Reference: {share_id}\n\n"
        "You will be asked to prove you own this address with a one-time code sent to it.\n"
    )
