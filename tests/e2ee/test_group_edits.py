"""Replies and edits in end-to-end encrypted channels and group DMs, through a real relay
and real SQLCipher stores: the reply target and the edit travel inside the ciphertext,
readers apply only the author's edits, an edit decrypted before its target (history is
read newest first) still applies, and malformed payloads are logged, never fatal. The
relay's own view of the messages holds no text, no reply link and no edit."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from nexus_client import Client, GroupMessage, UndecryptableMessage
from nexus_client.e2ee import E2EEError
from tests.e2ee.helpers import (
    PASSWORD,
    assert_relay_holds_none_of,
    online_client,
    user_id,
    wait_until,
)
from tests.relay.harness import RunningRelay

QUESTION = "bob asks: when do we ship the vault?"
ANSWER = "alice answers: friday at dawn"
CORRECTED = "alice answers: saturday at dawn, friday is out"
FORGED = "mallory pretends alice said: never"
DRAFT = "group draft: meet by the old mill"
FINAL = "group final: meet by the new bridge"
GROUP_REPLY = "bob in the group: the bridge it is"
GROUP_FORGERY = "bob pretends alice wrote: cancelled"


def collect(client: Client) -> list[GroupMessage]:
    got: list[GroupMessage] = []

    @client.listen("group_message")
    async def keep(message: GroupMessage) -> None:
        got.append(message)

    return got


def read(client: Client, message_id: int) -> GroupMessage:
    found = client.decrypted_message(message_id)
    assert isinstance(found, GroupMessage), found
    return found


async def test_reply_and_edit_in_an_encrypted_channel(
    relay: RunningRelay, make_store: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="nexus_client")
    alice = await online_client(relay, make_store("alice"), "alice_edits", True)
    bob = await online_client(relay, make_store("bob"), "bob_edits", True)
    mallory = await online_client(relay, make_store("mallory"), "mallory_edits", True)
    clients = [alice, bob, mallory]
    try:
        guild = await alice.create_guild("edits")
        general = (await alice.fetch_channels(guild.id))[0]
        invite = await alice.create_invite(general.id)
        for member in (bob, mallory):
            await member.join(invite.code)
        for client in clients:
            await client.e2ee_setup(device_name="dev")
        secret = (await alice.create_channel(guild.id, "secret")).id
        await alice.enable_e2ee(secret)
        alice_got, bob_got = collect(alice), collect(bob)

        # -- alice replies to bob: bob reads which message she answered ------------------
        question = await bob.send_group(secret, QUESTION)
        await wait_until(lambda: [m.message_id for m in alice_got] == [question])
        answer = await alice.send_group(secret, ANSWER, reply_to=question)
        await wait_until(lambda: [m.message_id for m in bob_got] == [answer])
        reply = bob_got[0]
        assert (reply.kind, reply.text, reply.reply_to) == ("text", ANSWER, question)
        assert not reply.edited
        assert read(bob, question).text == QUESTION  # the quoted message, decrypted
        assert read(alice, answer).reply_to == question  # the sender's own copy too

        # -- alice edits her answer: bob gets the edit and reads the new text -------------
        edit = await alice.edit_group(secret, answer, CORRECTED)
        await wait_until(lambda: len(bob_got) == 2)
        assert (bob_got[1].kind, bob_got[1].target, bob_got[1].text) == ("edit", answer, CORRECTED)
        now = read(bob, answer)
        assert (now.text, now.edited, now.last_edit_id, now.reply_to) == (
            CORRECTED,
            True,
            edit,
            question,
        )
        assert now.payload["text"] == ANSWER  # what it decrypted to is kept as it was
        assert read(alice, answer).text == CORRECTED
        assert bob.store is not None
        cached = {int(m["id"]): m for m in bob.store.messages(secret)}
        assert cached[answer]["content"] == CORRECTED
        assert cached[answer]["edited_timestamp"] is not None
        assert cached[answer]["message_reference"]["message_id"] == str(question)
        assert edit not in cached  # an edit is not a message of its own to show

        # -- the SDK refuses to edit someone else's message ------------------------------
        with pytest.raises(E2EEError, match="message_id"):
            await mallory.edit_group(secret, answer, FORGED)
        with pytest.raises(ValueError, match="reply_to"):
            await alice.send_group(secret, "no such target", reply_to=-1)
        with pytest.raises(ValueError, match="text"):
            await alice.edit_group(secret, answer, "   ")

        # -- a forged edit (mallory's own client, hand-made) changes nothing --------------
        assert mallory.groups is not None
        await mallory.groups.send(secret, {"kind": "edit", "target": str(answer), "text": FORGED})
        # Malformed payloads from an old or broken client: logged, never fatal.
        for payload in (
            {"kind": "poll", "question": "?"},
            {"kind": "edit", "target": "not-an-id", "text": "x"},
            {"kind": "edit", "text": "no target at all"},
            {"kind": "text", "text": "a reply to nothing", "reply_to": {"id": 1}},
        ):
            await mallory.groups.send(secret, payload)
        await wait_until(lambda: "a reply to nothing" in [m.text for m in bob_got])
        assert [m.text for m in bob_got[2:]] == ["a reply to nothing"]
        assert bob_got[2].reply_to is None
        assert read(bob, answer).text == CORRECTED
        logged = caplog.text
        assert "only its author edits a message" in logged
        assert "its target is not a message id" in logged
        assert "unknown kind 'poll'" in logged
        assert "malformed reply target" in logged

        # -- the relay's view: no text, no reply link, no edit ----------------------------
        raw = await bob.http.request("GET", f"/channels/{secret}/messages")
        by_id = {int(m["id"]): m for m in raw}
        for message_id in (question, answer, edit):
            shown = by_id[message_id]
            assert shown["content"] == ""
            assert shown.get("message_reference") is None
            assert shown.get("edited_timestamp") is None
        assert not any(QUESTION in str(m) or CORRECTED in str(m) for m in raw)
    finally:
        for client in clients:
            await client.close()

    await assert_relay_holds_none_of(
        relay, [QUESTION, ANSWER, CORRECTED, FORGED], "group_ciphertexts"
    )


async def test_edits_in_group_dm_history_apply_in_any_order(
    relay: RunningRelay, make_store: Any
) -> None:
    alice = await online_client(relay, make_store("alice"), "alice_gdm_edits", True)
    bob = await online_client(relay, make_store("bob"), "bob_gdm_edits", True)
    carol = await online_client(relay, make_store("carol"), "carol_gdm_edits", True)
    # bob's second device never connects the gateway: it learns everything from history.
    bob_later = Client(relay.settings.base_url, store=make_store("bob_later"))
    clients = [alice, bob, carol, bob_later]
    try:
        guild = await alice.create_guild("gdm edits")
        invite = await alice.create_invite((await alice.fetch_channels(guild.id))[0].id)
        for member in (bob, carol):
            await member.join(invite.code)
        await bob_later.login("bob_gdm_edits", PASSWORD)
        for client in clients:
            await client.e2ee_setup(device_name="dev")
        gdm = await alice.create_group_dm([user_id(bob), user_id(carol)])
        carol_got = collect(carol)
        # The first message of each sender's session carries its key: read those first
        # (history is decrypted oldest first only within a page).
        await alice.send_group(gdm, "alice says hello")
        await bob.send_group(gdm, "bob says hello")
        assert len(await bob_later.dm_history(gdm)) == 2
        await wait_until(lambda: len(carol_got) == 2)
        del carol_got[:]

        draft = await alice.send_group(gdm, DRAFT)
        reply = await bob.send_group(gdm, GROUP_REPLY, reply_to=draft)
        edit = await alice.edit_group(gdm, draft, FINAL)
        assert bob.groups is not None
        forged = (
            await bob.groups.send(
                gdm, {"kind": "edit", "target": str(draft), "text": GROUP_FORGERY}
            )
        )["id"]
        await wait_until(lambda: len(carol_got) == 3)
        assert [m.kind for m in carol_got] == ["text", "text", "edit"]  # the forgery: none
        assert read(carol, draft).text == FINAL

        # Newest first: both edits are decrypted before the message they name.
        newest = await bob_later.dm_history(gdm, limit=2)
        assert [m.message_id for m in newest] == [int(forged), edit]
        assert all(isinstance(m, GroupMessage) and m.kind == "edit" for m in newest)
        history = (await bob_later.dm_history(gdm))[:4]
        assert [m.message_id for m in history] == [int(forged), edit, reply, draft]
        first = history[-1]
        assert isinstance(first, GroupMessage)
        assert (first.text, first.edited, first.last_edit_id) == (FINAL, True, edit)
        answered = history[-2]
        assert isinstance(answered, GroupMessage) and answered.reply_to == draft
        assert not any(isinstance(m, UndecryptableMessage) for m in history)
        # Asked again, the archive answers the same.
        assert (await bob_later.dm_history(gdm))[:4] == history
        assert bob_later.store is not None
        cached = {int(m["id"]): m["content"] for m in bob_later.store.messages(gdm)}
        assert cached[draft] == FINAL and int(forged) not in cached
    finally:
        for client in clients:
            await client.close()
