"""The relay's handle on its SFU worker processes.

Rooms are sharded across workers by a stable hash of the room id, so every participant of
a room lands in the same process (forwarding never crosses processes) and a room keeps its
worker across relay restarts. A worker that dies is restarted with backoff; commands in
flight to it fail with ``VoiceUnavailable`` rather than hang, and once the new worker is up
``on_restart(rooms_it_had)`` lets the relay ask those participants to reconnect.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import sys
import time
import zlib
from collections.abc import Callable, Coroutine
from typing import Any

import orjson

from nexus_server.voice.control import encode_line
from nexus_server.voice.errors import VoiceRequestError, VoiceUnavailable

logger = logging.getLogger(__name__)

COMMAND_TIMEOUT = 5.0
SHUTDOWN_GRACE = 3.0
RESTART_BACKOFF_FIRST = 0.2
RESTART_BACKOFF_MAX = 10.0
STABLE_AFTER = 30.0  # a worker up this long has its restart backoff reset
CONTROL_LINE_LIMIT = 1 << 24

GoneCallback = Callable[[str, int, str], None]
RestartCallback = Callable[[list[str]], None]


def shard_of(room: str, workers: int) -> int:
    """The worker index for ``room``: stable across processes and restarts (not ``hash``)."""
    return zlib.crc32(room.encode()) % workers


class _Worker:
    """One SFU process, its in-flight commands, and the voice rooms it has participants in."""

    def __init__(self, index: int, supervisor: VoiceSupervisor) -> None:
        self.index = index
        self._supervisor = supervisor
        self.process: asyncio.subprocess.Process | None = None
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._ids = itertools.count(1)
        self.members: dict[str, set[int]] = {}
        self._reader: asyncio.Task[None] | None = None
        self._closing = False
        self._backoff = RESTART_BACKOFF_FIRST

    @property
    def pid(self) -> int | None:
        if self.process is None or self.process.returncode is not None:
            return None
        return self.process.pid

    async def spawn(self) -> None:
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "nexus_server.voice.sfu",
            "--forward-loudest",
            str(self._supervisor.forward_loudest),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            limit=CONTROL_LINE_LIMIT,
        )
        self._reader = asyncio.create_task(self._read(self.process, time.monotonic()))
        logger.info("voice worker %d started, pid %d", self.index, self.process.pid)

    async def request(self, op: str, timeout: float = COMMAND_TIMEOUT, **fields: Any) -> Any:
        process = self.process
        if process is None or process.returncode is not None or process.stdin is None:
            raise VoiceUnavailable(f"voice worker {self.index} is restarting")
        command_id = next(self._ids)
        reply: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[command_id] = reply
        try:
            process.stdin.write(encode_line({"id": command_id, "op": op, **fields}))
            await process.stdin.drain()
            answer = await asyncio.wait_for(reply, timeout)
        except (ConnectionError, BrokenPipeError) as exc:
            raise VoiceUnavailable(f"voice worker {self.index} is gone") from exc
        except TimeoutError as exc:
            raise VoiceUnavailable(
                f"voice worker {self.index} did not answer {op} within {timeout:g} s"
            ) from exc
        finally:
            self._pending.pop(command_id, None)
        if not answer.get("ok"):
            raise VoiceRequestError(answer.get("error") or f"{op} was refused")
        return answer.get("result", {})

    async def _read(self, process: asyncio.subprocess.Process, started_at: float) -> None:
        assert process.stdout is not None
        try:
            while line := await process.stdout.readline():
                self._dispatch(line)
        except (ValueError, ConnectionError) as exc:  # ValueError: a line over the limit
            logger.error("voice worker %d control channel broke: %s", self.index, exc)
            with contextlib.suppress(ProcessLookupError):
                process.kill()
        returncode = await process.wait()
        self._fail_pending(f"voice worker {self.index} exited (code {returncode})")
        if self._closing:
            return
        logger.error("voice worker %d (pid %d) died, code %s", self.index, process.pid, returncode)
        rooms = sorted(room for room, users in self.members.items() if users)
        self.members.clear()
        if time.monotonic() - started_at > STABLE_AFTER:
            self._backoff = RESTART_BACKOFF_FIRST
        self._supervisor._spawn_task(self._restart(rooms))

    async def _restart(self, rooms: list[str]) -> None:
        while not self._closing:
            await asyncio.sleep(self._backoff)
            self._backoff = min(self._backoff * 2, RESTART_BACKOFF_MAX)
            try:
                await self.spawn()
            except OSError:
                logger.exception("voice worker %d could not be restarted", self.index)
                continue
            self._supervisor._report_restart(rooms)
            return

    def _dispatch(self, line: bytes) -> None:
        try:
            message = orjson.loads(line)
        except orjson.JSONDecodeError:
            logger.error("voice worker %d wrote a non-JSON line: %r", self.index, line[:200])
            return
        if not isinstance(message, dict):
            return
        if "id" in message:
            reply = self._pending.get(message["id"])
            if reply is not None and not reply.done():
                reply.set_result(message)
        elif message.get("event") == "gone":
            room, user_id = str(message["room"]), int(message["user_id"])
            self.members.get(room, set()).discard(user_id)
            self._supervisor._report_gone(room, user_id, str(message.get("reason", "")))

    def _fail_pending(self, why: str) -> None:
        for reply in self._pending.values():
            if not reply.done():
                reply.set_exception(VoiceUnavailable(why))
        self._pending.clear()

    async def close(self) -> None:
        self._closing = True
        process = self.process
        if process is not None and process.returncode is None:
            with contextlib.suppress(VoiceUnavailable):
                await self.request("shutdown", timeout=SHUTDOWN_GRACE)
            if process.stdin is not None:
                process.stdin.close()
            try:
                await asyncio.wait_for(process.wait(), SHUTDOWN_GRACE)
            except TimeoutError:
                process.kill()
                await process.wait()
        if self._reader is not None:
            await self._reader
        self._fail_pending(f"voice worker {self.index} is shut down")


class VoiceSupervisor:
    """Runs the SFU workers for the relay and routes each voice command to its room's worker."""

    def __init__(
        self,
        *,
        workers: int = 1,
        on_gone: GoneCallback | None = None,
        on_restart: RestartCallback | None = None,
        forward_loudest: int = 5,
    ) -> None:
        if workers < 1:
            raise ValueError(f"workers must be at least 1, got {workers}")
        if forward_loudest < 1:
            raise ValueError(f"forward_loudest must be at least 1, got {forward_loudest}")
        self.forward_loudest = forward_loudest
        self._on_gone = on_gone
        self._on_restart = on_restart
        self._workers = [_Worker(index, self) for index in range(workers)]
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        await asyncio.gather(*(worker.spawn() for worker in self._workers))

    async def close(self) -> None:
        await asyncio.gather(*(worker.close() for worker in self._workers))
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def __aenter__(self) -> VoiceSupervisor:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def worker_pids(self) -> list[int]:
        return [pid for worker in self._workers if (pid := worker.pid) is not None]

    def worker_pid_for(self, room: str) -> int | None:
        return self._worker_for(room).pid

    async def join(
        self,
        room: str,
        user_id: int,
        sdp: str,
        *,
        ice_servers: list[dict[str, Any]] | None = None,
        timeout: float = 10.0,
    ) -> str:
        """Connect ``user_id`` to ``room`` from its SDP offer; returns the SDP answer."""
        worker = self._worker_for(room)
        result = await worker.request(
            "join",
            timeout=timeout,
            room=room,
            user_id=user_id,
            sdp=sdp,
            ice_servers=ice_servers,
        )
        worker.members.setdefault(room, set()).add(user_id)
        return str(result["sdp"])

    async def leave(self, room: str, user_id: int) -> None:
        worker = self._worker_for(room)
        await worker.request("leave", room=room, user_id=user_id)
        users = worker.members.get(room)
        if users is not None:
            users.discard(user_id)
            if not users:
                del worker.members[room]

    async def set_muted(self, room: str, user_id: int, muted: bool) -> None:
        await self._worker_for(room).request("set_muted", room=room, user_id=user_id, muted=muted)

    async def set_deaf(self, room: str, user_id: int, deaf: bool) -> None:
        await self._worker_for(room).request("set_deaf", room=room, user_id=user_id, deaf=deaf)

    async def stats(self) -> list[dict[str, Any]]:
        """One entry per worker: pid, cpu_seconds, rss_bytes and per-room counters."""
        replies = await asyncio.gather(
            *(worker.request("stats") for worker in self._workers), return_exceptions=True
        )
        stats: list[dict[str, Any]] = []
        for worker, reply in zip(self._workers, replies, strict=True):
            if isinstance(reply, BaseException):
                stats.append({"worker": worker.index, "pid": None, "error": str(reply)})
            else:
                stats.append({"worker": worker.index, **reply})
        return stats

    def _worker_for(self, room: str) -> _Worker:
        return self._workers[shard_of(room, len(self._workers))]

    def _spawn_task(self, coro: Coroutine[Any, Any, None]) -> None:
        task: asyncio.Task[None] = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _report_gone(self, room: str, user_id: int, reason: str) -> None:
        if self._on_gone is not None:
            try:
                self._on_gone(room, user_id, reason)
            except Exception:
                logger.exception("on_gone callback failed")

    def _report_restart(self, rooms: list[str]) -> None:
        if self._on_restart is not None:
            try:
                self._on_restart(rooms)
            except Exception:
                logger.exception("on_restart callback failed")
