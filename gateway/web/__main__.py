"""`python -m gateway.web`: write the console's copy of the subject report's CSS, then rewrite the Subresource
Integrity attributes of the gateway's own pages."""

from __future__ import annotations

from pathlib import Path

from ..audit_report import REPORT_CSS
from . import write_integrity

if __name__ == "__main__":
    here = Path(__file__).resolve().parent
    # The console styles the report the API serves with the same CSS, so both print alike (tests/test_console_page).
    report_css = here / "console" / "report.css"
    if not report_css.exists() or report_css.read_text(encoding="utf-8") != REPORT_CSS:
        report_css.write_text(REPORT_CSS, encoding="utf-8")
        print("updated console/report.css")
    for site in sorted(p for p in here.iterdir() if p.is_dir() and not p.name.startswith("_")):
        for page in write_integrity(site):
            print(f"updated {site.name}/{page}")
