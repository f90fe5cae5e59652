"""The channel header's icons (notification bell, member list), drawn rather than taken
from an icon theme or an emoji font, which many desktops lack; in the palette's text
colour, so every theme gets them legible."""

from __future__ import annotations

from ..qt import QColor, QIcon, QPainter, QPen, QPixmap, QPoint, QRect, Qt

SIZE = 20  # logical pixels; drawn at the screen's pixel ratio


def header_icon(kind: str, color: QColor, ratio: float = 1.0) -> QIcon:
    """``kind`` is "bell" or "members"."""
    pixmap = QPixmap(round(SIZE * ratio), round(SIZE * ratio))
    pixmap.setDevicePixelRatio(ratio)
    pixmap.fill(Qt.GlobalColor.transparent)
    painter = QPainter(pixmap)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    pen = QPen(color)
    pen.setWidthF(1.6)
    pen.setCapStyle(Qt.PenCapStyle.RoundCap)
    painter.setPen(pen)
    if kind == "bell":
        painter.setBrush(color)
        # The bell's dome and skirt, then the clapper below its rim.
        painter.drawChord(QRect(5, 3, 10, 12), 0, 180 * 16)
        painter.drawRect(QRect(5, 9, 10, 4))
        painter.drawLine(QPoint(3, 14), QPoint(17, 14))
        painter.drawEllipse(QRect(8, 15, 4, 3))
    elif kind == "members":
        painter.setBrush(color)
        # Two people: heads and shoulders, the one behind a little smaller.
        painter.drawEllipse(QRect(12, 4, 5, 5))
        painter.drawChord(QRect(10, 10, 8, 8), 0, 180 * 16)
        painter.drawEllipse(QRect(4, 5, 6, 6))
        painter.drawChord(QRect(2, 12, 10, 9), 0, 180 * 16)
    else:
        raise ValueError(f"no header icon named {kind!r}")
    painter.end()
    return QIcon(pixmap)
