"""The message pane: a virtualised list of one channel's messages (``MessageListModel``
painted by ``MessageDelegate``), a "Jump to present" button and the typing line.

It talks to the relay only through ``AppSession`` operations; what they change comes
back as session signals, which the model turns into row changes.

Files dropped on the list are offered to the channel's composer (``files_offered``);
a picture attachment opens in a viewer, and any attachment saves to a file chosen in a
dialog, written atomically, with progress in the window's status bar.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

from nexus_client.outbox import PendingMessage
from nexus_protocol.models import Attachment, Message
from nexus_protocol.permissions import Permissions

from ..attachments import human_size, is_image, safe_filename, save_attachment, shown_filename
from ..markdown import code_blocks, has_spoilers
from ..models.messages import MessageListModel, Roles
from ..qt import (
    QAbstractItemView,
    QAction,
    QDesktopServices,
    QDragEnterEvent,
    QDragMoveEvent,
    QDropEvent,
    QEvent,
    QFileDialog,
    QGuiApplication,
    QKeyEvent,
    QKeySequence,
    QLabel,
    QListView,
    QMainWindow,
    QMenu,
    QMessageBox,
    QModelIndex,
    QPersistentModelIndex,
    QPoint,
    QResizeEvent,
    QShowEvent,
    QStandardPaths,
    QStyleOptionViewItem,
    Qt,
    QTimer,
    QToolButton,
    QUrl,
    QVBoxLayout,
    QWidget,
    Signal,
)
from ..session import AppSession
from .attachment_viewer import AttachmentViewer
from .message_delegate import MessageDelegate

__all__ = ["QUICK_EMOJI", "TYPING_SECONDS", "MessageView"]

QUICK_EMOJI = [
    "👍",
    "👎",
    "😂",
    "❤️",
    "😮",
    "😢",
    "😡",
    "🎉",
    "🔥",
    "👀",
    "✅",
    "❌",
    "🙏",
    "💯",
    "🤔",
    "👋",
]
TYPING_SECONDS = 10.0
NEWER_PAGE = 50  # messages fetched at a time when reading forward in the past


# The app's font (a new size), palette or style sheet (a new theme) changed: every
# rendered row is out of date.
_RESTYLING_EVENTS = (QEvent.Type.FontChange, QEvent.Type.PaletteChange, QEvent.Type.StyleChange)


def _menu_text(filename: str) -> str:
    """A file name as a menu entry: shown as written, with no "&" read as a shortcut
    and no tab read as the start of one."""
    return shown_filename(filename).replace("&", "&&")


class MessageView(QWidget):
    reply_requested = Signal(object)  # Message
    edit_requested = Signal(object)  # Message

    def __init__(self, session: AppSession, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("MessageView")
        self.session = session
        self.channel_id: int | None = None
        self.model = MessageListModel(session, self)
        self.delegate = MessageDelegate(self)
        self.list = QListView(self)
        self.list.setObjectName("MessageList")
        self.list.setAccessibleName("Messages")
        self.list.setModel(self.model)
        self.list.setItemDelegate(self.delegate)
        self.list.setUniformItemSizes(False)
        self.list.setVerticalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        self.list.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.list.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.list.setWordWrap(True)
        self.list.setMouseTracking(True)
        self.list.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.list.customContextMenuRequested.connect(self._context_menu)
        self.list.installEventFilter(self)
        # Files dropped on the messages go to the composer, as in Discord.
        self.list.setAcceptDrops(True)
        self.list.viewport().setAcceptDrops(True)
        self.list.viewport().installEventFilter(self)
        self.delegate.attach(self.list, self.model)
        self.delegate.relayout = self._relayout
        self.typing_label = QLabel(self)
        self.typing_label.setTextFormat(Qt.TextFormat.PlainText)
        self.typing_label.setObjectName("TypingIndicator")
        self.typing_label.setAccessibleName("Who is typing")
        self.jump_button = QToolButton(self)
        self.jump_button.setText("Jump to present ↓")
        self.jump_button.setAccessibleName("Jump to present")
        self.jump_button.hide()
        self.jump_button.clicked.connect(self.jump_to_present)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(self.list, 1)
        layout.addWidget(self.typing_label)

        #: Asks before a link opens; tests replace it. Returns True to open.
        self.confirm_link: Callable[[str], bool] = self._ask_before_opening
        #: Asks where to save an attachment (None: cancelled); tests replace it.
        self.choose_save_path: Callable[[Attachment], Path | None] = self._ask_where_to_save
        self.viewer: AttachmentViewer | None = None
        self.opened_links: list[str] = []
        self._typers: dict[int, float] = {}
        self._stick_to_bottom = True
        self._loading_history = False
        self._anchor: tuple[QPersistentModelIndex, int] | None = None
        self._acked: int | None = None
        self._restyle_pending = False
        self._wanted: int | None = None  # the message show_message is fetching
        #: The last line shown about a download (also in the window's status bar).
        self.status_text = ""
        self._loading_newer = False  # reading forward in a stretch of the past
        self._typing_timer = QTimer(self)
        self._typing_timer.setInterval(1000)
        self._typing_timer.timeout.connect(self._refresh_typing)

        bar = self.list.verticalScrollBar()
        bar.valueChanged.connect(self._scrolled)
        bar.rangeChanged.connect(self._range_changed)
        self.model.rowsAboutToBeInserted.connect(self._before_insert)
        self.model.rowsInserted.connect(self._after_insert)
        self.model.dataChanged.connect(self._row_changed)
        self.delegate.reaction_clicked.connect(self._toggle_reaction)
        self.delegate.retry_clicked.connect(self._retry)
        self.delegate.discard_clicked.connect(self._discard)
        self.delegate.reply_clicked.connect(self.jump_to_message)
        self.delegate.link_clicked.connect(self.open_link)
        self.delegate.code_copied.connect(self.copy)
        self.delegate.attachment_opened.connect(self.open_attachment)
        self.delegate.download_clicked.connect(self.save_attachment)
        session.typing_started.connect(self._someone_typing)
        session.message_created.connect(self._message_arrived)
        session.history_loaded.connect(self._history_loaded)
        session.members_changed.connect(lambda _guild: self._refresh_names())

    # Channel -----------------------------------------------------------------------------

    def set_channel(self, channel_id: int | None) -> None:
        self.channel_id = channel_id
        self._typers.clear()
        self._refresh_typing()
        self._acked = None
        self._refresh_names()
        self._stick_to_bottom = True
        self._wanted = None
        self._loading_newer = False
        self.model.set_channel(channel_id)
        self.list.scrollToBottom()
        self._ack_latest()
        if channel_id is not None and self.model.rowCount() < 30:
            self._request_history(self.model.oldest_id())

    def _refresh_names(self) -> None:
        if self.channel_id is None:
            return
        channel = self.session.channel(self.channel_id)
        me = self.session.me(self.channel_id)
        mentions: dict[int, str] = {}
        channels: dict[int, str] = {}
        if channel is not None and channel.guild_id is not None:
            for member in self.session.members(channel.guild_id):
                if member.user is not None:
                    user = member.user
                    mentions[user.id] = member.nick or user.global_name or user.username
            channels = {c.id: c.name or "?" for c in self.session.channels(channel.guild_id)}
        if me is not None:
            mentions.setdefault(me.id, me.global_name or me.username)
        self.delegate.set_names(mentions, channels, me.id if me else None)
        self.list.viewport().update()

    # Scrolling -----------------------------------------------------------------------------

    def at_bottom(self) -> bool:
        bar = self.list.verticalScrollBar()
        return bar.value() >= bar.maximum() - 4

    def _scrolled(self, value: int) -> None:
        self._stick_to_bottom = self.at_bottom()
        self.jump_button.setVisible(not self._stick_to_bottom or not self.model.at_present)
        self._place_jump_button()
        if self._stick_to_bottom:
            self._ack_latest()
        if value <= self.list.verticalScrollBar().minimum() and self.model.rowCount():
            self._request_history(self.model.oldest_id())
        elif self._stick_to_bottom and self.model.detached:
            self._request_newer()

    def _request_history(self, before: int | None) -> None:
        if self._loading_history or self.channel_id is None:
            return
        self._loading_history = True
        if self.model.detached and before is not None:
            channel_id = self.channel_id
            self.session.fetch_history_page(
                channel_id,
                before=before,
                on_done=lambda page: self._older_page(channel_id, page),
                on_error=lambda exc: self._older_page(channel_id, []),
            )
            return
        self.session.load_history(self.channel_id, before=before)

    def _request_newer(self) -> None:
        """Reading forward in a stretch of the past: fetch the next page, until it
        reaches the present and the window is live again."""
        newest = self.model.newest_message()
        if self._loading_newer or self.channel_id is None or newest is None:
            return
        self._loading_newer = True
        channel_id = self.channel_id
        self.session.fetch_history_page(
            channel_id,
            after=newest.id,
            limit=NEWER_PAGE,
            on_done=lambda page: self._newer_page(channel_id, page),
            on_error=lambda exc: self._newer_page(channel_id, None),
        )

    def _newer_page(self, channel_id: int, page: list[Message] | None) -> None:
        if channel_id != self.channel_id:
            return
        self._loading_newer = False
        if page is None or not self.model.detached:
            return
        self._stick_to_bottom = False  # keep the reader's place, not the bottom
        if len(page) < NEWER_PAGE:
            # The last page: the newest messages the app knows (live ones that arrived
            # meanwhile among them) join it, and the window is live again.
            self.model.extend_window(page, self.session.messages(channel_id) or page)
            self.model.set_pending(self.session.pending(channel_id))
        else:
            self.model.extend_window(page)
        self.jump_button.setVisible(not self.model.at_present or not self.at_bottom())

    def _older_page(self, channel_id: int, page: list[Message]) -> None:
        if channel_id == self.channel_id:
            self._loading_history = False
            if self.model.detached:
                self.model.prepend(page)

    def _history_loaded(self, channel_id: int) -> None:
        if channel_id == self.channel_id:
            self._loading_history = False

    def _before_insert(self, _parent: QModelIndex, first: int, _last: int) -> None:
        if first == 0 and self.model.rowCount() and not self._stick_to_bottom:
            # Older messages are coming in above: remember which row is at the top of
            # the viewport, and where, to keep it under the reader's eye.
            top = self.list.indexAt(QPoint(8, 1))
            if top.isValid():
                self._anchor = (QPersistentModelIndex(top), self.list.visualRect(top).top())

    def _after_insert(self, *_: object) -> None:
        if self._stick_to_bottom:
            QTimer.singleShot(0, self.list.scrollToBottom)

    def _range_changed(self, _minimum: int, maximum: int) -> None:
        bar = self.list.verticalScrollBar()
        if self._stick_to_bottom:
            bar.setValue(maximum)
        elif self._anchor is not None:
            anchor, was = self._anchor
            self._anchor = None
            if anchor.isValid():
                now = self.list.visualRect(self.model.index(anchor.row())).top()
                bar.setValue(bar.value() + now - was)

    def _row_changed(self, top: QModelIndex, bottom: QModelIndex, *_: object) -> None:
        for row in range(top.row(), bottom.row() + 1):
            self.delegate.forget(int(self.model.index(row).data(Roles.KEY) or 0))

    def _relayout(self) -> None:
        """Lay every row out again after the delegate corrected heights, keeping the
        row at the top of the viewport where it is (or the view at the bottom)."""
        if self._stick_to_bottom:
            self.list.doItemsLayout()
            self.list.scrollToBottom()
            return
        top = self.list.indexAt(QPoint(8, 1))
        key = top.data(Roles.KEY) if top.isValid() else None
        was = self.list.visualRect(top).top() if top.isValid() else 0
        self.list.doItemsLayout()
        row = self.model.row_of(key) if isinstance(key, int) else None
        if row is not None:
            now = self.list.visualRect(self.model.index(row)).top()
            bar = self.list.verticalScrollBar()
            bar.setValue(bar.value() + now - was)

    def jump_to_present(self) -> None:
        if not self.model.at_present:
            self.model.set_channel(self.channel_id)
        self._stick_to_bottom = True
        self.list.scrollToBottom()
        self.jump_button.hide()

    def show_message(self, message_id: int) -> None:
        """Scroll to a message of the open channel and select it; when the window does
        not hold it, fetch the history around it first (a stretch of the past, left
        with "Jump to present")."""
        self._wanted = None
        if self.jump_to_message(message_id) or self.channel_id is None:
            return
        channel_id = self.channel_id
        self._wanted = message_id
        self.session.fetch_history_page(
            channel_id,
            around=message_id,
            on_done=lambda page: self._show_around(channel_id, message_id, page),
        )

    def _show_around(self, channel_id: int, message_id: int, page: list[Message]) -> None:
        if channel_id != self.channel_id or self._wanted != message_id:
            return  # the reader moved on meanwhile
        self._wanted = None
        if not any(m.id == message_id for m in page):
            self.session.error.emit("That message is no longer there.")
            return
        known = self.session.messages(channel_id)
        if page and known and page[-1].id >= max(m.id for m in known):
            # The page reaches the present: one window, live as usual.
            merged = {m.id: m for m in page} | {m.id: m for m in known}
            self.model.load(list(merged.values()), self.session.pending(channel_id))
        else:
            self.model.load_window(page)
        self._stick_to_bottom = False
        self._loading_history = False
        self.jump_to_message(message_id)
        self.jump_button.setVisible(not self.model.at_present or not self.at_bottom())
        self._place_jump_button()

    def jump_to_message(self, message_id: int) -> bool:
        """Scroll to a loaded message and select it; False if it is not loaded."""
        row = self.model.row_of(message_id)
        if row is None:
            return False
        index = self.model.index(row)
        self._stick_to_bottom = False
        self.list.scrollTo(index, QAbstractItemView.ScrollHint.PositionAtCenter)
        self.list.setCurrentIndex(index)
        return True

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self._place_jump_button()

    def changeEvent(self, event: QEvent) -> None:
        super().changeEvent(event)
        if event.type() in _RESTYLING_EVENTS and not self._restyle_pending:
            # A theme sets the font, the palette and the style sheet one after the other:
            # render and measure the rows once, after the last of them.
            self._restyle_pending = True
            QTimer.singleShot(0, self._restyle)

    def _restyle(self) -> None:
        self._restyle_pending = False
        self.delegate.restyle()
        self._relayout()

    def _place_jump_button(self) -> None:
        hint = self.jump_button.sizeHint()
        x = self.list.width() - hint.width() - 24
        y = self.list.height() - hint.height() - 12
        self.jump_button.setGeometry(x, y, hint.width(), hint.height())
        self.jump_button.raise_()

    # Arriving messages, typing, read state -----------------------------------------------

    def _message_arrived(self, message: Message) -> None:
        if message.channel_id != self.channel_id:
            return
        if self._typers.pop(message.author.id, None) is not None:
            self._refresh_typing()
        if self._stick_to_bottom:
            self._ack_latest()

    def _someone_typing(self, channel_id: int, user_id: int) -> None:
        me = self.session.me(channel_id) if channel_id == self.channel_id else None
        if channel_id != self.channel_id or (me is not None and me.id == user_id):
            return
        self._typers[user_id] = time.monotonic() + TYPING_SECONDS
        self._refresh_typing()
        self._typing_timer.start()

    def _refresh_typing(self) -> None:
        now = time.monotonic()
        self._typers = {u: t for u, t in self._typers.items() if t > now}
        names = [self.delegate.mentions.get(u, "Someone") for u in self._typers]
        if not names:
            self._typing_timer.stop()
            self.typing_label.setText("")
        elif len(names) == 1:
            self.typing_label.setText(f"{names[0]} is typing…")
        elif len(names) <= 3:
            self.typing_label.setText(f"{', '.join(names[:-1])} and {names[-1]} are typing…")
        else:
            self.typing_label.setText("Several people are typing…")

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        if self._stick_to_bottom:
            self.delegate.prime_bottom()
        self._ack_latest()

    def _ack_latest(self) -> None:
        newest = self.model.newest_message()
        if self.channel_id is None or newest is None or not self.isVisible():
            return
        if self._acked is not None and self._acked >= newest.id:
            return
        self._acked = newest.id
        self.session.ack(self.channel_id, newest.id)

    # Actions -----------------------------------------------------------------------------

    def _toggle_reaction(self, message: Message, emoji: str, mine: bool) -> None:
        self.session.toggle_reaction(message.channel_id, message.id, emoji, mine)

    def react(self, message: Message, emoji: str) -> None:
        mine = any(r.me and r.emoji.name == emoji for r in message.reactions)
        self.session.toggle_reaction(message.channel_id, message.id, emoji, mine)

    def _retry(self, pending: PendingMessage) -> None:
        self.session.retry_pending(pending.channel_id, pending.local_id)

    def _discard(self, pending: PendingMessage) -> None:
        self.session.discard_pending(pending.channel_id, pending.local_id)

    def click_part(self, row: int, part: str, detail: str | None = None) -> bool:
        """Do what clicking ``part`` ("reaction" with its emoji, "retry", "discard",
        "reply", "attachment" or its "download" button with the file's name) of
        ``row`` does, through the delegate's own hit-test path."""
        index = self.model.index(row)
        option = QStyleOptionViewItem()
        option.rect = self.list.visualRect(index)
        option.palette = self.list.palette()
        out = self.delegate._exact_height(option, index)
        points: list[QPoint] = []
        if part == "reaction":
            points = [p.center() for p, emoji, _m, _c in out.pills if emoji == detail]
        elif part == "retry" and out.retry is not None:
            points = [out.retry.center()]
        elif part == "discard" and out.discard is not None:
            points = [out.discard.center()]
        elif part == "reply" and out.reply is not None:
            points = [out.reply.center()]
        elif part in ("attachment", "download"):
            item = index.data(Roles.MESSAGE)
            names = [a.filename for a in item.attachments] if isinstance(item, Message) else []
            for box in out.attachments:
                if box.number < len(names) and detail in (None, names[box.number]):
                    spot = box.button if part == "download" else box.rect
                    if spot is not None:
                        points.append(spot.center())
        for point in points:
            target = self.delegate.hit(option, index, point)
            if target is not None:
                return self.delegate.activate(*target)
        return False

    def open_link(self, url: str) -> None:
        """Links open only after the reader agrees, and never by themselves."""
        if self.confirm_link(url):
            self.opened_links.append(url)
            QDesktopServices.openUrl(QUrl(url))

    def _ask_before_opening(self, url: str) -> bool:
        answer = QMessageBox.question(
            self,
            "Open link?",
            f"This link goes to:\n\n{url}\n\nOpen it in your browser?",
        )
        return answer == QMessageBox.StandardButton.Yes

    def current_message(self) -> Message | None:
        item = self.list.currentIndex().data(Roles.MESSAGE)
        return item if isinstance(item, Message) else None

    def _is_mine(self, message: Message) -> bool:
        return self.delegate.me is not None and message.author.id == self.delegate.me

    def can_delete(self, message: Message) -> bool:
        """Own messages, and anyone's where the reader may manage messages (the relay
        checks again)."""
        if self._is_mine(message):
            return True
        if self.session.channel_encrypted(message.channel_id):
            return False  # an encrypted deletion counts only from the author
        allowed = self.session.channel_permissions(message.channel_id)
        return bool(allowed & Permissions.MANAGE_MESSAGES)

    def delete(self, message: Message) -> None:
        self.session.delete_message(message.channel_id, message.id)

    def _context_menu(self, pos: QPoint) -> None:
        index = self.list.indexAt(pos)
        item = index.data(Roles.MESSAGE)
        if not isinstance(item, Message):
            return
        self.list.setCurrentIndex(index)
        menu = self.build_menu(item)
        menu.exec(self.list.viewport().mapToGlobal(pos))

    def build_menu(self, message: Message) -> QMenu:
        menu = QMenu(self)
        menu.setAccessibleName("Message actions")
        menu.addAction("Reply", lambda: self.reply_requested.emit(message))
        if self._is_mine(message):
            menu.addAction("Edit", lambda: self.edit_requested.emit(message))
        if self.can_delete(message):
            menu.addAction("Delete", lambda: self.delete(message))
        if has_spoilers(message.content) and message.id not in self.delegate.revealed:
            menu.addAction("Reveal spoilers", lambda: self.delegate.reveal_spoilers(message))
        react = menu.addMenu("Add reaction")
        for emoji in QUICK_EMOJI:
            action = QAction(emoji, react)
            action.triggered.connect(lambda _=False, e=emoji: self.react(message, e))
            react.addAction(action)
        menu.addAction("Copy text", lambda: self.copy_text(message))
        self._attachment_actions(menu, message)
        for number, code in enumerate(code_blocks(message.content)):
            label = "Copy code block" if number == 0 else f"Copy code block {number + 1}"
            menu.addAction(label, partial(self.copy, code))
        return menu

    def _attachment_actions(self, menu: QMenu, message: Message) -> None:
        pictures = [a for a in message.attachments if is_image(a)]
        covered = [a for a in pictures if a.spoiler and a.id not in self.delegate.uncovered]
        if covered:
            menu.addAction("Show spoiler pictures", partial(self._uncover_all, covered))
        if len(pictures) == 1:
            menu.addAction("Open attachment", partial(self.open_attachment, message, pictures[0]))
        elif pictures:
            opens = menu.addMenu("Open attachment")
            for attachment in pictures:
                opens.addAction(
                    _menu_text(attachment.filename),
                    partial(self.open_attachment, message, attachment),
                )
        if len(message.attachments) == 1:
            menu.addAction(
                "Save attachment…", partial(self.save_attachment, message, message.attachments[0])
            )
        elif message.attachments:
            saves = menu.addMenu("Save attachment…")
            for attachment in message.attachments:
                saves.addAction(
                    _menu_text(attachment.filename),
                    partial(self.save_attachment, message, attachment),
                )

    # Attachments -------------------------------------------------------------------------

    def _uncover_all(self, attachments: list[Attachment]) -> None:
        for attachment in attachments:
            self.delegate.uncover(attachment)

    def open_attachment(self, message: Message, attachment: Attachment) -> AttachmentViewer:
        """Show a picture in the viewer (one at a time)."""
        if self.viewer is not None:
            self.viewer.close()
        viewer = AttachmentViewer(
            self.session,
            message.channel_id,
            attachment,
            partial(self.save_attachment, message, attachment),
            self,
        )
        viewer.destroyed.connect(partial(self._viewer_gone, viewer))
        self.viewer = viewer
        viewer.show()
        return viewer

    def _viewer_gone(self, viewer: AttachmentViewer, *_: object) -> None:
        # The viewer it replaced is deleted later, after the new one is shown.
        if self.viewer is viewer:
            self.viewer = None

    def save_attachment(
        self, message: Message, attachment: Attachment, path: Path | None = None
    ) -> None:
        """Download ``attachment`` to ``path`` (asked for when not given), atomically:
        a cancelled or failed download leaves no partial file behind."""
        target = path if path is not None else self.choose_save_path(attachment)
        if target is None:
            return
        name = safe_filename(attachment.filename)
        self._status(f"Downloading {name} ({human_size(attachment.size)})…", 0)
        self.session.run(
            save_attachment(self.session, message.channel_id, attachment, target),
            on_done=lambda size: self._status(f"Saved {target.name} ({human_size(size)}).", 8000),
            on_error=lambda exc: self._status(f"Could not save {name}: {exc}", 15000),
        )

    def _ask_where_to_save(self, attachment: Attachment) -> Path | None:
        folder = QStandardPaths.writableLocation(
            QStandardPaths.StandardLocation.DownloadLocation
        ) or str(Path.home())
        default = str(Path(folder) / safe_filename(attachment.filename))
        chosen, _filter = QFileDialog.getSaveFileName(self, "Save attachment", default)
        return Path(chosen) if chosen else None

    def _status(self, text: str, timeout: int) -> None:
        """A line in the window's status bar (and in ``status_text``)."""
        window = self.window()
        if isinstance(window, QMainWindow):
            window.statusBar().showMessage(text, timeout)
        self.status_text = text

    def _offer_files(self, event: QDropEvent) -> bool:
        mime = event.mimeData()
        if mime is None or not mime.hasUrls() or self.channel_id is None:
            return False
        paths = [Path(url.toLocalFile()) for url in mime.urls() if url.isLocalFile()]
        if not paths:
            return False
        event.acceptProposedAction()
        if event.type() == QEvent.Type.Drop:
            self.session.files_offered.emit(self.channel_id, paths)
        return True

    def copy_text(self, message: Message) -> None:
        QGuiApplication.clipboard().setText(message.content)

    def copy(self, text: str) -> None:
        QGuiApplication.clipboard().setText(text)

    def copy_code(self, message: Message) -> None:
        blocks = code_blocks(message.content)
        if blocks:
            QGuiApplication.clipboard().setText(blocks[0])

    def eventFilter(self, watched: object, event: object) -> bool:
        if (
            watched is self.list.viewport()
            and isinstance(event, QDragEnterEvent | QDragMoveEvent | QDropEvent)
            and self._offer_files(event)
        ):
            return True
        if (
            watched is self.list
            and isinstance(event, QKeyEvent)
            and event.type() == QKeyEvent.Type.KeyPress
        ):
            message = self.current_message()
            key = event.key()
            if message is not None:
                if key == Qt.Key.Key_R:
                    self.reply_requested.emit(message)
                    return True
                if key == Qt.Key.Key_E and self._is_mine(message):
                    self.edit_requested.emit(message)
                    return True
                if key == Qt.Key.Key_Delete and self.can_delete(message):
                    self.delete(message)
                    return True
                if key == Qt.Key.Key_Space and has_spoilers(message.content):
                    self.delegate.reveal_spoilers(message)
                    return True
                if event.matches(QKeySequence.StandardKey.Copy):
                    self.copy_text(message)
                    return True
                if key == Qt.Key.Key_Menu:
                    rect = self.list.visualRect(self.list.currentIndex())
                    self._context_menu(rect.center())
                    return True
        return super().eventFilter(watched, event)  # type: ignore[arg-type]
