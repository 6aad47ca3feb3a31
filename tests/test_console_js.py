"""The console's chart data (gateway/web/console/charts.js) in Node: the policies' words for codes, a nice value
axis, and the CSV (every chart's series by month, then each organisation's decisions)."""

from __future__ import annotations

import csv
import io
import json
import shutil
import subprocess
from pathlib import Path

import pytest

CHARTS = Path(__file__).resolve().parents[1] / "gateway" / "web" / "console" / "charts.js"

SCRIPT = """
const m = await import(process.argv[1]);
const stats = {months: [
  {month: "2026-11", shares: 3, decisions_not_to_share: 1, not_shared_despite_risk: 1, disclosures_elsewhere: 0,
   shares_later_revoked: 1, emergency_shares_not_completed: 0, purpose: {referral: 3, "=cmd": 1},
   article_6: {public_task: 4}, org: {"hereford-primary": 3, "far-away": 1}},
  {month: "2026-12", shares: 1, decisions_not_to_share: 0, not_shared_despite_risk: 0, disclosures_elsewhere: 2,
   shares_later_revoked: 0, emergency_shares_not_completed: 1, purpose: {referral: 1}, article_6: {},
   org: {"hereford-primary": 1}},
]};
const words = {
  purpose: (c) => c === "referral" ? "Referral" : c,
  article_6: (c) => c === "public_task" ? "Public task" : c,
};
const specs = m.chartSpecs(stats, words);
console.log(JSON.stringify({
  specs: specs.map((s) => ({id: s.id, categories: s.categories, series: s.series})),
  csv: m.statsCsv(stats, words, {"hereford-primary": "Hereford Primary School"}),
  scales: [0, 1, 7, 23, 180].map((x) => m.niceScale(x)),
}));
"""


@pytest.fixture(scope="module")
def result() -> dict:  # type: ignore[type-arg]
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    r = subprocess.run(
        [node, "--input-type=module", "-e", SCRIPT, str(CHARTS)], capture_output=True, text=True, timeout=60
    )
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_charts_speak_the_policies_words(result: dict) -> None:  # type: ignore[type-arg]
    by_id = {s["id"]: s for s in result["specs"]}
    assert by_id["chart-decisions"]["categories"] == ["Nov 2026", "Dec 2026"]
    assert [s["name"] for s in by_id["chart-purpose"]["series"]] == ["Referral", "=cmd"]
    assert by_id["chart-purpose"]["series"][0]["values"] == [3, 1]
    assert [s["name"] for s in by_id["chart-basis"]["series"]] == ["Public task"]
    revoked = {s["name"]: s["values"] for s in by_id["chart-revoked"]["series"]}
    assert revoked == {"Shares later revoked": [1, 0], "Emergency shares never downloaded": [0, 1]}


def test_csv_has_every_series_by_month(result: dict) -> None:  # type: ignore[type-arg]
    lines = result["csv"].split("\r\n")
    # Headings with commas are quoted; a code is only ever inside a heading, never at the start of a cell.
    assert lines[0].split(",")[0] == "month" and '"Shares and decisions not to share, by month: Shared' in lines[0]
    assert '"Decisions by purpose, by month: =cmd"' in lines[0]
    assert lines[1].startswith("2026-11,3,1,1,0,") and lines[2].startswith("2026-12,1,0,0,2,")
    assert lines[-1] == ""


def test_csv_names_each_organisation_beside_its_id(result: dict) -> None:  # type: ignore[type-arg]
    """Issue 13: a column per deciding organisation, named where the console knows the name (the auditor's own,
    from GET /api/v1/ledger/people), the ID kept beside it; the ID alone otherwise."""
    rows = list(csv.reader(io.StringIO(result["csv"])))
    header = rows[0]
    named = header.index("Decisions by organisation: Hereford Primary School (hereford-primary)")
    plain = header.index("Decisions by organisation: far-away")
    assert [(r[named], r[plain]) for r in rows[1:3]] == [("3", "1"), ("1", "0")]


def test_value_axis_is_nice(result: dict) -> None:  # type: ignore[type-arg]
    assert result["scales"] == [
        {"top": 1, "step": 1},
        {"top": 1, "step": 1},
        {"top": 8, "step": 2},
        {"top": 30, "step": 10},
        {"top": 200, "step": 50},
    ]
