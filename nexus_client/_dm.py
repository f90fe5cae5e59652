"""End-to-end encrypted DMs over the relay: publishing this device's keys, fetching
bundles, fanning one payload out to every device, and turning incoming envelopes into
``dm_message`` / ``undecryptable`` events. The cryptography is in ``e2ee``."""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from nexus_protocol.e2ee import b64decode, b64encode

from ._events import EventDispatcher
from ._exceptions import InvalidInput
from ._http import HTTPClient
from .e2ee import (
    DecryptedMessage,
    DMMessage,
    E2EEError,
    PlaintextArchive,
    Undecryptable,
    UndecryptableMessage,
    delete_payload,
    edit_payload,
    parse_payload,
    reaction_payload,
    text_payload,
)
from .store import LocalStore

if TYPE_CHECKING:  # the ratchet code loads when a device is first set up
    from .e2ee import Decrypted, E2EEDevice

__all__ = ["DMMessage", "Device", "DirectMessages", "UndecryptableMessage"]

REPLENISH_BELOW = 25
SIGNED_PREKEY_MAX_AGE = 7 * 24 * 3600  # seconds; the previous key answers one more week
_PUBLISHED_SIGNED_PREKEY = "e2ee.published_signed_prekey"


@dataclass(frozen=True, slots=True)
class Device:
    """A device as the relay lists it."""

    user_id: int
    device_id: str
    name: str
    identity_key: bytes


class DirectMessages:
    def __init__(self, http: HTTPClient, store: LocalStore, events: EventDispatcher) -> None:
        self._http = http
        self._store = store
        self._events = events
        self._lock = asyncio.Lock()
        self._recipients: dict[int, tuple[int, ...]] = {}
        self.archive = PlaintextArchive(store)
        self.device: E2EEDevice | None = None

    async def setup(self, user_id: int, device_name: str = "") -> E2EEDevice:
        from .e2ee import E2EEDevice

        device = E2EEDevice.open(self._store.e2ee, user_id)
        self.device = device
        stored = self._store.e2ee.identity()
        assert stored is not None
        if not stored[3]:
            spk, sig = device.identity.signed_prekey
            await self._upload(
                {
                    "identity_key": b64encode(device.identity_key),
                    "signed_prekey": b64encode(spk),
                    "signed_prekey_signature": b64encode(sig),
                    "one_time_prekeys": [
                        b64encode(k) for k in sorted(device.identity.one_time_prekeys())
                    ][:100],
                    "name": device_name[:64],
                }
            )
            self._store.e2ee.mark_published()
            self._store.set_meta(_PUBLISHED_SIGNED_PREKEY, b64encode(spk))
        await self.replenish()
        return device

    async def _upload(self, body: dict[str, Any]) -> int:
        assert self.device is not None
        data = await self._http.request(
            "PUT", f"/users/@me/devices/{self.device.device_id}/keys", json=body
        )
        return int(data["one_time_prekey_count"])

    async def replenish(self, *, signed_prekey_max_age: float = SIGNED_PREKEY_MAX_AGE) -> int:
        """Rotate the signed prekey once it is ``signed_prekey_max_age`` seconds old, and
        top up one-time prekeys on the relay when fewer than 25 remain. A rotated key
        that did not reach the relay (a crash, a dropped link) is uploaded next time."""
        device = self._need_device()
        device.rotate_signed_prekey(signed_prekey_max_age)
        spk, sig = device.identity.signed_prekey
        body: dict[str, Any] = {"identity_key": b64encode(device.identity_key)}
        if self._store.get_meta(_PUBLISHED_SIGNED_PREKEY) != b64encode(spk):
            body["signed_prekey"] = b64encode(spk)
            body["signed_prekey_signature"] = b64encode(sig)
        data = await self._http.request("GET", f"/users/@me/devices/{device.device_id}/keys/count")
        count = int(data["one_time_prekey_count"])
        fresh = device.replenish(count, low=REPLENISH_BELOW)
        if fresh:
            body["one_time_prekeys"] = [b64encode(k) for k in fresh]
        if len(body) > 1:
            count = await self._upload(body)
            self._store.set_meta(_PUBLISHED_SIGNED_PREKEY, b64encode(spk))
        return count

    @property
    def lock(self) -> asyncio.Lock:
        """Held while pairwise sessions change (group key shares take it too)."""
        return self._lock

    def need_device(self) -> E2EEDevice:
        return self._need_device()

    async def ensure_session(self, user_id: int, device_id: str, identity_key: bytes) -> None:
        """A pairwise session with that device, started from its bundle if need be."""
        if not self._need_device().has_session(user_id, device_id):
            await self._start(user_id, device_id, identity_key)

    def _need_device(self) -> E2EEDevice:
        if self.device is None:
            raise E2EEError("call e2ee_setup() first")
        return self.device

    async def open_dm(self, user_id: int) -> int:
        data = await self._http.request(
            "POST", "/users/@me/channels", json={"recipient_id": str(user_id)}
        )
        channel_id = int(data["id"])
        me = self._need_device().user_id
        self._recipients[channel_id] = tuple(sorted({me, user_id}))
        await self.refresh_devices(user_id)
        return channel_id

    async def list_devices(self, user_id: int) -> list[Device]:
        """The user's devices as the relay lists them (nothing is remembered)."""
        data = await self._http.request("GET", f"/users/{user_id}/devices")
        return [
            Device(
                user_id=int(d["user_id"]),
                device_id=str(d["device_id"]),
                name=str(d.get("name", "")),
                identity_key=b64decode(str(d["identity_key"])),
            )
            for d in data
        ]

    async def refresh_devices(self, user_id: int) -> dict[str, bytes]:
        """The user's devices as the relay lists them; their keys are remembered (see
        ``note_devices``)."""
        found = {d.device_id: d.identity_key for d in await self.list_devices(user_id)}
        self.note_devices(user_id, found)
        return found

    def note_devices(self, user_id: int, found: Mapping[str, bytes]) -> None:
        """Remember the complete list of a user's devices. A changed key raises
        ``identity_changed``; a device not seen before (once some device of theirs is
        known) raises ``device_added`` and ``identity_changed`` (their safety number
        changed); a device no longer listed is forgotten, with its sessions, and raises
        ``device_removed``."""
        known = self._store.e2ee.peer_keys(user_id)
        for device_id, key in found.items():
            old = known.get(device_id)
            if old == key:
                continue
            self._store.e2ee.save_peer_key(user_id, device_id, key)
            if old is not None:
                self._events.dispatch("identity_changed", user_id, device_id)
            elif known:
                self._events.dispatch("device_added", user_id, device_id)
                self._events.dispatch("identity_changed", user_id, device_id)
        me = self.device
        for device_id in known.keys() - found.keys():
            if me is not None and (user_id, device_id) == (me.user_id, me.device_id):
                continue
            if me is not None:
                me.forget_peer(user_id, device_id)
            else:
                self._store.e2ee.forget_peer(user_id, device_id)
            self._events.dispatch("device_removed", user_id, device_id)

    def note_sender(self, user_id: int, device_id: str, known: Mapping[str, bytes]) -> None:
        """A device first met through a message it sent (``known``: the user's devices
        before): the same events as ``note_devices`` for a new device."""
        if known and device_id not in known:
            self._events.dispatch("device_added", user_id, device_id)
            self._events.dispatch("identity_changed", user_id, device_id)

    async def remove_device(self, device_id: str) -> None:
        """Remove one of this user's devices on the relay. Removing this device itself
        also drops its keys and sessions here (``setup`` then makes a new device)."""
        device = self._need_device()
        await self._http.request("DELETE", f"/users/@me/devices/{device_id}")
        if device_id == device.device_id:
            async with self._lock:
                self._store.e2ee.forget_identity()
                self._store.e2ee.forget_peer(device.user_id, device_id)
                self._store.set_meta(_PUBLISHED_SIGNED_PREKEY, None)
                self.device = None
        else:
            async with self._lock:
                device.forget_peer(device.user_id, device_id)

    async def _recipients_of(self, channel_id: int) -> tuple[int, ...]:
        known = self._recipients.get(channel_id)
        if known is None:
            data = await self._http.request("GET", f"/channels/{channel_id}")
            me = self._need_device().user_id
            known = tuple(sorted({me, *(int(u["id"]) for u in data.get("recipients", []))}))
            self._recipients[channel_id] = known
        return known

    async def seal(self, user_ids: Iterable[int], payload: dict[str, Any]) -> list[dict[str, Any]]:
        """``payload`` encrypted to every device of ``user_ids`` (but this one), one
        envelope each, through the pairwise sessions (started where there are none)."""
        device = self._need_device()
        body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
        envelopes = []
        async with self._lock:
            for user_id in user_ids:
                for device_id, identity_key in (await self.refresh_devices(user_id)).items():
                    if (user_id, device_id) == (device.user_id, device.device_id):
                        continue
                    if not device.has_session(user_id, device_id):
                        await self._start(user_id, device_id, identity_key)
                    is_prekey, blob = await device.encrypt(user_id, device_id, body)
                    envelopes.append(
                        {
                            "user_id": str(user_id),
                            "device_id": device_id,
                            "type": "prekey" if is_prekey else "message",
                            "ciphertext": b64encode(blob),
                        }
                    )
        return envelopes

    def envelope_for_me(self, envelopes: object) -> dict[str, Any] | None:
        """The envelope addressed to this device, if any."""
        device = self.device
        if device is None or not isinstance(envelopes, list):
            return None
        for envelope in envelopes:
            if (
                isinstance(envelope, dict)
                and str(envelope.get("user_id")) == str(device.user_id)
                and envelope.get("device_id") == device.device_id
            ):
                return envelope
        return None

    async def open(self, author_id: int, envelope: dict[str, Any]) -> dict[str, Any]:
        """Decrypt an envelope from ``author_id`` to a JSON object; raises
        ``Undecryptable`` or ``ValueError`` (not an object)."""
        device = self._need_device()
        async with self._lock:
            decrypted = await device.decrypt(author_id, b64decode(str(envelope["ciphertext"])))
        payload = json.loads(decrypted.plaintext)
        if not isinstance(payload, dict):
            raise ValueError("payload is not an object")
        return payload

    async def send(self, channel_id: int, payload: dict[str, Any]) -> int:
        """Encrypt ``payload`` to every device of the recipients and to this user's other
        devices, and post it; returns the message id. The plaintext is archived here:
        this device holds no envelope of its own message."""
        device = self._need_device()
        nonce = secrets.token_hex(12)
        for attempt in range(2):
            envelopes = await self.seal(await self._recipients_of(channel_id), payload)
            try:
                data = await self._http.request(
                    "POST",
                    f"/channels/{channel_id}/messages",
                    json={"nonce": nonce, "envelopes": envelopes},
                    bucket="/channels/{channel_id}/messages",
                )
            except InvalidInput:
                if attempt:
                    raise
                # A device appeared meanwhile: list again and encrypt for it too.
                nonce = secrets.token_hex(12)
                continue
            self.archive.keep(data, payload, sender_device=device.device_id)
            return int(data["id"])
        raise AssertionError("unreachable")

    async def _start(self, user_id: int, device_id: str, identity_key: bytes) -> None:
        device = self._need_device()
        data = await self._http.request("POST", f"/users/{user_id}/devices/{device_id}/bundle")
        from .e2ee import PeerBundle

        bundle = PeerBundle(
            identity_key=b64decode(str(data["identity_key"])),
            signed_prekey=b64decode(str(data["signed_prekey"])),
            signed_prekey_signature=b64decode(str(data["signed_prekey_signature"])),
            one_time_prekey=(
                None
                if data.get("one_time_prekey") is None
                else b64decode(str(data["one_time_prekey"]))
            ),
        )
        if bundle.identity_key != identity_key:
            raise E2EEError("the relay's bundle does not match the device's identity key")
        await device.start_session(user_id, device_id, bundle)

    async def decrypt_message(self, data: dict[str, Any]) -> tuple[DecryptedMessage, bool] | None:
        """A relay message carrying envelopes, decrypted at most once: ``(outcome, True)``
        the first time (the outcome archived with the session change), ``(archived,
        False)`` after that; None if no envelope is for this device."""
        device = self.device
        if device is None:
            return None
        envelope = self.envelope_for_me(data.get("envelopes"))
        if envelope is None:
            return None
        message_id = int(data["id"])
        author_id = int(data["author"]["id"])
        async with self._lock:
            archived = self.archive.get(message_id)
            if archived is not None:
                return archived, False
            known = self._store.e2ee.peer_keys(author_id)
            kept: list[DMMessage | UndecryptableMessage] = []

            def keep(decrypted: Decrypted) -> None:
                kept.append(self._keep(data, decrypted))

            try:
                ciphertext = b64decode(str(envelope.get("ciphertext")))
                decrypted = await device.decrypt(author_id, ciphertext, keep=keep)
            except Undecryptable as exc:
                return self._failed(data, exc.reason.value, exc.detail), True
            except ValueError as exc:
                return self._failed(data, "malformed", str(exc)), True
        if decrypted.identity_changed:
            self._events.dispatch("identity_changed", author_id, decrypted.sender_device)
        else:
            self.note_sender(author_id, decrypted.sender_device, known)
        return kept[0], True

    def _keep(self, data: dict[str, Any], decrypted: Decrypted) -> DMMessage | UndecryptableMessage:
        try:
            payload = parse_payload(decrypted.plaintext)
        except ValueError as exc:
            return self._failed(data, "malformed", str(exc))
        self.archive.keep(data, payload, sender_device=decrypted.sender_device)
        # Read back: a text with the edits, deletion and reactions that arrived before it.
        kept = self.archive.get(int(data["id"]))
        assert isinstance(kept, DMMessage | UndecryptableMessage)
        return kept

    def _failed(self, data: dict[str, Any], reason: str, detail: str) -> UndecryptableMessage:
        self.archive.keep_failure(data, reason, detail)
        return UndecryptableMessage(
            int(data["channel_id"]), int(data["id"]), int(data["author"]["id"]), reason, detail
        )

    def deliver(self, outcome: tuple[DecryptedMessage, bool]) -> DecryptedMessage | None:
        """Raise the event for a live message: ``dm_message`` / ``group_message``, or
        ``undecryptable`` — also for a repeat of a message decrypted before (``replay``),
        except this user's own (an echo). Returns what was dispatched."""
        result, fresh = outcome
        device = self.device
        if not fresh:
            if device is not None and result.author_id == device.user_id:
                return None
            result = UndecryptableMessage(
                result.channel_id,
                result.message_id,
                result.author_id,
                "replay",
                "this message was decrypted before",
            )
        if isinstance(result, UndecryptableMessage):
            self._events.dispatch("undecryptable", result)
        elif isinstance(result, DMMessage):
            self._events.dispatch("dm_message", result)
        else:
            self._events.dispatch("group_message", result)
        return result

    async def receive(self, data: dict[str, Any]) -> DecryptedMessage | None:
        """Handle a MESSAGE_CREATE that carries envelopes; None if none is for us, and
        for what is not shown: an edit, deletion or reaction that does not count (see
        ``PlaintextArchive.applies``) and a kind this version does not know (the archive
        logged either)."""
        outcome = await self.decrypt_message(data)
        if outcome is None:
            return None
        message, fresh = outcome
        if fresh and isinstance(message, DMMessage) and not self.archive.applies(message):
            return None
        return self.deliver(outcome)

    # -- actions on messages (the payloads are checked in ``e2ee._actions``) -------------

    async def send_text(self, channel_id: int, text: str, reply_to: int | None) -> int:
        return await self.send(channel_id, text_payload(text, reply_to))

    async def edit(self, channel_id: int, message_id: int, text: str) -> int:
        me = self._need_device().user_id
        return await self.send(
            channel_id, edit_payload(self.archive, me, channel_id, message_id, text)
        )

    async def delete(self, channel_id: int, message_id: int) -> int:
        me = self._need_device().user_id
        return await self.send(channel_id, delete_payload(self.archive, me, channel_id, message_id))

    async def react(self, channel_id: int, message_id: int, emoji: str, add: bool) -> int:
        payload = reaction_payload(self.archive, channel_id, message_id, emoji, add)
        return await self.send(channel_id, payload)

    def safety_number(self, user_id: int) -> str:
        device = self._need_device()
        mine = self._store.e2ee.peer_keys(device.user_id)
        mine[device.device_id] = device.identity_key
        theirs = self._store.e2ee.peer_keys(user_id)
        if not theirs:
            raise E2EEError("no keys known for that user yet: open a DM first")
        from .e2ee import safety_number

        return safety_number(device.user_id, mine.values(), user_id, theirs.values())
