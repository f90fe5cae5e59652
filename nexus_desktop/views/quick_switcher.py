"""Ctrl+K: type a few letters of any channel in any community, Enter goes there."""

from __future__ import annotations

from nexus_protocol.models import TEXT_CHANNEL_TYPES

from ..models.channels import read_states_for
from ..qt import (
    QDialog,
    QEvent,
    QKeyEvent,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QObject,
    Qt,
    QVBoxLayout,
    QWidget,
    Signal,
)
from ..session import AppSession

LIMIT = 50


def fuzzy_score(query: str, text: str) -> int | None:
    """A score for ``query`` as a subsequence of ``text`` (higher is better), None when
    it is not one. Consecutive letters and word starts count extra, as in editors."""
    query, text = query.casefold(), text.casefold()
    if not query:
        return 0
    if query in text:
        return 1000 - text.index(query) * 2 - len(text)
    score, position, previous = 0, 0, -2
    for char in query:
        found = text.find(char, position)
        if found < 0:
            return None
        score += 5 if found == previous + 1 else 1
        if found == 0 or not text[found - 1].isalnum():
            score += 3
        previous, position = found, found + 1
    return score - len(text) // 4


class QuickSwitcher(QDialog):
    channel_chosen = Signal(object)  # channel id: snowflakes overflow a Qt int

    def __init__(self, session: AppSession, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("QuickSwitcher")
        self.setWindowTitle("Switch to a channel")
        self.setModal(True)
        self.resize(480, 360)
        self._session = session
        self._read_states = read_states_for(session)

        self.query = QLineEdit(self)
        self.query.setPlaceholderText("Where would you like to go?")
        self.query.setAccessibleName("Channel search")
        self.query.textChanged.connect(self._refilter)
        self.query.installEventFilter(self)
        self.results = QListWidget(self)
        self.results.setAccessibleName("Matching channels")
        self.results.itemActivated.connect(lambda _item: self._choose())

        layout = QVBoxLayout(self)
        layout.addWidget(self.query)
        layout.addWidget(self.results, 1)

    def open(self) -> None:
        self.query.clear()
        self._refilter()
        super().open()
        self.query.setFocus()

    def candidates(self) -> list[tuple[int, str, bool, int]]:
        """(channel id, "name — community", unread, mentions) for every text channel."""
        found = []
        for _account, guild in self._session.all_guilds():
            for channel in self._session.channels(guild.id):
                if channel.type not in TEXT_CHANNEL_TYPES:
                    continue
                label = f"{channel.name or 'unnamed'} — {guild.name}"
                found.append(
                    (
                        channel.id,
                        label,
                        bool(self._read_states.unread(channel.id)),
                        self._read_states.mentions(channel.id),
                    )
                )
        return found

    def _refilter(self) -> None:
        text = self.query.text().strip()
        rows = self.candidates()
        if not text:
            # Nothing typed: where something waits comes first (mentions, then unread).
            rows.sort(key=lambda r: (-r[3], not r[2]))
            ranked = rows
        else:
            scored = [(fuzzy_score(text, r[1]), r) for r in rows]
            ranked = [
                r
                for s, r in sorted(
                    ((s, r) for s, r in scored if s is not None), key=lambda p: -p[0]
                )
            ]
        self.results.clear()
        for channel_id, label, unread, mentions in ranked[:LIMIT]:
            shown = f"{label}  ({mentions})" if mentions else label
            item = QListWidgetItem(shown)
            item.setData(Qt.ItemDataRole.UserRole, channel_id)
            if unread:
                font = item.font()
                font.setBold(True)
                item.setFont(font)
            self.results.addItem(item)
        if self.results.count():
            self.results.setCurrentRow(0)

    def shown(self) -> list[str]:
        return [self.results.item(i).text() for i in range(self.results.count())]

    def _choose(self) -> None:
        item = self.results.currentItem()
        if item is None:
            return
        self.channel_chosen.emit(int(item.data(Qt.ItemDataRole.UserRole)))
        self.accept()

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        # Arrow keys move the list while the cursor stays in the search field.
        if watched is self.query and event.type() == QEvent.Type.KeyPress:
            assert isinstance(event, QKeyEvent)
            key = event.key()
            if key in (Qt.Key.Key_Up, Qt.Key.Key_Down) and self.results.count():
                step = -1 if key == Qt.Key.Key_Up else 1
                row = (self.results.currentRow() + step) % self.results.count()
                self.results.setCurrentRow(row)
                return True
            if key in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
                self._choose()
                return True
        return super().eventFilter(watched, event)
