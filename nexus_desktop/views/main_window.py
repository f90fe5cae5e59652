"""The main window: Discord's layout, composed from the navigation, message and
management widgets and wired together. Composition and wiring only — each pane owns its
own behaviour.

Dialogs (settings, community settings, create/join/host, quick switcher) are imported
when first opened: the first window does not need them and start-up should not wait.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from nexus_protocol.models import Message

from ..hosting import HostedRelay
from ..models.channels import read_states_for
from ..notifications import LEVELS, Notifier, notification_settings_for
from ..prefs import Prefs
from ..qt import (
    QAction,
    QCursor,
    QEvent,
    QHBoxLayout,
    QKeyEvent,
    QKeySequence,
    QLabel,
    QLineEdit,
    QMainWindow,
    QMenu,
    QPalette,
    QPushButton,
    QShortcut,
    QSizePolicy,
    QStackedWidget,
    Qt,
    QToolButton,
    QVBoxLayout,
    QWidget,
)
from ..session import AppSession
from .channel_list import LEVEL_LABELS, ChannelList
from .composer import Composer
from .dm_list import DMList
from .dm_view import DMView
from .header_icons import header_icon
from .member_list import MemberList
from .message_view import MessageView
from .search_panel import SearchPanel
from .server_rail import ServerRail
from .user_panel import UserPanel
from .voice_panel import PushToTalkKeys, VoicePanel

if TYPE_CHECKING:
    from .join_dialog import HostDialog
    from .settings_dialog import SettingsDialog


LEFT_COLUMN_WIDTH = 240  # the channel list, voice panel and user panel


def _plain(text: str = "", name: str = "") -> QLabel:
    label = QLabel(text)
    label.setTextFormat(Qt.TextFormat.PlainText)  # names and topics are user text
    if name:
        label.setObjectName(name)
    return label


class MainWindow(QMainWindow):
    def __init__(
        self,
        session: AppSession,
        parent: QWidget | None = None,
        *,
        hosted_relay: HostedRelay | None = None,
    ) -> None:
        super().__init__(parent)
        self.session = session
        self.hosted_relay = hosted_relay or HostedRelay(session.data_dir / "hosted")
        self.guild_id: int | None = None
        self.channel_id: int | None = None
        self._pending_guild: int | None = None  # joined, not yet arrived over the gateway
        self._searching = False  # the search panel stands in for the member list
        self.setWindowTitle("Nexus")
        self.resize(1280, 800)

        self.rail = ServerRail(session, self)
        self.channel_list = ChannelList(session, self)
        self.user_panel = UserPanel(session, self)
        self.voice_panel = VoicePanel(session, self)
        self.message_view = MessageView(session, self)
        self.composer = Composer(session, self)
        self.member_list = MemberList(session, self)
        self.dm_list = DMList(session, self)
        self.dm_view = DMView(session, self)
        self.dm_button = QToolButton(self)
        self.dm_button.setText("DMs")
        self.dm_button.setToolTip("Direct messages (end-to-end encrypted)")
        self.dm_button.setAccessibleName("Direct messages")
        self.dm_button.setCheckable(True)
        self.dm_button.setObjectName("HomeButton")
        self.dm_button.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.left_stack = QStackedWidget(self)  # a community's channels, or the DMs
        self.centre_stack = QStackedWidget(self)  # a channel, or a DM conversation
        self.notification_settings = notification_settings_for(session)
        self.notifier = Notifier(session, self.notification_settings, self)

        # The community's name heads its channels and opens its menu, as on Discord.
        self.community_button = QPushButton("Community", self)
        self.community_button.setObjectName("CommunityHeader")
        self.community_button.setAccessibleName("Community menu")
        self.community_button.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        # Opened by hand, not with setMenu: a menu button's indicator would undo the
        # style sheet's padding, and the text already ends with an arrow.
        self.community_menu = self._community_menu()
        self.community_button.clicked.connect(self.show_community_menu)
        self.channel_name = _plain(name="ChannelName")
        self.channel_name.setAccessibleName("Channel name")
        self.channel_e2ee = _plain("🔒 End-to-end encrypted", "ChannelE2EE")
        self.channel_e2ee.setToolTip(
            "Messages here are encrypted on members' devices; the relay, its bots and its"
            " search cannot read them."
        )
        self.channel_e2ee.hide()
        self.channel_topic = _plain(name="ChannelTopic")
        self.channel_topic.setAccessibleName("Channel topic")
        self.bell = QToolButton(self)
        self.bell.setText("Alerts")
        self.bell.setToolTip("Notification settings")
        self.bell.setAccessibleName("Notification settings")
        self.bell.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        self.bell.setMenu(QMenu(self.bell))
        self.bell.menu().aboutToShow.connect(self._fill_bell_menu)
        self.members_toggle = QToolButton(self)
        self.members_toggle.setText("Members")
        self.members_toggle.setCheckable(True)
        self.members_toggle.setChecked(True)
        self.members_toggle.setToolTip("Show member list")
        self.members_toggle.setAccessibleName("Show member list")
        self.members_toggle.toggled.connect(self._members_toggled)
        for button in (self.bell, self.members_toggle):
            button.setObjectName("HeaderButton")
            # The words stay as tooltips and accessible names; the header shows icons.
            button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonIconOnly)
        self._paint_header_icons()
        self.search_box = QLineEdit(self)
        self.search_box.setObjectName("SearchBox")
        self.search_box.setPlaceholderText("Search")
        self.search_box.setAccessibleName("Search messages")
        self.search_box.setToolTip(
            "Search this community (Enter). Filters: from:name in:channel mentions:name has:link"
        )
        self.search_box.setClearButtonEnabled(True)
        self.search_box.setFixedWidth(220)
        self.search_box.returnPressed.connect(self.run_search)
        self.search_box.installEventFilter(self)
        self.search_panel = SearchPanel(session, self)
        self.search_panel.hide()
        self.search_panel.closed.connect(self.close_search)
        self.search_panel.result_opened.connect(self.open_search_result)
        self.setCentralWidget(self._layout())

        self.connection = _plain("", "ConnectionState")
        self.statusBar().addPermanentWidget(self.connection)
        self._show_connection(any(a.client.online for a in session.accounts))
        self._wire()
        self._shortcuts()
        # The rail may have picked a community before the wiring above existed.
        first = self.rail.current_guild()
        if first is None and session.all_guilds():
            first = session.all_guilds()[0][1].id
        if first is not None:
            self.rail.select_guild(first)  # opens it, unless the rail had it selected
            if self.guild_id != first:
                self.open_guild(first)

    # Layout ---------------------------------------------------------------------------

    def _layout(self) -> QWidget:
        community = QVBoxLayout()
        community.setContentsMargins(0, 0, 0, 0)
        community.setSpacing(0)
        community.addWidget(self.community_button)
        community.addWidget(self.channel_list, 1)
        self.channel_list.title.hide()  # the header button above names the community
        community_page = QWidget(self)
        community_page.setLayout(community)
        self.left_stack.addWidget(community_page)
        self.left_stack.addWidget(self.dm_list)
        left = QVBoxLayout()
        left.setContentsMargins(0, 0, 0, 0)
        left.setSpacing(0)
        left.addWidget(self.left_stack, 1)
        left.addWidget(self.voice_panel)
        left.addWidget(self.user_panel)
        left_column = QWidget(self)
        left_column.setLayout(left)
        left_column.setFixedWidth(LEFT_COLUMN_WIDTH)

        header = QHBoxLayout()
        header.setContentsMargins(12, 6, 12, 6)
        header.addWidget(self.channel_name)
        header.addWidget(self.channel_e2ee)
        header.addWidget(self.channel_topic, 1)
        header.addWidget(self.search_box)
        header.addWidget(self.bell)
        header.addWidget(self.members_toggle)
        header_bar = QWidget(self)
        header_bar.setObjectName("ChannelHeader")
        header_bar.setLayout(header)
        centre = QVBoxLayout()
        centre.setContentsMargins(0, 0, 0, 0)
        centre.setSpacing(0)
        centre.addWidget(header_bar)
        centre.addWidget(self.message_view, 1)
        centre.addWidget(self.composer)
        channel_page = QWidget(self)
        channel_page.setLayout(centre)
        self.centre_stack.addWidget(channel_page)
        self.centre_stack.addWidget(self.dm_view)
        rail = QVBoxLayout()
        rail.setContentsMargins(0, 0, 0, 0)
        rail.setSpacing(0)
        rail.addWidget(self.dm_button)
        rail.addWidget(self.rail, 1)

        self.member_list.setFixedWidth(240)
        row = QHBoxLayout()
        row.setContentsMargins(0, 0, 0, 0)
        row.setSpacing(0)
        row.addLayout(rail)
        row.addWidget(left_column)
        row.addWidget(self.centre_stack, 1)
        row.addWidget(self.member_list)
        row.addWidget(self.search_panel)
        body = QWidget(self)
        body.setLayout(row)
        return body

    def _community_menu(self) -> QMenu:
        menu = QMenu(self)
        settings = menu.addAction("Community settings…")
        settings.setShortcut(QKeySequence("Ctrl+Shift+G"))
        settings.triggered.connect(self.open_community_settings)
        menu.addSeparator()
        menu.addAction("Create a community…").triggered.connect(self.create_community)
        menu.addAction("Host a community on this computer…").triggered.connect(self.host_community)
        menu.addAction("Join a community…").triggered.connect(self.join_community)
        self.addActions(menu.actions())  # their shortcuts work with the menu closed
        return menu

    # Wiring ---------------------------------------------------------------------------

    def _wire(self) -> None:
        session = self.session
        self.rail.guild_selected.connect(self.open_guild)
        self.rail.create_requested.connect(self._show_add_menu)
        self.rail.join_requested.connect(self.join_community)
        self.channel_list.channel_selected.connect(self.open_channel)
        self.dm_button.clicked.connect(self.show_direct_messages)
        self.dm_list.dm_selected.connect(self.open_dm)
        self.message_view.reply_requested.connect(self.composer.start_reply)
        self.message_view.edit_requested.connect(self.composer.start_edit)
        self.user_panel.settings_requested.connect(self.open_settings)
        session.connection_changed.connect(self._show_connection)
        session.error.connect(lambda text: self.statusBar().showMessage(text, 15000))
        session.channels_changed.connect(self._refresh_header)
        session.guilds_changed.connect(self._refresh_community_header)
        session.guilds_changed.connect(self._open_first_guild)
        session.guilds_changed.connect(self._select_pending)
        session.voice.incoming_call.connect(self.show_incoming_call)
        session.voice.consent_requested.connect(self.ask_recording_consent)
        self.dm_view.call_requested.connect(session.voice.join)

    def _shortcuts(self) -> None:
        actions = {
            "quick_switcher": self.open_quick_switcher,
            "search": self.focus_search,
            "mark_read": self.mark_channel_read,
            "previous_unread": lambda: self.channel_list.jump_to_unread(forward=False),
            "next_unread": lambda: self.channel_list.jump_to_unread(forward=True),
            "toggle_mute": self.toggle_mute,
        }
        #: The changeable shortcuts (Settings → Keybinds), by action; ``apply_keybinds``
        #: gives them their keys.
        self.shortcuts: dict[str, QShortcut] = {}
        for action, slot in actions.items():
            # Esc marks the open channel read only from the messages: in the message
            # box it cancels a reply or an edit.
            owner: QWidget = self.message_view if action == "mark_read" else self
            shortcut = QShortcut(owner)
            if owner is not self:
                shortcut.setContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
            shortcut.activated.connect(slot)
            self.shortcuts[action] = shortcut
        settings = QShortcut(QKeySequence("Ctrl+,"), self)
        settings.activated.connect(self.open_settings)
        self.push_to_talk = PushToTalkKeys(self.session, self)
        self.apply_keybinds()

    def apply_keybinds(self) -> None:
        """(Re)read the shortcuts from the preferences: called when they change in the
        settings, so a new key works at once."""
        keybinds = Prefs(self.session.data_dir).keybinds()
        for action, shortcut in self.shortcuts.items():
            shortcut.setKey(QKeySequence(keybinds.get(action, "")))
        if not keybinds.get("quick_switcher"):
            self.shortcuts["quick_switcher"].setKey(QKeySequence("Ctrl+K"))  # never lost
        self.channel_list.unread_keys = (
            QKeySequence(keybinds.get("previous_unread", "")),
            QKeySequence(keybinds.get("next_unread", "")),
        )
        self.channel_list.move_keys = (
            QKeySequence(keybinds.get("move_channel_up", "")),
            QKeySequence(keybinds.get("move_channel_down", "")),
        )
        self.push_to_talk.reload()

    def mark_channel_read(self) -> None:
        if self.channel_id is not None:
            read_states_for(self.session).mark_read(self.channel_id)

    def toggle_mute(self) -> None:
        voice = self.session.voice
        voice.set_mute(not voice.self_mute)

    # Navigation ---------------------------------------------------------------------------

    def show_direct_messages(self) -> None:
        self.dm_button.setChecked(True)
        self.left_stack.setCurrentWidget(self.dm_list)
        self.centre_stack.setCurrentWidget(self.dm_view)
        self.member_list.hide()
        self.search_panel.hide()
        self._relayout_now()

    def _relayout_now(self) -> None:
        """Lay the panes out again at once: Qt would wait for the next event-loop pass,
        and a paint before it showed the conversation squeezed into the channel view's
        width, with an empty column where the member list was."""
        body = self.centralWidget()
        layout = body.layout() if body is not None else None
        if layout is not None:
            layout.activate()

    def open_dm(self, channel_id: int) -> None:
        self.show_direct_messages()
        self.dm_view.set_channel(channel_id)

    def _show_communities(self) -> None:
        self.dm_button.setChecked(False)
        self.left_stack.setCurrentIndex(0)
        self.centre_stack.setCurrentIndex(0)
        searching = self._searching
        self.search_panel.setVisible(searching)
        self.member_list.setVisible(self.members_toggle.isChecked() and not searching)
        self._relayout_now()
        # A DM left open would keep counting as read.
        self.dm_view.set_channel(None)

    def open_guild(self, guild_id: int) -> None:
        self._show_communities()
        self.guild_id = guild_id
        self._refresh_community_header()
        self.channel_list.set_guild(guild_id)
        self.member_list.set_guild(guild_id)
        self.user_panel.set_guild(guild_id)
        channels = [c for c in self.session.channels(guild_id) if c.type == 0]
        last = self.session.last_channel(guild_id)
        target = last if any(c.id == last for c in channels) else None
        if target is None and channels:
            target = channels[0].id
        if target is not None:
            self.channel_list.select_channel(target)  # emits channel_selected → open_channel

    def open_channel(self, channel_id: int) -> None:
        self.channel_id = channel_id
        self.message_view.set_channel(channel_id)
        self.composer.set_channel(channel_id)
        self._refresh_header()
        self.composer.setFocus()

    def go_to_channel(self, channel_id: int) -> None:
        """Open a channel from anywhere (the quick switcher): its community first."""
        channel = self.session.channel(channel_id)
        if channel is None or channel.guild_id is None:
            return
        if channel.guild_id != self.guild_id:
            self.rail.select_guild(channel.guild_id)
            self.open_guild(channel.guild_id)
        self.channel_list.select_channel(channel_id)

    def _open_first_guild(self) -> None:
        if self.guild_id is None and self.session.all_guilds():
            self.rail.select_guild(self.session.all_guilds()[0][1].id)

    def show_community_menu(self) -> None:
        button = self.community_button
        self.community_menu.popup(button.mapToGlobal(button.rect().bottomLeft()))

    def _paint_header_icons(self) -> None:
        colour = self.palette().color(QPalette.ColorRole.WindowText)
        ratio = self.devicePixelRatioF()
        self.bell.setIcon(header_icon("bell", colour, ratio))
        self.members_toggle.setIcon(header_icon("members", colour, ratio))

    def changeEvent(self, event: QEvent) -> None:
        super().changeEvent(event)
        if event.type() == QEvent.Type.PaletteChange:
            self._paint_header_icons()  # a new theme: icons in its text colour

    def _refresh_community_header(self, *_: object) -> None:
        guild = self.session.guild(self.guild_id) if self.guild_id is not None else None
        name = guild.name if guild is not None else "Community"
        button = self.community_button
        room = LEFT_COLUMN_WIDTH - 48  # less the padding and the arrow
        shown = button.fontMetrics().elidedText(name, Qt.TextElideMode.ElideRight, room)
        button.setText(f"{shown}  ▾")
        button.setToolTip(name if shown != name else "")
        button.setAccessibleName(f"{name}: community menu")

    def _refresh_header(self, *_: object) -> None:
        channel = self.session.channel(self.channel_id) if self.channel_id else None
        self.channel_name.setText(f"# {channel.name}" if channel and channel.name else "")
        self.channel_topic.setText(channel.topic or "" if channel else "")
        encrypted = channel is not None and self.session.channel_encrypted(channel.id)
        self.channel_e2ee.setVisible(encrypted)
        self.bell.setEnabled(channel is not None)

    def _fill_bell_menu(self) -> None:
        menu = self.bell.menu()
        menu.clear()
        if self.channel_id is None:
            return
        channel_id = self.channel_id
        current = self.notification_settings.level(channel_id)
        for level in LEVELS:
            action = QAction(LEVEL_LABELS.get(level, level), menu)
            action.setCheckable(True)
            action.setChecked(level == current)
            action.triggered.connect(
                lambda _=False, lv=level: self.notification_settings.set_level(channel_id, lv)
            )
            menu.addAction(action)

    def _show_connection(self, online: bool) -> None:
        if online:
            self.connection.setText("Connected")
        else:
            self.connection.setText("Offline — reconnecting" if self.session.accounts else "")

    # Search ---------------------------------------------------------------------------------

    def focus_search(self) -> None:
        """Ctrl+F: to the search box of what is open (a DM is searched on this device,
        in its own view: the relay cannot read it)."""
        box = self.dm_view.search_box if self.centre_stack.currentIndex() else self.search_box
        box.setFocus(Qt.FocusReason.ShortcutFocusReason)
        box.selectAll()

    def run_search(self) -> None:
        """Search the open community for what the box says, in the results panel."""
        if self.guild_id is None:
            return
        self._searching = True
        self.member_list.hide()
        self.search_panel.show()
        self._relayout_now()
        self.search_panel.search(self.guild_id, self.search_box.text())

    def close_search(self) -> None:
        """Put the member list back where the results were."""
        was_open = self._searching
        self._searching = False
        self.search_panel.hide()
        self.member_list.setVisible(self.members_toggle.isChecked())
        self._relayout_now()
        self.search_panel.cancel()
        if was_open:
            self.message_view.list.setFocus()

    def _members_toggled(self, checked: bool) -> None:
        if checked and self._searching:
            self.close_search()
            return
        self.member_list.setVisible(checked and not self._searching)

    def open_search_result(self, message: object) -> None:
        """Show a hit in its channel: opened, scrolled to and selected."""
        if not isinstance(message, Message):
            return
        if message.channel_id != self.channel_id:
            self.go_to_channel(message.channel_id)
        if message.channel_id == self.channel_id:
            self.message_view.show_message(message.id)

    def eventFilter(self, watched: object, event: object) -> bool:
        if (
            watched is self.search_box
            and isinstance(event, QKeyEvent)
            and event.type() == QEvent.Type.KeyPress
        ):
            if event.key() == Qt.Key.Key_Escape:
                if self._searching:
                    self.close_search()
                else:
                    self.search_box.clear()
                return True
            if event.key() == Qt.Key.Key_Down and self._searching:
                self.search_panel.focus_results()
                return True
        return super().eventFilter(watched, event)  # type: ignore[arg-type]

    # Dialogs ----------------------------------------------------------------------------------

    def open_quick_switcher(self) -> None:
        from .quick_switcher import QuickSwitcher

        switcher = QuickSwitcher(self.session, self)
        switcher.channel_chosen.connect(self.go_to_channel)
        switcher.open()

    def open_settings(self) -> SettingsDialog:
        from .settings_dialog import SettingsDialog

        dialog = SettingsDialog(self.session, self)
        # A closed dialog would stay a child of the window, its pages still following
        # the session's signals: each opening would add another.
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.keybinds_page.changed.connect(self.apply_keybinds)
        dialog.voice_page.key_changed.connect(self.apply_keybinds)
        dialog.finished.connect(lambda _result: self.apply_keybinds())
        dialog.open()
        return dialog

    def show_incoming_call(self, call: object) -> None:
        from ..voice import IncomingCall
        from .call_dialogs import RingDialog

        if isinstance(call, IncomingCall):
            dialog = RingDialog(self.session.voice, call, self)
            dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
            dialog.open()

    def ask_recording_consent(self, request: object) -> None:
        from ..voice import ConsentRequest
        from .call_dialogs import ConsentDialog

        if isinstance(request, ConsentRequest):
            dialog = ConsentDialog(self.session.voice, request, self)
            dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
            dialog.open()

    def open_community_settings(self) -> None:
        from .community_settings import CommunitySettingsDialog

        if self.guild_id is not None:
            dialog = CommunitySettingsDialog(self.session, self.guild_id, self)
            dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
            dialog.open()

    def create_community(self) -> None:
        from .create_community import CreateCommunityDialog

        dialog = CreateCommunityDialog(self.session, self)
        dialog.created.connect(self.select_guild_when_known)  # created(guild_id)
        dialog.open()

    def join_community(self) -> None:
        from .join_dialog import JoinDialog

        dialog = JoinDialog(self.session, self)
        dialog.joined.connect(self.select_guild_when_known)
        dialog.open()

    def host_community(self) -> HostDialog:
        from .join_dialog import HostDialog

        dialog = HostDialog(self.session, self.hosted_relay, self)
        dialog.open()
        return dialog

    def _show_add_menu(self) -> None:
        menu = QMenu(self)
        menu.addAction("Create a community…").triggered.connect(self.create_community)
        menu.addAction("Host a community on this computer…").triggered.connect(self.host_community)
        menu.addAction("Join a community…").triggered.connect(self.join_community)
        menu.popup(QCursor.pos())

    def select_guild_when_known(self, guild_id: object) -> None:
        """Show a just-joined community; it arrives over the gateway shortly after."""
        if isinstance(guild_id, int):
            self._pending_guild = guild_id
            self._select_pending()

    def _select_pending(self) -> None:
        guild_id = self._pending_guild
        if guild_id is not None and self.session.guild(guild_id) is not None:
            self._pending_guild = None
            self.rail.select_guild(guild_id)
            if self.guild_id != guild_id:
                self.open_guild(guild_id)
