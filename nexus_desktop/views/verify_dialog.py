"""Comparing safety numbers with a contact: 60 digits in 12 groups of 5 and the same
number as a QR code (computed with ``qrcode``, painted here with QPainter: no image
plugins), and "Mark as verified", remembered in the account's encrypted store."""

from __future__ import annotations

from ..qt import (
    QColor,
    QDialog,
    QFont,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QPainter,
    QPixmap,
    QPushButton,
    QRect,
    QSize,
    Qt,
    QVBoxLayout,
    QWidget,
)
from ..session import Account, AppSession, describe_error

QR_PREFIX = "nexus-safety-number:"


def digit_groups(number: str) -> list[str]:
    """``number``'s digits in groups of five (12 groups for a 60-digit number)."""
    digits = "".join(ch for ch in number if ch.isdigit())
    return [digits[i : i + 5] for i in range(0, len(digits), 5)]


def qr_matrix(text: str) -> list[list[bool]]:
    """The QR code of ``text`` as rows of dark (True) / light modules, with the
    standard four-module quiet zone."""
    import qrcode  # imported when a dialog first needs it: it is not small
    import qrcode.constants

    code = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M, border=4)
    code.add_data(text)
    code.make(fit=True)
    return [[bool(cell) for cell in row] for row in code.get_matrix()]


class QRCodeWidget(QWidget):
    """Paints a QR matrix: black modules on white whatever the theme (scanners need
    the contrast), square, scaled to whole pixels per module."""

    def __init__(self, text: str = "", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._matrix: list[list[bool]] = []
        self.setMinimumSize(QSize(180, 180))
        self.set_text(text)

    def set_text(self, text: str) -> None:
        self._matrix = qr_matrix(text) if text else []
        self.setAccessibleName("Safety number QR code" if text else "No QR code")
        self.update()

    def matrix(self) -> list[list[bool]]:
        return [list(row) for row in self._matrix]

    def sizeHint(self) -> QSize:
        return QSize(220, 220)

    def _paint(self, painter: QPainter, width: int, height: int) -> None:
        painter.fillRect(QRect(0, 0, width, height), QColor("white"))
        count = len(self._matrix)
        if not count:
            return
        module = max(1, min(width, height) // count)
        left = (width - module * count) // 2
        top = (height - module * count) // 2
        dark = QColor("black")
        for y, row in enumerate(self._matrix):
            for x, cell in enumerate(row):
                if cell:
                    painter.fillRect(
                        QRect(left + x * module, top + y * module, module, module), dark
                    )

    def paintEvent(self, _event: object) -> None:
        painter = QPainter(self)
        self._paint(painter, self.width(), self.height())
        painter.end()

    def render_pixmap(self, size: int = 240) -> QPixmap:
        pixmap = QPixmap(size, size)
        pixmap.fill(QColor("white"))
        painter = QPainter(pixmap)
        self._paint(painter, size, size)
        painter.end()
        return pixmap


class VerifyDialog(QDialog):
    """Safety number with one contact; ``verified`` reflects the stored state."""

    def __init__(
        self,
        session: AppSession,
        user_id: int,
        account: Account | None = None,
        name: str = "",
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self._session = session
        self._user_id = user_id
        self._account = account or session.dm_account_for_user(user_id)
        self._name = name or str(user_id)
        self.setWindowTitle(f"Verify {self._name}")
        layout = QVBoxLayout(self)
        intro = QLabel(
            f"Compare these numbers with {self._name}'s, in person or over a channel you"
            " trust, or scan each other's code. If they match, your conversation is"
            " end-to-end encrypted with nobody in between."
        )
        intro.setWordWrap(True)
        layout.addWidget(intro)
        body = QHBoxLayout()
        self.digits = QWidget()
        self.digits.setObjectName("SafetyNumber")
        grid = QGridLayout(self.digits)
        grid.setHorizontalSpacing(14)
        self.group_labels: list[QLabel] = []
        mono = QFont("monospace")
        mono.setStyleHint(QFont.StyleHint.Monospace)
        mono.setPointSizeF(mono.pointSizeF() * 1.3 if mono.pointSizeF() > 0 else 13)
        for index in range(12):
            label = QLabel("")
            label.setFont(mono)
            label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            grid.addWidget(label, index // 4, index % 4)
            self.group_labels.append(label)
        body.addWidget(self.digits, 1)
        self.qr = QRCodeWidget()
        body.addWidget(self.qr)
        layout.addLayout(body)
        self.state = QLabel("")
        self.state.setWordWrap(True)
        layout.addWidget(self.state)
        buttons = QHBoxLayout()
        self.verify_button = QPushButton("Mark as verified")
        self.verify_button.clicked.connect(self.toggle_verified)
        buttons.addWidget(self.verify_button)
        buttons.addStretch(1)
        close = QPushButton("Close")
        close.clicked.connect(self.accept)
        buttons.addWidget(close)
        layout.addLayout(buttons)
        self.number = ""
        self.refresh()

    def refresh(self) -> None:
        try:
            self.number = self._session.safety_number(self._user_id, self._account)
        except Exception as exc:  # no keys yet: say so instead of a number
            self.number = ""
            self.state.setText(f"No safety number yet: {describe_error(exc)}")
            self.verify_button.setEnabled(False)
            self.qr.set_text("")
            for label in self.group_labels:
                label.setText("")
            return
        groups = digit_groups(self.number)
        for label, group in zip(self.group_labels, groups, strict=False):
            label.setText(group)
        self.digits.setAccessibleName("Safety number " + " ".join(groups))
        self.qr.set_text(QR_PREFIX + self.number)
        self.verify_button.setEnabled(True)
        verified = self.verified
        self.verify_button.setText("Clear verification" if verified else "Mark as verified")
        self.state.setText(
            f"✓ You verified {self._name}." if verified else f"{self._name} is not verified."
        )

    def shown_number(self) -> str:
        """The digits as the dialog shows them, groups joined."""
        return "".join(label.text() for label in self.group_labels)

    @property
    def verified(self) -> bool:
        return self._session.is_verified(self._user_id, self._account)

    def toggle_verified(self) -> None:
        if self.verified:
            self._session.clear_verified(self._user_id, self._account)
        else:
            self._session.mark_verified(self._user_id, self._account)
        self.refresh()
