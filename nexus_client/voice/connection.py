"""A voice connection: one person in one voice channel or call.

It joins through the gateway (op 4), connects its media to the relay's SFU (op 40) or,
in a one-to-one DM call, straight to the other person (op 41), and runs the two audio
pipelines: microphone → noise suppression → VAD/push-to-talk → Opus → (frame encryption)
→ network, and network → (decryption) → jitter buffer → decode → volume → placement → mix
→ speakers. In an encrypted conversation every frame is encrypted by its sender with a
key only the people in the call hold (see ``keys``), so the SFU forwards what it cannot
read.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from nexus_protocol.voice_media import (
    MediaHeaderError,
    pack_talker_payload,
    unpack_listener_payload,
    unpack_talker_payload,
)

from .._exceptions import NexusError
from .audio import AudioSink, AudioSource
from .capture import CapturePipeline
from .keys import CallKeys
from .playback import PlaybackPipeline
from .recorder import CallRecorder, RecordingResult
from .rtc import MediaPeer, without_candidates
from .sframe import FrameRejected

log = logging.getLogger(__name__)

# How long a one-to-one call tries a direct path before it goes through the relay.
DIRECT_TIMEOUT = 5.0
SIGNAL_TIMEOUT = 15.0
# Frames held while a sender's new key travels (half a second at 20 ms).
KEY_WAIT_FRAMES = 25
_WRAP = 1 << 32


class VoiceError(NexusError):
    """Joining or running a voice connection failed; ``code`` is the relay's reason."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{message} ({code})")
        self.code = code


SendOp = Callable[[int, dict[str, Any]], Awaitable[None]]


@dataclass
class VoiceStats:
    sent: int = 0
    received: int = 0
    malformed: int = 0
    undecryptable: dict[str, int] = field(default_factory=dict)
    path: Literal["none", "sfu", "direct"] = "none"


class _TimestampUnwrapper:
    """RTP timestamps wrap at 2³²; the jitter buffer wants a line that does not."""

    def __init__(self) -> None:
        self._last: dict[int, tuple[int, int]] = {}

    def unwrap(self, speaker: int, timestamp: int) -> int:
        last = self._last.get(speaker)
        if last is None:
            self._last[speaker] = (timestamp, timestamp)
            return timestamp
        raw, line = last
        step = (timestamp - raw) % _WRAP
        if step >= _WRAP // 2:
            step -= _WRAP  # a reordered, earlier packet
        position = line + step
        if step > 0:
            self._last[speaker] = (timestamp, position)
        return position

    def forget(self, speaker: int) -> None:
        self._last.pop(speaker, None)


class VoiceConnection:
    """Made by ``Client.join_voice``; call ``leave()`` when done."""

    def __init__(
        self,
        *,
        user_id: int,
        channel_id: int,
        guild_id: int | None,
        send_op: SendOp,
        source: AudioSource,
        sink: AudioSink,
        keys: CallKeys | None,
        direct_peer: int | None,
        frame_ms: int = 20,
        noise_suppression: bool = True,
        mode: Literal["vad", "ptt"] = "vad",
        spatial: bool = False,
        allow_direct: bool = True,
        participants: dict[int, dict[str, Any]] | None = None,
        ice_servers: list[dict[str, Any]] | None = None,
    ) -> None:
        self.user_id = user_id
        # This device's gateway session: a voice state of ours with another one means the
        # call moved to another device.
        self.session_id: str | None = None
        # Who is in a channel, as the client last heard (set by Client.join_voice).
        self.participants_of: Callable[[int], list[dict[str, Any]]] = lambda channel_id: []
        self.channel_id = channel_id
        self.guild_id = guild_id
        self._send_op = send_op
        self.keys = keys
        self._source = source
        self._sink = sink
        self._direct_peer = direct_peer if allow_direct else None
        # STUN/TURN servers ({"urls", "username"?, "credential"?}); none by default, so
        # nothing outside the relay and the other person learns of the call.
        self._ice_servers = ice_servers
        self.capture = CapturePipeline(
            source,
            self._on_captured,
            frame_ms=frame_ms,
            noise_suppression=noise_suppression,
            mode=mode,
        )
        self.playback = PlaybackPipeline(sink, frame_ms=frame_ms, spatial=spatial)
        self.stats = VoiceStats()
        # Who else is in the channel (user id → voice state), kept by the dispatches.
        self.participants: dict[int, dict[str, Any]] = dict(participants or {})
        self.participants.pop(user_id, None)
        self.self_mute = False
        self.self_deaf = False
        self.recording: dict[str, Any] | None = None
        self._recorder: CallRecorder | None = None
        self._peer: MediaPeer | None = None
        self._token: str | None = None
        self._answers: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._signals: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._error: VoiceError | None = None
        self._refused = asyncio.Event()
        self._server_update = asyncio.Event()
        self._connected = asyncio.Event()
        self._timestamps = _TimestampUnwrapper()
        self._awaiting_key: dict[int, deque[tuple[bytes, int, float]]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closed = False
        self._connect_lock = asyncio.Lock()
        # Tests use this to stand for a network that blocks every direct path.
        self.direct_sdp_filter: Callable[[str], str] = lambda sdp: sdp

    # Public ---------------------------------------------------------------------------------

    @property
    def encrypted(self) -> bool:
        return self.keys is not None

    @property
    def path(self) -> str:
        """ "direct", "sfu" or "none" (not connected yet)."""
        return self.stats.path

    async def wait_connected(self, timeout: float = 20.0) -> None:
        """Until audio flows; raises ``VoiceError`` with the relay's reason if it refused
        the connection, or ``timeout`` if it did not come up in time."""
        connected = asyncio.ensure_future(self._connected.wait())
        refused = asyncio.ensure_future(self._refused.wait())
        try:
            await asyncio.wait({connected, refused}, timeout=timeout, return_when="FIRST_COMPLETED")
        finally:
            connected.cancel()
            refused.cancel()
        if self._connected.is_set():
            return
        if self._error is not None:
            raise self._error
        raise VoiceError("timeout", "the voice connection did not come up")

    def speaking(self, user_id: int) -> bool:
        if user_id == self.user_id:
            return self.capture.speaking and not self.self_mute
        return self.playback.speaking(user_id)

    def set_volume(self, user_id: int, gain: float) -> None:
        self.playback.set_volume(user_id, gain)

    @property
    def spatial(self) -> bool:
        return self.playback.spatial

    @spatial.setter
    def spatial(self, value: bool) -> None:
        self.playback.spatial = value

    def set_push_to_talk(self, pressed: bool) -> None:
        self.capture.set_push_to_talk(pressed)

    def set_mode(self, mode: Literal["vad", "ptt"]) -> None:
        """Voice activity or push-to-talk, switchable during the call."""
        if mode not in ("vad", "ptt"):
            raise ValueError(f"mode must be 'vad' or 'ptt', not {mode!r}")
        self.capture.mode = mode

    @property
    def closed(self) -> bool:
        """Left, or disconnected by a moderator: a new call needs ``join_voice``."""
        return self._closed

    async def set_mute(self, muted: bool) -> None:
        self.self_mute = muted
        self.capture.muted = muted or self.self_deaf
        await self._send_state()

    async def set_deaf(self, deafened: bool) -> None:
        """Deafening also mutes, as people expect from Discord."""
        self.self_deaf = deafened
        self.playback.deafened = deafened
        self.capture.muted = self.self_mute or deafened
        await self._send_state()

    async def request_recording(self, directory: Path) -> None:
        """Ask everyone present to consent; only those who do are ever written."""
        if self._recorder is None:
            self._recorder = CallRecorder(directory)
            self._recorder.set_consent(self.user_id, True)
        await self._send_op(42, {"channel_id": str(self.channel_id), "action": "request"})

    async def answer_recording(self, consent: bool) -> None:
        action = "consent" if consent else "refuse"
        await self._send_op(42, {"channel_id": str(self.channel_id), "action": action})

    async def stop_recording(self) -> RecordingResult | None:
        recorder, self._recorder = self._recorder, None
        if recorder is None:
            return None
        with contextlib.suppress(NexusError):
            await self._send_op(42, {"channel_id": str(self.channel_id), "action": "stop"})
        return await asyncio.to_thread(recorder.close)

    async def leave(self) -> RecordingResult | None:
        if self._closed:
            return None
        result = await self.stop_recording() if self._recorder is not None else None
        self._closed = True
        with contextlib.suppress(NexusError):
            await self._send_op(4, {"guild_id": self._guild_str, "channel_id": None})
        await self._shutdown()
        return result

    # Start-up -------------------------------------------------------------------------------

    @property
    def _guild_str(self) -> str | None:
        return None if self.guild_id is None else str(self.guild_id)

    async def _send_state(self) -> None:
        await self._send_op(
            4,
            {
                "guild_id": self._guild_str,
                "channel_id": str(self.channel_id),
                "self_mute": self.self_mute,
                "self_deaf": self.self_deaf,
            },
        )

    async def start(self) -> None:
        self.capture.muted = self.self_mute or self.self_deaf
        self.playback.deafened = self.self_deaf
        self._spawn(self.capture.run())
        self._spawn(self.playback.run())
        await self._send_state()
        try:
            await asyncio.wait_for(self._server_update.wait(), SIGNAL_TIMEOUT)
        except TimeoutError:
            await self._shutdown()
            raise VoiceError("timeout", "the relay did not answer the voice join") from None
        if self._error is not None:
            await self._shutdown()
            raise self._error
        self._spawn(self._connect())

    def _spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("voice task failed", exc_info=task.exception())

    async def _connect(self) -> None:
        """Media up: directly in a one-to-one call when a path exists, else via the SFU."""
        async with self._connect_lock:
            if self._closed:
                return
            if self._direct_peer is not None:
                if self._direct_peer not in self.participants:
                    return  # still ringing: connect when they answer
                if await self._try_direct():
                    return
                self._direct_peer = None  # no direct path: the relay carries this call
            await self._connect_sfu()

    async def _connect_sfu(self) -> None:
        if self._peer is not None:
            await self._peer.close()
        peer = MediaPeer(self._on_sfu_payload, ice_servers=self._ice_servers)
        self._peer = peer
        offer = await peer.create_offer()
        while not self._answers.empty():
            self._answers.get_nowait()
        await self._send_op(
            40, {"channel_id": str(self.channel_id), "token": self._token or "", "sdp": offer}
        )
        try:
            answer = await asyncio.wait_for(self._answers.get(), SIGNAL_TIMEOUT)
        except TimeoutError:
            log.warning("the relay did not answer the voice offer")
            return
        if "error" in answer:
            self._error = VoiceError(str(answer.get("code")), str(answer.get("message")))
            self._refused.set()
            log.warning("voice connection refused: %s", self._error)
            return
        await peer.accept_answer(str(answer["sdp"]))
        if await peer.wait_connected(SIGNAL_TIMEOUT):
            self.stats.path = "sfu"
            self._connected.set()
            if self.keys is not None:
                await self.keys.rotate(self._others())

    async def _try_direct(self) -> bool:
        """The lower user id offers, the other answers; both give up after a while."""
        other = self._direct_peer
        assert other is not None
        peer = MediaPeer(
            lambda payload, ts, at: self._on_direct_payload(other, payload, ts, at),
            ice_servers=self._ice_servers,
        )
        self._peer = peer
        try:
            if self.user_id < other:
                offer = self.direct_sdp_filter(await peer.create_offer())
                await self._signal(other, "offer", offer)
                answer = await self._wait_signal("answer", DIRECT_TIMEOUT)
                if answer is None:
                    return False
                await peer.accept_answer(answer)
            else:
                offer_sdp = await self._wait_signal("offer", DIRECT_TIMEOUT)
                if offer_sdp is None:
                    return False
                answer_sdp = self.direct_sdp_filter(await peer.answer_offer(offer_sdp))
                await self._signal(other, "answer", answer_sdp)
            if await peer.wait_connected(DIRECT_TIMEOUT):
                self.stats.path = "direct"
                self._connected.set()
                if self.keys is not None:
                    await self.keys.rotate(self._others())
                return True
            return False
        except ValueError as exc:
            log.warning("direct call setup failed: %s", exc)
            return False
        finally:
            if self.stats.path != "direct":
                self._peer = None
                await peer.close()

    async def _signal(self, to: int, kind: str, sdp: str) -> None:
        await self._send_op(
            41, {"channel_id": str(self.channel_id), "user_id": str(to), "kind": kind, "sdp": sdp}
        )

    async def _wait_signal(self, kind: str, timeout: float) -> str | None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while (left := deadline - loop.time()) > 0:
            try:
                signal = await asyncio.wait_for(self._signals.get(), left)
            except TimeoutError:
                return None
            if signal.get("kind") == kind and isinstance(signal.get("sdp"), str):
                return str(signal["sdp"])
        return None

    def _others(self) -> set[int]:
        return {user for user in self.participants if user != self.user_id}

    # Media ----------------------------------------------------------------------------------

    def _on_captured(self, opus: bytes, timestamp: int, capture_time: float) -> None:
        peer = self._peer
        if peer is None or not self._connected.is_set():
            return
        if self._recorder is not None:
            self._recorder.add_packet(self.user_id, opus, timestamp, arrival=capture_time)
        frame = opus if self.keys is None else self.keys.encryptor.encrypt(opus)
        level = max(0, min(127, round(-self.capture.level_db)))
        peer.send(pack_talker_payload(level, frame), timestamp % _WRAP)
        self.stats.sent += 1

    def _on_sfu_payload(self, payload: bytes, rtp_timestamp: int, arrival: float) -> None:
        try:
            media = unpack_listener_payload(payload)
        except MediaHeaderError:
            self.stats.malformed += 1
            return
        self._play(media.user_id, media.frame, media.timestamp, arrival)

    def _on_direct_payload(
        self, sender: int, payload: bytes, rtp_timestamp: int, arrival: float
    ) -> None:
        try:
            media = unpack_talker_payload(payload)
        except MediaHeaderError:
            self.stats.malformed += 1
            return
        self._play(sender, media.frame, rtp_timestamp, arrival)

    def _play(self, sender: int, frame: bytes, timestamp: int, arrival: float) -> None:
        if sender == self.user_id:
            return
        if self.keys is not None:
            try:
                frame = self.keys.decryptor.decrypt(sender, frame)
            except FrameRejected as exc:
                if exc.reason == "unknown_key":
                    # Their new key is on its way through the gateway; the first frames
                    # can beat it. Hold a few rather than drop them.
                    waiting = self._awaiting_key.setdefault(sender, deque(maxlen=KEY_WAIT_FRAMES))
                    if len(waiting) < KEY_WAIT_FRAMES:
                        waiting.append((frame, timestamp, arrival))
                        return
                reasons = self.stats.undecryptable
                reasons[exc.reason] = reasons.get(exc.reason, 0) + 1
                return
        self.stats.received += 1
        position = self._timestamps.unwrap(sender, timestamp)
        if self._recorder is not None:
            self._recorder.add_packet(sender, frame, position, arrival=arrival)
        self.playback.receive(sender, frame, position, arrival)

    # Gateway events -------------------------------------------------------------------------

    async def on_dispatch(self, name: str, data: dict[str, Any]) -> None:
        if data.get("channel_id") not in (str(self.channel_id), None):
            if name == "VOICE_STATE_UPDATE":
                if str(data.get("user_id")) == str(self.user_id):
                    self._moved(data)
                else:
                    self._participant_gone_elsewhere(data)
            return
        if name == "VOICE_STATE_UPDATE":
            await self._on_voice_state(data)
        elif name == "VOICE_SERVER_UPDATE":
            self._token = str(data.get("token") or "")
            first = not self._server_update.is_set()
            self._server_update.set()
            if not first:  # the SFU restarted, or we were moved: connect again
                self._connected.clear()
                self._spawn(self._connect())
        elif name == "VOICE_ANSWER":
            self._answers.put_nowait(data)
        elif name == "VOICE_ERROR":
            error = VoiceError(str(data.get("code")), str(data.get("message")))
            if not self._server_update.is_set():
                self._error = error
                self._server_update.set()
            else:
                self._answers.put_nowait({"error": True, **data})
        elif name == "CALL_SIGNAL":
            self._signals.put_nowait(data)
        elif name == "VOICE_KEYS" and self.keys is not None:
            if await self.keys.receive(data):
                sender = int(data["user_id"])
                for frame, timestamp, arrival in self._awaiting_key.pop(sender, ()):
                    self._play(sender, frame, timestamp, arrival)
        elif name == "VOICE_RECORDING_UPDATE":
            self._on_recording(data)

    def _moved(self, data: dict[str, Any]) -> None:
        """A moderator moved us: the next VOICE_SERVER_UPDATE connects us there."""
        if self.session_id is not None and data.get("session_id") != self.session_id:
            return
        self.channel_id = int(data["channel_id"])
        for user_id in list(self.participants):
            self.playback.remove_speaker(user_id)
            self._timestamps.forget(user_id)
            if self.keys is not None:
                self.keys.forget(user_id)
        self.participants = {
            int(state["user_id"]): state
            for state in self.participants_of(self.channel_id)
            if int(state["user_id"]) != self.user_id
        }

    def _participant_gone_elsewhere(self, data: dict[str, Any]) -> None:
        user_id = int(data.get("user_id") or 0)
        if user_id in self.participants:  # they moved to another channel
            self._spawn(self._on_voice_state({**data, "channel_id": None}))

    async def _on_voice_state(self, data: dict[str, Any]) -> None:
        user_id = int(data["user_id"])
        left = data.get("channel_id") is None
        if user_id == self.user_id:
            elsewhere = self.session_id is not None and data.get("session_id") != self.session_id
            if (left or elsewhere) and not self._closed:
                # A moderator disconnected us, or this account took the call on another
                # device.
                self._closed = True
                await self._shutdown()
            return
        known = user_id in self.participants
        if left:
            self.participants.pop(user_id, None)
            self.playback.remove_speaker(user_id)
            self._timestamps.forget(user_id)
            self._awaiting_key.pop(user_id, None)
            if self.keys is not None:
                self.keys.forget(user_id)
        else:
            self.participants[user_id] = data
        if known == left and self.keys is not None and self._connected.is_set():
            # Membership changed: a new key that only the people now here receive.
            await self.keys.rotate(self._others())
        if (
            not left
            and not known
            and self._direct_peer == user_id
            and not self._connected.is_set()
            and not self._connect_lock.locked()
        ):
            self._spawn(self._connect())

    def _on_recording(self, data: dict[str, Any]) -> None:
        recorder_id = data.get("recorder_id")
        self.recording = data if recorder_id else None
        recorder = self._recorder
        if recorder is None:
            return
        if recorder_id != str(self.user_id):  # someone else records now (or nobody)
            return
        consents = data.get("consents") or {}
        for user, answer in consents.items():
            with contextlib.suppress(ValueError):
                recorder.set_consent(int(user), answer is True)

    # Shutdown -------------------------------------------------------------------------------

    async def _shutdown(self) -> None:
        self.capture.stop()
        self.playback.stop()
        # Release the microphone and the speakers (device sources and sinks hold them).
        for device in (self._source, self._sink):
            close = getattr(device, "close", None)
            if callable(close):
                with contextlib.suppress(Exception):
                    close()
        peer, self._peer = self._peer, None
        if peer is not None:
            await peer.close()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


__all__ = ["VoiceConnection", "VoiceError", "VoiceStats", "without_candidates"]
