"""The user panel at the bottom left: avatar, name, status picker, settings gear."""

from __future__ import annotations

from typing import Any

from nexus_protocol.models import User

from ..avatars import ImageKey, avatars_for, paint_avatar
from ..qt import (
    QColor,
    QFont,
    QHBoxLayout,
    QLabel,
    QMenu,
    QPainter,
    QPalette,
    QRect,
    Qt,
    QToolButton,
    QVBoxLayout,
    QWidget,
    Signal,
)
from ..session import Account, AppSession
from .member_list import presence_color

STATUSES: tuple[tuple[str, str], ...] = (
    ("online", "Online"),
    ("idle", "Idle"),
    ("dnd", "Do not disturb"),
    ("invisible", "Invisible"),
)
AVATAR = 36


class AvatarBadge(QWidget):
    """The signed-in user's avatar with their status dot. Painted, not a pixmap label,
    so the picture is asked for at the first paint and never before."""

    def __init__(self, session: AppSession, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._session = session
        self.account: Account | None = None
        self.name = ""
        self.status = "online"
        self.setFixedSize(AVATAR, AVATAR)
        self._watching = False

    def paintEvent(self, event: Any) -> None:
        avatars = avatars_for(self._session)
        if not self._watching:
            self._watching = True
            avatars.image_ready.connect(self._image_ready)
            avatars.user_changed.connect(self._user_changed)
        user = self.account.user if self.account is not None else None
        picture = None
        if self.account is not None and user is not None:
            ratio = self.devicePixelRatioF()
            picture = avatars.avatar(self.account, user.id, user.avatar, AVATAR, ratio)
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        palette = self.palette()
        paint_avatar(
            painter,
            QRect(0, 0, AVATAR, AVATAR),
            picture,
            palette.color(QPalette.ColorRole.Highlight),
            palette.color(QPalette.ColorRole.HighlightedText),
            self.name,
        )
        painter.setBrush(presence_color(self.status))
        painter.setPen(QColor(palette.color(QPalette.ColorRole.Window)))
        painter.drawEllipse(AVATAR - 13, AVATAR - 13, 12, 12)
        painter.end()

    def _mine(self, user_id: object) -> bool:
        user = self.account.user if self.account is not None else None
        return user is not None and user.id == user_id

    def _image_ready(self, key: ImageKey) -> None:
        if key.kind == "avatar" and self._mine(key.owner_id):
            self.update()

    def _user_changed(self, user_id: object) -> None:
        if self._mine(user_id):
            self.update()


class UserPanel(QWidget):
    settings_requested = Signal()
    status_changed = Signal(str)

    def __init__(self, session: AppSession, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("UserPanel")
        self._session = session
        self._account: Account | None = None
        self.status = "online"

        self.avatar = AvatarBadge(session, self)
        self.avatar.setAccessibleName("Your avatar")
        self.name = QLabel(self)
        self.name.setTextFormat(Qt.TextFormat.PlainText)  # user-chosen names
        bold = QFont(self.name.font())
        bold.setBold(True)
        self.name.setFont(bold)
        self.status_label = QLabel(self)
        self.status_label.setTextFormat(Qt.TextFormat.PlainText)

        self.status_button = QToolButton(self)
        self.status_button.setText("●")
        self.status_button.setToolTip("Set status")
        self.status_button.setAccessibleName("Set status")
        self.status_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        self.status_menu = QMenu(self)
        for status, label in STATUSES:
            action = self.status_menu.addAction(label)
            action.setData(status)
            action.triggered.connect(lambda _=False, s=status: self.set_status(s))
        self.status_button.setMenu(self.status_menu)

        self.settings_button = QToolButton(self)
        self.settings_button.setText("⚙")
        self.settings_button.setToolTip("User settings")
        self.settings_button.setAccessibleName("User settings")
        self.settings_button.clicked.connect(self.settings_requested.emit)

        names = QVBoxLayout()
        names.setSpacing(0)
        names.addWidget(self.name)
        names.addWidget(self.status_label)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(8, 6, 8, 6)
        layout.addWidget(self.avatar)
        layout.addLayout(names, 1)
        layout.addWidget(self.status_button)
        layout.addWidget(self.settings_button)

        session.guilds_changed.connect(self._refresh)
        session.user_updated.connect(self._user_updated)
        self._refresh()

    def set_guild(self, guild_id: int | None) -> None:
        """Show the account that holds ``guild_id`` (several accounts, one panel)."""
        self._account = self._session.account_for_guild(guild_id) if guild_id else None
        self._refresh()

    def set_status(self, status: str) -> None:
        if status not in dict(STATUSES):
            raise ValueError(f"unknown status {status!r}")
        self.status = status
        self._session.set_presence(status)
        self._refresh()
        self.status_changed.emit(status)

    def _refresh(self) -> None:
        account = self._account or (self._session.accounts[0] if self._session.accounts else None)
        user = account.user if account else None
        name = (user.global_name or user.username) if user else "Not signed in"
        self.name.setText(name)
        self.name.setToolTip(account.label if account else "")
        self.status_label.setText(dict(STATUSES)[self.status])
        self.status_button.setStyleSheet(f"color: {presence_color(self.status).name()};")
        self.avatar.account = account
        self.avatar.name = name
        self.avatar.status = self.status
        self.avatar.update()

    def _user_updated(self, user: object) -> None:
        account = self._account or (self._session.accounts[0] if self._session.accounts else None)
        me = account.user if account is not None else None
        if isinstance(user, User) and me is not None and me.id == user.id:
            self._refresh()  # a new display name; the badge repaints itself
