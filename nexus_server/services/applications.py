"""Bot applications: create one with its bot user, reset the bot's token, and add the
bot to a community as Discord's OAuth2 "bot" flow does.

An application's id is its bot user's id, as on Discord, so ``client_id`` in an
authorize link and READY's ``application.id`` are the bot's user id.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import replace
from typing import Any

from nexus_protocol.errors import ErrorCode
from nexus_protocol.models import AuditLogEvent
from nexus_protocol.permissions import Permissions
from nexus_protocol.requests import AuthorizeBotBody, CreateApplicationBody

from ..errors import Forbidden, InvalidForm, MissingPermissions, unknown
from ..events import Event
from ..store import applications as application_store
from ..store import guilds as guild_store
from ..store import invites as invite_store
from ..store import users as user_store
from ..store.records import ApplicationRecord, RoleRecord, UserRecord
from .accounts import AccountService, Principal
from .audit import record_audit
from .context import Context
from .guilds import GuildService
from .render import application_json, member_json, role_json

_NOT_USERNAME = re.compile(r"[^a-z0-9_.]+")


def bot_username(name: str, suffix: str = "") -> str:
    """A valid Nexus username from an application name ("My Bot!" → "my_bot")."""
    base = _NOT_USERNAME.sub("_", name.lower()).strip("_") or "bot"
    base = base[: 32 - len(suffix)]
    return (base + suffix).ljust(2, "_")


class ApplicationService:
    def __init__(self, ctx: Context, accounts: AccountService, guilds: GuildService) -> None:
        self._ctx = ctx
        self._accounts = accounts
        self._guilds = guilds

    async def do_create_application(
        self, principal: Principal, body: CreateApplicationBody
    ) -> dict[str, Any]:
        """The application object with ``bot.token``: the only time the token is shown."""
        if principal.bot:
            raise Forbidden(ErrorCode.BOTS_CANNOT_USE, "Bots cannot use this endpoint")
        suffix = ""
        for _attempt in range(5):
            try:
                token, bot = await self._accounts.do_create_bot_user(
                    bot_username(body.name, suffix)
                )
                break
            except user_store.UsernameTaken:
                suffix = "_" + secrets.token_hex(2)
        else:
            raise InvalidForm.field("name", "USERNAME_ALREADY_TAKEN", "Name is unavailable.")
        async with self._ctx.db.write("create_application") as tx:
            application = await application_store.insert_application(
                tx,
                application_id=bot.id,
                owner_id=principal.user_id,
                name=body.name,
                bot_user_id=bot.id,
                created_at=self._ctx.clock(),
            )
            owner = await user_store.get_user(tx, principal.user_id)
        assert owner is not None
        payload = application_json(application, owner=owner, bot=bot)
        payload["bot"]["token"] = token
        return payload

    async def check_owned(
        self, principal: Principal, application_id: int
    ) -> tuple[ApplicationRecord, UserRecord, UserRecord]:
        """The application with its owner and bot, if the caller owns it (else 404)."""
        async with self._ctx.db.read("get_application") as tx:
            application = await application_store.get_application(tx, application_id)
            if application is None or application.owner_id != principal.user_id:
                raise unknown(ErrorCode.UNKNOWN_APPLICATION, "Application")
            users = await user_store.get_users(tx, {application.owner_id, application.bot_user_id})
        return application, users[application.owner_id], users[application.bot_user_id]

    async def get_application(self, principal: Principal, application_id: int) -> dict[str, Any]:
        application, owner, bot = await self.check_owned(principal, application_id)
        return application_json(application, owner=owner, bot=bot)

    async def current_application(self, principal: Principal) -> dict[str, Any]:
        """GET /oauth2/applications/@me: a bot's own application."""
        async with self._ctx.db.read("current_application") as tx:
            application = await application_store.application_of_bot(tx, principal.user_id)
            if application is None:
                raise unknown(ErrorCode.UNKNOWN_APPLICATION, "Application")
            users = await user_store.get_users(tx, {application.owner_id, application.bot_user_id})
        return application_json(
            application,
            owner=users[application.owner_id],
            bot=users[application.bot_user_id],
        )

    async def do_reset_token(self, principal: Principal, application_id: int) -> str:
        application, _owner, _bot = await self.check_owned(principal, application_id)
        return await self._accounts.do_reset_bot_token(application.bot_user_id)

    async def do_authorize_bot(
        self, principal: Principal, client_id: int, scope: str, body: AuthorizeBotBody
    ) -> dict[str, Any]:
        """Add the bot to a guild the caller manages, with a managed role holding exactly
        the permissions asked for (which the caller must hold themselves)."""
        ctx = self._ctx
        if "bot" not in scope.split():
            raise InvalidForm.field("scope", "SCOPE_INVALID", "Only the bot scope is served.")
        if not body.authorize:
            return {"location": None}
        async with ctx.db.read("authorize_lookup") as tx:
            application = await application_store.get_application(tx, client_id)
            bot = await user_store.get_user(tx, application.bot_user_id) if application else None
        if application is None or bot is None:
            raise unknown(ErrorCode.UNKNOWN_APPLICATION, "Application")
        guild_id = body.guild_id
        snapshot = await ctx.permissions.check_guild(
            guild_id, principal.user_id, Permissions.MANAGE_GUILD
        )
        wanted = body.permissions or Permissions(0)
        held = ctx.permissions.guild_permissions(snapshot, principal.user_id)
        if wanted & ~held:
            raise MissingPermissions("You cannot grant permissions you do not have")
        if bot.id in snapshot.member_roles:
            return {"location": None, "guild_id": str(guild_id), "already_member": True}
        now = ctx.clock()
        role_id = ctx.ids.next_id()
        async with ctx.db.write("authorize_bot") as tx:
            if await invite_store.is_banned(tx, guild_id, bot.id):
                raise Forbidden(ErrorCode.MISSING_ACCESS, "The bot is banned from this guild")
            shifted = await _shift_roles_up(tx, guild_id)
            await guild_store.insert_role(
                tx,
                id=role_id,
                guild_id=guild_id,
                name=application.name[:100],
                position=1,
                permissions=int(wanted),
                bot_id=bot.id,
            )
            await guild_store.insert_member(tx, guild_id=guild_id, user_id=bot.id, joined_at=now)
            await guild_store.add_member_role(tx, guild_id, bot.id, role_id)
            role = await guild_store.get_role(tx, guild_id, role_id)
            member = await guild_store.get_member(tx, guild_id, bot.id)
            await record_audit(
                tx,
                ctx,
                guild_id=guild_id,
                user_id=principal.user_id,
                target_id=bot.id,
                action_type=AuditLogEvent.BOT_ADD,
            )
        assert role is not None and member is not None
        ctx.permissions.invalidate(guild_id)
        audience = await ctx.permissions.guild_audience(guild_id)
        await ctx.publish(
            [Event.of("GUILD_ROLE_CREATE", _role_event(guild_id, role), audience, guild_id)]
            + [
                Event.of("GUILD_ROLE_UPDATE", _role_event(guild_id, r), audience, guild_id)
                for r in shifted
            ]
            + [
                Event.of(
                    "GUILD_MEMBER_ADD",
                    member_json(member, bot) | {"guild_id": str(guild_id)},
                    audience,
                    guild_id,
                )
            ]
        )
        payload = await self._guilds.guild_create_payload(guild_id, bot.id)
        await ctx.publish([Event.of("GUILD_CREATE", payload, frozenset({bot.id}), guild_id)])
        return {"location": None, "guild_id": str(guild_id)}


async def _shift_roles_up(tx: Any, guild_id: int) -> list[RoleRecord]:
    """Room at position 1, just above @everyone, where a new bot's role goes."""
    moved = []
    for role in await guild_store.roles_of_guild(tx, guild_id):
        if role.id != guild_id and role.position >= 1:
            await guild_store.update_role(tx, role.id, {"position": role.position + 1})
            moved.append(replace(role, position=role.position + 1))
    return moved


def _role_event(guild_id: int, role: RoleRecord) -> dict[str, Any]:
    return {"guild_id": str(guild_id), "role": role_json(role)}
