"""Bot applications (/applications, a Nexus extension) and Discord's OAuth2 endpoints
that bots and the "add bot" flow use (/oauth2/applications/@me, /oauth2/authorize)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from nexus_protocol.requests import AuthorizeBotBody, CreateApplicationBody

from .deps import Caller, RelayDep, snowflake_param
from .strict import StrictRoute

router = APIRouter(route_class=StrictRoute, tags=["applications"])


@router.post("/applications", status_code=201)
async def create_application(
    body: CreateApplicationBody, caller: Caller, relay: RelayDep
) -> dict[str, Any]:
    """A new application and its bot user; the answer carries ``bot.token`` this once."""
    return await relay.applications.do_create_application(caller, body)


@router.get("/applications/{application_id}")
async def get_application(application_id: str, caller: Caller, relay: RelayDep) -> dict[str, Any]:
    return await relay.applications.get_application(
        caller, snowflake_param(application_id, "application_id")
    )


@router.post("/applications/{application_id}/bot/reset")
async def reset_bot_token(application_id: str, caller: Caller, relay: RelayDep) -> dict[str, Any]:
    """A new bot token; the old one stops working at once."""
    token = await relay.applications.do_reset_token(
        caller, snowflake_param(application_id, "application_id")
    )
    return {"token": token}


@router.get("/oauth2/applications/@me")
async def current_application(caller: Caller, relay: RelayDep) -> dict[str, Any]:
    return await relay.applications.current_application(caller)


@router.post("/oauth2/authorize")
async def authorize(
    client_id: str, body: AuthorizeBotBody, caller: Caller, relay: RelayDep, scope: str = "bot"
) -> dict[str, Any]:
    """Add a bot to a guild you manage, as Discord's client does after the consent screen.
    ``permissions`` may also come in the query string; the body wins."""
    return await relay.applications.do_authorize_bot(
        caller, snowflake_param(client_id, "client_id"), scope, body
    )
