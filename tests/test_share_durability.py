"""Envelope directories are made durable once per group commit, before it commits (issue 15: speed).

These are a large share's envelopes: a small share's are rows of its own transaction on SQLite
(gateway/store/sqlite/envelopes.py), made durable by the commit itself.

If that fsync fails, every share of the batch fails as a whole: nothing recorded, no envelope left behind,
and a full disk is still reported as such (507)."""

from __future__ import annotations

import asyncio
import errno
import os
from pathlib import Path
from typing import Any

import pytest

from gateway.store import files
from gateway.store.sqlite.envelopes import INLINE_LIMIT
from tests.conftest import Api


async def test_directory_fsyncs_run_before_commit_and_a_failure_aborts_the_share(
    api: Api, alice: Any, share_justification: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    if api.gateway.settings.envelopes_in_database:
        pytest.skip("envelope files' fsyncs; in PostgreSQL the chunks commit before the share (test_store_contract)")
    await api.add_recipient("alice", alice)
    root = api.gateway.settings.envelopes_dir
    synced: list[str] = []
    real = files._fsync_dir

    def watching(path: Path) -> None:
        synced.append(Path(path).name)
        real(path)

    monkeypatch.setattr(files, "_fsync_dir", watching)
    results = await asyncio.gather(
        *(api.share(b"x" * (INLINE_LIMIT + 1), ["alice"], share_justification) for _ in range(8))
    )
    assert all(r.status == 201 for r in results)
    ids = {(await r.json())["share_id"] for r in results}
    assert ids <= set(synced)  # each share's directory was synced
    assert synced.count(Path(root).name) <= len(ids)  # the root: once per group commit, at most once per share

    def failing(path: Path) -> None:
        if Path(path).parent == Path(root) and Path(path).name != files.TMP_DIR:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real(path)

    monkeypatch.setattr(files, "_fsync_dir", failing)
    before = len(await api.ledger(kind="share"))
    r = await api.share(b"y" * (INLINE_LIMIT + 1), ["alice"], share_justification)
    assert r.status == 507 and (await r.json())["error"] == "storage_full"
    assert len(await api.ledger(kind="share")) == before
    left = {name for name in await asyncio.to_thread(os.listdir, root) if not name.startswith(".")}
    assert left == ids  # the failed share's directory was removed
