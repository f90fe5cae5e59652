"""Voice frame encryption: what an SFU, a tamperer, a replayer and a departed participant
can and cannot do with the frames of an encrypted call."""

from __future__ import annotations

import random

import av
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nexus_client.voice.sframe import (
    REPLAY_WINDOW,
    CounterExhausted,
    FrameDecryptor,
    FrameEncryptor,
    FrameRejected,
    decode_header,
    encode_header,
    new_sender_key,
)

ALICE, BOB = 1001, 1002


def opus_packets(frequency: float, count: int) -> list[bytes]:
    """``count`` real 20 ms Opus packets (48 kHz mono) of a sine tone."""
    encoder = av.CodecContext.create("libopus", "w")
    assert isinstance(encoder, av.AudioCodecContext)
    encoder.sample_rate = 48_000
    encoder.layout = "mono"
    encoder.format = "s16"
    encoder.open()
    times = np.arange(960 * count) / 48_000
    tone = (0.3 * 32767 * np.sin(2 * np.pi * frequency * times)).astype(np.int16)
    packets: list[bytes] = []
    for start in range(0, len(tone), 960):
        frame = av.AudioFrame.from_ndarray(tone[None, start : start + 960], layout="mono")
        frame.sample_rate = 48_000
        frame.pts = start
        packets += [bytes(packet) for packet in encoder.encode(frame)]
    return packets[:count]


PACKETS = opus_packets(440, 20)


def call(epoch: int = 1) -> tuple[FrameEncryptor, FrameDecryptor]:
    """Alice sends; Bob holds her key for ``epoch``."""
    key = new_sender_key()
    bob = FrameDecryptor()
    bob.set_key(ALICE, epoch, key)
    return FrameEncryptor(ALICE, epoch, key), bob


def reason_of(decryptor: FrameDecryptor, sender: int, frame: bytes) -> str:
    with pytest.raises(FrameRejected) as rejected:
        decryptor.decrypt(sender, frame)
    return rejected.value.reason


def test_frames_round_trip_with_a_small_header() -> None:
    alice, bob = call(epoch=3)
    frames = [alice.encrypt(packet) for packet in PACKETS]
    assert [bob.decrypt(ALICE, frame) for frame in frames] == PACKETS
    for counter, (frame, packet) in enumerate(zip(frames, PACKETS, strict=True)):
        epoch, frame_counter, header_length = decode_header(frame)
        assert (epoch, frame_counter) == (3, counter)
        assert len(frame) == header_length + len(packet) + 16
        assert header_length <= 2
    assert bob.stats.decrypted == len(PACKETS)


def test_header_stays_within_six_bytes_for_realistic_values() -> None:
    alice = FrameEncryptor(ALICE, 200, new_sender_key())
    epoch, counter, header_length = decode_header(alice.encrypt(b"x"))
    assert (epoch, counter, header_length) == (200, 0, 2)
    # A two-year call at 50 frames/s still has a 6-byte header (1 + 1 + 4).
    assert len(encode_header(255, 2**32 - 1)) == 6
    assert decode_header(encode_header(2**40, 2**63) + bytes(16))[:2] == (2**40, 2**63)


def test_ciphertext_does_not_contain_the_plaintext() -> None:
    alice, _ = call()
    for packet in PACKETS:
        frame = alice.encrypt(packet)
        windows = {packet[i : i + 6] for i in range(len(packet) - 5)}
        assert not any(window in frame for window in windows)


def test_tampering_with_any_byte_is_rejected_and_leaves_the_genuine_frame_usable() -> None:
    alice, bob = call(epoch=9)
    frame = alice.encrypt(PACKETS[0])
    _, _, header_length = decode_header(frame)
    for index in range(len(frame)):
        for flip in (0x01, 0x80):
            tampered = bytearray(frame)
            tampered[index] ^= flip
            reason = reason_of(bob, ALICE, bytes(tampered))
            if index < header_length:
                # A changed epoch names a key Bob does not hold; any other change fails the tag.
                assert reason in {"authentication", "malformed", "unknown_key"}
            else:
                assert reason == "authentication"
    assert bob.stats.decrypted == 0
    assert bob.decrypt(ALICE, frame) == PACKETS[0]


def test_truncated_frames_are_malformed() -> None:
    alice, bob = call(epoch=300)
    frame = alice.encrypt(PACKETS[0])
    _, _, header_length = decode_header(frame)
    assert reason_of(bob, ALICE, b"") == "malformed"
    assert reason_of(bob, ALICE, frame[:1]) == "malformed"  # epoch bytes missing
    assert reason_of(bob, ALICE, frame[: header_length + 15]) == "malformed"  # no full tag
    assert reason_of(bob, ALICE, frame[:-1]) == "authentication"
    assert bob.stats.rejected == {
        "malformed": 3,
        "unknown_key": 0,
        "authentication": 1,
        "replay": 0,
    }


def test_replays_are_rejected_and_reordering_within_the_window_is_accepted() -> None:
    alice, bob = call()
    frames = [alice.encrypt(packet) for packet in PACKETS]
    order = [0, 3, 1, 2, 7, 5, 4, 6]
    assert [bob.decrypt(ALICE, frames[i]) for i in order] == [PACKETS[i] for i in order]
    for i in order:
        assert reason_of(bob, ALICE, frames[i]) == "replay"
    assert bob.stats.rejected["replay"] == len(order)


def test_counters_older_than_the_window_are_rejected() -> None:
    alice, bob = call()
    frames = [alice.encrypt(b"frame %d" % i) for i in range(REPLAY_WINDOW + 10)]
    bob.decrypt(ALICE, frames[-1])
    assert reason_of(bob, ALICE, frames[0]) == "replay"  # 1033 behind: out of the window
    assert bob.decrypt(ALICE, frames[20]) == b"frame 20"  # 1013 behind: still inside


def test_unknown_epoch_or_sender_is_unknown_key() -> None:
    alice, bob = call(epoch=1)
    frame = alice.encrypt(PACKETS[0])
    assert reason_of(bob, BOB, frame) == "unknown_key"
    stranger = FrameEncryptor(ALICE, 2, new_sender_key())
    assert reason_of(bob, ALICE, stranger.encrypt(PACKETS[0])) == "unknown_key"


def test_keys_are_bound_to_their_sender() -> None:
    # Even if two participants ended up with the same key bytes, a frame relabelled by the
    # SFU as coming from someone else does not decrypt.
    key = new_sender_key()
    bob = FrameDecryptor()
    bob.set_key(ALICE, 1, key)
    bob.set_key(BOB, 1, key)
    frame = FrameEncryptor(ALICE, 1, key).encrypt(PACKETS[0])
    assert reason_of(bob, BOB, frame) == "authentication"
    assert bob.decrypt(ALICE, frame) == PACKETS[0]


def test_rotation_keeps_one_previous_epoch_for_frames_in_flight() -> None:
    alice, bob = call(epoch=1)
    in_flight = [alice.encrypt(packet) for packet in PACKETS[:3]]
    alice.rotate(2, new_sender_key())
    bob.set_key(ALICE, 2, alice.sender_key)
    after = [alice.encrypt(packet) for packet in PACKETS[3:6]]
    # Frames of the new epoch overtake the old ones; both decrypt.
    assert bob.decrypt(ALICE, after[0]) == PACKETS[3]
    assert [bob.decrypt(ALICE, frame) for frame in in_flight] == PACKETS[:3]
    assert bob.known_epochs(ALICE) == (1, 2)

    late_epoch_one = in_flight[-1]
    epoch_two_frame = after[1]
    alice.rotate(3, new_sender_key())
    bob.set_key(ALICE, 3, alice.sender_key)
    assert bob.known_epochs(ALICE) == (2, 3)
    assert reason_of(bob, ALICE, late_epoch_one) == "unknown_key"
    assert bob.decrypt(ALICE, epoch_two_frame) == PACKETS[4]
    assert bob.decrypt(ALICE, alice.encrypt(PACKETS[6])) == PACKETS[6]


def test_a_participant_who_left_cannot_read_later_frames() -> None:
    key = new_sender_key()
    alice = FrameEncryptor(ALICE, 1, key)
    stays, leaves = FrameDecryptor(), FrameDecryptor()
    for decryptor in (stays, leaves):
        decryptor.set_key(ALICE, 1, key)
    assert leaves.decrypt(ALICE, alice.encrypt(PACKETS[0])) == PACKETS[0]

    # Membership changed: a new key goes to those who stay, not to the one who left.
    alice.rotate(2, new_sender_key())
    stays.set_key(ALICE, 2, alice.sender_key)
    frames = [alice.encrypt(packet) for packet in PACKETS[1:5]]
    assert [stays.decrypt(ALICE, frame) for frame in frames] == PACKETS[1:5]
    for frame in frames:
        assert reason_of(leaves, ALICE, frame) == "unknown_key"
    # Holding the old key under the new epoch number does not help either.
    leaves.set_key(ALICE, 2, key)
    assert all(reason_of(leaves, ALICE, frame) == "authentication" for frame in frames)


def test_a_newcomer_cannot_read_earlier_frames() -> None:
    alice, _ = call(epoch=1)
    earlier = [alice.encrypt(packet) for packet in PACKETS[:3]]
    alice.rotate(2, new_sender_key())
    newcomer = FrameDecryptor()
    newcomer.set_key(ALICE, 2, alice.sender_key)
    assert newcomer.decrypt(ALICE, alice.encrypt(PACKETS[3])) == PACKETS[3]
    assert all(reason_of(newcomer, ALICE, frame) == "unknown_key" for frame in earlier)


def test_forget_sender_drops_their_keys() -> None:
    alice, bob = call()
    frame = alice.encrypt(PACKETS[0])
    bob.forget_sender(ALICE)
    assert bob.known_epochs(ALICE) == ()
    assert reason_of(bob, ALICE, frame) == "unknown_key"


def test_the_counter_limit_forces_a_rotation_and_epochs_are_never_reused() -> None:
    first_key = new_sender_key()
    alice = FrameEncryptor(ALICE, 1, first_key, counter_limit=3)
    for _ in range(3):
        alice.encrypt(b"x")
    assert alice.frames_left == 0
    with pytest.raises(CounterExhausted):
        alice.encrypt(b"x")
    with pytest.raises(ValueError, match="epoch 1 was already used"):
        alice.rotate(1, new_sender_key())
    with pytest.raises(ValueError, match="new sender key"):
        alice.rotate(2, first_key)
    alice.rotate(2, new_sender_key())
    assert decode_header(alice.encrypt(b"x"))[:2] == (2, 0)


def test_bad_keys_and_ids_are_refused_with_a_clear_error() -> None:
    with pytest.raises(ValueError, match="sender_key must be 32 bytes"):
        FrameEncryptor(ALICE, 1, b"short")
    with pytest.raises(ValueError, match="epoch"):
        FrameEncryptor(ALICE, -1, new_sender_key())
    with pytest.raises(ValueError, match="sender_id"):
        FrameDecryptor().set_key(-5, 1, new_sender_key())


def test_no_key_bytes_in_repr_or_errors() -> None:
    alice, bob = call()
    key = alice.sender_key
    frame = alice.encrypt(PACKETS[0])
    bob.decrypt(ALICE, frame)
    with pytest.raises(FrameRejected) as rejected:
        bob.decrypt(ALICE, frame)
    shown = repr(alice) + repr(bob) + str(rejected.value) + repr(bob.stats)
    assert str(ALICE) in repr(alice)
    for form in (key.hex(), repr(key), key.hex()[:16], str(list(key[:8]))):
        assert form not in shown
    assert not hasattr(alice, "__dict__")  # nothing outside the declared slots


@settings(max_examples=40, deadline=None)
@given(
    plaintexts=st.lists(st.binary(max_size=200), min_size=1, max_size=40),
    seed=st.randoms(use_true_random=False),
)
def test_any_plaintexts_in_any_order_decrypt_exactly_once(
    plaintexts: list[bytes], seed: random.Random
) -> None:
    alice, bob = call()
    frames = list(enumerate(alice.encrypt(plaintext) for plaintext in plaintexts))
    seed.shuffle(frames)
    for index, frame in frames:
        assert bob.decrypt(ALICE, frame) == plaintexts[index]
    for _, frame in frames:
        assert reason_of(bob, ALICE, frame) == "replay"
