"""Hostile content and closed windows in the desktop app: file names that lie about
themselves, pictures of absurd shapes, names that look like markup, dialogs and viewers
opened and closed many times or closed while their work is still running."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from PySide6.QtGui import QColor, QTextDocumentFragment
from PySide6.QtWidgets import QApplication, QMenu

from nexus_client import File
from nexus_desktop.attachments import (
    PREVIEW_HEIGHT,
    attachments_height,
    safe_filename,
    shown_filename,
)
from nexus_desktop.markdown import plain_tooltip
from nexus_desktop.models.messages import Roles
from nexus_desktop.views.attachment_viewer import AttachmentViewer
from nexus_desktop.views.message_view import _menu_text
from nexus_desktop.views.settings_dialog import SettingsDialog
from nexus_protocol.models import Attachment, Message, User

from .test_attachments import close, picture, with_bob
from .test_avatars import alice_in_her_community, open_window, png, until, wait_for_row

RTL_OVERRIDE = "\u202e"


def attachment(number: int, filename: str, width: int | None, height: int | None) -> Attachment:
    return Attachment(
        id=1000 + number,
        filename=filename,
        size=10,
        url="http://relay/a",
        proxy_url="http://relay/a",
        content_type="image/png",
        width=width,
        height=height,
    )


def test_file_names_cannot_disguise_themselves_or_break_the_save_dialog() -> None:
    # "evil<RLO>gnp.exe" reads "evilexe.png": shown and saved with the override removed.
    disguised = f"invoice{RTL_OVERRIDE}gnp.exe"
    assert RTL_OVERRIDE not in shown_filename(disguised)
    assert shown_filename(disguised).endswith(".exe")
    assert safe_filename(disguised).endswith(".exe") and RTL_OVERRIDE not in safe_filename(
        disguised
    )
    assert "\u200b" not in safe_filename("a\u200bb.txt")  # zero-width space
    # 10,000 characters: short enough to show, and a name a file system takes in bytes.
    emoji = safe_filename("😀" * 10_000 + ".png")
    assert emoji.endswith(".png") and len(emoji.encode()) <= 255
    assert len(shown_filename("x" * 10_000)) <= 255
    # Windows device names, with the tricks Windows itself applies (trailing dots and
    # spaces dropped, console names, superscript digits).
    for device in ("CON", "con.txt", "NUL .txt", "CONIN$", "COM¹.log", "LPT3", "aux."):
        saved = safe_filename(device)
        assert saved.startswith("_"), (device, saved)
    assert safe_filename("report.pdf. . .") == "report.pdf"
    assert safe_filename("..") == "attachment"
    assert safe_filename("\ud800.png") == "_.png"  # a lone surrogate from JSON


def test_a_file_name_in_a_menu_is_shown_as_written(qapp_instance: QApplication) -> None:
    menu = QMenu()
    action = menu.addAction(_menu_text("Tom & Jerry\tCtrl+Q.png"))
    # No "&" eaten as a mnemonic, no tab read as a shortcut column.
    assert action.text().replace("&&", "&") == "Tom & Jerry_Ctrl+Q.png"
    assert action.shortcut().isEmpty()


def test_a_message_with_ten_pictures_of_absurd_shapes_has_a_bounded_height() -> None:
    shapes = [(0, 0), (100_000, 1), (1, 100_000), (None, None), (-5, 7)] * 2
    message = Message(
        id=1,
        channel_id=2,
        author=User(id=3, username="mallory"),
        content="",
        timestamp=datetime.now(UTC),
        attachments=[attachment(n, f"{n}.png", w, h) for n, (w, h) in enumerate(shapes)],
    )
    for room in (1, 400, 5000):
        height = attachments_height(message, room)
        assert 10 <= height <= 10 * (PREVIEW_HEIGHT + 6)


def test_a_tooltip_shows_names_that_look_like_markup_as_written(
    qapp_instance: QApplication,
) -> None:
    for text in ('<img src="file:///etc/passwd">', "<h1>big</h1>", "Tom & Jerry", "a\nb"):
        shown = QTextDocumentFragment.fromHtml(plain_tooltip(text)).toPlainText()
        assert shown == text


def test_a_banner_of_an_absurd_shape_is_cut_without_a_huge_intermediate_picture() -> None:
    # In a fresh process, so its peak memory is this cut's alone.
    script = """
import resource
from PySide6.QtGui import QGuiApplication, QImage, QColor
app = QGuiApplication(["x", "-platform", "offscreen"])
from nexus_desktop.avatars import Shape, Variant, cut
image = QImage(1024, 1, QImage.Format.Format_ARGB32_Premultiplied)
image.fill(QColor("red"))
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
out = cut(image, Variant(280, 100, 2.0, Shape.RECT))
grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
print(out.width(), out.height(), out.pixelColor(280, 100).name(), grown // 1024)
"""
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    width, height, colour, grown_mb = result.stdout.split()
    assert (int(width), int(height), colour) == (560, 200, "#ff0000")
    assert int(grown_mb) < 40, f"cutting the banner took {grown_mb} MB"


def loop_errors() -> list[dict[str, Any]]:
    """Exceptions raised in callbacks of the running loop from now on."""
    errors: list[dict[str, Any]] = []
    asyncio.get_running_loop().set_exception_handler(lambda _loop, context: errors.append(context))
    return errors


async def test_settings_opened_many_times_leave_nothing_behind_even_mid_upload(
    relay_url: str, tmp_path: Path
) -> None:
    session, guild_id = await alice_in_her_community(tmp_path, relay_url)
    window = await open_window(session, guild_id)
    errors = loop_errors()
    try:
        for _ in range(5):
            window.open_settings().close()
        window.open_community_settings()
        for dialog in window.findChildren(SettingsDialog):
            dialog.close()
        await until(lambda: not window.findChildren(SettingsDialog), what="closed dialogs gone")

        # Closed while the avatar uploads: the upload still lands, nothing fails.
        dialog = window.open_settings()
        dialog.profile_page.upload_image("avatar", png(tmp_path / "me.png", QColor("#e53935")))
        dialog.close()
        account = session.accounts[0]
        await until(lambda: account.user is not None and account.user.avatar, what="avatar set")
        assert account.user is not None and account.user.avatar is not None
        await asyncio.sleep(0.2)
        assert not window.findChildren(SettingsDialog)
        assert errors == []
    finally:
        asyncio.get_running_loop().set_exception_handler(None)
        window.close()
        await session.close()


async def test_pictures_opened_one_after_another_keep_one_viewer(
    relay_url: str, tmp_path: Path
) -> None:
    session, window, bob, channel_id = await with_bob(tmp_path, relay_url)
    errors = loop_errors()
    try:
        await bob.post_message(
            channel_id, "a photo", files=[File(picture(QColor("#2ecc71"), 64, 48), "g.png")]
        )
        row = await wait_for_row(window, "a photo")
        message = window.message_view.model.index(row).data(Roles.MESSAGE)
        assert isinstance(message, Message)
        for _ in range(6):
            window.message_view.open_attachment(message, message.attachments[0])
        await until(
            lambda: len(window.message_view.findChildren(AttachmentViewer)) == 1,
            what="one viewer left",
        )
        viewer = window.message_view.viewer
        assert viewer is not None
        await until(lambda: viewer.image is not None, what="the picture in the viewer")
        viewer.close()
        await until(
            lambda: not window.message_view.findChildren(AttachmentViewer), what="viewer gone"
        )
        assert window.message_view.viewer is None
        await asyncio.sleep(0.2)
        assert errors == []
    finally:
        asyncio.get_running_loop().set_exception_handler(None)
        await close(session, window, bob)
