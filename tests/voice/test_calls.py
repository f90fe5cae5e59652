"""Calls end to end: headless SDK clients on a real relay, their audio through the real
SFU worker process (or straight between two people), synthetic audio in, recorded output
checked by cross-correlation and by frequency."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

from nexus_client import Client
from nexus_client.voice.audio import SAMPLE_RATE, ArraySource, BufferSink, GeneratorSource
from nexus_client.voice.connection import VoiceConnection
from tests.relay.harness import RunningRelay

FRAME = SAMPLE_RATE // 50


def marker(seconds: float = 0.4, seed: int = 7) -> npt.NDArray[np.float32]:
    """A burst of band-limited noise: unmistakable under cross-correlation."""
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal(int(seconds * SAMPLE_RATE)).astype(np.float32)
    # Keep it in the band Opus codes best at 64 kb/s (below 8 kHz).
    spectrum = np.fft.rfft(noise)
    freqs = np.fft.rfftfreq(len(noise), 1 / SAMPLE_RATE)
    spectrum[(freqs < 200) | (freqs > 6000)] = 0
    shaped = np.fft.irfft(spectrum, len(noise)).astype(np.float32)
    return (0.3 * shaped / np.max(np.abs(shaped))).astype(np.float32)


def silence_then(signal: npt.NDArray[np.float32], lead_s: float = 1.0) -> ArraySource:
    lead = np.zeros(int(lead_s * SAMPLE_RATE), dtype=np.float32)
    tail = np.zeros(int(0.6 * SAMPLE_RATE), dtype=np.float32)
    return ArraySource(np.concatenate([lead, signal, tail]))


def quiet() -> GeneratorSource:
    return GeneratorSource(lambda index: np.zeros(FRAME, dtype=np.float32))


def tone(freq: float, amplitude: float = 0.3) -> GeneratorSource:
    def frame(index: int) -> npt.NDArray[np.float32]:
        t = (np.arange(FRAME) + index * FRAME) / SAMPLE_RATE
        return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)

    return GeneratorSource(frame)


def band_energy(samples: npt.NDArray[np.float32], freq: float) -> float:
    """RMS of ``samples`` (mono) in a ±20 Hz band around ``freq``."""
    if len(samples) == 0:
        return 0.0
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    freqs = np.fft.rfftfreq(len(samples), 1 / SAMPLE_RATE)
    band = spectrum[(freqs > freq - 20) & (freqs < freq + 20)]
    return float(np.sqrt(np.mean(band**2)) / len(samples)) if len(band) else 0.0


def mono(sink: BufferSink, since: float = 0.0) -> npt.NDArray[np.float32]:
    blocks = [block for at, block in sink.frames if at >= since]
    if not blocks:
        return np.zeros(0, dtype=np.float32)
    return np.concatenate(blocks).mean(axis=1).astype(np.float32)


async def eventually(predicate: Callable[[], bool], timeout: float = 15.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError("timed out waiting for a condition")
        await asyncio.sleep(0.05)


async def acquainted(
    relay: RunningRelay, names: list[str], make_store: Any = None
) -> tuple[list[Client], int]:
    """Online clients sharing one community (with E2EE devices when given stores):
    (clients, the community's id)."""
    clients = []
    for name in names:
        client = Client(relay.settings.base_url, store=make_store(name) if make_store else None)
        await client.register(name, "correct horse battery")
        await client.start()
        await client.wait_until_online()
        if make_store:
            await client.e2ee_setup()
        clients.append(client)
    owner = clients[0]
    guild = await owner.create_guild("voice")
    text = (await owner.fetch_channels(guild.id))[0]
    invite = await owner.create_invite(text.id)
    for client in clients[1:]:
        await client.join(invite.code)
    return clients, guild.id


async def community(relay: RunningRelay, names: list[str]) -> tuple[list[Client], int, int]:
    """Clients in one community with a voice channel: (clients, guild id, channel id)."""
    clients, guild_id = await acquainted(relay, names)
    voice = await clients[0].create_channel(guild_id, "Lounge", type=2)
    return clients, guild_id, voice.id


async def close_all(clients: list[Client]) -> None:
    for client in clients:
        await client.close()


async def test_three_people_hear_each_other_through_the_sfu(voice_relay: RunningRelay) -> None:
    clients, _, channel_id = await community(voice_relay, ["ann_v", "ben_v", "cat_v"])
    ann, ben, cat = clients
    try:
        burst = marker()
        ben_out, cat_out = BufferSink(), BufferSink()
        ben_call = await ben.join_voice(
            channel_id, source=quiet(), sink=ben_out, noise_suppression=False
        )
        cat_call = await cat.join_voice(
            channel_id, source=quiet(), sink=cat_out, noise_suppression=False
        )
        await ben_call.wait_connected()
        await cat_call.wait_connected()
        ann_call = await ann.join_voice(
            channel_id, source=silence_then(burst), sink=BufferSink(), noise_suppression=False
        )
        await ann_call.wait_connected()
        assert ann_call.path == "sfu" and not ann_call.encrypted

        total = len(burst) + int(1.6 * SAMPLE_RATE)
        await eventually(lambda: ann_call.capture.stats.frames_read * FRAME >= total)
        await eventually(lambda: ben_call.stats.received >= ann_call.stats.sent)
        await eventually(lambda: cat_call.stats.received >= ann_call.stats.sent)
        await asyncio.sleep(0.3)  # the last frames leave the jitter buffer

        assert ann_call.stats.sent >= len(burst) // FRAME  # VAD: only the burst went out
        assert ben_call.stats.received == ann_call.stats.sent  # nothing lost on loopback
        assert cat_call.stats.received == ann_call.stats.sent
        for heard in (mono(ben_out), mono(cat_out)):
            correlation = np.correlate(heard, burst, mode="valid")
            peak = float(np.max(np.abs(correlation)))
            expected = float(np.dot(burst, burst))
            assert peak > 0.5 * expected, (peak, expected)
        # Nobody hears themselves: ann's speakers got nothing back.
        assert ann_call.stats.received == 0
        # Speaking indicators, voice states: everyone sees all three in the channel.
        for client in clients:
            ids = {int(s["user_id"]) for s in client.voice_states.in_channel(channel_id)}
            assert ids == {c.user.id for c in clients if c.user is not None}
    finally:
        await close_all(clients)


async def test_mute_deafen_and_leaving(voice_relay: RunningRelay) -> None:
    clients, _, channel_id = await community(voice_relay, ["dan_v", "eve_v"])
    dan, eve = clients
    try:
        eve_out = BufferSink()
        eve_call = await eve.join_voice(
            channel_id, source=quiet(), sink=eve_out, noise_suppression=False
        )
        dan_call = await dan.join_voice(
            channel_id, source=tone(440), sink=BufferSink(), noise_suppression=False
        )
        await eve_call.wait_connected()
        await dan_call.wait_connected()
        await eventually(lambda: eve_call.stats.received > 20)
        assert eve_call.speaking(dan.user.id if dan.user else 0)

        await dan_call.set_mute(True)
        await eventually(
            lambda: any(s.get("self_mute") for s in eve.voice_states.in_channel(channel_id))
        )
        await asyncio.sleep(0.3)
        before = eve_call.stats.received
        await asyncio.sleep(0.6)
        assert eve_call.stats.received == before  # muted: not one packet more
        await dan_call.set_mute(False)
        await eventually(lambda: eve_call.stats.received > before + 10)

        loop = asyncio.get_running_loop()
        await eve_call.set_deaf(True)
        deaf_from = loop.time() + 0.1
        await asyncio.sleep(0.8)
        assert band_energy(mono(eve_out, since=deaf_from), 440) < 1e-6
        await eve_call.set_deaf(False)
        heard_from = loop.time() + 0.2
        await asyncio.sleep(0.8)
        assert band_energy(mono(eve_out, since=heard_from), 440) > 1e-4

        await dan_call.leave()
        await eventually(lambda: len(eve.voice_states.in_channel(channel_id)) == 1)
        assert dan_call.closed and dan.voice is None
    finally:
        await close_all(clients)


async def _dm_pair(relay: RunningRelay, make_store: Any) -> tuple[Client, Client, int]:
    (fay, gus), _ = await acquainted(relay, ["fay_v", "gus_v"], make_store)
    assert gus.user is not None
    return fay, gus, await fay.open_dm(gus.user.id)


async def _call(
    caller: Client, callee: Client, dm: int, block_direct: bool
) -> tuple[VoiceConnection, VoiceConnection, BufferSink]:
    heard = BufferSink()
    first = await caller.join_voice(
        dm, source=tone(660), sink=BufferSink(), noise_suppression=False
    )
    if block_direct:
        first.direct_sdp_filter = _blocked
    await eventually(lambda: bool(callee.voice_states.in_channel(dm)))
    second = await callee.join_voice(dm, source=quiet(), sink=heard, noise_suppression=False)
    if block_direct:
        second.direct_sdp_filter = _blocked
    await first.wait_connected(30)
    await second.wait_connected(30)
    return first, second, heard


def _blocked(sdp: str) -> str:
    from nexus_client.voice.rtc import without_candidates

    return without_candidates(sdp)


async def test_a_dm_call_goes_direct_and_is_encrypted(
    voice_relay: RunningRelay, make_store: Any
) -> None:
    fay, gus, dm = await _dm_pair(voice_relay, make_store)
    try:
        first, second, heard = await _call(fay, gus, dm, block_direct=False)
        assert first.path == second.path == "direct"
        assert first.encrypted and second.encrypted
        await eventually(lambda: second.stats.received > 25)
        await asyncio.sleep(0.3)
        assert band_energy(mono(heard)[-SAMPLE_RATE // 2 :], 660) > 1e-4
        assert second.stats.undecryptable == {}
        # The relay's SFU never saw this call.
        supervisor = voice_relay.relay.voice.supervisor
        if supervisor is not None:
            stats = await supervisor.stats()
            assert all(str(dm) not in worker.get("rooms", {}) for worker in stats)
    finally:
        await close_all([fay, gus])


async def test_a_dm_call_with_no_direct_path_falls_back_to_the_relay(
    voice_relay: RunningRelay, make_store: Any
) -> None:
    fay, gus, dm = await _dm_pair(voice_relay, make_store)
    try:
        first, second, heard = await _call(fay, gus, dm, block_direct=True)
        assert first.path == second.path == "sfu"
        await eventually(lambda: second.stats.received > 25)
        await asyncio.sleep(0.3)
        assert band_energy(mono(heard)[-SAMPLE_RATE // 2 :], 660) > 1e-4
        assert second.stats.undecryptable == {}
    finally:
        await close_all([fay, gus])


async def _group(
    relay: RunningRelay, make_store: Any, names: list[str]
) -> tuple[list[Client], int]:
    clients, _ = await acquainted(relay, names, make_store)
    group = await clients[0].create_group_dm([c.user.id for c in clients[1:] if c.user])
    return clients, group


def _process_memory(pid: int) -> bytes:
    """Every readable, writable mapping of a process (its heap, stacks, anonymous memory)."""
    chunks = []
    with open(f"/proc/{pid}/maps") as maps, open(f"/proc/{pid}/mem", "rb", 0) as mem:
        for line in maps:
            fields = line.split()
            if "r" not in fields[1] or "w" not in fields[1]:
                continue
            start, end = (int(part, 16) for part in fields[0].split("-"))
            try:
                mem.seek(start)
                chunks.append(mem.read(end - start))
            except (OSError, ValueError, OverflowError):
                continue
    return b"".join(chunks)


async def test_an_encrypted_group_call_is_opaque_to_the_sfu(
    voice_relay: RunningRelay, make_store: Any
) -> None:
    clients, group = await _group(voice_relay, make_store, ["hal_v", "ida_v", "jon_v"])
    hal, ida, jon = clients
    try:
        ida_out = BufferSink()
        calls = [
            await hal.join_voice(
                group, source=tone(550), sink=BufferSink(), noise_suppression=False
            ),
            await ida.join_voice(group, source=quiet(), sink=ida_out, noise_suppression=False),
            await jon.join_voice(group, source=quiet(), sink=BufferSink(), noise_suppression=False),
        ]
        for call in calls:
            await call.wait_connected()
            assert call.encrypted and call.path == "sfu"
        _, ida_call, _ = calls

        # Catch what the SFU forwards to ida, as it arrives.
        forwarded: list[bytes] = []
        tamper = {"next": 0}
        assert ida_call._peer is not None
        receiver = ida_call._peer.pc.getTransceivers()[0].receiver
        handle = receiver._handle_rtp_packet

        async def tap(packet: Any, arrival_time_ms: int) -> None:
            # What a malicious SFU could do: alter a frame's last byte on its way.
            if tamper["next"] and len(packet.payload) > 14:
                tamper["next"] -= 1
                payload = bytearray(packet.payload)
                payload[-1] ^= 0x01
                packet.payload = bytes(payload)
            forwarded.append(bytes(packet.payload))
            await handle(packet, arrival_time_ms)

        receiver._handle_rtp_packet = tap
        await eventually(lambda: ida_call.stats.received > 50)
        await asyncio.sleep(0.3)
        assert band_energy(mono(ida_out)[-SAMPLE_RATE // 2 :], 550) > 1e-4

        # The SFU process holds none of the frame keys in its memory.
        supervisor = voice_relay.relay.voice.supervisor
        assert supervisor is not None
        memory = b"".join(_process_memory(pid) for pid in supervisor.worker_pids())
        assert len(memory) > 1_000_000
        for call in calls:
            assert call.keys is not None
            assert call.keys.encryptor.sender_key not in memory

        # Frames altered on the way are refused, never played; the call goes on.
        assert len(forwarded) > 20
        assert ida_call.stats.undecryptable == {}
        tamper["next"] = 3
        await eventually(lambda: tamper["next"] == 0)
        received = ida_call.stats.received
        assert ida_call.stats.undecryptable == {"authentication": 3}
        await eventually(lambda: ida_call.stats.received > received + 10)
    finally:
        await close_all(clients)


def _decoded(path: Any) -> npt.NDArray[np.float32]:
    import av

    with av.open(str(path)) as container:
        frames = [
            frame.to_ndarray().reshape(-1).astype(np.float32) for frame in container.decode(audio=0)
        ]
    return np.concatenate(frames) if frames else np.zeros(0, dtype=np.float32)


async def test_recording_writes_only_those_who_consented(
    voice_relay: RunningRelay, tmp_path: Any
) -> None:
    clients, _, channel_id = await community(voice_relay, ["kim_v", "leo_v", "max_v"])
    kim, leo, mx = clients
    try:
        calls = [
            await kim.join_voice(
                channel_id, source=tone(440), sink=BufferSink(), noise_suppression=False
            ),
            await leo.join_voice(
                channel_id, source=tone(660), sink=BufferSink(), noise_suppression=False
            ),
            await mx.join_voice(
                channel_id, source=tone(880), sink=BufferSink(), noise_suppression=False
            ),
        ]
        for call in calls:
            await call.wait_connected()
        kim_call, leo_call, max_call = calls
        await kim_call.request_recording(tmp_path / "recordings")
        await eventually(lambda: leo_call.recording is not None and max_call.recording is not None)
        await leo_call.answer_recording(True)
        await max_call.answer_recording(False)
        await eventually(
            lambda: (
                kim_call.recording is not None
                and kim_call.recording["consents"].get(str(mx.user.id if mx.user else 0)) is False
                and kim_call.recording["consents"].get(str(leo.user.id if leo.user else 0)) is True
            )
        )
        await asyncio.sleep(2.0)
        result = await kim_call.stop_recording()
        assert result is not None
        assert kim.user is not None and leo.user is not None and mx.user is not None
        assert set(result.speaker_files) == {kim.user.id, leo.user.id}
        assert result.mix_file is not None
        for path in [*result.speaker_files.values(), result.mix_file]:
            audio = _decoded(path)
            assert len(audio) > SAMPLE_RATE  # more than a second was written
            present = max(band_energy(audio, 440), band_energy(audio, 660))
            assert present > 1e-4, path
            assert band_energy(audio, 880) < 0.02 * present, path  # max is in none of them
        assert band_energy(_decoded(result.speaker_files[leo.user.id]), 660) > 1e-4
        mix = _decoded(result.mix_file)
        assert band_energy(mix, 440) > 1e-4 and band_energy(mix, 660) > 1e-4
    finally:
        await close_all(clients)


async def test_a_moved_member_hears_the_new_channel(voice_relay: RunningRelay) -> None:
    clients, guild_id, lounge = await community(voice_relay, ["nia_v", "oto_v"])
    nia, oto = clients
    try:
        games = (await nia.create_channel(guild_id, "Games", type=2)).id
        nia_call = await nia.join_voice(
            games, source=tone(440), sink=BufferSink(), noise_suppression=False
        )
        heard = BufferSink()
        oto_call = await oto.join_voice(lounge, source=quiet(), sink=heard, noise_suppression=False)
        await nia_call.wait_connected()
        await oto_call.wait_connected()
        assert oto_call.stats.received == 0  # different channels

        assert oto.user is not None
        await nia.http.request(
            "PATCH", f"/guilds/{guild_id}/members/{oto.user.id}", json={"channel_id": str(games)}
        )
        await eventually(lambda: oto_call.channel_id == games)
        await eventually(lambda: oto_call.stats.received > 25)
        assert not oto_call.closed
        assert nia.user is not None and nia.user.id in oto_call.participants
    finally:
        await close_all(clients)


async def test_joining_from_another_device_takes_the_call_over(voice_relay: RunningRelay) -> None:
    clients, _, channel_id = await community(voice_relay, ["pam_v", "quin_v"])
    pam, quin = clients
    second = Client(voice_relay.settings.base_url)
    try:
        await pam.join_voice(
            channel_id, source=tone(440), sink=BufferSink(), noise_suppression=False
        )
        first = await quin.join_voice(
            channel_id, source=quiet(), sink=BufferSink(), noise_suppression=False
        )
        await first.wait_connected()
        await eventually(lambda: first.stats.received > 10)

        await second.login("quin_v", "correct horse battery")
        await second.start()
        await second.wait_until_online()
        taken = await second.join_voice(
            channel_id, source=quiet(), sink=BufferSink(), noise_suppression=False
        )
        await taken.wait_connected()
        await eventually(lambda: first.closed)
        await eventually(lambda: taken.stats.received > 25)
        assert len(pam.voice_states.in_channel(channel_id)) == 2
    finally:
        await close_all([*clients, second])


async def test_a_relay_without_voice_says_so(tmp_path: Any) -> None:
    from nexus_client.voice.connection import VoiceError
    from tests.relay.harness import start_relay

    relay = await start_relay(tmp_path / "novoice", rate_limits=False, voice_workers=0)
    clients: list[Client] = []
    try:
        clients, _, channel_id = await community(relay, ["rex_v"])
        call = await clients[0].join_voice(
            channel_id, source=quiet(), sink=BufferSink(), noise_suppression=False
        )
        try:
            await call.wait_connected(10)
        except VoiceError as exc:
            assert exc.code == "voice_unavailable"
        else:
            raise AssertionError("a relay with voice off connected a call")
    finally:
        await close_all(clients)
        await relay.stop()
