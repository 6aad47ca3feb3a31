"""Check real responses against the gateway's own OpenAPI document (gateway/openapi.json).

`ResponseChecker.check(method, path, status, content_type, body)` finds the documented operation for a
concrete path (`/api/v1/shares/sh_…` → `/api/v1/shares/{share_id}`), the documented response for the status
(or `default`), and validates a JSON body against its schema (JSON Schema 2020-12, formats checked, every
`$ref` resolved inside the document). It returns the problems found (empty when the response conforms).

tests/conftest.py wraps every test client with it, so every response any API test produces is checked: the
document and the gateway cannot drift apart silently again.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from jsonschema import Draft202012Validator, FormatChecker
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from gateway.app import load_openapi

BASE = "urn:safeshare:openapi"
METHODS = ("get", "put", "post", "delete", "patch", "head", "options")


def _pointer(*parts: str) -> str:
    return "/".join(p.replace("~", "~0").replace("/", "~1") for p in parts)


@dataclass
class ResponseChecker:
    doc: dict[str, Any] = field(default_factory=lambda: json.loads(load_openapi()))
    #: Every response checked, and what was wrong: the conformance test reports them all at once.
    checked: int = 0
    problems: list[str] = field(default_factory=list)

    @cached_property
    def _registry(self) -> Registry[Any]:
        return Registry().with_resource(BASE, Resource.from_contents(self.doc, default_specification=DRAFT202012))

    @cached_property
    def _paths(self) -> list[tuple[re.Pattern[str], str]]:
        out = []
        for template in self.doc["paths"]:
            pattern = "^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template)) + "$"
            out.append((re.compile(pattern), template))
        # Literal paths before templated ones (`/recipients/me` before `/recipients/{recipient_id}`).
        out.sort(key=lambda pt: pt[1].count("{"))
        return out

    def operation(self, method: str, path: str) -> tuple[str, dict[str, Any]] | None:
        for pattern, template in self._paths:
            if pattern.match(path):
                op = self.doc["paths"][template].get(method.lower())
                if op is not None:
                    return template, op
        return None

    def _deref(self, obj: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
        """Follow an OpenAPI-level `$ref` (responses are not JSON Schema); returns the object and its pointer."""
        where = None
        while "$ref" in obj:
            ref = obj["$ref"]
            assert ref.startswith("#/"), ref
            where = ref[1:]
            target: Any = self.doc
            for part in ref[2:].split("/"):
                target = target[part.replace("~1", "/").replace("~0", "~")]
            obj = target
        return obj, where

    def check(self, method: str, path: str, status: int, content_type: str, body: bytes) -> list[str]:
        """Problems with one response, each naming the operation; [] if it conforms (or is undocumented)."""
        found = self.operation(method, path)
        if found is None:
            return []  # not an operation of the API (an unknown path, or a method it does not offer)
        template, op = found
        self.checked += 1
        what = f"{method.upper()} {template} -> {status}"
        responses = op.get("responses", {})
        key = str(status) if str(status) in responses else f"{str(status)[0]}XX"
        if key not in responses:
            key = "default"
        if key not in responses:
            return self._fail([f"{what}: status {status} is not documented (documented: {sorted(responses)})"])
        response, ref_ptr = self._deref(responses[key])
        content = response.get("content")
        if not content:
            return []
        media = content_type.split(";")[0].strip().lower()
        if media not in content:
            return self._fail([f"{what}: content type {media!r} is not documented (documented: {sorted(content)})"])
        schema = content[media].get("schema")
        if schema is None or media not in ("application/json",):
            return []
        try:
            instance = json.loads(body)
        except ValueError:
            return self._fail([f"{what}: the body is not JSON"])
        base = ref_ptr if ref_ptr is not None else "/" + _pointer("paths", template, method.lower(), "responses", key)
        pointer = base + "/" + _pointer("content", media, "schema")
        validator = Draft202012Validator(
            {"$ref": f"{BASE}#{pointer}"}, registry=self._registry, format_checker=FormatChecker()
        )
        errors = sorted(validator.iter_errors(instance), key=lambda e: list(e.absolute_path))
        return self._fail([f"{what}: at /{'/'.join(map(str, e.absolute_path))}: {e.message[:300]}" for e in errors[:5]])

    def _fail(self, problems: list[str]) -> list[str]:
        self.problems += problems
        return problems
