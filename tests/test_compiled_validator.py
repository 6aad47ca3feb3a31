"""Issue 15: the compiled (Rust) JSON Schema validator on the happy path never accepts what jsonschema refuses.

``Policy.validate`` asks ``jsonschema_rs`` first and runs jsonschema's ``iter_errors`` (which words every problem)
only when the compiled validator says invalid. If the compiled one accepted a draft jsonschema refuses, the draft
would pass with no problem at all: a security bug, not a speed detail. So every policy (current and archived) is
checked, differentially, over the domain examples, the lawful-basis situations in both editions, and thousands of
mutations of them (each field deleted, retyped, blanked with the characters Rust and Python disagree about, and
so on): wherever the compiled validator says valid, jsonschema must say valid too.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest
from jsonschema import Draft202012Validator

from gateway.justification import Policy, PolicyRegistry, load_archived_policies
from tests.test_lawful_bases import CASES, EDITIONS, context

FIXTURES = Path(__file__).parent / "fixtures" / "justifications"
REGISTRY = PolicyRegistry.builtin()
POLICIES = [REGISTRY.get(pid) for pid in REGISTRY.ids()] + load_archived_policies()
EXAMPLES = [json.loads(p.read_text()) for p in sorted(FIXTURES.glob("*.json"))]
SITUATIONS = [EDITIONS[edition](draft) for edition in sorted(EDITIONS) for _, _, draft, _, _ in CASES]

# Values that differ between engines or types: Python's `\S` refuses U+001C-U+001F and U+0085, Rust's accepts
# them (and the reverse for U+FEFF); `$` matches before a final newline in Python only; 1.0 is an integer to
# JSON Schema; True is not 1; integers beyond 64 bits; over-long text.
STRANGE: list[Any] = [
    "",
    " ",
    "\t\n",
    "\x1c",
    "\x1d\x1e\x1f",
    "\x85",
    "\ufeff",
    "\u2028",
    "a\n",
    "\n",
    "CASE-1\n",
    "2026-11-30\n",
    "2026-12-03T09:30:00Z\n",
    "x" * 4001,
    "\ud800",
    0,
    1,
    1.0,
    1.5,
    -1,
    10**40,
    True,
    False,
    None,
    [],
    {},
    [None],
]


def leaves(node: Any, path: tuple[str | int, ...] = ()) -> Iterator[tuple[str | int, ...]]:
    yield path
    if isinstance(node, dict):
        for key, value in node.items():
            yield from leaves(value, (*path, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from leaves(value, (*path, index))


def replaced(draft: Any, path: tuple[str | int, ...], value: Any, *, delete: bool = False) -> Any:
    out = json.loads(json.dumps(draft))  # the seeds are plain JSON: several times faster than deepcopy
    node = out
    for segment in path[:-1]:
        node = node[segment]
    if delete:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return out


#: The values the situations (each a few changes to an example) are mutated with: the engines' disagreements.
EDGES: list[Any] = ["\x1c", "\x85", "\ufeff", "a\n", "2026-11-30\n", 1.0, True, None]


def mutations(
    draft: dict[str, Any], texts: list[str], values: list[Any], share: tuple[int, int] = (0, 1)
) -> Iterator[Any]:
    """The draft itself and one-change variants of it: deleted, retyped, odd text, an extra key or item.

    ``share`` (i, n) mutates only every n-th field starting at i, so that the 98 situations (each a few changes
    to an example) are covered across them without running jsonschema 40,000 times.
    """
    yield draft
    for number, path in enumerate(list(leaves(draft))):
        if not path or number % share[1] != share[0]:
            continue
        node = draft
        for segment in path:
            node = node[segment]
        yield replaced(draft, path, None, delete=True)
        for value in values:
            yield replaced(draft, path, value)
        if isinstance(node, str):
            for text in texts:
                yield replaced(draft, path, text)
        if isinstance(node, dict):
            yield replaced(draft, path, {**node, "unexpected": "x"})
        if isinstance(node, list) and node:
            yield replaced(draft, path, [*node, node[0]])


def jsonschema_valid(policy: Policy, draft: Any) -> bool:
    return not any(True for _ in Draft202012Validator(policy.schema).iter_errors(draft))


def every_text(drafts: list[dict[str, Any]]) -> list[str]:
    """Each string the seeds hold (codes, references, dates), to move into other fields."""
    found: set[str] = set()
    for draft in drafts:
        for path in leaves(draft):
            node: Any = draft
            for segment in path:
                node = node[segment]
            if isinstance(node, str):
                found.add(node)
    return sorted(found)


@pytest.mark.parametrize("policy", POLICIES, ids=[f"{p.id}@{p.version}" for p in POLICIES])
def test_compiled_validator_never_accepts_what_jsonschema_refuses(policy: Policy) -> None:
    compiled = policy._fast
    assert compiled is not None, "the shipped policies must get the compiled fast path"
    texts = every_text(EXAMPLES)
    drafts = [d for seed in EXAMPLES for d in mutations(seed, texts, STRANGE)]
    if policy is REGISTRY.get(policy.id):  # the archived editions differ little: the examples suffice there
        drafts += [d for i, seed in enumerate(SITUATIONS) for d in mutations(seed, [], EDGES, (i % 6, 6))]
    reference = Draft202012Validator(policy.schema)
    seen = accepted = 0
    for draft in drafts:
        seen += 1
        if policy._schema_valid(draft):
            accepted += 1
            errors = [e.message for e in reference.iter_errors(draft)]
            assert errors == [], (policy.id, policy.version, json.dumps(draft, default=repr)[:400], errors[:3])
    # The test means something only if both verdicts occurred many times.
    assert seen > 5_000 and 50 < accepted < seen - 1_000, (seen, accepted)


def test_the_differential_test_can_fail_rusts_own_pattern_engine_accepts_a_blank_answer() -> None:
    """Without the Python ``pattern`` keyword the compiled validator would accept text made of U+001C alone
    as a non-blank answer; Policy.validate reports it blank, as jsonschema does."""
    policy = REGISTRY.get("hmg-2018")
    share = json.loads((FIXTURES / "justification-share.json").read_text())
    draft = replaced(share, ("purpose", "description"), "\x1c")
    naive = jsonschema_rs.Draft202012Validator(policy.schema, validate_formats=False, offline=True)
    assert naive.is_valid(draft) and not jsonschema_valid(policy, draft)
    assert not policy._schema_valid(draft)
    assert [p.code for p in policy.validate(draft)] == ["blank"]


@pytest.mark.parametrize(
    ("situation", "org", "draft", "provision", "expected"), CASES[:6], ids=[c[0] for c in CASES[:6]]
)
def test_the_same_problems_with_and_without_the_compiled_validator(
    situation: str, org: str, draft: dict[str, Any], provision: str, expected: set[str]
) -> None:
    """The slow path words the problems: the list is identical whichever validator answered first."""
    policy = REGISTRY.get("hmg-2018")
    broken = replaced(draft, ("purpose",), {"code": "nonsense"})
    for candidate in (draft, broken):
        fast = policy.validate(candidate, context(org))
        slow = Policy.from_document(policy.schema)
        object.__setattr__(slow, "_fast", None)
        assert [p.as_dict() for p in fast] == [p.as_dict() for p in slow.validate(candidate, context(org))]


def _conditions(policy: Policy) -> list[tuple[str, Any]]:
    """Every yes/no schema of the policy's safety nets: `when`, and each service's condition in `share_with`."""
    found: list[tuple[str, Any]] = []
    for net in policy.safety_nets:
        found.append((f"{net.id}.when", net.when))
        found += [(f"{net.id}.share_with[{n}]", c) for n, (c, _) in enumerate(net.share_with) if c is not None]
    return found


def test_safety_net_conditions_answer_as_jsonschema_does_both_ways() -> None:
    """A condition decides whether a safety net challenges a draft, and where to share instead: the compiled
    answer must be jsonschema's, yes and no alike, over the examples, the situations and their mutations."""
    texts = every_text(EXAMPLES)
    drafts = [d for seed in EXAMPLES for d in mutations(seed, texts, STRANGE)]
    drafts += [d for i, seed in enumerate(SITUATIONS) for d in mutations(seed, [], EDGES, (i % 6, 6))]
    checked = 0
    for policy in (REGISTRY.get(pid) for pid in REGISTRY.ids()):
        for name, condition in _conditions(policy):
            assert condition._fast is not None, f"{policy.id} {name}: the shipped conditions are compiled"
            reference = condition._python
            yes = 0
            for draft in drafts:
                answer = condition.is_valid(draft)
                assert answer == reference.is_valid(draft), (policy.id, name, json.dumps(draft, default=repr)[:400])
                yes += answer
            checked += 1
            # Meaningful only if the condition held for some drafts and not for others.
            assert 0 < yes < len(drafts), (policy.id, name, yes)
    assert checked >= 2
