"""The ledger entry's bytes do not depend on how they are encoded (issue 15 speed): the fast encoder (orjson) and
the entry split around its index (encoded by the caller, joined by the writer) give, byte for byte, what the
stdlib encoder gives for `{**entry, "index": index}` — the bytes every existing ledger holds."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest

from gateway.ledger.entry import _dumps, _fast_dumps, join_encoded, seal, split_encode
from gateway.ledger.merkle import leaf_hash

_REFERENCE = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _reference(obj: Any) -> bytes:
    return _REFERENCE.encode(obj).encode()


def test_every_code_point_is_written_as_the_stdlib_writes_it() -> None:
    chars = [chr(c) for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF]
    for start in range(0, len(chars), 1024):
        text = "".join(chars[start : start + 1024])
        value = {"k": text, text[:4]: [text, 0, -1, True, False, None, 2**53 - 1, -(2**53 - 1)], "e": {}}
        assert _fast_dumps(value) == _reference(value), start


def test_keys_sort_as_the_stdlib_sorts_them() -> None:
    rnd = random.Random(15)
    pools = [(0x20, 0x7E), (0x80, 0x7FF), (0x800, 0xD7FF), (0xE000, 0xFFFF), (0x10000, 0x10FFFF)]

    def key() -> str:
        return "".join(chr(rnd.randint(*rnd.choice(pools))) for _ in range(rnd.randrange(0, 4)))

    for _ in range(3000):
        value = {key(): {key(): i} for i in range(6)}
        assert _fast_dumps(value) == _reference(value)


@pytest.mark.parametrize(
    "value",
    [2**64, -(2**63) - 1, 2**100, {"a": 2**70}],
    ids=["2^64", "-2^63-1", "2^100", "nested big int"],
)
def test_what_orjson_refuses_falls_back_to_the_same_bytes(value: Any) -> None:
    assert _fast_dumps(value) == _reference(value)


def test_what_the_stdlib_refuses_is_still_refused() -> None:
    """(Floats are the documented exception, see `_fast_dumps`: no entry holds one.)"""
    import dataclasses
    import datetime

    @dataclasses.dataclass
    class Point:
        x: int

    for value in [{"t": datetime.datetime(2026, 1, 1)}, {"d": datetime.date(2026, 1, 1)}, {"p": Point(1)}, {"b": b"x"}]:
        with pytest.raises(TypeError):
            _reference(value)
        with pytest.raises(TypeError):
            _fast_dumps(value)


ENTRIES: list[dict[str, Any]] = [
    {},
    {"a": 1},
    {"z": 1},
    {"index": 99},
    {"index": 99, "a": [], "z": {}},
    {"ind": 1, "indew": 2, "indexa": 3, "indey": 4, "Index": 5, "é": 6, "": 7},
    {"kind": "decision", "time": "2026-01-01T00:00:00.000Z", "purpose": {"description": 'Ç\n\t"\\\x01\u2028'}},
    {"actor": {"sub": "p"}, "justification": {"rules": {"x": [1, 2, {"y": None}]}}, "n": 2**80},
]


@pytest.mark.parametrize("entry", ENTRIES)
@pytest.mark.parametrize("index", [0, 1, 9, 10, 255, 1_000_000, 2**53 - 1])
def test_split_entries_join_into_the_bytes_sealed_before(entry: dict[str, Any], index: int) -> None:
    want = _reference({**entry, "index": index})
    parts = split_encode(entry)
    assert parts is not None
    assert join_encoded(parts, index) == want
    assert seal(entry, index) == (want, leaf_hash(want))
    assert _dumps({**entry, "index": index}) == want


def test_an_entry_with_a_non_string_key_is_sealed_whole() -> None:
    """(The stdlib cannot sort a non-string key beside "index" either: both refuse it, as before.)"""
    assert split_encode({1: "x"}) is None  # type: ignore[dict-item]
    with pytest.raises(TypeError):
        _reference({1: "x", "index": 3})
    with pytest.raises(TypeError):
        seal({1: "x"}, 3)  # type: ignore[dict-item]


@pytest.mark.parametrize("index", [-1, 2**53, True])
def test_an_impossible_index_is_refused(index: int) -> None:
    parts = split_encode({"a": 1})
    assert parts is not None
    with pytest.raises(ValueError):
        join_encoded(parts, index)
