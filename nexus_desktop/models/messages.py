"""One channel's messages as a Qt list model: history oldest → newest, then the outbox
items not yet delivered (pending or failed).

Built for huge histories: the model holds a *window* of at most ``WINDOW`` messages
(Qt's list view relayouts every row on show and on each append or corrected height,
calling the delegate's Python ``sizeHint`` per row: ~5 µs a row, so 100,000 rows cost
hundreds of milliseconds per change and 1,000 about 5 ms), changes rows with
insert/remove/dataChanged and never resets except when the channel changes, and finds
rows by bisecting the sorted snowflake ids. Scrolling back past the window's first row
loads older pages into it (and drops as many of the newest rows).
"""

from __future__ import annotations

import gc
from bisect import bisect_left
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from nexus_client.outbox import PendingMessage
from nexus_protocol.models import Message

from ..qt import QAbstractListModel, QModelIndex, QObject, QPersistentModelIndex, Qt, QTimer
from ..session import AppSession

__all__ = ["GROUP_SECONDS", "WINDOW", "MessageListModel", "Roles"]

WINDOW = 1000
GROUP_SECONDS = 7 * 60

Index = QModelIndex | QPersistentModelIndex
Row = Message | PendingMessage


class Roles:
    MESSAGE = int(Qt.ItemDataRole.UserRole) + 1  # Message or PendingMessage
    GROUPED = MESSAGE + 1  # same author as the row above, within 7 minutes, same day
    DAY_SEPARATOR = MESSAGE + 2  # a date line goes above this row
    NEW_DIVIDER = MESSAGE + 3  # the "new messages" line goes above this row
    STATE = MESSAGE + 4  # "sent" | "pending" | "sending" | "failed"
    KEY = MESSAGE + 5  # a stable id for caches: message id, or -local_id when unsent


def _when(row: Row) -> datetime:
    if isinstance(row, Message):
        return row.timestamp
    return datetime.fromtimestamp(row.created_at, tz=UTC)


class MessageListModel(QAbstractListModel):
    def __init__(self, session: AppSession | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.channel_id: int | None = None
        self.me: int | None = None
        self.last_read: int | None = None
        self._messages: list[Message] = []
        self._ids: list[int] = []
        self._pending: list[PendingMessage] = []
        #: False once scrolling back pushed the newest messages out of the window.
        self.at_present = True
        #: True while the window shows a stretch of the past fetched around one message
        #: (a search hit): older pages then come from the relay, not from the cache.
        self.detached = False
        # The outbox signals a delivery but not a refusal: while unsent rows are shown,
        # re-read their states now and then so a failure turns into Retry/Discard.
        self._outbox_poll = QTimer(self)
        self._outbox_poll.setInterval(700)
        self._outbox_poll.timeout.connect(self._poll_outbox)
        if session is not None:
            session.message_created.connect(self._on_created)
            session.message_updated.connect(self._on_updated)
            session.message_deleted.connect(self._on_deleted)
            session.reactions_changed.connect(self._on_reactions)
            session.outbox_changed.connect(self._on_outbox)
            session.history_loaded.connect(self._on_history)

    # Loading -------------------------------------------------------------------------

    def set_channel(self, channel_id: int | None) -> None:
        """Show ``channel_id``: what the session knows of it, and its outbox."""
        self.channel_id = channel_id
        session = self.session
        if session is None or channel_id is None:
            self.load([], [])
            return
        me = session.me(channel_id)
        self.me = me.id if me else None
        self.last_read = session.last_read_message_id(channel_id)
        self.load(session.messages(channel_id), session.pending(channel_id))

    def load(self, messages: Sequence[Message], pending: Sequence[PendingMessage] = ()) -> None:
        """Replace every row (one reset); keep the newest ``WINDOW`` messages."""
        self.beginResetModel()
        ordered = sorted(messages, key=lambda m: m.id)[-WINDOW:]
        self._messages = ordered
        self._ids = [m.id for m in ordered]
        self._pending = list(pending)
        self.at_present = True
        self.detached = False
        self.endResetModel()
        if any(p.state != "failed" for p in self._pending):
            self._outbox_poll.start()
        # Move what exists now out of the collector's sight: otherwise every later full
        # collection crawls the thousands of message models (~36 ms per 100k).
        gc.freeze()

    def load_window(self, messages: Sequence[Message]) -> None:
        """Show a stretch of the past (one reset): the window is cut off from the
        present, without live messages or the outbox, until "jump to present"."""
        self.beginResetModel()
        ordered = sorted({m.id: m for m in messages}.values(), key=lambda m: m.id)[:WINDOW]
        self._messages = ordered
        self._ids = [m.id for m in ordered]
        self._pending = []
        self.at_present = False
        self.detached = True
        self.endResetModel()

    def extend_window(self, newer: Sequence[Message], present: Sequence[Message] = ()) -> int:
        """Add a page of newer messages below a stretch of the past (dropping as many of
        its oldest rows past ``WINDOW``); with ``present`` (the newest known messages,
        once the page reached them) the window is live again. Returns how many rows
        were added."""
        newest = self._ids[-1] if self._ids else 0
        fresh = {m.id: m for m in [*newer, *present] if m.id > newest}
        added = sorted(fresh.values(), key=lambda m: m.id)
        if added:
            base = len(self._messages)
            self.beginInsertRows(QModelIndex(), base, base + len(added) - 1)
            self._messages.extend(added)
            self._ids.extend(m.id for m in added)
            self.endInsertRows()
            self._refresh(base)
            extra = len(self._messages) - WINDOW
            if extra > 0:
                self.beginRemoveRows(QModelIndex(), 0, extra - 1)
                del self._messages[:extra]
                del self._ids[:extra]
                self.endRemoveRows()
                self._refresh(0)
        if present:
            self.at_present = True
            self.detached = False
        return len(added)

    # Queries ---------------------------------------------------------------------------

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008 - Qt's default
        return 0 if parent.isValid() else len(self._messages) + len(self._pending)

    def item(self, row: int) -> Row | None:
        if 0 <= row < len(self._messages):
            return self._messages[row]
        pending = row - len(self._messages)
        return self._pending[pending] if 0 <= pending < len(self._pending) else None

    def row_of(self, message_id: int) -> int | None:
        position = bisect_left(self._ids, message_id)
        if position < len(self._ids) and self._ids[position] == message_id:
            return position
        return None

    def message(self, message_id: int) -> Message | None:
        row = self.row_of(message_id)
        return None if row is None else self._messages[row]

    def oldest_id(self) -> int | None:
        return self._ids[0] if self._ids else None

    def newest_message(self) -> Message | None:
        return self._messages[-1] if self._messages else None

    def messages(self) -> list[Message]:
        return list(self._messages)

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        row = index.row()
        item = self.item(row)
        if item is None:
            return None
        if role == Roles.MESSAGE:
            return item
        if role == Qt.ItemDataRole.DisplayRole:
            return item.content
        if role == Roles.KEY:
            return item.id if isinstance(item, Message) else -item.local_id
        if role == Roles.STATE:
            return "sent" if isinstance(item, Message) else item.state
        if role == Roles.DAY_SEPARATOR:
            return self._day_changes(row)
        if role == Roles.GROUPED:
            return self._grouped(row)
        if role == Roles.NEW_DIVIDER:
            return self._first_unread(row)
        return None

    def row_flags(self, row: int) -> tuple[bool, bool, bool]:
        """(day separator above, "new" divider above, grouped with the row above) of
        ``row`` in one go: what the delegate lays a row out by, without a round trip
        through ``data()`` per role."""
        day = self._day_changes(row)
        divider = self._first_unread(row)
        if day or divider:
            return day, divider, False
        item, previous = self.item(row), self.item(row - 1)
        if item is None or previous is None:
            return day, divider, False
        if isinstance(item, Message) and item.message_reference is not None:
            return day, divider, False
        seconds = (_when(item) - _when(previous)).total_seconds()
        grouped = self._author(item) == self._author(previous) and 0 <= seconds <= GROUP_SECONDS
        return day, divider, grouped

    def _author(self, item: Row) -> int | None:
        return item.author.id if isinstance(item, Message) else self.me

    def _day_changes(self, row: int) -> bool:
        item, previous = self.item(row), self.item(row - 1)
        if item is None:
            return False
        if previous is None:
            return True
        return _when(item).astimezone().date() != _when(previous).astimezone().date()

    def _grouped(self, row: int) -> bool:
        item, previous = self.item(row), self.item(row - 1)
        if item is None or previous is None or self._day_changes(row):
            return False
        if isinstance(item, Message) and item.message_reference is not None:
            return False  # a reply always shows its header and the replied-to line
        if self._first_unread(row):
            return False
        seconds = (_when(item) - _when(previous)).total_seconds()
        return self._author(item) == self._author(previous) and 0 <= seconds <= GROUP_SECONDS

    def _first_unread(self, row: int) -> bool:
        if self.last_read is None or row >= len(self._messages):
            return False
        message = self._messages[row]
        if message.id <= self.last_read or message.author.id == self.me:
            return False
        return row == 0 or self._messages[row - 1].id <= self.last_read

    # Changes ---------------------------------------------------------------------------

    def append(self, message: Message) -> None:
        """Add (or, if known, update) one message in id order; trims the window."""
        if self.row_of(message.id) is not None:
            self.update(message)
            return
        position = bisect_left(self._ids, message.id)
        if position == 0 and self._ids and len(self._ids) >= WINDOW:
            return  # older than the window holds
        if position == len(self._ids) and not self.at_present:
            return  # the window is further back; "jump to present" reloads
        self.beginInsertRows(QModelIndex(), position, position)
        self._messages.insert(position, message)
        self._ids.insert(position, message.id)
        self.endInsertRows()
        self._refresh(position + 1)  # the next row's grouping may change
        if len(self._messages) > WINDOW:
            extra = len(self._messages) - WINDOW
            self.beginRemoveRows(QModelIndex(), 0, extra - 1)
            del self._messages[:extra]
            del self._ids[:extra]
            self.endRemoveRows()
            self._refresh(0)  # the new first row now shows its date line

    def prepend(self, messages: Iterable[Message]) -> int:
        """Add older messages above the first row; returns how many were added. A full
        window drops as many of its newest rows (and is then no longer at present)."""
        oldest = self._ids[0] if self._ids else None
        older = sorted(
            (m for m in messages if oldest is None or m.id < oldest), key=lambda m: m.id
        )[-WINDOW:]
        if not older:
            return 0
        self.beginInsertRows(QModelIndex(), 0, len(older) - 1)
        self._messages[:0] = older
        self._ids[:0] = [m.id for m in older]
        self.endInsertRows()
        self._refresh(len(older))
        extra = len(self._messages) - WINDOW
        if extra > 0:
            first = len(self._messages) - extra
            self.beginRemoveRows(QModelIndex(), first, first + len(self._pending) + extra - 1)
            del self._messages[first:]
            del self._ids[first:]
            self._pending = []
            self.endRemoveRows()
            self.at_present = False
        return len(older)

    def update(self, message: Message) -> None:
        row = self.row_of(message.id)
        if row is None:
            return
        self._messages[row] = message
        self._refresh(row)

    def remove(self, message_id: int) -> None:
        row = self.row_of(message_id)
        if row is None:
            return
        self.beginRemoveRows(QModelIndex(), row, row)
        del self._messages[row]
        del self._ids[row]
        self.endRemoveRows()
        self._refresh(row)

    def set_pending(self, pending: Sequence[PendingMessage]) -> None:
        """Replace the outbox rows at the bottom."""
        if not self.at_present:
            return
        if any(p.state != "failed" for p in pending):
            self._outbox_poll.start()
        else:
            self._outbox_poll.stop()
        if list(pending) == self._pending:
            return
        base = len(self._messages)
        if self._pending:
            self.beginRemoveRows(QModelIndex(), base, base + len(self._pending) - 1)
            self._pending = []
            self.endRemoveRows()
        if pending:
            self.beginInsertRows(QModelIndex(), base, base + len(pending) - 1)
            self._pending = list(pending)
            self.endInsertRows()

    def _refresh(self, row: int) -> None:
        if 0 <= row < self.rowCount():
            index = self.index(row)
            self.dataChanged.emit(index, index)

    # Session signals -------------------------------------------------------------------

    def _on_created(self, message: Message) -> None:
        if message.channel_id == self.channel_id:
            self.append(message)
            if self.session is not None and self.channel_id is not None:
                self.set_pending(self.session.pending(self.channel_id))

    def _on_updated(self, message: Message) -> None:
        if message.channel_id == self.channel_id and self.session is not None:
            # MESSAGE_UPDATE can be partial; the cache holds the merged message.
            merged = self.session.message(message.channel_id, message.id)
            self.update(merged or message)

    def _on_deleted(self, channel_id: int, message_id: int) -> None:
        if channel_id == self.channel_id:
            self.remove(message_id)

    def _on_reactions(self, channel_id: int, message_id: int) -> None:
        if channel_id == self.channel_id and self.session is not None:
            message = self.session.message(channel_id, message_id)
            if message is not None:
                self.update(message)

    def _on_outbox(self, channel_id: int) -> None:
        if channel_id == self.channel_id and self.session is not None:
            self.set_pending(self.session.pending(channel_id))

    def _poll_outbox(self) -> None:
        if self.session is None or self.channel_id is None:
            self._outbox_poll.stop()
            return
        self.set_pending(self.session.pending(self.channel_id))

    def _on_history(self, channel_id: int) -> None:
        if channel_id != self.channel_id or self.session is None or self.detached:
            return
        oldest = self.oldest_id()
        if oldest is None:
            self.load(self.session.messages(channel_id), self.session.pending(channel_id))
        else:
            self.prepend(self.session.messages_before(channel_id, oldest, limit=100))
