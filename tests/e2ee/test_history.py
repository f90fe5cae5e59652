"""DM channels, own sent messages and encrypted history through a real relay and real
SQLCipher stores: alice, bob and carol share a DM and a group DM; bob goes offline,
misses messages (one of them a Megolm session rotation), comes back and reads them
from history, each decrypted exactly once; a forged envelope shows its reason."""

from __future__ import annotations

from typing import Any

import pytest

from nexus_client import Client, DMMessage, GroupMessage, UndecryptableMessage
from nexus_protocol.e2ee import b64encode
from tests.e2ee.helpers import online_client, user_id, wait_until
from tests.relay.harness import RunningRelay

PASSWORD = "correct horse battery"


def _texts(history: list[Any]) -> list[str]:
    return [m.text for m in history if isinstance(m, DMMessage | GroupMessage)]


async def test_dm_channels_own_messages_and_history(relay: RunningRelay, make_store: Any) -> None:
    alice = await online_client(relay, make_store("alice"), "alice_hist", True)
    bob = await online_client(relay, make_store("bob"), "bob_hist", True)
    carol = await online_client(relay, make_store("carol"), "carol_hist", True)
    clients = [alice, bob, carol]
    try:
        guild = await alice.create_guild("history")
        invite = await alice.create_invite((await alice.fetch_channels(guild.id))[0].id)
        for member in (bob, carol):
            await member.join(invite.code)
        for client in clients:
            await client.e2ee_setup(device_name="dev")

        # -- dm_channels: from CHANNEL_CREATE, recipients included --------------------------
        dm = await alice.open_dm(user_id(bob))
        gdm = await alice.create_group_dm([user_id(bob), user_id(carol)])
        await wait_until(lambda: {c.id for c in alice.dm_channels()} == {dm, gdm})
        await wait_until(lambda: {c.id for c in bob.dm_channels()} == {dm, gdm})
        by_id = {c.id: c for c in bob.dm_channels()}
        assert [u.id for u in by_id[dm].recipients] == [user_id(alice)]
        assert not by_id[dm].is_group and by_id[gdm].is_group
        assert {u.id for u in by_id[gdm].recipients} == {user_id(alice), user_id(carol)}
        assert by_id[gdm].owner_id == user_id(alice)

        # -- a live conversation; the sender's own lines are kept too --------------------
        got: list[DMMessage | GroupMessage] = []
        bob.listen("dm_message")(_append_to(got))
        bob.listen("group_message")(_append_to(got))
        first = await alice.send_dm(dm, "alice: hello bob")
        await bob.send_dm(dm, "bob: hello alice")
        await alice.edit_dm(dm, first, "alice: hello bob!")
        await alice.send_group(gdm, "alice: hello group")
        await wait_until(lambda: len(got) == 3)
        assert [m.text for m in got] == [
            "alice: hello bob",
            "alice: hello bob!",
            "alice: hello group",
        ]

        history = await alice.dm_history(dm)
        listed = await alice.http.request(
            "GET", f"/channels/{dm}/messages", params={"device_id": _only_device(alice)}
        )
        assert [m.message_id for m in history] == [int(m["id"]) for m in listed]  # newest first
        assert [m.message_id for m in history] == sorted(m.message_id for m in history)[::-1]
        # The edit is also folded into the message it edits.
        assert _texts(history) == ["alice: hello bob!", "bob: hello alice", "alice: hello bob!"]
        assert isinstance(history[0], DMMessage) and history[0].kind == "edit"
        assert history[0].payload["target"] == str(first)
        assert alice.dms is not None and alice.dms.device is not None
        assert history[2].sender_device == alice.dms.device.device_id  # type: ignore[union-attr]
        group_history = await alice.dm_history(gdm)
        assert _texts(group_history) == ["alice: hello group"]
        assert isinstance(group_history[0], GroupMessage)
        # Saved like a received message: in the store's message cache, plaintext included.
        assert alice.store is not None
        cached = {m["id"]: m["content"] for m in alice.store.messages(dm)}
        assert cached[str(first)] == "alice: hello bob!"  # with its edit applied

        # -- bob misses messages while offline, then reads them from history -------------
        bob_device = _only_device(bob)
        await bob.close()
        clients.remove(bob)
        missed = ["alice: are you there?", "alice: second missed line"]
        for line in missed:
            await alice.send_dm(dm, line)
        await alice.remove_group_recipient(gdm, user_id(carol))  # the next session is new
        await alice.send_group(gdm, "alice: carol is gone")  # carries bob's session key
        await alice.send_group(gdm, "alice: same session")  # needs the key above
        forged = await alice.http.request(
            "POST",
            f"/channels/{dm}/messages",
            json={
                "nonce": "forged-envelope-1",
                "envelopes": [
                    {
                        "user_id": str(user_id(bob)),
                        "device_id": bob_device,
                        "type": "message",
                        "ciphertext": b64encode(b"\x01\x02not an envelope"),
                    }
                ],
            },
        )

        bob = await online_client(relay, make_store("bob"), "bob_hist", False)
        clients.append(bob)
        await bob.e2ee_setup()
        await wait_until(lambda: gdm in {c.id for c in bob.dm_channels()})  # READY lists them
        shown = {c.id: c for c in bob.dm_channels()}[gdm]
        assert [u.id for u in shown.recipients] == [user_id(alice)]
        history = await bob.dm_history(dm)
        expected = [*reversed(missed), "alice: hello bob!", "bob: hello alice", "alice: hello bob!"]
        assert _texts(history) == expected
        failed = history[0]
        assert isinstance(failed, UndecryptableMessage) and failed.message_id == int(forged["id"])
        assert failed.reason == "malformed"
        # Asked again: the same answers from the store, nothing decrypted twice.
        assert await bob.dm_history(dm) == history
        group_history = await bob.dm_history(gdm)
        assert _texts(group_history) == [
            "alice: same session",
            "alice: carol is gone",
            "alice: hello group",
        ]
        assert await bob.dm_history(gdm) == group_history
        # Paging, as fetch_messages does it.
        older = await bob.dm_history(dm, limit=2, before=history[1].message_id)
        assert older == history[2:4]
        with pytest.raises(ValueError):
            await bob.dm_history(dm, limit=0)
    finally:
        for client in clients:
            await client.close()


def _append_to(items: list[Any]) -> Any:
    async def append(message: Any) -> None:
        items.append(message)

    return append


def _only_device(client: Client) -> str:
    assert client.store is not None
    identity = client.store.e2ee.identity()
    assert identity is not None
    return identity[1]
