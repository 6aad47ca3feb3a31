"""Organisations as tenants: who may act on, and read about, which organisation (pure rules, no I/O).

Many agencies share one gateway. By default an administrator acts within their own organisation (the token's
`org` claim) and an auditor reads only ledger entries that involve it: entries where it shared, decided, or
received (the actor's organisation, or a recipient's organisation in the entry; the same rule fills the
store's `ledger_orgs` index, which the auditor queries use). Acting or reading across the whole partnership
takes a separate, explicitly granted role: `partnership_admin` or `partnership_auditor`.

A token with an org-scoped role but no organisation can act on nothing; it is refused with 403
`org_required` rather than silently shown an empty world.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Final

from .auth import Principal
from .refusals import Forbidden

ADMIN: Final = "admin"
AUDITOR: Final = "auditor"
PARTNERSHIP_ADMIN: Final = "partnership_admin"
PARTNERSHIP_AUDITOR: Final = "partnership_auditor"
#: Either role lets a handler in; the organisation check then decides what it may touch.
ADMIN_ROLES: Final = (ADMIN, PARTNERSHIP_ADMIN)
AUDITOR_ROLES: Final = (AUDITOR, PARTNERSHIP_AUDITOR)


class Everywhere:
    """The scope of a partnership-wide role (distinct from `None`, which would read as "no organisation")."""

    def __repr__(self) -> str:
        return "EVERYWHERE"


EVERYWHERE: Final = Everywhere()
Scope = str | Everywhere


def org_required(role: str) -> Forbidden:
    return Forbidden(
        "org_required",
        f"The {role} role acts within the organisation named in your token, and your token names none. "
        f"Ask for a token with an organisation, or for the partnership_{role} role.",
        required_claim="org",
    )


def admin_scope(p: Principal) -> Scope:
    """Where an administrator may act: everywhere (partnership_admin) or their own organisation."""
    if p.has(PARTNERSHIP_ADMIN):
        return EVERYWHERE
    if not p.org:
        raise org_required(ADMIN)
    return p.org


def auditor_scope(p: Principal) -> Scope:
    """What an auditor may read: the whole ledger (partnership_auditor) or entries involving their organisation."""
    if p.has(PARTNERSHIP_AUDITOR):
        return EVERYWHERE
    if not p.org:
        raise org_required(AUDITOR)
    return p.org


def within(scope: Scope, org: str | None) -> bool:
    return isinstance(scope, Everywhere) or (org is not None and org == scope)


def admin_may_act_on(p: Principal, org: str | None) -> bool:
    """Whether `p` may take an administrative action on something belonging to `org` (no raising)."""
    return p.has(PARTNERSHIP_ADMIN) or (p.has(ADMIN) and bool(p.org) and org == p.org)


def acting_role(p: Principal, org: str | None) -> str:
    """The role an administrative action on `org` is recorded under: the narrowest that permits it."""
    if p.has(ADMIN) and p.org and org == p.org:
        return ADMIN
    return PARTNERSHIP_ADMIN if p.has(PARTNERSHIP_ADMIN) else ADMIN


def entry_orgs(entry: Mapping[str, Any]) -> set[str]:
    """The organisations an entry involves: the actor's and each recipient's (as indexed in `ledger_orgs`)."""
    actor = entry.get("actor") or {}
    recipients: Iterable[Any] = entry.get("recipients") or ()
    orgs = [actor.get("org"), *(r.get("org") for r in recipients if isinstance(r, Mapping))]
    return {o for o in orgs if isinstance(o, str) and o}


def may_see_entry(p: Principal, entry: Mapping[str, Any]) -> bool:
    """Whether `p` may read one ledger entry (the receipt route).

    Auditors: entries involving their organisation (partnership auditors: all). Anyone else: entries they
    made *in a role they hold now* (same subject, issuer and role: a recipient token that happens to carry a
    practitioner's `sub` does not read that practitioner's entries), or, as a recipient, entries naming them.
    """
    if p.has(PARTNERSHIP_AUDITOR):
        return True
    if p.has(AUDITOR) and p.org and p.org in entry_orgs(entry):
        return True
    actor = entry.get("actor") or {}
    if actor.get("sub") == p.sub and actor.get("iss") == p.issuer and actor.get("role") in p.roles:
        return True
    recipients: Iterable[Any] = entry.get("recipients") or ()
    return p.has("recipient") and any(isinstance(r, Mapping) and r.get("id") == p.sub for r in recipients)
