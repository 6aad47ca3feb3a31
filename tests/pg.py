"""PostgreSQL for the tests: a database of its own per test (created, then dropped with everything in it).

`SAFESHARE_TEST_PG_DSN` names the server (default: the local one, trust auth, user postgres). Without a
reachable server the PostgreSQL tests skip and say why; in CI (`.ci/run` starts the server and exports the DSN)
an unreachable server is a failure, so the tests cannot silently stop running.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

PG_DSN = os.environ.get("SAFESHARE_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")


def with_database(dsn: str, name: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))


async def require_pg() -> None:
    try:
        conn = await asyncpg.connect(PG_DSN, timeout=3)
    except (OSError, asyncpg.PostgresError) as exc:
        reason = f"PostgreSQL is not reachable at {PG_DSN} ({type(exc).__name__}); set SAFESHARE_TEST_PG_DSN"
        if os.environ.get("CI") and os.environ.get("SAFESHARE_TEST_PG_DSN"):
            pytest.fail(reason)
        pytest.skip(reason)
    await conn.close()


@contextlib.asynccontextmanager
async def fresh_database() -> AsyncIterator[str]:
    """A new empty database; yields its DSN and drops it afterwards (closing whatever is still connected)."""
    await require_pg()
    name = "safeshare_test_" + uuid.uuid4().hex[:16]
    admin = await asyncpg.connect(PG_DSN)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    try:
        yield with_database(PG_DSN, name)
    finally:
        admin = await asyncpg.connect(PG_DSN)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


@contextlib.contextmanager
def database_for_sync_fixture() -> Iterator[str]:
    """`fresh_database` for a synchronous fixture (run on a loop of its own in a thread)."""
    import asyncio
    import concurrent.futures

    cm = fresh_database()
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        loop = asyncio.new_event_loop()
        try:
            dsn = pool.submit(loop.run_until_complete, cm.__aenter__()).result()
            try:
                yield dsn
            finally:
                pool.submit(loop.run_until_complete, cm.__aexit__(None, None, None)).result()
        finally:
            pool.submit(loop.close).result()


def backend() -> str:
    """`SAFESHARE_TEST_BACKEND=postgres` runs the API tests' gateway (tests/conftest.py `settings`) on PostgreSQL."""
    return os.environ.get("SAFESHARE_TEST_BACKEND", "sqlite")


def query_sync(dsn: str, sql: str) -> list[tuple[object, ...]]:
    """Run one read query from synchronous test code (a loop of its own, in a thread)."""
    import asyncio
    import concurrent.futures

    async def run() -> list[tuple[object, ...]]:
        conn = await asyncpg.connect(dsn)
        try:
            return [tuple(r) for r in await conn.fetch(sql)]
        finally:
            await conn.close()

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, run()).result()


def append_as_before_ledger_words(monkeypatch: pytest.MonkeyPatch) -> None:
    """The PostgreSQL append as the code wrote it before schema step 7 (no `ledger_words` rows), for tests that
    make a database at an older step with today's code."""
    from gateway.store.postgres import ledger as pg_ledger

    assert pg_ledger.WORDS_CTE in pg_ledger._APPEND_SQL
    monkeypatch.setattr(pg_ledger, "_APPEND_SQL", pg_ledger._APPEND_SQL.replace(pg_ledger.WORDS_CTE, ""))
