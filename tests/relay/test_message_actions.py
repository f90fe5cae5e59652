"""After a message is sent: two people edit, delete, react, pin, type and catch up."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

from nexus_protocol.snowflake import snowflake_at
from nexus_server.store import audit as audit_store
from nexus_server.store import guilds as guild_store

from .harness import Gateway, RunningRelay, User, connect_gateway, register

THUMBS_UP = "\N{THUMBS UP SIGN}"
THUMBS_UP_PATH = quote(THUMBS_UP)  # "%F0%9F%91%8D"


async def two_people(relay: RunningRelay) -> tuple[User, User, dict[str, Any], str, Gateway]:
    """Alice owns a community; Bob joined it and is connected."""
    alice = await register(relay.api)
    bob = await register(relay.api)
    guild = await alice.ok("POST", "/guilds", json={"name": "Book club"})
    general = guild["system_channel_id"]
    bob_gateway = await connect_gateway(relay.api, bob.token)
    await bob_gateway.next_dispatch("READY")
    invite = await alice.ok("POST", f"/channels/{general}/invites", json={"max_age": 0})
    await bob.ok("POST", f"/invites/{invite['code']}", json={})
    await bob_gateway.next_dispatch("GUILD_CREATE")
    return alice, bob, guild, general, bob_gateway


async def audit_actions(relay: RunningRelay, guild_id: str) -> list[int]:
    async with relay.relay.db.read("test_audit") as tx:
        entries = await audit_store.list_entries(tx, int(guild_id))
    return [entry["action_type"] for entry in entries]


async def test_edits_deletes_reactions_pins_and_typing_reach_the_other_user(
    relay: RunningRelay,
) -> None:
    alice, bob, guild, general, bob_gateway = await two_people(relay)
    alice_gateway = await connect_gateway(relay.api, alice.token)
    await alice_gateway.next_dispatch("GUILD_CREATE")
    messages = f"/channels/{general}/messages"
    first = await alice.ok("POST", messages, json={"content": "hello"})
    await bob_gateway.next_dispatch("MESSAGE_CREATE")

    # Edit: author only; mentions are found again; everyone sees the new text.
    refused = await bob.request("PATCH", f"{messages}/{first['id']}", json={"content": "hax"})
    assert refused.status_code == 403 and refused.json()["code"] == 50005
    edited = await alice.ok(
        "PATCH", f"{messages}/{first['id']}", json={"content": f"hello <@{bob.id}>"}
    )
    assert edited["edited_timestamp"] is not None
    update = await bob_gateway.next_dispatch("MESSAGE_UPDATE")
    assert update["d"]["content"] == f"hello <@{bob.id}>"
    assert [u["id"] for u in update["d"]["mentions"]] == [str(bob.id)]
    fetched = await bob.ok("GET", f"{messages}/{first['id']}")
    assert fetched["content"] == f"hello <@{bob.id}>" and fetched["edited_timestamp"]

    # Typing reaches the others, not the typist.
    await bob.ok("POST", f"/channels/{general}/typing")
    typing = await alice_gateway.next_dispatch("TYPING_START")
    assert typing["d"]["user_id"] == str(bob.id)
    assert typing["d"]["channel_id"] == general and typing["d"]["guild_id"] == guild["id"]
    assert typing["d"]["member"]["user"]["id"] == str(bob.id)
    assert isinstance(typing["d"]["timestamp"], int)

    # Reactions: a percent-encoded unicode emoji round-trips.
    reactions = f"{messages}/{first['id']}/reactions"
    response = await bob.request("PUT", f"{reactions}/{THUMBS_UP_PATH}/@me")
    assert response.status_code == 204
    added = await alice_gateway.next_dispatch("MESSAGE_REACTION_ADD")
    assert added["d"]["emoji"] == {"id": None, "name": THUMBS_UP}
    assert added["d"]["user_id"] == str(bob.id)
    assert added["d"]["message_author_id"] == str(alice.id)
    assert added["d"]["member"]["user"]["id"] == str(bob.id)
    assert added["d"]["burst"] is False and added["d"]["type"] == 0
    assert (await bob_gateway.next_dispatch("MESSAGE_REACTION_ADD"))["d"] == added["d"]
    await alice.ok("PUT", f"{reactions}/{THUMBS_UP_PATH}/@me")
    await bob_gateway.next_dispatch("MESSAGE_REACTION_ADD")
    await alice.ok("PUT", f"{reactions}/blobcat:12345/@me")
    custom = await bob_gateway.next_dispatch("MESSAGE_REACTION_ADD")
    assert custom["d"]["emoji"] == {"id": "12345", "name": "blobcat"}
    users = await bob.ok("GET", f"{reactions}/{THUMBS_UP_PATH}")
    assert sorted(u["id"] for u in users) == sorted([str(alice.id), str(bob.id)])
    assert len(await bob.ok("GET", f"{reactions}/{THUMBS_UP_PATH}", params={"limit": 1})) == 1
    shown = (await bob.ok("GET", f"{messages}/{first['id']}"))["reactions"]
    assert [(r["emoji"]["name"], r["count"], r["me"]) for r in shown] == [
        (THUMBS_UP, 2, True),
        ("blobcat", 1, False),
    ]
    for bad in ("abc", "x" * 65, "%20"):
        response = await bob.request("PUT", f"{reactions}/{bad}/@me")
        assert response.status_code == 400 and response.json()["code"] == 10014, bad
    await bob.ok("DELETE", f"{reactions}/{THUMBS_UP_PATH}/@me")
    removed = await alice_gateway.next_dispatch("MESSAGE_REACTION_REMOVE")
    assert removed["d"]["user_id"] == str(bob.id)
    assert removed["d"]["emoji"]["name"] == THUMBS_UP
    refused = await bob.request("DELETE", f"{reactions}/{THUMBS_UP_PATH}/{alice.id}")
    assert refused.status_code == 403
    refused = await bob.request("DELETE", reactions)
    assert refused.status_code == 403
    await alice.ok("DELETE", f"{reactions}/blobcat:12345")
    emoji_gone = await bob_gateway.next_dispatch("MESSAGE_REACTION_REMOVE_EMOJI")
    assert emoji_gone["d"]["emoji"] == {"id": "12345", "name": "blobcat"}
    await alice.ok("DELETE", reactions)
    cleared = await bob_gateway.next_dispatch("MESSAGE_REACTION_REMOVE_ALL")
    assert cleared["d"] == {
        "channel_id": general,
        "message_id": first["id"],
        "guild_id": guild["id"],
    }
    assert (await bob.ok("GET", f"{messages}/{first['id']}"))["reactions"] == []

    # Pins: MANAGE_MESSAGES; the channel hears of the pin and the pinned message.
    reply = await bob.ok("POST", messages, json={"content": "pin me"})
    await alice_gateway.next_dispatch("MESSAGE_CREATE")
    refused = await bob.request("PUT", f"/channels/{general}/pins/{reply['id']}")
    assert refused.status_code == 403
    await alice.ok("PUT", f"/channels/{general}/pins/{reply['id']}")
    pinned = await bob_gateway.next_dispatch("MESSAGE_UPDATE")
    assert pinned["d"]["id"] == reply["id"] and pinned["d"]["pinned"] is True
    pins_update = await bob_gateway.next_dispatch("CHANNEL_PINS_UPDATE")
    assert pins_update["d"]["channel_id"] == general
    assert pins_update["d"]["last_pin_timestamp"] is not None
    assert [m["id"] for m in await bob.ok("GET", f"/channels/{general}/pins")] == [reply["id"]]
    await alice.ok("DELETE", f"/channels/{general}/pins/{reply['id']}")
    unpinned = await bob_gateway.next_dispatch("MESSAGE_UPDATE")
    assert unpinned["d"]["pinned"] is False
    assert (await bob_gateway.next_dispatch("CHANNEL_PINS_UPDATE"))["d"][
        "last_pin_timestamp"
    ] is None
    assert await bob.ok("GET", f"/channels/{general}/pins") == []

    # Delete: your own, or anyone's with MANAGE_MESSAGES (audited).
    refused = await bob.request("DELETE", f"{messages}/{first['id']}")
    assert refused.status_code == 403 and refused.json()["code"] == 50013
    response = await bob.request("DELETE", f"{messages}/{reply['id']}")
    assert response.status_code == 204
    deleted = await alice_gateway.next_dispatch("MESSAGE_DELETE")
    assert deleted["d"] == {"id": reply["id"], "channel_id": general, "guild_id": guild["id"]}
    assert (await bob_gateway.next_dispatch("MESSAGE_DELETE"))["d"] == deleted["d"]
    other = await bob.ok("POST", messages, json={"content": "delete me, alice"})
    await alice.ok("DELETE", f"{messages}/{other['id']}")
    assert (await bob_gateway.next_dispatch("MESSAGE_DELETE"))["d"]["id"] == other["id"]
    actions = await audit_actions(relay, guild["id"])
    assert actions.count(72) == 1 and 74 in actions and 75 in actions

    # Bulk delete: MANAGE_MESSAGES, 2..100 ids, none older than 14 days.
    second = await bob.ok("POST", messages, json={"content": "two"})
    bulk = f"{messages}/bulk-delete"
    refused = await bob.request("POST", bulk, json={"messages": [first["id"], second["id"]]})
    assert refused.status_code == 403
    too_few = await alice.request("POST", bulk, json={"messages": [first["id"]]})
    assert too_few.status_code == 400 and too_few.json()["code"] == 50035
    ancient = str(snowflake_at(datetime.now(UTC) - timedelta(days=15)))
    too_old = await alice.request("POST", bulk, json={"messages": [first["id"], ancient]})
    assert too_old.status_code == 400 and too_old.json()["code"] == 50034
    response = await alice.request("POST", bulk, json={"messages": [first["id"], second["id"]]})
    assert response.status_code == 204
    gone = await bob_gateway.next_dispatch("MESSAGE_DELETE_BULK")
    assert sorted(gone["d"]["ids"]) == sorted([first["id"], second["id"]])
    assert gone["d"]["channel_id"] == general and gone["d"]["guild_id"] == guild["id"]
    assert await bob.ok("GET", messages) == []
    assert 73 in await audit_actions(relay, guild["id"])
    await alice_gateway.close()
    await bob_gateway.close()


async def test_unread_and_mention_counts_until_acked(relay: RunningRelay) -> None:
    alice, bob, guild, general, bob_gateway = await two_people(relay)
    # A mentionable role for Bob, set up straight in the store (role endpoints are not ours).
    guild_id, role_id = int(guild["id"]), relay.relay.ctx.ids.next_id()
    async with relay.relay.db.write("test_role") as tx:
        await guild_store.insert_role(
            tx,
            id=role_id,
            guild_id=guild_id,
            name="readers",
            position=1,
            permissions=0,
            mentionable=True,
        )
        await guild_store.add_member_role(tx, guild_id, bob.id, role_id)
    relay.relay.permissions.invalidate(guild_id)

    messages = f"/channels/{general}/messages"
    sent = [
        await alice.ok("POST", messages, json={"content": text})
        for text in ("plain", f"hi <@{bob.id}>", "@everyone look", f"<@&{role_id}> too", "end")
    ]
    own = await bob.ok("POST", messages, json={"content": "my own words are never unread"})

    def entry_for(entries: list[dict[str, Any]]) -> dict[str, Any]:
        return next(e for e in entries if e["channel_id"] == general)

    state = entry_for(await bob.ok("GET", "/users/@me/read-states"))
    assert state["id"] == general and state["last_message_id"] is None
    assert (state["unread_count"], state["mention_count"]) == (5, 3)
    # The counts cover the channel up to its newest message, and say which that is.
    assert state["counted_through_id"] == own["id"]
    assert entry_for(await alice.ok("GET", "/users/@me/read-states"))["unread_count"] == 1

    second_session = await connect_gateway(relay.api, bob.token)
    await second_session.next_dispatch("READY")
    ready = second_session.ready
    assert ready is not None
    assert ready["read_state"]["version"] == 0 and ready["read_state"]["partial"] is False
    assert entry_for(ready["read_state"]["entries"])["mention_count"] == 3

    acked = await bob.ok("POST", f"{messages}/{sent[2]['id']}/ack", json={"token": None})
    assert acked == {"token": None}
    ack = await second_session.next_dispatch("MESSAGE_ACK")
    assert ack["d"]["channel_id"] == general and ack["d"]["message_id"] == sent[2]["id"]
    assert isinstance(ack["d"]["version"], int)
    state = entry_for(await bob.ok("GET", "/users/@me/read-states"))
    assert state["last_message_id"] == sent[2]["id"]
    assert (state["unread_count"], state["mention_count"]) == (2, 1)

    # The marker never moves back; an ack without a body is fine too.
    await bob.ok("POST", f"{messages}/{sent[0]['id']}/ack")
    assert (
        entry_for(await bob.ok("GET", "/users/@me/read-states"))["last_message_id"]
        == (sent[2]["id"])
    )
    await bob.ok("POST", f"{messages}/{sent[-1]['id']}/ack")
    state = entry_for(await bob.ok("GET", "/users/@me/read-states"))
    assert (state["unread_count"], state["mention_count"]) == (0, 0)
    missing = await bob.request("POST", f"{messages}/{relay.relay.ctx.ids.next_id()}/ack")
    assert missing.status_code == 404
    await second_session.close()
    await bob_gateway.close()
