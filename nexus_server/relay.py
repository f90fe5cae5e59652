"""The relay's parts, built and wired in one place."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

import orjson

from .api.ratelimit import Limit, RateLimiter
from .bus import Bus, LocalBus, RedisBus
from .events import Event
from .gateway.hub import GatewayHub, SessionEntry
from .services.accounts import AccountService, Principal
from .services.applications import ApplicationService
from .services.attachments import AttachmentService
from .services.channel_admin import ChannelAdminService
from .services.channels import ChannelService
from .services.context import Context
from .services.devices import DeviceService
from .services.dms import DMService
from .services.groups import GroupService
from .services.guilds import GuildService
from .services.invites import InviteService
from .services.media import MediaService
from .services.members import MemberService
from .services.message_actions import MessageActionService
from .services.messages import MessageService
from .services.moderation import ModerationService
from .services.permissions import PermissionService
from .services.presence import PresenceService
from .services.read_states import ReadStateService
from .services.render import member_json, user_json
from .services.roles import RoleService
from .services.search import SearchService
from .services.typing import TypingService
from .services.voice import VoiceService
from .settings import Settings
from .store import guilds as guild_store
from .store import users as user_store
from .store.database import Database

log = logging.getLogger(__name__)

# Discord's published limits for the routes people hit hardest.
ROUTE_LIMITS = {
    "POST /channels/{channel_id}/messages": Limit(5, 5.0),
    # Per client address: a burst of 30 accounts, then one every 20 s.
    "POST /auth/register": Limit(30, 600.0),
    # Per client address: enough for a family behind one router, too few to guess.
    "POST /auth/login": Limit(20, 60.0),
    "POST /channels/{channel_id}/typing": Limit(5, 5.0),
    # A search reads far more than a page of history: a burst of 20, then 2 a second.
    "GET /guilds/{guild_id}/messages/search": Limit(20, 10.0),
}


class Relay:
    def __init__(self, settings: Settings, *, db: Database | None = None) -> None:
        self.settings = settings
        self.db = db or Database(settings.database)
        self.bus: Bus = RedisBus(settings.redis_url) if settings.redis_url else LocalBus()
        self.permissions = PermissionService(self.db)
        self.ctx = Context(db=self.db, bus=self.bus, permissions=self.permissions)
        self.media = MediaService(self.ctx, settings)
        self.accounts = AccountService(self.ctx, self.media)
        self.channels = ChannelService(self.ctx)
        self.channel_admin = ChannelAdminService(self.ctx, self.channels)
        self.roles = RoleService(self.ctx)
        self.attachments = AttachmentService(self.ctx, self.channels, settings)
        self.messages = MessageService(
            self.ctx, self.channels, self.attachments, base_url=settings.base_url
        )
        self.search = SearchService(self.ctx, self.messages)
        self.devices = DeviceService(self.ctx)
        self.dms = DMService(self.ctx, self.devices, self.messages)
        self.groups = GroupService(self.ctx, self.devices, self.messages, self.dms, self.channels)
        self.message_actions = MessageActionService(self.ctx, self.channels, self.messages)
        self.typing = TypingService(self.ctx, self.channels)
        self.read_states = ReadStateService(self.ctx, self.channels)
        self.presence = PresenceService(self.ctx)
        self.guilds = GuildService(self.ctx, self.presence, self.media)
        self.invites = InviteService(self.ctx, self.guilds, self.presence)
        self.members = MemberService(self.ctx)
        self.moderation = ModerationService(self.ctx, self.members)
        self.applications = ApplicationService(self.ctx, self.accounts, self.guilds)
        self.hub = GatewayHub(detached_ttl=settings.detached_session_ttl)
        self.voice = VoiceService(
            self.ctx,
            self.channels,
            self.dms,
            self.hub,
            workers=settings.voice_workers,
            forward_loudest=settings.voice_forward_loudest,
        )
        self.hub.on_forget = self.voice.on_session_forgotten
        self.guilds.voice_states_of = self.voice.voice_states_of
        if settings.rate_limits:
            self.rate_limits = RateLimiter(ROUTE_LIMITS)
        else:
            unlimited = Limit(1_000_000_000, 1.0)
            self.rate_limits = RateLimiter({}, default=unlimited, global_limit=unlimited)
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        await self.db.migrate()
        self.bus.subscribe(self._on_event)
        await self.bus.start()
        task = asyncio.create_task(self._housekeeping(), name="gateway-housekeeping")
        self._tasks.add(task)
        if self.settings.voice_start_eagerly and self.voice.enabled:
            await self.voice.start_sfu()

    async def close(self) -> None:
        for connection in self.hub.live_connections():
            connection.close(1001, "relay shutting down")
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        await self.voice.close()
        await self.presence.close()
        await self.bus.close()
        await self.db.close()

    def _on_event(self, event: Event) -> None:
        # Permissions first: the hub may read them while routing later events.
        if GatewayHub.changes_permissions(event):
            assert event.guild_id is not None
            self.permissions.invalidate(event.guild_id)
        self.hub.on_event(event)
        self.voice.on_event(event)
        self.presence.on_event(event)

    async def _housekeeping(self) -> None:
        while True:
            await asyncio.sleep(2.0)
            now = time.monotonic()
            for connection in self.hub.live_connections():
                connection.check_heartbeat(now)
            for entry in self.hub.expire_detached(now):
                if not self.hub.has_sessions(entry.user_id):
                    await self.presence.do_disconnect(entry.user_id)

    # Gateway payloads -------------------------------------------------------------------

    async def ready_payload(
        self, principal: Principal, session_id: str
    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        async with self.db.read("ready") as tx:
            user = await user_store.get_user(tx, principal.user_id)
            guilds = await guild_store.guilds_of_user(tx, principal.user_id)
        assert user is not None
        guild_creates = []
        for guild in guilds:
            guild_creates.append(
                await self.guilds.guild_create_payload(guild.id, principal.user_id)
            )
        ready = {
            "v": 10,
            "user": user_json(user),
            "guilds": [{"id": str(g.id), "unavailable": True} for g in guilds],
            "session_id": session_id,
            "session_type": "normal",
            "resume_gateway_url": self.settings.gateway_url,
            "private_channels": await self.dms.private_channels(principal.user_id),
            "relationships": [],
            "presences": [],
            "application": {"id": str(user.id), "flags": 0} if user.bot else None,
            "shard": [0, 1],
            "read_state": {
                "entries": await self.read_states.read_states(principal.user_id),
                "version": 0,
                "partial": False,
            },
        }
        if ready["application"] is None:
            del ready["application"]
        else:
            del ready["read_state"]  # a user-client extension; Discord sends bots none
        return ready, guild_creates

    async def send_member_chunks(self, entry: SessionEntry, request: dict[str, Any]) -> None:
        """Answer REQUEST_GUILD_MEMBERS with GUILD_MEMBERS_CHUNK dispatches (op 8)."""
        try:
            guild_id = int(request.get("guild_id", 0))
        except (TypeError, ValueError):
            return
        snapshot = await self.permissions.snapshot(guild_id)
        if snapshot is None or entry.user_id not in snapshot.member_roles:
            return
        query = str(request.get("query") or "").lower()
        limit = int(request.get("limit") or 0) or 1_000_000
        wanted_ids = request.get("user_ids")
        async with self.db.read("member_chunks") as tx:
            members = await guild_store.list_members(tx, guild_id, limit=100_000)
            users = await user_store.get_users(tx, {m.user_id for m in members})
        if isinstance(wanted_ids, list):
            wanted = {int(u) for u in wanted_ids if str(u).isdigit()}
            members = [m for m in members if m.user_id in wanted]
        if query:
            members = [
                m
                for m in members
                if m.user_id in users and users[m.user_id].username.startswith(query)
            ]
        members = members[:limit]
        chunks = [members[i : i + 1000] for i in range(0, len(members), 1000)] or [[]]
        for index, chunk in enumerate(chunks):
            body = {
                "guild_id": str(guild_id),
                "members": [member_json(m, users.get(m.user_id)) for m in chunk],
                "chunk_index": index,
                "chunk_count": len(chunks),
                "not_found": [],
            }
            if request.get("nonce") is not None:
                body["nonce"] = request["nonce"]
            if request.get("presences"):
                body["presences"] = self.presence.presences({m.user_id for m in chunk})
            if entry.connection is not None:
                entry.connection.send_frame(
                    entry.session.dispatch("GUILD_MEMBERS_CHUNK", orjson.dumps(body))
                )
