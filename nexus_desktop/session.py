"""The app's link to its relays: accounts, their clients, and Qt signals for views.

Views never await the network. They read state through the query methods here (from
the clients' caches, instantly) and ask for changes through ``run`` or the named
operations; results and gateway events come back as signals.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from nexus_client import (
    Client,
    File,
    InvalidInput,
    NexusError,
    SearchResults,
    Unauthorized,
)
from nexus_client.outbox import PendingMessage
from nexus_client.store import LocalStore
from nexus_protocol.models import Attachment, Channel, Guild, Member, Message, User

from .encrypted_channels import EncryptedChannels, fold, reveal
from .qt import QObject, Signal
from .saved_accounts import account_list_path, read_saved_accounts, store_path
from .search_query import ResolvedQuery
from .voice import AudioFactory, VoiceController

log = logging.getLogger(__name__)

OnDone = Callable[[Any], None]

SEARCH_PAGE = 25  # hits per page of search results (the relay's largest page)


@dataclass(eq=False)
class Account:
    """One identity on one relay."""

    relay_url: str
    client: Client

    @property
    def user(self) -> User | None:
        return self.client.user

    @property
    def label(self) -> str:
        name = self.user.username if self.user else "?"
        return f"{name} @ {urlsplit(self.relay_url).netloc}"


def relay_from_invite(link: str) -> tuple[str, str | None]:
    """``http://host:port/invite/CODE`` → (relay URL, code); a bare URL → (URL, None)."""
    link = link.strip()
    match = re.match(r"^(https?://[^/]+)(?:/invite/([A-Za-z0-9]+))?/?$", link)
    if match is None:
        raise ValueError("an invite link or relay address starts with http:// or https://")
    return match.group(1), match.group(2)


class AppSession(QObject):
    guilds_changed = Signal()
    channels_changed = Signal(object)  # guild_id
    members_changed = Signal(object)  # guild_id
    message_created = Signal(object)  # Message
    message_updated = Signal(object)  # Message
    message_deleted = Signal(object, object)  # channel_id, message_id
    reactions_changed = Signal(object, object)  # channel_id, message_id
    typing_started = Signal(object, object)  # channel_id, user_id
    presence_changed = Signal(object)  # user_id
    outbox_changed = Signal(object)  # channel_id
    history_loaded = Signal(object)  # channel_id
    read_elsewhere = Signal(object, object)  # channel_id, message_id: acked by a session
    connection_changed = Signal(bool)
    user_updated = Signal(object)  # User: someone's profile (avatar, names) changed
    error = Signal(str)
    #: Files offered for the composer of a channel (dropped on the message list).
    files_offered = Signal(object, object)  # channel_id, list[Path]

    def __init__(
        self,
        data_dir: Path,
        parent: QObject | None = None,
        *,
        audio_factory: AudioFactory | None = None,
    ) -> None:
        """``audio_factory`` opens a call's microphone and speakers (default: the devices
        chosen in settings); tests pass synthetic ones."""
        super().__init__(parent)
        self.data_dir = data_dir
        self.accounts: list[Account] = []
        self._tasks: set[asyncio.Task[Any]] = set()
        self.voice = VoiceController(self, audio_factory)
        self._encrypted: dict[int, EncryptedChannels] = {}  # by id(account)

    # Running operations ---------------------------------------------------------------

    def run(
        self,
        coroutine: Coroutine[Any, Any, Any],
        on_done: OnDone | None = None,
        on_error: Callable[[Exception], None] | None = None,
    ) -> asyncio.Task[Any]:
        """Start an operation; its result goes to ``on_done``, a failure to ``on_error``
        or, by default, to the ``error`` signal as a sentence a person can read.
        Cancelling the returned task calls neither."""
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)

        def finished(done: asyncio.Task[Any]) -> None:
            self._tasks.discard(done)
            if done.cancelled():
                return
            exc = done.exception()
            if exc is None:
                if on_done is not None:
                    on_done(done.result())
            elif isinstance(exc, Exception):
                if on_error is not None:
                    on_error(exc)
                else:
                    self.error.emit(describe_error(exc))
            else:
                log.error("operation ended with %r", exc)

        task.add_done_callback(finished)
        return task

    async def close(self) -> None:
        await self.voice.close()
        for task in list(self._tasks):
            task.cancel()
        for account in self.accounts:
            await account.client.close()
        self.accounts.clear()

    # Accounts ---------------------------------------------------------------------------

    def store_path(self, relay_url: str, username: str) -> Path:
        return store_path(self.data_dir, relay_url, username)

    async def add_account(
        self,
        relay_url: str,
        username: str,
        password: str,
        *,
        register: bool = False,
        passphrase: str | None = None,
        invite: str | None = None,
    ) -> Account:
        """Log in (or register), open the account's encrypted store, connect."""
        relay_url = relay_url.rstrip("/")
        probe = Client(relay_url)
        try:
            action = probe.register if register else probe.login
            user = await action(username, password)
            token = probe.token
        finally:
            await probe.close()
        assert token is not None
        store = LocalStore.open(
            self.store_path(relay_url, user.username),
            passphrase=passphrase,
            keyring_username=f"{urlsplit(relay_url).netloc}/{user.id}",
        )
        store.set_meta("token", token)
        client = Client(relay_url, token=token, store=store)
        account = Account(relay_url, client)
        self._wire(account)
        if invite:
            await client.join(invite)
        await client.start()
        self.accounts.append(account)
        self.guilds_changed.emit()
        self.connection_changed.emit(True)
        return account

    def _wire(self, account: Account) -> None:
        client = account.client
        encrypted = self._encrypted[id(account)] = EncryptedChannels(client.store)

        async def guilds(*_: Any) -> None:
            self.guilds_changed.emit()

        async def channel_event(channel: Channel) -> None:
            self.channels_changed.emit(channel.guild_id)

        async def guild_available(guild: Guild) -> None:
            self.guilds_changed.emit()
            self.channels_changed.emit(guild.id)
            self.members_changed.emit(guild.id)

        async def member_event(event: Any) -> None:
            self.members_changed.emit(getattr(event, "guild_id", None))

        async def created(message: Message) -> None:
            if not message.content and encrypted.is_encrypted(message.channel_id):
                folded = fold(client, message)
                if folded is not None:  # an edit, deletion or reaction: no row of its own
                    if folded.changed is not None:
                        self.message_updated.emit(folded.changed)
                    if folded.deleted is not None:
                        self.message_deleted.emit(message.channel_id, folded.deleted)
                    return
                revealed = reveal(client, message)
                if revealed is None and client.decrypted_message(message.id) is not None:
                    return  # deleted by its author before it arrived here
                message = revealed or message
            self.message_created.emit(message)

        async def updated(message: Message) -> None:
            self.message_updated.emit(message)

        async def deleted(event: Any) -> None:
            self.message_deleted.emit(event.channel_id, event.id)

        async def bulk_deleted(event: Any) -> None:
            for message_id in event.ids:
                self.message_deleted.emit(event.channel_id, message_id)

        async def reaction(event: Any) -> None:
            self.reactions_changed.emit(event.channel_id, event.message_id)

        async def typing(event: Any) -> None:
            self.typing_started.emit(event.channel_id, event.user_id)

        async def presence(event: Any) -> None:
            self.presence_changed.emit(event.user.id)

        async def outbox_sent(pending: PendingMessage, _message: Message) -> None:
            self.outbox_changed.emit(pending.channel_id)

        async def connected(*_: Any) -> None:
            self.connection_changed.emit(True)

        async def user_update(user: User) -> None:
            self._user_updated(account, user)

        async def dispatch(event: str, data: Any) -> None:
            guild_id = encrypted.note(event, data)
            if guild_id is not None:
                self.channels_changed.emit(guild_id)
            # The relay tells every session of the user about an ack (this one's too):
            # what was read on another device is read here as well.
            if event == "MESSAGE_ACK" and isinstance(data, dict):
                try:
                    channel_id, message_id = int(data["channel_id"]), int(data["message_id"])
                except (KeyError, TypeError, ValueError):
                    log.info("ignored a malformed MESSAGE_ACK")
                    return
                self._read_elsewhere(account, channel_id, message_id)

        for name, handler in (
            ("guild_available", guild_available),
            ("guild_update", guilds),
            ("guild_remove", guilds),
            ("channel_create", channel_event),
            ("channel_update", channel_event),
            ("channel_delete", channel_event),
            ("member_join", member_event),
            ("member_update", member_event),
            ("member_remove", member_event),
            ("role_create", guilds),
            ("role_update", guilds),
            ("role_delete", guilds),
            ("message", created),
            ("message_edit", updated),
            ("message_delete", deleted),
            ("bulk_message_delete", bulk_deleted),
            ("reaction_add", reaction),
            ("reaction_remove", reaction),
            ("reaction_clear", reaction),
            ("typing", typing),
            ("presence_update", presence),
            ("user_update", user_update),
            ("outbox_sent", outbox_sent),
            ("ready", connected),
            ("resumed", connected),
            ("dispatch", dispatch),
        ):
            client.listen(name)(handler)
        self.voice.watch(account)

    # Queries (instant, from the clients' caches) -------------------------------------------

    def all_guilds(self) -> list[tuple[Account, Guild]]:
        return [
            (account, guild)
            for account in self.accounts
            for guild in sorted(account.client.cache.guilds.values(), key=lambda g: g.id)
        ]

    def account_for_guild(self, guild_id: int) -> Account | None:
        return next((a for a in self.accounts if guild_id in a.client.cache.guilds), None)

    def account_for_channel(self, channel_id: int) -> Account | None:
        return next((a for a in self.accounts if channel_id in a.client.cache.channels), None)

    def guild(self, guild_id: int) -> Guild | None:
        account = self.account_for_guild(guild_id)
        return account.client.cache.guilds.get(guild_id) if account else None

    def channels(self, guild_id: int) -> list[Channel]:
        account = self.account_for_guild(guild_id)
        return account.client.cache.channels_of(guild_id) if account else []

    def channel(self, channel_id: int) -> Channel | None:
        account = self.account_for_channel(channel_id)
        return account.client.cache.channels.get(channel_id) if account else None

    def members(self, guild_id: int) -> list[Member]:
        account = self.account_for_guild(guild_id)
        if account is None:
            return []
        return list(account.client.cache.members.get(guild_id, {}).values())

    def presence(self, user_id: int) -> str:
        for account in self.accounts:
            status = account.client.cache.presences.get(user_id)
            if status is not None:
                return status
        return "offline"

    def messages(self, channel_id: int) -> list[Message]:
        """Known messages of a channel, oldest first: live cache, else the local store."""
        account = self.account_for_channel(channel_id)
        if account is None:
            return []
        return list(reversed(account.client.cached_messages(channel_id, limit=500)))

    def pending(self, channel_id: int) -> list[PendingMessage]:
        account = self.account_for_channel(channel_id)
        if account is None or account.client.outbox is None:
            return []
        return account.client.outbox.pending(channel_id)

    def me(self, channel_or_guild_id: int) -> User | None:
        account = self.account_for_channel(channel_or_guild_id) or self.account_for_guild(
            channel_or_guild_id
        )
        return account.user if account else None

    # Operations ------------------------------------------------------------------------

    def _client_for_channel(self, channel_id: int) -> Client:
        account = self.account_for_channel(channel_id)
        if account is None:
            raise NexusError("that channel is not on any connected relay")
        return account.client

    def send_message(self, channel_id: int, content: str, reply_to: int | None = None) -> None:
        """Queue a message in the outbox; in an encrypted channel, encrypt and send it
        now (Megolm: the relay cannot read it, so it cannot wait in a plain outbox)."""
        client = self._client_for_channel(channel_id)
        if self.channel_encrypted(channel_id):
            self.run(self._send_encrypted(channel_id, content, reply_to))
            return

        async def send() -> None:
            await client.send_message(channel_id, content, reply_to=reply_to)
            self.outbox_changed.emit(channel_id)

        self.run(send())

    def retry_pending(self, channel_id: int, local_id: int) -> None:
        client = self._client_for_channel(channel_id)
        if client.outbox is not None and client.outbox.retry(local_id):
            client.kick_outbox()
        self.outbox_changed.emit(channel_id)

    def discard_pending(self, channel_id: int, local_id: int) -> None:
        client = self._client_for_channel(channel_id)
        if client.outbox is not None:
            client.outbox.discard(local_id)
        self.outbox_changed.emit(channel_id)

    def load_history(self, channel_id: int, before: int | None = None) -> None:
        client = self._client_for_channel(channel_id)

        async def load() -> None:
            fetched = await client.fetch_messages(channel_id, limit=50, before=before)
            if self.channel_encrypted(channel_id):
                for message in fetched:
                    if not message.content and fold(client, message) is None:
                        reveal(client, message)
            self.history_loaded.emit(channel_id)

        self.run(load())

    def edit_message(self, channel_id: int, message_id: int, content: str) -> None:
        """Edit one of your messages; in an encrypted channel the edit is encrypted and
        sent as a message of its own (the relay cannot read, or edit, the original)."""
        if self.channel_encrypted(channel_id):
            self.run(self._edit_encrypted(channel_id, message_id, content))
            return
        self.run(self._client_for_channel(channel_id).edit_message(channel_id, message_id, content))

    def delete_message(self, channel_id: int, message_id: int) -> None:
        """Delete a message; in an encrypted channel one's own, by an encrypted deletion
        that members' apps honour (the relay cannot tell which message it names)."""
        client = self._client_for_channel(channel_id)
        if self.channel_encrypted(channel_id):
            self.run(client.delete_dm(channel_id, message_id))
            return
        self.run(client.delete_message(channel_id, message_id))

    def toggle_reaction(self, channel_id: int, message_id: int, emoji: str, mine: bool) -> None:
        client = self._client_for_channel(channel_id)
        if self.channel_encrypted(channel_id):
            # Encrypted too: the relay must not learn who reacted to what.
            self.run(client.react_dm(channel_id, message_id, emoji, add=not mine))
            return
        action = client.remove_reaction if mine else client.add_reaction
        self.run(action(channel_id, message_id, emoji))

    def trigger_typing(self, channel_id: int) -> None:
        self.run(self._client_for_channel(channel_id).trigger_typing(channel_id))

    def ack(self, channel_id: int, message_id: int) -> None:
        self.run(self._client_for_channel(channel_id).ack(channel_id, message_id))

    # Encrypted community channels ------------------------------------------------------

    def channel_encrypted(self, channel_id: int) -> bool:
        """Whether a community channel is end-to-end encrypted (for good)."""
        account = self.account_for_channel(channel_id)
        table = self._encrypted.get(id(account)) if account is not None else None
        return table is not None and table.is_encrypted(channel_id)

    def encrypt_channel(
        self,
        channel_id: int,
        on_done: Callable[[None], None] | None = None,
        on_error: Callable[[Exception], None] | None = None,
    ) -> None:
        """Turn on end-to-end encryption in a community channel; it cannot be undone."""
        account = self.account_for_channel(channel_id)
        if account is None:
            raise NexusError("that channel is not on any connected relay")

        async def encrypt() -> None:
            await account.client.enable_e2ee(channel_id)
            channel = account.client.cache.channels.get(channel_id)
            if self._encrypted[id(account)].mark(channel_id) and channel is not None:
                self.channels_changed.emit(channel.guild_id)
            await self.enable_e2ee(account)  # this device must hold keys to take part

        self.run(encrypt(), on_done=on_done, on_error=on_error)

    async def _send_encrypted(
        self, channel_id: int, content: str, reply_to: int | None = None
    ) -> int:
        account = self.account_for_channel(channel_id)
        if account is None:
            raise NexusError("that channel is not on any connected relay")
        await self.enable_e2ee(account)
        message_id = await account.client.send_group(channel_id, content, reply_to=reply_to)
        shown = self.message(channel_id, message_id)
        if shown is not None and not shown.content:
            revealed = reveal(account.client, shown)
            if revealed is not None:
                self.message_updated.emit(revealed)
        return message_id

    async def _edit_encrypted(self, channel_id: int, message_id: int, content: str) -> int:
        account = self.account_for_channel(channel_id)
        if account is None:
            raise NexusError("that channel is not on any connected relay")
        await self.enable_e2ee(account)
        edit_id = await account.client.edit_group(channel_id, message_id, content)
        # Shown at once; the edit's own echo (if it comes) is folded away.
        target = self.message(channel_id, message_id)
        revealed = reveal(account.client, target) if target is not None else None
        if revealed is not None:
            self.message_updated.emit(revealed)
        return edit_id

    # Saved accounts (the app's start-up) ---------------------------------------------------

    def account_list_path(self) -> Path:
        return account_list_path(self.data_dir)

    def saved_accounts(self) -> list[dict[str, Any]]:
        """The accounts the app remembers (see ``saved_accounts.read_saved_accounts``)."""
        return read_saved_accounts(self.data_dir)

    def save_account_list(self) -> None:
        """Remember every connected account (merged with the saved list, so an account
        that failed to reopen this time is not forgotten) and keep each one's user record
        in its store, so the next start shows it before the relay answers."""
        entries = {(e["relay_url"], e["username"]): e for e in self.saved_accounts()}
        for account in self.accounts:
            user = account.user
            if user is None:
                continue
            entries[(account.relay_url, user.username)] = {
                "relay_url": account.relay_url,
                "username": user.username,
                "user_id": str(user.id),
            }
            if account.client.store is not None:
                account.client.store.set_meta("user", json.dumps(user.wire()))
        path = self.account_list_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        scratch = path.with_suffix(".tmp")
        scratch.write_text(json.dumps(list(entries.values()), indent=2))
        scratch.replace(path)

    def restore_account(
        self,
        relay_url: str,
        username: str,
        passphrase: str | None = None,
        *,
        key: bytes | None = None,
        connect: bool = True,
    ) -> Account:
        """Reopen a saved account from its encrypted store, without waiting for the
        network: its communities, channels and history show at once from the store, and
        the client connects in the background, retrying while the relay is unreachable.
        ``key`` is the store's raw key when it was derived already (``store_keys``);
        with ``connect=False`` the caller starts the connection (``connect_account``)
        later, e.g. once the window has painted.

        Raises ``StoreLocked`` (wrong passphrase), ``NoKeyAvailable`` (no passphrase and
        no keyring) or ``NexusError`` (no saved data or token for this account)."""
        relay_url = relay_url.rstrip("/")
        saved = next(
            (
                e
                for e in self.saved_accounts()
                if e["relay_url"] == relay_url and e["username"] == username
            ),
            None,
        )
        path = self.store_path(relay_url, username)
        if saved is None or not path.exists():
            raise NexusError(f"no saved account {username} on {relay_url}")
        if key is not None:
            store = LocalStore.open_with_key(path, key)
        else:
            store = LocalStore.open(
                path,
                passphrase=passphrase,
                keyring_username=f"{urlsplit(relay_url).netloc}/{saved['user_id']}",
            )
        token = store.get_meta("token")
        if token is None:
            store.close()
            raise NexusError(f"the local data of {username} on {relay_url} holds no login")
        client = Client(relay_url, token=token, store=store)
        # Seed the cache from the store: READY replaces all of it once connected.
        user = store.get_meta("user")
        if user is not None:
            client.cache.user = User.model_validate_json(user)
        for raw_guild in store.guilds():
            guild = Guild.model_validate(raw_guild)
            client.cache.guilds[guild.id] = guild
            for raw_channel in store.channels(guild.id):
                channel = Channel.model_validate(raw_channel)
                client.cache.channels[channel.id] = channel.model_copy(
                    update={"guild_id": guild.id}
                )
        account = Account(relay_url, client)
        self._wire(account)
        self.accounts.append(account)
        self.guilds_changed.emit()
        if connect:
            self.connect_account(account)
        return account

    def connect_account(self, account: Account) -> None:
        """Connect a restored account in the background, retrying while its relay is
        unreachable (``connection_changed`` tells how it goes)."""
        self._connect_in_background(account, delay=0.0)

    def _connect_in_background(self, account: Account, delay: float) -> None:
        async def connect() -> None:
            await asyncio.sleep(delay)
            await account.client.start()

        def connected(_: object) -> None:
            self.connection_changed.emit(account.client.online)

        def failed(exc: Exception) -> None:
            self.connection_changed.emit(False)
            if isinstance(exc, Unauthorized):
                self.error.emit(f"{account.label}: the relay no longer accepts this login")
                return
            retry = min(max(2 * delay, 2.0), 60.0)
            self.error.emit(f"{account.label}: offline ({describe_error(exc)}); retrying")
            if account in self.accounts:
                self._connect_in_background(account, retry)

        self.run(connect(), on_done=connected, on_error=failed)

    def last_channel(self, guild_id: int) -> int | None:
        """The channel last opened in a community (kept in the account's store)."""
        account = self.account_for_guild(guild_id)
        if account is None or account.client.store is None:
            return None
        value = account.client.store.get_meta(f"desktop.last_channel.{guild_id}")
        return int(value) if value and value.isdigit() else None

    def remember_last_channel(self, guild_id: int, channel_id: int) -> None:
        """Note the channel opened in a community, to reopen it next time."""
        account = self.account_for_guild(guild_id)
        if account is not None and account.client.store is not None:
            account.client.store.set_meta(f"desktop.last_channel.{guild_id}", str(channel_id))

    def account_on(self, relay_url: str) -> Account | None:
        """The first connected account on a relay, if any."""
        relay_url = relay_url.rstrip("/")
        return next((a for a in self.accounts if a.relay_url == relay_url), None)

    async def accept_invite(self, account: Account, invite: str) -> int | None:
        """Join a community by invite code or link (an operation for ``run``); returns
        the community's id. It shows in the rail when the relay sends it."""
        joined = await account.client.join(invite)
        return joined.guild.id if joined.guild is not None else None

    # Management (settings and community dialogs) ------------------------------------------

    async def http(
        self,
        account: Account,
        method: str,
        path: str,
        json: Any = None,
        *,
        params: dict[str, Any] | None = None,
        reason: str | None = None,
    ) -> Any:
        """One REST call for an account (run it with ``run``): the management dialogs'
        way to reach routes the SDK has no named method for."""
        return await account.client.http.request(
            method, path, json=json, params=params, reason=reason
        )

    async def change_password(self, account: Account, old: str, new: str) -> None:
        """Change an account's password; the relay logs out its other sessions."""
        await account.client.http.request(
            "POST", "/auth/password", json={"password": old, "new_password": new}
        )

    def guild_permissions(self, guild_id: int) -> int:
        """What the signed-in member may do community-wide (a ``Permissions`` value),
        computed as the relay does, so dialogs can disable what would be refused."""
        from nexus_protocol.permissions import RoleGrant, base_permissions

        account = self.account_for_guild(guild_id)
        guild = self.guild(guild_id)
        if account is None or guild is None or account.user is None:
            return 0
        me = account.user.id
        member = account.client.cache.members.get(guild_id, {}).get(me)
        return int(
            base_permissions(
                guild_id=guild_id,
                owner_id=guild.owner_id,
                user_id=me,
                roles=[RoleGrant(r.id, r.position, r.permissions) for r in guild.roles],
                member_role_ids=member.roles if member else [],
            )
        )

    def channel_permissions(self, channel_id: int) -> int:
        """What the signed-in member may do in one channel (a ``Permissions`` value): the
        community-wide permissions with the channel's overwrites applied, as the relay
        computes them. 0 for a channel outside any community."""
        from nexus_protocol.permissions import (
            Overwrite,
            OverwriteType,
            Permissions,
            channel_permissions,
        )

        channel = self.channel(channel_id)
        account = self.account_for_channel(channel_id)
        if channel is None or channel.guild_id is None or account is None or not account.user:
            return 0
        guild_id, me = channel.guild_id, account.user.id
        member = account.client.cache.members.get(guild_id, {}).get(me)
        return int(
            channel_permissions(
                Permissions(self.guild_permissions(guild_id)),
                guild_id=guild_id,
                user_id=me,
                member_role_ids=member.roles if member else [],
                overwrites=[
                    Overwrite(
                        o.id, OverwriteType(o.type), Permissions(o.allow), Permissions(o.deny)
                    )
                    for o in channel.permission_overwrites
                ],
            )
        )

    # Profiles and images (avatars, banners, community icons) ---------------------------

    def _user_updated(self, account: Account, user: User) -> None:
        """USER_UPDATE: someone changed their profile. The SDK's cache already holds it
        everywhere; the member lists of the communities they are in show it again."""
        for guild_id, in_guild in account.client.cache.members.items():
            if user.id in in_guild:
                self.members_changed.emit(guild_id)
        self.user_updated.emit(user)

    async def fetch_image(
        self,
        account: Account,
        kind: Literal["avatar", "banner", "icon", "guild_banner"],
        owner_id: int,
        image_hash: str,
        size: int | None,
    ) -> bytes:
        """An avatar's, banner's or community icon's bytes (an operation for ``run``):
        from the account's encrypted store when fetched before, else from its relay."""
        return await account.client.fetch_image(kind, owner_id, image_hash, size)

    # Files and pictures in community channels -------------------------------------------

    def post_files(
        self,
        channel_id: int,
        content: str,
        files: list[File],
        *,
        reply_to: int | None = None,
        progress: Callable[[int, int], None] | None = None,
        on_done: Callable[[Message], None] | None = None,
        on_error: Callable[[Exception], None] | None = None,
    ) -> asyncio.Task[Any]:
        """Send text and files as one message, now (files never wait in the outbox);
        ``progress(sent, total)`` follows the upload. Cancel the returned task to stop
        it. Encrypted channels cannot carry files yet: that is refused here."""
        client = self._client_for_channel(channel_id)
        if self.channel_encrypted(channel_id):
            raise NexusError("files can't be sent in end-to-end encrypted channels yet")
        return self.run(
            client.post_message(
                channel_id, content, files=files, reply_to=reply_to, progress=progress
            ),
            on_done=on_done,
            on_error=on_error,
        )

    async def fetch_attachment(
        self, channel_id: int, attachment: Attachment, size: int | None
    ) -> bytes:
        """An attachment's bytes (an operation for ``run``); with ``size`` a preview no
        larger than it, kept in the account's encrypted store once fetched."""
        return await self._client_for_channel(channel_id).fetch_attachment(attachment, size)

    # Navigation (read states, presence) -------------------------------------------------

    def fetch_read_states(
        self, account: Account, on_done: Callable[[list[dict[str, Any]]], None]
    ) -> None:
        """Ask the account's relay what is unread (``GET /users/@me/read-states``); the
        entries (``channel_id``, ``unread_count``, ``mention_count``…) go to ``on_done``.
        A relay that cannot answer just leaves the counts to live messages."""
        self.run(
            account.client.http.request("GET", "/users/@me/read-states"),
            on_done=lambda entries: on_done(entries if isinstance(entries, list) else []),
            on_error=lambda exc: log.info("read states unavailable: %s", exc),
        )

    def _read_elsewhere(self, account: Account, channel_id: int, message_id: int) -> None:
        store = account.client.store
        if store is not None:
            known = store.read_states().get(channel_id)
            if known is None or (known.last_message_id or 0) < message_id:
                store.save_read_state(channel_id, message_id, 0)
        dms: dict[int, _DMAccount] = getattr(self, "_dm_accounts", {})
        dm = dms.get(id(account))  # DMs not set up yet have nothing unread
        channel = dm.channels.get(channel_id) if dm is not None else None
        read_all = channel is not None and message_id >= (channel.last_message_id or 0)
        if dm is not None and read_all and channel_id in dm.unread:
            dm.unread.discard(channel_id)
            self.dm_channels_changed.emit()
        self.read_elsewhere.emit(channel_id, message_id)

    def set_presence(self, status: str) -> None:
        """Show ``status`` ("online", "idle", "dnd", "invisible") on every account: one
        person at the keyboard, one status."""
        for account in self.accounts:
            self.run(account.client.set_presence(status))

    # Messages (the message view and composer) --------------------------------------------

    def message(self, channel_id: int, message_id: int) -> Message | None:
        """One cached message (reactions and edits merged), or None if not cached."""
        account = self.account_for_channel(channel_id)
        if account is None:
            return None
        cached = account.client.cache.messages.get(channel_id)
        return cached.get(message_id) if cached is not None else None

    def messages_before(self, channel_id: int, before: int, limit: int = 50) -> list[Message]:
        """Up to ``limit`` known messages older than ``before``, oldest first: the live
        cache, else the local store (what ``load_history`` brought in)."""
        account = self.account_for_channel(channel_id)
        if account is None:
            return []
        older = [m for m in account.client.cache.history(channel_id) if m.id < before]
        if not older and account.client.store is not None:
            rows = account.client.store.messages(channel_id, limit=limit, before=before)
            older = [Message.model_validate(row) for row in reversed(rows)]
        return older[-limit:]

    def last_read_message_id(self, channel_id: int) -> int | None:
        """The last message this account marked read in the channel, if stored."""
        account = self.account_for_channel(channel_id)
        if account is None or account.client.store is None:
            return None
        state = account.client.store.read_states().get(channel_id)
        return state.last_message_id if state else None

    # Message search (the search panel, and jumping to a hit) --------------------------

    def search_messages(
        self,
        guild_id: int,
        query: ResolvedQuery,
        *,
        offset: int = 0,
        oldest_first: bool = False,
        on_done: Callable[[SearchResults], None],
        on_error: Callable[[Exception], None],
    ) -> None:
        """Search a community's messages (a page of ``SEARCH_PAGE``) on its relay; the
        ``SearchResults`` go to ``on_done``. The relay cannot read end-to-end encrypted
        channels, so their messages are never found."""
        account = self.account_for_guild(guild_id)
        if account is None:
            raise NexusError("that community is not on any connected relay")
        self.run(
            account.client.search_messages(
                guild_id,
                query.content,
                author_id=query.author_id,
                channel_id=query.channel_id,
                mentions=query.mentions,
                has=query.has,
                limit=SEARCH_PAGE,
                offset=offset,
                oldest_first=oldest_first,
            ),
            on_done=on_done,
            on_error=on_error,
        )

    def fetch_history_page(
        self,
        channel_id: int,
        *,
        around: int | None = None,
        before: int | None = None,
        after: int | None = None,
        on_done: Callable[[list[Message]], None],
        on_error: Callable[[Exception], None] | None = None,
        limit: int = 50,
    ) -> None:
        """A page of a channel's history around, before or after a message, oldest first, for
        a message view showing a stretch of the past. Kept out of the client's cache and
        store: those hold the history contiguous from the present, and a page from
        further back would leave a gap in it."""
        client = self._client_for_channel(channel_id)
        params: dict[str, Any] = {"limit": limit}
        if around is not None:
            params["around"] = str(around)
        if before is not None:
            params["before"] = str(before)
        if after is not None:
            params["after"] = str(after)

        async def fetch() -> list[Message]:
            data = await client.http.request(
                "GET", f"/channels/{channel_id}/messages", params=params
            )
            page = [Message.model_validate(m) for m in data] if isinstance(data, list) else []
            return sorted(page, key=lambda m: m.id)

        self.run(fetch(), on_done=on_done, on_error=on_error)

    # End-to-end encrypted DMs (DM list, DM view, verification) -----------------------------
    #
    # Kept together at the end of the class. Per account: the DM channels, what is unread,
    # the decrypted history (``search.DMLog``) and verification state
    # (``e2ee_state.E2EEState``), both in the account's encrypted store.

    dm_message = Signal(object)  # DMMessage: decrypted, or sent by this app
    dm_undecryptable = Signal(object)  # UndecryptableMessage
    identity_changed = Signal(object)  # IdentityChange: a contact's keys changed
    dm_channels_changed = Signal()
    dm_history_changed = Signal(object)  # channel_id

    def _dm(self, account: Account) -> _DMAccount:
        table: dict[int, _DMAccount] | None = getattr(self, "_dm_accounts", None)
        if table is None:
            table = {}
            self._dm_accounts = table
        state = table.get(id(account))
        if state is None:
            store = account.client.store
            if store is None:
                raise NexusError("end-to-end encrypted DMs need the account's local store")
            state = table[id(account)] = _DMAccount(E2EEState(store), DMLog(store))
        return state

    def ensure_e2ee(self) -> None:
        """Set up end-to-end encryption on every account that has not done it yet (the
        DM list calls this; accounts without a store are skipped)."""
        for account in list(self.accounts):
            if account.client.store is None:
                continue
            dm = self._dm(account)
            if not dm.ready and (dm.setup is None or dm.setup.done()):

                def failed(exc: Exception, label: str = account.label) -> None:
                    self.error.emit(f"{label}: encrypted DMs unavailable ({describe_error(exc)})")

                self.run(self.enable_e2ee(account), on_error=failed)

    async def enable_e2ee(self, account: Account) -> None:
        """Wire the account's DM events, create or load this device's keys, publish them,
        and list the account's DMs (an operation for ``run``; safe to repeat)."""
        dm = self._dm(account)
        if not dm.wired:
            self._wire_dms(account)
            dm.wired = True
        if dm.ready:
            return
        if dm.setup is None or (dm.setup.done() and dm.setup.exception() is not None):
            dm.setup = asyncio.ensure_future(self._setup_e2ee(account))
        await asyncio.shield(dm.setup)

    async def _setup_e2ee(self, account: Account) -> None:
        dm = self._dm(account)
        await account.client.e2ee_setup(device_name="Nexus desktop")
        dm.ready = True
        listed = await account.client.http.request("GET", "/users/@me/channels")
        for raw in listed if isinstance(listed, list) else []:
            self._note_dm_channel(account, raw)
        self.dm_channels_changed.emit()

    def _note_dm_channel(self, account: Account, raw: Any) -> DMChannel | None:
        """Remember a DM (type 1) or group DM (type 3) from a relay channel object."""
        if not isinstance(raw, dict) or raw.get("guild_id"):
            return None
        kind = int(raw.get("type", -1))
        if kind not in (DM_TYPE, GROUP_DM_TYPE):
            return None
        members = [User.model_validate(u) for u in raw.get("recipients") or []]
        if kind == DM_TYPE and not members:
            return None
        last = raw.get("last_message_id")
        owner = raw.get("owner_id")
        channel = DMChannel(
            account,
            int(raw["id"]),
            members,
            int(last) if last else None,
            is_group=kind == GROUP_DM_TYPE,
            owner_id=int(owner) if owner else None,
            name=raw.get("name") or None,
        )
        known = self._dm(account).channels.get(channel.channel_id)
        if known is not None:
            known.members = members
            known.owner_id = channel.owner_id
            known.name = channel.name
            known.left = False
            return known
        self._dm(account).channels[channel.channel_id] = channel
        for member in members:
            self._observe_keys(account, member.id, None)  # first sighting: trust on first use
        return channel

    def _wire_dms(self, account: Account) -> None:
        client = account.client
        dm = self._dm(account)

        async def decrypted(message: DMMessage | GroupMessage) -> None:
            if _in_community(client, message.channel_id):
                return  # an encrypted community channel: the message view shows it
            await self._ensure_dm_channel(account, message.channel_id)
            self._log_decrypted(account, message)
            self.dm_message.emit(message)

        async def undecryptable(message: UndecryptableMessage) -> None:
            if _in_community(client, message.channel_id):
                return
            await self._ensure_dm_channel(account, message.channel_id)
            if dm.log.add(message.channel_id, _undecryptable_entry(message)):
                self._bump_dm(account, message.channel_id, message.message_id, message.author_id)
                self.dm_history_changed.emit(message.channel_id)
            self.dm_undecryptable.emit(message)

        async def identity_changed(user_id: int, device_id: str) -> None:
            self._observe_keys(account, user_id, device_id)

        def verdict(verified: bool, added: bool) -> Callable[[int, int], Coroutine[Any, Any, None]]:
            async def record(channel_id: int, user_id: int) -> None:
                dm.membership_verdicts[(channel_id, user_id, added)] = verified

            return record

        async def rejected(channel_id: int, user_id: int) -> None:
            for added in (True, False):
                dm.membership_verdicts.setdefault((channel_id, user_id, added), False)

        async def dispatch(event: str, data: Any) -> None:
            if event == "READY" and isinstance(data, dict):
                for raw in data.get("private_channels") or []:
                    self._note_dm_channel(account, raw)
                self.dm_channels_changed.emit()
            elif event == "CHANNEL_CREATE" and self._note_dm_channel(account, data) is not None:
                self.dm_channels_changed.emit()
            elif event == "CHANNEL_DELETE" and isinstance(data, dict) and not data.get("guild_id"):
                self._left_group(account, data)
            elif event in ("CHANNEL_RECIPIENT_ADD", "CHANNEL_RECIPIENT_REMOVE"):
                self._membership_changed(account, event == "CHANNEL_RECIPIENT_ADD", data)

        client.listen("dm_message")(decrypted)
        client.listen("group_message")(decrypted)
        client.listen("undecryptable")(undecryptable)
        client.listen("identity_changed")(identity_changed)
        client.listen("group_member_add")(verdict(True, True))
        client.listen("group_member_remove")(verdict(True, False))
        client.listen("membership_rejected")(rejected)
        client.listen("dispatch")(dispatch)

    def _log_decrypted(self, account: Account, message: DMMessage | GroupMessage) -> None:
        """Put a decrypted message in the conversation's log; an edit, deletion or
        reaction updates its target's entry as the SDK's archive now reads it."""
        dm = self._dm(account)
        me = account.user.id if account.user else None
        if message.author_id != me:
            self._observe_keys(account, message.author_id, message.sender_device)
        if message.kind in ACTION_KINDS and message.target is not None:
            self._refresh_dm_entry(account, message.channel_id, message.target)
            return
        if message.kind != "text":
            log.info("encrypted payload of kind %r not shown", message.kind[:40])
            return
        if message.deleted:
            return
        if dm.log.add(message.channel_id, _text_entry(message)):
            self._bump_dm(account, message.channel_id, message.message_id, message.author_id)
            self.dm_history_changed.emit(message.channel_id)

    def _refresh_dm_entry(self, account: Account, channel_id: int, message_id: int) -> None:
        """Show message ``message_id`` as the SDK reads it now: its latest edit, its
        reactions, or gone once deleted."""
        try:
            found = account.client.decrypted_message(message_id)
        except NexusError:
            return
        if not isinstance(found, DMMessage | GroupMessage) or found.kind != "text":
            return
        if found.channel_id != channel_id:
            return
        changes = None if found.deleted else _entry_changes(found)
        if self._dm(account).log.update(channel_id, message_id, changes):
            self.dm_history_changed.emit(channel_id)

    def _membership_changed(self, account: Account, added: bool, data: Any) -> None:
        """CHANNEL_RECIPIENT_ADD / _REMOVE: update the group's members (an add only if its
        signed statement verified; a removal always) and put a line in the conversation."""
        dm = self._dm(account)
        try:
            channel_id = int(data["channel_id"])
            user = User.model_validate(data["user"])
            statement = json.loads(str((data.get("membership") or {}).get("statement") or "{}"))
            actor_id = int(statement.get("actor_id") or user.id)
        except (KeyError, TypeError, ValueError):
            log.info("ignored a malformed group membership event")
            return
        channel = dm.channels.get(channel_id)
        if channel is None:
            return
        verified = dm.membership_verdicts.pop((channel_id, user.id, added), False)
        me = account.user.id if account.user else None
        names = {u.id: u.global_name or u.username for u in channel.members}
        if account.user is not None:
            names[account.user.id] = account.user.global_name or account.user.username
        others = [u for u in channel.members if u.id != user.id]
        if added and verified and user.id != me:
            others.append(user)
            self._observe_keys(account, user.id, None)
        if not added or verified:
            channel.members = others
        if not added and user.id == me:
            channel.left = True
        if not added and channel.owner_id == user.id:
            remaining = [u.id for u in channel.members] + ([me] if me and not channel.left else [])
            channel.owner_id = min(remaining) if remaining else None
        dm.log.add(
            channel_id,
            {
                "type": "member_added" if added else "member_removed",
                "actor_id": str(actor_id),
                "actor_name": names.get(actor_id, str(actor_id)),
                "user_id": str(user.id),
                "user_name": user.global_name or user.username,
                "verified": verified,
            },
        )
        self.dm_history_changed.emit(channel_id)
        self.dm_channels_changed.emit()

    def _left_group(self, account: Account, data: dict[str, Any]) -> None:
        try:
            channel = self._dm(account).channels.get(int(data["id"]))
        except (KeyError, TypeError, ValueError):
            return
        if channel is not None and channel.is_group and not channel.left:
            channel.left = True
            self.dm_channels_changed.emit()

    async def _ensure_dm_channel(self, account: Account, channel_id: int) -> None:
        if channel_id in self._dm(account).channels:
            return
        try:
            raw = await account.client.http.request("GET", f"/channels/{channel_id}")
        except NexusError as exc:
            log.info("could not describe DM %s: %s", channel_id, exc)
            return
        if self._note_dm_channel(account, raw) is not None:
            self.dm_channels_changed.emit()

    def _bump_dm(self, account: Account, channel_id: int, message_id: int, author: int) -> None:
        dm = self._dm(account)
        channel = dm.channels.get(channel_id)
        if channel is not None:
            channel.last_message_id = max(channel.last_message_id or 0, message_id)
        me = account.user.id if account.user else None
        if author != me and channel_id != getattr(self, "active_dm", None):
            dm.unread.add(channel_id)
        self.dm_channels_changed.emit()

    def key_fingerprint(self, account: Account, user_id: int) -> str:
        """A digest of the contact's devices and identity keys as this account knows them."""
        store = account.client.store
        assert store is not None
        return key_fingerprint(store.e2ee.peer_keys(user_id))

    def _observe_keys(self, account: Account, user_id: int, device_id: str | None) -> bool:
        """Compare a contact's keys with those seen before; on a change, put a notice in
        each conversation with them and emit ``identity_changed``."""
        dm = self._dm(account)
        store = account.client.store
        if store is None or not store.e2ee.peer_keys(user_id):
            return False  # no keys known yet: nothing to compare
        fingerprint = self.key_fingerprint(account, user_id)
        if not dm.state.observe(user_id, fingerprint):
            return False
        blocked = dm.state.send_blocked(user_id, fingerprint)
        channel_ids = tuple(c.channel_id for c in dm.channels.values() if c.has_member(user_id))
        for channel_id in channel_ids:
            dm.log.add(
                channel_id,
                {
                    "type": "key_change",
                    "user_id": str(user_id),
                    "device_id": device_id,
                    "verified": blocked,
                },
            )
            self.dm_history_changed.emit(channel_id)
        self.identity_changed.emit(
            IdentityChange(account, user_id, device_id, channel_ids, blocked)
        )
        self.dm_channels_changed.emit()
        return True

    # DM queries -------------------------------------------------------------------------

    def dm_channels(self) -> list[DMChannel]:
        """Every account's DMs, most recent activity first."""
        found = [
            channel
            for account in self.accounts
            if account.client.store is not None
            for channel in self._dm(account).channels.values()
        ]
        return sorted(found, key=lambda c: (-(c.last_message_id or 0), -c.channel_id))

    def dm_channel(self, channel_id: int) -> DMChannel | None:
        return next((c for c in self.dm_channels() if c.channel_id == channel_id), None)

    def _need_dm_channel(self, channel_id: int) -> DMChannel:
        channel = self.dm_channel(channel_id)
        if channel is None:
            raise NexusError("that conversation is not on any connected relay")
        return channel

    def dm_history(self, channel_id: int) -> list[dict[str, Any]]:
        """The conversation as this app saw it, oldest first (see ``search.DMLog``)."""
        channel = self.dm_channel(channel_id)
        return self._dm(channel.account).log.entries(channel_id) if channel else []

    def search_dms(
        self, query: str, channel_id: int | None = None
    ) -> list[tuple[int, dict[str, Any]]]:
        """Client-side search of decrypted DM history (every account, or one DM)."""
        found: list[tuple[int, dict[str, Any]]] = []
        for account in self.accounts:
            if account.client.store is None:
                continue
            dm = self._dm(account)
            if channel_id is not None and channel_id not in dm.channels:
                continue
            found.extend(dm.log.search(query, channel_id))
        return found

    def dm_unread(self, channel_id: int) -> bool:
        channel = self.dm_channel(channel_id)
        return channel is not None and channel_id in self._dm(channel.account).unread

    def mark_dm_read(self, channel_id: int) -> None:
        channel = self.dm_channel(channel_id)
        if channel is not None and channel_id in self._dm(channel.account).unread:
            self._dm(channel.account).unread.discard(channel_id)
            self.dm_channels_changed.emit()

    def dm_account_for_user(self, user_id: int) -> Account | None:
        """The account that has a DM with ``user_id`` (else the first with E2EE ready)."""
        channel = next((c for c in self.dm_channels() if c.has_member(user_id)), None)
        if channel is not None:
            return channel.account
        return next(
            (a for a in self.accounts if a.client.store is not None and self._dm(a).ready), None
        )

    def safety_number(self, user_id: int, account: Account | None = None) -> str:
        """The 60-digit safety number with ``user_id`` (equal on both sides)."""
        account = account or self.dm_account_for_user(user_id)
        if account is None:
            raise NexusError("no account has encrypted DMs with that person")
        return account.client.safety_number(user_id)

    def is_verified(self, user_id: int, account: Account | None = None) -> bool:
        account = account or self.dm_account_for_user(user_id)
        if account is None or account.client.store is None:
            return False
        dm = self._dm(account)
        return dm.state.is_verified(user_id, self.key_fingerprint(account, user_id))

    def mark_verified(self, user_id: int, account: Account | None = None) -> None:
        """The user compared safety numbers with ``user_id``: remember their keys."""
        account = account or self.dm_account_for_user(user_id)
        if account is None:
            raise NexusError("no account has encrypted DMs with that person")
        self._dm(account).state.mark_verified(user_id, self.key_fingerprint(account, user_id))
        self.dm_channels_changed.emit()

    def clear_verified(self, user_id: int, account: Account | None = None) -> None:
        account = account or self.dm_account_for_user(user_id)
        if account is not None:
            self._dm(account).state.clear_verified(user_id)
            self.dm_channels_changed.emit()

    def dm_send_blocked(self, channel_id: int) -> bool:
        """Whether sending in a DM or group DM waits for the user to acknowledge a
        verified contact's key change."""
        return bool(self.blocked_members(channel_id))

    def blocked_members(self, channel_id: int) -> list[User]:
        """The people of a conversation whose keys changed since the user verified them."""
        channel = self.dm_channel(channel_id)
        if channel is None:
            return []
        state = self._dm(channel.account).state
        return [
            user
            for user in channel.members
            if state.send_blocked(user.id, self.key_fingerprint(channel.account, user.id))
        ]

    def acknowledge_key_change(self, channel_id: int) -> None:
        """The user saw the key changes in a conversation: unblock sending (those contacts
        are no longer verified until their new safety numbers are compared)."""
        channel = self._need_dm_channel(channel_id)
        account = channel.account
        for peer in [u.id for u in self.blocked_members(channel_id)]:
            self._dm(account).state.acknowledge(peer, self.key_fingerprint(account, peer))
            for other in self.dm_channels():
                if other.account is account and other.has_member(peer):
                    self._dm(account).log.add(
                        other.channel_id,
                        {"type": "key_change_acknowledged", "user_id": str(peer)},
                    )
                    self.dm_history_changed.emit(other.channel_id)
        self.dm_channels_changed.emit()

    # DM operations ----------------------------------------------------------------------

    def open_dm(
        self,
        user_id: int,
        account: Account | None = None,
        on_done: Callable[[int], None] | None = None,
        on_error: Callable[[Exception], None] | None = None,
    ) -> None:
        """Open (or create) the encrypted DM with ``user_id``; its id goes to ``on_done``."""
        target = (
            account
            or self.dm_account_for_user(user_id)
            or (self.accounts[0] if self.accounts else None)
        )
        if target is None:
            raise NexusError("sign in first")
        self.run(self.open_dm_now(user_id, target), on_done=on_done, on_error=on_error)

    async def open_dm_now(self, user_id: int, account: Account) -> int:
        await self.enable_e2ee(account)
        channel_id = await account.client.open_dm(user_id)
        if channel_id not in self._dm(account).channels:
            await self._ensure_dm_channel(account, channel_id)
        self._observe_keys(account, user_id, None)
        self.dm_channels_changed.emit()
        return channel_id

    def send_dm(
        self,
        channel_id: int,
        text: str,
        on_done: Callable[[int], None] | None = None,
        on_error: Callable[[Exception], None] | None = None,
        *,
        reply_to: int | None = None,
    ) -> None:
        """Encrypt and send ``text`` (answering message ``reply_to`` if given); refused
        (``SendBlocked``) while a verified contact's key change waits for
        acknowledgement. The message id goes to ``on_done``."""
        self.run(
            self.send_dm_now(channel_id, text, reply_to=reply_to),
            on_done=on_done,
            on_error=on_error,
        )

    async def send_dm_now(self, channel_id: int, text: str, *, reply_to: int | None = None) -> int:
        client = await self._ready_to_send(channel_id)
        account = self._need_dm_channel(channel_id).account
        message_id = await client.send_dm(channel_id, text, reply_to=reply_to)
        me = account.user.id if account.user else 0
        sent = client.decrypted_message(message_id)
        if not isinstance(sent, DMMessage | GroupMessage):
            device = client.dms.device if client.dms is not None else None
            sent = DMMessage(
                channel_id=channel_id,
                message_id=message_id,
                author_id=me,
                sender_device=device.device_id if device else "",
                kind="text",
                text=text,
                payload={"kind": "text", "text": text},
                reply_to=reply_to,
            )
        self._dm(account).log.add(channel_id, _text_entry(sent))
        self._bump_dm(account, channel_id, message_id, me)
        self.dm_history_changed.emit(channel_id)
        self.dm_message.emit(sent)
        return message_id

    def edit_dm(
        self,
        channel_id: int,
        message_id: int,
        text: str,
        on_done: Callable[[int], None] | None = None,
        on_error: Callable[[Exception], None] | None = None,
    ) -> None:
        """Edit one of your messages (an encrypted edit; shown here at once)."""

        async def edit() -> int:
            client = await self._ready_to_send(channel_id)
            edit_id = await client.edit_dm(channel_id, message_id, text)
            self._refresh_dm_entry(
                self._need_dm_channel(channel_id).account, channel_id, message_id
            )
            return edit_id

        self.run(edit(), on_done=on_done, on_error=on_error)

    def delete_dm(
        self,
        channel_id: int,
        message_id: int,
        on_done: Callable[[int], None] | None = None,
        on_error: Callable[[Exception], None] | None = None,
    ) -> None:
        """Delete one of your messages for everyone (an encrypted deletion)."""

        async def delete() -> int:
            client = await self._ready_to_send(channel_id)
            deletion = await client.delete_dm(channel_id, message_id)
            self._refresh_dm_entry(
                self._need_dm_channel(channel_id).account, channel_id, message_id
            )
            return deletion

        self.run(delete(), on_done=on_done, on_error=on_error)

    def react_dm(
        self,
        channel_id: int,
        message_id: int,
        emoji: str,
        add: bool = True,
        on_done: Callable[[int], None] | None = None,
        on_error: Callable[[Exception], None] | None = None,
    ) -> None:
        """Add (or, ``add`` False, take back) your reaction ``emoji`` to a message."""

        async def react() -> int:
            client = await self._ready_to_send(channel_id)
            reaction = await client.react_dm(channel_id, message_id, emoji, add)
            self._refresh_dm_entry(
                self._need_dm_channel(channel_id).account, channel_id, message_id
            )
            return reaction

        self.run(react(), on_done=on_done, on_error=on_error)

    def dm_decrypted(self, channel_id: int, message_id: int) -> DecryptedMessage | None:
        """What a message of a DM or group DM decrypted to on this device (with its
        latest edit), from the local store; None if this device has no outcome for it."""
        channel = self.dm_channel(channel_id)
        if channel is None or channel.account.client.store is None:
            return None
        found = channel.account.client.decrypted_message(message_id)
        return found if found is not None and found.channel_id == channel_id else None

    async def _ready_to_send(self, channel_id: int) -> Client:
        channel = self._need_dm_channel(channel_id)
        account = channel.account
        client = account.client
        if channel.left:
            raise NexusError("you are no longer in this group")
        await self.enable_e2ee(account)
        # List the contacts' devices first, so a new device or key is noticed (and a
        # verified contact's change blocks) before anything is encrypted to it.
        assert client.dms is not None
        for member in list(channel.members):
            await client.dms.refresh_devices(member.id)
            self._observe_keys(account, member.id, None)
        blocked = self.blocked_members(channel_id)
        if blocked:
            names = ", ".join(u.global_name or u.username for u in blocked)
            raise SendBlocked(
                f"The safety number of {names} changed. Acknowledge the change"
                " (or verify again) before sending."
            )
        return client

    # Group DM operations ----------------------------------------------------------------

    def create_group_dm(
        self,
        account: Account,
        user_ids: list[int],
        on_done: Callable[[int], None] | None = None,
        on_error: Callable[[Exception], None] | None = None,
    ) -> None:
        """Create an encrypted group DM with ``user_ids`` (2 to 9 people besides you);
        its id goes to ``on_done``."""
        if not 2 <= len(set(user_ids)) <= 9:
            raise ValueError(f"a group needs 2 to 9 other people, got {len(set(user_ids))}")
        self.run(self.create_group_dm_now(account, user_ids), on_done=on_done, on_error=on_error)

    async def create_group_dm_now(self, account: Account, user_ids: list[int]) -> int:
        await self.enable_e2ee(account)
        channel_id = await account.client.create_group_dm(sorted(set(user_ids)))
        await self._ensure_dm_channel(account, channel_id)
        return channel_id

    def add_group_member(
        self, channel_id: int, user_id: int, on_error: Callable[[Exception], None] | None = None
    ) -> None:
        """Add someone to a group DM (a signed change; the line appears when the relay
        confirms it)."""
        client = self._need_dm_channel(channel_id).account.client
        self.run(client.add_group_recipient(channel_id, user_id), on_error=on_error)

    def remove_group_member(
        self, channel_id: int, user_id: int, on_error: Callable[[Exception], None] | None = None
    ) -> None:
        """Remove someone from a group DM (the owner), or leave it (your own id)."""
        client = self._need_dm_channel(channel_id).account.client
        self.run(client.remove_group_recipient(channel_id, user_id), on_error=on_error)

    def load_dm_history(self, channel_id: int) -> None:
        """Bring the relay's recent history of a DM or group DM into the conversation
        (decrypted once by the SDK, then read from its archive)."""
        channel = self.dm_channel(channel_id)
        if channel is None:
            return
        account = channel.account

        async def load() -> None:
            await self.enable_e2ee(account)
            page = await account.client.dm_history(channel_id, limit=50)
            entries: list[dict[str, Any]] = []
            texts: list[DMMessage | GroupMessage] = []
            for message in reversed(page):
                if isinstance(message, UndecryptableMessage):
                    entries.append(_undecryptable_entry(message))
                elif message.kind == "text":
                    texts.append(message)
                    if not message.deleted:
                        # Read with its latest edit, reactions and reply target applied.
                        entries.append(_text_entry(message))
            log_ = self._dm(account).log
            changed = log_.merge(channel_id, entries)
            for message in texts:
                changes = None if message.deleted else _entry_changes(message)
                changed = log_.update(channel_id, message.message_id, changes) or changed
            if changed:
                self.dm_history_changed.emit(channel_id)

        self.run(load(), on_error=lambda exc: log.info("DM history unavailable: %s", exc))


def describe_error(exc: Exception) -> str:
    """A failure as one sentence for a person, never a traceback."""
    if isinstance(exc, InvalidInput):
        return "; ".join(f"{field}: {' '.join(msgs)}" for field, msgs in exc.fields.items())
    if isinstance(exc, NexusError):
        return str(exc)
    return f"Something went wrong: {exc}"


# End-to-end encrypted DMs: the records the DM section of AppSession hands to views. -------

from dataclasses import field  # noqa: E402

from nexus_client import DMMessage, GroupMessage, UndecryptableMessage  # noqa: E402
from nexus_client.e2ee import ACTION_KINDS, DecryptedMessage  # noqa: E402
from nexus_protocol.snowflake import snowflake_time  # noqa: E402

from .e2ee_state import E2EEState, key_fingerprint  # noqa: E402
from .search import DMLog  # noqa: E402


class SendBlocked(NexusError):
    """Sending waits for the user to acknowledge a verified contact's key change."""


DM_TYPE = 1
GROUP_DM_TYPE = 3


@dataclass(eq=False)
class DMChannel:
    """One encrypted DM or group DM of one account: its id and the other people."""

    account: Account
    channel_id: int
    members: list[User]  # the other people (one in a DM), never this account's user
    last_message_id: int | None = None
    is_group: bool = False
    owner_id: int | None = None
    name: str | None = None
    left: bool = False  # removed from the group (or left it): history stays readable

    @property
    def peer(self) -> User:
        """The other person of a one-to-one DM (of a group: its first other member)."""
        if self.members:
            return self.members[0]
        return self.account.user or User(id=0, username="nobody")

    def has_member(self, user_id: int) -> bool:
        return any(u.id == user_id for u in self.members)

    @property
    def title(self) -> str:
        """A DM: the other person's name; a group: its name, else its members' names."""
        if self.is_group and self.name:
            return self.name
        names = [u.global_name or u.username for u in self.members]
        if self.is_group and not names:
            return "Just you"
        return ", ".join(sorted(names, key=str.casefold) if self.is_group else names)


def _in_community(client: Client, channel_id: int) -> bool:
    channel = client.cache.channels.get(channel_id)
    return channel is not None and channel.guild_id is not None


def _snowflake_seconds(message_id: int) -> float:
    return snowflake_time(message_id).timestamp()


def _entry_changes(message: DMMessage | GroupMessage) -> dict[str, Any]:
    """What a text's log entry shows that later messages can change."""
    return {
        "text": message.text,
        "edited": message.edited,
        "reactions": {e: [str(u) for u in users] for e, users in message.reactions.items()},
    }


def _text_entry(message: DMMessage | GroupMessage) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "type": "text",
        "id": str(message.message_id),
        "author_id": str(message.author_id),
        "ts": _snowflake_seconds(message.message_id),
        **_entry_changes(message),
    }
    if message.reply_to is not None:
        entry["reply_to"] = str(message.reply_to)
    return entry


def _undecryptable_entry(message: UndecryptableMessage) -> dict[str, Any]:
    return {
        "type": "undecryptable",
        "id": str(message.message_id),
        "author_id": str(message.author_id),
        "reason": message.reason,
        "detail": message.detail,
        "ts": _snowflake_seconds(message.message_id),
    }


@dataclass(frozen=True)
class IdentityChange:
    """A contact's keys changed (a new device or a replaced identity key)."""

    account: Account
    user_id: int
    device_id: str | None
    channel_ids: tuple[int, ...]
    blocked: bool  # they were verified: sending waits for acknowledgement


@dataclass(eq=False)
class _DMAccount:
    state: E2EEState
    log: DMLog
    channels: dict[int, DMChannel] = field(default_factory=dict)
    unread: set[int] = field(default_factory=set)
    #: Whether the SDK verified a group membership change, by (channel, user, added),
    #: until the relay's event for it is shown.
    membership_verdicts: dict[tuple[int, int, bool], bool] = field(default_factory=dict)
    wired: bool = False
    ready: bool = False
    setup: asyncio.Future[None] | None = None
