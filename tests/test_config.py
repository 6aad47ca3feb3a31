"""Settings come from the home's safeshare.toml; typos are refused rather than silently ignored."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.config import load_settings, resolve_home


def test_defaults_without_a_file(tmp_path: Path) -> None:
    s = load_settings(tmp_path)
    assert s.home == tmp_path and s.embedded_issuer and s.oidc == ()
    assert s.db_path == tmp_path / "data" / "safeshare.sqlite3"


def test_oidc_and_limits_from_toml(tmp_path: Path) -> None:
    (tmp_path / "safeshare.toml").write_text(
        """
audience = "api://safeshare"
embedded_issuer = false

[limits]
max_payload_bytes = 1024

[[oidc]]
issuer = "https://login.microsoftonline.com/t/v2.0"
audience = "api://safeshare"
jwks_url = "https://login.microsoftonline.com/t/discovery/v2.0/keys"
algorithms = ["RS256"]
roles_claim = "roles"
role_map = { "SafeShare.Auditor" = "auditor" }
"""
    )
    s = load_settings(tmp_path)
    assert s.audience == "api://safeshare" and not s.embedded_issuer
    assert s.limits.max_payload_bytes == 1024
    assert s.oidc[0].algorithms == ("RS256",) and s.oidc[0].role_map["SafeShare.Auditor"] == "auditor"


def test_unknown_settings_are_refused(tmp_path: Path) -> None:
    (tmp_path / "safeshare.toml").write_text('audiance = "typo"\n')
    with pytest.raises(ValueError, match="audiance"):
        load_settings(tmp_path)


def test_unknown_oidc_settings_are_refused(tmp_path: Path) -> None:
    (tmp_path / "safeshare.toml").write_text(
        '[[oidc]]\nissuer = "https://idp.test"\naudience = "a"\njwks_url = "https://idp.test/k"\nrole_claim = "x"\n'
    )
    with pytest.raises(ValueError, match=r"unknown \[\[oidc\]\] setting\(s\): role_claim"):
        load_settings(tmp_path)


def test_home_resolution(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SAFESHARE_HOME", str(tmp_path / "env"))
    assert resolve_home(None) == tmp_path / "env"
    assert resolve_home(str(tmp_path / "flag")) == tmp_path / "flag"
    monkeypatch.delenv("SAFESHARE_HOME")
    monkeypatch.chdir(tmp_path)
    assert resolve_home(None) == tmp_path
