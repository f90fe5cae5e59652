"""Two people in one community, chatting in real time."""

from __future__ import annotations

from .harness import RunningRelay, connect_gateway, register


async def test_two_users_chat_in_real_time(relay: RunningRelay) -> None:
    alice = await register(relay.api)
    bob = await register(relay.api)
    guild = await alice.ok("POST", "/guilds", json={"name": "Book club"})
    general = guild["system_channel_id"]
    bob_gateway = await connect_gateway(relay.api, bob.token)
    await bob_gateway.next_dispatch("READY")

    invite = await alice.ok("POST", f"/channels/{general}/invites", json={"max_age": 0})
    await bob.ok("POST", f"/invites/{invite['code']}", json={})
    created = await bob_gateway.next_dispatch("GUILD_CREATE")
    assert created["d"]["id"] == guild["id"]

    sent = await alice.ok(
        "POST",
        f"/channels/{general}/messages",
        json={"content": f"hello <@{bob.id}>", "nonce": "n1"},
    )
    event = await bob_gateway.next_dispatch("MESSAGE_CREATE")
    assert event["d"]["id"] == sent["id"]
    assert event["d"]["content"] == f"hello <@{bob.id}>"
    assert [u["id"] for u in event["d"]["mentions"]] == [str(bob.id)]

    history = await bob.ok("GET", f"/channels/{general}/messages")
    assert [m["id"] for m in history] == [sent["id"]]
    await bob_gateway.close()


async def test_invite_link_opens_a_plain_page_that_escapes_the_name(relay: RunningRelay) -> None:
    alice = await register(relay.api)
    guild = await alice.ok("POST", "/guilds", json={"name": "<script>alert(1)</script>"})
    invite = await alice.ok("POST", f"/channels/{guild['system_channel_id']}/invites", json={})
    page = await alice.http.get(f"{relay.settings.base_url}/invite/{invite['code']}")
    assert page.status_code == 200
    assert "&lt;script&gt;" in page.text and "<script>" not in page.text
    assert "default-src 'none'" in page.headers["content-security-policy"]
    missing = await alice.http.get(f"{relay.settings.base_url}/invite/nope")
    assert missing.status_code == 404
