"""Fan-out benchmark for the Nexus relay: one sender, R receivers on one channel.

Each message carries a nonce ``<prefix>.<run>.<seq>``; the sender notes ``time.time()``
just before its POST, every receiver notes ``time.time()`` as the MESSAGE_CREATE frame
arrives, and the difference is the send→receive latency (same machine, same clock).

Modes (any combination; none given = latency):

  --latency   fixed rate: --messages at --rate msg/s (default 200 at 10 msg/s)
  --ladder    rates doubling from --ladder-start, --duration s each (default 8); a step
              passes with fan-out p99 <= 1 s, no loss, no send error and >= 90% of the
              target send rate; after the first failure (retried once) the gap is bisected
  --flood     closed loop: --inflight POSTs outstanding for --duration s (default 10)

By default it starts its own relay (``nexus-server --no-rate-limits`` on a free loopback
port with a fresh SQLite data dir) and stops it at the end, also on Ctrl-C or error;
``--url`` uses a running relay instead. Receivers run in 1-2 worker processes
(``--workers``) on uvloop + websockets. The relay's RSS is sampled over its process tree.

    .venv/bin/python bench/fanout.py --quick              # ~20 s smoke run
    .venv/bin/python bench/fanout.py                      # 200 msgs @ 10 msg/s x 200
    .venv/bin/python bench/fanout.py --ladder --flood
    .venv/bin/python bench/fanout.py --all --json out.json

Baseline: Synapse on this kind of machine, shared/bench/synapse/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import multiprocessing as mp
import os
import random
import signal
import string
import sys
import threading
import time
import traceback
from array import array
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

import httpx
import orjson
import psutil
import uvloop
from websockets.client import ClientProtocol
from websockets.exceptions import InvalidHandshake
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory
from websockets.frames import Opcode
from websockets.http11 import Response
from websockets.protocol import State
from websockets.uri import parse_uri

if __package__:
    from . import _relay
else:
    import _relay

# GUILDS | GUILD_MESSAGES | MESSAGE_CONTENT
INTENTS = 1 | 512 | 32768
P99_LIMIT = 1.0
TARGET_P99_S = 0.050  # at 10 msg/s x 200 receivers
TARGET_DELIVERIES = 50_000  # per second, sustained with p99 <= 1 s
FILLER = "lorem ipsum dolor sit amet " * 3  # ~ the Synapse bench's message body
PASSWORD = "bench-password-0123"
SEQ_BITS = 32

# Synapse 1.163.2 on this kind of machine (2 cores, SQLite), four full runs on 2026-11-26:
# shared/bench/synapse/README.md. Ratios are taken against Synapse's best figure.
SYNAPSE: dict[int, dict[str, tuple[float, float]]] = {
    50: {
        "p99_at_10": (1.23, 1.73),  # s, fan-out p99, 200 msgs at 10 msg/s
        "sustained": (200.0, 250.0),  # deliveries/s with p99 <= 1 s
        "flood": (240.0, 300.0),  # deliveries/s, closed loop
        "rss_mb": (138.0, 143.0),  # all receivers connected
    },
    200: {
        "p99_at_10": (4.7, 9.4),
        "sustained": (200.0, 200.0),
        "flood": (225.0, 308.0),
        "rss_mb": (283.0, 331.0),
    },
}


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def pct(sorted_values: list[float], p: float) -> float:
    if not sorted_values:
        return math.nan
    k = max(0, min(len(sorted_values) - 1, math.ceil(p / 100.0 * len(sorted_values)) - 1))
    return sorted_values[k]


# ----------------------------------------------------------------------------- receivers
# Everything from here to ``worker_main`` runs in the receiver worker processes.


@dataclass
class _Conn:
    idx: int
    token: str
    session_id: str | None = None
    seq: int | None = None
    resume_url: str | None = None
    ready: bool = False
    failed: bool = False
    gateway: _Gateway | None = None


class _Gateway(asyncio.Protocol):
    """One gateway connection on websockets' Sans-I/O core: frames are handled in
    ``data_received`` itself (no task wake-up per frame), so a worker process can take
    tens of thousands of deliveries per second."""

    def __init__(self, worker: ReceiverWorker, c: _Conn, url: str) -> None:
        loop = asyncio.get_running_loop()
        self.worker = worker
        self.c = c
        extensions = [ClientPerMessageDeflateFactory()] if worker.compression else None
        self.proto = ClientProtocol(parse_uri(url), extensions=extensions, max_size=2**24)
        self.transport: asyncio.Transport | None = None
        self.opened: asyncio.Future[None] = loop.create_future()
        self.closed: asyncio.Future[None] = loop.create_future()
        self.heartbeat: asyncio.TimerHandle | None = None
        self.interval = 41.25
        self.fragments: list[bytes] = []
        self.hello = False

    # --- asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no subclass
        self.proto.send_request(self.proto.connect())
        self._write_out()

    def data_received(self, data: bytes) -> None:
        t = time.time()
        proto = self.proto
        proto.receive_data(data)
        for event in proto.events_received():
            if isinstance(event, Response):
                if proto.handshake_exc is not None:
                    if not self.opened.done():
                        self.opened.set_exception(proto.handshake_exc)
                elif not self.opened.done():
                    self.opened.set_result(None)
                continue
            opcode = event.opcode
            if opcode is Opcode.TEXT or opcode is Opcode.BINARY:
                if event.fin:
                    self.worker.on_frame(self, event.data, t)
                else:
                    self.fragments = [event.data]
            elif opcode is Opcode.CONT:
                self.fragments.append(event.data)
                if event.fin:
                    frame, self.fragments = b"".join(self.fragments), []
                    self.worker.on_frame(self, frame, t)
        self._write_out()
        if proto.close_expected() and self.transport is not None:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.proto.receive_eof()
        if self.heartbeat is not None:
            self.heartbeat.cancel()
        if not self.opened.done():
            self.opened.set_exception(ConnectionError(f"closed during handshake: {exc}"))
        if not self.closed.done():
            self.closed.set_result(None)

    # --- helpers
    def _write_out(self) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        for data in self.proto.data_to_send():
            if data:
                transport.write(data)
            elif transport.can_write_eof():
                transport.write_eof()

    def send_json(self, payload: Any) -> None:
        if self.proto.state is State.OPEN:
            self.proto.send_text(orjson.dumps(payload))
            self._write_out()

    def start_heartbeats(self, interval: float) -> None:
        self.interval = interval
        loop = asyncio.get_running_loop()
        self.heartbeat = loop.call_later(interval * random.random(), self._beat)

    def _beat(self) -> None:
        self.send_json({"op": 1, "d": self.c.seq})
        self.worker.stats["heartbeats"] += 1
        self.heartbeat = asyncio.get_running_loop().call_later(self.interval, self._beat)

    def close(self, code: int = 1000) -> None:
        if self.proto.state is State.OPEN:
            self.proto.send_close(code)
            self._write_out()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    def close_code(self) -> int | None:
        rcvd = self.proto.close_rcvd
        return rcvd.code if rcvd is not None else None


_DISPATCH = b'{"op":0,"s":'
_MESSAGE_CREATE = b'"t":"MESSAGE_CREATE"'
_NONCE = b'"nonce":"'


class ReceiverWorker:
    """Holds a slice of the receivers' gateway connections in one process."""

    def __init__(
        self,
        conn: Connection,
        wid: int,
        receivers: list[tuple[int, str]],
        gateway_url: str,
        guild_id: str,
        prefix: str,
        connect_concurrency: int,
        compression: bool,
    ) -> None:
        self.pipe = conn
        self.wid = wid
        self.compression = compression
        self.conns = [_Conn(idx, token) for idx, token in receivers]
        self.gateway_url = gateway_url
        self.guild_id = guild_id
        self.prefix = prefix
        self.prefix_b = prefix.encode()
        self.connect_sem = asyncio.Semaphore(connect_concurrency)
        self.stopping = asyncio.Event()
        self.ready_event = asyncio.Event()
        self.n_done = 0
        # deliveries since the last flush: receiver index, run, seq, receive time
        self.r_idx = array("i")
        self.r_run = array("i")
        self.r_seq = array("i")
        self.r_t = array("d")
        self.stats: dict[str, Any] = {
            "connects": 0,
            "identify": 0,
            "resume": 0,
            "resumed": 0,
            "reconnect_requests": 0,
            "invalid_sessions": 0,
            "disconnects": 0,
            "close_codes": {},
            "frames": 0,
            "bytes": 0,
            "message_creates": 0,
            "foreign_messages": 0,
            "heartbeats": 0,
            "heartbeat_acks": 0,
            "errors": [],
        }
        self.ppid = os.getppid()

    def _error(self, text: str) -> None:
        errors: list[str] = self.stats["errors"]
        if len(errors) < 20:
            errors.append(text)

    # --- pipe to the parent
    def _send(self, msg: object) -> None:
        try:
            self.pipe.send(msg)
        except (OSError, EOFError, BrokenPipeError):
            self.stopping.set()

    def _flush(self) -> None:
        if len(self.r_t):
            batch = (self.r_idx, self.r_run, self.r_seq, self.r_t)
            self.r_idx, self.r_run, self.r_seq = array("i"), array("i"), array("i")
            self.r_t = array("d")
            self._send(("d", self.wid, batch))

    def _snapshot(self) -> dict[str, Any]:
        snap = dict(self.stats)
        snap["close_codes"] = dict(self.stats["close_codes"])
        snap["errors"] = list(self.stats["errors"])
        snap["connected"] = sum(1 for c in self.conns if c.gateway is not None)
        snap["cpu_s"] = time.process_time()
        return snap

    def _on_command(self) -> None:
        try:
            while self.pipe.poll():
                msg = self.pipe.recv()
                if msg[0] == "flush":
                    self._flush()
                    self._send(("flushed", self.wid, msg[1], self._snapshot()))
                elif msg[0] == "stop":
                    self.stopping.set()
        except (EOFError, OSError):
            self.stopping.set()

    async def _flusher(self) -> None:
        while not self.stopping.is_set():
            await asyncio.sleep(0.05)
            self._flush()
            if os.getppid() != self.ppid:  # parent died: end by ourselves
                self.stopping.set()

    # --- gateway
    def _url(self, base: str) -> str:
        sep = "&" if "?" in base else "?"
        return base if "encoding=" in base else f"{base}{sep}v=10&encoding=json"

    def _mark_ready(self, c: _Conn) -> None:
        if not c.ready and not c.failed:
            c.ready = True
            self._done_one()

    def _done_one(self) -> None:
        self.n_done += 1
        if self.n_done >= len(self.conns):
            self.ready_event.set()

    def on_frame(self, gw: _Gateway, raw: bytes, t: float) -> None:
        """One gateway frame. MESSAGE_CREATE takes a fast path: the relay frames
        dispatches as ``{"op":0,"s":N,"t":"...","d":...}``, so the sequence number and
        the nonce are sliced out without decoding the message; anything else is parsed."""
        stats, c = self.stats, gw.c
        stats["frames"] += 1
        stats["bytes"] += len(raw)
        if raw.startswith(_DISPATCH):
            comma = raw.find(b",", 12)
            if raw.startswith(_MESSAGE_CREATE, comma + 1):
                k = raw.find(_NONCE)
                if k > 0:
                    end = raw.find(b'"', k + 9)
                    parts = raw[k + 9 : end].split(b".")
                    c.seq = int(raw[12:comma])
                    stats["message_creates"] += 1
                    if len(parts) == 3 and parts[0] == self.prefix_b:
                        self.r_idx.append(c.idx)
                        self.r_run.append(int(parts[1]))
                        self.r_seq.append(int(parts[2]))
                        self.r_t.append(t)
                    else:
                        stats["foreign_messages"] += 1
                    return
        msg = orjson.loads(raw)
        s = msg.get("s")
        if s is not None:
            c.seq = s
        op = msg.get("op")
        if op == 0:
            name = msg.get("t")
            d = msg.get("d") or {}
            if name == "MESSAGE_CREATE":
                stats["message_creates"] += 1
                nonce = d.get("nonce")
                if not isinstance(nonce, str):
                    content = d.get("content") or ""
                    nonce = content[1 : content.find("]")] if content[:1] == "[" else ""
                parts_s = nonce.split(".")
                if len(parts_s) != 3 or parts_s[0] != self.prefix:
                    stats["foreign_messages"] += 1
                    return
                self.r_idx.append(c.idx)
                self.r_run.append(int(parts_s[1]))
                self.r_seq.append(int(parts_s[2]))
                self.r_t.append(t)
            elif name == "READY":
                c.session_id = d.get("session_id")
                c.resume_url = d.get("resume_gateway_url")
                # wait for our guild's GUILD_CREATE, but not forever
                asyncio.get_running_loop().call_later(5.0, self._mark_ready, c)
            elif name == "GUILD_CREATE":
                if d.get("id") == self.guild_id:
                    self._mark_ready(c)
            elif name == "RESUMED":
                stats["resumed"] += 1
        elif op == 10:
            if not gw.hello:
                gw.hello = True
                gw.start_heartbeats(float(msg["d"]["heartbeat_interval"]) / 1000.0)
                if c.session_id is not None:
                    stats["resume"] += 1
                    payload = {"token": c.token, "session_id": c.session_id, "seq": c.seq}
                    gw.send_json({"op": 6, "d": payload})
                else:
                    stats["identify"] += 1
                    identify = {
                        "token": c.token,
                        "intents": INTENTS,
                        "properties": {"os": "linux", "browser": "bench", "device": "bench"},
                    }
                    gw.send_json({"op": 2, "d": identify})
        elif op == 11:
            stats["heartbeat_acks"] += 1
        elif op == 1:
            gw.send_json({"op": 1, "d": c.seq})
            stats["heartbeats"] += 1
        elif op == 7:
            stats["reconnect_requests"] += 1
            gw.close(4000)
        elif op == 9:
            stats["invalid_sessions"] += 1
            if not msg.get("d"):
                c.session_id = None
                c.seq = None
            gw.close(4000)

    async def _session(self, c: _Conn) -> None:
        """One gateway connection's life, reconnecting/resuming a bounded number of times."""
        loop = asyncio.get_running_loop()
        attempts = 0
        while not self.stopping.is_set():
            attempts += 1
            if attempts > (5 if not c.ready else 50):
                if not c.ready:
                    c.failed = True
                    self._done_one()
                self._error(f"receiver {c.idx}: gave up after {attempts - 1} connections")
                return
            url = self._url(c.resume_url if (c.session_id and c.resume_url) else self.gateway_url)
            uri = parse_uri(url)
            gw: _Gateway | None = None
            try:
                async with self.connect_sem:
                    _, gw = await asyncio.wait_for(
                        loop.create_connection(
                            lambda u=url: _Gateway(self, c, u), uri.host, uri.port
                        ),
                        30,
                    )
                    c.gateway = gw
                    await asyncio.wait_for(asyncio.shield(gw.opened), 30)
                    self.stats["connects"] += 1
                stop = asyncio.ensure_future(self.stopping.wait())
                await asyncio.wait([gw.closed, stop], return_when=asyncio.FIRST_COMPLETED)
                stop.cancel()
                code = gw.close_code()
                if not gw.closed.done():  # stopping: close politely, then hang up
                    gw.close(1000)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(asyncio.shield(gw.closed), 2)
                    gw.abort()
                    return
                codes: dict[str, int] = self.stats["close_codes"]
                codes[str(code)] = codes.get(str(code), 0) + 1
                if code in (4004, 4010, 4011, 4012, 4013, 4014):
                    self._error(f"receiver {c.idx}: fatal close {code}")
                    attempts = 10**6
                elif code in (4007, 4009):
                    c.session_id = None
            except (OSError, TimeoutError, InvalidHandshake, ConnectionError) as exc:
                self._error(f"receiver {c.idx}: {type(exc).__name__}: {exc}"[:300])
                if gw is not None:
                    gw.abort()
            finally:
                c.gateway = None
            if self.stopping.is_set():
                return
            self.stats["disconnects"] += 1
            await asyncio.sleep(min(5.0, 0.25 * attempts) * (0.5 + random.random()))

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        loop.add_reader(self.pipe.fileno(), self._on_command)
        flusher = asyncio.create_task(self._flusher())
        tasks = [asyncio.create_task(self._session(c)) for c in self.conns]
        wait_ready = asyncio.create_task(self.ready_event.wait())
        wait_stop = asyncio.create_task(self.stopping.wait())
        await asyncio.wait(
            [wait_ready, wait_stop],
            timeout=120 + 0.5 * len(self.conns),
            return_when=asyncio.FIRST_COMPLETED,
        )
        wait_ready.cancel()
        ok = sum(1 for c in self.conns if c.ready)
        self._send(("ready", self.wid, ok, len(self.conns) - ok, self._snapshot()))
        await wait_stop
        self._flush()
        await asyncio.wait(tasks, timeout=8)
        for t in tasks:
            t.cancel()
        flusher.cancel()
        loop.remove_reader(self.pipe.fileno())


def worker_main(
    conn: Connection,
    wid: int,
    receivers: list[tuple[int, str]],
    gateway_url: str,
    guild_id: str,
    prefix: str,
    connect_concurrency: int,
    compression: bool,
) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when we stop
    try:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            worker = ReceiverWorker(
                conn,
                wid,
                receivers,
                gateway_url,
                guild_id,
                prefix,
                connect_concurrency,
                compression,
            )
            runner.run(worker.run())
    except BaseException:
        with contextlib.suppress(Exception):
            conn.send(("fatal", wid, traceback.format_exc()))
        raise
    finally:
        with contextlib.suppress(Exception):
            conn.close()


# ----------------------------------------------------------------------------- parent side


@dataclass
class Run:
    run_id: int
    label: str
    rate: float | None
    receivers: int
    t_send: list[float] = field(default_factory=list)
    accepted: int = 0
    lat: list[float] = field(default_factory=list)
    seen: set[int] = field(default_factory=set)
    duplicates: int = 0
    unknown_seq: int = 0
    last_delivery: float = 0.0


class ReceiverPool:
    """The receiver worker processes and the pipes that bring their deliveries back."""

    def __init__(self, n_workers: int) -> None:
        self.n_workers = n_workers
        self.procs: list[Any] = []
        self.pipes: list[Connection] = []
        self.threads: list[threading.Thread] = []
        self.loop: asyncio.AbstractEventLoop | None = None
        self.run: Run | None = None
        self.stale = 0  # deliveries for a run already finished (late) or unknown
        self.ready: dict[int, tuple[int, int, dict[str, Any]]] = {}
        self.ready_event: asyncio.Event | None = None
        self.flush_waiters: dict[int, asyncio.Future[dict[int, dict[str, Any]]]] = {}
        self.flush_replies: dict[int, dict[int, dict[str, Any]]] = {}
        self.flush_token = 0
        self.fatal: list[str] = []
        self.dead: set[int] = set()
        self.latest_stats: dict[int, dict[str, Any]] = {}

    def start(
        self,
        loop: asyncio.AbstractEventLoop,
        tokens: list[str],
        gateway_url: str,
        guild_id: str,
        prefix: str,
        connect_concurrency: int,
        compression: bool = False,
    ) -> None:
        self.loop = loop
        self.ready_event = asyncio.Event()
        ctx = mp.get_context("spawn")
        slices: list[list[tuple[int, str]]] = [[] for _ in range(self.n_workers)]
        for idx, token in enumerate(tokens):
            slices[idx % self.n_workers].append((idx, token))
        for wid, chunk in enumerate(slices):
            parent_end, child_end = ctx.Pipe(duplex=True)
            proc = ctx.Process(
                target=worker_main,
                args=(
                    child_end,
                    wid,
                    chunk,
                    gateway_url,
                    guild_id,
                    prefix,
                    connect_concurrency,
                    compression,
                ),
                name=f"fanout-receivers-{wid}",
                daemon=True,
            )
            proc.start()
            child_end.close()
            self.procs.append(proc)
            self.pipes.append(parent_end)
            t = threading.Thread(
                target=self._reader, args=(wid, parent_end), name=f"pipe-{wid}", daemon=True
            )
            t.start()
            self.threads.append(t)

    def pids(self) -> list[int]:
        return [p.pid for p in self.procs if p.pid is not None]

    def _reader(self, wid: int, conn: Connection) -> None:
        while True:
            try:
                msg = conn.recv()
            except (EOFError, OSError):
                msg = ("dead", wid)
            except Exception:
                msg = ("fatal", wid, traceback.format_exc())
            try:
                assert self.loop is not None
                self.loop.call_soon_threadsafe(self._dispatch, msg)
            except RuntimeError:  # loop closed
                return
            if msg[0] in ("dead", "fatal"):
                return

    def _dispatch(self, msg: tuple[Any, ...]) -> None:
        kind = msg[0]
        if kind == "d":
            self._ingest(*msg[2])
        elif kind == "ready":
            _, wid, ok, failed, stats = msg
            self.ready[wid] = (ok, failed, stats)
            self.latest_stats[wid] = stats
            if len(self.ready) >= self.n_workers and self.ready_event is not None:
                self.ready_event.set()
        elif kind == "flushed":
            _, wid, token, stats = msg
            self.latest_stats[wid] = stats
            replies = self.flush_replies.setdefault(token, {})
            replies[wid] = stats
            fut = self.flush_waiters.get(token)
            if fut is not None and not fut.done() and len(replies) >= self.live_workers():
                fut.set_result(replies)
        elif kind in ("fatal", "dead"):
            wid = msg[1]
            if wid not in self.dead:
                self.dead.add(wid)
                if kind == "fatal":
                    self.fatal.append(f"worker {wid}:\n{msg[2]}")
            if self.ready_event is not None and not self.ready_event.is_set():
                self.ready_event.set()
            for token, fut in self.flush_waiters.items():
                if not fut.done() and len(self.flush_replies.get(token, {})) >= self.live_workers():
                    fut.set_result(self.flush_replies.get(token, {}))

    def live_workers(self) -> int:
        return self.n_workers - len(self.dead)

    def _ingest(self, r_idx: array, r_run: array, r_seq: array, r_t: array) -> None:
        run = self.run
        if run is None:
            self.stale += len(r_t)
            return
        run_id, t_send, seen, lat = run.run_id, run.t_send, run.seen, run.lat
        n_sent = len(t_send)
        last = run.last_delivery
        for idx, rid, seq, t in zip(r_idx, r_run, r_seq, r_t, strict=True):
            if rid != run_id:
                self.stale += 1
                continue
            if seq >= n_sent:
                run.unknown_seq += 1
                continue
            key = (idx << SEQ_BITS) | seq
            if key in seen:
                run.duplicates += 1
                continue
            seen.add(key)
            lat.append(t - t_send[seq])
            if t > last:
                last = t
        run.last_delivery = last

    async def wait_ready(self, within_s: float) -> tuple[int, int]:
        assert self.ready_event is not None
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(within_s):
                await self.ready_event.wait()
        ok = sum(v[0] for v in self.ready.values())
        failed = sum(v[1] for v in self.ready.values())
        return ok, failed

    async def flush(self, within_s: float = 10.0) -> dict[int, dict[str, Any]]:
        """A barrier: every delivery the workers saw before this call has been ingested."""
        assert self.loop is not None
        self.flush_token += 1
        token = self.flush_token
        fut: asyncio.Future[dict[int, dict[str, Any]]] = self.loop.create_future()
        self.flush_waiters[token] = fut
        for wid, pipe in enumerate(self.pipes):
            if wid in self.dead:
                continue
            try:
                pipe.send(("flush", token))
            except (OSError, BrokenPipeError):
                self.dead.add(wid)
        if self.live_workers() == 0:
            fut.set_result({})
        try:
            async with asyncio.timeout(within_s):
                return await fut
        except TimeoutError:
            return self.flush_replies.get(token, {})
        finally:
            self.flush_waiters.pop(token, None)
            self.flush_replies.pop(token, None)

    def stop(self) -> None:
        for pipe in self.pipes:
            with contextlib.suppress(Exception):
                pipe.send(("stop",))
        deadline = time.monotonic() + 12.0
        for proc in self.procs:
            proc.join(max(0.1, deadline - time.monotonic()))
        for proc in self.procs:
            if proc.is_alive():
                proc.terminate()
                proc.join(3)
            if proc.is_alive():
                proc.kill()
                proc.join(3)
        for pipe in self.pipes:
            with contextlib.suppress(Exception):
                pipe.close()


class RateLimitError(RuntimeError):
    pass


class Api:
    """The few REST calls the bench needs, honouring 429s (counted in ``limited``)."""

    def __init__(self, base: str, max_connections: int = 64) -> None:
        self.base = base.rstrip("/") + "/api/v10"
        limits = httpx.Limits(
            max_connections=max_connections, max_keepalive_connections=max_connections
        )
        self.client = httpx.AsyncClient(limits=limits, timeout=httpx.Timeout(30.0))
        self.limited = 0
        self.limited_wait = 0.0

    async def close(self) -> None:
        await self.client.aclose()

    @staticmethod
    def retry_after(r: httpx.Response) -> float:
        with contextlib.suppress(Exception):
            return float(orjson.loads(r.content)["retry_after"])
        for header in ("X-RateLimit-Reset-After", "Retry-After"):
            with contextlib.suppress(Exception):
                return float(r.headers[header])
        return 1.0

    async def request(
        self,
        method: str,
        path: str,
        token: str | None = None,
        body: Any = None,
        *,
        max_429: int = 50,
    ) -> httpx.Response:
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = token
        content = orjson.dumps(body) if body is not None else None
        for _ in range(max_429 + 1):
            r = await self.client.request(
                method, self.base + path, content=content, headers=headers
            )
            if r.status_code != 429:
                return r
            wait = max(0.0, self.retry_after(r))
            self.limited += 1
            self.limited_wait += wait
            await asyncio.sleep(wait + 0.001)
        raise RateLimitError(f"{method} {path}: still rate limited after {max_429} retries")

    async def json(self, method: str, path: str, token: str | None = None, body: Any = None) -> Any:
        r = await self.request(method, path, token, body)
        if r.status_code >= 300:
            raise RuntimeError(f"{method} {path} -> HTTP {r.status_code}: {r.text[:500]}")
        return orjson.loads(r.content) if r.content else None


class Poster:
    """Minimal keep-alive HTTP/1.1 client for the sender's POSTs: httpx costs several
    times more CPU per request, and the load generator shares the machine with the relay."""

    def __init__(self, base_url: str, token: str) -> None:
        url = httpx.URL(base_url)
        self.host = url.host
        self.port = url.port or 80
        self.host_header = f"{self.host}:{self.port}".encode()
        self.token = token.encode()
        # idle keep-alive connections and when each was last used (uvicorn drops idle
        # connections after 5 s, so older ones are not reused)
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter, float]] = []
        self.limited = 0
        self.limited_wait = 0.0

    async def _exchange(self, path: bytes, body: bytes) -> tuple[int, bytes, dict[bytes, bytes]]:
        reader = writer = None
        while self.idle:
            r, w, used = self.idle.pop()
            if time.monotonic() - used < 3.0 and not w.is_closing():
                reader, writer = r, w
                break
            w.close()
        if reader is None or writer is None:
            reader, writer = await asyncio.open_connection(self.host, self.port)
        try:
            writer.write(
                b"POST %b HTTP/1.1\r\nHost: %b\r\nAuthorization: %b\r\n"
                b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%b"
                % (path, self.host_header, self.token, len(body), body)
            )
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.split(b"\r\n")
            status = int(lines[0].split(b" ", 2)[1])
            headers = {}
            for line in lines[1:]:
                name, _, value = line.partition(b":")
                if name:
                    headers[name.strip().lower()] = value.strip()
            if headers.get(b"transfer-encoding", b"").lower() == b"chunked":
                chunks = []
                while True:
                    size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
                    chunk = await reader.readexactly(size + 2)
                    if size == 0:
                        break
                    chunks.append(chunk[:-2])
                content = b"".join(chunks)
            else:
                content = await reader.readexactly(int(headers.get(b"content-length", b"0")))
        except BaseException:
            writer.close()
            raise
        if headers.get(b"connection", b"").lower() == b"close":
            writer.close()
        else:
            self.idle.append((reader, writer, time.monotonic()))
        return status, content, headers

    async def post(self, path: str, body: bytes, *, max_429: int = 50) -> tuple[int, bytes]:
        """POST, sleeping out and retrying 429s (counted); other statuses are returned."""
        raw_path = path.encode()
        for _ in range(max_429 + 1):
            status, content, headers = await self._exchange(raw_path, body)
            if status != 429:
                return status, content
            wait = 1.0
            with contextlib.suppress(Exception):
                wait = float(orjson.loads(content)["retry_after"])
            if b"retry-after" in headers and not content:
                with contextlib.suppress(ValueError):
                    wait = float(headers[b"retry-after"])
            self.limited += 1
            self.limited_wait += max(0.0, wait)
            await asyncio.sleep(max(0.0, wait) + 0.001)
        raise RateLimitError(f"POST {path}: still rate limited after {max_429} retries")

    def close(self) -> None:
        for _, writer, _ in self.idle:
            writer.close()
        self.idle.clear()


def _rand(n: int) -> str:
    return "".join(random.choice(string.ascii_lowercase + string.digits) for _ in range(n))


class Bench:
    def __init__(self, args: argparse.Namespace, pool: ReceiverPool) -> None:
        self.args = args
        self.pool = pool
        self.prefix = "b" + _rand(5)
        self.api: Api | None = None
        self.poster: Poster | None = None
        self.relay_pid: int | None = None
        self.sampler: _relay.TreeSampler | None = None
        self.sender_token = ""
        self.channel_id = ""
        self.run_seq = 0
        self.results: dict[str, Any] = {"runs": []}
        self.me = psutil.Process()

    # --- measurement helpers
    def relay_cpu(self) -> float:
        return self.sampler.cpu_seconds() if self.sampler is not None else math.nan

    def gen_cpu(self) -> list[float]:
        """CPU seconds of the sender process, then of each receiver worker."""
        out = []
        for pid in [os.getpid(), *self.pool.pids()]:
            try:
                t = psutil.Process(pid).cpu_times()
                out.append(t.user + t.system)
            except psutil.Error:
                out.append(0.0)
        return out

    @staticmethod
    def machine_busy() -> float:
        """CPU-seconds used on the machine (every core): processes and the kernel's
        interrupt work (loopback networking lands there). Guest time is already in
        user time on Linux, and steal time was not ours."""
        t = psutil.cpu_times()
        busy = t.user + t.system
        for name in ("nice", "irq", "softirq"):
            busy += getattr(t, name, 0.0)
        return float(busy)

    async def quiesce(self, max_s: float = 20.0, below: float = 0.10) -> None:
        """Wait until the relay idles (< ``below`` of a core for two 0.5 s windows)."""
        if self.sampler is None:
            await asyncio.sleep(1.0)
            return
        t0, quiet = time.monotonic(), 0
        while time.monotonic() - t0 < max_s and quiet < 2:
            c0 = self.relay_cpu()
            await asyncio.sleep(0.5)
            quiet = quiet + 1 if (self.relay_cpu() - c0) / 0.5 < below else 0

    # --- setup
    async def setup(self) -> None:
        a = self.args
        api = self.api = Api(a.url, max_connections=max(64, a.inflight + 8))
        gw = await api.json("GET", "/gateway")
        gateway_url = gw["url"]
        log(f"gateway {gateway_url}")

        sem = asyncio.Semaphore(a.setup_concurrency)

        async def register(name: str) -> str:
            async with sem:
                body = await api.json(
                    "POST", "/auth/register", body={"username": name, "password": PASSWORD}
                )
                return str(body["token"])

        t0 = time.monotonic()
        sess = _rand(5)
        self.sender_token = await register(f"bench{sess}_s")
        self.poster = Poster(a.url, self.sender_token)
        tokens = await asyncio.gather(
            *(register(f"bench{sess}_r{i:04d}") for i in range(a.receivers))
        )
        t_reg = time.monotonic() - t0
        log(f"registered {a.receivers + 1} users in {t_reg:.1f}s")

        guild = await api.json("POST", "/guilds", self.sender_token, {"name": "Bench"})
        guild_id = str(guild["id"])
        channel_id = guild.get("system_channel_id")
        if not channel_id:
            channels = await api.json("GET", f"/guilds/{guild_id}/channels", self.sender_token)
            channel_id = next(c["id"] for c in channels if c.get("type") == 0)
        self.channel_id = str(channel_id)
        invite = await api.json(
            "POST",
            f"/channels/{self.channel_id}/invites",
            self.sender_token,
            {"max_age": 0, "max_uses": 0},
        )
        code = invite["code"]

        async def join(token: str) -> None:
            async with sem:
                await api.json("POST", f"/invites/{code}", token, {})

        t0 = time.monotonic()
        await asyncio.gather(*(join(t) for t in tokens))
        t_join = time.monotonic() - t0
        log(f"{a.receivers} receivers joined guild {guild_id} in {t_join:.1f}s")

        t0 = time.monotonic()
        self.pool.start(
            asyncio.get_running_loop(),
            list(tokens),
            gateway_url,
            guild_id,
            self.prefix,
            a.connect_concurrency,
            a.compression,
        )
        ok, failed = await self.pool.wait_ready(150 + 0.5 * a.receivers)
        t_conn = time.monotonic() - t0
        if self.pool.fatal:
            raise RuntimeError("receiver worker crashed:\n" + "\n".join(self.pool.fatal))
        errors = [e for _, _, s in self.pool.ready.values() for e in s.get("errors", [])]
        log(f"{ok}/{a.receivers} receivers READY on the gateway in {t_conn:.1f}s ({failed} failed)")
        for e in errors[:10]:
            log(f"  receiver error: {e}")
        if ok < a.receivers:
            raise RuntimeError(f"only {ok} of {a.receivers} receivers got READY")
        ready_bytes = sum(int(s.get("bytes", 0)) for _, _, s in self.pool.ready.values())
        self.results["setup"] = {
            "ready_kb_per_receiver": ready_bytes / 1024 / max(1, ok),
            "register_s": t_reg,
            "join_s": t_join,
            "gateway_connect_s": t_conn,
            "users": a.receivers + 1,
        }

    # --- one run
    async def send_run(
        self,
        label: str,
        count: int,
        rate: float | None,
        *,
        inflight: int,
        max_secs: float | None = None,
        drain_max: float = 10.0,
    ) -> dict[str, Any]:
        poster = self.poster
        assert poster is not None
        self.run_seq += 1
        n_recv = self.args.receivers
        run = Run(self.run_seq, label, rate, n_recv)
        stats0 = await self.pool.flush()  # late deliveries of earlier runs count as stale
        self.pool.run = run
        send_lat: list[float] = []
        send_errors: list[str] = []
        limited0, waited0 = poster.limited, poster.limited_wait
        path = f"/api/v10/channels/{self.channel_id}/messages"
        sem = asyncio.Semaphore(inflight)
        tasks: set[asyncio.Task[None]] = set()

        async def one(seq: int) -> None:
            nonce = f"{self.prefix}.{run.run_id}.{seq}"
            body = orjson.dumps({"content": f"[{nonce}] {FILLER}", "nonce": nonce})
            t0 = run.t_send[seq]
            try:
                status, content = await poster.post(path, body)
                if 200 <= status < 300:
                    send_lat.append(time.time() - t0)
                    run.accepted += 1
                else:
                    send_errors.append(f"HTTP {status}: {content[:200]!r}")
            except Exception as exc:
                send_errors.append(f"{type(exc).__name__}: {exc}"[:300])
            finally:
                sem.release()

        if self.sampler is not None:
            self.sampler.reset_window()
        c0, g0, m0 = self.relay_cpu(), self.gen_cpu(), self.machine_busy()
        start = time.time()
        sent = 0
        for i in range(count):
            if rate:
                delay = start + i / rate - time.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                else:
                    await asyncio.sleep(0)
            await sem.acquire()
            if max_secs is not None and time.time() - start > max_secs:
                sem.release()
                break
            run.t_send.append(time.time())
            task = asyncio.create_task(one(i))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            sent += 1
        t_last_start = time.time()
        if tasks:
            await asyncio.wait(set(tasks), timeout=60)
        t_sent = time.time()
        expected = run.accepted * n_recv
        while time.time() - t_sent < drain_max:
            if len(run.seen) >= expected:
                break
            await asyncio.sleep(0.02)
        stats1 = await self.pool.flush()
        self.pool.run = None
        t_end = time.time()
        c1, g1, m1 = self.relay_cpu(), self.gen_cpu(), self.machine_busy()
        gen_each = [(b - a) / max(1e-9, t_end - start) for a, b in zip(g0, g1, strict=False)]
        delivered = len(run.seen)
        missing = max(0, expected - delivered)
        lat = sorted(run.lat)
        lat_inf = lat + [math.inf] * missing
        sl = sorted(send_lat)
        wall = t_end - start
        if rate:
            achieved = sent / max(1e-9, (t_last_start - start) + 1.0 / rate)
        else:
            achieved = sent / max(1e-9, t_sent - start)
        span = (run.last_delivery or t_end) - start
        missing_receivers = 0
        if missing:
            per = [0] * n_recv
            for key in run.seen:
                per[key >> SEQ_BITS] += 1
            missing_receivers = sum(1 for n in per if n < run.accepted)

        def delta(name: str) -> int:
            return sum(
                int(stats1.get(w, {}).get(name, 0)) - int(stats0.get(w, {}).get(name, 0))
                for w in stats1
            )

        worker_errors = [
            e
            for w, s in stats1.items()
            for e in s.get("errors", [])[len(stats0.get(w, {}).get("errors", [])) :]
        ]
        res: dict[str, Any] = {
            "label": label,
            "receivers": n_recv,
            "target_rate": rate,
            "inflight": inflight,
            "msgs": sent,
            "accepted": run.accepted,
            "achieved_rate": achieved,
            "send_errors": len(send_errors),
            "send_error_examples": send_errors[:3],
            "rate_limited": poster.limited - limited0,
            "rate_limited_wait_s": poster.limited_wait - waited0,
            "send_p50_ms": 1000 * pct(sl, 50),
            "send_p99_ms": 1000 * pct(sl, 99),
            "expected": expected,
            "delivered": delivered,
            "missing": missing,
            "missing_receivers": missing_receivers,
            "duplicates": run.duplicates,
            "lat_p50": pct(lat_inf, 50),
            "lat_p95": pct(lat_inf, 95),
            "lat_p99": pct(lat_inf, 99),
            "lat_max": lat[-1] if lat else math.nan,
            "deliveries_per_s": delivered / max(1e-9, span),
            "wall_s": wall,
            "relay_cpu_util": (c1 - c0) / wall,
            "relay_cpu_s_per_1k": 1000 * (c1 - c0) / max(1, delivered),
            "gen_cpu_util": sum(gen_each),
            "gen_cpu_util_each": gen_each,
            # whatever else ran on the machine meanwhile (other benches, test suites...)
            "other_cpu_util": max(0.0, (m1 - m0 - (c1 - c0) - (sum(g1) - sum(g0))) / wall),
            "relay_rss_peak_mb": (self.sampler.window_peak / 2**20) if self.sampler else math.nan,
            "disconnects": delta("disconnects"),
            "resumes": delta("resume"),
            "invalid_sessions": delta("invalid_sessions"),
            "worker_errors": worker_errors[:5],
        }
        log(
            f"{label:<7} rate={rate or 'max'} ach={achieved:.1f}/s sent={sent} "
            f"send p50={res['send_p50_ms']:.1f}ms p99={res['send_p99_ms']:.1f}ms | "
            f"fan-out p50={fmt_s(res['lat_p50'])} p99={fmt_s(res['lat_p99'])} "
            f"missing={missing} | {res['deliveries_per_s']:.0f} deliv/s | "
            f"relay {100 * res['relay_cpu_util']:.0f}% gen "
            f"{'+'.join(f'{100 * g:.0f}' for g in gen_each)}% "
            f"other {100 * res['other_cpu_util']:.0f}% "
            f"{res['relay_rss_peak_mb']:.0f} MB"
        )
        if send_errors:
            log(f"  send errors ({len(send_errors)}), e.g. {send_errors[0]}")
        if res["disconnects"] or worker_errors:
            log(f"  receivers: {res['disconnects']} disconnects, {res['resumes']} resumes")
            for e in worker_errors[:5]:
                log(f"  receiver error: {e}")
        return res

    # --- modes
    async def warmup(self) -> None:
        r = await self.send_run("warmup", 5, 5.0, inflight=4, drain_max=15.0)
        if r["missing"] or r["send_errors"]:
            raise RuntimeError(
                f"warm-up: {r['missing']} of {r['expected']} deliveries missing, "
                f"{r['send_errors']} send errors {r['send_error_examples']}"
            )
        if self.sampler is not None:
            self.results["relay_rss_idle_mb"] = self.sampler.last / 2**20

    async def latency(self) -> dict[str, Any]:
        a = self.args
        await self.quiesce()
        r = await self.send_run("latency", a.messages, a.rate, inflight=256, drain_max=15.0)
        self.results["latency"] = r
        return r

    def step_pass(self, r: dict[str, Any]) -> bool:
        return bool(
            r["lat_p99"] <= P99_LIMIT
            and r["missing"] == 0
            and r["send_errors"] == 0
            and r["achieved_rate"] >= 0.9 * (r["target_rate"] or 0)
        )

    async def ladder(self) -> dict[str, Any]:
        a = self.args
        steps: list[dict[str, Any]] = []
        best: dict[str, Any] | None = None

        async def step(rate: float, tries: int) -> bool:
            nonlocal best
            for attempt in range(tries):
                await self.quiesce()
                count = max(8, round(rate * a.step_secs))
                r = await self.send_run("step", count, rate, inflight=256, drain_max=4.0)
                r["pass"] = self.step_pass(r)
                r["try"] = attempt + 1
                steps.append(r)
                if r["pass"]:
                    if best is None or r["deliveries_per_s"] > best["deliveries_per_s"]:
                        best = r
                    return True
            return False

        rates = list(a.ladder_rates) if a.ladder_rates else []
        if not rates:
            rate = a.ladder_start
            while rate <= a.ladder_max:
                rates.append(rate)
                rate *= 2
        lo, hi = None, None
        for rate in rates:
            if await step(rate, 2):  # one retry on a noisy box
                lo = rate
            else:
                hi = rate
                break
        if lo is not None and hi is not None and not a.ladder_rates:
            for _ in range(a.refine):
                mid = float(round(math.sqrt(lo * hi)))
                if mid <= lo or mid >= hi:
                    break
                if await step(mid, 1):
                    lo = mid
                else:
                    hi = mid
        out = {"steps": steps, "best": best, "first_fail_rate": hi}
        self.results["ladder"] = out
        return out

    async def flood(self) -> dict[str, Any]:
        a = self.args
        await self.quiesce()
        r = await self.send_run(
            "flood", 10**9, None, inflight=a.inflight, max_secs=a.flood_secs, drain_max=15.0
        )
        self.results["flood"] = r
        return r


def fmt_s(x: float) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    if math.isinf(x):
        return "lost"
    return f"{x * 1000:.1f}ms" if x < 1 else f"{x:.2f}s"


def baseline_for(n: int) -> tuple[int, dict[str, tuple[float, float]]]:
    key = min(SYNAPSE, key=lambda k: abs(k - n))
    return key, SYNAPSE[key]


def report(args: argparse.Namespace, bench: Bench, relay_info: dict[str, Any]) -> str:
    res = bench.results
    n = args.receivers
    lines: list[str] = []
    p = lines.append
    bar = "=" * 100
    p(bar)
    p(
        f"Nexus fan-out bench {time.strftime('%Y-%m-%d %H:%M')} | {os.cpu_count()} CPUs | "
        f"{n} receivers in {args.workers} worker process(es) | sender: 1, REST | "
        f"permessage-deflate {'offered' if args.compression else 'off'}"
    )
    p(f"relay: {relay_info.get('where')}")
    for note in relay_info.get("notes", []):
        p(f"note: {note}")
    s = res.get("setup", {})
    if s:
        p(
            f"setup: registered {s['users']} users in {s['register_s']:.1f}s, joined in "
            f"{s['join_s']:.1f}s, gateway READY for all in {s['gateway_connect_s']:.1f}s "
            f"({s['ready_kb_per_receiver']:.0f} KB of READY+GUILD_CREATE each)"
        )
    if "relay_rss_idle_mb" in res:
        p(f"relay RSS with all {n} receivers connected: {res['relay_rss_idle_mb']:.0f} MB")
    p("-" * 100)
    hdr = (
        f"{'run':<8}{'msg/s':>7}{'ach':>8}{'deliv/s':>10}{'p50':>9}{'p95':>9}{'p99':>9}"
        f"{'max':>9}{'miss':>6}{'429':>5}{'relay':>7}{'ms/1k':>7}{'gen':>6}{'other':>7}"
        f"{'RSS MB':>8}"
        f"{'sendp99':>9}{'pass':>6}"
    )

    def row(r: dict[str, Any]) -> str:
        target = "max" if r["target_rate"] is None else f"{r['target_rate']:g}"
        passed = "-" if "pass" not in r else ("yes" if r["pass"] else "NO")
        return (
            f"{r['label']:<8}{target:>7}{r['achieved_rate']:>8.1f}{r['deliveries_per_s']:>10.0f}"
            f"{fmt_s(r['lat_p50']):>9}{fmt_s(r['lat_p95']):>9}{fmt_s(r['lat_p99']):>9}"
            f"{fmt_s(r['lat_max']):>9}{r['missing']:>6}{r['rate_limited']:>5}"
            f"{100 * r['relay_cpu_util']:>6.0f}%{1000 * r['relay_cpu_s_per_1k']:>7.0f}"
            f"{100 * r['gen_cpu_util']:>5.0f}%{100 * r.get('other_cpu_util', 0.0):>6.0f}%"
            f"{r['relay_rss_peak_mb']:>8.0f}"
            f"{r['send_p99_ms']:>7.0f}ms{passed:>6}"
        )

    p(hdr)
    all_runs = []
    if "latency" in res:
        all_runs.append(res["latency"])
    if "ladder" in res:
        all_runs.extend(res["ladder"]["steps"])
    if "flood" in res:
        all_runs.append(res["flood"])
    for r in all_runs:
        p(row(r))
    p(
        "deliv/s = distinct (message, receiver) deliveries / (last delivery - first send); "
        "p50..max = send->receive;"
    )
    p(
        "relay = relay CPU (% of one core); ms/1k = relay CPU-ms per 1000 deliveries; "
        "gen = load generator CPU (sender + receiver processes); other = the rest of the "
        "machine incl. kernel interrupt work (should be small); RSS = relay tree peak"
    )
    p("-" * 100)
    bn, base = baseline_for(n)
    same = " (same receiver count)" if bn == n else f" (nearest baseline: {bn} receivers)"
    p(f"Against Synapse 1.163.2, 2-core machine, 2026-11-26{same}; ratio vs Synapse's best run:")
    targets: list[str] = []
    if "latency" in res:
        r = res["latency"]
        lo, hi = base["p99_at_10"]
        ratio = lo / r["lat_p99"] if r["lat_p99"] > 0 else math.inf
        p(
            f"  fan-out p99, {r['msgs']} msgs at {r['target_rate']:g} msg/s: Nexus "
            f"{fmt_s(r['lat_p99'])} vs Synapse {lo:g}-{hi:g} s at 10 msg/s -> {ratio:,.0f}x lower"
            + ("" if r["target_rate"] == 10 else "  (different rate: not comparable)")
        )
        if n == 200 and r["target_rate"] == 10:
            ok = r["lat_p99"] < TARGET_P99_S and r["missing"] == 0
            targets.append(
                f"p99 < {TARGET_P99_S * 1000:.0f} ms at 10 msg/s x 200: "
                f"{'MET' if ok else 'NOT MET'} ({fmt_s(r['lat_p99'])}, {r['missing']} missing)"
            )
    if "ladder" in res:
        best = res["ladder"]["best"]
        lo, hi = base["sustained"]
        if best is None:
            p("  max sustained deliveries/s with p99 <= 1 s: no step passed")
            sustained = 0.0
        else:
            sustained = best["deliveries_per_s"]
            p(
                f"  max sustained with p99 <= 1 s: {best['target_rate']:g} msg/s = "
                f"{sustained:,.0f} deliveries/s (p99 {fmt_s(best['lat_p99'])}) vs Synapse "
                f"{lo:g}-{hi:g} -> {sustained / hi:,.0f}x"
            )
            if res["ladder"]["first_fail_rate"] is None:
                p("    (every ladder step passed: raise --ladder-max to find the ceiling)")
        targets.append(
            f">= {TARGET_DELIVERIES:,} deliveries/s sustained with p99 <= 1 s: "
            f"{'MET' if sustained >= TARGET_DELIVERIES else 'NOT MET'} ({sustained:,.0f})"
        )
    if "flood" in res:
        r = res["flood"]
        lo, hi = base["flood"]
        p(
            f"  flood ({r['inflight']} sends in flight): {r['achieved_rate']:.0f} msg/s "
            f"accepted, {r['deliveries_per_s']:,.0f} deliveries/s, p99 {fmt_s(r['lat_p99'])}, "
            f"{r['missing']} missing vs Synapse {lo:g}-{hi:g} deliveries/s "
            f"-> {r['deliveries_per_s'] / hi:,.0f}x"
        )
    peak = bench.sampler.peak / 2**20 if bench.sampler else math.nan
    if not math.isnan(peak):
        lo, hi = base["rss_mb"]
        idle = res.get("relay_rss_idle_mb", math.nan)
        ratio = lo / peak
        how = f"{ratio:.1f}x smaller" if ratio >= 1 else f"{1 / ratio:.1f}x larger"
        p(
            f"  relay RSS: {idle:.0f} MB with receivers connected, peak {peak:.0f} MB over the "
            f"bench vs Synapse {lo:g}-{hi:g} MB connected -> {how} at peak"
        )
    else:
        p("  relay RSS: not sampled (relay pid unknown: pass --relay-pid)")
    for t in targets:
        p(f"target: {t}")
    p(bar)
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        description="Nexus relay fan-out bench (see the module docstring).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    ap.add_argument("--receivers", type=int, default=200, help="gateway receivers")
    ap.add_argument("--rate", type=float, default=10.0, help="latency mode: msg/s")
    ap.add_argument("--messages", type=int, default=200, help="latency mode: messages")
    ap.add_argument("--latency", action="store_true", help="fixed-rate latency run")
    ap.add_argument("--ladder", action="store_true", help="throughput ladder")
    ap.add_argument("--flood", action="store_true", help="closed-loop flood")
    ap.add_argument("--all", action="store_true", help="latency, ladder and flood")
    ap.add_argument(
        "--duration",
        type=float,
        default=None,
        help="seconds per ladder step (default 8) and of the flood (default 10)",
    )
    ap.add_argument("--ladder-start", type=float, default=10.0, help="first ladder rate")
    ap.add_argument("--ladder-max", type=float, default=2560.0, help="highest ladder rate")
    ap.add_argument(
        "--ladder-rates", type=float, nargs="+", default=None, help="explicit ladder rates"
    )
    ap.add_argument("--refine", type=int, default=2, help="bisection steps after a failure")
    ap.add_argument("--inflight", type=int, default=16, help="flood: POSTs in flight")
    ap.add_argument("--workers", type=int, default=None, help="receiver processes (1-2)")
    ap.add_argument("--connect-concurrency", type=int, default=16, help="per worker")
    ap.add_argument(
        "--compression",
        action="store_true",
        help="receivers offer permessage-deflate, as browsers and websockets' defaults do",
    )
    ap.add_argument("--setup-concurrency", type=int, default=8, help="registrations in flight")
    ap.add_argument("--url", default=None, help="use this running relay (http://host:port)")
    ap.add_argument("--relay-pid", type=int, default=None, help="with --url: pid for RSS/CPU")
    ap.add_argument("--server", default=None, help="nexus-server executable")
    ap.add_argument("--relay-arg", action="append", default=[], help="extra nexus-server argument")
    ap.add_argument("--keep-data", action="store_true", help="keep the relay's data dir and log")
    ap.add_argument("--quick", action="store_true", help="~20 s smoke run of every mode")
    ap.add_argument("--json", default=None, help="also write the results here")
    ap.add_argument("--timeout", type=float, default=1800.0, help="give up after this long")
    args = ap.parse_args(argv)
    if args.quick:
        args.receivers = 20 if "--receivers" not in (argv or sys.argv) else args.receivers
        args.messages, args.rate = 50, 20.0
        args.latency = args.ladder = args.flood = True
        args.ladder_rates = args.ladder_rates or [20.0, 80.0]
        args.duration = args.duration or 2.0
        args.inflight = min(args.inflight, 8)
    if args.all:
        args.latency = args.ladder = args.flood = True
    if not (args.latency or args.ladder or args.flood):
        args.latency = True
    args.step_secs = args.duration or 8.0
    args.flood_secs = args.duration or 10.0
    if args.workers is None:
        args.workers = 1 if args.receivers < 50 else 2
    args.workers = max(1, min(args.workers, args.receivers))
    if args.receivers < 1 or args.receivers >= 10_000:
        ap.error("--receivers must be 1..9999")
    return args


async def amain(args: argparse.Namespace, bench: Bench) -> None:
    try:
        async with asyncio.timeout(args.timeout):
            await bench.setup()
            await bench.warmup()
            if args.latency:
                await bench.latency()
            if args.ladder:
                await bench.ladder()
            if args.flood:
                await bench.flood()
    finally:
        if bench.api is not None:
            await bench.api.close()
        if bench.poster is not None:
            bench.poster.close()


def _sigterm(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _sigterm)
    relay: _relay.Relay | None = None
    pool = ReceiverPool(args.workers)
    bench = Bench(args, pool)
    relay_info: dict[str, Any] = {"notes": []}
    rc = 0
    try:
        if args.url is None:
            relay = _relay.Relay(args.server, extra_args=args.relay_arg, keep_data=args.keep_data)
            log("starting the relay ...")
            t0 = time.monotonic()
            args.url = relay.start()
            log(f"relay pid {relay.pid} on {args.url} answered in {time.monotonic() - t0:.1f}s")
            bench.relay_pid = relay.pid
            relay_info["where"] = " ".join(relay.argv) + " (started by the bench, SQLite)"
            relay_info["notes"] = relay.notes
        else:
            args.url = args.url.rstrip("/")
            port = httpx.URL(args.url).port or 80
            bench.relay_pid = args.relay_pid or _relay.find_listener_pid(port)
            relay_info["where"] = f"{args.url} (already running, pid {bench.relay_pid})"
        if bench.relay_pid is not None:
            bench.sampler = _relay.TreeSampler(bench.relay_pid)
            bench.sampler.start()
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(amain(args, bench))
    except KeyboardInterrupt:
        log("interrupted")
        rc = 130
    except Exception as exc:
        log(f"bench failed: {type(exc).__name__}: {exc}")
        if not isinstance(exc, RuntimeError):
            traceback.print_exc()
        rc = 1
    finally:
        pool.stop()
        if bench.sampler is not None:
            bench.sampler.stop()
        if relay is not None:
            alive = relay.proc is not None and relay.proc.poll() is None
            if rc != 0 or not alive:
                log(
                    "relay log tail"
                    + ("" if alive else " (relay is dead!)")
                    + ":\n"
                    + relay.log_tail(30)
                )
            relay.stop()
            relay_info["notes"] = relay.notes
    if bench.results.get("latency") or bench.results.get("ladder") or bench.results.get("flood"):
        text = report(args, bench, relay_info)
        print(text, flush=True)
        if args.json:
            with open(args.json, "wb") as f:
                f.write(
                    orjson.dumps(
                        {"args": vars(args), "results": bench.results, "report": text},
                        option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY,
                        default=str,
                    )
                )
    return rc


if __name__ == "__main__":
    sys.exit(main())
