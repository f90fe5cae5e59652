"""Paints one message row and answers clicks on it (reactions, retry/discard, reply
jump, links).

Layouts are cached, not made per message: laid-out documents live in a bounded LRU
(``DOC_CACHE`` entries, ~35 KB each) and row heights in a dict keyed by (row key,
width). A row's first height is an *estimate* from font metrics (laying out thousands
of documents before the first paint would take seconds); once the row is painted, its
real height replaces the estimate and the view is told through ``sizeHintChanged``.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime

from nexus_client.outbox import PendingMessage
from nexus_protocol.models import Message

from ..markdown import SafeTextDocument, render_markdown
from ..models.messages import Roles
from ..qt import (
    QColor,
    QEvent,
    QFont,
    QFontMetrics,
    QModelIndex,
    QObject,
    QPainter,
    QPalette,
    QPersistentModelIndex,
    QPoint,
    QRect,
    QSize,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    Qt,
    QTimer,
    QWidget,
    Signal,
)

__all__ = ["MessageDelegate", "RowLayout"]

DOC_CACHE = 800
MEASURE_AHEAD = 40
AVATAR = 36
LEFT = 64  # body starts here, right of the avatar column
RIGHT = 16
HEADER = 22
REPLY_LINE = 20
DAY_LINE = 30
DIVIDER_LINE = 18
PILL_HEIGHT = 24
BUTTON_LINE = 26
STATE_LINE = 18
PADDING = 4
AVATAR_COLOURS = ("#5865f2", "#3ba55c", "#faa61a", "#ed4245", "#eb459e", "#9b59b6", "#1abc9c")
EDITED_HTML = '<span style="color:#949ba4; font-size:small;"> (edited)</span>'

Index = QModelIndex | QPersistentModelIndex


@dataclass
class RowLayout:
    """Where each part of a row is, for painting and for hit tests."""

    day: QRect | None = None
    divider: QRect | None = None
    reply: QRect | None = None
    header: QRect | None = None
    avatar: QRect | None = None
    body: QRect = field(default_factory=QRect)
    state: QRect | None = None
    pills: list[tuple[QRect, str, bool, int]] = field(default_factory=list)
    retry: QRect | None = None
    discard: QRect | None = None
    height: int = 0  # the whole row's


class MessageDelegate(QStyledItemDelegate):
    reaction_clicked = Signal(object, str, bool)  # Message, emoji, mine
    retry_clicked = Signal(object)  # PendingMessage
    discard_clicked = Signal(object)  # PendingMessage
    reply_clicked = Signal(int)  # the replied-to message id
    link_clicked = Signal(str)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.mentions: dict[int, str] = {}
        self.channels: dict[int, str] = {}
        self.me: int | None = None
        self._names_version = 0
        #: The widget rows span (the list's viewport): sizeHint and paint both use its
        #: width, so a height measured while painting is found again by sizeHint (Qt
        #: hands sizeHint a zero-width rect).
        self.viewport: QWidget | None = None
        self._docs: OrderedDict[tuple[object, ...], SafeTextDocument] = OrderedDict()
        self._heights: dict[tuple[int, int], int] = {}
        self._exact: set[tuple[int, int]] = set()
        self._changed: list[QPersistentModelIndex] = []
        self._flush = QTimer(self)
        self._flush.setSingleShot(True)
        self._flush.setInterval(0)
        self._flush.timeout.connect(self._announce_heights)

    # Caches ---------------------------------------------------------------------------

    def forget(self, key: int) -> None:
        """Drop cached heights of one row (its content or neighbours changed)."""
        for cached in [k for k in self._heights if k[0] == key]:
            self._heights.pop(cached, None)
            self._exact.discard(cached)

    def set_names(self, mentions: dict[int, str], channels: dict[int, str], me: int | None) -> None:
        """Names that mentions show; changing them drops the rendered documents."""
        if (mentions, channels, me) != (self.mentions, self.channels, self.me):
            self.mentions, self.channels, self.me = mentions, channels, me
            self._names_version += 1
            self._docs.clear()

    def forget_all(self) -> None:
        self._heights.clear()
        self._exact.clear()

    def document(self, item: Message | PendingMessage, width: int) -> SafeTextDocument:
        edited = isinstance(item, Message) and item.edited_timestamp is not None
        key = (item.content, edited, width, self.me, self._names_version)
        doc = self._docs.get(key)
        if doc is not None:
            self._docs.move_to_end(key)
            return doc
        html = render_markdown(
            item.content, mentions=self.mentions, me=self.me, channels=self.channels
        )
        doc = SafeTextDocument()
        doc.setDocumentMargin(0)
        if edited:
            # On the body's last line, as Discord shows it, not on a line of its own.
            html = html[:-4] + EDITED_HTML + "</p>" if html.endswith("</p>") else html + EDITED_HTML
        doc.setHtml(html)
        doc.setTextWidth(max(50, width))
        self._docs[key] = doc
        if len(self._docs) > DOC_CACHE:
            self._docs.popitem(last=False)
        return doc

    # Layout ---------------------------------------------------------------------------

    def layout(self, rect: QRect, index: Index, body_height: int) -> RowLayout:
        item = index.data(Roles.MESSAGE)
        grouped = bool(index.data(Roles.GROUPED))
        out = RowLayout()
        y = rect.top() + PADDING // 2
        width = rect.width()
        if index.data(Roles.DAY_SEPARATOR):
            out.day = QRect(rect.left(), y, width, DAY_LINE)
            y += DAY_LINE
        if index.data(Roles.NEW_DIVIDER):
            out.divider = QRect(rect.left(), y, width, DIVIDER_LINE)
            y += DIVIDER_LINE
        if isinstance(item, Message) and item.message_reference is not None:
            out.reply = QRect(rect.left() + LEFT, y, width - LEFT - RIGHT, REPLY_LINE)
            y += REPLY_LINE
        if not grouped:
            out.avatar = QRect(rect.left() + 14, y + 2, AVATAR, AVATAR)
            out.header = QRect(rect.left() + LEFT, y, width - LEFT - RIGHT, HEADER)
            y += HEADER
        out.body = QRect(rect.left() + LEFT, y, width - LEFT - RIGHT, body_height)
        y += body_height
        if isinstance(item, PendingMessage):
            out.state = QRect(rect.left() + LEFT, y, width - LEFT - RIGHT, STATE_LINE)
            y += STATE_LINE
            if item.state == "failed":
                out.retry = QRect(rect.left() + LEFT, y + 2, 70, BUTTON_LINE - 4)
                out.discard = QRect(rect.left() + LEFT + 78, y + 2, 80, BUTTON_LINE - 4)
                y += BUTTON_LINE
        elif isinstance(item, Message) and item.reactions:
            x = rect.left() + LEFT
            metrics = QFontMetrics(QFont())
            for reaction in item.reactions:
                label = f"{reaction.emoji.name} {reaction.count}"
                pill = QRect(x, y + 3, metrics.horizontalAdvance(label) + 18, PILL_HEIGHT - 2)
                out.pills.append((pill, reaction.emoji.name, reaction.me, reaction.count))
                x += pill.width() + 6
            y += PILL_HEIGHT + 4
        if out.avatar is not None:
            y = max(y, out.avatar.bottom() + 1)
        out.body.setHeight(body_height)
        # The row's own height, stored for sizeHint.
        out.body.setWidth(max(50, out.body.width()))
        out.height = y - rect.top() + PADDING // 2
        return out

    def _body_width(self, width: int) -> int:
        return max(50, width - LEFT - RIGHT)

    def _estimate_body(self, item: Message | PendingMessage, width: int) -> int:
        """A cheap guess at the body's height: wrapped lines times line height."""
        metrics = QFontMetrics(QFont())
        lines = 0
        per_line = max(1, width // max(1, metrics.averageCharWidth()))
        for line in item.content.split("\n")[:300]:
            lines += 1 + len(line) // per_line
        return max(1, lines) * metrics.lineSpacing() + (8 if "```" in item.content else 0)

    def row_width(self, option: QStyleOptionViewItem) -> int:
        if self.viewport is not None and self.viewport.width() > 0:
            return self.viewport.width()
        return option.rect.width() or 600

    def sizeHint(self, option: QStyleOptionViewItem, index: Index) -> QSize:
        width = self.row_width(option)
        key = (int(index.data(Roles.KEY) or 0), width)
        height = self._heights.get(key)
        if height is None:
            item = index.data(Roles.MESSAGE)
            if item is None:
                return QSize(width, 0)
            body = self._estimate_body(item, self._body_width(width))
            height = self.layout(QRect(0, 0, width, 0), index, body).height
            self._heights[key] = height
        return QSize(width, height)

    def _exact_height(self, option: QStyleOptionViewItem, index: Index) -> RowLayout:
        item = index.data(Roles.MESSAGE)
        width = self.row_width(option)
        doc = self.document(item, self._body_width(width))
        body = int(doc.size().height()) + 1
        rect = QRect(option.rect)
        rect.setWidth(width)
        out = self.layout(rect, index, body)
        key = (int(index.data(Roles.KEY) or 0), width)
        if key not in self._exact:
            self._store_exact(key, out.height, index)
            # Each corrected height costs the view a relayout of every row, so measure
            # the rows around this one now too: one relayout per MEASURE_AHEAD rows
            # scrolled, not one per row.
            model = index.model()
            for row in range(index.row() - MEASURE_AHEAD, index.row() + MEASURE_AHEAD):
                if row != index.row() and 0 <= row < model.rowCount():
                    self._measure(model.index(row, 0), width)
        return out

    def _measure(self, index: Index, width: int) -> None:
        key = (int(index.data(Roles.KEY) or 0), width)
        if key in self._exact:
            return
        item = index.data(Roles.MESSAGE)
        doc = self.document(item, self._body_width(width))
        out = self.layout(QRect(0, 0, width, 0), index, int(doc.size().height()) + 1)
        self._store_exact(key, out.height, index)

    def _store_exact(self, key: tuple[int, int], height: int, index: Index) -> None:
        self._exact.add(key)
        if self._heights.get(key) != height:
            self._heights[key] = height
            self._changed.append(QPersistentModelIndex(index))
            self._flush.start()

    def _announce_heights(self) -> None:
        changed, self._changed = self._changed, []
        # One signal is enough: the view relayouts every row for any of them.
        for persistent in changed[:1]:
            if persistent.isValid():
                model = persistent.model()
                self.sizeHintChanged.emit(model.index(persistent.row(), persistent.column()))

    # Painting -------------------------------------------------------------------------

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: Index) -> None:
        item = index.data(Roles.MESSAGE)
        if item is None:
            return
        out = self._exact_height(option, index)
        palette = option.palette
        text = palette.color(QPalette.ColorRole.Text)
        muted = QColor(text)
        muted.setAlpha(140)
        painter.save()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        if out.day is not None:
            when = item.timestamp if isinstance(item, Message) else datetime.now()
            painter.setPen(muted)
            painter.drawLine(
                out.day.left() + 16,
                out.day.center().y(),
                out.day.right() - 16,
                out.day.center().y(),
            )
            label = when.astimezone().strftime("%B %-d, %Y")
            box = painter.fontMetrics().boundingRect(label).adjusted(-8, -2, 8, 2)
            box.moveCenter(out.day.center())
            painter.fillRect(box, palette.color(QPalette.ColorRole.Base))
            painter.drawText(box, Qt.AlignmentFlag.AlignCenter, label)
        if out.divider is not None:
            red = QColor("#f23f43")
            painter.setPen(red)
            mid = out.divider.center().y()
            painter.drawLine(out.divider.left() + 16, mid, out.divider.right() - 60, mid)
            painter.drawText(
                out.divider.adjusted(0, 0, -12, 0),
                Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter,
                "NEW",
            )
        if out.reply is not None and isinstance(item, Message):
            self._paint_reply(painter, out.reply, item, index, muted)
        if out.avatar is not None and out.header is not None:
            self._paint_header(painter, out, item, text, muted)
        dimmed = isinstance(item, PendingMessage)
        painter.translate(out.body.topLeft())
        if dimmed:
            painter.setOpacity(0.5)
        doc = self.document(item, out.body.width())
        doc.drawContents(painter)
        painter.setOpacity(1.0)
        painter.translate(-out.body.topLeft())
        if out.state is not None and isinstance(item, PendingMessage):
            failed = item.state == "failed"
            painter.setPen(QColor("#f23f43") if failed else muted)
            note = f"Failed to send: {item.error or 'refused'}" if failed else "sending…"
            elided = painter.fontMetrics().elidedText(
                note, Qt.TextElideMode.ElideRight, out.state.width()
            )
            painter.drawText(out.state, Qt.AlignmentFlag.AlignVCenter, elided)
        for rect, label in ((out.retry, "Retry"), (out.discard, "Discard")):
            if rect is not None:
                painter.setPen(text)
                painter.setBrush(palette.color(QPalette.ColorRole.Button))
                painter.drawRoundedRect(rect, 4, 4)
                painter.drawText(rect, Qt.AlignmentFlag.AlignCenter, label)
        for pill, emoji, mine, count in out.pills:
            accent = palette.color(QPalette.ColorRole.Highlight)
            painter.setPen(accent if mine else palette.color(QPalette.ColorRole.Mid))
            fill = QColor(accent) if mine else palette.color(QPalette.ColorRole.AlternateBase)
            if mine:
                fill.setAlpha(70)
            painter.setBrush(fill)
            painter.drawRoundedRect(pill, 8, 8)
            painter.setPen(text)
            painter.drawText(pill, Qt.AlignmentFlag.AlignCenter, f"{emoji} {count}")
        painter.restore()

    def _paint_header(
        self,
        painter: QPainter,
        out: RowLayout,
        item: Message | PendingMessage,
        text: QColor,
        muted: QColor,
    ) -> None:
        assert out.avatar is not None and out.header is not None
        if isinstance(item, Message):
            name = item.author.global_name or item.author.username
            if item.member is not None and item.member.nick:
                name = item.member.nick
            seed = item.author.id
            when = item.timestamp.astimezone().strftime("%H:%M")
        else:
            name = self.mentions.get(self.me or 0, "you")
            seed = self.me or 0
            when = ""
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(QColor(AVATAR_COLOURS[seed % len(AVATAR_COLOURS)]))
        painter.drawEllipse(out.avatar)
        painter.setPen(QColor("#ffffff"))
        painter.drawText(out.avatar, Qt.AlignmentFlag.AlignCenter, (name[:1] or "?").upper())
        bold = QFont(painter.font())
        bold.setBold(True)
        painter.setFont(bold)
        painter.setPen(text)
        metrics = QFontMetrics(bold)
        shown = metrics.elidedText(
            name, Qt.TextElideMode.ElideRight, max(40, out.header.width() - 120)
        )
        painter.drawText(out.header, Qt.AlignmentFlag.AlignVCenter, shown)
        painter.setFont(QFont())
        painter.setPen(muted)
        stamp = out.header.adjusted(metrics.horizontalAdvance(shown) + 8, 0, 0, 0)
        painter.drawText(stamp, Qt.AlignmentFlag.AlignVCenter, when)

    def _paint_reply(
        self, painter: QPainter, rect: QRect, item: Message, index: Index, muted: QColor
    ) -> None:
        referenced = item.referenced_message
        model = index.model()
        reference = item.message_reference
        if referenced is None and reference is not None and reference.message_id is not None:
            finder = getattr(model, "message", None)
            referenced = finder(reference.message_id) if finder else None
        if referenced is not None:
            author = referenced.author.global_name or referenced.author.username
            snippet = " ".join(referenced.content.split())[:200]
            line = f"↪ @{author}: {snippet}"
        else:
            line = "↪ Original message was deleted or not loaded"
        painter.setPen(muted)
        painter.drawText(
            rect,
            Qt.AlignmentFlag.AlignVCenter,
            painter.fontMetrics().elidedText(line, Qt.TextElideMode.ElideRight, rect.width()),
        )

    # Clicks ---------------------------------------------------------------------------

    def hit(
        self, option: QStyleOptionViewItem, index: Index, pos: QPoint
    ) -> tuple[str, object] | None:
        """What a click at ``pos`` (view coordinates) would do, without doing it."""
        item = index.data(Roles.MESSAGE)
        if item is None:
            return None
        out = self._exact_height(option, index)
        for pill, emoji, mine, _count in out.pills:
            if pill.contains(pos):
                return ("reaction", (item, emoji, mine))
        if out.retry is not None and out.retry.contains(pos):
            return ("retry", item)
        if out.discard is not None and out.discard.contains(pos):
            return ("discard", item)
        if out.reply is not None and out.reply.contains(pos) and isinstance(item, Message):
            reference = item.message_reference
            if reference is not None and reference.message_id is not None:
                return ("reply", reference.message_id)
        if out.body.contains(pos):
            doc = self.document(item, out.body.width())
            anchor = doc.documentLayout().anchorAt((pos - out.body.topLeft()).toPointF())
            if anchor:
                return ("link", anchor)
        return None

    def editorEvent(
        self, event: QEvent, model: object, option: QStyleOptionViewItem, index: Index
    ) -> bool:
        if event.type() != QEvent.Type.MouseButtonRelease:
            return False
        pos = event.position().toPoint()  # type: ignore[attr-defined]
        target = self.hit(option, index, pos)
        if target is None:
            return False
        return self.activate(*target)

    def activate(self, action: str, payload: object) -> bool:
        """Do what a click on a part does; the view and tests share this path."""
        if action == "reaction":
            assert isinstance(payload, tuple)
            self.reaction_clicked.emit(*payload)
        elif action == "retry":
            self.retry_clicked.emit(payload)
        elif action == "discard":
            self.discard_clicked.emit(payload)
        elif action == "reply":
            self.reply_clicked.emit(payload)
        elif action == "link":
            self.link_clicked.emit(payload)
        else:
            return False
        return True
