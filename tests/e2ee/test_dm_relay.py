"""Encrypted DMs through a real relay (SQLite and PostgreSQL) between three devices:
alice on two, bob on one. Afterwards no plaintext is anywhere in the relay's storage."""

from __future__ import annotations

from typing import Any

from nexus_client import Client, DMMessage
from tests.e2ee.helpers import assert_relay_holds_none_of, online_client, wait_until
from tests.relay.harness import RunningRelay

PLAINTEXTS = [
    "hello bob, this is alice-laptop",
    "hi alice! bob here, replying",
    "alice-phone chiming in on the same DM",
    "a fourth line with unicode: ünïcødé ✓",
    "final words from bob",
]


def _collect(client: Client) -> list[DMMessage]:
    got: list[DMMessage] = []

    @client.listen("dm_message")
    async def on_dm(message: DMMessage) -> None:
        got.append(message)

    return got


async def test_three_device_conversation_and_no_plaintext_on_the_relay(
    relay: RunningRelay, make_store: Any
) -> None:
    alice1 = await online_client(relay, make_store("alice1"), "alice_e2e", True)
    bob = await online_client(relay, make_store("bob"), "bob_e2e", True)
    alice2 = await online_client(relay, make_store("alice2"), "alice_e2e", False)
    clients = [alice1, alice2, bob]
    try:
        guild = await alice1.create_guild("home")
        channel = (await alice1.fetch_channels(guild.id))[0]
        invite = await alice1.create_invite(channel.id)
        await bob.join(invite.code)
        for client, name in ((alice1, "laptop"), (alice2, "phone"), (bob, "desktop")):
            await client.e2ee_setup(device_name=name)
        got = {id(c): _collect(c) for c in clients}
        assert bob.user is not None and alice1.user is not None
        dm = await alice1.open_dm(bob.user.id)
        assert await bob.open_dm(alice1.user.id) == dm
        assert await alice2.open_dm(bob.user.id) == dm

        senders = [alice1, bob, alice2, alice1, bob]
        for index, (sender, line) in enumerate(zip(senders, PLAINTEXTS, strict=True)):
            await sender.send_dm(dm, line)
            for client in clients:
                if client is not sender:
                    await wait_until(
                        lambda c=client, n=index: any(m.text == PLAINTEXTS[n] for m in got[id(c)])
                    )
        for client in clients:
            texts = [m.text for m in got[id(client)]]
            expected = [
                line for s, line in zip(senders, PLAINTEXTS, strict=True) if s is not client
            ]
            assert texts == expected

        # READY-style listing and history per device: ciphertext only.
        listed = await bob.http.request("GET", "/users/@me/channels")
        assert [c["id"] for c in listed] == [str(dm)]
        history = await bob.http.request(
            "GET",
            f"/channels/{dm}/messages",
            params={"device_id": bob.dms.device.device_id},  # type: ignore[union-attr]
        )
        assert all(m["content"] == "" for m in history)
        assert sum(1 for m in history if m["envelopes"]) == 3  # all but bob's own two
        # Alice's and Bob's safety numbers agree.
        assert alice1.safety_number(bob.user.id) == bob.safety_number(alice1.user.id)
    finally:
        for client in clients:
            await client.close()

    await assert_relay_holds_none_of(relay, PLAINTEXTS, "message_envelopes")
