"""The shares route reads a plain Content-Disposition without aiohttp's full parser
(`api/shares.parse_content_disposition`, put in aiohttp's multipart module); wherever that shortcut answers, it
must give aiohttp's own answer, and every other header must still go to aiohttp."""

from __future__ import annotations

import pytest
from aiohttp import multipart
from hypothesis import given
from hypothesis import strategies as st

from gateway.api import shares
from gateway.api.shares import _PLAIN_DISPOSITION

#: aiohttp's own parser (the shares module keeps it for every header the shortcut does not take).
full_parse = shares._full_parse


def aiohttp_name(header: str) -> str | None:
    _, params = full_parse(header)
    return multipart.content_disposition_filename(params, "name")


def test_aiohttp_s_reader_uses_the_shortcut() -> None:
    assert multipart.parse_content_disposition is shares.parse_content_disposition
    assert full_parse.__module__ == "aiohttp.multipart"


PIECES = st.sampled_from(
    [
        "form-data",
        "attachment",
        "; ",
        ";",
        " ",
        "name=",
        "name*=",
        "filename=",
        "filename*=UTF-8''",
        '"',
        "\\",
        "share",
        "payload",
        "x",
        "*0",
        "%41",
        "blob",
        ".age",
        "'",
        "=",
    ]
)


# Most generated headers are malformed, and aiohttp's parser warns about each: expected here, not news.
@pytest.mark.filterwarnings("ignore::aiohttp.multipart.BadContentDispositionHeader")
@pytest.mark.filterwarnings("ignore::aiohttp.multipart.BadContentDispositionParam")
@given(st.lists(PIECES, max_size=14).map("".join))
def test_shortcut_agrees_with_aiohttp(header: str) -> None:
    assert shares.parse_content_disposition(header) == full_parse(header)
    plain = _PLAIN_DISPOSITION.fullmatch(header)
    if plain:
        assert plain.group(1) == aiohttp_name(header)


def test_the_headers_clients_send_take_the_shortcut() -> None:
    for header, name in [
        ('form-data; name="share"', "share"),
        ('form-data; name="payload"; filename="payload"', "payload"),
        ('form-data; name="payload"; filename="blob"', "payload"),
        ('form-data; name="payload"; filename="report 2026-12.pdf"', "payload"),
    ]:
        plain = _PLAIN_DISPOSITION.fullmatch(header)
        assert plain and plain.group(1) == name == aiohttp_name(header)
        assert shares.parse_content_disposition(header) == full_parse(header)


def test_anything_else_is_left_to_aiohttp() -> None:
    for header in [
        'form-data; name="share\\"x"',
        "form-data; name*=UTF-8''share",
        'form-data;name="share"',
        'form-data; name="share"; filename="a;b"',
        'form-data; name="other"',
        'attachment; name="share"',
    ]:
        assert _PLAIN_DISPOSITION.fullmatch(header) is None
