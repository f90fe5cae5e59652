"""Voice signalling on a real relay, over raw gateway sockets: who may join, who sees it,
what moderators can do, DM call ringing, recording consent and voice-key routing."""

from __future__ import annotations

import asyncio
from typing import Any

from nexus_protocol.permissions import Permissions
from tests.relay.harness import Gateway, RunningRelay, User, connect_gateway, register


async def _community(relay: RunningRelay) -> tuple[User, User, dict[str, Any], dict[str, Any]]:
    owner = await register(relay.api)
    member = await register(relay.api)
    guild = await owner.ok("POST", "/guilds", json={"name": "voice home"})
    text = (await owner.ok("GET", f"/guilds/{guild['id']}/channels"))[0]
    invite = await owner.ok("POST", f"/channels/{text['id']}/invites", json={})
    await member.ok("POST", f"/invites/{invite['code']}", json={})
    voice = await owner.ok(
        "POST", f"/guilds/{guild['id']}/channels", json={"name": "Lounge", "type": 2}
    )
    return owner, member, guild, voice


async def _ready(relay: RunningRelay, user: User) -> Gateway:
    gateway = await connect_gateway(relay.api, user.token)
    await gateway.next_dispatch("READY")
    return gateway


async def _join(
    gateway: Gateway, guild_id: str | None, channel_id: str | None, **flags: Any
) -> None:
    await gateway.send({"op": 4, "d": {"guild_id": guild_id, "channel_id": channel_id, **flags}})


async def _state_of(gateway: Gateway, user: User) -> dict[str, Any]:
    while True:
        frame = await gateway.next_dispatch("VOICE_STATE_UPDATE")
        if frame["d"]["user_id"] == str(user.id):
            return dict(frame["d"])


async def test_joining_moving_and_leaving_are_seen_by_the_channel(
    voice_relay: RunningRelay,
) -> None:
    owner, member, guild, voice = await _community(voice_relay)
    second = await voice_relay.relay.channels.channel(int(voice["id"]))
    assert second is not None
    other_voice = await owner.ok(
        "POST", f"/guilds/{guild['id']}/channels", json={"name": "Games", "type": 2}
    )
    watcher = await _ready(voice_relay, owner)
    joiner = await _ready(voice_relay, member)
    await _join(joiner, guild["id"], voice["id"], self_mute=True)

    seen = await _state_of(watcher, member)
    assert seen["channel_id"] == voice["id"] and seen["self_mute"] is True
    assert seen["member"]["user"]["id"] == str(member.id)
    server = await joiner.next_dispatch("VOICE_SERVER_UPDATE")
    assert server["d"]["channel_id"] == voice["id"] and len(server["d"]["token"]) > 20

    # A new session sees who is in voice in GUILD_CREATE.
    late = await connect_gateway(voice_relay.api, owner.token)
    create = await late.next_dispatch("GUILD_CREATE")
    assert [s["user_id"] for s in create["d"]["voice_states"]] == [str(member.id)]

    await _join(joiner, guild["id"], other_voice["id"])
    moved = await _state_of(watcher, member)
    assert moved["channel_id"] == other_voice["id"]

    await _join(joiner, guild["id"], None)
    left = await _state_of(watcher, member)
    assert left["channel_id"] is None
    assert voice_relay.relay.voice.states.get(member.id) is None
    for gateway in (watcher, joiner, late):
        await gateway.close()


async def test_a_closed_session_leaves_voice(voice_relay: RunningRelay) -> None:
    owner, member, guild, voice = await _community(voice_relay)
    watcher = await _ready(voice_relay, owner)
    joiner = await _ready(voice_relay, member)
    await _join(joiner, guild["id"], voice["id"])
    assert (await _state_of(watcher, member))["channel_id"] == voice["id"]
    # Once the session can no longer resume, its voice state is gone.
    await joiner.close()
    gone = await asyncio.wait_for(_state_of(watcher, member), 15)
    assert gone["channel_id"] is None
    await watcher.close()


async def _error(gateway: Gateway) -> dict[str, Any]:
    return dict((await gateway.next_dispatch("VOICE_ERROR"))["d"])


async def test_refusals_name_the_reason_and_keep_the_socket(voice_relay: RunningRelay) -> None:
    owner, member, guild, voice = await _community(voice_relay)
    text = (await owner.ok("GET", f"/guilds/{guild['id']}/channels"))[0]
    gateway = await _ready(voice_relay, member)

    await _join(gateway, guild["id"], text["id"])
    assert (await _error(gateway))["code"] == "not_voice_channel"

    await gateway.send({"op": 4, "d": {"guild_id": guild["id"], "channel_id": "abc"}})
    error = await _error(gateway)
    assert error["code"] == "invalid" and "channel_id" in error["message"]

    await owner.ok(
        "PUT",
        f"/channels/{voice['id']}/permissions/{guild['id']}",
        json={"type": 0, "deny": str(int(Permissions.CONNECT)), "allow": "0"},
    )
    await _join(gateway, guild["id"], voice["id"])
    assert (await _error(gateway))["code"] == "missing_permissions"

    await gateway.send(
        {"op": 40, "d": {"channel_id": voice["id"], "token": "x", "sdp": "v=0\r\n" * 3}}
    )
    assert (await _error(gateway))["code"] == "not_connected"

    # Still connected: an ordinary heartbeat is answered.
    await gateway.send({"op": 1, "d": None})
    assert gateway.close_code is None
    await gateway.close()


async def test_user_limit_lets_moderators_in(voice_relay: RunningRelay) -> None:
    owner, member, guild, _ = await _community(voice_relay)
    small = await owner.ok(
        "POST",
        f"/guilds/{guild['id']}/channels",
        json={"name": "Duo", "type": 2, "user_limit": 1},
    )
    third = await register(voice_relay.api)
    invite = await owner.ok("POST", f"/channels/{small['id']}/invites", json={})
    await third.ok("POST", f"/invites/{invite['code']}", json={})
    first = await _ready(voice_relay, member)
    await _join(first, guild["id"], small["id"])
    await first.next_dispatch("VOICE_SERVER_UPDATE")

    late = await _ready(voice_relay, third)
    await _join(late, guild["id"], small["id"])
    assert (await _error(late))["code"] == "channel_full"

    moderator = await _ready(voice_relay, owner)  # the owner holds MOVE_MEMBERS
    await _join(moderator, guild["id"], small["id"])
    await moderator.next_dispatch("VOICE_SERVER_UPDATE")
    assert len(voice_relay.relay.voice.states.in_channel(int(small["id"]))) == 2
    for gateway in (first, late, moderator):
        await gateway.close()


async def test_moderators_mute_move_and_disconnect(voice_relay: RunningRelay) -> None:
    owner, member, guild, voice = await _community(voice_relay)
    other_voice = await owner.ok(
        "POST", f"/guilds/{guild['id']}/channels", json={"name": "AFK", "type": 2}
    )
    watcher = await _ready(voice_relay, owner)
    gateway = await _ready(voice_relay, member)
    path = f"/guilds/{guild['id']}/members/{member.id}"

    response = await owner.request("PATCH", path, json={"channel_id": voice["id"]})
    assert response.status_code == 400 and response.json()["code"] == 40032

    await _join(gateway, guild["id"], voice["id"])
    await _state_of(watcher, member)
    await owner.ok("PATCH", path, json={"mute": True})
    muted = await _state_of(watcher, member)
    assert muted["mute"] is True and muted["channel_id"] == voice["id"]

    # Members without MOVE_MEMBERS cannot move others.
    response = await member.request(
        "PATCH", f"/guilds/{guild['id']}/members/{owner.id}", json={"channel_id": None}
    )
    assert response.status_code in (400, 403)

    await owner.ok("PATCH", path, json={"channel_id": other_voice["id"]})
    moved = await _state_of(watcher, member)
    assert moved["channel_id"] == other_voice["id"]
    assert moved["mute"] is True  # the server mute follows the member
    await gateway.next_dispatch("VOICE_SERVER_UPDATE")  # connect media to the new room

    await owner.ok("PATCH", path, json={"channel_id": None})
    gone = await _state_of(watcher, member)
    assert gone["channel_id"] is None
    await watcher.close()
    await gateway.close()


async def test_members_without_speak_are_muted_by_the_relay(voice_relay: RunningRelay) -> None:
    owner, member, guild, voice = await _community(voice_relay)
    await owner.ok(
        "PUT",
        f"/channels/{voice['id']}/permissions/{guild['id']}",
        json={"type": 0, "deny": str(int(Permissions.SPEAK)), "allow": "0"},
    )
    gateway = await _ready(voice_relay, member)
    await _join(gateway, guild["id"], voice["id"])
    state = await _state_of(gateway, member)
    assert state["mute"] is True

    # Given SPEAK back, they are unmuted at once.
    await owner.ok("DELETE", f"/channels/{voice['id']}/permissions/{guild['id']}")
    state = await _state_of(gateway, member)
    assert state["mute"] is False
    await gateway.close()


async def _dm(relay: RunningRelay) -> tuple[User, User, str]:
    alice = await register(relay.api)
    bob = await register(relay.api)
    # Sharing a community is what lets strangers open a DM.
    guild = await alice.ok("POST", "/guilds", json={"name": "friends"})
    text = (await alice.ok("GET", f"/guilds/{guild['id']}/channels"))[0]
    invite = await alice.ok("POST", f"/channels/{text['id']}/invites", json={})
    await bob.ok("POST", f"/invites/{invite['code']}", json={})
    dm = await alice.ok("POST", "/users/@me/channels", json={"recipient_id": str(bob.id)})
    return alice, bob, str(dm["id"])


async def test_dm_call_rings_passes_signals_and_ends(voice_relay: RunningRelay) -> None:
    alice, bob, dm = await _dm(voice_relay)
    caller = await _ready(voice_relay, alice)
    callee = await _ready(voice_relay, bob)

    await _join(caller, None, dm)
    ring = await callee.next_dispatch("CALL_CREATE")
    assert ring["d"]["ringing"] == [str(bob.id)]

    await _join(callee, None, dm)
    update = await caller.next_dispatch("CALL_UPDATE")
    assert update["d"]["ringing"] == []

    await caller.send(
        {
            "op": 41,
            "d": {"channel_id": dm, "user_id": str(bob.id), "kind": "offer", "sdp": "v=0 an offer"},
        }
    )
    signal = await callee.next_dispatch("CALL_SIGNAL")
    assert signal["d"] == {
        "channel_id": dm,
        "user_id": str(alice.id),
        "kind": "offer",
        "sdp": "v=0 an offer",
    }

    # A stranger cannot signal into the call.
    stranger = await register(voice_relay.api)
    intruder = await _ready(voice_relay, stranger)
    await intruder.send(
        {
            "op": 41,
            "d": {
                "channel_id": dm,
                "user_id": str(bob.id),
                "kind": "offer",
                "sdp": "v=0 an intruder",
            },
        }
    )
    assert (await _error(intruder))["code"] == "unknown_channel"

    await _join(caller, None, None)
    await _join(callee, None, None)
    ended = await caller.next_dispatch("CALL_DELETE")
    assert ended["d"]["channel_id"] == dm
    for gateway in (caller, callee, intruder):
        await gateway.close()


async def test_declining_stops_the_ringing(voice_relay: RunningRelay) -> None:
    alice, bob, dm = await _dm(voice_relay)
    caller = await _ready(voice_relay, alice)
    callee = await _ready(voice_relay, bob)
    await _join(caller, None, dm)
    await callee.next_dispatch("CALL_CREATE")
    await callee.send(
        {"op": 41, "d": {"channel_id": dm, "user_id": str(alice.id), "kind": "decline"}}
    )
    update = await caller.next_dispatch("CALL_UPDATE")
    assert update["d"]["ringing"] == []
    await caller.close()
    await callee.close()


async def test_recording_asks_everyone_and_newcomers(voice_relay: RunningRelay) -> None:
    owner, member, guild, voice = await _community(voice_relay)
    third = await register(voice_relay.api)
    invite = await owner.ok("POST", f"/channels/{voice['id']}/invites", json={})
    await third.ok("POST", f"/invites/{invite['code']}", json={})
    recorder = await _ready(voice_relay, owner)
    present = await _ready(voice_relay, member)
    for gateway in (recorder, present):
        await _join(gateway, guild["id"], voice["id"])
        await gateway.next_dispatch("VOICE_SERVER_UPDATE")

    await recorder.send({"op": 42, "d": {"channel_id": voice["id"], "action": "request"}})
    asked = (await present.next_dispatch("VOICE_RECORDING_UPDATE"))["d"]
    assert asked["recorder_id"] == str(owner.id)
    assert asked["consents"] == {str(owner.id): True, str(member.id): None}

    await present.send({"op": 42, "d": {"channel_id": voice["id"], "action": "refuse"}})
    answered = (await recorder.next_dispatch("VOICE_RECORDING_UPDATE"))["d"]
    while answered["consents"].get(str(member.id)) is None:
        answered = (await recorder.next_dispatch("VOICE_RECORDING_UPDATE"))["d"]
    assert answered["consents"][str(member.id)] is False

    newcomer = await _ready(voice_relay, third)
    await _join(newcomer, guild["id"], voice["id"])
    told = (await newcomer.next_dispatch("VOICE_RECORDING_UPDATE"))["d"]
    assert told["recorder_id"] == str(owner.id) and told["consents"][str(third.id)] is None

    # The recorder leaving ends the recording for everyone.
    await _join(recorder, guild["id"], None)
    ended = (await newcomer.next_dispatch("VOICE_RECORDING_UPDATE"))["d"]
    assert ended["recorder_id"] is None
    for gateway in (recorder, present, newcomer):
        await gateway.close()


async def test_voice_keys_reach_only_their_addressees(voice_relay: RunningRelay) -> None:
    owner, member, guild, voice = await _community(voice_relay)
    outsider = await register(voice_relay.api)
    sender = await _ready(voice_relay, owner)
    receiver = await _ready(voice_relay, member)
    for gateway in (sender, receiver):
        await _join(gateway, guild["id"], voice["id"])
        await gateway.next_dispatch("VOICE_SERVER_UPDATE")
    envelope = {
        "user_id": str(member.id),
        "device_id": "device-0001",
        "type": "message",
        "ciphertext": "QUJD",
    }

    await sender.send({"op": 43, "d": {"channel_id": voice["id"], "envelopes": [envelope]}})
    keys = (await receiver.next_dispatch("VOICE_KEYS"))["d"]
    assert keys == {"channel_id": voice["id"], "user_id": str(owner.id), "envelopes": [envelope]}

    stray = dict(envelope, user_id=str(outsider.id))
    await sender.send({"op": 43, "d": {"channel_id": voice["id"], "envelopes": [stray]}})
    error = await _error(sender)
    assert error["code"] == "invalid" and "envelopes.0.user_id" in error["message"]
    await asyncio.sleep(0)
    for gateway in (sender, receiver):
        await gateway.close()
