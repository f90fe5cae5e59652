"""Device keys for end-to-end encryption (Nexus extensions): /users/*/devices/*."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response

from nexus_protocol.e2ee import UploadKeysBody

from .deps import Caller, RelayDep, snowflake_param
from .strict import StrictRoute

router = APIRouter(route_class=StrictRoute, tags=["e2ee"])


def _user_id(user_id: str, caller: Caller) -> int:
    return caller.user_id if user_id == "@me" else snowflake_param(user_id, "user_id")


@router.put("/users/@me/devices/{device_id}/keys")
async def upload_keys(
    device_id: str, body: UploadKeysBody, caller: Caller, relay: RelayDep
) -> dict[str, Any]:
    """Register a device (identity key + signed prekey) or add one-time prekeys (at most
    100 per call). The signed prekey's signature must verify under the identity key."""
    return await relay.devices.do_upload_keys(caller, device_id, body)


@router.get("/users/@me/devices/{device_id}/keys/count")
async def key_count(device_id: str, caller: Caller, relay: RelayDep) -> dict[str, Any]:
    """How many one-time prekeys of this device wait on the relay (replenish when low)."""
    return await relay.devices.key_count(caller, device_id)


@router.delete("/users/@me/devices/{device_id}", status_code=204)
async def remove_device(device_id: str, caller: Caller, relay: RelayDep) -> Response:
    """Remove one of your own devices: its keys, prekeys and pending envelopes go; nobody
    can start a session with it or encrypt to it any more."""
    await relay.devices.do_remove_device(caller, device_id)
    return Response(status_code=204)


@router.get("/users/{user_id}/devices")
async def list_devices(user_id: str, caller: Caller, relay: RelayDep) -> list[dict[str, Any]]:
    return await relay.devices.list_devices(caller, _user_id(user_id, caller))


@router.post("/users/{user_id}/devices/{device_id}/bundle")
async def claim_bundle(
    user_id: str, device_id: str, caller: Caller, relay: RelayDep
) -> dict[str, Any]:
    """A prekey bundle; consumes one one-time prekey (``one_time_prekey`` is null once
    they have run out)."""
    return await relay.devices.do_claim_bundle(caller, _user_id(user_id, caller), device_id)
