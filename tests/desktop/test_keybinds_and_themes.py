"""Keybinds changed in the settings work at once, and themes dropped into the data
directory's ``themes/`` folder are offered under Appearance."""

from __future__ import annotations

import asyncio
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import QKeySequence
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication

from nexus_desktop.prefs import Prefs
from nexus_desktop.session import AppSession
from nexus_desktop.themes import BUILTIN_DIR, apply_theme, available_themes, remove_theme_dir
from nexus_desktop.views.main_window import MainWindow
from nexus_desktop.views.quick_switcher import QuickSwitcher


def switchers(window: MainWindow) -> list[QuickSwitcher]:
    return [s for s in window.findChildren(QuickSwitcher) if s.isVisible()]


async def test_a_changed_shortcut_works_without_a_restart(tmp_path: Path) -> None:
    session = AppSession(tmp_path / "app")
    window = MainWindow(session)
    try:
        window.show()
        window.activateWindow()
        await asyncio.sleep(0.05)
        assert window.shortcuts["quick_switcher"].key() == QKeySequence("Ctrl+K")

        dialog = window.open_settings()
        dialog.show_page("Keybinds")
        editor = dialog.keybinds_page.editors["quick_switcher"]
        editor.setKeySequence(QKeySequence("Ctrl+J"))
        editor.editingFinished.emit()
        assert Prefs(tmp_path / "app").keybinds()["quick_switcher"] == "Ctrl+J"
        # Applied while the settings are still open: no restart, not even closing them.
        assert window.shortcuts["quick_switcher"].key() == QKeySequence("Ctrl+J")
        dialog.close()
        await asyncio.sleep(0.05)

        window.activateWindow()
        QTest.keyClick(window, Qt.Key.Key_K, Qt.KeyboardModifier.ControlModifier)
        await asyncio.sleep(0.05)
        assert switchers(window) == []  # the old key does nothing now
        QTest.keyClick(window, Qt.Key.Key_J, Qt.KeyboardModifier.ControlModifier)
        await asyncio.sleep(0.05)
        assert len(switchers(window)) == 1
        for switcher in switchers(window):
            switcher.close()

        # The unread-channel keys follow too, in the channel list as well.
        dialog = window.open_settings()
        dialog.keybinds_page.editors["next_unread"].setKeySequence(QKeySequence("Ctrl+Down"))
        dialog.keybinds_page.editors["next_unread"].editingFinished.emit()
        dialog.close()
        assert window.shortcuts["next_unread"].key() == QKeySequence("Ctrl+Down")
        assert window.channel_list.unread_keys[1] == QKeySequence("Ctrl+Down")

        # So do the keys that move a channel.
        dialog = window.open_settings()
        dialog.keybinds_page.editors["move_channel_up"].setKeySequence(QKeySequence("Ctrl+Alt+U"))
        dialog.keybinds_page.editors["move_channel_up"].editingFinished.emit()
        dialog.close()
        assert window.channel_list.move_keys[0] == QKeySequence("Ctrl+Alt+U")
    finally:
        window.close()
        await session.close()


async def test_user_themes_from_the_data_folder_are_offered(tmp_path: Path) -> None:
    app = QApplication.instance()
    assert isinstance(app, QApplication)
    data_dir = tmp_path / "app"
    themes = data_dir / "themes"
    themes.mkdir(parents=True)
    (themes / "midnight-user.json").write_text((BUILTIN_DIR / "dark.json").read_text())
    sheet = (BUILTIN_DIR / "dark.qss").read_text() + "\nQToolTip { border: 3px solid red; }\n"
    (themes / "midnight-user.qss").write_text(sheet)
    session = AppSession(data_dir)
    window = MainWindow(session)
    try:
        dialog = window.open_settings()
        appearance = dialog.appearance_page
        assert str(themes) in appearance.theme_note.text()
        index = appearance.theme.findData("midnight-user")
        assert index >= 0, "the user's theme is not offered"
        appearance.theme.setCurrentIndex(index)
        assert "border: 3px solid red" in app.styleSheet()
        assert Prefs(data_dir).get("theme") == "midnight-user"
        dialog.close()
    finally:
        apply_theme(app, "dark")
        remove_theme_dir(themes)
        assert "midnight-user" not in available_themes()
        window.close()
        await session.close()
