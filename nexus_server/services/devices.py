"""Device keys (a Nexus extension): upload and replenish, list, and claim a prekey bundle.

The relay stores public keys only. It checks what it can without any secret: sizes, that
no key is of small order, and that the signed prekey's signature verifies under the
identity key (Ed25519), so a bundle it hands out was at least signed by that device.
"""

from __future__ import annotations

from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy.exc import IntegrityError

from nexus_protocol.e2ee import (
    MAX_PREKEYS_STORED,
    UploadKeysBody,
    b64decode,
    b64encode,
    encode_curve_key,
    is_low_order_ed25519,
    is_low_order_x25519,
    is_valid_device_id,
)
from nexus_protocol.errors import ErrorCode

from ..errors import BadRequest, InvalidForm, unknown
from ..store import devices as device_store
from ..store import dms as dm_store
from ..store import users as user_store
from ..store.devices import DeviceRecord
from .accounts import Principal
from .context import Context
from .permissions import check_may_contact


def check_device_id(device_id: str) -> str:
    if not is_valid_device_id(device_id):
        raise InvalidForm.field(
            "device_id", "DEVICE_ID_INVALID", "8 to 64 characters from A-Z a-z 0-9 _ -"
        )
    return device_id


def _key(field: str | tuple[str | int, ...], text: str, *, edwards: bool = False) -> bytes:
    try:
        raw = b64decode(text)
    except ValueError:
        raise InvalidForm.field(field, "KEY_INVALID", "Not valid base64") from None
    if len(raw) != 32:
        raise InvalidForm.field(field, "KEY_INVALID", "A public key is 32 bytes")
    low_order = is_low_order_ed25519(raw) if edwards else is_low_order_x25519(raw)
    if low_order:
        raise InvalidForm.field(
            field, "KEY_LOW_ORDER", "Public key is all zeros or of small order: refused"
        )
    return raw


def _verify_signed_prekey(identity_key: bytes, prekey: bytes, signature_text: str) -> bytes:
    field = "signed_prekey_signature"
    try:
        signature = b64decode(signature_text)
    except ValueError:
        raise InvalidForm.field(field, "SIGNATURE_INVALID", "Not valid base64") from None
    try:
        Ed25519PublicKey.from_public_bytes(identity_key).verify(signature, encode_curve_key(prekey))
    except (InvalidSignature, ValueError):
        raise InvalidForm.field(
            field, "SIGNATURE_INVALID", "Signature does not verify under identity_key"
        ) from None
    return signature


def device_json(device: DeviceRecord) -> dict[str, Any]:
    return {
        "user_id": str(device.user_id),
        "device_id": device.device_id,
        "name": device.name,
        "identity_key": b64encode(device.identity_key),
    }


class DeviceService:
    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx

    async def check_may_contact(self, principal: Principal, other_id: int) -> None:
        async with self._ctx.db.read("may_contact") as tx:
            if await user_store.get_user(tx, other_id) is None:
                raise unknown(ErrorCode.UNKNOWN_USER, "User")
            share_a_guild = await dm_store.share_a_guild(tx, principal.user_id, other_id)
            share_a_dm = await dm_store.share_a_channel(tx, principal.user_id, other_id)
        check_may_contact(
            principal.user_id, other_id, share_a_guild=share_a_guild, share_a_dm=share_a_dm
        )

    async def do_upload_keys(
        self, principal: Principal, device_id: str, body: UploadKeysBody
    ) -> dict[str, Any]:
        ctx = self._ctx
        check_device_id(device_id)
        identity_key = _key("identity_key", body.identity_key, edwards=True)
        signed: tuple[bytes, bytes] | None = None
        if body.signed_prekey is not None:
            prekey = _key("signed_prekey", body.signed_prekey)
            if body.signed_prekey_signature is None:
                raise InvalidForm.field(
                    "signed_prekey_signature", "BASE_TYPE_REQUIRED", "This field is required"
                )
            signed = (
                prekey,
                _verify_signed_prekey(identity_key, prekey, body.signed_prekey_signature),
            )
        one_time = [
            _key(("one_time_prekeys", index), text)
            for index, text in enumerate(body.one_time_prekeys)
        ]
        try:
            async with ctx.db.write("upload_keys") as tx:
                device = await device_store.get_device(tx, principal.user_id, device_id)
                if device is None:
                    if signed is None:
                        raise InvalidForm.field(
                            "signed_prekey", "BASE_TYPE_REQUIRED", "A new device needs one"
                        )
                    await device_store.insert_device(
                        tx,
                        user_id=principal.user_id,
                        device_id=device_id,
                        name=body.name,
                        identity_key=identity_key,
                        created_at=ctx.clock(),
                    )
                elif device.identity_key != identity_key:
                    # A new identity is a new device: peers must see it as such.
                    raise InvalidForm.field(
                        "identity_key",
                        "IDENTITY_KEY_MISMATCH",
                        "This device has another identity key; register a new device id",
                    )
                if signed is not None:
                    await device_store.set_signed_prekey(
                        tx, principal.user_id, device_id, signed[0], signed[1]
                    )
                count = await device_store.count_one_time_prekeys(tx, principal.user_id, device_id)
                if count + len(one_time) > MAX_PREKEYS_STORED:
                    raise InvalidForm.field(
                        "one_time_prekeys",
                        "TOO_MANY_PREKEYS",
                        f"At most {MAX_PREKEYS_STORED} one-time prekeys may wait on the relay",
                    )
                await device_store.add_one_time_prekeys(
                    tx, principal.user_id, device_id, [(ctx.ids.next_id(), k) for k in one_time]
                )
                count = await device_store.count_one_time_prekeys(tx, principal.user_id, device_id)
        except IntegrityError:
            raise BadRequest(
                ErrorCode.GENERAL, "Concurrent upload for this device; retry"
            ) from None
        return {"one_time_prekey_count": count}

    async def key_count(self, principal: Principal, device_id: str) -> dict[str, Any]:
        check_device_id(device_id)
        async with self._ctx.db.read("key_count") as tx:
            device = await device_store.get_device(tx, principal.user_id, device_id)
            if device is None:
                raise unknown(ErrorCode.UNKNOWN_DEVICE, "Device")
            count = await device_store.count_one_time_prekeys(tx, principal.user_id, device_id)
        return {"one_time_prekey_count": count}

    async def do_remove_device(self, principal: Principal, device_id: str) -> None:
        """Remove one of the caller's own devices: its bundle can no longer be claimed and
        it is no longer listed, so nobody encrypts to it any more; peers drop it when they
        next list the user's devices."""
        check_device_id(device_id)
        async with self._ctx.db.write("remove_device") as tx:
            if not await device_store.delete_device(tx, principal.user_id, device_id):
                raise unknown(ErrorCode.UNKNOWN_DEVICE, "Device")

    async def list_devices(self, principal: Principal, user_id: int) -> list[dict[str, Any]]:
        await self.check_may_contact(principal, user_id)
        async with self._ctx.db.read("list_devices") as tx:
            found = await device_store.devices_of_users(tx, {user_id})
        return [device_json(d) for d in found if d.signed_prekey is not None]

    async def do_claim_bundle(
        self, principal: Principal, user_id: int, device_id: str
    ) -> dict[str, Any]:
        """A prekey bundle for one device, consuming one of its one-time prekeys."""
        check_device_id(device_id)
        await self.check_may_contact(principal, user_id)
        async with self._ctx.db.write("claim_bundle") as tx:
            device = await device_store.get_device(tx, user_id, device_id)
            if device is None or device.signed_prekey is None:
                raise unknown(ErrorCode.UNKNOWN_DEVICE, "Device")
            one_time = await device_store.take_one_time_prekey(tx, user_id, device_id)
        assert device.signed_prekey_signature is not None
        return {
            **device_json(device),
            "signed_prekey": b64encode(device.signed_prekey),
            "signed_prekey_signature": b64encode(device.signed_prekey_signature),
            "one_time_prekey": None if one_time is None else b64encode(one_time),
        }
