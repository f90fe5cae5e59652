"""The search results panel (right of the messages, in the member list's place):
"N results", each hit with its author, channel, time and text with the searched words
in bold, pages of 25, newest or oldest first. Opening a hit asks the window to jump
to it.

Hit text is hostile input: it is flattened to plain text (``markdown.plain_text``),
every character is escaped, and the only markup added is ``<b>`` around matches, laid
out in a ``SafeTextDocument`` that loads no resource whatever the text says.
"""

from __future__ import annotations

import html
import re
from typing import Any

from nexus_client import ConnectionLost, Forbidden, RateLimited, SearchResults
from nexus_protocol.models import Message

from ..markdown import SafeTextDocument, plain_text
from ..qt import (
    QAbstractItemView,
    QAbstractListModel,
    QFont,
    QHBoxLayout,
    QKeyEvent,
    QLabel,
    QListView,
    QModelIndex,
    QObject,
    QPainter,
    QPalette,
    QPersistentModelIndex,
    QRect,
    QSize,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    Qt,
    QToolButton,
    QVBoxLayout,
    QWidget,
    Signal,
)
from ..search_query import (
    ResolvedQuery,
    UnresolvedQuery,
    highlight_terms,
    parse_query,
    resolve_query,
)
from ..session import SEARCH_PAGE, AppSession, describe_error

__all__ = ["PANEL_WIDTH", "SearchPanel", "hit_html"]

PANEL_WIDTH = 360
BODY_LINES = 3  # a hit's text is cut to this many lines
SNIPPET_CHARS = 400
PAD = 8

Index = QModelIndex | QPersistentModelIndex
HitRole = int(Qt.ItemDataRole.UserRole) + 1


def hit_html(text: str, terms: list[str]) -> str:
    """``text`` escaped for Qt's rich text, with each word that starts with one of
    ``terms`` in bold (the relay matches the last word as a prefix)."""
    if not terms:
        return html.escape(text)
    pattern = re.compile(
        r"(?<!\w)(?:" + "|".join(re.escape(t) for t in terms) + r")\w*", re.IGNORECASE
    )
    out: list[str] = []
    last = 0
    for match in pattern.finditer(text):
        out.append(html.escape(text[last : match.start()]))
        out.append(f"<b>{html.escape(match.group(0))}</b>")
        last = match.end()
    out.append(html.escape(text[last:]))
    return "".join(out)


# The relay stops counting matches here (as Discord does): the true total may be larger.
COUNT_CAP = 5_000


def result_count(total: int) -> str:
    """ "1 result", "26 results", "5,000+ results" (the relay's count stops at 5,000)."""
    if total >= COUNT_CAP:
        return f"{COUNT_CAP:,}+ results"
    return f"{total:,} result{'' if total == 1 else 's'}"


class SearchResultsModel(QAbstractListModel):
    """One page of hits, as the panel shows them: (message, author, where and when,
    snippet)."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._rows: list[tuple[Message, str, str, str]] = []
        self.terms: list[str] = []

    def set_hits(self, rows: list[tuple[Message, str, str, str]], terms: list[str]) -> None:
        self.beginResetModel()
        self._rows = rows
        self.terms = terms
        self.endResetModel()

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008 - Qt's default
        return 0 if parent.isValid() else len(self._rows)

    def message(self, row: int) -> Message | None:
        return self._rows[row][0] if 0 <= row < len(self._rows) else None

    def author(self, row: int) -> str:
        return self._rows[row][1]

    def where_and_when(self, row: int) -> str:
        return self._rows[row][2]

    def snippet(self, row: int) -> str:
        return self._rows[row][3]

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        row = index.row()
        if not 0 <= row < len(self._rows):
            return None
        _message, author, where, snippet = self._rows[row]
        if role == Qt.ItemDataRole.DisplayRole:
            return snippet
        if role == Qt.ItemDataRole.AccessibleTextRole:
            return f"{author}, {where}: {snippet}"
        if role == HitRole:
            return self._rows[row][0]
        return None


class SearchHitDelegate(QStyledItemDelegate):
    """Paints a hit: a header line (author in bold, then channel and time, elided) over
    up to ``BODY_LINES`` lines of its text."""

    def __init__(self, model: SearchResultsModel, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._model = model
        self._docs: dict[tuple[int, int, str], SafeTextDocument] = {}
        model.modelReset.connect(self._docs.clear)

    def document(self, row: int, width: int, colour: str = "") -> SafeTextDocument:
        """The hit's text laid out at ``width`` (in ``colour``, a ``#rrggbb`` name, if
        given: a selected row's text is light on the highlight)."""
        key = (row, width, colour)
        doc = self._docs.get(key)
        if doc is None:
            doc = SafeTextDocument()
            doc.setDocumentMargin(0)
            body = hit_html(self._model.snippet(row), self._model.terms)
            doc.setHtml(f'<span style="color:{colour}">{body}</span>' if colour else body)
            doc.setTextWidth(max(40, width))
            self._docs[key] = doc
        return doc

    def _body_height(self, option: QStyleOptionViewItem, doc: SafeTextDocument) -> int:
        cap = option.fontMetrics.lineSpacing() * BODY_LINES + 2
        return min(int(doc.size().height()) + 1, cap)

    def sizeHint(self, option: QStyleOptionViewItem, index: Index) -> QSize:
        width = option.rect.width() or PANEL_WIDTH
        doc = self.document(index.row(), width - 2 * PAD)
        header = option.fontMetrics.height()
        return QSize(width, PAD + header + 4 + self._body_height(option, doc) + PAD)

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: Index) -> None:
        row = index.row()
        rect: QRect = option.rect
        painter.save()
        style = option.widget.style() if option.widget is not None else None
        if style is not None:
            style.drawPrimitive(
                QStyle.PrimitiveElement.PE_PanelItemViewItem, option, painter, option.widget
            )
        palette: QPalette = option.palette
        metrics = option.fontMetrics
        selected = bool(option.state & QStyle.StateFlag.State_Selected)
        text_role = QPalette.ColorRole.HighlightedText if selected else QPalette.ColorRole.Text
        header_rect = QRect(
            rect.left() + PAD, rect.top() + PAD, rect.width() - 2 * PAD, metrics.height()
        )
        bold = QFont(option.font)
        bold.setBold(True)
        painter.setFont(bold)
        painter.setPen(palette.color(text_role))
        name = painter.fontMetrics().elidedText(
            self._model.author(row), Qt.TextElideMode.ElideRight, header_rect.width() // 2
        )
        painter.drawText(header_rect, Qt.AlignmentFlag.AlignLeft, name)
        used = painter.fontMetrics().horizontalAdvance(name) + 8
        painter.setFont(option.font)
        painter.setPen(palette.color(text_role if selected else QPalette.ColorRole.PlaceholderText))
        rest = header_rect.adjusted(used, 0, 0, 0)
        where = self._model.where_and_when(row)
        painter.drawText(
            rest,
            Qt.AlignmentFlag.AlignLeft,
            metrics.elidedText(where, Qt.TextElideMode.ElideRight, rest.width()),
        )
        doc = self.document(row, rect.width() - 2 * PAD, palette.color(text_role).name())
        body_top = header_rect.bottom() + 4
        height = self._body_height(option, doc)
        painter.translate(rect.left() + PAD, body_top)
        painter.setClipRect(QRect(0, 0, rect.width() - 2 * PAD, height))
        doc.drawContents(painter)
        painter.restore()


class SearchPanel(QWidget):
    """Runs searches of one community through the session and shows their pages."""

    result_opened = Signal(object)  # Message
    closed = Signal()

    def __init__(self, session: AppSession, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("SearchPanel")
        self.setAccessibleName("Search results")
        self.session = session
        self.guild_id: int | None = None
        self.query_text = ""
        self.total = 0
        self.offset = 0
        self._resolved: ResolvedQuery | None = None
        self._generation = 0  # answers to an older search are dropped

        self.count_label = QLabel(self)
        self.count_label.setObjectName("SearchCount")
        self.count_label.setTextFormat(Qt.TextFormat.PlainText)
        self.sort_button = QToolButton(self)
        self.sort_button.setCheckable(True)
        self.sort_button.setText("Newest first")
        self.sort_button.setToolTip("Show the oldest messages first")
        self.sort_button.setAccessibleName("Sort order")
        self.sort_button.toggled.connect(self._sort_changed)
        self.close_button = QToolButton(self)
        self.close_button.setText("✕")
        self.close_button.setToolTip("Close search (Esc)")
        self.close_button.setAccessibleName("Close search")
        self.close_button.clicked.connect(self.close_panel)
        self.status = QLabel(self)
        self.status.setObjectName("SearchStatus")
        self.status.setTextFormat(Qt.TextFormat.PlainText)  # quotes the user's text
        self.status.setWordWrap(True)
        self.status.hide()
        self.model = SearchResultsModel(self)
        self.list = QListView(self)
        self.list.setObjectName("SearchResults")
        self.list.setAccessibleName("Search results")
        self.list.setModel(self.model)
        self.delegate = SearchHitDelegate(self.model, self.list)
        self.list.setItemDelegate(self.delegate)
        self.list.setUniformItemSizes(False)
        self.list.setWordWrap(True)
        self.list.setVerticalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        self.list.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.list.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.list.clicked.connect(lambda index: self.open_row(index.row()))
        self.list.installEventFilter(self)
        self.previous_button = QToolButton(self)
        self.previous_button.setText("← Previous")
        self.previous_button.setAccessibleName("Previous page")
        self.previous_button.clicked.connect(lambda: self._page(-1))
        self.next_button = QToolButton(self)
        self.next_button.setText("Next →")
        self.next_button.setAccessibleName("Next page")
        self.next_button.clicked.connect(lambda: self._page(1))
        self.page_label = QLabel(self)
        self.page_label.setTextFormat(Qt.TextFormat.PlainText)
        self.page_label.setAlignment(Qt.AlignmentFlag.AlignCenter)

        top = QHBoxLayout()
        top.setContentsMargins(8, 6, 4, 6)
        top.addWidget(self.count_label, 1)
        top.addWidget(self.sort_button)
        top.addWidget(self.close_button)
        pager = QHBoxLayout()
        pager.setContentsMargins(4, 4, 4, 4)
        pager.addWidget(self.previous_button)
        pager.addWidget(self.page_label, 1)
        pager.addWidget(self.next_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addLayout(top)
        layout.addWidget(self.status)
        layout.addWidget(self.list, 1)
        layout.addLayout(pager)
        self.setFixedWidth(PANEL_WIDTH)
        self._show_pager()

    # Searching -------------------------------------------------------------------------

    def search(self, guild_id: int, text: str) -> None:
        """Search ``guild_id`` for what the box says: the first page, in the chosen
        order. Names that match nobody are said so in the panel, not sent."""
        self.guild_id = guild_id
        self.query_text = text
        self._generation += 1
        self._resolved = None
        self.total = 0
        self.offset = 0
        self.model.set_hits([], [])
        self.count_label.setText("")
        query = parse_query(text)
        if query.empty:
            self._say("Type words to search for, or a filter: from:, in:, mentions:, has:")
            self._show_pager()
            return
        try:
            self._resolved = resolve_query(
                query, self.session.members(guild_id), self.session.channels(guild_id)
            )
        except UnresolvedQuery as exc:
            self._say(str(exc))
            self._show_pager()
            return
        self._fetch()

    def _fetch(self) -> None:
        if self.guild_id is None or self._resolved is None:
            return
        self._generation += 1
        generation = self._generation
        self._say("Searching…")
        self.previous_button.setEnabled(False)
        self.next_button.setEnabled(False)
        try:
            self.session.search_messages(
                self.guild_id,
                self._resolved,
                offset=self.offset,
                oldest_first=self.sort_button.isChecked(),
                on_done=lambda results: self._show_results(generation, results),
                on_error=lambda exc: self._failed(generation, exc),
            )
        except Exception as exc:  # no relay for this community any more
            self._failed(generation, exc)

    def _show_results(self, generation: int, results: SearchResults) -> None:
        if generation != self._generation:
            return
        self.total = results.total
        rows = [
            (m, self._author(m), self._where_and_when(m), self._snippet(m))
            for m in results.messages
        ]
        content = self._resolved.content if self._resolved is not None else None
        self.model.set_hits(rows, highlight_terms(content or ""))
        self.count_label.setText(result_count(results.total))
        if results.total == 0:
            self._say("No messages match. End-to-end encrypted channels are never searched.")
        else:
            self._say("")
            self.list.setCurrentIndex(self.model.index(0))
            self.list.scrollToTop()
        self._show_pager()

    def _failed(self, generation: int, exc: Exception) -> None:
        if generation != self._generation:
            return
        if isinstance(exc, RateLimited):
            text = f"Too many searches: try again in {max(1, round(exc.retry_after))} s."
        elif isinstance(exc, ConnectionLost):
            text = "The relay cannot be reached; search needs a connection."
        elif isinstance(exc, Forbidden):
            text = "You cannot read that channel."
        else:
            text = f"Search failed: {describe_error(exc)}"
        self._say(text)
        self._show_pager()

    def _say(self, text: str) -> None:
        self.status.setText(text)
        self.status.setVisible(bool(text))

    def _where_and_when(self, message: Message) -> str:
        channel = self.session.channel(message.channel_id)
        where = f"#{channel.name}" if channel is not None and channel.name else "#?"
        return f"{where} · {message.timestamp.astimezone():%d %b %Y %H:%M}"

    def _author(self, message: Message) -> str:
        if self.guild_id is not None:
            for member in self.session.members(self.guild_id):
                if member.user is not None and member.user.id == message.author.id:
                    return member.nick or member.user.global_name or member.user.username
        return message.author.global_name or message.author.username

    def _snippet(self, message: Message) -> str:
        names: dict[int, str] = {u.id: u.global_name or u.username for u in message.mentions}
        text = plain_text(message.content, mentions=names, limit=SNIPPET_CHARS)
        if not text and (message.attachments or message.embeds):
            return "(attachment)"
        return text

    # Paging and order ------------------------------------------------------------------

    def _page(self, step: int) -> None:
        offset = self.offset + step * SEARCH_PAGE
        if 0 <= offset < max(self.total, 1):
            self.offset = offset
            self._fetch()

    def _sort_changed(self, oldest_first: bool) -> None:
        self.sort_button.setText("Oldest first" if oldest_first else "Newest first")
        self.sort_button.setToolTip(
            "Show the newest messages first" if oldest_first else "Show the oldest messages first"
        )
        if self._resolved is not None:
            self.offset = 0
            self._fetch()

    def _show_pager(self) -> None:
        pages = max(1, -(-self.total // SEARCH_PAGE))
        more = "+" if self.total >= COUNT_CAP else ""
        page = self.offset // SEARCH_PAGE + 1
        self.page_label.setText(f"Page {page} of {pages:,}{more}" if self.total else "")
        self.previous_button.setEnabled(self.offset > 0)
        self.next_button.setEnabled(self.offset + SEARCH_PAGE < self.total)

    # Results ---------------------------------------------------------------------------

    def result_texts(self) -> list[str]:
        """The hits' text as shown, top to bottom."""
        return [self.model.snippet(row) for row in range(self.model.rowCount())]

    def open_row(self, row: int) -> None:
        message = self.model.message(row)
        if message is not None:
            self.result_opened.emit(message)

    def cancel(self) -> None:
        """Drop the answer of a search still running: nobody is looking any more."""
        self._generation += 1

    def close_panel(self) -> None:
        self.cancel()
        self.closed.emit()

    def focus_results(self) -> None:
        self.list.setFocus()
        if not self.list.currentIndex().isValid() and self.model.rowCount():
            self.list.setCurrentIndex(self.model.index(0))

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.key() == Qt.Key.Key_Escape:
            self.close_panel()
            return
        super().keyPressEvent(event)

    def eventFilter(self, watched: object, event: object) -> bool:
        if (
            watched is self.list
            and isinstance(event, QKeyEvent)
            and event.type() == QKeyEvent.Type.KeyPress
        ):
            if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
                self.open_row(self.list.currentIndex().row())
                return True
            if event.key() == Qt.Key.Key_Escape:
                self.close_panel()
                return True
        return super().eventFilter(watched, event)  # type: ignore[arg-type]
