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
from typing import Any, Final

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

# Counting stops here, as Discord's does ("5,000+ results"): counting every hit of a
# common word cost more than finding the page itself, and no page lies beyond it
# (``offset`` is at most 5,000 too).
MAX_COUNTED: Final = 5_000

_fts = sql_table(MESSAGE_SEARCH_TABLE, column("rowid", BigInteger))
_fts_match = literal_column(MESSAGE_SEARCH_TABLE).op("MATCH")
# Spelled exactly as in the GIN index's expression, so PostgreSQL uses the index.
_pg_document = func.to_tsvector(literal_column("'simple'"), messages.c.content)


def search_words(text: str) -> list[str]:
    """The words of a query, in order; compatibility forms folded (NFKC), so a
    full-width or ligature spelling finds the ordinary one."""
    return _WORD.findall(unicodedata.normalize("NFKC", text))


def distinct_terms(words: list[str]) -> list[tuple[str, bool]]:
    """Each word once as (word, whether it is a prefix): every word whole, the last also
    as a prefix unless it is whole elsewhere (which already implies the prefix).

    Repeats cost the index a pass over the word's postings each: "the" typed 500 times
    took 4 s over 100,000 messages."""
    *whole, last = words
    seen: dict[str, str] = {}
    for word in whole:
        seen.setdefault(word.casefold(), word)
    terms = [(word, False) for word in seen.values()]
    if last.casefold() not in seen:
        terms.append((last, True))
    return terms


def fts5_query(words: list[str]) -> str:
    """Every word, whole, the last also as a prefix: ``"big" "mou"*``."""
    return " ".join(
        f'"{word}"*' if prefix else f'"{word}"' for word, prefix in distinct_terms(words)
    )


def tsquery(words: list[str]) -> str:
    """The same for ``to_tsquery``: ``'big' & 'mou':*``."""
    return " & ".join(
        f"'{word}':*" if prefix else f"'{word}'" for word, prefix in distinct_terms(words)
    )


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
    """How many messages match in all (at most ``MAX_COUNTED``), and the page of them
    ``limit``/``offset`` pick, newest first unless ``oldest_first``."""
    if not query.channel_ids:
        return 0, []
    where = and_(*_conditions(query, sqlite=sqlite))
    hits = select(messages.c.id).where(where).limit(MAX_COUNTED).subquery()
    total = int((await tx.execute(select(func.count()).select_from(hits))).scalar_one())
    if total <= query.offset and total < MAX_COUNTED:
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
