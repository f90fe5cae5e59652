"""Spoilers, code blocks' Copy button, moderators deleting others' messages, reply
previews, reads on another device and DM notifications, against a real relay: alice
uses the app's widgets, bob a plain SDK client."""

from __future__ import annotations

import asyncio
import secrets
from pathlib import Path

from PySide6.QtCore import QPoint, Qt
from PySide6.QtGui import QGuiApplication
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QStyleOptionViewItem, QVBoxLayout, QWidget

from nexus_client import Client
from nexus_client.store import LocalStore
from nexus_desktop.markdown import COPY_CODE_HREF, SPOILER_HREF
from nexus_desktop.models.channels import read_states_for
from nexus_desktop.notifications import Notifier, notification_settings_for
from nexus_desktop.session import AppSession
from nexus_desktop.views.dm_view import DMView
from nexus_desktop.views.message_view import MessageView
from nexus_protocol.models import Message
from nexus_protocol.permissions import Permissions
from tests.waiting import until

PASSWORD = "correct horse battery"


def anchor_point(view: MessageView, row: int, href: str) -> QPoint:
    """Where, in the list's viewport, the row's body shows the anchor ``href``."""
    index = view.model.index(row)
    option = QStyleOptionViewItem()
    option.rect = view.list.visualRect(index)
    layout = view.delegate._exact_height(option, index)
    item = view.model.item(row)
    assert item is not None
    doc = view.delegate.document(item, layout.body.width())
    doc_layout = doc.documentLayout()
    for y in range(0, int(doc.size().height()), 2):
        for x in range(0, int(doc.textWidth()), 3):
            if doc_layout.anchorAt(QPoint(x, y).toPointF()) == href:
                return layout.body.topLeft() + QPoint(x, y)
    raise AssertionError(f"no {href} anchor painted in row {row}")


def menu_labels(view: MessageView, message: Message) -> list[str]:
    return [a.text() for a in view.build_menu(message).actions() if a.text()]


async def test_spoilers_copy_buttons_moderation_and_reply_previews(
    relay_url: str, tmp_path: Path, artifacts: Path
) -> None:
    bob = Client(relay_url)
    await bob.register("bob", PASSWORD)
    guild = await bob.create_guild("Features")
    general = next(c for c in await bob.fetch_channels(guild.id) if c.type == 0)
    invite = await bob.create_invite(general.id)
    await bob.start()
    session = AppSession(tmp_path / "app")
    window = QWidget()
    try:
        account = await session.add_account(
            relay_url, "alice", PASSWORD, register=True, passphrase="pass", invite=invite.code
        )
        assert account.user is not None
        alice_id = account.user.id
        await until(lambda: session.channel(general.id) is not None)
        view = MessageView(session)
        QVBoxLayout(window).addWidget(view)
        window.resize(900, 600)
        window.show()
        view.set_channel(general.id)

        spoiler = await bob.post_message(general.id, "the butler did it: ||it was **Ann**||")
        code = await bob.post_message(
            general.id, "try\n```python\nprint('hi')\n```\nor\n```\necho two\n```"
        )
        reply = await bob.post_message(general.id, "agreed", reply_to=spoiler.id)
        await until(lambda: view.model.row_of(reply.id) is not None)
        view.list.scrollToBottom()
        await asyncio.sleep(0.1)

        # A spoiler is hidden (dark on dark) until clicked; the click reveals it.
        row = view.model.row_of(spoiler.id)
        assert row is not None
        item = view.model.item(row)
        assert isinstance(item, Message)
        point = anchor_point(view, row, SPOILER_HREF)
        assert "Reveal spoilers" in menu_labels(view, item)
        QTest.mouseClick(view.list.viewport(), Qt.MouseButton.LeftButton, pos=point)
        assert spoiler.id in view.delegate.revealed
        assert SPOILER_HREF not in view.delegate.document(item, 500).toHtml()
        assert "Reveal spoilers" not in menu_labels(view, item)

        # From the keyboard: Space on a selected message reveals its spoilers.
        view.delegate.revealed.clear()
        view.list.setFocus()
        view.list.setCurrentIndex(view.model.index(row))
        QTest.keyClick(view.list, Qt.Key.Key_Space)
        assert spoiler.id in view.delegate.revealed

        # Each code block has a Copy button that puts that block on the clipboard.
        code_row = view.model.row_of(code.id)
        assert code_row is not None
        QGuiApplication.clipboard().clear()
        QTest.mouseClick(
            view.list.viewport(),
            Qt.MouseButton.LeftButton,
            pos=anchor_point(view, code_row, f"{COPY_CODE_HREF}1"),
        )
        assert QGuiApplication.clipboard().text() == "echo two"
        QTest.mouseClick(
            view.list.viewport(),
            Qt.MouseButton.LeftButton,
            pos=anchor_point(view, code_row, f"{COPY_CODE_HREF}0"),
        )
        assert QGuiApplication.clipboard().text() == "print('hi')"
        window.grab().save(str(artifacts / "message_features.png"))

        # The reply preview is the replied-to text as read: no markers, spoiler hidden.
        reply_row = view.model.row_of(reply.id)
        assert reply_row is not None
        reply_item = view.model.item(reply_row)
        assert isinstance(reply_item, Message)
        line = view.delegate.reply_text(reply_item, view.model)
        assert line == "↪ @bob: the butler did it: ▒▒▒"

        # A plain member may delete only their own messages...
        assert "Delete" not in menu_labels(view, item)
        mine = await account.client.post_message(general.id, "mine")
        await until(lambda: view.model.row_of(mine.id) is not None)
        assert "Delete" in menu_labels(view, mine)

        # ...a member whose role may manage messages may delete anyone's.
        role = await bob.create_role(
            guild.id, name="mods", permissions=str(int(Permissions.MANAGE_MESSAGES))
        )
        await bob.http.request("PUT", f"/guilds/{guild.id}/members/{alice_id}/roles/{role.id}")
        await until(lambda: session.channel_permissions(general.id) & Permissions.MANAGE_MESSAGES)
        menu = view.build_menu(item)
        delete = next(a for a in menu.actions() if a.text() == "Delete")
        deleted = asyncio.ensure_future(
            bob.wait_for("message_delete", check=lambda e: e.id == spoiler.id, timeout=10)
        )
        delete.trigger()
        await deleted
        await until(lambda: view.model.row_of(spoiler.id) is None)
    finally:
        window.close()
        await session.close()
        await bob.close()


async def test_reading_on_another_device_clears_unread(relay_url: str, tmp_path: Path) -> None:
    bob = Client(relay_url)
    await bob.register("bob", PASSWORD)
    guild = await bob.create_guild("Acks")
    general = next(c for c in await bob.fetch_channels(guild.id) if c.type == 0)
    invite = await bob.create_invite(general.id)
    session = AppSession(tmp_path / "app")
    phone = Client(relay_url)
    try:
        account = await session.add_account(
            relay_url, "alice", PASSWORD, register=True, passphrase="pass", invite=invite.code
        )
        await until(lambda: session.channel(general.id) is not None)
        tracker = read_states_for(session)
        first = await bob.post_message(general.id, "one")
        last = await bob.post_message(general.id, "two")
        await until(lambda: tracker.unread(general.id) == 2)
        await until(lambda: {first.id, last.id} <= {m.id for m in session.messages(general.id)})
        # The relay's unread counts, asked for at start-up, may be answered after these two
        # arrived here, counted with or without them: either way two stay unread.
        answer = {"channel_id": str(general.id), "mention_count": 0, "last_message_id": None}
        tracker._seed([answer | {"unread_count": 0, "counted_through_id": str(first.id - 1)}])
        assert tracker.unread(general.id) == 2
        tracker._seed([answer | {"unread_count": 1, "counted_through_id": str(first.id)}])
        assert tracker.unread(general.id) == 2
        tracker._seed([answer | {"unread_count": 2, "counted_through_id": str(last.id)}])
        assert tracker.unread(general.id) == 2
        # And a message the count includes that the gateway delivers after it is not
        # counted twice.
        tracker._on_message(last)
        assert tracker.unread(general.id) == 2

        # alice's phone (another session of the same account) reads up to "one"...
        await phone.login("alice", PASSWORD)
        await phone.ack(general.id, first.id)
        await until(lambda: tracker.unread(general.id) == 1)
        # ...then the rest: nothing is unread on the desktop any more.
        await phone.ack(general.id, last.id)
        await until(lambda: tracker.unread(general.id) == 0)
        store = account.client.store
        assert store is not None
        assert store.read_states()[general.id].last_message_id == last.id
    finally:
        await session.close()
        await phone.close()
        await bob.close()


async def test_dm_messages_reach_the_notifier_with_levels(relay_url: str, tmp_path: Path) -> None:
    (tmp_path / "bob").mkdir()
    bob = Client(
        relay_url,
        store=LocalStore.open_with_key(tmp_path / "bob" / "b.db", secrets.token_bytes(32)),
    )
    await bob.register("bob", PASSWORD)
    await bob.start()
    await bob.e2ee_setup(device_name="bob")
    guild = await bob.create_guild("Shared")
    general = next(c for c in await bob.fetch_channels(guild.id) if c.type == 0)
    invite = await bob.create_invite(general.id)
    session = AppSession(tmp_path / "app")
    try:
        account = await session.add_account(
            relay_url, "alice", PASSWORD, register=True, passphrase="pass", invite=invite.code
        )
        assert account.user is not None and bob.user is not None
        settings = notification_settings_for(session)
        notifier = Notifier(session, settings)
        await session.enable_e2ee(account)
        channel_id = await session.open_dm_now(bob.user.id, account)

        async def bob_says(text: str) -> None:
            before = len(session.dm_history(channel_id))
            await bob.send_dm(channel_id, text)
            await until(lambda: len(session.dm_history(channel_id)) > before)

        await bob_says("psst, **alice**")
        assert notifier.recent[-1] == (channel_id, "@bob (direct message)", "bob: psst, **alice**")

        # Her own messages never notify her.
        notifier.recent.clear()
        await session.send_dm_now(channel_id, "hi bob")
        assert list(notifier.recent) == []

        # "Only @mentions" keeps a plain line quiet and lets a mention through.
        settings.set_level(channel_id, "mentions")
        assert settings.level(channel_id) == "mentions"
        await bob_says("just chatting")
        assert list(notifier.recent) == []
        await bob_says(f"<@{account.user.id}> look")
        assert len(notifier.recent) == 1

        # Muted: nothing, whatever the level.
        settings.set_level(channel_id, "all")
        settings.mute(channel_id, None)
        notifier.recent.clear()
        await bob_says("anyone?")
        assert list(notifier.recent) == []
        settings.unmute(channel_id)
        await bob_says("hello again")
        assert [body for _, _, body in notifier.recent] == ["bob: hello again"]

        # In the DM view too, a spoiler stays covered until clicked, and a code block's
        # Copy button copies it.
        await bob_says("the answer: ||forty-two||\n```\nprint(42)\n```")
        view = DMView(session)
        view.set_channel(channel_id)
        label = view._row_labels[-1]
        assert SPOILER_HREF in label.text()
        label.linkActivated.emit(SPOILER_HREF)
        assert SPOILER_HREF not in view._row_labels[-1].text()
        assert "forty-two" in view._row_labels[-1].text()
        QGuiApplication.clipboard().clear()
        view._row_labels[-1].linkActivated.emit(f"{COPY_CODE_HREF}0")
        assert QGuiApplication.clipboard().text() == "print(42)"
        view.close()
    finally:
        await session.close()
        await bob.close()
