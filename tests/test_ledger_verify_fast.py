"""The fast paths `ledger verify` takes over a million entries give exactly the answers of the exact ones.

`parse_canonical` (stdlib parser hooks + orjson's sorted-key encoder) against `canonical` (RFC 8785 via the
`rfc8785` package where needed); `CompactRange.push` against `append`; `entry_mac_checker` against
`entry_mac_ok`."""

from __future__ import annotations

import json
import os

import orjson
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.ledger.entry import canonical, parse_canonical
from gateway.ledger.mac import entry_mac, entry_mac_checker, entry_mac_ok
from gateway.ledger.merkle import CompactRange, leaf_hash


def _agrees(data: bytes) -> None:
    try:
        expected_value = json.loads(data)
    except ValueError:
        try:
            parse_canonical(data)
        except ValueError:
            return
        raise AssertionError("parse_canonical accepted what json refuses")
    value, verdict = parse_canonical(data)
    assert value == expected_value or (value != value)  # NaN never equals itself
    try:
        exact = canonical(expected_value) == data
    except Exception:  # rfc8785 refuses it (NaN, out-of-range integer): not canonical
        exact = False
    assert (exact if verdict is None else verdict) == exact


def test_orjson_escapes_like_rfc8785_over_the_basic_multilingual_plane() -> None:
    chars = [chr(c) for c in range(0x10000) if not 0xD800 <= c <= 0xDFFF]
    for i in range(0, len(chars), 512):
        block = "".join(chars[i : i + 512])
        value = {block: block, "k": [block[::-1]]}
        assert orjson.dumps(value, option=orjson.OPT_SORT_KEYS) == rfc8785.dumps(value)


def test_tricky_entries() -> None:
    for data in (
        b'{"a":1,"b":[true,null,"x"],"index":3}',
        b'{"b":1,"a":2}',  # key order
        b'{"a": 1}',  # whitespace
        b'{"a":1.0}',
        b'{"a":1}',
        b'{"a":1e21}',
        b'{"a":1E+21}',
        b'{"a":-0}',
        b'{"a":9007199254740991}',
        b'{"a":9007199254740993}',
        b'{"a":123456789012345678901234567890}',
        b'{"a":NaN}',
        b'{"a":"\\u00e9"}',
        '{"a":"é"}'.encode(),
        '{"\U0001f600":1,"\uff5e":2}'.encode(),  # UTF-16 order differs from code-point order
        '{"\uff5e":2,"\U0001f600":1}'.encode(),
        b'{"a":"\\ud800"}',  # lone surrogate escape
        b'{"a":"\\u001f\\n\\t"}',
        b'{"a":"\\u001F"}',
        b'{"a":1,"a":2}',  # duplicate key
        b'{"a":"\xff"}',  # not UTF-8
        b"[1,2]",
        b"not json",
    ):
        _agrees(data)


_json = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**60), 2**60) | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(_json, st.sampled_from(["rfc8785", "sorted", "python"]))
def test_agrees_with_canonical_on_random_values(value: object, encoding: str) -> None:
    try:
        if encoding == "rfc8785":
            data = rfc8785.dumps(value)
        elif encoding == "sorted":
            data = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
        else:
            data = json.dumps(value).encode()
    except Exception:
        return
    _agrees(data)


def test_push_and_append_build_the_same_tree() -> None:
    a, b = CompactRange(), CompactRange()
    for i in range(1037):
        leaf = leaf_hash(i.to_bytes(4, "big"))
        a.append(leaf)
        b.push(leaf)
        if i % 97 == 0:
            assert a.root() == b.root() and a.size == b.size
    assert a.to_bytes() == b.to_bytes()


def test_mac_checker_matches_entry_mac_ok() -> None:
    key = os.urandom(32)
    ok = entry_mac_checker(key)
    leaf = leaf_hash(b"x")
    good = entry_mac(key, 7, leaf)
    for index, mac in ((7, good), (8, good), (7, good[:-1] + bytes([good[-1] ^ 1])), (7, None), (7, good[:31])):
        assert ok(index, leaf, mac) == entry_mac_ok(key, index, leaf, mac)


def test_mac_checker_accepts_exactly_the_gateways_macs() -> None:
    """The checker's precomputed HMAC states give `entry_mac`'s bytes, for any key, index and leaf."""
    for _ in range(20):
        key = os.urandom(32)
        ok = entry_mac_checker(key)
        for index in (0, 1, 255, 2**32 + 5, 2**64 - 1):
            leaf = leaf_hash(os.urandom(16))
            mac = entry_mac(key, index, leaf)
            assert ok(index, leaf, mac)
            assert not ok(index, leaf, entry_mac(os.urandom(32), index, leaf))
