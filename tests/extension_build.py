"""Build the extension's bundled libraries (extension/vendor/: age, MIME parsing, HTML sanitising, and the
GOV.UK Design System's styles) before a
test loads the extension, so `python -m pytest -q` works on a fresh clone.

The same two commands a developer runs (`npm --prefix extension ci && npm --prefix extension run build`),
each only when its output is missing or older than its inputs; a file lock keeps concurrent test runs on
one checkout from installing or building over each other."""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterable
from pathlib import Path

import pytest

EXTENSION = Path(__file__).resolve().parents[1] / "extension"
VENDOR = EXTENSION / "vendor"
LOCK_FILE = EXTENSION / "package-lock.json"
#: npm writes this after every install; its age tells whether node_modules matches the lock file.
INSTALLED_MARKER = EXTENSION / "node_modules" / ".package-lock.json"


def _missing(what: str, how: str) -> None:
    """Skip locally, fail in CI (where .ci/run installs the tool)."""
    if os.environ.get("CI"):
        pytest.fail(f"{what} is not installed; .ci/run should have installed it ({how})")
    pytest.skip(f"{what} is not installed ({how})")


def _mtime(path: Path) -> float:
    return path.stat().st_mtime if path.exists() else 0.0


def _newest(paths: Iterable[Path]) -> float:
    return max((_mtime(p) for p in paths), default=0.0)


def vendor_outputs() -> list[Path]:
    """One bundle per vendor-src/ entry, as build.mjs writes them (NAME.js as is, NAME.scss as NAME.min.css)."""
    src = EXTENSION / "vendor-src"
    return [VENDOR / p.name for p in sorted(src.glob("*.js"))] + [
        VENDOR / f"{p.stem}.min.css" for p in sorted(src.glob("*.scss"))
    ]


def _needs_install() -> bool:
    return not INSTALLED_MARKER.exists() or _mtime(INSTALLED_MARKER) < _newest([LOCK_FILE, EXTENSION / "package.json"])


def _needs_build() -> bool:
    outputs = vendor_outputs()
    if not outputs or not all(p.exists() for p in outputs):
        return True
    inputs = [
        EXTENSION / "build.mjs",
        INSTALLED_MARKER,
        *(EXTENSION / "vendor-src").glob("*.js"),
        *(EXTENSION / "vendor-src").glob("*.scss"),
    ]
    return min(_mtime(p) for p in outputs) < _newest(inputs)


def _run(npm: str, *args: str) -> None:
    r = subprocess.run(
        [npm, "--prefix", str(EXTENSION), *args], capture_output=True, text=True, timeout=600, check=False
    )
    if r.returncode != 0:
        pytest.fail(f"`npm {' '.join(args)}` failed in {EXTENSION}:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}")


def ensure_built() -> Path:
    """The extension folder, with node_modules installed from the lock file and vendor/ built from it.

    `npm ci` runs with --ignore-scripts: esbuild's platform binary comes as an ordinary dependency, and no
    package needs an install script, so none is run."""
    if shutil.which("node") is None:
        _missing("node", "apt-get install -y nodejs")
    npm = shutil.which("npm")
    if npm is None:
        _missing("npm", "apt-get install -y npm")
    assert npm is not None
    key = hashlib.sha256(str(EXTENSION).encode()).hexdigest()[:16]
    lock_path = Path(tempfile.gettempdir()) / f"safeshare-extension-build-{key}.lock"
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if _needs_install():
                _run(npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund")
                INSTALLED_MARKER.touch()
            if _needs_build():
                _run(npm, "run", "build")
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    missing = [str(p) for p in vendor_outputs() if not p.exists()]
    assert not missing, f"the extension build did not produce {missing}"
    return EXTENSION
