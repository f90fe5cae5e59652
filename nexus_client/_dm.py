"""End-to-end encrypted DMs over the relay: publishing this device's keys, fetching
bundles, fanning one payload out to every device, and turning incoming envelopes into
``dm_message`` / ``undecryptable`` events. The cryptography is in ``e2ee``."""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from nexus_protocol.e2ee import b64decode, b64encode

from ._events import EventDispatcher
from ._exceptions import InvalidInput
from ._http import HTTPClient
from .e2ee import E2EEDevice, E2EEError, PeerBundle, Undecryptable, safety_number
from .store import LocalStore

REPLENISH_BELOW = 25


@dataclass(frozen=True, slots=True)
class DMMessage:
    """A decrypted DM. ``kind`` is "text", "edit", "delete" or "reaction"; ``payload`` is
    the whole decrypted object (``target`` names the message an edit applies to)."""

    channel_id: int
    message_id: int
    author_id: int
    sender_device: str
    kind: str
    text: str
    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class UndecryptableMessage:
    channel_id: int
    message_id: int
    author_id: int
    reason: str
    detail: str


class DirectMessages:
    def __init__(self, http: HTTPClient, store: LocalStore, events: EventDispatcher) -> None:
        self._http = http
        self._store = store
        self._events = events
        self._lock = asyncio.Lock()
        self._recipients: dict[int, tuple[int, ...]] = {}
        self.device: E2EEDevice | None = None

    async def setup(self, user_id: int, device_name: str = "") -> E2EEDevice:
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
        await self.replenish()
        return device

    async def _upload(self, body: dict[str, Any]) -> int:
        assert self.device is not None
        data = await self._http.request(
            "PUT", f"/users/@me/devices/{self.device.device_id}/keys", json=body
        )
        return int(data["one_time_prekey_count"])

    async def replenish(self) -> int:
        """Top up one-time prekeys on the relay when fewer than 25 remain."""
        device = self._need_device()
        data = await self._http.request("GET", f"/users/@me/devices/{device.device_id}/keys/count")
        count = int(data["one_time_prekey_count"])
        fresh = device.replenish(count, low=REPLENISH_BELOW)
        if fresh:
            count = await self._upload(
                {
                    "identity_key": b64encode(device.identity_key),
                    "one_time_prekeys": [b64encode(k) for k in fresh],
                }
            )
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

    async def refresh_devices(self, user_id: int) -> dict[str, bytes]:
        """The user's devices as the relay lists them; their keys are remembered (and a
        changed key is reported as ``identity_changed``)."""
        data = await self._http.request("GET", f"/users/{user_id}/devices")
        found = {str(d["device_id"]): b64decode(str(d["identity_key"])) for d in data}
        for device_id, key in found.items():
            if self._store.e2ee.save_peer_key(user_id, device_id, key):
                self._events.dispatch("identity_changed", user_id, device_id)
        return found

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
        devices, and post it; returns the message id."""
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
                return int(data["id"])
            except InvalidInput:
                if attempt:
                    raise
                # A device appeared meanwhile: list again and encrypt for it too.
                nonce = secrets.token_hex(12)
        raise AssertionError("unreachable")

    async def _start(self, user_id: int, device_id: str, identity_key: bytes) -> None:
        device = self._need_device()
        data = await self._http.request("POST", f"/users/{user_id}/devices/{device_id}/bundle")
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

    async def receive(self, data: dict[str, Any]) -> DMMessage | UndecryptableMessage | None:
        """Handle a MESSAGE_CREATE that carries envelopes; None if none is for us."""
        device = self.device
        if device is None:
            return None
        mine = [
            e
            for e in data.get("envelopes") or []
            if str(e.get("user_id")) == str(device.user_id)
            and e.get("device_id") == device.device_id
        ]
        if not mine:
            return None
        channel_id = int(data["channel_id"])
        message_id = int(data["id"])
        author_id = int(data["author"]["id"])
        async with self._lock:
            try:
                decrypted = await device.decrypt(author_id, b64decode(str(mine[0]["ciphertext"])))
                payload = json.loads(decrypted.plaintext)
                if not isinstance(payload, dict):
                    raise ValueError("payload is not an object")
            except Undecryptable as exc:
                result: DMMessage | UndecryptableMessage = UndecryptableMessage(
                    channel_id, message_id, author_id, exc.reason.value, exc.detail
                )
                self._events.dispatch("undecryptable", result)
                return result
            except ValueError as exc:
                result = UndecryptableMessage(
                    channel_id, message_id, author_id, "malformed", str(exc)
                )
                self._events.dispatch("undecryptable", result)
                return result
        message = DMMessage(
            channel_id=channel_id,
            message_id=message_id,
            author_id=author_id,
            sender_device=decrypted.sender_device,
            kind=str(payload.get("kind", "text")),
            text=str(payload.get("text", "")),
            payload=payload,
        )
        # Plaintext stays on this machine, in the encrypted store (client-side search).
        self._store.save_messages(
            channel_id,
            [
                {
                    "id": str(message_id),
                    "channel_id": str(channel_id),
                    "author": data["author"],
                    "content": message.text,
                    "e2ee": payload,
                }
            ],
        )
        if decrypted.identity_changed:
            self._events.dispatch("identity_changed", author_id, decrypted.sender_device)
        self._events.dispatch("dm_message", message)
        return message

    def safety_number(self, user_id: int) -> str:
        device = self._need_device()
        mine = self._store.e2ee.peer_keys(device.user_id)
        mine[device.device_id] = device.identity_key
        theirs = self._store.e2ee.peer_keys(user_id)
        if not theirs:
            raise E2EEError("no keys known for that user yet: open a DM first")
        return safety_number(device.user_id, mine.values(), user_id, theirs.values())
