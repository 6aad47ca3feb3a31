"""The auditor's and administrator's console `/console/` as the gateway serves it: the same strict
Content-Security-Policy as `/open/` (no frames at all), Subresource Integrity on every script, style sheet and
imported module, only the shipped files, the extension's sign-in code reused byte for byte, and govuk-frontend
vendored without what is reserved for GOV.UK (the GDS Transport font and the crown)."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import re
from pathlib import Path
from typing import Any

from gateway.config import OIDCIssuerConfig
from gateway.web import load_site, module_graph, sri, sri_problems
from tests.conftest import Api

ROOT = Path(__file__).resolve().parents[1]
SITE = ROOT / "gateway" / "web" / "console"
EXTENSION = ROOT / "extension"


def directives(csp: str) -> dict[str, str]:
    return {d.split()[0]: " ".join(d.split()[1:]) for d in (x.strip() for x in csp.split(";")) if d}


async def test_console_is_served_with_a_strict_policy(api: Api) -> None:
    r = await api.client.get("/console/")
    assert r.status == 200 and r.content_type == "text/html"
    html = await r.text()
    csp = directives(r.headers["Content-Security-Policy"])
    [import_map] = re.findall(r'<script type="importmap">(.*?)</script>', html, re.DOTALL)
    map_hash = base64.b64encode(hashlib.sha256(import_map.encode()).digest()).decode()
    assert csp == {
        "default-src": "'none'",
        "script-src": f"'self' 'sha256-{map_hash}'",
        "style-src": "'self'",
        "img-src": "'self' data:",
        "connect-src": "'self'",
        "frame-src": "'none'",
        "frame-ancestors": "'none'",
        "base-uri": "'none'",
        "form-action": "'none'",
    }
    assert r.headers["X-Frame-Options"] == "DENY" and r.headers["Referrer-Policy"] == "no-referrer"
    assert re.findall(r"<script(?![^>]*\bsrc=)[^>]*>", html) == ['<script type="importmap">']
    assert re.search(r"\son[a-z]+=", html) is None and re.search(r"\sstyle=", html) is None
    assert "<style" not in html
    for path in ("app.js", "charts.js", "lib/oidc.js", "vendor/govuk-frontend.min.js", "console.css"):
        r = await api.client.get(f"/console/{path}")
        assert r.status == 200 and "Content-Security-Policy" in r.headers, path
    r = await api.client.get("/console", allow_redirects=False)
    assert r.status == 308 and r.headers["Location"] == "/console/"
    for path in ("/console/missing.js", "/console/../openapi.json", "/console/%2e%2e/app.py", "/console/lib/"):
        r = await api.client.get(path)
        assert r.status == 404 and (await r.json())["error"] == "not_found", path


async def test_sign_in_services_token_endpoints_are_the_only_other_connections(
    aiohttp_client: Any, settings: Any, keys: Any
) -> None:
    from gateway.app import create_app

    idp = OIDCIssuerConfig(
        issuer="https://login.example/tenant",
        audience="api://safeshare",
        jwks_url="https://login.example/keys",
        authorization_endpoint="https://login.example/authorize",
        token_endpoint="https://tokens.example:8443/token",
        client_id="safeshare",
    )
    client = await aiohttp_client(create_app(dataclasses.replace(settings, oidc=(idp,)), keys))
    csp = directives((await client.get("/console/")).headers["Content-Security-Policy"])
    assert csp["connect-src"] == "'self' https://tokens.example:8443"


def test_every_script_style_and_module_carries_the_right_integrity() -> None:
    files = load_site("console")
    assert sri_problems(files) == [], "run `python -m gateway.web` after changing the console's files"
    html = files["index.html"].body.decode()
    graph = module_graph(files, "app.js")
    assert {"charts.js", "lib/oidc.js", "vendor/govuk-frontend.min.js"} <= set(graph)
    integrity = json.loads(re.findall(r'<script type="importmap">(.*?)</script>', html, re.DOTALL)[0])["integrity"]
    assert integrity == {f"./{m}": sri(files[m].body) for m in graph[1:]}


def test_the_report_is_styled_by_the_same_css_as_the_apis_own_page() -> None:
    """The console shows and prints the subject report the API serves (GET /api/v1/ledger/report) with the very
    CSS that page carries inline, so both print in the same few A4 pages: console/report.css is written from
    gateway/audit_report.py's REPORT_CSS by `python -m gateway.web`, and the console's own CSS adds no rule of
    its own for the report's content."""
    from gateway import audit_report

    assert (SITE / "report.css").read_text(encoding="utf-8") == audit_report.REPORT_CSS, "run `python -m gateway.web`"
    html = load_site("console")["index.html"].body.decode()
    assert re.search(r'<link rel="stylesheet" href="report.css" integrity="sha384-[^"]+">', html)
    page = audit_report.render_html(
        audit_report.build_report(
            subject="CHILD-1", rows=[], capped=False, generated_at="2026-12-03T09:00:00.000Z",
            checkpoint=None, proofs={}, cap=10,
        )
    )  # fmt: skip
    assert audit_report.REPORT_CSS in page and '<main class="report">' in page
    console_css = (SITE / "console.css").read_text(encoding="utf-8")
    own = [line for line in console_css.splitlines() if ".report" in line and not line.lstrip().startswith("/*")]
    assert own == [".govuk-table__cell code, .report code, .report .hash { overflow-wrap: anywhere; }"], own


def test_the_extensions_sign_in_code_is_reused_byte_for_byte() -> None:
    """`cp extension/lib/{oidc,base64}.js gateway/web/console/lib/ && python -m gateway.web` after changing them.
    Every relative import of a reused module must be shipped too (a missing one stops the page from starting)."""
    files = load_site("console")
    for name in ("oidc.js", "base64.js"):
        assert (SITE / "lib" / name).read_bytes() == (EXTENSION / "lib" / name).read_bytes(), name
    for module in module_graph(files, "app.js"):
        text = files[module].body.decode()
        for ref in re.findall(r'^\s*(?:import|export)\b[^;"\']*?from\s*["\'](\.{1,2}/[^"\']+)["\']', text, re.M):
            target = (Path(module).parent / ref).as_posix()
            assert target in files, f"{module} imports {ref}, which the console does not ship"


def test_govuk_frontend_is_vendored_without_the_govuk_font_and_crown() -> None:
    """govuk-frontend's styles, compiled by gateway/web/_console_src (npm ci && npm run build) with system fonts:
    GDS Transport and the crown are for GOV.UK itself; nothing in the CSS fetches anything."""
    css = (SITE / "vendor" / "govuk-frontend.min.css").read_text()
    assert "GDS Transport" not in css and "url(" not in css and "@font-face" not in css
    lock = json.loads((ROOT / "gateway" / "web" / "_console_src" / "package-lock.json").read_text())
    version = lock["packages"]["node_modules/govuk-frontend"]["version"]
    assert f'version="{version}"' in (SITE / "vendor" / "govuk-frontend.min.js").read_text().replace("'", '"')
    assert f"govuk-frontend {version}" in (SITE / "vendor" / "LICENSES.txt").read_text()
    html = (SITE / "index.html").read_text()
    assert "govuk-header__logotype" not in html and "crown" not in html.lower()
