"""The search box's text, Discord's way: ``from:NAME``, ``in:CHANNEL``,
``mentions:NAME`` and ``has:KIND`` filters among plain words; quotes keep a name (or
a phrase) with spaces together. Parsing never fails; resolving the names against a
community's members and channels does, with a sentence naming the filter and the
name, so a typo never reads as "no results".

No Qt here.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from nexus_protocol.models import Channel, Member

__all__ = [
    "FILTERS",
    "HAS_KINDS",
    "ResolvedQuery",
    "SearchQuery",
    "UnresolvedQuery",
    "highlight_terms",
    "parse_query",
    "resolve_query",
]

FILTERS = ("from", "in", "mentions", "has")
HAS_KINDS = ("link", "embed", "file", "image")

# A quoted run (an unclosed quote runs to the end), or a run without spaces, each
# optionally behind a ``filter:`` prefix.
_TOKEN = re.compile(r'(?:(\w+):)?(?:"([^"]*)(?:"|$)|(\S+))')
_TEXT_CHANNEL = 0


@dataclass(frozen=True, slots=True)
class SearchQuery:
    """What the box says, names not yet looked up."""

    content: str = ""
    authors: tuple[str, ...] = ()
    channels: tuple[str, ...] = ()
    mentions: tuple[str, ...] = ()
    has: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        return not (self.content or self.authors or self.channels or self.mentions or self.has)


@dataclass(frozen=True, slots=True)
class ResolvedQuery:
    """A query the relay can run: names turned into ids."""

    content: str | None = None
    author_id: int | None = None
    channel_id: int | None = None
    mentions: int | None = None
    has: str | None = None


class UnresolvedQuery(ValueError):
    """A filter names nobody (or nothing) in the community, or too many things; the
    message says which filter and which name, for the search panel to show."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def parse_query(text: str) -> SearchQuery:
    """Split the search box's text into filters and content words. An unknown
    ``word:`` prefix (``http://…``, ``note:``) is content, as Discord treats it; a
    filter with nothing after it is dropped."""
    content: list[str] = []
    found: dict[str, list[str]] = {name: [] for name in FILTERS}
    for match in _TOKEN.finditer(text):
        prefix, quoted, bare = match.group(1), match.group(2), match.group(3)
        value = (quoted if quoted is not None else bare or "").strip()
        key = prefix.casefold() if prefix else None
        if key in found:
            if value:
                found[key].append(value)
            continue
        word = match.group(0)
        if quoted is None and word.endswith(":") and word[:-1].casefold() in found:
            continue  # "from:" with nothing after it yet
        if quoted is not None and prefix is None:
            word = value  # a quoted phrase: its words, in order
        if word.strip():
            content.append(word.strip())
    return SearchQuery(
        content=" ".join(content),
        authors=tuple(found["from"]),
        channels=tuple(found["in"]),
        mentions=tuple(found["mentions"]),
        has=tuple(v.casefold() for v in found["has"]),
    )


def _single(field: str, values: tuple[str, ...]) -> str | None:
    if len(values) > 1:
        raise UnresolvedQuery(field, f"Search one {field}: at a time (got {len(values)}).")
    return values[0] if values else None


def _member_names(member: Member) -> list[str]:
    user = member.user
    if user is None:
        return []
    return [n for n in (user.username, user.global_name, member.nick) if n]


def _find_member(field: str, name: str, members: list[Member]) -> int:
    wanted = name.removeprefix("@").casefold()
    # A username is unique; display names and nicknames may be shared.
    by_username = [m for m in members if m.user and m.user.username.casefold() == wanted]
    if by_username and by_username[0].user is not None:
        return by_username[0].user.id
    matches = {
        m.user.id
        for m in members
        if m.user and any(n.casefold() == wanted for n in _member_names(m))
    }
    if not matches:
        raise UnresolvedQuery(field, f"{field}: no member called “{name}” in this community.")
    if len(matches) > 1:
        raise UnresolvedQuery(
            field, f"{field}: several members are called “{name}”; use a username."
        )
    return matches.pop()


def _find_channel(name: str, channels: Iterable[Channel]) -> int:
    wanted = name.removeprefix("#").casefold()
    found = [
        c.id for c in channels if c.type == _TEXT_CHANNEL and (c.name or "").casefold() == wanted
    ]
    if not found:
        raise UnresolvedQuery("in", f"in: no channel called “{name}” in this community.")
    return found[0]


def resolve_query(
    query: SearchQuery, members: Iterable[Member], channels: Iterable[Channel]
) -> ResolvedQuery:
    """Look the query's names up among a community's members (username, display name
    or nickname, case-insensitive) and text channels. Raises ``UnresolvedQuery``."""
    people = list(members)
    author = _single("from", query.authors)
    channel = _single("in", query.channels)
    mentioned = _single("mentions", query.mentions)
    has = _single("has", query.has)
    if has is not None and has not in HAS_KINDS:
        kinds = ", ".join(f"has:{k}" for k in HAS_KINDS)
        raise UnresolvedQuery("has", f"has: “{has}” is not a kind of content; use {kinds}.")
    return ResolvedQuery(
        content=query.content or None,
        author_id=_find_member("from", author, people) if author is not None else None,
        channel_id=_find_channel(channel, channels) if channel is not None else None,
        mentions=_find_member("mentions", mentioned, people) if mentioned is not None else None,
        has=has,
    )


def highlight_terms(content: str) -> list[str]:
    """The words to show in bold in a hit: the content's words, longest first (so a
    longer word is marked before a shorter one inside it)."""
    words = {w.casefold() for w in re.findall(r"\w+", content)}
    return sorted(words, key=lambda w: (-len(w), w))
