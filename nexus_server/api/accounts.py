"""Accounts and users: /auth/*, /users/*."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from nexus_protocol.requests import ChangePasswordBody, LoginBody, ModifyUserBody, RegisterBody

from ..services.render import iso, user_json
from .deps import Anonymous, Caller, RelayDep, snowflake_param
from .strict import StrictRoute

router = APIRouter(route_class=StrictRoute, tags=["accounts"])


@router.post("/auth/register", status_code=201, dependencies=[Anonymous])
async def register(body: RegisterBody, request: Request, relay: RelayDep) -> dict[str, Any]:
    """Create an account: a username and a password, nothing else is ever asked."""
    token, user = await relay.accounts.do_register(body, request.headers.get("user-agent", ""))
    return {"token": token, "user": user_json(user)}


@router.post("/auth/login", dependencies=[Anonymous])
async def login(body: LoginBody, request: Request, relay: RelayDep) -> dict[str, Any]:
    token, user = await relay.accounts.do_login(body, request.headers.get("user-agent", ""))
    return {"token": token, "user": user_json(user)}


@router.post("/auth/logout", status_code=204)
async def logout(caller: Caller, relay: RelayDep) -> Response:
    await relay.accounts.do_logout(caller)
    return Response(status_code=204)


@router.get("/auth/sessions")
async def list_sessions(caller: Caller, relay: RelayDep) -> list[dict[str, Any]]:
    sessions = await relay.accounts.list_sessions(caller)
    return [
        {
            "id": str(s.id),
            "created_at": iso(s.created_at),
            "last_used_at": iso(s.last_used_at),
            "user_agent": s.user_agent,
            "current": s.id == caller.session_id,
        }
        for s in sessions
    ]


@router.delete("/auth/sessions/{session_id}", status_code=204)
async def revoke_session(session_id: str, caller: Caller, relay: RelayDep) -> Response:
    await relay.accounts.do_revoke_session(caller, snowflake_param(session_id, "session_id"))
    return Response(status_code=204)


@router.post("/auth/password", status_code=204)
async def change_password(body: ChangePasswordBody, caller: Caller, relay: RelayDep) -> Response:
    """Change the password; every other session of the account is logged out."""
    await relay.accounts.do_change_password(caller, body)
    return Response(status_code=204)


@router.get("/users/@me")
async def get_me(caller: Caller, relay: RelayDep) -> dict[str, Any]:
    return user_json(await relay.accounts.get_user(caller.user_id))


@router.patch("/users/@me")
async def modify_me(body: ModifyUserBody, caller: Caller, relay: RelayDep) -> dict[str, Any]:
    return user_json(await relay.accounts.do_modify_user(caller, body))


@router.get("/users/@me/guilds")
async def my_guilds(caller: Caller, relay: RelayDep) -> list[dict[str, Any]]:
    return await relay.guilds.list_my_guilds(caller)


@router.get("/users/{user_id}")
async def get_user(user_id: str, caller: Caller, relay: RelayDep) -> dict[str, Any]:
    return user_json(await relay.accounts.get_user(snowflake_param(user_id, "user_id")))
