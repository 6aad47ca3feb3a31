"""The checks one kind of input gets wherever it arrives: free text, and an optional reason.

Free text (an acknowledgement's note, a reason for releasing escrow, retiring an agreement or revoking a
share, an override's reason) is refused the same way everywhere: it must be a string with something other
than white space in it, no longer than `MAX_TEXT`, and it is recorded stripped. Keeping the rule here, not in
each handler or use case, is what keeps the API's answers (code, field, message) and the ledger's records
alike. Pure: the refusals are `refusals.Invalid`, which the front ends translate.
"""

from __future__ import annotations

from typing import Any, TypeGuard

from .refusals import Invalid

#: The length cap on every free-text field a person types (notes, reasons).
MAX_TEXT = 4000


def is_text(value: Any, cap: int = MAX_TEXT) -> TypeGuard[str]:
    """A string with something other than white space in it, of at most `cap` characters."""
    return isinstance(value, str) and bool(value.strip()) and len(value) <= cap


def text(value: Any, field: str, code: str, message: str | None = None, cap: int = MAX_TEXT) -> str:
    """`value` stripped, or an `Invalid` refusal naming `field` (with `message`, or the usual one)."""
    if not is_text(value, cap):
        raise Invalid(code, message or f"{field} must be non-blank text of at most {cap} characters.", field)
    return value.strip()


def optional_reason(value: Any, field: str = "reason", code: str = "invalid_reason") -> str | None:
    """A reason that may be left out (None), but is text when given."""
    return None if value is None else text(value, field, code)
