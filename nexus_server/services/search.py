"""Message search in a community, in the shape of Discord's guild message search.

Only channels the caller may read are searched, and never end-to-end encrypted ones:
the relay holds their ciphertext, not their text, so they are searched on the client,
in its local store. A channel asked for by id that the caller cannot read is refused
(403), as Discord does, whether or not it exists.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from ..errors import InvalidForm, MissingAccess
from ..store import search as search_store
from ..store.records import MessageRecord
from .accounts import Principal
from .context import Context
from .messages import MessageService

# Discord's ``has`` values this relay can answer; the others need attachment types.
HAS_VALUES = frozenset({"link", "embed", "file", "image"})
# Each word is one more pass over the index; more than a sentence finds nothing anyway.
MAX_WORDS = 32


@dataclass(frozen=True, slots=True)
class SearchCriteria:
    """A search as the caller asked it, values parsed, not yet authorised."""

    content: str | None = None
    author_ids: frozenset[int] = frozenset()
    channel_ids: frozenset[int] = frozenset()
    mention_ids: frozenset[int] = frozenset()
    has: frozenset[str] = frozenset()
    min_id: int | None = None
    max_id: int | None = None
    pinned: bool | None = None
    oldest_first: bool = False
    limit: int = 25
    offset: int = 0

    def check(self) -> None:
        """At least one criterion, and ``has`` values this relay knows."""
        unknown_has = sorted(self.has - HAS_VALUES)
        if unknown_has:
            raise InvalidForm.field(
                "has",
                "ENUM_TYPE_COERCE",
                f"Value {unknown_has[0][:40]!r} is not one of: {', '.join(sorted(HAS_VALUES))}",
            )
        if not (
            (self.content and self.content.strip())
            or self.author_ids
            or self.channel_ids
            or self.mention_ids
            or self.has
            or self.min_id is not None
            or self.max_id is not None
            or self.pinned is not None
        ):
            raise InvalidForm.field(
                "content",
                "BASE_TYPE_REQUIRED",
                "Give something to search for: content or another filter",
            )


class SearchService:
    def __init__(self, ctx: Context, messages: MessageService) -> None:
        self._ctx = ctx
        self._messages = messages

    async def search_messages(
        self, principal: Principal, guild_id: int, criteria: SearchCriteria
    ) -> dict[str, Any]:
        """``{"total_results": N, "messages": [[message], …]}``, each hit alone in its
        list (Discord once sent neighbouring messages alongside)."""
        criteria.check()
        channel_ids = await self._check_channels(principal, guild_id, criteria.channel_ids)
        words = tuple(search_store.search_words(criteria.content or ""))
        if criteria.content and criteria.content.strip() and not words:
            # Only punctuation: nothing a word index can match.
            return {"total_results": 0, "messages": []}
        if words and len(search_store.distinct_terms(list(words))) > MAX_WORDS:
            raise InvalidForm.field(
                "content", "BASE_TYPE_MAX_LENGTH", f"Search for at most {MAX_WORDS} words"
            )
        query = search_store.MessageQuery(
            channel_ids=channel_ids,
            words=words,
            author_ids=criteria.author_ids,
            mention_ids=criteria.mention_ids,
            has_link="link" in criteria.has,
            has_embed="embed" in criteria.has,
            has_file="file" in criteria.has,
            has_image="image" in criteria.has,
            min_id=criteria.min_id,
            max_id=criteria.max_id,
            pinned=criteria.pinned,
            oldest_first=criteria.oldest_first,
            limit=criteria.limit,
            offset=criteria.offset,
        )
        db = self._ctx.db
        async with db.read("search_messages") as tx:
            total, records = await search_store.search_messages(tx, query, sqlite=db.is_sqlite)
            rendered = await self._render(tx, records, principal.user_id)
        return {"total_results": total, "messages": [[message] for message in rendered]}

    async def _check_channels(
        self, principal: Principal, guild_id: int, requested: frozenset[int]
    ) -> frozenset[int]:
        """The channels to search: every searchable one, or those requested, each of
        which must be readable (403 otherwise) and not end-to-end encrypted (400)."""
        permissions = self._ctx.permissions
        snapshot = await permissions.require_snapshot(guild_id, principal.user_id)
        readable = permissions.readable_channels(snapshot, principal.user_id)
        for channel_id in sorted(requested):
            channel = readable.get(channel_id)
            if channel is None:
                raise MissingAccess()
            if channel.e2ee:
                raise InvalidForm.field(
                    "channel_id",
                    "CHANNEL_E2EE",
                    "This channel is end-to-end encrypted: search it on your device",
                )
        chosen = requested or frozenset(readable)
        return frozenset(channel_id for channel_id in chosen if not readable[channel_id].e2ee)

    async def _render(
        self, tx: AsyncConnection, records: list[MessageRecord], viewer_id: int
    ) -> list[dict[str, Any]]:
        # Rendering looks up replied-to messages one channel at a time.
        by_channel: dict[int, list[MessageRecord]] = defaultdict(list)
        for record in records:
            by_channel[record.channel_id].append(record)
        rendered: dict[int, dict[str, Any]] = {}
        for channel_records in by_channel.values():
            for record, body in zip(
                channel_records,
                await self._messages.render(tx, channel_records, viewer_id),
                strict=True,
            ):
                rendered[record.id] = body
        return [rendered[record.id] for record in records]
