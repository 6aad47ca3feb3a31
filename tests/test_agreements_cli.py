"""`safeshare agreement add|list|show|retire` exactly as other tools call it, on a real home, and the example
pair `serve --dev` loads (against a real `safeshare serve`)."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import subprocess
from pathlib import Path

import pyrage

from .conftest import example
from .test_cli import call, dev_banner, multipart, safeshare, serve


def test_agreement_add_list_show_retire_as_the_issue_specifies(tmp_path: Path) -> None:
    home = tmp_path / "home"
    safeshare(home, "init")
    doc = tmp_path / "protocol.pdf"
    doc.write_bytes(b"%PDF-1.4\n% protocol v1\n%%EOF\n")
    r = safeshare(
        home, "agreement", "add", "county-protocol", "--title", "County overarching protocol", "--kind", "protocol",
        "--scope", "both", "--signatory", "County Council", "--signatory", "County Police",
        "--review-date", "2099-06-30", "--document", str(doc),
    )  # fmt: skip
    assert "agreement county-protocol version 1 added" in r.stderr
    doc2 = tmp_path / "dea.txt"
    doc2.write_text("Children's data exchange agreement\n")
    safeshare(
        home, "agreement", "add", "children-dea", "--title", "Children DEA", "--kind", "data_exchange",
        "--scope", "children", "--signatory", "County Council", "--purpose", "referral", "--purpose", "s47_enquiry",
        "--category", "identity", "health", "--review-date", "2099-06-30", "--document", str(doc2),
    )  # fmt: skip
    listed = json.loads(safeshare(home, "agreement", "list", "--json").stdout)
    assert [(a["id"], a["version"], a["status"]) for a in listed] == [
        ("children-dea", 1, "active"),
        ("county-protocol", 1, "active"),
    ]
    dea = listed[0]
    assert dea["purposes"] == ["referral", "s47_enquiry"] and dea["categories"] == ["identity", "health"]
    assert listed[1]["purposes"] == [] and listed[1]["signatories"] == ["County Council", "County Police"]
    assert dea["document"]["sha256"] == hashlib.sha256(doc2.read_bytes()).hexdigest()
    # The document is in the database (every node of a shared database serves it), not a file in data/.
    with sqlite3.connect(home / "data" / "safeshare.sqlite3") as db:
        pieces = db.execute(
            "SELECT data FROM agreement_document_chunks WHERE sha256 = ? ORDER BY seq", (dea["document"]["sha256"],)
        ).fetchall()
    assert b"".join(p[0] for p in pieces) == doc2.read_bytes()
    assert not (home / "data" / "agreements").exists()
    assert "county-protocol\tv1\tactive\tprotocol\tboth" in safeshare(home, "agreement", "list").stdout

    # A new version is a new version: the first stays as it was.
    doc.write_bytes(b"%PDF-1.4\n% protocol v2\n%%EOF\n")
    safeshare(
        home, "agreement", "add", "county-protocol", "--title", "County overarching protocol (2027)",
        "--kind", "protocol", "--scope", "both", "--signatory", "County Council", "--review-date", "2100-06-30",
        "--document", str(doc),
    )  # fmt: skip
    shown = json.loads(safeshare(home, "agreement", "show", "county-protocol", "--json").stdout)
    assert [(v["version"], v["status"], v["title"]) for v in shown["versions"]] == [
        (1, "superseded", "County overarching protocol"),
        (2, "active", "County overarching protocol (2027)"),
    ]
    assert shown["versions"][0]["document"]["sha256"] != shown["versions"][1]["document"]["sha256"]

    r = safeshare(home, "agreement", "retire", "children-dea", "--reason", "Superseded by the county protocol")
    assert "retired" in r.stderr
    again = safeshare(home, "agreement", "retire", "children-dea", "--reason", "again", check=False)
    assert again.returncode == 2 and "already retired" in again.stderr

    # Refusals name the field; nothing is recorded.
    bad = safeshare(
        home, "agreement", "add", "x", "--title", "T", "--kind", "protocol", "--scope", "both",
        "--signatory", "A", "--review-date", "2099-02-30", "--document", str(doc2),
    check=False)  # fmt: skip
    assert bad.returncode == 2 and "(review_date)" in bad.stderr
    missing = safeshare(home, "agreement", "show", "nope", check=False)
    assert missing.returncode == 2

    # Every change is a ledger entry, in order, each with the version and the document's digest.
    with sqlite3.connect(home / "data" / "safeshare.sqlite3") as db:
        rows = [(k, json.loads(e)) for k, e in db.execute("SELECT kind, entry FROM ledger ORDER BY idx")]
    assert [k for k, _ in rows] == ["agreement_add", "agreement_add", "agreement_add", "agreement_retire"]
    assert [(e["agreement"]["id"], e["agreement"]["version"]) for _, e in rows] == [
        ("county-protocol", 1),
        ("children-dea", 1),
        ("county-protocol", 2),
        ("children-dea", 1),
    ]
    assert rows[3][1]["reason"] == "Superseded by the county protocol"
    assert rows[0][1]["agreement"]["signatories"] == ["County Council", "County Police"]
    assert rows[0][1]["actor"]["role"] == "admin"


def test_serve_dev_loads_the_example_pair_and_shares_can_rely_on_it(tmp_path: Path) -> None:
    home = tmp_path / "home"
    with serve(home, tmp_path / "dev.log", "--dev") as url:
        log = (tmp_path / "dev.log").read_text()
        assert "EXAMPLES ONLY" in log
        tok = dev_banner(log)
        status, body = call(url + "/api/v1/agreements", tok["practitioner"])
        assert status == 200, body
        listed = json.loads(body)["agreements"]
        assert [a["id"] for a in listed] == ["example-children-dea", "example-protocol"]
        assert all("EXAMPLE ONLY" in a["title"] for a in listed)
        status, doc = call(url + listed[0]["document"]["url"])
        assert status == 200 and doc.startswith(b"EXAMPLE ONLY - NOT ANY REAL PARTNERSHIP'S DOCUMENT")

        j = example("share")
        j["agreements"] = ["example-children-dea", "example-protocol"]
        meta = {"recipients": ["demo-recipient"], "justification": j, "payload_content_type": "text/plain"}
        status, resp = call(url + "/api/v1/shares", tok["practitioner"], *multipart(meta, b"notes"))
        assert status == 201, resp
        status, resp = call(url + "/api/v1/ledger?agreement=example-protocol&kind=share", tok["auditor"])
        [entry] = json.loads(resp)["entries"]
        assert [a["id"] for a in entry["entry"]["agreements"]] == ["example-children-dea", "example-protocol"]
        # Financial information is outside the example children's agreement.
        j["data_categories"] = ["identity", "financial"]
        status, resp = call(url + "/api/v1/shares", tok["practitioner"], *multipart(meta, b"notes"))
        assert status == 422 and json.loads(resp)["problems"][0]["code"] == "agreement_category_out_of_scope"

    # Again on the same home: no second copy of the examples.
    with serve(home, tmp_path / "dev2.log", "--dev"):
        pass
    listed = json.loads(safeshare(home, "agreement", "list", "--json").stdout)
    assert [(a["id"], a["version"]) for a in listed] == [("example-children-dea", 1), ("example-protocol", 1)]


def test_cli_share_is_refused_then_overridden_where_safeshare_toml_allows_it(tmp_path: Path) -> None:
    """`[agreements.organisations]` in safeshare.toml, read by a real serve; the CLI lists the rule-6 problems."""
    home = tmp_path / "home"
    home.mkdir()
    (home / "safeshare.toml").write_text(
        '[agreements]\nrequired = true\non_problem = "refuse"\n'
        '[agreements.organisations]\n"Override Org" = "override"\n'
    )
    safeshare(home, "init")
    safeshare(
        home, "recipient", "add", "alice", "--name", "Alice", "--org", "Hereford MASH", "--email", "a@example.org",
        "--age-recipient", str(pyrage.x25519.Identity.generate().to_public()),
    )  # fmt: skip
    doc = tmp_path / "dea.txt"
    doc.write_text("DEA\n")
    safeshare(
        home, "agreement", "add", "police-dea", "--title", "Police DEA", "--kind", "data_exchange", "--scope", "both",
        "--signatory", "West Mercia Police", "--review-date", "2099-01-01", "--document", str(doc),
    )  # fmt: skip
    j = example("share")
    j["agreements"] = ["police-dea"]
    jfile = tmp_path / "j.json"
    jfile.write_text(json.dumps(j))
    payload = tmp_path / "notes.txt"
    payload.write_text("notes")
    with serve(home, tmp_path / "server.log") as url:
        tokens = {
            org: safeshare(
                home, "token", "issue", "--sub", "pat", "--role", "practitioner", "--org", org
            ).stdout.split()[-1]
            for org in ("Override Org", "Other Org")
        }
        auditor = safeshare(home, "token", "issue", "--sub", "a", "--role", "partnership_auditor").stdout.split()[-1]

        def share(org: str, *extra: str) -> subprocess.CompletedProcess[str]:
            return safeshare(
                home, "share", "--gateway", url, "--token", tokens[org], "--to", "alice",
                "--justification", str(jfile), *extra, str(payload), check=False,
            )  # fmt: skip

        r = share("Override Org")
        assert r.returncode != 0
        assert "agreement_problems" in r.stderr
        assert "rule 6, recipients.0: Hereford MASH (recipient alice) is not a signatory of Police DEA" in r.stderr
        r = share("Other Org", "--agreement-override", "Urgent; the DPO agreed.")
        assert r.returncode != 0 and "does not allow an override" in r.stderr
        r = share("Override Org", "--agreement-override", "Urgent; the DPO agreed.")
        assert r.returncode == 0, r.stderr
        # required = true: a justification naming no agreement (and giving no reason) is refused.
        jfile.write_text(json.dumps(example("share")))
        r = share("Other Org")
        assert r.returncode != 0 and "agreements_required" not in r.stderr and "rule 6, agreements:" in r.stderr
        status, body = call(url + "/api/v1/ledger?kind=share", auditor)
        [entry] = [e["entry"] for e in json.loads(body)["entries"]]
        assert entry["agreement_override"]["reason"] == "Urgent; the DPO agreed."
        assert entry["agreement_override"]["problems"][0]["code"] == "recipient_not_signatory"
        status, body = call(url + "/api/v1/ledger/stats", auditor)
        stats = json.loads(body)["totals"]["agreements"]
        assert stats["per_agreement"]["police-dea"] == {"shares": 1, "overrides": 1, "versions": {"1": 1}}
        assert stats["overrides"] == 1
