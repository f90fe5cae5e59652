"""Members of one community, grouped as Discord groups them: by their highest hoisted
role, then "Online", then "Offline" at the bottom. Headers are rows of their own."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from nexus_protocol.models import Member, Role

from ..qt import QAbstractListModel, QColor, QModelIndex, QObject, QPersistentModelIndex, Qt
from ..session import AppSession

Index = QModelIndex | QPersistentModelIndex
ROOT = QModelIndex()  # the invalid parent, shared as a default argument

IsHeaderRole = Qt.ItemDataRole.UserRole + 1
UserIdRole = Qt.ItemDataRole.UserRole + 2
PresenceRole = Qt.ItemDataRole.UserRole + 3
RoleColorRole = Qt.ItemDataRole.UserRole + 4
AvatarRole = Qt.ItemDataRole.UserRole + 5

OFFLINE_STATUSES = frozenset({"offline", "invisible"})


def display_name(member: Member) -> str:
    """nick > global name > username, as Discord shows a member."""
    user = member.user
    if member.nick:
        return member.nick
    if user is None:
        return "?"
    return user.global_name or user.username


@dataclass(frozen=True)
class Row:
    header: bool
    key: tuple[str, int]  # ("group", group id) or ("member", user id)
    text: str
    color: int = 0  # role colour, 0 = none
    status: str = "offline"
    avatar: str | None = None  # the member's avatar hash


def group_members(members: list[Member], roles: list[Role], presence: Any) -> list[Row]:
    """The rows of the list. ``presence(user_id)`` gives "online"/"idle"/"dnd"/"offline"."""
    hoisted = sorted((r for r in roles if r.hoist), key=lambda r: (-r.position, r.id))
    groups: dict[int, list[Row]] = {r.id: [] for r in hoisted}
    online: list[Row] = []
    offline: list[Row] = []
    role_color = {r.id: r.color for r in roles}
    by_position = sorted(roles, key=lambda r: (-r.position, r.id))
    for member in members:
        if member.user is None:
            continue
        status = presence(member.user.id)
        # A member's name takes the colour of their highest coloured role.
        colour = next((r.color for r in by_position if r.color and r.id in member.roles), 0)
        row = Row(
            False,
            ("member", member.user.id),
            display_name(member),
            colour,
            status,
            member.user.avatar,
        )
        if status in OFFLINE_STATUSES:
            offline.append(row)
            continue
        top = next((r for r in hoisted if r.id in member.roles), None)
        (groups[top.id] if top else online).append(row)

    rows: list[Row] = []

    def add(group_id: int, title: str, color: int, items: list[Row]) -> None:
        if not items:
            return
        items.sort(key=lambda r: (r.text.casefold(), r.key[1]))
        rows.append(Row(True, ("group", group_id), f"{title} — {len(items)}", color))
        rows.extend(items)

    for role in hoisted:
        add(role.id, role.name.upper(), role_color.get(role.id, 0), groups[role.id])
    add(-1, "ONLINE", 0, online)
    add(-2, "OFFLINE", 0, offline)
    return rows


class MemberListModel(QAbstractListModel):
    def __init__(self, session: AppSession, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._session = session
        self._guild_id: int | None = None
        self._rows: list[Row] = []
        session.members_changed.connect(self._on_members_changed)
        session.guilds_changed.connect(self._rebuild)  # roles live on the guild
        session.presence_changed.connect(self._on_presence_changed)

    @property
    def guild_id(self) -> int | None:
        return self._guild_id

    def set_guild(self, guild_id: int | None) -> None:
        self.beginResetModel()
        self._guild_id = guild_id
        self._rows = self._compute()
        self.endResetModel()

    def _compute(self) -> list[Row]:
        if self._guild_id is None:
            return []
        guild = self._session.guild(self._guild_id)
        return group_members(
            self._session.members(self._guild_id),
            guild.roles if guild else [],
            self._presence,
        )

    def _presence(self, user_id: int) -> str:
        status = self._session.presence(user_id)
        me = self._session.me(self._guild_id) if self._guild_id else None
        if status == "offline" and me is not None and me.id == user_id:
            # The relay tells others about us, not us: connected means online here.
            account = self._session.account_for_guild(self._guild_id or 0)
            return "online" if account and account.client.online else status
        return status

    def _rebuild(self) -> None:
        rows = self._compute()
        if [r.key for r in rows] == [r.key for r in self._rows]:
            # Same rows in the same places: only names, colours or dots changed.
            self._rows = rows
            if rows:
                self.dataChanged.emit(self.index(0), self.index(len(rows) - 1))
            return
        self.beginResetModel()
        self._rows = rows
        self.endResetModel()

    def _on_members_changed(self, guild_id: object) -> None:
        if guild_id is None or guild_id == self._guild_id:
            self._rebuild()

    def _on_presence_changed(self, user_id: object) -> None:
        row = next((i for i, r in enumerate(self._rows) if r.key == ("member", user_id)), -1)
        if row < 0:
            return
        status = self._presence(int(user_id))  # type: ignore[call-overload]
        was_offline = self._rows[row].status in OFFLINE_STATUSES
        if was_offline != (status in OFFLINE_STATUSES):
            self._rebuild()  # moves between groups
            return
        self._rows[row] = replace(self._rows[row], status=status)
        self.dataChanged.emit(self.index(row), self.index(row))

    # Model ---------------------------------------------------------------------------------

    def rowCount(self, parent: Index = ROOT) -> int:
        return 0 if parent.isValid() else len(self._rows)

    def flags(self, index: Index) -> Qt.ItemFlag:
        if not index.isValid():
            return Qt.ItemFlag.NoItemFlags
        if self._rows[index.row()].header:
            return Qt.ItemFlag.ItemIsEnabled
        return Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or index.row() >= len(self._rows):
            return None
        row = self._rows[index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            return row.text
        if role == Qt.ItemDataRole.AccessibleTextRole:
            return row.text if row.header else f"{row.text}, {row.status}"
        if role == IsHeaderRole:
            return row.header
        if role == UserIdRole:
            return None if row.header else row.key[1]
        if role == PresenceRole:
            return row.status
        if role == RoleColorRole:
            return QColor(f"#{row.color:06x}") if row.color else None
        if role == AvatarRole:
            return None if row.header else row.avatar
        return None

    def row_of_user(self, user_id: int) -> int:
        """The row showing ``user_id``, or -1."""
        return next((i for i, r in enumerate(self._rows) if r.key == ("member", user_id)), -1)

    def rows(self) -> list[tuple[bool, str]]:
        """(is header, text) for every row: what the list shows."""
        return [(r.header, r.text) for r in self._rows]
