"""Message search in a community, through the relay's Discord-shaped search route.

The relay searches only channels it can read: end-to-end encrypted channels hold
ciphertext there, so their messages never appear in these results.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from nexus_protocol.models import Message


@dataclass(frozen=True, slots=True)
class SearchResults:
    """One page of hits. ``total`` counts every match, not just this page, so a caller
    pages with ``offset`` until it has seen ``total`` messages."""

    total: int
    messages: list[Message]


def search_params(
    content: str | None,
    *,
    author_id: int | None,
    channel_id: int | None,
    mentions: int | None,
    has: str | None,
    limit: int,
    offset: int,
    oldest_first: bool,
) -> dict[str, Any]:
    """The query string the relay expects; criteria left as ``None`` are not sent."""
    params: dict[str, Any] = {
        "limit": limit,
        "offset": offset,
        "sort_order": "asc" if oldest_first else "desc",
    }
    if content is not None:
        params["content"] = content
    if author_id is not None:
        params["author_id"] = str(author_id)
    if channel_id is not None:
        params["channel_id"] = str(channel_id)
    if mentions is not None:
        params["mentions"] = str(mentions)
    if has is not None:
        params["has"] = has
    return params


def parse_results(data: Any) -> SearchResults:
    """Discord wraps each hit in a list of its own (once the hit plus its context)."""
    messages = [Message.model_validate(hit[0]) for hit in data["messages"] if hit]
    return SearchResults(total=int(data["total_results"]), messages=messages)
