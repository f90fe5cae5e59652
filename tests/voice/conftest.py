"""Voice tests run against a real relay (SQLite: voice states live in memory, and the
SFU is the same whatever the database) with its SFU worker processes."""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from nexus_client.store import LocalStore
from tests.relay.harness import RunningRelay, open_clients, start_relay


@pytest.fixture
async def voice_relay(tmp_path: Path) -> AsyncIterator[RunningRelay]:
    # Sessions that stop resuming are forgotten after 2 s (their voice state with them).
    running = await start_relay(tmp_path / "relay", rate_limits=False, detached_session_ttl=2.0)
    try:
        yield running
    finally:
        await running.relay.voice.close()
        await running.stop()
        while open_clients:
            await open_clients.pop().aclose()


@pytest.fixture
def make_store(tmp_path: Path) -> Iterator[Callable[[str], LocalStore]]:
    """Real SQLCipher stores (raw keys: no scrypt, no keyring in tests)."""
    opened: list[LocalStore] = []

    def make(name: str) -> LocalStore:
        (tmp_path / "clients").mkdir(exist_ok=True)
        store = LocalStore.open_with_key(
            tmp_path / "clients" / f"{name}.db", secrets.token_bytes(32)
        )
        opened.append(store)
        return store

    yield make
    for store in opened:
        with contextlib.suppress(Exception):
            store.close()
