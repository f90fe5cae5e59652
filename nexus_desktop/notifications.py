"""Per-channel notification settings and the notifier that applies them.

Settings live in each account's encrypted store (meta ``notification_settings``, JSON):

    {"channels": {"<id>": {"level": "mentions", "muted_until": 1767225600.0}},
     "guilds": {"<id>": {"level": "nothing"}},
     "keywords": ["release", "pizza"]}

A channel without its own level follows its community's, and a community without one
follows its size: "all" up to ``LARGE_COMMUNITY`` members, "mentions" above (so a big
community does not buzz for every line), unless the community's own default says
mentions only (``default_message_notifications == 1``, as in Discord).
"""

from __future__ import annotations

import json
import re
import time
import weakref
from collections import deque
from typing import Any, Literal

from nexus_client import DMMessage, GroupMessage
from nexus_protocol.models import Message

from .models.channels import mentions_me, read_states_for
from .qt import QApplication, QGuiApplication, QObject, QSystemTrayIcon, Qt, Signal
from .session import Account, AppSession

Level = Literal["all", "mentions", "nothing"]
LEVELS: tuple[Level, ...] = ("all", "mentions", "nothing")
MUTED_FOREVER = -1.0  # muted "until I turn it back on"
LARGE_COMMUNITY = 100
BODY_LIMIT = 200
RECENT_LIMIT = 50
_META_KEY = "notification_settings"


class NotificationSettings(QObject):
    """Levels, mutes and keywords for every account of a session."""

    changed = Signal(object)  # channel or guild id whose settings changed

    def __init__(self, session: AppSession) -> None:
        super().__init__(session)
        self._session = session
        self._loaded: dict[int, dict[str, Any]] = {}  # id(account) -> settings document

    # Storage -------------------------------------------------------------------------

    def _doc(self, account: Account) -> dict[str, Any]:
        doc = self._loaded.get(id(account))
        if doc is None:
            raw = account.client.store.get_meta(_META_KEY) if account.client.store else None
            try:
                doc = json.loads(raw) if raw else {}
            except ValueError:
                doc = {}
            if not isinstance(doc, dict):
                doc = {}
            for key in ("channels", "guilds"):
                if not isinstance(doc.get(key), dict):
                    doc[key] = {}
            if not isinstance(doc.get("keywords"), list):
                doc["keywords"] = []
            self._loaded[id(account)] = doc
        return doc

    def _save(self, account: Account, changed_id: int) -> None:
        if account.client.store is not None:
            account.client.store.set_meta(_META_KEY, json.dumps(self._doc(account)))
        self.changed.emit(changed_id)

    def _account(self, channel_id: int) -> Account | None:
        """The account a community channel or an encrypted DM belongs to."""
        account = self._session.account_for_channel(channel_id)
        if account is None:
            dm = self._session.dm_channel(channel_id)
            account = dm.account if dm is not None else None
        return account

    def _channel_entry(self, channel_id: int, create: bool = False) -> dict[str, Any] | None:
        account = self._account(channel_id)
        if account is None:
            return None
        channels: dict[str, Any] = self._doc(account)["channels"]
        if create:
            return channels.setdefault(str(channel_id), {})  # type: ignore[no-any-return]
        entry = channels.get(str(channel_id))
        return entry if isinstance(entry, dict) else None

    # Levels ---------------------------------------------------------------------------

    def channel_level(self, channel_id: int) -> Level | None:
        """The channel's own level, or None when it follows its community."""
        entry = self._channel_entry(channel_id)
        level = entry.get("level") if entry else None
        return level if level in LEVELS else None

    def guild_level(self, guild_id: int) -> Level:
        account = self._session.account_for_guild(guild_id)
        if account is not None:
            entry = self._doc(account)["guilds"].get(str(guild_id))
            if isinstance(entry, dict) and entry.get("level") in LEVELS:
                return entry["level"]  # type: ignore[no-any-return]
        guild = self._session.guild(guild_id)
        if guild is not None and guild.default_message_notifications == 1:
            return "mentions"
        return "mentions" if len(self._session.members(guild_id)) > LARGE_COMMUNITY else "all"

    def level(self, channel_id: int) -> Level:
        """What actually applies to ``channel_id``."""
        own = self.channel_level(channel_id)
        if own is not None:
            return own
        channel = self._session.channel(channel_id)
        return self.guild_level(channel.guild_id) if channel and channel.guild_id else "all"

    def set_level(self, channel_id: int, level: Level | None) -> None:
        """Give a channel its own level; None makes it follow its community again."""
        if level is not None and level not in LEVELS:
            raise ValueError(f"unknown notification level {level!r}")
        account = self._account(channel_id)
        entry = self._channel_entry(channel_id, create=True)
        if account is None or entry is None:
            return
        if level is None:
            entry.pop("level", None)
        else:
            entry["level"] = level
        self._save(account, channel_id)

    def set_guild_level(self, guild_id: int, level: Level) -> None:
        if level not in LEVELS:
            raise ValueError(f"unknown notification level {level!r}")
        account = self._session.account_for_guild(guild_id)
        if account is None:
            return
        self._doc(account)["guilds"].setdefault(str(guild_id), {})["level"] = level
        self._save(account, guild_id)

    # Mutes ----------------------------------------------------------------------------

    def muted_until(self, channel_id: int) -> float | None:
        """Unix time the mute ends, ``MUTED_FOREVER``, or None when not muted."""
        entry = self._channel_entry(channel_id)
        until = entry.get("muted_until") if entry else None
        if not isinstance(until, int | float):
            return None
        if until != MUTED_FOREVER and until <= time.time():
            return None
        return float(until)

    def is_muted(self, channel_id: int) -> bool:
        return self.muted_until(channel_id) is not None

    def mute(self, channel_id: int, seconds: float | None) -> None:
        """Mute for ``seconds``, or until unmuted when None."""
        account = self._account(channel_id)
        entry = self._channel_entry(channel_id, create=True)
        if account is None or entry is None:
            return
        entry["muted_until"] = MUTED_FOREVER if seconds is None else time.time() + seconds
        self._save(account, channel_id)

    def unmute(self, channel_id: int) -> None:
        account = self._account(channel_id)
        entry = self._channel_entry(channel_id)
        if account is None or entry is None:
            return
        entry.pop("muted_until", None)
        self._save(account, channel_id)

    # Keywords (per account: they follow the person, not a channel) -------------------------

    def keywords(self, account: Account) -> list[str]:
        return [str(k) for k in self._doc(account)["keywords"]]

    def set_keywords(self, account: Account, keywords: list[str]) -> None:
        cleaned = sorted({k.strip() for k in keywords if k.strip()}, key=str.casefold)
        self._doc(account)["keywords"] = cleaned
        self._save(account, 0)

    def matches_keyword(self, message: Message) -> bool:
        return self.text_matches_keyword(message.channel_id, message.content)

    def text_matches_keyword(self, channel_id: int, text: str) -> bool:
        account = self._account(channel_id)
        if account is None:
            return False
        text = text.casefold()
        return any(
            re.search(rf"(?<!\w){re.escape(word.casefold())}(?!\w)", text)
            for word in self.keywords(account)
        )


_settings: weakref.WeakKeyDictionary[AppSession, NotificationSettings] = weakref.WeakKeyDictionary()


def notification_settings_for(session: AppSession) -> NotificationSettings:
    """The one settings object of ``session``, so every view shows the same mutes."""
    settings = _settings.get(session)
    if settings is None:
        settings = _settings[session] = NotificationSettings(session)
    return settings


def plain_preview(message: Message, limit: int = BODY_LIMIT) -> str:
    """The message as one line of plain text: mentions by name, whitespace folded."""
    names = {user.id: user.global_name or user.username for user in message.mentions}
    text = re.sub(
        r"<@!?(\d+)>", lambda m: "@" + names.get(int(m.group(1)), "someone"), message.content
    )
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


class Notifier(QObject):
    """Decides, per message, whether the user hears about it, and says so in the tray."""

    notified = Signal(object, str, str)  # channel_id, title, body

    def __init__(
        self,
        session: AppSession,
        settings: NotificationSettings,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent or session)
        self._session = session
        self._settings = settings
        self._read_states = read_states_for(session)
        self.recent: deque[tuple[int, str, str]] = deque(maxlen=RECENT_LIMIT)
        self.tray: QSystemTrayIcon | None = None
        if QSystemTrayIcon.isSystemTrayAvailable():
            self.tray = QSystemTrayIcon(QGuiApplication.windowIcon(), self)
            self.tray.setToolTip("Nexus")
            self.tray.show()
        session.message_created.connect(self._on_message)
        session.dm_message.connect(self._on_dm)

    def should_notify(self, message: Message) -> bool:
        channel = self._session.channel(message.channel_id)
        if channel is None or channel.guild_id is None:
            return False  # an encrypted DM's envelope: its decrypted text comes as a DM
        me = self._session.me(message.channel_id)
        if me is None or message.author.id == me.id:
            return False
        if message.channel_id == self._read_states.current_channel and self._window_active():
            return False  # the user is looking at it
        if self._settings.is_muted(message.channel_id):
            return False
        level = self._settings.level(message.channel_id)
        if level == "nothing":
            return False
        if level == "all":
            return True
        return mentions_me(self._session, message) or self._settings.matches_keyword(message)

    def should_notify_dm(self, message: DMMessage | GroupMessage) -> bool:
        """The same rules for an encrypted DM: its own level (default "all"), its mute;
        "Only @mentions" lets through a mention of the user or a keyword."""
        if message.kind != "text":
            return False  # edits, deletions and reactions are not news
        dm = self._session.dm_channel(message.channel_id)
        me = dm.account.user if dm is not None else None
        if dm is None or me is None or message.author_id == me.id:
            return False
        looking = getattr(self._session, "active_dm", None) == message.channel_id
        if looking and self._window_active():
            return False
        if self._settings.is_muted(message.channel_id):
            return False
        level = self._settings.level(message.channel_id)
        if level == "nothing":
            return False
        if level == "all":
            return True
        mentioned = re.search(rf"<@!?{me.id}>", message.text) is not None
        return mentioned or self._settings.text_matches_keyword(message.channel_id, message.text)

    def _on_dm(self, message: DMMessage | GroupMessage) -> None:
        if not self.should_notify_dm(message):
            return
        dm = self._session.dm_channel(message.channel_id)
        assert dm is not None
        author = next((u for u in dm.members if u.id == message.author_id), dm.peer)
        peer = author.global_name or author.username
        title = f"{dm.title} (group)" if dm.is_group else f"@{peer} (direct message)"
        text = " ".join(message.text.split())
        if len(text) > BODY_LIMIT:
            text = text[: BODY_LIMIT - 1].rstrip() + "…"
        body = f"{peer}: {text}" if text else f"{peer} sent something"
        self._show(message.channel_id, title, body)

    def _window_active(self) -> bool:
        app = QApplication.instance()
        return (
            isinstance(app, QGuiApplication)
            and app.applicationState() == Qt.ApplicationState.ApplicationActive
        )

    def _on_message(self, message: Message) -> None:
        if not self.should_notify(message):
            return
        channel = self._session.channel(message.channel_id)
        guild = self._session.guild(channel.guild_id) if channel and channel.guild_id else None
        where = f"#{channel.name}" if channel and channel.name else "a channel"
        title = f"{where} — {guild.name}" if guild else where
        author = message.author.global_name or message.author.username
        if message.member is not None and message.member.nick:
            author = message.member.nick
        body = plain_preview(message)
        body = f"{author}: {body}" if body else f"{author} sent something"
        self._show(message.channel_id, title, body)

    def _show(self, channel_id: int, title: str, body: str) -> None:
        self.recent.append((channel_id, title, body))
        if self.tray is not None:
            self.tray.showMessage(title, body, QSystemTrayIcon.MessageIcon.Information, 5000)
        self.notified.emit(channel_id, title, body)
