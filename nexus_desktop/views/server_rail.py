"""The community rail: every account's communities as rounded icons (their picture, or
initials), with unread pills and mention badges, and buttons to create or join one."""

from __future__ import annotations

from ..avatars import ImageCache, ImageKey, Shape, avatars_for
from ..models.channels import read_states_for
from ..models.guilds import GuildIdRole, GuildListModel, InitialsRole, MentionRole, UnreadRole
from ..notifications import notification_settings_for
from ..qt import (
    QAbstractItemView,
    QColor,
    QFont,
    QItemSelectionModel,
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
    QTimer,
    QToolButton,
    QVBoxLayout,
    QWidget,
    Signal,
)
from ..session import AppSession

ICON = 48
ROW = ICON + 8
RAIL_WIDTH = 72


class GuildIconDelegate(QStyledItemDelegate):
    """Draws what Discord draws: the community's icon, or initials on a circle, turning
    into a rounded square when hovered or selected; a white pill on the left for unread
    or selected, a red mention count bottom-right."""

    def __init__(self, session: AppSession, model: GuildListModel, view: QListView) -> None:
        super().__init__(view)
        self._session = session
        self._model = model
        self._view = view
        self._avatars: ImageCache | None = None

    def sizeHint(
        self, option: QStyleOptionViewItem, index: QModelIndex | QPersistentModelIndex
    ) -> QSize:
        return QSize(RAIL_WIDTH, ROW)

    def paint(
        self,
        painter: QPainter,
        option: QStyleOptionViewItem,
        index: QModelIndex | QPersistentModelIndex,
    ) -> None:
        palette = option.palette
        rect: QRect = option.rect
        selected = bool(option.state & QStyle.StateFlag.State_Selected)
        hovered = bool(option.state & QStyle.StateFlag.State_MouseOver)
        focused = bool(option.state & QStyle.StateFlag.State_HasFocus)
        painter.save()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        icon = QRect(rect.center().x() - ICON // 2, rect.top() + 4, ICON, ICON)

        # Unread / selected pill at the left edge.
        unread = bool(index.data(UnreadRole))
        if selected or unread or hovered:
            height = 40 if selected else (20 if hovered else 8)
            pill = QRect(rect.left() - 4, icon.center().y() - height // 2, 8, height)
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(palette.color(QPalette.ColorRole.WindowText))
            painter.drawRoundedRect(pill, 4, 4)

        radius = 16 if (selected or hovered) else ICON / 2
        shape = Shape.ROUNDED if (selected or hovered) else Shape.CIRCLE
        picture = self._picture(index, shape, painter.device().devicePixelRatioF())
        if picture is not None:
            painter.drawPixmap(icon.topLeft(), picture)
        else:
            fill = palette.color(
                QPalette.ColorRole.Highlight if selected else QPalette.ColorRole.Button
            )
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(fill)
            painter.drawRoundedRect(icon, radius, radius)
        if focused:
            painter.setPen(palette.color(QPalette.ColorRole.Highlight).lighter(150))
            painter.setBrush(Qt.BrushStyle.NoBrush)
            painter.drawRoundedRect(icon.adjusted(-2, -2, 2, 2), radius + 2, radius + 2)

        font = QFont(option.font)
        font.setBold(True)
        painter.setFont(font)
        if picture is None:
            painter.setPen(
                palette.color(
                    QPalette.ColorRole.HighlightedText
                    if selected
                    else QPalette.ColorRole.ButtonText
                )
            )
            painter.drawText(
                icon, Qt.AlignmentFlag.AlignCenter, str(index.data(InitialsRole) or "?")
            )

        mentions = int(index.data(MentionRole) or 0)
        if mentions:
            text = str(mentions) if mentions < 100 else "99+"
            small = QFont(font)
            small.setPointSizeF(max(7.0, font.pointSizeF() * 0.8))
            painter.setFont(small)
            width = max(18, painter.fontMetrics().horizontalAdvance(text) + 10)
            badge = QRect(icon.right() - width + 4, icon.bottom() - 14, width, 18)
            painter.setPen(palette.color(QPalette.ColorRole.Window))
            painter.setBrush(QColor("#f23f43"))  # Discord's mention red reads on any theme
            painter.drawRoundedRect(badge, 9, 9)
            painter.setPen(QColor("white"))
            painter.drawText(badge, Qt.AlignmentFlag.AlignCenter, text)
        painter.restore()

    def _picture(
        self, index: QModelIndex | QPersistentModelIndex, shape: Shape, ratio: float
    ) -> QPixmap | None:
        guild_id = index.data(GuildIdRole)
        guild = self._session.guild(guild_id) if guild_id is not None else None
        if guild is None or not guild.icon:
            return None
        if self._avatars is None:
            self._avatars = avatars_for(self._session)
            self._avatars.image_ready.connect(self._image_ready)
        # Both shapes are asked for, so hovering shows the picture at once; until the
        # one wanted is cut, the other stands in.
        other = Shape.CIRCLE if shape is Shape.ROUNDED else Shape.ROUNDED
        found = self._avatars.pixmap(
            guild.id, "icon", guild.id, guild.icon, ICON, ICON, ratio, shape
        )
        fallback = self._avatars.pixmap(
            guild.id, "icon", guild.id, guild.icon, ICON, ICON, ratio, other
        )
        return found or fallback

    def _image_ready(self, key: ImageKey) -> None:
        if key.kind == "icon":
            row = self._model.row_of(key.owner_id)
            if row >= 0:
                self._view.update(self._model.index(row))


class ServerRail(QWidget):
    guild_selected = Signal(object)  # guild id: snowflakes overflow a Qt int
    create_requested = Signal()
    join_requested = Signal()

    def __init__(self, session: AppSession, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("ServerRail")
        # A plain QWidget paints its style sheet's background only when asked to.
        self.setAttribute(Qt.WidgetAttribute.WA_StyledBackground, True)
        self.setFixedWidth(RAIL_WIDTH)
        self._session = session
        settings = notification_settings_for(session)
        self.model = GuildListModel(session, read_states_for(session), settings.is_muted, self)
        self._current: int | None = None

        self.list = QListView(self)
        self.list.setModel(self.model)
        self.list.setItemDelegate(GuildIconDelegate(session, self.model, self.list))
        self.list.setAccessibleName("Communities")
        self.list.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.list.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.list.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.list.setMouseTracking(True)  # hover shapes
        self.list.setFrameShape(QListView.Shape.NoFrame)
        self.list.selectionModel().currentChanged.connect(self._on_current_changed)
        self.list.activated.connect(self._on_current_changed)
        settings.changed.connect(lambda _id: self.list.viewport().update())

        self.create_button = self._button("+", "Create a community", self.create_requested.emit)
        self.join_button = self._button("⇲", "Join a community", self.join_requested.emit)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 8, 0, 8)
        layout.setSpacing(4)
        layout.addWidget(self.list, 1)
        layout.addWidget(self.create_button, 0, Qt.AlignmentFlag.AlignHCenter)
        layout.addWidget(self.join_button, 0, Qt.AlignmentFlag.AlignHCenter)

        self.model.modelReset.connect(self._restore_selection)
        self.model.rowsInserted.connect(self._restore_selection)
        # On the next turn of the loop, so whoever builds the rail has connected first.
        QTimer.singleShot(0, self._restore_selection)

    def _button(self, text: str, name: str, slot: object) -> QToolButton:
        button = QToolButton(self)
        button.setObjectName("RailButton")
        button.setText(text)
        button.setToolTip(name)
        button.setAccessibleName(name)
        button.setFixedSize(ICON, ICON)
        button.clicked.connect(slot)
        return button

    # Public ------------------------------------------------------------------------------

    def current_guild(self) -> int | None:
        return self._current

    def select_guild(self, guild_id: int) -> None:
        row = self.model.row_of(guild_id)
        if row >= 0:
            self.list.setCurrentIndex(self.model.index(row))

    def guild_names(self) -> list[str]:
        """What the rail shows, top to bottom (tooltips, for people and tests)."""
        return [
            str(self.model.index(row).data(Qt.ItemDataRole.DisplayRole))
            for row in range(self.model.rowCount())
        ]

    # Internals ----------------------------------------------------------------------------

    def _on_current_changed(self, index: QModelIndex) -> None:
        guild_id = index.data(GuildIdRole) if index.isValid() else None
        if guild_id is not None and guild_id != self._current:
            self._current = int(guild_id)
            self.guild_selected.emit(self._current)

    def _restore_selection(self) -> None:
        """After the list changed, keep the same community selected; with none yet,
        open the first one, as Discord opens a community rather than an empty window."""
        row = self.model.row_of(self._current) if self._current is not None else -1
        if row < 0 and self.model.rowCount() > 0:
            row = 0
        if row < 0:
            return
        index = self.model.index(row)
        self.list.selectionModel().setCurrentIndex(
            index, QItemSelectionModel.SelectionFlag.ClearAndSelect
        )
