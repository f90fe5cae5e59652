"""Voice SFU benchmark: CPU and memory of one SFU worker under talking rooms.

Scenarios (each talker sends 50 packets/s of 100-byte client → SFU payloads):

  10 all talking           loudest-5 forwarding        target < 30% of a core
  25 present, 5 talking    loudest-5 forwarding        target < 30% of a core
  25 all talking           loudest-5 forwarding        vs Mumble: 38% of a core for 25 talkers
  25 all talking           forwarding to all (24 each) for comparison

The SFU worker is started by ``VoiceSupervisor`` exactly as the relay starts it; its CPU is
``psutil`` over ``--seconds`` (10) after a 2 s warm-up, as a % of one core. The participants
are real aiortc peers (DTLS-SRTP on loopback) in ``--generators`` separate processes, so
the load never shares the SFU's process; a peer only counts what it receives (no decoder).
The machine has two cores: SFU and load generators compete for them, which the
"packets in/s" column makes visible (it should be talkers x 50).

    .venv/bin/python bench/voice_sfu.py
    .venv/bin/python bench/voice_sfu.py --seconds 5 --json out.json

``run_sfu_bench()`` returns the figures as a dict for wrapper scripts.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nexus_protocol.voice_media import pack_talker_payload
from nexus_server.voice import VoiceSupervisor

MUMBLE_25_TALKERS_CPU = 38.0
TARGET_CPU = 30.0
PACKETS_PER_SECOND = 50
PAYLOAD_BYTES = 100
WARMUP_SECONDS = 2.0
ROOM = "bench"


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    participants: int
    talkers: int
    forward_loudest: int
    target_cpu: float | None


SCENARIOS = (
    Scenario("10 all talking, loudest-5", 10, 10, 5, TARGET_CPU),
    Scenario("25 present, 5 talking, loudest-5", 25, 5, 5, TARGET_CPU),
    Scenario("25 all talking, loudest-5", 25, 25, 5, None),
    Scenario("25 all talking, forward to all", 25, 25, 24, None),
)


@dataclass(frozen=True, slots=True)
class ScenarioResult:
    name: str
    participants: int
    talkers: int
    forward_loudest: int
    sfu_cpu_percent: float
    sfu_rss_mib: float
    packets_in_per_s: float
    packets_out_per_s: float
    dropped: int
    malformed: int
    received_by_peers_per_s: float
    target_cpu_percent: float | None


# --- load generator (runs in its own process) -------------------------------------------


async def _generate_load(user_ids: list[int], talker_ids: set[int]) -> None:
    """Connect ``user_ids`` to the SFU (offers/answers relayed by the parent) and talk."""
    from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

    from nexus_server.voice.outbox import Outbox
    from nexus_server.voice.raw_rtp import PayloadTrack, tap_incoming_rtp

    received = 0

    def count_payload(payload: bytes, rtp_timestamp: int) -> None:
        nonlocal received
        received += 1

    peers: dict[int, RTCPeerConnection] = {}
    outboxes: dict[int, Outbox] = {}
    offers: dict[str, str] = {}
    for user_id in user_ids:
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        outboxes[user_id] = Outbox(capacity=8)
        transceiver = pc.addTransceiver(PayloadTrack(outboxes[user_id]), direction="sendrecv")
        tap_incoming_rtp(transceiver.receiver, count_payload)
        await pc.setLocalDescription(await pc.createOffer())
        peers[user_id] = pc
        offers[str(user_id)] = pc.localDescription.sdp
    _say({"offers": offers})

    loop = asyncio.get_running_loop()
    stdin = asyncio.StreamReader(limit=1 << 24)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stdin), sys.stdin)
    answers = json.loads(await stdin.readline())["answers"]
    all_connected = asyncio.Event()

    def note_connection_state() -> None:
        if all(pc.connectionState == "connected" for pc in peers.values()):
            all_connected.set()

    for user_id, pc in peers.items():
        pc.on("connectionstatechange", note_connection_state)
        await pc.setRemoteDescription(RTCSessionDescription(answers[str(user_id)], "answer"))
    await all_connected.wait()
    _say({"connected": True})

    talk = asyncio.create_task(_talk({uid: outboxes[uid] for uid in talker_ids}))
    await stdin.readline()  # "stop", or EOF if the parent went away
    talk.cancel()
    _say({"received": received})
    await asyncio.gather(*(pc.close() for pc in peers.values()))


async def _talk(outboxes: dict[int, Any]) -> None:
    # Distinct base levels so the loudest-N ranking has something to rank, with a little
    # wobble as speech has.
    base_level = {uid: 10 + (uid * 7) % 50 for uid in outboxes}
    frame = os.urandom(PAYLOAD_BYTES - 1)
    start = time.monotonic()
    tick = 0
    while True:
        for uid, outbox in outboxes.items():
            level = max(0, min(127, base_level[uid] + random.randint(-3, 3)))
            outbox.put(pack_talker_payload(level, frame))
        tick += 1
        await asyncio.sleep(max(0.0, start + tick / PACKETS_PER_SECOND - time.monotonic()))


def _say(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


# --- the bench (parent process) -----------------------------------------------------------


class _Generator:
    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process

    @classmethod
    async def start(cls, user_ids: list[int], talker_ids: list[int]) -> _Generator:
        spec = json.dumps({"users": user_ids, "talkers": talker_ids})
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            __file__,
            "--load-generator",
            spec,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            limit=1 << 24,
        )
        return cls(process)

    async def read(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        line = await self.process.stdout.readline()
        if not line:
            raise RuntimeError("a load generator exited early")
        return dict(json.loads(line))

    async def write(self, message: dict[str, Any]) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(message).encode() + b"\n")
        await self.process.stdin.drain()

    async def stop(self) -> int:
        await self.write({"stop": True})
        received = int((await self.read())["received"])
        await self.process.wait()
        return received


def _room_totals(stats: list[dict[str, Any]]) -> dict[str, int]:
    totals = {"packets_in": 0, "packets_out": 0, "dropped": 0, "malformed": 0}
    for worker in stats:
        for room in worker.get("rooms", []):
            for participant in room["participants"]:
                for key in totals:
                    totals[key] += participant[key]
    return totals


async def run_scenario(scenario: Scenario, seconds: float, generators: int) -> ScenarioResult:
    user_ids = list(range(1, scenario.participants + 1))
    talker_ids = user_ids[: scenario.talkers]
    async with VoiceSupervisor(forward_loudest=scenario.forward_loudest) as sfu:
        [pid] = sfu.worker_pids()
        shares = [user_ids[n::generators] for n in range(generators)]
        loads = [
            await _Generator.start(share, [u for u in share if u in talker_ids])
            for share in shares
            if share
        ]
        try:
            for load in loads:
                offers = (await load.read())["offers"]
                answers = {uid: await sfu.join(ROOM, int(uid), sdp) for uid, sdp in offers.items()}
                await load.write({"answers": answers})
            for load in loads:
                await load.read()  # connected
            await asyncio.sleep(WARMUP_SECONDS)

            worker = psutil.Process(pid)
            before = _room_totals(await sfu.stats())
            worker.cpu_percent(None)
            started = time.monotonic()
            await asyncio.sleep(seconds)
            cpu = worker.cpu_percent(None)
            elapsed = time.monotonic() - started
            rss = worker.memory_info().rss
            after = _room_totals(await sfu.stats())
        finally:
            received = sum([await load.stop() for load in loads])
    return ScenarioResult(
        name=scenario.name,
        participants=scenario.participants,
        talkers=scenario.talkers,
        forward_loudest=scenario.forward_loudest,
        sfu_cpu_percent=round(cpu, 1),
        sfu_rss_mib=round(rss / 2**20, 1),
        packets_in_per_s=round((after["packets_in"] - before["packets_in"]) / elapsed),
        packets_out_per_s=round((after["packets_out"] - before["packets_out"]) / elapsed),
        dropped=after["dropped"],
        malformed=after["malformed"],
        received_by_peers_per_s=round(received / (elapsed + WARMUP_SECONDS)),
        target_cpu_percent=scenario.target_cpu,
    )


async def run_sfu_bench(seconds: float = 10.0, generators: int = 1) -> dict[str, Any]:
    """Run every scenario in turn; returns ``{"scenarios": [...], "mumble_25_talkers_cpu"...}``."""
    results = [await run_scenario(s, seconds, generators) for s in SCENARIOS]
    loudest_25 = next(r for r in results if r.talkers == 25 and r.forward_loudest == 5)
    return {
        "cpu_count": os.cpu_count(),
        "seconds": seconds,
        "scenarios": [asdict(r) for r in results],
        "mumble_25_talkers_cpu_percent": MUMBLE_25_TALKERS_CPU,
        "ratio_to_mumble_25_talkers": round(loudest_25.sfu_cpu_percent / MUMBLE_25_TALKERS_CPU, 2),
    }


def _print_report(report: dict[str, Any]) -> None:
    print(f"Voice SFU worker, {report['seconds']:g} s per scenario, {report['cpu_count']} cores")
    header = f"{'scenario':36} {'cpu %':>6} {'rss MiB':>8} {'in/s':>6} {'out/s':>6} {'drop':>5}"
    print(header + "  target")
    for r in report["scenarios"]:
        target = r["target_cpu_percent"]
        verdict = ""
        if r["packets_in_per_s"] < 0.95 * r["talkers"] * PACKETS_PER_SECOND:
            verdict = "load-limited: the peers could not send at full rate  "
        if target is not None:
            verdict += f"< {target:g}%: {'met' if r['sfu_cpu_percent'] < target else 'MISSED'}"
        print(
            f"{r['name']:36} {r['sfu_cpu_percent']:6.1f} {r['sfu_rss_mib']:8.1f} "
            f"{r['packets_in_per_s']:6d} {r['packets_out_per_s']:6d} {r['dropped']:5d}  {verdict}"
        )
    print(
        f"25 talkers, loudest-5 vs Mumble ({report['mumble_25_talkers_cpu_percent']:g}% of a "
        f"core): ratio {report['ratio_to_mumble_25_talkers']:.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="measured seconds each")
    parser.add_argument("--generators", type=int, default=1, help="load generator processes")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--load-generator", metavar="SPEC", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.load_generator:
        spec = json.loads(args.load_generator)
        asyncio.run(_generate_load(spec["users"], set(spec["talkers"])))
        return
    report = asyncio.run(run_sfu_bench(args.seconds, args.generators))
    _print_report(report)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
