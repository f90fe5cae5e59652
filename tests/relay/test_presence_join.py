"""Presence when someone joins a community while connected: the members see the newcomer
online right after GUILD_MEMBER_ADD, the newcomer's GUILD_CREATE shows who is online, and
an invisible newcomer stays offline to everyone else."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import pytest

from nexus_client import Client
from nexus_protocol.models import Guild
from tests.waiting import until

from .harness import RunningRelay, postgres_database, start_relay

PASSWORD = "correct horse battery"
SEND_MESSAGES = 1 << 11


async def online(base_url: str, name: str) -> Client:
    client = Client(base_url)
    await client.register(f"{name}_{secrets.token_hex(3)}", PASSWORD)
    await client.start()
    return client


async def community(client: Client, name: str) -> Guild:
    guild = await client.create_guild(name)
    await until(lambda: guild.id in client.cache.guilds)
    return guild


def seen_by(client: Client) -> list[tuple[str, int, str]]:
    """What ``client``'s handlers are told of members and presences, in order:
    ("join", user id, "") and ("presence", user id, status)."""
    seen: list[tuple[str, int, str]] = []

    @client.listen("member_join")
    async def joined(member: Any) -> None:
        seen.append(("join", member.user.id, ""))

    @client.listen("presence_update")
    async def presence(event: Any) -> None:
        seen.append(("presence", event.user.id, event.status))

    return seen


def me(client: Client) -> int:
    assert client.user is not None
    return client.user.id


async def test_a_member_who_joins_while_online_shows_online_both_ways(
    relay: RunningRelay,
) -> None:
    url = relay.settings.base_url
    alice = await online(url, "alice")
    bob = await online(url, "bob")
    try:
        club = await community(alice, "Book club")
        await community(bob, "Bob's home")
        seen = seen_by(alice)
        assert club.system_channel_id is not None
        invite = await alice.create_invite(club.system_channel_id)

        await bob.join(invite.code)

        # Alice's member list gets bob, then his status, without him changing it.
        await until(lambda: ("presence", me(bob), "online") in seen)
        assert seen.index(("join", me(bob), "")) < seen.index(("presence", me(bob), "online"))
        assert alice.cache.presences[me(bob)] == "online"
        # Bob's GUILD_CREATE for the club carries alice's presence.
        await until(lambda: club.id in bob.cache.guilds)
        assert bob.cache.presences.get(me(alice)) == "online"
        assert set(bob.cache.members[club.id]) == {me(alice), me(bob)}
    finally:
        await alice.close()
        await bob.close()


async def test_an_invisible_newcomer_stays_offline_to_the_members(relay: RunningRelay) -> None:
    url = relay.settings.base_url
    alice = await online(url, "alice")
    bob = await online(url, "bob")
    try:
        club = await community(alice, "Book club")
        await community(bob, "Bob's home")
        # Bob's own community tells him when the relay has him invisible.
        await until(lambda: bob.cache.presences.get(me(bob)) == "online")
        await bob.set_presence("invisible")
        await until(lambda: bob.cache.presences.get(me(bob)) == "offline")
        seen = seen_by(alice)
        assert club.system_channel_id is not None
        invite = await alice.create_invite(club.system_channel_id)

        await bob.join(invite.code)
        await until(lambda: ("join", me(bob), "") in seen)
        # Something alice sees after the join, so a leaked status would have come first.
        await bob.post_message(club.system_channel_id, "hello, quietly")
        await until(lambda: len(alice.cache.history(club.system_channel_id)) == 1)
        assert [s for s in seen if s[0] == "presence"] == []
        assert alice.cache.presences.get(me(bob), "offline") == "offline"
        await until(lambda: club.id in bob.cache.guilds)
        assert bob.cache.presences.get(me(alice)) == "online"  # he still sees who is on

        # Once bob shows himself, alice sees it.
        await bob.set_presence("online")
        # (The cache is current before handlers run: wait for the handler's record.)
        await until(lambda: ("presence", me(bob), "online") in seen)
        assert alice.cache.presences.get(me(bob)) == "online"
        assert [s for s in seen if s[0] == "presence"] == [("presence", me(bob), "online")]
    finally:
        await alice.close()
        await bob.close()


async def test_a_connected_bot_added_to_a_community_shows_online(relay: RunningRelay) -> None:
    url = relay.settings.base_url
    alice = await online(url, "alice")
    bot: Client | None = None
    try:
        club = await community(alice, "Book club")
        app = await alice.http.request("POST", "/applications", json={"name": "Greeter"})
        bot = Client(url, token=app["bot"]["token"], bot=True)
        await bot.start()
        seen = seen_by(alice)

        await alice.http.request(
            "POST",
            f"/oauth2/authorize?client_id={app['id']}&scope=bot&permissions={SEND_MESSAGES}",
            json={"guild_id": str(club.id), "permissions": str(SEND_MESSAGES), "authorize": True},
        )

        bot_id = int(app["id"])
        await until(lambda: ("presence", bot_id, "online") in seen)
        assert seen.index(("join", bot_id, "")) < seen.index(("presence", bot_id, "online"))
        await until(lambda: club.id in bot.cache.guilds)
        assert bot.cache.presences.get(me(alice)) == "online"
    finally:
        await alice.close()
        if bot is not None:
            await bot.close()


@pytest.mark.postgres
@pytest.mark.redis
async def test_the_node_serving_the_newcomer_announces_them(tmp_path: Path) -> None:
    """Bob's socket is on node A, his join goes through node B: only A knows he is online."""
    async with postgres_database() as database:
        redis = "redis://127.0.0.1:6379/0"
        node_a = await start_relay(tmp_path / "a", database, redis_url=redis)
        node_b = await start_relay(tmp_path / "b", database, redis_url=redis)
        alice = await online(node_a.settings.base_url, "alice")
        bob = await online(node_a.settings.base_url, "bob")
        bob_via_b = Client(node_b.settings.base_url, token=bob.token)
        try:
            club = await community(alice, "Two nodes")
            seen = seen_by(alice)
            assert club.system_channel_id is not None
            invite = await alice.create_invite(club.system_channel_id)

            await bob_via_b.join(invite.code)

            await until(lambda: ("presence", me(bob), "online") in seen)
            assert seen.index(("join", me(bob), "")) < seen.index(("presence", me(bob), "online"))
            # Announced once, by node A alone.
            await bob.post_message(club.system_channel_id, "made it")
            await until(lambda: len(alice.cache.history(club.system_channel_id)) == 1)
            assert [s for s in seen if s[0] == "presence"] == [("presence", me(bob), "online")]
        finally:
            await alice.close()
            await bob.close()
            await bob_via_b.close()
            await node_a.stop()
            await node_b.stop()


async def test_an_invite_preview_counts_who_is_online(relay: RunningRelay) -> None:
    url = relay.settings.base_url
    alice = await online(url, "alice")
    carol = await online(url, "carol")
    try:
        club = await community(alice, "Book club")
        assert club.system_channel_id is not None
        invite = await alice.create_invite(club.system_channel_id)
        await carol.join(invite.code)
        await until(lambda: carol.cache.presences.get(me(carol)) == "online")
        preview = await alice.http.request(
            "GET", f"/invites/{invite.code}", params={"with_counts": "true"}
        )
        assert (preview["approximate_member_count"], preview["approximate_presence_count"]) == (
            2,
            2,
        )
        # Someone invisible is not counted.
        await carol.set_presence("invisible")
        await until(lambda: carol.cache.presences.get(me(carol)) == "offline")
        preview = await alice.http.request("GET", f"/invites/{invite.code}")
        assert preview["approximate_presence_count"] == 1
    finally:
        await alice.close()
        await carol.close()


async def test_a_dm_partner_without_a_shared_community_sees_a_new_profile(
    relay: RunningRelay,
) -> None:
    url = relay.settings.base_url
    alice = await online(url, "alice")
    bob = await online(url, "bob")
    try:
        # They met in a community, opened a DM, and bob has since left the community.
        club = await community(alice, "Book club")
        assert club.system_channel_id is not None
        await bob.join((await alice.create_invite(club.system_channel_id)).code)
        await until(lambda: club.id in bob.cache.guilds)
        await alice.http.request("POST", "/users/@me/channels", json={"recipient_id": me(bob)})
        await bob.http.request("DELETE", f"/users/@me/guilds/{club.id}")
        await until(lambda: me(bob) not in alice.cache.members.get(club.id, {}))

        updates: list[Any] = []

        @alice.listen("user_update")
        async def updated(user: Any) -> None:
            updates.append(user)

        await bob.edit_profile(global_name="Bobby")
        await until(lambda: any(u.id == me(bob) for u in updates))
        assert next(u for u in updates if u.id == me(bob)).global_name == "Bobby"
    finally:
        await alice.close()
        await bob.close()
