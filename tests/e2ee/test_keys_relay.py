"""Device keys on the relay: signature checks, low-order refusals, atomic bundle claims."""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from nexus_protocol.e2ee import b64encode, encode_curve_key
from tests.relay.harness import RunningRelay, register

from .helpers import LOW_ORDER_X25519


def _keys(otks: int = 0) -> tuple[dict[str, Any], Ed25519PrivateKey]:
    identity = Ed25519PrivateKey.generate()
    spk = X25519PrivateKey.generate().public_key().public_bytes_raw()
    body = {
        "identity_key": b64encode(identity.public_key().public_bytes_raw()),
        "signed_prekey": b64encode(spk),
        "signed_prekey_signature": b64encode(identity.sign(encode_curve_key(spk))),
        "one_time_prekeys": [
            b64encode(X25519PrivateKey.generate().public_key().public_bytes_raw())
            for _ in range(otks)
        ],
    }
    return body, identity


def _field_codes(response: Any) -> str:
    return response.text


async def test_uploads_are_checked(relay: RunningRelay) -> None:
    user = await register(relay.api)
    path = "/users/@me/devices/{}/keys"
    body, _ = _keys(3)
    bad_sig = {**body, "signed_prekey_signature": b64encode(secrets.token_bytes(64))}
    response = await user.request("PUT", path.format("devAAAAAAAA"), json=bad_sig)
    assert response.status_code == 400 and "signed_prekey_signature" in response.text
    for point in LOW_ORDER_X25519:
        for field in ("signed_prekey", "one_time_prekeys"):
            value: Any = b64encode(point)
            bad = {**body, field: [value] if field == "one_time_prekeys" else value}
            response = await user.request("PUT", path.format("devAAAAAAAA"), json=bad)
            assert response.status_code == 400, response.text
            assert field in response.text and "KEY_LOW_ORDER" in response.text
    bad = {**body, "identity_key": b64encode(bytes(32))}
    response = await user.request("PUT", path.format("devAAAAAAAA"), json=bad)
    assert response.status_code == 400 and "identity_key" in response.text
    response = await user.request("PUT", path.format("bad id!"), json=body)
    assert response.status_code == 400
    too_many, _ = _keys(101)
    response = await user.request("PUT", path.format("devAAAAAAAA"), json=too_many)
    assert response.status_code == 400
    assert (await user.ok("PUT", path.format("devAAAAAAAA"), json=body)) == {
        "one_time_prekey_count": 3
    }
    count = await user.ok("GET", "/users/@me/devices/devAAAAAAAA/keys/count")
    assert count == {"one_time_prekey_count": 3}
    other, _ = _keys()
    response = await user.request(
        "PUT", path.format("devAAAAAAAA"), json={**other, "identity_key": other["identity_key"]}
    )
    assert response.status_code == 400 and "IDENTITY_KEY_MISMATCH" in response.text


async def test_concurrent_bundle_claims_never_share_a_one_time_prekey(
    relay: RunningRelay,
) -> None:
    owner = await register(relay.api)
    others = [await register(relay.api) for _ in range(4)]
    guild = await owner.ok("POST", "/guilds", json={"name": "keys"})
    channel = (await owner.ok("GET", f"/guilds/{guild['id']}/channels"))[0]
    invite = await owner.ok("POST", f"/channels/{channel['id']}/invites", json={})
    for other in others:
        await other.ok("POST", f"/invites/{invite['code']}", json={})
    stranger = await register(relay.api)
    body, _ = _keys(30)
    await owner.ok("PUT", "/users/@me/devices/devBBBBBBBB/keys", json=body)
    claim = f"/users/{owner.id}/devices/devBBBBBBBB/bundle"
    response = await stranger.request("POST", claim)
    assert response.status_code == 403  # shares no community
    results = await asyncio.gather(*(o.ok("POST", claim) for o in others for _ in range(10)))
    keys = [r["one_time_prekey"] for r in results]
    handed = [k for k in keys if k is not None]
    assert len(handed) == 30 and len(set(handed)) == 30
    assert keys.count(None) == 10
    listed = await others[0].ok("GET", f"/users/{owner.id}/devices")
    assert [d["device_id"] for d in listed] == ["devBBBBBBBB"]
    assert listed[0]["identity_key"] == body["identity_key"]
