"""The outbox delivers exactly once, in order, across a relay restart and across the
client's own process being killed."""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import sys
from pathlib import Path

from nexus_client import Client
from nexus_client.store import LocalStore, ScryptParams
from tests.relay.harness import start_relay

FAST_KDF = ScryptParams(n=2**10)
PASSPHRASE = "a long passphrase for tests"


async def _setup(tmp_path: Path) -> tuple[object, Client, Client, int]:
    relay = await start_relay(tmp_path / "relay", rate_limits=False)
    bob = Client(relay.settings.base_url, max_backoff=1.0)
    alice_http = Client(relay.settings.base_url)
    await alice_http.register(f"alice_{secrets.token_hex(3)}", "correct horse battery")
    await bob.register(f"bob_{secrets.token_hex(3)}", "correct horse battery")
    guild = await alice_http.create_guild("Offline")
    channel = guild.system_channel_id
    assert channel is not None
    await bob.join((await alice_http.create_invite(channel)).code)
    return relay, alice_http, bob, channel


async def _history(client: Client, channel: int) -> list[str]:
    messages = await client.fetch_messages(channel, limit=100)
    return [m.content for m in reversed(messages)]


async def test_fifty_messages_queued_while_the_relay_is_down_arrive_once_in_order(
    tmp_path: Path,
) -> None:
    relay, alice_http, bob, channel = await _setup(tmp_path)
    store = LocalStore.open(tmp_path / "alice.db", passphrase=PASSPHRASE, kdf=FAST_KDF)
    alice = Client(relay.settings.base_url, token=alice_http.token, store=store, max_backoff=1.0)
    await alice.start()
    port = relay.settings.port
    await relay.stop()

    pending = [await alice.send_message(channel, f"offline {i}") for i in range(50)]
    assert all(p.state == "pending" for p in pending)
    assert len(alice.outbox.pending(channel)) == 50  # type: ignore[union-attr]

    relay = await start_relay(tmp_path / "relay", rate_limits=False, port=port)
    try:
        await bob.start()
        for _ in range(300):
            if not alice.outbox.has_pending():  # type: ignore[union-attr]
                break
            await asyncio.sleep(0.1)
        expected = [f"offline {i}" for i in range(50)]
        assert await _history(bob, channel) == expected
        final = [alice.outbox.get(p.local_id) for p in pending]  # type: ignore[union-attr]
        assert all(p is not None and p.state == "sent" and p.message_id for p in final)
    finally:
        await alice.close()
        await bob.close()
        await alice_http.close()
        await relay.stop()


async def test_queued_messages_survive_the_client_process_being_killed(tmp_path: Path) -> None:
    relay, alice_http, bob, channel = await _setup(tmp_path)
    port = relay.settings.port
    await relay.stop()
    writer = await asyncio.create_subprocess_exec(
        sys.executable,
        str(Path(__file__).with_name("outbox_writer.py")),
        str(tmp_path / "alice.db"),
        PASSPHRASE,
        str(channel),
        "50",
        stdout=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )
    assert writer.stdout is not None
    assert (await asyncio.wait_for(writer.stdout.readline(), 60)).strip() == b"queued"
    writer.send_signal(signal.SIGKILL)
    await writer.wait()

    relay = await start_relay(tmp_path / "relay", rate_limits=False, port=port)
    store = LocalStore.open(tmp_path / "alice.db", passphrase=PASSPHRASE, kdf=FAST_KDF)
    alice = Client(relay.settings.base_url, token=alice_http.token, store=store, max_backoff=1.0)
    try:
        assert len(alice.outbox.pending(channel)) == 50  # type: ignore[union-attr]
        await alice.start()
        await bob.start()
        for _ in range(300):
            if not alice.outbox.has_pending():  # type: ignore[union-attr]
                break
            await asyncio.sleep(0.1)
        assert await _history(bob, channel) == [f"offline {i}" for i in range(50)]
        # The encrypted store on disk shows none of what was written through it.
        for path in tmp_path.glob("alice.db*"):
            assert b"offline" not in path.read_bytes(), path
    finally:
        await alice.close()
        await bob.close()
        await alice_http.close()
        await relay.stop()
