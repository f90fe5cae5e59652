"""The Roles page: roles by position (highest first), create, edit name, colour, hoist,
mentionable and permissions, move up/down, delete."""

from __future__ import annotations

from typing import Any

from nexus_protocol.models import Role
from nexus_protocol.permissions import Permissions

from ..qt import (
    QCheckBox,
    QColor,
    QColorDialog,
    QFormLayout,
    QHBoxLayout,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    Qt,
    QVBoxLayout,
    QWidget,
)
from ..session import AppSession
from .guild_page import GuildPage
from .permission_editor import PermissionEditor


def parse_hex_colour(text: str) -> int | None:
    """``#RRGGBB`` (or empty for "no colour", 0) → int; None when malformed."""
    text = text.strip().lstrip("#")
    if not text:
        return 0
    if len(text) != 6:
        return None
    try:
        return int(text, 16)
    except ValueError:
        return None


class RolesPage(GuildPage):
    title = "Roles"

    def __init__(self, session: AppSession, guild_id: int, parent: QWidget | None = None) -> None:
        super().__init__(session, guild_id, parent)
        self._loaded_role: Role | None = None
        self._select_when_known: int | None = None  # a role created, not yet echoed
        self.list = QListWidget()
        self.list.setAccessibleName("Roles")
        self.list.currentItemChanged.connect(self._selected)
        self.create_button = QPushButton("Create role")
        self.create_button.setAccessibleName("Create role")
        self.create_button.clicked.connect(self._create)
        self.up_button = QPushButton("Move up")
        self.up_button.setAccessibleName("Move role up")
        self.up_button.clicked.connect(lambda: self._move(+1))
        self.down_button = QPushButton("Move down")
        self.down_button.setAccessibleName("Move role down")
        self.down_button.clicked.connect(lambda: self._move(-1))
        left = QVBoxLayout()
        left.addWidget(self.list, 1)
        left.addWidget(self.create_button)
        moves = QHBoxLayout()
        moves.addWidget(self.up_button)
        moves.addWidget(self.down_button)
        left.addLayout(moves)

        self.name = QLineEdit()
        self.name.setAccessibleName("Role name")
        self.name.setMaxLength(100)
        self.colour = QLineEdit()
        self.colour.setAccessibleName("Role colour (hex)")
        self.colour.setPlaceholderText("#RRGGBB")
        self.pick_colour = QPushButton("Pick…")
        self.pick_colour.setAccessibleName("Pick role colour")
        self.pick_colour.clicked.connect(self._pick_colour)
        colour_row = QHBoxLayout()
        colour_row.addWidget(self.colour, 1)
        colour_row.addWidget(self.pick_colour)
        self.hoist = QCheckBox("Show members with this role separately")
        self.hoist.setAccessibleName("Display role members separately")
        self.mentionable = QCheckBox("Allow anyone to @mention this role")
        self.mentionable.setAccessibleName("Mentionable")
        self.editor = PermissionEditor()
        self.save_button = QPushButton("Save role")
        self.save_button.setAccessibleName("Save role")
        self.save_button.clicked.connect(self._save)
        self.delete_button = QPushButton("Delete role")
        self.delete_button.setAccessibleName("Delete role")
        self.delete_button.setProperty("danger", True)
        self.delete_button.clicked.connect(self._delete)
        form = QFormLayout()
        form.addRow("Name", self.name)
        form.addRow("", self.status.field_error_label("name"))
        form.addRow("Colour", colour_row)
        form.addRow("", self.status.field_error_label("color"))
        form.addRow(self.hoist)
        form.addRow(self.mentionable)
        right = QVBoxLayout()
        right.addLayout(form)
        right.addWidget(self.editor, 1)
        buttons = QHBoxLayout()
        buttons.addWidget(self.save_button)
        buttons.addWidget(self.delete_button)
        right.addLayout(buttons)

        row = QHBoxLayout()
        row.addLayout(left, 1)
        row.addLayout(right, 2)
        self.layout_.addLayout(row, 1)
        self.layout_.addWidget(self.status)
        self.refresh()

    # Reading ---------------------------------------------------------------------------------

    def roles(self) -> list[Role]:
        """Highest first; @everyone (position 0) last, as Discord lists them."""
        guild = self.guild
        return sorted(guild.roles, key=lambda r: (-r.position, -r.id)) if guild else []

    def selected_role(self) -> Role | None:
        item = self.list.currentItem()
        role_id = item.data(Qt.ItemDataRole.UserRole) if item else None
        return next((r for r in self.roles() if r.id == role_id), None)

    def select_role(self, role_id: int) -> None:
        for row in range(self.list.count()):
            item = self.list.item(row)
            if item is not None and item.data(Qt.ItemDataRole.UserRole) == role_id:
                self.list.setCurrentRow(row)
                return

    def refresh(self) -> None:
        current = self.selected_role()
        wanted = self._select_when_known or (current.id if current else None)
        self.list.blockSignals(True)
        self.list.clear()
        for role in self.roles():
            name = "@everyone" if role.id == self.guild_id else role.name
            item = QListWidgetItem(name)
            item.setData(Qt.ItemDataRole.UserRole, role.id)
            if role.color:
                item.setForeground(QColor(f"#{role.color:06x}"))
            self.list.addItem(item)
        self.list.blockSignals(False)
        if wanted is not None:
            self.select_role(wanted)
            if self._select_when_known == wanted and self.selected_role() is not None:
                self._select_when_known = None
        if self.list.currentRow() < 0 and self.list.count():
            self.list.setCurrentRow(0)
        else:
            self._selected()

    def _selected(self, *_: object) -> None:
        role = self.selected_role()
        # Reload only when the role itself changed: a gateway event about another role
        # must not wipe unsaved edits of this one.
        if role is not None and role != self._loaded_role:
            self._load(role)
        self._update_enabled()

    def _load(self, role: Role) -> None:
        self._loaded_role = role
        everyone = role.id == self.guild_id
        self.name.setText("@everyone" if everyone else role.name)
        self.colour.setText(f"#{role.color:06x}" if role.color else "")
        self.hoist.setChecked(role.hoist)
        self.mentionable.setChecked(role.mentionable)
        self.editor.set_permissions(int(role.permissions))

    def _update_enabled(self) -> None:
        role = self.selected_role()
        may = bool(self.allowed & Permissions.MANAGE_ROLES)
        everyone = role is not None and role.id == self.guild_id
        editable = may and role is not None and not role.managed
        self.create_button.setEnabled(may)
        for widget in (self.name, self.colour, self.pick_colour, self.hoist, self.mentionable):
            widget.setEnabled(editable and not everyone)
        self.editor.setEnabled(editable)
        self.save_button.setEnabled(editable)
        self.delete_button.setEnabled(editable and not everyone)
        self.up_button.setEnabled(editable and not everyone and self.list.currentRow() > 0)
        self.down_button.setEnabled(
            editable and not everyone and self.list.currentRow() < self.list.count() - 2
        )

    def set_allowed(self, permissions: int) -> None:
        super().set_allowed(permissions)
        self._update_enabled()

    # Changing --------------------------------------------------------------------------------

    def _pick_colour(self) -> None:
        start = parse_hex_colour(self.colour.text()) or 0x99AAB5
        colour = QColorDialog.getColor(QColor(f"#{start:06x}"), self, "Role colour")
        if colour.isValid():
            self.colour.setText(colour.name())

    def _create(self) -> None:
        def created(data: Any) -> None:
            role = Role.model_validate(data)
            self.status.ok(f"Created {role.name}.")
            # The gateway's GUILD_ROLE_CREATE may come before or after this answer;
            # either way the next refresh() selects the new role.
            self._select_when_known = role.id
            self.refresh()

        self.run(
            self.request("POST", f"/guilds/{self.guild_id}/roles", {"name": "new role"}),
            [self.create_button],
            created,
            busy_text="Creating…",
        )

    def _save(self) -> None:
        role = self.selected_role()
        if role is None:
            return
        body: dict[str, Any] = {"permissions": str(int(self.editor.permissions()))}
        if role.id != self.guild_id:
            colour = parse_hex_colour(self.colour.text())
            if colour is None:
                label = self.status.field_labels["color"]
                label.setText("Use #RRGGBB, e.g. #5865f2.")
                label.show()
                return
            body.update(
                name=self.name.text().strip(),
                color=colour,
                hoist=self.hoist.isChecked(),
                mentionable=self.mentionable.isChecked(),
            )
        self.run(
            self.request("PATCH", f"/guilds/{self.guild_id}/roles/{role.id}", body),
            [self.save_button],
        )

    def _move(self, step: int) -> None:
        """Swap the selected role with its neighbour above (+1) or below (-1)."""
        role = self.selected_role()
        roles = self.roles()
        if role is None:
            return
        index = roles.index(role) - step
        if not 0 <= index < len(roles) or roles[index].id == self.guild_id:
            return
        other = roles[index]
        body = [
            {"id": str(role.id), "position": other.position},
            {"id": str(other.id), "position": role.position},
        ]
        self.run(
            self.request("PATCH", f"/guilds/{self.guild_id}/roles", body),
            [self.up_button, self.down_button],
            lambda _: self.refresh(),
            busy_text="Moving…",
            done_text="Moved.",
        )

    def _delete(self) -> None:
        role = self.selected_role()
        if role is None or role.id == self.guild_id:
            return
        if not self.confirm(self, f"Delete the role {role.name}?"):
            return
        self.run(
            self.request("DELETE", f"/guilds/{self.guild_id}/roles/{role.id}"),
            [self.delete_button],
            busy_text="Deleting…",
            done_text="Deleted.",
        )
