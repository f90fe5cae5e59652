"""Someone else changes their profile: every copy of them the SDK's cache keeps (member
lists, DM recipients, authors and mentions of cached messages) is current before the
``user_update`` handlers run."""

from __future__ import annotations

import secrets
from typing import Any

from nexus_client import Client
from nexus_protocol.models import User
from tests.relay.harness import RunningRelay
from tests.relay.test_media import png
from tests.waiting import until

PASSWORD = "correct horse battery"


async def online(relay: RunningRelay, name: str) -> tuple[Client, User]:
    client = Client(relay.settings.base_url)
    user = await client.register(f"{name}_{secrets.token_hex(3)}", PASSWORD)
    await client.start()
    return client, user


async def test_another_users_profile_change_reaches_every_cached_copy(
    relay: RunningRelay,
) -> None:
    alice, alice_user = await online(relay, "alice")
    bob, bob_user = await online(relay, "bob")
    try:
        club = await alice.create_guild("Book club")
        general = club.system_channel_id
        assert general is not None
        invite = await alice.create_invite(general)
        await bob.join(invite.code)
        await until(lambda: bob_user.id in alice.cache.members.get(club.id, {}))
        said = await bob.post_message(general, "first!")
        reply = await alice.post_message(general, f"welcome <@{bob_user.id}>", reply_to=said.id)
        await until(lambda: len(alice.cache.history(general)) == 2)
        dm = await alice.http.request(
            "POST", "/users/@me/channels", json={"recipient_id": str(bob_user.id)}
        )
        await until(lambda: alice.private_channels.get(int(dm["id"])) is not None)

        # What alice's handler finds in her cache the moment it hears of the change.
        seen_in_handler: list[dict[str, Any]] = []

        @alice.listen("user_update")
        async def look(user: User) -> None:
            if user.id != bob_user.id:
                return
            channel = alice.private_channels.get(int(dm["id"]))
            assert channel is not None
            first, answer = alice.cache.history(general)
            assert answer.referenced_message is not None
            seen_in_handler.append(
                {
                    "member": alice.cache.members[club.id][bob_user.id].user,
                    "recipient": channel.recipients[0],
                    "author": first.author,
                    "mention": answer.mentions[0],
                    "replied_to": answer.referenced_message.author,
                    "own_message": answer.author,
                }
            )

        await bob.edit_profile(global_name="Robert")
        changed = await bob.set_avatar(png(64, 64))
        assert changed.avatar is not None and changed.global_name == "Robert"

        await until(lambda: len(seen_in_handler) == 2)
        renamed, with_avatar = seen_in_handler
        for copy in renamed.values():
            if copy.id == bob_user.id:
                assert (copy.global_name, copy.avatar) == ("Robert", None)
        for copy in with_avatar.values():
            if copy.id == bob_user.id:
                assert (copy.global_name, copy.avatar) == ("Robert", changed.avatar)
        # Alice's own copies are left alone.
        assert with_avatar["own_message"].id == alice_user.id
        assert alice.cache.members[club.id][alice_user.id].user == alice.user
        assert reply.id == alice.cache.history(general)[1].id

        # Bob's own cache follows too: his account and his member entry.
        await until(lambda: bob.user is not None and bob.user.avatar == changed.avatar)
        bob_member = bob.cache.members[club.id][bob_user.id].user
        assert bob_member is not None and bob_member.avatar == changed.avatar
    finally:
        await alice.close()
        await bob.close()
