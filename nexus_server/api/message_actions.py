"""After a message is sent: edit, delete, react, pin, type, and mark read.

Paths and shapes are Discord's; read states are a Nexus extension in the user client's
shape.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response

from nexus_protocol.requests import AckBody, BulkDeleteBody, EditMessageBody

from ..services.message_actions import check_emoji
from .deps import Caller, RelayDep, snowflake_param
from .guilds import AuditReason
from .strict import StrictRoute

router = APIRouter(route_class=StrictRoute, tags=["message actions"])

MESSAGE = "/channels/{channel_id}/messages/{message_id}"


def _ids(channel_id: str, message_id: str) -> tuple[int, int]:
    return snowflake_param(channel_id, "channel_id"), snowflake_param(message_id, "message_id")


# Edit and delete -------------------------------------------------------------------------


@router.patch(MESSAGE)
async def edit_message(
    channel_id: str, message_id: str, body: EditMessageBody, caller: Caller, relay: RelayDep
) -> dict[str, Any]:
    """Edit your own message; mentions are found again and ``edited_timestamp`` set."""
    return await relay.message_actions.do_edit_message(caller, *_ids(channel_id, message_id), body)


@router.delete(MESSAGE, status_code=204)
async def delete_message(
    channel_id: str,
    message_id: str,
    caller: Caller,
    relay: RelayDep,
    reason: AuditReason = None,
) -> Response:
    """Delete your own message, or anyone's with MANAGE_MESSAGES."""
    await relay.message_actions.do_delete_message(caller, *_ids(channel_id, message_id), reason)
    return Response(status_code=204)


@router.post("/channels/{channel_id}/messages/bulk-delete", status_code=204)
async def bulk_delete_messages(
    channel_id: str,
    body: BulkDeleteBody,
    caller: Caller,
    relay: RelayDep,
    reason: AuditReason = None,
) -> Response:
    """Delete 2 to 100 messages under 14 days old (MANAGE_MESSAGES)."""
    await relay.message_actions.do_bulk_delete(
        caller, snowflake_param(channel_id, "channel_id"), body, reason
    )
    return Response(status_code=204)


# Reactions ---------------------------------------------------------------------------------


@router.put(MESSAGE + "/reactions/{emoji}/@me", status_code=204)
async def add_reaction(
    channel_id: str, message_id: str, emoji: str, caller: Caller, relay: RelayDep
) -> Response:
    """React with a unicode emoji (percent-encoded in the path) or a custom ``name:id``."""
    await relay.message_actions.do_add_reaction(
        caller, *_ids(channel_id, message_id), check_emoji(emoji)
    )
    return Response(status_code=204)


@router.delete(MESSAGE + "/reactions/{emoji}/{user_id}", status_code=204)
async def remove_reaction(
    channel_id: str, message_id: str, emoji: str, user_id: str, caller: Caller, relay: RelayDep
) -> Response:
    """Remove your reaction (``@me``), or someone else's with MANAGE_MESSAGES."""
    target = None if user_id == "@me" else snowflake_param(user_id, "user_id")
    await relay.message_actions.do_remove_reaction(
        caller, *_ids(channel_id, message_id), check_emoji(emoji), target
    )
    return Response(status_code=204)


@router.get(MESSAGE + "/reactions/{emoji}")
async def reaction_users(
    channel_id: str,
    message_id: str,
    emoji: str,
    caller: Caller,
    relay: RelayDep,
    after: str | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 25,
) -> list[dict[str, Any]]:
    """Who reacted with ``emoji``, in user id order; page with ``after``."""
    return await relay.message_actions.reaction_users(
        caller,
        *_ids(channel_id, message_id),
        check_emoji(emoji),
        after=snowflake_param(after, "after") if after is not None else 0,
        limit=limit,
    )


@router.delete(MESSAGE + "/reactions", status_code=204)
async def remove_all_reactions(
    channel_id: str, message_id: str, caller: Caller, relay: RelayDep
) -> Response:
    await relay.message_actions.do_remove_all_reactions(caller, *_ids(channel_id, message_id), None)
    return Response(status_code=204)


@router.delete(MESSAGE + "/reactions/{emoji}", status_code=204)
async def remove_emoji_reactions(
    channel_id: str, message_id: str, emoji: str, caller: Caller, relay: RelayDep
) -> Response:
    await relay.message_actions.do_remove_all_reactions(
        caller, *_ids(channel_id, message_id), check_emoji(emoji)
    )
    return Response(status_code=204)


# Pins --------------------------------------------------------------------------------------


@router.get("/channels/{channel_id}/pins")
async def pinned_messages(channel_id: str, caller: Caller, relay: RelayDep) -> list[dict[str, Any]]:
    return await relay.message_actions.pins(caller, snowflake_param(channel_id, "channel_id"))


@router.put("/channels/{channel_id}/pins/{message_id}", status_code=204)
async def pin_message(
    channel_id: str,
    message_id: str,
    caller: Caller,
    relay: RelayDep,
    reason: AuditReason = None,
) -> Response:
    await relay.message_actions.do_set_pinned(caller, *_ids(channel_id, message_id), True, reason)
    return Response(status_code=204)


@router.delete("/channels/{channel_id}/pins/{message_id}", status_code=204)
async def unpin_message(
    channel_id: str,
    message_id: str,
    caller: Caller,
    relay: RelayDep,
    reason: AuditReason = None,
) -> Response:
    await relay.message_actions.do_set_pinned(caller, *_ids(channel_id, message_id), False, reason)
    return Response(status_code=204)


# Typing and read states ----------------------------------------------------------------


@router.post("/channels/{channel_id}/typing", status_code=204)
async def trigger_typing(channel_id: str, caller: Caller, relay: RelayDep) -> Response:
    await relay.typing.do_start_typing(caller, snowflake_param(channel_id, "channel_id"))
    return Response(status_code=204)


@router.post(MESSAGE + "/ack")
async def ack_message(
    channel_id: str,
    message_id: str,
    caller: Caller,
    relay: RelayDep,
    body: AckBody | None = None,
) -> dict[str, Any]:
    """Mark the channel read up to this message (the marker never moves back)."""
    await relay.read_states.do_ack(caller, *_ids(channel_id, message_id))
    return {"token": None}


@router.get("/users/@me/read-states")
async def read_states(caller: Caller, relay: RelayDep) -> list[dict[str, Any]]:
    """Per visible channel: the last read message, unread and mention counts."""
    return await relay.read_states.read_states(caller.user_id)
