from __future__ import annotations

from typing import Any

from nexus_client.e2ee import E2EEDevice, PeerBundle

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
