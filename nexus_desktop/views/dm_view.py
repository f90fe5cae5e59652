"""One end-to-end encrypted DM or group DM: the decrypted history this app has seen
(with notices for undecryptable messages, key changes and membership changes, never
dropped), a search box that filters it, and a composer that pauses while a verified
contact's key change is unacknowledged. A group's header lists its members; its menu
verifies, adds and removes them. Each message has a menu (right-click, the Menu key or
Shift+F10): reply, edit and delete your own, react, copy; Up in an empty box edits your
last message and Esc cancels a reply or an edit, as in channels."""

from __future__ import annotations

import html
import time
from collections.abc import Callable
from typing import Any

from ..markdown import (
    COPY_CODE_HREF,
    SPOILER_HREF,
    code_blocks,
    plain_tooltip,
    render_markdown,
)
from ..qt import (
    QCursor,
    QEvent,
    QFrame,
    QGuiApplication,
    QHBoxLayout,
    QKeyEvent,
    QLabel,
    QLineEdit,
    QMenu,
    QObject,
    QPlainTextEdit,
    QPoint,
    QPushButton,
    QScrollArea,
    Qt,
    QTextCursor,
    QTimer,
    QToolButton,
    QVBoxLayout,
    QWidget,
    Signal,
)
from ..search import matches
from ..session import AppSession, DMChannel, describe_error
from .group_dialogs import PeoplePicker, add_people_dialog
from .message_view import QUICK_EMOJI
from .verify_dialog import VerifyDialog

BANNER = "Messages are end-to-end encrypted. The relay cannot read them."
NO_ORIGINAL = "original message could not be decrypted"
QUOTE_LENGTH = 80  # characters of the answered message shown above a reply

REASONS = {
    "replay": "a copy of a message already received",
    "tampered": "it was altered on the way",
    "no_session": "no encrypted session with that device",
    "unknown_prekey": "it used a key this device no longer has",
    "bad_key": "it carried an invalid key",
    "too_far_ahead": "too many messages were skipped",
    "malformed": "it was not readable",
    "unknown_session": "no key was shared with this device",
    "missing_key": "the key held here starts after this message",
    "not_for_this_device": "it was sent before this device existed",
}


class DMView(QWidget):
    """Open one DM with ``set_channel``; ``verify_requested(user_id)`` when the user
    asks to compare safety numbers (the view opens the dialog itself by default)."""

    verify_requested = Signal(object)  # user_id
    call_requested = Signal(object)  # channel id: start (or join) its voice call

    def __init__(self, session: AppSession, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._session = session
        self.channel_id: int | None = None
        self._sending = False
        self._dialog: VerifyDialog | None = None
        self._picker: PeoplePicker | None = None
        self.setObjectName("DMView")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)

        header = QHBoxLayout()
        header.setContentsMargins(10, 6, 10, 0)
        self.title = QLabel("")
        self.title.setObjectName("DMTitle")
        self.title.setTextFormat(Qt.TextFormat.PlainText)
        header.addWidget(self.title, 1)
        self.members_button = QToolButton()
        self.members_button.setObjectName("GroupMembersButton")
        self.members_button.setText("Members ▾")
        self.members_button.setAccessibleName("Group members")
        self.members_button.setToolTip("Members: verify, add or remove people")
        self.members_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        self.members_button.setMenu(QMenu(self.members_button))
        self.members_button.menu().aboutToShow.connect(self._fill_members_menu)
        header.addWidget(self.members_button)
        self.search_box = QLineEdit()
        self.search_box.setPlaceholderText("Search this conversation")
        self.search_box.setAccessibleName("Search this conversation")
        self.search_box.setClearButtonEnabled(True)
        self.search_box.textChanged.connect(lambda _text: self.refresh())
        header.addWidget(self.search_box)
        self.verify_button = QPushButton("Verify…")
        self.verify_button.setToolTip("Compare safety numbers")
        self.verify_button.clicked.connect(lambda: self.open_verify_dialog())
        header.addWidget(self.verify_button)
        self.call_button = QPushButton("Call")
        self.call_button.setObjectName("DMCallButton")
        self.call_button.setToolTip("Start a voice call (end-to-end encrypted)")
        self.call_button.setAccessibleName("Start voice call")
        self.call_button.clicked.connect(self._request_call)
        header.addWidget(self.call_button)
        layout.addLayout(header)
        self.members_label = QLabel("")
        self.members_label.setObjectName("GroupMembers")
        self.members_label.setTextFormat(Qt.TextFormat.PlainText)
        self.members_label.setWordWrap(True)
        self.members_label.setContentsMargins(10, 0, 10, 0)
        self.members_label.setAccessibleName("Group members")
        layout.addWidget(self.members_label)

        self.banner = QLabel(f"🔒 {BANNER}")
        self.banner.setObjectName("E2EEBanner")
        self.banner.setWordWrap(True)
        self.banner.setStyleSheet("QLabel#E2EEBanner { padding: 6px 10px; }")
        layout.addWidget(self.banner)

        self.scroll_area = QScrollArea()
        self.scroll_area.setWidgetResizable(True)
        self.scroll_area.setFrameShape(QFrame.Shape.NoFrame)
        self._rows_widget = QWidget()
        self._rows_layout = QVBoxLayout(self._rows_widget)
        self._rows_layout.setContentsMargins(10, 6, 10, 6)
        self._rows_layout.addStretch(1)
        self.scroll_area.setWidget(self._rows_widget)
        layout.addWidget(self.scroll_area, 1)
        self.empty = QLabel("")
        self.empty.setAlignment(Qt.AlignmentFlag.AlignCenter)

        self.key_bar = QFrame()
        self.key_bar.setObjectName("KeyChangeBar")
        self.key_bar.setStyleSheet(
            "QFrame#KeyChangeBar { border: 1px solid #d83c3e; border-radius: 4px; }"
        )
        bar = QHBoxLayout(self.key_bar)
        self.key_notice = QLabel("")
        self.key_notice.setTextFormat(Qt.TextFormat.PlainText)
        self.key_notice.setWordWrap(True)
        bar.addWidget(self.key_notice, 1)
        self.verify_again_button = QPushButton("Compare safety numbers…")
        self.verify_again_button.clicked.connect(lambda: self.open_verify_dialog())
        bar.addWidget(self.verify_again_button)
        self.acknowledge_button = QPushButton("Acknowledge")
        self.acknowledge_button.clicked.connect(self.acknowledge)
        bar.addWidget(self.acknowledge_button)
        self.key_bar.hide()
        layout.addWidget(self.key_bar)

        self.reply_bar = QFrame()
        self.reply_bar.setObjectName("DMReplyBar")
        reply_row = QHBoxLayout(self.reply_bar)
        reply_row.setContentsMargins(10, 2, 10, 2)
        self.reply_label = QLabel("")
        self.reply_label.setTextFormat(Qt.TextFormat.PlainText)
        reply_row.addWidget(self.reply_label, 1)
        cancel = QToolButton()
        cancel.setText("✕")
        cancel.setAccessibleName("Cancel reply or edit")
        cancel.clicked.connect(self.cancel_reply)
        reply_row.addWidget(cancel)
        self.reply_bar.hide()
        layout.addWidget(self.reply_bar)

        composer = QHBoxLayout()
        composer.setContentsMargins(10, 0, 10, 8)
        self.editor = QPlainTextEdit()
        self.editor.setObjectName("DMComposer")
        self.editor.setAccessibleName("Encrypted message")
        self.editor.setFixedHeight(64)
        self.editor.installEventFilter(self)
        composer.addWidget(self.editor, 1)
        self.send_button = QPushButton("Send")
        self.send_button.clicked.connect(self.send)
        composer.addWidget(self.send_button)
        layout.addLayout(composer)
        self.status = QLabel("")
        self.status.setObjectName("DMStatus")
        self.status.setWordWrap(True)
        self.status.setContentsMargins(10, 0, 10, 6)
        layout.addWidget(self.status)

        session.dm_history_changed.connect(self._on_history)
        session.dm_channels_changed.connect(self._update_state)
        session.identity_changed.connect(lambda _change: self._update_state())
        self._row_labels: list[QLabel] = []
        self._row_widgets: list[QWidget] = []
        self._reaction_buttons: dict[str, list[QToolButton]] = {}
        #: The message the box answers, or the one it edits (log entries).
        self.replying_to: dict[str, Any] | None = None
        self.editing: dict[str, Any] | None = None
        self.active_menu: QMenu | None = None
        self._shown: list[dict[str, Any]] = []
        #: Messages whose spoilers the reader revealed (by message id).
        self.revealed: set[str] = set()
        self._update_state()

    # Opening a conversation -----------------------------------------------------------

    def set_channel(self, channel_id: int | None) -> None:
        self.channel_id = channel_id
        self._session.active_dm = channel_id  # type: ignore[attr-defined]
        self.search_box.clear()
        self.status.setText("")
        self.cancel_reply()
        if channel_id is not None:
            self._session.mark_dm_read(channel_id)
            self._session.load_dm_history(channel_id)
        self.refresh()
        self._update_state()

    def _channel(self) -> DMChannel | None:
        return self._session.dm_channel(self.channel_id) if self.channel_id else None

    def is_group(self) -> bool:
        channel = self._channel()
        return channel is not None and channel.is_group

    def _peer(self) -> Any:
        channel = self._session.dm_channel(self.channel_id) if self.channel_id else None
        return channel.peer if channel else None

    def _name_of(self, user_id: int) -> str:
        channel = self._channel()
        if channel is None:
            return str(user_id)
        me = channel.account.user
        for user in [*channel.members, *([me] if me else [])]:
            if user.id == user_id:
                return str(user.global_name or user.username)
        # Someone who left the group: the name the membership lines recorded.
        for entry in reversed(self._session.dm_history(channel.channel_id)):
            if entry.get("user_id") == str(user_id) and entry.get("user_name"):
                return str(entry["user_name"])
        return str(user_id)

    # History ----------------------------------------------------------------------------

    def _on_history(self, channel_id: object) -> None:
        if channel_id == self.channel_id:
            self.refresh()
            if self.isVisible():
                self._session.mark_dm_read(channel_id)  # type: ignore[arg-type]

    def refresh(self) -> None:
        entries = self._session.dm_history(self.channel_id) if self.channel_id else []
        query = self.search_box.text()
        shown = [e for e in entries if matches(e, query)]
        self._shown = shown
        for row in self._row_widgets:
            self._rows_layout.removeWidget(row)
            row.deleteLater()
        self._row_widgets = []
        self._row_labels = []
        self._reaction_buttons = {}
        if not shown:
            who = "the members of this group" if self.is_group() else "the two of you"
            text = (
                f"Nothing in this conversation matches “{html.escape(query)}”."
                if query.strip()
                else f"No messages yet. Say hello — only {who} can read it."
                if self.channel_id
                else ""
            )
            shown_rows = [("empty", text)]
        else:
            shown_rows = [(str(e.get("type")), self._row_html(e)) for e in shown]
        for number, (kind, markup) in enumerate(shown_rows):
            label = QLabel(markup)
            label.setTextFormat(Qt.TextFormat.RichText)
            label.setWordWrap(True)
            label.setOpenExternalLinks(False)
            label.setTextInteractionFlags(
                Qt.TextInteractionFlag.TextSelectableByMouse
                | Qt.TextInteractionFlag.LinksAccessibleByMouse
                | Qt.TextInteractionFlag.LinksAccessibleByKeyboard
            )
            if shown:
                label.linkActivated.connect(
                    lambda href, entry=shown[number]: self.activate_link(entry, href)
                )
            label.setObjectName(f"DMRow_{kind}")
            label.setProperty("dmKind", kind)
            unverified = kind in ("member_added", "member_removed") and not (
                shown and shown[number].get("verified")
            )
            if kind in ("undecryptable", "key_change") or unverified:
                label.setStyleSheet("QLabel { color: #d83c3e; padding: 4px 0; }")
            elif kind in ("key_change_acknowledged", "empty", "member_added", "member_removed"):
                label.setStyleSheet("QLabel { color: gray; padding: 4px 0; }")
            shown_row: QWidget = label
            if shown and kind == "text":
                shown_row = self._message_row(shown[number], label)
            self._rows_layout.insertWidget(self._rows_layout.count() - 1, shown_row)
            self._row_widgets.append(shown_row)
            self._row_labels.append(label)
        QTimer.singleShot(0, self._scroll_to_end)

    def _message_row(self, entry: dict[str, Any], label: QLabel) -> QWidget:
        """A message's row: its text (focusable, with the message menu on right-click,
        the Menu key or Shift+F10) and its reactions, one toggle button per emoji."""
        label.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        label.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        label.customContextMenuRequested.connect(
            lambda pos, e=entry, w=label: self.open_message_menu(e, w.mapToGlobal(pos))
        )
        label.installEventFilter(self)
        label.setProperty("dmEntryId", str(entry.get("id")))
        author = self._name_of(int(entry.get("author_id") or 0))
        label.setAccessibleName(f"Message from {author}")
        label.setAccessibleDescription(str(entry.get("text", ""))[:200])
        reactions = entry.get("reactions")
        if not isinstance(reactions, dict) or not reactions:
            return label
        row = QWidget()
        row.setObjectName("DMMessageRow")
        column = QVBoxLayout(row)
        column.setContentsMargins(0, 0, 0, 0)
        column.setSpacing(2)
        column.addWidget(label)
        bar = QHBoxLayout()
        bar.setContentsMargins(0, 0, 0, 4)
        me = self._my_id()
        buttons = []
        for emoji, users in reactions.items():
            if not isinstance(users, list) or not users:
                continue
            mine = str(me) in users
            button = QToolButton()
            button.setObjectName("DMReaction")
            button.setText(f"{emoji} {len(users)}")
            button.setCheckable(True)
            button.setChecked(mine)
            people = "person" if len(users) == 1 else "people"
            button.setAccessibleName(
                f"{emoji} reaction, {len(users)} {people}"
                + (", including you: press to remove yours" if mine else ": press to add yours")
            )
            button.setToolTip(
                plain_tooltip(", ".join(self._name_of(int(u)) for u in users if str(u).isdigit()))
            )
            button.clicked.connect(
                lambda _=False, e=entry, em=str(emoji): self.toggle_reaction(e, em)
            )
            bar.addWidget(button)
            buttons.append(button)
        bar.addStretch(1)
        column.addLayout(bar)
        self._reaction_buttons[str(entry.get("id"))] = buttons
        return row

    def reaction_buttons(self, message_id: int) -> list[QToolButton]:
        """The reaction buttons shown under a message (emoji and count, checked if yours)."""
        return list(self._reaction_buttons.get(str(message_id), []))

    def row_label(self, message_id: int) -> QLabel | None:
        """The label showing a message, if it is shown."""
        for label, entry in zip(self._row_labels, self._shown, strict=False):
            if entry.get("type") == "text" and str(entry.get("id")) == str(message_id):
                return label
        return None

    def _my_id(self) -> int | None:
        channel = self._channel()
        return channel.account.user.id if channel and channel.account.user else None

    # Message actions --------------------------------------------------------------------

    def message_menu(self, entry: dict[str, Any]) -> QMenu:
        """Reply, Edit and Delete (your own), Add reaction, Copy text."""
        menu = QMenu(self)
        menu.setAccessibleName("Message actions")
        mine = str(entry.get("author_id")) == str(self._my_id())
        can_act = self._can_type()
        reply = menu.addAction("Reply")
        reply.setEnabled(can_act)
        reply.triggered.connect(lambda: self.start_reply(entry))
        if mine:
            edit = menu.addAction("Edit")
            edit.setEnabled(can_act)
            edit.triggered.connect(lambda: self.start_edit(entry))
            delete = menu.addAction("Delete")
            delete.setEnabled(can_act)
            delete.triggered.connect(lambda: self.delete_message(entry))
        react = menu.addMenu("Add reaction")
        react.setEnabled(can_act)
        reactions = entry.get("reactions") if isinstance(entry.get("reactions"), dict) else {}
        for emoji in QUICK_EMOJI:
            users = reactions.get(emoji) if isinstance(reactions, dict) else None
            action = react.addAction(emoji)
            action.setCheckable(True)
            action.setChecked(isinstance(users, list) and str(self._my_id()) in users)
            action.triggered.connect(lambda _=False, e=emoji: self.toggle_reaction(entry, e))
        menu.addSeparator()
        menu.addAction("Copy text").triggered.connect(
            lambda: QGuiApplication.clipboard().setText(str(entry.get("text", "")))
        )
        return menu

    def open_message_menu(self, entry: dict[str, Any], where: QPoint | None = None) -> QMenu:
        menu = self.message_menu(entry)
        self.active_menu = menu
        menu.popup(where if where is not None else QCursor.pos())
        return menu

    def start_reply(self, entry: dict[str, Any]) -> None:
        self.editing = None
        self.replying_to = entry
        author = self._name_of(int(entry.get("author_id") or 0))
        self.reply_label.setText(f"Replying to {author} — Esc to cancel")
        self.reply_bar.show()
        self.editor.setFocus()

    def start_edit(self, entry: dict[str, Any]) -> None:
        self.replying_to = None
        self.editing = entry
        self.reply_label.setText("Editing message — Enter to save, Esc to cancel")
        self.reply_bar.show()
        self.editor.setPlainText(str(entry.get("text", "")))
        self.editor.moveCursor(QTextCursor.MoveOperation.End)
        self.editor.setFocus()

    def cancel_reply(self) -> None:
        """Esc: stop replying or editing (an edit's text is dropped)."""
        if self.editing is not None:
            self.editor.clear()
        self.replying_to = None
        self.editing = None
        self.reply_bar.hide()

    def delete_message(self, entry: dict[str, Any]) -> None:
        if self.channel_id is None:
            return
        if self.editing is not None and self.editing.get("id") == entry.get("id"):
            self.cancel_reply()
        self._session.delete_dm(
            self.channel_id, int(entry["id"]), on_error=self._action_failed("Not deleted")
        )

    def toggle_reaction(self, entry: dict[str, Any], emoji: str) -> None:
        """Add your ``emoji`` to the message, or take it back if it is there."""
        if self.channel_id is None:
            return
        reactions = entry.get("reactions")
        users = reactions.get(emoji) if isinstance(reactions, dict) else None
        mine = isinstance(users, list) and str(self._my_id()) in users
        self._session.react_dm(
            self.channel_id,
            int(entry["id"]),
            emoji,
            not mine,
            on_error=self._action_failed("Reaction not sent"),
        )

    def _action_failed(self, what: str) -> Callable[[Exception], None]:
        def failed(exc: Exception) -> None:
            self.status.setText(f"{what}: {describe_error(exc)}")

        return failed

    def _my_last_message(self) -> dict[str, Any] | None:
        me = str(self._my_id())
        entries = self._session.dm_history(self.channel_id) if self.channel_id else []
        mine = [e for e in entries if e.get("type") == "text" and e.get("author_id") == me]
        return mine[-1] if mine else None

    def changeEvent(self, event: QEvent) -> None:
        super().changeEvent(event)
        # A new theme: the rows' spoiler colours come from it, so render them again.
        if event.type() == QEvent.Type.StyleChange and self.channel_id is not None:
            QTimer.singleShot(0, self.refresh)

    def _scroll_to_end(self) -> None:
        bar = self.scroll_area.verticalScrollBar()
        bar.setValue(bar.maximum())

    def _row_html(self, entry: dict[str, Any]) -> str:
        kind = entry.get("type")
        when = time.strftime("%H:%M", time.localtime(float(entry.get("ts") or 0)))
        if kind == "text":
            name = html.escape(self._name_of(int(entry.get("author_id") or 0)))
            edited = " <span style='color:gray'>(edited)</span>" if entry.get("edited") else ""
            body = render_markdown(
                str(entry.get("text", "")), reveal_spoilers=str(entry.get("id")) in self.revealed
            )
            quote = self._quote_html(entry)
            return f"{quote}<b>{name}</b> <span style='color:gray'>{when}</span>{edited}<br>{body}"
        if kind == "undecryptable":
            name = html.escape(self._name_of(int(entry.get("author_id") or 0)))
            reason = str(entry.get("reason", "malformed"))
            explain = REASONS.get(reason, "")
            return (
                f"⚠ <b>Undecryptable: {html.escape(reason)}</b> — a message from {name}"
                f" at {when} could not be decrypted"
                + (f" ({html.escape(explain)})" if explain else "")
                + "."
            )
        if kind == "key_change":
            name = html.escape(self._name_of(int(entry.get("user_id") or 0)))
            text = f"🔑 <b>{name}'s safety number changed</b> at {when}: a new device or a new key."
            if entry.get("verified"):
                text += (
                    f" You had verified {name}: sending is paused until you compare the new"
                    " safety number or acknowledge the change."
                )
            return text
        if kind in ("member_added", "member_removed"):
            return self._membership_html(entry, when)
        if kind == "key_change_acknowledged":
            name = html.escape(self._name_of(int(entry.get("user_id") or 0)))
            return (
                f"You acknowledged {name}'s new safety number at {when}."
                f" {name} is no longer verified."
            )
        return html.escape(str(entry))

    def _quote_html(self, entry: dict[str, Any]) -> str:
        """The line above a reply: who wrote what it answers, and the start of it."""
        target = str(entry.get("reply_to") or "")
        if not target.isdigit() or self.channel_id is None:
            return ""
        found = next(
            (
                e
                for e in self._session.dm_history(self.channel_id)
                if e.get("type") == "text" and str(e.get("id")) == target
            ),
            None,
        )
        if found is not None:
            author = self._name_of(int(found.get("author_id") or 0))
            text = " ".join(str(found.get("text", "")).split())
            line = f"{author}: {text[:QUOTE_LENGTH]}" + ("…" if len(text) > QUOTE_LENGTH else "")
        else:
            decrypted = self._session.dm_decrypted(self.channel_id, int(target))
            deleted = getattr(decrypted, "deleted", False)
            line = "original message was deleted" if deleted else NO_ORIGINAL
        return f"<span style='color:gray'>↪ {html.escape(line)}</span><br>"

    def _membership_html(self, entry: dict[str, Any], when: str) -> str:
        """ "bob added carol", "bob removed carol", "carol left the group"; a change whose
        signed statement did not verify says so (an add then adds nobody)."""
        channel = self._channel()
        me = channel.account.user.id if channel and channel.account.user else None

        def name(id_key: str, name_key: str) -> str:
            if str(me) == entry.get(id_key):
                return "you"
            return str(entry.get(name_key) or entry.get(id_key))

        actor, user = name("actor_id", "actor_name"), name("user_id", "user_name")
        if entry.get("actor_id") == entry.get("user_id") and entry["type"] == "member_removed":
            line = f"{actor} left the group"
        else:
            verb = "added" if entry["type"] == "member_added" else "removed"
            line = f"{actor} {verb} {user}"
        line = line[:1].upper() + line[1:]
        text = f"{html.escape(line)} <span style='color:gray'>{when}</span>"
        if not entry.get("verified"):
            text = f"⚠ {text} — the change was not signed by a member's known key" + (
                "; nothing is encrypted to them." if entry["type"] == "member_added" else "."
            )
        return text

    def activate_link(self, entry: dict[str, Any], href: str) -> None:
        """A click on a spoiler reveals that message's spoilers; a code block's Copy puts
        the block on the clipboard. Other links stay text in an encrypted conversation."""
        if href == SPOILER_HREF:
            self.revealed.add(str(entry.get("id")))
            self.refresh()
        elif href.startswith(COPY_CODE_HREF):
            blocks = code_blocks(str(entry.get("text", "")))
            number = href.removeprefix(COPY_CODE_HREF)
            if number.isdigit() and int(number) < len(blocks):
                QGuiApplication.clipboard().setText(blocks[int(number)])

    def visible_entries(self) -> list[dict[str, Any]]:
        """The entries shown now (after the search filter), oldest first."""
        return [dict(e) for e in self._shown]

    def row_texts(self) -> list[str]:
        """The rows as plain text (what a screen reader would read)."""
        from ..qt import QTextDocument

        texts = []
        for label in self._row_labels:
            doc = QTextDocument()
            doc.setHtml(label.text())
            texts.append(doc.toPlainText())
        return texts

    # Verification and key changes -------------------------------------------------------

    def blocked(self) -> bool:
        return self.channel_id is not None and self._session.dm_send_blocked(self.channel_id)

    def _update_state(self) -> None:
        channel = self._channel()
        has_channel = channel is not None
        group = channel is not None and channel.is_group
        peer = self._peer()
        self.setEnabled(True)
        name = channel.title if channel is not None else ""
        verified = has_channel and not group and self._session.is_verified(peer.id)
        self.title.setText((f"🔒 {name}" + (" ✓" if verified else "")) if name else "")
        self.title.setToolTip(
            "End-to-end encrypted group" if group else "Verified" if verified else "Not verified"
        )
        self.verify_button.setVisible(not group)
        self.verify_button.setText("Verified ✓" if verified else "Verify…")
        self.verify_button.setEnabled(has_channel)
        self.call_button.setVisible(True)  # group calls go through the relay, encrypted
        self.call_button.setEnabled(has_channel)
        self.members_button.setVisible(group)
        self.members_label.setVisible(group)
        if channel is not None and group:
            self.members_label.setText(self.member_summary())
        left = channel is not None and channel.left
        blocked_users = self._session.blocked_members(self.channel_id) if self.channel_id else []
        blocked = bool(blocked_users)
        self.key_bar.setVisible(blocked)
        if blocked:
            names = ", ".join(str(u.global_name or u.username) for u in blocked_users)
            explanation = (
                f"{names}'s safety number changed since you verified it. Sending is paused"
                " until you compare the new number or acknowledge the change."
            )
            self.key_notice.setText(f"🔑 {explanation}")
            self.editor.setPlaceholderText(explanation)
            self.verify_again_button.setVisible(len(blocked_users) == 1)
        elif left:
            self.editor.setPlaceholderText("You are no longer in this group.")
        else:
            self.editor.setPlaceholderText(
                ("Encrypted message to the group" if group else f"Encrypted message to {name}")
                if has_channel
                else "Open a conversation"
            )
        can_type = self._can_type()
        self.editor.setEnabled(can_type)
        self.send_button.setEnabled(can_type and not self._sending)

    def _can_type(self) -> bool:
        channel = self._channel()
        return channel is not None and not channel.left and not self.blocked()

    def member_summary(self) -> str:
        """The group's members as the header lists them: you first, then by name, the
        owner marked, a ✓ for those you verified (⚠ if their number changed since)."""
        channel = self._channel()
        if channel is None:
            return ""
        blocked = {u.id for u in self._session.blocked_members(channel.channel_id)}

        def label(user_id: int, name: str) -> str:
            marks = " (owner)" if user_id == channel.owner_id else ""
            if user_id in blocked:
                marks += " ⚠"
            elif self._session.is_verified(user_id, channel.account):
                marks += " ✓"
            return name + marks

        people = sorted(channel.members, key=lambda u: (u.global_name or u.username).casefold())
        parts = [label(u.id, str(u.global_name or u.username)) for u in people]
        me = channel.account.user
        if me is not None and not channel.left:
            parts.insert(0, label(me.id, "You"))
        return f"{len(parts)} members: " + ", ".join(parts)

    def _fill_members_menu(self) -> None:
        self.members_menu(self.members_button.menu())

    def members_menu(self, menu: QMenu | None = None) -> QMenu:
        """Each member (verify; remove, for the owner), then "Add people…" and "Leave"."""
        menu = menu if menu is not None else QMenu(self)
        menu.clear()
        channel = self._channel()
        if channel is None or not channel.is_group:
            return menu
        me = channel.account.user.id if channel.account.user else None
        owner = channel.owner_id == me and not channel.left
        for user in sorted(channel.members, key=lambda u: (u.global_name or u.username).casefold()):
            name = str(user.global_name or user.username)
            sub = menu.addMenu(name)
            sub.addAction(f"Verify {name}…").triggered.connect(
                lambda _=False, u=user.id, n=name: self.open_verify_dialog(u, n)
            )
            if owner:
                sub.addAction(f"Remove {name} from the group").triggered.connect(
                    lambda _=False, u=user.id: self.remove_member(u)
                )
        menu.addSeparator()
        add = menu.addAction("Add people…")
        add.setEnabled(not channel.left and len(channel.members) < 9)
        add.triggered.connect(self.open_add_people)
        leave = menu.addAction("Leave group")
        leave.setEnabled(not channel.left and me is not None)
        leave.triggered.connect(lambda: self.remove_member(me) if me is not None else None)
        return menu

    def open_add_people(self) -> PeoplePicker | None:
        channel = self._channel()
        if channel is None or not channel.is_group:
            return None
        picker = add_people_dialog(
            self._session, channel.account, [u.id for u in channel.members], self
        )
        channel_id = channel.channel_id
        picker.accepted.connect(lambda: self.add_members_from(channel_id, picker))
        self._picker = picker
        picker.open()
        return picker

    def add_members_from(self, channel_id: int, picker: PeoplePicker) -> None:
        chosen = picker.chosen()
        if chosen is None:
            return
        for user_id in chosen[1]:
            self._session.add_group_member(channel_id, user_id, on_error=self._member_failed)

    def remove_member(self, user_id: int) -> None:
        """Remove someone (the owner may), or leave when ``user_id`` is your own."""
        if self.channel_id is not None:
            self._session.remove_group_member(
                self.channel_id, user_id, on_error=self._member_failed
            )

    def _member_failed(self, exc: Exception) -> None:
        self.status.setText(f"Membership not changed: {describe_error(exc)}")

    def _request_call(self) -> None:
        if self.channel_id is not None:
            self.call_requested.emit(self.channel_id)

    def acknowledge(self) -> None:
        if self.channel_id is not None:
            self._session.acknowledge_key_change(self.channel_id)
            self._update_state()
            self.refresh()

    def open_verify_dialog(
        self, user_id: int | None = None, name: str | None = None
    ) -> VerifyDialog | None:
        """Compare safety numbers with the DM's contact, or with ``user_id`` (a group
        member; the only one whose number changed when the key bar asks)."""
        channel = self._channel()
        if channel is None:
            return None
        if user_id is None:
            blocked = self._session.blocked_members(channel.channel_id)
            person = blocked[0] if channel.is_group and blocked else channel.peer
            user_id, name = person.id, str(person.global_name or person.username)
        self.verify_requested.emit(user_id)
        dialog = VerifyDialog(
            self._session, user_id, channel.account, name or self._name_of(user_id), self
        )
        dialog.finished.connect(lambda _result: self._update_state())
        self._dialog = dialog
        dialog.open()
        return dialog

    # Sending ----------------------------------------------------------------------------

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() != QEvent.Type.KeyPress:
            return super().eventFilter(watched, event)
        assert isinstance(event, QKeyEvent)
        key = event.key()
        shift = bool(event.modifiers() & Qt.KeyboardModifier.ShiftModifier)
        if watched is self.editor:
            if key in (Qt.Key.Key_Return, Qt.Key.Key_Enter) and not shift:
                self.send()
                return True
            if key == Qt.Key.Key_Escape and (self.replying_to or self.editing):
                self.cancel_reply()
                return True
            if key == Qt.Key.Key_Up and not self.editor.toPlainText() and self._can_type():
                last = self._my_last_message()
                if last is not None:
                    self.start_edit(last)
                    return True
        elif isinstance(watched, QLabel) and (
            key == Qt.Key.Key_Menu or (key == Qt.Key.Key_F10 and shift)
        ):
            entry = next(
                (
                    e
                    for e in self._shown
                    if str(e.get("id")) == str(watched.property("dmEntryId"))
                    and e.get("type") == "text"
                ),
                None,
            )
            if entry is not None:
                self.open_message_menu(entry, watched.mapToGlobal(watched.rect().center()))
                return True
        return super().eventFilter(watched, event)

    def send(self) -> None:
        text = self.editor.toPlainText().strip()
        if not text or self.channel_id is None or self._sending:
            return
        if self.blocked():
            self._update_state()
            return
        channel_id = self.channel_id
        editing = self.editing
        if editing is not None:
            if text != str(editing.get("text", "")):
                self._session.edit_dm(
                    channel_id, int(editing["id"]), text, on_error=self._action_failed("Not edited")
                )
            self.cancel_reply()
            self.editor.clear()
            return
        reply_to = int(self.replying_to["id"]) if self.replying_to else None
        self._sending = True
        self.status.setText("Encrypting and sending…")
        self._update_state()

        def sent(_message_id: int) -> None:
            self._sending = False
            if self.editor.toPlainText().strip() == text:
                self.editor.clear()
                answered = self.replying_to
                if answered is not None and str(answered.get("id")) == str(reply_to):
                    self.cancel_reply()
            self.status.setText("")
            self._update_state()

        def failed(exc: Exception) -> None:
            self._sending = False
            self.status.setText(f"Not sent: {describe_error(exc)}")
            self._update_state()
            if channel_id == self.channel_id:
                self.refresh()

        self._session.send_dm(channel_id, text, on_done=sent, on_error=failed, reply_to=reply_to)
