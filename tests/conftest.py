"""Shared fixtures: a real gateway app on a real SQLite file in tmp_path, tokens from its embedded issuer,
and recipients whose keys come from an independent age implementation (pyrage)."""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import hypothesis
import pyrage
import pytest

from gateway.api.common import GATEWAY
from gateway.app import create_app
from gateway.auth import EmbeddedIssuer
from gateway.config import Limits, Settings
from gateway.home import HomeKeys, init_home
from gateway.service import Gateway
from tests import pg
from tests.openapi_conformance import ResponseChecker

# Hypothesis profiles, loaded here (before any test module applies its own @settings on top of them):
# - "ci" (loaded when CI is set, as .ci/run runs): no per-example deadline, since a loaded 2-core machine
#   can take longer than the default 200 ms on one example without anything being wrong; a failure prints
#   its reproduction blob (@reproduce_failure).
# - "repro": the same, derandomised (a fixed seed from each test's name), to re-run exactly what CI ran:
#   `HYPOTHESIS_PROFILE=repro python -m pytest -q tests/test_entry.py`.
# HYPOTHESIS_PROFILE chooses any of them (or Hypothesis's own "default") explicitly.
hypothesis.settings.register_profile("ci", deadline=None, print_blob=True)
hypothesis.settings.register_profile("repro", hypothesis.settings.get_profile("ci"), derandomize=True)
hypothesis.settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") else "default"))


# -- running in parallel (pytest-xdist; `addopts` in pyproject.toml) -------------------------------------------

#: The most workers `-n auto` starts. The suite mostly waits (gateway subprocesses, browsers, PostgreSQL, the age
#: CLI, Roundcube), so workers outnumber cores; more than this on a small machine only adds memory and contention.
MAX_AUTO_WORKERS = 4


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int | None:
    """How many workers `-n auto` starts: twice the cores this process may use, at least 2 and at most
    MAX_AUTO_WORKERS (4 on a 2-core machine). A run of named tests only (every
    argument has `::`) stays in this process: starting workers would take longer than the tests.
    PYTEST_XDIST_AUTO_NUM_WORKERS, or `-n N`, chooses instead (`-n 0`: no workers, e.g. for --pdb)."""
    if os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS"):
        return None  # xdist's own implementation reads it
    if config.args and all("::" in arg for arg in config.args):
        return 0
    return max(2, min(MAX_AUTO_WORKERS, 2 * len(os.sched_getaffinity(0))))


def _builds_shared_fixture(item: pytest.Item) -> bool:
    """Whether the test uses one of our fixtures that lives longer than a test (a module's gateway process or
    browser, the e2e session's gateway and webmail servers, a seeded ledger, generated keys). Fixtures that
    plugins provide (baseid "") do not count: pytest-asyncio's session-scoped loop policy is in every async test."""
    info = getattr(item, "_fixtureinfo", None)
    if info is None:
        return False
    return any(defs[-1].scope != "function" and defs[-1].baseid for defs in info.name2fixturedefs.values() if defs)


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook on each worker, which reads the groups
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test of a module that builds a fixture shared beyond one test goes to the same worker (an
    `xdist_group` named after the module; `--dist loadgroup` keeps a group together), so that the fixture is
    built once, as in a serial run, rather than once on every worker that gets one of its tests. Other tests
    are handed out one at a time. xdist adds the group to the test's id (`...::test_x@tests/test_y.py`)."""
    grouped = {item.nodeid.split("::")[0] for item in items if _builds_shared_fixture(item)}
    for item in items:
        module = item.nodeid.split("::")[0]
        if module in grouped:
            item.add_marker(pytest.mark.xdist_group(module))


FIXTURES = Path(__file__).parent / "fixtures"
EXAMPLES = FIXTURES / "justifications"


def example(name: str) -> dict[str, Any]:
    return json.loads((EXAMPLES / f"justification-{name}.json").read_text())


def require_tool(name: str) -> str:
    """Path of an external tool; skipped locally if missing, but a failure in CI where .ci/run installs it."""
    path = shutil.which(name)
    if path is None:
        if os.environ.get("CI"):
            pytest.fail(f"{name} is not installed; .ci/run should have installed it")
        pytest.skip(f"{name} is not installed (apt-get install -y age)")
    return path


def assert_shares_open_with_age(identity: Path, urls: list[str], token: str, acked: dict[str, bytes]) -> None:
    """Every acknowledged share (ID -> payload) is served by every gateway in `urls` and opens with the `age`
    tool (an implementation not ours) to exactly its payload."""
    import subprocess

    from bench.kill_loop import _request

    age = require_tool("age")
    for share_id, payload in acked.items():
        for url in urls:
            status, envelope = _request(f"{url}/api/v1/shares/{share_id}/envelope", token)
            assert status == 200, (share_id, url, envelope[:200])
            out = subprocess.run(
                [age, "--decrypt", "-i", str(identity)], input=envelope, capture_output=True, check=True
            ).stdout
            assert out == payload, (share_id, url)


@pytest.fixture
def share_justification() -> dict[str, Any]:
    return example("share")


@pytest.fixture
def not_share_justification() -> dict[str, Any]:
    return example("not-share")


def api_settings(home: Path) -> Settings:
    """The settings every API test runs with (a module that builds an app of its own uses them too)."""
    return Settings(home=home, expiry_sweep_seconds=3600.0, limits=Limits(max_payload_bytes=8 * 1024 * 1024))


@pytest.fixture
def settings(tmp_path: Path) -> Iterator[Settings]:
    """The API tests' settings; with SAFESHARE_TEST_BACKEND=postgres their gateway runs on a fresh PostgreSQL
    database of its own (tests/pg.py), so the same tests check the PostgreSQL store through the HTTP API."""
    base = api_settings(tmp_path / "home")
    if pg.backend() != "postgres":
        yield base
        return
    with pg.database_for_sync_fixture() as dsn:
        # SAFESHARE_TEST_ENVELOPES=directory: the envelopes in a directory (the nodes' shared mount), not the database.
        shared = (
            str(tmp_path / "shared-envelopes") if os.environ.get("SAFESHARE_TEST_ENVELOPES") == "directory" else None
        )
        yield dataclasses.replace(base, database=dsn, envelopes=shared)


@pytest.fixture
def keys(settings: Settings) -> HomeKeys:
    return init_home(settings)


@pytest.fixture
def issuer(settings: Settings, keys: HomeKeys) -> EmbeddedIssuer:
    return EmbeddedIssuer(keys.token_key, settings.issuer, settings.audience)


@pytest.fixture
def token(issuer: EmbeddedIssuer) -> Callable[..., str]:
    def make(sub: str, role: str, org: str = "test-org", ttl: int = 600) -> str:
        return issuer.issue(sub, [role], org=org, ttl=ttl)

    return make


@dataclass
class Api:
    """A thin test client that speaks the gateway's API with tokens per role."""

    client: Any
    token: Callable[..., str]

    @property
    def gateway(self) -> Gateway:
        return self.client.app[GATEWAY]

    def auth(self, sub: str, role: str, org: str = "test-org") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(sub, role, org)}"}

    async def add_recipient(self, rid: str, identity: Any, org: str = "Hereford MASH") -> None:
        r = await self.client.post(
            "/api/v1/recipients",
            # Administrators act within their own organisation (gateway/tenancy.py): the recipient's.
            headers=self.auth("root", "admin", org),
            json={
                "id": rid,
                "name": rid.title(),
                "org": org,
                "email": f"{rid}@example.org",
                "age_recipient": str(identity.to_public()),
            },
        )
        assert r.status == 201, await r.text()

    async def share(
        self,
        payload: bytes,
        recipients: list[str],
        justification: dict[str, Any],
        sender: str = "pat",
        **extra: Any,
    ) -> aiohttp.ClientResponse:
        form = aiohttp.FormData()
        meta = {
            "recipients": recipients,
            "justification": justification,
            "payload_content_type": "text/plain",
            **extra,
        }
        form.add_field("share", json.dumps(meta), content_type="application/json")
        form.add_field("payload", payload, filename="payload", content_type="application/octet-stream")
        return await self.client.post("/api/v1/shares", data=form, headers=self.auth(sender, "practitioner"))

    async def ledger(self, **params: str) -> list[dict[str, Any]]:
        # The whole ledger, whichever organisations an entry involves (tenancy: tests/test_tenants.py).
        r = await self.client.get("/api/v1/ledger", params=params, headers=self.auth("audrey", "partnership_auditor"))
        assert r.status == 200, await r.text()
        return (await r.json())["entries"]


@pytest.fixture
async def api(aiohttp_client: Any, settings: Settings, keys: HomeKeys, token: Callable[..., str]) -> Api:
    client = await aiohttp_client(create_app(settings, keys))
    return Api(client, token)


@pytest.fixture
def alice() -> Any:
    return pyrage.x25519.Identity.generate()


@pytest.fixture
def bob() -> Any:
    return pyrage.x25519.Identity.generate()


@pytest.fixture
def justification_copy(share_justification: dict[str, Any]) -> Callable[[], dict[str, Any]]:
    return lambda: copy.deepcopy(share_justification)


# -- every response checked against the OpenAPI document --------------------------------------------------

_OPENAPI = ResponseChecker()


@pytest.fixture
def openapi_checker() -> ResponseChecker:
    """The document is parsed once; each test gets its own tally of problems."""
    return ResponseChecker(doc=_OPENAPI.doc)


@pytest.fixture
async def aiohttp_client(settings: Settings, aiohttp_client: Any, openapi_checker: ResponseChecker) -> Any:
    """pytest-aiohttp's client factory, with every JSON response (and every status and content type) checked
    against gateway/openapi.json; the test fails at teardown listing every response that disagreed.

    (It asks for `settings` so that a PostgreSQL test database outlives the apps the clients close.)"""

    async def make(*args: Any, **kwargs: Any) -> Any:
        client = await aiohttp_client(*args, **kwargs)
        request = client._request

        async def checked(method: str, path: Any, **kw: Any) -> aiohttp.ClientResponse:
            resp = await request(method, path, **kw)
            body = b""
            if resp.content_type == "application/json":
                body = await resp.read()  # cached: the test reads it again as usual
            openapi_checker.check(method, resp.url.path, resp.status, resp.headers.get("Content-Type", ""), body)
            return resp

        client._request = checked
        return client

    yield make
    assert not openapi_checker.problems, "responses that disagree with gateway/openapi.json:\n" + "\n".join(
        openapi_checker.problems
    )
