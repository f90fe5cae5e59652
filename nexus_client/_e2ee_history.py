"""History of an end-to-end encrypted DM or group DM: the relay says which messages
exist (``GET /channels/{id}/messages?device_id=``); what this device already decrypted
or sent comes from the archive in the local store, and the rest is decrypted once, in
the order it was sent (a Megolm key share precedes the messages that use it), and
archived. Offline, the archive alone answers."""

from __future__ import annotations

from typing import Any

from ._dm import DirectMessages
from ._exceptions import ConnectionLost
from ._groups import GroupMessages
from ._http import HTTPClient
from .e2ee import DecryptedMessage, UndecryptableMessage, UndecryptableReason

MAX_PAGE = 100  # the relay's limit per request


class EncryptedHistory:
    def __init__(self, http: HTTPClient, dms: DirectMessages, groups: GroupMessages) -> None:
        self._http = http
        self._dms = dms
        self._groups = groups

    async def fetch(
        self, channel_id: int, *, limit: int = 50, before: int | None = None
    ) -> list[DecryptedMessage]:
        """Up to ``limit`` messages (1 to 100) older than ``before``, newest first."""
        if not 1 <= limit <= MAX_PAGE:
            raise ValueError(f"limit must be from 1 to {MAX_PAGE}, got {limit}")
        device = self._dms.need_device()
        params: dict[str, Any] = {"device_id": device.device_id, "limit": limit}
        if before is not None:
            params["before"] = str(before)
        try:
            page = await self._http.request(
                "GET", f"/channels/{channel_id}/messages", params=params
            )
        except ConnectionLost:
            return self._dms.archive.page(channel_id, limit, before)
        ids = [int(m["id"]) for m in page]
        archived = self._dms.archive.get_many(ids)
        found: dict[int, DecryptedMessage] = {}
        for message in sorted(page, key=lambda m: int(m["id"])):
            if int(message["id"]) not in archived:
                found[int(message["id"])] = await self._decrypt(message)
        if found:
            # An edit decrypted just now changed an older message of this page.
            archived = self._dms.archive.get_many(ids)
        found.update(archived)
        return [found[k] for k in sorted(found, reverse=True)]

    async def _decrypt(self, message: dict[str, Any]) -> DecryptedMessage:
        if message.get("megolm"):
            outcome = await self._groups.decrypt_message(message)
        else:
            outcome = await self._dms.decrypt_message(message)
        if outcome is not None:
            return outcome[0]
        # Nothing here for this device: sent before it existed (or by it, before its
        # messages were archived). Not archived: there was nothing to decrypt.
        return UndecryptableMessage(
            int(message["channel_id"]),
            int(message["id"]),
            int(message["author"]["id"]),
            UndecryptableReason.NOT_FOR_THIS_DEVICE.value,
            "no envelope for this device",
        )
