from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from sqlalchemy import LargeBinary, String, Text, inspect, select, text

from nexus_client import Client
from nexus_client.e2ee import E2EEDevice, PeerBundle
from nexus_protocol.e2ee import b64encode
from nexus_server.store.database import nullpool_engine
from tests.relay.harness import RunningRelay

PASSWORD = "correct horse battery"


async def online_client(relay: RunningRelay, store: Any, name: str, register: bool) -> Client:
    """A client of ``name`` with its own encrypted store, registered or logged in, started."""
    client = Client(relay.settings.base_url, store=store)
    if register:
        await client.register(name, PASSWORD)
    else:
        await client.login(name, PASSWORD)
    await client.start()
    return client


async def wait_until(predicate: Any, timeout: float = 10.0) -> None:
    for _ in range(int(timeout / 0.02)):
        if predicate():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("timed out")


def user_id(client: Client) -> int:
    assert client.user is not None
    return client.user.id


_handed_out: set[bytes] = set()


def bundle_of(device: E2EEDevice, *, one_time: bool = True) -> PeerBundle:
    """As the relay would hand it out: a one-time prekey is never handed out twice."""
    spk, sig = device.identity.signed_prekey
    otk = None
    if one_time:
        otk = next(k for k in sorted(device.identity.one_time_prekeys()) if k not in _handed_out)
        _handed_out.add(otk)
    return PeerBundle(device.identity_key, spk, sig, otk)


async def pair(a: E2EEDevice, b: E2EEDevice) -> None:
    """``a`` starts a session with ``b`` from ``b``'s bundle."""
    await a.start_session(b.user_id, b.device_id, bundle_of(b))


LOW_ORDER_X25519 = [
    bytes(32),
    (1).to_bytes(32, "little"),
    bytes.fromhex("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800"),
    bytes.fromhex("5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157"),
    bytes.fromhex("ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"),
    bytes.fromhex("edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"),
    bytes.fromhex("eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"),
    bytes.fromhex("cdeb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b880"),
    bytes.fromhex("4c9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f11d7"),
    bytes.fromhex("d9ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"),
    bytes.fromhex("daffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"),
    bytes.fromhex("dbffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"),
]

Json = dict[str, Any]


async def assert_relay_holds_none_of(
    relay: RunningRelay, plaintexts: list[str], ciphertext_table: str
) -> None:
    """Search the relay's storage for any of ``plaintexts`` (UTF-8, UTF-16, base64): every
    file of a SQLite relay's data directory (the relay is stopped first, so its WAL is read
    as it is), or every text and binary column of every PostgreSQL table."""
    needles = [p.encode() for p in plaintexts] + [p.encode("utf-16-le") for p in plaintexts]
    needles += [b64encode(p.encode()).encode() for p in plaintexts]
    url = relay.settings.database
    if url.startswith("sqlite"):
        await relay.stop()
        files = [p for p in Path(relay.settings.data_dir).rglob("*") if p.is_file()]
        assert files
        for path in files:
            raw = path.read_bytes()
            for needle in needles:
                assert needle not in raw, (path, needle)
        return
    engine = nullpool_engine(url)
    try:
        async with engine.connect() as connection:
            names = await connection.run_sync(lambda c: inspect(c).get_table_names())
            assert ciphertext_table in names
            for name in names:
                columns = await connection.run_sync(lambda c, n=name: inspect(c).get_columns(n))
                for column in columns:
                    if not isinstance(column["type"], String | Text | LargeBinary):
                        continue
                    rows = await connection.execute(
                        select(text(f'"{column["name"]}"')).select_from(text(f'"{name}"'))
                    )
                    for (value,) in rows:
                        raw = value.encode() if isinstance(value, str) else bytes(value or b"")
                        for needle in needles:
                            assert needle not in raw, (name, column["name"])
    finally:
        await engine.dispose()
