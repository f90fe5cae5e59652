"""App preferences (theme, font scale, compact mode, keybinds, …): one small JSON file
in the app's data directory. Nothing here is secret; per-account data lives in the
account's encrypted store instead."""

from __future__ import annotations

import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

# Action → default shortcut (Qt's portable text form; "" = unset).
DEFAULT_KEYBINDS: dict[str, str] = {
    "quick_switcher": "Ctrl+K",
    "search": "Ctrl+F",
    "mark_read": "Esc",
    "previous_unread": "Alt+Up",
    "next_unread": "Alt+Down",
    "toggle_mute": "Ctrl+Shift+M",
    "push_to_talk": "",
    "move_channel_up": "Alt+Shift+Up",
    "move_channel_down": "Alt+Shift+Down",
}

KEYBIND_LABELS: dict[str, str] = {
    "quick_switcher": "Quick switcher",
    "search": "Search messages",
    "mark_read": "Mark channel read",
    "previous_unread": "Previous unread channel",
    "next_unread": "Next unread channel",
    "toggle_mute": "Toggle mute",
    "push_to_talk": "Push to talk",
    "move_channel_up": "Move channel up (Manage Channels)",
    "move_channel_down": "Move channel down (Manage Channels)",
}

DEFAULTS: dict[str, Any] = {
    "theme": "dark",
    "font_scale": 1.0,
    "compact": False,
    "default_notification_level": "all",
    "notification_keywords": [],
    "dm_policy": "everyone",
    "keybinds": dict(DEFAULT_KEYBINDS),
    "voice": {},  # voice.VoiceSettings fields; missing ones take its defaults
}


class Prefs:
    """Preferences read once, written atomically (temp file + rename) on every ``set``,
    so a crash mid-write never leaves a half-written file behind."""

    FILENAME = "prefs.json"

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / self.FILENAME
        self._values: dict[str, Any] = {}
        try:
            loaded = json.loads(self.path.read_text(encoding="utf-8"))
            if isinstance(loaded, dict):
                self._values = loaded
        except FileNotFoundError:
            pass
        except (OSError, ValueError) as exc:
            # A damaged file must not stop the app from starting: defaults instead.
            log.warning("ignoring unreadable preferences %s: %s", self.path, exc)

    def get(self, key: str) -> Any:
        if key in self._values:
            return self._values[key]
        default = DEFAULTS.get(key)
        # Copy mutable defaults so callers cannot change DEFAULTS by accident.
        return json.loads(json.dumps(default))

    def keybinds(self) -> dict[str, str]:
        stored = self._values.get("keybinds")
        merged = dict(DEFAULT_KEYBINDS)
        if isinstance(stored, dict):
            merged.update({k: str(v) for k, v in stored.items() if k in DEFAULT_KEYBINDS})
        return merged

    def set(self, key: str, value: Any) -> None:
        self._values[key] = value
        self.save()

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(prefix=".prefs-", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(self._values, handle, indent=2, sort_keys=True)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temp, self.path)
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise
