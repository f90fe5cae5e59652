"""The message view and composer against a real relay: alice uses the app's widgets,
bob a plain SDK client."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QVBoxLayout, QWidget

from nexus_client import Client
from nexus_desktop.models.messages import Roles
from nexus_desktop.session import AppSession
from nexus_desktop.views.composer import Composer
from nexus_desktop.views.message_view import MessageView
from nexus_protocol.models import Message
from nexus_protocol.permissions import Permissions
from tests.waiting import until


def rows(view: MessageView) -> list[Any]:
    return [view.model.index(r).data(Roles.MESSAGE) for r in range(view.model.rowCount())]


def contents(view: MessageView) -> list[str]:
    return [item.content for item in rows(view)]


async def test_alice_and_bob_talk_through_the_widgets(
    relay_url: str, artifacts: Path, tmp_path: Path
) -> None:
    bob = Client(relay_url)
    await bob.register("bob", "correct horse battery")
    guild = await bob.create_guild("Widgets")
    general = next(c for c in await bob.fetch_channels(guild.id) if c.type == 0)
    locked = await bob.create_channel(guild.id, "announcements")
    invite = await bob.create_invite(general.id)
    await bob.start()

    session = AppSession(tmp_path / "app")
    window = QWidget()
    try:
        account = await session.add_account(
            relay_url,
            "alice",
            "correct horse battery",
            register=True,
            passphrase="test passphrase",
            invite=invite.code,
        )
        alice_id = account.client.user.id  # type: ignore[union-attr]
        await until(lambda: session.channel(general.id) is not None)
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

        # alice types and presses Enter → bob receives it.
        got = asyncio.ensure_future(
            bob.wait_for("message", check=lambda m: m.content == "hello **bob**", timeout=10)
        )
        composer.editor.setFocus()
        QTest.keyClicks(composer.editor, "hello **bob**")
        QTest.keyClick(composer.editor, Qt.Key.Key_Return)
        received: Message = await got
        assert received.author.id == alice_id
        assert composer.editor.toPlainText() == ""
        await until(lambda: "hello **bob**" in contents(view))

        # Shift+Enter is a newline, not a send.
        QTest.keyClicks(composer.editor, "line one")
        QTest.keyClick(composer.editor, Qt.Key.Key_Return, Qt.KeyboardModifier.ShiftModifier)
        assert composer.editor.toPlainText() == "line one\n"
        composer.editor.clear()

        # bob sends → a row appears; bob edits → the row updates.
        sent = await bob.post_message(general.id, "hi alice, see `code` and ||spoiler||")
        await until(lambda: view.model.row_of(sent.id) is not None)
        await bob.edit_message(general.id, sent.id, "hi alice (edited text)")
        row = view.model.row_of(sent.id)
        await until(lambda: rows(view)[row].content == "hi alice (edited text)")
        assert rows(view)[row].edited_timestamp is not None

        # bob reacts; alice toggles the same reaction by clicking its pill.
        await bob.add_reaction(general.id, sent.id, "🔥")
        await until(lambda: rows(view)[row].reactions)
        added = asyncio.ensure_future(
            bob.wait_for("reaction_add", check=lambda e: e.user_id == alice_id, timeout=10)
        )
        view.list.scrollToBottom()
        await asyncio.sleep(0.1)
        assert view.click_part(row, "reaction", "🔥")
        event = await added
        assert event.message_id == sent.id and event.emoji.name == "🔥"
        await until(lambda: rows(view)[row].reactions[0].count == 2)
        assert rows(view)[row].reactions[0].me

        # Reply through the composer carries message_reference.
        view.reply_requested.emit(rows(view)[row])
        assert composer.reply_bar.isVisible()
        assert "bob" in composer.reply_label.text()
        replied = asyncio.ensure_future(
            bob.wait_for("message", check=lambda m: m.content == "a reply", timeout=10)
        )
        QTest.keyClicks(composer.editor, "a reply")
        QTest.keyClick(composer.editor, Qt.Key.Key_Return)
        reply: Message = await replied
        assert reply.message_reference is not None
        assert reply.message_reference.message_id == sent.id
        assert not composer.reply_bar.isVisible()

        # Up in an empty composer edits alice's last message; Enter saves it.
        await until(lambda: "a reply" in contents(view))
        edited = asyncio.ensure_future(
            bob.wait_for("message_edit", check=lambda m: m.id == reply.id, timeout=10)
        )
        QTest.keyClick(composer.editor, Qt.Key.Key_Up)
        assert composer.editing is not None and composer.editing.id == reply.id
        composer.editor.selectAll()
        QTest.keyClicks(composer.editor, "a better reply")
        QTest.keyClick(composer.editor, Qt.Key.Key_Return)
        await edited
        await until(lambda: "a better reply" in contents(view))

        # Typing from bob shows under the list.
        await bob.trigger_typing(general.id)
        await until(lambda: "typing" in view.typing_label.text())
        assert "bob" in view.typing_label.text()

        view.list.scrollToBottom()
        await asyncio.sleep(0.2)
        window.grab().save(str(artifacts / "message_view.png"))
        visible = [
            r
            for r in range(view.model.rowCount())
            if view.list.visualRect(view.model.index(r)).intersects(view.list.viewport().rect())
        ]
        assert len(visible) >= 3
        assert view.list.visualRect(view.model.index(row)).height() > 40

        # A message alice may not send fails for good: a failed row with Retry/Discard.
        await bob.http.request(
            "PUT",
            f"/channels/{locked.id}/permissions/{alice_id}",
            json={"type": 1, "allow": "0", "deny": str(int(Permissions.SEND_MESSAGES))},
        )
        view.set_channel(locked.id)
        composer.set_channel(locked.id)
        QTest.keyClicks(composer.editor, "let me in")
        QTest.keyClick(composer.editor, Qt.Key.Key_Return)
        await until(lambda: any(getattr(i, "state", "") == "failed" for i in rows(view)))
        failed_row = view.model.rowCount() - 1
        assert view.model.index(failed_row).data(Roles.STATE) == "failed"
        view.list.scrollToBottom()
        await asyncio.sleep(0.1)
        window.grab().save(str(artifacts / "message_view_failed.png"))
        layout_ = view.delegate.layout(
            view.list.visualRect(view.model.index(failed_row)), view.model.index(failed_row), 20
        )
        assert layout_.retry is not None and layout_.discard is not None
        assert view.click_part(failed_row, "discard")
        await until(lambda: not any(getattr(i, "state", "") == "failed" for i in rows(view)))
    finally:
        await session.close()
        await bob.close()
        window.close()
