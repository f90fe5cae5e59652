"""The voice SFU end to end: real worker processes, real aiortc peers on loopback.

Each participant is an ``RtcTestPeer`` that offers to the SFU through ``VoiceSupervisor``,
sends client → SFU payloads at 50 packets/s, and parses what the SFU forwards.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from nexus_protocol.voice_media import (
    LISTENER_HEADER_SIZE,
    ListenerPayload,
    MediaHeaderError,
    TalkerPayload,
    pack_listener_header,
    pack_listener_payload,
    pack_talker_payload,
    unpack_listener_payload,
    unpack_talker_payload,
)
from nexus_server.voice import VoiceRequestError, VoiceSupervisor, VoiceUnavailable
from nexus_server.voice.outbox import Outbox
from nexus_server.voice.supervisor import shard_of
from tests.voice.rtc_peer import RtcTestPeer, talker_payloads, wait_until

REPO_ROOT = Path(__file__).resolve().parents[2]


class VoiceHarness:
    """Starts supervisors and peers for a test, records callbacks, and tears all down."""

    def __init__(self) -> None:
        self.gone: list[tuple[str, int, str]] = []
        self.restarts: list[list[str]] = []
        self._supervisors: list[VoiceSupervisor] = []
        self._peers: list[RtcTestPeer] = []

    async def start(self, **options: Any) -> VoiceSupervisor:
        supervisor = VoiceSupervisor(
            on_gone=lambda room, user, why: self.gone.append((room, user, why)),
            on_restart=self.restarts.append,
            **options,
        )
        self._supervisors.append(supervisor)
        await supervisor.start()
        return supervisor

    async def connect(self, supervisor: VoiceSupervisor, room: str, user_id: int) -> RtcTestPeer:
        peer = RtcTestPeer(user_id)
        self._peers.append(peer)
        await peer.accept(await supervisor.join(room, user_id, await peer.offer()))
        return peer

    async def close(self) -> None:
        await asyncio.gather(*(peer.close() for peer in self._peers))
        await asyncio.gather(*(supervisor.close() for supervisor in self._supervisors))


@pytest.fixture
async def voice() -> AsyncIterator[VoiceHarness]:
    harness = VoiceHarness()
    try:
        yield harness
    finally:
        await harness.close()


def participant_counters(stats: list[dict[str, Any]], room: str, user_id: int) -> dict[str, Any]:
    for worker in stats:
        for voice_room in worker["rooms"]:
            if voice_room["room"] == room:
                for participant in voice_room["participants"]:
                    if participant["user_id"] == user_id:
                        return dict(participant)
    raise AssertionError(f"user {user_id} not in room {room!r}: {stats}")


async def test_talker_reaches_every_other_listener_byte_exact(voice: VoiceHarness) -> None:
    sfu = await voice.start()
    alice, bob, carol = [await voice.connect(sfu, "lounge", uid) for uid in (11, 2**63 + 5, 13)]

    await alice.send(talker_payloads(level=20, count=50))
    await wait_until(lambda: len(bob.heard_from(11)) >= 50 and len(carol.heard_from(11)) >= 50)

    sent = [(packet.rtp_timestamp, packet.payload[0], packet.payload[1:]) for packet in alice.sent]
    assert len(sent) == 50
    for listener in (bob, carol):
        heard = [(p.timestamp, p.level, p.frame) for p in listener.heard_from(11)]
        assert heard == sent
        assert listener.unreadable == 0
    assert alice.received == []
    assert {p.user_id for p in bob.received} == {11}


async def test_sender_reports_count_what_the_listener_was_sent(voice: VoiceHarness) -> None:
    sfu = await voice.start()
    alice, bob = [await voice.connect(sfu, "lounge", uid) for uid in (1, 2)]

    await alice.send(talker_payloads(level=20, count=30))
    await wait_until(lambda: len(bob.heard_from(1)) >= 30)
    sent_octets = sum(LISTENER_HEADER_SIZE + len(p.frame) for p in bob.heard_from(1))

    report = None
    for _ in range(50):  # a report leaves every 0.5-1.5 s
        report = await bob.last_sender_report()
        if report is not None and report.packetsSent == 30:
            break
        await asyncio.sleep(0.1)
    assert report is not None and report.packetsSent == 30
    assert report.bytesSent == sent_octets
    # The report's clock is the wall clock (NTP), not a stream-relative count.
    assert abs((report.remoteTimestamp - datetime.now(UTC)).total_seconds()) < 60


async def test_only_the_loudest_talkers_are_forwarded(voice: VoiceHarness) -> None:
    sfu = await voice.start(forward_loudest=2)
    loud, louder, quiet, listener = [await voice.connect(sfu, "stage", uid) for uid in (1, 2, 3, 4)]

    loud_talk = asyncio.create_task(loud.send(talker_payloads(level=20, count=150)))
    louder_talk = asyncio.create_task(louder.send(talker_payloads(level=10, count=150)))
    await wait_until(
        lambda: len(listener.heard_from(1)) >= 10 and len(listener.heard_from(2)) >= 10
    )
    await quiet.send(talker_payloads(level=60, count=40))
    # The loud talkers hear the quiet one: each of them has only one other voice louder.
    await wait_until(lambda: len(loud.heard_from(3)) >= 40 and len(louder.heard_from(3)) >= 40)
    await asyncio.gather(loud_talk, louder_talk)

    assert listener.heard_from(3) == []
    assert len(listener.heard_from(1)) > 100
    assert len(listener.heard_from(2)) > 100


async def test_server_mute_stops_a_talker_and_unmute_restores_it(voice: VoiceHarness) -> None:
    sfu = await voice.start()
    alice, bob, carol = [await voice.connect(sfu, "lounge", uid) for uid in (1, 2, 3)]

    await sfu.set_muted("lounge", 1, True)
    await alice.send(talker_payloads(level=20, count=25, tag=b"muted"))
    await carol.send(talker_payloads(level=20, count=25))
    await wait_until(lambda: len(bob.heard_from(3)) >= 25)  # Alice's packets went earlier
    assert bob.heard_from(1) == []
    assert carol.heard_from(1) == []

    await sfu.set_muted("lounge", 1, False)
    await alice.send(talker_payloads(level=20, count=25, tag=b"open"))
    await wait_until(lambda: len(bob.heard_from(1)) >= 25)
    assert all(p.frame.startswith(b"open") for p in bob.heard_from(1))


async def test_deafened_listener_receives_nothing(voice: VoiceHarness) -> None:
    sfu = await voice.start()
    alice, bob, carol = [await voice.connect(sfu, "lounge", uid) for uid in (1, 2, 3)]

    await sfu.set_deaf("lounge", 2, True)
    await alice.send(talker_payloads(level=20, count=25))
    await carol.send(talker_payloads(level=20, count=25))
    await wait_until(lambda: len(carol.heard_from(1)) >= 25 and len(alice.heard_from(3)) >= 25)
    assert bob.received == []
    assert participant_counters(await sfu.stats(), "lounge", 2)["packets_out"] == 0


async def test_leave_stops_forwarding_without_a_gone_report(voice: VoiceHarness) -> None:
    sfu = await voice.start()
    alice, bob, carol = [await voice.connect(sfu, "lounge", uid) for uid in (1, 2, 3)]

    await sfu.leave("lounge", 2)
    await alice.send(talker_payloads(level=20, count=25))
    await wait_until(lambda: len(carol.heard_from(1)) >= 25)

    assert bob.received == []
    with pytest.raises(AssertionError):
        participant_counters(await sfu.stats(), "lounge", 2)
    with pytest.raises(VoiceRequestError, match="not in voice room"):
        await sfu.set_muted("lounge", 2, True)
    assert voice.gone == []


async def test_short_payloads_are_counted_and_dropped(voice: VoiceHarness) -> None:
    sfu = await voice.start()
    alice, bob = [await voice.connect(sfu, "lounge", uid) for uid in (1, 2)]
    pid = sfu.worker_pids()

    await alice.send([b""] * 5 + talker_payloads(level=20, count=10))
    await wait_until(lambda: len(bob.heard_from(1)) >= 10)

    assert [p.frame for p in bob.heard_from(1)] == [p.payload[1:] for p in alice.sent[5:]]
    counters = participant_counters(await sfu.stats(), "lounge", 1)
    assert counters["malformed"] == 5
    assert counters["packets_in"] == 15
    assert sfu.worker_pids() == pid


async def test_vanished_participant_is_reported_gone(voice: VoiceHarness) -> None:
    sfu = await voice.start()
    listener = await voice.connect(sfu, "lounge", 1)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.voice.rtc_peer",
        "7",
        cwd=REPO_ROOT,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert process.stdin is not None and process.stdout is not None
    try:
        offer = json.loads(await process.stdout.readline())["offer"]
        answer = await sfu.join("lounge", 7, offer)
        process.stdin.write(json.dumps({"answer": answer}).encode() + b"\n")
        await process.stdin.drain()
        assert json.loads(await process.stdout.readline()) == {"connected": True}
        await wait_until(lambda: len(listener.heard_from(7)) >= 5)
    finally:
        process.send_signal(signal.SIGKILL)
        await process.wait()

    await wait_until(lambda: bool(voice.gone), timeout=12)
    assert voice.gone == [("lounge", 7, "timeout")]
    with pytest.raises(AssertionError):
        participant_counters(await sfu.stats(), "lounge", 7)


async def test_killed_worker_is_restarted_and_its_rooms_reported(voice: VoiceHarness) -> None:
    sfu = await voice.start()
    await voice.connect(sfu, "lounge", 1)
    await voice.connect(sfu, "den", 2)
    await sfu.leave("den", 2)
    [old_pid] = sfu.worker_pids()

    os.kill(old_pid, signal.SIGKILL)
    with pytest.raises(VoiceUnavailable):
        await sfu.set_muted("lounge", 1, True)
    await wait_until(lambda: bool(voice.restarts))

    assert voice.restarts == [["lounge"]]
    [new_pid] = sfu.worker_pids()
    assert new_pid != old_pid
    alice = await voice.connect(sfu, "lounge", 1)
    bob = await voice.connect(sfu, "lounge", 2)
    await alice.send(talker_payloads(level=20, count=10))
    await wait_until(lambda: len(bob.heard_from(1)) >= 10)


async def test_rooms_are_sharded_across_workers(voice: VoiceHarness) -> None:
    sfu = await voice.start(workers=2)
    rooms = [f"room-{n}" for n in range(20)]
    first = rooms[0]
    second = next(room for room in rooms if shard_of(room, 2) != shard_of(first, 2))
    await voice.connect(sfu, first, 1)
    await voice.connect(sfu, second, 2)

    stats = await sfu.stats()
    assert len(set(sfu.worker_pids())) == 2
    rooms_by_pid = {worker["pid"]: [r["room"] for r in worker["rooms"]] for worker in stats}
    assert sorted(rooms_by_pid.values()) == sorted([[first], [second]])
    assert rooms_by_pid[sfu.worker_pid_for(first)] == [first]


async def test_bad_offer_is_refused_and_worker_survives(voice: VoiceHarness) -> None:
    sfu = await voice.start()
    with pytest.raises(VoiceRequestError, match="SDP"):
        await sfu.join("lounge", 1, "v=0\r\nthis is not an offer\r\n")
    with pytest.raises(VoiceRequestError, match="urls"):
        await sfu.join("lounge", 1, "v=0\r\n", ice_servers=[{"url": "stun:example.org"}])
    alice, bob = [await voice.connect(sfu, "lounge", uid) for uid in (1, 2)]
    await alice.send(talker_payloads(level=20, count=5))
    await wait_until(lambda: len(bob.heard_from(1)) >= 5)


async def test_joining_again_replaces_the_old_connection(voice: VoiceHarness) -> None:
    sfu = await voice.start()
    old_alice, bob = [await voice.connect(sfu, "lounge", uid) for uid in (1, 2)]
    new_alice = await voice.connect(sfu, "lounge", 1)

    await bob.send(talker_payloads(level=20, count=10))
    await wait_until(lambda: len(new_alice.heard_from(2)) >= 10)
    await new_alice.send(talker_payloads(level=20, count=10))
    await wait_until(lambda: len(bob.heard_from(1)) >= 10)

    assert old_alice.heard_from(2) == []
    await wait_until(lambda: old_alice.pc.connectionState == "closed")
    stats = await sfu.stats()
    assert [p["user_id"] for p in stats[0]["rooms"][0]["participants"]] == [2, 1]
    assert voice.gone == []


async def test_outbox_sends_at_once_or_queues_boundedly_in_order() -> None:
    wire: list[bytes] = []
    link_free = True

    def send_now(payload: bytes) -> bool:
        if link_free:
            wire.append(payload)
        return link_free

    outbox = Outbox(capacity=3)
    outbox.put(b"before the link is up")
    outbox.send_through(send_now)
    outbox.put(b"behind a queued one")  # must not overtake what waits
    assert wire == [] and len(outbox) == 2
    assert await outbox.get() == b"before the link is up"
    assert await outbox.get() == b"behind a queued one"

    outbox.put(b"link free")
    assert wire == [b"link free"] and len(outbox) == 0

    link_free = False
    for n in range(5):
        outbox.put(b"stalled %d" % n)
    assert outbox.dropped == 2
    assert [await outbox.get() for _ in range(3)] == [b"stalled 2", b"stalled 3", b"stalled 4"]
    outbox.close()
    outbox.put(b"after close")
    assert await outbox.get() is None


def test_media_headers_round_trip_and_reject_short_input() -> None:
    payload = pack_listener_payload(2**64 - 1, 2**32 - 1, 127, b"\x00opus")
    assert len(payload) == LISTENER_HEADER_SIZE + 5
    assert unpack_listener_payload(payload) == ListenerPayload(
        2**64 - 1, 2**32 - 1, 127, b"\x00opus"
    )
    assert unpack_talker_payload(pack_talker_payload(3, b"")) == TalkerPayload(3, b"")
    with pytest.raises(MediaHeaderError, match="at least 13 bytes"):
        unpack_listener_payload(payload[:12])
    with pytest.raises(MediaHeaderError, match="level"):
        unpack_talker_payload(b"")
    with pytest.raises(MediaHeaderError, match="user_id"):
        pack_listener_header(-1, 0, 0)
