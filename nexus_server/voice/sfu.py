"""The SFU worker process: ``python -m nexus_server.voice.sfu [--forward-loudest N]``.

It runs in a process of its own because forwarding is CPU-bound per packet and the relay's
event loop (and GIL) must stay free for chat; the supervisor runs one or more of these and
shards rooms across them. The control channel is described in ``control.py``. When stdin
closes (the relay died) the worker shuts down.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import time
from collections.abc import Coroutine
from typing import Any, BinaryIO

import orjson
import uvloop
from pydantic import ValidationError

from nexus_server.voice.control import (
    COMMANDS,
    Command,
    JoinCommand,
    LeaveCommand,
    SetDeafCommand,
    SetMutedCommand,
    ShutdownCommand,
    StatsCommand,
    encode_line,
    error_reply,
    gone_event,
    ok_reply,
)
from nexus_server.voice.errors import VoiceRequestError
from nexus_server.voice.outbox import DEFAULT_OUTBOX_SIZE, Outbox
from nexus_server.voice.peer import VoicePeer
from nexus_server.voice.room import Participant, VoiceRoom

logger = logging.getLogger("nexus_server.voice.sfu")

LIVENESS_CHECK_SECONDS = 1.0
CONTROL_LINE_LIMIT = 1 << 20


class SfuWorker:
    def __init__(
        self,
        control_out: BinaryIO,
        *,
        forward_loudest: int,
        outbox_size: int = DEFAULT_OUTBOX_SIZE,
    ) -> None:
        self._control_out = control_out
        self._forward_loudest = forward_loudest
        self._outbox_size = outbox_size
        self._rooms: dict[str, VoiceRoom] = {}
        self._peers: dict[tuple[str, int], VoicePeer] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._stopping = asyncio.Event()

    async def run(self, commands: asyncio.StreamReader) -> None:
        liveness = asyncio.create_task(self._check_liveness())
        reading = asyncio.create_task(self._read_commands(commands))
        stopping = asyncio.create_task(self._stopping.wait())
        try:
            await asyncio.wait({reading, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (liveness, reading, stopping, *self._tasks):
                task.cancel()
            await asyncio.gather(liveness, reading, stopping, *self._tasks, return_exceptions=True)
            await asyncio.gather(*(p.close() for p in self._peers.values()), return_exceptions=True)

    async def _read_commands(self, commands: asyncio.StreamReader) -> None:
        while line := await commands.readline():
            if line.strip():
                self._spawn(self._serve(line))

    async def _serve(self, line: bytes) -> None:
        try:
            command = COMMANDS.validate_json(line)
        except ValidationError as exc:
            logger.warning("unreadable control command %r: %s", line[:200], exc)
            command_id = _salvage_id(line)
            if command_id is not None:
                self._emit(error_reply(command_id, f"malformed command: {exc}"))
            return
        try:
            result = await self._execute(command)
        except VoiceRequestError as exc:
            self._emit(error_reply(command.id, str(exc)))
        except Exception as exc:
            logger.exception("command %s failed", command.op)
            self._emit(error_reply(command.id, f"{command.op} failed: {exc!r}"))
        else:
            self._emit(ok_reply(command.id, result))

    async def _execute(self, command: Command) -> dict[str, Any] | None:
        match command:
            case JoinCommand():
                return {"sdp": await self._join(command)}
            case LeaveCommand():
                peer = self._peers.get((command.room, command.user_id))
                if peer is not None:
                    await self._drop(peer)
            case SetMutedCommand():
                self._room_of(command.room).set_muted(command.user_id, command.muted)
            case SetDeafCommand():
                self._room_of(command.room).set_deaf(command.user_id, command.deaf)
            case StatsCommand():
                return self._stats()
            case ShutdownCommand():
                self._stopping.set()
        return None

    async def _join(self, command: JoinCommand) -> str:
        room = self._rooms.get(command.room)
        if room is None:
            room = VoiceRoom(command.room, forward_loudest=self._forward_loudest)
            self._rooms[command.room] = room
        participant = Participant(command.user_id, Outbox(self._outbox_size))
        peer = VoicePeer(room, participant, ice_servers=command.ice_servers, on_lost=self._lose)
        try:
            answer = await peer.answer(command.sdp)
        except BaseException:
            await peer.close()
            self._forget_room_if_empty(room)
            raise
        previous = self._peers.get((command.room, command.user_id))
        if previous is not None:
            await self._drop(previous)
        room.add(participant)
        self._peers[(command.room, command.user_id)] = peer
        logger.info("room %s: user %s joined", command.room, command.user_id)
        return answer

    def _room_of(self, room_id: str) -> VoiceRoom:
        room = self._rooms.get(room_id)
        if room is None:
            raise VoiceRequestError(f"no voice room {room_id!r} on this worker")
        return room

    def _detach(self, peer: VoicePeer) -> bool:
        """Take ``peer`` out of the worker; False if it was already replaced or removed."""
        key = (peer.room.room_id, peer.user_id)
        if self._peers.get(key) is not peer:
            return False
        del self._peers[key]
        peer.room.remove(peer.participant)
        self._forget_room_if_empty(peer.room)
        return True

    async def _drop(self, peer: VoicePeer) -> None:
        if self._detach(peer):
            await peer.close()

    def _lose(self, peer: VoicePeer, reason: str) -> None:
        if not self._detach(peer):
            return
        logger.info("room %s: user %s gone (%s)", peer.room.room_id, peer.user_id, reason)
        self._emit(gone_event(peer.room.room_id, peer.user_id, reason))
        self._spawn(peer.close())

    def _forget_room_if_empty(self, room: VoiceRoom) -> None:
        if not room.participants and self._rooms.get(room.room_id) is room:
            del self._rooms[room.room_id]

    async def _check_liveness(self) -> None:
        while True:
            await asyncio.sleep(LIVENESS_CHECK_SECONDS)
            now = time.monotonic()
            for peer in list(self._peers.values()):
                reason = peer.lost_reason(now)
                if reason is not None:
                    self._lose(peer, reason)

    def _stats(self) -> dict[str, Any]:
        return {
            "pid": os.getpid(),
            "cpu_seconds": time.process_time(),
            "rss_bytes": _resident_bytes(),
            "rooms": [room.counters() for room in self._rooms.values()],
        }

    def _emit(self, message: dict[str, Any]) -> None:
        # Small lines into a pipe the supervisor always drains: a blocking write is brief.
        self._control_out.write(encode_line(message))
        self._control_out.flush()

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task: asyncio.Task[None] = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _claim_stdout_for_control() -> BinaryIO:
    """Keep the real stdout for the control channel and send stray prints to stderr."""
    control_out = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    return control_out


def _salvage_id(line: bytes) -> int | None:
    try:
        value = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    command_id = value.get("id") if isinstance(value, dict) else None
    return command_id if isinstance(command_id, int) else None


def _resident_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


async def _open_stdin() -> asyncio.StreamReader:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=CONTROL_LINE_LIMIT)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    return reader


async def _main(control_out: BinaryIO, forward_loudest: int, outbox_size: int) -> None:
    worker = SfuWorker(control_out, forward_loudest=forward_loudest, outbox_size=outbox_size)
    await worker.run(await _open_stdin())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Nexus voice SFU worker (driven over stdin)")
    parser.add_argument("--forward-loudest", type=int, default=5, metavar="N")
    parser.add_argument("--outbox-size", type=int, default=DEFAULT_OUTBOX_SIZE, metavar="PACKETS")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    if args.forward_loudest < 1:
        parser.error("--forward-loudest must be at least 1")
    control_out = _claim_stdout_for_control()
    logging.basicConfig(
        stream=sys.stderr,
        level=args.log_level,
        format=f"sfu[{os.getpid()}] %(levelname)s %(name)s: %(message)s",
    )
    # ICE pair-by-pair progress at INFO would drown the worker's own log lines.
    logging.getLogger("aioice").setLevel(max(logging.WARNING, logging.getLogger().level))
    # uvloop: the worker's cost is per datagram, and its loop and transports are leaner.
    uvloop.run(_main(control_out, args.forward_loudest, args.outbox_size))


if __name__ == "__main__":
    main()
