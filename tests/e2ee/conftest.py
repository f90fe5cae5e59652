from __future__ import annotations

import contextlib
import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from nexus_client.store import LocalStore
from tests.relay.harness import RunningRelay, open_clients, postgres_database, start_relay


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def relay(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[RunningRelay]:
    """A real relay whose data directory holds nothing but the relay's own files."""
    data_dir = tmp_path / "relay"
    if request.param == "sqlite":
        running = await start_relay(data_dir, rate_limits=False)
        try:
            yield running
        finally:
            await running.stop()
    else:
        async with postgres_database() as url:
            running = await start_relay(data_dir, url, rate_limits=False)
            try:
                yield running
            finally:
                await running.stop()
    while open_clients:
        await open_clients.pop().aclose()


@pytest.fixture
def make_store(tmp_path: Path):  # type: ignore[no-untyped-def]
    """Real SQLCipher stores (raw keys: no scrypt, no keyring in tests)."""
    keys: dict[str, bytes] = {}
    opened: list[LocalStore] = []

    def make(name: str) -> LocalStore:
        key = keys.setdefault(name, secrets.token_bytes(32))
        (tmp_path / "clients").mkdir(exist_ok=True)
        store = LocalStore.open_with_key(tmp_path / "clients" / f"{name}.db", key)
        opened.append(store)
        return store

    yield make
    for store in opened:
        with contextlib.suppress(Exception):
            store.close()
