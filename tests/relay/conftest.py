from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from .harness import RunningRelay, open_clients, postgres_database, start_relay


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def relay(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[RunningRelay]:
    """A real relay on a loopback port, once on SQLite and once on PostgreSQL."""
    overrides = {}
    if request.node.get_closest_marker("no_rate_limits"):
        overrides["rate_limits"] = False
    if request.param == "sqlite":
        running = await start_relay(tmp_path, **overrides)
        try:
            yield running
        finally:
            await running.stop()
    else:
        async with postgres_database() as url:
            running = await start_relay(tmp_path, url, **overrides)
            try:
                yield running
            finally:
                await running.stop()


@pytest.fixture(autouse=True)
async def _close_http_clients() -> AsyncIterator[None]:
    yield
    while open_clients:
        await open_clients.pop().aclose()
