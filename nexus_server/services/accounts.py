"""Accounts: register, log in and out, sessions, passwords and profiles.

Passwords are hashed with argon2id in a worker thread so a login never stalls the
event loop. A token is ``<user id, base64>.<random>``; only its SHA-256 is stored, so a
leaked database holds no usable token.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import secrets
import time
from dataclasses import dataclass
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from nexus_protocol.errors import ErrorCode
from nexus_protocol.requests import (
    ChangePasswordBody,
    LoginBody,
    ModifyUserBody,
    RegisterBody,
)

from ..errors import InvalidForm, Unauthorized, unknown
from ..events import SESSIONS_REVOKED, Event
from ..store import dms as dm_store
from ..store import guilds as guild_store
from ..store import users as user_store
from ..store.records import SessionRecord, UserRecord
from .context import Context
from .media import MediaKind, MediaService
from .render import user_json

TOKEN_CACHE_SECONDS = 30.0
MAX_CACHED_TOKENS = 50_000
USER_IMAGES: dict[str, MediaKind] = {"avatar": "avatar", "banner": "banner"}


@dataclass(frozen=True, slots=True)
class Principal:
    """Who made a request: the user and the login session their token belongs to."""

    user_id: int
    session_id: int
    bot: bool = False


def hash_token(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def new_token(user_id: int) -> str:
    prefix = base64.urlsafe_b64encode(str(user_id).encode()).decode().rstrip("=")
    return f"{prefix}.{secrets.token_urlsafe(32)}"


class AccountService:
    def __init__(
        self, ctx: Context, media: MediaService, hasher: PasswordHasher | None = None
    ) -> None:
        self._ctx = ctx
        self._media = media
        self._hasher = hasher or PasswordHasher(time_cost=2, memory_cost=19_456, parallelism=1)
        # A login for an unknown name still costs one verification, so response time
        # does not tell which usernames exist.
        self._dummy_hash = self._hasher.hash(secrets.token_hex(16))
        self._principals: dict[bytes, tuple[Principal, float]] = {}
        # Each argon2id hash takes 19 MiB and most of a core: two at a time keeps a
        # burst of sign-ups from taking the relay's memory and CPU with it.
        self._hashing = asyncio.Semaphore(2)

    async def _hash(self, password: str) -> str:
        async with self._hashing:
            return await asyncio.to_thread(self._hasher.hash, password)

    async def _verify(self, password_hash: str, password: str) -> bool:
        try:
            async with self._hashing:
                return await asyncio.to_thread(self._hasher.verify, password_hash, password)
        except (VerificationError, InvalidHashError):
            return False

    async def do_register(self, body: RegisterBody, user_agent: str = "") -> tuple[str, UserRecord]:
        password_hash = await self._hash(body.password)
        user_id = self._ctx.ids.next_id()
        token = new_token(user_id)
        async with self._ctx.db.write("register") as tx:
            try:
                user = await user_store.insert_user(
                    tx,
                    user_id=user_id,
                    username=body.username,
                    password_hash=password_hash,
                    global_name=body.display_name,
                )
            except user_store.UsernameTaken:
                raise InvalidForm.field(
                    "username", "USERNAME_ALREADY_TAKEN", "Username is unavailable. Try another."
                ) from None
            await self._open_session(tx, user_id, token, user_agent)
        return token, user

    async def do_create_bot_user(self, username: str) -> tuple[str, UserRecord]:
        """A bot account (used by the applications API): no password can log into it."""
        user_id = self._ctx.ids.next_id()
        token = new_token(user_id)
        async with self._ctx.db.write("create_bot_user") as tx:
            user = await user_store.insert_user(
                tx,
                user_id=user_id,
                username=username,
                password_hash="!",
                global_name=None,
                bot=True,
            )
            await self._open_session(tx, user_id, token, "bot")
        return token, user

    async def do_reset_bot_token(self, bot_user_id: int) -> str:
        """A new token for a bot; every earlier one stops working at once."""
        token = new_token(bot_user_id)
        async with self._ctx.db.write("reset_bot_token") as tx:
            await user_store.delete_all_sessions(tx, bot_user_id)
            kept = await self._open_session(tx, bot_user_id, token, "bot")
        self._forget_sessions(bot_user_id)
        await self._end_gateway_sessions(bot_user_id, {"except": kept})
        return token

    async def _open_session(self, tx: Any, user_id: int, token: str, user_agent: str) -> int:
        session_id = self._ctx.ids.next_id()
        await user_store.insert_session(
            tx,
            session_id=session_id,
            user_id=user_id,
            token_hash=hash_token(token),
            created_at=self._ctx.clock(),
            user_agent=user_agent[:200],
        )
        return session_id

    async def do_login(self, body: LoginBody, user_agent: str = "") -> tuple[str, UserRecord]:
        async with self._ctx.db.read("login_lookup") as tx:
            credentials = await user_store.get_credentials(tx, body.login.lower())
        if credentials is None:
            await self._verify(self._dummy_hash, body.password)
            raise InvalidForm.field("login", "INVALID_LOGIN", "Login or password is invalid.")
        user_id, password_hash = credentials
        if not await self._verify(password_hash, body.password):
            raise InvalidForm.field("login", "INVALID_LOGIN", "Login or password is invalid.")
        token = new_token(user_id)
        async with self._ctx.db.write("login") as tx:
            await self._open_session(tx, user_id, token, body.user_agent or user_agent)
            user = await user_store.get_user(tx, user_id)
        assert user is not None
        return token, user

    async def authenticate(self, token: str) -> Principal:
        """Who a token belongs to. Answers are remembered for ``TOKEN_CACHE_SECONDS``:
        a revocation on this node takes effect at once, one made on another relay node
        within that time."""
        token_hash = hash_token(token)
        now = time.monotonic()
        cached = self._principals.get(token_hash)
        if cached is not None and cached[1] > now:
            return cached[0]
        async with self._ctx.db.read("authenticate") as tx:
            session = await user_store.session_by_token(tx, token_hash)
            user = await user_store.get_user(tx, session.user_id) if session else None
        if session is None or user is None:
            raise Unauthorized()
        principal = Principal(user_id=session.user_id, session_id=session.id, bot=user.bot)
        if len(self._principals) >= MAX_CACHED_TOKENS:
            self._principals.clear()
        self._principals[token_hash] = (principal, now + TOKEN_CACHE_SECONDS)
        return principal

    async def _end_gateway_sessions(self, user_id: int, revoked: dict[str, Any]) -> None:
        """Tell every node to close the gateway sockets the revoked tokens opened."""
        await self._ctx.publish([Event.of(SESSIONS_REVOKED, revoked, frozenset({user_id}))])

    def _forget_sessions(self, user_id: int) -> None:
        stale = [key for key, (p, _) in self._principals.items() if p.user_id == user_id]
        for key in stale:
            del self._principals[key]

    async def do_logout(self, principal: Principal) -> None:
        async with self._ctx.db.write("logout") as tx:
            await user_store.delete_session(tx, principal.user_id, principal.session_id)
        self._forget_sessions(principal.user_id)
        await self._end_gateway_sessions(principal.user_id, {"revoked": [principal.session_id]})

    async def list_sessions(self, principal: Principal) -> list[SessionRecord]:
        async with self._ctx.db.read("list_sessions") as tx:
            return await user_store.list_sessions(tx, principal.user_id)

    async def do_revoke_session(self, principal: Principal, session_id: int) -> None:
        async with self._ctx.db.write("revoke_session") as tx:
            if not await user_store.delete_session(tx, principal.user_id, session_id):
                raise unknown(ErrorCode.UNKNOWN_SESSION, "Session")
        self._forget_sessions(principal.user_id)
        await self._end_gateway_sessions(principal.user_id, {"revoked": [session_id]})

    async def do_change_password(self, principal: Principal, body: ChangePasswordBody) -> None:
        async with self._ctx.db.read("password_lookup") as tx:
            current = await user_store.get_password_hash(tx, principal.user_id)
        if current is None or not await self._verify(current, body.password):
            raise InvalidForm.field(
                "password", "PASSWORD_DOES_NOT_MATCH", "Password does not match."
            )
        new_hash = await self._hash(body.new_password)
        async with self._ctx.db.write("change_password") as tx:
            await user_store.set_password_hash(tx, principal.user_id, new_hash)
            # Anyone who learnt the old password is logged out everywhere else.
            await user_store.delete_other_sessions(tx, principal.user_id, principal.session_id)
        self._forget_sessions(principal.user_id)
        await self._end_gateway_sessions(principal.user_id, {"except": principal.session_id})

    async def get_user(self, user_id: int) -> UserRecord:
        async with self._ctx.db.read("get_user") as tx:
            user = await user_store.get_user(tx, user_id)
        if user is None:
            raise unknown(ErrorCode.UNKNOWN_USER, "User")
        return user

    async def do_modify_user(self, principal: Principal, body: ModifyUserBody) -> UserRecord:
        changes = body.model_dump(exclude_unset=True)
        if "username" in changes and changes["username"] is None:
            raise InvalidForm.field("username", "BASE_TYPE_REQUIRED", "This field is required")
        # null clears a bio or pronouns; the columns hold "" for "none".
        for key in ("bio", "pronouns"):
            if key in changes and changes[key] is None:
                changes[key] = ""
        # Images are decoded and re-encoded before the transaction: it holds the write lock.
        images = await self._media.check_image_fields(changes, USER_IMAGES)
        for image in images:
            del changes[image.field]
        async with self._ctx.db.write("modify_user") as tx:
            if images:
                before = await user_store.get_user(tx, principal.user_id)
                assert before is not None
                current = {"avatar": before.avatar, "banner": before.banner}
                changes |= await self._media.write_images(tx, principal.user_id, images, current)
            try:
                await user_store.update_user(tx, principal.user_id, changes)
            except user_store.UsernameTaken:
                raise InvalidForm.field(
                    "username", "USERNAME_ALREADY_TAKEN", "Username is unavailable. Try another."
                ) from None
            user = await user_store.get_user(tx, principal.user_id)
            assert user is not None
            guild_ids = [g.id for g in await guild_store.guilds_of_user(tx, principal.user_id)]
            conversations = await dm_store.dms_of_user(tx, principal.user_id)
        # Whoever shows this profile: the communities' members, and the people in the
        # user's DMs and group DMs (who may share no community with them).
        audience: set[int] = {principal.user_id}
        for recipients in conversations.values():
            audience.update(recipients)
        for guild_id in guild_ids:
            audience |= await self._ctx.permissions.guild_audience(guild_id)
        await self._ctx.publish([Event.of("USER_UPDATE", user_json(user), frozenset(audience))])
        return user
