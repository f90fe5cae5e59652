"""Settings pages about one account: "My account" (password, sessions) and "Profile"
(free vanity: display name, avatar, banner, bio, pronouns, accent colour)."""

from __future__ import annotations

from typing import Any

from nexus_protocol.models import Session, User

from ..qt import (
    QColor,
    QColorDialog,
    QComboBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    Qt,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
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
            self.sessions.clear()
            for entry in (Session.model_validate(s) for s in data):
                device = entry.user_agent or "Unknown device"
                if entry.current:
                    device += " (this app)"
                last = entry.last_used_at.strftime("%Y-%m-%d %H:%M") if entry.last_used_at else ""
                item = QTreeWidgetItem([device, entry.created_at.strftime("%Y-%m-%d %H:%M"), last])
                item.setData(0, Qt.ItemDataRole.UserRole, entry.id)
                self.sessions.addTopLevelItem(item)

        # Quietly, so a refresh never hides the result of the action that caused it.
        self.session.run(
            self.session.http(account, "GET", "/auth/sessions"), loaded, self.status.fail
        )

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


class ProfilePage(AccountPageBase):
    title = "Profile"

    FIELDS = ("global_name", "avatar", "banner", "bio", "pronouns", "accent_color")

    def __init__(self, session: AppSession, parent: QWidget | None = None) -> None:
        super().__init__(session, parent)
        form = QFormLayout()
        self.display_name = QLineEdit()
        self.display_name.setAccessibleName("Display name")
        self.avatar = QLineEdit()
        self.avatar.setAccessibleName("Avatar URL")
        self.banner = QLineEdit()
        self.banner.setAccessibleName("Banner URL")
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
        for label, widget, field in (
            ("Display name", self.display_name, "global_name"),
            ("Avatar URL", self.avatar, "avatar"),
            ("Banner URL", self.banner, "banner"),
            ("About me", self.bio, "bio"),
            ("Pronouns", self.pronouns, "pronouns"),
        ):
            form.addRow(label, widget)
            form.addRow("", self.status.field_error_label(field))
        form.addRow("Accent colour", accent_row)
        form.addRow("", self.status.field_error_label("accent_color"))
        note = QLabel("Every profile feature is free.")
        note.setObjectName("StatusLabel")
        self.save_button = QPushButton("Save profile")
        self.save_button.setAccessibleName("Save profile")
        self.save_button.clicked.connect(self._save)
        self.layout_.addWidget(note)
        self.layout_.addLayout(form)
        self.layout_.addWidget(self.save_button)
        self.layout_.addWidget(self.status)
        self.layout_.addStretch(1)
        self.load()

    def load(self) -> None:
        account = self.account
        user: User | None = account.user if account else None
        if user is None:
            return
        self.display_name.setText(user.global_name or "")
        self.avatar.setText(user.avatar or "")
        self.banner.setText(user.banner or "")
        self.bio.setPlainText(user.bio)
        self.pronouns.setText(user.pronouns)
        self.accent.setText(f"#{user.accent_color:06x}" if user.accent_color is not None else "")

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
        """The profile fields to send; None (and an inline error) when one is malformed."""
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
            "avatar": self.avatar.text().strip() or None,
            "banner": self.banner.text().strip() or None,
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
            [self.save_button],
        )
