"""Paints one message row and answers clicks on it (reactions, retry/discard, reply
jump, links).

Layouts are cached, not made per message: laid-out documents live in a bounded LRU
(``DOC_CACHE`` entries, ~35 KB each), row layouts (rectangles and the header's strings,
relative to the row) in another, and row heights in a dict per width keyed by the row's
key. A row's first height is an *estimate* (exact from font metrics for plain text,
wrapped lines times line height otherwise; laying out thousands of documents before the
first paint would take seconds). Exact heights are measured off the paint path, in idle
time slices of ``IDLE_BUDGET`` seconds, from the viewport outwards (mostly upwards,
where scrolling back goes): the view relayouts every row from Python for any changed
height (5 to 15 ms for a full window), so corrections are announced in batches — when a
corrected row comes near the viewport, when ``ANNOUNCE_BATCH`` have piled up, or when
the whole window is measured — not once per painted row.

Author avatars are painted from pixmaps the session's image cache (``avatars``) cut
ahead of time, one per (picture, size, pixel ratio): a look-up per row, never a decode.
Until one is ready the row shows the coloured initial, and the rows showing it are
repainted when it arrives.

Attachments sit below the text: pictures in a box sized from the width and height the
message records (so the row's height is right before the picture arrives), other files
as a card with a Download button. Previews come from the session's preview cache
(``attachments``) the same way as avatars: a look-up while painting, a placeholder
until ready, and only the rows showing an attachment repainted when it arrives.
Spoiler pictures are painted blurred, under a label, until clicked.
"""

from __future__ import annotations

import re
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from nexus_client.outbox import PendingMessage
from nexus_protocol.models import Attachment, Message

from ..attachments import (
    GAP,
    AttachmentImages,
    attachment_boxes,
    attachment_images_for,
    attachments_height,
    centred,
    file_glyph,
    human_size,
    shown_filename,
)
from ..avatars import ImageCache, ImageKey, avatars_for, paint_avatar
from ..markdown import (
    COPY_CODE_HREF,
    SPOILER_HREF,
    SafeTextDocument,
    code_blocks,
    plain_text,
    render_markdown,
)
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
    QPixmap,
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

if TYPE_CHECKING:
    from ..models.messages import MessageListModel
    from ..qt import QListView

__all__ = ["AttachmentPart", "MessageDelegate", "RowLayout"]

DOC_CACHE = 800
LAYOUT_CACHE = 1500
IDLE_BUDGET = 0.003  # seconds of measuring per event-loop pass
ANNOUNCE_BATCH = 1000  # corrected heights that are worth one relayout on their own
NEAR_ROWS = 3  # a corrected row this close to the viewport is announced at once
PRIME_ROWS = 12  # rows inserted next to the viewport measured at once, before layout
REPLAN_ROWS = 30  # re-centre the measuring order when the view moved this far
UP_PER_DOWN = 4  # rows measured above the viewport per row below it
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
# Text that renders as itself in one paragraph: no markdown, entity, mention, link or
# layout-changing whitespace, no word long enough to be broken anywhere. Its height
# from QFontMetrics' word wrap is the document's.
_NOT_PLAIN = re.compile(
    r"[*_~`>|<\[\]#\\!&\t]|^\s*(?:[-+]|\d+[.)])(?:\s|$)|\n\s*\n|  |^\s|\s$|\S{24}|:/",
    re.M,
)

Index = QModelIndex | QPersistentModelIndex
DOWNLOAD_WIDTH = 84


@dataclass(frozen=True, slots=True)
class AttachmentPart:
    """Where one attachment of a row is: a picture's box, or a file card and its
    Download button."""

    rect: QRect
    number: int  # its place in the message's attachments
    image: bool
    button: QRect | None = None

    def translated(self, dx: int, dy: int) -> AttachmentPart:
        button = self.button.translated(dx, dy) if self.button is not None else None
        return AttachmentPart(self.rect.translated(dx, dy), self.number, self.image, button)


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
    attachments: list[AttachmentPart] = field(default_factory=list)
    retry: QRect | None = None
    discard: QRect | None = None
    height: int = 0  # the whole row's

    def translated(self, dx: int, dy: int) -> RowLayout:
        def move(rect: QRect | None) -> QRect | None:
            return None if rect is None else rect.translated(dx, dy)

        return RowLayout(
            day=move(self.day),
            divider=move(self.divider),
            reply=move(self.reply),
            header=move(self.header),
            avatar=move(self.avatar),
            body=self.body.translated(dx, dy),
            state=move(self.state),
            pills=[(p.translated(dx, dy), e, m, c) for p, e, m, c in self.pills],
            attachments=[part.translated(dx, dy) for part in self.attachments],
            retry=move(self.retry),
            discard=move(self.discard),
            height=self.height,
        )


@dataclass
class _Cached:
    """A message row laid out at (0, 0) for one width, with what its paint shows."""

    width: int
    out: RowLayout
    day_label: str = ""
    name: str = ""
    when: str = ""
    seed: int = 0  # the author's id: picks the fallback's colour, and whose avatar it is
    avatar: str | None = None  # the author's avatar when the message was sent
    own: bool = False  # not sent yet: the signed-in user's current avatar


def _chrome(
    item: Message | PendingMessage,
    day: bool,
    divider: bool,
    grouped: bool,
    body: int,
    room: int,
) -> int:
    """A row's height around a body of ``body`` pixels, with attachments in ``room``
    pixels of width (what ``layout`` adds up)."""
    y = PADDING // 2
    if day:
        y += DAY_LINE
    if divider:
        y += DIVIDER_LINE
    if isinstance(item, Message) and item.message_reference is not None:
        y += REPLY_LINE
    avatar_end = 0
    if not grouped:
        avatar_end = y + 2 + AVATAR
        y += HEADER
    y += body
    if isinstance(item, PendingMessage):
        y += STATE_LINE
        if item.state == "failed":
            y += BUTTON_LINE
    else:
        if item.attachments:
            y += attachments_height(item, room)
        if item.reactions:
            y += PILL_HEIGHT + 4
    return max(y, avatar_end) + PADDING // 2


class MessageDelegate(QStyledItemDelegate):
    reaction_clicked = Signal(object, str, bool)  # Message, emoji, mine
    retry_clicked = Signal(object)  # PendingMessage
    discard_clicked = Signal(object)  # PendingMessage
    reply_clicked = Signal(int)  # the replied-to message id
    attachment_opened = Signal(object, object)  # Message, Attachment (a picture)
    download_clicked = Signal(object, object)  # Message, Attachment
    link_clicked = Signal(str)
    code_copied = Signal(str)  # the copied code

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.mentions: dict[int, str] = {}
        self.channels: dict[int, str] = {}
        self.me: int | None = None
        self._names_version = 0
        #: Messages whose spoilers the reader revealed (by id; kept while the app runs).
        self.revealed: set[int] = set()
        #: Spoiler attachments the reader uncovered (by attachment id).
        self.uncovered: set[int] = set()
        #: The widget rows span (the list's viewport): sizeHint and paint both use its
        #: width, so a height measured while painting is found again by sizeHint (Qt
        #: hands sizeHint a zero-width rect).
        self.viewport: QWidget | None = None
        #: The list and model, once ``attach`` was called: for measuring in idle time.
        self.view: QListView | None = None
        self.model: MessageListModel | None = None
        #: Relayouts the view after corrected heights, keeping the reader's place; the
        #: view provides it (``sizeHintChanged`` is emitted without one).
        self.relayout: Callable[[], None] | None = None
        self._docs: OrderedDict[tuple[object, ...], SafeTextDocument] = OrderedDict()
        self._heights: dict[int, dict[int, int]] = {}  # width → row key → height
        self._exact: dict[int, set[int]] = {}  # width → keys whose height is measured
        self._layouts: OrderedDict[int, _Cached] = OrderedDict()  # row key → layout
        self._dirty: set[int] = set()  # keys measured different from what the view has
        self._urgent = False
        self._plan: Iterator[int] | None = None
        self._plan_centre = 0
        self._complete: int | None = None  # the width every row is measured for
        self._metrics: QFontMetrics | None = None
        self._sizes: dict[int, QSize] = {}  # height → QSize(width, height), one width
        self._idle = QTimer(self)
        self._idle.setSingleShot(True)
        self._idle.setInterval(0)
        self._idle.timeout.connect(self._work)
        #: Author pictures, from the session's image cache once a row is painted.
        self._avatars: ImageCache | None = None
        #: Attachment previews, likewise.
        self._previews: AttachmentImages | None = None

    def attach(self, view: QListView, model: MessageListModel) -> None:
        """Measure ``view``'s rows of ``model`` in idle time (the view calls this)."""
        self.view, self.model = view, model
        self.viewport = view.viewport()
        model.rowsInserted.connect(self._rows_inserted)
        model.rowsRemoved.connect(self._rows_moved)
        model.modelReset.connect(self.forget_all)
        view.verticalScrollBar().valueChanged.connect(self._scrolled)

    # Caches ---------------------------------------------------------------------------

    def forget(self, key: int) -> None:
        """Drop cached heights of one row (its content or neighbours changed)."""
        for heights in self._heights.values():
            heights.pop(key, None)
        for exact in self._exact.values():
            exact.discard(key)
        self._layouts.pop(key, None)
        self._complete = None
        self._wake()

    def set_names(self, mentions: dict[int, str], channels: dict[int, str], me: int | None) -> None:
        """Names that mentions show; changing them drops the rendered documents."""
        if (mentions, channels, me) != (self.mentions, self.channels, self.me):
            self.mentions, self.channels, self.me = mentions, channels, me
            self._names_version += 1
            self._docs.clear()
            self._layouts.clear()

    def restyle(self) -> None:
        """The font, palette or theme changed: render every row again (spoiler and text
        colours, sizes) and measure it again."""
        self._docs.clear()
        self.forget_all()

    def forget_all(self) -> None:
        self._heights.clear()
        self._exact.clear()
        self._layouts.clear()
        self._dirty.clear()
        self._metrics = None
        self._reset()

    def document(self, item: Message | PendingMessage, width: int) -> SafeTextDocument:
        edited = isinstance(item, Message) and item.edited_timestamp is not None
        shown = isinstance(item, Message) and item.id in self.revealed
        key = (item.content, edited, width, self.me, self._names_version, shown)
        doc = self._docs.get(key)
        if doc is not None:
            self._docs.move_to_end(key)
            return doc
        html = render_markdown(
            item.content,
            mentions=self.mentions,
            me=self.me,
            channels=self.channels,
            reveal_spoilers=shown,
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

    def _model(self, index: Index) -> MessageListModel:
        model = self.model
        if model is None:
            model = index.model()  # type: ignore[assignment]
        assert model is not None
        return model

    def _font_metrics(self) -> QFontMetrics:
        if self._metrics is None:
            self._metrics = QFontMetrics(QFont())
        return self._metrics

    # Layout ---------------------------------------------------------------------------

    def layout(self, rect: QRect, index: Index, body_height: int) -> RowLayout:
        model = self._model(index)
        row = index.row()
        item = model.item(row)
        assert item is not None
        return self._layout(rect, item, model.row_flags(row), body_height)

    def _layout(
        self,
        rect: QRect,
        item: Message | PendingMessage,
        flags: tuple[bool, bool, bool],
        body_height: int,
    ) -> RowLayout:
        day, divider, grouped = flags
        out = RowLayout()
        y = rect.top() + PADDING // 2
        width = rect.width()
        if day:
            out.day = QRect(rect.left(), y, width, DAY_LINE)
            y += DAY_LINE
        if divider:
            out.divider = QRect(rect.left(), y, width, DIVIDER_LINE)
            y += DIVIDER_LINE
        if isinstance(item, Message) and item.message_reference is not None:
            out.reply = QRect(rect.left() + LEFT, y, width - LEFT - RIGHT, REPLY_LINE)
            y += REPLY_LINE
        if not grouped:
            out.avatar = QRect(rect.left() + 14, y + 2, AVATAR, AVATAR)
            out.header = QRect(rect.left() + LEFT, y, width - LEFT - RIGHT, HEADER)
            y += HEADER
        out.body = QRect(rect.left() + LEFT, y, max(50, width - LEFT - RIGHT), body_height)
        y += body_height
        if isinstance(item, Message) and item.attachments:
            left = rect.left() + LEFT
            boxes = attachment_boxes(item, out.body.width())
            for number, (box_w, box_h, image) in enumerate(boxes):
                y += GAP
                box = QRect(left, y, box_w, box_h)
                button = None
                if not image:
                    button = QRect(
                        box.right() - DOWNLOAD_WIDTH - 8, y + 14, DOWNLOAD_WIDTH, box_h - 28
                    )
                out.attachments.append(AttachmentPart(box, number, image, button))
                y += box_h
        if isinstance(item, PendingMessage):
            out.state = QRect(rect.left() + LEFT, y, width - LEFT - RIGHT, STATE_LINE)
            y += STATE_LINE
            if item.state == "failed":
                out.retry = QRect(rect.left() + LEFT, y + 2, 70, BUTTON_LINE - 4)
                out.discard = QRect(rect.left() + LEFT + 78, y + 2, 80, BUTTON_LINE - 4)
                y += BUTTON_LINE
        elif item.reactions:
            x = rect.left() + LEFT
            metrics = self._font_metrics()
            for reaction in item.reactions:
                label = f"{reaction.emoji.name} {reaction.count}"
                pill = QRect(x, y + 3, metrics.horizontalAdvance(label) + 18, PILL_HEIGHT - 2)
                out.pills.append((pill, reaction.emoji.name, reaction.me, reaction.count))
                x += pill.width() + 6
            y += PILL_HEIGHT + 4
        if out.avatar is not None:
            y = max(y, out.avatar.bottom() + 1)
        out.height = y - rect.top() + PADDING // 2
        return out

    def _body_width(self, width: int) -> int:
        return max(50, width - LEFT - RIGHT)

    def _estimate_body(self, item: Message | PendingMessage, width: int) -> int:
        """The body's height without a document: exact for plain text (font metrics
        wrap it as the document does), else wrapped lines times line height."""
        metrics = self._font_metrics()
        content = item.content
        edited = isinstance(item, Message) and item.edited_timestamp is not None
        if content and not edited and _NOT_PLAIN.search(content) is None:
            if "\n" not in content and len(content) * metrics.maxWidth() <= width:
                return metrics.height() + 1  # one line, however the glyphs are shaped
            flags = int(Qt.TextFlag.TextWordWrap)
            return metrics.boundingRect(QRect(0, 0, width, 1 << 20), flags, content).height() + 1
        lines = 0
        per_line = max(1, width // max(1, metrics.averageCharWidth()))
        for line in content.split("\n")[:300]:
            lines += 1 + len(line) // per_line
        return max(1, lines) * metrics.lineSpacing() + (8 if "```" in content else 0)

    def row_width(self, option: QStyleOptionViewItem) -> int:
        viewport = self.viewport
        if viewport is not None:
            width = viewport.width()
            if width > 0:
                return width
        return option.rect.width() or 600

    def sizeHint(self, option: QStyleOptionViewItem, index: Index) -> QSize:
        # Called for every row of the window on each relayout: no data() round trips,
        # and the QSize objects are shared (Qt copies them).
        width = self.row_width(option)
        row = index.row()
        model = self.model or self._model(index)
        item = model.item(row)
        if item is None:
            return QSize(width, 0)
        if isinstance(item, PendingMessage):
            return QSize(width, self._measure_height(row, item, width))
        heights = self._heights.get(width)
        if heights is None:
            heights = self._heights[width] = {}
        height = heights.get(item.id)
        if height is None:
            body = self._estimate_body(item, self._body_width(width))
            day, divider, grouped = model.row_flags(row)
            height = heights[item.id] = _chrome(
                item, day, divider, grouped, body, self._body_width(width)
            )
            self._wake()
        size = self._sizes.get(height)
        if size is None or size.width() != width:
            size = self._sizes[height] = QSize(width, height)
        return size

    def _measure_height(self, row: int, item: Message | PendingMessage, width: int) -> int:
        model = self.model
        flags = model.row_flags(row) if model is not None else (False, False, False)
        room = self._body_width(width)
        doc = self.document(item, room)
        return _chrome(item, *flags, int(doc.size().height()) + 1, room)

    def _measure(self, row: int, item: Message, width: int) -> None:
        """Store ``item``'s exact height; note it for the view if it differs."""
        height = self._measure_height(row, item, width)
        exact = self._exact.get(width)
        if exact is None:
            exact = self._exact[width] = set()
        exact.add(item.id)
        heights = self._heights.get(width)
        if heights is None:
            heights = self._heights[width] = {}
        known = heights.get(item.id)
        heights[item.id] = height
        if known is not None and known != height:
            self._dirty.add(item.id)

    def _cached(self, row: int, item: Message | PendingMessage, width: int) -> _Cached:
        """``item``'s layout at (0, 0) for ``width``, from the cache if it is there;
        measuring it stores the row's exact height."""
        if isinstance(item, Message):
            cached = self._layouts.get(item.id)
            if cached is not None and cached.width == width:
                self._layouts.move_to_end(item.id)
                return cached
        model = self.model
        flags = model.row_flags(row) if model is not None else (False, False, False)
        doc = self.document(item, self._body_width(width))
        out = self._layout(QRect(0, 0, width, 0), item, flags, int(doc.size().height()) + 1)
        cached = _Cached(width, out)
        if out.day is not None:
            when = item.timestamp if isinstance(item, Message) else datetime.now()
            cached.day_label = when.astimezone().strftime("%B %-d, %Y")
        if out.header is not None:
            if isinstance(item, Message):
                name = item.author.global_name or item.author.username
                if item.member is not None and item.member.nick:
                    name = item.member.nick
                cached.seed = item.author.id
                cached.avatar = item.author.avatar
                cached.when = item.timestamp.astimezone().strftime("%H:%M")
            else:
                name = self.mentions.get(self.me or 0, "you")
                cached.seed = self.me or 0
                cached.own = True
            cached.name = name
        if isinstance(item, Message):
            self._layouts[item.id] = cached
            if len(self._layouts) > LAYOUT_CACHE:
                self._layouts.popitem(last=False)
            exact = self._exact.get(width)
            if exact is None or item.id not in exact:
                heights = self._heights.get(width)
                known = heights.get(item.id) if heights is not None else None
                self._measure(row, item, width)
                if known is not None and known != out.height:
                    # Shown with a wrong height right now: correct it soon.
                    self._urgent = True
                    self._wake()
        return cached

    def _exact_height(self, option: QStyleOptionViewItem, index: Index) -> RowLayout:
        """The row's layout in view coordinates (for hit tests)."""
        model = self._model(index)
        row = index.row()
        item = model.item(row)
        assert item is not None
        cached = self._cached(row, item, self.row_width(option))
        return cached.out.translated(option.rect.left(), option.rect.top())

    # Measuring in idle time -------------------------------------------------------------

    def _wake(self) -> None:
        if self.view is not None and not self._idle.isActive():
            self._idle.start()

    def _rows_moved(self, *_: object) -> None:
        self._plan = None
        self._complete = None
        self._wake()

    def _reset(self) -> None:
        """A new channel (or a reload) shows its newest rows: measure those at once."""
        self._rows_moved()
        self.prime_bottom()

    def prime_bottom(self) -> None:
        """Measure the rows that fill the viewport from the bottom, before the view lays
        them out (a channel opens at its newest message): the first paint then shows
        exact heights and needs no corrected relayout. The view calls this when shown."""
        view, model = self.view, self.model
        if view is None or model is None or not view.isVisible():
            return
        width = self.row_width(QStyleOptionViewItem())
        heights = self._heights.setdefault(width, {})
        room = view.viewport().height()
        extra = NEAR_ROWS + 2  # and the rows just above: corrections there would be urgent
        row = model.rowCount() - 1
        while row >= 0 and extra > 0:
            item = model.item(row)
            if isinstance(item, Message):
                self._measure(row, item, width)
                room -= heights[item.id]
            if room <= 0:
                extra -= 1
            row -= 1
        if self._dirty:
            # The view laid these rows out by estimates already (it does on show): one
            # relayout now, before anything is painted with a wrong height.
            self._announce()

    def _prime(self, rows: range) -> None:
        view, model = self.view, self.model
        if view is None or model is None or not view.isVisible():
            return
        width = self.row_width(QStyleOptionViewItem())
        for row in rows:
            item = model.item(row)
            if isinstance(item, Message):
                self._measure(row, item, width)

    def _rows_inserted(self, _parent: QModelIndex, first: int, last: int) -> None:
        """Measure new rows next to the viewport now, before the view lays them out:
        the page scrolled back into (just above the old first row) or a message
        appended at the bottom then needs no correction, and no second relayout."""
        self._rows_moved()
        model = self.model
        if model is not None and first == 0 and last + 1 < model.rowCount():
            self._prime(range(last, max(first, last - PRIME_ROWS + 1) - 1, -1))
        else:
            self._prime(range(first, min(last, first + PRIME_ROWS - 1) + 1))

    def _scrolled(self, _value: int) -> None:
        if self._dirty and self._dirty_near():
            self._urgent = True
        if self._urgent or self._complete is None:
            self._wake()

    def _visible_rows(self) -> tuple[int, int]:
        view, model = self.view, self.model
        assert view is not None and model is not None
        count = model.rowCount()
        top = view.indexAt(QPoint(8, 1))
        bottom = view.indexAt(QPoint(8, max(1, view.viewport().height() - 2)))
        first = top.row() if top.isValid() else count - 1
        last = bottom.row() if bottom.isValid() else count - 1
        return max(0, first), max(0, last)

    def _dirty_near(self) -> bool:
        model = self.model
        if model is None:
            return False
        first, last = self._visible_rows()
        for key in self._dirty:
            row = model.row_of(key)
            if row is not None and first - NEAR_ROWS <= row <= last + NEAR_ROWS:
                return True
        return False

    @staticmethod
    def _order(first: int, last: int, count: int) -> Iterator[int]:
        """Rows to measure: the visible ones, then outwards, ``UP_PER_DOWN`` above for
        each one below (scrolling back goes up)."""
        yield from range(first, min(count, last + 1))
        up, down = first - 1, last + 1
        while up >= 0 or down < count:
            for _ in range(UP_PER_DOWN):
                if up >= 0:
                    yield up
                    up -= 1
            if down < count:
                yield down
                down += 1

    def _work(self) -> None:
        view, model = self.view, self.model
        if view is None or model is None or not view.isVisible():
            return
        width = self.row_width(QStyleOptionViewItem())
        if self._urgent:
            self._announce()
        if self._complete == width:
            return
        first, last = self._visible_rows()
        if self._plan is None or abs(first - self._plan_centre) > REPLAN_ROWS:
            self._plan = self._order(first, last, model.rowCount())
            self._plan_centre = first
        exact = self._exact.get(width)
        if exact is None:
            exact = self._exact[width] = set()
        deadline = time.perf_counter() + IDLE_BUDGET
        done = True
        for row in self._plan:
            item = model.item(row)
            if not isinstance(item, Message) or item.id in exact:
                continue
            self._measure(row, item, width)
            if time.perf_counter() > deadline:
                done = False
                break
        if done:
            self._plan = None
            self._complete = width
        if self._dirty and (done or len(self._dirty) >= ANNOUNCE_BATCH or self._dirty_near()):
            # Far-off corrections wait until they come near: one relayout then, for
            # every row measured by that time.
            self._announce()
        if not done:
            self._idle.start()

    def _announce(self) -> None:
        """Hand every corrected height to the view: one relayout for all of them."""
        self._urgent = False
        if not self._dirty:
            return
        keys, self._dirty = self._dirty, set()
        if self.relayout is not None:
            self.relayout()
            return
        model = self.model
        for key in keys:
            row = model.row_of(key) if model is not None else None
            if model is not None and row is not None:
                # One signal is enough: the view relayouts every row for any of them.
                self.sizeHintChanged.emit(model.index(row, 0))
                return

    # Painting -------------------------------------------------------------------------

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: Index) -> None:
        model = self._model(index)
        row = index.row()
        item = model.item(row)
        if item is None:
            return
        cached = self._cached(row, item, self.row_width(option))
        out = cached.out
        origin = option.rect.topLeft()
        palette = option.palette
        text = palette.color(QPalette.ColorRole.Text)
        muted = QColor(text)
        muted.setAlpha(140)
        painter.save()
        painter.translate(origin)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        if out.day is not None:
            label = cached.day_label
            painter.setPen(muted)
            painter.drawLine(
                out.day.left() + 16,
                out.day.center().y(),
                out.day.right() - 16,
                out.day.center().y(),
            )
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
            self._paint_header(painter, cached, text, muted)
        dimmed = isinstance(item, PendingMessage)
        painter.translate(out.body.topLeft())
        if dimmed:
            painter.setOpacity(0.5)
        doc = self.document(item, out.body.width())
        doc.drawContents(painter)
        painter.setOpacity(1.0)
        painter.translate(-out.body.topLeft())
        if out.attachments and isinstance(item, Message):
            self._paint_attachments(painter, out, item, palette, text, muted)
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
        self, painter: QPainter, cached: _Cached, text: QColor, muted: QColor
    ) -> None:
        out = cached.out
        assert out.avatar is not None and out.header is not None
        name = cached.name
        paint_avatar(
            painter,
            out.avatar,
            self._author_picture(cached, painter.device().devicePixelRatioF()),
            QColor(AVATAR_COLOURS[cached.seed % len(AVATAR_COLOURS)]),
            QColor("#ffffff"),
            name,
        )
        font = painter.font()
        bold = QFont(font)
        bold.setBold(True)
        painter.setFont(bold)
        painter.setPen(text)
        metrics = painter.fontMetrics()
        shown = metrics.elidedText(
            name, Qt.TextElideMode.ElideRight, max(40, out.header.width() - 120)
        )
        painter.drawText(out.header, Qt.AlignmentFlag.AlignVCenter, shown)
        painter.setFont(font)
        painter.setPen(muted)
        stamp = out.header.adjusted(metrics.horizontalAdvance(shown) + 8, 0, 0, 0)
        painter.drawText(stamp, Qt.AlignmentFlag.AlignVCenter, cached.when)

    def _paint_attachments(
        self,
        painter: QPainter,
        out: RowLayout,
        item: Message,
        palette: QPalette,
        text: QColor,
        muted: QColor,
    ) -> None:
        ratio = painter.device().devicePixelRatioF()
        previews = self._preview_cache()
        for part in out.attachments:
            if part.number >= len(item.attachments):
                continue
            attachment = item.attachments[part.number]
            if part.image:
                covered = attachment.spoiler and attachment.id not in self.uncovered
                pixmap = None
                if previews is not None:
                    pixmap = previews.pixmap(
                        item.channel_id, attachment, part.rect.size(), ratio, covered
                    )
                self._paint_picture(painter, part.rect, attachment, pixmap, covered, muted)
            else:
                self._paint_card(painter, part, attachment, palette, text, muted)

    def _paint_picture(
        self,
        painter: QPainter,
        rect: QRect,
        attachment: Attachment,
        pixmap: QPixmap | None,
        covered: bool,
        muted: QColor,
    ) -> None:
        if pixmap is not None:
            painter.drawPixmap(centred(rect, pixmap).topLeft(), pixmap)
        else:
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(
                QColor("#1e1f22")
                if covered
                else QColor(muted.red(), muted.green(), muted.blue(), 40)
            )
            painter.drawRoundedRect(rect, 6, 6)
            previews = self._previews
            if not covered and previews is not None and previews.failed(attachment.id):
                painter.setPen(muted)
                label = painter.fontMetrics().elidedText(
                    f"🖼 {shown_filename(attachment.filename)}",
                    Qt.TextElideMode.ElideMiddle,
                    rect.width() - 16,
                )
                painter.drawText(rect, Qt.AlignmentFlag.AlignCenter, label)
        if covered:
            # Blurred is not enough for a picture of one colour: darken it as well.
            painter.fillRect(rect, QColor(0, 0, 0, 120))
            font = painter.font()
            bold = QFont(font)
            bold.setBold(True)
            painter.setFont(bold)
            pill = painter.fontMetrics().boundingRect("SPOILER").adjusted(-10, -5, 10, 5)
            pill.moveCenter(rect.center())
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(QColor(0, 0, 0, 190))
            painter.drawRoundedRect(pill, pill.height() / 2, pill.height() / 2)
            painter.setPen(QColor("#ffffff"))
            painter.drawText(pill, Qt.AlignmentFlag.AlignCenter, "SPOILER")
            painter.setFont(font)

    def _paint_card(
        self,
        painter: QPainter,
        part: AttachmentPart,
        attachment: Attachment,
        palette: QPalette,
        text: QColor,
        muted: QColor,
    ) -> None:
        rect = part.rect
        painter.setPen(palette.color(QPalette.ColorRole.Mid))
        painter.setBrush(palette.color(QPalette.ColorRole.AlternateBase))
        painter.drawRoundedRect(rect, 6, 6)
        font = painter.font()
        big = QFont(font)
        big.setPointSizeF(max(1.0, font.pointSizeF()) * 1.8)
        painter.setFont(big)
        painter.setPen(text)
        glyph = QRect(rect.left() + 8, rect.top(), 36, rect.height())
        painter.drawText(
            glyph,
            Qt.AlignmentFlag.AlignCenter,
            file_glyph(attachment.filename, attachment.content_type),
        )
        right = part.button.left() - 8 if part.button is not None else rect.right() - 8
        words = QRect(
            glyph.right() + 8,
            rect.top() + 8,
            max(20, right - glyph.right() - 8),
            rect.height() - 16,
        )
        bold = QFont(font)
        bold.setBold(True)
        painter.setFont(bold)
        name = painter.fontMetrics().elidedText(
            shown_filename(attachment.filename), Qt.TextElideMode.ElideMiddle, words.width()
        )
        painter.drawText(words, Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft, name)
        painter.setFont(font)
        painter.setPen(muted)
        painter.drawText(
            words,
            Qt.AlignmentFlag.AlignBottom | Qt.AlignmentFlag.AlignLeft,
            human_size(attachment.size),
        )
        if part.button is not None:
            painter.setPen(palette.color(QPalette.ColorRole.Mid))
            painter.setBrush(palette.color(QPalette.ColorRole.Button))
            painter.drawRoundedRect(part.button, 4, 4)
            painter.setPen(palette.color(QPalette.ColorRole.ButtonText))
            painter.drawText(part.button, Qt.AlignmentFlag.AlignCenter, "⤓ Download")

    def _preview_cache(self) -> AttachmentImages | None:
        if self._previews is None:
            session = self.model.session if self.model is not None else None
            if session is None:
                return None
            self._previews = attachment_images_for(session)
            self._previews.image_ready.connect(self._preview_ready)
        return self._previews

    def _preview_ready(self, attachment_id: object) -> None:
        """Repaint the visible rows showing ``attachment_id``."""
        self._repaint_visible(
            lambda item: (
                isinstance(item, Message) and any(a.id == attachment_id for a in item.attachments)
            )
        )

    def _repaint_visible(self, shows: Callable[[Message | PendingMessage | None], bool]) -> None:
        """Repaint the rows on screen whose item ``shows`` says changed (a picture
        arrived): only those, not the whole viewport."""
        view, model = self.view, self.model
        if view is None or model is None or not view.isVisible() or not model.rowCount():
            return
        first, last = self._visible_rows()
        viewport = view.viewport()
        for row in range(first, last + 1):
            if shows(model.item(row)):
                viewport.update(view.visualRect(model.index(row, 0)))

    def uncover(self, attachment: Attachment) -> None:
        """Show a spoiler picture (the reader clicked its cover)."""
        if attachment.id in self.uncovered:
            return
        self.uncovered.add(attachment.id)
        if self.viewport is not None:
            self.viewport.update()

    def _author_picture(self, cached: _Cached, ratio: float) -> QPixmap | None:
        """The author's avatar if it is ready (a cached look-up, never a decode)."""
        avatars = self._image_cache()
        model = self.model
        if avatars is None or model is None or model.channel_id is None:
            return None
        if cached.own:
            image_hash = avatars.own_hash(cached.seed)
        else:
            image_hash = avatars.user_hash(cached.seed, cached.avatar)
        if image_hash is None:
            return None
        return avatars.avatar(model.channel_id, cached.seed, image_hash, AVATAR, ratio)

    def _image_cache(self) -> ImageCache | None:
        if self._avatars is None:
            session = self.model.session if self.model is not None else None
            if session is None:
                return None
            self._avatars = avatars_for(session)
            self._avatars.image_ready.connect(self._image_ready)
            self._avatars.user_changed.connect(self._repaint_author)
        return self._avatars

    def _image_ready(self, key: ImageKey) -> None:
        if key.kind == "avatar":
            self._repaint_author(key.owner_id)

    def _repaint_author(self, user_id: object) -> None:
        """Repaint the visible rows written by ``user_id`` (their picture changed)."""
        self._repaint_visible(
            lambda item: (item.author.id if isinstance(item, Message) else self.me) == user_id
        )

    def reply_text(self, item: Message, model: object) -> str:
        """The line above a reply: who wrote the replied-to message and its text as
        read (no markdown markers, spoilers still hidden), or why it is missing."""
        referenced = item.referenced_message
        reference = item.message_reference
        if referenced is None and reference is not None and reference.message_id is not None:
            finder = getattr(model, "message", None)
            referenced = finder(reference.message_id) if finder else None
        if referenced is None:
            return "↪ Original message was deleted or not loaded"
        author = referenced.author.global_name or referenced.author.username
        return f"↪ @{author}: {plain_text(referenced.content, mentions=self.mentions)}"

    def _paint_reply(
        self, painter: QPainter, rect: QRect, item: Message, index: Index, muted: QColor
    ) -> None:
        line = self.reply_text(item, index.model())
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
        if out.attachments and isinstance(item, Message):
            for part in out.attachments:
                if part.number >= len(item.attachments):
                    continue
                attachment = item.attachments[part.number]
                if part.button is not None and part.button.contains(pos):
                    return ("download", (item, attachment))
                if part.image and part.rect.contains(pos):
                    if attachment.spoiler and attachment.id not in self.uncovered:
                        return ("uncover", attachment)
                    return ("open_attachment", (item, attachment))
        if out.body.contains(pos):
            doc = self.document(item, out.body.width())
            anchor = doc.documentLayout().anchorAt((pos - out.body.topLeft()).toPointF())
            if anchor == SPOILER_HREF and isinstance(item, Message):
                return ("spoiler", item)
            if anchor.startswith(COPY_CODE_HREF):
                blocks = code_blocks(item.content)
                number = anchor.removeprefix(COPY_CODE_HREF)
                if number.isdigit() and int(number) < len(blocks):
                    return ("copy_code", blocks[int(number)])
                return None
            if anchor:
                return ("link", anchor)
        return None

    def reveal_spoilers(self, message: Message) -> None:
        """Show ``message``'s spoilers (the reader clicked one, or asked from the keyboard)."""
        if message.id in self.revealed:
            return
        self.revealed.add(message.id)
        if self.viewport is not None:
            self.viewport.update()

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
        elif action == "spoiler":
            assert isinstance(payload, Message)
            self.reveal_spoilers(payload)
        elif action == "uncover":
            assert isinstance(payload, Attachment)
            self.uncover(payload)
        elif action == "open_attachment":
            assert isinstance(payload, tuple)
            self.attachment_opened.emit(*payload)
        elif action == "download":
            assert isinstance(payload, tuple)
            self.download_clicked.emit(*payload)
        elif action == "copy_code":
            assert isinstance(payload, str)
            self.code_copied.emit(payload)
        else:
            return False
        return True
