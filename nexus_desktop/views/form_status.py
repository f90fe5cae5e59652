"""Progress and errors shown inline in a management form: a status label that says
"Saving…" while an operation runs (its buttons disabled), then the result, and per-field
error labels filled from the relay's ``InvalidInput.fields``."""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from nexus_client import Forbidden, InvalidInput

from ..qt import QLabel, Qt, QWidget, alive
from ..session import AppSession, describe_error


def plain_label(text: str = "", parent: QWidget | None = None) -> QLabel:
    """A label for text that may come from other people: never interpreted as HTML."""
    label = QLabel(text, parent)
    label.setTextFormat(Qt.TextFormat.PlainText)
    return label


class FormStatus(QLabel):
    """One line under a form: progress, success or the error of its last operation."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setTextFormat(Qt.TextFormat.PlainText)
        self.setObjectName("StatusLabel")
        self.setWordWrap(True)
        self.field_labels: dict[str, QLabel] = {}

    def field_error_label(self, field: str) -> QLabel:
        """A hidden red label for one request field, shown when the relay rejects it."""
        label = plain_label()
        label.setObjectName("FieldError")
        label.setWordWrap(True)
        label.setAccessibleName(f"{field} error")
        label.hide()
        self.field_labels[field] = label
        return label

    def busy(self, text: str = "Saving…") -> None:
        self.setObjectName("StatusLabel")
        self._restyle()
        for label in self.field_labels.values():
            label.clear()
            label.hide()
        self.setText(text)

    def ok(self, text: str = "Saved.") -> None:
        self.setObjectName("StatusLabel")
        self._restyle()
        self.setText(text)

    def fail(self, exc: Exception) -> None:
        """Errors on named fields go next to those fields; the rest go here."""
        unplaced: list[str] = []
        if isinstance(exc, InvalidInput):
            for field, messages in exc.fields.items():
                label = self.field_labels.get(field.split(".")[0])
                if label is not None:
                    label.setText(" ".join(messages))
                    label.show()
                else:
                    unplaced.append(f"{field}: {' '.join(messages)}")
            text = "; ".join(unplaced) or "Please fix the highlighted fields."
        elif isinstance(exc, Forbidden):
            text = f"The relay refused: you lack the permission for this ({exc.message})."
        else:
            text = describe_error(exc)
        self.setObjectName("ErrorLabel")
        self._restyle()
        self.setText(text)

    def _restyle(self) -> None:
        # An object-name change only re-matches style sheet rules after a repolish.
        self.style().unpolish(self)
        self.style().polish(self)


def run_operation(
    session: AppSession,
    coroutine: Coroutine[Any, Any, Any],
    status: FormStatus,
    buttons: Sequence[QWidget] = (),
    on_done: Callable[[Any], None] | None = None,
    *,
    busy_text: str = "Saving…",
    done_text: str = "Saved.",
) -> None:
    """Run a network operation for a form: disable its buttons, say so, report back."""
    for button in buttons:
        button.setEnabled(False)
    status.busy(busy_text)

    def restore() -> None:
        for button in buttons:
            button.setEnabled(True)

    def done(result: Any) -> None:
        if not alive(status):
            return  # the form was closed while this ran
        restore()
        status.ok(done_text)
        if on_done is not None:
            on_done(result)

    def failed(exc: Exception) -> None:
        if not alive(status):
            return
        restore()
        status.fail(exc)

    session.run(coroutine, on_done=done, on_error=failed)
