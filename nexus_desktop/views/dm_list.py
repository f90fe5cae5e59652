"""The DM list: encrypted conversations, one-to-one and groups (a lock on each, a dot
when unread), a "New message" button that picks someone from a community you share and
a "New group" button beside it."""

from __future__ import annotations

from ..models.dms import BlockedRole, ChannelIdRole, DMListModel, UnreadRole, VerifiedRole
from ..qt import (
    QColor,
    QDialog,
    QDialogButtonBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListView,
    QListWidget,
    QListWidgetItem,
    QMenu,
    QModelIndex,
    QPainter,
    QPersistentModelIndex,
    QPoint,
    QPushButton,
    QRect,
    QSize,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    Qt,
    QVBoxLayout,
    QWidget,
    Signal,
)
from ..session import Account, AppSession, describe_error
from .group_dialogs import PeoplePicker, new_group_dialog, shared_people
from .locks import draw_lock

Index = QModelIndex | QPersistentModelIndex


class DMDelegate(QStyledItemDelegate):
    """Lock glyph, name, a ✓ when verified (⚠ when the safety number changed), and
    an unread dot on the right."""

    def sizeHint(self, option: QStyleOptionViewItem, index: Index) -> QSize:
        return QSize(180, max(30, option.fontMetrics.height() + 14))

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: Index) -> None:
        painter.save()
        palette = option.palette
        rect = QRect(option.rect)
        selected = bool(option.state & QStyle.StateFlag.State_Selected)
        if selected:
            painter.fillRect(rect, palette.highlight())
        text_color = palette.highlightedText().color() if selected else palette.text().color()
        unread = bool(index.data(UnreadRole))
        font = option.font
        font.setBold(unread)
        painter.setFont(font)
        painter.setPen(text_color)
        metrics = option.fontMetrics
        x = rect.left() + 8
        draw_lock(painter, x + 2, rect.center().y(), text_color)
        x += 24
        badge = "⚠" if index.data(BlockedRole) else "✓" if index.data(VerifiedRole) else ""
        name_width = rect.right() - x - 28
        name = metrics.elidedText(
            str(index.data(Qt.ItemDataRole.DisplayRole) or ""),
            Qt.TextElideMode.ElideRight,
            max(name_width - (16 if badge else 0), 10),
        )
        painter.drawText(
            QRect(x, rect.top(), name_width, rect.height()),
            Qt.AlignmentFlag.AlignVCenter,
            f"{name} {badge}".rstrip(),
        )
        if unread:
            painter.setRenderHint(QPainter.RenderHint.Antialiasing)
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(QColor("#f23f43") if not selected else text_color)
            diameter = 8
            painter.drawEllipse(
                rect.right() - 14, rect.center().y() - diameter // 2, diameter, diameter
            )
        painter.restore()


class NewDMDialog(QDialog):
    """Pick a member of a community you share with them (the relay allows a DM with
    anyone who shares a community, or already has a DM with you)."""

    def __init__(self, session: AppSession, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("New message")
        self._session = session
        layout = QVBoxLayout(self)
        hint = QLabel("Send an end-to-end encrypted message to someone in a community you share.")
        hint.setWordWrap(True)
        layout.addWidget(hint)
        self.filter = QLineEdit()
        self.filter.setPlaceholderText("Find someone")
        self.filter.setAccessibleName("Find someone")
        layout.addWidget(self.filter)
        self.people = QListWidget()
        self.people.setAccessibleName("People")
        layout.addWidget(self.people, 1)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        self.ok = buttons.button(QDialogButtonBox.StandardButton.Ok)
        self.ok.setText("Message")
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)
        self._candidates = self._collect()
        self.filter.textChanged.connect(self._fill)
        self.people.itemDoubleClicked.connect(lambda _item: self.accept())
        self.people.currentRowChanged.connect(lambda _row: self._update_ok())
        self._fill("")

    def _collect(self) -> list[tuple[Account, int, str, str]]:
        """(account, user id, name, community names) of everyone sharing a community."""
        return shared_people(self._session)

    def _fill(self, text: str) -> None:
        self.people.clear()
        needle = text.casefold().strip()
        for account, user_id, name, guilds in self._candidates:
            if needle and needle not in name.casefold():
                continue
            item = QListWidgetItem(f"{name}  ·  {guilds}")
            item.setData(Qt.ItemDataRole.UserRole, (account, user_id))
            self.people.addItem(item)
        if self.people.count():
            self.people.setCurrentRow(0)
        self._update_ok()

    def _update_ok(self) -> None:
        self.ok.setEnabled(self.people.currentItem() is not None)

    def choose(self, user_id: int) -> bool:
        """Select ``user_id`` (tests and keyboard users); False if not listed."""
        for row in range(self.people.count()):
            account_user = self.people.item(row).data(Qt.ItemDataRole.UserRole)
            if account_user[1] == user_id:
                self.people.setCurrentRow(row)
                return True
        return False

    def chosen(self) -> tuple[Account, int] | None:
        item = self.people.currentItem()
        if item is None:
            return None
        account, user_id = item.data(Qt.ItemDataRole.UserRole)
        return account, int(user_id)


class DMList(QWidget):
    """The list of encrypted DMs; ``dm_selected(channel_id)`` when one is opened."""

    dm_selected = Signal(object)  # channel_id

    def __init__(self, session: AppSession, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._session = session
        self.setObjectName("DMList")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        title = QLabel("Direct messages")
        title.setObjectName("DMListTitle")
        layout.addWidget(title)
        self.new_button = QPushButton("New message")
        self.new_button.setToolTip("Start an end-to-end encrypted conversation")
        self.new_button.clicked.connect(self.new_message)
        self.new_group_button = QPushButton("New group")
        self.new_group_button.setToolTip("Start an end-to-end encrypted group (3 to 10 people)")
        self.new_group_button.clicked.connect(self.new_group)
        buttons = QHBoxLayout()
        buttons.addWidget(self.new_button)
        buttons.addWidget(self.new_group_button)
        layout.addLayout(buttons)
        self.model = DMListModel(session, self)
        self.list = QListView()
        self.list.setAccessibleName("Direct messages")
        self.list.setModel(self.model)
        self.list.setItemDelegate(DMDelegate(self.list))
        self.list.setEditTriggers(QListView.EditTrigger.NoEditTriggers)
        self.list.clicked.connect(self._open_index)
        self.list.activated.connect(self._open_index)
        self.list.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.list.customContextMenuRequested.connect(self._context_menu)
        layout.addWidget(self.list, 1)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        layout.addWidget(self.status)
        self._current: int | None = None
        self.model.modelReset.connect(self._reselect)
        session.guilds_changed.connect(session.ensure_e2ee)
        session.connection_changed.connect(self._on_connection)
        session.ensure_e2ee()

    def _on_connection(self, online: bool) -> None:
        if online:
            self._session.ensure_e2ee()

    # Opening conversations ------------------------------------------------------------

    def _open_index(self, index: QModelIndex) -> None:
        channel_id = index.data(ChannelIdRole)
        if channel_id is not None:
            self.select_dm(int(channel_id))

    def select_dm(self, channel_id: int) -> None:
        self._current = channel_id
        self._reselect()
        self.dm_selected.emit(channel_id)

    def current_dm(self) -> int | None:
        return self._current

    def _reselect(self) -> None:
        row = self.model.row_of(self._current) if self._current is not None else None
        if row is not None:
            self.list.setCurrentIndex(self.model.index(row))

    def visible_names(self) -> list[str]:
        return [row.name for row in self.model.rows()]

    # Notifications ----------------------------------------------------------------------

    def _context_menu(self, pos: QPoint) -> None:
        channel_id = self.list.indexAt(pos).data(ChannelIdRole)
        if channel_id is not None:
            self.dm_menu(int(channel_id)).exec(self.list.viewport().mapToGlobal(pos))

    def dm_menu(self, channel_id: int) -> QMenu:
        """A conversation's notification level and mute, as channels have them."""
        from ..notifications import LEVELS, notification_settings_for
        from .channel_list import LEVEL_LABELS, MUTE_CHOICES

        settings = notification_settings_for(self._session)
        menu = QMenu(self)
        menu.setAccessibleName("Conversation options")
        levels = menu.addMenu("Notifications")
        current = settings.level(channel_id)
        for level in LEVELS:
            action = levels.addAction(LEVEL_LABELS[level])
            action.setCheckable(True)
            action.setChecked(level == current)
            action.triggered.connect(lambda _=False, lv=level: settings.set_level(channel_id, lv))
        if settings.is_muted(channel_id):
            menu.addAction("Unmute conversation").triggered.connect(
                lambda: settings.unmute(channel_id)
            )
        else:
            mute = menu.addMenu("Mute conversation")
            for label, seconds in MUTE_CHOICES:
                mute.addAction(label).triggered.connect(
                    lambda _=False, s=seconds: settings.mute(channel_id, s)
                )
        return menu

    # New message ------------------------------------------------------------------------

    def new_message_dialog(self) -> NewDMDialog:
        return NewDMDialog(self._session, self)

    def new_message(self) -> None:
        dialog = self.new_message_dialog()
        dialog.accepted.connect(lambda: self.start_dm_from(dialog))
        dialog.open()

    def start_dm_from(self, dialog: NewDMDialog) -> None:
        chosen = dialog.chosen()
        if chosen is not None:
            self.start_dm(*chosen)

    def start_dm(self, account: Account, user_id: int) -> None:
        """Open (creating if needed) the DM with ``user_id`` and select it."""
        self.status.setText("Opening an encrypted conversation…")

        def opened(channel_id: int) -> None:
            self.status.setText("")
            self.select_dm(channel_id)

        def failed(exc: Exception) -> None:
            self.status.setText(f"Could not open the conversation: {describe_error(exc)}")

        self._session.open_dm(user_id, account, on_done=opened, on_error=failed)

    # New group --------------------------------------------------------------------------

    def new_group_dialog(self) -> PeoplePicker:
        return new_group_dialog(self._session, self)

    def new_group(self) -> None:
        dialog = self.new_group_dialog()
        dialog.accepted.connect(lambda: self.start_group_from(dialog))
        dialog.open()

    def start_group_from(self, dialog: PeoplePicker) -> None:
        chosen = dialog.chosen()
        if chosen is not None:
            self.start_group(*chosen)

    def start_group(self, account: Account, user_ids: list[int]) -> None:
        """Create an encrypted group DM with ``user_ids`` and select it."""
        self.status.setText("Creating an encrypted group…")

        def created(channel_id: int) -> None:
            self.status.setText("")
            self.select_dm(channel_id)

        def failed(exc: Exception) -> None:
            self.status.setText(f"Could not create the group: {describe_error(exc)}")

        self._session.create_group_dm(account, user_ids, on_done=created, on_error=failed)
