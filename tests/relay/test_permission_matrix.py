"""The permission matrix: for every guarded endpoint, a member without the permission
gets 403, a member holding exactly that permission gets 2xx, and someone outside the
community gets 403/404 and learns nothing about it."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import pytest

from nexus_protocol.permissions import Permissions as P

from .harness import RunningRelay, User, register

Ctx = dict[str, Any]


@dataclass(frozen=True)
class Case:
    name: str
    needed: P
    # Builds (method, path, json body) from the community; may create what it acts on.
    request: Callable[[Ctx], Awaitable[tuple[str, str, Any]]]


async def _message(ctx: Ctx, text: str = "owner says hi") -> str:
    message = await ctx["owner"].ok(
        "POST", f"/channels/{ctx['channel']}/messages", json={"content": text}
    )
    return str(message["id"])


async def _channel(ctx: Ctx) -> str:
    channel = await ctx["owner"].ok(
        "POST", f"/guilds/{ctx['guild']}/channels", json={"name": "scratch"}
    )
    return str(channel["id"])


async def _role(ctx: Ctx) -> str:
    role = await ctx["owner"].ok("POST", f"/guilds/{ctx['guild']}/roles", json={"name": "low"})
    return str(role["id"])


async def _member(ctx: Ctx) -> str:
    user = await register(ctx["api"])
    await user.ok("POST", f"/invites/{ctx['invite']}", json={})
    return str(user.id)


def _const(
    method: str, path: str, body: Any = None
) -> Callable[[Ctx], Awaitable[tuple[str, str, Any]]]:
    async def build(ctx: Ctx) -> tuple[str, str, Any]:
        return method, path.format(**ctx), body

    return build


def _with(
    make: Callable[[Ctx], Awaitable[str]], method: str, path: str, body: Any = None
) -> Callable[[Ctx], Awaitable[tuple[str, str, Any]]]:
    async def build(ctx: Ctx) -> tuple[str, str, Any]:
        return method, path.format(**ctx, target=await make(ctx)), body

    return build


async def _two_messages(ctx: Ctx) -> tuple[str, str, Any]:
    ids = [await _message(ctx, "one"), await _message(ctx, "two")]
    return "POST", f"/channels/{ctx['channel']}/messages/bulk-delete", {"messages": ids}


CASES = [
    Case("modify guild", P.MANAGE_GUILD, _const("PATCH", "/guilds/{guild}", {"name": "Renamed"})),
    Case("list invites", P.MANAGE_GUILD, _const("GET", "/guilds/{guild}/invites")),
    Case(
        "create channel",
        P.MANAGE_CHANNELS,
        _const("POST", "/guilds/{guild}/channels", {"name": "new"}),
    ),
    Case(
        "modify channel", P.MANAGE_CHANNELS, _const("PATCH", "/channels/{channel}", {"topic": "t"})
    ),
    Case("delete channel", P.MANAGE_CHANNELS, _with(_channel, "DELETE", "/channels/{target}")),
    Case(
        "reorder channels",
        P.MANAGE_CHANNELS,
        _const("PATCH", "/guilds/{guild}/channels", [{"id": "{channel}", "position": 0}]),
    ),
    Case(
        "edit overwrite",
        P.MANAGE_ROLES,
        _const(
            "PUT", "/channels/{channel}/permissions/{guild}", {"type": 0, "allow": "0", "deny": "0"}
        ),
    ),
    Case("create role", P.MANAGE_ROLES, _const("POST", "/guilds/{guild}/roles", {"name": "r"})),
    Case(
        "modify role",
        P.MANAGE_ROLES,
        _with(_role, "PATCH", "/guilds/{guild}/roles/{target}", {"name": "y"}),
    ),
    Case("delete role", P.MANAGE_ROLES, _with(_role, "DELETE", "/guilds/{guild}/roles/{target}")),
    Case(
        "send message",
        P.SEND_MESSAGES,
        _const("POST", "/channels/{channel}/messages", {"content": "hi"}),
    ),
    Case("typing", P.SEND_MESSAGES, _const("POST", "/channels/{channel}/typing")),
    Case(
        "react",
        P.ADD_REACTIONS,
        _with(
            _message,
            "PUT",
            "/channels/{channel}/messages/{target}/reactions/" + quote("👍") + "/@me",
        ),
    ),
    Case(
        "delete others' message",
        P.MANAGE_MESSAGES,
        _with(_message, "DELETE", "/channels/{channel}/messages/{target}"),
    ),
    Case("pin", P.MANAGE_MESSAGES, _with(_message, "PUT", "/channels/{channel}/pins/{target}")),
    Case("bulk delete", P.MANAGE_MESSAGES, _two_messages),
    Case(
        "create invite", P.CREATE_INSTANT_INVITE, _const("POST", "/channels/{channel}/invites", {})
    ),
    Case("kick", P.KICK_MEMBERS, _with(_member, "DELETE", "/guilds/{guild}/members/{target}")),
    Case("ban", P.BAN_MEMBERS, _with(_member, "PUT", "/guilds/{guild}/bans/{target}", {})),
    Case("list bans", P.BAN_MEMBERS, _const("GET", "/guilds/{guild}/bans")),
    Case("audit log", P.VIEW_AUDIT_LOG, _const("GET", "/guilds/{guild}/audit-logs")),
    Case(
        "nickname others",
        P.MANAGE_NICKNAMES,
        _with(_member, "PATCH", "/guilds/{guild}/members/{target}", {"nick": "n"}),
    ),
]


def _fill(body: Any, ctx: Ctx) -> Any:
    if isinstance(body, str):
        return body.format(**ctx)
    if isinstance(body, list):
        return [_fill(item, ctx) for item in body]
    if isinstance(body, dict):
        return {key: _fill(value, ctx) for key, value in body.items()}
    return body


async def _call(user: User, request: tuple[str, str, Any], ctx: Ctx) -> Any:
    method, path, body = request
    return await user.request(method, path, json=_fill(body, ctx) if body is not None else None)


@pytest.mark.no_rate_limits
async def test_every_guarded_endpoint_against_members_with_and_without_the_permission(
    relay: RunningRelay,
) -> None:
    owner, lacking, granted, outsider = await asyncio.gather(
        *(register(relay.api) for _ in range(4))
    )
    guild = await owner.ok("POST", "/guilds", json={"name": "Matrix secret name"})
    gid, channel = guild["id"], guild["system_channel_id"]
    invite = (await owner.ok("POST", f"/channels/{channel}/invites", json={}))["code"]
    for user in (lacking, granted):
        await user.ok("POST", f"/invites/{invite}", json={})
    # @everyone may look and read, nothing more: each case's permission comes from a role.
    base = P.VIEW_CHANNEL | P.READ_MESSAGE_HISTORY
    await owner.ok("PATCH", f"/guilds/{gid}/roles/{gid}", json={"permissions": str(int(base))})
    ctx: Ctx = {
        "api": relay.api,
        "owner": owner,
        "guild": gid,
        "channel": channel,
        "invite": invite,
    }

    for case in CASES:
        # Without the permission: refused, and nothing changed hands.
        refused = await _call(lacking, await case.request(ctx), ctx)
        assert refused.status_code == 403, (case.name, refused.status_code, refused.text)
        assert refused.json()["code"] == 50013, (case.name, refused.text)

        # From outside the community: refused without telling what is inside.
        outside = await _call(outsider, await case.request(ctx), ctx)
        assert outside.status_code in (403, 404), (case.name, outside.status_code)
        assert "Matrix secret name" not in outside.text, case.name

        # Holding exactly that permission, in a role above what it acts on: allowed.
        role = await owner.ok(
            "POST",
            f"/guilds/{gid}/roles",
            json={"name": case.name, "permissions": str(int(case.needed))},
        )
        top = max(r["position"] for r in await owner.ok("GET", f"/guilds/{gid}/roles"))
        await owner.ok("PATCH", f"/guilds/{gid}/roles", json=[{"id": role["id"], "position": top}])
        await owner.ok("PUT", f"/guilds/{gid}/members/{granted.id}/roles/{role['id']}")
        allowed = await _call(granted, await case.request(ctx), ctx)
        assert 200 <= allowed.status_code < 300, (case.name, allowed.status_code, allowed.text)
        await owner.ok("DELETE", f"/guilds/{gid}/roles/{role['id']}")

    # Reading is guarded too, and an outsider cannot tell the guild or channel exist.
    for path in (
        f"/guilds/{gid}",
        f"/channels/{channel}",
        f"/channels/{channel}/messages",
        f"/guilds/{gid}/members",
    ):
        response = await outsider.request("GET", path)
        assert response.status_code in (403, 404), (path, response.status_code)
        assert "Matrix secret name" not in response.text
