"""The Channels page: create text/voice channels and categories, rename, topic, slow
mode, move into a category, turn on end-to-end encryption, delete (both after
confirmation)."""

from __future__ import annotations

from typing import Any

from nexus_protocol.models import Channel, ChannelType
from nexus_protocol.permissions import Permissions

from ..qt import (
    QComboBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLineEdit,
    QPushButton,
    QSpinBox,
    Qt,
    QTreeWidget,
    QTreeWidgetItem,
    QWidget,
)
from ..session import AppSession
from .guild_page import GuildPage

KINDS = [
    ("Text channel", ChannelType.GUILD_TEXT),
    ("Voice channel", ChannelType.GUILD_VOICE),
    ("Category", ChannelType.GUILD_CATEGORY),
]
_PREFIX = {ChannelType.GUILD_TEXT: "#", ChannelType.GUILD_VOICE: "🔊 "}


ENCRYPTABLE = (ChannelType.GUILD_TEXT, ChannelType.GUILD_ANNOUNCEMENT)
ENCRYPT_QUESTION = (
    "Turn on end-to-end encryption in {name}? This cannot be undone.\n\n"
    "New messages will be readable only on members' devices. Bots and search on the"
    " relay will stop seeing messages in this channel, and people who join later will"
    " not be able to read what was sent before."
)


def channel_title(channel: Channel) -> str:
    return _PREFIX.get(channel.type, "") + (channel.name or "?")


class ChannelsPage(GuildPage):
    title = "Channels"

    def __init__(self, session: AppSession, guild_id: int, parent: QWidget | None = None) -> None:
        super().__init__(session, guild_id, parent)
        self.tree = QTreeWidget()
        self.tree.setHeaderHidden(True)
        self.tree.setAccessibleName("Channels")
        self.tree.currentItemChanged.connect(self._selected)

        create = QGroupBox("Create")
        create_form = QFormLayout(create)
        self.new_name = QLineEdit()
        self.new_name.setAccessibleName("New channel name")
        self.new_name.setPlaceholderText("new-channel")
        self.new_kind = QComboBox()
        self.new_kind.setAccessibleName("New channel type")
        for text, kind in KINDS:
            self.new_kind.addItem(text, int(kind))
        self.new_parent = QComboBox()
        self.new_parent.setAccessibleName("New channel category")
        self.create_button = QPushButton("Create")
        self.create_button.setAccessibleName("Create channel")
        self.create_button.clicked.connect(self._create)
        self.new_name.returnPressed.connect(self.create_button.click)
        create_form.addRow("Name", self.new_name)
        create_form.addRow("Type", self.new_kind)
        create_form.addRow("Category", self.new_parent)
        create_form.addRow(self.create_button)

        edit = QGroupBox("Selected channel")
        edit_form = QFormLayout(edit)
        self.name = QLineEdit()
        self.name.setAccessibleName("Channel name")
        self.topic = QLineEdit()
        self.topic.setAccessibleName("Channel topic")
        self.topic.setMaxLength(1024)
        self.slow_mode = QSpinBox()
        self.slow_mode.setRange(0, 21600)
        self.slow_mode.setSuffix(" s")
        self.slow_mode.setAccessibleName("Slow mode seconds")
        self.parent_combo = QComboBox()
        self.parent_combo.setAccessibleName("Channel category")
        self.save_button = QPushButton("Save channel")
        self.save_button.setAccessibleName("Save channel")
        self.save_button.clicked.connect(self._save)
        self.encrypt_button = QPushButton("Turn on end-to-end encryption")
        self.encrypt_button.setAccessibleName("Turn on end-to-end encryption")
        self.encrypt_button.setToolTip(
            "Only members' devices will be able to read new messages. Cannot be undone."
        )
        self.encrypt_button.clicked.connect(self._encrypt)
        self.delete_button = QPushButton("Delete channel")
        self.delete_button.setAccessibleName("Delete channel")
        self.delete_button.setProperty("danger", True)
        self.delete_button.clicked.connect(self._delete)
        edit_form.addRow("Name", self.name)
        edit_form.addRow("", self.status.field_error_label("name"))
        edit_form.addRow("Topic", self.topic)
        edit_form.addRow("Slow mode", self.slow_mode)
        edit_form.addRow("Category", self.parent_combo)
        edit_form.addRow(self.encrypt_button)
        buttons = QHBoxLayout()
        buttons.addWidget(self.save_button)
        buttons.addWidget(self.delete_button)
        edit_form.addRow(buttons)

        row = QHBoxLayout()
        row.addWidget(self.tree, 1)
        side = QWidget()
        side_layout = QFormLayout(side)
        side_layout.addRow(create)
        side_layout.addRow(edit)
        row.addWidget(side, 1)
        self.layout_.addLayout(row, 1)
        self.layout_.addWidget(self.status)
        self.refresh()

    # Reading ---------------------------------------------------------------------------------

    def selected_channel(self) -> Channel | None:
        item = self.tree.currentItem()
        channel_id = item.data(0, Qt.ItemDataRole.UserRole) if item else None
        return self.session.channel(channel_id) if channel_id is not None else None

    def item_for(self, channel_id: int) -> QTreeWidgetItem | None:
        for item in self._all_items():
            if item.data(0, Qt.ItemDataRole.UserRole) == channel_id:
                return item
        return None

    def _all_items(self) -> list[QTreeWidgetItem]:
        found = []
        for i in range(self.tree.topLevelItemCount()):
            top = self.tree.topLevelItem(i)
            if top is None:
                continue
            found.append(top)
            found.extend(c for j in range(top.childCount()) if (c := top.child(j)) is not None)
        return found

    def refresh(self) -> None:
        current = self.selected_channel()
        channels = sorted(self.session.channels(self.guild_id), key=lambda c: (c.position, c.id))
        categories = [c for c in channels if c.type == ChannelType.GUILD_CATEGORY]
        self.tree.clear()
        # Uncategorised channels first, then each category with its children (Discord's order).
        by_parent: dict[int, QTreeWidgetItem] = {}
        for channel in channels:
            if channel.type == ChannelType.GUILD_CATEGORY:
                continue
            if channel.parent_id is None:
                self._add_item(None, channel)
        for category in categories:
            by_parent[category.id] = self._add_item(None, category)
        for channel in channels:
            if channel.parent_id is not None and channel.type != ChannelType.GUILD_CATEGORY:
                self._add_item(by_parent.get(channel.parent_id), channel)
        self.tree.expandAll()
        for combo in (self.new_parent, self.parent_combo):
            chosen = combo.currentData()
            combo.clear()
            combo.addItem("No category", None)
            for category in categories:
                combo.addItem((category.name or "?").upper(), category.id)
            combo.setCurrentIndex(max(combo.findData(chosen), 0))
        if current is not None and (item := self.item_for(current.id)) is not None:
            self.tree.setCurrentItem(item)
        self._selected()

    def _add_item(self, parent: QTreeWidgetItem | None, channel: Channel) -> QTreeWidgetItem:
        item = QTreeWidgetItem([channel_title(channel)])
        item.setData(0, Qt.ItemDataRole.UserRole, channel.id)
        if parent is None:
            self.tree.addTopLevelItem(item)
        else:
            parent.addChild(item)
        return item

    def _selected(self, *_: object) -> None:
        channel = self.selected_channel()
        may_manage = bool(self.allowed & Permissions.MANAGE_CHANNELS)
        for widget in (self.name, self.topic, self.slow_mode, self.parent_combo):
            widget.setEnabled(channel is not None and may_manage)
        self.save_button.setEnabled(channel is not None and may_manage)
        self.delete_button.setEnabled(channel is not None and may_manage)
        encrypted = channel is not None and self.session.channel_encrypted(channel.id)
        encryptable = channel is not None and channel.type in ENCRYPTABLE
        self.encrypt_button.setEnabled(may_manage and encryptable and not encrypted)
        self.encrypt_button.setText(
            "End-to-end encrypted" if encrypted else "Turn on end-to-end encryption"
        )
        if channel is None:
            return
        is_category = channel.type == ChannelType.GUILD_CATEGORY
        self.name.setText(channel.name or "")
        self.topic.setText(channel.topic or "")
        self.topic.setEnabled(may_manage and channel.type == ChannelType.GUILD_TEXT)
        self.slow_mode.setValue(channel.rate_limit_per_user)
        self.slow_mode.setEnabled(may_manage and channel.type == ChannelType.GUILD_TEXT)
        self.parent_combo.setEnabled(may_manage and not is_category)
        self.parent_combo.setCurrentIndex(max(self.parent_combo.findData(channel.parent_id), 0))

    def set_allowed(self, permissions: int) -> None:
        super().set_allowed(permissions)
        may_manage = bool(permissions & Permissions.MANAGE_CHANNELS)
        for widget in (self.new_name, self.new_kind, self.new_parent, self.create_button):
            widget.setEnabled(may_manage)
        self._selected()

    # Changing --------------------------------------------------------------------------------

    def _create(self) -> None:
        name = self.new_name.text().strip()
        if not name:
            self.new_name.setFocus()
            return
        kind = ChannelType(self.new_kind.currentData())
        fields: dict[str, Any] = {"type": int(kind)}
        parent = self.new_parent.currentData()
        if parent is not None and kind != ChannelType.GUILD_CATEGORY:
            fields["parent_id"] = str(parent)
        client = self.account.client

        def created(channel: Channel) -> None:
            self.new_name.clear()
            self.status.ok(f"Created {channel_title(channel)}.")

        self.run(
            client.create_channel(self.guild_id, name, **fields),
            [self.create_button],
            created,
            busy_text="Creating…",
        )

    def _save(self) -> None:
        channel = self.selected_channel()
        if channel is None:
            return
        body: dict[str, Any] = {"name": self.name.text().strip()}
        if channel.type == ChannelType.GUILD_TEXT:
            body["topic"] = self.topic.text()
            body["rate_limit_per_user"] = self.slow_mode.value()
        if channel.type != ChannelType.GUILD_CATEGORY:
            parent = self.parent_combo.currentData()
            body["parent_id"] = str(parent) if parent is not None else None
        self.run(self.request("PATCH", f"/channels/{channel.id}", body), [self.save_button])

    def _encrypt(self) -> None:
        channel = self.selected_channel()
        if channel is None or self.session.channel_encrypted(channel.id):
            return
        if not self.confirm(self, ENCRYPT_QUESTION.format(name=channel_title(channel))):
            return
        self.encrypt_button.setEnabled(False)
        self.status.busy("Turning on end-to-end encryption…")

        def done(_: object) -> None:
            self.status.ok(f"{channel_title(channel)} is now end-to-end encrypted.")
            self._selected()

        def failed(exc: Exception) -> None:
            self.status.fail(exc)
            self._selected()

        self.session.encrypt_channel(channel.id, on_done=done, on_error=failed)

    def _delete(self) -> None:
        channel = self.selected_channel()
        if channel is None:
            return
        if not self.confirm(self, f"Delete {channel_title(channel)}? This cannot be undone."):
            return
        self.run(
            self.request("DELETE", f"/channels/{channel.id}"),
            [self.delete_button],
            busy_text="Deleting…",
            done_text="Deleted.",
        )
