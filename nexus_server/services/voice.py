"""Voice signalling: joining, moving and leaving voice channels and calls (op 4), the
WebRTC handshake with the SFU, direct-call signals, recording consent and voice keys.

The relay process never touches media: audio flows between clients and the SFU worker
processes (``nexus_server.voice``), or directly between the two people of a DM call.
This service decides who may be where, tells everyone who is, and hands SDP to the SFU.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from typing import TYPE_CHECKING, Any

import orjson
from pydantic import ValidationError

from nexus_protocol.errors import ErrorCode
from nexus_protocol.gateway import Opcode
from nexus_protocol.models import ChannelType
from nexus_protocol.permissions import Permissions
from nexus_protocol.voice import (
    CallSignalBody,
    CallSignalKind,
    RecordingAction,
    VoiceErrorCode,
    VoiceKeysBody,
    VoiceOfferBody,
    VoiceRecordingBody,
    VoiceStateUpdateBody,
)

from ..errors import ApiError, BadRequest, MissingPermissions, unknown
from ..events import Event
from ..store import guilds as guild_store
from ..store import users as user_store
from .accounts import Principal
from .channels import ChannelService
from .context import Context
from .dms import DMService
from .render import member_json
from .voice_recording import RecordingConsents, stopped
from .voice_states import VoiceState, VoiceStateTable

if TYPE_CHECKING:
    from ..gateway.hub import GatewayHub, SessionEntry
    from ..voice.supervisor import VoiceSupervisor

log = logging.getLogger(__name__)

VOICE_CHANNEL_TYPES = frozenset({ChannelType.GUILD_VOICE})
# Events after which a member's right to be in, or speak in, a voice channel may differ.
_RECHECK_EVENTS = frozenset(
    {
        "GUILD_ROLE_UPDATE",
        "GUILD_ROLE_DELETE",
        "CHANNEL_UPDATE",
        "CHANNEL_DELETE",
        "GUILD_MEMBER_UPDATE",
        "GUILD_MEMBER_REMOVE",
        "GUILD_DELETE",
    }
)


class VoiceRefused(Exception):
    def __init__(self, code: VoiceErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _error_field(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first.get("loc", ())) or "d"
    return f"{where}: {first.get('msg', 'invalid')}"


class VoiceService:
    def __init__(
        self,
        ctx: Context,
        channels: ChannelService,
        dms: DMService,
        hub: GatewayHub,
        *,
        workers: int = 1,
        forward_loudest: int = 5,
    ) -> None:
        self._ctx = ctx
        self._channels = channels
        self._dms = dms
        self._hub = hub
        self._workers = workers
        self._forward_loudest = forward_loudest
        self.states = VoiceStateTable()
        self.recordings = RecordingConsents()
        # DM channel → the recipients still being rung.
        self._ringing: dict[int, set[int]] = {}
        self._supervisor: VoiceSupervisor | None = None
        self._supervisor_lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()

    # Lifecycle ----------------------------------------------------------------------------

    @property
    def enabled(self) -> bool:
        return self._workers > 0

    async def start_sfu(self) -> VoiceSupervisor:
        """Start the SFU workers (once); later calls return the running supervisor."""
        async with self._supervisor_lock:
            if self._supervisor is None:
                if not self.enabled:
                    raise VoiceRefused(
                        VoiceErrorCode.VOICE_UNAVAILABLE, "Voice is turned off on this relay."
                    )
                try:
                    from ..voice.supervisor import VoiceSupervisor
                except ImportError:  # the voice extra is not installed
                    raise VoiceRefused(
                        VoiceErrorCode.VOICE_UNAVAILABLE,
                        "This relay was installed without voice support.",
                    ) from None
                supervisor = VoiceSupervisor(
                    workers=self._workers,
                    on_gone=self._on_sfu_gone,
                    on_restart=self._on_sfu_restart,
                    forward_loudest=self._forward_loudest,
                )
                await supervisor.start()
                self._supervisor = supervisor
            return self._supervisor

    @property
    def supervisor(self) -> VoiceSupervisor | None:
        return self._supervisor

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._supervisor is not None:
            await self._supervisor.close()
            self._supervisor = None

    def _spawn(self, coro: Any) -> None:
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("voice task failed", exc_info=task.exception())

    # Gateway commands -----------------------------------------------------------------------

    async def on_command(self, entry: SessionEntry, op: int, data: dict[str, Any]) -> None:
        """Ops 4 and 40 to 43. A refusal is answered with VOICE_ERROR, never a closed socket:
        a voice mistake must not cost the user their chat connection."""
        channel_id = data.get("channel_id")
        try:
            if op == Opcode.VOICE_STATE_UPDATE:
                await self._state_update(entry, VoiceStateUpdateBody.model_validate(data))
            elif op == Opcode.VOICE_OFFER:
                await self._offer(entry, VoiceOfferBody.model_validate(data))
            elif op == Opcode.CALL_SIGNAL:
                await self._call_signal(entry, CallSignalBody.model_validate(data))
            elif op == Opcode.VOICE_RECORDING:
                await self._recording(entry, VoiceRecordingBody.model_validate(data))
            elif op == Opcode.VOICE_KEYS:
                await self._keys(entry, VoiceKeysBody.model_validate(data))
        except ValidationError as exc:
            self._send_error(entry, channel_id, VoiceErrorCode.INVALID, _error_field(exc))
        except VoiceRefused as exc:
            self._send_error(entry, channel_id, exc.code, exc.message)

    def _send(self, entry: SessionEntry | None, name: str, payload: dict[str, Any]) -> None:
        if entry is not None and entry.connection is not None:
            entry.connection.send_frame(entry.session.dispatch(name, orjson.dumps(payload)))

    def _send_error(
        self, entry: SessionEntry, channel_id: object, code: VoiceErrorCode, message: str
    ) -> None:
        self._send(
            entry,
            "VOICE_ERROR",
            {
                "channel_id": channel_id if isinstance(channel_id, str | None) else None,
                "code": code.value,
                "message": message,
            },
        )

    async def _state_update(self, entry: SessionEntry, body: VoiceStateUpdateBody) -> None:
        session_id = entry.session.session_id or ""
        current = self.states.get(entry.user_id)
        if body.channel_id is None:
            if current is not None:
                await self._leave(current)
            return
        channel_id = int(body.channel_id)
        guild_id, granted = await self._check_join(entry.user_id, channel_id)
        if guild_id is not None and body.guild_id is not None and int(body.guild_id) != guild_id:
            raise VoiceRefused(VoiceErrorCode.UNKNOWN_CHANNEL, "The channel is not in that guild.")
        if current is not None and current.channel_id == channel_id:
            # The same user from another device takes the call over: that session gets
            # its own token, and its media replaces the old one's at the SFU.
            taken_over = current.session_id != session_id
            changed = taken_over or (current.self_mute, current.self_deaf) != (
                body.self_mute,
                body.self_deaf,
            )
            current.self_mute, current.self_deaf = body.self_mute, body.self_deaf
            current.session_id = session_id
            if taken_over:
                current.token = secrets.token_urlsafe(24)
                await self._drop_media(current)  # the old device's, not to be reported gone
            if changed:
                await self._push_flags(current)
                await self._publish_state(current)
            if taken_over:
                self._send_server_update(current)
            return
        if guild_id is not None:
            await self._check_room(channel_id, granted)
        mute, deaf = await self._member_flags(guild_id, entry.user_id)
        state = VoiceState(
            user_id=entry.user_id,
            channel_id=channel_id,
            guild_id=guild_id,
            session_id=session_id,
            self_mute=body.self_mute,
            self_deaf=body.self_deaf,
            mute=mute or (guild_id is not None and not granted & Permissions.SPEAK),
            deaf=deaf,
        )
        previous = self.states.put(state)
        if previous is not None:
            await self._left_channel(previous, moved_to=state)
        await self._publish_state(state)
        self._send_server_update(state)
        recording = self.recordings.joined(channel_id, entry.user_id)
        if recording is not None:
            await self._publish_recording(channel_id, recording.render())
        if guild_id is None:
            await self._call_joined(state)

    async def _check_join(self, user_id: int, channel_id: int) -> tuple[int | None, Permissions]:
        """(guild id or None for a DM call, the user's permissions there)."""
        recipients = await self._dms.recipients(channel_id)
        if recipients is not None:
            if user_id not in recipients:
                raise VoiceRefused(VoiceErrorCode.UNKNOWN_CHANNEL, "Unknown channel.")
            return None, Permissions(0)
        principal = Principal(user_id=user_id, session_id=0)
        try:
            channel, _, granted = await self._channels.check_channel(
                principal, channel_id, Permissions.VIEW_CHANNEL
            )
        except ApiError:  # unseen channels do not exist to them, as everywhere
            raise VoiceRefused(VoiceErrorCode.UNKNOWN_CHANNEL, "Unknown channel.") from None
        if channel.type not in VOICE_CHANNEL_TYPES:
            raise VoiceRefused(VoiceErrorCode.NOT_VOICE_CHANNEL, "That is not a voice channel.")
        if not granted & Permissions.CONNECT:
            raise VoiceRefused(
                VoiceErrorCode.MISSING_PERMISSIONS, "You may not connect to this channel."
            )
        assert channel.guild_id is not None
        return channel.guild_id, granted

    async def _check_room(self, channel_id: int, granted: Permissions) -> None:
        channel = await self._channels.channel(channel_id)
        limit = channel.user_limit or 0
        # Moderators (MOVE_MEMBERS) may always enter.
        full = limit and len(self.states.in_channel(channel_id)) >= limit
        if full and not granted & Permissions.MOVE_MEMBERS:
            raise VoiceRefused(VoiceErrorCode.CHANNEL_FULL, "This channel is full.")

    async def _member_flags(self, guild_id: int | None, user_id: int) -> tuple[bool, bool]:
        if guild_id is None:
            return False, False
        async with self._ctx.db.read("voice_member") as tx:
            member = await guild_store.get_member(tx, guild_id, user_id)
        if member is None:
            return False, False
        return member.mute, member.deaf

    async def _offer(self, entry: SessionEntry, body: VoiceOfferBody) -> None:
        state = self.states.get(entry.user_id)
        channel_id = int(body.channel_id)
        if state is None or state.channel_id != channel_id:
            raise VoiceRefused(VoiceErrorCode.NOT_CONNECTED, "Join the channel first (op 4).")
        if not secrets.compare_digest(state.token, body.token):
            raise VoiceRefused(VoiceErrorCode.BAD_TOKEN, "That voice token is not current.")
        supervisor = await self.start_sfu()
        try:
            answer = await supervisor.join(str(channel_id), entry.user_id, body.sdp)
            await supervisor.set_muted(str(channel_id), entry.user_id, state.silenced)
            await supervisor.set_deaf(str(channel_id), entry.user_id, state.hears_nothing)
        except Exception as exc:
            log.warning("SFU join failed: %s", exc)
            raise VoiceRefused(
                VoiceErrorCode.VOICE_UNAVAILABLE, f"The voice server could not connect you: {exc}"
            ) from None
        if self.states.get(entry.user_id) is not state:  # left while the SFU answered
            with contextlib.suppress(Exception):
                await supervisor.leave(str(channel_id), entry.user_id)
            return
        state.media_connected = True
        self._send(entry, "VOICE_ANSWER", {"channel_id": str(channel_id), "sdp": answer})

    async def _call_signal(self, entry: SessionEntry, body: CallSignalBody) -> None:
        channel_id, target = int(body.channel_id), int(body.user_id)
        recipients = await self._dms.recipients(channel_id)
        if recipients is None or entry.user_id not in recipients or target not in recipients:
            raise VoiceRefused(VoiceErrorCode.UNKNOWN_CHANNEL, "Unknown call.")
        if body.kind is CallSignalKind.DECLINE:
            ringing = self._ringing.get(channel_id)
            if ringing is not None and entry.user_id in ringing:
                ringing.discard(entry.user_id)
                await self._publish_call("CALL_UPDATE", channel_id, recipients)
            return
        if target == entry.user_id or body.sdp is None:
            raise VoiceRefused(VoiceErrorCode.INVALID, "An offer or answer needs sdp and a peer.")
        state = self.states.get(entry.user_id)
        if state is None or state.channel_id != channel_id:
            raise VoiceRefused(VoiceErrorCode.NOT_CONNECTED, "Join the call first (op 4).")
        payload = {
            "channel_id": str(channel_id),
            "user_id": str(entry.user_id),
            "kind": body.kind.value,
            "sdp": body.sdp,
        }
        await self._ctx.publish([Event.of("CALL_SIGNAL", payload, frozenset({target}))])

    async def _recording(self, entry: SessionEntry, body: VoiceRecordingBody) -> None:
        channel_id = int(body.channel_id)
        state = self.states.get(entry.user_id)
        if state is None or state.channel_id != channel_id:
            raise VoiceRefused(VoiceErrorCode.NOT_CONNECTED, "Join the channel first (op 4).")
        recordings = self.recordings
        if body.action is RecordingAction.REQUEST:
            present = [s.user_id for s in self.states.in_channel(channel_id)]
            recording = recordings.request(channel_id, state.guild_id, entry.user_id, present)
            if recording is None:
                raise VoiceRefused(VoiceErrorCode.INVALID, "Someone is already recording here.")
            await self._publish_recording(channel_id, recording.render())
        elif body.action is RecordingAction.STOP:
            recording = recordings.stop(channel_id, entry.user_id)
            if recording is None:
                raise VoiceRefused(VoiceErrorCode.INVALID, "You are not recording here.")
            await self._publish_recording(channel_id, stopped(channel_id, state.guild_id))
        else:
            consent = body.action is RecordingAction.CONSENT
            recording = recordings.answer(channel_id, entry.user_id, consent)
            if recording is None:
                raise VoiceRefused(VoiceErrorCode.INVALID, "Nobody is recording here.")
            await self._publish_recording(channel_id, recording.render())

    async def _keys(self, entry: SessionEntry, body: VoiceKeysBody) -> None:
        channel_id = int(body.channel_id)
        state = self.states.get(entry.user_id)
        if state is None or state.channel_id != channel_id:
            raise VoiceRefused(VoiceErrorCode.NOT_CONNECTED, "Join the channel first (op 4).")
        present = {s.user_id for s in self.states.in_channel(channel_id)}
        by_user: dict[int, list[dict[str, Any]]] = {}
        for index, envelope in enumerate(body.envelopes):
            user_id = int(envelope.user_id)
            if user_id not in present:
                raise VoiceRefused(
                    VoiceErrorCode.INVALID,
                    f"envelopes.{index}.user_id: {user_id} is not in this call",
                )
            by_user.setdefault(user_id, []).append(envelope.model_dump(mode="json"))
        await self._ctx.publish(
            Event.of(
                "VOICE_KEYS",
                {"channel_id": str(channel_id), "user_id": str(entry.user_id), "envelopes": mine},
                frozenset({user_id}),
            )
            for user_id, mine in by_user.items()
        )

    # Leaving --------------------------------------------------------------------------------

    async def _leave(self, state: VoiceState) -> None:
        if self.states.get(state.user_id) is state:
            self.states.remove(state.user_id)
        await self._left_channel(state)

    async def _left_channel(self, state: VoiceState, moved_to: VoiceState | None = None) -> None:
        """Everything that follows ``state`` leaving its channel (already out of the table).
        A move is announced by the new state alone, as on Discord, except to those who
        cannot see the new channel: they are told the user left."""
        supervisor = self._supervisor
        if supervisor is not None and state.media_connected:
            with contextlib.suppress(Exception):
                await supervisor.leave(str(state.channel_id), state.user_id)
        await self._publish_left(state, moved_to)
        recording, ended = self.recordings.left(state.channel_id, state.user_id)
        if recording is not None:
            body = stopped(state.channel_id, state.guild_id) if ended else recording.render()
            await self._publish_recording(state.channel_id, body)
        if state.guild_id is None:
            await self._call_left(state)

    async def _drop_media(self, state: VoiceState) -> None:
        supervisor = self._supervisor
        if supervisor is not None and state.media_connected:
            state.media_connected = False
            with contextlib.suppress(Exception):
                await supervisor.leave(str(state.channel_id), state.user_id)

    def on_session_forgotten(self, entry: SessionEntry) -> None:
        """The gateway session is gone for good: so is its voice state."""
        state = self.states.get(entry.user_id)
        if state is not None and state.session_id == entry.session.session_id:
            self._spawn(self._leave(state))

    def _on_sfu_gone(self, room: str, user_id: int, reason: str) -> None:
        state = self.states.get(user_id)
        if state is not None and str(state.channel_id) == room and state.media_connected:
            log.info("voice participant %s vanished from %s (%s)", user_id, room, reason)
            state.media_connected = False  # the SFU already dropped them
            self._spawn(self._leave(state))

    def _on_sfu_restart(self, rooms: list[str]) -> None:
        """A worker died and was restarted: everyone it carried connects again."""
        wanted = set(rooms)
        for state in self.states:
            if str(state.channel_id) in wanted:
                state.media_connected = False
                state.token = secrets.token_urlsafe(24)
                self._send_server_update(state)

    # Moderation (PATCH /guilds/{id}/members/{id} with channel_id) ----------------------------

    async def do_move(
        self, principal: Principal, guild_id: int, user_id: int, channel_id: int | None
    ) -> None:
        """Move a member to another voice channel, or disconnect them (``None``)."""
        perms = self._ctx.permissions
        snapshot = await perms.require_snapshot(guild_id, principal.user_id)
        state = self.states.get(user_id)
        if state is None or state.guild_id != guild_id:
            raise BadRequest(
                ErrorCode.TARGET_NOT_IN_VOICE, "Target user is not connected to voice."
            )
        if not perms.guild_permissions(snapshot, principal.user_id) & Permissions.MOVE_MEMBERS:
            raise MissingPermissions()
        if channel_id is None:
            await self._leave(state)
            return
        target = snapshot.channels.get(channel_id)
        if target is None:
            raise unknown(ErrorCode.UNKNOWN_CHANNEL, "Channel")
        if target.type not in VOICE_CHANNEL_TYPES:
            raise BadRequest(
                ErrorCode.INVALID_CHANNEL_TYPE,
                "Cannot move a member into a channel that is not voice.",
            )
        if not perms.in_channel(snapshot, target, user_id) & Permissions.CONNECT:
            raise MissingPermissions()
        if channel_id == state.channel_id:
            return
        granted = perms.in_channel(snapshot, target, user_id)
        moved = VoiceState(
            user_id=user_id,
            channel_id=channel_id,
            guild_id=guild_id,
            session_id=state.session_id,
            self_mute=state.self_mute,
            self_deaf=state.self_deaf,
            mute=await self._moderator_mute(guild_id, user_id, granted),
            deaf=state.deaf,
        )
        self.states.put(moved)
        await self._left_channel(state, moved_to=moved)
        await self._publish_state(moved)
        self._send_server_update(moved)
        recording = self.recordings.joined(channel_id, user_id)
        if recording is not None:
            await self._publish_recording(channel_id, recording.render())

    async def _moderator_mute(self, guild_id: int, user_id: int, granted: Permissions) -> bool:
        mute, _ = await self._member_flags(guild_id, user_id)
        return mute or not granted & Permissions.SPEAK

    # Reacting to community changes --------------------------------------------------------

    def on_event(self, event: Event) -> None:
        guild_id = event.guild_id
        if (
            event.name in _RECHECK_EVENTS
            and guild_id is not None
            and self.states.in_guild(guild_id)
        ):
            self._spawn(self._recheck_guild(guild_id))

    async def _recheck_guild(self, guild_id: int) -> None:
        """After roles, overwrites or members changed: who may still be here, who may
        still speak, and the mute/deafen flags moderators set on the member."""
        perms = self._ctx.permissions
        snapshot = await perms.snapshot(guild_id)
        for state in self.states.in_guild(guild_id):
            channel = snapshot.channels.get(state.channel_id) if snapshot else None
            if snapshot is None or channel is None or state.user_id not in snapshot.member_roles:
                await self._leave(state)
                continue
            granted = perms.in_channel(snapshot, channel, state.user_id)
            if not granted & Permissions.VIEW_CHANNEL or not granted & Permissions.CONNECT:
                await self._leave(state)
                continue
            mute, deaf = await self._member_flags(guild_id, state.user_id)
            mute = mute or not granted & Permissions.SPEAK
            if (mute, deaf) != (state.mute, state.deaf):
                state.mute, state.deaf = mute, deaf
                await self._push_flags(state)
                await self._publish_state(state)

    async def _push_flags(self, state: VoiceState) -> None:
        supervisor = self._supervisor
        if supervisor is None or not state.media_connected:
            return
        room = str(state.channel_id)
        with contextlib.suppress(Exception):
            await supervisor.set_muted(room, state.user_id, state.silenced)
            await supervisor.set_deaf(room, state.user_id, state.hears_nothing)

    # What others hear ---------------------------------------------------------------------------

    async def _audience(self, state: VoiceState) -> frozenset[int]:
        if state.guild_id is None:
            recipients = await self._dms.recipients(state.channel_id)
            return frozenset(recipients or ())
        return await self._ctx.permissions.channel_audience(state.guild_id, state.channel_id)

    async def _publish_state(self, state: VoiceState) -> None:
        member = None
        if state.guild_id is not None:
            async with self._ctx.db.read("voice_state_member") as tx:
                record = await guild_store.get_member(tx, state.guild_id, state.user_id)
                user = await user_store.get_user(tx, state.user_id)
            if record is not None:
                member = member_json(record, user)
        audience = await self._audience(state) | {state.user_id}
        await self._ctx.publish(
            [Event.of("VOICE_STATE_UPDATE", state.render(member), audience, state.guild_id)]
        )

    async def _publish_left(self, state: VoiceState, moved_to: VoiceState | None) -> None:
        audience = await self._audience(state) | {state.user_id}
        if moved_to is not None:
            audience -= await self._audience(moved_to) | {moved_to.user_id}
        await self._ctx.publish(
            [Event.of("VOICE_STATE_UPDATE", state.render_left(), audience, state.guild_id)]
        )

    async def _publish_recording(self, channel_id: int, body: dict[str, Any]) -> None:
        present = frozenset(s.user_id for s in self.states.in_channel(channel_id))
        recorder = body.get("recorder_id")
        audience = present | ({int(recorder)} if recorder else set())
        await self._ctx.publish([Event.of("VOICE_RECORDING_UPDATE", body, audience)])

    def _send_server_update(self, state: VoiceState) -> None:
        entry = self._hub.find(state.session_id)
        self._send(
            entry,
            "VOICE_SERVER_UPDATE",
            {
                "token": state.token,
                "guild_id": None if state.guild_id is None else str(state.guild_id),
                "channel_id": str(state.channel_id),
                # Discord names a voice host here; Nexus's SFU is reached through this
                # gateway's op 40, so there is no separate endpoint to connect to.
                "endpoint": None,
            },
        )

    def voice_states_of(self, guild_id: int) -> list[dict[str, Any]]:
        """For GUILD_CREATE."""
        return [state.render() for state in self.states.in_guild(guild_id)]

    # DM calls: ringing ---------------------------------------------------------------------

    async def _call_joined(self, state: VoiceState) -> None:
        recipients = await self._dms.recipients(state.channel_id) or ()
        present = {s.user_id for s in self.states.in_channel(state.channel_id)}
        if state.channel_id not in self._ringing:
            self._ringing[state.channel_id] = set(recipients) - present
            await self._publish_call("CALL_CREATE", state.channel_id, recipients)
        else:
            self._ringing[state.channel_id].discard(state.user_id)
            await self._publish_call("CALL_UPDATE", state.channel_id, recipients)

    async def _call_left(self, state: VoiceState) -> None:
        recipients = await self._dms.recipients(state.channel_id) or ()
        if self.states.in_channel(state.channel_id):
            await self._publish_call("CALL_UPDATE", state.channel_id, recipients)
            return
        self._ringing.pop(state.channel_id, None)
        await self._ctx.publish(
            [Event.of("CALL_DELETE", {"channel_id": str(state.channel_id)}, frozenset(recipients))]
        )

    async def _publish_call(self, name: str, channel_id: int, recipients: tuple[int, ...]) -> None:
        payload = {
            "channel_id": str(channel_id),
            "message_id": None,
            "region": "local",
            "ringing": [str(u) for u in sorted(self._ringing.get(channel_id, ()))],
            "voice_states": [s.render() for s in self.states.in_channel(channel_id)],
        }
        await self._ctx.publish([Event.of(name, payload, frozenset(recipients))])
