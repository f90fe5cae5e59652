"""Channels and their messages: /channels/*."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response

from nexus_protocol.requests import CreateMessageBody

from ..errors import InvalidForm
from .deps import Caller, RelayDep, snowflake_param
from .strict import StrictRoute

router = APIRouter(route_class=StrictRoute, tags=["messages"])


@router.get("/channels/{channel_id}")
async def get_channel(channel_id: str, caller: Caller, relay: RelayDep) -> dict[str, Any]:
    return await relay.channels.get_channel(caller, snowflake_param(channel_id, "channel_id"))


@router.get("/channels/{channel_id}/messages")
async def list_messages(
    channel_id: str,
    caller: Caller,
    relay: RelayDep,
    before: str | None = None,
    after: str | None = None,
    around: str | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
) -> list[dict[str, Any]]:
    """History, newest first; page with ``before``/``after``/``around`` (one at a time)."""
    if sum(x is not None for x in (before, after, around)) > 1:
        raise InvalidForm.field("around", "ONE_OF", "Use only one of before, after and around")
    return await relay.messages.list_messages(
        caller,
        snowflake_param(channel_id, "channel_id"),
        before=snowflake_param(before, "before") if before is not None else None,
        after=snowflake_param(after, "after") if after is not None else None,
        around=snowflake_param(around, "around") if around is not None else None,
        limit=limit,
    )


@router.get("/channels/{channel_id}/messages/{message_id}")
async def get_message(
    channel_id: str, message_id: str, caller: Caller, relay: RelayDep
) -> dict[str, Any]:
    return await relay.messages.get_message(
        caller, snowflake_param(channel_id, "channel_id"), snowflake_param(message_id, "message_id")
    )


@router.post("/channels/{channel_id}/messages")
async def create_message(
    channel_id: str, body: CreateMessageBody, caller: Caller, relay: RelayDep, response: Response
) -> dict[str, Any]:
    """Send a message. A retry with the same ``nonce`` returns the first message instead
    of sending twice."""
    message, _created = await relay.messages.do_send_message(
        caller, snowflake_param(channel_id, "channel_id"), body
    )
    return message
