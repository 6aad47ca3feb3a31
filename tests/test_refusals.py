"""The use cases' refusals (gateway/refusals.py) and the one table that makes them HTTP (errors.REFUSAL_STATUS)."""

from __future__ import annotations

import json

import pytest

from gateway import errors, inputs, refusals

KINDS = [k for k in vars(refusals).values() if isinstance(k, type) and issubclass(k, refusals.Refusal)]


@pytest.mark.parametrize("kind", [k for k in KINDS if k is not refusals.Refusal], ids=lambda k: k.__name__)
def test_every_refusal_kind_has_its_own_status(kind: type[refusals.Refusal]) -> None:
    """A new kind without a row would fall back to 422 silently: each kind is in the table."""
    assert kind in errors.REFUSAL_STATUS


def test_a_refusal_keeps_the_wire_shape() -> None:
    exc = refusals.Invalid("invalid_share", "Bad.", "share.expires_in", limit=3)
    resp = errors.refusal_response(exc)
    assert resp.status == 422
    assert resp.text is not None
    assert json.loads(resp.text) == {
        "error": "invalid_share",
        "message": "Bad.",
        "field": "share.expires_in",
        "limit": 3,
    }
    assert "field" not in refusals.NotFound("not_found", "No.").body()


def test_a_subclass_takes_its_nearest_kinds_status() -> None:
    class Expired(refusals.Gone):
        pass

    assert errors.refusal_status(Expired("share_expired", "Gone.")) == 410


def test_rate_limited_says_when_in_the_body_and_the_header() -> None:
    resp = errors.refusal_response(refusals.RateLimited(2.2))
    assert resp.status == 429 and resp.headers["Retry-After"] == "3"
    assert resp.text is not None and json.loads(resp.text)["retry_after"] == 3


@pytest.mark.parametrize("value", [None, 3, "", "   \n", "x" * (inputs.MAX_TEXT + 1)])
def test_free_text_is_refused_the_same_way_everywhere(value: object) -> None:
    with pytest.raises(refusals.Invalid) as caught:
        inputs.text(value, "note", "invalid_acknowledgement")
    assert caught.value.field == "note" and caught.value.code == "invalid_acknowledgement"
    assert caught.value.message == f"note must be non-blank text of at most {inputs.MAX_TEXT} characters."


def test_free_text_is_kept_stripped_and_an_absent_reason_is_none() -> None:
    assert inputs.text("  seen, thank you \n", "note", "invalid_acknowledgement") == "seen, thank you"
    assert inputs.optional_reason(None) is None
    assert inputs.optional_reason(" wrong team ") == "wrong team"
    with pytest.raises(refusals.Invalid):
        inputs.optional_reason(" ")
