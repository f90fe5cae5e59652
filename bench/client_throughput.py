"""Client SDK benchmark: what ONE ``nexus_client.Client`` can send, receive, hold in memory
and queue offline, against a real relay on loopback.

  (a) send: sequential ``post_message`` for --duration s, then K concurrent senders
      sharing that one client (--concurrency, default 4 and 16);
  (b) receive: two other clients flood the channel; the receiver counts ``message``
      events per second off its gateway (cache update + model + handler task each);
  (c) memory: --messages (10,000) real messages, fetched from the relay as history
      pages, put in a ``ClientCache`` (tracemalloc and RSS delta) and saved in a
      SQLCipher ``LocalStore`` (RSS delta, file size, time to load a channel's latest 50);
  (d) outbox: --outbox (1,000) messages enqueued while offline, then the time from
      ``start()`` until all are delivered.

It starts its own relay (``nexus-server --no-rate-limits`` on a free port, fresh SQLite
data dir, ``bench/_relay.py``) and stops it at the end, also on error or Ctrl-C.

    .venv/bin/python bench/client_throughput.py --quick   # ~20 s
    .venv/bin/python bench/client_throughput.py           # ~1.5 min

Baseline for the send path: Synapse sustains ~5 msg/s into one room with fan-out
p99 <= 1 s (shared/bench/synapse/README.md). discord.py is not installed here, so no
other client library is measured: the other figures are Nexus's own.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import logging
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Awaitable, Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

if __package__:
    from . import _relay
else:
    import _relay

from nexus_client import Client, Intents  # noqa: E402
from nexus_client._cache import ClientCache  # noqa: E402
from nexus_client.store import LocalStore  # noqa: E402
from nexus_protocol.models import Message  # noqa: E402

PASSWORD = "bench-password-0123"
PASSPHRASE = "bench passphrase, not a secret"
BODY = "lorem ipsum dolor sit amet " * 3  # ~ the Synapse bench's message body
CHANNELS = 20  # 20 x 500: within the store's (500) and the cache's (1,000) per-channel cap
SYNAPSE_ROOM_RATE = "~5 msg/s per room (Synapse, p99 <= 1 s)"
INTENTS = Intents.GUILDS | Intents.GUILD_MESSAGES | Intents.MESSAGE_CONTENT


@dataclass
class Row:
    measure: str
    value: str
    baseline: str = ""


def rss() -> int:
    return int(psutil.Process().memory_info().rss)


def mib(n: float) -> str:
    return f"{n / 2**20:,.1f} MiB"


class Traffic:
    """Spreads what is sent over the bench's channels, round robin, and counts it."""

    def __init__(self, channels: list[int]) -> None:
        self.channels = channels
        self.sent = dict.fromkeys(channels, 0)
        self._next = 0

    def channel(self) -> int:
        channel = self.channels[self._next % len(self.channels)]
        self._next += 1
        self.sent[channel] += 1
        return channel


async def for_duration(
    duration: float, workers: int, send: Callable[[int], Awaitable[None]]
) -> tuple[int, float]:
    """Run ``workers`` closed loops of ``send`` for ``duration`` s; (count, elapsed)."""
    count = 0
    deadline = time.perf_counter() + duration

    async def loop(worker: int) -> None:
        nonlocal count
        while time.perf_counter() < deadline:
            await send(worker)
            count += 1

    start = time.perf_counter()
    async with asyncio.TaskGroup() as group:
        for worker in range(workers):
            group.create_task(loop(worker))
    return count, time.perf_counter() - start


async def setup(url: str) -> tuple[Client, Client, int, list[int]]:
    alice = Client(url, intents=INTENTS)
    bob = Client(url, intents=INTENTS)
    await alice.register(f"alice{os.getpid()}", PASSWORD)
    await bob.register(f"bob{os.getpid()}", PASSWORD)
    guild = await alice.create_guild("Client bench")
    assert guild.system_channel_id is not None
    channels = [guild.system_channel_id]
    for number in range(1, CHANNELS):
        channels.append((await alice.create_channel(guild.id, f"room-{number}")).id)
    await bob.join((await alice.create_invite(guild.system_channel_id)).code)
    return alice, bob, guild.id, channels


async def bench_send(
    alice: Client, traffic: Traffic, duration: float, concurrency: list[int]
) -> list[Row]:
    async def send(_worker: int) -> None:
        await alice.post_message(traffic.channel(), BODY)

    await for_duration(0.5, 1, send)  # warm the connection pool
    rows = []
    count, elapsed = await for_duration(duration, 1, send)
    rows.append(
        Row(
            "(a) send, sequential post_message",
            f"{count / elapsed:,.0f} msg/s ({1000 * elapsed / count:.1f} ms each)",
            SYNAPSE_ROOM_RATE,
        )
    )
    for workers in concurrency:
        count, elapsed = await for_duration(duration, workers, send)
        rows.append(
            Row(
                f"(a) send, {workers} concurrent in one client",
                f"{count / elapsed:,.0f} msg/s",
                SYNAPSE_ROOM_RATE,
            )
        )
    return rows


def flood(url: str, token: str, channels: list[int], duration: float) -> dict[int, int]:
    """In a child process: two clients of alice, 8 POSTs in flight each, for ``duration``."""

    async def main() -> dict[int, int]:
        traffic = Traffic(channels)
        flooders = [Client(url, token=token, intents=INTENTS) for _ in range(2)]
        try:

            async def send(worker: int) -> None:
                await flooders[worker % 2].post_message(traffic.channel(), BODY)

            await for_duration(duration, 16, send)
        finally:
            for flooder in flooders:
                await flooder.close()
        return traffic.sent

    return asyncio.run(main())


async def bench_receive(
    url: str, alice: Client, bob: Client, traffic: Traffic, duration: float
) -> list[Row]:
    arrivals: list[float] = []
    expected = float("inf")
    all_in = asyncio.Event()

    @bob.listen("message")
    async def count(_message: Message) -> None:
        arrivals.append(time.perf_counter())
        if len(arrivals) >= expected:
            all_in.set()

    await bob.start()
    # The flood comes from another process, so this one's CPU is the receiver's alone.
    assert alice.token is not None
    me = psutil.Process()
    cpu_before = sum(me.cpu_times()[:2])
    loop = asyncio.get_running_loop()
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        sent_to = await loop.run_in_executor(
            pool, flood, url, alice.token, traffic.channels, duration
        )
    for channel, n in sent_to.items():
        traffic.sent[channel] += n
    sent = expected = sum(sent_to.values())
    if len(arrivals) >= sent:
        all_in.set()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(all_in.wait(), 15)
    cpu = sum(me.cpu_times()[:2]) - cpu_before
    received = len(arrivals)
    span = arrivals[-1] - arrivals[0] if received > 1 else float("nan")
    lost = "0 lost" if received == sent else f"{sent - received:,} MISSING"
    return [
        Row(
            "(b) receive, message events at one client",
            f"{received / span:,.0f} msg/s = the flood's rate ({received:,} of {sent:,}, {lost})",
            "flood from another process, 16 in flight",
        ),
        Row(
            "(b) receiver CPU per message event",
            f"{1e6 * cpu / max(received, 1):.0f} µs (whole process) "
            f"= ceiling {received / cpu:,.0f} msg/s per core",
        ),
    ]


async def top_up(alice: Client, traffic: Traffic, per_channel: int) -> None:
    """Send until every channel holds ``per_channel`` messages."""
    todo = [c for c, n in traffic.sent.items() for _ in range(max(0, per_channel - n))]

    async def send(worker: int) -> None:
        while todo:
            channel = todo.pop()
            await alice.post_message(channel, BODY)
            traffic.sent[channel] += 1

    async with asyncio.TaskGroup() as group:
        for worker in range(16):
            group.create_task(send(worker))


async def fetch_wire(alice: Client, channels: list[int], per_channel: int) -> dict[int, list[Any]]:
    """The newest ``per_channel`` messages of each channel, as the relay sends them."""
    pages: dict[int, list[Any]] = {}
    for channel in channels:
        got: list[Any] = []
        before: str | None = None
        while len(got) < per_channel:
            params: dict[str, Any] = {"limit": min(100, per_channel - len(got))}
            if before:
                params["before"] = before
            page = await alice.http.request("GET", f"/channels/{channel}/messages", params=params)
            if not page:
                break
            got.extend(page)
            before = page[-1]["id"]
        pages[channel] = got
    return pages


def bench_cache(pages: dict[int, list[Any]]) -> list[Row]:
    wire = [m for channel in pages.values() for m in reversed(channel)]  # oldest first
    gc.collect()
    before = rss()
    start = time.perf_counter()
    cache = ClientCache()
    for message in wire:
        cache.apply("MESSAGE_CREATE", message)
    elapsed = time.perf_counter() - start
    gc.collect()
    rss_delta = rss() - before
    cached = sum(len(c) for c in cache.messages.values())
    del cache
    gc.collect()

    tracemalloc.start()
    cache = ClientCache()
    for message in wire:
        cache.apply("MESSAGE_CREATE", message)
    gc.collect()
    traced, _peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    del cache
    gc.collect()
    return [
        Row(
            f"(c) ClientCache, {cached:,} messages",
            f"tracemalloc {mib(traced)} ({traced / cached / 1024:.1f} KiB/msg), "
            f"RSS +{mib(rss_delta)}",
        ),
        Row(
            "(c) MESSAGE_CREATE into the cache (CPU)",
            f"{1e6 * elapsed / len(wire):.0f} µs each = ceiling {len(wire) / elapsed:,.0f} msg/s",
        ),
    ]


def bench_store(pages: dict[int, list[Any]], workdir: Path) -> list[Row]:
    path = workdir / "store.db"
    gc.collect()
    before = rss()
    store = LocalStore.open(path, passphrase=PASSPHRASE)
    start = time.perf_counter()
    for channel, messages in pages.items():
        for offset in range(0, len(messages), 100):  # as fetch_messages saves them
            store.save_messages(channel, messages[offset : offset + 100])
    save_time = time.perf_counter() - start
    gc.collect()
    rss_delta = rss() - before
    saved = sum(len(store.messages(c, limit=10_000)) for c in pages)
    store.close()
    size = sum(f.stat().st_size for f in workdir.glob("store.db*"))

    channel = next(iter(pages))
    start = time.perf_counter()
    store = LocalStore.open(path, passphrase=PASSPHRASE)
    opened = time.perf_counter() - start

    def latest_50() -> float:
        start = time.perf_counter()
        loaded = [Message.model_validate(m) for m in store.messages(channel, limit=50)]
        assert len(loaded) == 50
        return time.perf_counter() - start

    cold = latest_50()
    warm = statistics.median(latest_50() for _ in range(20))
    store.close()
    return [
        Row(
            f"(c) LocalStore (SQLCipher), {saved:,} messages",
            f"RSS +{mib(rss_delta)}, file {mib(size)} ({size / saved / 1024:.1f} KiB/msg), "
            f"saved in {save_time:.2f} s",
        ),
        Row(
            "(c) store: latest 50 of a channel",
            f"{1000 * cold:.1f} ms first after open, {1000 * warm:.1f} ms warm "
            f"(open incl. scrypt {1000 * opened:.0f} ms)",
        ),
    ]


async def bench_outbox(url: str, token: str, channel: int, count: int, workdir: Path) -> list[Row]:
    store = LocalStore.open(workdir / "outbox.db", passphrase=PASSPHRASE)
    client = Client(url, token=token, intents=INTENTS, store=store)
    delivered = 0
    all_sent = asyncio.Event()

    @client.listen("outbox_sent")
    async def sent(_pending: Any, _message: Message) -> None:
        nonlocal delivered
        delivered += 1
        if delivered == count:
            all_sent.set()

    try:
        start = time.perf_counter()
        for number in range(count):  # not started: offline
            await client.send_message(channel, f"queued {number}")
        enqueued = time.perf_counter() - start
        start = time.perf_counter()
        await client.start()
        await asyncio.wait_for(all_sent.wait(), 120)
        flushed = time.perf_counter() - start
        assert client.outbox is not None and not client.outbox.has_pending()
    finally:
        await client.close()  # closes the store too
    return [
        Row(
            f"(d) outbox: enqueue {count:,} offline",
            f"{enqueued:.2f} s ({1e6 * enqueued / count:.0f} µs each, on disk)",
        ),
        Row(
            f"(d) outbox: flush {count:,} after start()",
            f"{flushed:.2f} s = {count / flushed:,.0f} msg/s, in order, once",
            SYNAPSE_ROOM_RATE,
        ),
    ]


def print_table(rows: list[Row], header: str) -> None:
    widths = [max(len(r.measure) for r in rows), max(len(r.value) for r in rows)]
    print(f"\n{header}\n")
    print(f"| {'measure':<{widths[0]}} | {'Nexus client':<{widths[1]}} | baseline |")
    print(f"|{'-' * (widths[0] + 2)}|{'-' * (widths[1] + 2)}|---|")
    for row in rows:
        print(f"| {row.measure:<{widths[0]}} | {row.value:<{widths[1]}} | {row.baseline} |")


async def run(args: argparse.Namespace, url: str, workdir: Path) -> list[Row]:
    alice, bob, _guild, channels = await setup(url)
    traffic = Traffic(channels)
    per_channel = args.messages // CHANNELS
    rows: list[Row] = []
    try:
        print("(a) send …", flush=True)
        rows += await bench_send(alice, traffic, args.duration, args.concurrency)
        print("(b) receive …", flush=True)
        rows += await bench_receive(url, alice, bob, traffic, args.duration)
        await bob.close()
        print(f"(c) sending up to {per_channel * CHANNELS:,} messages to cache …", flush=True)
        await top_up(alice, traffic, per_channel)
        pages = await fetch_wire(alice, channels, per_channel)
        rows += bench_cache(pages)
        rows += bench_store(pages, workdir)
        del pages
        print("(d) outbox …", flush=True)
        assert alice.token is not None
        rows += await bench_outbox(url, alice.token, channels[0], args.outbox, workdir)
    finally:
        await alice.close()
        await bob.close()
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="~20 s smoke run")
    parser.add_argument("--duration", type=float, default=8.0, help="seconds per rate phase")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[4, 16])
    parser.add_argument("--messages", type=int, default=10_000, help="messages to cache")
    parser.add_argument("--outbox", type=int, default=1000, help="messages queued offline")
    args = parser.parse_args()
    if args.quick:
        args.duration, args.concurrency, args.messages = 2.0, [16], 2_000
    logging.basicConfig(level=logging.ERROR)

    relay = _relay.Relay()
    started = time.perf_counter()
    try:
        url = relay.start()
        print(f"relay {url} (pid {relay.pid}, rate limits off)", flush=True)
        with tempfile.TemporaryDirectory(prefix="nexus-client-bench-") as tmp:
            rows = asyncio.run(run(args, url, Path(tmp)))
    except BaseException:
        print("relay log tail:\n" + relay.log_tail(), file=sys.stderr)
        raise
    finally:
        relay.stop()
    cpus = psutil.cpu_count() or 0
    print_table(
        rows,
        f"Nexus client SDK, one Client, {cpus}-core machine, loopback relay (SQLite), "
        f"{time.perf_counter() - started:.0f} s run",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
