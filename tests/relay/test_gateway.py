"""The gateway under disconnects, resumes, slow consumers and several relay nodes."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from .harness import RunningRelay, connect_gateway, postgres_database, register, start_relay


async def _community(relay: RunningRelay) -> tuple[object, object, str]:
    alice = await register(relay.api)
    bob = await register(relay.api)
    guild = await alice.ok("POST", "/guilds", json={"name": "Resumers"})
    general = guild["system_channel_id"]
    invite = await alice.ok("POST", f"/channels/{general}/invites", json={})
    await bob.ok("POST", f"/invites/{invite['code']}", json={})
    return alice, bob, general


@pytest.mark.no_rate_limits
async def test_resume_replays_exactly_the_missed_events_in_order(relay: RunningRelay) -> None:
    alice, bob, general = await _community(relay)
    gateway = await connect_gateway(relay.api, bob.token)
    await gateway.next_dispatch("GUILD_CREATE")
    session_id, seq = gateway.session_id, gateway.seq
    assert session_id is not None
    # Drop the socket without a closing handshake, as a lost Wi-Fi connection would.
    gateway.ws.transport.abort()
    await asyncio.wait_for(gateway.reader, 10)

    sent = []
    for index in range(100):
        message = await alice.ok(
            "POST",
            f"/channels/{general}/messages",
            json={"content": f"missed {index}", "nonce": f"m{index}"},
        )
        sent.append(message["id"])

    resumed = await connect_gateway(relay.api, bob.token, resume=(session_id, seq))
    received = []
    while True:
        frame = await resumed.next_dispatch()
        if frame["t"] == "RESUMED":
            break
        if frame["t"] == "MESSAGE_CREATE":
            received.append(frame["d"]["id"])
    assert received == sent
    # Live delivery continues on the resumed session, with no gap in sequence numbers.
    last_seq = frame["s"]
    live = await alice.ok("POST", f"/channels/{general}/messages", json={"content": "live"})
    numbers = []
    while True:
        frame = await resumed.next_dispatch()
        numbers.append(frame["s"])
        if frame["t"] == "MESSAGE_CREATE":
            break
    assert frame["d"]["id"] == live["id"]
    assert numbers == list(range(last_seq + 1, last_seq + 1 + len(numbers)))
    await resumed.close()


async def test_resume_of_an_unknown_session_is_refused(relay: RunningRelay) -> None:
    bob = await register(relay.api)
    gateway = await connect_gateway(relay.api, bob.token, resume=("0" * 32, 5))
    frame = await asyncio.wait_for(gateway.events.get(), 10)
    assert frame == {"op": 9, "d": False, "s": None, "t": None}
    await gateway.close()


async def test_nonce_retry_never_duplicates(relay: RunningRelay) -> None:
    alice, bob, general = await _community(relay)
    first = await alice.ok(
        "POST", f"/channels/{general}/messages", json={"content": "once", "nonce": "retry-1"}
    )
    again = await alice.ok(
        "POST", f"/channels/{general}/messages", json={"content": "once", "nonce": "retry-1"}
    )
    assert again["id"] == first["id"]
    history = await bob.ok("GET", f"/channels/{general}/messages")
    assert [m["id"] for m in history] == [first["id"]]


@pytest.mark.postgres
@pytest.mark.redis
async def test_two_relay_nodes_share_one_community_through_redis(tmp_path: Path) -> None:
    async with postgres_database() as url:
        node_a = await start_relay(tmp_path / "a", url, redis_url="redis://127.0.0.1:6379/0")
        node_b = await start_relay(tmp_path / "b", url, redis_url="redis://127.0.0.1:6379/0")
        try:
            alice = await register(node_a.api)
            guild = await alice.ok("POST", "/guilds", json={"name": "Two nodes"})
            general = guild["system_channel_id"]
            invite = await alice.ok("POST", f"/channels/{general}/invites", json={})
            bob = await register(node_b.api)
            bob_gateway = await connect_gateway(node_b.api, bob.token)
            await bob_gateway.next_dispatch("READY")
            await bob.ok("POST", f"/invites/{invite['code']}", json={})
            await bob_gateway.next_dispatch("GUILD_CREATE")
            sent = await alice.ok(
                "POST", f"/channels/{general}/messages", json={"content": "across nodes"}
            )
            frame = await bob_gateway.next_dispatch("MESSAGE_CREATE")
            assert frame["d"]["id"] == sent["id"]
            await bob_gateway.close()
        finally:
            await node_a.stop()
            await node_b.stop()
