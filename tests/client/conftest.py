from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.relay.harness import RunningRelay, open_clients, start_relay


@pytest.fixture
async def relay(tmp_path: Path) -> AsyncIterator[RunningRelay]:
    """A real relay (SQLite) on a loopback port; the client is the part under test."""
    running = await start_relay(tmp_path / "relay")
    try:
        yield running
    finally:
        await running.stop()
        while open_clients:
            await open_clients.pop().aclose()
