"""Message search over the full-text index of migration 0006.

What a user types never reaches the query language: it is cut into words (letters and
digits only), each quoted as a plain term of FTS5 or of ``to_tsquery``, and the whole
expression is passed as one bound parameter. Quotes, ``*``, ``-``, ``NEAR``, ``:``,
``&``, ``|`` and ``!`` are separators like any other punctuation.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    and_,
    column,
    exists,
    func,
    literal_column,
    or_,
    select,
)
from sqlalchemy import table as sql_table
from sqlalchemy.ext.asyncio import AsyncConnection

from .messages import MESSAGE_COLUMNS, _records
from .records import MessageRecord
from .schema import MESSAGE_SEARCH_TABLE, attachments, message_mentions, messages

# Letters and digits: the characters both FTS5's unicode61 tokenizer and PostgreSQL's
# parser keep inside a word. Anything else only separates words.
_WORD = re.compile(r"[^\W_]+")

_fts = sql_table(MESSAGE_SEARCH_TABLE, column("rowid", BigInteger))
_fts_match = literal_column(MESSAGE_SEARCH_TABLE).op("MATCH")
# Spelled exactly as in the GIN index's expression, so PostgreSQL uses the index.
_pg_document = func.to_tsvector(literal_column("'simple'"), messages.c.content)


def search_words(text: str) -> list[str]:
    """The words of a query, in order; compatibility forms folded (NFKC), so a
    full-width or ligature spelling finds the ordinary one."""
    return _WORD.findall(unicodedata.normalize("NFKC", text))


def fts5_query(words: list[str]) -> str:
    """Every word, whole, the last also as a prefix: ``"big" "mou"*``."""
    terms = [f'"{word}"' for word in words]
    terms[-1] += "*"
    return " ".join(terms)


def tsquery(words: list[str]) -> str:
    """The same for ``to_tsquery``: ``'big' & 'mou':*``."""
    terms = [f"'{word}'" for word in words]
    terms[-1] += ":*"
    return " & ".join(terms)


@dataclass(frozen=True, slots=True)
class MessageQuery:
    """One search, already authorised: ``channel_ids`` are the channels to look in."""

    channel_ids: frozenset[int]
    words: tuple[str, ...] = ()
    author_ids: frozenset[int] = frozenset()
    mention_ids: frozenset[int] = frozenset()
    has_link: bool = False
    has_embed: bool = False
    has_file: bool = False
    has_image: bool = False
    min_id: int | None = None
    max_id: int | None = None
    pinned: bool | None = None
    oldest_first: bool = False
    limit: int = 25
    offset: int = 0


def _conditions(query: MessageQuery, *, sqlite: bool) -> list[ColumnElement[bool]]:
    found: list[ColumnElement[bool]] = [messages.c.channel_id.in_(query.channel_ids)]
    if query.words:
        words = list(query.words)
        if sqlite:
            found.append(
                messages.c.id.in_(select(_fts.c.rowid).where(_fts_match(fts5_query(words))))
            )
        else:
            found.append(
                _pg_document.op("@@")(func.to_tsquery(literal_column("'simple'"), tsquery(words)))
            )
    if query.author_ids:
        found.append(messages.c.author_id.in_(query.author_ids))
    if query.mention_ids:
        found.append(
            messages.c.id.in_(
                select(message_mentions.c.message_id).where(
                    message_mentions.c.user_id.in_(query.mention_ids),
                    message_mentions.c.channel_id.in_(query.channel_ids),
                )
            )
        )
    if query.has_link:
        found.append(
            or_(messages.c.content.contains("http://"), messages.c.content.contains("https://"))
        )
    if query.has_embed:
        found.append(func.json_array_length(messages.c.embeds) > 0)
    if query.has_file:
        found.append(
            exists().where(
                attachments.c.message_id == messages.c.id,
                attachments.c.channel_id.in_(query.channel_ids),
            )
        )
    if query.has_image:
        # Only files the relay decoded as images have dimensions.
        found.append(
            exists().where(
                attachments.c.message_id == messages.c.id,
                attachments.c.channel_id.in_(query.channel_ids),
                attachments.c.width.is_not(None),
            )
        )
    if query.min_id is not None:
        found.append(messages.c.id > query.min_id)
    if query.max_id is not None:
        found.append(messages.c.id < query.max_id)
    if query.pinned is not None:
        found.append(
            messages.c.pinned_at.is_not(None) if query.pinned else messages.c.pinned_at.is_(None)
        )
    return found


async def search_messages(
    tx: AsyncConnection, query: MessageQuery, *, sqlite: bool
) -> tuple[int, list[MessageRecord]]:
    """How many messages match in all, and the page of them ``limit``/``offset`` pick,
    newest first unless ``oldest_first``."""
    if not query.channel_ids:
        return 0, []
    where = and_(*_conditions(query, sqlite=sqlite))
    total = int(
        (await tx.execute(select(func.count()).select_from(messages).where(where))).scalar_one()
    )
    if total <= query.offset:
        return total, []
    order = messages.c.id.asc() if query.oldest_first else messages.c.id.desc()
    rows: list[Any] = list(
        (
            await tx.execute(
                select(*MESSAGE_COLUMNS)
                .where(where)
                .order_by(order)
                .limit(query.limit)
                .offset(query.offset)
            )
        ).all()
    )
    return total, await _records(tx, rows)
