"""``Client``: one account on one relay — REST, the gateway, the cache, events, and
(with a local store) offline history and the outbox."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal, TypeVar
from urllib.parse import quote

from nexus_protocol.gateway import DEFAULT_INTENTS, Intents
from nexus_protocol.models import (
    Attachment,
    Channel,
    Guild,
    Invite,
    Member,
    Message,
    Role,
    User,
)
from nexus_protocol.session import Dispatch

from ._cache import ClientCache
from ._dm import Device, DirectMessages
from ._dm_channels import DMChannel, DMChannels
from ._e2ee_history import EncryptedHistory
from ._events import EventDispatcher, Handler
from ._exceptions import BadRequest, ConnectionLost, Forbidden, NexusError, NotFound
from ._files import File
from ._gateway import GatewayLink
from ._groups import GroupMessages
from ._http import FormPart, HTTPClient, MultipartBody
from ._search import SearchResults, parse_results, search_params
from ._voice_states import VoiceStateTracker
from .e2ee import DecryptedMessage
from .outbox import Outbox, PendingMessage, PermanentFailure
from .store import LocalStore

if TYPE_CHECKING:
    from .voice.audio import AudioSink, AudioSource
    from .voice.connection import VoiceConnection

log = logging.getLogger(__name__)

# Dispatches a live voice connection must see.
_VOICE_EVENTS = frozenset(
    {
        "VOICE_STATE_UPDATE",
        "VOICE_SERVER_UPDATE",
        "VOICE_ANSWER",
        "VOICE_ERROR",
        "CALL_SIGNAL",
        "VOICE_KEYS",
        "VOICE_RECORDING_UPDATE",
    }
)

H = TypeVar("H", bound=Handler)

# An attachment's bytes never change, so its previews need no content hash in their
# cache key: the attachment id names them.
_PREVIEW_KEY = "preview"


class Client:
    """A Nexus account on one relay.

    ``base_url`` is the relay's address (``http://host:port``). Without a ``store`` the
    client keeps history in memory only and ``send_message`` is unavailable (use
    ``post_message``); with one, history is cached encrypted on disk and messages sent
    while offline wait in the outbox and go out exactly once, in order.
    """

    def __init__(
        self,
        base_url: str,
        *,
        token: str | None = None,
        bot: bool = False,
        intents: Intents = DEFAULT_INTENTS,
        store: LocalStore | None = None,
        max_backoff: float = 30.0,
    ) -> None:
        self._max_backoff = max_backoff
        self.http = HTTPClient(base_url, token=token, bot=bot)
        self.cache = ClientCache()
        self.events = EventDispatcher()
        self.store = store
        self.outbox = Outbox(store) if store is not None else None
        self._intents = intents
        self._bot = bool(bot)
        self._gateway: GatewayLink | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._outbox_wakeup = asyncio.Event()
        self._stopped = asyncio.Event()
        self.gateway_error: NexusError | None = None
        self.dms = DirectMessages(self.http, store, self.events) if store is not None else None
        self.voice_states = VoiceStateTracker()
        self.voice: VoiceConnection | None = None
        self.groups = (
            GroupMessages(self.http, store, self.events, self.dms)
            if store is not None and self.dms is not None
            else None
        )
        self.private_channels = DMChannels()
        self._history = (
            EncryptedHistory(self.http, self.dms, self.groups)
            if self.dms is not None and self.groups is not None
            else None
        )

    # Accounts -----------------------------------------------------------------------------

    async def register(self, username: str, password: str) -> User:
        body = await self.http.request(
            "POST", "/auth/register", json={"username": username, "password": password}
        )
        self.http.set_token(body["token"])
        return User.model_validate(body["user"])

    async def login(self, username: str, password: str) -> User:
        body = await self.http.request(
            "POST", "/auth/login", json={"login": username, "password": password}
        )
        self.http.set_token(body["token"])
        return User.model_validate(body["user"])

    @property
    def token(self) -> str | None:
        return self.http.token

    @property
    def user(self) -> User | None:
        return self.cache.user

    # Lifecycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        """Connect the gateway and start delivering the outbox; returns once connected."""
        if self.http.token is None:
            raise NexusError("log in or register before start()")
        if self._gateway is not None:
            return
        gateway = await self.http.request("GET", "/gateway")
        self._gateway = GatewayLink(
            gateway["url"],
            self.http.token,
            self._intents,
            self._on_dispatch,
            properties={"os": "nexus", "browser": "nexus_client", "device": "nexus_client"},
            max_backoff=self._max_backoff,
        )
        self._spawn(self._run_gateway())
        if self.outbox is not None:
            self._spawn(self._run_outbox())
        await self.wait_until_online()

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run_gateway(self) -> None:
        assert self._gateway is not None
        try:
            await self._gateway.run()
        except NexusError as exc:
            self.gateway_error = exc
            log.error("gateway stopped: %s", exc)
        finally:
            self._stopped.set()

    async def wait_until_online(self, timeout: float = 30.0) -> None:
        """Wait until the gateway session is established (READY or RESUMED)."""
        if self._gateway is None:
            raise NexusError("start() the client first")
        online = asyncio.create_task(self._gateway.online.wait())
        stopped = asyncio.create_task(self._stopped.wait())
        done, pending = await asyncio.wait(
            {online, stopped}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
        )
        for task in pending:
            task.cancel()
        if self.gateway_error is not None:
            raise self.gateway_error
        if online not in done:
            raise ConnectionLost(f"the gateway did not come up within {timeout} s")

    @property
    def online(self) -> bool:
        return self._gateway is not None and self._gateway.online.is_set()

    async def close(self) -> None:
        if self.voice is not None:
            with contextlib.suppress(NexusError):
                await self.voice.leave()
            self.voice = None
        if self._gateway is not None:
            await self._gateway.close()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self.events.drain()
        await self.http.close()
        if self.store is not None:
            self.store.close()

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    # Events ---------------------------------------------------------------------------------

    def event(self, handler: H) -> H:
        return self.events.event(handler)

    def listen(self, name: str) -> Callable[[H], H]:
        return self.events.listen(name)

    async def wait_for(
        self, name: str, *, check: Callable[..., bool] | None = None, timeout: float | None = None
    ) -> Any:
        return await self.events.wait_for(name, check=check, timeout=timeout)

    async def _on_dispatch(self, dispatch: Dispatch) -> None:
        try:
            emitted = self.cache.apply(dispatch.event, dispatch.data)
        except ValueError:
            log.warning("ignored a malformed %s dispatch", dispatch.event)
            return
        self._persist(dispatch.event)
        self.private_channels.apply(dispatch.event, dispatch.data)
        if (
            dispatch.event == "MESSAGE_CREATE"
            and self.groups is not None
            and isinstance(dispatch.data, dict)
            and dispatch.data.get("megolm")
        ):
            await self.groups.receive(dispatch.data)
        elif (
            dispatch.event == "MESSAGE_CREATE"
            and self.dms is not None
            and isinstance(dispatch.data, dict)
            and dispatch.data.get("envelopes")
        ):
            await self.dms.receive(dispatch.data)
        elif (
            dispatch.event in ("CHANNEL_RECIPIENT_ADD", "CHANNEL_RECIPIENT_REMOVE")
            and self.groups is not None
            and isinstance(dispatch.data, dict)
        ):
            await self.groups.on_membership_event(dispatch.event, dispatch.data)
        if self.voice_states.apply(dispatch.event, dispatch.data):
            self.events.dispatch("voice_state_update", dispatch.data)
        voice = self.voice
        if (
            voice is not None
            and dispatch.event in _VOICE_EVENTS
            and isinstance(dispatch.data, dict)
        ):
            await voice.on_dispatch(dispatch.event, dispatch.data)
            if voice.closed and self.voice is voice:  # a moderator disconnected us
                self.voice = None
        if dispatch.event in ("READY", "RESUMED"):
            self._outbox_wakeup.set()
        self.events.dispatch("dispatch", dispatch.event, dispatch.data)
        for name, args in emitted:
            self.events.dispatch(name, *args)

    def _persist(self, event: str) -> None:
        """Mirror what changed into the encrypted store, so history shows offline."""
        store = self.store
        if store is None:
            return
        if event == "GUILD_CREATE" or event.startswith("CHANNEL_"):
            store.save_guilds([g.wire() for g in self.cache.guilds.values()])
            for guild_id in self.cache.guilds:
                store.save_channels(guild_id, [c.wire() for c in self.cache.channels_of(guild_id)])

    # End-to-end encrypted DMs ----------------------------------------------------------------

    def _need_dms(self) -> DirectMessages:
        if self.dms is None:
            raise NexusError("end-to-end encryption needs a local store")
        return self.dms

    async def e2ee_setup(self, *, device_name: str = "") -> str:
        """Create (first time) or load this device's keys from the store, publish them,
        and top up one-time prekeys. Returns the device id."""
        user = self.cache.user or await self.fetch_me()
        device = await self._need_dms().setup(user.id, device_name)
        return device.device_id

    async def open_dm(self, user_id: int) -> int:
        """The DM channel with ``user_id`` (created on first use); returns its id."""
        return await self._need_dms().open_dm(user_id)

    def dm_channels(self) -> list[DMChannel]:
        """Your DMs and group DMs with their recipients, most recently active first (from
        the gateway: needs ``start()``; no store needed)."""
        return self.private_channels.all()

    async def dm_history(
        self, channel_id: int, limit: int = 50, before: int | None = None
    ) -> list[DecryptedMessage]:
        """History of a DM or group DM, newest first (like ``fetch_messages``): each a
        ``DMMessage`` / ``GroupMessage``, or an ``UndecryptableMessage`` with its reason.
        What this device decrypted or sent before comes from the store; the rest is
        decrypted once and kept there. Offline, the store alone answers."""
        if self._history is None:
            raise NexusError("end-to-end encryption needs a local store")
        return await self._history.fetch(channel_id, limit=limit, before=before)

    async def fetch_devices(self, user_id: int | None = None) -> list[Device]:
        """A user's devices (default: yours), as the relay lists them."""
        if user_id is None:
            user_id = (self.cache.user or await self.fetch_me()).id
        return await self._need_dms().list_devices(user_id)

    async def remove_device(self, device_id: str) -> None:
        """Remove one of your devices from the relay: nobody can encrypt to it any more,
        and other clients forget it when they next list your devices. Removing this
        device itself also deletes its keys here; ``e2ee_setup()`` then makes a new one."""
        await self._need_dms().remove_device(device_id)

    async def _uses_megolm(self, channel_id: int) -> bool:
        known = self.private_channels.get(channel_id)
        if known is not None:
            return known.is_group
        channel = self.cache.channels.get(channel_id)
        if channel is not None and channel.guild_id is not None:
            return True  # an encrypted community channel
        return await self._need_groups().uses_megolm(channel_id)

    async def send_dm(self, channel_id: int, text: str, reply_to: int | None = None) -> int:
        """Encrypt ``text`` to everyone in a DM, a group DM or an encrypted channel (and
        to this user's other devices): pairwise sessions in a one-to-one DM, Megolm in a
        group. ``reply_to``: the message this one answers (``reply_to`` for the readers;
        the relay never sees it). Returns the message id."""
        if await self._uses_megolm(channel_id):
            return await self._need_groups().send_text(channel_id, text, reply_to)
        return await self._need_dms().send_text(channel_id, text, reply_to)

    async def edit_dm(self, channel_id: int, message_id: int, text: str) -> int:
        """Edit one of your messages (any encrypted channel, like ``send_dm``). The edit
        is an encrypted message of its own (``kind`` "edit"), so the relay cannot tell it
        from any other; readers apply it only if its sender wrote the message. Raises
        ``E2EEError`` unless ``message_id`` is yours, in that channel, and known to this
        device; ``ValueError`` for an empty text. Returns the edit's message id."""
        if await self._uses_megolm(channel_id):
            return await self._need_groups().edit(channel_id, message_id, text)
        return await self._need_dms().edit(channel_id, message_id, text)

    async def delete_dm(self, channel_id: int, message_id: int) -> int:
        """Delete one of your messages for everyone in the conversation: an encrypted
        ``{"kind": "delete", "target"}`` that readers honour only from the author (the
        relay keeps both ciphertexts and cannot tell which was deleted). Refused as
        ``edit_dm`` is. Returns the deletion's message id."""
        if await self._uses_megolm(channel_id):
            return await self._need_groups().delete(channel_id, message_id)
        return await self._need_dms().delete(channel_id, message_id)

    async def react_dm(self, channel_id: int, message_id: int, emoji: str, add: bool = True) -> int:
        """Add your ``emoji`` reaction to a message (``add=False`` takes it back): an
        encrypted ``{"kind": "reaction", "target", "emoji", "add"}``. Each person counts
        once per emoji (``reactions`` of the message: emoji → user ids). Raises
        ``ValueError`` naming ``emoji`` or ``add``, ``E2EEError`` if the message is not
        known here. Returns the reaction's message id."""
        if await self._uses_megolm(channel_id):
            return await self._need_groups().react(channel_id, message_id, emoji, add)
        return await self._need_dms().react(channel_id, message_id, emoji, add)

    def safety_number(self, user_id: int) -> str:
        """60 digits over both users' identity keys; equal on both sides."""
        return self._need_dms().safety_number(user_id)

    # End-to-end encrypted groups (group DMs, encrypted channels) -------------------------------

    def _need_groups(self) -> GroupMessages:
        if self.groups is None:
            raise NexusError("end-to-end encryption needs a local store")
        return self.groups

    async def create_group_dm(self, user_ids: list[int]) -> int:
        """A new group DM with ``user_ids`` (up to 9, plus you), its creation signed by
        this device; returns its id."""
        return await self._need_groups().create_group_dm(user_ids)

    async def add_group_recipient(self, channel_id: int, user_id: int) -> None:
        """Add someone to a group DM (a signed membership change)."""
        await self._need_groups().add_recipient(channel_id, user_id)

    async def remove_group_recipient(self, channel_id: int, user_id: int) -> None:
        """Remove someone (the owner) or leave (yourself): a signed membership change."""
        await self._need_groups().remove_recipient(channel_id, user_id)

    async def send_group(self, channel_id: int, text: str, reply_to: int | None = None) -> int:
        """Encrypt ``text`` once (Megolm) for a group DM or an encrypted channel; the
        session key goes to the devices that need it. ``reply_to``: the message this one
        answers (``GroupMessage.reply_to`` for the readers; the relay never sees it).
        Returns the message id (the plaintext is kept in the store, so ``dm_history``
        shows it)."""
        return await self._need_groups().send_text(channel_id, text, reply_to)

    async def edit_group(self, channel_id: int, message_id: int, text: str) -> int:
        """Edit one of your messages in a group DM or an encrypted channel. The edit is
        an encrypted message of its own (``kind`` "edit"), so the relay cannot tell it
        from any other; readers apply it only if its sender wrote the message. Raises
        ``E2EEError`` unless ``message_id`` is yours, in that channel, and known to this
        device. Returns the edit's message id."""
        return await self._need_groups().edit(channel_id, message_id, text)

    async def delete_group(self, channel_id: int, message_id: int) -> int:
        """``delete_dm`` in a group DM or an encrypted channel."""
        return await self._need_groups().delete(channel_id, message_id)

    async def react_group(
        self, channel_id: int, message_id: int, emoji: str, add: bool = True
    ) -> int:
        """``react_dm`` in a group DM or an encrypted channel."""
        return await self._need_groups().react(channel_id, message_id, emoji, add)

    def decrypted_message(self, message_id: int) -> DecryptedMessage | None:
        """What an end-to-end encrypted message says as this device read or sent it (a
        text with its latest edit, deletion and reactions applied), from the store; None
        if this device has no outcome for it. No network."""
        return self._need_groups().decrypted(message_id)

    async def enable_e2ee(self, channel_id: int) -> None:
        """Switch a guild channel to end-to-end encryption, for good (MANAGE_CHANNELS)."""
        await self.http.request("PATCH", f"/channels/{channel_id}", json={"e2ee": True})

    # Messages through the outbox ----------------------------------------------------------------

    async def send_message(
        self, channel_id: int, content: str, *, reply_to: int | None = None
    ) -> PendingMessage:
        """Queue a message: written to the encrypted outbox first and returned at once as
        pending; delivered in order, exactly once, whenever the gateway is up."""
        if self.outbox is None:
            raise NexusError("send_message needs a local store; use post_message")
        pending = self.outbox.enqueue(channel_id, content, reply_to=reply_to)
        self._outbox_wakeup.set()
        return pending

    def kick_outbox(self) -> None:
        """Try delivering the outbox now (after a retry, say)."""
        self._outbox_wakeup.set()

    async def _run_outbox(self) -> None:
        assert self.outbox is not None and self._gateway is not None
        while True:
            await self._outbox_wakeup.wait()
            self._outbox_wakeup.clear()
            if not self._gateway.online.is_set():
                continue
            result = await self.outbox.flush(self._deliver)
            if self.outbox.has_pending():
                # A transient failure: try again shortly, or when the gateway returns.
                await asyncio.sleep(1.0)
                self._outbox_wakeup.set()
            del result

    async def _deliver(self, pending: PendingMessage) -> int:
        try:
            message = await self.post_message(
                pending.channel_id, pending.content, nonce=pending.nonce, reply_to=pending.reply_to
            )
        except (BadRequest, Forbidden, NotFound) as exc:
            raise PermanentFailure(str(exc)) from exc
        self.events.dispatch("outbox_sent", pending, message)
        return message.id

    # REST ------------------------------------------------------------------------------------

    async def post_message(
        self,
        channel_id: int,
        content: str = "",
        *,
        files: list[File] | None = None,
        reply_to: int | None = None,
        nonce: str | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> Message:
        """Send now over HTTP (what bots use). A nonce makes retries safe.

        ``files`` (at most 10) are uploaded with the message, which may then have no
        text; ``progress(sent_bytes, total_bytes)`` is called as the upload goes. Needs
        the Attach Files permission; ``PayloadTooLarge`` or ``InvalidInput`` (naming the
        file, e.g. ``files[2]``) when the relay refuses a file."""
        body: dict[str, Any] = {"content": content, "nonce": nonce or secrets.token_hex(12)}
        if reply_to is not None:
            body["message_reference"] = {"message_id": str(reply_to)}
        multipart = None
        if files:
            multipart = await self._attachment_form(body, files, progress)
        data = await self.http.request(
            "POST",
            f"/channels/{channel_id}/messages",
            json=None if multipart is not None else body,
            multipart=multipart,
            bucket="/channels/{channel_id}/messages",
        )
        return Message.model_validate(data)

    async def reply(self, message: Message, content: str) -> Message:
        return await self.post_message(message.channel_id, content, reply_to=message.id)

    async def edit_message(self, channel_id: int, message_id: int, content: str) -> Message:
        data = await self.http.request(
            "PATCH", f"/channels/{channel_id}/messages/{message_id}", json={"content": content}
        )
        return Message.model_validate(data)

    async def delete_message(self, channel_id: int, message_id: int) -> None:
        await self.http.request("DELETE", f"/channels/{channel_id}/messages/{message_id}")

    async def fetch_messages(
        self,
        channel_id: int,
        *,
        limit: int = 50,
        before: int | None = None,
        after: int | None = None,
    ) -> list[Message]:
        """History, newest first; also remembered in the cache and the store."""
        params: dict[str, Any] = {"limit": limit}
        if before is not None:
            params["before"] = str(before)
        if after is not None:
            params["after"] = str(after)
        data = await self.http.request("GET", f"/channels/{channel_id}/messages", params=params)
        messages = [Message.model_validate(m) for m in data]
        for message in messages:
            self.cache.remember(message)
        if self.store is not None:
            self.store.save_messages(channel_id, [m.wire() for m in messages])
        return messages

    def cached_messages(self, channel_id: int, limit: int = 50) -> list[Message]:
        """What is known without the network: memory first, then the encrypted store."""
        known = self.cache.history(channel_id)
        if known:
            return list(reversed(known))[:limit]
        if self.store is None:
            return []
        return [Message.model_validate(m) for m in self.store.messages(channel_id, limit=limit)]

    async def add_reaction(self, channel_id: int, message_id: int, emoji: str) -> None:
        await self.http.request(
            "PUT",
            f"/channels/{channel_id}/messages/{message_id}/reactions/{quote(emoji, safe='')}/@me",
            bucket="/channels/{channel_id}/messages/{message_id}/reactions",
        )

    async def remove_reaction(self, channel_id: int, message_id: int, emoji: str) -> None:
        await self.http.request(
            "DELETE",
            f"/channels/{channel_id}/messages/{message_id}/reactions/{quote(emoji, safe='')}/@me",
            bucket="/channels/{channel_id}/messages/{message_id}/reactions",
        )

    async def trigger_typing(self, channel_id: int) -> None:
        await self.http.request("POST", f"/channels/{channel_id}/typing")

    async def ack(self, channel_id: int, message_id: int) -> None:
        await self.http.request(
            "POST", f"/channels/{channel_id}/messages/{message_id}/ack", json={}
        )
        if self.store is not None:
            self.store.save_read_state(channel_id, message_id, 0)

    async def fetch_me(self) -> User:
        return User.model_validate(await self.http.request("GET", "/users/@me"))

    async def edit_profile(self, **changes: Any) -> User:
        return User.model_validate(await self.http.request("PATCH", "/users/@me", json=changes))

    async def fetch_guilds(self) -> list[dict[str, Any]]:
        data: list[dict[str, Any]] = await self.http.request("GET", "/users/@me/guilds")
        return data

    async def create_guild(self, name: str) -> Guild:
        return Guild.model_validate(await self.http.request("POST", "/guilds", json={"name": name}))

    async def fetch_guild(self, guild_id: int) -> Guild:
        return Guild.model_validate(await self.http.request("GET", f"/guilds/{guild_id}"))

    async def fetch_channels(self, guild_id: int) -> list[Channel]:
        data = await self.http.request("GET", f"/guilds/{guild_id}/channels")
        return [Channel.model_validate(c) for c in data]

    async def create_channel(self, guild_id: int, name: str, **fields: Any) -> Channel:
        data = await self.http.request(
            "POST", f"/guilds/{guild_id}/channels", json={"name": name, **fields}
        )
        return Channel.model_validate(data)

    async def create_role(self, guild_id: int, **fields: Any) -> Role:
        data = await self.http.request("POST", f"/guilds/{guild_id}/roles", json=fields)
        return Role.model_validate(data)

    async def fetch_members(
        self, guild_id: int, *, limit: int = 1000, after: int = 0
    ) -> list[Member]:
        data = await self.http.request(
            "GET", f"/guilds/{guild_id}/members", params={"limit": limit, "after": str(after)}
        )
        return [Member.model_validate(m) for m in data]

    async def create_invite(
        self, channel_id: int, *, max_age: int = 86400, max_uses: int = 0
    ) -> Invite:
        data = await self.http.request(
            "POST",
            f"/channels/{channel_id}/invites",
            json={"max_age": max_age, "max_uses": max_uses},
        )
        return Invite.model_validate(data)

    async def join(self, invite: str) -> Invite:
        """Join by invite code or link (``…/invite/CODE``)."""
        code = invite.rstrip("/").rsplit("/", 1)[-1]
        return Invite.model_validate(await self.http.request("POST", f"/invites/{code}", json={}))

    # Images: avatars, banners, community icons ----------------------------------------------

    async def set_avatar(self, data: bytes | None) -> User:
        """Upload ``data`` (the bytes of a PNG, JPEG, GIF or WebP file) as your avatar, or
        remove it with None. The relay strips the file's metadata (EXIF, GPS), crops it
        square and keeps its first frame; you come back with the image's hash in
        ``avatar``. Raises ValueError for bytes of another kind and ``InvalidInput`` for
        what the relay refuses (too big, undecodable)."""
        return await self._set_user_image("avatar", data)

    async def set_banner(self, data: bytes | None) -> User:
        """Upload or (with None) remove your profile banner; as ``set_avatar``, but the
        banner keeps its aspect ratio."""
        return await self._set_user_image("banner", data)

    async def _set_user_image(self, field: str, data: bytes | None) -> User:
        value = None if data is None else self._image_data_uri(data)
        body = await self.http.request("PATCH", "/users/@me", json={field: value})
        return User.model_validate(body)

    async def set_guild_icon(self, guild_id: int, data: bytes | None) -> Guild:
        """Upload or (with None) remove a community's icon (needs Manage Server)."""
        return await self._set_guild_image(guild_id, "icon", data)

    async def set_guild_banner(self, guild_id: int, data: bytes | None) -> Guild:
        """Upload or (with None) remove a community's banner (needs Manage Server)."""
        return await self._set_guild_image(guild_id, "banner", data)

    async def _set_guild_image(self, guild_id: int, field: str, data: bytes | None) -> Guild:
        value = None if data is None else self._image_data_uri(data)
        body = await self.http.request("PATCH", f"/guilds/{guild_id}", json={field: value})
        return Guild.model_validate(body)

    @staticmethod
    def _image_data_uri(data: bytes) -> str:
        # The request models cost ~40 ms to import, which an app starting from its cache
        # need not pay before anyone changes a picture.
        from nexus_protocol.requests import image_data_uri

        return image_data_uri(data)

    async def fetch_image(
        self,
        kind: Literal["avatar", "banner", "icon", "guild_banner"],
        owner_id: int,
        image_hash: str,
        size: int | None = None,
    ) -> bytes:
        """The PNG bytes of an avatar (``owner_id`` a user), a profile banner (a user),
        an icon or a ``guild_banner`` (a community), ``image_hash`` as the user or guild
        object carries it. ``size`` (a power of two, 16 to 4096) bounds the longest side.

        With a store, images are cached there, encrypted, and answered from it without
        asking the relay again (a hash always names the same picture), so they show
        offline; the cache keeps the most recently used ~50 MB. Without a store, or for
        an image never fetched, the relay is asked: ``NotFound`` if it has no such image,
        ``ConnectionLost`` if it cannot be reached."""
        collection = {
            "avatar": "avatars",
            "banner": "banners",
            "icon": "icons",
            "guild_banner": "banners",
        }.get(kind)
        if collection is None:
            raise ValueError(f"kind must be avatar, banner, icon or guild_banner, not {kind!r}")
        if not image_hash.isascii() or not image_hash.replace("_", "").isalnum():
            raise ValueError(f"not an image hash: {image_hash[:40]!r}")
        store = self.store
        if store is not None:
            cached = store.images.get(kind, owner_id, image_hash, size or 0)
            if cached is not None:
                return cached
        data: bytes = await self.http.request(
            "GET",
            f"{self.http.base_url}/{collection}/{owner_id}/{image_hash}.png",
            params={"size": size} if size is not None else None,
            bucket=f"/{collection}",
            raw=True,
        )
        if store is not None:
            store.images.put(kind, owner_id, image_hash, size or 0, data)
        return data

    # Attachments ----------------------------------------------------------------------------

    @staticmethod
    async def _attachment_form(
        body: dict[str, Any], files: list[File], progress: Callable[[int, int], None] | None
    ) -> MultipartBody:
        """The body as discord.py sends it: ``payload_json`` plus ``files[i]`` parts."""
        import json

        contents = await asyncio.to_thread(lambda: [file.read() for file in files])
        body = body | {
            "attachments": [
                {"id": index, "filename": file.filename}
                | ({"description": file.description} if file.description is not None else {})
                for index, file in enumerate(files)
            ]
        }
        parts = [FormPart("payload_json", json.dumps(body).encode(), "application/json")]
        parts += [
            FormPart(f"files[{index}]", data, "application/octet-stream", file.filename)
            for index, (file, data) in enumerate(zip(files, contents, strict=True))
        ]
        return MultipartBody(parts, progress)

    async def fetch_attachment(self, attachment: Attachment, size: int | None = None) -> bytes:
        """The bytes of a message's file, as the relay keeps it (images without their
        metadata). ``size`` (a power of two, 16 to 4096, images only) asks for a preview
        whose longest side is at most that many pixels.

        With a store, previews are cached there, encrypted, like ``fetch_image``; whole
        files are not, so a large download never pushes avatars out of the cache.
        ``Forbidden`` if you can no longer read the channel, ``NotFound`` once the
        message is deleted."""
        store = self.store if size is not None else None
        if store is not None:
            cached = store.images.get("attachment", attachment.id, _PREVIEW_KEY, size or 0)
            if cached is not None:
                return cached
        data: bytes = await self.http.request(
            "GET",
            attachment.url,
            params={"size": size} if size is not None else None,
            bucket="/attachments",
            raw=True,
        )
        if store is not None:
            store.images.put("attachment", attachment.id, _PREVIEW_KEY, size or 0, data)
        return data

    # Search ---------------------------------------------------------------------------------

    async def search_messages(
        self,
        guild_id: int,
        content: str | None = None,
        *,
        author_id: int | None = None,
        channel_id: int | None = None,
        mentions: int | None = None,
        has: str | None = None,
        limit: int = 25,
        offset: int = 0,
        oldest_first: bool = False,
    ) -> SearchResults:
        """Messages of a community that match every criterion given, newest first
        (``oldest_first`` for the other way). ``content`` matches whole words, the last
        one also as a prefix, ignoring case (and accents, on a SQLite relay); ``has`` is
        ``"link"``, ``"embed"`` or ``"file"``. At least one criterion is required
        (``InvalidInput`` naming ``content`` otherwise). ``limit`` is 1 to 25,
        ``offset`` 0 to 5000.

        Only channels the account may read are searched, and never end-to-end
        encrypted ones (the relay holds only their ciphertext). ``Forbidden`` if
        ``channel_id`` names a channel the account cannot read."""
        params = search_params(
            content,
            author_id=author_id,
            channel_id=channel_id,
            mentions=mentions,
            has=has,
            limit=limit,
            offset=offset,
            oldest_first=oldest_first,
        )
        data = await self.http.request(
            "GET",
            f"/guilds/{guild_id}/messages/search",
            params=params,
            bucket="/guilds/{guild_id}/messages/search",
        )
        return parse_results(data)

    # Voice ----------------------------------------------------------------------------------

    async def send_gateway_op(self, op: int, data: dict[str, Any]) -> None:
        """Send one gateway command (op 4, or Nexus's voice ops 40 to 43)."""
        import orjson

        if self._gateway is None or not self._gateway.online.is_set():
            raise ConnectionLost("the gateway is not connected")
        await self._gateway.send(orjson.dumps({"op": op, "d": data}))

    async def join_voice(
        self,
        channel_id: int,
        *,
        source: AudioSource | None = None,
        sink: AudioSink | None = None,
        self_mute: bool = False,
        self_deaf: bool = False,
        noise_suppression: bool = True,
        mode: Literal["vad", "ptt"] = "vad",
        spatial: bool = False,
        frame_ms: int = 20,
        allow_direct: bool = True,
        ice_servers: list[dict[str, Any]] | None = None,
    ) -> VoiceConnection:
        """Join a voice channel, or start or answer a DM call, and connect its audio.

        ``source`` defaults to the microphone and ``sink`` to the speakers. Calls in DMs,
        group DMs and encrypted channels are end-to-end encrypted; a one-to-one call goes
        peer to peer unless ``allow_direct`` is off (then the relay carries it, and the
        other person never learns this machine's address). ``ice_servers`` (STUN/TURN,
        ``{"urls": ..., "username"?, "credential"?}``) help a direct path through NATs.
        Leaves any other call first.
        """
        from .voice.audio import MicrophoneSource, SpeakerSink
        from .voice.connection import VoiceConnection
        from .voice.keys import CallKeys

        if self.voice is not None:
            await self.voice.leave()
            self.voice = None
        channel = await self.http.request("GET", f"/channels/{channel_id}")
        channel_type = int(channel.get("type", 0))
        guild_id = int(channel["guild_id"]) if channel.get("guild_id") else None
        me = self.cache.user or await self.fetch_me()
        encrypted = channel_type in (1, 3) or bool(channel.get("e2ee"))
        keys = None
        if encrypted:
            dms = self._need_dms()
            if dms.device is None:
                await self.e2ee_setup()

            async def send_keys(envelopes: list[dict[str, Any]]) -> None:
                await self.send_gateway_op(
                    43, {"channel_id": str(channel_id), "envelopes": envelopes}
                )

            keys = CallKeys(dms, user_id=me.id, channel_id=channel_id, send_keys=send_keys)
        direct_peer = None
        if channel_type == 1:
            others = [int(u["id"]) for u in channel.get("recipients", []) if int(u["id"]) != me.id]
            direct_peer = others[0] if others else None
        connection = VoiceConnection(
            user_id=me.id,
            channel_id=channel_id,
            guild_id=guild_id,
            send_op=self.send_gateway_op,
            source=source if source is not None else MicrophoneSource(frame_ms=frame_ms),
            sink=sink if sink is not None else SpeakerSink(frame_ms=frame_ms),
            keys=keys,
            direct_peer=direct_peer,
            frame_ms=frame_ms,
            noise_suppression=noise_suppression,
            mode=mode,
            spatial=spatial,
            allow_direct=allow_direct,
            ice_servers=ice_servers,
            participants={int(s["user_id"]): s for s in self.voice_states.in_channel(channel_id)},
        )
        connection.self_mute, connection.self_deaf = self_mute, self_deaf
        connection.session_id = self._gateway.session_id if self._gateway else None
        connection.participants_of = self.voice_states.in_channel
        self.voice = connection
        try:
            await connection.start()
        except BaseException:
            self.voice = None
            raise
        return connection

    async def set_presence(self, status: str) -> None:
        if self._gateway is not None:
            import orjson

            await self._gateway.send(
                orjson.dumps(
                    {
                        "op": 3,
                        "d": {"status": status, "since": None, "afk": False, "activities": []},
                    }
                )
            )
