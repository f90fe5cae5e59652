"""The Keybinds settings page: each action with an editable shortcut, saved in prefs.
``changed`` tells the main window, which applies the new keys at once."""

from __future__ import annotations

from ..prefs import DEFAULT_KEYBINDS, KEYBIND_LABELS, Prefs
from ..qt import (
    QFormLayout,
    QHBoxLayout,
    QKeySequence,
    QKeySequenceEdit,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
    Signal,
)


class KeybindsPage(QWidget):
    title = "Keybinds"
    changed = Signal()

    def __init__(self, prefs: Prefs, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.prefs = prefs
        layout = QVBoxLayout(self)
        heading = QLabel(self.title)
        heading.setObjectName("PageTitle")
        layout.addWidget(heading)
        hint = QLabel("Click a shortcut and press the new keys. Changes apply at once.")
        hint.setObjectName("StatusLabel")
        hint.setWordWrap(True)
        layout.addWidget(hint)
        form = QFormLayout()
        self.editors: dict[str, QKeySequenceEdit] = {}
        current = prefs.keybinds()
        for action, label in KEYBIND_LABELS.items():
            editor = QKeySequenceEdit(QKeySequence(current.get(action, "")))
            editor.setAccessibleName(f"Shortcut for {label}")
            editor.setClearButtonEnabled(True)
            editor.setMaximumSequenceLength(1)
            editor.editingFinished.connect(self._save)
            self.editors[action] = editor
            form.addRow(label, editor)
        layout.addLayout(form)
        self.reset_button = QPushButton("Reset to defaults")
        self.reset_button.setAccessibleName("Reset keybinds to defaults")
        self.reset_button.setProperty("secondary", True)
        self.reset_button.clicked.connect(self.reset)
        row = QHBoxLayout()
        row.addWidget(self.reset_button)
        row.addStretch(1)
        layout.addLayout(row)
        layout.addStretch(1)

    def values(self) -> dict[str, str]:
        return {
            action: editor.keySequence().toString(QKeySequence.SequenceFormat.PortableText)
            for action, editor in self.editors.items()
        }

    def _save(self) -> None:
        self.prefs.set("keybinds", self.values())
        self.changed.emit()

    def reset(self) -> None:
        for action, editor in self.editors.items():
            editor.setKeySequence(QKeySequence(DEFAULT_KEYBINDS[action]))
        self._save()
