"""User settings: pages in a list on the left — My account, Profile, Appearance,
Voice & Audio, Notifications, Privacy, Keybinds."""

from __future__ import annotations

from ..notifications import LEVELS, notification_settings_for
from ..prefs import Prefs
from ..qt import (
    QApplication,
    QCheckBox,
    QComboBox,
    QDialog,
    QFormLayout,
    QHBoxLayout,
    QKeySequence,
    QLabel,
    QLineEdit,
    QListWidget,
    QPushButton,
    QSlider,
    QStackedWidget,
    Qt,
    QVBoxLayout,
    QWidget,
)
from ..session import AppSession
from ..themes import (
    ThemeError,
    add_theme_dir,
    apply_theme,
    available_themes,
    user_theme_dir,
)
from .account_settings import AccountPage, ProfilePage
from .form_status import FormStatus
from .keybinds_page import KeybindsPage
from .voice_settings_page import VoiceSettingsPage

LEVEL_LABELS = {"all": "All messages", "mentions": "Only @mentions", "nothing": "Nothing"}


def _page(title: str) -> tuple[QWidget, QVBoxLayout]:
    page = QWidget()
    layout = QVBoxLayout(page)
    heading = QLabel(title)
    heading.setObjectName("PageTitle")
    layout.addWidget(heading)
    return page, layout


class AppearancePage(QWidget):
    """Theme, font scale and compact mode: applied at once, remembered in prefs."""

    title = "Appearance"

    def __init__(self, prefs: Prefs, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.prefs = prefs
        layout = QVBoxLayout(self)
        heading = QLabel(self.title)
        heading.setObjectName("PageTitle")
        layout.addWidget(heading)
        form = QFormLayout()
        self.theme = QComboBox()
        self.theme.setAccessibleName("Theme")
        self.theme_dir = user_theme_dir(prefs.path.parent)
        add_theme_dir(self.theme_dir)  # the user's own themes are offered too
        for name in available_themes():
            self.theme.addItem(name.replace("-", " ").title(), name)
        self.theme.setCurrentIndex(max(self.theme.findData(prefs.get("theme")), 0))
        self.font_scale = QSlider(Qt.Orientation.Horizontal)
        self.font_scale.setAccessibleName("Font size")
        self.font_scale.setRange(80, 150)
        self.font_scale.setSingleStep(5)
        self.font_scale.setPageStep(10)
        self.font_scale.setValue(round(float(prefs.get("font_scale")) * 100))
        self.font_label = QLabel()
        scale_row = QHBoxLayout()
        scale_row.addWidget(self.font_scale, 1)
        scale_row.addWidget(self.font_label)
        self.compact = QCheckBox("Compact mode (less padding)")
        self.compact.setAccessibleName("Compact mode")
        self.compact.setChecked(bool(prefs.get("compact")))
        form.addRow("Theme", self.theme)
        form.addRow("Font size", scale_row)
        form.addRow(self.compact)
        layout.addLayout(form)
        self.theme_note = QLabel(
            "Themes are a NAME.json palette and a NAME.qss style sheet; add your own to "
            f"{self.theme_dir} and reopen the settings. All of them are free."
        )
        self.theme_note.setObjectName("StatusLabel")
        self.theme_note.setWordWrap(True)
        self.theme_note.setTextFormat(Qt.TextFormat.PlainText)
        layout.addWidget(self.theme_note)
        self.status = FormStatus()
        layout.addWidget(self.status)
        layout.addStretch(1)
        self._show_scale()
        self.theme.currentIndexChanged.connect(self.apply)
        self.font_scale.valueChanged.connect(self.apply)
        self.compact.toggled.connect(self.apply)

    def _show_scale(self) -> None:
        self.font_label.setText(f"{self.font_scale.value()} %")

    def apply(self) -> None:
        self._show_scale()
        app = QApplication.instance()
        name = self.theme.currentData()
        scale = self.font_scale.value() / 100
        if not isinstance(app, QApplication) or name is None:
            return
        try:
            apply_theme(app, name, font_scale=scale, compact=self.compact.isChecked())
        except (ThemeError, ValueError) as exc:
            # The previous theme stays; say what is wrong with this one.
            self.status.fail(exc)
            return
        self.status.ok("")
        self.prefs.set("theme", name)
        self.prefs.set("font_scale", scale)
        self.prefs.set("compact", self.compact.isChecked())


class SettingsDialog(QDialog):
    def __init__(
        self, session: AppSession, parent: QWidget | None = None, *, prefs: Prefs | None = None
    ) -> None:
        super().__init__(parent)
        self.session = session
        self.prefs = prefs or Prefs(session.data_dir)
        self.setWindowTitle("Settings")
        self.setAccessibleName("Settings")
        self.resize(860, 600)
        self.nav = QListWidget()
        self.nav.setObjectName("SettingsNav")
        self.nav.setAccessibleName("Settings pages")
        self.nav.setFixedWidth(190)
        self.pages = QStackedWidget()
        self.account_page = AccountPage(session)
        self.profile_page = ProfilePage(session)
        self.appearance_page = AppearancePage(self.prefs)
        self.voice_page = VoiceSettingsPage(session.voice, self.prefs)
        self.notifications_page = self._notifications_page()
        self.privacy_page = self._privacy_page()
        self.keybinds_page = KeybindsPage(self.prefs)
        # Both pages edit the push-to-talk key: each shows what the other saved.
        self.voice_page.key_changed.connect(self._show_ptt_key_on_keybinds)
        self.keybinds_page.changed.connect(self._show_ptt_key_on_voice_page)
        for title, page in (
            ("My account", self.account_page),
            ("Profile", self.profile_page),
            ("Appearance", self.appearance_page),
            ("Voice & Audio", self.voice_page),
            ("Notifications", self.notifications_page),
            ("Privacy", self.privacy_page),
            ("Keybinds", self.keybinds_page),
        ):
            self.nav.addItem(title)
            self.pages.addWidget(page)
        self.nav.currentRowChanged.connect(self.pages.setCurrentIndex)
        close = QPushButton("Close")
        close.setAccessibleName("Close settings")
        close.setProperty("secondary", True)
        close.clicked.connect(self.accept)
        right = QVBoxLayout()
        right.addWidget(self.pages, 1)
        right.addWidget(close, 0, Qt.AlignmentFlag.AlignRight)
        layout = QHBoxLayout(self)
        layout.addWidget(self.nav)
        layout.addLayout(right, 1)
        self.nav.setCurrentRow(0)

    def _show_ptt_key_on_voice_page(self) -> None:
        self.voice_page.show_key(self.prefs.keybinds()["push_to_talk"])

    def _show_ptt_key_on_keybinds(self) -> None:
        editor = self.keybinds_page.editors["push_to_talk"]
        editor.setKeySequence(QKeySequence(self.prefs.keybinds()["push_to_talk"]))

    def show_page(self, title: str) -> None:
        for row in range(self.nav.count()):
            item = self.nav.item(row)
            if item is not None and item.text() == title:
                self.nav.setCurrentRow(row)

    # Notifications ---------------------------------------------------------------------------

    def _notifications_page(self) -> QWidget:
        page, layout = _page("Notifications")
        self.notification_settings = notification_settings_for(self.session)
        form = QFormLayout()
        self.notify_guild = QComboBox()
        self.notify_guild.setAccessibleName("Community")
        for _account, guild in self.session.all_guilds():
            self.notify_guild.addItem(guild.name, guild.id)
        self.notify_level = QComboBox()
        self.notify_level.setAccessibleName("Default notification level")
        for level in LEVELS:
            self.notify_level.addItem(LEVEL_LABELS.get(level, level), level)
        self.keywords = QLineEdit()
        self.keywords.setAccessibleName("Keywords")
        self.keywords.setPlaceholderText("release, pizza, my nickname")
        self.keywords_account = QComboBox()
        self.keywords_account.setAccessibleName("Keywords account")
        for index, account in enumerate(self.session.accounts):
            self.keywords_account.addItem(account.label, index)
        form.addRow("Community", self.notify_guild)
        form.addRow("Default for its channels", self.notify_level)
        if len(self.session.accounts) > 1:
            form.addRow("Account", self.keywords_account)
        form.addRow("Keyword alerts", self.keywords)
        layout.addLayout(form)
        hint = QLabel(
            "A channel's own level (right-click it in the channel list) wins over the "
            "community default. Keywords are separated by commas."
        )
        hint.setWordWrap(True)
        hint.setObjectName("StatusLabel")
        layout.addWidget(hint)
        layout.addStretch(1)
        self._load_notifications()
        self.notify_guild.currentIndexChanged.connect(self._load_notifications)
        self.keywords_account.currentIndexChanged.connect(self._load_notifications)
        self.notify_level.currentIndexChanged.connect(self._save_level)
        self.keywords.editingFinished.connect(self._save_keywords)
        return page

    def _load_notifications(self) -> None:
        guild_id = self.notify_guild.currentData()
        self.notify_level.blockSignals(True)
        if guild_id is not None:
            level = self.notification_settings.guild_level(guild_id)
            self.notify_level.setCurrentIndex(max(self.notify_level.findData(level), 0))
        self.notify_level.setEnabled(guild_id is not None)
        self.notify_level.blockSignals(False)
        index = self.keywords_account.currentData()
        if index is not None:
            account = self.session.accounts[index]
            self.keywords.setText(", ".join(self.notification_settings.keywords(account)))
        self.keywords.setEnabled(index is not None)

    def _save_level(self) -> None:
        guild_id, level = self.notify_guild.currentData(), self.notify_level.currentData()
        if guild_id is not None and level in LEVELS:
            self.notification_settings.set_guild_level(guild_id, level)

    def _save_keywords(self) -> None:
        index = self.keywords_account.currentData()
        if index is not None:
            words = [w for w in self.keywords.text().split(",") if w.strip()]
            self.notification_settings.set_keywords(self.session.accounts[index], words)

    # Privacy ---------------------------------------------------------------------------------

    def _privacy_page(self) -> QWidget:
        page, layout = _page("Privacy")
        statement = QLabel(
            "Nexus has no telemetry. The app connects to no host but the relays you "
            "added, and sends nothing about how you use it."
        )
        statement.setWordWrap(True)
        statement.setAccessibleName("Privacy statement")
        layout.addWidget(statement)
        form = QFormLayout()
        self.dm_policy = QComboBox()
        self.dm_policy.setAccessibleName("Who may send you direct messages")
        for text, value in (
            ("Everyone", "everyone"),
            ("Members of my communities", "members"),
            ("Nobody", "nobody"),
        ):
            self.dm_policy.addItem(text, value)
        self.dm_policy.setCurrentIndex(max(self.dm_policy.findData(self.prefs.get("dm_policy")), 0))
        self.dm_policy.currentIndexChanged.connect(
            lambda _: self.prefs.set("dm_policy", self.dm_policy.currentData())
        )
        form.addRow("Direct messages from", self.dm_policy)
        layout.addLayout(form)
        note = QLabel(
            "This choice is kept on this device only for now: relays do not enforce it yet."
        )
        note.setWordWrap(True)
        note.setObjectName("StatusLabel")
        layout.addWidget(note)
        layout.addStretch(1)
        return page
