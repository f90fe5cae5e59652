"""The audit log of moderation actions, written inside the action's own transaction."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from ..store import audit as audit_store
from .context import Context


async def record_audit(
    tx: AsyncConnection,
    ctx: Context,
    *,
    guild_id: int,
    user_id: int,
    action_type: int,
    target_id: int | None = None,
    reason: str | None = None,
    changes: list[dict[str, Any]] | None = None,
    options: dict[str, str] | None = None,
) -> None:
    await audit_store.insert_entry(
        tx,
        entry_id=ctx.ids.next_id(),
        guild_id=guild_id,
        user_id=user_id,
        target_id=target_id,
        action_type=action_type,
        reason=reason,
        changes=changes or [],
        options=options,
    )
