"""The voice controls: the panel above the user panel while in a call (status, channel,
lock, path, REC, mute / deafen / record / disconnect), the per-person volume popup, the
push-to-talk key, and the small vector icons they and the channel list draw.

Every control reads the session's ``VoiceController`` and asks it for changes; none
awaits anything.
"""

from __future__ import annotations

from ..prefs import Prefs
from ..qt import (
    QApplication,
    QColor,
    QEvent,
    QFrame,
    QHBoxLayout,
    QIcon,
    QKeyEvent,
    QKeySequence,
    QLabel,
    QObject,
    QPainter,
    QPalette,
    QPen,
    QPixmap,
    QPoint,
    QPushButton,
    QRect,
    QSize,
    QSlider,
    Qt,
    QToolButton,
    QVBoxLayout,
    QWidget,
)
from ..session import AppSession
from ..voice import VOLUME_MAX_PERCENT, VoiceController

GREEN = QColor("#23a55a")  # connected, speaking: Discord's green reads on every theme
RED = QColor("#f23f43")
AMBER = QColor("#f0b232")
ICON = 20


# Icons ----------------------------------------------------------------------------------------


def paint_voice_icon(
    painter: QPainter, rect: QRect, kind: str, color: QColor, *, slashed: bool = False
) -> None:
    """Draw a voice glyph into ``rect``: "mic", "headphones", "record", "stop", "hangup"
    or "lock". Drawn, not taken from a font, because many desktops lack emoji fonts."""
    painter.save()
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    side = min(rect.width(), rect.height())
    unit = side / 20
    left = rect.left() + (rect.width() - side) / 2
    top = rect.top() + (rect.height() - side) / 2

    def at(x: float, y: float) -> QPoint:
        return QPoint(round(left + x * unit), round(top + y * unit))

    def box(x: float, y: float, w: float, h: float) -> QRect:
        return QRect(at(x, y), QSize(max(1, round(w * unit)), max(1, round(h * unit))))

    pen = QPen(color)
    pen.setWidthF(max(1.5, 1.8 * unit))
    pen.setCapStyle(Qt.PenCapStyle.RoundCap)
    painter.setPen(pen)
    painter.setBrush(Qt.BrushStyle.NoBrush)
    if kind == "mic":
        painter.setBrush(color)
        painter.drawRoundedRect(box(7, 2, 6, 10), 3 * unit, 3 * unit)
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.drawArc(box(4, 5, 12, 10), 180 * 16, 180 * 16)
        painter.drawLine(at(10, 15), at(10, 18))
    elif kind == "headphones":
        painter.drawArc(box(3, 3, 14, 14), 0, 180 * 16)
        painter.setBrush(color)
        painter.drawRoundedRect(box(2.5, 10, 4, 7), unit, unit)
        painter.drawRoundedRect(box(13.5, 10, 4, 7), unit, unit)
    elif kind == "record":
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(RED)
        painter.drawEllipse(box(4, 4, 12, 12))
    elif kind == "stop":
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(color)
        painter.drawRoundedRect(box(5, 5, 10, 10), unit, unit)
    elif kind == "hangup":
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(RED)
        painter.drawEllipse(box(0, 0, 20, 20))
        # A handset laid down: the receiver's arc and its two ends.
        white = QColor("white")
        handset = QPen(white)
        handset.setWidthF(2.6 * unit)
        handset.setCapStyle(Qt.PenCapStyle.RoundCap)
        painter.setPen(handset)
        painter.drawArc(box(4, 6.5, 12, 8), 25 * 16, 130 * 16)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(white)
        painter.drawRoundedRect(box(3.5, 9, 4, 4), unit, unit)
        painter.drawRoundedRect(box(12.5, 9, 4, 4), unit, unit)
    elif kind == "lock":
        painter.drawArc(box(6, 2, 8, 10), 0, 180 * 16)
        painter.drawLine(at(6, 7), at(6, 9))
        painter.drawLine(at(14, 7), at(14, 9))
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(color)
        painter.drawRoundedRect(box(4, 9, 12, 9), 1.5 * unit, 1.5 * unit)
    if slashed:
        slash = QPen(RED)
        slash.setWidthF(max(1.5, 2.2 * unit))
        slash.setCapStyle(Qt.PenCapStyle.RoundCap)
        painter.setPen(slash)
        painter.drawLine(at(3, 3), at(17, 17))
    painter.restore()


def voice_icon(kind: str, color: QColor, *, slashed: bool = False, ratio: float = 1.0) -> QIcon:
    pixmap = QPixmap(round(ICON * ratio), round(ICON * ratio))
    pixmap.setDevicePixelRatio(ratio)
    pixmap.fill(Qt.GlobalColor.transparent)
    painter = QPainter(pixmap)
    paint_voice_icon(painter, QRect(0, 0, ICON, ICON), kind, color, slashed=slashed)
    painter.end()
    return QIcon(pixmap)


# The panel ------------------------------------------------------------------------------------


def _label(name: str, accessible: str) -> QLabel:
    label = QLabel()
    label.setObjectName(name)
    label.setAccessibleName(accessible)
    label.setTextFormat(Qt.TextFormat.PlainText)  # channel and people names are user text
    return label


def _button(name: str) -> QToolButton:
    button = QToolButton()
    button.setObjectName(name)
    button.setAutoRaise(True)
    button.setIconSize(QSize(ICON, ICON))
    button.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
    return button


class VoicePanel(QFrame):
    """Shown while the user is in (or joining) a call, above the user panel."""

    def __init__(self, session: AppSession, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("VoicePanel")
        self.setAccessibleName("Voice connection")
        self.voice: VoiceController = session.voice

        self.status = _label("VoiceStatus", "Voice status")
        bold = self.status.font()
        bold.setBold(True)
        self.status.setFont(bold)
        self.lock = QLabel()
        self.lock.setObjectName("VoiceLock")
        self.lock.setAccessibleName("End-to-end encrypted")
        self.lock.setToolTip("End-to-end encrypted: the relay cannot listen in")
        self.rec = _label("VoiceRec", "Recording in progress")
        self.rec.setText("● REC")
        self.rec.setStyleSheet(f"color: {RED.name()}; font-weight: bold;")
        self.channel = _label("VoiceChannel", "Voice channel")
        self.path = _label("VoicePath", "Connection path")
        self.notice = _label("VoiceNotice", "Recording saved")
        self.notice.setWordWrap(True)
        self.notice.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.notice.hide()

        self.mute_button = _button("VoiceMute")
        self.mute_button.setCheckable(True)
        self.mute_button.clicked.connect(lambda: self.voice.set_mute(not self.voice.self_mute))
        self.deafen_button = _button("VoiceDeafen")
        self.deafen_button.setCheckable(True)
        self.deafen_button.clicked.connect(lambda: self.voice.set_deaf(not self.voice.self_deaf))
        self.record_button = _button("VoiceRecord")
        self.record_button.clicked.connect(self._record_clicked)
        self.disconnect_button = _button("VoiceDisconnect")
        self.disconnect_button.setAccessibleName("Disconnect")
        self.disconnect_button.setToolTip("Disconnect")
        self.disconnect_button.clicked.connect(self.voice.leave)

        heading = QHBoxLayout()
        heading.setSpacing(6)
        heading.addWidget(self.status)
        heading.addWidget(self.lock)
        heading.addStretch(1)
        heading.addWidget(self.rec)
        where = QHBoxLayout()
        where.setSpacing(6)
        where.addWidget(self.channel, 1)
        where.addWidget(self.path)
        buttons = QHBoxLayout()
        buttons.setSpacing(4)
        for button in (
            self.mute_button,
            self.deafen_button,
            self.record_button,
        ):
            buttons.addWidget(button)
        buttons.addStretch(1)
        buttons.addWidget(self.disconnect_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(10, 8, 10, 6)
        layout.setSpacing(2)
        layout.addLayout(heading)
        layout.addLayout(where)
        layout.addLayout(buttons)
        layout.addWidget(self.notice)

        self.voice.state_changed.connect(self.refresh)
        self.voice.recording_changed.connect(self.refresh)
        self.voice.recording_saved.connect(self._show_saved)
        self.refresh()

    def refresh(self) -> None:
        voice = self.voice
        channel_id = voice.channel_id or voice.joining
        self.setVisible(channel_id is not None)
        if channel_id is None:
            return
        muted = voice.self_mute
        ratio = self.devicePixelRatioF()
        text = self.palette().color(QPalette.ColorRole.Text)
        if voice.connected:
            self.status.setText("Voice connected")
            self.status.setStyleSheet(f"color: {GREEN.name()};")
        else:
            self.status.setText("Connecting…")
            self.status.setStyleSheet(f"color: {AMBER.name()};")
        self.channel.setText(voice.channel_label(channel_id))
        self.path.setText({"direct": "direct", "sfu": "relay"}.get(voice.path, ""))
        self.path.setToolTip(
            "Straight to the other person"
            if voice.path == "direct"
            else "Through the relay's voice server"
        )
        self.lock.setVisible(voice.encrypted)
        self.lock.setPixmap(voice_icon("lock", GREEN, ratio=ratio).pixmap(14, 14))
        self.rec.setVisible(voice.recording is not None)

        self.mute_button.setChecked(muted)
        self.mute_button.setIcon(voice_icon("mic", text, slashed=muted, ratio=ratio))
        self.mute_button.setAccessibleName("Unmute" if muted else "Mute")
        self.mute_button.setToolTip("Unmute" if muted else "Mute")
        deaf = voice.self_deaf
        self.deafen_button.setChecked(deaf)
        self.deafen_button.setIcon(voice_icon("headphones", text, slashed=deaf, ratio=ratio))
        self.deafen_button.setAccessibleName("Undeafen" if deaf else "Deafen")
        self.deafen_button.setToolTip("Undeafen" if deaf else "Deafen")
        mine = voice.recording_is_mine()
        someone_else = voice.recording is not None and not mine
        self.record_button.setIcon(voice_icon("stop" if mine else "record", text, ratio=ratio))
        record_text = "Stop recording" if mine else "Record this call"
        if someone_else:
            record_text = "Someone else is recording this call"
        self.record_button.setAccessibleName("Stop recording" if mine else "Record")
        self.record_button.setToolTip(record_text)
        self.record_button.setEnabled(voice.connected and not someone_else)
        self.disconnect_button.setIcon(voice_icon("hangup", text, ratio=ratio))

    def _record_clicked(self) -> None:
        if self.voice.recording_is_mine():
            self.voice.stop_recording()
        else:
            self.notice.hide()
            self.voice.request_recording()

    def _show_saved(self, result: object) -> None:
        directory = getattr(result, "directory", None)
        files = getattr(result, "speaker_files", {}) or {}
        count = len(files)
        people = "1 person" if count == 1 else f"{count} people"
        self.notice.setText(f"Recording saved in {directory} ({people} who agreed)")
        self.notice.setToolTip(str(directory))
        self.notice.show()


# Per-person volume ----------------------------------------------------------------------------


class VolumePopup(QFrame):
    """A slider (0 to 200 %) for one person's volume, opened from the channel list."""

    def __init__(
        self, voice: VoiceController, user_id: int, name: str, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent, Qt.WindowType.Popup)
        self.setObjectName("VolumePopup")
        self.setAccessibleName(f"Volume for {name}")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self._voice = voice
        self._user_id = user_id
        title = _label("VolumeTitle", "Person")
        title.setText(f"User volume — {name}")
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setAccessibleName(f"Volume for {name}")
        self.slider.setRange(0, VOLUME_MAX_PERCENT)
        self.slider.setSingleStep(5)
        self.slider.setPageStep(25)
        self.slider.setValue(voice.volume(user_id))
        self.value = _label("VolumeValue", "Volume")
        self.value.setMinimumWidth(48)
        self.reset = QPushButton("Reset")
        self.reset.setAccessibleName("Reset volume to 100 %")
        self.reset.setProperty("secondary", True)
        self.reset.clicked.connect(lambda: self.slider.setValue(100))
        row = QHBoxLayout()
        row.addWidget(self.slider, 1)
        row.addWidget(self.value)
        layout = QVBoxLayout(self)
        layout.addWidget(title)
        layout.addLayout(row)
        layout.addWidget(self.reset, 0, Qt.AlignmentFlag.AlignRight)
        self.setMinimumWidth(260)
        self.slider.valueChanged.connect(self._changed)
        self._show_value()
        self.setFocusProxy(self.slider)

    def _changed(self, percent: int) -> None:
        self._voice.set_volume(self._user_id, percent)
        self._show_value()

    def _show_value(self) -> None:
        self.value.setText(f"{self.slider.value()} %")

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.key() in (Qt.Key.Key_Escape, Qt.Key.Key_Return, Qt.Key.Key_Enter):
            self.close()
            return
        super().keyPressEvent(event)


# Push to talk ---------------------------------------------------------------------------------


class PushToTalkKeys(QObject):
    """Holding the push-to-talk key while ``window`` is active opens the microphone (in
    push-to-talk mode). The key still reaches the focused widget: it is the user's choice
    of key, and taking it from the composer would surprise."""

    def __init__(self, session: AppSession, window: QWidget) -> None:
        super().__init__(window)
        self._session = session
        self._window = window
        self._key: int | None = None
        self._held = False
        self.reload()
        app = QApplication.instance()
        if app is not None:
            app.installEventFilter(self)

    def reload(self) -> None:
        """Read the key and the input mode again (after the settings changed)."""
        prefs = Prefs(self._session.data_dir)
        sequence = QKeySequence(prefs.keybinds().get("push_to_talk", ""))
        ptt = self._session.voice.settings().mode == "ptt"
        combination = sequence[0] if sequence.count() else None  # type: ignore[index]
        self._key = int(combination.key().value) if ptt and combination is not None else None

    @property
    def key(self) -> int | None:
        return self._key

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        kind = event.type()
        if (
            self._key is not None
            and kind in (QEvent.Type.KeyPress, QEvent.Type.KeyRelease)
            and isinstance(event, QKeyEvent)
            and event.key() == self._key
            and not event.isAutoRepeat()
        ):
            pressed = kind == QEvent.Type.KeyPress
            if pressed != self._held and (not pressed or self._window.isActiveWindow()):
                self._held = pressed
                self._session.voice.set_push_to_talk(pressed)
        return False
