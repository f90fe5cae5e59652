"""One-to-one DM channels and their end-to-end encrypted messages.

The relay stores and routes envelopes: (recipient user, device, type, ciphertext). It
never sees plaintext, and it cannot tell a message from an edit, a deletion, a reply or
a reaction: in a DM those are all ciphertext (see docs/e2ee.md). A message row keeps
its id, author, nonce and time, with empty content.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

from sqlalchemy.exc import IntegrityError

from nexus_protocol.e2ee import EnvelopeType, b64decode, b64encode
from nexus_protocol.errors import ErrorCode
from nexus_protocol.models import ChannelType
from nexus_protocol.requests import CreateMessageBody

from ..errors import BadRequest, InvalidForm, unknown
from ..events import Event
from ..store import channels as channel_store
from ..store import devices as device_store
from ..store import dms as dm_store
from ..store import messages as message_store
from ..store import users as user_store
from ..store.dms import EnvelopeRecord
from ..store.records import ChannelRecord
from .accounts import Principal
from .context import Context
from .devices import DeviceService, check_device_id
from .messages import MessageService
from .permissions import check_dm_recipient
from .render import user_json

_ENVELOPE_TYPES = {EnvelopeType.PREKEY: 1, EnvelopeType.MESSAGE: 2}
_ENVELOPE_NAMES = {number: name.value for name, number in _ENVELOPE_TYPES.items()}


def check_envelopes(
    given: Sequence[Any], message_id: int, readers: Collection[int], not_a_reader: str
) -> list[EnvelopeRecord]:
    """Envelopes as the store keeps them: one per (reader, device), each addressed to
    someone in ``readers``, each ciphertext valid base64. Errors name the envelope."""
    envelopes: list[EnvelopeRecord] = []
    seen: set[tuple[int, str]] = set()
    for index, envelope in enumerate(given):
        if envelope.user_id not in readers:
            raise InvalidForm.field(
                ("envelopes", index, "user_id"), "NOT_A_RECIPIENT", not_a_reader
            )
        key = (envelope.user_id, envelope.device_id)
        if key in seen:
            raise InvalidForm.field(
                ("envelopes", index, "device_id"), "DUPLICATE", "One envelope per device"
            )
        seen.add(key)
        try:
            ciphertext = b64decode(envelope.ciphertext)
        except ValueError:
            raise InvalidForm.field(
                ("envelopes", index, "ciphertext"), "BASE64", "Not valid base64"
            ) from None
        envelopes.append(
            EnvelopeRecord(
                message_id=message_id,
                user_id=envelope.user_id,
                device_id=envelope.device_id,
                type=_ENVELOPE_TYPES[envelope.type],
                ciphertext=ciphertext,
            )
        )
    return envelopes


def envelope_json(envelope: EnvelopeRecord) -> dict[str, Any]:
    return {
        "user_id": str(envelope.user_id),
        "device_id": envelope.device_id,
        "type": _ENVELOPE_NAMES[envelope.type],
        "ciphertext": b64encode(envelope.ciphertext),
    }


class DMService:
    def __init__(self, ctx: Context, devices: DeviceService, messages: MessageService) -> None:
        self._ctx = ctx
        self._devices = devices
        self._messages = messages
        # A one-to-one DM's recipients never change: remembered for good (group DMs'
        # do, so those are read every time).
        self._recipients: dict[int, tuple[int, ...]] = {}

    async def recipients(self, channel_id: int) -> tuple[int, ...] | None:
        """The DM's recipients, or None if ``channel_id`` is not a DM."""
        known = self._recipients.get(channel_id)
        if known is not None:
            return known
        async with self._ctx.db.read("dm_recipients") as tx:
            found = await dm_store.recipients(tx, channel_id)
            channel = await channel_store.get_channel(tx, channel_id) if found else None
        if not found or channel is None or channel.guild_id is not None:
            return None
        if channel.type == ChannelType.DM:
            # A group DM's recipients change (and other nodes change them): not cached.
            self._recipients[channel_id] = found
        return found

    async def check_dm(self, principal: Principal, channel_id: int) -> tuple[int, ...]:
        recipients = await self.recipients(channel_id)
        if recipients is None:
            raise unknown(ErrorCode.UNKNOWN_CHANNEL, "Channel")
        check_dm_recipient(recipients, principal.user_id)
        return recipients

    async def dm_json(
        self, channel_id: int, recipients: tuple[int, ...], viewer: int
    ) -> dict[str, Any]:
        async with self._ctx.db.read("dm_json") as tx:
            channel = await channel_store.get_channel(tx, channel_id)
            users = await user_store.get_users(tx, set(recipients))
        assert channel is not None
        return self._render_dm(channel, recipients, users, viewer)

    @staticmethod
    def _render_dm(
        channel: ChannelRecord,
        recipients: tuple[int, ...],
        users: dict[int, Any],
        viewer: int,
    ) -> dict[str, Any]:
        last_message_id = channel.last_message_id
        body: dict[str, Any] = {
            "id": str(channel.id),
            "type": channel.type,
            "last_message_id": str(last_message_id) if last_message_id else None,
            "recipients": [user_json(users[u]) for u in recipients if u != viewer and u in users],
            "flags": 0,
            "e2ee": True,  # Nexus extension: every DM and group DM is end-to-end encrypted
        }
        if channel.type == ChannelType.GROUP_DM:
            body["owner_id"] = str(channel.owner_id) if channel.owner_id is not None else None
            body["name"] = None
        return body

    async def private_channels(self, user_id: int) -> list[dict[str, Any]]:
        async with self._ctx.db.read("private_channels") as tx:
            dms = await dm_store.dms_of_user(tx, user_id)
            users = await user_store.get_users(tx, {u for r in dms.values() for u in r})
            channels = [await channel_store.get_channel(tx, channel_id) for channel_id in dms]
        self._recipients.update(
            {c.id: dms[c.id] for c in channels if c is not None and c.type == ChannelType.DM}
        )
        return [self._render_dm(c, dms[c.id], users, user_id) for c in channels if c is not None]

    async def do_open_dm(self, principal: Principal, recipient_id: int) -> dict[str, Any]:
        """The DM between the caller and ``recipient_id``, created on first use."""
        ctx = self._ctx
        if recipient_id == principal.user_id:
            raise InvalidForm.field("recipient_id", "DM_SELF", "Cannot open a DM with yourself")
        await self._devices.check_may_contact(principal, recipient_id)
        recipients = tuple(sorted((principal.user_id, recipient_id)))
        created = False
        try:
            async with ctx.db.write("open_dm") as tx:
                channel_id = await dm_store.find_dm(tx, principal.user_id, recipient_id)
                if channel_id is None:
                    channel_id = ctx.ids.next_id()
                    await channel_store.insert_channel(
                        tx, id=channel_id, guild_id=None, type=int(ChannelType.DM), position=0
                    )
                    await dm_store.insert_dm(tx, channel_id, principal.user_id, recipient_id)
                    created = True
        except IntegrityError:
            # The other side opened it at the same moment: theirs is the DM.
            async with ctx.db.read("find_dm") as tx:
                channel_id = await dm_store.find_dm(tx, principal.user_id, recipient_id)
            assert channel_id is not None
        self._recipients[channel_id] = recipients
        if created:
            for user_id in recipients:
                body = await self.dm_json(channel_id, recipients, user_id)
                await ctx.publish([Event.of("CHANNEL_CREATE", body, frozenset({user_id}))])
        return await self.dm_json(channel_id, recipients, principal.user_id)

    async def list_dms(self, principal: Principal) -> list[dict[str, Any]]:
        return await self.private_channels(principal.user_id)

    async def get_dm(self, principal: Principal, channel_id: int) -> dict[str, Any]:
        recipients = await self.check_dm(principal, channel_id)
        return await self.dm_json(channel_id, recipients, principal.user_id)

    async def do_send(
        self, principal: Principal, channel_id: int, body: CreateMessageBody
    ) -> dict[str, Any]:
        ctx = self._ctx
        recipients = await self.check_dm(principal, channel_id)
        if body.content or body.envelopes is None:
            raise BadRequest(
                ErrorCode.CANNOT_EXECUTE_ON_DM,
                "DMs are end-to-end encrypted: send envelopes and no content",
            )
        if body.message_reference is not None:
            # A reply names its target inside the ciphertext, where the relay cannot see it.
            raise InvalidForm.field(
                "message_reference", "DM_ENCRYPTED", "In a DM, replies travel encrypted"
            )
        message_id = ctx.ids.next_id()
        envelopes = check_envelopes(body.envelopes, message_id, recipients, "Not in this DM")
        nonce = str(body.nonce) if body.nonce is not None else None
        try:
            async with ctx.db.write("send_dm") as tx:
                known = await device_store.devices_of_users(tx, set(recipients))
                known_keys = {(d.user_id, d.device_id) for d in known}
                addressed_devices = {(e.user_id, e.device_id) for e in envelopes}
                for index, addressed in enumerate(envelopes):
                    if (addressed.user_id, addressed.device_id) not in known_keys:
                        raise InvalidForm.field(
                            ("envelopes", index, "device_id"), "UNKNOWN_DEVICE", "Unknown device"
                        )
                # Every device of the other recipients must get the message; the sender's
                # client learns of a device it missed from this error and retries.
                missing = sorted(
                    f"{d.user_id}:{d.device_id}"
                    for d in known
                    if d.user_id != principal.user_id
                    and d.signed_prekey is not None
                    and (d.user_id, d.device_id) not in addressed_devices
                )
                if missing:
                    raise InvalidForm.field(
                        "envelopes", "MISSING_DEVICES", "Missing devices: " + " ".join(missing)
                    )
                record = await dm_store.insert_encrypted_message(
                    tx,
                    message_id=message_id,
                    channel_id=channel_id,
                    guild_id=None,
                    author_id=principal.user_id,
                    nonce=nonce,
                )
                await dm_store.insert_envelopes(tx, envelopes)
                await channel_store.set_last_message(tx, channel_id, message_id)
                rendered = (
                    await self._messages.render(tx, [record], principal.user_id, fresh=True)
                )[0]
        except IntegrityError:
            async with ctx.db.read("find_dm_nonce") as tx:
                existing = (
                    await message_store.find_by_nonce(tx, principal.user_id, nonce)
                    if nonce is not None
                    else None
                )
                if existing is None:
                    raise
                rendered = (await self._messages.render(tx, [existing], principal.user_id))[0]
                mine = await dm_store.envelopes_of(tx, [existing.id], user_id=principal.user_id)
            return {**rendered, "envelopes": [envelope_json(e) for e in mine]}
        events = []
        for user_id in recipients:
            theirs = [envelope_json(e) for e in envelopes if e.user_id == user_id]
            if theirs:
                payload = {**rendered, "envelopes": theirs}
                events.append(Event.of("MESSAGE_CREATE", payload, frozenset({user_id})))
        await ctx.publish(events)
        mine_json = [envelope_json(e) for e in envelopes if e.user_id == principal.user_id]
        return {**rendered, "envelopes": mine_json}

    async def list_messages(
        self,
        principal: Principal,
        channel_id: int,
        *,
        device_id: str,
        before: int | None,
        after: int | None,
        limit: int,
    ) -> list[dict[str, Any]]:
        """History, newest first, each message with the envelope for the caller's device
        (an empty list where the device got none: it did not exist yet)."""
        await self.check_dm(principal, channel_id)
        check_device_id(device_id)
        async with self._ctx.db.read("list_dm_messages") as tx:
            records = await message_store.list_messages(
                tx, channel_id, before=before, after=after, limit=limit
            )
            rendered = await self._messages.render(tx, records, principal.user_id)
            mine = await dm_store.envelopes_of(
                tx, [r.id for r in records], user_id=principal.user_id, device_id=device_id
            )
            group = await dm_store.group_ciphertexts_of(tx, [r.id for r in records])
        by_message = {e.message_id: envelope_json(e) for e in mine}
        return [
            {
                **body,
                "envelopes": [by_message[r.id]] if r.id in by_message else [],
                **({"megolm": b64encode(group[r.id])} if r.id in group else {}),
            }
            for body, r in zip(rendered, records, strict=True)
        ]
