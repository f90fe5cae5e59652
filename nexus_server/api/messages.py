"""Channels and their messages: /channels/*."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response

from nexus_protocol.requests import CreateMessageBody

from ..errors import InvalidForm, NotFound
from .deps import Caller, RelayDep, snowflake_param
from .strict import StrictRoute

router = APIRouter(route_class=StrictRoute, tags=["messages"])


@router.get("/channels/{channel_id}")
async def get_channel(channel_id: str, caller: Caller, relay: RelayDep) -> dict[str, Any]:
    cid = snowflake_param(channel_id, "channel_id")
    try:
        return await relay.channels.get_channel(caller, cid)
    except NotFound:
        if await relay.dms.recipients(cid) is None:
            raise
        return await relay.dms.get_dm(caller, cid)


@router.get("/channels/{channel_id}/messages")
async def list_messages(
    channel_id: str,
    caller: Caller,
    relay: RelayDep,
    before: str | None = None,
    after: str | None = None,
    around: str | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    device_id: str | None = None,
) -> list[dict[str, Any]]:
    """History, newest first; page with ``before``/``after``/``around`` (one at a time).
    In a DM (Nexus): ``device_id`` is required and each message carries the envelope
    addressed to that device of the caller."""
    if sum(x is not None for x in (before, after, around)) > 1:
        raise InvalidForm.field("around", "ONE_OF", "Use only one of before, after and around")
    if device_id is not None:
        if around is not None:
            raise InvalidForm.field("around", "DM_UNSUPPORTED", "Use before or after in a DM")
        return await relay.dms.list_messages(
            caller,
            snowflake_param(channel_id, "channel_id"),
            device_id=device_id,
            before=snowflake_param(before, "before") if before is not None else None,
            after=snowflake_param(after, "after") if after is not None else None,
            limit=limit,
        )
    cid = snowflake_param(channel_id, "channel_id")
    try:
        return await relay.messages.list_messages(
            caller,
            cid,
            before=snowflake_param(before, "before") if before is not None else None,
            after=snowflake_param(after, "after") if after is not None else None,
            around=snowflake_param(around, "around") if around is not None else None,
            limit=limit,
        )
    except NotFound:
        if await relay.dms.recipients(cid) is None:
            raise
        raise InvalidForm.field("device_id", "BASE_TYPE_REQUIRED", "Required in a DM") from None


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
    of sending twice. In a DM (Nexus): ``envelopes`` (one ciphertext per device of each
    recipient and of the sender's other devices) and no ``content``. In a group DM or an
    encrypted channel (Nexus): ``megolm`` (one ciphertext for all) and, when a session
    key is being shared, ``envelopes``."""
    cid = snowflake_param(channel_id, "channel_id")
    if body.megolm is not None:
        return await relay.groups.do_send(caller, cid, body)
    if body.envelopes is not None:
        return await relay.dms.do_send(caller, cid, body)
    try:
        message, _created = await relay.messages.do_send_message(caller, cid, body)
    except NotFound:
        if await relay.dms.recipients(cid) is None:
            raise
        return await relay.dms.do_send(caller, cid, body)
    return message
