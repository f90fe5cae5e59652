"""The padlock drawn beside encrypted conversations and channels."""

from __future__ import annotations

from ..qt import QColor, QPainter, QPen, QRect, Qt


def draw_lock(painter: QPainter, x: int, center_y: int, color: QColor) -> None:
    """A padlock drawn with lines, not a font glyph (emoji fonts are not everywhere)."""
    painter.save()
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    pen = QPen(color)
    pen.setWidthF(1.6)
    painter.setPen(pen)
    painter.setBrush(Qt.BrushStyle.NoBrush)
    painter.drawArc(QRect(x + 3, center_y - 8, 8, 10), 0, 180 * 16)
    painter.drawLine(x + 3, center_y - 3, x + 3, center_y - 1)
    painter.drawLine(x + 11, center_y - 3, x + 11, center_y - 1)
    painter.setBrush(color)
    painter.drawRoundedRect(QRect(x + 1, center_y - 1, 12, 9), 2, 2)
    painter.restore()
