"""The cryptographic properties of pairwise sessions, on real SQLCipher stores."""

from __future__ import annotations

import random
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from nexus_client.e2ee import (
    E2EEDevice,
    E2EEError,
    PeerBundle,
    Ratchet,
    Undecryptable,
    UndecryptableReason,
    safety_number,
)
from nexus_client.e2ee._wire import decode
from nexus_protocol.e2ee import is_low_order_ed25519, is_low_order_x25519

from .helpers import LOW_ORDER_X25519, bundle_of, pair


def _devices(make_store: Any) -> tuple[E2EEDevice, E2EEDevice]:
    return E2EEDevice.open(make_store("a").e2ee, 1), E2EEDevice.open(make_store("b").e2ee, 2)


async def test_tampered_ciphertext_header_and_routing_are_rejected(make_store: Any) -> None:
    a, b = _devices(make_store)
    await pair(a, b)
    _, first = await a.encrypt(2, b.device_id, b"hello")
    assert (await b.decrypt(1, first)).plaintext == b"hello"
    _, second = await a.encrypt(2, b.device_id, b"secret")
    for position in (len(second) - 1, len(second) - 40, len(second) - 60):
        bad = bytearray(second)
        bad[position] ^= 0x01
        with pytest.raises(Undecryptable) as caught:
            await b.decrypt(1, bytes(bad))
        assert caught.value.reason in (UndecryptableReason.TAMPERED, UndecryptableReason.BAD_KEY)
    # Attributed to another sender by the relay: authentication fails too.
    with pytest.raises(Undecryptable):
        await b.decrypt(3, second)
    assert (await b.decrypt(1, second)).plaintext == b"secret"  # the original still works


async def test_replayed_envelopes_are_rejected_even_after_a_restart(make_store: Any) -> None:
    a, b = _devices(make_store)
    await pair(a, b)
    _, prekey_message = await a.encrypt(2, b.device_id, b"one")
    _, later = await a.encrypt(2, b.device_id, b"two")
    await b.decrypt(1, prekey_message)
    await b.decrypt(1, later)
    for envelope in (prekey_message, later):
        with pytest.raises(Undecryptable) as caught:
            await b.decrypt(1, envelope)
        assert caught.value.reason is UndecryptableReason.REPLAY
    reopened = E2EEDevice.open(make_store("b").e2ee, 2)
    with pytest.raises(Undecryptable) as caught:
        await reopened.decrypt(1, later)
    assert caught.value.reason is UndecryptableReason.REPLAY


def test_the_low_order_list_is_exactly_what_x25519_refuses() -> None:
    for point in LOW_ORDER_X25519:
        assert is_low_order_x25519(point)
        if point[31] & 0x80 == 0:  # X25519 ignores the top bit; those are refused anyway
            with pytest.raises(ValueError):
                X25519PrivateKey.generate().exchange(X25519PublicKey.from_public_bytes(point))
    for _ in range(200):
        key = X25519PrivateKey.generate().public_key().public_bytes_raw()
        assert not is_low_order_x25519(key)
    assert is_low_order_ed25519(bytes(32))
    assert is_low_order_ed25519((1).to_bytes(32, "little"))


async def test_low_order_peer_keys_are_refused_by_the_client(make_store: Any) -> None:
    a, b = _devices(make_store)
    good = bundle_of(b)
    for point in LOW_ORDER_X25519:
        for bad in (
            PeerBundle(good.identity_key, point, good.signed_prekey_signature, None),
            PeerBundle(good.identity_key, good.signed_prekey, good.signed_prekey_signature, point),
        ):
            with pytest.raises(E2EEError):
                await a.start_session(2, b.device_id, bad)
    with pytest.raises(E2EEError):
        await a.start_session(
            2,
            b.device_id,
            PeerBundle(bytes(32), good.signed_prekey, good.signed_prekey_signature, None),
        )
    # An incoming message whose ratchet key is of small order never reaches X25519.
    await pair(a, b)
    _, envelope = await a.encrypt(2, b.device_id, b"x")
    parsed = decode(envelope)
    head = envelope[: len(parsed.header_bytes()) - 40]
    forged = head + bytes(32) + envelope[len(head) + 32 :]
    with pytest.raises(Undecryptable) as caught:
        await b.decrypt(1, forged)
    assert caught.value.reason is UndecryptableReason.BAD_KEY


async def test_out_of_order_and_dropped_messages_up_to_the_window(make_store: Any) -> None:
    a, b = _devices(make_store)
    await pair(a, b)
    sent = [await a.encrypt(2, b.device_id, f"m{i}".encode()) for i in range(60)]
    rng = random.Random(5)
    delivered = [i for i in range(60) if rng.random() > 0.3]
    rng.shuffle(delivered)
    for i in delivered:
        assert (await b.decrypt(1, sent[i][1])).plaintext == f"m{i}".encode()
    # 2,000 skipped in one go (libsignal's window): the 2,001st still decrypts, and a
    # skipped one arriving afterwards does too.
    a, b = E2EEDevice.open(make_store("c").e2ee, 1), E2EEDevice.open(make_store("d").e2ee, 2)
    await pair(a, b)
    batch = [await a.encrypt(2, b.device_id, f"n{i}".encode()) for i in range(2001)]
    assert (await b.decrypt(1, batch[-1][1])).plaintext == b"n2000"
    assert (await b.decrypt(1, batch[7][1])).plaintext == b"n7"
    # Beyond the window: refused with a reason, not computed.
    far = [await a.encrypt(2, b.device_id, b"f") for _ in range(2002)]
    with pytest.raises(Undecryptable) as caught:
        await b.decrypt(1, far[-1][1])
    assert caught.value.reason is UndecryptableReason.TOO_FAR_AHEAD


def _stolen(device: E2EEDevice, peer: E2EEDevice) -> str:
    ratchet = device._sessions[(peer.user_id, peer.device_id)][0].ratchet
    assert ratchet is not None
    return ratchet


async def test_forward_secrecy_a_stolen_state_cannot_read_earlier_messages(make_store: Any) -> None:
    a, b = _devices(make_store)
    await pair(a, b)
    earlier = []
    for i in range(5):
        _, envelope = await a.encrypt(2, b.device_id, f"early {i}".encode())
        await b.decrypt(1, envelope)
        earlier.append(envelope)
        _, reply = await b.encrypt(1, a.device_id, b"ack")
        await a.decrypt(2, reply)
    stolen = _stolen(b, a)
    session = b._sessions[(1, a.device_id)][0]
    for envelope in earlier:
        parsed = decode(envelope)
        thief = Ratchet.loads(stolen)  # a fresh session object from the stolen state
        message = _message(parsed)
        with pytest.raises(Exception):  # noqa: B017 - any failure: duplicate or auth
            await thief.decrypt_message(message, session.ad + _routing(a, b))


async def test_post_compromise_a_stale_state_cannot_read_after_a_round_trip(
    make_store: Any,
) -> None:
    a, b = _devices(make_store)
    await pair(a, b)
    _, first = await a.encrypt(2, b.device_id, b"hi")
    await b.decrypt(1, first)
    stale = _stolen(b, a)  # the attacker's copy, taken now
    session = b._sessions[(1, a.device_id)][0]
    thief = Ratchet.loads(stale)
    ad = session.ad + _routing(a, b)
    # The keys in the stolen state still open what a sends before b's next fresh key...
    _, reply = await b.encrypt(1, a.device_id, b"reply")
    await a.decrypt(2, reply)
    _, mid = await a.encrypt(2, b.device_id, b"before healing")
    await b.decrypt(1, mid)
    assert await thief.decrypt_message(_message(decode(mid)), ad) == b"before healing"
    # ...but after the next round trip (b's new ratchet key, unknown to the thief, is
    # answered by a), the conversation has healed.
    _, reply2 = await b.encrypt(1, a.device_id, b"reply 2")
    await a.decrypt(2, reply2)
    _, after = await a.encrypt(2, b.device_id, b"after the round trip")
    assert (await b.decrypt(1, after)).plaintext == b"after the round trip"
    with pytest.raises(Exception):  # noqa: B017 - authentication fails
        await thief.decrypt_message(_message(decode(after)), ad)


def _message(parsed: Any) -> Any:
    import doubleratchet

    return doubleratchet.EncryptedMessage(
        doubleratchet.Header(
            parsed.ratchet_pub, parsed.previous_chain_length, parsed.message_number
        ),
        parsed.ciphertext,
    )


def _routing(a: E2EEDevice, b: E2EEDevice) -> bytes:
    return f"{a.user_id}:{a.device_id}>{b.user_id}:{b.device_id}".encode()


async def test_safety_numbers_match_and_change_with_a_key(make_store: Any) -> None:
    a, b = _devices(make_store)
    number = safety_number(1, [a.identity_key], 2, [b.identity_key])
    assert len(number) == 60 and number.isdigit()
    assert number == safety_number(2, [b.identity_key], 1, [a.identity_key])
    b_new = E2EEDevice.open(make_store("b-reinstalled").e2ee, 2)
    assert safety_number(1, [a.identity_key], 2, [b_new.identity_key]) != number
    # A second device of b's changes it too.
    assert safety_number(1, [a.identity_key], 2, [b.identity_key, b_new.identity_key]) != number
