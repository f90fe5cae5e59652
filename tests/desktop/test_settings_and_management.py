"""Settings and community management, driven through the dialogs' real widgets against
a real relay: alice owns a community she creates through CreateCommunityDialog, bob is a
plain client."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QFrame, QWidget

from nexus_client import Client
from nexus_desktop.prefs import Prefs
from nexus_desktop.session import AppSession
from nexus_desktop.themes import ThemeError, add_theme_dir, apply_theme, available_themes
from nexus_desktop.views.community_settings import CommunitySettingsDialog
from nexus_desktop.views.create_community import CreateCommunityDialog
from nexus_desktop.views.guild_page import GuildPage
from nexus_desktop.views.permission_editor import DENY
from nexus_desktop.views.settings_dialog import SettingsDialog
from nexus_protocol.models import ChannelType
from nexus_protocol.permissions import Permissions
from tests.waiting import until

PASSWORD = "correct horse battery"


@pytest.fixture(autouse=True)
def keep_app_running_when_dialogs_close(qapp_instance: QApplication) -> None:
    # Closing the only visible window would quit Qt's loop, and the test with it.
    qapp_instance.setQuitOnLastWindowClosed(False)


def click(widget: QWidget) -> None:
    assert widget.isEnabled(), f"{widget.accessibleName()} is disabled"
    QTest.mouseClick(widget, Qt.MouseButton.LeftButton)


async def alice_session(tmp_path: Path, relay_url: str) -> AppSession:
    session = AppSession(tmp_path / "app")
    await session.add_account(
        relay_url, "alice", PASSWORD, register=True, passphrase="test passphrase"
    )
    return session


async def create_community(session: AppSession, name: str) -> int:
    dialog = CreateCommunityDialog(session)
    dialog.show()
    QTest.keyClicks(dialog.name, name)
    click(dialog.create_button)
    await until(lambda: dialog.guild is not None)
    assert dialog.guild is not None
    guild_id = dialog.guild.id
    await until(lambda: session.guild(guild_id) is not None)
    return guild_id


async def test_community_management_through_the_dialogs(
    relay_url: str, artifacts: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(GuildPage, "confirm", staticmethod(lambda parent, question: True))
    session = await alice_session(tmp_path, relay_url)
    bob = Client(relay_url)
    try:
        await bob.register("bob", PASSWORD)
        guild_id = await create_community(session, "Test Hub")
        dialog = CommunitySettingsDialog(session, guild_id)
        dialog.show()
        assert dialog.overview.name.text() == "Test Hub"

        # Invites: create one, see it listed, bob joins with it.
        dialog.show_page(dialog.invites)
        invites = dialog.invites
        click(invites.create_button)
        await until(lambda: invites.table.topLevelItemCount() == 1)
        code = invites.table.topLevelItem(0).text(0)
        assert invites.invite_link(code) == f"{relay_url}/invite/{code}"
        invites.refresh()  # the relay's own list shows it too
        await until(lambda: invites.status.text() == "" and invites.table.topLevelItemCount())
        assert invites.table.topLevelItem(0).text(0) == code
        await bob.join(code)

        # Channels: a category, then a text channel inside it.
        dialog.show_page(dialog.channels)
        channels = dialog.channels
        QTest.keyClicks(channels.new_name, "Projects")
        channels.new_kind.setCurrentIndex(
            channels.new_kind.findData(int(ChannelType.GUILD_CATEGORY))
        )
        click(channels.create_button)
        category = await until(
            lambda: next((c for c in session.channels(guild_id) if c.name == "Projects"), None)
        )
        assert category.type == ChannelType.GUILD_CATEGORY
        await until(lambda: channels.status.text().startswith("Created"))
        await until(lambda: channels.new_parent.findData(category.id) >= 0)
        QTest.keyClicks(channels.new_name, "roadmap")
        channels.new_kind.setCurrentIndex(0)
        channels.new_parent.setCurrentIndex(channels.new_parent.findData(category.id))
        click(channels.create_button)
        roadmap = await until(
            lambda: next((c for c in session.channels(guild_id) if c.name == "roadmap"), None)
        )
        assert roadmap.parent_id == category.id
        await until(lambda: channels.item_for(roadmap.id) is not None)
        item = channels.item_for(roadmap.id)
        assert item is not None and item.parent() is not None  # shown inside the category

        # Roles: create, rename, grant KICK_MEMBERS through its checkbox, save.
        dialog.show_page(dialog.roles)
        roles = dialog.roles
        click(roles.create_button)
        new_role = await until(
            lambda: next((r for r in session.guild(guild_id).roles if r.name == "new role"), None)
        )
        await until(
            lambda: roles.selected_role() is not None and roles.selected_role().id == new_role.id
        )
        roles.name.clear()
        QTest.keyClicks(roles.name, "Moderators")
        roles.colour.setText("#e67e22")
        kick = roles.editor.check(Permissions.KICK_MEMBERS)
        kick.ensurePolished()
        kick.setFocus()
        QTest.keyClick(kick, Qt.Key.Key_Space)
        assert kick.isChecked()
        click(roles.save_button)
        roles_on_relay: list[dict[str, Any]] = []

        async def fetch_roles() -> None:
            roles_on_relay[:] = await bob.http.request("GET", f"/guilds/{guild_id}/roles")

        deadline = time.monotonic() + 10
        while True:
            await fetch_roles()
            moderators = next((r for r in roles_on_relay if r["name"] == "Moderators"), None)
            if moderators or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.05)
        assert moderators is not None
        assert int(moderators["permissions"]) & Permissions.KICK_MEMBERS
        assert moderators["color"] == 0xE67E22
        await until(lambda: roles.list.currentItem().text() == "Moderators")
        apply_theme(QApplication.instance(), "dark")  # type: ignore[arg-type]
        await asyncio.sleep(0.05)
        dialog.grab().save(str(artifacts / "community_settings_roles.png"))
        assert roles.isVisible() and roles.editor.isVisible()
        assert roles.list.count() == 2  # Moderators and @everyone
        assert roles.list.item(roles.list.count() - 1).text() == "@everyone"
        assert dialog.nav.currentItem().text() == "Roles"

        # Channel permissions: deny VIEW_CHANNEL to @everyone in #general; bob loses it.
        general = next(c for c in session.channels(guild_id) if c.name == "general")
        assert any(c.id == general.id for c in await bob.fetch_channels(guild_id))
        dialog.show_page(dialog.overwrites)
        overwrites = dialog.overwrites
        overwrites.select(general.id, guild_id)
        overwrites.editor.set_choice(Permissions.VIEW_CHANNEL, DENY)
        click(overwrites.save_button)
        await until(lambda: overwrites.status.text() == "Saved.")
        assert all(c.id != general.id for c in await bob.fetch_channels(guild_id))
        # The editor reads the overwrite back from the gateway's CHANNEL_UPDATE.
        await until(lambda: session.channel(general.id).permission_overwrites)
        overwrites.select(roadmap.id, guild_id)
        overwrites.select(general.id, guild_id)
        assert overwrites.editor.overwrite()[1] & Permissions.VIEW_CHANNEL

        # Members: kick bob.
        assert bob.http.token is not None
        me = await bob.fetch_me()
        dialog.show_page(dialog.members)
        members = dialog.members
        await until(lambda: any(m.user and m.user.id == me.id for m in session.members(guild_id)))
        members.refresh()
        members.select_member(me.id)
        QTest.keyClicks(members.reason, "testing")
        click(members.kick_button)
        await until(lambda: members.status.text().startswith("Kicked"))
        await until(lambda: all(m.user and m.user.id != me.id for m in session.members(guild_id)))
        await until(lambda: members.table.topLevelItemCount() == 1)
        dialog.close()
    finally:
        await bob.close()
        await session.close()


async def test_settings_profile_password_and_appearance(
    relay_url: str, artifacts: Path, tmp_path: Path
) -> None:
    session = await alice_session(tmp_path, relay_url)
    app = QApplication.instance()
    assert isinstance(app, QApplication)
    prefs = Prefs(tmp_path / "app")
    try:
        dialog = SettingsDialog(session, prefs=prefs)
        dialog.show()
        account_page = dialog.account_page
        assert account_page.username.text() == "alice"
        await until(lambda: account_page.sessions.topLevelItemCount() >= 1)

        # Profile: bio, pronouns, accent colour, saved through the real widgets.
        dialog.show_page("Profile")
        profile = dialog.profile_page
        profile.bio.setPlainText("I keep the lights on.")
        profile.pronouns.clear()
        QTest.keyClicks(profile.pronouns, "she/her")
        profile.accent.setText("#3ba55c")
        click(profile.save_button)
        await until(lambda: profile.status.text() == "Saved.")
        me = await session.accounts[0].client.fetch_me()
        assert (me.bio, me.pronouns, me.accent_color) == (
            "I keep the lights on.",
            "she/her",
            0x3BA55C,
        )

        # A bio the relay refuses: its message shows next to the bio field.
        profile.bio.setPlainText("x" * 300)
        click(profile.save_button)
        bio_error = profile.status.field_labels["bio"]
        await until(lambda: bio_error.isVisible())
        assert "190" in bio_error.text()
        assert profile.save_button.isEnabled()
        dialog.grab().save(str(artifacts / "settings_profile.png"))
        assert profile.isVisible() and profile.bio.isVisible()

        # Password change goes through AppSession and the relay accepts the new one.
        dialog.show_page("My account")
        QTest.keyClicks(account_page.old_password, PASSWORD)
        QTest.keyClicks(account_page.new_password, "a much better passphrase")
        QTest.keyClicks(account_page.repeat_password, "a much better passphrase")
        click(account_page.password_button)
        await until(lambda: account_page.status.text().startswith("Password changed"))
        probe = Client(relay_url)
        try:
            await probe.login("alice", "a much better passphrase")
        finally:
            await probe.close()

        # Appearance: dark → light → high contrast, live, through the combo box.
        pane = QFrame()
        pane.setObjectName("MessageView")
        pane.resize(40, 40)
        pane.show()
        dialog.show_page("Appearance")
        appearance = dialog.appearance_page
        assert available_themes() == ["dark", "high-contrast", "light"]
        seen: list[tuple[str, str]] = []
        for name, window, pane_bg in (
            ("dark", "#313338", "#313338"),
            ("light", "#ffffff", "#ffffff"),
            ("high-contrast", "#000000", "#000000"),
        ):
            appearance.theme.setCurrentIndex(appearance.theme.findData(name))
            appearance.apply()
            await asyncio.sleep(0.05)
            assert app.palette().window().color().name() == window
            assert "QWidget#MessageView" in app.styleSheet()
            pixel = QColor(pane.grab().toImage().pixel(20, 20)).name()
            assert pixel == pane_bg, (name, pixel)
            seen.append((name, pixel))
            assert prefs.get("theme") == name
        assert len({pixel for _name, pixel in seen}) == 3
        dialog.grab().save(str(artifacts / "settings_appearance_high_contrast.png"))

        # Font scale multiplies the app font; compact mode swaps in smaller paddings.
        base = app.font().pointSizeF()
        appearance.font_scale.setValue(150)
        assert app.font().pointSizeF() == pytest.approx(base * 1.5, rel=0.01)
        assert appearance.font_label.text() == "150 %"
        appearance.font_scale.setValue(100)
        assert app.font().pointSizeF() == pytest.approx(base, rel=0.01)
        QTest.keyClick(appearance.compact, Qt.Key.Key_Space)
        assert app.property("compact") is True
        assert "padding: 2px 6px" in app.styleSheet()
        assert Prefs(tmp_path / "app").get("compact") is True

        # Keybinds page lists the actions with their default shortcuts.
        dialog.show_page("Keybinds")
        values = dialog.keybinds_page.values()
        assert values["quick_switcher"] == "Ctrl+K"
        assert values["toggle_mute"] == "Ctrl+Shift+M"
        assert values["push_to_talk"] == ""
        dialog.close()
        pane.close()
    finally:
        apply_theme(app, "dark")
        await session.close()


async def test_a_broken_theme_names_file_and_line_and_keeps_the_old_one(
    tmp_path: Path,
) -> None:
    app = QApplication.instance()
    assert isinstance(app, QApplication)
    apply_theme(app, "dark")
    user_themes = tmp_path / "themes"
    user_themes.mkdir()
    (user_themes / "broken.json").write_text('{\n  "palette": {\n    "Window": "#zzz"\n  }\n}\n')
    (user_themes / "broken.qss").write_text("QWidget { color: red; }\n")
    (user_themes / "unbalanced.json").write_text('{"palette": {"Window": "#123456"}}')
    (user_themes / "unbalanced.qss").write_text("QWidget {\n  color: @nope;\n}\n")
    add_theme_dir(user_themes)
    assert {"broken", "unbalanced"} <= set(available_themes())
    before = app.styleSheet()
    with pytest.raises(ThemeError) as bad_colour:
        apply_theme(app, "broken")
    assert str(bad_colour.value).startswith(f"{user_themes / 'broken.json'}:3:")
    with pytest.raises(ThemeError) as bad_variable:
        apply_theme(app, "unbalanced")
    assert f"{user_themes / 'unbalanced.qss'}:2:" in str(bad_variable.value)
    assert "@nope" in str(bad_variable.value)
    assert app.styleSheet() == before
    assert app.palette().window().color().name() == "#313338"
