"""Ledger entries: canonical bytes are RFC 8785, and entries never carry content or secrets."""

from __future__ import annotations

import os
import time
from typing import Any

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.errors import DeadlineExceeded

from gateway.ledger.entry import canonical, format_time, parse_time, seal

ascii_keys = st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=127), max_size=8)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53) + 1, 2**53 - 1) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(ascii_keys, children, max_size=4),
    max_leaves=20,
)


@settings(max_examples=400)
@given(json_values)
def test_fast_path_matches_rfc8785(value: Any) -> None:
    assert canonical(value) == rfc8785.dumps(value)


@given(st.dictionaries(st.text(max_size=4), st.floats(allow_nan=False, allow_infinity=False), max_size=4))
def test_other_values_fall_back_to_rfc8785(value: Any) -> None:
    assert canonical(value) == rfc8785.dumps(value)


def test_canonical_form_is_sorted_and_compact() -> None:
    assert canonical({"b": 1, "a": [True, None, "é\n"]}) == '{"a":[true,null,"é\\n"],"b":1}'.encode()


def test_seal_fixes_the_index_inside_the_hashed_bytes() -> None:
    data, leaf = seal({"kind": "decision"}, 7)
    assert data == b'{"index":7,"kind":"decision"}'
    assert leaf != seal({"kind": "decision"}, 8)[1]


def test_times_are_fixed_width_utc() -> None:
    t = parse_time("2026-11-25T10:00:00.5+01:00")
    assert format_time(t) == "2026-11-25T09:00:00.500Z"


def test_sealed_entries_are_canonical(share_justification: dict[str, Any]) -> None:
    from gateway.ledger.entry import share_entry

    e = share_entry(
        time="2026-11-25T09:00:00.000Z",
        actor={"sub": "pät", "role": "practitioner", "org": None, "iss": "i"},
        share_id="sh_x",
        justification=share_justification,
        policy={"id": "hmg-2018", "version": "1", "digest": "d"},
        recipients=[{"id": "alice", "org": "MASH", "envelope_sha256": "00", "envelope_size": 2**40}],
        payload={"size": 2**40, "content_type": "text/plain", "hmac_sha256": "ab"},
        expires_at="x",
        max_downloads=None,
    )
    data, _ = seal(e, 3)
    assert data == rfc8785.dumps({**e, "index": 3})


def test_ci_profile_has_no_deadline() -> None:
    """conftest's "ci" profile (loaded when CI is set): a slow example on a loaded machine is not a failure,
    where Hypothesis's default 200 ms deadline makes it one."""
    if os.environ.get("CI") and not os.environ.get("HYPOTHESIS_PROFILE"):
        assert settings.default.deadline is None

    def under(profile: str) -> None:
        @settings(settings.get_profile(profile), max_examples=1, database=None)
        @given(st.just(0))  # nothing to shrink: one example, run once more to confirm a deadline failure
        def slow(_: int) -> None:
            time.sleep(0.25)

        slow()

    under("ci")
    under("repro")
    with pytest.raises(DeadlineExceeded):
        under("default")
