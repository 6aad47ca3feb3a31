"""The extension's unit tests (adapters against saved webmail pages, MIME packaging, the golden-rules form
model, the gateway client, the recipient's keyring and mail view) run with Node's built-in test runner, as
part of the normal test command. The keyring and mail-view tests import the bundled libraries, so the
extension is built first.

Node runs every file once per pytest session (its own runner, one child process per file); each
`extension/test/*.test.mjs` file is one pytest item, and each `test()` case in it one pytest subtest, so a
failing case is reported by its own name and the closing line counts the JS cases ("N subtests passed")."""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import require_tool
from tests.extension_build import ensure_built

EXTENSION_TESTS = Path(__file__).resolve().parents[1] / "extension" / "test"
REPORTER = Path(__file__).resolve().parent / "node_test_reporter.mjs"
FILES = sorted(EXTENSION_TESTS.glob("*.test.mjs"))


@dataclass(frozen=True)
class NodeRun:
    returncode: int
    cases: list[dict[str, Any]]
    stderr: dict[str, str]
    output: str


@pytest.fixture(scope="session")
def node_run() -> NodeRun:
    """All the extension's `node --test` files, run once; one record per finished case (see the reporter)."""
    node = require_tool("node")
    ensure_built()
    r = subprocess.run(
        [node, "--test", f"--test-reporter={REPORTER}", *map(str, FILES)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    records = [json.loads(line) for line in r.stdout.splitlines() if line.startswith("{")]
    stderr: dict[str, str] = {}
    for rec in records:
        if "stderr" in rec:
            stderr[rec["file"]] = stderr.get(rec["file"], "") + rec["stderr"]
    cases = [rec for rec in records if "stderr" not in rec]
    return NodeRun(r.returncode, cases, stderr, r.stdout[-4000:] + r.stderr[-4000:])


def test_node_ran_every_file(node_run: NodeRun) -> None:
    """Every test file reported its cases, nothing came from elsewhere, and node's exit status agrees."""
    assert len(FILES) >= 9, f"extension tests missing from {EXTENSION_TESTS}: {FILES}"
    reported = {c["file"] for c in node_run.cases}
    assert reported == set(map(str, FILES)), f"files: {sorted(map(str, reported))}\n{node_run.output}"
    failed = [c["name"] for c in node_run.cases if not c["passed"]]
    assert (node_run.returncode == 0) == (not failed), (
        f"node --test exited {node_run.returncode}; failed cases {failed}:\n{node_run.output}"
    )


@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_extension_js(path: Path, node_run: NodeRun, subtests: pytest.Subtests) -> None:
    cases = [c for c in node_run.cases if c["file"] == str(path)]
    assert cases, f"node reported no test case from {path.name}:\n{node_run.output}"
    for case in cases:
        # A case inside a describe()/test() is indented by its nesting.
        with subtests.test(msg="  " * case["nesting"] + case["name"]):
            if case["skip"] is not None or case["todo"] is not None:
                pytest.skip(f"node: {case['skip'] or case['todo'] or 'skipped'}")
            assert case["passed"], f"{case['error']}\n{node_run.stderr.get(str(path), '')[-3000:]}"
