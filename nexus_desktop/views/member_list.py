"""The member list: group headers in the role's colour, members with their avatar and
a presence dot."""

from __future__ import annotations

from ..avatars import ImageCache, ImageKey, avatars_for, paint_avatar
from ..models.members import (
    AvatarRole,
    IsHeaderRole,
    MemberListModel,
    PresenceRole,
    RoleColorRole,
    UserIdRole,
)
from ..qt import (
    QAbstractItemView,
    QColor,
    QFont,
    QListView,
    QModelIndex,
    QPainter,
    QPalette,
    QPersistentModelIndex,
    QPixmap,
    QRect,
    QSize,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    Qt,
    QVBoxLayout,
    QWidget,
)
from ..session import AppSession

Index = QModelIndex | QPersistentModelIndex

# Discord's presence colours: they mean the same thing on every theme.
PRESENCE_COLORS = {
    "online": QColor("#23a55a"),
    "idle": QColor("#f0b232"),
    "dnd": QColor("#f23f43"),
    "offline": QColor("#80848e"),
    "invisible": QColor("#80848e"),
}
AVATAR = 32


def presence_color(status: str) -> QColor:
    return PRESENCE_COLORS.get(status, PRESENCE_COLORS["offline"])


class MemberDelegate(QStyledItemDelegate):
    def __init__(self, session: AppSession, model: MemberListModel, view: QListView) -> None:
        super().__init__(view)
        self._session = session
        self._model = model
        self._view = view
        self._avatars: ImageCache | None = None

    def sizeHint(self, option: QStyleOptionViewItem, index: Index) -> QSize:
        return QSize(200, 28 if index.data(IsHeaderRole) else AVATAR + 10)

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: Index) -> None:
        rect: QRect = option.rect
        palette: QPalette = option.palette
        state = option.state
        painter.save()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        font = QFont(option.font)
        text = str(index.data())
        if index.data(IsHeaderRole):
            font.setBold(True)
            font.setPointSizeF(font.pointSizeF() * 0.85)
            painter.setFont(font)
            color = index.data(RoleColorRole)
            painter.setPen(
                color
                if isinstance(color, QColor)
                else palette.color(QPalette.ColorRole.PlaceholderText)
            )
            painter.drawText(
                rect.adjusted(12, 6, -8, 0),
                Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignLeft,
                text,
            )
            painter.restore()
            return

        status = str(index.data(PresenceRole) or "offline")
        offline = status in ("offline", "invisible")
        box = rect.adjusted(6, 1, -6, -1)
        if state & (QStyle.StateFlag.State_Selected | QStyle.StateFlag.State_MouseOver):
            highlight = palette.color(QPalette.ColorRole.Highlight)
            highlight.setAlpha(70)
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(highlight)
            painter.drawRoundedRect(box, 4, 4)

        avatar = QRect(box.left() + 4, box.center().y() - AVATAR // 2, AVATAR, AVATAR)
        painter.setOpacity(0.4 if offline else 1.0)
        painter.setFont(font)
        paint_avatar(
            painter,
            avatar,
            self._picture(index, painter.device().devicePixelRatioF()),
            palette.color(QPalette.ColorRole.Button),
            palette.color(QPalette.ColorRole.ButtonText),
            text,
        )
        painter.setOpacity(1.0)

        dot = QRect(avatar.right() - 10, avatar.bottom() - 10, 12, 12)
        painter.setPen(palette.color(QPalette.ColorRole.Base))
        painter.setBrush(presence_color(status))
        painter.drawEllipse(dot)

        color = index.data(RoleColorRole)
        name_color = color if isinstance(color, QColor) else palette.color(QPalette.ColorRole.Text)
        if offline:
            name_color = QColor(name_color)
            name_color.setAlpha(120)
        painter.setPen(name_color)
        name_rect = box.adjusted(AVATAR + 14, 0, -4, 0)
        elided = painter.fontMetrics().elidedText(
            text, Qt.TextElideMode.ElideRight, name_rect.width()
        )
        painter.drawText(
            name_rect, Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignLeft, elided
        )
        painter.restore()

    def _picture(self, index: Index, ratio: float) -> QPixmap | None:
        image_hash = index.data(AvatarRole)
        guild_id = self._model.guild_id
        if not image_hash or guild_id is None:
            return None
        if self._avatars is None:
            self._avatars = avatars_for(self._session)
            self._avatars.image_ready.connect(self._image_ready)
        return self._avatars.avatar(
            guild_id, int(index.data(UserIdRole)), image_hash, AVATAR, ratio
        )

    def _image_ready(self, key: ImageKey) -> None:
        if key.kind != "avatar":
            return
        row = self._model.row_of_user(key.owner_id)
        if row >= 0:
            self._view.update(self._model.index(row))


class MemberList(QWidget):
    def __init__(self, session: AppSession, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("MemberList")
        self.model = MemberListModel(session, self)
        self.list = QListView(self)
        self.list.setModel(self.model)
        self.list.setItemDelegate(MemberDelegate(session, self.model, self.list))
        self.list.setAccessibleName("Members")
        self.list.setMouseTracking(True)
        self.list.setFrameShape(QListView.Shape.NoFrame)
        self.list.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.list.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.list)
        self.setMinimumWidth(200)

    def set_guild(self, guild_id: int | None) -> None:
        if guild_id != self.model.guild_id:
            self.model.set_guild(guild_id)
