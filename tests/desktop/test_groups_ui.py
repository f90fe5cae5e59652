"""End-to-end encrypted groups in the desktop app against a real relay: group DMs through
the DM list, the group view and its member menu; the pause after a verified member's
key change; encrypted community channels through the channel editor, the channel list,
the header and the composer. alice uses the app; the others are SDK clients with their
own stores."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QAction
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QHBoxLayout, QMenu, QWidget

from nexus_client import Client, GroupMessage, UndecryptableMessage
from nexus_desktop.models.channels import EncryptedRole
from nexus_desktop.models.dms import GroupRole
from nexus_desktop.models.messages import Roles
from nexus_desktop.session import Account, AppSession, SendBlocked
from nexus_desktop.views.community_settings import CommunitySettingsDialog
from nexus_desktop.views.dm_list import DMList
from nexus_desktop.views.dm_view import DMView
from nexus_desktop.views.guild_page import GuildPage
from nexus_desktop.views.main_window import MainWindow
from tests.desktop.sdk_users import PASSWORD, collect, sdk_user
from tests.waiting import until


def texts(got: list[GroupMessage]) -> list[str]:
    return [m.text for m in got]


def action_named(menu: QMenu, text: str) -> QAction:
    """An action of ``menu`` or of its submenus, by its text."""
    for action in menu.actions():
        if action.text() == text:
            return action
        sub = action.menu()
        if isinstance(sub, QMenu):
            try:
                return action_named(sub, text)
            except LookupError:
                pass
    raise LookupError(text)


async def alice_app(
    session: AppSession, relay_url: str, invite: str | None, register: bool = True
) -> Account:
    return await session.add_account(
        relay_url, "alice", PASSWORD, register=register, passphrase="pass", invite=invite
    )


def dm_window(session: AppSession) -> tuple[QWidget, DMList, DMView]:
    window = QWidget()
    dm_list = DMList(session)
    view = DMView(session)
    dm_list.dm_selected.connect(view.set_channel)
    layout = QHBoxLayout(window)
    layout.addWidget(dm_list)
    layout.addWidget(view, 1)
    window.resize(1000, 640)
    window.show()
    return window, dm_list, view


def type_and_send(view: DMView, text: str) -> None:
    view.editor.setFocus()
    QTest.keyClicks(view.editor, text)
    QTest.keyClick(view.editor, Qt.Key.Key_Return)


async def test_group_dm_through_the_widgets(
    relay_url: str, artifacts: Path, tmp_path: Path
) -> None:
    bob = await sdk_user(relay_url, tmp_path, "bob")
    guild = await bob.create_guild("Crew")
    general = next(c for c in await bob.fetch_channels(guild.id) if c.type == 0)
    invite = (await bob.create_invite(general.id)).code
    carol = await sdk_user(relay_url, tmp_path, "carol")
    dave = await sdk_user(relay_url, tmp_path, "dave")
    for friend in (carol, dave):
        await friend.join(invite)
    bob_got, carol_got, dave_got = (collect(c, "group_message") for c in (bob, carol, dave))
    bob_id, carol_id, dave_id = (c.user.id for c in (bob, carol, dave) if c.user)

    session = AppSession(tmp_path / "app")
    window: QWidget | None = None
    try:
        account = await alice_app(session, relay_url, invite)
        window, dm_list, view = dm_window(session)
        await session.enable_e2ee(account)
        await until(lambda: len(session.members(guild.id)) == 4)

        # "New group": type-ahead, tick two people, the group opens, listed with a lock.
        dialog = dm_list.new_group_dialog()
        QTest.keyClicks(dialog.filter, "car")
        assert dialog.visible_names() == ["carol"]
        assert dialog.tick(carol_id)
        assert not dialog.ok.isEnabled() and "at least 2" in dialog.count_label.text()
        dialog.filter.clear()
        assert dialog.visible_names() == ["bob", "carol", "dave"]
        assert dialog.tick(bob_id) and dialog.ok.isEnabled()
        dm_list.start_group_from(dialog)
        group = await until(lambda: view.channel_id)
        assert dm_list.current_dm() == group
        assert dm_list.visible_names() == ["bob, carol"]
        row = dm_list.model.index(dm_list.model.row_of(group) or 0)
        assert row.data(GroupRole) and "group" in row.data(Qt.ItemDataRole.AccessibleTextRole)
        assert view.title.text() == "🔒 bob, carol"
        assert view.members_label.text() == "3 members: You (owner), bob, carol"
        assert view.members_button.isVisible() and view.call_button.isVisible()

        # alice sends through the composer; bob and carol decrypt it.
        type_and_send(view, "the pineapple plan is on")
        await until(lambda: "the pineapple plan is on" in texts(bob_got))
        await until(lambda: "the pineapple plan is on" in texts(carol_got))
        await until(lambda: view.editor.toPlainText() == "")

        # bob answers; alice's view shows it under his name.
        await bob.send_group(group, "count me in")
        await until(
            lambda: any(t.startswith("bob") and "count me in" in t for t in view.row_texts())
        )

        # A message this device could not decrypt is shown with its reason.
        account.client.events.dispatch(
            "undecryptable",
            UndecryptableMessage(group, 1, bob_id, "unknown_session", "no key shared"),
        )
        await until(lambda: any("Undecryptable: unknown_session" in t for t in view.row_texts()))
        assert any("no key was shared with this device" in t for t in view.row_texts())

        # Add dave from the header menu: a signed change, shown as a line; dave reads on.
        picker = view.open_add_people()
        assert picker is not None and picker.visible_names() == ["dave"]
        assert picker.tick(dave_id)
        picker.accept()
        await until(lambda: "You added dave" in " ".join(view.row_texts()))
        await until(lambda: "dave" in view.members_label.text())
        type_and_send(view, "welcome dave")
        await until(lambda: "welcome dave" in texts(dave_got))

        # Remove carol (alice owns the group): carol reads nothing after that.
        action_named(view.members_menu(), "Remove carol from the group").trigger()
        await until(lambda: "You removed carol" in " ".join(view.row_texts()))
        await until(lambda: "carol" not in view.members_label.text())
        type_and_send(view, "carol cannot read this")
        await until(lambda: "carol cannot read this" in texts(dave_got))
        assert "carol cannot read this" not in texts(carol_got)

        # Someone else's change reads as theirs: bob adds carol back.
        await bob.add_group_recipient(group, carol_id)
        await until(lambda: "Bob added carol" in " ".join(view.row_texts()))
        await until(lambda: "carol" in view.members_label.text())

        # Client-side search finds group messages, in all conversations and in this one.
        found = session.search_dms("PINEAPPLE")
        assert [(c, e["text"]) for c, e in found] == [(group, "the pineapple plan is on")]
        view.search_box.setText("dave")
        assert [e["text"] for e in view.visible_entries()] == ["welcome dave"]
        view.search_box.clear()
        await asyncio.sleep(0.2)
        assert window.grab().save(str(artifacts / "group_dm.png"))

        # Messages sent while the app was closed come from the relay's history.
        session.save_account_list()
        window.close()
        await session.close()
        await dave.send_group(group, "sent while alice was away")
        session = AppSession(tmp_path / "app")
        account = session.restore_account(relay_url, "alice", "pass")
        window, dm_list, view = dm_window(session)
        await session.enable_e2ee(account)
        await until(lambda: session.dm_channel(group) is not None)
        view.set_channel(group)
        await until(lambda: any("sent while alice was away" in t for t in view.row_texts()))
        shown = [e.get("text") for e in view.visible_entries() if e["type"] == "text"]
        assert shown[-2:] == ["carol cannot read this", "sent while alice was away"]
    finally:
        if window is not None:
            window.close()
        await session.close()
        for client in (bob, carol, dave):
            await client.close()


async def test_verified_member_key_change_pauses_the_group(
    relay_url: str, artifacts: Path, tmp_path: Path
) -> None:
    bob = await sdk_user(relay_url, tmp_path, "bob")
    guild = await bob.create_guild("Crew")
    general = next(c for c in await bob.fetch_channels(guild.id) if c.type == 0)
    invite = (await bob.create_invite(general.id)).code
    carol = await sdk_user(relay_url, tmp_path, "carol")
    await carol.join(invite)
    carol_got = collect(carol, "group_message")
    bob_id, carol_id = (c.user.id for c in (bob, carol) if c.user)
    bob_laptop: Client | None = None

    session = AppSession(tmp_path / "app")
    window: QWidget | None = None
    try:
        account = await alice_app(session, relay_url, invite)
        window, dm_list, view = dm_window(session)
        await session.enable_e2ee(account)
        await until(lambda: len(session.members(guild.id)) == 3)
        dm_list.start_group(account, [bob_id, carol_id])
        group = await until(lambda: view.channel_id)
        type_and_send(view, "hello both")
        await until(lambda: "hello both" in texts(carol_got))

        # alice verifies bob from the member menu.
        action_named(view.members_menu(), "Verify bob…").trigger()
        dialog = view._dialog
        assert dialog is not None
        assert dialog.shown_number() == bob.safety_number(account.client.user.id)  # type: ignore[union-attr]
        QTest.mouseClick(dialog.verify_button, Qt.MouseButton.LeftButton)
        dialog.accept()
        await until(lambda: "bob ✓" in view.members_label.text())

        # bob signs in on a new laptop and writes: his safety number changed, sending waits.
        bob_laptop = await sdk_user(relay_url, tmp_path, "bob", device="laptop", register=False)
        await bob_laptop.send_group(group, "hi from my laptop")
        await until(lambda: any("hi from my laptop" in t for t in view.row_texts()))
        await until(lambda: not view.key_bar.isHidden())
        assert "bob's safety number changed" in view.key_notice.text()
        assert any("bob's safety number changed" in t for t in view.row_texts())
        assert "bob ⚠" in view.members_label.text()
        assert not view.editor.isEnabled() and not view.send_button.isEnabled()
        with pytest.raises(SendBlocked):
            await session.send_dm_now(group, "must not leave")
        await asyncio.sleep(0.2)
        assert window.grab().save(str(artifacts / "group_dm_key_change.png"))

        QTest.mouseClick(view.acknowledge_button, Qt.MouseButton.LeftButton)
        assert view.key_bar.isHidden() and view.editor.isEnabled()
        type_and_send(view, "after acknowledging")
        await until(lambda: "after acknowledging" in texts(carol_got))
        assert "must not leave" not in texts(carol_got)
    finally:
        if window is not None:
            window.close()
        await session.close()
        for client in (bob, carol, bob_laptop):
            if client is not None:
                await client.close()


async def test_encrypted_community_channel(
    relay_url: str, artifacts: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    questions: list[str] = []

    def confirm(_parent: QWidget, question: str) -> bool:
        questions.append(question)
        return True

    monkeypatch.setattr(GuildPage, "confirm", staticmethod(confirm))
    session = AppSession(tmp_path / "app")
    bob: Client | None = None
    window: MainWindow | None = None
    try:
        account = await alice_app(session, relay_url, None)
        guild = await account.client.create_guild("Vault")
        general = next(c for c in await account.client.fetch_channels(guild.id) if c.type == 0)
        invite = (await account.client.create_invite(general.id)).code
        bob = await sdk_user(relay_url, tmp_path, "bob")
        await bob.join(invite)
        bob_got = collect(bob, "group_message")
        await until(lambda: session.channel(general.id) is not None)
        window = MainWindow(session)
        window.show()
        window.rail.select_guild(guild.id)
        window.channel_list.select_channel(general.id)
        await until(lambda: window.channel_id == general.id)
        assert window.channel_e2ee.isHidden()

        # Community settings → Channels → "Turn on end-to-end encryption", confirmed.
        settings = CommunitySettingsDialog(session, guild.id)
        settings.show()
        settings.show_page(settings.channels)
        page = settings.channels
        await until(lambda: page.item_for(general.id) is not None)
        page.tree.setCurrentItem(page.item_for(general.id))
        assert page.encrypt_button.isEnabled()
        QTest.mouseClick(page.encrypt_button, Qt.MouseButton.LeftButton)
        assert "cannot be undone" in questions[0]
        assert "Bots and search on the relay will stop seeing messages" in questions[0]
        await until(lambda: session.channel_encrypted(general.id))
        await until(lambda: "now end-to-end encrypted" in page.status.text())
        assert not page.encrypt_button.isEnabled()
        settings.close()

        # The channel list draws a lock, the header says so, the composer too.
        model = window.channel_list.model
        await until(lambda: model.index_of(general.id).data(EncryptedRole))
        described = model.index_of(general.id).data(Qt.ItemDataRole.AccessibleTextRole)
        assert "end-to-end encrypted" in described
        await until(lambda: window.channel_e2ee.isVisible())
        assert window.channel_e2ee.text() == "🔒 End-to-end encrypted"
        window.composer.set_channel(general.id)
        assert window.composer.editor.placeholderText() == "Encrypted message to #general"

        # Sent through the composer: encrypted (the relay stores no text), bob reads it.
        window.composer.editor.setFocus()
        QTest.keyClicks(window.composer.editor, "vault code is 1234")
        QTest.keyClick(window.composer.editor, Qt.Key.Key_Return)
        await until(lambda: "vault code is 1234" in texts(bob_got))
        stored = await bob.fetch_messages(general.id, limit=5)
        assert stored and all(m.content == "" for m in stored[:1])

        def shown() -> list[str]:
            model = window.message_view.model
            return [model.index(r).data(Roles.MESSAGE).content for r in range(model.rowCount())]

        await until(lambda: "vault code is 1234" in shown())
        # bob's encrypted reply shows decrypted in alice's message view.
        await bob.send_group(general.id, "got it, shredding the note")
        await until(lambda: "got it, shredding the note" in shown())
        assert "" not in shown()
        await asyncio.sleep(0.2)
        assert window.grab().save(str(artifacts / "encrypted_channel.png"))
    finally:
        if window is not None:
            window.close()
        await session.close()
        if bob is not None:
            await bob.close()
