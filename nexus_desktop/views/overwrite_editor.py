"""The Channel permissions page: pick a channel and a role or member, then allow,
inherit or deny each channel-scoped permission (PUT/DELETE /channels/{id}/permissions)."""

from __future__ import annotations

from nexus_protocol.models import ChannelType
from nexus_protocol.permissions import CHANNEL_SCOPED, OverwriteType, Permissions

from ..qt import QComboBox, QFormLayout, QHBoxLayout, QPushButton, QWidget
from ..session import AppSession
from .channel_editor import channel_title
from .guild_page import GuildPage
from .permission_editor import PermissionEditor


class OverwritesPage(GuildPage):
    title = "Channel permissions"

    def __init__(self, session: AppSession, guild_id: int, parent: QWidget | None = None) -> None:
        super().__init__(session, guild_id, parent)
        self.channel = QComboBox()
        self.channel.setAccessibleName("Channel")
        self.target = QComboBox()
        self.target.setAccessibleName("Role or member")
        self.channel.currentIndexChanged.connect(self._load)
        self.target.currentIndexChanged.connect(self._load)
        form = QFormLayout()
        form.addRow("Channel", self.channel)
        form.addRow("Role or member", self.target)
        self.editor = PermissionEditor(tri_state=True, scope=CHANNEL_SCOPED)
        self.save_button = QPushButton("Save overwrite")
        self.save_button.setAccessibleName("Save channel overwrite")
        self.save_button.clicked.connect(self._save)
        self.remove_button = QPushButton("Remove overwrite")
        self.remove_button.setAccessibleName("Remove channel overwrite")
        self.remove_button.setProperty("secondary", True)
        self.remove_button.clicked.connect(self._remove)
        buttons = QHBoxLayout()
        buttons.addWidget(self.save_button)
        buttons.addWidget(self.remove_button)
        self.layout_.addLayout(form)
        self.layout_.addWidget(self.editor, 1)
        self.layout_.addLayout(buttons)
        self.layout_.addWidget(self.status)
        self.refresh()

    def refresh(self) -> None:
        channel_id, target = self.channel.currentData(), self.target.currentData()
        for combo in (self.channel, self.target):
            combo.blockSignals(True)
        self.channel.clear()
        channels = sorted(self.session.channels(self.guild_id), key=lambda c: (c.position, c.id))
        for channel in channels:
            title = channel_title(channel)
            if channel.type == ChannelType.GUILD_CATEGORY:
                title = f"Category: {title}"
            self.channel.addItem(title, channel.id)
        self.target.clear()
        guild = self.guild
        if guild is not None:
            for role in sorted(guild.roles, key=lambda r: -r.position):
                name = "@everyone" if role.id == self.guild_id else f"Role: {role.name}"
                self.target.addItem(name, f"{int(OverwriteType.ROLE)}:{role.id}")
        for member in self.session.members(self.guild_id):
            if member.user is not None:
                label = member.nick or member.user.global_name or member.user.username
                self.target.addItem(
                    f"Member: {label}", f"{int(OverwriteType.MEMBER)}:{member.user.id}"
                )
        self.channel.setCurrentIndex(max(self.channel.findData(channel_id), 0))
        self.target.setCurrentIndex(max(self.target.findData(target), 0))
        for combo in (self.channel, self.target):
            combo.blockSignals(False)
        self._load()

    def select(self, channel_id: int, target_id: int) -> None:
        self.channel.setCurrentIndex(self.channel.findData(channel_id))
        for index in range(self.target.count()):
            parsed = _parse_target(self.target.itemData(index))
            if parsed is not None and parsed[1] == target_id:
                self.target.setCurrentIndex(index)
                return

    def _load(self, *_: object) -> None:
        channel = self.session.channel(self.channel.currentData() or 0)
        target = _parse_target(self.target.currentData())
        allow = deny = 0
        if channel is not None and target is not None:
            for overwrite in channel.permission_overwrites:
                if overwrite.id == target[1]:
                    allow, deny = int(overwrite.allow), int(overwrite.deny)
        self.editor.set_overwrite(allow, deny)
        self._update_enabled()

    def set_allowed(self, permissions: int) -> None:
        super().set_allowed(permissions)
        self._update_enabled()

    def _update_enabled(self) -> None:
        # Overwrites need MANAGE_ROLES (Discord's "Manage Permissions" in a channel).
        may = bool(self.allowed & Permissions.MANAGE_ROLES) and self.target.currentData()
        for widget in (self.editor, self.save_button, self.remove_button):
            widget.setEnabled(bool(may))

    def _save(self) -> None:
        channel_id, target = self.channel.currentData(), _parse_target(self.target.currentData())
        if channel_id is None or target is None:
            return
        kind, target_id = target
        allow, deny = self.editor.overwrite()
        body = {"type": kind, "allow": str(int(allow)), "deny": str(int(deny))}
        self.run(
            self.request("PUT", f"/channels/{channel_id}/permissions/{target_id}", body),
            [self.save_button],
        )

    def _remove(self) -> None:
        channel_id, target = self.channel.currentData(), _parse_target(self.target.currentData())
        if channel_id is None or target is None:
            return
        self.run(
            self.request("DELETE", f"/channels/{channel_id}/permissions/{target[1]}"),
            [self.remove_button],
            lambda _: self.editor.set_overwrite(0, 0),
            busy_text="Removing…",
            done_text="Removed.",
        )


def _parse_target(data: object) -> tuple[int, int] | None:
    """Combo data ``"TYPE:ID"`` (strings compare reliably inside Qt) → (type, id)."""
    if not isinstance(data, str) or ":" not in data:
        return None
    kind, target_id = data.split(":", 1)
    return int(kind), int(target_id)
