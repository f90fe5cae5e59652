"""Group DMs (type 3, up to 10 members) and Megolm messages in group DMs and in
end-to-end encrypted guild channels.

The relay keeps, and relays, what routing needs and nothing else:

- a group DM's members, and its **membership log**: each change is a statement signed
  by the acting member's device (``nexus_protocol.e2ee.membership_statement``); the
  relay checks the signature and the rules, stores the statement verbatim and forwards
  it, and clients check it again before they share a group key with anyone;
- one opaque Megolm ciphertext per message, plus the pairwise envelopes (session keys)
  for devices that need them. It cannot tell a text from an edit or a reaction.

Who receives a Megolm message: a group DM's members; in an encrypted guild channel, the
members who may VIEW it (``PermissionService.channel_audience``). ``audience_devices``
lists the devices of that audience, so a sender shares its session key with them.
"""

from __future__ import annotations

import secrets
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy.exc import IntegrityError

from nexus_protocol.e2ee import (
    MAX_GROUP_DM_MEMBERS,
    MembershipBody,
    MembershipOp,
    b64decode,
    b64encode,
    parse_membership_statement,
)
from nexus_protocol.errors import ErrorCode
from nexus_protocol.models import ChannelType
from nexus_protocol.permissions import Permissions
from nexus_protocol.requests import CreateMessageBody

from ..errors import BadRequest, InvalidForm, MissingPermissions, unknown
from ..events import Event
from ..store import channels as channel_store
from ..store import devices as device_store
from ..store import dms as dm_store
from ..store import messages as message_store
from ..store import users as user_store
from ..store.dms import MembershipRecord
from ..store.records import ChannelRecord
from .accounts import Principal
from .channels import ChannelService
from .context import Context
from .devices import DeviceService, device_json
from .dms import DMService, check_envelopes, envelope_json
from .messages import MessageService
from .permissions import check_dm_recipient
from .render import user_json


def membership_json(record: MembershipRecord) -> dict[str, Any]:
    return {
        "id": str(record.id),
        "user_id": str(record.user_id),
        "device_id": record.device_id,
        "statement": record.statement,
        "signature": b64encode(record.signature),
    }


class GroupService:
    def __init__(
        self,
        ctx: Context,
        devices: DeviceService,
        messages: MessageService,
        dms: DMService,
        channels: ChannelService,
    ) -> None:
        self._ctx = ctx
        self._devices = devices
        self._messages = messages
        self._dms = dms
        self._channels = channels

    # -- signed membership -------------------------------------------------------------

    async def _check_statement(
        self,
        principal: Principal,
        body: MembershipBody | None,
        *,
        op: MembershipOp,
        channel_id: int | None,
        targets: set[int],
    ) -> MembershipBody:
        """The statement says exactly this change, by the caller, and its signature
        verifies under the identity key of the caller's device that it names."""
        if body is None:
            raise InvalidForm.field(
                "membership", "BASE_TYPE_REQUIRED", "A membership change must be signed"
            )
        try:
            fields = parse_membership_statement(body.statement)
        except ValueError as exc:
            raise InvalidForm.field(
                ("membership", "statement"), "STATEMENT_INVALID", str(exc)
            ) from None
        expected = {
            "op": op,
            "channel_id": channel_id,
            "actor_id": principal.user_id,
            "device_id": body.device_id,
        }
        for name, value in expected.items():
            if fields[name] != value:
                raise InvalidForm.field(
                    ("membership", "statement"), "STATEMENT_MISMATCH", f"{name} does not match"
                )
        if set(fields["targets"]) != targets:
            raise InvalidForm.field(
                ("membership", "statement"), "STATEMENT_MISMATCH", "targets do not match"
            )
        async with self._ctx.db.read("membership_device") as tx:
            device = await device_store.get_device(tx, principal.user_id, body.device_id)
        if device is None:
            raise InvalidForm.field(("membership", "device_id"), "UNKNOWN_DEVICE", "Unknown device")
        try:
            signature = b64decode(body.signature)
            Ed25519PublicKey.from_public_bytes(device.identity_key).verify(
                signature, body.statement.encode()
            )
        except (ValueError, InvalidSignature):
            raise InvalidForm.field(
                ("membership", "signature"),
                "SIGNATURE_INVALID",
                "Signature does not verify under the device's identity key",
            ) from None
        return body

    def _record(
        self, channel_id: int, principal: Principal, body: MembershipBody
    ) -> MembershipRecord:
        return MembershipRecord(
            id=self._ctx.ids.next_id(),
            channel_id=channel_id,
            user_id=principal.user_id,
            device_id=body.device_id,
            statement=body.statement,
            signature=b64decode(body.signature),
        )

    # -- group DMs ---------------------------------------------------------------------

    async def do_create_group_dm(
        self, principal: Principal, recipient_ids: list[int], membership: MembershipBody | None
    ) -> dict[str, Any]:
        ctx = self._ctx
        members = {principal.user_id, *recipient_ids}
        if len(members) < 2:
            raise InvalidForm.field("recipients", "GROUP_DM_EMPTY", "Name at least one recipient")
        if len(members) > MAX_GROUP_DM_MEMBERS:
            raise InvalidForm.field(
                "recipients", "GROUP_DM_TOO_LARGE", f"At most {MAX_GROUP_DM_MEMBERS} members"
            )
        for user_id in sorted(members - {principal.user_id}):
            await self._devices.check_may_contact(principal, user_id)
        body = await self._check_statement(
            principal, membership, op=MembershipOp.CREATE, channel_id=None, targets=members
        )
        channel_id = ctx.ids.next_id()
        async with ctx.db.write("create_group_dm") as tx:
            await channel_store.insert_channel(
                tx,
                id=channel_id,
                guild_id=None,
                type=int(ChannelType.GROUP_DM),
                position=0,
                e2ee=True,
                owner_id=principal.user_id,
            )
            await dm_store.add_recipients(tx, channel_id, sorted(members))
            await dm_store.insert_membership(tx, self._record(channel_id, principal, body))
        recipients = tuple(sorted(members))
        for user_id in recipients:
            view = await self._dms.dm_json(channel_id, recipients, user_id)
            await ctx.publish([Event.of("CHANNEL_CREATE", view, frozenset({user_id}))])
        return await self._dms.dm_json(channel_id, recipients, principal.user_id)

    async def _group(
        self, principal: Principal, channel_id: int
    ) -> tuple[ChannelRecord, tuple[int, ...]]:
        recipients = await self._dms.check_dm(principal, channel_id)
        async with self._ctx.db.read("group_dm") as tx:
            channel = await channel_store.get_channel(tx, channel_id)
        assert channel is not None
        if channel.type != ChannelType.GROUP_DM:
            raise BadRequest(ErrorCode.INVALID_CHANNEL_TYPE, "Not a group DM")
        return channel, recipients

    async def do_add_recipient(
        self, principal: Principal, channel_id: int, user_id: int, membership: MembershipBody
    ) -> None:
        ctx = self._ctx
        _channel, recipients = await self._group(principal, channel_id)
        if user_id in recipients:
            return
        if len(recipients) + 1 > MAX_GROUP_DM_MEMBERS:
            raise InvalidForm.field(
                "user_id", "GROUP_DM_TOO_LARGE", f"At most {MAX_GROUP_DM_MEMBERS} members"
            )
        await self._devices.check_may_contact(principal, user_id)
        body = await self._check_statement(
            principal, membership, op=MembershipOp.ADD, channel_id=channel_id, targets={user_id}
        )
        record = self._record(channel_id, principal, body)
        try:
            async with ctx.db.write("add_recipient") as tx:
                await dm_store.add_recipients(tx, channel_id, [user_id])
                await dm_store.insert_membership(tx, record)
                user = (await user_store.get_users(tx, {user_id}))[user_id]
        except IntegrityError:
            return  # added at the same moment by someone else
        now = tuple(sorted({*recipients, user_id}))
        payload = {
            "channel_id": str(channel_id),
            "user": user_json(user),
            "membership": membership_json(record),
        }
        view = await self._dms.dm_json(channel_id, now, user_id)
        await ctx.publish(
            [
                Event.of("CHANNEL_CREATE", view, frozenset({user_id})),
                Event.of("CHANNEL_RECIPIENT_ADD", payload, frozenset(now)),
            ]
        )

    async def do_remove_recipient(
        self, principal: Principal, channel_id: int, user_id: int, membership: MembershipBody
    ) -> None:
        """The owner removes anyone; anyone may leave. When the owner leaves, the member
        with the lowest id becomes the owner (clients apply the same rule)."""
        ctx = self._ctx
        channel, recipients = await self._group(principal, channel_id)
        if user_id not in recipients:
            raise unknown(ErrorCode.UNKNOWN_USER, "User")
        if user_id != principal.user_id and channel.owner_id != principal.user_id:
            raise MissingPermissions("Missing Permissions: only the owner removes others")
        body = await self._check_statement(
            principal, membership, op=MembershipOp.REMOVE, channel_id=channel_id, targets={user_id}
        )
        record = self._record(channel_id, principal, body)
        remaining = sorted(set(recipients) - {user_id})
        async with ctx.db.write("remove_recipient") as tx:
            await dm_store.remove_recipient(tx, channel_id, user_id)
            await dm_store.insert_membership(tx, record)
            if user_id == channel.owner_id:
                await channel_store.update_channel(
                    tx, channel_id, {"owner_id": remaining[0] if remaining else None}
                )
            user = (await user_store.get_users(tx, {user_id}))[user_id]
        payload = {
            "channel_id": str(channel_id),
            "user": user_json(user),
            "membership": membership_json(record),
        }
        await ctx.publish(
            [
                Event.of("CHANNEL_RECIPIENT_REMOVE", payload, frozenset(recipients)),
                Event.of(
                    "CHANNEL_DELETE",
                    {"id": str(channel_id), "type": int(ChannelType.GROUP_DM)},
                    frozenset({user_id}),
                ),
            ]
        )

    async def membership_log(self, principal: Principal, channel_id: int) -> list[dict[str, Any]]:
        await self._group(principal, channel_id)
        async with self._ctx.db.read("membership_log") as tx:
            records = await dm_store.membership_log(tx, channel_id)
        return [membership_json(r) for r in records]

    # -- audiences ---------------------------------------------------------------------

    async def _audience(
        self, principal: Principal, channel_id: int, needed: Permissions
    ) -> tuple[frozenset[int], ChannelRecord | None]:
        """Who may read the channel (a DM's recipients, or the members who may view a
        guild channel), and the guild channel (None for a DM)."""
        recipients = await self._dms.recipients(channel_id)
        if recipients is not None:
            check_dm_recipient(recipients, principal.user_id)
            return frozenset(recipients), None
        channel, _snapshot, _granted = await self._channels.check_channel(
            principal, channel_id, needed
        )
        assert channel.guild_id is not None
        audience = await self._ctx.permissions.channel_audience(channel.guild_id, channel.id)
        return audience, channel

    async def audience_devices(self, principal: Principal, channel_id: int) -> list[dict[str, Any]]:
        """``GET /channels/{id}/devices``: every device of everyone who may read the
        channel, the caller's own included."""
        audience, _channel = await self._audience(principal, channel_id, Permissions.VIEW_CHANNEL)
        async with self._ctx.db.read("audience_devices") as tx:
            found = await device_store.devices_of_users(tx, set(audience))
        return [device_json(d) for d in found if d.signed_prekey is not None]

    # -- Megolm messages ---------------------------------------------------------------

    async def do_send(
        self, principal: Principal, channel_id: int, body: CreateMessageBody
    ) -> dict[str, Any]:
        ctx = self._ctx
        assert body.megolm is not None
        if body.content:
            raise BadRequest(
                ErrorCode.CANNOT_EXECUTE_ON_DM,
                "This conversation is end-to-end encrypted: send ciphertext and no content",
            )
        if body.message_reference is not None:
            raise InvalidForm.field(
                "message_reference", "DM_ENCRYPTED", "Replies travel encrypted here"
            )
        audience, channel = await self._audience(
            principal, channel_id, Permissions.VIEW_CHANNEL | Permissions.SEND_MESSAGES
        )
        if channel is not None and not channel.e2ee:
            raise InvalidForm.field(
                "megolm", "CHANNEL_NOT_ENCRYPTED", "This channel is not end-to-end encrypted"
            )
        guild_id = channel.guild_id if channel is not None else None
        try:
            ciphertext = b64decode(body.megolm)
        except ValueError:
            raise InvalidForm.field("megolm", "BASE64", "Not valid base64") from None
        message_id = ctx.ids.next_id()
        envelopes = check_envelopes(
            body.envelopes or [], message_id, audience, "Cannot read this channel"
        )
        nonce = str(body.nonce) if body.nonce is not None else secrets.token_hex(12)
        try:
            async with ctx.db.write("send_group") as tx:
                if envelopes:
                    known = await device_store.devices_of_users(tx, {e.user_id for e in envelopes})
                    known_keys = {(d.user_id, d.device_id) for d in known}
                    for index, addressed in enumerate(envelopes):
                        if (addressed.user_id, addressed.device_id) not in known_keys:
                            raise InvalidForm.field(
                                ("envelopes", index, "device_id"),
                                "UNKNOWN_DEVICE",
                                "Unknown device",
                            )
                record = await dm_store.insert_encrypted_message(
                    tx,
                    message_id=message_id,
                    channel_id=channel_id,
                    guild_id=guild_id,
                    author_id=principal.user_id,
                    nonce=nonce,
                )
                if envelopes:
                    await dm_store.insert_envelopes(tx, envelopes)
                await dm_store.insert_group_ciphertext(tx, message_id, ciphertext)
                await channel_store.set_last_message(tx, channel_id, message_id)
                rendered = (
                    await self._messages.render(tx, [record], principal.user_id, fresh=True)
                )[0]
        except IntegrityError:
            async with ctx.db.read("find_group_nonce") as tx:
                existing = await message_store.find_by_nonce(tx, principal.user_id, nonce)
                if existing is None:
                    raise
                rendered = (await self._messages.render(tx, [existing], principal.user_id))[0]
                mine = await dm_store.envelopes_of(tx, [existing.id], user_id=principal.user_id)
                group = await dm_store.group_ciphertexts_of(tx, [existing.id])
            return {
                **rendered,
                "megolm": b64encode(group.get(existing.id, b"")),
                "envelopes": [envelope_json(e) for e in mine],
            }
        megolm = b64encode(ciphertext)
        events = []
        for user_id in sorted(audience):
            theirs = [envelope_json(e) for e in envelopes if e.user_id == user_id]
            payload = {**rendered, "megolm": megolm, "envelopes": theirs}
            events.append(
                Event.of("MESSAGE_CREATE", payload, frozenset({user_id}), guild_id=guild_id)
            )
        await ctx.publish(events)
        mine_json = [envelope_json(e) for e in envelopes if e.user_id == principal.user_id]
        return {**rendered, "megolm": megolm, "envelopes": mine_json}
