"""Received files as downloads only (gateway.downloads): the headers the recipient web page serves them with."""

from __future__ import annotations

from urllib.parse import unquote

from gateway.downloads import DOWNLOAD_TYPE, download_headers, download_name


def test_names_keep_the_original_without_folders_or_controls() -> None:
    assert download_name("care-plan.pdf") == "care-plan.pdf"
    assert download_name("../../etc/passwd") == ".._.._etc_passwd"
    assert download_name("a\x00b\r\nc.svg") == "abc.svg"
    assert download_name("..") == "attachment"
    assert download_name("  ", "x.bin") == "x.bin"


def test_headers_force_a_download_whatever_the_sender_said() -> None:
    h = download_headers("phish.html")
    assert h["Content-Type"] == DOWNLOAD_TYPE == "application/octet-stream"
    assert h["Content-Disposition"].startswith("attachment;")
    assert h["X-Content-Type-Options"] == "nosniff"
    assert "sandbox" in h["Content-Security-Policy"]


def test_unicode_name_survives_in_filename_star() -> None:
    h = download_headers('body-map – école "v2".png')
    star = h["Content-Disposition"].split("filename*=UTF-8''")[1]
    assert unquote(star) == 'body-map – école "v2".png'
    assert h["Content-Disposition"].isascii()
    assert "filename=\"body-map  ecole 'v2'.png\"" in h["Content-Disposition"]
