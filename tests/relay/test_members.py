"""Members, moderation and the audit log, against a real relay."""

from __future__ import annotations

import asyncio
from typing import Any

from nexus_protocol.permissions import DEFAULT_EVERYONE, Permissions
from nexus_server.store import guilds as guild_store

from .harness import RunningRelay, User, connect_gateway, register


async def community(relay: RunningRelay, members: int) -> tuple[User, dict[str, Any], list[User]]:
    """An owner's guild with ``members`` more people who joined through an invite."""
    owner = await register(relay.api)
    guild = await owner.ok("POST", "/guilds", json={"name": "Moderated"})
    invite = await owner.ok(
        "POST", f"/channels/{guild['system_channel_id']}/invites", json={"max_age": 0}
    )
    guild["invite"] = invite["code"]
    others = list(await asyncio.gather(*(register(relay.api) for _ in range(members))))
    for user in others:
        await user.ok("POST", f"/invites/{invite['code']}", json={})
    return owner, guild, others


async def give_role(
    relay: RunningRelay, guild_id: str, user: User, permissions: Permissions, position: int
) -> str:
    """A role made straight in the store (the role endpoints are not ours to use here)."""
    role_id = relay.relay.ctx.ids.next_id()
    async with relay.relay.db.write("test_role") as tx:
        await guild_store.insert_role(
            tx,
            id=role_id,
            guild_id=int(guild_id),
            name=f"role{position}",
            position=position,
            permissions=int(DEFAULT_EVERYONE | permissions),
        )
        await guild_store.add_member_role(tx, int(guild_id), user.id, role_id)
    relay.relay.permissions.invalidate(int(guild_id))
    return str(role_id)


async def test_members_page_fetch_and_search(relay: RunningRelay) -> None:
    owner, guild, others = await community(relay, 5)
    gid = guild["id"]
    seen: list[str] = []
    after = "0"
    pages = 0
    while True:
        page = await others[0].ok("GET", f"/guilds/{gid}/members?limit=2&after={after}")
        if not page:
            break
        pages += 1
        assert len(page) <= 2
        seen += [m["user"]["id"] for m in page]
        after = page[-1]["user"]["id"]
    assert pages == 3
    assert seen == sorted({str(u.id) for u in [owner, *others]}, key=int)

    member = await owner.ok("GET", f"/guilds/{gid}/members/{others[1].id}")
    assert member["user"]["username"] == others[1].username
    assert member["roles"] == [] and member["nick"] is None
    missing = await owner.request("GET", f"/guilds/{gid}/members/{guild['id']}")
    assert missing.status_code == 404 and missing.json()["code"] == 10007

    found = await owner.ok(
        "GET", f"/guilds/{gid}/members/search", params={"query": others[2].username, "limit": 5}
    )
    assert [m["user"]["id"] for m in found] == [str(others[2].id)]
    bad = await owner.request("GET", f"/guilds/{gid}/members?limit=0")
    assert bad.status_code == 400 and bad.json()["code"] == 50035


async def test_nicknames_roles_and_hierarchy(relay: RunningRelay) -> None:
    owner, guild, (bob, carol, mod) = await community(relay, 3)
    gid = guild["id"]
    owner_gateway = await connect_gateway(relay.api, owner.token)
    await owner_gateway.next_dispatch("READY")

    mine = await bob.ok("PATCH", f"/guilds/{gid}/members/@me", json={"nick": "Bobby"})
    assert mine["nick"] == "Bobby"
    update = await owner_gateway.next_dispatch("GUILD_MEMBER_UPDATE")
    assert update["d"]["guild_id"] == gid
    assert update["d"]["user"]["id"] == str(bob.id) and update["d"]["nick"] == "Bobby"
    assert update["d"]["roles"] == [] and update["d"]["joined_at"]

    refused = await carol.request("PATCH", f"/guilds/{gid}/members/{bob.id}", json={"nick": "x"})
    assert refused.status_code == 403 and refused.json()["code"] == 50013
    renamed = await owner.ok("PATCH", f"/guilds/{gid}/members/{bob.id}", json={"nick": "B"})
    assert renamed["nick"] == "B"

    low = await give_role(relay, gid, carol, Permissions(0), 1)
    high = await give_role(relay, gid, owner, Permissions(0), 5)
    await give_role(relay, gid, mod, Permissions.MANAGE_ROLES, 3)
    granted = await mod.ok("PATCH", f"/guilds/{gid}/members/{bob.id}", json={"roles": [low]})
    assert granted["roles"] == [low]
    above = await mod.request("PATCH", f"/guilds/{gid}/members/{bob.id}", json={"roles": [high]})
    assert above.status_code == 403 and above.json()["code"] == 50013
    unknown = await owner.request("PATCH", f"/guilds/{gid}/members/{bob.id}", json={"roles": ["1"]})
    assert unknown.status_code == 400 and unknown.json()["code"] == 50035
    await owner_gateway.close()


async def test_kick_permissions_hierarchy_and_audit(relay: RunningRelay) -> None:
    owner, guild, (bob, carol, mod, boss) = await community(relay, 4)
    gid = guild["id"]
    await give_role(relay, gid, mod, Permissions.KICK_MEMBERS, 2)
    await give_role(relay, gid, boss, Permissions(0), 3)

    plain = await carol.request("DELETE", f"/guilds/{gid}/members/{bob.id}")
    assert plain.status_code == 403 and plain.json()["code"] == 50013
    for target in (owner, boss):
        refused = await mod.request("DELETE", f"/guilds/{gid}/members/{target.id}")
        assert refused.status_code == 403 and refused.json()["code"] == 50013
    self_kick = await owner.request("DELETE", f"/guilds/{gid}/members/{owner.id}")
    assert self_kick.status_code == 403

    bob_gateway = await connect_gateway(relay.api, bob.token)
    await bob_gateway.next_dispatch("READY")
    kicked = await mod.request(
        "DELETE", f"/guilds/{gid}/members/{bob.id}", headers={"X-Audit-Log-Reason": "spam"}
    )
    assert kicked.status_code == 204
    gone = await bob_gateway.next_dispatch("GUILD_DELETE")
    assert gone["d"] == {"id": gid}
    assert (await bob.request("GET", f"/guilds/{gid}")).status_code == 404
    missing = await owner.request("GET", f"/guilds/{gid}/members/{bob.id}")
    assert missing.status_code == 404

    refused_log = await carol.request("GET", f"/guilds/{gid}/audit-logs")
    assert refused_log.status_code == 403
    log = await owner.ok("GET", f"/guilds/{gid}/audit-logs", params={"action_type": 20})
    (entry,) = log["audit_log_entries"]
    assert entry["user_id"] == str(mod.id) and entry["target_id"] == str(bob.id)
    assert entry["reason"] == "spam" and entry["guild_id"] == gid
    assert {u["id"] for u in log["users"]} == {str(mod.id), str(bob.id)}
    assert log["webhooks"] == [] and log["integrations"] == [] and log["threads"] == []
    by_owner = await owner.ok("GET", f"/guilds/{gid}/audit-logs", params={"user_id": owner.id})
    assert all(e["user_id"] == str(owner.id) for e in by_owner["audit_log_entries"])
    await bob_gateway.close()


async def test_ban_deletes_messages_and_blocks_rejoining(relay: RunningRelay) -> None:
    owner, guild, (bob, carol) = await community(relay, 2)
    gid, general = guild["id"], guild["system_channel_id"]
    kept = await carol.ok("POST", f"/channels/{general}/messages", json={"content": "stay"})
    sent = [
        await bob.ok("POST", f"/channels/{general}/messages", json={"content": f"spam {i}"})
        for i in range(3)
    ]
    owner_gateway = await connect_gateway(relay.api, owner.token)
    await owner_gateway.next_dispatch("READY")

    refused = await carol.request("PUT", f"/guilds/{gid}/bans/{bob.id}", json={})
    assert refused.status_code == 403 and refused.json()["code"] == 50013
    banned = await owner.request(
        "PUT",
        f"/guilds/{gid}/bans/{bob.id}",
        json={"delete_message_seconds": 3600},
        headers={"X-Audit-Log-Reason": "flooding"},
    )
    assert banned.status_code == 204, banned.text
    bulk = await owner_gateway.next_dispatch("MESSAGE_DELETE_BULK")
    assert sorted(bulk["d"]["ids"], key=int) == [m["id"] for m in sent]
    assert bulk["d"]["channel_id"] == general and bulk["d"]["guild_id"] == gid
    added = await owner_gateway.next_dispatch("GUILD_BAN_ADD")
    assert added["d"]["user"]["id"] == str(bob.id)
    removed = await owner_gateway.next_dispatch("GUILD_MEMBER_REMOVE")
    assert removed["d"]["user"]["id"] == str(bob.id)
    history = await owner.ok("GET", f"/channels/{general}/messages")
    assert [m["id"] for m in history] == [kept["id"]]

    assert (await bob.request("GET", f"/guilds/{gid}")).status_code == 404
    rejoin = await bob.request("POST", f"/invites/{guild['invite']}", json={})
    assert rejoin.status_code == 403
    bans = await owner.ok("GET", f"/guilds/{gid}/bans")
    assert bans == [{"reason": "flooding", "user": bans[0]["user"]}]
    assert bans[0]["user"]["id"] == str(bob.id)
    assert (await owner.ok("GET", f"/guilds/{gid}/bans/{bob.id}"))["reason"] == "flooding"
    owner_ban = await owner.request("PUT", f"/guilds/{gid}/bans/{owner.id}", json={})
    assert owner_ban.status_code == 403
    log = await owner.ok("GET", f"/guilds/{gid}/audit-logs", params={"action_type": 22})
    assert [e["reason"] for e in log["audit_log_entries"]] == ["flooding"]

    assert (await owner.request("DELETE", f"/guilds/{gid}/bans/{bob.id}")).status_code == 204
    await owner_gateway.next_dispatch("GUILD_BAN_REMOVE")
    no_ban = await owner.request("GET", f"/guilds/{gid}/bans/{bob.id}")
    assert no_ban.status_code == 404 and no_ban.json()["code"] == 10026
    again = await owner.request("DELETE", f"/guilds/{gid}/bans/{bob.id}")
    assert again.status_code == 404 and again.json()["code"] == 10026
    await bob.ok("POST", f"/invites/{guild['invite']}", json={})
    assert (await bob.ok("GET", f"/guilds/{gid}"))["id"] == gid
    await owner_gateway.close()


async def test_leaving(relay: RunningRelay) -> None:
    owner, guild, (bob,) = await community(relay, 1)
    gid = guild["id"]
    owner_gateway = await connect_gateway(relay.api, owner.token)
    bob_gateway = await connect_gateway(relay.api, bob.token)
    await owner_gateway.next_dispatch("READY")
    await bob_gateway.next_dispatch("READY")

    stay = await owner.request("DELETE", f"/users/@me/guilds/{gid}")
    assert stay.status_code == 400 and stay.json()["code"] == 50055
    left = await bob.request("DELETE", f"/users/@me/guilds/{gid}")
    assert left.status_code == 204
    removed = await owner_gateway.next_dispatch("GUILD_MEMBER_REMOVE")
    assert removed["d"]["guild_id"] == gid and removed["d"]["user"]["id"] == str(bob.id)
    deleted = await bob_gateway.next_dispatch("GUILD_DELETE")
    assert deleted["d"] == {"id": gid}
    assert (await bob.request("GET", f"/guilds/{gid}")).status_code == 404
    assert (await bob.request("DELETE", f"/users/@me/guilds/{gid}")).status_code == 404
    await owner_gateway.close()
    await bob_gateway.close()
