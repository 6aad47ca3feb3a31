"""The recipient web page `/open/` as the gateway serves it: the strict Content-Security-Policy and other headers,
Subresource Integrity on every script and style sheet (and every imported module, through the import map), only
the shipped files (no path tricks), the package data that ships them, the extension's recipient code reused
byte for byte, the vendor bundles identical to a rebuild from the extension's lock file, and the notification
link's hand-off."""

from __future__ import annotations

import base64
import dataclasses
import fnmatch
import hashlib
import json
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest

from gateway.config import OIDCIssuerConfig
from gateway.web import StaticFile, load_site, module_graph, sri, sri_problems
from tests.conftest import Api

ROOT = Path(__file__).resolve().parents[1]
SITE = ROOT / "gateway" / "web" / "open"
EXTENSION = ROOT / "extension"
REUSED_LIB = ["base64.js", "gateway.js", "keyring.js", "mail-view.js", "oidc.js", "recipient.js"]
#: The extension's build, copied byte for byte: the JavaScript bundles with their licences (LICENSES.txt), and
#: govuk-frontend's compiled styles with theirs (a file of its own, as the extension ships it).
VENDOR = [
    "age.js",
    "postal-mime.js",
    "purify.js",
    "LICENSES.txt",
    "govuk-frontend.min.css",
    "govuk-frontend.LICENSE.txt",
]


def directives(csp: str) -> dict[str, str]:
    return {d.split()[0]: " ".join(d.split()[1:]) for d in (x.strip() for x in csp.split(";")) if d}


async def test_page_is_served_with_a_strict_policy(api: Api) -> None:
    r = await api.client.get("/open/")
    assert r.status == 200 and r.content_type == "text/html"
    html = await r.text()
    assert "only as trustworthy as" in html
    csp = directives(r.headers["Content-Security-Policy"])
    # The one inline script is the import map (module hashes), allowed by its own hash and nothing else.
    [import_map] = re.findall(r'<script type="importmap">(.*?)</script>', html, re.DOTALL)
    map_hash = base64.b64encode(hashlib.sha256(import_map.encode()).digest()).decode()
    assert set(json.loads(import_map)) == {"integrity"}
    assert csp == {
        "default-src": "'none'",
        "script-src": f"'self' 'sha256-{map_hash}'",
        "style-src": "'self'",
        "img-src": "'self' data: blob:",
        "connect-src": "'self'",
        "frame-src": "blob:",
        "frame-ancestors": "'none'",
        "base-uri": "'none'",
        "form-action": "'none'",
    }
    assert r.headers["X-Frame-Options"] == "DENY"
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert r.headers["Referrer-Policy"] == "no-referrer"
    # No other inline code: every other script has a src, no event-handler attributes, no style attributes.
    assert re.findall(r"<script(?![^>]*\bsrc=)[^>]*>", html) == ['<script type="importmap">']
    assert re.search(r"\son[a-z]+=", html) is None
    assert re.search(r"\sstyle=", html) is None
    assert "<style" not in html
    for path in ("app.js", "lib/keyring.js", "vendor/age.js", "vendor/govuk-frontend.min.css", "open.css"):
        r = await api.client.get(f"/open/{path}")
        assert r.status == 200, path
        assert "Content-Security-Policy" in r.headers
    assert (await api.client.get("/open/app.js")).content_type == "text/javascript"
    assert (await api.client.get("/open/open.css")).content_type == "text/css"


async def test_bare_path_redirects_and_only_shipped_files_are_served(api: Api) -> None:
    r = await api.client.get("/open", allow_redirects=False)
    assert r.status == 308 and r.headers["Location"] == "/open/"
    for path in (
        "/open/missing.js",
        "/open/../openapi.json",
        "/open/%2e%2e/openapi.json",
        "/open/lib/../../app.py",
        "/open/..%2F__init__.py",
        "/open/index.html%00.js",
        "/open/lib/",
    ):
        r = await api.client.get(path)
        assert r.status == 404, path
        assert (await r.json())["error"] == "not_found"


async def test_token_endpoints_of_sign_in_services_are_the_only_other_connections(
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
    r = await client.get("/open/")
    csp = directives(r.headers["Content-Security-Policy"])
    assert csp["connect-src"] == "'self' https://tokens.example:8443"
    assert csp["script-src"].startswith("'self' 'sha256-") and csp["script-src"].count(" ") == 1


def test_every_script_style_and_module_carries_the_right_integrity() -> None:
    files = load_site("open")
    assert sri_problems(files) == [], "run `python -m gateway.web` after changing the page's files"
    # Every module the page loads, and each reused file, is in the import map with its hash.
    html = files["index.html"].body.decode()
    graph = module_graph(files, "app.js")
    assert {"lib/keyring.js", "lib/mail-view.js", "vendor/age.js", "vendor/purify.js", "keystore.js"} <= set(graph)
    integrity = json.loads(re.findall(r'<script type="importmap">(.*?)</script>', html, re.DOTALL)[0])["integrity"]
    assert integrity == {f"./{m}": sri(files[m].body) for m in graph[1:]}
    assert f'src="app.js" integrity="{sri(files["app.js"].body)}"' in html
    # The check is not a formality: one changed byte in any module is caught.
    for victim in ("vendor/purify.js", "open.css", "app.js"):
        tampered = dict(files)
        tampered[victim] = StaticFile(files[victim].body + b"\n", files[victim].content_type)
        assert any(victim in p for p in sri_problems(tampered)), victim


def test_package_data_ships_every_file_of_the_page() -> None:
    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["gateway"]
    for path in load_site("open"):
        rel = f"web/open/{path}"
        assert any(fnmatch.fnmatch(rel, p) and rel.count("/") == p.count("/") for p in patterns), rel


@pytest.mark.parametrize("name", REUSED_LIB)
def test_the_extensions_recipient_code_is_reused_byte_for_byte(name: str) -> None:
    """The page runs the extension's own lib/ modules; copy them again after changing the extension's:
    `cp extension/lib/NAME gateway/web/open/lib/ && python -m gateway.web`."""
    assert (SITE / "lib" / name).read_bytes() == (EXTENSION / "lib" / name).read_bytes(), name


def test_vendor_bundles_are_the_extensions_build_from_its_lock_file() -> None:
    """`pip install -e . && safeshare serve --dev` needs no npm, so the bundles are committed; rebuilding them
    from extension/package-lock.json (npm ci + extension/build.mjs) must give the same bytes. After a change:
    `cp extension/vendor/* gateway/web/open/vendor/ && python -m gateway.web`."""
    from tests.extension_build import ensure_built

    ensure_built()
    for name in VENDOR:
        assert (SITE / "vendor" / name).read_bytes() == (EXTENSION / "vendor" / name).read_bytes(), name


async def test_notification_link_hands_off_to_the_page(api: Api) -> None:
    sid = "sh_abcdefghijklmnopqrstuvwx"
    r = await api.client.get(f"/s/{sid}")
    text = await r.text()
    assert f'href="/open/#/s/{sid}">Open it in this browser</a>' in text
    assert "higher-assurance" in text
    # The extension's hand-off is unchanged (it intercepts this page); a bad reference gets the bare page.
    assert "Set up receiving" in text
    r = await api.client.get("/s/not-a-share")
    assert 'href="/open/">Open it in this browser</a>' in await r.text()
