"""Replies, edits, deletions and reactions in one-to-one DMs (pairwise sessions) and
group DMs (Megolm) through a real relay and real SQLCipher stores, with one API
(``send_dm`` / ``edit_dm`` / ``delete_dm`` / ``react_dm``) for both: everything travels
inside the ciphertext, readers honour edits and deletions only from the author, count
one reaction per person and emoji, apply what arrives before its target, and ignore
forged or malformed payloads with a log line. The relay holds no text and no link
between a message and what answers, edits, deletes or reacts to it."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from nexus_client import Client, DMMessage, GroupMessage
from nexus_client.e2ee import E2EEError
from tests.e2ee.helpers import (
    PASSWORD,
    assert_relay_holds_none_of,
    online_client,
    user_id,
    wait_until,
)
from tests.relay.harness import RunningRelay

QUESTION = "alice asks: is the lighthouse key under the mat?"
ANSWER = "bob answers: under the blue stone instead"
CORRECTED = "alice asks: is the lighthouse key under the red mat?"
FORGED = "bob pretends alice said: the key is lost"
DOOMED = "alice blurts: the safe code is 4471"
GROUP_PLAN = "alice to the group: picnic at the quarry"
GROUP_FIX = "alice to the group: picnic at the lake"
GROUP_OOPS = "alice to the group: wrong chat, ignore"


def events(client: Client, name: str) -> list[Any]:
    got: list[Any] = []

    @client.listen(name)
    async def keep(message: Any) -> None:
        got.append(message)

    return got


def read(client: Client, message_id: int) -> DMMessage | GroupMessage:
    found = client.decrypted_message(message_id)
    assert isinstance(found, DMMessage | GroupMessage), found
    return found


async def relay_copy(client: Client, channel_id: int) -> dict[int, dict[str, Any]]:
    assert client.dms is not None and client.dms.device is not None
    page = await client.http.request(
        "GET",
        f"/channels/{channel_id}/messages",
        params={"device_id": client.dms.device.device_id},
    )
    return {int(m["id"]): m for m in page}


async def test_one_to_one_dm_actions(
    relay: RunningRelay, make_store: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="nexus_client")
    alice = await online_client(relay, make_store("alice"), "alice_dm_actions", True)
    bob = await online_client(relay, make_store("bob"), "bob_dm_actions", True)
    # bob's second device never connects the gateway: it reads everything from history.
    bob_later = Client(relay.settings.base_url, store=make_store("bob_later"))
    clients = [alice, bob, bob_later]
    try:
        guild = await alice.create_guild("dm actions")
        invite = await alice.create_invite((await alice.fetch_channels(guild.id))[0].id)
        await bob.join(invite.code)
        await bob_later.login("bob_dm_actions", PASSWORD)
        for client in clients:
            await client.e2ee_setup(device_name="dev")
        dm = await alice.open_dm(user_id(bob))
        bob_got = events(bob, "dm_message")
        alice_got = events(alice, "dm_message")

        question = await alice.send_dm(dm, QUESTION)
        answer = await bob.send_dm(dm, ANSWER, reply_to=question)
        await wait_until(lambda: len(alice_got) == 1)
        assert alice_got[0].reply_to == question and alice_got[0].text == ANSWER

        edit = await alice.edit_dm(dm, question, CORRECTED)
        assert bob.dms is not None
        # bob forges alice's edit and deletion, and sends malformed reactions: ignored.
        await bob.dms.send(dm, {"kind": "edit", "target": str(question), "text": FORGED})
        await bob.dms.send(dm, {"kind": "delete", "target": str(question)})
        await bob.dms.send(dm, {"kind": "reaction", "target": str(question), "emoji": ""})
        await bob.dms.send(dm, {"kind": "reaction", "target": "x", "emoji": "👍"})
        await bob.react_dm(dm, question, "👍")
        await alice.react_dm(dm, question, "👍")
        await alice.react_dm(dm, question, "🎉")
        await alice.react_dm(dm, question, "🎉", add=False)  # a toggle: taken back
        doomed = await alice.send_dm(dm, DOOMED)
        deletion = await alice.delete_dm(dm, doomed)
        await wait_until(lambda: len(bob_got) == 7)
        await wait_until(lambda: len(alice_got) == 2)
        assert [m.kind for m in bob_got] == [
            "text",
            "edit",
            "reaction",
            "reaction",
            "reaction",
            "text",
            "delete",
        ]
        assert bob_got[1].target == question and bob_got[-1].target == doomed
        assert [m.kind for m in alice_got] == ["text", "reaction"]  # the forgeries: none

        for reader in (alice, bob):
            asked = read(reader, question)
            assert (asked.text, asked.edited, asked.last_edit_id) == (CORRECTED, True, edit)
            assert not asked.deleted
            assert dict(asked.reactions) == {"👍": tuple(sorted([user_id(alice), user_id(bob)]))}
            assert read(reader, answer).reply_to == question
            gone = read(reader, doomed)
            assert gone.deleted and gone.text == "" and gone.reactions == {}
        logged = caplog.text
        assert "only its author deletes a message" in logged and "malformed emoji" in logged

        # Only the author edits or deletes; a reaction must be an emoji.
        with pytest.raises(E2EEError, match="message_id"):
            await bob.edit_dm(dm, question, FORGED)
        with pytest.raises(E2EEError, match="message_id"):
            await bob.delete_dm(dm, question)
        with pytest.raises(E2EEError, match="message_id"):
            await alice.edit_dm(dm, doomed, "too late")
        with pytest.raises(ValueError, match="emoji"):
            await alice.react_dm(dm, question, "  ")
        with pytest.raises(ValueError, match="text"):
            await alice.edit_dm(dm, question, " ")

        # The second device reads newest first: the changes before what they change.
        newest = await bob_later.dm_history(dm, limit=1)
        assert [m.message_id for m in newest] == [deletion]
        history = await bob_later.dm_history(dm, limit=100)
        by_id = {m.message_id: m for m in history}
        first = by_id[question]
        assert isinstance(first, DMMessage)
        assert (first.text, first.last_edit_id) == (CORRECTED, edit)
        assert dict(first.reactions) == {"👍": tuple(sorted([user_id(alice), user_id(bob)]))}
        late_doomed = by_id[doomed]
        assert isinstance(late_doomed, DMMessage) and late_doomed.deleted
        assert isinstance(by_id[deletion], DMMessage) and by_id[deletion].kind == "delete"
        assert bob_later.store is not None
        cached = {int(m["id"]): m["content"] for m in bob_later.store.messages(dm)}
        assert cached[question] == CORRECTED and doomed not in cached and edit not in cached

        # The relay's copy: no text, no reply link, no edit mark.
        copy = await relay_copy(alice, dm)
        for message_id in (question, answer, edit, deletion):
            assert copy[message_id]["content"] == ""
            assert not copy[message_id].get("message_reference")
            assert not copy[message_id].get("edited_timestamp")
    finally:
        for client in clients:
            await client.close()
    await assert_relay_holds_none_of(
        relay, [QUESTION, ANSWER, CORRECTED, FORGED, DOOMED], "message_envelopes"
    )


async def test_group_dm_actions_through_the_same_api(
    relay: RunningRelay, make_store: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="nexus_client")
    alice = await online_client(relay, make_store("alice"), "alice_gdm_actions", True)
    bob = await online_client(relay, make_store("bob"), "bob_gdm_actions", True)
    carol = await online_client(relay, make_store("carol"), "carol_gdm_actions", True)
    clients = [alice, bob, carol]
    try:
        guild = await alice.create_guild("group actions")
        invite = await alice.create_invite((await alice.fetch_channels(guild.id))[0].id)
        for member in (bob, carol):
            await member.join(invite.code)
        for client in clients:
            await client.e2ee_setup(device_name="dev")
        gdm = await alice.create_group_dm([user_id(bob), user_id(carol)])
        carol_got = events(carol, "group_message")

        plan = await alice.send_dm(gdm, GROUP_PLAN)  # a group: Megolm, chosen by the SDK
        reply = await bob.send_dm(gdm, ANSWER, reply_to=plan)
        edit = await alice.edit_dm(gdm, plan, GROUP_FIX)
        assert bob.groups is not None
        await bob.groups.send(gdm, {"kind": "delete", "target": str(plan)})  # forged
        await bob.react_dm(gdm, plan, "🔥")
        await alice.react_dm(gdm, plan, "🔥")
        await bob.react_dm(gdm, plan, "🔥", add=False)
        await bob.react_dm(gdm, plan, "👀")
        oops = await alice.send_dm(gdm, GROUP_OOPS)
        await alice.delete_dm(gdm, oops)
        await wait_until(lambda: len(carol_got) == 9)
        assert [m.kind for m in carol_got] == [
            "text",
            "text",
            "edit",
            "reaction",
            "reaction",
            "reaction",
            "reaction",
            "text",
            "delete",
        ]  # the forged deletion: none
        for reader in (alice, bob, carol):
            seen = read(reader, plan)
            assert isinstance(seen, GroupMessage)
            assert (seen.text, seen.last_edit_id, seen.deleted) == (GROUP_FIX, edit, False)
            assert dict(seen.reactions) == {"🔥": (user_id(alice),), "👀": (user_id(bob),)}
            assert read(reader, reply).reply_to == plan
            assert read(reader, oops).deleted
        assert "only its author deletes a message" in caplog.text
        copy = await relay_copy(carol, gdm)
        assert all(m.get("megolm") and m["content"] == "" for m in copy.values())
        assert not any(m.get("message_reference") for m in copy.values())
    finally:
        for client in clients:
            await client.close()
    await assert_relay_holds_none_of(
        relay, [GROUP_PLAN, ANSWER, GROUP_FIX, GROUP_OOPS], "group_ciphertexts"
    )
