"""The whole app as a person uses it: sign in through the login dialog, find the
community in the rail, talk with someone on another client, react, edit, reply, create
a community, a channel and a role, change a channel's notification level — all through
the main window's widgets, against a real relay."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QAction
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QMenu

from nexus_client import Client
from nexus_desktop.app import display_problem
from nexus_desktop.hosting import HostedRelay
from nexus_desktop.models.messages import Roles
from nexus_desktop.notifications import notification_settings_for
from nexus_desktop.session import AppSession
from nexus_desktop.views.create_community import CreateCommunityDialog
from nexus_desktop.views.login_dialog import LoginDialog
from nexus_desktop.views.main_window import MainWindow
from nexus_protocol.models import Message
from tests.waiting import until

PASSWORD = "correct horse battery"


@pytest.fixture(autouse=True)
def keep_running_without_windows(qapp_instance: QApplication) -> None:
    """The app does not quit when its last window closes (it cleans up first); in the
    tests a closing login dialog must not stop the shared loop either."""
    qapp_instance.setQuitOnLastWindowClosed(False)


def shown_messages(window: MainWindow) -> list[Message]:
    model = window.message_view.model
    items = [model.index(row).data(Roles.MESSAGE) for row in range(model.rowCount())]
    return [item for item in items if isinstance(item, Message)]


def find_message(window: MainWindow, content: str) -> Message | None:
    return next((m for m in shown_messages(window) if m.content == content), None)


def menu_action(menu: QMenu, *path: str) -> QAction:
    """The action at ``path`` of (sub)menu texts, as a keyboard user would reach it."""
    for text in path[:-1]:
        sub = next(a.menu() for a in menu.actions() if a.text() == text)
        assert isinstance(sub, QMenu)
        menu = sub
    return next(a for a in menu.actions() if a.text() == path[-1])


def type_and_enter(widget: Any, text: str) -> None:
    widget.setFocus()
    QTest.keyClicks(widget, text)
    QTest.keyClick(widget, Qt.Key.Key_Return)


async def test_chatting_through_the_main_window(
    relay_url: str, artifacts: Path, tmp_path: Path
) -> None:
    bob = Client(relay_url)
    await bob.register("bob", PASSWORD)
    await bob.start()
    guild = await bob.create_guild("Readers")
    general = next(c for c in await bob.fetch_channels(guild.id) if c.name == "general")
    await bob.post_message(general.id, "welcome, everyone")
    invite = await bob.create_invite(general.id)
    session = AppSession(tmp_path / "alice")
    window: MainWindow | None = None
    try:
        # First run: the login dialog, typed into like a person would.
        dialog = LoginDialog(session)
        dialog.show()
        QTest.keyClicks(dialog.address, f"{relay_url}/invite/{invite.code}")
        QTest.mouseClick(dialog.switch_mode, Qt.MouseButton.LeftButton)
        assert dialog.submit.text() == "Create account"
        QTest.keyClicks(dialog.username, "alice")
        QTest.keyClicks(dialog.password, PASSWORD)
        assert dialog.needs_passphrase  # no OS keyring on this machine
        QTest.keyClicks(dialog.passphrase, "test passphrase")
        QTest.mouseClick(dialog.submit, Qt.MouseButton.LeftButton)
        assert dialog.progress.isVisible() and not dialog.submit.isEnabled()
        await until(lambda: dialog.result() == 1, 20, "the login to finish")
        assert dialog.guild_id == guild.id
        assert [e["username"] for e in session.saved_accounts()] == ["alice"]

        window = MainWindow(session)
        window.show()
        window.select_guild_when_known(dialog.guild_id)
        await until(lambda: "Readers" in window.rail.guild_names(), what="the rail")
        await until(lambda: window.channel_name.text() == "# general", what="#general open")
        assert "general" in " ".join(window.channel_list.visible_names())
        await until(lambda: find_message(window, "welcome, everyone"), what="history")

        # Send through the composer; bob receives it.
        received = asyncio.ensure_future(
            bob.wait_for("message", check=lambda m: m.content == "hello from alice", timeout=10)
        )
        type_and_enter(window.composer.editor, "hello from alice")
        mine: Message = await received
        assert window.composer.editor.toPlainText() == ""
        await until(lambda: find_message(window, "hello from alice"), what="own message")

        # Bob's message appears.
        sent = await bob.post_message(general.id, "hi alice, *welcome*")
        theirs = await until(lambda: find_message(window, "hi alice, *welcome*"), what="bob's")
        assert theirs.id == sent.id

        # React through the message's menu; bob sees the reaction.
        reacted = asyncio.ensure_future(bob.wait_for("reaction_add", timeout=10))
        menu_action(window.message_view.build_menu(theirs), "Add reaction", "👍").trigger()
        assert (await reacted).message_id == theirs.id
        await until(
            lambda: any(r.me for r in (find_message(window, theirs.content) or theirs).reactions),
            what="the reaction shown",
        )

        # Edit my message through its menu and the composer.
        edited = asyncio.ensure_future(bob.wait_for("message_edit", timeout=10))
        menu_action(window.message_view.build_menu(mine), "Edit").trigger()
        assert window.composer.editor.toPlainText() == "hello from alice"
        window.composer.editor.selectAll()
        type_and_enter(window.composer.editor, "hello from alice (edited)")
        assert (await edited).content == "hello from alice (edited)"
        await until(lambda: find_message(window, "hello from alice (edited)"), what="edit")

        # Reply to bob.
        replied = asyncio.ensure_future(
            bob.wait_for("message", check=lambda m: m.content == "glad to be here", timeout=10)
        )
        menu_action(window.message_view.build_menu(theirs), "Reply").trigger()
        type_and_enter(window.composer.editor, "glad to be here")
        reply: Message = await replied
        assert reply.message_reference is not None
        assert reply.message_reference.message_id == theirs.id

        # Notifications: mentions only for #general, through the channel's menu.
        menu = window.channel_list.channel_menu(general.id)
        menu_action(menu, "Notifications", "Only @mentions").trigger()
        assert notification_settings_for(session).level(general.id) == "mentions"

        await asyncio.sleep(0.2)  # let the view lay out the last rows
        assert window.rail.isVisible() and window.channel_list.isVisible()
        assert window.message_view.isVisible() and window.composer.isVisible()
        assert window.member_list.isVisible() and window.user_panel.isVisible()
        assert window.channel_name.text() == "# general"
        assert window.connection.text() == "Connected"
        image = window.grab()
        image.save(str(artifacts / "main_window.png"))
        assert image.width() >= 1000 and image.height() >= 600

        # The member list toggles from the header.
        QTest.mouseClick(window.members_toggle, Qt.MouseButton.LeftButton)
        assert not window.member_list.isVisible()
        QTest.mouseClick(window.members_toggle, Qt.MouseButton.LeftButton)
        assert window.member_list.isVisible()
    finally:
        if window is not None:
            window.close()
        await session.close()
        await bob.close()


async def test_managing_a_community_from_the_main_window(
    relay_url: str, artifacts: Path, tmp_path: Path
) -> None:
    session = AppSession(tmp_path / "alice")
    account = await session.add_account(
        relay_url, "alice", PASSWORD, register=True, passphrase="test passphrase"
    )
    window = MainWindow(session)
    window.show()
    try:
        # Create a community through the rail's "+" → "Create a community…".
        window.create_community()
        created = await until(lambda: window.findChildren(CreateCommunityDialog), what="dialog")
        dialog = created[0]
        QTest.keyClicks(dialog.name, "Alice's Place")
        QTest.mouseClick(dialog.create_button, Qt.MouseButton.LeftButton)
        await until(lambda: "Alice's Place" in window.rail.guild_names(), what="new community")
        guild_id = await until(lambda: window.guild_id, what="the community opened")
        assert session.guild(guild_id) is not None
        assert session.guild(guild_id).name == "Alice's Place"  # type: ignore[union-attr]
        await until(lambda: window.channel_name.text() == "# general", what="#general")

        # Its name heads the channel list, and opens the community's menu.
        header = window.community_button
        assert header.text().startswith("Alice's Place") and header.isVisible()
        assert not window.channel_list.title.isVisible()  # named once, not twice
        QTest.mouseClick(header, Qt.MouseButton.LeftButton)
        assert window.community_menu.isVisible()
        assert "Community settings…" in [a.text() for a in window.community_menu.actions()]
        window.community_menu.close()

        # The header's bell and member-list buttons are icons with names for screen readers.
        for button, name in (
            (window.bell, "Notification settings"),
            (window.members_toggle, "Show member list"),
        ):
            assert button.accessibleName() == name and button.toolTip()
            image = button.icon().pixmap(20, 20).toImage()
            drawn = sum(image.pixelColor(x, y).alpha() > 128 for x in range(20) for y in range(20))
            assert 20 < drawn < 300, f"{name}: {drawn} pixels drawn"

        # A channel and a role, through the session's account (the owner's tools).
        channel = await account.client.create_channel(guild_id, "announcements")
        await until(
            lambda: "announcements" in " ".join(window.channel_list.visible_names()),
            what="the new channel listed",
        )
        role = await account.client.create_role(guild_id, name="Moderators")
        await until(
            lambda: any(r.id == role.id for r in session.guild(guild_id).roles),  # type: ignore[union-attr]
            what="the new role known",
        )
        window.channel_list.select_channel(channel.id)
        await until(lambda: window.channel_name.text() == "# announcements", what="switch")
        window.grab().save(str(artifacts / "main_window_community.png"))
        assert window.statusBar().isVisible()

        # The DMs button swaps the community panes for the encrypted conversations,
        # and choosing the community again brings them back.
        QTest.mouseClick(window.dm_button, Qt.MouseButton.LeftButton)
        assert window.left_stack.currentWidget() is window.dm_list
        assert window.centre_stack.currentWidget() is window.dm_view
        assert window.dm_list.isVisible() and not window.member_list.isVisible()
        window.grab().save(str(artifacts / "main_window_dms.png"))
        window.open_guild(guild_id)
        assert window.centre_stack.currentIndex() == 0 and window.channel_list.isVisible()
        assert not window.dm_button.isChecked()
    finally:
        window.close()
        await session.close()


def test_no_display_is_a_clear_message_not_a_crash() -> None:
    assert display_problem({}) is not None and "DISPLAY" in (display_problem({}) or "")
    assert display_problem({"DISPLAY": ":0"}) is None
    assert display_problem({"QT_QPA_PLATFORM": "offscreen"}) is None
    assert display_problem({"QT_QPA_PLATFORM": "wayland"}) is not None
    assert display_problem({"QT_QPA_PLATFORM": "wayland", "WAYLAND_DISPLAY": "wayland-0"}) is None


async def test_a_saved_account_reopens_from_its_store_then_connects(
    relay_url: str, tmp_path: Path
) -> None:
    first = AppSession(tmp_path / "alice")
    account = await first.add_account(
        relay_url, "alice", PASSWORD, register=True, passphrase="test passphrase"
    )
    guild = await account.client.create_guild("Kept")
    await until(lambda: first.guild(guild.id), what="the community cached")
    first.save_account_list()
    await first.close()

    again = AppSession(tmp_path / "alice")
    online: list[bool] = []
    again.connection_changed.connect(online.append)
    try:
        restored = again.restore_account(relay_url, "alice", "test passphrase")
        # Shown at once from the encrypted store, before the relay answered.
        assert [g.name for _, g in again.all_guilds()] == ["Kept"]
        assert restored.user is not None and restored.user.username == "alice"
        await until(lambda: online and online[-1], what="the reconnection")
        assert restored.client.online
    finally:
        await again.close()


async def test_a_first_run_can_host_its_own_community(tmp_path: Path) -> None:
    """No invite yet: from the first window, host a community on this computer, get the
    link to share, and land in the app signed in as its owner."""
    session = AppSession(tmp_path / "app")
    relay = HostedRelay(tmp_path / "app" / "hosted")
    window: MainWindow | None = None
    try:
        dialog = LoginDialog(session, hosted_relay=relay)
        dialog.use_passphrase("test passphrase")  # typed at start-up, as with no keyring
        dialog.show()
        assert dialog.host_button is not None and dialog.host_button.isVisible()
        QTest.mouseClick(dialog.host_button, Qt.MouseButton.LeftButton)
        host = dialog.host_dialog
        assert host is not None and host.isVisible()
        assert not host.passphrase.isVisible()  # not asked twice

        # A missing field is named, and nothing starts.
        QTest.keyClicks(host.name, "Night Owls")
        QTest.mouseClick(host.host, Qt.MouseButton.LeftButton)
        assert "password" in host.status.text()
        assert not relay.running

        QTest.keyClicks(host.username, "owl")
        QTest.keyClicks(host.password, PASSWORD)
        QTest.mouseClick(host.host, Qt.MouseButton.LeftButton)
        await until(lambda: host.link.isVisible(), 30, "the community to be up")
        link = host.link.text()
        assert link.startswith(f"{relay.url}/invite/")
        QTest.mouseClick(host.copy, Qt.MouseButton.LeftButton)
        assert QApplication.clipboard().text() == link

        # Closing it finishes the first run with the owner signed in.
        host.accept()
        await until(lambda: dialog.result() == 1, what="the first-run dialog to finish")
        assert dialog.account is not None and dialog.account.relay_url == relay.url
        assert [e["username"] for e in session.saved_accounts()] == ["owl"]

        window = MainWindow(session, hosted_relay=relay)
        window.show()
        await until(lambda: "Night Owls" in window.rail.guild_names(), what="the rail")

        # A friend joins with the link alone.
        async with Client(relay.url) as friend:
            await friend.register("friend", PASSWORD)
            joined = await friend.join(link)
            assert joined.guild is not None and joined.guild.name == "Night Owls"
    finally:
        if window is not None:
            window.close()
        await session.close()
        relay.stop()
