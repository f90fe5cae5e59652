"""Device keys: identity keys, signed prekeys and one-time prekeys (public halves only)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from .schema import devices, message_envelopes, one_time_prekeys


@dataclass(frozen=True, slots=True)
class DeviceRecord:
    user_id: int
    device_id: str
    name: str
    identity_key: bytes
    signed_prekey: bytes | None
    signed_prekey_signature: bytes | None


def _device(row: object) -> DeviceRecord:
    mapping = row._mapping  # type: ignore[attr-defined]
    return DeviceRecord(
        user_id=mapping["user_id"],
        device_id=mapping["device_id"],
        name=mapping["name"],
        identity_key=bytes(mapping["identity_key"]),
        signed_prekey=None if mapping["signed_prekey"] is None else bytes(mapping["signed_prekey"]),
        signed_prekey_signature=(
            None
            if mapping["signed_prekey_signature"] is None
            else bytes(mapping["signed_prekey_signature"])
        ),
    )


_DEVICE_COLUMNS = (
    devices.c.user_id,
    devices.c.device_id,
    devices.c.name,
    devices.c.identity_key,
    devices.c.signed_prekey,
    devices.c.signed_prekey_signature,
)


async def get_device(tx: AsyncConnection, user_id: int, device_id: str) -> DeviceRecord | None:
    row = (
        await tx.execute(
            select(*_DEVICE_COLUMNS).where(
                devices.c.user_id == user_id, devices.c.device_id == device_id
            )
        )
    ).first()
    return None if row is None else _device(row)


async def devices_of_users(tx: AsyncConnection, user_ids: set[int]) -> list[DeviceRecord]:
    rows = await tx.execute(
        select(*_DEVICE_COLUMNS)
        .where(devices.c.user_id.in_(user_ids))
        .order_by(devices.c.user_id, devices.c.device_id)
    )
    return [_device(row) for row in rows]


async def insert_device(
    tx: AsyncConnection,
    *,
    user_id: int,
    device_id: str,
    name: str,
    identity_key: bytes,
    created_at: datetime,
) -> None:
    await tx.execute(
        insert(devices).values(
            user_id=user_id,
            device_id=device_id,
            name=name,
            identity_key=identity_key,
            created_at=created_at,
        )
    )


async def set_signed_prekey(
    tx: AsyncConnection, user_id: int, device_id: str, public_key: bytes, signature: bytes
) -> None:
    await tx.execute(
        update(devices)
        .where(devices.c.user_id == user_id, devices.c.device_id == device_id)
        .values(signed_prekey=public_key, signed_prekey_signature=signature)
    )


async def add_one_time_prekeys(
    tx: AsyncConnection, user_id: int, device_id: str, keys: list[tuple[int, bytes]]
) -> None:
    """Add ``(id, public_key)`` pairs; a key already stored is skipped, not doubled."""
    existing = {
        bytes(row[0])
        for row in await tx.execute(
            select(one_time_prekeys.c.public_key).where(
                one_time_prekeys.c.user_id == user_id, one_time_prekeys.c.device_id == device_id
            )
        )
    }
    fresh = [(key_id, key) for key_id, key in keys if key not in existing]
    if fresh:
        await tx.execute(
            insert(one_time_prekeys),
            [
                {"id": key_id, "user_id": user_id, "device_id": device_id, "public_key": key}
                for key_id, key in fresh
            ],
        )


async def count_one_time_prekeys(tx: AsyncConnection, user_id: int, device_id: str) -> int:
    count = (
        await tx.execute(
            select(func.count()).where(
                one_time_prekeys.c.user_id == user_id, one_time_prekeys.c.device_id == device_id
            )
        )
    ).scalar_one()
    return int(count)


async def take_one_time_prekey(tx: AsyncConnection, user_id: int, device_id: str) -> bytes | None:
    """Remove and return the oldest one-time prekey. On PostgreSQL the row is locked
    (SKIP LOCKED: concurrent claims take different rows); on SQLite writes are serial.
    Either way the DELETE's row count decides: a claim that deleted nothing tries again,
    so no key is ever handed out twice."""
    for _ in range(50):
        row = (
            await tx.execute(
                select(one_time_prekeys.c.id, one_time_prekeys.c.public_key)
                .where(
                    one_time_prekeys.c.user_id == user_id,
                    one_time_prekeys.c.device_id == device_id,
                )
                .order_by(one_time_prekeys.c.id)
                .limit(1)
                .with_for_update(skip_locked=True)
            )
        ).first()
        if row is None:
            return None
        deleted = await tx.execute(delete(one_time_prekeys).where(one_time_prekeys.c.id == row.id))
        if deleted.rowcount == 1:
            return bytes(row.public_key)
    return None


async def delete_device(tx: AsyncConnection, user_id: int, device_id: str) -> bool:
    """Forget a device: its keys, its one-time prekeys, and the envelopes addressed to it
    (nobody else can read those). False if there was no such device."""
    await tx.execute(
        delete(one_time_prekeys).where(
            one_time_prekeys.c.user_id == user_id, one_time_prekeys.c.device_id == device_id
        )
    )
    await tx.execute(
        delete(message_envelopes).where(
            message_envelopes.c.user_id == user_id, message_envelopes.c.device_id == device_id
        )
    )
    deleted = await tx.execute(
        delete(devices).where(devices.c.user_id == user_id, devices.c.device_id == device_id)
    )
    return bool(deleted.rowcount)
