"""Replies and edits in an end-to-end encrypted community channel, through the app's
message view and composer against a real relay: alice (the app) replies to bob (an SDK
client) and the reply line quotes his decrypted text; Up edits her last message, the
row shows the new text and the edited mark, and bob's client reads both; an edit is no
row of its own, a forged edit changes nothing, a reply to a message that could not be
decrypted says so, and a refused edit shows in the composer."""

from __future__ import annotations

import asyncio
import secrets
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QVBoxLayout, QWidget

from nexus_client import Client, GroupMessage
from nexus_desktop.session import AppSession
from nexus_desktop.views.composer import Composer
from nexus_desktop.views.message_view import MessageView
from nexus_protocol.e2ee import b64encode
from nexus_protocol.models import Message
from tests.desktop.sdk_users import PASSWORD, collect, sdk_user
from tests.waiting import until

QUESTION = "where did you hide the spare key?"
ANSWER = "under the mat"
BETTER = "under the blue flower pot, not the mat"


def rows(view: MessageView) -> list[Message]:
    found = [view.model.item(r) for r in range(view.model.rowCount())]
    return [m for m in found if isinstance(m, Message)]


def row_of(view: MessageView, message_id: int) -> Message | None:
    return next((m for m in rows(view) if m.id == message_id), None)


def type_and_send(composer: Composer, text: str) -> None:
    composer.editor.setFocus()
    QTest.keyClicks(composer.editor, text)
    QTest.keyClick(composer.editor, Qt.Key.Key_Return)


async def test_reply_and_edit_in_an_encrypted_channel(
    relay_url: str, artifacts: Path, tmp_path: Path
) -> None:
    session = AppSession(tmp_path / "app")
    bob: Client | None = None
    window = QWidget()
    try:
        account = await session.add_account(
            relay_url, "alice", PASSWORD, register=True, passphrase="pass"
        )
        client = account.client
        guild = await client.create_guild("Keys")
        general = next(c for c in await client.fetch_channels(guild.id) if c.type == 0)
        invite = (await client.create_invite(general.id)).code
        bob = await sdk_user(relay_url, tmp_path, "bob")
        await bob.join(invite)
        bob_got: list[GroupMessage] = collect(bob, "group_message")
        await until(lambda: session.channel(general.id) is not None)
        encrypted = asyncio.get_running_loop().create_future()
        session.encrypt_channel(general.id, on_done=encrypted.set_result)
        await encrypted
        await until(lambda: len(session.members(guild.id)) == 2)

        view = MessageView(session)
        composer = Composer(session)
        view.reply_requested.connect(composer.start_reply)
        view.edit_requested.connect(composer.start_edit)
        layout = QVBoxLayout(window)
        layout.addWidget(view, 1)
        layout.addWidget(composer)
        window.resize(900, 700)
        window.show()
        view.set_channel(general.id)
        composer.set_channel(general.id)

        # bob asks; alice replies through the message menu's "Reply" and the composer.
        question = await bob.send_group(general.id, QUESTION)
        await until(lambda: (m := row_of(view, question)) is not None and m.content == QUESTION)
        asked = row_of(view, question)
        assert asked is not None
        menu = view.build_menu(asked)
        next(a for a in menu.actions() if a.text() == "Reply").trigger()
        assert composer.reply_bar.isVisible() and "bob" in composer.reply_label.text()
        type_and_send(composer, ANSWER)
        await until(lambda: [m.text for m in bob_got] == [ANSWER])
        assert bob_got[0].reply_to == question
        answer = bob_got[0].message_id
        reply = await until(lambda: (m := row_of(view, answer)) is not None and m.content and m)
        assert reply.content == ANSWER
        assert reply.message_reference is not None
        assert reply.message_reference.message_id == question
        assert view.delegate.reply_text(reply, view.model) == f"↪ @bob: {QUESTION}"
        assert not composer.reply_bar.isVisible()

        # Up in the empty composer edits alice's last message; Enter saves it.
        composer.editor.setFocus()
        QTest.keyClick(composer.editor, Qt.Key.Key_Up)
        assert composer.editing is not None and composer.editing.id == answer
        assert composer.editor.toPlainText() == ANSWER
        composer.editor.selectAll()
        type_and_send(composer, BETTER)
        await until(lambda: len(bob_got) == 2)
        edit = bob_got[1]
        assert (edit.kind, edit.target, edit.text) == ("edit", answer, BETTER)
        read = bob.decrypted_message(answer)
        assert isinstance(read, GroupMessage)
        assert (read.text, read.edited, read.reply_to) == (BETTER, True, question)
        await until(lambda: (m := row_of(view, answer)) is not None and m.content == BETTER)
        edited = row_of(view, answer)
        assert edited is not None and edited.edited_timestamp is not None
        assert edited.message_reference is not None  # still a reply
        assert [m.content for m in rows(view)] == [QUESTION, BETTER]  # no row for the edit
        assert not composer.error_label.isVisible()

        # bob's forged edit of alice's message changes nothing; his own edit shows.
        assert bob.groups is not None
        await bob.groups.send(
            general.id, {"kind": "edit", "target": str(answer), "text": "forged by bob"}
        )
        await bob.edit_group(general.id, question, QUESTION + " (the front door one)")
        await until(lambda: (m := row_of(view, question)) is not None and "front door" in m.content)
        assert [m.content for m in rows(view)] == [QUESTION + " (the front door one)", BETTER]
        reply = row_of(view, answer)
        assert reply is not None
        # The quote follows the edit of the message it answers.
        assert view.delegate.reply_text(reply, view.model).endswith("(the front door one)")

        # A reply to a message that cannot be decrypted here says so in its quote.
        garbage = await bob.http.request(
            "POST",
            f"/channels/{general.id}/messages",
            json={"nonce": secrets.token_hex(8), "megolm": b64encode(b"\x01not megolm at all")},
        )
        about = await bob.send_group(general.id, "about that one", reply_to=int(garbage["id"]))
        await until(lambda: (m := row_of(view, about)) is not None and m.content)
        quoted = row_of(view, about)
        assert quoted is not None
        line = view.delegate.reply_text(quoted, view.model)
        assert line == "↪ @bob: 🔒 Original message could not be decrypted"

        # A refused edit (bob's message is not alice's) shows in the composer.
        composer.start_edit(asked)
        composer.editor.selectAll()
        type_and_send(composer, "alice rewrites bob")
        await until(lambda: composer.error_label.isVisible())
        assert "not one of your encrypted messages" in composer.error_label.text()

        # What alice's store keeps: the latest text, no edit message of its own.
        assert client.store is not None
        stored = {int(m["id"]): m for m in client.store.messages(general.id, limit=20)}
        assert stored[answer]["content"] == BETTER
        assert edit.message_id not in stored
        view.list.scrollToBottom()
        await asyncio.sleep(0.2)
        assert window.grab().save(str(artifacts / "encrypted_channel_edits.png"))
    finally:
        window.close()
        await session.close()
        if bob is not None:
            await bob.close()
