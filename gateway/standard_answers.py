"""An agreement's standard answers: the wording the partnership agreed for one kind of share (pure, no I/O).

Why they exist (issue 13): a routine referral asks about thirty questions, and most of the legal ones (the
lawful bases and statutory gateways, why the family is not told first, what is necessary and proportionate)
have the same answer for every referral of that kind. A data exchange agreement is where a partnership writes
those answers down and its data protection officers sign them; typing them again for each child costs a
practitioner minutes and adds nothing to the record. So an agreement version may carry sets of standard
answers, and the share panel offers each as a starting point that the practitioner must still confirm rule by
rule, exactly as "start from my last justification about this case" works. What is recorded does not change:
the share's justification holds every answer in full, and names the agreement version (with its document's
SHA-256) whose standard answers it started from, in its `agreements` list as before.

What a set may not hold is checked here, when the administrator records the agreement, not when a practitioner
uses it: nothing about a person (no case references, no subjects), no decision, and nothing the policy would
refuse. A set may leave questions out (those are for the practitioner to answer for each share), so a policy
problem that only says an answer is missing is allowed; any other problem under an answer the set gives is not.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Final

from .inputs import is_text
from .justification import Policy

__all__ = ["MAX_SETS", "MAX_TOTAL_BYTES", "StandardAnswersError", "check_standard_answers"]

#: What a set may answer: the purpose, the kinds of information and the golden rules' sections. Not the subjects,
#: the decision, the agreements or a disclosure elsewhere: those are each share's own.
ALLOWED_KEYS: Final = ("purpose", "data_categories", "rules")
MAX_SETS: Final = 10
MAX_TITLE: Final = 200
#: A set's answers as compact JSON: far above any policy's answers without the case's own texts.
MAX_ANSWERS_BYTES: Final = 16 * 1024
#: All sets together: they go whole into the agreement's ledger entry, which is at most 65,535 bytes.
MAX_TOTAL_BYTES: Final = 40 * 1024
#: The policy's definition of a case reference: a set that reaches one would name a person.
_REF_DEF: Final = "#/$defs/ref"
#: A policy problem that only says an answer is not there yet: the practitioner gives it for each share.
_MISSING: Final = frozenset({"required"})


class StandardAnswersError(ValueError):
    """A set of standard answers that cannot be recorded; `field` is the path in the agreement's fields."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def check_standard_answers(value: Any, policies: Mapping[str, Policy]) -> tuple[dict[str, Any], ...]:
    """The agreement's `standard_answers` checked against the current policies (`policies`: id -> Policy)."""
    if value is None:
        return ()
    if not isinstance(value, list | tuple) or len(value) > MAX_SETS:
        raise StandardAnswersError("standard_answers", f"standard_answers must be a list of at most {MAX_SETS} sets.")
    out: list[dict[str, Any]] = []
    titles: set[str] = set()
    total = 0
    for i, item in enumerate(value):
        where = f"standard_answers.{i}"
        if not isinstance(item, Mapping) or set(item) - {"title", "policy", "answers"}:
            raise StandardAnswersError(where, "Each set of standard answers has a title, a policy and its answers.")
        title = item.get("title")
        if not is_text(title, MAX_TITLE):
            raise StandardAnswersError(f"{where}.title", f"A set's title is non-blank text of at most {MAX_TITLE}.")
        title = " ".join(str(title).split())
        if title.casefold() in titles:
            raise StandardAnswersError(f"{where}.title", "Each set of standard answers needs its own title.")
        titles.add(title.casefold())
        policy_id = item.get("policy")
        policy = policies.get(policy_id) if isinstance(policy_id, str) else None
        if policy is None:
            raise StandardAnswersError(
                f"{where}.policy", f"policy must be one this gateway knows: {', '.join(sorted(policies))}."
            )
        answers = _answers(item.get("answers"), policy, f"{where}.answers")
        total += len(json.dumps(answers, separators=(",", ":"), ensure_ascii=False).encode())
        if total > MAX_TOTAL_BYTES:
            raise StandardAnswersError(
                "standard_answers", f"An agreement's standard answers must be at most {MAX_TOTAL_BYTES} bytes in all."
            )
        out.append({"title": title, "policy": policy.id, "answers": answers})
    return tuple(out)


def _answers(answers: Any, policy: Policy, where: str) -> dict[str, Any]:
    if not isinstance(answers, Mapping) or not answers:
        raise StandardAnswersError(where, "answers must be a JSON object with at least one answer.")
    unknown = sorted(set(answers) - set(ALLOWED_KEYS))
    if unknown:
        raise StandardAnswersError(
            f"{where}.{unknown[0][:64]}",
            f"Standard answers may only give {', '.join(ALLOWED_KEYS)}: the people, the decision and the agreements "
            "are each share's own.",
        )
    try:
        size = len(json.dumps(answers, separators=(",", ":"), ensure_ascii=False).encode())
    except (TypeError, ValueError):
        raise StandardAnswersError(where, "answers must be plain JSON.") from None
    if size > MAX_ANSWERS_BYTES:
        raise StandardAnswersError(where, f"A set's answers must be at most {MAX_ANSWERS_BYTES} bytes as JSON.")
    plain = json.loads(json.dumps(answers))
    for path in _given_paths(plain):
        if _names_a_person(policy.schema, path):
            raise StandardAnswersError(
                f"{where}.{'.'.join(path)}", "Standard answers may not name a person: that is each share's own answer."
            )
    draft = {"policy": policy.id, "decision": "share", **plain}
    given = [".".join(p) for p in _given_paths(plain)]
    for problem in policy.validate(draft, None):
        if problem.code in _MISSING:
            continue
        if any(
            problem.field == g or problem.field.startswith(g + ".") or g.startswith(problem.field + ".") for g in given
        ):
            raise StandardAnswersError(f"{where}.{problem.field}", problem.message)
    return dict(plain)


def _given_paths(doc: Any, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """Each answer's path (array items by index), leaves only."""
    if isinstance(doc, Mapping) and doc:
        for k, v in doc.items():
            yield from _given_paths(v, (*prefix, str(k)))
    elif isinstance(doc, list) and doc:
        for i, v in enumerate(doc):
            yield from _given_paths(v, (*prefix, str(i)))
    elif prefix:
        yield prefix


def _names_a_person(schema: Mapping[str, Any], path: Sequence[str]) -> bool:
    """Whether any schema branch the path can take is (or is inside) a case reference."""
    return any(node.get("$ref") == _REF_DEF for node in _nodes_at(schema, schema, list(path), 0))


def _nodes_at(root: Mapping[str, Any], node: Any, path: list[str], depth: int) -> Iterator[Mapping[str, Any]]:
    if not isinstance(node, Mapping) or depth > 64:
        return
    yield node
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/") and ref != _REF_DEF:
        target = root.get("$defs", {}).get(ref.removeprefix("#/$defs/"))
        yield from _nodes_at(root, target, path, depth + 1)
    for key in ("allOf", "anyOf", "oneOf"):
        for branch in node.get(key, ()) or ():
            yield from _nodes_at(root, branch, path, depth + 1)
    for key in ("then", "else"):
        yield from _nodes_at(root, node.get(key), path, depth + 1)
    if not path:
        return
    head, rest = path[0], path[1:]
    props = node.get("properties")
    if isinstance(props, Mapping) and head in props:
        yield from _nodes_at(root, props[head], rest, depth + 1)
    if head.isdigit() and isinstance(node.get("items"), Mapping):
        yield from _nodes_at(root, node["items"], rest, depth + 1)


# -- a share or decision that started from a set: what its record says about it ------------------------------

#: The fields of `started_from` in a share part or a decision's body.
STARTED_FROM_FIELDS: Final = ("agreement", "version", "set", "confirmed_rules")


def rules_answered(answers: Mapping[str, Any], policy: Policy) -> tuple[int, ...]:
    """The golden rules whose sections a set gives answers in (the ones the practitioner must confirm)."""
    given = set(answers.get("rules") or ())
    return tuple(sorted({s.rule for s in policy.sections() if s.key in given and s.rule is not None}))


def changed_answers(answers: Mapping[str, Any], justification: Mapping[str, Any]) -> list[str]:
    """The set's answers the justification does not keep as agreed (changed, or left out), by path. A list of
    choices is one answer; so is any value that is not an object."""
    out: list[str] = []

    def walk(agreed: Any, actual: Any, path: tuple[str, ...]) -> None:
        if isinstance(agreed, Mapping) and agreed:
            for k, v in agreed.items():
                walk(v, actual.get(k) if isinstance(actual, Mapping) else None, (*path, str(k)))
        elif agreed != actual:
            out.append(".".join(path))

    walk(answers, justification, ())
    return out


def started_from_record(
    value: Any,
    *,
    agreement: Any,
    policy: Policy,
    justification: Mapping[str, Any],
) -> dict[str, Any]:
    """What the ledger keeps of `started_from` (the agreement version and set a justification started from, and the
    rules the practitioner confirmed), with the agreed answers the justification changed, computed here rather than
    taken from the client. `agreement` is the named version (an `Agreement`), or None when the share names no such
    version. Raises StandardAnswersError with the field (below `started_from`)."""
    if not isinstance(value, Mapping) or set(value) - set(STARTED_FROM_FIELDS):
        raise StandardAnswersError("", f"started_from is an object with: {', '.join(STARTED_FROM_FIELDS)}.")
    if agreement is None:
        raise StandardAnswersError(
            "agreement", "started_from must name an agreement, and its version, that the justification names."
        )
    title = value.get("set")
    chosen = next((s for s in agreement.standard_answers if s.get("title") == title), None)
    if chosen is None:
        raise StandardAnswersError(
            "set", f"{agreement.title} (version {agreement.version}) has no such set of answers."
        )
    if chosen.get("policy") != policy.id:
        raise StandardAnswersError(
            "set", f"That set of answers is for the policy {chosen.get('policy')}, not this one."
        )
    confirmed = value.get("confirmed_rules")
    if (
        not isinstance(confirmed, list)
        or len(confirmed) > 20
        or not all(isinstance(n, int) and not isinstance(n, bool) for n in confirmed)
    ):
        raise StandardAnswersError("confirmed_rules", "confirmed_rules must list the rule numbers confirmed.")
    needed = rules_answered(chosen["answers"], policy)
    missing = sorted(set(needed) - set(confirmed))
    if missing:
        raise StandardAnswersError(
            "confirmed_rules",
            f"Each rule the agreed answers filled in must be confirmed; not confirmed: {', '.join(map(str, missing))}.",
        )
    return {
        "agreement": agreement.id,
        "version": agreement.version,
        "set": chosen["title"],
        "confirmed_rules": sorted(set(confirmed) & set(needed)),
        "changed": changed_answers(chosen["answers"], justification),
    }
