"""schemathesis against a real `safeshare serve`, with the gateway's own OpenAPI document and a token per role.

Used by tests/test_schemathesis.py (a bounded, derandomised sample in the normal test run) and by
bench/schemathesis_long.py (10,000+ requests, on demand). Every operation is exercised by every caller (no
token, and each role, organisation-scoped and partnership-wide), with positive data (valid by the document)
and negative data (invalid by it), once with generated path parameters and once with the IDs of a seeded world
(a share, a recipient, a team, a pending enrolment), so that requests reach past the 404s.

What is counted, per response:
- `server_error`: any 5xx;
- `response_mismatch`: the response disagrees with the document (status code, content type, headers or body
  schema; schemathesis's response_schema_conformance, status_code_conformance, content_type_conformance and
  response_headers_conformance checks);
- `positive_rejected` / `negative_accepted`: request validation — schema-valid data refused as malformed, or
  schema-invalid data accepted (schemathesis's positive_data_acceptance / negative_data_rejection checks).
"""

from __future__ import annotations

import contextlib
import json
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hypothesis
import pyrage
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given
from jsonschema import Draft202012Validator, FormatChecker
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from gateway.app import load_openapi
from gateway.auth import EmbeddedIssuer
from gateway.config import Settings
from gateway.home import init_home
from tests.conftest import example
from tests.openapi_conformance import ResponseChecker
from tests.test_cli import call, multipart, serve

ORG = "Hereford Council"
OTHER = "Leominster Police"
#: caller -> (sub, role, org); "none" sends no token.
CALLERS: dict[str, tuple[str, str, str | None] | None] = {
    "none": None,
    "practitioner": ("pat", "practitioner", ORG),
    "recipient": ("rita", "recipient", ORG),
    "admin": ("ada", "admin", ORG),
    "auditor": ("aud", "auditor", OTHER),
    "partnership_admin": ("pa", "partnership_admin", OTHER),
    "partnership_auditor": ("pau", "partnership_auditor", None),
}
_CHECKER = ResponseChecker()
RESPONSE_CHECKS = {
    "status_code_conformance": status_code_conformance,
    "content_type_conformance": content_type_conformance,
    "response_headers_conformance": response_headers_conformance,
    "response_schema_conformance": response_schema_conformance,
}


@dataclass
class Tally:
    requests: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    #: kind -> list of "METHOD /path [caller, mode]: detail" (the first 2,000 of each kind)
    failures: dict[str, list[str]] = field(default_factory=dict)
    counts: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0

    def fail(self, kind: str, what: str) -> None:
        self.counts[kind] += 1
        kept = self.failures.setdefault(kind, [])
        if len(kept) < 2000:
            kept.append(what)

    def summary(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "seconds": round(self.seconds, 1),
            "status_classes": dict(sorted(Counter(f"{s // 100}xx" for s in self.statuses.elements()).items())),
            "server_error": self.counts["server_error"],
            "response_mismatch": self.counts["response_mismatch"],
            "positive_rejected": self.counts["positive_rejected"],
            "negative_accepted": self.counts["negative_accepted"],
        }


@dataclass
class World:
    url: str
    tokens: dict[str, str | None]
    ids: dict[str, Any]


def _issuer(home: Path) -> EmbeddedIssuer:
    settings = Settings(home=home)
    keys = init_home(settings)
    return EmbeddedIssuer(keys.token_key, settings.issuer, settings.audience)


@contextlib.contextmanager
def gateway(home: Path, log: Path) -> Iterator[World]:
    """A real gateway with a small world in it, and a token for every caller."""
    issuer = _issuer(home)  # keys first, so the server and the tokens agree
    with serve(home, log) as url:
        tokens: dict[str, str | None] = {}
        for name, who in CALLERS.items():
            if who is None:
                tokens[name] = None
            else:
                sub, role, org = who
                tokens[name] = issuer.issue(sub, [role], org=org, ttl=24 * 3600, email=f"{sub}@example.org")

        def admin_of(org: str) -> str:
            return issuer.issue("setup", ["admin"], org=org, ttl=3600)

        for rid, org in (("rita", ORG), ("otto", OTHER)):
            body = {
                "id": rid,
                "name": rid.title(),
                "org": org,
                "email": f"{rid}@example.org",
                "age_recipient": str(pyrage.x25519.Identity.generate().to_public()),
            }
            status, _ = call(url + "/api/v1/recipients", admin_of(org), json.dumps(body).encode(), "application/json")
            assert status == 201
        team = {"id": "duty", "name": "Duty", "org": ORG, "email": "duty@example.org"}
        assert call(url + "/api/v1/teams", admin_of(ORG), json.dumps(team).encode(), "application/json")[0] == 201
        member = json.dumps({"member": "rita"}).encode()
        assert call(url + "/api/v1/teams/duty/members", admin_of(ORG), member, "application/json")[0] == 201
        newbie = issuer.issue("newbie", ["recipient"], org=ORG, email="newbie@example.org")
        enrol = json.dumps({"age_recipient": str(pyrage.x25519.Identity.generate().to_public())}).encode()
        assert call(url + "/api/v1/recipients/enrol", newbie, enrol, "application/json")[0] == 202
        body_bytes, ctype = multipart(
            {"recipients": ["rita"], "justification": example("share"), "payload_content_type": "text/plain"},
            b"referral notes",
        )
        status, resp = call(url + "/api/v1/shares", tokens["practitioner"], body_bytes, ctype)
        assert status == 201, resp
        share = json.loads(resp)
        ids = {
            "share_id": share["share_id"],
            "recipient_id": "newbie",
            "team_id": "duty",
            "member_id": "rita",
            "index": share["ledger_index"],
            "policy_id": "hmg-2018",
        }
        yield World(url, tokens, ids)


def _describe(case: Any, caller: str, mode: str) -> str:
    return f"{case.method} {case.path} [{caller}, {mode}]"


def _really_negative(case: Any) -> bool:
    """Whether schemathesis made some part of the request invalid, other than the Authorization header (which
    the harness sets itself). Where nothing can be made invalid, negative mode generates valid data."""
    components = getattr(getattr(case, "meta", None), "components", None) or {}
    for location, info in components.items():
        if "negative" not in str(getattr(info, "mode", "")).lower():
            continue
        if "HEADER" in str(location).upper():
            continue
        if "QUERY" in str(location).upper() and _documented_query_valid(case):
            continue  # only parameters the operation does not have: ignored, as HTTP APIs do
        return True
    return False


def _documented_query_valid(case: Any) -> bool:
    """Whether every query parameter the operation documents is present when required and valid when given."""
    found = _CHECKER.operation(case.method, case.formatted_path)
    if found is None:
        return False
    query = case.query or {}
    for param in found[1].get("parameters", []):
        if param.get("in") != "query":
            continue
        name, schema = param["name"], param.get("schema", {})
        if name not in query:
            if param.get("required"):
                return False
            continue
        value = query[name]
        if isinstance(value, str) and schema.get("type") == "integer":
            try:
                value = int(value)
            except ValueError:
                return False
        if not Draft202012Validator(schema, format_checker=FormatChecker()).is_valid(value):
            return False
    return True


def _negative_detail(case: Any) -> str:
    """What schemathesis made invalid, as far as it says."""
    meta = getattr(case, "meta", None)
    description = getattr(getattr(meta, "components", None), "items", lambda: [])
    try:
        parts = [f"{k}: {getattr(v, 'mode', v)}" for k, v in description()]
    except Exception:
        parts = []
    return f"query={case.query!r} body={str(case.body)[:200]!r} path={case.path_parameters!r} {'; '.join(parts)}"[:500]


def _first_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:400]


def exercise(
    world: World,
    *,
    examples: int,
    seed: int = 0,
    deadline: float | None = None,
    callers: tuple[str, ...] = tuple(CALLERS),
    modes: tuple[GenerationMode, ...] = (GenerationMode.POSITIVE, GenerationMode.NEGATIVE),
) -> Tally:
    """Generate `examples` cases per (operation, mode, path-parameter source) and send each one as every
    caller (generating is what costs; a request is cheap). Stops at `deadline` (time.monotonic()) if given.
    Derandomised: the same `seed` gives the same requests."""
    doc = json.loads(load_openapi())
    schema = schemathesis.openapi.from_dict(doc)
    tally = Tally()
    session = requests.Session()
    started = time.monotonic()
    operations = [result.ok() for result in schema.get_all_operations()]
    for operation in operations:
        params = {p.name for p in operation.path_parameters}
        sources: list[dict[str, Any] | None] = [None]
        if params:
            sources.append({name: world.ids[name] for name in params if name in world.ids})
        for mode in modes:
            for fixed in sources:
                if deadline is not None and time.monotonic() > deadline:
                    tally.seconds = time.monotonic() - started
                    return tally
                _run_one(world, session, operation, callers, mode, fixed, examples, seed, tally)
    tally.seconds = time.monotonic() - started
    return tally


def _send(world: World, session: requests.Session, case: Any, caller: str, mode: GenerationMode, tally: Tally) -> None:
    token = world.tokens[caller]
    headers = {k: v for k, v in (case.headers or {}).items() if k.lower() != "authorization"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    case.headers = headers
    what = _describe(case, caller, mode.value)
    try:
        response = case.call(base_url=world.url, session=session, timeout=30)
    except requests.RequestException as exc:  # a dropped connection is a failure of its own kind
        tally.requests += 1
        tally.fail("server_error", f"{what}: no response ({type(exc).__name__})")
        return
    tally.requests += 1
    status = response.status_code
    tally.statuses[status] += 1
    if status >= 500:
        tally.fail("server_error", f"{what}: {status} {response.text[:200]}")
    for name, check in RESPONSE_CHECKS.items():
        try:
            case.validate_response(response, checks=[check])
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as exc:
            tally.fail("response_mismatch", f"{what}: {name}: {status} {_first_line(exc)}")
    # Request validation. Schema-valid data may still be refused by rules the document states in prose
    # (422: a justification that does not answer every golden rule; 404: someone else's share), but never
    # as malformed (400) or of the wrong media type (415); schema-invalid data is never accepted (2xx).
    if mode is GenerationMode.POSITIVE and status in (400, 415):
        tally.fail("positive_rejected", f"{what}: {status} {response.text[:300]}")
    if mode is GenerationMode.NEGATIVE and 200 <= status < 300 and _really_negative(case):
        tally.fail("negative_accepted", f"{what}: {status} {_negative_detail(case)}")


def _run_one(
    world: World,
    session: requests.Session,
    operation: Any,
    callers: tuple[str, ...],
    mode: GenerationMode,
    fixed: dict[str, Any] | None,
    examples: int,
    seed: int,
    tally: Tally,
) -> None:
    kwargs: dict[str, Any] = {"generation_mode": mode}
    if fixed:
        kwargs["path_parameters"] = fixed
    strategy = operation.as_strategy(**kwargs)

    @hypothesis.settings(
        max_examples=examples,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
        verbosity=hypothesis.Verbosity.quiet,
    )
    @hypothesis.seed(seed)
    @given(case=strategy)
    def run(case: Any) -> None:
        for caller in callers:
            _send(world, session, case, caller, mode, tally)

    try:
        run()
    except hypothesis.errors.Unsatisfiable:
        pass  # e.g. no negative data exists for an operation without parameters
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:
        where = f"{operation.method.upper()} {operation.path} [{mode.value}]"
        tally.fail("generation_error", f"{where}: {_first_line(exc)}")


__all__ = ["CALLERS", "Tally", "World", "exercise", "gateway", "not_a_server_error"]
