"""The long schemathesis run (issue 9): 10,000+ generated requests against a real `safeshare serve`.

    PYTHONPATH=$PWD python bench/schemathesis_long.py [--requests 10000] [--minutes 45] [--examples 10]

Rounds of `--examples` cases per (operation, positive/negative, generated/seeded path parameters), each sent
with no token and with a token for every role, with a new seed per round, until `--requests` have been sent
(a round is always finished) or `--minutes` pass. Prints the figures as JSON and the first failures of each
kind; exits 1 on any 5xx, response that disagrees with the OpenAPI document, or request-validation
disagreement not explained by a rule the document states in prose (tests/test_schemathesis.py). Not
collected by pytest; CI runs it on demand. The bounded sample in the normal test run is tests/test_schemathesis.py.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.fuzz_schemathesis import Tally, exercise, gateway
from tests.test_schemathesis import KNOWN_PROSE_RULES


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--requests", type=int, default=10_000)
    ap.add_argument("--minutes", type=float, default=45.0)
    ap.add_argument("--examples", type=int, default=10)
    args = ap.parse_args()
    deadline = time.monotonic() + args.minutes * 60
    total = Tally()
    rounds = 0
    with tempfile.TemporaryDirectory() as tmp, gateway(Path(tmp) / "home", Path(tmp) / "server.log") as world:
        while total.requests < args.requests and time.monotonic() < deadline:
            tally = exercise(world, examples=args.examples, seed=rounds, deadline=deadline)
            rounds += 1
            total.requests += tally.requests
            total.seconds += tally.seconds
            total.statuses += tally.statuses
            total.counts += tally.counts
            for kind, found in tally.failures.items():
                kept = total.failures.setdefault(kind, [])
                kept += found
            print(f"round {rounds}: {tally.summary()}", file=sys.stderr, flush=True)
        log = (Path(tmp) / "server.log").read_text(errors="replace")
    summary = {**total.summary(), "rounds": rounds, "statuses": dict(sorted(Counter(total.statuses).items()))}
    # The gateway logs an unexpected exception by type and route only: say which ones the 5xx were.
    unexpected = Counter(line.split(" ERROR ", 1)[-1] for line in log.splitlines() if "unexpected" in line)
    summary["server_log_unexpected"] = dict(unexpected)
    unexplained = [
        f
        for kind in ("positive_rejected", "negative_accepted")
        for f in total.failures.get(kind, [])
        if not any(rule.search(f) for rule in KNOWN_PROSE_RULES)
    ]
    summary["request_validation_unexplained"] = len(unexplained)
    total.failures["request_validation_unexplained"] = unexplained
    print(json.dumps(summary, indent=2))
    for kind, found in total.failures.items():
        print(f"\n== {kind}: {total.counts[kind]}")
        for line in found[:20]:
            print("  ", line)
    return 1 if summary["server_error"] or summary["response_mismatch"] or unexplained else 0


if __name__ == "__main__":
    raise SystemExit(main())
