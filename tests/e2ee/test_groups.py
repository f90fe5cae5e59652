"""Megolm groups through a real relay and real SQLCipher stores: a group DM of three users
(alice on two devices), a newcomer, a removal, replays, rotation after 100 messages, and
an encrypted guild channel. Afterwards no plaintext is anywhere in the relay's storage."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from nexus_client import BadRequest, Client, Forbidden, GroupMessage, UndecryptableMessage
from nexus_client.e2ee import ROTATE_AFTER
from nexus_protocol.e2ee import MembershipOp, b64encode
from tests.e2ee.helpers import assert_relay_holds_none_of, online_client, user_id, wait_until
from tests.relay.harness import RunningRelay

PASSWORD = "correct horse battery"
GROUP = [
    "group hello from alice's laptop",
    "bob answers the group",
    "carol was here too",
    "alice's phone joins in",
    "after dave joined: welcome dave",
    "dave speaks for the first time",
    "carol is gone now, secret plans",
]
CHANNEL = ["encrypted channel: first words", "encrypted channel: carol cannot see this"]
BULK = [f"bulk message number {i:03d}" for i in range(ROTATE_AFTER + 1)]


class Inbox:
    def __init__(self, client: Client) -> None:
        self.messages: list[GroupMessage] = []
        self.failed: list[UndecryptableMessage] = []
        self.raw: list[dict[str, Any]] = []

        @client.listen("group_message")
        async def on_group(message: GroupMessage) -> None:
            self.messages.append(message)

        @client.listen("undecryptable")
        async def on_undecryptable(message: UndecryptableMessage) -> None:
            self.failed.append(message)

        @client.listen("dispatch")
        async def on_dispatch(event: str, data: Any) -> None:
            if event == "MESSAGE_CREATE" and isinstance(data, dict) and data.get("megolm"):
                self.raw.append(data)

    def texts(self) -> list[str]:
        return [m.text for m in self.messages]


def _outbound_id(client: Client, channel_id: int) -> str:
    assert client.groups is not None
    out = client.groups.sessions().outbound(channel_id)
    assert out is not None
    return out.session_id


async def test_group_dm_and_encrypted_channel(relay: RunningRelay, make_store: Any) -> None:
    alice1 = await online_client(relay, make_store("alice1"), "alice_grp", True)
    bob = await online_client(relay, make_store("bob"), "bob_grp", True)
    carol = await online_client(relay, make_store("carol"), "carol_grp", True)
    dave = await online_client(relay, make_store("dave"), "dave_grp", True)
    alice2 = await online_client(relay, make_store("alice2"), "alice_grp", False)
    clients = [alice1, alice2, bob, carol, dave]
    try:
        guild = await alice1.create_guild("groups")
        channel = (await alice1.fetch_channels(guild.id))[0]
        invite = await alice1.create_invite(channel.id)
        for member in (bob, carol, dave):
            await member.join(invite.code)
        for client in clients:
            await client.e2ee_setup(device_name="dev")
        inbox = {id(c): Inbox(c) for c in clients}

        # -- a group DM of alice (two devices), bob and carol -------------------------------
        gdm = await alice1.create_group_dm([user_id(bob), user_id(carol)])
        listed = await bob.http.request("GET", f"/channels/{gdm}")
        assert listed["type"] == 3 and listed["e2ee"] is True
        assert listed["owner_id"] == str(user_id(alice1))
        members = [alice1, alice2, bob, carol]
        senders = [alice1, bob, carol, alice2]
        for index, sender in enumerate(senders):
            await sender.send_group(gdm, GROUP[index])
            for client in members:
                if client is not sender:
                    await wait_until(lambda c=client, n=index: GROUP[n] in inbox[id(c)].texts())
        for client in members:
            expected = [GROUP[n] for n, s in enumerate(senders) if s is not client]
            assert inbox[id(client)].texts() == expected
        assert all(not inbox[id(c)].failed for c in members)

        # -- dave joins (added by bob, a signed change): earlier messages stay closed -----
        before_join = _outbound_id(alice1, gdm)
        await bob.add_group_recipient(gdm, user_id(dave))
        assert dave.groups is not None and dave.dms is not None and dave.dms.device is not None
        history = await dave.http.request(
            "GET", f"/channels/{gdm}/messages", params={"device_id": dave.dms.device.device_id}
        )
        assert len(history) == len(senders) and all(m["content"] == "" for m in history)
        for old in history:
            result = await dave.groups.receive(old)
            assert isinstance(result, UndecryptableMessage), result
            assert result.reason == "unknown_session"
        assert bob.groups is not None
        with pytest.raises(Forbidden):  # only the owner removes others
            await bob.remove_group_recipient(gdm, user_id(dave))
        forged = bob.groups._signed(MembershipOp.REMOVE, gdm, [user_id(bob)])
        forged["signature"] = b64encode(bytes(64))
        with pytest.raises(BadRequest, match="Invalid Form Body"):  # signature must verify
            await bob.http.request(
                "DELETE", f"/channels/{gdm}/recipients/{user_id(bob)}", json={"membership": forged}
            )
        membership = await dave.groups.membership(gdm, fresh=True)
        assert membership.members == {user_id(c) for c in (alice1, bob, carol, dave)}
        assert membership.rejected == 0
        await alice1.send_group(gdm, GROUP[4])
        await dave.send_group(gdm, GROUP[5])
        assert _outbound_id(alice1, gdm) != before_join  # rotated on the membership change
        for client in (alice2, bob, carol, dave):
            await wait_until(lambda c=client: GROUP[4] in inbox[id(c)].texts())
        for client in (alice1, alice2, bob, carol):
            await wait_until(lambda c=client: GROUP[5] in inbox[id(c)].texts())

        # -- a replayed Megolm message is refused ----------------------------------------
        replayed = next(d for d in inbox[id(bob)].raw if d["author"]["id"] == str(user_id(dave)))
        assert bob.groups is not None
        again = await bob.groups.receive(replayed)
        assert isinstance(again, UndecryptableMessage) and again.reason == "replay"

        # -- the owner removes carol: rotation, and carol cannot read what follows --------
        before_removal = _outbound_id(alice1, gdm)
        await alice1.remove_group_recipient(gdm, user_id(carol))
        assert alice1.groups is not None and carol.groups is not None
        sent = await alice1.groups.send(gdm, {"kind": "text", "text": GROUP[6]})
        assert _outbound_id(alice1, gdm) != before_removal
        for client in (alice2, bob, dave):
            await wait_until(lambda c=client: GROUP[6] in inbox[id(c)].texts())
        await asyncio.sleep(0.2)
        assert GROUP[6] not in inbox[id(carol)].texts()
        stolen = await carol.groups.receive({**sent, "envelopes": []})
        assert isinstance(stolen, UndecryptableMessage) and stolen.reason == "unknown_session"

        # -- rotation after 100 messages --------------------------------------------------
        first = _outbound_id(alice1, gdm)
        sent_ids = []
        for line in BULK:
            current = alice1.groups.sessions().outbound(gdm)
            assert current is not None
            if current.message_index >= ROTATE_AFTER:
                break
            sent_ids.append(int((await alice1.groups.send(gdm, {"text": line}))["id"]))
            assert _outbound_id(alice1, gdm) == first
        await alice1.send_group(gdm, BULK[-1])
        assert _outbound_id(alice1, gdm) != first
        await wait_until(lambda: BULK[-1] in inbox[id(bob)].texts(), timeout=20)
        bulk_bob = [m for m in inbox[id(bob)].messages if m.text.startswith("bulk")]
        assert len(bulk_bob) == len(sent_ids) + 1
        assert {m.session_id for m in bulk_bob[:-1]} == {first}
        assert max(m.message_index for m in bulk_bob[:-1]) == ROTATE_AFTER - 1
        assert bulk_bob[-1].session_id != first
        assert not inbox[id(bob)].failed[1:]  # only the replay above

        # -- an encrypted guild channel ---------------------------------------------------
        secret = await alice1.create_channel(guild.id, "secret")
        with pytest.raises(Forbidden):  # only MANAGE_CHANNELS switches it on
            await bob.http.request("PATCH", f"/channels/{secret.id}", json={"e2ee": True})
        await alice1.enable_e2ee(secret.id)
        shown = await bob.http.request("GET", f"/channels/{secret.id}")
        assert shown["e2ee"] is True
        with pytest.raises(BadRequest):  # one way
            await alice1.http.request("PATCH", f"/channels/{secret.id}", json={"e2ee": False})
        with pytest.raises(BadRequest) as refused:  # no plaintext in an encrypted channel
            await bob.http.request(
                "POST", f"/channels/{secret.id}/messages", json={"content": "plain words"}
            )
        assert "encrypted" in str(refused.value)
        audience = await bob.http.request("GET", f"/channels/{secret.id}/devices")
        assert {int(d["user_id"]) for d in audience} == {user_id(c) for c in clients}
        await bob.send_group(secret.id, CHANNEL[0])
        for client in (alice1, alice2, carol, dave):
            await wait_until(lambda c=client: CHANNEL[0] in inbox[id(c)].texts())
        before_view = _outbound_id(bob, secret.id)
        await alice1.http.request(
            "PUT",
            f"/channels/{secret.id}/permissions/{user_id(carol)}",
            json={"type": 1, "allow": "0", "deny": str(1 << 10)},
        )
        assert bob.groups is not None
        sent = await bob.groups.send(secret.id, {"kind": "text", "text": CHANNEL[1]})
        assert _outbound_id(bob, secret.id) != before_view
        for client in (alice1, alice2, dave):
            await wait_until(lambda c=client: CHANNEL[1] in inbox[id(c)].texts())
        stolen = await carol.groups.receive({**sent, "envelopes": []})
        assert isinstance(stolen, UndecryptableMessage) and stolen.reason == "unknown_session"
        assert CHANNEL[1] not in inbox[id(carol)].texts()
    finally:
        for client in clients:
            await client.close()

    await assert_relay_holds_none_of(
        relay, [*GROUP, *CHANNEL, BULK[0], BULK[57], BULK[-1]], "group_ciphertexts"
    )
