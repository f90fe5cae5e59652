"""The one place that decides who may do what, and who may see an event.

Every endpoint check and every fan-out audience comes from here, computed from a
cached ``GuildSnapshot`` that is dropped whenever a dispatch says the guild changed
(on every node, since every node sees every dispatch).
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection

from nexus_protocol.errors import ErrorCode
from nexus_protocol.permissions import (
    ALL_PERMISSIONS,
    NONE,
    Overwrite,
    Permissions,
    base_permissions,
    channel_permissions,
    highest_position,
)

from ..errors import Forbidden, MissingAccess, MissingPermissions, unknown
from ..store import guilds as guild_store
from ..store.database import Database
from ..store.records import ChannelRecord, GuildSnapshot


def check_dm_recipient(recipients: Collection[int], user_id: int) -> None:
    """A DM's whole access rule: its recipients may read and send, nobody else (no role
    or admin reaches into a DM). Others get 404: a DM they are not in does not exist."""
    if user_id not in recipients:
        raise unknown(ErrorCode.UNKNOWN_CHANNEL, "Channel")


def check_may_contact(
    user_id: int, other_id: int, *, share_a_guild: bool, share_a_dm: bool
) -> None:
    """Who may open a DM with someone, or fetch their devices and prekey bundles: themself,
    anyone sharing a community with them, or anyone already in a DM with them."""
    if user_id == other_id or share_a_guild or share_a_dm:
        return
    raise Forbidden(ErrorCode.CANNOT_SEND_TO_USER, "Cannot send messages to this user")


class PermissionService:
    def __init__(self, db: Database) -> None:
        self._db = db
        self._snapshots: dict[int, GuildSnapshot] = {}
        self._audiences: dict[tuple[int, int, int], frozenset[int]] = {}
        self._loading: dict[int, asyncio.Future[GuildSnapshot | None]] = {}
        # Which guild a channel belongs to never changes: remembered for good.
        self._channel_guilds: dict[int, int] = {}

    def invalidate(self, guild_id: int) -> None:
        self._snapshots.pop(guild_id, None)
        # A load already under way may have read the old state: it must not be cached.
        self._loading.pop(guild_id, None)
        for key in [key for key in self._audiences if key[0] == guild_id]:
            del self._audiences[key]

    async def snapshot(self, guild_id: int) -> GuildSnapshot | None:
        cached = self._snapshots.get(guild_id)
        if cached is not None:
            return cached
        pending = self._loading.get(guild_id)
        if pending is not None:
            return await pending
        future: asyncio.Future[GuildSnapshot | None] = asyncio.get_running_loop().create_future()
        self._loading[guild_id] = future
        try:
            async with self._db.read("load_guild_snapshot") as tx:
                loaded = await guild_store.load_snapshot(tx, guild_id)
            # An invalidation that raced the load wins: cache only if still wanted.
            if self._loading.get(guild_id) is future and loaded is not None:
                self._snapshots[guild_id] = loaded
            if loaded is not None:
                for channel_id in loaded.channels:
                    self._channel_guilds[channel_id] = guild_id
            future.set_result(loaded)
            return loaded
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # marks it retrieved for waiters that never come
            raise
        finally:
            if self._loading.get(guild_id) is future:
                del self._loading[guild_id]

    async def cached_channel(self, channel_id: int) -> ChannelRecord | None:
        """A guild channel from the cached snapshot of its guild, without a query when
        the channel has been seen before; None when unknown here (ask the store)."""
        guild_id = self._channel_guilds.get(channel_id)
        if guild_id is None:
            return None
        snapshot = await self.snapshot(guild_id)
        return snapshot.channels.get(channel_id) if snapshot is not None else None

    async def require_snapshot(self, guild_id: int, user_id: int) -> GuildSnapshot:
        """The guild, if ``user_id`` is a member; otherwise 404 (no leak of existence)."""
        snapshot = await self.snapshot(guild_id)
        if snapshot is None or user_id not in snapshot.member_roles:
            raise unknown(ErrorCode.UNKNOWN_GUILD, "Guild")
        return snapshot

    # Pure computations on a snapshot -----------------------------------------------

    @staticmethod
    def guild_permissions(snapshot: GuildSnapshot, user_id: int) -> Permissions:
        if user_id not in snapshot.member_roles:
            return Permissions(0)
        return base_permissions(
            guild_id=snapshot.guild.id,
            owner_id=snapshot.guild.owner_id,
            user_id=user_id,
            roles=(role.grant() for role in snapshot.roles),
            member_role_ids=snapshot.member_roles[user_id],
        )

    @classmethod
    def in_channel(
        cls, snapshot: GuildSnapshot, channel: ChannelRecord, user_id: int
    ) -> Permissions:
        base = cls.guild_permissions(snapshot, user_id)
        if not base:
            return base
        if base == ALL_PERMISSIONS:
            return base
        return channel_permissions(
            base,
            guild_id=snapshot.guild.id,
            user_id=user_id,
            member_role_ids=snapshot.member_roles.get(user_id, ()),
            overwrites=channel.overwrites,
        )

    @classmethod
    def readable_channels(cls, snapshot: GuildSnapshot, user_id: int) -> dict[int, ChannelRecord]:
        """The channels whose history ``user_id`` may read (VIEW_CHANNEL and
        READ_MESSAGE_HISTORY, overwrites applied), by id."""
        needed = Permissions.VIEW_CHANNEL | Permissions.READ_MESSAGE_HISTORY
        return {
            channel.id: channel
            for channel in snapshot.channels.values()
            if (cls.in_channel(snapshot, channel, user_id) & needed) == needed
        }

    @staticmethod
    def top_position(snapshot: GuildSnapshot, user_id: int) -> int:
        if user_id == snapshot.guild.owner_id:
            return 1 << 30
        return highest_position(
            (role.grant() for role in snapshot.roles),
            snapshot.member_roles.get(user_id, ()),
            snapshot.guild.id,
        )

    # Checks that raise ----------------------------------------------------------------

    async def check_guild(
        self, guild_id: int, user_id: int, needed: Permissions = NONE
    ) -> GuildSnapshot:
        snapshot = await self.require_snapshot(guild_id, user_id)
        if needed and (self.guild_permissions(snapshot, user_id) & needed) != needed:
            raise MissingPermissions()
        return snapshot

    async def check_channel(
        self, channel: ChannelRecord, user_id: int, needed: Permissions = NONE
    ) -> tuple[GuildSnapshot, Permissions]:
        """The member may see ``channel`` (else 404: unseen channels do not exist to them)
        and holds ``needed`` in it (else 403)."""
        assert channel.guild_id is not None
        snapshot = await self.require_snapshot(channel.guild_id, user_id)
        live = snapshot.channels.get(channel.id, channel)
        granted = self.in_channel(snapshot, live, user_id)
        if not granted & Permissions.VIEW_CHANNEL:
            raise unknown(ErrorCode.UNKNOWN_CHANNEL, "Channel")
        if needed and (granted & needed) != needed:
            if needed & Permissions.VIEW_CHANNEL and len(needed) == 1:
                raise MissingAccess()
            raise MissingPermissions()
        return snapshot, granted

    def check_hierarchy(self, snapshot: GuildSnapshot, actor_id: int, position: int) -> None:
        """Nobody manages a role at or above their own highest role (the owner may)."""
        if actor_id != snapshot.guild.owner_id and position >= self.top_position(
            snapshot, actor_id
        ):
            raise MissingPermissions("Missing Permissions: role hierarchy")

    def check_outranks(self, snapshot: GuildSnapshot, actor_id: int, target_id: int) -> None:
        if target_id == snapshot.guild.owner_id or (
            actor_id != snapshot.guild.owner_id
            and self.top_position(snapshot, target_id) >= self.top_position(snapshot, actor_id)
        ):
            raise MissingPermissions("Missing Permissions: role hierarchy")

    def check_grantable(
        self, snapshot: GuildSnapshot, actor_id: int, old: Permissions, new: Permissions
    ) -> None:
        """Permissions a role gains must be ones the actor holds (all, for the owner and
        administrators). Bits the role already had may stay."""
        held = self.guild_permissions(snapshot, actor_id)
        if (new & ~old) & ~held:
            raise MissingPermissions("Missing Permissions: cannot grant permissions you lack")

    @staticmethod
    def check_overwrite_change(
        granted: Permissions, old: Overwrite | None, new: Overwrite | None
    ) -> None:
        """Every bit an overwrite change allows, denies or clears must be one the actor
        holds in the channel (the owner and administrators hold them all)."""
        changed = ((old.allow if old else NONE) ^ (new.allow if new else NONE)) | (
            (old.deny if old else NONE) ^ (new.deny if new else NONE)
        )
        if changed & ~granted:
            raise MissingPermissions("Missing Permissions: cannot change permissions you lack")

    # Audiences --------------------------------------------------------------------------

    async def guild_audience(self, guild_id: int) -> frozenset[int]:
        snapshot = await self.snapshot(guild_id)
        return frozenset(snapshot.member_roles) if snapshot else frozenset()

    async def channel_audience(
        self, guild_id: int, channel_id: int, needed: Permissions = Permissions.VIEW_CHANNEL
    ) -> frozenset[int]:
        """Members who hold ``needed`` in the channel: exactly who may receive its events."""
        key = (guild_id, channel_id, int(needed))
        cached = self._audiences.get(key)
        if cached is not None:
            return cached
        snapshot = await self.snapshot(guild_id)
        if snapshot is None or channel_id not in snapshot.channels:
            return frozenset()
        channel = snapshot.channels[channel_id]
        audience = frozenset(
            user_id
            for user_id in snapshot.member_roles
            if (self.in_channel(snapshot, channel, user_id) & needed) == needed
        )
        if self._snapshots.get(guild_id) is snapshot:
            self._audiences[key] = audience
        return audience
