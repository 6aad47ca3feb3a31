"""Golden-rules justification checking.

The policy is data: each policy is a JSON Schema (draft 2020-12) document in ``gateway/policies/``,
annotated with ``x-golden-rule`` / ``x-question`` / ``x-labels`` / ``x-errors``. This module only
interprets such a document, so a new edition of the rules (e.g. DfE 2024, which renumbers them) ships
as a new JSON file with no code change. Everything that JSON Schema can express lives in the document
(so the browser extension can run the same checks); only the checks that compare *values* across fields
(subject references) live here, and even those take their rule numbers from the document's annotations.

Nothing here performs I/O except reading the packaged policy files, and nothing here ever echoes a
submitted value in a message: justifications describe children and adults at risk.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Final

import jsonschema_rs
import rfc8785
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError, ValidationError, best_match

__all__ = [
    "MAX_ARRAY_ITEMS",
    "MAX_DEPTH",
    "MAX_NODES",
    "MAX_PROBLEMS",
    "Policy",
    "PolicyRegistry",
    "Problem",
    "ORG_TYPES",
    "PUBLIC_ORG_TYPES",
    "RuleSection",
    "SafetyNet",
    "LawfulBasisChecks",
    "SharerContext",
    "UnknownPolicy",
    "load_archived_policies",
    "load_builtin_policies",
    "load_policy_dir",
    "validate",
]

#: Containers nested deeper than this are replaced by an opaque marker before validation. The deepest
#: legitimate value (``rules.5_safety_wellbeing.at_risk.N``) is at depth 4; the cap keeps jsonschema's
#: recursion (and its ``repr`` of offending values) bounded whatever a client sends.
MAX_DEPTH: Final = 16
#: A real justification holds a few hundred values; anything far bigger is refused outright so that a
#: hostile body cannot make validation expensive.
MAX_NODES: Final = 5000
#: Arrays are truncated to this many items before validation (``uniqueItems`` is quadratic on
#: unsortable items). Policies may not set ``maxItems`` at or above it, so truncation never hides a
#: ``maxItems`` breach.
MAX_ARRAY_ITEMS: Final = 200
#: Enough for any honest draft; a flood of problems is itself a sign of garbage input.
MAX_PROBLEMS: Final = 200

_SAFE_KEY: Final = re.compile(r"[A-Za-z0-9_]{1,64}")
_MAX_REF_HOPS: Final = 8

_TYPE_WORDS: Final[Mapping[str, str]] = {
    "string": "text",
    "boolean": "yes or no (true or false)",
    "array": "a list",
    "object": "a group of fields (a JSON object)",
    "integer": "a whole number",
    "number": "a number",
    "null": "empty (null)",
}

_DEFAULT_CODES: Final[Mapping[str, str]] = {
    "required": "required",
    "additionalProperties": "unknown_field",
    "type": "type",
    "enum": "enum",
    "const": "const",
    "pattern": "pattern",
    "maxLength": "too_long",
    "minLength": "too_short",
    "minItems": "too_few",
    "maxItems": "too_many",
    "uniqueItems": "duplicate",
    "not": "not_allowed",
}

# Value-comparison rules the schema cannot express. Paths are the justification contract's (shared by
# every policy edition); rule numbers are looked up in the policy's annotations at these paths.
_SUBJECTS: Final = ("subjects",)
_AT_RISK: Final = ("rules", "5_safety_wellbeing", "at_risk")
_SCHEDULE_1: Final = ("rules", "1_lawful_basis", "dpa_schedule_1")
_P18: Final = "p18_safeguarding"
_ADULT_AT_RISK: Final = "adult_at_risk"
_LAWFUL_BASIS: Final = ("rules", "1_lawful_basis")
_CONSENT: Final = ("rules", "4_transparency", "consent")
_CHECKS: Final = "x-lawful-basis-checks"

#: What kind of organisation the sharer works for (``[policies] org_type`` or the token's ``org_type`` claim).
ORG_TYPES: Final = ("public_authority", "health_body", "school", "voluntary", "private_provider", "police")
#: Public authorities for UK GDPR Article 6(1) (DPA 2018 s.7): legitimate interests, and the recognised legitimate
#: interest, are not available to them for their own tasks; safeguarding is one of those tasks.
PUBLIC_ORG_TYPES: Final = frozenset({"public_authority", "health_body", "school", "police"})


@dataclass(frozen=True)
class SharerContext:
    """What the gateway knows about the sharer that the draft must not assert itself.

    The organisation's type decides whether legitimate interests can be a lawful basis at all; the appropriate
    policy document is the organisation's, kept in configuration, not typed per share. Both come from the
    configuration or the token, never from the request body. ``None`` for either means "not known", and the
    rules that need it are not applied (the extension's own check, and organisations not yet configured).
    """

    org_type: str | None = None
    policy_document: Mapping[str, str] | None = None


def _codes(value: Any) -> frozenset[str]:
    return frozenset(v for v in value if isinstance(v, str)) if isinstance(value, list) else frozenset()


@dataclass(frozen=True)
class LawfulBasisChecks:
    """The policy's ``x-lawful-basis-checks``: the codes the named cross-field rules compare (the policy is data).

    An edition without the block (e.g. an archived one) gets none of these rules, exactly as it was published.
    """

    per_person: str | None = None
    consent_basis: str | None = None
    explicit_consent: str | None = None
    without_consent: Mapping[str, str] = field(default_factory=dict)
    reasons_18_2: frozenset[str] = frozenset()
    protects_only_condition: str | None = None
    protects_only_roles: frozenset[str] = frozenset()
    not_for_public_authorities: frozenset[str] = frozenset()
    not_for_police: frozenset[str] = frozenset()
    needs_policy_document: frozenset[str] = frozenset()

    @classmethod
    def parse(cls, block: Any) -> LawfulBasisChecks:
        if block is None:
            return cls()
        if not isinstance(block, Mapping):
            raise ValueError(f"{_CHECKS} must be an object")
        text = {k: v for k, v in block.items() if isinstance(v, str)}
        without = block.get("without_consent", {})
        protects = block.get("protects_only", {})
        if not isinstance(without, Mapping) or not isinstance(protects, Mapping):
            raise ValueError(f"{_CHECKS}: without_consent and protects_only must be objects")
        condition = protects.get("condition")
        return cls(
            per_person=text.get("per_person"),
            consent_basis=text.get("consent_basis"),
            explicit_consent=text.get("article_9_consent"),
            without_consent={str(k): str(v) for k, v in without.items()},
            reasons_18_2=_codes(block.get("reasons_18_2")),
            protects_only_condition=condition if isinstance(condition, str) else None,
            protects_only_roles=_codes(protects.get("roles")),
            not_for_public_authorities=_codes(block.get("not_for_public_authorities")),
            not_for_police=_codes(block.get("not_for_police")),
            needs_policy_document=_codes(block.get("needs_policy_document")),
        )


FieldPath = tuple[str | int, ...]


@dataclass(frozen=True)
class Problem:
    """One reason a justification is refused, addressed to the practitioner.

    ``rule`` is the golden-rule number from the policy's ``x-golden-rule`` annotation at (or above)
    ``field``; ``None`` for fields outside the rules (``policy``, ``rules`` itself, the whole document).
    In ``hmg-2018`` the top-level record fields (decision, purpose, subjects, data_categories) are
    annotated rule 7 ("record what, whose, for what purpose"). ``code`` is a stable machine identifier
    for the extension and tests; ``message`` is plain English and never contains a submitted value.
    """

    rule: int | None
    field: str
    message: str
    code: str = "invalid"

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form for API responses and the ledger."""
        return {"rule": self.rule, "field": self.field, "message": self.message, "code": self.code}


class UnknownPolicy(LookupError):
    """The draft (or caller) named a policy this gateway does not ship; refuse rather than guess."""


class _TooLarge(Exception):
    """Raised while copying a draft that exceeds MAX_NODES."""


class _Opaque:
    """Stands in for values JSON cannot carry and for over-deep nesting.

    It matches no JSON Schema type, so the schema reports it as the wrong type, and its fixed ``repr``
    means jsonschema's own message building can neither recurse nor run user code.
    """

    __slots__ = ()

    def __repr__(self) -> str:
        return "<opaque>"


_OPAQUE: Final = _Opaque()


def _to_json(value: Any, depth: int, budget: list[int]) -> Any:
    """Copy a JSON-ish value into plain dict/list/str/int/float/bool/None, bounded in size and depth."""
    budget[0] -= 1
    if budget[0] < 0:
        raise _TooLarge
    if value is None or type(value) in (str, int, float, bool):
        return value
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, int):
        return int.__int__(value)
    if isinstance(value, float):
        return float.__float__(value)
    if isinstance(value, Mapping):
        if depth >= MAX_DEPTH:
            return _OPAQUE
        out: dict[str, Any] = {}
        for index, (key, item) in enumerate(value.items()):
            # JSON keys are text; anything else can only be an unknown field, reported without its name.
            name = str.__str__(key) if isinstance(key, str) else f"\x00non-text key {index}"
            out[name] = _to_json(item, depth + 1, budget)
        return out
    if isinstance(value, list | tuple):
        if depth >= MAX_DEPTH:
            return _OPAQUE
        return [_to_json(item, depth + 1, budget) for item in value[:MAX_ARRAY_ITEMS]]
    return _OPAQUE


def _plain(value: Any) -> Any:
    """Deep-copy a policy document into plain dict/list so it can be canonicalised and not aliased."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _field_name(path: Sequence[str | int]) -> str:
    return ".".join(str(segment) for segment in path)


def _natural_key(field_name: str) -> tuple[tuple[int, int | str], ...]:
    """Sort ``subjects.2`` before ``subjects.10`` so the order matches the form."""
    if not field_name:
        return ()
    return tuple((0, int(part)) if part.isdigit() else (1, part) for part in field_name.split("."))


def _sort_key(problem: Problem) -> tuple[Any, ...]:
    return (
        problem.rule is not None,
        problem.rule or 0,
        _natural_key(problem.field),
        problem.code,
        problem.message,
    )


def _get_path(document: Any, path: Sequence[str]) -> Any:
    node = document
    for key in path:
        if not isinstance(node, dict):
            return None
        node = node.get(key)
    return node


def _iter_schema_nodes(node: Any) -> Iterator[Mapping[str, Any]]:
    stack = [node]
    while stack:
        current = stack.pop()
        if isinstance(current, Mapping):
            yield current
            stack.extend(current.values())
        elif isinstance(current, list):
            stack.extend(current)


def _reject_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """Policy files are reviewed by humans; a silently shadowed key would make the review meaningless."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {key!r} in policy document")
        out[key] = value
    return out


def _fill(template: str, values: Mapping[str, str]) -> str:
    """``{name}`` placeholders filled from policy data only (never from a submitted value)."""
    for name, value in values.items():
        template = template.replace("{" + name + "}", value)
    return template


def _need_text(block: Mapping[str, Any], key: str, where: str) -> str:
    value = block.get(key)
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{where}.{key} must be non-empty text")
    return value


def _compiled(schema: Any, where: str) -> _Condition:
    if not isinstance(schema, Mapping):
        raise ValueError(f"{where} must be a JSON Schema object")
    document = _plain(schema)
    try:
        Draft202012Validator.check_schema(document)
    except SchemaError as exc:
        raise ValueError(f"{where} is not a valid JSON Schema: {exc.message}") from exc
    return _Condition(document)


class _Condition:
    """A yes/no question the policy asks of a draft as a JSON Schema (a safety net's ``when``, a service's
    condition in ``share_with``), answered by the compiled validator where there is one.

    Why: jsonschema took 13 µs (a quiet machine) to 60 µs (a busy one) a share for the one safety net's
    ``when``, a share's largest remaining piece of validation once the main schema was compiled (issue 15).
    Unlike the main schema, both answers count here, so the compiled one must agree with jsonschema either way
    (tests/test_compiled_validator.py checks every shipped condition over the same drafts and mutations); a
    value it cannot take goes to jsonschema.
    """

    __slots__ = ("_fast", "_python")

    def __init__(self, document: dict[str, Any]) -> None:
        self._python = Draft202012Validator(document)
        self._fast = _fast_validator(document)

    def is_valid(self, instance: Any) -> bool:
        if self._fast is not None:
            with contextlib.suppress(Exception):  # e.g. a lone surrogate: jsonschema answers instead
                return bool(self._fast.is_valid(instance))
        return bool(self._python.is_valid(instance))


class _PythonPattern:
    """``pattern`` for the compiled validator with exactly jsonschema's semantics: Python's ``re.search``.

    Rust's regex engine and Python's disagree at the edges (``\\S`` matches U+001C–U+001F and U+0085 in Rust,
    not in Python; ``$`` before a final newline), and a compiled validator that accepts what jsonschema refuses
    would let a blank answer through. The callback is a few microseconds; the rest of the schema stays compiled.
    """

    def __init__(self, parent_schema: dict[str, Any], value: Any, schema_path: list[str | int]) -> None:
        self._search = re.compile(value).search

    def validate(self, instance: Any) -> None:
        if isinstance(instance, str) and self._search(instance) is None:
            raise ValueError("does not match the pattern")


#: Keywords whose values are regular expressions the compiled validator would run with its own engine.
_RUST_REGEX_KEYWORDS: Final = frozenset({"patternProperties"})


def _fast_validator(document: dict[str, Any]) -> jsonschema_rs.Validator | None:
    """A compiled (Rust) JSON Schema 2020-12 validator for the happy path, or None where it cannot be trusted.

    ``Policy.validate`` asks it first and runs jsonschema's ``iter_errors`` only when it says invalid (or
    fails), so every problem is still reported in jsonschema's words; it must therefore never accept what
    jsonschema refuses (tests/test_compiled_validator.py checks that over the policies' examples and the
    lawful-basis situations). jsonschema ~1.4 ms a share was most of a share's event-loop time (issue 15).
    Formats are annotations here as in jsonschema's default; no reference is ever fetched.
    """
    for node in _iter_schema_nodes(document):
        if _RUST_REGEX_KEYWORDS & node.keys():
            return None
    try:
        return jsonschema_rs.Draft202012Validator(
            document, validate_formats=False, keywords={"pattern": _PythonPattern}, offline=True
        )
    except Exception:  # a schema jsonschema accepts but the compiled one cannot build: jsonschema alone then
        return None


@dataclass(frozen=True)
class SafetyNet:
    """A declarative challenge from the policy's ``x-safety-nets`` block (e.g. not sharing despite risk).

    The policy says, as data: when the rule applies (``when``, a JSON Schema over the whole draft), which
    values of a field are never enough on their own (``refuse``), which field must then be filled in
    (``require``: another route or a senior's sign-off), whom to share with instead (``share_with``, each a
    service with a JSON Schema saying when it is the one), and what the quick route pre-fills (``instead``).
    This class only interprets that data; another edition of the rules brings its own block.
    """

    id: str
    title: str
    principle: str
    source: str
    when: _Condition = field(repr=False)
    share_with: tuple[tuple[_Condition | None, str], ...] = field(repr=False)
    refuse_field: FieldPath
    refuse_values: frozenset[str]
    refuse_code: str
    refuse_message: str
    require_field: FieldPath
    require_code: str
    require_message: str
    instead_label: str
    instead_set: Mapping[str, Any] = field(repr=False)

    @classmethod
    def parse(cls, block: Any, index: int) -> SafetyNet:
        where = f"x-safety-nets[{index}]"
        if not isinstance(block, Mapping):
            raise ValueError(f"{where} must be an object")
        refuse, require, instead = block.get("refuse"), block.get("require"), block.get("instead")
        for name, part in (("refuse", refuse), ("require", require), ("instead", instead)):
            if not isinstance(part, Mapping):
                raise ValueError(f"{where}.{name} must be an object")
        assert isinstance(refuse, Mapping) and isinstance(require, Mapping) and isinstance(instead, Mapping)
        values = refuse.get("values")
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise ValueError(f"{where}.refuse.values must be a list of codes")
        services = block.get("share_with")
        if not isinstance(services, list) or not services:
            raise ValueError(f"{where}.share_with must list at least one service")
        share_with: list[tuple[_Condition | None, str]] = []
        for n, service in enumerate(services):
            if not isinstance(service, Mapping):
                raise ValueError(f"{where}.share_with[{n}] must be an object")
            condition = service.get("when")
            share_with.append(
                (
                    None if condition is None else _compiled(condition, f"{where}.share_with[{n}].when"),
                    _need_text(service, "service", f"{where}.share_with[{n}]"),
                )
            )
        settings = instead.get("set")
        if not isinstance(settings, Mapping):
            raise ValueError(f"{where}.instead.set must be an object")
        return cls(
            id=_need_text(block, "id", where),
            title=_need_text(block, "title", where),
            principle=_need_text(block, "principle", where),
            source=_need_text(block, "source", where),
            when=_compiled(block.get("when"), f"{where}.when"),
            share_with=tuple(share_with),
            refuse_field=Policy._parse_path(_need_text(refuse, "field", f"{where}.refuse")),
            refuse_values=frozenset(values),
            refuse_code=_need_text(refuse, "code", f"{where}.refuse"),
            refuse_message=_need_text(refuse, "message", f"{where}.refuse"),
            require_field=Policy._parse_path(_need_text(require, "field", f"{where}.require")),
            require_code=_need_text(require, "code", f"{where}.require"),
            require_message=_need_text(require, "message", f"{where}.require"),
            instead_label=_need_text(instead, "label", f"{where}.instead"),
            instead_set=_plain(settings),
        )

    def applies(self, instance: Any) -> bool:
        """Whether the draft is one this safety net challenges."""
        try:
            return bool(self.when.is_valid(instance))
        except Exception:  # hostile shapes are refused by the main schema; never crash here
            return False

    def services(self, instance: Any) -> list[str]:
        """Where to share instead, for this draft: every service whose condition holds (the last as fallback)."""
        found = [name for condition, name in self.share_with if condition is None or condition.is_valid(instance)]
        return found or [self.share_with[-1][1]]

    def notice(self, instance: Any) -> dict[str, Any]:
        """What the panel shows at the moment the principle applies (plain words, from the policy's data)."""
        words = {"share_with": " and ".join(self.services(instance)), "principle": self.principle}
        return {
            "id": self.id,
            "title": self.title,
            "principle": self.principle,
            "source": self.source,
            "share_with": self.services(instance),
            "instead": {
                "label": _fill(self.instead_label, words),
                "set": {k: _fill(v, words) if isinstance(v, str) else v for k, v in self.instead_set.items()},
            },
            "release_field": _field_name(self.require_field),
        }


@dataclass(frozen=True)
class RuleSection:
    """One section of a policy's ``rules`` object: its key in the justification, its rule number, its title."""

    key: str
    rule: int | None
    title: str


@dataclass(frozen=True)
class Policy:
    """One edition of the golden rules, as a JSON Schema document plus what the ledger needs to cite it.

    ``digest`` is ``sha256:`` over the RFC 8785 canonical bytes of ``schema`` so that a ledger entry pins
    the exact rules a justification was checked against, independent of file formatting. It is computed
    when omitted and verified when given. Validation works on a private copy of the schema: mutating
    ``schema`` afterwards cannot change behaviour or invalidate ``digest``.
    """

    id: str
    version: str
    title: str
    schema: Mapping[str, Any] = field(compare=False, repr=False)
    digest: str = ""
    _document: dict[str, Any] = field(init=False, compare=False, repr=False)
    _canonical: bytes = field(init=False, compare=False, repr=False)
    _validator: Draft202012Validator = field(init=False, compare=False, repr=False)
    _fast: jsonschema_rs.Validator | None = field(init=False, compare=False, repr=False)
    _safety_nets: tuple[SafetyNet, ...] = field(init=False, compare=False, repr=False)
    _checks: LawfulBasisChecks = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.schema, Mapping):
            raise ValueError("a policy schema must be a JSON object")
        document = _plain(self.schema)
        try:
            Draft202012Validator.check_schema(document)
        except SchemaError as exc:
            raise ValueError(f"policy {self.id!r} is not a valid JSON Schema 2020-12 document: {exc.message}") from exc
        canonical = rfc8785.dumps(document)
        digest = "sha256:" + hashlib.sha256(canonical).hexdigest()
        if self.digest and self.digest != digest:
            raise ValueError(f"policy {self.id!r} digest does not match its schema")
        meta = document.get("x-policy")
        if meta is not None:
            if not isinstance(meta, dict):
                raise ValueError("x-policy must be an object")
            for key in ("id", "version", "title"):
                if key in meta and meta[key] != getattr(self, key):
                    raise ValueError(f"policy {key} {getattr(self, key)!r} differs from x-policy.{key}")
        for node in _iter_schema_nodes(document):
            limit = node.get("maxItems")
            if isinstance(limit, int) and limit >= MAX_ARRAY_ITEMS:
                raise ValueError(f"maxItems {limit} is not below MAX_ARRAY_ITEMS ({MAX_ARRAY_ITEMS})")
        object.__setattr__(self, "schema", _plain(document))
        object.__setattr__(self, "digest", digest)
        object.__setattr__(self, "_document", document)
        object.__setattr__(self, "_canonical", canonical)
        object.__setattr__(self, "_validator", Draft202012Validator(document))
        object.__setattr__(self, "_fast", _fast_validator(document))
        nets = document.get("x-safety-nets", [])
        if not isinstance(nets, list):
            raise ValueError("x-safety-nets must be a list")
        object.__setattr__(self, "_safety_nets", tuple(SafetyNet.parse(b, i) for i, b in enumerate(nets)))
        object.__setattr__(self, "_checks", LawfulBasisChecks.parse(document.get(_CHECKS)))

    @classmethod
    def from_document(cls, document: Mapping[str, Any]) -> Policy:
        """Build from a policy document, taking id/version/title from its ``x-policy`` block."""
        meta = document.get("x-policy")
        if not isinstance(meta, Mapping):
            raise ValueError("policy document has no x-policy block")

        def text(key: str) -> str:
            value = meta.get(key)
            if not isinstance(value, str) or not value:
                raise ValueError(f"x-policy.{key} must be non-empty text")
            return value

        return cls(id=text("id"), version=text("version"), title=text("title"), schema=document)

    @classmethod
    def from_json(cls, text: str | bytes) -> Policy:
        """Parse a policy file, refusing duplicate keys."""
        return cls.from_document(json.loads(text, object_pairs_hook=_reject_duplicate_keys))

    @property
    def canonical_json(self) -> bytes:
        """The exact bytes ``digest`` covers, for serving the policy to the extension verifiably."""
        return self._canonical

    # -- validation ---------------------------------------------------------------------------------

    def validate(self, draft: Any, context: SharerContext | None = None) -> list[Problem]:
        """Every problem with ``draft``, sorted by rule then field; empty means acceptable.

        ``context`` carries what the gateway knows about the sharer (organisation type, appropriate policy
        document); without it the rules that depend on the sharer are not applied.

        Never raises for JSON-ish input: a gateway that crashes on a malformed body would fail open in
        the wrong place (the caller's error path) rather than refusing with a reason.
        """
        if not isinstance(draft, Mapping):
            return [Problem(None, "", "The justification must be a JSON object containing the form's fields.", "type")]
        try:
            instance = _to_json(draft, 0, [MAX_NODES])
        except _TooLarge:
            return [
                Problem(
                    None,
                    "",
                    f"The justification is too large to check (more than {MAX_NODES:,} values).",
                    "too_large",
                )
            ]
        except Exception:
            # Only exotic non-JSON objects (e.g. a mapping whose iteration raises) get here.
            return [Problem(None, "", "The justification could not be read as JSON data.", "unreadable")]

        problems: list[Problem] = []
        if not self._schema_valid(instance):
            for error in self._validator.iter_errors(instance):
                problems.extend(self._problems_for(error))
        problems.extend(self._cross_field_problems(instance))
        problems.extend(self._consent_problems(instance))
        problems.extend(self._sharer_problems(instance, context))
        problems.extend(self._safety_net_problems(instance))
        return self._finish(problems)

    def _schema_valid(self, instance: Any) -> bool:
        """True when the compiled validator accepts ``instance``; False means "ask jsonschema" (invalid, or a
        value the compiled one cannot take, such as a lone surrogate or an opaque stand-in)."""
        if self._fast is None:
            return False
        try:
            return bool(self._fast.is_valid(instance))
        except Exception:
            return False

    @property
    def safety_nets(self) -> tuple[SafetyNet, ...]:
        return self._safety_nets

    def safety_nets_for(self, draft: Any) -> list[SafetyNet]:
        """The policy's safety nets that challenge this draft (its decision is flagged with their ids)."""
        if not isinstance(draft, Mapping) or not self._safety_nets:
            return []
        try:
            instance = _to_json(draft, 0, [MAX_NODES])
        except Exception:
            return []
        return [net for net in self._safety_nets if net.applies(instance)]

    def notices(self, draft: Any) -> list[dict[str, Any]]:
        """For the panel: each applicable safety net's principle, where to share instead and the quick route."""
        instance = _to_json(draft, 0, [MAX_NODES]) if isinstance(draft, Mapping) else draft
        return [net.notice(instance) for net in self.safety_nets_for(draft)]

    def rule_for(self, path: str | Sequence[str | int]) -> int | None:
        """The golden rule a field belongs to: the deepest ``x-golden-rule`` annotation along its path."""
        segments = self._parse_path(path) if isinstance(path, str) else tuple(path)
        rule: int | None = None
        for node in self._walk(segments):
            value = node.get("x-golden-rule") if node is not None else None
            if isinstance(value, int) and not isinstance(value, bool):
                rule = value
        return rule

    # -- the policy's vocabulary, for filters, reports and the recipient ----------------------------------

    def codes_at(self, path: str) -> tuple[str, ...]:
        """The codes this policy allows at a field (``purpose.code``, ``rules.1_lawful_basis.article_6``): the
        field's ``enum``, or its items' for a list; empty when the policy has no such coded field."""
        node = self._walk(self._parse_path(path))[-1]
        if node is None:
            return ()
        enum = self._deref(node, "enum")
        if enum is None:
            items = self._deref(node, "items")
            enum = self._deref(items, "enum") if isinstance(items, Mapping) else None
        return tuple(v for v in enum if isinstance(v, str)) if isinstance(enum, list) else ()

    def rule_titles(self) -> dict[int, str]:
        """Rule number → title, from the document's ``x-golden-rules`` list."""
        rules = self._document.get("x-golden-rules")
        out: dict[int, str] = {}
        for item in rules if isinstance(rules, list) else []:
            if isinstance(item, Mapping) and isinstance(item.get("number"), int) and isinstance(item.get("title"), str):
                out[item["number"]] = item["title"]
        return out

    def sections(self) -> list[RuleSection]:
        """The sections of ``rules`` in the policy's own order, each with its rule number and title."""
        rules = self._walk(("rules",))[-1]
        properties = self._deref(rules, "properties") if rules is not None else None
        out: list[RuleSection] = []
        for key, node in properties.items() if isinstance(properties, Mapping) else []:
            rule = self.rule_for(("rules", key))
            title = self._title(node) if isinstance(node, Mapping) else None
            out.append(RuleSection(key, rule, title or key.replace("_", " ")))
        return out

    def rule_map(self, target: str) -> dict[int, tuple[int, ...]]:
        """``x-rule-map``: for each rule of this policy, the rules of policy ``target`` it corresponds to."""
        block = self._document.get("x-rule-map")
        mapping = block.get(target) if isinstance(block, Mapping) else None
        rules = mapping.get("rules") if isinstance(mapping, Mapping) else None
        out: dict[int, tuple[int, ...]] = {}
        for key, value in rules.items() if isinstance(rules, Mapping) else []:
            if str(key).isdigit() and isinstance(value, list):
                out[int(key)] = tuple(v for v in value if isinstance(v, int) and not isinstance(v, bool))
        return out

    def mapped_policies(self) -> tuple[str, ...]:
        """The editions this one's ``x-rule-map`` maps onto."""
        block = self._document.get("x-rule-map")
        return tuple(str(k) for k in block) if isinstance(block, Mapping) else ()

    def handling(self, draft: Any) -> dict[str, Any] | None:
        """The handling instruction the policy sends to the recipient (``x-handling``), or None.

        ``x-handling.field`` names the section holding it; ``x-handling.when`` the yes/no field saying it
        applies. The result carries the section's rule and title, and each answer with its label, so the
        recipient reads it in the policy's own words. Called only on drafts the policy has accepted.
        """
        spec = self._document.get("x-handling")
        if not isinstance(spec, Mapping) or not isinstance(spec.get("field"), str) or not isinstance(draft, Mapping):
            return None
        path = self._parse_path(spec["field"])
        value = _get_path(draft, [str(p) for p in path])
        if not isinstance(value, Mapping):
            return None
        when = spec.get("when")
        if isinstance(when, str) and value.get(when) is not True:
            return None
        node = self._walk(path)[-1]
        answers: dict[str, Any] = {}
        for key, answer in value.items():
            if key == when:
                continue
            child = (*path, key)
            if isinstance(answer, list):
                answers[key] = [{"code": a, "label": self._label((*child, 0), a)} for a in answer if isinstance(a, str)]
            elif isinstance(answer, str):
                answers[key] = answer
        return {
            "policy": self.id,
            "rule": self.rule_for(path),
            "title": self._title(node) or spec["field"],
            "field": spec["field"],
            **answers,
        }

    # -- schema errors → problems -------------------------------------------------------------------

    def _problems_for(self, error: ValidationError, depth: int = 0) -> Iterator[Problem]:
        path: FieldPath = tuple(error.absolute_path)
        keyword = error.validator if isinstance(error.validator, str) else None
        schema = error.schema if isinstance(error.schema, Mapping) else {}
        instance = error.instance
        if keyword == "required":
            required: Any = error.validator_value  # a list of names; set on every error a validator yields
            if isinstance(instance, dict):
                for name in required:
                    if isinstance(name, str) and name not in instance:
                        yield self._problem((*path, name), "required", schema, error)
            return
        if keyword == "additionalProperties" and error.validator_value is False:
            yield from self._unknown_fields(path, schema, instance)
            return
        if keyword == "type" and ("enum" in schema or "const" in schema):
            # A wrongly-typed value fails the enum/const too, whose message lists what is allowed.
            return
        if keyword in ("anyOf", "oneOf") and error.context and depth < 4:
            best = best_match(error.context)
            if best is not None:
                yield from self._problems_for(best, depth + 1)
                return
        yield self._problem(path, keyword, schema, error)

    def _unknown_fields(self, path: FieldPath, schema: Mapping[str, Any], instance: Any) -> Iterator[Problem]:
        if not isinstance(instance, dict):
            return
        known = schema.get("properties", {})
        patterns = [p for p in schema.get("patternProperties", {}) if isinstance(p, str)]
        for key in instance:
            if key in known or any(re.search(p, key) for p in patterns):
                continue
            if _SAFE_KEY.fullmatch(key):
                # The key is code-generated by the client, and its path tells a developer what to remove.
                yield Problem(
                    self.rule_for(path),
                    _field_name((*path, key)),
                    self._sentence(path, "contains a field that is not part of this policy's form; remove it"),
                    "unknown_field",
                )
            else:
                yield Problem(
                    self.rule_for(path),
                    _field_name(path),
                    self._sentence(path, "contains a field that is not part of this policy's form; remove it"),
                    "unknown_field",
                )

    def _problem(
        self, path: FieldPath, keyword: str | None, schema: Mapping[str, Any], error: ValidationError
    ) -> Problem:
        spec = schema.get("x-errors", {}).get(keyword) if isinstance(schema.get("x-errors"), Mapping) else None
        spec = spec if isinstance(spec, Mapping) else {}
        code = spec.get("code") if isinstance(spec.get("code"), str) else None
        message = spec.get("message") if isinstance(spec.get("message"), str) else None
        # A condition of the lawful basis checked on another rule's field (paragraph 18's consent tests on rule 4's
        # answer) is reported under the rule whose test failed: the policy names that rule's section in
        # ``x-errors.*.rule_of``, so an edition that renumbers its rules needs no change here.
        rule_of = spec.get("rule_of")
        return Problem(
            self.rule_for(rule_of) if isinstance(rule_of, str) else self.rule_for(path),
            _field_name(path),
            self._sentence(path, message or self._default_predicate(path, keyword, error)),
            code or _DEFAULT_CODES.get(keyword or "", "invalid"),
        )

    def _default_predicate(self, path: FieldPath, keyword: str | None, error: ValidationError) -> str:
        """Plain-English predicates built only from the schema, never from the submitted value."""
        expected: Any = error.validator_value  # any JSON value; set on every error a validator yields
        if keyword == "required":
            return "must be filled in"
        if keyword == "type":
            types = [expected] if isinstance(expected, str) else list(expected)
            return "must be " + " or ".join(_TYPE_WORDS.get(t, str(t)) for t in types)
        if keyword == "enum":
            return "must be one of: " + ", ".join(self._label(path, value) for value in expected)
        if keyword == "const":
            if isinstance(expected, bool):
                return "must be yes" if expected else "must be no"
            return f"must be '{self._label(path, expected)}'"
        if keyword == "maxLength":
            return f"must be at most {expected:,} characters"
        if keyword == "minLength":
            return "must not be empty" if expected == 1 else f"must be at least {expected:,} characters"
        if keyword == "pattern":
            return "is not in the expected format"
        if keyword == "minItems":
            return "must include at least one item" if expected == 1 else f"must include at least {expected} items"
        if keyword == "maxItems":
            return f"must include at most {expected} items"
        if keyword == "uniqueItems":
            return "must not list the same item twice"
        if keyword in ("not", None):
            return "is not allowed here"
        return "is not valid for this policy"

    # -- cross-field rules the schema cannot state ----------------------------------------------------

    def _cross_field_problems(self, draft: dict[str, Any]) -> Iterator[Problem]:
        """Rules that compare values between fields, which JSON Schema cannot do.

        Codes: ``duplicate_subject_ref`` (subjects.N.ref), ``at_risk_not_a_subject``
        (rules.5_safety_wellbeing.at_risk.N), ``p18_adult_not_at_risk`` (rules.5_safety_wellbeing.at_risk).
        """
        subjects = _get_path(draft, _SUBJECTS)
        subject_list = subjects if isinstance(subjects, list) else []
        first_index: dict[str, int] = {}
        listed: list[tuple[int, str, Any]] = []
        for index, subject in enumerate(subject_list):
            if not isinstance(subject, dict) or not isinstance(subject.get("ref"), str):
                continue
            ref = subject["ref"]
            listed.append((index, ref, subject.get("role")))
            if ref in first_index:
                path = (*_SUBJECTS, index, "ref")
                yield self._code_problem(
                    path,
                    f"must differ from subject {first_index[ref] + 1}'s reference: list each person once",
                    "duplicate_subject_ref",
                )
            else:
                first_index[ref] = index

        at_risk = _get_path(draft, _AT_RISK)
        if not isinstance(at_risk, list):
            return
        if isinstance(subjects, list):
            for index, ref in enumerate(at_risk):
                if isinstance(ref, str) and ref not in first_index:
                    yield self._code_problem(
                        (*_AT_RISK, index),
                        "must be the reference of one of the people listed as subjects",
                        "at_risk_not_a_subject",
                    )
        if _get_path(draft, _SCHEDULE_1) == _P18:
            at_risk_refs = {ref for ref in at_risk if isinstance(ref, str)}
            for index, ref, role in listed:
                if role == _ADULT_AT_RISK and ref not in at_risk_refs:
                    yield self._code_problem(
                        _AT_RISK,
                        f"must include subject {index + 1} (an adult at risk): DPA 2018 Schedule 1 paragraph 18 "
                        "(safeguarding) applies to an adult only where that adult is at risk",
                        "p18_adult_not_at_risk",
                    )

    def _lawful_basis_rule(self) -> int | None:
        return self.rule_for(_LAWFUL_BASIS)

    def _consent_problems(self, draft: dict[str, Any]) -> Iterator[Problem]:
        """Each person's consent, against the lawful basis (one person's agreement never covers another's data).

        Codes: ``consent_for_another`` and ``consent_basis_needs_each_consent`` (Article 6(1)(a) consent as the
        basis), ``schedule_1_consent_given`` (paragraphs 10, 18, 19 apply only to sharing without consent),
        ``p18_reason_not_in_18_2`` (a person not asked for a reason outside 18(2)), ``p18_refused_needs_18_2_reason``
        (a person refused), ``p18_nobody_under_18_or_at_risk`` (paragraph 18 protects only someone under 18 or an
        adult at risk). All are reported under the lawful-basis rule: it is the condition's own test that fails.
        """
        checks = self._checks
        rule = self._lawful_basis_rule()
        basis = _get_path(draft, _LAWFUL_BASIS)
        basis = basis if isinstance(basis, dict) else {}
        article_6, article_9, condition = (_text(basis.get(k)) for k in ("article_6", "article_9", "dpa_schedule_1"))
        subjects = _get_path(draft, _SUBJECTS)
        people = [(i, s) for i, s in enumerate(subjects) if isinstance(s, dict)] if isinstance(subjects, list) else []

        def problem(path: FieldPath, predicate: str, code: str) -> Problem:
            return Problem(rule, _field_name(path), self._sentence(path, predicate), code)

        overall = _text(_get_path(draft, _CONSENT))
        if overall is not None and overall == checks.per_person:
            for index, subject in people:
                if not isinstance(subject.get("consent"), dict):
                    path = (*_SUBJECTS, index, "consent")
                    yield Problem(
                        self.rule_for(_CONSENT),
                        _field_name(path),
                        self._sentence(path, "must be filled in: you said the answer differs from person to person"),
                        "per_person_needs_each_record",
                    )

        if article_6 is not None and article_6 == checks.consent_basis:
            for index, subject in people:
                record = subject.get("consent")
                if not isinstance(record, dict):
                    if len(people) > 1:
                        yield problem(
                            (*_SUBJECTS, index, "consent"),
                            "must record this person's own agreement: with consent as the lawful basis, each person "
                            "whose information is shared must agree for themselves (or through someone who can agree "
                            "for them); one person's consent never covers another's information",
                            "consent_for_another",
                        )
                elif record.get("who") == "best_interests" or record.get("response") != "given":
                    yield problem(
                        (*_SUBJECTS, index, "consent"),
                        "must show this person agreed (themselves, or through someone with parental responsibility, "
                        "an attorney or a deputy): consent as the lawful basis needs every person's own consent, and a "
                        "best-interests decision is not consent",
                        "consent_basis_needs_each_consent",
                    )

        paragraph = checks.without_consent.get(condition) if condition is not None else None
        if paragraph is not None:
            # With explicit consent as the Article 9 condition, the person who agreed is covered by their consent and
            # the Schedule 1 condition serves the others' (e.g. criminal offence) information.
            # Without special category data the condition serves only criminal offence data, which is about the
            # alleged perpetrator: another person's agreement (a mother's for her child) does not touch it.
            covered_by_consent = article_9 is None or article_9 == checks.explicit_consent
            tests_18_2 = bool(checks.reasons_18_2) and paragraph != "10"
            refused = False
            for index, subject in people:
                record = subject.get("consent")
                if not isinstance(record, dict):
                    continue
                offender = subject.get("role") == "alleged_perpetrator"
                if record.get("response") == "given" and (offender or not covered_by_consent):
                    yield problem(
                        (*_SUBJECTS, index, "consent", "response"),
                        f"rules out paragraph {paragraph} for this person's information: it applies only to sharing "
                        "without consent, and they agreed — rely on their explicit consent (Article 9(2)(a)) for it",
                        "schedule_1_consent_given",
                    )
                if not tests_18_2:
                    continue
                reason = _text(record.get("not_sought_reason"))
                if record.get("sought") is False and reason is not None and reason not in checks.reasons_18_2:
                    yield problem(
                        (*_SUBJECTS, index, "consent", "not_sought_reason"),
                        f"must be one of the paragraph 18(2) reasons when relying on paragraph {paragraph} without "
                        "this person's consent: they cannot give it, it cannot reasonably be obtained, or seeking "
                        "it would prejudice the protection",
                        "p18_reason_not_in_18_2",
                    )
                refused = refused or record.get("response") == "refused"
            if refused and basis.get("consent_reason_18_2") is None:
                yield problem(
                    (*_LAWFUL_BASIS, "consent_reason_18_2"),
                    f"must be filled in: a person refused, and paragraph {paragraph} still applies only for one of the "
                    "paragraph 18(2) reasons",
                    "p18_refused_needs_18_2_reason",
                )

        if condition is not None and condition == checks.protects_only_condition:
            at_risk = _get_path(draft, _AT_RISK)
            named = {r for r in at_risk if isinstance(r, str)} if isinstance(at_risk, list) else set()
            # Only references that are subjects count here; any other is already refused as not a subject.
            refs = named & {ref for _, s in people if (ref := _text(s.get("ref"))) is not None}
            protected = [
                s
                for _, s in people
                if _text(s.get("ref")) in refs
                and (_text(s.get("role")) in checks.protects_only_roles or _under_18(s.get("age_band")))
            ]
            if refs and not protected:
                yield problem(
                    _AT_RISK,
                    "must include a child (under 18) or an adult at risk: paragraph 18 protects only them, not, for "
                    "example, a carer without care and support needs — rely on another condition",
                    "p18_nobody_under_18_or_at_risk",
                )

    def _sharer_problems(self, draft: dict[str, Any], context: SharerContext | None) -> Iterator[Problem]:
        """Rules that depend on who the sharer is (organisation type, appropriate policy document).

        Codes: ``legitimate_interests_public_authority``, ``health_social_care_police``,
        ``schedule_1_needs_policy_document``.
        """
        if context is None or context.org_type is None:
            return
        checks = self._checks
        rule = self._lawful_basis_rule()
        basis = _get_path(draft, _LAWFUL_BASIS)
        if not isinstance(basis, dict) or draft.get("decision") != "share":
            return

        def problem(key: str, predicate: str, code: str) -> Problem:
            path = (*_LAWFUL_BASIS, key)
            return Problem(rule, _field_name(path), self._sentence(path, predicate), code)

        if _text(basis.get("article_6")) in checks.not_for_public_authorities and context.org_type in PUBLIC_ORG_TYPES:
            yield problem(
                "article_6",
                "must not be legitimate interests or recognised legitimate interest: your organisation is a public "
                "authority, and UK GDPR Article 6(1) does not let a public authority rely on them for its own tasks "
                "— use public task",
                "legitimate_interests_public_authority",
            )
        if _text(basis.get("article_9")) in checks.not_for_police and context.org_type == "police":
            yield problem(
                "article_9",
                "must not be health or social care (Article 9(2)(h)) for the police: policing purposes are not health "
                "or social care — use substantial public interest with paragraph 10 or 18",
                "health_social_care_police",
            )
        if (
            _text(basis.get("dpa_schedule_1")) in checks.needs_policy_document
            and basis.get("policy_document") is None
            and context.policy_document is None
        ):
            yield problem(
                "policy_document",
                "must be filled in: this Schedule 1 condition is met only while your organisation has an appropriate "
                "policy document (DPA 2018 Schedule 1 Part 4), and none is configured for it",
                "schedule_1_needs_policy_document",
            )

    def _safety_net_problems(self, draft: dict[str, Any]) -> Iterator[Problem]:
        """The policy's ``x-safety-nets``: reasons never enough on their own, and the release it requires."""
        for net in self._safety_nets:
            if not net.applies(draft):
                continue
            words = {"share_with": " and ".join(net.services(draft)), "principle": net.principle}
            if _get_path(draft, [str(s) for s in net.require_field]) is not None:
                continue  # released: another route protects them, or a named senior signed it off
            # "Never enough on their own": these reasons are refused unless the release says why it is safe.
            reason = _get_path(draft, [str(s) for s in net.refuse_field])
            if isinstance(reason, str) and reason in net.refuse_values:
                yield self._code_problem(net.refuse_field, _fill(net.refuse_message, words), net.refuse_code)
            yield self._code_problem(net.require_field, _fill(net.require_message, words), net.require_code)

    def _code_problem(self, path: FieldPath, predicate: str, code: str) -> Problem:
        return Problem(self.rule_for(path), _field_name(path), self._sentence(path, predicate), code)

    # -- schema walking and wording ------------------------------------------------------------------

    @staticmethod
    def _parse_path(path: str) -> FieldPath:
        if not path:
            return ()
        return tuple(int(part) if part.isdigit() else part for part in path.split("."))

    def _deref(self, node: Mapping[str, Any], key: str) -> Any:
        """``node[key]``, following local ``$ref``s: 2020-12 lets ``$ref`` sit beside annotations."""
        for _ in range(_MAX_REF_HOPS):
            if key in node:
                return node[key]
            ref = node.get("$ref")
            if not isinstance(ref, str) or not ref.startswith("#"):
                return None
            target: Any = self._document
            for token in ref[1:].split("/")[1:]:
                token = token.replace("~1", "/").replace("~0", "~")
                target = target.get(token) if isinstance(target, Mapping) else None
            if not isinstance(target, Mapping):
                return None
            node = target
        return None

    def _walk(self, path: Sequence[str | int]) -> list[Mapping[str, Any] | None]:
        """Schema nodes for the root and each path segment (None once the path leaves the schema)."""
        node: Mapping[str, Any] | None = self._document
        nodes: list[Mapping[str, Any] | None] = [node]
        for segment in path:
            child: Any = None
            if node is not None:
                if isinstance(segment, int):
                    prefix = self._deref(node, "prefixItems")
                    if isinstance(prefix, list) and segment < len(prefix):
                        child = prefix[segment]
                    else:
                        child = self._deref(node, "items")
                else:
                    properties = self._deref(node, "properties")
                    child = properties.get(segment) if isinstance(properties, Mapping) else None
            node = child if isinstance(child, Mapping) else None
            nodes.append(node)
        return nodes

    def _title(self, node: Mapping[str, Any] | None) -> str | None:
        if node is None:
            return None
        title = self._deref(node, "title")
        return title if isinstance(title, str) and title else None

    def _label(self, path: FieldPath, value: Any) -> str:
        """Human label for an allowed value (from the schema's ``x-labels``); never a submitted value."""
        node = self._walk(path)[-1]
        labels = self._deref(node, "x-labels") if node is not None else None
        key = json.dumps(value) if isinstance(value, bool) else value
        label = labels.get(key) if isinstance(labels, Mapping) and isinstance(key, str) else None
        if isinstance(label, str):
            return label
        return value if isinstance(value, str) else json.dumps(value)

    def field_title(self, path: Sequence[str | int]) -> str | None:
        """The schema's title for the field at `path` (e.g. ``rules.1_lawful_basis.article_6``), for reports
        that must speak the policy's words rather than its keys; None when the path is not in the schema."""
        return self._title(self._walk(tuple(path))[-1])

    def value_label(self, path: Sequence[str | int], value: Any) -> str | None:
        """The policy's ``x-labels`` wording for an allowed value at `path` (``public_task`` → "Public task —
        Art 6(1)(e)"), or None when the schema gives none (free text is shown as typed)."""
        node = self._walk(tuple(path))[-1]
        labels = self._deref(node, "x-labels") if node is not None else None
        key = json.dumps(value) if isinstance(value, bool) else value
        label = labels.get(key) if isinstance(labels, Mapping) and isinstance(key, str) else None
        return label if isinstance(label, str) else None

    def _sentence(self, path: FieldPath, predicate: str) -> str:
        """``"Subject 2: Reference must be …."`` — the field's title plus the array items it sits in."""
        nodes = self._walk(path)
        context: list[str] = []
        label = "The justification"
        for position, segment in enumerate(path):
            node = nodes[position + 1]
            last = position == len(path) - 1
            if isinstance(segment, int):
                text = f"{self._title(node) or 'Item'} {segment + 1}"
                if last:
                    label = text
                else:
                    context.append(text)
            elif last:
                label = self._title(node) or "This field"
        sentence = f"{label} {predicate.rstrip('.')}."
        return f"{', '.join(context)}: {sentence}" if context else sentence

    @staticmethod
    def _finish(problems: Iterable[Problem]) -> list[Problem]:
        unique = sorted(set(problems), key=_sort_key)
        if len(unique) <= MAX_PROBLEMS:
            return unique
        hidden = len(unique) - MAX_PROBLEMS
        return [
            *unique[:MAX_PROBLEMS],
            Problem(None, "", f"{hidden:,} further problems were not listed; fix the ones above first.", "truncated"),
        ]


def _text(value: Any) -> str | None:
    """A submitted code, or None when it is not text (compared only, never echoed)."""
    return value if isinstance(value, str) else None


def _under_18(age_band: Any) -> bool:
    """Whether an age band such as ``16-17`` lies wholly under 18 (``65+`` and unknown bands do not)."""
    if not isinstance(age_band, str):
        return False
    match = re.fullmatch(r"[0-9]{1,3}-([0-9]{1,3})", age_band)
    return match is not None and int(match.group(1)) < 18


@lru_cache(maxsize=1)
def _builtin_documents() -> tuple[tuple[str, str], ...]:
    folder = resources.files(__package__ or "gateway").joinpath("policies")
    return tuple(
        (entry.name, entry.read_text(encoding="utf-8"))
        for entry in sorted(folder.iterdir(), key=lambda e: e.name)
        if entry.is_file() and entry.name.endswith(".json")
    )


def _load_documents(documents: Iterable[tuple[str, str]]) -> list[Policy]:
    policies = []
    for name, text in documents:
        policy = Policy.from_json(text)
        if name != f"{policy.id}.json":
            raise ValueError(f"policy file {name} holds policy {policy.id!r}")
        policies.append(policy)
    return policies


def load_builtin_policies() -> list[Policy]:
    """The policies packaged in ``gateway/policies``; a file must be named after its policy id."""
    return _load_documents(_builtin_documents())


@lru_cache(maxsize=1)
def _archived_documents() -> tuple[tuple[str, str], ...]:
    folder = resources.files(__package__ or "gateway").joinpath("policies").joinpath("archive")
    if not folder.is_dir():
        return ()
    return tuple(
        (entry.name, entry.read_text(encoding="utf-8"))
        for entry in sorted(folder.iterdir(), key=lambda e: e.name)
        if entry.is_file() and entry.name.endswith(".json")
    )


def load_archived_policies() -> list[Policy]:
    """Superseded editions kept in ``gateway/policies/archive`` (``<id>@<version>.json``).

    Ledger entries pin the policy version and digest they were checked against; a later version of the same
    policy (issue 19's lawful-basis tests) must not make those entries unreadable, so the old documents stay
    loadable for display and for re-checking, though new drafts are always checked against the current version.
    """
    policies = []
    for name, text in _archived_documents():
        policy = Policy.from_json(text)
        if name != f"{policy.id}@{policy.version}.json":
            raise ValueError(f"archived policy file {name} holds {policy.id}@{policy.version}")
        policies.append(policy)
    return policies


#: A policy file larger than this is refused (hmg-2018 is about 50 KB).
MAX_POLICY_FILE_BYTES: Final = 2 * 1024 * 1024


def load_policy_dir(folder: str | Path) -> list[Policy]:
    """Further editions from a deployment's own folder (``[policies] dir``): every ``<id>.json`` in it."""
    documents = []
    for entry in sorted(Path(folder).iterdir(), key=lambda e: e.name):
        if entry.is_file() and entry.name.endswith(".json"):
            if entry.stat().st_size > MAX_POLICY_FILE_BYTES:
                raise ValueError(f"policy file {entry.name} is larger than {MAX_POLICY_FILE_BYTES} bytes")
            documents.append((entry.name, entry.read_text(encoding="utf-8")))
    return _load_documents(documents)


class PolicyRegistry:
    """The policies a gateway accepts, and which one applies when a draft does not say."""

    def __init__(
        self,
        policies: Iterable[Policy],
        default: str,
        org_defaults: Mapping[str, str] | None = None,
        archived: Iterable[Policy] = (),
    ) -> None:
        self._archived = {(p.id, p.version): p for p in archived}
        by_id: dict[str, Policy] = {}
        for policy in policies:
            if policy.id in by_id:
                raise ValueError(f"duplicate policy id {policy.id!r}")
            by_id[policy.id] = policy
        self._policies = by_id
        self._default = self.get(default)
        self._org_defaults: dict[str, Policy] = {}
        for org, policy_id in (org_defaults or {}).items():
            if policy_id not in by_id:
                raise ValueError(f"organisation {org!r}: unknown default policy {policy_id!r}")
            self._org_defaults[org] = by_id[policy_id]
        for policy in by_id.values():
            for target in policy.mapped_policies():
                if target in by_id:
                    known = {n for s in by_id[target].sections() if (n := s.rule) is not None}
                    for rule, targets in policy.rule_map(target).items():
                        if not set(targets) <= known:
                            raise ValueError(f"{policy.id} x-rule-map: rule {rule} maps to a rule {target} lacks")

    @classmethod
    def builtin(
        cls, default: str = "hmg-2018", org_defaults: Mapping[str, str] | None = None, extra_dir: str | None = None
    ) -> PolicyRegistry:
        """Registry of the packaged policies, plus a deployment's own folder of editions when given."""
        extra = load_policy_dir(extra_dir) if extra_dir else []
        return cls([*load_builtin_policies(), *extra], default, org_defaults, load_archived_policies())

    def version(self, policy_id: str, version: str) -> Policy:
        """A policy as it was at ``version`` (the current one, or a superseded one kept in the archive).

        What a ledger entry's ``policy`` reference (id, version, digest) is resolved with; raises UnknownPolicy.
        """
        current = self._policies.get(policy_id) if isinstance(policy_id, str) else None
        if current is not None and current.version == version:
            return current
        old = self._archived.get((policy_id, version))
        if old is None:
            raise UnknownPolicy("unknown policy version")
        return old

    def by_digest(self, digest: str) -> Policy | None:
        """The loaded or archived policy whose canonical digest is ``digest`` (a ledger entry's pin), if any."""
        for policy in (*self._policies.values(), *self._archived.values()):
            if policy.digest == digest:
                return policy
        return None

    @property
    def default(self) -> Policy:
        return self._default

    def default_for(self, org: str | None) -> Policy:
        """The policy an organisation works to (``[policies] org_default``), else the gateway's default."""
        if org is not None and org in self._org_defaults:
            return self._org_defaults[org]
        return self._default

    def org_defaults(self) -> dict[str, str]:
        return {org: policy.id for org, policy in sorted(self._org_defaults.items())}

    def all(self) -> list[Policy]:
        """Every policy, the default first, then by id."""
        return [self._default, *(self._policies[i] for i in self.ids() if i != self._default.id)]

    def codes(self, path: str) -> tuple[str, ...]:
        """Every code any loaded policy allows at ``path`` (in first-seen order): the auditor's filter values."""
        seen: dict[str, None] = {}
        for policy in self.all():
            seen.update(dict.fromkeys(policy.codes_at(path)))
        return tuple(seen)

    @property
    def theme_base(self) -> Policy:
        """The edition whose rules are the common themes: the one the others' ``x-rule-map`` maps onto."""
        for policy in self.all():
            for target in policy.mapped_policies():
                if target in self._policies:
                    return self._policies[target]
        return self._default

    def themes(self, policy_id: str, rule: int | None) -> list[dict[str, Any]]:
        """The common themes (rules of ``theme_base``) a rule of ``policy_id`` corresponds to, via ``x-rule-map``.

        The base edition's own rules are their own theme; an edition that does not map onto the base (or an
        unknown policy) has none, so a report shows its rules under their own titles only.
        """
        base = self.theme_base
        if rule is None or policy_id not in self._policies:
            return []
        if policy_id == base.id:
            numbers: tuple[int, ...] = (rule,)
        else:
            numbers = self._policies[policy_id].rule_map(base.id).get(rule, ())
        titles = base.rule_titles()
        return [{"policy": base.id, "rule": n, "title": titles.get(n, f"Rule {n}")} for n in numbers]

    def get(self, policy_id: str) -> Policy:
        """Raises UnknownPolicy (without echoing the requested id, which may be client garbage)."""
        if isinstance(policy_id, str) and policy_id in self._policies:
            return self._policies[policy_id]
        raise UnknownPolicy(f"unknown policy; known policies: {', '.join(self.ids()) or 'none'}")

    def ids(self) -> list[str]:
        return sorted(self._policies)

    def for_draft(self, draft: Any, org: str | None = None) -> Policy:
        """The policy a draft names in ``policy``, else the organisation's default; an unknown name is refused."""
        if isinstance(draft, Mapping) and "policy" in draft:
            return self.get(draft["policy"])
        return self.default_for(org)


def validate(
    registry: PolicyRegistry, draft: Any, org: str | None = None, context: SharerContext | None = None
) -> tuple[Policy | None, list[Problem]]:
    """Pick the draft's policy (or ``org``'s default) and check it; an unknown policy is one problem at ``policy``."""
    try:
        policy = registry.for_draft(draft, org)
    except UnknownPolicy:
        message = f"Policy must be one this gateway knows: {', '.join(registry.ids())}."
        return None, [Problem(None, "policy", message, "unknown_policy")]
    return policy, policy.validate(draft, context)
