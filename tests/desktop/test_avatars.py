"""Pictures in the desktop app: avatars uploaded from Settings > Profile, someone else's
new avatar arriving live, community icons in the rail, and refusals shown in the form.
A real relay, real SDK clients, the real main window offscreen; what is checked is the
colour of the pixels where each picture is drawn."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from PySide6.QtCore import QPoint, QRect
from PySide6.QtGui import QColor, QImage
from PySide6.QtWidgets import QApplication, QListView, QWidget

from nexus_client import Client
from nexus_desktop.avatars import ImageKey, avatars_for
from nexus_desktop.models.messages import Roles
from nexus_desktop.session import AppSession
from nexus_desktop.views.community_settings import CommunitySettingsDialog
from nexus_desktop.views.main_window import MainWindow
from nexus_desktop.views.member_list import AVATAR as MEMBER_AVATAR
from nexus_desktop.views.settings_dialog import SettingsDialog
from nexus_protocol.models import Message
from tests.waiting import until

from .sdk_users import PASSWORD

PINK = QColor("#e91e63")
GREEN = QColor("#2ecc71")
BLUE = QColor("#1e66f5")
ORANGE = QColor("#ff8c00")


@pytest.fixture(autouse=True)
def keep_running_without_windows(qapp_instance: QApplication) -> None:
    qapp_instance.setQuitOnLastWindowClosed(False)


def png(path: Path, colour: QColor, size: int = 96) -> Path:
    """A solid square picture, as a user would pick from their files."""
    image = QImage(size, size, QImage.Format.Format_RGB32)
    image.fill(colour)
    assert image.save(str(path), "PNG")
    return path


def near(actual: QColor, expected: QColor, tolerance: int = 24) -> bool:
    return (
        abs(actual.red() - expected.red()) <= tolerance
        and abs(actual.green() - expected.green()) <= tolerance
        and abs(actual.blue() - expected.blue()) <= tolerance
    )


def pixel(widget: QWidget, point: QPoint) -> QColor:
    """The colour ``widget`` shows at ``point`` (logical coordinates)."""
    grabbed = widget.grab()
    image = grabbed.toImage()
    ratio = grabbed.devicePixelRatio()
    return image.pixelColor(round(point.x() * ratio), round(point.y() * ratio))


def message_row(window: MainWindow, content: str) -> int | None:
    model = window.message_view.model
    for row in range(model.rowCount()):
        item = model.index(row).data(Roles.MESSAGE)
        if isinstance(item, Message) and item.content == content:
            return row
    return None


async def wait_for_row(window: MainWindow, content: str) -> int:
    await until(lambda: message_row(window, content) is not None, what=repr(content))
    row = message_row(window, content)
    assert row is not None
    return row


def author_avatar_centre(window: MainWindow, row: int) -> QPoint:
    """Where the message view draws the avatar of the message in ``row``."""
    view = window.message_view
    index = view.model.index(row)
    out = view.delegate.layout(view.list.visualRect(index), index, 20)
    assert out.avatar is not None, "the row is grouped under the one above: no avatar"
    return out.avatar.center()


def member_avatar_centre(window: MainWindow, user_id: int) -> QPoint:
    model = window.member_list.model
    rect: QRect = window.member_list.list.visualRect(model.index(model.row_of_user(user_id)))
    box = rect.adjusted(6, 1, -6, -1)
    return QPoint(box.left() + 4 + MEMBER_AVATAR // 2, box.center().y())


def member_shows(window: MainWindow, user_id: int, colour: QColor) -> bool:
    """Whether the member list draws ``colour`` as ``user_id``'s avatar (dimmed, as
    Discord dims the avatars of people who are offline)."""
    viewport = window.member_list.list.viewport()
    centre = member_avatar_centre(window, user_id)
    grabbed = viewport.grab().toImage()
    ratio = viewport.devicePixelRatioF()
    shown = grabbed.pixelColor(round(centre.x() * ratio), round(centre.y() * ratio))
    back = grabbed.pixelColor(round((viewport.width() - 3) * ratio), round(centre.y() * ratio))
    for opacity in (1.0, 0.4):
        blended = QColor(
            *(
                round(opacity * c + (1 - opacity) * b)
                for c, b in zip(colour.getRgb()[:3], back.getRgb()[:3], strict=True)
            )
        )
        if near(shown, blended):
            return True
    return False


def viewport_of(view: QListView) -> QWidget:
    return view.viewport()


async def alice_in_her_community(tmp_path: Path, relay_url: str) -> tuple[AppSession, int]:
    session = AppSession(tmp_path / "app")
    account = await session.add_account(
        relay_url, "alice", PASSWORD, register=True, passphrase="test passphrase"
    )
    guild = await account.client.create_guild("Painters")
    await until(lambda: session.guild(guild.id) is not None, what="the community")
    return session, guild.id


async def open_window(session: AppSession, guild_id: int) -> MainWindow:
    window = MainWindow(session)
    window.resize(1100, 700)
    window.show()
    window.rail.select_guild(guild_id)
    await until(lambda: window.channel_name.text() == "# general", what="#general open")
    return window


async def test_an_avatar_uploaded_in_settings_shows_in_the_panel_and_own_messages(
    relay_url: str, artifacts: Path, tmp_path: Path
) -> None:
    session, guild_id = await alice_in_her_community(tmp_path, relay_url)
    window: MainWindow | None = None
    try:
        window = await open_window(session, guild_id)
        assert window.channel_id is not None
        session.send_message(window.channel_id, "before my new face")
        row = await wait_for_row(window, "before my new face")
        await asyncio.sleep(0.1)
        messages = viewport_of(window.message_view.list)
        panel = window.user_panel.avatar
        centre = QPoint(panel.width() // 2, panel.height() // 2)
        # The fallback first: a coloured initial, not the picture.
        assert not near(pixel(panel, centre), PINK)
        assert not near(pixel(messages, author_avatar_centre(window, row)), PINK)

        dialog = SettingsDialog(session)
        dialog.show()
        dialog.show_page("Profile")
        profile = dialog.profile_page
        assert not profile.remove_avatar.isEnabled()  # nothing to remove yet
        profile.upload_image("avatar", png(tmp_path / "me.png", PINK))
        # While it uploads: the buttons wait, the form says so.
        assert not profile.change_avatar.isEnabled() and not profile.save_button.isEnabled()
        assert profile.status.text() == "Uploading your avatar…"
        await until(lambda: profile.status.text() == "Avatar updated.", what="the upload")
        assert profile.change_avatar.isEnabled() and profile.remove_avatar.isEnabled()
        me = await session.accounts[0].client.fetch_me()
        assert me.avatar is not None

        card = profile.card
        card_avatar = QPoint(16 + card.AVATAR // 2, card.BANNER)
        await until(lambda: near(pixel(card, card_avatar), PINK), what="the profile card")
        dialog.grab().save(str(artifacts / "settings_profile_avatar.png"))

        await until(lambda: near(pixel(panel, centre), PINK), what="the user panel")
        await until(
            lambda: near(pixel(messages, author_avatar_centre(window, row)), PINK),
            what="my message's avatar",
        )
        # A banner the same way: the card shows it across its top.
        profile.upload_image("banner", png(tmp_path / "banner.png", BLUE, size=300))
        await until(lambda: profile.status.text() == "Banner updated.", what="the banner")
        assert near(pixel(card, QPoint(card.WIDTH - 20, 20)), BLUE)
        assert near(pixel(card, card_avatar), PINK)

        session.send_message(window.channel_id, "after")
        await wait_for_row(window, "after")
        window.grab().save(str(artifacts / "main_window_own_avatar.png"))

        # Remove it: back to the initial everywhere.
        profile.remove_image("avatar")
        await until(lambda: profile.status.text() == "Avatar removed.", what="the removal")
        assert not profile.remove_avatar.isEnabled()
        await until(lambda: not near(pixel(panel, centre), PINK), what="the panel's initial")
        await until(
            lambda: not near(pixel(messages, author_avatar_centre(window, row)), PINK),
            what="the message's initial",
        )
        dialog.close()
    finally:
        if window is not None:
            window.close()
        await session.close()


async def test_someone_elses_new_avatar_shows_live_in_members_and_messages(
    relay_url: str, artifacts: Path, tmp_path: Path
) -> None:
    session, guild_id = await alice_in_her_community(tmp_path, relay_url)
    alice = session.accounts[0].client
    bob = Client(relay_url)
    window: MainWindow | None = None
    try:
        general = next(c for c in alice.cache.channels_of(guild_id) if c.name == "general")
        invite = await alice.create_invite(general.id)
        bob_user = await bob.register("bob", PASSWORD)
        await bob.start()
        await bob.join(invite.code)
        await bob.post_message(general.id, "hi, I am bob")
        window = await open_window(session, guild_id)
        row = await wait_for_row(window, "hi, I am bob")
        await until(lambda: window.member_list.model.row_of_user(bob_user.id) >= 0, what="bob")
        assert not member_shows(window, bob_user.id, GREEN)  # the initial, before
        messages = viewport_of(window.message_view.list)

        await bob.set_avatar(png(tmp_path / "bob.png", GREEN).read_bytes())
        await until(
            lambda: member_shows(window, bob_user.id, GREEN), what="bob's avatar in the members"
        )
        await until(
            lambda: near(pixel(messages, author_avatar_centre(window, row)), GREEN),
            what="bob's avatar on his message",
        )
        window.grab().save(str(artifacts / "main_window_member_avatar.png"))

        # A second change: the rows already shown follow it, without a restart.
        await bob.set_avatar(png(tmp_path / "bob2.png", BLUE).read_bytes())
        await until(lambda: member_shows(window, bob_user.id, BLUE), what="bob's second avatar")
        await until(
            lambda: near(pixel(messages, author_avatar_centre(window, row)), BLUE),
            what="bob's second avatar on his old message",
        )
    finally:
        if window is not None:
            window.close()
        await bob.close()
        await session.close()


async def test_files_that_are_not_images_are_refused_in_the_form(
    relay_url: str, artifacts: Path, tmp_path: Path
) -> None:
    session = AppSession(tmp_path / "app")
    await session.add_account(
        relay_url, "alice", PASSWORD, register=True, passphrase="test passphrase"
    )
    dialog = SettingsDialog(session)
    try:
        dialog.show()
        dialog.show_page("Profile")
        profile = dialog.profile_page
        error = profile.status.field_labels["avatar"]

        # Looks like a PNG from its first bytes; the relay finds it is not one.
        broken = tmp_path / "broken.png"
        broken.write_bytes(b"\x89PNG\r\n\x1a\n" + b"not really a picture" * 10)
        profile.upload_image("avatar", broken)
        await until(lambda: error.isVisible(), what="the relay's refusal")
        assert error.text()
        assert profile.status.text() == "Please fix the highlighted fields."
        assert profile.change_avatar.isEnabled()  # ready for another try
        dialog.grab().save(str(artifacts / "settings_profile_avatar_refused.png"))

        # A text file named like a picture.
        notes = tmp_path / "notes.webp"
        notes.write_text("shopping: bread, milk")
        profile.upload_image("banner", notes)
        banner_error = profile.status.field_labels["banner"]
        await until(lambda: banner_error.isVisible(), what="the refusal of the text file")
        assert banner_error.text()

        # A file that is not there.
        profile.upload_image("avatar", tmp_path / "missing.png")
        await until(lambda: "missing.png" in error.text(), what="the missing file named")

        me = await session.accounts[0].client.fetch_me()
        assert me.avatar is None and me.banner is None
    finally:
        dialog.close()
        await session.close()


async def test_a_community_icon_uploaded_in_settings_shows_in_the_rail(
    relay_url: str, artifacts: Path, tmp_path: Path
) -> None:
    session, guild_id = await alice_in_her_community(tmp_path, relay_url)
    window: MainWindow | None = None
    try:
        window = await open_window(session, guild_id)
        rail = window.rail.list
        rect = rail.visualRect(window.rail.model.index(window.rail.model.row_of(guild_id)))
        icon_centre = QPoint(rect.center().x(), rect.top() + 4 + 24)
        assert not near(pixel(rail.viewport(), icon_centre), ORANGE)

        dialog = CommunitySettingsDialog(session, guild_id)
        dialog.show()
        overview = dialog.overview
        assert overview.upload_icon_button.isEnabled()  # the owner may
        assert not overview.remove_icon_button.isEnabled()
        overview.upload_icon(png(tmp_path / "icon.png", ORANGE))
        await until(lambda: overview.status.text() == "Icon updated.", what="the upload")
        guild = await session.accounts[0].client.fetch_guild(guild_id)
        assert guild.icon is not None
        await until(lambda: session.guild(guild_id).icon == guild.icon, what="GUILD_UPDATE")
        await until(
            lambda: near(pixel(rail.viewport(), icon_centre), ORANGE), what="the icon in the rail"
        )
        assert near(pixel(overview.icon, QPoint(32, 32)), ORANGE)
        window.grab().save(str(artifacts / "main_window_community_icon.png"))

        # Without Manage Community the buttons are off (the relay would refuse).
        overview.set_allowed(0)
        assert not overview.upload_icon_button.isEnabled()
        assert not overview.remove_icon_button.isEnabled()
        dialog.close()
    finally:
        if window is not None:
            window.close()
        await session.close()


async def test_a_broken_image_is_asked_for_once_and_the_initial_stays(
    relay_url: str, tmp_path: Path
) -> None:
    session = AppSession(tmp_path / "app")
    account = await session.add_account(
        relay_url, "alice", PASSWORD, register=True, passphrase="test passphrase"
    )
    try:
        cache = avatars_for(session)
        assert account.user is not None
        key = ImageKey("avatar", account.user.id, "0" * 32)  # no such image on the relay
        for _ in range(50):  # as many paints as a scroll makes
            assert (
                cache.pixmap(account, "avatar", key.owner_id, key.image_hash, 36, 36, 1.0) is None
            )
        await until(lambda: cache.failed(key), what="the fetch to fail")
        assert cache.pixmap(account, "avatar", key.owner_id, key.image_hash, 36, 36, 1.0) is None
        await asyncio.sleep(0.1)
        assert cache.pending() == 0  # not asked for again
    finally:
        await session.close()
