"""Community settings: a list of pages on the left (Overview, Channels, Roles, Channel
permissions, Invites, Members), each a module of its own."""

from __future__ import annotations

from typing import Any

from nexus_protocol.permissions import Permissions

from ..qt import (
    QComboBox,
    QDialog,
    QFormLayout,
    QHBoxLayout,
    QLineEdit,
    QListWidget,
    QPlainTextEdit,
    QPushButton,
    QStackedWidget,
    QWidget,
)
from ..session import AppSession
from .channel_editor import ChannelsPage
from .guild_page import GuildPage
from .invites_page import InvitesPage
from .members_page import MembersPage
from .overwrite_editor import OverwritesPage
from .role_editor import RolesPage


class OverviewPage(GuildPage):
    title = "Overview"

    def __init__(self, session: AppSession, guild_id: int, parent: QWidget | None = None) -> None:
        super().__init__(session, guild_id, parent)
        form = QFormLayout()
        self.name = QLineEdit()
        self.name.setAccessibleName("Community name")
        self.name.setMaxLength(100)
        self.description = QPlainTextEdit()
        self.description.setAccessibleName("Description")
        self.description.setFixedHeight(80)
        self.system_channel = QComboBox()
        self.system_channel.setAccessibleName("System messages channel")
        form.addRow("Name", self.name)
        form.addRow("", self.status.field_error_label("name"))
        form.addRow("Description", self.description)
        form.addRow("", self.status.field_error_label("description"))
        form.addRow("System messages channel", self.system_channel)
        self.save = QPushButton("Save changes")
        self.save.setAccessibleName("Save community overview")
        self.save.clicked.connect(self._save)
        self.layout_.addLayout(form)
        self.layout_.addWidget(self.save)
        self.layout_.addWidget(self.status)
        self.layout_.addStretch(1)
        self.refresh()

    def refresh(self) -> None:
        guild = self.guild
        if guild is None:
            return
        self.name.setText(guild.name)
        self.description.setPlainText(guild.description or "")
        self.system_channel.clear()
        self.system_channel.addItem("No system messages", None)
        for channel in self.session.channels(self.guild_id):
            if channel.type == 0:
                self.system_channel.addItem(f"#{channel.name}", channel.id)
        index = self.system_channel.findData(guild.system_channel_id)
        self.system_channel.setCurrentIndex(max(index, 0))

    def set_allowed(self, permissions: int) -> None:
        super().set_allowed(permissions)
        allowed = bool(permissions & Permissions.MANAGE_GUILD)
        for widget in (self.name, self.description, self.system_channel, self.save):
            widget.setEnabled(allowed)

    def _save(self) -> None:
        system = self.system_channel.currentData()
        body: dict[str, Any] = {
            "name": self.name.text().strip(),
            "description": self.description.toPlainText(),
            "system_channel_id": str(system) if system is not None else None,
        }
        self.run(self.request("PATCH", f"/guilds/{self.guild_id}", body), [self.save])


class CommunitySettingsDialog(QDialog):
    """Everything an owner or moderator manages, disabled where they lack permission
    (the relay still decides: its refusals are shown on the page)."""

    def __init__(self, session: AppSession, guild_id: int, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.guild_id = guild_id
        guild = session.guild(guild_id)
        self.setWindowTitle(f"{guild.name if guild else 'Community'} — settings")
        self.setAccessibleName("Community settings")
        self.resize(900, 640)
        self.nav = QListWidget()
        self.nav.setObjectName("SettingsNav")
        self.nav.setAccessibleName("Community settings pages")
        self.nav.setFixedWidth(200)
        self.pages = QStackedWidget()
        self.overview = OverviewPage(session, guild_id)
        self.channels = ChannelsPage(session, guild_id)
        self.roles = RolesPage(session, guild_id)
        self.overwrites = OverwritesPage(session, guild_id)
        self.invites = InvitesPage(session, guild_id)
        self.members = MembersPage(session, guild_id)
        self.all_pages: list[GuildPage] = [
            self.overview,
            self.channels,
            self.roles,
            self.overwrites,
            self.invites,
            self.members,
        ]
        for page in self.all_pages:
            self.nav.addItem(page.title)
            self.pages.addWidget(page)
        self.nav.currentRowChanged.connect(self._show_page)
        layout = QHBoxLayout(self)
        layout.addWidget(self.nav)
        layout.addWidget(self.pages, 1)
        session.guilds_changed.connect(self._guild_changed)
        session.channels_changed.connect(self._channels_changed)
        session.members_changed.connect(self._members_changed)
        self._apply_permissions()
        self.nav.setCurrentRow(0)

    def show_page(self, page: GuildPage) -> None:
        self.nav.setCurrentRow(self.all_pages.index(page))

    def _show_page(self, row: int) -> None:
        self.pages.setCurrentIndex(row)
        if 0 <= row < len(self.all_pages):
            self.all_pages[row].refresh()

    def _apply_permissions(self) -> None:
        allowed = self.session.guild_permissions(self.guild_id)
        for page in self.all_pages:
            page.set_allowed(allowed)

    def _guild_changed(self) -> None:
        if self.session.guild(self.guild_id) is None:
            self.reject()  # the community was deleted or we were removed from it
            return
        self._apply_permissions()
        self.roles.refresh()
        self.overwrites.refresh()

    def _channels_changed(self, guild_id: object) -> None:
        if guild_id == self.guild_id:
            self.channels.refresh()
            self.overwrites.refresh()

    def _members_changed(self, guild_id: object) -> None:
        if guild_id == self.guild_id:
            self._apply_permissions()
            self.members.refresh()
