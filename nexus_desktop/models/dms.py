"""The DM list's rows: one per encrypted conversation (a DM or a group DM), most recent
first."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..qt import QAbstractListModel, QModelIndex, QObject, QPersistentModelIndex, Qt
from ..session import AppSession

Index = QModelIndex | QPersistentModelIndex
ROOT = QModelIndex()

ChannelIdRole = Qt.ItemDataRole.UserRole + 1
UnreadRole = Qt.ItemDataRole.UserRole + 2
VerifiedRole = Qt.ItemDataRole.UserRole + 3
BlockedRole = Qt.ItemDataRole.UserRole + 4
PeerIdRole = Qt.ItemDataRole.UserRole + 5
EncryptedRole = Qt.ItemDataRole.UserRole + 6
GroupRole = Qt.ItemDataRole.UserRole + 7

LOCK = "🔒"


@dataclass(frozen=True)
class DMRow:
    channel_id: int
    peer_id: int
    name: str
    unread: bool
    verified: bool
    blocked: bool
    is_group: bool = False
    member_count: int = 2  # you included


class DMListModel(QAbstractListModel):
    def __init__(self, session: AppSession, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._session = session
        self._rows: list[DMRow] = []
        session.dm_channels_changed.connect(self.refresh)
        self.refresh()

    def refresh(self) -> None:
        session = self._session
        rows = []
        for channel in session.dm_channels():
            peer = channel.peer
            rows.append(
                DMRow(
                    channel_id=channel.channel_id,
                    peer_id=peer.id,
                    name=channel.title,
                    unread=session.dm_unread(channel.channel_id),
                    verified=not channel.is_group and session.is_verified(peer.id, channel.account),
                    blocked=session.dm_send_blocked(channel.channel_id),
                    is_group=channel.is_group,
                    member_count=len(channel.members) + (0 if channel.left else 1),
                )
            )
        if rows == self._rows:
            return
        if [r.channel_id for r in rows] == [r.channel_id for r in self._rows]:
            self._rows = rows
            if rows:
                self.dataChanged.emit(self.index(0), self.index(len(rows) - 1))
            return
        self.beginResetModel()
        self._rows = rows
        self.endResetModel()

    def rows(self) -> list[DMRow]:
        return list(self._rows)

    def row_of(self, channel_id: int) -> int | None:
        return next((i for i, r in enumerate(self._rows) if r.channel_id == channel_id), None)

    def rowCount(self, parent: Index = ROOT) -> int:
        return 0 if parent.isValid() else len(self._rows)

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self._rows):
            return None
        row = self._rows[index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            return row.name
        if role == Qt.ItemDataRole.ToolTipRole:
            state = (
                "safety number changed"
                if row.blocked
                else "verified"
                if row.verified
                else "not verified"
            )
            if row.is_group:
                changed = ", a member's safety number changed" if row.blocked else ""
                return f"{row.name} — {row.member_count} members, end-to-end encrypted{changed}"
            return f"{row.name} — end-to-end encrypted, {state}"
        if role == Qt.ItemDataRole.AccessibleTextRole:
            unread = ", unread" if row.unread else ""
            if row.is_group:
                return f"Encrypted group with {row.name}{unread}"
            return f"Encrypted conversation with {row.name}{unread}"
        return {
            ChannelIdRole: row.channel_id,
            UnreadRole: row.unread,
            VerifiedRole: row.verified,
            BlockedRole: row.blocked,
            PeerIdRole: row.peer_id,
            EncryptedRole: True,
            GroupRole: row.is_group,
        }.get(role)
