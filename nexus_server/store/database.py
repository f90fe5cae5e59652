"""Connections and named transactions over SQLite (embedded default) or PostgreSQL.

PostgreSQL is reached through asyncpg. SQLite is called directly on the event loop's
thread: its queries on this schema take tens of microseconds, far less than the
thread hand-offs an asyncio bridge would add to each statement (measured here:
3 to 4 ms per request through aiosqlite, most of it waiting for the hand-offs).
SQLite allows one writer at a time; rather than let writers collide and retry on
SQLITE_BUSY, the relay queues its writes on one asyncio lock and opens them with
BEGIN IMMEDIATE. Reads run beside them on their own connections (WAL).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, nullcontext
from pathlib import Path
from typing import Any, cast

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import CursorResult, make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


class StoreError(Exception):
    """The database could not be opened or migrated."""


class _LoopConnection:
    """The slice of ``AsyncConnection`` the store uses, over a synchronous SQLite
    connection: statements run at once, on the loop's thread."""

    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    async def execute(self, statement: Any, parameters: Any = None) -> CursorResult[Any]:
        return self._connection.execute(statement, parameters)

    @asynccontextmanager
    async def begin_nested(self) -> AsyncIterator[None]:
        with self._connection.begin_nested():
            yield


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
        self.sqlite: Engine | None = None
        self.engine: AsyncEngine | None = None
        if self.dialect == "sqlite":
            self.sqlite = self._create_sqlite_engine(echo)
        else:
            self.engine = self._create_engine(echo)

    @property
    def is_sqlite(self) -> bool:
        return self.dialect == "sqlite"

    def _create_engine(self, echo: bool) -> AsyncEngine:
        return create_async_engine(
            self.url, echo=echo, pool_size=10, max_overflow=20, pool_pre_ping=True
        )

    def _create_sqlite_engine(self, echo: bool) -> Engine:
        path = make_url(self.url).database
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        # No overflow limit: a checkout that waited for a free connection would block
        # the event loop, and every connection is returned within one transaction.
        engine = create_engine(
            f"sqlite:///{path}",
            echo=echo,
            pool_size=8,
            max_overflow=-1,
            # Commits run in a worker thread (see write()).
            connect_args={"check_same_thread": False},
        )

        @event.listens_for(engine, "connect")
        def _configure(dbapi_connection: Any, _record: Any) -> None:
            # Take transaction control from the driver so BEGIN is ours to word.
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            # An acknowledged write survives a crash or power cut.
            cursor.execute("PRAGMA synchronous=FULL")
            cursor.execute("PRAGMA foreign_keys=ON")
            # Writers are queued on the relay's lock; this only covers other processes.
            cursor.execute("PRAGMA busy_timeout=2000")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _begin(connection: Connection) -> None:
            mode = connection.get_execution_options().get("sqlite_begin", "DEFERRED")
            connection.exec_driver_sql(f"BEGIN {mode}")

        return engine

    async def migrate(self) -> None:
        """Bring the schema to the newest revision; a fresh database gets every table."""

        def upgrade(connection: Connection) -> None:
            config = Config()
            config.set_main_option("script_location", str(MIGRATIONS))
            config.attributes["connection"] = connection
            command.upgrade(config, "head")

        try:
            if self.sqlite is not None:
                with self.sqlite.begin() as sync_connection:
                    upgrade(sync_connection)
            else:
                assert self.engine is not None
                async with self.engine.begin() as connection:
                    await connection.run_sync(upgrade)
        except Exception as exc:
            raise StoreError(f"could not prepare the database: {exc}") from exc

    @asynccontextmanager
    async def read(self, name: str) -> AsyncIterator[AsyncConnection]:
        """A read-only transaction (a consistent snapshot on both backends)."""
        if self.sqlite is not None:
            with self.sqlite.connect() as sync_connection, sync_connection.begin():
                yield _as_async(sync_connection)
            return
        assert self.engine is not None
        async with self.engine.connect() as connection, connection.begin():
            yield connection

    @asynccontextmanager
    async def write(self, name: str) -> AsyncIterator[AsyncConnection]:
        """One atomic write: everything inside commits together or not at all."""
        started = time.perf_counter()
        async with self._write_lock or nullcontext():
            if self.sqlite is not None:
                with self.sqlite.connect() as sync_connection:
                    immediate = sync_connection.execution_options(sqlite_begin="IMMEDIATE")
                    transaction = immediate.begin()
                    try:
                        yield _as_async(immediate)
                    except BaseException:
                        transaction.rollback()
                        raise
                    # The commit waits for fsync (a millisecond, sometimes tens). In a
                    # worker thread it releases the loop to keep fanning out meanwhile;
                    # this connection is ours alone until the commit returns.
                    await asyncio.to_thread(transaction.commit)
            else:
                assert self.engine is not None
                async with self.engine.connect() as connection, connection.begin():
                    yield connection
        elapsed = time.perf_counter() - started
        if elapsed > 0.5:
            log.warning("transaction %s took %.0f ms", name, elapsed * 1000)

    async def close(self) -> None:
        if self.sqlite is not None:
            self.sqlite.dispose()
        if self.engine is not None:
            await self.engine.dispose()


def _as_async(connection: Connection) -> AsyncConnection:
    # The store is written against AsyncConnection; _LoopConnection provides the part
    # of it the store uses (execute, begin_nested), with the same result objects.
    return cast(AsyncConnection, _LoopConnection(connection))


def nullpool_engine(url: str) -> AsyncEngine:
    """An engine that keeps no connections, for one-off admin work (tests, tools)."""
    return create_async_engine(async_url(url), poolclass=NullPool)
