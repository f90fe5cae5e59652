"""The channel list of one community: collapsible categories, channels with their
glyph, unread in bold, mention badges, muted dimmed, and per-channel notification menu.
Voice channels join on click and list the people in them, with mute and deafen icons, a
ring while they speak, and a volume slider on right-click.

Members with Manage Channels drag channels and categories to reorder them (a line shows
where they land), or move the selected one with Alt+Shift+Up/Down or the context menu's
"Move up" / "Move down"; a move the relay refuses is taken back and says why."""

from __future__ import annotations

from nexus_protocol.models import ChannelType

from ..avatars import ImageCache, ImageKey, avatars_for, paint_avatar
from ..models.channels import (
    PERSON_KIND,
    ChannelIdRole,
    ChannelTreeModel,
    EncryptedRole,
    InVoiceRole,
    KindRole,
    MentionRole,
    MutedRole,
    SpeakingRole,
    UnreadRole,
    VoiceAvatarRole,
    VoiceDeafRole,
    VoiceMutedRole,
    VoiceUserRole,
    load_collapsed,
    read_states_for,
    save_collapsed,
)
from ..notifications import LEVELS, Level, notification_settings_for
from ..qt import (
    QAbstractItemView,
    QApplication,
    QColor,
    QDrag,
    QDragEnterEvent,
    QDragMoveEvent,
    QEvent,
    QFont,
    QFontMetrics,
    QItemSelectionModel,
    QKeyEvent,
    QKeySequence,
    QLabel,
    QMenu,
    QModelIndex,
    QMouseEvent,
    QObject,
    QPainter,
    QPalette,
    QPen,
    QPersistentModelIndex,
    QPixmap,
    QPoint,
    QRect,
    QSize,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    Qt,
    QTimer,
    QTreeView,
    QVBoxLayout,
    QWidget,
    Signal,
)
from ..session import AppSession
from .locks import draw_lock
from .voice_panel import GREEN, VolumePopup, paint_voice_icon

Index = QModelIndex | QPersistentModelIndex

GLYPHS = {
    ChannelType.GUILD_TEXT: "#",
    ChannelType.GUILD_VOICE: "🔊",
    ChannelType.GUILD_ANNOUNCEMENT: "📢",
}
MUTE_CHOICES: tuple[tuple[str, float | None], ...] = (
    ("For 15 minutes", 15 * 60),
    ("For 1 hour", 60 * 60),
    ("For 8 hours", 8 * 60 * 60),
    ("For 24 hours", 24 * 60 * 60),
    ("Until I turn it back on", None),
)
LEVEL_LABELS: dict[Level, str] = {
    "all": "All messages",
    "mentions": "Only @mentions",
    "nothing": "Nothing",
}


# Without an emoji font (many Linux desktops) the picture glyphs would be boxes.
FALLBACK_GLYPHS = {ChannelType.GUILD_VOICE: "♪", ChannelType.GUILD_ANNOUNCEMENT: "⚑"}


def channel_glyph(kind: int | None, metrics: QFontMetrics) -> str:
    channel_type = ChannelType(kind) if kind is not None else ChannelType.GUILD_TEXT
    glyph = GLYPHS.get(channel_type, "#")
    if not metrics.inFontUcs4(ord(glyph)):
        glyph = FALLBACK_GLYPHS.get(channel_type, "#")
    return glyph


class ChannelDelegate(QStyledItemDelegate):
    """Glyph + name, a category arrow, and a mention badge on the right; under a voice
    channel, the people in it."""

    def __init__(self, session: AppSession, model: ChannelTreeModel, view: QTreeView) -> None:
        super().__init__(view)
        self._session = session
        self._model = model
        self._view = view
        self._avatars: ImageCache | None = None

    def sizeHint(self, option: QStyleOptionViewItem, index: Index) -> QSize:
        size = super().sizeHint(option, index)
        return QSize(size.width(), max(size.height(), 30))

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: Index) -> None:
        kind = index.data(KindRole)
        rect: QRect = option.rect
        palette: QPalette = option.palette
        state = option.state
        if kind == PERSON_KIND:
            self._paint_person(painter, option, index)
            return
        painter.save()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        if kind == ChannelType.GUILD_CATEGORY:
            expanded = bool(state & QStyle.StateFlag.State_Open)
            font = QFont(option.font)
            font.setBold(True)
            font.setPointSizeF(font.pointSizeF() * 0.85)
            painter.setFont(font)
            painter.setPen(palette.color(QPalette.ColorRole.PlaceholderText))
            text_rect = rect.adjusted(4, 0, -4, 0)
            arrow = "▾" if expanded else "▸"
            painter.drawText(
                text_rect,
                Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignLeft,
                f"{arrow} {index.data()}",
            )
            painter.restore()
            return

        selected = bool(state & QStyle.StateFlag.State_Selected)
        hovered = bool(state & QStyle.StateFlag.State_MouseOver)
        box = rect.adjusted(4, 1, -4, -1)
        if selected or hovered:
            highlight = palette.color(QPalette.ColorRole.Highlight)
            if not selected:
                highlight.setAlpha(60)
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(highlight)
            painter.drawRoundedRect(box, 4, 4)
        if state & QStyle.StateFlag.State_HasFocus:
            painter.setPen(palette.color(QPalette.ColorRole.Highlight).lighter(140))
            painter.setBrush(Qt.BrushStyle.NoBrush)
            painter.drawRoundedRect(box, 4, 4)

        muted = bool(index.data(MutedRole))
        unread = bool(index.data(UnreadRole))
        color = palette.color(
            QPalette.ColorRole.HighlightedText if selected else QPalette.ColorRole.Text
        )
        if not unread and not selected:
            color = palette.color(QPalette.ColorRole.PlaceholderText)
        if muted:
            color.setAlpha(110)

        in_voice = bool(index.data(InVoiceRole))
        if in_voice:
            color = palette.color(QPalette.ColorRole.Text)
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(GREEN)
            painter.drawRoundedRect(QRect(box.left(), box.top() + 6, 3, box.height() - 12), 1, 1)
        font = QFont(option.font)
        font.setBold(unread or in_voice)
        painter.setFont(font)
        painter.setPen(color)
        glyph_rect = QRect(box.left() + 6, box.top(), 20, box.height())
        glyph = channel_glyph(kind, painter.fontMetrics())
        painter.drawText(glyph_rect, Qt.AlignmentFlag.AlignCenter, glyph)

        mentions = int(index.data(MentionRole) or 0)
        badge_width = 0
        if mentions:
            text = str(mentions) if mentions < 100 else "99+"
            badge_width = max(18, painter.fontMetrics().horizontalAdvance(text) + 10)
            badge = QRect(box.right() - badge_width - 4, box.center().y() - 8, badge_width, 16)
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(QColor("#f23f43"))  # the mention red reads on any theme
            painter.drawRoundedRect(badge, 8, 8)
            painter.setPen(QColor("white"))
            painter.drawText(badge, Qt.AlignmentFlag.AlignCenter, text)
            painter.setPen(color)

        lock_width = 0
        if index.data(EncryptedRole):
            lock_width = 18
            draw_lock(painter, box.right() - badge_width - 26, box.center().y(), color)
        name_rect = box.adjusted(30, 0, -(badge_width + lock_width + 10), 0)
        name = painter.fontMetrics().elidedText(
            str(index.data()), Qt.TextElideMode.ElideRight, name_rect.width()
        )
        painter.drawText(
            name_rect, Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignLeft, name
        )
        painter.restore()

    def _picture(self, index: Index, ratio: float) -> QPixmap | None:
        guild_id = self._model.guild_id
        if guild_id is None:
            return None
        if self._avatars is None:
            self._avatars = avatars_for(self._session)
            self._avatars.image_ready.connect(self._image_ready)
            self._avatars.user_changed.connect(lambda _user: self._view.viewport().update())
        user_id = int(index.data(VoiceUserRole))
        # The voice state's record may predate a new avatar: the cache knows the latest.
        image_hash = self._avatars.user_hash(user_id, index.data(VoiceAvatarRole))
        return self._avatars.avatar(guild_id, user_id, image_hash, AVATAR, ratio)

    def _image_ready(self, key: ImageKey) -> None:
        if key.kind == "avatar":
            self._view.viewport().update()  # a handful of people rows: repaint them all

    def _paint_person(self, painter: QPainter, option: QStyleOptionViewItem, index: Index) -> None:
        """Indented under its channel: avatar (ringed green while speaking), name, then
        mute and deafen icons on the right."""
        rect: QRect = option.rect
        palette: QPalette = option.palette
        painter.save()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        box = rect.adjusted(PERSON_INDENT, 1, -4, -1)
        if option.state & (QStyle.StateFlag.State_MouseOver | QStyle.StateFlag.State_HasFocus):
            highlight = palette.color(QPalette.ColorRole.Highlight)
            highlight.setAlpha(60)
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(highlight)
            painter.drawRoundedRect(box, 4, 4)
        name = str(index.data())
        speaking = bool(index.data(SpeakingRole))
        avatar = QRect(box.left() + 4, box.center().y() - AVATAR // 2, AVATAR, AVATAR)
        small = QFont(option.font)
        small.setPointSizeF(small.pointSizeF() * 0.8)
        painter.setFont(small)
        paint_avatar(
            painter,
            avatar,
            self._picture(index, painter.device().devicePixelRatioF()),
            palette.color(QPalette.ColorRole.Highlight),
            palette.color(QPalette.ColorRole.HighlightedText),
            name,
        )
        if speaking:
            ring = QPen(GREEN)
            ring.setWidth(2)
            painter.setPen(ring)
            painter.setBrush(Qt.BrushStyle.NoBrush)
            painter.drawEllipse(avatar.adjusted(-2, -2, 2, 2))

        icons: list[tuple[str, bool]] = []
        if index.data(VoiceMutedRole) or index.data(VoiceDeafRole):
            icons.append(("mic", True))
        if index.data(VoiceDeafRole):
            icons.append(("headphones", True))
        right = box.right() - 4
        muted_color = palette.color(QPalette.ColorRole.PlaceholderText)
        for kind, slashed in reversed(icons):
            icon_rect = QRect(right - 16, box.center().y() - 8, 16, 16)
            paint_voice_icon(painter, icon_rect, kind, muted_color, slashed=slashed)
            right -= 20
        painter.setFont(option.font)
        color = palette.color(QPalette.ColorRole.Text)
        if not speaking:
            color = palette.color(QPalette.ColorRole.PlaceholderText)
        painter.setPen(color)
        name_rect = QRect(avatar.right() + 8, box.top(), right - avatar.right() - 10, box.height())
        shown = painter.fontMetrics().elidedText(
            name, Qt.TextElideMode.ElideRight, name_rect.width()
        )
        painter.drawText(
            name_rect, Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignLeft, shown
        )
        painter.restore()


PERSON_INDENT = 28  # people sit under their channel's name, past its glyph
AVATAR = 20
MOVE_ERROR_MS = 10_000  # how long a refused move's explanation stays


class ChannelTree(QTreeView):
    """The tree, dragging the row under the pointer. Qt's own drag takes the selected
    rows, but categories and voice channels are never selected (the open channel is),
    so pressing one and dragging would move the open channel instead."""

    drag_finished = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._pressed: tuple[QPersistentModelIndex, QPoint] | None = None
        self.setDragEnabled(False)  # drags start in mouseMoveEvent, from the pressed row
        self.setAcceptDrops(True)
        self.setDropIndicatorShown(True)
        self.setDefaultDropAction(Qt.DropAction.MoveAction)

    def mousePressEvent(self, event: QMouseEvent) -> None:
        index = self.indexAt(event.position().toPoint())
        model = self.model()
        draggable = (
            event.button() == Qt.MouseButton.LeftButton
            and index.isValid()
            and model is not None
            and bool(model.flags(index) & Qt.ItemFlag.ItemIsDragEnabled)
        )
        self._pressed = (
            (QPersistentModelIndex(index), event.position().toPoint()) if draggable else None
        )
        super().mousePressEvent(event)

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        if self._pressed is not None and event.buttons() & Qt.MouseButton.LeftButton:
            index, start = self._pressed
            travelled = (event.position().toPoint() - start).manhattanLength()
            if travelled >= QApplication.startDragDistance() and index.isValid():
                self._pressed = None
                self.drag(self.model().index(index.row(), 0, index.parent()))
                return
        super().mouseMoveEvent(event)

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:
        self._pressed = None
        super().mouseReleaseEvent(event)

    def drag(self, index: QModelIndex) -> None:
        """Drag the row at ``index`` (returns once it was dropped or abandoned)."""
        data = self.model().mimeData([index])
        if not data.formats():
            return
        drag = QDrag(self)
        drag.setMimeData(data)
        drag.setPixmap(self.viewport().grab(self.visualRect(index)))
        drag.exec(Qt.DropAction.MoveAction)
        self.setState(QAbstractItemView.State.NoState)
        self.drag_finished.emit()

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        # Taken even where the pointer enters at a spot no drop fits, so the line
        # appears as soon as it reaches one (Qt would refuse the whole drag).
        model = self.model()
        if isinstance(model, ChannelTreeModel) and model.dragged_channel(event.mimeData()):
            self.setState(QAbstractItemView.State.DraggingState)
            event.acceptProposedAction()
        else:
            event.ignore()

    def dragMoveEvent(self, event: QDragMoveEvent) -> None:
        super().dragMoveEvent(event)
        # No line where the channel cannot land (Qt would leave the last one drawn).
        self.setDropIndicatorShown(event.isAccepted())
        self.viewport().update()


class ChannelList(QWidget):
    channel_selected = Signal(object)  # channel id: snowflakes overflow a Qt int

    def __init__(self, session: AppSession, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("ChannelList")
        self._session = session
        self._read_states = read_states_for(session)
        #: Keys that jump to the previous / next unread channel (the main window sets
        #: them from Settings → Keybinds).
        self.unread_keys = (QKeySequence("Alt+Up"), QKeySequence("Alt+Down"))
        self.settings = notification_settings_for(session)
        self.model = ChannelTreeModel(session, self._read_states, self.settings.is_muted, self)
        self.settings.changed.connect(self._on_settings_changed)
        self._collapsed: set[int] = set()

        self.title = QLabel(self)
        self.title.setObjectName("ChannelListTitle")
        self.title.setTextFormat(Qt.TextFormat.PlainText)  # community names are user text
        font = self.title.font()
        font.setBold(True)
        self.title.setFont(font)
        self.title.setContentsMargins(12, 10, 12, 10)

        self.move_error = QLabel(self)
        self.move_error.setObjectName("ErrorLabel")
        self.move_error.setTextFormat(Qt.TextFormat.PlainText)  # holds channel names
        self.move_error.setWordWrap(True)
        self.move_error.setContentsMargins(12, 4, 12, 4)
        self.move_error.setAccessibleName("Channel move error")
        self.move_error.hide()
        self._move_error_timer = QTimer(self)
        self._move_error_timer.setSingleShot(True)
        self._move_error_timer.setInterval(MOVE_ERROR_MS)
        self._move_error_timer.timeout.connect(self.move_error.hide)
        self.model.move_failed.connect(self._show_move_error)
        self.model.move_accepted.connect(self.move_error.hide)
        #: Keys that move the current channel or category up / down (for managers).
        self.move_keys = (QKeySequence("Alt+Shift+Up"), QKeySequence("Alt+Shift+Down"))

        self.tree = ChannelTree(self)
        self.tree.setModel(self.model)
        self.tree.setItemDelegate(ChannelDelegate(session, self.model, self.tree))
        self.tree.setHeaderHidden(True)
        self.tree.setRootIsDecorated(False)  # the delegate draws the category arrow
        self.tree.setIndentation(0)
        self.tree.setUniformRowHeights(True)
        self.tree.setMouseTracking(True)
        self.tree.setFrameShape(QTreeView.Shape.NoFrame)
        self.tree.setExpandsOnDoubleClick(False)
        self.tree.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.tree.setAccessibleName("Channels")
        self.tree.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.tree.customContextMenuRequested.connect(self._show_menu)
        self.tree.clicked.connect(self._on_clicked)
        self.tree.activated.connect(self._on_activated)
        self.tree.collapsed.connect(lambda index: self._remember(index, collapsed=True))
        self.tree.expanded.connect(lambda index: self._remember(index, collapsed=False))
        self.tree.installEventFilter(self)
        self.tree.drag_finished.connect(self._keep_open_channel_selected)
        self.model.layoutChanged.connect(self._apply_expansion)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(self.title)
        layout.addWidget(self.move_error)
        layout.addWidget(self.tree, 1)
        session.guilds_changed.connect(self._update_title)

    # Public ------------------------------------------------------------------------------

    def set_guild(self, guild_id: int | None) -> None:
        if guild_id == self.model.guild_id:
            return
        self.model.set_guild(guild_id)
        self._collapsed = load_collapsed(
            self._session.account_for_guild(guild_id) if guild_id else None
        )
        self._apply_expansion()
        self._update_title()

    def select_channel(self, channel_id: int) -> None:
        """Open ``channel_id`` (switching community if needed), as the quick switcher does."""
        channel = self._session.channel(channel_id)
        if channel is None:
            return
        if channel.guild_id != self.model.guild_id:
            self.set_guild(channel.guild_id)
        index = self.model.index_of(channel_id)
        if index.isValid():
            self.tree.expand(index.parent()) if index.parent().isValid() else None
            self.tree.setCurrentIndex(index)
            self._open(index)

    def current_channel(self) -> int | None:
        index = self.tree.currentIndex()
        channel_id = index.data(ChannelIdRole) if index.isValid() else None
        return int(channel_id) if channel_id is not None else None

    def visible_names(self) -> list[str]:
        """Rows as shown, top to bottom (categories upper-case), for people and tests."""
        names: list[str] = []
        index = self.model.index(0, 0)
        while index.isValid():
            names.append(str(index.data()))
            index = self.tree.indexBelow(index)
        return names

    # Opening channels ----------------------------------------------------------------------

    def _open(self, index: QModelIndex) -> None:
        channel_id = index.data(ChannelIdRole)
        if channel_id is None or index.data(KindRole) == ChannelType.GUILD_CATEGORY:
            return
        previous = self._read_states.current_channel
        self._read_states.open_channel(int(channel_id))
        if previous is not None:
            self.model.refresh_channel(previous)
        self.model.refresh_channel(int(channel_id))
        channel = self._session.channel(int(channel_id))
        if channel is not None and channel.guild_id is not None:
            self._session.remember_last_channel(channel.guild_id, int(channel_id))
        self.channel_selected.emit(int(channel_id))

    def _on_clicked(self, index: QModelIndex) -> None:
        kind = index.data(KindRole)
        if kind == ChannelType.GUILD_CATEGORY:
            self.tree.setExpanded(index, not self.tree.isExpanded(index))
        elif kind == ChannelType.GUILD_VOICE:
            # A voice channel has no messages: joining it leaves the open channel open.
            self._session.voice.join(int(index.data(ChannelIdRole)))
            self._keep_open_channel_selected()
        elif kind == PERSON_KIND:
            self._keep_open_channel_selected()
        else:
            self._open(index)

    def _keep_open_channel_selected(self) -> None:
        open_channel = self._read_states.current_channel
        index = self.model.index_of(open_channel) if open_channel is not None else QModelIndex()
        selection = self.tree.selectionModel()
        if index.isValid() and not selection.isSelected(index):
            selection.select(index, QItemSelectionModel.SelectionFlag.ClearAndSelect)

    def _on_activated(self, index: QModelIndex) -> None:
        # Enter on a category toggles it, on a channel opens it.
        self._on_clicked(index)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if watched is self.tree and event.type() == QEvent.Type.KeyPress:
            assert isinstance(event, QKeyEvent)
            pressed = QKeySequence(event.keyCombination())
            previous, following = self.unread_keys
            if not pressed.isEmpty() and pressed in (previous, following):
                self.jump_to_unread(forward=pressed == following)
                return True
            up, down = self.move_keys
            if not pressed.isEmpty() and pressed in (up, down):
                self.move_current(up=pressed == up)
                return True
            if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
                index = self.tree.currentIndex()
                if index.isValid():
                    self._on_clicked(index)
                return True
            menu_key = event.key() == Qt.Key.Key_Menu or (
                event.key() == Qt.Key.Key_F10
                and event.modifiers() & Qt.KeyboardModifier.ShiftModifier
            )
            if menu_key and self.tree.currentIndex().isValid():
                self._show_menu(self.tree.visualRect(self.tree.currentIndex()).center())
                return True
        return super().eventFilter(watched, event)

    def jump_to_unread(self, *, forward: bool) -> None:
        """Alt+Down / Alt+Up: the next or previous unread channel, opened."""
        rows: list[QModelIndex] = []
        for row in range(self.model.rowCount()):
            top = self.model.index(row, 0)
            rows.append(top)
            rows.extend(self.model.index(r, 0, top) for r in range(self.model.rowCount(top)))
        current = self.tree.currentIndex()
        position = next((i for i, ix in enumerate(rows) if ix == current), -1)
        order = rows[position + 1 :] if forward else list(reversed(rows[: max(position, 0)]))
        target = next((ix for ix in order if ix.data(UnreadRole)), None)
        if target is not None:
            if target.parent().isValid():
                self.tree.expand(target.parent())
            self.tree.setCurrentIndex(target)
            self._open(target)

    # Reordering ----------------------------------------------------------------------------

    def move_current(self, *, up: bool) -> bool:
        """Move the current channel or category one place (Alt+Shift+Up/Down)."""
        channel_id = self.tree.currentIndex().data(ChannelIdRole)
        return channel_id is not None and self.model.move_step(int(channel_id), up=up)

    def _add_move_actions(self, menu: QMenu, channel_id: int) -> None:
        if not self.model.can_reorder():
            return
        menu.addSeparator()
        for label, up, keys in (
            ("Move up", True, self.move_keys[0]),
            ("Move down", False, self.move_keys[1]),
        ):
            action = menu.addAction(label)
            action.setShortcut(keys)  # shown in the menu; the tree's key filter acts on it
            action.setEnabled(self.model.can_step(channel_id, up=up))
            action.triggered.connect(lambda _=False, up=up: self.model.move_step(channel_id, up=up))

    def _show_move_error(self, text: str) -> None:
        self.move_error.setText(text)
        self.move_error.show()
        self._move_error_timer.start()

    # Categories --------------------------------------------------------------------------

    def _apply_expansion(self) -> None:
        for row in range(self.model.rowCount()):
            index = self.model.index(row, 0)
            if index.data(KindRole) == ChannelType.GUILD_CATEGORY:
                self.tree.setExpanded(index, index.data(ChannelIdRole) not in self._collapsed)

    def _remember(self, index: QModelIndex, *, collapsed: bool) -> None:
        category = index.data(ChannelIdRole)
        if category is None or (category in self._collapsed) == collapsed:
            return
        if collapsed:
            self._collapsed.add(category)
        else:
            self._collapsed.discard(category)
        guild_id = self.model.guild_id
        save_collapsed(
            self._session.account_for_guild(guild_id) if guild_id else None, self._collapsed
        )

    # Context menu: notifications -------------------------------------------------------------

    def channel_menu(self, channel_id: int) -> QMenu:
        """The per-channel menu (built fresh; tests and keyboard users can reach it too)."""
        menu = QMenu(self)
        menu.setAccessibleName("Channel options")
        read = menu.addAction("Mark as read")
        read.triggered.connect(lambda: self._mark_read(channel_id))
        levels = menu.addMenu("Notifications")
        current = self.settings.level(channel_id)
        for level in LEVELS:
            action = levels.addAction(LEVEL_LABELS[level])
            action.setCheckable(True)
            action.setChecked(level == current)
            action.triggered.connect(
                lambda _=False, lv=level: self.settings.set_level(channel_id, lv)
            )
        if self.settings.is_muted(channel_id):
            unmute = menu.addAction("Unmute channel")
            unmute.triggered.connect(lambda: self.settings.unmute(channel_id))
        else:
            mute = menu.addMenu("Mute channel")
            for label, seconds in MUTE_CHOICES:
                action = mute.addAction(label)
                action.triggered.connect(
                    lambda _=False, s=seconds: self.settings.mute(channel_id, s)
                )
        self._add_move_actions(menu, channel_id)
        return menu

    def category_menu(self, category_id: int) -> QMenu | None:
        """A category's menu: moving it, for members who may (None for the others)."""
        if not self.model.can_reorder():
            return None
        menu = QMenu(self)
        menu.setAccessibleName("Category options")
        self._add_move_actions(menu, category_id)
        return menu

    def volume_popup(self, index: QModelIndex) -> VolumePopup | None:
        """The volume slider of the person at ``index`` (built fresh, not yet shown)."""
        user_id = index.data(VoiceUserRole) if index.isValid() else None
        me = self._session.me(int(self.model.guild_id or 0))
        if user_id is None or (me is not None and me.id == user_id):
            return None  # your own voice has no volume here: that is the input level
        popup = VolumePopup(self._session.voice, int(user_id), str(index.data()), self)
        popup.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        return popup

    def _show_menu(self, point: QPoint) -> None:
        index = self.tree.indexAt(point)
        if index.isValid() and index.data(KindRole) == PERSON_KIND:
            popup = self.volume_popup(index)
            if popup is not None:
                popup.move(self.tree.viewport().mapToGlobal(point))
                popup.show()
                popup.setFocus()
            return
        channel_id = index.data(ChannelIdRole) if index.isValid() else None
        if channel_id is None:
            return
        if index.data(KindRole) == ChannelType.GUILD_CATEGORY:
            menu = self.category_menu(int(channel_id))
            if menu is None:
                return
        else:
            menu = self.channel_menu(int(channel_id))
        menu.exec(self.tree.viewport().mapToGlobal(point))
        menu.deleteLater()

    def _mark_read(self, channel_id: int) -> None:
        self._read_states.mark_read(channel_id)

    def _on_settings_changed(self, _changed_id: object) -> None:
        # A community-wide level or a keyword can touch every row; repainting is cheap.
        self.model.refresh_all()

    def _update_title(self) -> None:
        guild = self._session.guild(self.model.guild_id) if self.model.guild_id else None
        self.title.setText(guild.name if guild else "")
