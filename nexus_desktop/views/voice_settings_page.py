"""Settings → Voice & Audio: devices, noise suppression, voice activity or push to talk
(and its key), spatial audio, where recordings go, and a live input meter while in a
call. Every change is saved at once and applied to a live call where it can be."""

from __future__ import annotations

from typing import Literal

from ..prefs import Prefs
from ..qt import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QKeySequence,
    QKeySequenceEdit,
    QLabel,
    QLineEdit,
    QPainter,
    QPalette,
    QShowEvent,
    QSize,
    Qt,
    QTimer,
    QVBoxLayout,
    QWidget,
    Signal,
)
from ..voice import VoiceController, VoiceSettings
from .voice_panel import AMBER, GREEN, RED

METER_FLOOR_DB = -60.0  # the meter's left edge: quieter than this reads as silence
METER_POLL_MS = 100
DEFAULT_DEVICE = "Default"


class LevelMeter(QWidget):
    """A horizontal bar for the microphone level in dBFS."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("LevelMeter")
        self.setAccessibleName("Input level")
        self.level_db: float | None = None
        self.setMinimumHeight(14)

    def sizeHint(self) -> QSize:
        return QSize(240, 14)

    def set_level(self, level_db: float | None) -> None:
        if level_db != self.level_db:
            self.level_db = level_db
            self.setAccessibleDescription(
                "not in a call" if level_db is None else f"{round(level_db)} dB"
            )
            self.update()

    def fraction(self) -> float:
        if self.level_db is None:
            return 0.0
        return max(0.0, min(1.0, 1 - self.level_db / METER_FLOOR_DB))

    def paintEvent(self, _event: object) -> None:
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(self.palette().color(QPalette.ColorRole.AlternateBase))
        painter.drawRoundedRect(self.rect(), 4, 4)
        fraction = self.fraction()
        if fraction > 0:
            color = GREEN if fraction < 0.75 else AMBER if fraction < 0.92 else RED
            painter.setBrush(color)
            filled = self.rect().adjusted(0, 0, -round(self.width() * (1 - fraction)), 0)
            painter.drawRoundedRect(filled, 4, 4)
        painter.end()


class VoiceSettingsPage(QWidget):
    title = "Voice & Audio"
    key_changed = Signal()  # the push-to-talk key, which the Keybinds page also shows

    def __init__(self, voice: VoiceController, prefs: Prefs, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.voice = voice
        self.prefs = prefs
        settings = voice.settings()
        layout = QVBoxLayout(self)
        heading = QLabel(self.title)
        heading.setObjectName("PageTitle")
        layout.addWidget(heading)
        form = QFormLayout()

        inputs, outputs = _device_names()
        self.input_device = self._device_box("Input device", inputs, settings.input_device)
        self.output_device = self._device_box("Output device", outputs, settings.output_device)
        self.noise_suppression = QCheckBox("Noise suppression")
        self.noise_suppression.setAccessibleName("Noise suppression")
        self.noise_suppression.setToolTip("Removes fans, keyboards and street noise")
        self.noise_suppression.setChecked(settings.noise_suppression)
        self.mode = QComboBox()
        self.mode.setAccessibleName("Input mode")
        self.mode.addItem("Voice activity", "vad")
        self.mode.addItem("Push to talk", "ptt")
        self.mode.setCurrentIndex(max(self.mode.findData(settings.mode), 0))
        self.ptt_key = QKeySequenceEdit(QKeySequence(prefs.keybinds().get("push_to_talk", "")))
        self.ptt_key.setAccessibleName("Push-to-talk key")
        self.ptt_key.setMaximumSequenceLength(1)
        self.ptt_key.setClearButtonEnabled(True)
        self.spatial = QCheckBox("Spatial audio (place each person left to right)")
        self.spatial.setAccessibleName("Spatial audio")
        self.spatial.setChecked(settings.spatial)
        self.recordings_dir = QLineEdit(settings.recordings_dir)
        self.recordings_dir.setAccessibleName("Recordings folder")
        self.recordings_dir.setPlaceholderText(str(voice.recordings_dir()))
        self.meter = LevelMeter()
        self.meter_hint = QLabel()
        self.meter_hint.setObjectName("StatusLabel")

        form.addRow("Input device", self.input_device)
        form.addRow("Output device", self.output_device)
        form.addRow(self.noise_suppression)
        form.addRow("Input mode", self.mode)
        form.addRow("Push-to-talk key", self.ptt_key)
        form.addRow(self.spatial)
        form.addRow("Recordings folder", self.recordings_dir)
        form.addRow("Input level", self.meter)
        form.addRow("", self.meter_hint)
        layout.addLayout(form)
        note = QLabel(
            "Device changes apply from the next call. Recordings only ever contain the"
            " voices of people who agreed."
        )
        note.setWordWrap(True)
        note.setObjectName("StatusLabel")
        layout.addWidget(note)
        layout.addStretch(1)

        for box in (self.input_device, self.output_device, self.mode):
            box.currentIndexChanged.connect(self.save)
        for check in (self.noise_suppression, self.spatial):
            check.toggled.connect(self.save)
        self.recordings_dir.editingFinished.connect(self.save)
        self.ptt_key.editingFinished.connect(self._save_key)
        self._show_mode()
        self._timer = QTimer(self)
        self._timer.setInterval(METER_POLL_MS)
        self._timer.timeout.connect(self.update_meter)
        self.update_meter()

    # The meter polls only while the page is on screen: a closed dialog costs nothing.
    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        self._timer.start()

    def _device_box(self, name: str, devices: list[str], chosen: str | None) -> QComboBox:
        box = QComboBox()
        box.setAccessibleName(name)
        box.addItem(DEFAULT_DEVICE, None)
        for device in devices:
            box.addItem(device, device)
        if chosen is not None and box.findData(chosen) < 0:
            box.addItem(f"{chosen} (not connected)", chosen)  # keep a choice made elsewhere
        box.setCurrentIndex(max(box.findData(chosen), 0) if chosen is not None else 0)
        return box

    def current(self) -> VoiceSettings:
        mode: Literal["vad", "ptt"] = "ptt" if self.mode.currentData() == "ptt" else "vad"
        return VoiceSettings(
            input_device=self.input_device.currentData(),
            output_device=self.output_device.currentData(),
            noise_suppression=self.noise_suppression.isChecked(),
            mode=mode,
            spatial=self.spatial.isChecked(),
            recordings_dir=self.recordings_dir.text().strip(),
        )

    def save(self) -> None:
        self.voice.apply_settings(self.current(), self.prefs)
        self._show_mode()

    def _save_key(self) -> None:
        keybinds = self.prefs.keybinds()
        keybinds["push_to_talk"] = self.ptt_key.keySequence().toString(
            QKeySequence.SequenceFormat.PortableText
        )
        self.prefs.set("keybinds", keybinds)
        self.key_changed.emit()

    def show_key(self, portable_text: str) -> None:
        """Show a push-to-talk key set elsewhere (the Keybinds page)."""
        self.ptt_key.setKeySequence(QKeySequence(portable_text))

    def _show_mode(self) -> None:
        self.ptt_key.setEnabled(self.mode.currentData() == "ptt")

    def update_meter(self) -> None:
        if not self.isVisible():
            self._timer.stop()  # showEvent starts it again
        level = self.voice.input_level_db()
        self.meter.set_level(level)
        self.meter_hint.setText(
            "Join a voice channel to see your microphone level."
            if level is None
            else f"{round(level)} dB"
        )


def _device_names() -> list[list[str]]:
    """Microphone and speaker names; none when PortAudio or the devices are missing."""
    from nexus_client.voice.audio import list_input_devices, list_output_devices

    return [[d.name for d in list_input_devices()], [d.name for d in list_output_devices()]]
