"""Kill -9 under load: a real `safeshare serve` SIGKILLed while concurrent shares are being written, restarted on
the same home, then checked: every acknowledged share opens (fetched and decrypted with pyrage), nothing is
half-written, `ledger verify` passes and `/healthz` is 200. A few trials here; `bench/kill_loop.py --trials N`
runs as many as wanted (CI can run it on demand)."""

from __future__ import annotations

import time
from pathlib import Path

from bench.kill_loop import run


def test_acknowledged_shares_survive_kill_9(tmp_path: Path) -> None:
    t = time.monotonic()
    stats = run(tmp_path / "home", trials=3, workers=6, min_run=0.3, max_run=1.0)
    assert stats.problems == []
    assert stats.trials == 3
    assert stats.lost == 0
    assert stats.acknowledged > 0  # shares were really committed and acknowledged before each kill
    assert stats.in_flight_at_kill > 0  # and the kill really cut requests off mid-way
    assert time.monotonic() - t < 120
