"""The shares route reads a part's name from a plain Content-Disposition without aiohttp's full parser
(`api/shares._PLAIN_DISPOSITION`); wherever that shortcut answers, it must give aiohttp's own answer, and
every other header must still go to aiohttp."""

from __future__ import annotations

from aiohttp.multipart import content_disposition_filename, parse_content_disposition
from hypothesis import given
from hypothesis import strategies as st

from gateway.api.shares import _PLAIN_DISPOSITION


def aiohttp_name(header: str) -> str | None:
    _, params = parse_content_disposition(header)
    return content_disposition_filename(params, "name")


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


@given(st.lists(PIECES, max_size=14).map("".join))
def test_shortcut_agrees_with_aiohttp(header: str) -> None:
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
