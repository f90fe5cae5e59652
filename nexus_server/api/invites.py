"""Invites: /channels/{id}/invites, /invites/{code}, /guilds/{id}/invites."""

from __future__ import annotations

import html
from typing import Any

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from nexus_protocol.requests import CreateInviteBody

from ..errors import ApiError
from .deps import Caller, RelayDep, snowflake_param
from .strict import StrictRoute

router = APIRouter(route_class=StrictRoute, tags=["invites"])


@router.post("/channels/{channel_id}/invites")
async def create_invite(
    channel_id: str, body: CreateInviteBody, caller: Caller, relay: RelayDep
) -> dict[str, Any]:
    """An invite link; ``max_age`` seconds (0 = never expires), ``max_uses`` (0 = unlimited)."""
    return await relay.invites.do_create_invite(
        caller, snowflake_param(channel_id, "channel_id"), body
    )


@router.get("/channels/{channel_id}/invites")
async def channel_invites(channel_id: str, caller: Caller, relay: RelayDep) -> list[dict[str, Any]]:
    return await relay.invites.list_for_channel(caller, snowflake_param(channel_id, "channel_id"))


@router.get("/guilds/{guild_id}/invites")
async def guild_invites(guild_id: str, caller: Caller, relay: RelayDep) -> list[dict[str, Any]]:
    return await relay.invites.list_for_guild(caller, snowflake_param(guild_id, "guild_id"))


@router.get("/invites/{code}")
async def preview_invite(code: str, relay: RelayDep) -> dict[str, Any]:
    """What an invite leads to, without joining (no authentication needed)."""
    return await relay.invites.preview(code[:32])


@router.post("/invites/{code}")
async def accept_invite(code: str, caller: Caller, relay: RelayDep) -> dict[str, Any]:
    """Join the invite's community (as Discord's own client does)."""
    return await relay.invites.do_accept(caller, code[:32])


@router.delete("/invites/{code}")
async def revoke_invite(code: str, caller: Caller, relay: RelayDep) -> dict[str, Any]:
    return await relay.invites.do_revoke(caller, code[:32])


landing_router = APIRouter(tags=["invites"])


@landing_router.get("/invite/{code}", response_model=None, include_in_schema=False)
async def invite_landing(code: str, relay: RelayDep) -> HTMLResponse:
    """What an invite link shows in a browser: where it leads and how to join. Plain
    HTML, no scripts, nothing loaded from elsewhere."""
    try:
        invite = await relay.invites.preview(code[:32])
    except ApiError:
        return _page("Invite not found", "<p>This invite is invalid or has expired.</p>", 404)
    name = html.escape(str(invite["guild"]["name"]))
    link = html.escape(f"{relay.settings.base_url}/invite/{code[:32]}")
    body = (
        f"<p>You are invited to <strong>{name}</strong> "
        f"({int(invite['approximate_member_count'])} members).</p>"
        f"<p>Open Nexus, choose <em>Join a community</em> and paste this link:</p>"
        f"<p><code>{link}</code></p>"
    )
    return _page(f"Join {name} on Nexus", body)


LANDING_STYLE = "font-family:sans-serif;max-width:36em;margin:3em auto"


def _page(title: str, body: str, status: int = 200) -> HTMLResponse:
    page = (
        f"<!doctype html><html><head><meta charset=utf-8><title>{title}</title></head>"
        f"<body style='{LANDING_STYLE}'><h1>{title}</h1>{body}</body></html>"
    )
    # Nothing on the page may load or run anything.
    csp = "default-src 'none'; style-src 'unsafe-inline'"
    return HTMLResponse(page, status, headers={"Content-Security-Policy": csp})
