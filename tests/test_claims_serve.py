"""Recipients without a key through a real `safeshare serve` and the CLI: the relay from SAFESHARE_SMTP_URL (a real
aiosmtpd server on loopback), passphrase shares from a file, no relay without --dev, dev mail printed with --dev."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyrage
import pytest

from .smtp_sink import code_in, smtp  # noqa: F401 - the fixture
from .test_cli import call, safeshare, serve

ADDR = "duty.social.worker@county.example.gov.uk"
GP = "gp@practice.example.nhs.uk"
JUSTIFICATION = str(Path(__file__).parent / "fixtures" / "justifications" / "justification-share.json")


def token(home: Path, sub: str, role: str) -> str:
    return safeshare(home, "token", "issue", "--sub", sub, "--role", role, "--org", "test-org").stdout.strip()


def cli_share(home: Path, url: str, payload: Path, *extra: str, check: bool = True, to: str = ADDR) -> Any:
    return safeshare(
        home,
        "share",
        "--gateway",
        url,
        "--token",
        token(home, "pat", "practitioner"),
        "--to",
        to,
        "--justification",
        JUSTIFICATION,
        "--content-type",
        "text/plain",
        *extra,
        str(payload),
        check=check,
    )


def test_serve_with_relay_from_environment(tmp_path: Path, smtp: Any, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    sink, smtp_url = smtp
    monkeypatch.setenv("SAFESHARE_SMTP_URL", smtp_url)
    home = tmp_path / "home"
    payload = tmp_path / "notes.txt"
    payload.write_bytes(b"notes for someone with no key\n" * 100)
    with serve(home, tmp_path / "server.log") as url:
        assert (home / "keys" / "holding.agekey").stat().st_mode & 0o777 == 0o600
        result = json.loads(cli_share(home, url, payload, "--unenrolled", "verify").stdout)
        share_id = result["share_id"]
        assert result["recipients"][0]["mode"] == "held"
        body = json.dumps({"share_id": share_id, "email": ADDR}).encode()
        status, _ = call(url + "/api/v1/claims/start", data=body, ctype="application/json")
        assert status == 202
        code = code_in(sink.wait_for(ADDR))
        body = json.dumps({"share_id": share_id, "email": ADDR, "code": code}).encode()
        status, answer = call(url + "/api/v1/claims/verify", data=body, ctype="application/json")
        assert status == 200, answer
        claim = json.loads(answer)

        key = pyrage.x25519.Identity.generate()
        body = json.dumps({"age_recipient": str(key.to_public())}).encode()
        status, answer = call(url + "/api/v1/recipients/enrol", claim["token"], body, "application/json")
        assert status == 202 and json.loads(answer)["enrolment"]["status"] == "approved"
        status, env = call(f"{url}/api/v1/shares/{share_id}/envelope", claim["token"])
        assert status == 200 and pyrage.decrypt(env, [key]) == payload.read_bytes()

        # That address now has a key: a new share to it is encrypted to that key directly.
        again = json.loads(cli_share(home, url, payload).stdout)
        assert again["recipients"][0]["mode"] == "key" and again["recipients"][0]["id"] == claim["recipient"]

        # A passphrase share from a file; the passphrase never reaches the server's log.
        (tmp_path / "pass").write_text("orchard lantern ninety kettle\n")
        result = json.loads(
            cli_share(
                home, url, payload, "--unenrolled", "passphrase", "--passphrase-file", str(tmp_path / "pass"), to=GP
            ).stdout
        )
        status, env = call(f"{url}/api/v1/open/{result['share_id']}/envelope")
        assert status == 200 and pyrage.passphrase.decrypt(env, "orchard lantern ninety kettle") == payload.read_bytes()
        (tmp_path / "weak").write_text("password1234\n")
        weak = cli_share(
            home,
            url,
            payload,
            "--unenrolled",
            "passphrase",
            "--passphrase-file",
            str(tmp_path / "weak"),
            to=GP,
            check=False,
        )
        assert weak.returncode != 0 and "passphrase_weak" in weak.stderr
    log = (tmp_path / "server.log").read_text()
    assert "orchard lantern" not in log and code not in log


def test_no_relay_refuses_verify_and_dev_prints_the_mail(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SAFESHARE_SMTP_URL", raising=False)
    home = tmp_path / "home"
    payload = tmp_path / "notes.txt"
    payload.write_bytes(b"notes\n")
    with serve(home, tmp_path / "server.log") as url:
        refused = cli_share(home, url, payload, "--unenrolled", "verify", check=False)
        assert refused.returncode != 0 and "mail_not_configured" in refused.stderr
        without_mode = cli_share(home, url, payload, check=False)
        assert without_mode.returncode != 0 and "unknown_recipients" in without_mode.stderr
    with serve(home, tmp_path / "dev.log", "--dev") as url:
        share_id = json.loads(cli_share(home, url, payload, "--unenrolled", "verify").stdout)["share_id"]
        body = json.dumps({"share_id": share_id, "email": ADDR}).encode()
        assert call(url + "/api/v1/claims/start", data=body, ctype="application/json")[0] == 202
    log = (tmp_path / "dev.log").read_text()
    assert "--- SafeShare dev mail (not sent) ---" in log and "Subject: Your SafeShare code" in log
    assert f"To: {ADDR}" in log
