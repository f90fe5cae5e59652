"""Voice in the app: the call the user is in, who is in each voice channel, and the
operations the voice widgets ask for (join, leave, mute, deafen, volume, recording).

``VoiceController`` is owned by ``AppSession`` (``session.voice``). Like the session it
never lets a widget await the network: widgets call its methods, which start an
operation, and redraw on its signals. Who is in a channel comes from each client's voice
state tracker, so the channel list shows people in channels the user has not joined.

The audio stack (numpy, PyAV, aiortc, PortAudio) is imported only when a call starts:
someone who never joins one never loads it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from nexus_client import NexusError

from .prefs import Prefs
from .qt import QObject, QTimer, Signal

if TYPE_CHECKING:
    from nexus_client.voice.audio import AudioSink, AudioSource
    from nexus_client.voice.connection import VoiceConnection

    from .session import Account, AppSession

log = logging.getLogger(__name__)

VOLUME_MAX_PERCENT = 200
SPEAKING_POLL_MS = 100  # speaking rings follow the voice within a tenth of a second
DECLINE_OP = 41


@dataclass(frozen=True, slots=True)
class VoiceSettings:
    """The Voice & Audio page's choices, kept in prefs under ``"voice"``. The push-to-talk
    key is a keybind (``Prefs.keybinds()["push_to_talk"]``), shared with the Keybinds page."""

    input_device: str | None = None  # a device name; None is the system default
    output_device: str | None = None
    noise_suppression: bool = True
    mode: Literal["vad", "ptt"] = "vad"
    spatial: bool = False
    recordings_dir: str = ""  # "" is ``recordings`` in the app's data folder

    @classmethod
    def from_prefs(cls, prefs: Prefs) -> VoiceSettings:
        stored = prefs.get("voice")
        values: dict[str, Any] = stored if isinstance(stored, dict) else {}
        default = cls()

        def device(key: str) -> str | None:
            value = values.get(key)
            return str(value) if isinstance(value, str) and value else None

        def flag(key: str, fallback: bool) -> bool:
            value = values.get(key)
            return value if isinstance(value, bool) else fallback

        mode = values.get("mode")
        folder = values.get("recordings_dir")
        return cls(
            input_device=device("input_device"),
            output_device=device("output_device"),
            noise_suppression=flag("noise_suppression", default.noise_suppression),
            mode="ptt" if mode == "ptt" else "vad",
            spatial=flag("spatial", default.spatial),
            recordings_dir=folder if isinstance(folder, str) else "",
        )

    def save(self, prefs: Prefs) -> None:
        prefs.set("voice", asdict(self))


AudioFactory = Callable[[VoiceSettings], "tuple[AudioSource, AudioSink]"]


def device_audio(settings: VoiceSettings) -> tuple[AudioSource, AudioSink]:
    """The chosen microphone and speakers (raises ``AudioDeviceError`` without them)."""
    from nexus_client.voice.audio import MicrophoneSource, SpeakerSink

    source = MicrophoneSource(settings.input_device)
    try:
        sink = SpeakerSink(settings.output_device)
    except BaseException:
        source.close()
        raise
    return source, sink


def _close_devices(devices: tuple[object, ...]) -> None:
    for device in devices:
        close = getattr(device, "close", None)
        if callable(close):
            try:
                close()
            except Exception as exc:  # a vanished device must not stop the others closing
                log.info("closing %r failed: %s", device, exc)


@dataclass(frozen=True, slots=True)
class VoicePerson:
    """One person in a voice channel or call, as the channel list shows them."""

    user_id: int
    name: str
    avatar: str | None = None  # the avatar's hash, as on ``User.avatar``
    self_mute: bool = False
    self_deaf: bool = False
    server_mute: bool = False
    server_deaf: bool = False

    @property
    def muted(self) -> bool:
        return self.self_mute or self.server_mute

    @property
    def deafened(self) -> bool:
        return self.self_deaf or self.server_deaf


@dataclass(frozen=True, slots=True)
class IncomingCall:
    account: Account
    channel_id: int
    caller_id: int
    caller_name: str


@dataclass(frozen=True, slots=True)
class ConsentRequest:
    channel_id: int
    recorder_id: int
    recorder_name: str


def _int(value: object) -> int | None:
    try:
        return int(str(value))
    except (TypeError, ValueError):
        return None


class VoiceController(QObject):
    state_changed = Signal()  # joined, connected, left, muted, deafened
    voice_states_changed = Signal()  # someone joined, left or (un)muted somewhere
    speaking_changed = Signal(object)  # frozenset of the user ids speaking now
    recording_changed = Signal()
    consent_requested = Signal(object)  # ConsentRequest
    incoming_call = Signal(object)  # IncomingCall
    call_ended = Signal(object)  # channel id: stop ringing for it
    recording_saved = Signal(object)  # RecordingResult

    def __init__(self, session: AppSession, audio_factory: AudioFactory | None = None) -> None:
        super().__init__(session)
        self._session = session
        self.audio_factory: AudioFactory = audio_factory or device_audio
        self.connection: VoiceConnection | None = None
        self.account: Account | None = None
        self.channel_id: int | None = None
        self.joining: int | None = None
        self._self_mute = False
        self._self_deaf = False
        self._volumes: dict[int, int] = {}
        self._speaking: frozenset[int] = frozenset()
        self._consents_asked: set[tuple[int, int]] = set()
        self._ringing: dict[int, IncomingCall] = {}
        self._devices: tuple[object, ...] = ()  # the live call's source and sink
        self._poll = QTimer(self)
        self._poll.setInterval(SPEAKING_POLL_MS)
        self._poll.timeout.connect(self._poll_speaking)

    # Settings -------------------------------------------------------------------------------

    def settings(self) -> VoiceSettings:
        return VoiceSettings.from_prefs(Prefs(self._session.data_dir))

    def apply_settings(self, settings: VoiceSettings, prefs: Prefs | None = None) -> None:
        """Save the choices (into ``prefs`` when a dialog holds its own copy) and apply
        those a live call can change without rejoining; devices apply from the next."""
        settings.save(prefs or Prefs(self._session.data_dir))
        connection = self.connection
        if connection is not None:
            connection.capture.noise_suppression = settings.noise_suppression
            connection.set_mode(settings.mode)
            connection.spatial = settings.spatial
            if settings.mode == "vad":
                connection.set_push_to_talk(False)

    def recordings_dir(self) -> Path:
        folder = self.settings().recordings_dir
        return Path(folder).expanduser() if folder else self._session.data_dir / "recordings"

    # Queries --------------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self.connection is not None and self.connection.path != "none"

    @property
    def self_mute(self) -> bool:
        return self._self_mute or self._self_deaf

    @property
    def self_deaf(self) -> bool:
        return self._self_deaf

    @property
    def path(self) -> str:
        """ "direct", "sfu" or "none"."""
        return self.connection.path if self.connection is not None else "none"

    @property
    def encrypted(self) -> bool:
        return self.connection is not None and self.connection.encrypted

    @property
    def recording(self) -> dict[str, Any] | None:
        """The running recording in this call (anyone's), as the relay last described it."""
        return self.connection.recording if self.connection is not None else None

    def recording_is_mine(self) -> bool:
        recording = self.recording
        me = self._my_id(self.account)
        return recording is not None and _int(recording.get("recorder_id")) == me

    def input_level_db(self) -> float | None:
        """The microphone level of the live call, None when not in one."""
        return self.connection.capture.level_db if self.connection is not None else None

    def is_speaking(self, user_id: int) -> bool:
        return user_id in self._speaking

    def volume(self, user_id: int) -> int:
        """The volume set for a person, in percent (100 is as they sent it)."""
        return self._volumes.get(user_id, 100)

    def people_in(self, channel_id: int) -> list[VoicePerson]:
        """Who is in a voice channel or call now, in the order they joined."""
        account = self._account_for(channel_id)
        if account is None:
            return []
        return [
            self._person(account, state)
            for state in account.client.voice_states.in_channel(channel_id)
        ]

    def channel_label(self, channel_id: int | None = None) -> str:
        """A voice channel's name, or "Call with NAME" for a DM call."""
        channel_id = self.channel_id if channel_id is None else channel_id
        if channel_id is None:
            return ""
        dm = self._session.dm_channel(channel_id)
        if dm is not None and dm.is_group:
            return f"Call with {dm.title}"
        if dm is not None:
            return f"Call with {dm.peer.global_name or dm.peer.username}"
        channel = self._session.channel(channel_id)
        return (channel.name or "Voice") if channel is not None else "Voice"

    def name_of(self, account: Account, user_id: int) -> str:
        if account.user is not None and account.user.id == user_id:
            return account.user.global_name or account.user.username
        for members in account.client.cache.members.values():
            member = members.get(user_id)
            if member is not None and member.user is not None:
                return member.nick or member.user.global_name or member.user.username
        for dm in self._session.dm_channels():
            if dm.peer.id == user_id:
                return dm.peer.global_name or dm.peer.username
        return str(user_id)

    def avatar_of(self, account: Account, user_id: int) -> str | None:
        """The avatar hash ``user_id`` has now, as far as this account knows."""
        if account.user is not None and account.user.id == user_id:
            return account.user.avatar
        for members in account.client.cache.members.values():
            member = members.get(user_id)
            if member is not None and member.user is not None:
                return member.user.avatar
        for dm in self._session.dm_channels():
            if dm.peer.id == user_id:
                return dm.peer.avatar
        return None

    # Operations -----------------------------------------------------------------------------

    def join(self, channel_id: int, account: Account | None = None) -> None:
        """Join a voice channel, or start or answer the call of a DM (leaving any other
        call). Failures go to the session's ``error`` signal."""
        if self.joining is not None or (self.channel_id == channel_id and self.connection):
            return
        account = account or self._account_for(channel_id)
        if account is None:
            self._session.error.emit("That voice channel is not on any connected relay.")
            return
        self.joining = channel_id
        self._ringing.pop(channel_id, None)
        self.state_changed.emit()

        def joined(connection: VoiceConnection) -> None:
            self.joining = None
            self.connection, self.account, self.channel_id = connection, account, channel_id
            self._consents_asked.clear()
            self._poll.start()
            self.state_changed.emit()
            self.voice_states_changed.emit()

            def not_connected(exc: Exception) -> None:
                if connection is self.connection:
                    self._failed(exc)

            self._session.run(
                connection.wait_connected(),
                on_done=lambda _: self.state_changed.emit(),
                on_error=not_connected,
            )

        def failed(exc: Exception) -> None:
            self.joining = None
            self._failed(exc)

        self._session.run(self._join(account, channel_id), on_done=joined, on_error=failed)

    async def _join(self, account: Account, channel_id: int) -> VoiceConnection:
        previous, devices = self.connection, self._devices
        if previous is not None:
            self._forget_connection()
            await self._leave(previous, devices)
        if channel_id not in account.client.cache.channels:
            # Not a community channel: a DM call, end-to-end encrypted with the DM keys.
            await self._session.enable_e2ee(account)
        settings = self.settings()
        source, sink = self.audio_factory(settings)
        try:
            connection = await account.client.join_voice(
                channel_id,
                source=source,
                sink=sink,
                self_mute=self.self_mute,
                self_deaf=self._self_deaf,
                noise_suppression=settings.noise_suppression,
                mode=settings.mode,
                spatial=settings.spatial,
            )
        except BaseException:
            _close_devices((source, sink))
            raise
        self._devices = (source, sink)
        for user_id, percent in self._volumes.items():
            connection.set_volume(user_id, percent / 100)
        return connection

    def leave(self) -> None:
        connection, devices = self.connection, self._devices
        if connection is None:
            return
        self._forget_connection()
        self._session.run(self._leave(connection, devices), on_error=self._failed)

    async def _leave(self, connection: VoiceConnection, devices: tuple[object, ...]) -> None:
        try:
            result = await connection.leave()
        finally:
            # The connection stops reading and writing but leaves the sound card open.
            _close_devices(devices)
        if result is not None:
            self.recording_saved.emit(result)

    def set_mute(self, muted: bool) -> None:
        self._self_mute = muted
        if not muted and self._self_deaf:
            self._self_deaf = False  # unmuting also undeafens, as in Discord
        self._push_flags()

    def set_deaf(self, deafened: bool) -> None:
        self._self_deaf = deafened
        self._push_flags()

    def set_volume(self, user_id: int, percent: int) -> None:
        """0 to 200 %; remembered for the rest of the session, across calls."""
        percent = max(0, min(VOLUME_MAX_PERCENT, int(percent)))
        self._volumes[user_id] = percent
        if self.connection is not None:
            self.connection.set_volume(user_id, percent / 100)

    def set_push_to_talk(self, pressed: bool) -> None:
        if self.connection is not None:
            self.connection.set_push_to_talk(pressed)

    def request_recording(self) -> None:
        """Ask everyone in the call to consent to a recording into the recordings folder."""
        connection = self.connection
        if connection is None:
            return
        directory = self.recordings_dir()

        async def request() -> None:
            directory.mkdir(parents=True, exist_ok=True)
            await connection.request_recording(directory)

        self._session.run(request(), on_error=self._failed)

    def stop_recording(self) -> None:
        connection = self.connection
        if connection is None:
            return

        def stopped(result: object) -> None:
            if result is not None:
                self.recording_saved.emit(result)
            self.recording_changed.emit()

        self._session.run(connection.stop_recording(), on_done=stopped, on_error=self._failed)

    def answer_recording(self, consent: bool) -> None:
        if self.connection is not None:
            self._session.run(self.connection.answer_recording(consent), on_error=self._failed)

    def accept_call(self, call: IncomingCall) -> None:
        self.join(call.channel_id, call.account)

    def decline_call(self, call: IncomingCall) -> None:
        self._ringing.pop(call.channel_id, None)
        self.call_ended.emit(call.channel_id)
        self._session.run(
            call.account.client.send_gateway_op(
                DECLINE_OP,
                {
                    "channel_id": str(call.channel_id),
                    "user_id": str(call.caller_id),
                    "kind": "decline",
                },
            ),
            on_error=self._failed,
        )

    async def close(self) -> None:
        connection, devices = self.connection, self._devices
        self._forget_connection()
        if connection is not None:
            try:
                await self._leave(connection, devices)
            except NexusError as exc:
                log.info("leaving the call on close failed: %s", exc)

    # Gateway events -------------------------------------------------------------------------

    def watch(self, account: Account) -> None:
        """Follow an account's voice states, calls and recordings."""
        client = account.client

        async def voice_state_update(data: Any) -> None:
            self._on_voice_state(account, data)

        async def dispatch(event: str, data: Any) -> None:
            if not isinstance(data, dict):
                return
            if event == "VOICE_RECORDING_UPDATE":
                self._on_recording(account, data)
            elif event in ("CALL_CREATE", "CALL_UPDATE"):
                self._on_call(account, data)
            elif event == "CALL_DELETE":
                self._stop_ringing(_int(data.get("channel_id")))

        client.listen("voice_state_update")(voice_state_update)
        client.listen("dispatch")(dispatch)

    def _on_voice_state(self, account: Account, data: Any) -> None:
        me = self._my_id(account)
        if (
            isinstance(data, dict)
            and account is self.account
            and self.connection is not None
            and _int(data.get("user_id")) == me
            and "user_id" in data
            and data.get("channel_id") is None
        ):
            # Disconnected by a moderator (or from another device): the call is over here.
            self.leave()
        self.voice_states_changed.emit()

    def _on_recording(self, account: Account, data: dict[str, Any]) -> None:
        channel_id = _int(data.get("channel_id"))
        if account is not self.account or channel_id != self.channel_id or channel_id is None:
            return
        self.recording_changed.emit()
        me = self._my_id(account)
        recorder = _int(data.get("recorder_id"))
        consents = data.get("consents")
        if recorder is None or recorder == me or not isinstance(consents, dict):
            return
        if str(me) in consents and consents[str(me)] is None:
            asked = (channel_id, recorder)
            if asked not in self._consents_asked:
                self._consents_asked.add(asked)
                name = self.name_of(account, recorder)
                self.consent_requested.emit(ConsentRequest(channel_id, recorder, name))

    def _on_call(self, account: Account, data: dict[str, Any]) -> None:
        channel_id = _int(data.get("channel_id"))
        me = self._my_id(account)
        if channel_id is None or me is None:
            return
        ringing = {_int(u) for u in data.get("ringing") or ()}
        self.voice_states_changed.emit()
        if me not in ringing or self.channel_id == channel_id or self.joining == channel_id:
            self._stop_ringing(channel_id)
            return
        if channel_id in self._ringing:
            return
        states = [s for s in data.get("voice_states") or () if isinstance(s, dict)]
        callers = [_int(s.get("user_id")) for s in states]
        caller = next((c for c in callers if c is not None and c != me), None)
        if caller is None:
            return
        call = IncomingCall(account, channel_id, caller, str(caller))
        self._ringing[channel_id] = call

        def ring(_: object = None) -> None:
            # Still ringing once the DM keys are ready (the caller may have hung up).
            if self._ringing.get(channel_id) is call:
                named = IncomingCall(account, channel_id, caller, self.name_of(account, caller))
                self._ringing[channel_id] = named
                self.incoming_call.emit(named)

        # Answering needs this device's DM keys, and setting them up lists the DMs, which
        # names the caller: do it first, and ring even if it fails.
        self._session.run(self._session.enable_e2ee(account), on_done=ring, on_error=ring)

    def _stop_ringing(self, channel_id: int | None) -> None:
        if channel_id is not None and self._ringing.pop(channel_id, None) is not None:
            self.call_ended.emit(channel_id)

    # Internals ------------------------------------------------------------------------------

    def _account_for(self, channel_id: int) -> Account | None:
        dm = self._session.dm_channel(channel_id)
        if dm is not None:
            return dm.account
        return self._session.account_for_channel(channel_id)

    @staticmethod
    def _my_id(account: Account | None) -> int | None:
        return account.user.id if account is not None and account.user is not None else None

    def _person(self, account: Account, state: dict[str, Any]) -> VoicePerson:
        user_id = _int(state.get("user_id")) or 0
        member = state.get("member")
        name = None
        if isinstance(member, dict):
            user = member.get("user")
            user = user if isinstance(user, dict) else {}
            name = member.get("nick") or user.get("global_name") or user.get("username")
        return VoicePerson(
            user_id=user_id,
            name=str(name) if name else self.name_of(account, user_id),
            avatar=self.avatar_of(account, user_id),
            self_mute=bool(state.get("self_mute")),
            self_deaf=bool(state.get("self_deaf")),
            server_mute=bool(state.get("mute")),
            server_deaf=bool(state.get("deaf")),
        )

    def _push_flags(self) -> None:
        connection = self.connection
        self.state_changed.emit()
        if connection is None:
            return

        async def push() -> None:
            # One state update per change: the relay tells everyone in the channel each time.
            if connection.self_deaf != self._self_deaf:
                connection.self_mute = self.self_mute  # goes out with the deafen, in one
                await connection.set_deaf(self._self_deaf)
            elif connection.self_mute != self.self_mute:
                await connection.set_mute(self.self_mute)

        self._session.run(
            push(), on_done=lambda _: self.state_changed.emit(), on_error=self._failed
        )

    def _forget_connection(self) -> None:
        self.connection = self.account = self.channel_id = None
        self._devices = ()
        self._poll.stop()
        if self._speaking:
            self._speaking = frozenset()
            self.speaking_changed.emit(self._speaking)
        self.state_changed.emit()
        self.recording_changed.emit()

    def _poll_speaking(self) -> None:
        connection, me = self.connection, self._my_id(self.account)
        if connection is None:
            return
        candidates = set(connection.participants) | ({me} if me is not None else set())
        speaking = frozenset(user for user in candidates if connection.speaking(user))
        if speaking != self._speaking:
            self._speaking = speaking
            self.speaking_changed.emit(speaking)

    def _failed(self, exc: Exception) -> None:
        from .session import describe_error

        self.state_changed.emit()
        self._session.error.emit(f"Voice: {describe_error(exc)}")
