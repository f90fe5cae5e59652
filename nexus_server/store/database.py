"""Connections and named transactions over SQLite (embedded default) or PostgreSQL.

SQLite allows one writer at a time; rather than let concurrent writers collide and
retry on SQLITE_BUSY, the relay queues its writes on one asyncio lock and opens them
with BEGIN IMMEDIATE. Reads run beside them on their own connections (WAL).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, nullcontext
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


class StoreError(Exception):
    """The database could not be opened or migrated."""


def async_url(url: str) -> str:
    """Accept plain ``sqlite:///…`` and ``postgresql://…`` URLs and pick the async drivers."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return str(parsed.set(drivername="sqlite+aiosqlite"))
    if backend in {"postgresql", "postgres"}:
        return parsed.set(drivername="postgresql+asyncpg").render_as_string(hide_password=False)
    raise StoreError(f"unsupported database {backend!r}: use sqlite:/// or postgresql://")


class Database:
    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = async_url(url)
        self.dialect = make_url(self.url).get_backend_name()
        self._write_lock = asyncio.Lock() if self.dialect == "sqlite" else None
        self.engine: AsyncEngine = self._create_engine(echo)

    @property
    def is_sqlite(self) -> bool:
        return self.dialect == "sqlite"

    def _create_engine(self, echo: bool) -> AsyncEngine:
        if self.dialect == "sqlite":
            path = make_url(self.url).database
            if path and path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            engine = create_async_engine(
                self.url, echo=echo, pool_size=8, max_overflow=0, pool_pre_ping=False
            )
            sync_engine = engine.sync_engine

            @event.listens_for(sync_engine, "connect")
            def _configure(dbapi_connection: Any, _record: Any) -> None:
                # Take transaction control from the driver so BEGIN is ours to word.
                dbapi_connection.isolation_level = None
                cursor = dbapi_connection.cursor()
                cursor.execute("PRAGMA journal_mode=WAL")
                # An acknowledged write survives a crash or power cut.
                cursor.execute("PRAGMA synchronous=FULL")
                cursor.execute("PRAGMA foreign_keys=ON")
                cursor.execute("PRAGMA busy_timeout=10000")
                cursor.close()

            @event.listens_for(sync_engine, "begin")
            def _begin(connection: Connection) -> None:
                mode = connection.get_execution_options().get("sqlite_begin", "DEFERRED")
                connection.exec_driver_sql(f"BEGIN {mode}")

            return engine
        return create_async_engine(
            self.url, echo=echo, pool_size=10, max_overflow=20, pool_pre_ping=True
        )

    async def migrate(self) -> None:
        """Bring the schema to the newest revision; a fresh database gets every table."""

        def upgrade(connection: Connection) -> None:
            config = Config()
            config.set_main_option("script_location", str(MIGRATIONS))
            config.attributes["connection"] = connection
            command.upgrade(config, "head")

        try:
            async with self.engine.begin() as connection:
                await connection.run_sync(upgrade)
        except Exception as exc:
            raise StoreError(f"could not prepare the database: {exc}") from exc

    @asynccontextmanager
    async def read(self, name: str) -> AsyncIterator[AsyncConnection]:
        """A read-only transaction (a consistent snapshot on both backends)."""
        async with self.engine.connect() as connection, connection.begin():
            yield connection

    @asynccontextmanager
    async def write(self, name: str) -> AsyncIterator[AsyncConnection]:
        """One atomic write: everything inside commits together or not at all."""
        started = time.perf_counter()
        async with self._write_lock or nullcontext(), self.engine.connect() as connection:
            if self.is_sqlite:
                connection = await connection.execution_options(sqlite_begin="IMMEDIATE")
            async with connection.begin():
                yield connection
        elapsed = time.perf_counter() - started
        if elapsed > 0.5:
            log.warning("transaction %s took %.0f ms", name, elapsed * 1000)

    async def close(self) -> None:
        await self.engine.dispose()


def nullpool_engine(url: str) -> AsyncEngine:
    """An engine that keeps no connections, for one-off admin work (tests, tools)."""
    return create_async_engine(async_url(url), poolclass=NullPool)
