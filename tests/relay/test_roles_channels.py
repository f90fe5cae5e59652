"""Roles, the role hierarchy, and channel administration on a real relay."""

from __future__ import annotations

import asyncio
from typing import Any

from nexus_protocol.permissions import Permissions

from .harness import Gateway, RunningRelay, User, connect_gateway, register

VIEW = int(Permissions.VIEW_CHANNEL)


async def community(relay: RunningRelay, members: int) -> tuple[User, dict[str, Any], list[User]]:
    """An owner, their guild, and ``members`` people who joined it by invite."""
    owner = await register(relay.api)
    guild = await owner.ok("POST", "/guilds", json={"name": "Workshop"})
    invite = await owner.ok(
        "POST", f"/channels/{guild['system_channel_id']}/invites", json={"max_age": 0}
    )

    async def join() -> User:
        user = await register(relay.api)
        await user.ok("POST", f"/invites/{invite['code']}", json={})
        return user

    joined = await asyncio.gather(*(join() for _ in range(members)))
    return owner, guild, list(joined)


async def gateway_for(relay: RunningRelay, user: User) -> Gateway:
    gateway = await connect_gateway(relay.api, user.token)
    await gateway.next_dispatch("READY")
    return gateway


async def audit_actions(owner: User, guild_id: str) -> list[int]:
    log = await owner.ok("GET", f"/guilds/{guild_id}/audit-logs")
    return [entry["action_type"] for entry in log["audit_log_entries"]]


def assert_error(response: Any, status: int, code: int | None = None) -> None:
    assert response.status_code == status, (response.status_code, response.text)
    if code is not None:
        assert response.json()["code"] == code, response.text


async def test_roles_lifecycle_and_hierarchy(relay: RunningRelay) -> None:
    owner, guild, (bob, carol) = await community(relay, 2)
    gid = guild["id"]
    bob_gateway = await gateway_for(relay, bob)

    first = await owner.ok("POST", f"/guilds/{gid}/roles", json={"name": "first"})
    event = await bob_gateway.next_dispatch("GUILD_ROLE_CREATE")
    assert event["d"] == {"guild_id": gid, "role": first}
    assert first["position"] == 1 and first["permissions"] == guild["roles"][0]["permissions"]

    second = await owner.ok(
        "POST", f"/guilds/{gid}/roles", json={"name": "second", "permissions": "0", "hoist": True}
    )
    assert second["position"] == 1 and second["hoist"] and second["permissions"] == "0"
    roles = {r["name"]: r for r in await owner.ok("GET", f"/guilds/{gid}/roles")}
    assert roles["first"]["position"] == 2  # new roles go in just above @everyone
    bare = await owner.ok("POST", f"/guilds/{gid}/roles")  # no body: Discord's defaults
    assert bare["name"] == "new role"
    assert (await owner.request("DELETE", f"/guilds/{gid}/roles/{bare['id']}")).status_code == 204

    edited = await owner.ok(
        "PATCH", f"/guilds/{gid}/roles/{first['id']}", json={"name": "renamed", "color": 0xFF0000}
    )
    assert (edited["name"], edited["color"]) == ("renamed", 0xFF0000)
    update = await bob_gateway.next_dispatch("GUILD_ROLE_UPDATE")
    while update["d"]["role"]["name"] != "renamed":
        update = await bob_gateway.next_dispatch("GUILD_ROLE_UPDATE")

    reordered = await owner.ok(
        "PATCH", f"/guilds/{gid}/roles", json=[{"id": second["id"], "position": 2}]
    )
    positions = {r["id"]: r["position"] for r in reordered}
    assert positions == {gid: 0, first["id"]: 1, second["id"]: 2}

    member_roles = f"/guilds/{gid}/members/{bob.id}/roles/{first['id']}"
    assert (await owner.request("PUT", member_roles)).status_code == 204
    granted = await bob_gateway.next_dispatch("GUILD_MEMBER_UPDATE")
    assert granted["d"]["guild_id"] == gid and granted["d"]["roles"] == [first["id"]]
    assert granted["d"]["user"]["id"] == str(bob.id)
    assert (await owner.request("DELETE", member_roles)).status_code == 204
    removed = await bob_gateway.next_dispatch("GUILD_MEMBER_UPDATE")
    assert removed["d"]["roles"] == []

    assert_error(await owner.request("DELETE", f"/guilds/{gid}/roles/{gid}"), 400, 50028)
    assert (await owner.request("DELETE", f"/guilds/{gid}/roles/{first['id']}")).status_code == 204
    deleted = await bob_gateway.next_dispatch("GUILD_ROLE_DELETE")
    assert deleted["d"] == {"guild_id": gid, "role_id": first["id"]}
    assert_error(await owner.request("DELETE", f"/guilds/{gid}/roles/{first['id']}"), 404, 10011)

    actions = await audit_actions(owner, gid)
    for action in (30, 31, 32, 25):
        assert action in actions
    await bob_gateway.close()
    await check_hierarchy_binds_moderators(owner, guild, bob, carol)


async def test_forbidden_unknown_and_overwrite_limits(relay: RunningRelay) -> None:
    owner, guild, (bob,) = await community(relay, 1)
    stranger = await register(relay.api)
    gid, general = guild["id"], guild["system_channel_id"]
    role = await owner.ok("POST", f"/guilds/{gid}/roles", json={"name": "r"})
    calls: list[tuple[str, str, Any]] = [
        ("POST", f"/guilds/{gid}/roles", {"name": "x"}),
        ("PATCH", f"/guilds/{gid}/roles/{role['id']}", {"name": "x"}),
        ("DELETE", f"/guilds/{gid}/roles/{role['id']}", None),
        ("PATCH", f"/guilds/{gid}/roles", [{"id": role["id"], "position": 1}]),
        ("PUT", f"/guilds/{gid}/members/{bob.id}/roles/{role['id']}", None),
        ("DELETE", f"/guilds/{gid}/members/{bob.id}/roles/{role['id']}", None),
        ("PATCH", f"/channels/{general}", {"name": "x"}),
        ("DELETE", f"/channels/{general}", None),
        ("PATCH", f"/guilds/{gid}/channels", [{"id": general, "position": 3}]),
        ("PUT", f"/channels/{general}/permissions/{gid}", {"type": 0, "deny": str(VIEW)}),
        ("DELETE", f"/channels/{general}/permissions/{gid}", None),
    ]
    for method, path, body in calls:
        kwargs = {"json": body} if body is not None else {}
        assert_error(await bob.request(method, path, **kwargs), 403, 50013)
        assert_error(await stranger.request(method, path, **kwargs), 404)
    # Nothing changed.
    assert (await owner.ok("GET", f"/channels/{general}"))["name"] == "general"
    await check_overwrites_cannot_grant_what_you_lack(owner, guild, bob, stranger)


async def check_hierarchy_binds_moderators(
    owner: User, guild: dict[str, Any], mod: User, carol: User
) -> None:
    gid = guild["id"]
    manage = str(int(Permissions.MANAGE_ROLES | Permissions.VIEW_CHANNEL))
    high = await owner.ok("POST", f"/guilds/{gid}/roles", json={"name": "high"})
    moderator = await owner.ok(
        "POST", f"/guilds/{gid}/roles", json={"name": "mod", "permissions": manage}
    )
    roles = {r["name"]: r for r in await owner.ok("GET", f"/guilds/{gid}/roles")}
    assert roles["high"]["position"] > roles["mod"]["position"]
    await owner.ok("PUT", f"/guilds/{gid}/members/{mod.id}/roles/{moderator['id']}")

    # Above or at their own highest role: no editing, granting, deleting or moving.
    for method, path, body in [
        ("PATCH", f"/guilds/{gid}/roles/{high['id']}", {"name": "mine"}),
        ("PATCH", f"/guilds/{gid}/roles/{moderator['id']}", {"name": "mine"}),
        ("PUT", f"/guilds/{gid}/members/{carol.id}/roles/{high['id']}", None),
        ("PUT", f"/guilds/{gid}/members/{carol.id}/roles/{moderator['id']}", None),
        ("DELETE", f"/guilds/{gid}/roles/{high['id']}", None),
        ("PATCH", f"/guilds/{gid}/roles", [{"id": high["id"], "position": 1}]),
    ]:
        kwargs = {"json": body} if body is not None else {}
        assert_error(await mod.request(method, path, **kwargs), 403, 50013)

    # No handing out what they do not hold.
    admin = str(int(Permissions.ADMINISTRATOR))
    assert_error(
        await mod.request("POST", f"/guilds/{gid}/roles", json={"permissions": admin}), 403, 50013
    )
    helper = await mod.ok("POST", f"/guilds/{gid}/roles", json={"name": "helper"})
    assert helper["position"] == 1
    assert_error(
        await mod.request(
            "PATCH", f"/guilds/{gid}/roles/{helper['id']}", json={"permissions": admin}
        ),
        403,
        50013,
    )
    # Below them, within what they hold: fine.
    await mod.ok("PATCH", f"/guilds/{gid}/roles/{helper['id']}", json={"permissions": manage})
    await mod.ok("PUT", f"/guilds/{gid}/members/{carol.id}/roles/{helper['id']}")
    # Nor may they move a role up to or past their own.
    top = {r["name"]: r for r in await owner.ok("GET", f"/guilds/{gid}/roles")}["mod"]["position"]
    assert_error(
        await mod.request(
            "PATCH", f"/guilds/{gid}/roles", json=[{"id": helper["id"], "position": top}]
        ),
        403,
        50013,
    )
    # The owner is above all of it.
    await owner.ok("PATCH", f"/guilds/{gid}/roles/{high['id']}", json={"permissions": admin})


async def test_channel_admin_and_visibility(relay: RunningRelay) -> None:
    owner, guild, (bob, carol) = await community(relay, 2)
    gid, general = guild["id"], guild["system_channel_id"]
    bob_gateway = await gateway_for(relay, bob)

    changed = await owner.ok(
        "PATCH",
        f"/channels/{general}",
        json={"name": "lobby", "topic": "hi", "rate_limit_per_user": 5, "nsfw": True},
        headers={"X-Audit-Log-Reason": "tidy up"},
    )
    assert (changed["name"], changed["topic"], changed["rate_limit_per_user"], changed["nsfw"]) == (
        "lobby",
        "hi",
        5,
        True,
    )
    event = await bob_gateway.next_dispatch("CHANNEL_UPDATE")
    assert event["d"]["name"] == "lobby"

    category = await owner.ok(
        "POST", f"/guilds/{gid}/channels", json={"name": "Archive", "type": 4}
    )
    voice = await owner.ok("POST", f"/guilds/{gid}/channels", json={"name": "Room", "type": 2})
    voice = await owner.ok(
        "PATCH", f"/channels/{voice['id']}", json={"bitrate": 96000, "user_limit": 5}
    )
    assert (voice["bitrate"], voice["user_limit"]) == (96000, 5)
    reorder = [
        {"id": general, "position": 7, "parent_id": category["id"]},
        {"id": voice["id"], "position": 2},
    ]
    response = await owner.request("PATCH", f"/guilds/{gid}/channels", json=reorder)
    assert response.status_code == 204
    moved = await owner.ok("GET", f"/channels/{general}")
    assert (moved["position"], moved["parent_id"]) == (7, category["id"])
    not_a_category = [{"id": general, "parent_id": voice["id"]}]
    assert_error(await owner.request("PATCH", f"/guilds/{gid}/channels", json=not_a_category), 400)

    role = await owner.ok("POST", f"/guilds/{gid}/roles", json={"name": "r"})
    overwrite = {"type": 0, "allow": str(int(Permissions.ATTACH_FILES)), "deny": "0"}
    path = f"/channels/{general}/permissions/{role['id']}"
    assert (await owner.request("PUT", path, json=overwrite)).status_code == 204
    shown = await owner.ok("GET", f"/channels/{general}")
    assert shown["permission_overwrites"] == [{"id": role["id"], **overwrite}]
    assert (await owner.request("PUT", path, json={**overwrite, "deny": "2048"})).status_code == 204
    assert (await owner.request("DELETE", path)).status_code == 204
    assert_error(await owner.request("DELETE", path), 404, 10009)
    assert (await owner.ok("GET", f"/channels/{general}"))["permission_overwrites"] == []

    deleted = await owner.ok("DELETE", f"/channels/{category['id']}")
    assert deleted["id"] == category["id"] and deleted["type"] == 4
    gone = await bob_gateway.next_dispatch("CHANNEL_DELETE")
    while gone["d"]["id"] != category["id"]:
        gone = await bob_gateway.next_dispatch("CHANNEL_DELETE")
    assert (await owner.ok("GET", f"/channels/{general}"))["parent_id"] is None
    assert_error(await owner.request("GET", f"/channels/{category['id']}"), 404)

    actions = await audit_actions(owner, gid)
    for action in (11, 12, 13, 14, 15):
        assert action in actions
    await bob_gateway.close()
    await check_overwrite_hides_channel(relay, owner, guild, bob, carol)


async def check_overwrite_hides_channel(
    relay: RunningRelay, owner: User, guild: dict[str, Any], bob: User, carol: User
) -> None:
    """An @everyone deny of VIEW_CHANNEL hides the channel from all but the allowed."""
    gid, general = guild["id"], guild["system_channel_id"]
    secret = await owner.ok("POST", f"/guilds/{gid}/channels", json={"name": "secret"})
    vip = await owner.ok("POST", f"/guilds/{gid}/roles", json={"name": "vip"})
    await owner.ok("PUT", f"/guilds/{gid}/members/{carol.id}/roles/{vip['id']}")
    bob_gateway, carol_gateway = await asyncio.gather(
        gateway_for(relay, bob), gateway_for(relay, carol)
    )

    await owner.ok(
        "PUT",
        f"/channels/{secret['id']}/permissions/{vip['id']}",
        json={"type": 0, "allow": str(VIEW)},
    )
    await owner.ok(
        "PUT", f"/channels/{secret['id']}/permissions/{gid}", json={"type": 0, "deny": str(VIEW)}
    )
    # Bob lost sight of it and is told so; Carol keeps it.
    hidden = await bob_gateway.next_dispatch("CHANNEL_DELETE")
    assert hidden["d"]["id"] == secret["id"]
    kept = await carol_gateway.next_dispatch("CHANNEL_UPDATE")
    while len(kept["d"]["permission_overwrites"]) < 2:
        kept = await carol_gateway.next_dispatch("CHANNEL_UPDATE")
    assert_error(await bob.request("GET", f"/channels/{secret['id']}"), 404, 10003)
    listed = await bob.ok("GET", f"/guilds/{gid}/channels")
    assert secret["id"] not in {c["id"] for c in listed}
    await carol.ok("GET", f"/channels/{secret['id']}")

    whisper = await owner.ok("POST", f"/channels/{secret['id']}/messages", json={"content": "psst"})
    assert (await carol_gateway.next_dispatch("MESSAGE_CREATE"))["d"]["id"] == whisper["id"]
    public = await owner.ok("POST", f"/channels/{general}/messages", json={"content": "hello"})
    # Events arrive in order: Bob's first MESSAGE_CREATE is the public one.
    assert (await bob_gateway.next_dispatch("MESSAGE_CREATE"))["d"]["id"] == public["id"]
    assert_error(
        await bob.request("POST", f"/channels/{secret['id']}/messages", json={"content": "hi"}),
        404,
    )

    # Lifting the deny shows it again: Bob gets it as a new channel.
    await owner.ok("DELETE", f"/channels/{secret['id']}/permissions/{gid}")
    shown = await bob_gateway.next_dispatch("CHANNEL_CREATE")
    assert shown["d"]["id"] == secret["id"]
    await bob.ok("GET", f"/channels/{secret['id']}")
    await asyncio.gather(bob_gateway.close(), carol_gateway.close())


async def check_overwrites_cannot_grant_what_you_lack(
    owner: User, guild: dict[str, Any], mod: User, stranger: User
) -> None:
    gid, general = guild["id"], guild["system_channel_id"]
    powers = Permissions.MANAGE_ROLES | Permissions.MANAGE_CHANNELS | Permissions.VIEW_CHANNEL
    role = await owner.ok(
        "POST", f"/guilds/{gid}/roles", json={"name": "mod", "permissions": str(int(powers))}
    )
    await owner.ok("PUT", f"/guilds/{gid}/members/{mod.id}/roles/{role['id']}")
    path = f"/channels/{general}/permissions/{gid}"
    lacking = {"type": 0, "allow": str(int(Permissions.MANAGE_MESSAGES))}
    assert_error(await mod.request("PUT", path, json=lacking), 403, 50013)
    replace = {"permission_overwrites": [{"id": gid, **lacking}]}
    assert_error(await mod.request("PATCH", f"/channels/{general}", json=replace), 403, 50013)
    held = {"type": 0, "deny": str(int(Permissions.SEND_MESSAGES))}
    assert (await mod.request("PUT", path, json=held)).status_code == 204
    # A member overwrite for someone outside the guild is refused.
    outsider = f"/channels/{general}/permissions/{stranger.id}"
    assert_error(await mod.request("PUT", outsider, json={"type": 1, "deny": "0"}), 400, 50035)
