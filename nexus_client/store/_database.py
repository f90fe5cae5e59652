"""One keyed SQLCipher connection, its transactions, and the conversion of sqlcipher's
errors into the client's exception tree.

Invariants:

- The key is applied before anything else touches the file, and checked by reading
  ``sqlite_master`` straight away: a wrong key raises ``StoreLocked`` and the file is
  left byte for byte as it was (no journal mode set, no schema written, nothing created).
- The connection runs in autocommit mode and every write goes through ``transaction()``
  (``BEGIN IMMEDIATE`` … ``COMMIT``), so a write is all or nothing.
- WAL with ``synchronous=FULL``: a committed transaction survives a crash or power cut,
  which the outbox relies on.
- No sqlcipher exception leaves this module: each becomes a ``StoreError``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, Protocol

import sqlcipher3

from .._exceptions import StoreError, StoreLocked
from ._keys import KEY_BYTES

SQLParam = int | float | str | bytes | None
Row = tuple[Any, ...]


class Cursor(Protocol):
    """What the store reads from a cursor (sqlcipher3 ships no type hints)."""

    @property
    def rowcount(self) -> int: ...

    @property
    def lastrowid(self) -> int | None: ...

    def fetchone(self) -> Row | None: ...

    def fetchall(self) -> list[Row]: ...


class Database:
    """A keyed, verified SQLCipher connection. Use ``Database.open``."""

    def __init__(self, connection: Any, path: Path) -> None:
        self._connection = connection
        self.path = path
        self._depth = 0

    @classmethod
    def open(cls, path: Path, key: bytes) -> Database:
        """Open (or create) the database at ``path`` with a raw 32-byte key."""
        if len(key) != KEY_BYTES:
            raise ValueError(f"a store key is {KEY_BYTES} bytes")
        is_new = not path.exists() or path.stat().st_size == 0
        if is_new:
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            # Created empty and private first: SQLite gives -wal and -shm the same mode.
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
        try:
            connection = sqlcipher3.connect(str(path), isolation_level=None)
        except sqlcipher3.Error as exc:
            raise StoreError(f"cannot open the local store {path}: {exc}") from exc
        database = cls(connection, path)
        try:
            database._key_and_verify(key)
            database._configure()
        except BaseException:
            connection.close()
            raise
        return database

    def _key_and_verify(self, key: bytes) -> None:
        try:
            # A failed key check is reported by the exception below; SQLCipher's own
            # log line on stderr would only alarm the user.
            self._connection.execute("PRAGMA cipher_log_level = NONE")
            # The key is hex we produced, so there is nothing in it to escape.
            self._connection.execute(f"PRAGMA key = \"x'{key.hex()}'\"")
        except sqlcipher3.Error as exc:
            raise StoreError(f"cannot key the local store {self.path}: {exc}") from exc
        try:
            self._connection.execute("SELECT count(*) FROM sqlite_master").fetchone()
        except sqlcipher3.DatabaseError as exc:
            if getattr(exc, "sqlite_errorname", "") == "SQLITE_NOTADB" or "not a database" in str(
                exc
            ):
                raise StoreLocked(
                    f"the local store {self.path} is encrypted with another key: wrong "
                    "passphrase, or a keyring entry that does not belong to it. "
                    "The file was left untouched."
                ) from exc
            raise StoreError(f"cannot read the local store {self.path}: {exc}") from exc

    def _configure(self) -> None:
        mode = self.fetchone("PRAGMA journal_mode = WAL")
        if mode is None or str(mode[0]).lower() != "wal":
            raise StoreError(f"the local store {self.path} cannot use WAL mode (got {mode})")
        self.execute("PRAGMA synchronous = FULL")
        self.execute("PRAGMA foreign_keys = ON")

    def close(self) -> None:
        try:
            self._connection.close()
        except sqlcipher3.Error as exc:
            raise StoreError(f"cannot close the local store {self.path}: {exc}") from exc

    def execute(self, sql: str, params: Sequence[SQLParam] = ()) -> Cursor:
        try:
            cursor: Cursor = self._connection.execute(sql, tuple(params))
        except sqlcipher3.Error as exc:
            raise StoreError(f"local store query failed: {exc}") from exc
        return cursor

    def executemany(self, sql: str, rows: Sequence[Sequence[SQLParam]]) -> None:
        try:
            self._connection.executemany(sql, [tuple(row) for row in rows])
        except sqlcipher3.Error as exc:
            raise StoreError(f"local store query failed: {exc}") from exc

    def fetchone(self, sql: str, params: Sequence[SQLParam] = ()) -> Row | None:
        try:
            return self.execute(sql, params).fetchone()
        except sqlcipher3.Error as exc:
            raise StoreError(f"local store query failed: {exc}") from exc

    def fetchall(self, sql: str, params: Sequence[SQLParam] = ()) -> list[Row]:
        try:
            return self.execute(sql, params).fetchall()
        except sqlcipher3.Error as exc:
            raise StoreError(f"local store query failed: {exc}") from exc

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """All writes inside commit together or not at all. Nested use joins the
        outer transaction."""
        if self._depth:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            return
        self.execute("BEGIN IMMEDIATE")
        self._depth = 1
        try:
            yield
        except BaseException:
            self._depth = 0
            try:
                self._connection.rollback()
            except sqlcipher3.Error as exc:
                raise StoreError(f"local store rollback failed: {exc}") from exc
            raise
        self._depth = 0
        try:
            self.execute("COMMIT")
        except StoreError:
            # The commit error is the one to report, not a rollback's.
            with suppress(sqlcipher3.Error):
                self._connection.rollback()
            raise
