"""Received files are offered as downloads only, never rendered (issue 20, point 8).

A shared HTML or SVG file opened on one of our own pages would run, load remote content, redirect or draw a
fake passphrase form under our address. The gateway's recipient web page serves files with these headers; the
extension's inbox follows the same rule in `extension/lib/download.js` (an `application/octet-stream` blob with
a `download` name). Pure: no I/O.
"""

from __future__ import annotations

import re
import unicodedata
from urllib.parse import quote

DOWNLOAD_TYPE = "application/octet-stream"
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def download_name(name: str, fallback: str = "attachment") -> str:
    """The original file name, without folders or control characters; `fallback` when nothing is left."""
    cleaned = _CONTROL.sub("", name).replace("/", "_").replace("\\", "_").strip()
    return cleaned if cleaned not in ("", ".", "..") else fallback


def download_headers(name: str) -> dict[str, str]:
    """Headers that make any browser save the bytes under their original name and never render them."""
    full = download_name(name)
    ascii_name = unicodedata.normalize("NFKD", full).encode("ascii", "ignore").decode("ascii")
    ascii_name = ascii_name.replace('"', "'").strip() or "attachment"
    return {
        "Content-Type": DOWNLOAD_TYPE,
        "Content-Disposition": f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(full, safe='')}",
        "X-Content-Type-Options": "nosniff",
        # Even if something rendered it, it would have no script, no network, no forms and an opaque origin.
        "Content-Security-Policy": "sandbox; default-src 'none'",
        "Cache-Control": "no-store",
    }
