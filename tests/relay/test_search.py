"""Searching a community's messages: GET /guilds/{id}/messages/search, as Discord serves it,
on SQLite (FTS5) and PostgreSQL (full text)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, insert, text

from nexus_server.store import search as search_store
from nexus_server.store.database import Database
from nexus_server.store.schema import (
    channels,
    guilds,
    is_message_search_object,
    messages,
    metadata,
    users,
)

from .harness import RunningRelay, User, postgres_database, register

VIEW_CHANNEL = 1 << 10
READ_MESSAGE_HISTORY = 1 << 16


def on_sqlite(relay: RunningRelay) -> bool:
    return relay.relay.db.is_sqlite


async def search(user: User, guild_id: str, **params: Any) -> dict[str, Any]:
    response = await user.request("GET", f"/guilds/{guild_id}/messages/search", params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert set(body) == {"total_results", "messages"}
    assert all(isinstance(hit, list) and len(hit) == 1 for hit in body["messages"])
    return body


async def found(user: User, guild_id: str, **params: Any) -> list[str]:
    """The contents of the hits, in the order the relay gave them."""
    return [hit[0]["content"] for hit in (await search(user, guild_id, **params))["messages"]]


async def post(user: User, channel_id: str, content: str) -> dict[str, Any]:
    message: dict[str, Any] = await user.ok(
        "POST", f"/channels/{channel_id}/messages", json={"content": content}
    )
    return message


async def community(relay: RunningRelay) -> tuple[User, User, str, str]:
    """Alice's community, with Bob as a member; its id and its first channel's."""
    alice = await register(relay.api)
    bob = await register(relay.api)
    guild = await alice.ok("POST", "/guilds", json={"name": "Hikers"})
    general = guild["system_channel_id"]
    invite = await alice.ok("POST", f"/channels/{general}/invites", json={})
    await bob.ok("POST", f"/invites/{invite['code']}", json={})
    return alice, bob, guild["id"], general


@pytest.mark.no_rate_limits
async def test_words_prefixes_and_filters(relay: RunningRelay) -> None:
    alice, bob, gid, general = await community(relay)
    trips = await alice.ok("POST", f"/guilds/{gid}/channels", json={"name": "trips"})
    first = await post(alice, general, "The MOUNTAIN trail was muddy")
    await post(bob, general, f"Café at the mountain hut, <@{alice.id}>?")
    await post(bob, trips["id"], "Maps: https://example.org/alps and a mountain hut")
    pinned = await post(alice, trips["id"], "Packing list for the hut")
    await alice.ok("PUT", f"/channels/{trips['id']}/pins/{pinned['id']}")
    await post(alice, general, "mounting the tent")
    await post(alice, general, "nothing to see")

    # Whole words, any case; the last word also as a prefix.
    assert await found(bob, gid, content="mountain") == [
        "Maps: https://example.org/alps and a mountain hut",
        f"Café at the mountain hut, <@{alice.id}>?",
        "The MOUNTAIN trail was muddy",
    ]
    assert len(await found(bob, gid, content="mou")) == 4  # mountain (3), mounting
    assert await found(bob, gid, content="mountain hu") == [
        "Maps: https://example.org/alps and a mountain hut",
        f"Café at the mountain hut, <@{alice.id}>?",
    ]
    assert await found(bob, gid, content="ountain") == []  # inside a word: no
    assert await found(bob, gid, content="mou trail") == []  # only the last is a prefix
    if on_sqlite(relay):
        assert len(await found(bob, gid, content="CAFE")) == 1  # accents folded too

    # Filters: any of the values of one filter, all of the filters.
    assert await found(bob, gid, content="hut", author_id=str(alice.id)) == [
        "Packing list for the hut"
    ]
    assert len(await found(bob, gid, author_id=[str(alice.id), str(bob.id)])) == 6
    assert await found(bob, gid, content="hut", channel_id=general) == [
        f"Café at the mountain hut, <@{alice.id}>?"
    ]
    assert await found(bob, gid, mentions=str(alice.id)) == [
        f"Café at the mountain hut, <@{alice.id}>?"
    ]
    assert await found(bob, gid, has="link") == [
        "Maps: https://example.org/alps and a mountain hut"
    ]
    assert await found(bob, gid, has=["link", "file"]) == []  # nothing has a file yet
    assert await found(bob, gid, pinned="true") == ["Packing list for the hut"]
    assert len(await found(bob, gid, content="hut", pinned="false")) == 2
    assert await found(bob, gid, content="mountain", max_id=first["id"]) == []
    assert len(await found(bob, gid, content="mountain", min_id=first["id"])) == 2

    # Each hit is the message as the channel's history shows it.
    hit = (await search(bob, gid, content="muddy"))["messages"][0][0]
    history = await bob.ok("GET", f"/channels/{general}/messages")
    assert hit == next(m for m in history if m["id"] == first["id"])


@pytest.mark.no_rate_limits
async def test_paging_total_and_order(relay: RunningRelay) -> None:
    alice, bob, gid, general = await community(relay)
    sent = [await post(alice, general, f"walk number {n}") for n in range(30)]
    await post(alice, general, "a run")

    page = await search(bob, gid, content="walk")
    assert page["total_results"] == 30
    newest_first = [hit[0]["id"] for hit in page["messages"]]
    assert newest_first == [m["id"] for m in reversed(sent)][:25]  # limit defaults to 25
    rest = await search(bob, gid, content="walk", offset=25)
    assert rest["total_results"] == 30
    assert [hit[0]["id"] for hit in rest["messages"]] == [m["id"] for m in reversed(sent[:5])]
    oldest = await search(bob, gid, content="walk", sort_order="asc", limit=3, offset=1)
    assert [hit[0]["id"] for hit in oldest["messages"]] == [m["id"] for m in sent[1:4]]
    beyond = await search(bob, gid, content="walk", offset=5000)
    assert beyond == {"total_results": 30, "messages": []}


@pytest.mark.no_rate_limits
async def test_edits_are_reindexed_and_deletes_vanish(relay: RunningRelay) -> None:
    alice, bob, gid, general = await community(relay)
    gone = await alice.ok("POST", f"/guilds/{gid}/channels", json={"name": "old-trips"})
    message = await post(alice, general, "see you at the lake")
    await post(alice, gone["id"], "the lake in the old channel")
    await post(alice, general, "the lake again")

    await alice.ok(
        "PATCH", f"/channels/{general}/messages/{message['id']}", json={"content": "at the river"}
    )
    assert await found(bob, gid, content="river") == ["at the river"]
    assert set(await found(bob, gid, content="lake")) == {
        "the lake in the old channel",
        "the lake again",
    }

    await alice.request("DELETE", f"/channels/{general}/messages/{message['id']}")
    assert await found(bob, gid, content="river") == []
    await alice.ok("DELETE", f"/channels/{gone['id']}")
    assert await found(bob, gid, content="lake") == ["the lake again"]


@pytest.mark.no_rate_limits
async def test_only_channels_the_caller_may_read(relay: RunningRelay) -> None:
    alice, bob, gid, general = await community(relay)
    hidden = await alice.ok("POST", f"/guilds/{gid}/channels", json={"name": "staff"})
    no_history = await alice.ok("POST", f"/guilds/{gid}/channels", json={"name": "drop-box"})
    secret = await alice.ok("POST", f"/guilds/{gid}/channels", json={"name": "secret"})
    await post(alice, general, "summit plan, public")
    await post(alice, hidden["id"], "summit plan, staff only")
    await post(alice, no_history["id"], "summit plan, no history")
    await post(alice, secret["id"], "summit plan, typed before encryption")
    for channel, deny in ((hidden, VIEW_CHANNEL), (no_history, READ_MESSAGE_HISTORY)):
        await alice.ok(
            "PUT",
            f"/channels/{channel['id']}/permissions/{bob.id}",
            json={"type": 1, "allow": "0", "deny": str(deny)},
        )
    await alice.ok("PATCH", f"/channels/{secret['id']}", json={"e2ee": True})

    # Alice reads all but the encrypted channel; Bob only the public one.
    assert len(await found(alice, gid, content="summit")) == 3
    assert await found(bob, gid, content="summit") == ["summit plan, public"]
    for channel in (hidden, no_history):
        response = await bob.request(
            "GET", f"/guilds/{gid}/messages/search", params={"channel_id": channel["id"]}
        )
        assert response.status_code == 403, response.text
    # A channel that does not exist looks the same as one that is hidden.
    response = await bob.request(
        "GET", f"/guilds/{gid}/messages/search", params={"channel_id": "1234567890"}
    )
    assert response.status_code == 403
    response = await alice.request(
        "GET", f"/guilds/{gid}/messages/search", params={"channel_id": secret["id"]}
    )
    assert response.status_code == 400
    assert "channel_id" in response.json()["errors"]

    stranger = await register(relay.api)
    response = await stranger.request(
        "GET", f"/guilds/{gid}/messages/search", params={"content": "summit"}
    )
    assert response.status_code == 404
    response = await bob.request(
        "GET", "/guilds/4242424242/messages/search", params={"content": "summit"}
    )
    assert response.status_code == 404


FULL_WIDTH_SUMMIT = "".join(chr(ord(c) + 0xFEE0) for c in "summit")
HOSTILE = [
    '"',
    '""',
    '"summit',
    "summit*",
    "*",
    "-summit",
    "summit -plan",
    "NEAR(summit plan)",
    "summit NEAR plan",
    "summit AND plan",
    "summit OR",
    "NOT summit",
    "content:summit",
    "{content}: summit",
    "^summit",
    "summit:*",
    ":*",
    "summit & plan",
    "summit | plan",
    "!summit",
    "summit <-> plan",
    "'summit'",
    "''",
    "\\",
    "(",
    "summit)",
    "%_%",
    "; DROP TABLE messages; --",
    "\x00summit",
    "\u202esummit",
    FULL_WIDTH_SUMMIT,
    "🏔️ summit",
    "a" * 1024,
]


@pytest.mark.no_rate_limits
async def test_query_syntax_in_user_text_is_plain_words(relay: RunningRelay) -> None:
    alice, _bob, gid, general = await community(relay)
    await post(alice, general, "summit plan: NEAR the top & back")
    for query in HOSTILE:
        response = await alice.request(
            "GET", f"/guilds/{gid}/messages/search", params={"content": query}
        )
        assert response.status_code == 200, (query, response.status_code, response.text)
        assert isinstance(response.json()["messages"], list)
    # Operators are words here: "NEAR" finds the message that says it; "-plan" is "plan".
    assert len(await found(alice, gid, content="NEAR(summit plan)")) == 1
    assert len(await found(alice, gid, content="-plan")) == 1
    assert len(await found(alice, gid, content="summit & plan")) == 1
    assert len(await found(alice, gid, content=FULL_WIDTH_SUMMIT)) == 1
    assert await found(alice, gid, content="*") == []
    assert await found(alice, gid, content="summit NOT plan") == []  # "not" is a word
    messages_left = await alice.ok("GET", f"/channels/{general}/messages")
    assert len(messages_left) == 1


async def test_bad_parameters_are_400_naming_the_field(relay: RunningRelay) -> None:
    alice, _bob, gid, _general = await community(relay)
    cases = [
        ({}, "content"),
        ({"content": "   "}, "content"),
        ({"content": "a" * 1025}, "content"),
        ({"content": "x", "limit": 0}, "limit"),
        ({"content": "x", "limit": 26}, "limit"),
        ({"content": "x", "offset": -1}, "offset"),
        ({"content": "x", "offset": 5001}, "offset"),
        ({"content": "x", "sort_order": "sideways"}, "sort_order"),
        ({"author_id": "alice"}, "author_id"),
        ({"mentions": "-1"}, "mentions"),
        ({"min_id": "1e9"}, "min_id"),
        ({"has": "sticker"}, "has"),
        ({"pinned": "perhaps"}, "pinned"),
    ]
    for params, field in cases:
        response = await alice.request("GET", f"/guilds/{gid}/messages/search", params=params)
        assert response.status_code == 400, (params, response.text)
        assert field in response.json()["errors"], (params, response.json())
    # Rate-limited like other routes, with its own budget.
    response = await alice.request("GET", f"/guilds/{gid}/messages/search", params={"content": "x"})
    assert response.headers["X-RateLimit-Limit"] == "20"


# The migration and the schema ---------------------------------------------------------


def _upgrade(connection: Connection, revision: str) -> None:
    from alembic import command
    from alembic.config import Config

    from nexus_server.store.database import MIGRATIONS

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    command.upgrade(config, revision)


def _old_rows(connection: Connection) -> None:
    connection.execute(insert(users).values(id=1, username="old", password_hash="!"))
    connection.execute(insert(guilds).values(id=2, name="Old", owner_id=1))
    connection.execute(insert(channels).values(id=3, guild_id=2, type=0, name="general"))
    connection.execute(
        insert(messages),
        [
            {"id": 10, "channel_id": 3, "guild_id": 2, "author_id": 1, "content": "Öld glacier"},
            {"id": 11, "channel_id": 3, "guild_id": 2, "author_id": 1, "content": "new snow"},
        ],
    )


async def test_migration_indexes_existing_messages(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'old.db'}")
    assert db.sqlite is not None
    with db.sqlite.begin() as connection:
        _upgrade(connection, "0005")
        _old_rows(connection)
    await db.migrate()
    query = search_store.MessageQuery(channel_ids=frozenset({3}), words=("old", "glac"))
    async with db.read("test") as tx:
        total, records = await search_store.search_messages(tx, query, sqlite=True)
    await db.close()
    assert total == 1 and [r.content for r in records] == ["Öld glacier"]


@pytest.mark.postgres
async def test_migration_indexes_existing_messages_on_postgresql() -> None:
    async with postgres_database() as url:
        db = Database(url)
        assert db.engine is not None
        async with db.engine.begin() as connection:
            await connection.run_sync(_upgrade, "0005")
            await connection.run_sync(_old_rows)
        await db.migrate()
        query = search_store.MessageQuery(channel_ids=frozenset({3}), words=("glac",))
        async with db.read("test") as tx:
            total, records = await search_store.search_messages(tx, query, sqlite=False)
            # Two rows are cheaper to scan: ask whether the index can serve at all.
            await tx.execute(text("SET LOCAL enable_seqscan = off"))
            plan = "\n".join(
                row[0]
                for row in await tx.execute(
                    text(
                        "EXPLAIN SELECT id FROM messages WHERE"
                        " to_tsvector('simple', content) @@ to_tsquery('simple', 'x')"
                    )
                )
            )
        await db.close()
    assert total == 1 and [r.content for r in records] == ["Öld glacier"]
    assert "ix_messages_content_search" in plan


def _schema_differences(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(
        connection,
        opts={
            "compare_type": True,
            "include_name": lambda name, type_, _parents: (
                not (type_ in {"table", "index"} and is_message_search_object(name))
            ),
        },
    )
    return list(compare_metadata(context, metadata))


@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
async def test_migrations_match_the_schema(backend: str, tmp_path: Path) -> None:
    if backend == "sqlite":
        db = Database(f"sqlite:///{tmp_path / 'fresh.db'}")
        await db.migrate()
        assert db.sqlite is not None
        with db.sqlite.connect() as connection:
            differences = _schema_differences(connection)
        await db.close()
    else:
        async with postgres_database() as url:
            db = Database(url)
            await db.migrate()
            assert db.engine is not None
            async with db.engine.connect() as connection:
                differences = await connection.run_sync(_schema_differences)
            await db.close()
    assert differences == []
