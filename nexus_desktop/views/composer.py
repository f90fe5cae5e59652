"""Where messages are written: Enter sends, Shift+Enter breaks the line, Up in an empty
box edits your last message, Esc cancels a reply or an edit. Typing ``@``, ``#`` or
``:`` offers members, channels or emoji; a toggle shows the rendered markdown."""

from __future__ import annotations

import re
import time

from nexus_protocol.models import Message

from ..markdown import SafeTextDocument, render_markdown
from ..qt import (
    QEvent,
    QHBoxLayout,
    QKeyEvent,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QObject,
    QPlainTextEdit,
    Qt,
    QTextCursor,
    QTextEdit,
    QToolButton,
    QVBoxLayout,
    QWidget,
)
from ..session import AppSession

__all__ = ["EMOJI", "MAX_LENGTH", "TYPING_EVERY", "Composer"]

MAX_LENGTH = 4000
COUNTER_FROM = 3500
MAX_LINES = 8
# Events after which the editor's line height or padding may differ.
_RESIZING_EVENTS = (QEvent.Type.Show, QEvent.Type.StyleChange, QEvent.Type.FontChange)
TYPING_EVERY = 8.0
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


class Composer(QWidget):
    def __init__(self, session: AppSession, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("Composer")
        self.session = session
        self.channel_id: int | None = None
        self.replying_to: Message | None = None
        self.editing: Message | None = None
        self._last_typing = 0.0

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
        layout.addLayout(row)
        layout.addWidget(self.error_label)
        session.error.connect(self.show_error)

    # Public API ------------------------------------------------------------------------

    def set_channel(self, channel_id: int | None) -> None:
        self.channel_id = channel_id
        self.cancel()
        self.editor.clear()
        self.error_label.hide()
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
        if self.channel_id is None or not text:
            return False
        if len(text) > MAX_LENGTH:
            self.show_error(f"Messages are limited to {MAX_LENGTH:,} characters.")
            return False
        self.error_label.hide()
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

    # Keys --------------------------------------------------------------------------------

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
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
