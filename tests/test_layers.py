"""The layer rules of ARCHITECTURE.md, checked on the source: every `import` (at any depth, relative ones
resolved) of every module in gateway/. A rule broken here is a design change to agree on first, then to
write down in ARCHITECTURE.md together with the changed rule."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

GATEWAY = Path(__file__).resolve().parents[1] / "gateway"

#: I/O and the event loop: what the pure core never touches.
IO = ("aiohttp", "aiosqlite", "sqlite3", "asyncio", "asyncpg", "socket", "subprocess", "urllib", "http", "threading")

#: Pure modules: domain rules and formats, no I/O, and no gateway module outside their own group.
PURE: dict[str, tuple[str, ...]] = {
    "gateway.justification": (),
    "gateway.envelope": (),
    "gateway.encoding": (),
    "gateway.ledger.merkle": (),
    "gateway.ledger.entry": ("gateway.ledger",),
    "gateway.ledger.checkpoint": (),
    "gateway.ledger.signer": ("gateway.ledger",),
    "gateway.ledger.verify": ("gateway.ledger",),
    "gateway.ledger.witness": ("gateway.ledger",),
    "gateway.store.models": (),
    "gateway.store.audit": (),
    "gateway.refusals": (),
    "gateway.disclosure": ("gateway.justification",),
    "gateway.inputs": ("gateway.refusals",),
    "gateway.emergency": ("gateway.justification",),
    "gateway.reconsider": ("gateway.justification",),
    "gateway.retention": ("gateway.justification",),
    "gateway.standard_answers": ("gateway.inputs", "gateway.justification"),
    "gateway.agreements": (
        "gateway.inputs",
        "gateway.justification",
        "gateway.standard_answers",
        "gateway.store.models",
    ),
    "gateway.audit_report": (
        "gateway.agreements",
        "gateway.encoding",
        "gateway.disclosure",
        "gateway.justification",
        "gateway.store.models",
    ),
}


def module_name(path: Path) -> str:
    parts = path.relative_to(GATEWAY.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(GATEWAY.rglob("*.py"))}


def imports(name: str) -> set[str]:
    """Every module `name` imports (`from x import y` counts as x and x.y: y may be a module)."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return {m for m in found if m != "__future__"}


def within(module: str, prefixes: tuple[str, ...] | str) -> bool:
    prefixes = (prefixes,) if isinstance(prefixes, str) else prefixes
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def ours(modules: set[str]) -> set[str]:
    """The gateway modules among `modules` (a `from x import name` that is not a module is dropped)."""
    return {m for m in modules if m in MODULES}


def test_the_rules_see_every_module() -> None:
    assert set(PURE) <= set(MODULES)
    assert {"gateway.app", "gateway.cli", "gateway.service", "gateway.store.sqlite"} <= set(MODULES)
    assert "gateway.store.protocol" in imports("gateway.service")  # the resolver does resolve relative imports


@pytest.mark.parametrize("name", sorted(PURE))
def test_pure_modules_do_no_io_and_stay_in_their_layer(name: str) -> None:
    found = imports(name)
    assert not {m for m in found if within(m, IO)}, f"{name} imports I/O"
    allowed = PURE[name]
    outside = {m for m in ours(found) if not within(m, allowed)}
    assert not outside, f"{name} imports {sorted(outside)}; it may import only {allowed or 'no gateway module'}"


@pytest.mark.parametrize("name", sorted(m for m in MODULES if within(m, "gateway.store")))
def test_the_store_knows_nothing_above_it(name: str) -> None:
    """The store persists what the use cases decide: it never imports them, HTTP or the configuration."""
    above = {m for m in ours(imports(name)) if not within(m, ("gateway.store", "gateway.ledger"))}
    assert not above, f"{name} imports {sorted(above)}"
    assert "aiohttp" not in {m.split(".")[0] for m in imports(name)}


@pytest.mark.parametrize("name", sorted(m for m in MODULES if within(m, "gateway.api")))
def test_handlers_never_open_the_sqlite_store_directly(name: str) -> None:
    """Handlers reach the store through the Gateway object (issue 11 moves `store.queries` behind it too)."""
    assert not {m for m in imports(name) if within(m, ("gateway.store.sqlite", "sqlite3", "aiosqlite"))}


#: The backends' own modules: only `gateway/store/` (the factory in `store/__init__.py`, and each backend itself)
#: may import them; everything above names only `store.protocol` and the value types.
BACKENDS = ("gateway.store.sqlite", "gateway.store.postgres")
#: Database drivers: a module above the store that imported one would know which database it is.
DRIVERS = ("sqlite3", "aiosqlite", "asyncpg")


@pytest.mark.parametrize("name", sorted(m for m in MODULES if not within(m, "gateway.store")))
def test_nothing_above_the_store_knows_which_database_it_is(name: str) -> None:
    """Issue 11: use cases, handlers, the app and the CLI reach persistence through `store.protocol.Store`."""
    found = imports(name)
    assert not {m for m in found if within(m, BACKENDS)}, f"{name} imports a store backend"
    allowed_driver = {"gateway.storage_health": ("sqlite3",)}.get(name, ())  # recognises SQLite's "disk full"
    drivers = {m for m in found if within(m, DRIVERS) and not within(m, allowed_driver)}
    assert not drivers, f"{name} imports a database driver: {sorted(drivers)}"


@pytest.mark.parametrize("name", sorted(MODULES))
def test_only_the_composition_root_wires_http(name: str) -> None:
    """`api/` is reached only through `app`, `app` only from `cli`; nothing imports `cli`."""
    found = ours(imports(name))
    if not within(name, ("gateway.api", "gateway.app")):
        assert not {m for m in found if within(m, "gateway.api")}, f"{name} imports the HTTP handlers"
    if name != "gateway.cli":
        assert "gateway.app" not in found or within(name, "gateway.app"), f"{name} imports gateway.app"
    assert "gateway.cli" not in found, f"{name} imports gateway.cli"


USE_CASES = (
    "gateway.service",
    "gateway.directory",
    "gateway.holding",
    "gateway.partnership",
    "gateway.tenancy",
    "gateway.transparency",
    "gateway.audit",
    "gateway.emergencies",
    "gateway.reconsideration",
    "gateway.advice",
    "gateway.dual_control",
    "gateway.retention_review",
)


@pytest.mark.parametrize("name", USE_CASES)
def test_use_cases_speak_no_http_themselves(name: str) -> None:
    """The use cases import no aiohttp and refuse with `refusals.Refusal`, never the HTTP layer's `errors`
    (whose `REFUSAL_STATUS` is the one place a refusal's kind becomes a status)."""
    assert "aiohttp" not in {m.split(".")[0] for m in imports(name)}
    assert not {m for m in ours(imports(name)) if within(m, ("gateway.api", "gateway.app", "gateway.errors"))}
