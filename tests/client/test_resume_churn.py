"""Resume under churn: the receiver's socket is cut at random moments while messages,
edits and deletes flow; afterwards its cache equals a fresh fetch from the relay."""

from __future__ import annotations

import asyncio
import random
import secrets
from pathlib import Path

from nexus_client import Client
from tests.relay.harness import start_relay


async def test_cache_after_random_drops_equals_a_fresh_fetch(tmp_path: Path) -> None:
    relay = await start_relay(tmp_path / "relay", rate_limits=False)
    alice = Client(relay.settings.base_url)
    bob = Client(relay.settings.base_url)
    try:
        await alice.register(f"alice_{secrets.token_hex(3)}", "correct horse battery")
        await bob.register(f"bob_{secrets.token_hex(3)}", "correct horse battery")
        guild = await alice.create_guild("Churn")
        channel = guild.system_channel_id
        assert channel is not None
        await bob.join((await alice.create_invite(channel)).code)
        await bob.start()
        assert bob._gateway is not None
        seen: list[int] = []

        @bob.event
        async def on_message(message: object) -> None:
            seen.append(message.id)  # type: ignore[attr-defined]

        rng = random.Random(20261126)
        sent: list[int] = []

        async def cut_now_and_then() -> None:
            for _ in range(12):
                await bob.wait_until_online()
                await asyncio.sleep(rng.uniform(0.01, 0.15))
                await bob._gateway.drop()  # type: ignore[union-attr]

        cutter = asyncio.create_task(cut_now_and_then())
        for index in range(150):
            message = await alice.post_message(channel, f"message {index}")
            sent.append(message.id)
            if index % 10 == 3:
                await alice.edit_message(channel, sent[index - 2], f"edited {index - 2}")
            if index % 15 == 7:
                await alice.delete_message(channel, sent[index - 5])
            await asyncio.sleep(0.02)
        await cutter
        await bob.wait_until_online()
        marker = await alice.post_message(channel, "the end")
        await bob.wait_for("message", check=lambda m: m.id == marker.id, timeout=15)

        fresh = list(reversed(await alice.fetch_messages(channel, limit=100)))
        older = list(reversed(await alice.fetch_messages(channel, limit=100, before=fresh[0].id)))
        expected = [(m.id, m.content, m.edited_timestamp) for m in older + fresh]
        cached = [(m.id, m.content, m.edited_timestamp) for m in bob.cache.history(channel)]
        assert cached == expected
        # Every message event was handled exactly once, none missed.
        assert sorted(seen) == sorted(set(seen))
        assert set(sent) | {marker.id} == set(seen)
        assert bob._gateway.reconnects == 12 and bob._gateway.resumes == 12
    finally:
        await alice.close()
        await bob.close()
        await relay.stop()
