"""Devices through a real relay and real SQLCipher stores: a contact's new device, a
changed key, removing a device (the relay's endpoint and the SDK), and signed prekey
rotation with the previous key kept for first messages already on their way."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from nexus_client import Client, DMMessage, InvalidInput, NotFound, UndecryptableMessage
from nexus_protocol.e2ee import b64decode, b64encode, encode_curve_key
from tests.e2ee.helpers import online_client, user_id, wait_until
from tests.relay.harness import RunningRelay

PASSWORD = "correct horse battery"
EIGHT_DAYS = 8 * 24 * 3600


def _device_id(client: Client) -> str:
    assert client.dms is not None and client.dms.device is not None
    return client.dms.device.device_id


class Events:
    def __init__(self, client: Client) -> None:
        self.seen: list[tuple[str, int, str]] = []
        self.messages: list[DMMessage] = []
        self.failed: list[UndecryptableMessage] = []
        for name in ("device_added", "device_removed", "identity_changed"):
            client.listen(name)(self._note(name))

        @client.listen("dm_message")
        async def on_dm(message: DMMessage) -> None:
            self.messages.append(message)

        @client.listen("undecryptable")
        async def on_undecryptable(message: UndecryptableMessage) -> None:
            self.failed.append(message)

    def _note(self, name: str) -> Any:
        async def note(user_id: int, device_id: str) -> None:
            self.seen.append((name, user_id, device_id))

        return note

    async def wait_for(self, expected: list[tuple[str, int, str]]) -> None:
        """Handlers run as tasks: wait for these events, then check nothing else came."""
        await wait_until(lambda: len(self.seen) >= len(expected))
        await asyncio.sleep(0.05)
        assert self.seen == expected
        self.seen.clear()

    def texts(self) -> list[str]:
        return [m.text for m in self.messages]


def _keys() -> dict[str, Any]:
    identity = Ed25519PrivateKey.generate()
    spk = X25519PrivateKey.generate().public_key().public_bytes_raw()
    return {
        "identity_key": b64encode(identity.public_key().public_bytes_raw()),
        "signed_prekey": b64encode(spk),
        "signed_prekey_signature": b64encode(identity.sign(encode_curve_key(spk))),
    }


async def _share_a_guild(owner: Client, *others: Client) -> None:
    guild = await owner.create_guild("devices")
    invite = await owner.create_invite((await owner.fetch_channels(guild.id))[0].id)
    for other in others:
        await other.join(invite.code)


async def test_new_changed_and_removed_devices(relay: RunningRelay, make_store: Any) -> None:
    alice1 = await online_client(relay, make_store("alice1"), "alice_dev", True)
    bob = await online_client(relay, make_store("bob"), "bob_dev", True)
    alice2 = await online_client(relay, make_store("alice2"), "alice_dev", False)
    clients = [alice1, bob, alice2]
    try:
        await _share_a_guild(alice1, bob)
        await alice1.e2ee_setup(device_name="laptop")
        await bob.e2ee_setup(device_name="desktop")
        events = Events(bob)
        laptop_inbox, phone_inbox = Events(alice1), Events(alice2)
        dm = await bob.open_dm(user_id(alice1))
        await asyncio.sleep(0.05)
        assert events.seen == []  # first contact is not a change
        before = bob.safety_number(user_id(alice1))

        # -- alice adds a device: bob learns of it on his next send ---------------------
        await alice2.e2ee_setup(device_name="phone")
        phone = _device_id(alice2)
        await bob.send_dm(dm, "to both of alice's devices")
        await events.wait_for(
            [("device_added", user_id(alice1), phone), ("identity_changed", user_id(alice1), phone)]
        )
        assert bob.safety_number(user_id(alice1)) != before
        await wait_until(lambda: "to both of alice's devices" in phone_inbox.texts())

        # -- the relay's endpoint: own devices only -------------------------------------
        listed = await alice1.fetch_devices()
        assert {d.device_id: d.name for d in listed} == {
            _device_id(alice1): "laptop",
            phone: "phone",
        }
        with pytest.raises(NotFound):  # bob has no such device; alice's are out of reach
            await bob.http.request("DELETE", f"/users/@me/devices/{_device_id(alice1)}")
        with pytest.raises(NotFound):
            await alice1.http.request("DELETE", "/users/@me/devices/noSuchDevice")
        assert len(await alice1.fetch_devices()) == 2

        # -- alice removes the phone from her laptop --------------------------------------
        await alice1.remove_device(phone)
        assert [d.device_id for d in await bob.fetch_devices(user_id(alice1))] == [
            _device_id(alice1)
        ]
        with pytest.raises(NotFound):  # nobody can start a session with it any more
            await bob.http.request("POST", f"/users/{user_id(alice1)}/devices/{phone}/bundle")
        sent = await bob.send_dm(dm, "only the laptop now")
        await events.wait_for([("device_removed", user_id(alice1), phone)])
        assert bob.safety_number(user_id(alice1)) == before
        assert bob.store is not None and phone not in bob.store.e2ee.peer_keys(user_id(alice1))
        history = await bob.http.request(
            "GET", f"/channels/{dm}/messages", params={"device_id": _device_id(bob)}
        )
        assert int(history[0]["id"]) == sent
        await wait_until(lambda: "only the laptop now" in laptop_inbox.texts())

        # -- the same device id comes back with another key: a changed key ---------------
        await alice2.http.request("PUT", f"/users/@me/devices/{phone}/keys", json=_keys())
        assert bob.dms is not None
        await bob.dms.refresh_devices(user_id(alice1))
        await events.wait_for(
            [("device_added", user_id(alice1), phone), ("identity_changed", user_id(alice1), phone)]
        )
        first_key = bob.store.e2ee.peer_keys(user_id(alice1))[phone]
        await alice2.http.request("DELETE", f"/users/@me/devices/{phone}")
        await alice2.http.request("PUT", f"/users/@me/devices/{phone}/keys", json=_keys())
        await bob.dms.refresh_devices(user_id(alice1))
        await events.wait_for([("identity_changed", user_id(alice1), phone)])  # not "added"
        assert bob.store.e2ee.peer_keys(user_id(alice1))[phone] != first_key

        # -- a device removes itself: its keys go here too; setup makes a new device ------
        old_laptop = _device_id(alice1)
        await alice1.remove_device(old_laptop)
        assert alice1.dms is not None and alice1.dms.device is None
        new_laptop = await alice1.e2ee_setup(device_name="laptop again")
        assert new_laptop != old_laptop
        assert {d.device_id for d in await alice1.fetch_devices()} == {new_laptop, phone}
    finally:
        for client in clients:
            await client.close()


def _age_signed_prekey(client: Client, seconds: int) -> None:
    """Make the stored signed prekey look ``seconds`` older (as if time had passed)."""
    assert client.store is not None
    stored = client.store.e2ee.identity()
    assert stored is not None
    state = json.loads(stored[2])
    state["signed_pre_key"]["timestamp"] -= seconds
    client.store.e2ee.save_identity(stored[0], stored[1], json.dumps(state))


async def _bundle_key(claimer: Client, owner: Client) -> str:
    bundle = await claimer.http.request(
        "POST", f"/users/{user_id(owner)}/devices/{_device_id(owner)}/bundle"
    )
    identity = Ed25519PublicKey.from_public_bytes(b64decode(bundle["identity_key"]))
    identity.verify(
        b64decode(bundle["signed_prekey_signature"]),
        encode_curve_key(b64decode(bundle["signed_prekey"])),
    )
    return str(bundle["signed_prekey"])


async def test_signed_prekey_rotation(relay: RunningRelay, make_store: Any) -> None:
    alice = await online_client(relay, make_store("alice"), "alice_spk", True)
    bob = await online_client(relay, make_store("bob"), "bob_spk", True)
    carol = await online_client(relay, make_store("carol"), "carol_spk", True)
    clients = [alice, bob, carol]
    try:
        await _share_a_guild(alice, bob, carol)
        for client in clients:
            await client.e2ee_setup()
        inbox = Events(alice)
        first = await _bundle_key(bob, alice)
        # Bob and carol start sessions on the current signed prekey and send nothing yet:
        # their first messages are "in flight" while alice rotates.
        dms = {}
        for sender in (bob, carol):
            assert sender.dms is not None and alice.dms is not None and alice.dms.device
            dms[id(sender)] = await sender.open_dm(user_id(alice))
            await sender.dms.ensure_session(
                user_id(alice), _device_id(alice), alice.dms.device.identity_key
            )

        await alice.e2ee_setup()  # not a week old yet: kept
        assert await _bundle_key(bob, alice) == first
        _age_signed_prekey(alice, EIGHT_DAYS)
        await alice.e2ee_setup()
        second = await _bundle_key(bob, alice)
        assert second != first  # rotated, uploaded, and its signature verifies

        await bob.send_dm(dms[id(bob)], "built on the previous signed prekey")
        await wait_until(lambda: "built on the previous signed prekey" in inbox.texts())

        # A second rotation drops the first key: what was built on it no longer decrypts.
        _age_signed_prekey(alice, EIGHT_DAYS)
        await alice.e2ee_setup()
        assert await _bundle_key(bob, alice) not in (first, second)
        await carol.send_dm(dms[id(carol)], "built on a key two rotations old")
        await wait_until(lambda: bool(inbox.failed))
        assert inbox.failed[0].reason == "unknown_prekey"
        assert "built on a key two rotations old" not in inbox.texts()

        # The relay checks the signature of a rotated key too.
        stranger = _keys()
        assert alice.dms is not None and alice.dms.device is not None
        with pytest.raises(InvalidInput) as refused:
            await alice.http.request(
                "PUT",
                f"/users/@me/devices/{_device_id(alice)}/keys",
                json={
                    "identity_key": b64encode(alice.dms.device.identity_key),
                    "signed_prekey": stranger["signed_prekey"],
                    "signed_prekey_signature": stranger["signed_prekey_signature"],
                },
            )
        assert "signed_prekey_signature" in refused.value.fields
        assert await _bundle_key(bob, alice) not in (first, second, stranger["signed_prekey"])
    finally:
        for client in clients:
            await client.close()
