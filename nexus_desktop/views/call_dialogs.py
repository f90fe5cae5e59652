"""The two questions a call asks: "X is calling you" (accept or decline) and "X wants
to record this call" (allow or refuse). Both are non-modal and close by themselves when
the question no longer stands (the caller hung up, the recording stopped)."""

from __future__ import annotations

from ..qt import QDialog, QHBoxLayout, QLabel, QPushButton, Qt, QVBoxLayout, QWidget
from ..voice import ConsentRequest, IncomingCall, VoiceController


def _question(text: str, name: str) -> QLabel:
    label = QLabel(text)
    label.setObjectName(name)
    label.setAccessibleName(text)
    label.setTextFormat(Qt.TextFormat.PlainText)  # it quotes a user's name
    label.setWordWrap(True)
    return label


class RingDialog(QDialog):
    """An incoming DM call. Closing it without an answer lets it ring on elsewhere."""

    def __init__(
        self, voice: VoiceController, call: IncomingCall, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.setObjectName("RingDialog")
        self.setWindowTitle("Incoming call")
        self.setAccessibleName("Incoming call")
        self.voice = voice
        self.call = call
        self.question = _question(f"{call.caller_name} is calling you.", "RingQuestion")
        self.accept_button = QPushButton("Accept")
        self.accept_button.setAccessibleName(f"Accept the call from {call.caller_name}")
        self.accept_button.setDefault(True)
        self.accept_button.clicked.connect(self._accept_call)
        self.decline_button = QPushButton("Decline")
        self.decline_button.setAccessibleName(f"Decline the call from {call.caller_name}")
        self.decline_button.setProperty("danger", True)
        self.decline_button.clicked.connect(self._decline_call)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        buttons.addWidget(self.decline_button)
        buttons.addWidget(self.accept_button)
        layout = QVBoxLayout(self)
        layout.addWidget(self.question)
        layout.addLayout(buttons)
        voice.call_ended.connect(self._on_call_ended)

    def _accept_call(self) -> None:
        self.voice.accept_call(self.call)
        self.accept()

    def _decline_call(self) -> None:
        self.voice.decline_call(self.call)
        self.reject()

    def _on_call_ended(self, channel_id: object) -> None:
        if channel_id == self.call.channel_id and self.isVisible():
            self.reject()


class ConsentDialog(QDialog):
    """Someone in the call asks to record it. Until the user allows, their voice is not
    written to the recording; closing the dialog leaves it that way."""

    def __init__(
        self, voice: VoiceController, request: ConsentRequest, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.setObjectName("ConsentDialog")
        self.setWindowTitle("Recording request")
        self.setAccessibleName("Recording request")
        self.voice = voice
        self.request = request
        self.question = _question(
            f"{request.recorder_name} wants to record this call. Allow recording your voice?",
            "ConsentQuestion",
        )
        self.allow_button = QPushButton("Allow")
        self.allow_button.setAccessibleName("Allow recording my voice")
        self.allow_button.clicked.connect(lambda: self._answer(True))
        self.refuse_button = QPushButton("Refuse")
        self.refuse_button.setAccessibleName("Refuse recording my voice")
        self.refuse_button.setDefault(True)  # Enter never agrees to being recorded
        self.refuse_button.clicked.connect(lambda: self._answer(False))
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        buttons.addWidget(self.refuse_button)
        buttons.addWidget(self.allow_button)
        layout = QVBoxLayout(self)
        layout.addWidget(self.question)
        layout.addLayout(buttons)
        voice.recording_changed.connect(self._on_recording_changed)

    def _answer(self, consent: bool) -> None:
        self.voice.answer_recording(consent)
        if consent:
            self.accept()
        else:
            self.reject()

    def _on_recording_changed(self) -> None:
        recording = self.voice.recording
        still_asking = (
            recording is not None
            and self.voice.channel_id == self.request.channel_id
            and str(recording.get("recorder_id")) == str(self.request.recorder_id)
        )
        if not still_asking and self.isVisible():
            self.reject()
