"""A picture attachment on its own: fitted to the window, "Save as…", Esc closes."""

from __future__ import annotations

from collections.abc import Callable

from nexus_protocol.models import Attachment

from ..attachments import human_size, load_full_image, shown_filename
from ..markdown import plain_tooltip
from ..qt import (
    QDialog,
    QHBoxLayout,
    QImage,
    QLabel,
    QPixmap,
    QPushButton,
    QResizeEvent,
    QSizePolicy,
    Qt,
    QVBoxLayout,
    QWidget,
)
from ..session import AppSession

__all__ = ["AttachmentViewer"]


class AttachmentViewer(QDialog):
    """Shows one picture; ``save`` asks where to save it (the message view's own
    "Save attachment…")."""

    def __init__(
        self,
        session: AppSession,
        channel_id: int,
        attachment: Attachment,
        save: Callable[[], None],
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        # A viewer holds a picture of up to 4096 px a side: closed, it must go.
        self.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self.setObjectName("AttachmentViewer")
        self.attachment = attachment
        name = shown_filename(attachment.filename)
        self.setWindowTitle(name)
        self.setAccessibleName(f"Picture {name}")
        self.image: QImage | None = None
        self.picture = QLabel("Loading…", self)
        self.picture.setTextFormat(Qt.TextFormat.PlainText)
        self.picture.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.picture.setAccessibleName("Picture")
        self.picture.setMinimumSize(80, 60)
        self.picture.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Ignored)
        if attachment.description:
            self.picture.setToolTip(plain_tooltip(attachment.description))
        caption = QLabel(f"{name} — {human_size(attachment.size)}", self)
        caption.setTextFormat(Qt.TextFormat.PlainText)
        self.save_button = QPushButton("Save as…", self)
        self.save_button.setAccessibleName("Save picture as")
        self.save_button.clicked.connect(save)
        close = QPushButton("Close", self)
        close.clicked.connect(self.reject)
        bar = QHBoxLayout()
        bar.addWidget(caption, 1)
        bar.addWidget(self.save_button)
        bar.addWidget(close)
        layout = QVBoxLayout(self)
        layout.addWidget(self.picture, 1)
        layout.addLayout(bar)
        width, height = attachment.width or 640, attachment.height or 480
        self.resize(min(1000, max(360, width + 24)), min(760, max(260, height + 70)))
        self._loading = session.run(
            load_full_image(session, channel_id, attachment),
            on_done=self._loaded,
            on_error=lambda exc: self._failed(),
        )

    def done(self, result: int) -> None:
        # Closed before the picture came: stop downloading it (and never call back
        # into a deleted dialog).
        self._loading.cancel()
        super().done(result)

    def _loaded(self, image: QImage | None) -> None:
        if image is None:
            self._failed()
            return
        self.image = image
        self._fit()

    def _failed(self) -> None:
        self.picture.setText("This picture could not be loaded.")

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self._fit()

    def _fit(self) -> None:
        if self.image is None:
            return
        ratio = self.devicePixelRatioF()
        room = self.picture.size() * ratio
        image = self.image
        if image.width() > room.width() or image.height() > room.height():
            image = image.scaled(
                room,
                Qt.AspectRatioMode.KeepAspectRatio,
                Qt.TransformationMode.SmoothTransformation,
            )
        pixmap = QPixmap.fromImage(image)
        pixmap.setDevicePixelRatio(ratio)
        self.picture.setPixmap(pixmap)
