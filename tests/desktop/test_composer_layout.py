"""The composer's box under each theme: one line shows whole without a scroll bar, it
grows with the text, and only a message taller than its limit scrolls."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtWidgets import QApplication

from nexus_desktop.session import AppSession
from nexus_desktop.themes import apply_theme
from nexus_desktop.views.composer import MAX_LINES, Composer


@pytest.mark.parametrize(
    ("theme", "font_scale", "compact"),
    [("dark", 1.0, False), ("light", 1.5, False), ("high-contrast", 1.0, True)],
)
async def test_the_composer_fits_its_text(
    tmp_path: Path, theme: str, font_scale: float, compact: bool
) -> None:
    app = QApplication.instance()
    assert isinstance(app, QApplication)
    style_sheet, palette, font = app.styleSheet(), app.palette(), app.font()
    apply_theme(app, theme, font_scale=font_scale, compact=compact)
    session = AppSession(tmp_path / "app")
    composer = Composer(session)
    try:
        composer.resize(700, 120)
        composer.show()
        QApplication.processEvents()
        editor = composer.editor
        line = editor.fontMetrics().lineSpacing()

        def shown_lines() -> float:
            margins = editor.document().documentMargin() * 2
            return (editor.viewport().height() - margins) / line

        # Empty and one line: the line fits, nothing to scroll.
        assert shown_lines() >= 1
        assert not editor.verticalScrollBar().isVisible()
        one_line = editor.height()

        # Three lines: the box grows to show them all, still without a scroll bar.
        editor.setPlainText("first\nsecond\nthird")
        QApplication.processEvents()
        assert editor.height() > one_line
        assert shown_lines() >= 3
        assert not editor.verticalScrollBar().isVisible()

        # Past the limit the box stops growing and scrolls instead.
        editor.setPlainText("\n".join(f"line {n}" for n in range(MAX_LINES * 3)))
        QApplication.processEvents()
        assert MAX_LINES <= shown_lines() < MAX_LINES + 1
        assert editor.verticalScrollBar().isVisible()
    finally:
        composer.close()
        await session.close()
        app.setStyleSheet(style_sheet)
        app.setPalette(palette)
        app.setFont(font)
