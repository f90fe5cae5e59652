"""Where messages are written: Enter sends, Shift+Enter breaks the line, Up in an empty
box edits your last message, Esc cancels a reply or an edit. Typing ``@``, ``#`` or
``:`` offers members, channels or emoji; a toggle shows the rendered markdown.

Files join the message from the attach button, by dropping them on the composer or the
message list, or by pasting a picture; each waits as a chip above the box until Enter
sends it with the text, in one message, with a progress bar and Cancel. A file the
relay would refuse for its size is refused at once, by name; a failed upload keeps the
text and the files."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nexus_client import File, NexusError
from nexus_protocol.models import Message

from ..attachments import ENCRYPTED_REASON, MAX_FILE_SIZE, MAX_FILES, human_size
from ..avatars import _worker, decode_image
from ..markdown import SafeTextDocument, render_markdown
from ..qt import (
    QBuffer,
    QByteArray,
    QDragEnterEvent,
    QDragMoveEvent,
    QDropEvent,
    QEvent,
    QFileDialog,
    QFrame,
    QGuiApplication,
    QHBoxLayout,
    QImage,
    QKeyEvent,
    QKeySequence,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMimeData,
    QObject,
    QPixmap,
    QPlainTextEdit,
    QProgressBar,
    QScrollArea,
    Qt,
    QTextCursor,
    QTextEdit,
    QToolButton,
    QVBoxLayout,
    QWidget,
)
from ..session import AppSession, describe_error

__all__ = ["EMOJI", "MAX_LENGTH", "TYPING_EVERY", "Composer", "PendingFile"]

MAX_LENGTH = 4000
COUNTER_FROM = 3500
MAX_LINES = 8
# Events after which the editor's line height or padding may differ.
_RESIZING_EVENTS = (QEvent.Type.Show, QEvent.Type.StyleChange, QEvent.Type.FontChange)
TYPING_EVERY = 8.0
THUMBNAIL = 40  # a picture chip's preview, in pixels
PASTED_NAME = "image.png"
_PICTURE_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".webp", ".bmp")
_TRIGGER = re.compile(r"(?:^|\s)([@#:])([\w.-]{0,32})$")

EMOJI: dict[str, str] = {
    "smile": "😄", "grin": "😁", "joy": "😂", "rofl": "🤣", "wink": "😉", "blush": "😊",
    "heart_eyes": "😍", "kissing_heart": "😘", "thinking": "🤔", "neutral_face": "😐",
    "roll_eyes": "🙄", "smirk": "😏", "pensive": "😔", "cry": "😢", "sob": "😭",
    "angry": "😠", "rage": "😡", "scream": "😱", "sweat_smile": "😅", "sunglasses": "😎",
    "nerd": "🤓", "partying_face": "🥳", "sleeping": "😴", "skull": "💀", "clown": "🤡",
    "eyes": "👀", "thumbsup": "👍", "thumbsdown": "👎", "ok_hand": "👌", "clap": "👏",
    "wave": "👋", "pray": "🙏", "muscle": "💪", "raised_hands": "🙌", "point_up": "☝️",
    "heart": "❤️", "broken_heart": "💔", "fire": "🔥", "sparkles": "✨", "star": "⭐",
    "tada": "🎉", "100": "💯", "white_check_mark": "✅", "x": "❌", "warning": "⚠️",
    "rocket": "🚀", "bug": "🐛", "coffee": "☕", "pizza": "🍕", "beer": "🍺",
    "cat": "🐱", "dog": "🐶", "zap": "⚡", "bulb": "💡",
}  # fmt: skip


@dataclass(eq=False)
class PendingFile:
    """A file waiting in the composer: on disk (``path``) or pasted (``data``)."""

    filename: str
    size: int
    path: Path | None = None
    data: bytes | None = None
    spoiler: bool = False

    def to_file(self) -> File:
        source: Path | bytes = self.path if self.path is not None else (self.data or b"")
        return File(source, self.filename, spoiler=self.spoiler)

    @property
    def picture(self) -> bool:
        return self.filename.lower().endswith(_PICTURE_SUFFIXES)


def _thumbnail(pending: PendingFile) -> QImage | None:
    """A picture's chip preview (on the image worker thread: reading and decoding a
    large photo must not stall typing)."""
    try:
        if pending.data is not None:
            data = pending.data
        elif pending.path is not None:
            data = pending.path.read_bytes()
        else:
            return None
    except OSError:
        return None
    return decode_image(data, THUMBNAIL * 2)


async def _make_thumbnail(pending: PendingFile) -> QImage | None:
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_worker(), _thumbnail, pending)


def local_files(mime: QMimeData) -> list[Path]:
    """The local files a drop or paste carries (links to elsewhere are not files)."""
    if not mime.hasUrls():
        return []
    return [Path(url.toLocalFile()) for url in mime.urls() if url.isLocalFile()]


class FileChip(QFrame):
    """One waiting file: its preview or glyph, name, size, a spoiler toggle, a remove button."""

    def __init__(self, pending: PendingFile, composer: Composer) -> None:
        super().__init__(composer.files_row)
        self.setObjectName("FileChip")
        self.pending = pending
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setAccessibleName(f"Attached file {pending.filename}")
        self.thumbnail = QLabel("🖼" if pending.picture else "📄", self)
        self.thumbnail.setFixedSize(THUMBNAIL, THUMBNAIL)
        self.thumbnail.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.name = QLabel(self)
        self.name.setTextFormat(Qt.TextFormat.PlainText)
        self.name.setText(
            self.fontMetrics().elidedText(pending.filename, Qt.TextElideMode.ElideMiddle, 150)
        )
        self.name.setToolTip(pending.filename)
        self.size_label = QLabel(human_size(pending.size), self)
        self.size_label.setTextFormat(Qt.TextFormat.PlainText)
        self.spoiler = QToolButton(self)
        self.spoiler.setText("Spoiler")
        self.spoiler.setCheckable(True)
        self.spoiler.setChecked(pending.spoiler)
        self.spoiler.setAccessibleName(f"Mark {pending.filename} as a spoiler")
        self.spoiler.setToolTip("Hide it behind a click for readers")
        self.spoiler.toggled.connect(self._spoiler_toggled)
        self.remove = QToolButton(self)
        self.remove.setText("✕")
        self.remove.setAccessibleName(f"Remove {pending.filename}")
        self.remove.clicked.connect(lambda: composer.remove_file(pending))
        words = QVBoxLayout()
        words.setSpacing(0)
        words.addWidget(self.name)
        words.addWidget(self.size_label)
        buttons = QVBoxLayout()
        buttons.setSpacing(0)
        buttons.addWidget(self.remove, 0, Qt.AlignmentFlag.AlignRight)
        buttons.addWidget(self.spoiler)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(4, 2, 4, 2)
        layout.addWidget(self.thumbnail)
        layout.addLayout(words)
        layout.addLayout(buttons)

    def show_thumbnail(self, image: QImage | None) -> None:
        if image is None:
            return
        ratio = self.devicePixelRatioF()
        scaled = image.scaled(
            round(THUMBNAIL * ratio),
            round(THUMBNAIL * ratio),
            Qt.AspectRatioMode.KeepAspectRatio,
            Qt.TransformationMode.SmoothTransformation,
        )
        pixmap = QPixmap.fromImage(scaled)
        pixmap.setDevicePixelRatio(ratio)
        self.thumbnail.setPixmap(pixmap)

    def _spoiler_toggled(self, on: bool) -> None:
        self.pending.spoiler = on


class Composer(QWidget):
    def __init__(self, session: AppSession, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("Composer")
        self.session = session
        self.channel_id: int | None = None
        self.replying_to: Message | None = None
        self.editing: Message | None = None
        self._last_typing = 0.0
        #: Files that go with the next message, in order.
        self.files: list[PendingFile] = []
        self.chips: list[FileChip] = []
        #: The largest file the relay takes (its default; it refuses larger ones too).
        self.max_file_size = MAX_FILE_SIZE
        self._upload: asyncio.Task[Any] | None = None
        self.setAcceptDrops(True)

        self.reply_bar = QWidget(self)
        self.reply_label = QLabel(self.reply_bar)
        self.reply_label.setTextFormat(Qt.TextFormat.PlainText)
        cancel = QToolButton(self.reply_bar)
        cancel.setText("✕")
        cancel.setAccessibleName("Cancel reply or edit")
        cancel.clicked.connect(self.cancel)
        bar = QHBoxLayout(self.reply_bar)
        bar.setContentsMargins(8, 2, 8, 2)
        bar.addWidget(self.reply_label, 1)
        bar.addWidget(cancel)
        self.reply_bar.hide()

        self.suggestions = QListWidget(self)
        self.suggestions.setAccessibleName("Suggestions")
        self.suggestions.setMaximumHeight(160)
        self.suggestions.itemActivated.connect(self._accept_suggestion)
        self.suggestions.hide()

        self.editor = QPlainTextEdit(self)
        self.editor.setAccessibleName("Message")
        self.editor.setPlaceholderText("Message")
        self.editor.setTabChangesFocus(True)
        self.editor.installEventFilter(self)
        # Drops land on the editor's viewport: files become chips, not pasted paths.
        self.editor.viewport().installEventFilter(self)
        self.editor.textChanged.connect(self._text_changed)
        # One line when empty, growing with the text up to MAX_LINES, as chat apps do.
        self.editor.document().documentLayout().documentSizeChanged.connect(self._fit_height)
        self._fit_height()

        self.preview = QTextEdit(self)
        self.preview.setDocument(SafeTextDocument(self.preview))
        self.preview.setReadOnly(True)
        self.preview.setAccessibleName("Preview")
        self.preview.setMaximumHeight(140)
        self.preview.hide()
        self.preview_button = QToolButton(self)
        self.preview_button.setText("Preview")
        self.preview_button.setCheckable(True)
        self.preview_button.setAccessibleName("Show markdown preview")
        self.preview_button.toggled.connect(self._toggle_preview)
        self.attach_button = QToolButton(self)
        self.attach_button.setText("+")
        self.attach_button.setAccessibleName("Attach files")
        self.attach_button.setToolTip("Attach files")
        self.attach_button.clicked.connect(self.choose_files)

        self.files_row = QWidget(self)
        self.files_row.setObjectName("ComposerFiles")
        self._chip_layout = QHBoxLayout(self.files_row)
        self._chip_layout.setContentsMargins(0, 0, 0, 0)
        self._chip_layout.addStretch(1)
        self.files_bar = QScrollArea(self)
        self.files_bar.setAccessibleName("Files to send")
        self.files_bar.setWidget(self.files_row)
        self.files_bar.setWidgetResizable(True)
        self.files_bar.setFrameShape(QFrame.Shape.NoFrame)
        self.files_bar.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.files_bar.setFixedHeight(THUMBNAIL + 28)
        self.files_bar.hide()

        self.upload_bar = QWidget(self)
        self.progress = QProgressBar(self.upload_bar)
        self.progress.setAccessibleName("Upload progress")
        self.progress.setRange(0, 100)
        self.cancel_upload_button = QToolButton(self.upload_bar)
        self.cancel_upload_button.setText("Cancel")
        self.cancel_upload_button.setAccessibleName("Cancel upload")
        self.cancel_upload_button.clicked.connect(self.cancel_upload)
        upload = QHBoxLayout(self.upload_bar)
        upload.setContentsMargins(0, 0, 0, 0)
        upload.addWidget(self.progress, 1)
        upload.addWidget(self.cancel_upload_button)
        self.upload_bar.hide()

        self.counter = QLabel(self)
        self.counter.setTextFormat(Qt.TextFormat.PlainText)
        self.counter.hide()
        self.error_label = QLabel(self)
        self.error_label.setTextFormat(Qt.TextFormat.PlainText)
        self.error_label.setObjectName("ComposerError")
        self.error_label.setStyleSheet("color: #f23f43;")
        self.error_label.setWordWrap(True)
        self.error_label.hide()

        row = QHBoxLayout()
        row.addWidget(self.attach_button, 0, Qt.AlignmentFlag.AlignTop)
        row.addWidget(self.editor, 1)
        side = QVBoxLayout()
        side.addWidget(self.preview_button)
        side.addWidget(self.counter)
        side.addStretch(1)
        row.addLayout(side)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 4, 8, 8)
        layout.setSpacing(2)
        layout.addWidget(self.suggestions)
        layout.addWidget(self.reply_bar)
        layout.addWidget(self.preview)
        layout.addWidget(self.files_bar)
        layout.addWidget(self.upload_bar)
        layout.addLayout(row)
        layout.addWidget(self.error_label)
        session.error.connect(self.show_error)
        session.files_offered.connect(self._files_offered)

    # Public API ------------------------------------------------------------------------

    def set_channel(self, channel_id: int | None) -> None:
        self.channel_id = channel_id
        self.cancel()
        self.editor.clear()
        self.error_label.hide()
        if self._upload is None:
            self.clear_files()
        self._update_attach_state()
        channel = self.session.channel(channel_id) if channel_id else None
        name = f"Message #{channel.name}" if channel and channel.name else "Message"
        if channel_id is not None and self.session.channel_encrypted(channel_id):
            name = f"Encrypted message to #{channel.name}" if channel else name
        self.editor.setPlaceholderText(name)

    def start_reply(self, message: Message) -> None:
        self.editing = None
        self.replying_to = message
        author = message.author.global_name or message.author.username
        self.reply_label.setText(f"Replying to {author} — Esc to cancel")
        self.reply_bar.show()
        self.editor.setFocus()

    def start_edit(self, message: Message) -> None:
        self.replying_to = None
        self.editing = message
        self.reply_label.setText("Editing message — Enter to save, Esc to cancel")
        self.reply_bar.show()
        self.editor.setPlainText(message.content)
        self.editor.moveCursor(QTextCursor.MoveOperation.End)
        self.editor.setFocus()

    def cancel(self) -> None:
        if self.editing is not None:
            self.editor.clear()
        self.replying_to = None
        self.editing = None
        self.reply_bar.hide()
        self.suggestions.hide()

    def show_error(self, text: str) -> None:
        if self.isVisible() or self.channel_id is not None:
            self.error_label.setText(text)
            self.error_label.show()

    def send(self) -> bool:
        """Send (or save the edit of) what is written; False if nothing was sent."""
        text = self.editor.toPlainText().strip()
        if self._upload is not None:
            return False  # one upload at a time; the box is read-only meanwhile
        if self.channel_id is None or not (text or (self.files and self.editing is None)):
            return False
        if len(text) > MAX_LENGTH:
            self.show_error(f"Messages are limited to {MAX_LENGTH:,} characters.")
            return False
        self.error_label.hide()
        if self.files and self.editing is None:
            return self._send_with_files(text)
        if self.editing is not None:
            if text != self.editing.content:
                self.session.edit_message(self.channel_id, self.editing.id, text)
        else:
            reply_to = self.replying_to.id if self.replying_to else None
            self.session.send_message(self.channel_id, text, reply_to=reply_to)
        self.editing = None
        self.cancel()
        self.editor.clear()
        return True

    # Files ---------------------------------------------------------------------------------

    def attach_blocked(self) -> str | None:
        """Why files cannot be attached here, or None if they can."""
        if self.channel_id is None:
            return "Open a channel to attach files."
        if self.session.channel_encrypted(self.channel_id):
            return ENCRYPTED_REASON
        return None

    def choose_files(self) -> None:
        """Ask for files to attach (the attach button)."""
        paths, _filter = QFileDialog.getOpenFileNames(self, "Attach files")
        if paths:
            self.add_files(paths)

    def add_files(self, paths: Iterable[str | Path]) -> bool:
        """Attach files from disk; a file that cannot go (too large, unreadable, one
        too many) is refused at once, by name. True if all were attached."""
        refusals: list[str] = []
        for raw in paths:
            path = Path(raw)
            try:
                if not path.is_file():
                    refusals.append(f"{path.name or path} is not a file.")
                    continue
                size = path.stat().st_size
            except OSError as exc:
                refusals.append(f"Could not read {path.name}: {exc.strerror or exc}.")
                continue
            refusal = self._add(PendingFile(path.name, size, path=path))
            if refusal is not None:
                refusals.append(refusal)
        if refusals:
            self.show_error(" ".join(refusals))
        return not refusals

    def add_image(self, image: QImage, filename: str = PASTED_NAME) -> bool:
        """Attach a picture from memory (a pasted one) as a PNG file."""
        data = QByteArray()
        buffer = QBuffer(data)
        buffer.open(QBuffer.OpenModeFlag.WriteOnly)
        saved = image.save(buffer, "PNG")  # type: ignore[call-overload]  # PySide6 wants a str
        buffer.close()
        if not saved:
            self.show_error("The pasted picture could not be read.")
            return False
        refusal = self._add(PendingFile(filename, data.size(), data=bytes(data.data())))
        if refusal is not None:
            self.show_error(refusal)
        return refusal is None

    def remove_file(self, pending: PendingFile) -> None:
        if self._upload is not None or pending not in self.files:
            return
        number = self.files.index(pending)
        self.files.pop(number)
        chip = self.chips.pop(number)
        chip.hide()
        chip.deleteLater()
        self.files_bar.setVisible(bool(self.files))

    def clear_files(self) -> None:
        for chip in self.chips:
            chip.hide()
            chip.deleteLater()
        self.files.clear()
        self.chips.clear()
        self.files_bar.hide()

    def paste(self) -> bool:
        """Ctrl+V: a picture or files on the clipboard become attachments; False if
        the clipboard holds something else (text pastes as usual)."""
        mime = QGuiApplication.clipboard().mimeData()
        if mime is None:
            return False
        files = local_files(mime)
        if files:
            self.add_files(files)
            return True
        if mime.hasImage():
            image = QGuiApplication.clipboard().image()
            if not image.isNull():
                self.add_image(image)
                return True
        return False

    def cancel_upload(self) -> None:
        """Stop the upload; the text and the files stay, ready to send again."""
        if self._upload is None:
            return
        task, self._upload = self._upload, None
        task.cancel()
        self._upload_finished()
        self.show_error("Upload cancelled.")

    def uploading(self) -> bool:
        return self._upload is not None

    def _add(self, pending: PendingFile) -> str | None:
        blocked = self.attach_blocked()
        if blocked is not None:
            return blocked
        if self._upload is not None:
            return "Wait for the upload to finish before adding files."
        if len(self.files) >= MAX_FILES:
            return f"{pending.filename} was not added: a message can carry {MAX_FILES} files."
        if pending.size > self.max_file_size:
            return (
                f"{pending.filename} is too large ({human_size(pending.size)}); files can be"
                f" up to {human_size(self.max_file_size)}."
            )
        self.files.append(pending)
        chip = FileChip(pending, self)
        self.chips.append(chip)
        self._chip_layout.insertWidget(self._chip_layout.count() - 1, chip)
        self.files_bar.show()
        self.error_label.hide()
        if pending.picture:
            self.session.run(
                _make_thumbnail(pending),
                on_done=lambda image: self._thumbnail_ready(pending, image),
                on_error=lambda exc: None,
            )
        return None

    def _thumbnail_ready(self, pending: PendingFile, image: QImage | None) -> None:
        # The file may have been removed (and its chip deleted) while it was decoded.
        for chip in self.chips:
            if chip.pending is pending:
                chip.show_thumbnail(image)

    def _send_with_files(self, text: str) -> bool:
        assert self.channel_id is not None
        blocked = self.attach_blocked()
        if blocked is not None:
            self.show_error(blocked)
            return False
        reply_to = self.replying_to.id if self.replying_to else None
        files = [pending.to_file() for pending in self.files]
        try:
            task = self.session.post_files(
                self.channel_id,
                text,
                files,
                reply_to=reply_to,
                progress=self._upload_progress,
                on_done=lambda _message: self._upload_done(task),
                on_error=lambda exc: self._upload_failed(task, exc),
            )
        except NexusError as exc:
            self.show_error(f"Could not send your files: {describe_error(exc)}")
            return False
        self._upload = task
        count = len(files)
        self.progress.setValue(0)
        self.progress.setFormat(f"Uploading {count} file{'s' if count != 1 else ''}… %p%")
        self.upload_bar.show()
        self.editor.setReadOnly(True)
        self.attach_button.setEnabled(False)
        for chip in self.chips:
            chip.setEnabled(False)
        return True

    def _upload_progress(self, sent: int, total: int) -> None:
        if total > 0:
            self.progress.setValue(min(100, sent * 100 // total))

    def _upload_done(self, task: asyncio.Task[Any]) -> None:
        if self._upload is not task:
            return
        self._upload = None
        self._upload_finished()
        self.clear_files()
        self.replying_to = None
        self.cancel()
        self.editor.clear()

    def _upload_failed(self, task: asyncio.Task[Any], exc: Exception) -> None:
        if self._upload is not task:
            return
        self._upload = None
        self._upload_finished()
        self.show_error(f"Could not send your files: {describe_error(exc)}")

    def _upload_finished(self) -> None:
        self.upload_bar.hide()
        self.editor.setReadOnly(False)
        for chip in self.chips:
            chip.setEnabled(True)
        self._update_attach_state()

    def _update_attach_state(self) -> None:
        blocked = self.attach_blocked()
        self.attach_button.setEnabled(blocked is None and self._upload is None)
        self.attach_button.setToolTip(blocked or "Attach files")

    def _files_offered(self, channel_id: object, paths: object) -> None:
        if channel_id == self.channel_id and isinstance(paths, list):
            self.add_files(paths)

    def _drag_wanted(self, event: QDragEnterEvent | QDragMoveEvent) -> bool:
        mime = event.mimeData()
        if mime is not None and local_files(mime):
            event.acceptProposedAction()
            return True
        return False

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if not self._drag_wanted(event):
            super().dragEnterEvent(event)

    def dragMoveEvent(self, event: QDragMoveEvent) -> None:
        if not self._drag_wanted(event):
            super().dragMoveEvent(event)

    def dropEvent(self, event: QDropEvent) -> None:
        mime = event.mimeData()
        files = local_files(mime) if mime is not None else []
        if files:
            event.acceptProposedAction()
            self.add_files(files)
        else:
            super().dropEvent(event)

    # Keys --------------------------------------------------------------------------------

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if watched is self.editor.viewport():
            if isinstance(event, QDragEnterEvent | QDragMoveEvent) and self._drag_wanted(event):
                return True
            if isinstance(event, QDropEvent) and event.type() == QEvent.Type.Drop:
                mime = event.mimeData()
                files = local_files(mime) if mime is not None else []
                if files:
                    event.acceptProposedAction()
                    self.add_files(files)
                    return True
            return super().eventFilter(watched, event)
        if watched is self.editor and event.type() in _RESIZING_EVENTS:
            # A theme's padding or a new font size changes what one line needs.
            self._fit_height()
        if (
            watched is self.editor
            and isinstance(event, QKeyEvent)
            and event.type() == QEvent.Type.KeyPress
            and self._key(event)
        ):
            return True
        return super().eventFilter(watched, event)

    def _key(self, event: QKeyEvent) -> bool:
        if event.matches(QKeySequence.StandardKey.Paste) and self.paste():
            return True
        key = event.key()
        shift = bool(event.modifiers() & Qt.KeyboardModifier.ShiftModifier)
        popup = self.suggestions.isVisible() and self.suggestions.count() > 0
        if popup and key in (Qt.Key.Key_Up, Qt.Key.Key_Down):
            step = -1 if key == Qt.Key.Key_Up else 1
            row = (self.suggestions.currentRow() + step) % self.suggestions.count()
            self.suggestions.setCurrentRow(row)
            return True
        if popup and key in (Qt.Key.Key_Tab, Qt.Key.Key_Return, Qt.Key.Key_Enter) and not shift:
            self._accept_suggestion(self.suggestions.currentItem())
            return True
        if key in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
            if shift:
                self.editor.insertPlainText("\n")
            else:
                self.send()
            return True
        if key == Qt.Key.Key_Escape:
            if popup:
                self.suggestions.hide()
            else:
                self.cancel()
            return True
        if key == Qt.Key.Key_Up and not self.editor.toPlainText():
            last = self._my_last_message()
            if last is not None:
                self.start_edit(last)
                return True
        return False

    def _my_last_message(self) -> Message | None:
        if self.channel_id is None:
            return None
        me = self.session.me(self.channel_id)
        mine = [m for m in self.session.messages(self.channel_id) if me and m.author.id == me.id]
        return mine[-1] if mine else None

    # Typing, counter, preview, suggestions -------------------------------------------------

    def _fit_height(self, *_: object) -> None:
        written = int(self.editor.document().size().height())
        lines = max(1, min(MAX_LINES, written))
        # Around the text viewport: the frame and the theme's padding. Once laid out, the
        # editor's own geometry says how much; before that, the frame is the best guess.
        viewport = self.editor.viewport().height()
        chrome = self.editor.height() - viewport if viewport > 0 else self.editor.frameWidth() * 2
        margins = int(self.editor.document().documentMargin() * 2)
        line_height = self.editor.fontMetrics().lineSpacing()
        self.editor.setFixedHeight(lines * line_height + chrome + margins + 2)
        # Only a message longer than the box scrolls; a fitting one shows no scroll bar.
        self.editor.setVerticalScrollBarPolicy(
            Qt.ScrollBarPolicy.ScrollBarAsNeeded
            if written > MAX_LINES
            else Qt.ScrollBarPolicy.ScrollBarAlwaysOff
        )

    def _text_changed(self) -> None:
        text = self.editor.toPlainText()
        length = len(text)
        self.counter.setVisible(length >= COUNTER_FROM)
        self.counter.setText(f"{MAX_LENGTH - length}")
        self.counter.setStyleSheet("color: #f23f43;" if length > MAX_LENGTH else "")
        now = time.monotonic()
        if (
            text
            and self.channel_id is not None
            and self.editing is None
            and now - self._last_typing >= TYPING_EVERY
        ):
            self._last_typing = now
            self.session.trigger_typing(self.channel_id)
        if self.preview.isVisible():
            self._render_preview()
        self._update_suggestions()

    def _toggle_preview(self, shown: bool) -> None:
        self.preview.setVisible(shown)
        if shown:
            self._render_preview()

    def _render_preview(self) -> None:
        me = self.session.me(self.channel_id) if self.channel_id else None
        names, channels = self._names()
        html = render_markdown(
            self.editor.toPlainText()[: MAX_LENGTH + 100],
            mentions={i: n for i, n, _ in names},
            me=me.id if me else None,
            channels={i: n for i, n in channels},
        )
        self.preview.document().setHtml(html)

    def _names(self) -> tuple[list[tuple[int, str, str]], list[tuple[int, str]]]:
        channel = self.session.channel(self.channel_id) if self.channel_id else None
        if channel is None or channel.guild_id is None:
            return [], []
        members = [
            (m.user.id, m.nick or m.user.global_name or m.user.username, m.user.username)
            for m in self.session.members(channel.guild_id)
            if m.user is not None
        ]
        channels = [(c.id, c.name or "") for c in self.session.channels(channel.guild_id)]
        return members, channels

    def _update_suggestions(self) -> None:
        cursor = self.editor.textCursor()
        before = self.editor.toPlainText()[: cursor.position()]
        match = _TRIGGER.search(before[-40:])
        self.suggestions.clear()
        if match is None or (match.group(1) == ":" and len(match.group(2)) < 2):
            self.suggestions.hide()
            return
        sigil, word = match.group(1), match.group(2).lower()
        entries: list[tuple[str, str]] = []
        members, channels = self._names()
        if sigil == "@":
            entries = [
                (f"@{n} ({u})", f"<@{i}> ")
                for i, n, u in members
                if word in n.lower() or word in u.lower()
            ]
        elif sigil == "#":
            entries = [(f"#{n}", f"<#{i}> ") for i, n in channels if word in n.lower()]
        else:
            entries = [(f"{e} :{c}:", f"{e} ") for c, e in EMOJI.items() if c.startswith(word)]
        for label, insert in entries[:10]:
            item = QListWidgetItem(label)
            item.setData(Qt.ItemDataRole.UserRole, (len(match.group(2)) + 1, insert))
            self.suggestions.addItem(item)
        self.suggestions.setVisible(bool(entries))
        if entries:
            self.suggestions.setCurrentRow(0)

    def _accept_suggestion(self, item: QListWidgetItem | None) -> None:
        if item is None:
            return
        typed, insert = item.data(Qt.ItemDataRole.UserRole)
        cursor = self.editor.textCursor()
        cursor.movePosition(QTextCursor.MoveOperation.Left, QTextCursor.MoveMode.KeepAnchor, typed)
        cursor.insertText(insert)
        self.editor.setTextCursor(cursor)
        self.suggestions.hide()
        self.editor.setFocus()
