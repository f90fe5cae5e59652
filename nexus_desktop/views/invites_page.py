"""The Invites page: the community's invites with uses and expiry; create one with a
lifetime and a use limit, copy its link, revoke it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from nexus_protocol.models import ChannelType, Invite
from nexus_protocol.permissions import Permissions

from ..qt import (
    QComboBox,
    QFormLayout,
    QGuiApplication,
    QHBoxLayout,
    QPushButton,
    Qt,
    QTreeWidget,
    QTreeWidgetItem,
    QWidget,
)
from ..session import AppSession
from .guild_page import GuildPage

MAX_AGES = [
    ("30 minutes", 1800),
    ("1 hour", 3600),
    ("6 hours", 21600),
    ("12 hours", 43200),
    ("1 day", 86400),
    ("7 days", 604800),
    ("Never", 0),
]
MAX_USES = [("No limit", 0), ("1 use", 1), ("5 uses", 5), ("10 uses", 10), ("25 uses", 25),
            ("50 uses", 50), ("100 uses", 100)]  # fmt: skip


def describe_expiry(invite: Invite, now: datetime | None = None) -> str:
    if invite.expires_at is None:
        return "never"
    expires = invite.expires_at
    if expires.tzinfo is None:  # the relay speaks UTC even when it omits the offset
        expires = expires.replace(tzinfo=UTC)
    left = expires - (now or datetime.now(UTC))
    if left.total_seconds() <= 0:
        return "expired"
    hours = int(left.total_seconds() // 3600)
    return f"in {hours // 24} d {hours % 24} h" if hours >= 24 else f"in {hours} h"


class InvitesPage(GuildPage):
    title = "Invites"

    def __init__(self, session: AppSession, guild_id: int, parent: QWidget | None = None) -> None:
        super().__init__(session, guild_id, parent)
        self.invites: list[Invite] = []
        self.table = QTreeWidget()
        self.table.setHeaderLabels(["Code", "Channel", "Inviter", "Uses", "Expires"])
        self.table.setRootIsDecorated(False)
        self.table.setAccessibleName("Invites")
        self.channel = QComboBox()
        self.channel.setAccessibleName("Invite channel")
        self.max_age = QComboBox()
        self.max_age.setAccessibleName("Expire after")
        for text, seconds in MAX_AGES:
            self.max_age.addItem(text, seconds)
        self.max_age.setCurrentIndex(4)
        self.max_uses = QComboBox()
        self.max_uses.setAccessibleName("Maximum uses")
        for text, uses in MAX_USES:
            self.max_uses.addItem(text, uses)
        self.create_button = QPushButton("Create invite")
        self.create_button.setAccessibleName("Create invite")
        self.create_button.clicked.connect(self._create)
        self.copy_button = QPushButton("Copy link")
        self.copy_button.setAccessibleName("Copy invite link")
        self.copy_button.clicked.connect(self._copy)
        self.revoke_button = QPushButton("Revoke")
        self.revoke_button.setAccessibleName("Revoke invite")
        self.revoke_button.setProperty("danger", True)
        self.revoke_button.clicked.connect(self._revoke)
        self.refresh_button = QPushButton("Refresh")
        self.refresh_button.setAccessibleName("Refresh invites")
        self.refresh_button.setProperty("secondary", True)
        self.refresh_button.clicked.connect(self.refresh)
        form = QFormLayout()
        form.addRow("Channel", self.channel)
        form.addRow("Expire after", self.max_age)
        form.addRow("Max uses", self.max_uses)
        form.addRow(self.create_button)
        actions = QHBoxLayout()
        for button in (self.copy_button, self.revoke_button, self.refresh_button):
            actions.addWidget(button)
        self.layout_.addWidget(self.table, 1)
        self.layout_.addLayout(actions)
        self.layout_.addLayout(form)
        self.layout_.addWidget(self.status)

    def invite_link(self, code: str) -> str:
        return f"{self.account.relay_url}/invite/{code}"

    def refresh(self) -> None:
        chosen = self.channel.currentData()
        self.channel.clear()
        for channel in self.session.channels(self.guild_id):
            if channel.type in (ChannelType.GUILD_TEXT, ChannelType.GUILD_VOICE):
                self.channel.addItem(f"#{channel.name}", channel.id)
        self.channel.setCurrentIndex(max(self.channel.findData(chosen), 0))
        if not self.allowed & Permissions.MANAGE_GUILD:
            return  # listing needs MANAGE_GUILD; creating only CREATE_INSTANT_INVITE

        def loaded(data: Any) -> None:
            self.invites = [Invite.model_validate(i) for i in data]
            self._fill()

        self.run(
            self.request("GET", f"/guilds/{self.guild_id}/invites"),
            [self.refresh_button],
            loaded,
            busy_text="Loading…",
            done_text="",
        )

    def _fill(self) -> None:
        self.table.clear()
        for invite in self.invites:
            uses = f"{invite.uses or 0}" + (f" / {invite.max_uses}" if invite.max_uses else "")
            inviter = invite.inviter.username if invite.inviter else ""
            channel = f"#{invite.channel.name}" if invite.channel else ""
            item = QTreeWidgetItem([invite.code, channel, inviter, uses, describe_expiry(invite)])
            item.setData(0, Qt.ItemDataRole.UserRole, invite.code)
            self.table.addTopLevelItem(item)
        self._update_enabled()

    def selected_code(self) -> str | None:
        item = self.table.currentItem()
        code = item.data(0, Qt.ItemDataRole.UserRole) if item else None
        return code if isinstance(code, str) else None

    def set_allowed(self, permissions: int) -> None:
        super().set_allowed(permissions)
        self._update_enabled()

    def _update_enabled(self) -> None:
        self.create_button.setEnabled(bool(self.allowed & Permissions.CREATE_INSTANT_INVITE))
        self.revoke_button.setEnabled(bool(self.allowed & Permissions.MANAGE_GUILD))
        self.refresh_button.setEnabled(bool(self.allowed & Permissions.MANAGE_GUILD))

    def _create(self) -> None:
        channel_id = self.channel.currentData()
        if channel_id is None:
            return
        client = self.account.client

        def created(invite: Invite) -> None:
            self.invites.insert(0, invite)
            self._fill()
            first = self.table.topLevelItem(0)
            if first is not None:
                self.table.setCurrentItem(first)
            self.status.ok(f"Created {self.invite_link(invite.code)}")

        self.run(
            client.create_invite(
                channel_id,
                max_age=self.max_age.currentData(),
                max_uses=self.max_uses.currentData(),
            ),
            [self.create_button],
            created,
            busy_text="Creating…",
        )

    def _copy(self) -> None:
        code = self.selected_code()
        clipboard = QGuiApplication.clipboard()
        if code is not None and clipboard is not None:
            clipboard.setText(self.invite_link(code))
            self.status.ok("Link copied.")

    def _revoke(self) -> None:
        code = self.selected_code()
        if code is None or not self.confirm(self, f"Revoke the invite {code}?"):
            return

        def revoked(_: Any) -> None:
            self.invites = [i for i in self.invites if i.code != code]
            self._fill()

        self.run(
            self.request("DELETE", f"/invites/{code}"),
            [self.revoke_button],
            revoked,
            busy_text="Revoking…",
            done_text="Revoked.",
        )
