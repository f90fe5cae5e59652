"""Frame keys for an end-to-end encrypted call, shared through the pairwise E2EE sessions.

Every participant encrypts its own frames with its own sender key. Whenever the call's
membership changes, each participant makes a new key (a new epoch) and seals it, through
the Double Ratchet sessions the DMs use, to every device of everyone now in the call.
Someone who left never gets the next key; someone who joined never had the last one.
The relay passes the sealed envelopes on (op 43) and stores none of them.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from nexus_protocol.e2ee import b64decode, b64encode

from .._dm import DirectMessages
from ..e2ee import Undecryptable
from .sframe import FrameDecryptor, FrameEncryptor, new_sender_key

log = logging.getLogger(__name__)

KEY_KIND = "voice_key"

SendKeys = Callable[[list[dict[str, Any]]], Awaitable[None]]


class CallKeys:
    def __init__(
        self, dms: DirectMessages, *, user_id: int, channel_id: int, send_keys: SendKeys
    ) -> None:
        self._dms = dms
        self._channel_id = channel_id
        self._send_keys = send_keys
        self.encryptor = FrameEncryptor(user_id, 0, new_sender_key())
        self.decryptor = FrameDecryptor()
        self.rejected_envelopes = 0

    async def rotate(self, participants: set[int]) -> None:
        """A new sender key for the people now in the call, and only them."""
        epoch = self.encryptor.epoch + 1
        key = new_sender_key()
        self.encryptor.rotate(epoch, key)
        if participants:
            await self._share(participants, epoch, key)

    async def _share(self, participants: set[int], epoch: int, key: bytes) -> None:
        payload = {
            "kind": KEY_KIND,
            "channel_id": str(self._channel_id),
            "epoch": epoch,
            "key": b64encode(key),
        }
        envelopes = await self._dms.seal(sorted(participants), payload)
        if envelopes:
            await self._send_keys(envelopes)

    async def receive(self, data: dict[str, Any]) -> bool:
        """A VOICE_KEYS dispatch; True if it gave us a key."""
        envelope = self._dms.envelope_for_me(data.get("envelopes"))
        if envelope is None:
            return False
        try:
            sender_id = int(data["user_id"])
            payload = await self._dms.open(sender_id, envelope)
            if payload.get("kind") != KEY_KIND or payload.get("channel_id") != str(
                self._channel_id
            ):
                raise ValueError("not a voice key for this call")
            epoch = int(payload["epoch"])
            key = b64decode(str(payload["key"]))
            self.decryptor.set_key(sender_id, epoch, key)
        except (Undecryptable, ValueError, KeyError, TypeError) as exc:
            self.rejected_envelopes += 1
            log.warning("dropped a voice key envelope: %s", exc)
            return False
        return True

    def forget(self, user_id: int) -> None:
        self.decryptor.forget_sender(user_id)
