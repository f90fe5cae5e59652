"""E2EE throughput: encrypt + decrypt of a 200-byte message through the Double Ratchet,
one way (symmetric ratchet only) and alternating (every message a DH ratchet step), with
sessions persisted to real SQLCipher stores as the client does, and the bare ratchet
without persistence; and, for comparison, a vodozemac Megolm group encrypt to 10 devices.

There is no named baseline in this repository; figures are absolute.

    .venv/bin/python bench/e2ee.py
"""

from __future__ import annotations

import asyncio
import secrets
import tempfile
import time
from pathlib import Path

from nexus_client.e2ee import E2EEDevice, PeerBundle, Ratchet
from nexus_client.store import LocalStore

MESSAGE = secrets.token_bytes(200)


def _bundle(device: E2EEDevice) -> PeerBundle:
    spk, sig = device.identity.signed_prekey
    return PeerBundle(device.identity_key, spk, sig, sorted(device.identity.one_time_prekeys())[0])


async def devices(tmp: Path) -> tuple[E2EEDevice, E2EEDevice]:
    a = E2EEDevice.open(LocalStore.open_with_key(tmp / "a.db", secrets.token_bytes(32)).e2ee, 1)
    b = E2EEDevice.open(LocalStore.open_with_key(tmp / "b.db", secrets.token_bytes(32)).e2ee, 2)
    await a.start_session(2, b.device_id, _bundle(b))
    _, first = await a.encrypt(2, b.device_id, MESSAGE)
    await b.decrypt(1, first)
    return a, b


async def persisted(n: int) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as tmp:
        a, b = await devices(Path(tmp))
        start = time.perf_counter()
        for _ in range(n):
            _, blob = await a.encrypt(2, b.device_id, MESSAGE)
            await b.decrypt(1, blob)
        one_way = n / (time.perf_counter() - start)
        start = time.perf_counter()
        for i in range(n):
            x, y = (a, b) if i % 2 == 0 else (b, a)
            _, blob = await x.encrypt(y.user_id, y.device_id, MESSAGE)
            await y.decrypt(x.user_id, blob)
        alternating = n / (time.perf_counter() - start)
    return one_way, alternating


async def bare(n: int) -> tuple[float, float]:
    secret = secrets.token_bytes(32)
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

    bob_priv = X25519PrivateKey.generate()
    bob_pub = bob_priv.public_key().public_bytes_raw()
    alice, first = await Ratchet.start_sending(secret, bob_pub, MESSAGE, b"ad")
    bob, _ = await Ratchet.start_receiving(secret, bob_priv.private_bytes_raw(), first, b"ad")
    start = time.perf_counter()
    for _ in range(n):
        await bob.decrypt_message(await alice.encrypt_message(MESSAGE, b"ad"), b"ad")
    one_way = n / (time.perf_counter() - start)
    start = time.perf_counter()
    for i in range(n):
        x, y = (alice, bob) if i % 2 == 0 else (bob, alice)
        await y.decrypt_message(await x.encrypt_message(MESSAGE, b"ad"), b"ad")
    alternating = n / (time.perf_counter() - start)
    return one_way, alternating


def megolm(n: int) -> tuple[float, float] | None:
    try:
        import vodozemac
    except ImportError:
        return None
    outbound = vodozemac.GroupSession()
    inbound = [vodozemac.InboundGroupSession(outbound.session_key) for _ in range(10)]
    start = time.perf_counter()
    for _ in range(n):
        outbound.encrypt(MESSAGE)
    encrypt_rate = n / (time.perf_counter() - start)
    messages = [outbound.encrypt(MESSAGE) for _ in range(n)]
    start = time.perf_counter()
    for message in messages:
        for session in inbound:
            session.decrypt(message)
    per_message_all_devices = n / (time.perf_counter() - start)
    return encrypt_rate, per_message_all_devices


def main() -> None:
    n = 2000
    one_way, alternating = asyncio.run(bare(n))
    bare_one_way = one_way
    print(f"double ratchet, bare        one way:     {one_way:8.0f} msg/s (encrypt+decrypt)")
    print(f"double ratchet, bare        alternating: {alternating:8.0f} msg/s (DH step each)")
    one_way, alternating = asyncio.run(persisted(n // 2))
    print(f"E2EEDevice + SQLCipher      one way:     {one_way:8.0f} msg/s (encrypt+decrypt)")
    print(f"E2EEDevice + SQLCipher      alternating: {alternating:8.0f} msg/s")
    group = megolm(n)
    if group is None:
        print("vodozemac not installed: no Megolm figure")
    else:
        print(f"megolm (vodozemac)          encrypt once for 10 devices: {group[0]:8.0f} msg/s")
        print(f"megolm (vodozemac)          decrypt on all 10 devices:   {group[1]:8.0f} msg/s")
        pairwise = bare_one_way / 10
        print(f"pairwise fan-out to 10 devices (bare one-way / 10): ~{pairwise:.0f} msg/s")
    print("No named baseline in this repository: absolute figures on this machine.")


if __name__ == "__main__":
    main()
