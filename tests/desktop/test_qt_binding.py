"""PySide6 6.12.0 on CPython 3.11 drops a reference to None on every Qt call that
returns None and crashes after a few thousand (`Fatal Python error: none_dealloc`).
The project pins PySide6 below 6.12 on Python < 3.12; this keeps the pin honest."""

from __future__ import annotations

import sys

import PySide6
from PySide6.QtWidgets import QApplication, QWidget


def test_ten_thousand_qt_calls_returning_none_leave_none_alive(
    qapp_instance: QApplication,
) -> None:
    widget = QWidget()
    before = sys.getrefcount(None)
    for index in range(10_000):
        widget.setObjectName(f"w{index % 7}")  # returns None
        widget.setToolTip("")  # returns None
    after = sys.getrefcount(None)
    # Interpreter activity moves None's count a little either way; a binding that
    # drops one reference per call would have lost 20,000.
    assert after > before - 1_000
    widget.deleteLater()


def test_the_installed_binding_respects_the_pin() -> None:
    major, minor = (int(part) for part in PySide6.__version__.split(".")[:2])
    if sys.version_info < (3, 12):
        assert (major, minor) < (6, 12), PySide6.__version__
