"""Message search: GET /guilds/{guild_id}/messages/search, as Discord serves it."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query

from ..errors import InvalidForm
from ..services.search import SearchCriteria
from .deps import Caller, RelayDep, snowflake_param
from .strict import StrictRoute

router = APIRouter(route_class=StrictRoute, tags=["search"])

# More values than anyone types, few enough to keep the query small.
MAX_VALUES = 100

IdList = Annotated[list[str] | None, Query()]


def _ids(values: list[str] | None, name: str) -> frozenset[int]:
    if not values:
        return frozenset()
    if len(values) > MAX_VALUES:
        raise InvalidForm.field(name, "LIST_TOO_LONG", f"At most {MAX_VALUES} values")
    return frozenset(snowflake_param(value, name) for value in values)


@router.get("/guilds/{guild_id}/messages/search")
async def search_guild_messages(
    guild_id: str,
    caller: Caller,
    relay: RelayDep,
    content: Annotated[str | None, Query(max_length=1024)] = None,
    author_id: IdList = None,
    channel_id: IdList = None,
    mentions: IdList = None,
    has: IdList = None,
    min_id: str | None = None,
    max_id: str | None = None,
    pinned: bool | None = None,
    limit: Annotated[int, Query(ge=1, le=25)] = 25,
    offset: Annotated[int, Query(ge=0, le=5000)] = 0,
    sort_order: Literal["desc", "asc"] = "desc",
) -> dict[str, Any]:
    """Messages of the community matching every criterion given (at least one):
    ``content`` words (at most 32 different; whole words, the last also as a prefix,
    ignoring case, and accents on SQLite); any of the ``author_id``, ``channel_id`` and
    ``mentions`` values (each repeatable); each ``has`` value (``link``, ``embed``,
    ``file``, ``image``); ids between ``min_id`` and ``max_id`` (exclusive); ``pinned``.
    Newest first unless ``sort_order=asc``. Answers
    ``{"total_results", "messages": [[message], …]}``, ``total_results`` counted up to
    5,000 (as Discord's "5,000+").

    Only channels the caller may read are searched, and never end-to-end encrypted
    ones (the relay holds only their ciphertext): a ``channel_id`` the caller cannot
    read is a 403, an encrypted one a 400."""
    if has is not None and len(has) > MAX_VALUES:
        raise InvalidForm.field("has", "LIST_TOO_LONG", f"At most {MAX_VALUES} values")
    criteria = SearchCriteria(
        content=content,
        author_ids=_ids(author_id, "author_id"),
        channel_ids=_ids(channel_id, "channel_id"),
        mention_ids=_ids(mentions, "mentions"),
        has=frozenset(has or ()),
        min_id=snowflake_param(min_id, "min_id") if min_id is not None else None,
        max_id=snowflake_param(max_id, "max_id") if max_id is not None else None,
        pinned=pinned,
        oldest_first=sort_order == "asc",
        limit=limit,
        offset=offset,
    )
    return await relay.search.search_messages(
        caller, snowflake_param(guild_id, "guild_id"), criteria
    )
