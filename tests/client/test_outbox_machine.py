"""A hypothesis state machine drives the outbox against a real relay through random
sends, dropped connections, client restarts (the store reopened from disk) and relay
restarts; in the end every queued message is on the relay exactly once, in order."""

from __future__ import annotations

import asyncio
import secrets
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, rule

from nexus_client import Client
from nexus_client.store import LocalStore, ScryptParams
from tests.relay.harness import RunningRelay, open_clients, start_relay

FAST_KDF = ScryptParams(n=2**10)
PASSPHRASE = "outbox machine passphrase"


class OutboxAgainstRelay(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.directory = tempfile.TemporaryDirectory()
        self.root = Path(self.directory.name)
        self.queued: list[str] = []
        self.relay: RunningRelay | None = None
        self.alice: Client | None = None
        self.reader: Client | None = None

    def run(self, coroutine: object) -> object:
        return self.loop.run_until_complete(coroutine)  # type: ignore[arg-type]

    @initialize()
    def setup(self) -> None:
        async def setup() -> None:
            self.relay = await start_relay(self.root / "relay", rate_limits=False)
            owner = Client(self.relay.settings.base_url)
            await owner.register(f"alice_{secrets.token_hex(3)}", "correct horse battery")
            guild = await owner.create_guild("Machine")
            assert guild.system_channel_id is not None
            self.channel = guild.system_channel_id
            self.token = owner.token
            await owner.close()
            self.reader = Client(self.relay.settings.base_url)
            await self.reader.register(f"reader_{secrets.token_hex(3)}", "correct horse battery")
            await self.reader.join((await self._alice_http().create_invite(self.channel)).code)
            await self._start_alice()

        self.run(setup())

    def _alice_http(self) -> Client:
        assert self.relay is not None
        client = Client(self.relay.settings.base_url, token=self.token)
        open_clients.append(client.http._http)
        return client

    async def _start_alice(self) -> None:
        assert self.relay is not None
        store = LocalStore.open(self.root / "alice.db", passphrase=PASSPHRASE, kdf=FAST_KDF)
        self.alice = Client(
            self.relay.settings.base_url, token=self.token, store=store, max_backoff=0.5
        )
        await self.alice.start()

    @rule(count=st.integers(min_value=1, max_value=6))
    def send(self, count: int) -> None:
        async def send() -> None:
            assert self.alice is not None
            for _ in range(count):
                text = f"m{len(self.queued)}"
                self.queued.append(text)
                await self.alice.send_message(self.channel, text)

        self.run(send())

    @rule()
    def drop_connection(self) -> None:
        assert self.alice is not None and self.alice._gateway is not None
        self.run(self.alice._gateway.drop())

    @rule()
    def restart_client(self) -> None:
        async def restart() -> None:
            assert self.alice is not None
            await self.alice.close()
            await self._start_alice()

        self.run(restart())

    @rule()
    def restart_relay(self) -> None:
        async def restart() -> None:
            assert self.relay is not None
            port = self.relay.settings.port
            await self.relay.stop()
            await asyncio.sleep(0.05)
            self.relay = await start_relay(self.root / "relay", rate_limits=False, port=port)

        self.run(restart())

    def teardown(self) -> None:
        async def finish() -> list[str]:
            assert self.alice is not None and self.alice.outbox is not None
            for _ in range(400):
                if not self.alice.outbox.has_pending():
                    break
                await asyncio.sleep(0.05)
            assert self.reader is not None
            contents: list[str] = []
            before = None
            while True:
                page = await self.reader.fetch_messages(self.channel, limit=100, before=before)
                if not page:
                    break
                contents = [m.content for m in reversed(page)] + contents
                before = page[-1].id
            return contents

        try:
            if self.alice is not None:
                delivered = self.run(finish())
                assert delivered == self.queued, (delivered, self.queued)
        finally:

            async def close() -> None:
                for client in (self.alice, self.reader):
                    if client is not None:
                        await client.close()
                while open_clients:
                    await open_clients.pop().aclose()
                if self.relay is not None:
                    await self.relay.stop()

            self.run(close())
            self.loop.close()
            self.directory.cleanup()


OutboxAgainstRelay.TestCase.settings = settings(
    max_examples=4,
    stateful_step_count=8,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestOutboxAgainstRelay = OutboxAgainstRelay.TestCase
