"""Two SDK clients converse through a real relay; every change arrives as an event."""

from __future__ import annotations

import asyncio
import secrets

from nexus_client import Client, Forbidden, InvalidInput
from nexus_protocol.models import Message
from tests.relay.harness import RunningRelay


async def _pair(relay: RunningRelay) -> tuple[Client, Client, int]:
    alice = Client(relay.settings.base_url)
    bob = Client(relay.settings.base_url)
    await alice.register(f"alice_{secrets.token_hex(3)}", "correct horse battery")
    await bob.register(f"bob_{secrets.token_hex(3)}", "correct horse battery")
    guild = await alice.create_guild("Tea room")
    assert guild.system_channel_id is not None
    invite = await alice.create_invite(guild.system_channel_id)
    await bob.join(f"{relay.settings.base_url}/invite/{invite.code}")
    await alice.start()
    await bob.start()
    return alice, bob, guild.system_channel_id


async def test_two_clients_converse_with_edits_deletes_reactions_and_typing(
    relay: RunningRelay,
) -> None:
    alice, bob, channel = await _pair(relay)
    try:
        assert bob.cache.channels[channel].name == "general"
        arriving = asyncio.create_task(bob.wait_for("message", timeout=10))
        sent = await alice.post_message(channel, "hi bob")
        received: Message = await arriving
        assert received.id == sent.id and received.content == "hi bob"
        assert received.author.id == alice.user.id  # type: ignore[union-attr]

        typing = asyncio.create_task(bob.wait_for("typing", timeout=10))
        await alice.trigger_typing(channel)
        assert (await typing).user_id == alice.user.id  # type: ignore[union-attr]

        edited = asyncio.create_task(bob.wait_for("message_edit", timeout=10))
        await alice.edit_message(channel, sent.id, "hi bob!")
        assert (await edited).content == "hi bob!"
        assert bob.cache.history(channel)[-1].content == "hi bob!"

        reacted = asyncio.create_task(alice.wait_for("reaction_add", timeout=10))
        await bob.add_reaction(channel, sent.id, "👍")
        reaction = await reacted
        assert reaction.emoji.name == "👍" and reaction.user_id == bob.user.id  # type: ignore[union-attr]
        assert bob.cache.history(channel)[-1].reactions[0].me is True

        deleted = asyncio.create_task(bob.wait_for("message_delete", timeout=10))
        await alice.delete_message(channel, sent.id)
        assert (await deleted).id == sent.id
        assert bob.cache.history(channel) == []

        # Errors come out of the library's own tree, with the field named.
        try:
            await bob.edit_message(
                channel, (await bob.post_message(channel, "mine")).id, "x" * 4001
            )
        except InvalidInput as exc:
            assert "content" in exc.fields
        else:
            raise AssertionError("an over-long edit was accepted")
        other = await bob.post_message(channel, "bob's own")
        try:
            await alice.edit_message(channel, other.id, "not yours")
        except Forbidden:
            pass
        else:
            raise AssertionError("edited someone else's message")
    finally:
        await alice.close()
        await bob.close()


async def test_rate_limits_are_waited_out_without_errors(relay: RunningRelay) -> None:
    alice, bob, channel = await _pair(relay)
    try:
        # Ten messages against a bucket of five per five seconds: the client waits.
        sent = [await alice.post_message(channel, f"burst {i}") for i in range(10)]
        history = await bob.fetch_messages(channel, limit=20)
        assert [m.id for m in reversed(history)] == [m.id for m in sent]
    finally:
        await alice.close()
        await bob.close()
