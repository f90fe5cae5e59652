"""The archive's guarantees on real SQLCipher stores, and the DM channel list's handling
of gateway payloads (no relay needed for either)."""

from __future__ import annotations

from typing import Any

import pytest

from nexus_client._dm_channels import DMChannels
from nexus_client.e2ee import (
    Decrypted,
    DMMessage,
    E2EEDevice,
    PlaintextArchive,
    Undecryptable,
    UndecryptableReason,
)

from .helpers import pair


class CrashWhileArchiving(Exception):
    pass


async def test_a_message_is_consumed_only_together_with_its_archived_text(
    make_store: Any,
) -> None:
    a = E2EEDevice.open(make_store("a").e2ee, 1)
    store = make_store("b")
    b = E2EEDevice.open(store.e2ee, 2)
    archive = PlaintextArchive(store)
    await pair(a, b)
    _, first = await a.encrypt(2, b.device_id, b'{"kind":"text","text":"hi"}')
    message = {"id": "10", "channel_id": "5", "author": {"id": "1", "username": "a"}}

    def crash(_decrypted: Decrypted) -> None:
        raise CrashWhileArchiving

    with pytest.raises(CrashWhileArchiving):
        await b.decrypt(1, first, keep=crash)
    assert archive.get(10) is None
    # Nothing was consumed: the same envelope still decrypts, and is archived with it.
    reopened = E2EEDevice.open(store.e2ee, 2)

    def keep(decrypted: Decrypted) -> None:
        archive.keep(message, {"kind": "text", "text": "hi"}, sender_device=a.device_id)

    await reopened.decrypt(1, first, keep=keep)
    kept = archive.get(10)
    assert isinstance(kept, DMMessage) and kept.text == "hi" and kept.sender_device == a.device_id
    assert store.messages(5)[0]["content"] == "hi"  # cached for search as well
    with pytest.raises(Undecryptable) as again:
        await reopened.decrypt(1, first)
    assert again.value.reason is UndecryptableReason.REPLAY
    # The first outcome recorded stays.
    archive.keep_failure(message, "tampered", "late")
    assert archive.get(10) == kept


def test_dm_channel_list_follows_events_and_drops_malformed_payloads() -> None:
    def user(user_id: int) -> dict[str, Any]:
        return {"id": str(user_id), "username": f"user{user_id}"}

    channels = DMChannels()
    channels.apply(
        "READY",
        {
            "user": user(1),
            "private_channels": [
                {"id": "100", "type": 1, "recipients": [user(2)], "last_message_id": "500"},
                {"id": "200", "type": 3, "recipients": [user(2), user(3)], "owner_id": "3"},
            ],
        },
    )
    assert [c.id for c in channels.all()] == [100, 200]  # 500 is newer than 200
    channels.apply("CHANNEL_RECIPIENT_ADD", {"channel_id": "200", "user": user(4)})
    channels.apply("CHANNEL_RECIPIENT_REMOVE", {"channel_id": "200", "user": user(3)})
    group = channels.get(200)
    assert group is not None and group.is_group
    assert {u.id for u in group.recipients} == {2, 4}
    assert group.owner_id == 1  # the owner left: the lowest remaining id owns it
    channels.apply("MESSAGE_CREATE", {"id": "900", "channel_id": "200"})
    assert [c.id for c in channels.all()] == [200, 100]  # most recently active first
    channels.apply("CHANNEL_CREATE", {"id": "300", "type": 0, "guild_id": "7"})  # not a DM
    channels.apply("CHANNEL_CREATE", {"id": "x", "type": 1})
    channels.apply("CHANNEL_CREATE", {"type": 1})
    channels.apply("CHANNEL_CREATE", None)
    channels.apply("CHANNEL_RECIPIENT_ADD", {"channel_id": "200", "user": 5})
    assert channels.malformed == 4
    channels.apply("CHANNEL_DELETE", {"id": "200", "type": 3})
    assert [c.id for c in channels.all()] == [100]
