"""The Members page: members with their roles; kick, ban (with a reason and how much
of their recent history to delete) and the bans list with unban."""

from __future__ import annotations

from typing import Any

from nexus_protocol.models import Ban, Member
from nexus_protocol.permissions import Permissions

from ..qt import (
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QLineEdit,
    QPushButton,
    Qt,
    QTreeWidget,
    QTreeWidgetItem,
    QWidget,
)
from ..session import AppSession
from .guild_page import GuildPage

DELETE_WINDOWS = [
    ("Don't delete any", 0),
    ("Previous hour", 3600),
    ("Previous 6 hours", 21600),
    ("Previous 12 hours", 43200),
    ("Previous 24 hours", 86400),
    ("Previous 3 days", 259200),
    ("Previous 7 days", 604800),
]


def member_name(member: Member) -> str:
    user = member.user
    if user is None:
        return "?"
    return member.nick or user.global_name or user.username


class MembersPage(GuildPage):
    title = "Members"

    def __init__(self, session: AppSession, guild_id: int, parent: QWidget | None = None) -> None:
        super().__init__(session, guild_id, parent)
        self.table = QTreeWidget()
        self.table.setHeaderLabels(["Member", "Username", "Roles"])
        self.table.setRootIsDecorated(False)
        self.table.setAccessibleName("Members")
        self.table.currentItemChanged.connect(lambda *_: self._update_enabled())
        self.reason = QLineEdit()
        self.reason.setAccessibleName("Reason")
        self.reason.setMaxLength(512)
        self.reason.setPlaceholderText("Shown in the audit log")
        self.delete_window = QComboBox()
        self.delete_window.setAccessibleName("Delete message history")
        for text, seconds in DELETE_WINDOWS:
            self.delete_window.addItem(text, seconds)
        self.kick_button = QPushButton("Kick")
        self.kick_button.setAccessibleName("Kick member")
        self.kick_button.setProperty("danger", True)
        self.kick_button.clicked.connect(self._kick)
        self.ban_button = QPushButton("Ban")
        self.ban_button.setAccessibleName("Ban member")
        self.ban_button.setProperty("danger", True)
        self.ban_button.clicked.connect(self._ban)
        form = QFormLayout()
        form.addRow("Reason", self.reason)
        form.addRow("Delete messages", self.delete_window)
        actions = QHBoxLayout()
        actions.addWidget(self.kick_button)
        actions.addWidget(self.ban_button)
        form.addRow(actions)

        self.bans = QTreeWidget()
        self.bans.setHeaderLabels(["Banned user", "Reason"])
        self.bans.setRootIsDecorated(False)
        self.bans.setAccessibleName("Bans")
        self.bans.currentItemChanged.connect(lambda *_: self._update_enabled())
        self.unban_button = QPushButton("Unban")
        self.unban_button.setAccessibleName("Unban user")
        self.unban_button.clicked.connect(self._unban)
        self.layout_.addWidget(self.table, 2)
        self.layout_.addLayout(form)
        self.layout_.addWidget(self.bans, 1)
        self.layout_.addWidget(self.unban_button)
        self.layout_.addWidget(self.status)
        self.refresh()

    def refresh(self) -> None:
        guild = self.guild
        role_names = {r.id: r.name for r in guild.roles} if guild else {}
        chosen = self.selected_member()
        self.table.clear()
        members = sorted(self.session.members(self.guild_id), key=member_name)
        for member in members:
            if member.user is None:
                continue
            roles = ", ".join(role_names.get(r, "?") for r in member.roles)
            item = QTreeWidgetItem([member_name(member), member.user.username, roles])
            item.setData(0, Qt.ItemDataRole.UserRole, member.user.id)
            self.table.addTopLevelItem(item)
            if member.user.id == chosen:
                self.table.setCurrentItem(item)
        self._update_enabled()

    def load_bans(self) -> None:
        if not self.allowed & Permissions.BAN_MEMBERS:
            return

        def loaded(data: Any) -> None:
            self.bans.clear()
            for ban in (Ban.model_validate(b) for b in data):
                item = QTreeWidgetItem([ban.user.username, ban.reason or ""])
                item.setData(0, Qt.ItemDataRole.UserRole, ban.user.id)
                self.bans.addTopLevelItem(item)
            self._update_enabled()

        self.run(
            self.request("GET", f"/guilds/{self.guild_id}/bans"),
            [],
            loaded,
            busy_text="Loading bans…",
            done_text="",
        )

    def showEvent(self, event: Any) -> None:
        super().showEvent(event)
        self.load_bans()

    def select_member(self, user_id: int) -> None:
        for index in range(self.table.topLevelItemCount()):
            item = self.table.topLevelItem(index)
            if item is not None and item.data(0, Qt.ItemDataRole.UserRole) == user_id:
                self.table.setCurrentItem(item)

    def selected_member(self) -> int | None:
        item = self.table.currentItem()
        value = item.data(0, Qt.ItemDataRole.UserRole) if item else None
        return value if isinstance(value, int) else None

    def set_allowed(self, permissions: int) -> None:
        super().set_allowed(permissions)
        self._update_enabled()

    def _update_enabled(self) -> None:
        chosen = self.selected_member()
        guild = self.guild
        # Nobody can kick or ban the owner, nor themselves from here.
        me = self.session.me(self.guild_id)
        target_ok = (
            chosen is not None
            and guild is not None
            and chosen != guild.owner_id
            and (me is None or chosen != me.id)
        )
        self.kick_button.setEnabled(target_ok and bool(self.allowed & Permissions.KICK_MEMBERS))
        may_ban = bool(self.allowed & Permissions.BAN_MEMBERS)
        self.ban_button.setEnabled(target_ok and may_ban)
        self.unban_button.setEnabled(may_ban and self.bans.currentItem() is not None)

    def _reason(self) -> str | None:
        return self.reason.text().strip() or None

    def _kick(self) -> None:
        user_id = self.selected_member()
        item = self.table.currentItem()
        if user_id is None or item is None:
            return
        if not self.confirm(self, f"Kick {item.text(0)} from the community?"):
            return
        self.run(
            self.request(
                "DELETE", f"/guilds/{self.guild_id}/members/{user_id}", reason=self._reason()
            ),
            [self.kick_button],
            busy_text="Kicking…",
            done_text=f"Kicked {item.text(0)}.",
        )

    def _ban(self) -> None:
        user_id = self.selected_member()
        item = self.table.currentItem()
        if user_id is None or item is None:
            return
        if not self.confirm(self, f"Ban {item.text(0)}? They cannot rejoin until unbanned."):
            return
        body: dict[str, Any] = {"delete_message_seconds": self.delete_window.currentData()}
        if self._reason():
            body["reason"] = self._reason()
        self.run(
            self.request(
                "PUT", f"/guilds/{self.guild_id}/bans/{user_id}", body, reason=self._reason()
            ),
            [self.ban_button],
            lambda _: self.load_bans(),
            busy_text="Banning…",
            done_text=f"Banned {item.text(0)}.",
        )

    def _unban(self) -> None:
        item = self.bans.currentItem()
        user_id = item.data(0, Qt.ItemDataRole.UserRole) if item else None
        if user_id is None:
            return
        self.run(
            self.request("DELETE", f"/guilds/{self.guild_id}/bans/{user_id}"),
            [self.unban_button],
            lambda _: self.load_bans(),
            busy_text="Unbanning…",
            done_text="Unbanned.",
        )
