"""The communities of every account, one row each, for the server rail."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from ..qt import QAbstractListModel, QModelIndex, QObject, QPersistentModelIndex, Qt
from ..session import AppSession
from .channels import ReadStateTracker

Index = QModelIndex | QPersistentModelIndex
ROOT = QModelIndex()  # the invalid parent, shared as a default argument

GuildIdRole = Qt.ItemDataRole.UserRole + 1
InitialsRole = Qt.ItemDataRole.UserRole + 2
UnreadRole = Qt.ItemDataRole.UserRole + 3
MentionRole = Qt.ItemDataRole.UserRole + 4
RelayRole = Qt.ItemDataRole.UserRole + 5


def initials(name: str) -> str:
    """Discord's icon text: the first letter of up to three words ("Book club" → "Bc")."""
    words = [w for w in name.split() if w]
    return "".join(w[0] for w in words[:3]) or "?"


class GuildListModel(QAbstractListModel):
    def __init__(
        self,
        session: AppSession,
        read_states: ReadStateTracker,
        is_muted: Callable[[int], bool] = lambda _channel_id: False,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self._session = session
        self._read_states = read_states
        self._is_muted = is_muted
        self._rows: list[tuple[str, int]] = []  # (relay, guild id)
        self._reload()
        session.guilds_changed.connect(self._on_guilds_changed)
        read_states.changed.connect(self._on_read_state)

    def _current(self) -> list[tuple[str, int]]:
        return [(account.relay_url, guild.id) for account, guild in self._session.all_guilds()]

    def _reload(self) -> None:
        self._rows = self._current()

    def _on_guilds_changed(self) -> None:
        rows = self._current()
        if rows == self._rows:
            # Same communities: a name or role changed; repaint, keep selection as is.
            if rows:
                self.dataChanged.emit(self.index(0), self.index(len(rows) - 1))
            return
        # Communities come and go rarely; the rail re-selects its guild by id.
        self.beginResetModel()
        self._rows = rows
        self.endResetModel()

    def _on_read_state(self, channel_id: int) -> None:
        channel = self._session.channel(channel_id)
        if channel is None or channel.guild_id is None:
            return
        row = self.row_of(channel.guild_id)
        if row >= 0:
            self.dataChanged.emit(self.index(row), self.index(row))

    def row_of(self, guild_id: int) -> int:
        return next((row for row, (_, gid) in enumerate(self._rows) if gid == guild_id), -1)

    def guild_id_at(self, row: int) -> int | None:
        return self._rows[row][1] if 0 <= row < len(self._rows) else None

    def rowCount(self, parent: Index = ROOT) -> int:
        return 0 if parent.isValid() else len(self._rows)

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or index.row() >= len(self._rows):
            return None
        relay, guild_id = self._rows[index.row()]
        guild = self._session.guild(guild_id)
        name = guild.name if guild else "…"
        if role == Qt.ItemDataRole.DisplayRole:
            return name
        if role == Qt.ItemDataRole.ToolTipRole:
            return f"{name}\n{urlsplit(relay).netloc or relay}"
        if role == Qt.ItemDataRole.AccessibleTextRole:
            mentions = self._read_states.guild_mentions(guild_id)
            unread = self._unread(guild_id)
            extra = f", {mentions} mentions" if mentions else (", unread" if unread else "")
            return f"{name}{extra}"
        if role == GuildIdRole:
            return guild_id
        if role == InitialsRole:
            return initials(name)
        if role == UnreadRole:
            return self._unread(guild_id)
        if role == MentionRole:
            return self._read_states.guild_mentions(guild_id)
        if role == RelayRole:
            return relay
        return None

    def _unread(self, guild_id: int) -> bool:
        return self._read_states.guild_unread(guild_id, skip=self._is_muted)
