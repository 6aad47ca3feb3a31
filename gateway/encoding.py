"""Bytes as text, the one way the API, the CLI and the audit report show them (hashes, proofs, notes).

Standard base64 with padding (RFC 4648 §4), as C2SP checkpoints and RFC 9162 proofs are written. The age
format's unpadded base64 stays inside `envelope`, and JWTs' base64url inside `auth`: they are other formats.
"""

from __future__ import annotations

import base64


def b64(data: bytes) -> str:
    """Standard, padded base64 of `data`."""
    return base64.b64encode(data).decode("ascii")
