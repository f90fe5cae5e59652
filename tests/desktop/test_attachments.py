"""Files and pictures in the desktop app: attached in the composer (by path, drop and
paste), sent in one message with the text, shown inline to the reader, saved to disk.
A real relay, a real SDK client on the other side, the real main window offscreen; what
is checked is what reaches the other side and the colour of the pixels shown."""

from __future__ import annotations

import asyncio
from pathlib import Path

from PySide6.QtCore import QBuffer, QByteArray, QMimeData, QPoint, QPointF, Qt, QUrl
from PySide6.QtGui import QColor, QDragEnterEvent, QDropEvent, QGuiApplication, QImage
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QStyleOptionViewItem, QWidget

from nexus_client import Client, File
from nexus_desktop.attachments import MAX_FILE_SIZE, safe_filename
from nexus_desktop.models.messages import Roles
from nexus_desktop.session import AppSession
from nexus_desktop.views.main_window import MainWindow
from nexus_desktop.views.message_delegate import RowLayout
from nexus_desktop.views.message_view import MessageView
from nexus_protocol.models import Message

from .sdk_users import PASSWORD, collect
from .test_avatars import alice_in_her_community, near, open_window, pixel, until, wait_for_row

RED = QColor("#e53935")
GREEN = QColor("#2ecc71")
BLUE = QColor("#1e66f5")


def picture(colour: QColor, width: int, height: int) -> bytes:
    """A PNG of one colour, as someone would share a screenshot."""
    image = QImage(width, height, QImage.Format.Format_RGB32)
    image.fill(colour)
    data = QByteArray()
    buffer = QBuffer(data)
    buffer.open(QBuffer.OpenModeFlag.WriteOnly)
    assert image.save(buffer, "PNG")  # type: ignore[call-overload]
    return bytes(data.data())


async def with_bob(tmp_path: Path, relay_url: str) -> tuple[AppSession, MainWindow, Client, int]:
    """Alice in her community with its window open, and bob (an SDK client) in it."""
    session, guild_id = await alice_in_her_community(tmp_path, relay_url)
    alice = session.accounts[0].client
    general = next(c for c in alice.cache.channels_of(guild_id) if c.name == "general")
    invite = await alice.create_invite(general.id)
    bob = Client(relay_url)
    await bob.register("bob", PASSWORD)
    await bob.start()
    await bob.join(invite.code)
    window = await open_window(session, guild_id)
    return session, window, bob, general.id


def layout_of(view: MessageView, row: int) -> RowLayout:
    """Where the parts of ``row`` are, in the list's viewport."""
    index = view.model.index(row)
    option = QStyleOptionViewItem()
    option.rect = view.list.visualRect(index)
    return view.delegate._exact_height(option, index)


async def close(session: AppSession, window: MainWindow, bob: Client) -> None:
    window.close()
    await bob.close()
    await session.close()


def drop_files(target: QWidget, paths: list[Path]) -> None:
    """Drop files from a file manager onto ``target`` (a widget)."""
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(path)) for path in paths])
    buttons, keys = Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier
    enter = QDragEnterEvent(QPoint(20, 20), Qt.DropAction.CopyAction, mime, buttons, keys)
    QApplication.sendEvent(target, enter)
    assert enter.isAccepted(), "the drag was refused"
    drop = QDropEvent(QPointF(20, 20), Qt.DropAction.CopyAction, mime, buttons, keys)
    QApplication.sendEvent(target, drop)
    assert drop.isAccepted(), "the drop was refused"


async def test_files_attached_dropped_and_pasted_reach_bob_in_one_message(
    relay_url: str, tmp_path: Path
) -> None:
    session, window, bob, _channel_id = await with_bob(tmp_path, relay_url)
    got: list[Message] = collect(bob, "message")
    try:
        composer = window.composer
        assert composer.attach_button.isEnabled()
        assert composer.attach_button.accessibleName() == "Attach files"
        notes = tmp_path / "notes.txt"
        notes.write_bytes(b"first line\nsecond line\n" * 100)
        photo = tmp_path / "photo.png"
        photo.write_bytes(picture(RED, 64, 48))
        assert composer.add_files([notes])
        # Dropped on the message list: it joins the composer's files.
        drop_files(window.message_view.list.viewport(), [photo])
        assert [f.filename for f in composer.files] == ["notes.txt", "photo.png"]
        assert composer.files_bar.isVisible()
        assert [chip.name.text() for chip in composer.chips] == ["notes.txt", "photo.png"]
        assert composer.chips[0].size_label.text() == "2.2 KB"  # 2,300 bytes
        # The picture's chip shows its thumbnail once decoded (off the GUI thread).
        await until(lambda: composer.chips[1].thumbnail.pixmap().width() > 0, what="thumbnail")

        # A pasted picture becomes image.png.
        QGuiApplication.clipboard().setImage(QImage.fromData(picture(GREEN, 30, 30)))
        composer.editor.setFocus()
        QTest.keyClick(composer.editor, Qt.Key.Key_V, Qt.KeyboardModifier.ControlModifier)
        assert [f.filename for f in composer.files][-1] == "image.png"
        assert composer.editor.toPlainText() == ""  # the picture is not pasted as text
        composer.remove_file(composer.files[-1])
        assert len(composer.chips) == 2

        composer.editor.setPlainText("here are the files")
        QTest.keyClick(composer.editor, Qt.Key.Key_Return)
        assert composer.uploading() and composer.upload_bar.isVisible()
        assert "%" in composer.progress.text()
        await until(lambda: got, what="bob receives the message")
        message = got[0]
        assert message.content == "here are the files"
        assert [a.filename for a in message.attachments] == ["notes.txt", "photo.png"]
        assert await bob.fetch_attachment(message.attachments[0]) == notes.read_bytes()
        # Pictures reach bob as the same picture (the relay strips their metadata).
        received = QImage.fromData(await bob.fetch_attachment(message.attachments[1]))
        assert (received.width(), received.height()) == (64, 48)
        assert near(received.pixelColor(10, 10), RED, tolerance=2)
        assert (message.attachments[1].width, message.attachments[1].height) == (64, 48)
        # Sent: the composer is empty again and ready.
        await until(lambda: not composer.uploading(), what="the upload to finish")
        assert composer.progress.value() == 100
        assert not composer.files and not composer.files_bar.isVisible()
        assert not composer.upload_bar.isVisible()
        assert composer.editor.toPlainText() == ""
        assert len(got) == 1  # one message, text and files together
    finally:
        await close(session, window, bob)


async def test_a_file_over_the_limit_is_refused_by_name_and_a_failed_upload_keeps_everything(
    relay_url: str, tmp_path: Path
) -> None:
    session, window, bob, _channel_id = await with_bob(tmp_path, relay_url)
    got: list[Message] = collect(bob, "message")
    try:
        composer = window.composer
        huge = tmp_path / "holiday-video.mp4"
        with huge.open("wb") as out:
            out.truncate(MAX_FILE_SIZE + 1)
        assert not composer.add_files([huge])
        assert composer.error_label.isVisible()
        assert "holiday-video.mp4 is too large" in composer.error_label.text()
        assert not composer.files

        # The relay refuses what this side let through (a relay with a stricter limit
        # looks the same): the text and the files stay, with the reason shown.
        composer.max_file_size = MAX_FILE_SIZE * 2
        small = tmp_path / "small.txt"
        small.write_bytes(b"keep me")
        assert composer.add_files([small, huge])
        composer.editor.setPlainText("two files")
        assert composer.send()
        await until(lambda: not composer.uploading(), timeout=30, what="the refusal")
        assert composer.error_label.isVisible()
        assert composer.error_label.text().startswith("Could not send your files")
        assert [f.filename for f in composer.files] == ["small.txt", "holiday-video.mp4"]
        assert composer.editor.toPlainText() == "two files"
        assert composer.chips[0].isEnabled() and composer.attach_button.isEnabled()
        assert not composer.upload_bar.isVisible()

        # Cancel while it uploads: nothing is lost either.
        assert composer.send()
        composer.cancel_upload()
        assert composer.error_label.text() == "Upload cancelled."
        assert len(composer.files) == 2 and composer.editor.toPlainText() == "two files"

        # Without the big one it goes.
        composer.remove_file(composer.files[1])
        assert composer.send()
        await until(lambda: got, what="bob receives the small file")
        assert [a.filename for a in got[-1].attachments] == ["small.txt"]
        await asyncio.sleep(0.2)
        assert len(got) == 1
    finally:
        await close(session, window, bob)


async def test_pictures_show_inline_spoilers_are_covered_and_files_save_atomically(
    relay_url: str, tmp_path: Path, artifacts: Path
) -> None:
    session, window, bob, channel_id = await with_bob(tmp_path, relay_url)
    try:
        view = window.message_view
        await bob.post_message(
            channel_id, "look at this", files=[File(picture(GREEN, 800, 600), "green.png")]
        )
        row = await wait_for_row(window, "look at this")
        index = view.model.index(row)
        # The row is as tall as it will be before the picture arrives: 800 x 600 fits
        # the 400 x 300 box exactly.
        height_before = view.list.visualRect(index).height()
        out = layout_of(view, row)
        assert len(out.attachments) == 1 and out.attachments[0].image
        box = out.attachments[0].rect
        assert (box.width(), box.height()) == (400, 300)
        assert box.top() > out.body.top()
        viewport = view.list.viewport()
        await until(lambda: near(pixel(viewport, box.center()), GREEN), what="the inline picture")
        assert view.list.visualRect(index).height() == height_before  # no jump

        # A spoiler picture: covered until clicked.
        await bob.post_message(
            channel_id,
            "do not look",
            files=[File(picture(BLUE, 200, 100), "blue.png", spoiler=True)],
        )
        spoiler_row = await wait_for_row(window, "do not look")
        spoiler_box = layout_of(view, spoiler_row).attachments[0].rect
        corner = spoiler_box.topLeft() + QPoint(12, 12)
        await asyncio.sleep(0.5)  # the (blurred) preview has had time to arrive
        assert not near(pixel(viewport, corner), BLUE)
        assert view.click_part(spoiler_row, "attachment", "SPOILER_blue.png")
        await until(lambda: near(pixel(viewport, corner), BLUE), what="the uncovered spoiler")

        # A file that is not a picture: a card, and Save as writes the same bytes.
        report = b"%PDF-1.4 not really a pdf\n" + bytes(range(256)) * 40
        await bob.post_message(
            channel_id, "the report", files=[File(report, "../../etc/Report 2026.pdf")]
        )
        file_row = await wait_for_row(window, "the report")
        card = layout_of(view, file_row).attachments[0]
        assert not card.image and card.button is not None
        target = tmp_path / "downloads" / "report.pdf"
        target.parent.mkdir()
        target.write_bytes(b"an older file of the same name")
        asked: list[str] = []

        def choose(attachment: object) -> Path:
            asked.append(safe_filename(attachment.filename))  # type: ignore[attr-defined]
            return target

        view.choose_save_path = choose
        assert view.click_part(file_row, "download")
        await until(lambda: target.read_bytes() == report, what="the saved file")
        # The dialog's default name carries no folders, whatever the relay sent.
        assert len(asked) == 1 and asked[0].endswith("2026.pdf")
        assert "/" not in asked[0] and "\\" not in asked[0] and not asked[0].startswith(".")
        assert sorted(p.name for p in target.parent.iterdir()) == ["report.pdf"]  # no temp left
        await until(lambda: view.status_text.startswith("Saved report.pdf"), what="status")
        assert window.statusBar().currentMessage().startswith("Saved report.pdf")

        # The context menu offers both, and the viewer shows the picture.
        green_message = view.model.index(row).data(Roles.MESSAGE)
        menu = view.build_menu(green_message)
        labels = [action.text() for action in menu.actions()]
        assert "Open attachment" in labels and "Save attachment…" in labels
        viewer = view.open_attachment(green_message, green_message.attachments[0])
        await until(lambda: viewer.image is not None, what="the viewer's picture")
        centre = QPoint(viewer.picture.width() // 2, viewer.picture.height() // 2)
        assert near(pixel(viewer.picture, centre), GREEN)
        QTest.keyClick(viewer, Qt.Key.Key_Escape)
        assert not viewer.isVisible()

        # Files waiting in the composer, for the picture of the whole window.
        waiting = tmp_path / "sunset.png"
        waiting.write_bytes(picture(RED, 120, 80))
        (tmp_path / "minutes.txt").write_text("who said what")
        assert window.composer.add_files([waiting, tmp_path / "minutes.txt"])
        chip = window.composer.chips[0]
        await until(lambda: chip.thumbnail.pixmap().width() > 0, what="the chip's thumbnail")
        view.list.scrollToBottom()
        await asyncio.sleep(0.2)
        assert window.composer.files_bar.isVisible()
        shot = window.grab()
        assert shot.save(str(artifacts / "attachments.png"))
    finally:
        await close(session, window, bob)


async def test_attaching_is_refused_in_encrypted_channels(relay_url: str, tmp_path: Path) -> None:
    session, window, bob, channel_id = await with_bob(tmp_path, relay_url)
    try:
        done: list[object] = []
        session.encrypt_channel(channel_id, on_done=done.append)
        await until(lambda: done, timeout=20, what="encryption on")
        window.composer.set_channel(channel_id)
        composer = window.composer
        assert not composer.attach_button.isEnabled()
        assert "encrypted" in composer.attach_button.toolTip()
        notes = tmp_path / "notes.txt"
        notes.write_text("secret")
        assert not composer.add_files([notes])
        assert "encrypted" in composer.error_label.text() and not composer.files
    finally:
        await close(session, window, bob)


def test_names_from_the_relay_are_made_safe_for_the_save_dialog() -> None:
    assert safe_filename("../../etc/passwd") == "passwd"
    assert safe_filename("..\\..\\Windows\\evil.exe") == "evil.exe"
    assert safe_filename("SPOILER_cat.png") == "cat.png"
    assert safe_filename(".bashrc") == "bashrc"
    assert safe_filename('a<b>c:"d|e?*.txt') == "a_b_c__d_e__.txt"
    assert safe_filename("CON.txt") == "_CON.txt"
    assert safe_filename("\x00\x1f") == "__"
    assert safe_filename("") == "attachment"
    long = safe_filename("x" * 500 + ".jpeg")
    assert len(long) <= 120 and long.endswith(".jpeg")
