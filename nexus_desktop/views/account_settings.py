"""Settings pages about one account: "My account" (password, sessions) and "Profile"
(free vanity: display name, avatar, banner, bio, pronouns, accent colour)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from nexus_client import NexusError, PayloadTooLarge
from nexus_protocol.models import Session, User

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
from ..qt import (
    QColor,
    QColorDialog,
    QComboBox,
    QFont,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QImage,
    QLabel,
    QLineEdit,
    QPainter,
    QPalette,
    QPixmap,
    QPlainTextEdit,
    QPushButton,
    QRect,
    Qt,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
    alive,
)
from ..session import Account, AppSession
from .form_status import FormStatus, plain_label, run_operation
from .role_editor import parse_hex_colour


class AccountPageBase(QWidget):
    """A page that acts on one of the session's accounts (a picker when there are
    several)."""

    title = ""

    def __init__(self, session: AppSession, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.layout_ = QVBoxLayout(self)
        heading = QLabel(self.title)
        heading.setObjectName("PageTitle")
        self.layout_.addWidget(heading)
        self.picker = QComboBox()
        self.picker.setAccessibleName("Account")
        for index, account in enumerate(session.accounts):
            self.picker.addItem(account.label, index)
        self.picker.currentIndexChanged.connect(lambda _: self.load())
        if len(session.accounts) > 1:
            self.layout_.addWidget(self.picker)
        self.status = FormStatus()

    @property
    def account(self) -> Account | None:
        index = self.picker.currentData()
        return self.session.accounts[index] if index is not None else None

    def load(self) -> None:
        """Show the chosen account's current values."""


class AccountPage(AccountPageBase):
    title = "My account"

    def __init__(self, session: AppSession, parent: QWidget | None = None) -> None:
        super().__init__(session, parent)
        self.username = plain_label()
        self.username.setAccessibleName("Username")
        self.relay = plain_label()
        identity = QFormLayout()
        identity.addRow("Username", self.username)
        identity.addRow("Relay", self.relay)
        self.layout_.addLayout(identity)

        password = QGroupBox("Change password")
        form = QFormLayout(password)
        self.old_password = QLineEdit()
        self.new_password = QLineEdit()
        self.repeat_password = QLineEdit()
        for field, name in (
            (self.old_password, "Current password"),
            (self.new_password, "New password"),
            (self.repeat_password, "Repeat new password"),
        ):
            field.setEchoMode(QLineEdit.EchoMode.Password)
            field.setAccessibleName(name)
            form.addRow(name, field)
            if field is self.old_password:
                form.addRow("", self.status.field_error_label("password"))
            elif field is self.new_password:
                form.addRow("", self.status.field_error_label("new_password"))
        self.password_button = QPushButton("Change password")
        self.password_button.setAccessibleName("Change password")
        self.password_button.clicked.connect(self._change_password)
        form.addRow(self.password_button)
        self.layout_.addWidget(password)

        sessions = QGroupBox("Where you're logged in")
        column = QVBoxLayout(sessions)
        self.sessions = QTreeWidget()
        self.sessions.setHeaderLabels(["Device", "Logged in", "Last used"])
        self.sessions.setRootIsDecorated(False)
        self.sessions.setAccessibleName("Sessions")
        self.revoke_button = QPushButton("Log out that session")
        self.revoke_button.setAccessibleName("Revoke session")
        self.revoke_button.setProperty("danger", True)
        self.revoke_button.clicked.connect(self._revoke)
        column.addWidget(self.sessions)
        column.addWidget(self.revoke_button)
        self.layout_.addWidget(sessions, 1)
        self.layout_.addWidget(self.status)
        self.load()

    def load(self) -> None:
        account = self.account
        if account is None:
            return
        self.username.setText(account.user.username if account.user else "?")
        self.relay.setText(account.relay_url)

    def load_sessions(self) -> None:
        account = self.account
        if account is None:
            return

        def loaded(data: Any) -> None:
            if not alive(self):
                return  # settings were closed before the list came
            self.sessions.clear()
            for entry in (Session.model_validate(s) for s in data):
                device = entry.user_agent or "Unknown device"
                if entry.current:
                    device += " (this app)"
                last = entry.last_used_at.strftime("%Y-%m-%d %H:%M") if entry.last_used_at else ""
                item = QTreeWidgetItem([device, entry.created_at.strftime("%Y-%m-%d %H:%M"), last])
                item.setData(0, Qt.ItemDataRole.UserRole, entry.id)
                self.sessions.addTopLevelItem(item)

        def failed(exc: Exception) -> None:
            if alive(self):
                self.status.fail(exc)

        # Quietly, so a refresh never hides the result of the action that caused it.
        self.session.run(self.session.http(account, "GET", "/auth/sessions"), loaded, failed)

    def showEvent(self, event: Any) -> None:
        super().showEvent(event)
        self.load_sessions()

    def _change_password(self) -> None:
        account = self.account
        if account is None:
            return
        if self.new_password.text() != self.repeat_password.text():
            label = self.status.field_labels["new_password"]
            label.setText("The two new passwords differ.")
            label.show()
            return

        def done(_: Any) -> None:
            for field in (self.old_password, self.new_password, self.repeat_password):
                field.clear()
            self.status.ok("Password changed; your other sessions were logged out.")
            self.load_sessions()

        run_operation(
            self.session,
            self.session.change_password(
                account, self.old_password.text(), self.new_password.text()
            ),
            self.status,
            [self.password_button],
            done,
        )

    def _revoke(self) -> None:
        account = self.account
        item = self.sessions.currentItem()
        if account is None or item is None:
            return
        session_id = item.data(0, Qt.ItemDataRole.UserRole)
        run_operation(
            self.session,
            self.session.http(account, "DELETE", f"/auth/sessions/{session_id}"),
            self.status,
            [self.revoke_button],
            lambda _: self.load_sessions(),
            busy_text="Logging out…",
            done_text="Logged out.",
        )


ProfileImage = Literal["avatar", "banner"]


class ProfileCard(QWidget):
    """How others see the profile: the banner, the round avatar over its edge, the
    names. A picture being uploaded shows here at once (``preview``)."""

    WIDTH = 280
    BANNER = 100
    AVATAR = 80
    RING = 6

    def __init__(self, session: AppSession, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._session = session
        self.account: Account | None = None
        self.user: User | None = None
        #: Pictures chosen on this computer and not confirmed by the relay yet, cut for
        #: the card when chosen (a kind mapped to None: being removed).
        self._previews: dict[ProfileImage, QPixmap | None] = {}
        #: Previews the relay accepted, by kind: the hash it gave them and the preview,
        #: shown for that hash until the cache has cut the picture.
        self._standins: dict[ProfileImage, tuple[str, QPixmap]] = {}
        self.setFixedSize(self.WIDTH, self.BANNER + self.AVATAR // 2 + 60)
        self.setAccessibleName("Profile preview")
        self._watching = False

    def show_user(self, account: Account | None, user: User | None) -> None:
        if account is not self.account:
            self._standins.clear()
        self.account, self.user = account, user
        self._previews.clear()
        self._describe()
        self.update()

    def accepted(self, account: Account, user: User) -> None:
        """The relay took the previewed pictures: show ``user``, each preview standing in
        until its picture is ready (no flash of the old one, or of none)."""
        for kind, preview in self._previews.items():
            image_hash = user.avatar if kind == "avatar" else user.banner
            if preview is not None and image_hash is not None:
                self._standins[kind] = (image_hash, preview)
        self.show_user(account, user)

    def preview(self, kind: ProfileImage, image: QImage | None, *, removing: bool = False) -> None:
        """Show ``image`` as the card's avatar or banner until ``show_user``; with
        ``removing``, show none."""
        ratio = self.devicePixelRatioF()
        if removing:
            self._previews[kind] = None
        elif image is not None:
            if kind == "avatar":
                variant = Variant(self.AVATAR, self.AVATAR, ratio, Shape.CIRCLE)
            else:
                variant = Variant(self.WIDTH, self.BANNER, ratio, Shape.RECT)
            pixmap = QPixmap.fromImage(cut(image, variant))
            pixmap.setDevicePixelRatio(ratio)
            self._previews[kind] = pixmap
        self.update()

    def _describe(self) -> None:
        user = self.user
        if user is None:
            self.setAccessibleDescription("")
            return
        parts = [user.global_name or user.username, "with an avatar" if user.avatar else ""]
        if user.banner:
            parts.append("and a banner")
        self.setAccessibleDescription(" ".join(p for p in parts if p))

    def _picture(self, kind: ProfileImage, width: int, height: int, shape: Shape) -> QPixmap | None:
        if kind in self._previews:
            return self._previews[kind]
        user, account = self.user, self.account
        if user is None or account is None:
            return None
        avatars = avatars_for(self._session)
        if not self._watching:
            self._watching = True
            avatars.image_ready.connect(self._image_ready)
        image_hash = user.avatar if kind == "avatar" else user.banner
        ratio = self.devicePixelRatioF()
        found = avatars.pixmap(account, kind, user.id, image_hash, width, height, ratio, shape)
        if found is not None:
            self._standins.pop(kind, None)
            return found
        standin = self._standins.get(kind)
        return standin[1] if standin is not None and standin[0] == image_hash else None

    def _image_ready(self, key: ImageKey) -> None:
        if self.user is not None and key.owner_id == self.user.id:
            self.update()

    def paintEvent(self, event: Any) -> None:
        palette = self.palette()
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        card = palette.color(QPalette.ColorRole.AlternateBase)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(card)
        painter.drawRoundedRect(self.rect(), 8, 8)
        banner = QRect(0, 0, self.WIDTH, self.BANNER)
        picture = self._picture("banner", self.WIDTH, self.BANNER, Shape.RECT)
        if picture is not None:
            painter.drawPixmap(banner.topLeft(), picture)
        else:
            # No banner: the accent colour, as Discord shows it.
            accent = self.user.accent_color if self.user is not None else None
            painter.setBrush(
                QColor(f"#{accent:06x}")
                if accent is not None
                else palette.color(QPalette.ColorRole.Highlight)
            )
            painter.drawRect(banner)
        top = self.BANNER - self.AVATAR // 2
        painter.setBrush(card)
        painter.drawEllipse(
            16 - self.RING,
            top - self.RING,
            self.AVATAR + 2 * self.RING,
            self.AVATAR + 2 * self.RING,
        )
        user = self.user
        name = (user.global_name or user.username) if user is not None else "?"
        font = QFont(self.font())
        font.setPointSizeF(font.pointSizeF() * 1.6)
        painter.setFont(font)
        paint_avatar(
            painter,
            QRect(16, top, self.AVATAR, self.AVATAR),
            self._picture("avatar", self.AVATAR, self.AVATAR, Shape.CIRCLE),
            palette.color(QPalette.ColorRole.Highlight),
            palette.color(QPalette.ColorRole.HighlightedText),
            name,
        )
        text_top = self.BANNER + self.AVATAR // 2 + 8
        bold = QFont(self.font())
        bold.setBold(True)
        bold.setPointSizeF(bold.pointSizeF() * 1.2)
        painter.setFont(bold)
        painter.setPen(palette.color(QPalette.ColorRole.Text))
        width = self.WIDTH - 32
        metrics = painter.fontMetrics()
        painter.drawText(
            QRect(16, text_top, width, metrics.height()),
            Qt.AlignmentFlag.AlignLeft,
            metrics.elidedText(name, Qt.TextElideMode.ElideRight, width),
        )
        if user is not None:
            painter.setFont(self.font())
            painter.setPen(palette.color(QPalette.ColorRole.PlaceholderText))
            painter.drawText(
                QRect(16, text_top + metrics.height() + 2, width, painter.fontMetrics().height()),
                Qt.AlignmentFlag.AlignLeft,
                user.username,
            )
        painter.end()


class ProfilePage(AccountPageBase):
    title = "Profile"

    FIELDS = ("global_name", "bio", "pronouns", "accent_color")

    def __init__(self, session: AppSession, parent: QWidget | None = None) -> None:
        super().__init__(session, parent)
        form = QFormLayout()
        self.display_name = QLineEdit()
        self.display_name.setAccessibleName("Display name")
        self.change_avatar = self._button("Change avatar…", "Change avatar")
        self.change_avatar.clicked.connect(lambda: self._choose("avatar"))
        self.remove_avatar = self._button("Remove avatar", "Remove avatar")
        self.remove_avatar.clicked.connect(lambda: self.remove_image("avatar"))
        self.change_banner = self._button("Change banner…", "Change banner")
        self.change_banner.clicked.connect(lambda: self._choose("banner"))
        self.remove_banner = self._button("Remove banner", "Remove banner")
        self.remove_banner.clicked.connect(lambda: self.remove_image("banner"))
        self.bio = QPlainTextEdit()
        self.bio.setAccessibleName("About me")
        self.bio.setFixedHeight(90)
        self.bio.setTabChangesFocus(True)
        self.pronouns = QLineEdit()
        self.pronouns.setAccessibleName("Pronouns")
        self.accent = QLineEdit()
        self.accent.setAccessibleName("Accent colour (hex)")
        self.accent.setPlaceholderText("#RRGGBB")
        self.swatch = QLabel()
        self.swatch.setFixedSize(24, 24)
        self.swatch.setAccessibleName("Accent colour preview")
        self.accent.textChanged.connect(self._show_swatch)
        self.pick_accent = QPushButton("Pick…")
        self.pick_accent.setAccessibleName("Pick accent colour")
        self.pick_accent.clicked.connect(self._pick_accent)
        accent_row = QHBoxLayout()
        accent_row.addWidget(self.accent, 1)
        accent_row.addWidget(self.swatch)
        accent_row.addWidget(self.pick_accent)
        form.addRow("Display name", self.display_name)
        form.addRow("", self.status.field_error_label("global_name"))
        for label, change, remove, field in (
            ("Avatar", self.change_avatar, self.remove_avatar, "avatar"),
            ("Banner", self.change_banner, self.remove_banner, "banner"),
        ):
            row = QHBoxLayout()
            row.addWidget(change)
            row.addWidget(remove)
            row.addStretch(1)
            form.addRow(label, row)
            form.addRow("", self.status.field_error_label(field))
        for label, widget, field in (
            ("About me", self.bio, "bio"),
            ("Pronouns", self.pronouns, "pronouns"),
        ):
            form.addRow(label, widget)
            form.addRow("", self.status.field_error_label(field))
        form.addRow("Accent colour", accent_row)
        form.addRow("", self.status.field_error_label("accent_color"))
        note = QLabel("Every profile feature is free.")
        note.setObjectName("StatusLabel")
        self.card = ProfileCard(session)
        self.save_button = QPushButton("Save profile")
        self.save_button.setAccessibleName("Save profile")
        self.save_button.clicked.connect(self._save)
        self.image_buttons = [
            self.change_avatar,
            self.remove_avatar,
            self.change_banner,
            self.remove_banner,
        ]
        columns = QHBoxLayout()
        columns.addLayout(form, 1)
        columns.addWidget(self.card, 0, Qt.AlignmentFlag.AlignTop)
        self.layout_.addWidget(note)
        self.layout_.addLayout(columns)
        self.layout_.addWidget(self.save_button)
        self.layout_.addWidget(self.status)
        self.layout_.addStretch(1)
        session.user_updated.connect(self._user_updated)
        self.load()

    @staticmethod
    def _button(text: str, name: str) -> QPushButton:
        button = QPushButton(text)
        button.setAccessibleName(name)
        return button

    def load(self) -> None:
        account = self.account
        user: User | None = account.user if account else None
        if user is None:
            return
        self.display_name.setText(user.global_name or "")
        self.bio.setPlainText(user.bio)
        self.pronouns.setText(user.pronouns)
        self.accent.setText(f"#{user.accent_color:06x}" if user.accent_color is not None else "")
        self._show_pictures(account, user)

    def _show_pictures(self, account: Account | None, user: User) -> None:
        self.card.show_user(account, user)
        self.remove_avatar.setEnabled(user.avatar is not None)
        self.remove_banner.setEnabled(user.banner is not None)

    def _user_updated(self, user: object) -> None:
        account = self.account
        me = account.user if account is not None else None
        uploading = not self.change_avatar.isEnabled()
        if isinstance(user, User) and me is not None and user.id == me.id and not uploading:
            self._show_pictures(account, user)

    # Pictures ------------------------------------------------------------------------------

    def _choose(self, kind: ProfileImage) -> None:
        path = choose_image_file(self, f"Choose a {kind}")
        if path is not None:
            self.upload_image(kind, path)

    def upload_image(self, kind: ProfileImage, path: str | Path) -> None:
        """Make the image file at ``path`` the account's ``kind`` ("avatar" or
        "banner"): what the buttons do once a file is chosen."""
        try:
            data = read_image_file(path)
        except ImageFileError as exc:
            self._field_error(kind, str(exc))
            return
        self._send(kind, data)

    def remove_image(self, kind: ProfileImage) -> None:
        """Remove the account's avatar or banner."""
        self._send(kind, None)

    def _send(self, kind: ProfileImage, data: bytes | None) -> None:
        account = self.account
        if account is None:
            return
        client = account.client
        upload = client.set_avatar if kind == "avatar" else client.set_banner
        for button in [*self.image_buttons, self.save_button]:
            button.setEnabled(False)
        self.status.busy(
            f"Uploading your {kind}…" if data is not None else f"Removing your {kind}…"
        )
        if data is None:
            self.card.preview(kind, None, removing=True)

        def done(user: User, image: QImage | None) -> None:
            new_hash = user.avatar if kind == "avatar" else user.banner
            if image is not None and new_hash is not None:
                # Uploaded from here: shown everywhere at once, not downloaded back.
                avatars_for(self.session).prime(ImageKey(kind, user.id, new_hash), image)
            if not alive(self):
                return  # settings were closed while it uploaded
            self._finish()
            self.card.accepted(account, user)
            self._show_pictures(account, user)
            self.status.ok(
                f"{kind.capitalize()} updated." if data else f"{kind.capitalize()} removed."
            )

        def failed(exc: Exception) -> None:
            if not alive(self):
                return
            self._finish()
            user = account.user
            if user is not None:
                self._show_pictures(account, user)
            if isinstance(exc, PayloadTooLarge):
                self._field_error(kind, f"Too large for this relay ({exc.message}).")
            elif isinstance(exc, NexusError):
                self.status.fail(exc)
            else:  # refused before it left (not an image the SDK can send)
                self._field_error(kind, str(exc))

        send_image(
            self.session,
            upload,
            kind,
            data,
            preview=lambda image: self.card.preview(kind, image) if alive(self) else None,
            on_done=done,
            on_error=failed,
        )

    def _finish(self) -> None:
        for button in [*self.image_buttons, self.save_button]:
            button.setEnabled(True)

    def _field_error(self, field: str, text: str) -> None:
        self.status.fail(image_refusal(field, text))

    # The rest of the profile ----------------------------------------------------------------

    def _show_swatch(self, text: str) -> None:
        value = parse_hex_colour(text) if text.strip() else None
        # The swatch shows the user's own choice, so a colour here is not a theme colour.
        style = f"background: #{value:06x}; border: 1px solid palette(mid);" if value else ""
        self.swatch.setStyleSheet(style)

    def _pick_accent(self) -> None:
        start = parse_hex_colour(self.accent.text()) or 0x5865F2
        colour = QColorDialog.getColor(QColor(f"#{start:06x}"), self, "Accent colour")
        if colour.isValid():
            self.accent.setText(colour.name())

    def changes(self) -> dict[str, Any] | None:
        """The profile fields to send; None (and an inline error) when one is malformed.
        Pictures are not among them: they are sent as soon as they are chosen."""
        accent: int | None = None
        if self.accent.text().strip():
            accent = parse_hex_colour(self.accent.text())
            if accent is None:
                label = self.status.field_labels["accent_color"]
                label.setText("Use #RRGGBB, e.g. #5865f2.")
                label.show()
                return None
        return {
            "global_name": self.display_name.text().strip() or None,
            "bio": self.bio.toPlainText(),
            "pronouns": self.pronouns.text().strip(),
            "accent_color": accent,
        }

    def _save(self) -> None:
        account = self.account
        changes = self.changes()
        if account is None or changes is None:
            return
        run_operation(
            self.session,
            account.client.edit_profile(**changes),
            self.status,
            [self.save_button, *self.image_buttons],
            lambda user: self._show_pictures(account, user),
        )
