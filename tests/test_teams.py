"""Team inboxes: a share to a team reaches each active member's own key; membership changes are recorded."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyrage

from tests.conftest import Api
from tests.test_cli import safeshare

PAYLOAD = b"strategy discussion: please attend"


async def test_team_share_reaches_each_member(api: Api, share_justification: dict[str, Any]) -> None:
    admin = api.auth("root", "admin", "Hereford MASH")
    people = {name: pyrage.x25519.Identity.generate() for name in ("dana", "eli", "fay")}
    for name, ident in people.items():
        await api.add_recipient(name, ident)
    r = await api.client.post(
        "/api/v1/teams",
        json={
            "id": "hereford-mash",
            "name": "Hereford MASH duty",
            "org": "Hereford MASH",
            "email": "mash@hereford.example",
        },
        headers=admin,
    )
    assert r.status == 201 and (await r.json())["team"]["kind"] == "team"
    # An empty team cannot receive: nothing is shared and the team is named.
    r = await api.share(PAYLOAD, ["hereford-mash"], share_justification)
    assert r.status == 422 and (await r.json())["empty_teams"] == ["hereford-mash"]
    for m in ("dana", "eli"):
        r = await api.client.post("/api/v1/teams/hereford-mash/members", json={"member": m}, headers=admin)
        assert r.status == 201
    r = await api.client.post("/api/v1/teams/hereford-mash/members", json={"member": "dana"}, headers=admin)
    assert r.status == 409

    # Named directly and via the team, eli gets one envelope.
    first = await (await api.share(PAYLOAD, ["hereford-mash", "eli"], share_justification)).json()
    assert sorted((x["id"], x["via"]) for x in first["recipients"]) == [("dana", "hereford-mash"), ("eli", None)]
    for m in ("dana", "eli"):
        blob = await (
            await api.client.get(f"/api/v1/shares/{first['share_id']}/envelope", headers=api.auth(m, "recipient"))
        ).read()
        assert pyrage.decrypt(blob, [people[m]]) == PAYLOAD

    # Membership changes: fay joins (does not get the earlier share), dana leaves (does not get new ones).
    await api.client.post("/api/v1/teams/hereford-mash/members", json={"member": "fay"}, headers=admin)
    r = await api.client.post("/api/v1/teams/hereford-mash/members/dana/remove", headers=admin)
    assert r.status == 200
    second = await (await api.share(PAYLOAD, ["hereford-mash"], share_justification)).json()
    assert sorted(x["id"] for x in second["recipients"]) == ["eli", "fay"]
    r = await api.client.get(f"/api/v1/shares/{second['share_id']}/envelope", headers=api.auth("dana", "recipient"))
    assert r.status == 404
    r = await api.client.get(f"/api/v1/shares/{first['share_id']}/envelope", headers=api.auth("fay", "recipient"))
    assert r.status == 404
    inbox = await (await api.client.get("/api/v1/inbox", headers=api.auth("fay", "recipient"))).json()
    assert [s["id"] for s in inbox["shares"]] == [second["share_id"]]

    members = await (await api.client.get("/api/v1/teams/hereford-mash/members", headers=admin)).json()
    assert [m["id"] for m in members["members"]] == ["eli", "fay"]
    kinds = [e["kind"] for e in await api.ledger(recipient="hereford-mash")]
    assert kinds.count("team_member_add") == 3 and kinds.count("team_member_remove") == 1
    assert kinds.count("share") == 2  # the team's shares are found by the team's ID too
    r = await api.client.post("/api/v1/teams/hereford-mash/members", json={"member": "nobody"}, headers=admin)
    assert r.status == 422
    r = await api.client.post("/api/v1/teams/eli/members", json={"member": "fay"}, headers=admin)
    assert r.status == 404


def test_team_cli(tmp_path: Path) -> None:
    home = tmp_path / "home"
    ident = pyrage.x25519.Identity.generate()
    safeshare(
        home,
        "recipient",
        "add",
        "gus",
        "--name",
        "Gus",
        "--org",
        "PPU",
        "--email",
        "gus@police.example",
        "--age-recipient",
        str(ident.to_public()),
    )
    safeshare(home, "team", "add", "ppu", "--name", "PPU desk", "--org", "PPU", "--email", "ppu@police.example")
    safeshare(home, "team", "member-add", "ppu", "gus")
    assert safeshare(home, "team", "members", "ppu").stdout.startswith("gus\tPPU")
    assert safeshare(home, "team", "member-add", "ppu", "gus", check=False).returncode == 2
    safeshare(home, "team", "member-remove", "ppu", "gus")
    assert safeshare(home, "team", "members", "ppu").stdout == ""
