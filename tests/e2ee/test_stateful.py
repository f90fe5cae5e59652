"""Random send / deliver (in any order) / drop / duplicate / restart across three devices
(alice on two, bob on one): every delivered envelope decrypts exactly once, to what was
sent; every duplicate is rejected as a replay."""

from __future__ import annotations

import asyncio
import secrets
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from nexus_client.e2ee import E2EEDevice, Undecryptable, UndecryptableReason
from nexus_client.store import LocalStore

from .helpers import bundle_of

DEVICES = [("alice1", 1), ("alice2", 1), ("bob", 2)]


@dataclass
class InFlight:
    recipient: int
    sender: int
    blob: bytes
    plaintext: bytes


class Conversation(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.dir = Path(tempfile.mkdtemp())
        self.keys = [secrets.token_bytes(32) for _ in DEVICES]
        self.stores: list[LocalStore] = []
        self.devices = [self._open(i) for i in range(len(DEVICES))]
        self.in_flight: list[InFlight] = []
        self.delivered: list[InFlight] = []
        self.counter = 0

    def _open(self, index: int) -> E2EEDevice:
        store = LocalStore.open_with_key(self.dir / f"{DEVICES[index][0]}.db", self.keys[index])
        self.stores.append(store)
        return E2EEDevice.open(store.e2ee, DEVICES[index][1])

    def run(self, coroutine):  # type: ignore[no-untyped-def]
        return self.loop.run_until_complete(coroutine)

    @rule(sender=st.integers(0, 2))
    def send(self, sender: int) -> None:
        self.counter += 1
        device = self.devices[sender]
        text = f"message {self.counter} from {DEVICES[sender][0]}".encode()
        for recipient, peer in enumerate(self.devices):
            if recipient == sender:
                continue
            if not device.has_session(peer.user_id, peer.device_id):
                self.run(device.start_session(peer.user_id, peer.device_id, bundle_of(peer)))
            _, blob = self.run(device.encrypt(peer.user_id, peer.device_id, text))
            self.in_flight.append(InFlight(recipient, sender, blob, text))

    @precondition(lambda self: self.in_flight)
    @rule(data=st.data())
    def deliver(self, data: st.DataObject) -> None:
        item = self.in_flight.pop(data.draw(st.integers(0, len(self.in_flight) - 1)))
        sender = self.devices[item.sender]
        result = self.run(self.devices[item.recipient].decrypt(sender.user_id, item.blob))
        assert result.plaintext == item.plaintext
        assert result.sender_device == sender.device_id
        self.delivered.append(item)

    @precondition(lambda self: self.in_flight)
    @rule(data=st.data())
    def drop(self, data: st.DataObject) -> None:
        self.in_flight.pop(data.draw(st.integers(0, len(self.in_flight) - 1)))

    @precondition(lambda self: self.delivered)
    @rule(data=st.data())
    def duplicate(self, data: st.DataObject) -> None:
        item = data.draw(st.sampled_from(self.delivered))
        sender = self.devices[item.sender]
        try:
            self.run(self.devices[item.recipient].decrypt(sender.user_id, item.blob))
        except Undecryptable as exc:
            assert exc.reason is UndecryptableReason.REPLAY
        else:
            raise AssertionError("a duplicate decrypted twice")

    @rule(index=st.integers(0, 2))
    def restart(self, index: int) -> None:
        self.devices[index] = self._open(index)

    @invariant()
    def device_ids_are_stable(self) -> None:
        assert len({d.device_id for d in self.devices}) == 3

    def teardown(self) -> None:
        for store in self.stores:
            store.close()
        self.loop.close()
        shutil.rmtree(self.dir, ignore_errors=True)


TestConversation = Conversation.TestCase
TestConversation.settings = settings(
    max_examples=50,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
