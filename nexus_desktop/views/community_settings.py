"""Community settings: a list of pages on the left (Overview, Channels, Roles, Channel
permissions, Invites, Members), each a module of its own."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from nexus_client import NexusError, PayloadTooLarge
from nexus_protocol.models import Guild
from nexus_protocol.permissions import Permissions

from ..avatars import (
    ImageFileError,
    ImageKey,
    Shape,
    Variant,
    avatars_for,
    choose_image_file,
    cut,
    image_refusal,
    paint_avatar,
    read_image_file,
    send_image,
)
from ..models.guilds import initials
from ..qt import (
    QComboBox,
    QDialog,
    QFont,
    QFormLayout,
    QHBoxLayout,
    QImage,
    QLineEdit,
    QListWidget,
    QPainter,
    QPalette,
    QPixmap,
    QPlainTextEdit,
    QPushButton,
    QRect,
    QStackedWidget,
    QWidget,
    alive,
)
from ..session import AppSession
from .channel_editor import ChannelsPage
from .guild_page import GuildPage
from .invites_page import InvitesPage
from .members_page import MembersPage
from .overwrite_editor import OverwritesPage
from .role_editor import RolesPage


class CommunityIcon(QWidget):
    """The community's icon as the rail shows it, or its initials; a picture being
    uploaded shows at once (``preview``)."""

    SIZE = 64

    def __init__(self, session: AppSession, guild_id: int, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._session = session
        self._guild_id = guild_id
        self._preview: QPixmap | None = None
        self._previewing = False
        #: After the relay took a change: (the icon before, the icon after, the preview),
        #: so neither the old icon nor the initials flash until the change shows.
        self._accepted: tuple[str | None, str | None, QPixmap | None] | None = None
        self._watching = False
        self.setFixedSize(self.SIZE, self.SIZE)
        self.setAccessibleName("Community icon")

    def preview(self, image: QImage | None, *, removing: bool = False) -> None:
        """Show ``image`` (or, ``removing``, the initials) until ``settle``."""
        if image is None and not removing:
            return
        self._previewing = True
        self._preview = None
        if image is not None:
            ratio = self.devicePixelRatioF()
            self._preview = QPixmap.fromImage(
                cut(image, Variant(self.SIZE, self.SIZE, ratio, Shape.CIRCLE))
            )
            self._preview.setDevicePixelRatio(ratio)
        self.update()

    def settle(self, accepted: Guild | None = None) -> None:
        """Show what the relay has again; ``accepted``: the community as the relay
        returned it after taking the previewed change."""
        if accepted is not None:
            known = self._session.guild(self._guild_id)
            before = known.icon if known is not None else None
            self._accepted = (before, accepted.icon, self._preview)
        self._previewing = False
        self._preview = None
        self.update()

    def _shown(self, guild: Guild) -> QPixmap | None:
        avatars = avatars_for(self._session)
        if not self._watching:
            self._watching = True
            avatars.image_ready.connect(self._image_ready)
        ratio = self.devicePixelRatioF()
        found = avatars.pixmap(guild.id, "icon", guild.id, guild.icon, self.SIZE, self.SIZE, ratio)
        if self._accepted is None:
            return found
        before, after, standin = self._accepted
        if guild.icon == before and before != after:
            return standin  # the relay's GUILD_UPDATE has not arrived yet
        if guild.icon == after and found is None:
            return standin  # not cut yet
        self._accepted = None
        return found

    def paintEvent(self, event: Any) -> None:
        guild = self._session.guild(self._guild_id)
        picture = self._preview
        if not self._previewing and guild is not None:
            picture = self._shown(guild)
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        font = QFont(self.font())
        font.setBold(True)
        painter.setFont(font)
        palette = self.palette()
        paint_avatar(
            painter,
            QRect(0, 0, self.SIZE, self.SIZE),
            picture,
            palette.color(QPalette.ColorRole.Button),
            palette.color(QPalette.ColorRole.ButtonText),
            initials(guild.name) if guild is not None else "?",
        )
        painter.end()

    def _image_ready(self, key: ImageKey) -> None:
        if key.kind == "icon" and key.owner_id == self._guild_id:
            self.update()


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
        self.icon = CommunityIcon(session, guild_id)
        self._uploading = False
        self.upload_icon_button = QPushButton("Upload icon…")
        self.upload_icon_button.setAccessibleName("Upload community icon")
        self.upload_icon_button.clicked.connect(self._choose_icon)
        self.remove_icon_button = QPushButton("Remove icon")
        self.remove_icon_button.setAccessibleName("Remove community icon")
        self.remove_icon_button.clicked.connect(self.remove_icon)
        icon_row = QHBoxLayout()
        icon_row.addWidget(self.icon)
        icon_row.addWidget(self.upload_icon_button)
        icon_row.addWidget(self.remove_icon_button)
        icon_row.addStretch(1)
        form.addRow("Icon", icon_row)
        form.addRow("", self.status.field_error_label("icon"))
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
        self._show_icon_buttons()

    def set_allowed(self, permissions: int) -> None:
        super().set_allowed(permissions)
        allowed = bool(permissions & Permissions.MANAGE_GUILD)
        for widget in (self.name, self.description, self.system_channel, self.save):
            widget.setEnabled(allowed)
        self._show_icon_buttons()

    # The icon --------------------------------------------------------------------------------

    def _show_icon_buttons(self) -> None:
        allowed = bool(self.allowed & Permissions.MANAGE_GUILD) and not self._uploading
        guild = self.guild
        self.upload_icon_button.setEnabled(allowed)
        self.remove_icon_button.setEnabled(allowed and guild is not None and bool(guild.icon))
        self.icon.update()

    def _choose_icon(self) -> None:
        path = choose_image_file(self, "Choose a community icon")
        if path is not None:
            self.upload_icon(path)

    def upload_icon(self, path: str | Path) -> None:
        """Make the image file at ``path`` the community's icon (what the button does
        once a file is chosen)."""
        try:
            data = read_image_file(path)
        except ImageFileError as exc:
            self._icon_error(str(exc))
            return
        self._send_icon(data)

    def remove_icon(self) -> None:
        self._send_icon(None)

    def _send_icon(self, data: bytes | None) -> None:
        client = self.account.client
        guild_id = self.guild_id
        self._uploading = True
        self._show_icon_buttons()
        self.status.busy("Uploading the icon…" if data is not None else "Removing the icon…")
        if data is None:
            self.icon.preview(None, removing=True)

        def done(guild: Guild, image: QImage | None) -> None:
            if image is not None and guild.icon is not None:
                # Uploaded from here: the rail shows it at once, without downloading it.
                avatars_for(self.session).prime(ImageKey("icon", guild_id, guild.icon), image)
            if not alive(self):
                return  # settings were closed while it uploaded
            self._settle(guild)
            self.status.ok("Icon updated." if data is not None else "Icon removed.")

        def failed(exc: Exception) -> None:
            if not alive(self):
                return
            self._settle()
            if isinstance(exc, PayloadTooLarge):
                self._icon_error(f"Too large for this relay ({exc.message}).")
            elif isinstance(exc, NexusError):
                self.status.fail(exc)
            else:  # refused before it left (not an image the SDK can send)
                self._icon_error(str(exc))

        send_image(
            self.session,
            lambda image_data: client.set_guild_icon(guild_id, image_data),
            "icon",
            data,
            preview=lambda image: self.icon.preview(image) if alive(self) else None,
            on_done=done,
            on_error=failed,
        )

    def _settle(self, accepted: Guild | None = None) -> None:
        self._uploading = False
        self.icon.settle(accepted)
        self._show_icon_buttons()

    def _icon_error(self, text: str) -> None:
        self.status.fail(image_refusal("icon", text))

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
