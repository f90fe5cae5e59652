"""Desktop cold start with a warm cache, and memory with a 10,000-message community.

An account's encrypted store already holds a community (20 channels of 500 messages, the
store's per-channel cap). The app (``nexus --data DIR --passphrase-stdin``) is started
in a fresh process on Qt's offscreen platform; the figure is the wall time from just
before the process is spawned to the first paint of the main window with messages shown.
The process's CPU time at first paint is reported too: unlike the wall time, the
machine's other load does not inflate it (``uptime`` before a run says how loaded it is).
Then every channel is opened and the process's RSS is read. Measured twice: with the
relay running ("connected") and with it stopped ("offline").

    .venv/bin/python bench/desktop_startup.py [--runs 3] [--bytecode-cache]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

from nexus_client import Client
from nexus_client.store import LocalStore
from nexus_desktop.hosting import HostedRelay

PASSPHRASE = "bench passphrase"
CHANNELS = 20
PER_CHANNEL = 500  # the local store keeps the newest 500 of each channel

# Runs inside the measured process: the real ``nexus`` entry point, with a probe on the
# main window's first show that reports when messages are painted and the RSS after
# opening every channel. The window's first paint also starts the connection, so
# "connected" means the relay is up and reached right after that paint.
CHILD = r"""
import asyncio, json, sys, time
import psutil
from nexus_desktop import app, store_keys

# The launcher starts deriving the store keys before it imports Qt and the SDK; the
# probe hooks the main window right after that, where the app's own imports begin, so
# the imports happen in the app's order (importing the window first would put them all
# before the key derivation starts).
derive = store_keys.derive_saved_keys

def derive_then_hook(*args, **kwargs):
    global imported, show
    derivations = derive(*args, **kwargs)
    from nexus_desktop.views import main_window

    show = main_window.MainWindow.show
    main_window.MainWindow.show = probe
    imported = time.time()
    return derivations

def probe(window):
    global shown
    shown = time.time()
    show(window)

    async def measure():
        while window.message_view.model.rowCount() == 0:
            await asyncio.sleep(0.001)
        window.repaint()  # a synchronous paint of the whole window, messages included
        first_paint = time.time()
        cpu_first = time.process_time()
        cpu_main = time.thread_time()  # the GUI thread's own: the start's critical path
        rss_first = psutil.Process().memory_info().rss
        for channel in window.session.channels(window.guild_id):
            if channel.type == 0:
                window.channel_list.select_channel(channel.id)
                window.repaint()
                await asyncio.sleep(0)
        await asyncio.sleep(0.2)
        import gc; gc.collect()
        rss_all = psutil.Process().memory_info().rss
        print(json.dumps({"imported": imported, "shown": shown, "first_paint": first_paint,
                          "cpu_first": cpu_first, "cpu_main": cpu_main,
                          "rss_first": rss_first, "rss_all": rss_all,
                          "rows": window.message_view.model.rowCount(),
                          "online": any(a.client.online for a in window.session.accounts)}),
              flush=True)
        window.close()

    asyncio.ensure_future(measure())

store_keys.derive_saved_keys = derive_then_hook
sys.exit(app.main(sys.argv[1:]))
"""


async def prepare(data_dir: Path, relay: HostedRelay) -> None:
    """A real account and community on the relay; 10,000 messages in the local store."""
    url = await relay.start()
    async with Client(url) as client:
        user = await client.register("alice", "correct horse battery")
        guild = await client.create_guild("Bench Community")
        channels = [c for c in await client.fetch_channels(guild.id) if c.type == 0]
        while len(channels) < CHANNELS:
            channels.append(await client.create_channel(guild.id, f"channel-{len(channels)}"))
        guild = await client.fetch_guild(guild.id)
        token = client.token
    assert token is not None
    netloc = urlsplit(url).netloc
    store_path = data_dir / "accounts" / netloc.replace(":", "_") / "alice.db"
    store = LocalStore.open(store_path, passphrase=PASSPHRASE, keyring_username=f"{netloc}/x")
    store.set_meta("token", token)
    store.set_meta("user", json.dumps(user.wire()))
    store.save_guilds([guild.wire()])
    store.save_channels(guild.id, [c.wire() for c in channels])
    author = user.wire()
    for number, channel in enumerate(channels):
        base = (channel.id << 1) + 1_000_000
        store.save_messages(
            channel.id,
            [
                {
                    "id": str(base + i),
                    "channel_id": str(channel.id),
                    "author": author,
                    "content": f"message {i} in #{channel.name}: some **markdown** and `code`",
                    "timestamp": "2026-11-26T12:00:00+00:00",
                    "type": 0,
                }
                for i in range(PER_CHANNEL)
            ],
        )
        del number
    store.close()
    entry = {"relay_url": url, "username": "alice", "user_id": str(user.id)}
    (data_dir / "accounts.json").write_text(json.dumps([entry]))


def measure(data_dir: Path, pycache: Path | None = None) -> dict[str, float]:
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    if pycache is not None:
        # Compiled modules kept (in a folder of the bench's own), as an installed app
        # has them; without, every start compiles the project's sources again.
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(pycache)
    started = time.time()
    result = subprocess.run(
        [sys.executable, "-c", CHILD, "--data", str(data_dir), "--passphrase-stdin"],
        input=PASSPHRASE + "\n",
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    if not lines:
        raise SystemExit(f"the app printed no figures:\n{result.stdout}\n{result.stderr[-3000:]}")
    figures = json.loads(lines[-1])
    return {
        "imported_s": figures["imported"] - started,
        "shown_s": figures["shown"] - started,
        "start_s": figures["first_paint"] - started,
        "cpu_s": figures["cpu_first"],
        "cpu_main_s": figures["cpu_main"],
        "rss_first_mb": figures["rss_first"] / 2**20,
        "rss_all_mb": figures["rss_all"] / 2**20,
        "rows": figures["rows"],
        "online": figures["online"],
    }


def report(label: str, runs: list[dict[str, float]]) -> None:
    start = statistics.median(r["start_s"] for r in runs)
    rss = statistics.median(r["rss_all_mb"] for r in runs)
    first = statistics.median(r["rss_first_mb"] for r in runs)
    imported = statistics.median(r["imported_s"] for r in runs)
    shown = statistics.median(r["shown_s"] for r in runs)
    cpu = statistics.median(r["cpu_s"] for r in runs)
    cpu_main = statistics.median(r["cpu_main_s"] for r in runs)
    print(
        f"{label:<10} start to first paint with messages: {start:.3f} s (median of {len(runs)}; "
        f"target < 0.8 s)   RSS at first paint {first:.0f} MB, after opening all "
        f"{CHANNELS} channels ({CHANNELS * PER_CHANNEL:,} messages): {rss:.0f} MB "
        f"(target < 180 MB)   online={runs[-1]['online']}"
    )
    print(
        f"{'':<10} of which: interpreter + launcher + the window's imports {imported:.3f} s, "
        f"to the window's show() {shown:.3f} s (QApplication, accounts, window built); "
        f"CPU time to first paint {cpu:.3f} s (all threads; a loaded machine does not add), "
        f"of it the GUI thread's {cpu_main:.3f} s (work other threads do not delay)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--bytecode-cache",
        action="store_true",
        help="let the app keep its compiled modules between runs (as an installed app "
        "does); by default the environment decides (PYTHONDONTWRITEBYTECODE)",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="nexus-desktop-bench-") as tmp:
        data_dir = Path(tmp) / "app"
        relay = HostedRelay(Path(tmp) / "relay")
        try:
            asyncio.run(prepare(data_dir, relay))
            pycache = Path(tmp) / "pycache" if args.bytecode_cache else None
            # Warm the OS file cache (and the bytecode cache if kept): "cold start" is
            # the app's, not the disk's.
            measure(data_dir, pycache)
            connected = [measure(data_dir, pycache) for _ in range(args.runs)]
        finally:
            relay.stop()
        offline = [measure(data_dir, pycache) for _ in range(args.runs)]
    print("Floors on this machine (DESIGN.md): PySide6 100k-row list 0.45 s / ~100 MB;")
    print("  Nheko (Qt, C++) 0.33 s / 181 MB; Gajim (Python, GTK) 0.74 s / 111 MB.")
    report("connected", connected)
    report("offline", offline)


if __name__ == "__main__":
    main()
