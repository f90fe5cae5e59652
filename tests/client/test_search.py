"""``Client.search_messages``: a community's messages found through the relay's search."""

from __future__ import annotations

import dataclasses
import secrets

import pytest

from nexus_client import BadRequest, Client, Forbidden, SearchResults
from nexus_protocol.models import Message, User
from tests.relay.harness import RunningRelay

PASSWORD = "correct horse battery"
VIEW_CHANNEL = 1 << 10


async def account(relay: RunningRelay, name: str) -> tuple[Client, User]:
    client = Client(relay.settings.base_url)
    user = await client.register(f"{name}_{secrets.token_hex(3)}", PASSWORD)
    return client, user


async def test_search_messages_with_filters_and_paging(relay: RunningRelay) -> None:
    alice, alice_user = await account(relay, "alice")
    bob, bob_user = await account(relay, "bob")
    try:
        club = await alice.create_guild("Hikers")
        general = club.system_channel_id
        assert general is not None
        trips = await alice.create_channel(club.id, "trips")
        staff = await alice.create_channel(club.id, "staff")
        await bob.join((await alice.create_invite(general)).code)
        first = await alice.post_message(general, "Mountain hut on Saturday?")
        second = await bob.post_message(general, f"The mountain café, <@{alice_user.id}>")
        third = await alice.post_message(trips.id, "mountain map: https://example.org/map")
        await alice.post_message(staff.id, "mountain budget")
        await alice.http.request(
            "PUT",
            f"/channels/{staff.id}/permissions/{bob_user.id}",
            json={"type": 1, "allow": "0", "deny": str(VIEW_CHANNEL)},
        )

        found = await bob.search_messages(club.id, "MOUNT")
        assert isinstance(found, SearchResults)
        assert found.total == 3  # not the staff channel, hidden from bob
        assert [m.id for m in found.messages] == [third.id, second.id, first.id]
        assert all(isinstance(m, Message) for m in found.messages)
        with pytest.raises(dataclasses.FrozenInstanceError):
            found.total = 0  # type: ignore[misc]

        page = await bob.search_messages(club.id, "mountain", limit=1, offset=1, oldest_first=True)
        assert page.total == 3 and [m.id for m in page.messages] == [second.id]
        by_alice = await bob.search_messages(club.id, author_id=alice_user.id)
        assert [m.id for m in by_alice.messages] == [third.id, first.id]
        in_general = await bob.search_messages(club.id, "mountain", channel_id=general)
        assert [m.id for m in in_general.messages] == [second.id, first.id]
        mentioning = await bob.search_messages(club.id, mentions=alice_user.id)
        assert [m.content for m in mentioning.messages] == [second.content]
        links = await bob.search_messages(club.id, has="link")
        assert [m.id for m in links.messages] == [third.id]
        assert (await bob.search_messages(club.id, "cafe")).total == 1  # accents folded

        with pytest.raises(Forbidden):
            await bob.search_messages(club.id, "mountain", channel_id=staff.id)
        with pytest.raises(BadRequest) as refused:
            await bob.search_messages(club.id)
        assert "content" in refused.value.errors
    finally:
        await alice.close()
        await bob.close()
