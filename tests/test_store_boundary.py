"""Issue 11, first half: the store boundary — choosing a database by URL, versioned migrations that refuse a newer
schema, a writer that survives the database failing under it (real SQLite faults, no mocks), /healthz that says
so, and key files that a crash cannot leave half-written."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import sqlite3
from pathlib import Path

import pytest

from gateway import cli, envelope
from gateway.config import Settings
from gateway.home import init_home
from gateway.keyfiles import EmptyKeyFile, create_exclusive, load_or_create
from gateway.storage_health import is_storage_full
from gateway.store import UnknownDatabase, migrate, open_store, sqlite_path
from gateway.store.migrations import Step, pending
from gateway.store.models import SchemaTooNew, StoreError, StoreUnavailable
from gateway.store.sqlite import SCHEMA_VERSION, SQLiteStore
from gateway.store.sqlite.schema import STEPS
from tests.conftest import Api, example

ENTRY = {"kind": "decision", "time": "2026-01-01T00:00:00.000Z"}


def versions(db: Path) -> list[int]:
    with sqlite3.connect(db) as conn:
        return [int(r[0]) for r in conn.execute("SELECT version FROM schema_version ORDER BY version")]


# -- choosing the database -----------------------------------------------------------------------------------


def test_sqlite_urls_and_plain_paths_name_a_file(tmp_path: Path) -> None:
    assert sqlite_path("sqlite:///var/lib/safeshare/db.sqlite3") == Path("/var/lib/safeshare/db.sqlite3")
    assert sqlite_path("sqlite:////var/lib/db.sqlite3") == Path("/var/lib/db.sqlite3")
    assert sqlite_path("sqlite://data/db.sqlite3") == Path("data/db.sqlite3")
    assert sqlite_path(str(tmp_path / "x.sqlite3")) == tmp_path / "x.sqlite3"
    assert sqlite_path("postgresql://db.example/safeshare") is None


async def test_an_unknown_scheme_is_a_clear_error() -> None:
    with pytest.raises(UnknownDatabase, match="unknown database scheme 'mysql'"):
        await open_store("mysql://db.example/safeshare")


@pytest.mark.skipif(
    importlib.util.find_spec("gateway.store.postgres") is not None, reason="this gateway has a PostgreSQL store"
)
async def test_postgresql_without_its_backend_is_a_clear_error() -> None:
    with pytest.raises(UnknownDatabase, match="no PostgreSQL store"):
        await open_store("postgresql://user:secret@db.example/safeshare")


# -- migrations ----------------------------------------------------------------------------------------------


def test_steps_are_numbered_without_gaps_and_newer_is_refused() -> None:
    assert [s.version for s in STEPS] == list(range(1, SCHEMA_VERSION + 1))
    steps = [Step(1, "a", print), Step(2, "b", print)]
    assert [s.version for s in pending(steps, 0)] == [1, 2]
    assert [s.version for s in pending(steps, 1)] == [2]
    assert pending(steps, 2) == []
    with pytest.raises(SchemaTooNew, match="newer than this SafeShare knows"):
        pending(steps, 3)
    with pytest.raises(StoreError, match="numbered 1, 2, 3"):
        pending([Step(1, "a", print), Step(3, "c", print)], 0)


def test_a_new_database_runs_every_step_once(tmp_path: Path) -> None:
    db = tmp_path / "db.sqlite3"
    assert migrate(f"sqlite://{db}") == (0, SCHEMA_VERSION)
    assert versions(db) == list(range(1, SCHEMA_VERSION + 1))
    assert migrate(f"sqlite://{db}") == (SCHEMA_VERSION, SCHEMA_VERSION)  # nothing to do the second time
    assert versions(db) == list(range(1, SCHEMA_VERSION + 1))


def test_a_schema_3_database_from_before_the_version_table_is_migrated(tmp_path: Path) -> None:
    db = tmp_path / "db.sqlite3"
    migrate(str(db))
    with sqlite3.connect(db) as conn:  # as the previous release left it: version 3 in user_version only
        conn.execute("DROP TABLE schema_version")
        conn.execute("DROP TABLE store_probe")
        conn.execute("PRAGMA user_version=3")
        # Columns were added at every start without a new number then: a file marked 3 may lack the later ones.
        conn.execute("ALTER TABLE share_recipients DROP COLUMN last_downloaded_at")
    assert migrate(str(db)) == (3, SCHEMA_VERSION)
    assert versions(db) == list(range(4, SCHEMA_VERSION + 1))
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION  # an older release refuses it
        assert "last_downloaded_at" in {r[1] for r in conn.execute("PRAGMA table_info(share_recipients)")}


def test_a_newer_schema_is_refused_at_start_up_and_by_migrate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home = tmp_path / "home"
    assert cli.main(["--home", str(home), "init"]) == 0
    db = home / "data" / "safeshare.sqlite3"
    with sqlite3.connect(db) as conn:
        conn.execute(
            "INSERT INTO schema_version VALUES (?, 'from the future', '2030-01-01T00:00:00Z')", (SCHEMA_VERSION + 1,)
        )
    with pytest.raises(SchemaTooNew):
        asyncio.run(open_store(str(db)))
    capsys.readouterr()
    for command in (["migrate"], ["serve", "--port", "0"], ["recipient", "list"]):
        assert cli.main(["--home", str(home), *command]) == 1, command
        err = capsys.readouterr().err
        assert f"schema version {SCHEMA_VERSION + 1}, newer than this SafeShare knows ({SCHEMA_VERSION})" in err
        assert "Traceback" not in err


def test_safeshare_migrate_says_what_it_did(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    home, db = tmp_path / "home", tmp_path / "elsewhere" / "gateway.sqlite3"
    assert cli.main(["--home", str(home), "migrate", "--database", f"sqlite://{db}"]) == 0
    assert f"schema migrated from version 0 to {SCHEMA_VERSION}" in capsys.readouterr().out
    assert cli.main(["--home", str(home), "--database", str(db), "migrate"]) == 0
    assert f"schema version {SCHEMA_VERSION}, up to date" in capsys.readouterr().out
    assert not (home / "data" / "safeshare.sqlite3").exists()  # the database given, not the home's


# -- --database and SAFESHARE_DATABASE on the commands that open the store -------------------------------------


def test_database_option_and_environment_choose_the_store(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    home, db = tmp_path / "home", tmp_path / "shared" / "safeshare.sqlite3"
    add = ["recipient", "add", "ann", "--name", "Ann", "--org", "Org", "--email", "ann@example.org"]
    assert cli.main(["--home", str(home), "init", "--database", f"sqlite://{db}"]) == 0
    assert db.exists() and not (home / "data" / "safeshare.sqlite3").exists()
    key = str(envelope.X25519Identity.generate().recipient())
    assert cli.main(["--home", str(home), *add, "--age-recipient", key, "--database", str(db)]) == 0
    capsys.readouterr()
    monkeypatch.setenv("SAFESHARE_DATABASE", f"sqlite://{db}")
    assert cli.main(["--home", str(home), "recipient", "list", "--json"]) == 0
    assert [r["id"] for r in json.loads(capsys.readouterr().out)] == ["ann"]
    # ledger verify reads the same database through the store's snapshot: one entry, nothing signed yet.
    assert cli.main(["--home", str(home), "ledger", "verify"]) == 3
    assert "1 entries consistent" in capsys.readouterr().out
    monkeypatch.delenv("SAFESHARE_DATABASE")
    # Unset: the home's own SQLite file, which has no recipient.
    assert cli.main(["--home", str(home), "recipient", "list", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []


# -- the writer survives the database failing under it ------------------------------------------------------


def _fill_to_the_limit(store: SQLiteStore) -> None:
    """SQLite's own fault: the writer's connection may not grow the file past its current size.

    VACUUM first: free pages inside the file (left by a migration that drops an index) would take a write
    without growing it."""
    conn = store._writer._conn
    conn.execute("VACUUM")
    assert int(conn.execute("PRAGMA freelist_count").fetchone()[0]) == 0
    pages = int(conn.execute("PRAGMA page_count").fetchone()[0])
    conn.execute(f"PRAGMA max_page_count={pages}")


def _lift_the_limit(store: SQLiteStore) -> None:
    store._writer._conn.execute("PRAGMA max_page_count=1073741823")


async def test_a_full_database_fails_only_its_batch_and_the_writer_carries_on(tmp_path: Path) -> None:
    store = await SQLiteStore.open(tmp_path / "db.sqlite3")
    try:
        await store.record(ENTRY)
        assert await store.writable()
        _fill_to_the_limit(store)  # the writer is idle here: nothing else uses its connection
        big = {**ENTRY, "note": "x" * 60_000}  # needs new pages
        results = await asyncio.wait_for(
            asyncio.gather(*(store.record(big) for _ in range(3)), return_exceptions=True), 30
        )
        assert all(isinstance(r, StoreUnavailable) for r in results), results
        assert all(is_storage_full(r) for r in results)  # each caller is told why: HTTP answers 507 storage_full
        assert not await store.writable()  # the probe cannot grow the file either
        assert await store.tree_size() == 1  # nothing of the failed batch was recorded
        _lift_the_limit(store)
        assert await store.writable()  # the probe commits: healthy again without a restart
        assert await asyncio.wait_for(store.record(big), 10) == 1  # the same thread, still writing
        assert await store.tree_size() == 2
    finally:
        await store.close()


async def test_a_read_only_database_gives_store_unavailable_and_recovers(tmp_path: Path) -> None:
    store = await SQLiteStore.open(tmp_path / "db.sqlite3")
    try:
        store._writer._conn.execute("PRAGMA query_only=ON")  # every write now fails inside SQLite
        with pytest.raises(StoreUnavailable):
            await asyncio.wait_for(store.record(ENTRY), 10)
        assert not await store.writable()
        store._writer._conn.execute("PRAGMA query_only=OFF")
        assert await store.writable()
        assert await asyncio.wait_for(store.record(ENTRY), 10) == 0
    finally:
        await store.close()


async def test_http_answers_503_store_unavailable_and_healthz_follows(api: Api) -> None:
    gw = api.gateway
    assert isinstance(gw.store, SQLiteStore)
    headers = api.auth("pat", "practitioner")
    body = example("not-share")
    r = await api.client.post("/api/v1/decisions", json=body, headers=headers)
    assert r.status == 201, await r.text()
    gw.store._writer._conn.execute("PRAGMA query_only=ON")
    try:
        r = await api.client.post("/api/v1/decisions", json=body, headers=headers)
        assert r.status == 503, await r.text()
        err = await r.json()
        assert err["error"] == "store_unavailable" and int(r.headers["Retry-After"]) > 0
        assert "readonly" not in json.dumps(err)  # the database's own words stay in the log
        r = await api.client.get("/healthz")
        assert r.status == 503
        assert (await r.json())["reason"] == "store_unavailable" and "Retry-After" in r.headers
    finally:
        gw.store._writer._conn.execute("PRAGMA query_only=OFF")
    r = await api.client.get("/healthz")
    assert r.status == 200, await r.text()
    r = await api.client.post("/api/v1/decisions", json=body, headers=headers)
    assert r.status == 201, await r.text()


# -- key files -------------------------------------------------------------------------------------------------


def test_key_files_are_whole_or_absent(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "secret.key"
    assert create_exclusive(path, b"k" * 32)
    assert path.read_bytes() == b"k" * 32 and oct(path.stat().st_mode & 0o777) == "0o600"
    assert not create_exclusive(path, b"other")  # never replaced
    assert path.read_bytes() == b"k" * 32
    assert os.listdir(path.parent) == ["secret.key"]  # no temporary file left
    made: list[int] = []

    def make() -> bytes:
        made.append(1)
        return b"n" * 32

    assert load_or_create(tmp_path / "keys" / "new.key", make, bytes) == b"n" * 32
    assert load_or_create(tmp_path / "keys" / "new.key", make, bytes) == b"n" * 32
    assert made == [1]


def test_a_crash_leftover_temp_file_is_harmless(tmp_path: Path, settings: Settings) -> None:
    """A crash between writing the temporary file and linking it leaves only a dot-file: the next start creates
    the key as if nothing had happened."""
    settings.keys_dir.mkdir(parents=True)
    (settings.keys_dir / ".ledger-entry.hmac.0123456789abcdef.tmp").write_bytes(b"half")
    keys = init_home(settings)
    assert len(keys.ledger_mac_key) == 32


@pytest.mark.parametrize("name", ["ledger-entry.hmac", "holding.agekey", "ledger-signing.ed25519.pem"])
def test_an_empty_key_file_from_an_old_crash_says_what_to_do(
    settings: Settings, name: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.keys_dir.mkdir(parents=True)
    empty = settings.keys_dir / name
    empty.write_bytes(b"")
    with pytest.raises(EmptyKeyFile):
        init_home(settings)
    assert empty.read_bytes() == b""  # never replaced behind the operator's back
    monkeypatch.setenv("SAFESHARE_HOME", str(settings.home))
    assert cli.main(["init"]) == 1
    err = capsys.readouterr().err
    assert f"{empty} is empty" in err and f"rm {empty}" in err and "Traceback" not in err
    empty.unlink()  # what the message says to do
    assert cli.main(["init"]) == 0
