"""The extension's unit tests (adapters against saved webmail pages, MIME packaging, the golden-rules form
model, the gateway client, the recipient's keyring and mail view) run with Node's built-in test runner, as
part of the normal test command. The keyring and mail-view tests import the bundled libraries, so the
extension is built first."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.conftest import require_tool
from tests.extension_build import ensure_built

EXTENSION_TESTS = Path(__file__).resolve().parents[1] / "extension" / "test"


def test_extension_unit_tests_pass() -> None:
    node = require_tool("node")
    ensure_built()
    files = sorted(str(p) for p in EXTENSION_TESTS.glob("*.test.mjs"))
    assert files, "no extension tests found"
    r = subprocess.run([node, "--test", "--test-reporter=tap", *files], capture_output=True, text=True, timeout=300)
    summary = [line for line in r.stdout.splitlines() if line.startswith(("# pass", "# fail", "not ok"))]
    assert r.returncode == 0, "\n".join(summary) + "\n" + r.stdout[-4000:] + r.stderr[-2000:]
    assert "# fail 0" in r.stdout and "# pass 0" not in r.stdout
