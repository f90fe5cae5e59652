"""The search box's filter tokens, parsed and resolved against a community's members
and channels (no Qt, no relay)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nexus_desktop.search_query import (
    ResolvedQuery,
    SearchQuery,
    UnresolvedQuery,
    highlight_terms,
    parse_query,
    resolve_query,
)
from nexus_protocol.models import Channel, Member, User

JOINED = datetime(2026, 1, 1, tzinfo=UTC)
MEMBERS = [
    Member(user=User(id=1, username="bob", global_name="Bobby Tables"), joined_at=JOINED),
    Member(user=User(id=2, username="carol"), nick="Caz", joined_at=JOINED),
    Member(user=User(id=3, username="dave", global_name="Sam"), joined_at=JOINED),
    Member(user=User(id=4, username="erin", global_name="Sam"), joined_at=JOINED),
    Member(user=User(id=5, username="sam"), joined_at=JOINED),
]
CHANNELS = [
    Channel(id=10, type=0, guild_id=9, name="general"),
    Channel(id=11, type=0, guild_id=9, name="channel2"),
    Channel(id=12, type=2, guild_id=9, name="lounge"),  # voice: holds no messages
]


def test_filters_and_content_are_split() -> None:
    query = parse_query("from:bob in:channel2 pizza party has:LINK mentions:carol")
    assert query == SearchQuery(
        content="pizza party",
        authors=("bob",),
        channels=("channel2",),
        mentions=("carol",),
        has=("link",),
    )


def test_quotes_keep_names_and_phrases_together() -> None:
    query = parse_query('from:"Bobby Tables" "exact phrase" in:"general"')
    assert query.authors == ("Bobby Tables",)
    assert query.channels == ("general",)
    assert query.content == "exact phrase"
    # An unclosed quote runs to the end; an unknown prefix is content.
    assert parse_query('from:"Bobby Tab').authors == ("Bobby Tab",)
    assert parse_query("see http://example.com note:x").content == ("see http://example.com note:x")


def test_empty_input_and_bare_filters() -> None:
    assert parse_query("").empty
    assert parse_query("   \t ").empty
    assert parse_query("from: in:").empty  # filters still being typed
    assert not parse_query("from:bob").empty


def test_names_resolve_by_username_display_name_or_nick() -> None:
    assert resolve_query(parse_query('from:"BOBBY tables"'), MEMBERS, CHANNELS).author_id == 1
    assert resolve_query(parse_query("from:@bob"), MEMBERS, CHANNELS).author_id == 1
    assert resolve_query(parse_query("mentions:caz"), MEMBERS, CHANNELS).mentions == 2
    assert resolve_query(parse_query("in:#Channel2 hi"), MEMBERS, CHANNELS) == ResolvedQuery(
        content="hi", channel_id=11
    )
    # "sam" is a username (unique) before it is two people's display name.
    assert resolve_query(parse_query("from:sam"), MEMBERS, CHANNELS).author_id == 5


@pytest.mark.parametrize(
    ("text", "field", "words"),
    [
        ("from:nobody hi", "from", "nobody"),
        ("mentions:ghost", "mentions", "ghost"),
        ("in:random", "in", "random"),
        ("in:lounge", "in", "lounge"),  # a voice channel has no messages
        ("has:pdf", "has", "pdf"),
        ("from:bob from:carol", "from", "one from:"),
        ('from:"Sam" x', "from", "several members"),
    ],
)
def test_unknown_names_say_which_filter_and_name(text: str, field: str, words: str) -> None:
    with pytest.raises(UnresolvedQuery) as caught:
        resolve_query(
            parse_query(text),
            [m for m in MEMBERS if m.user and m.user.username != "sam"],
            CHANNELS,
        )
    assert caught.value.field == field
    assert words in str(caught.value)


def test_highlight_terms() -> None:
    assert highlight_terms('pizza "Party" pizz') == ["party", "pizza", "pizz"]
    assert highlight_terms("") == []


@given(st.text(max_size=80))
def test_parsing_never_fails(text: str) -> None:
    query = parse_query(text)
    assert isinstance(query.content, str)
    for name in (*query.authors, *query.channels, *query.mentions, *query.has):
        assert name and name == name.strip()


def test_the_result_count_says_when_the_relay_stopped_counting() -> None:
    from nexus_desktop.views.search_panel import result_count

    assert [result_count(n) for n in (0, 1, 26, 4_999, 5_000)] == [
        "0 results",
        "1 result",
        "26 results",
        "4,999 results",
        "5,000+ results",
    ]
