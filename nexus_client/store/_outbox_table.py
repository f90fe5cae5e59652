"""The outbox's rows: every state change of a message waiting to be sent, as one
committed transaction. The policy (nonces, flushing, what counts as permanent) is in
``nexus_client.outbox``.

States and the moves between them::

    pending ──▶ sending ──▶ sent (pruned once more than ``KEEP_SENT`` newer ones exist)
       ▲           │ └────▶ failed ──▶ (retry) pending
       └───────────┘ transient failure, cancellation, or a crash (reset when opening)

Invariants:

- ``local_id`` only grows; the queue order is ``local_id`` order.
- ``nonce`` is fixed at insert and never changes, whatever happens to the row: a resend
  after a crash or a retry carries the same nonce, which the relay deduplicates on.
- No row is ``sending`` once the store is open (``recover`` resets them to pending).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

from ._database import Database, Row

OutboxState = Literal["pending", "sending", "sent", "failed"]
KEEP_SENT: Final = 100

_COLUMNS = "local_id, channel_id, content, nonce, reply_to, state, message_id, error, created_at"


@dataclass(frozen=True, slots=True)
class PendingMessage:
    """A message in the outbox, as it was when read."""

    local_id: int
    channel_id: int
    content: str
    nonce: str
    reply_to: int | None
    state: OutboxState
    message_id: int | None
    error: str | None
    created_at: float


def _pending_message(row: Row) -> PendingMessage:
    return PendingMessage(
        local_id=int(row[0]),
        channel_id=int(row[1]),
        content=str(row[2]),
        nonce=str(row[3]),
        reply_to=None if row[4] is None else int(row[4]),
        state=row[5],
        message_id=None if row[6] is None else int(row[6]),
        error=None if row[7] is None else str(row[7]),
        created_at=float(row[8]),
    )


class OutboxTable:
    """SQL for the ``outbox`` table. Each method is one transaction."""

    def __init__(self, database: Database) -> None:
        self._db = database

    def recover(self) -> int:
        """Put back in the queue what was being sent when the process last stopped."""
        with self._db.transaction():
            return self._db.execute(
                "UPDATE outbox SET state = 'pending' WHERE state = 'sending'"
            ).rowcount

    def insert(
        self, channel_id: int, content: str, nonce: str, reply_to: int | None, created_at: float
    ) -> PendingMessage:
        with self._db.transaction():
            cursor = self._db.execute(
                "INSERT INTO outbox (channel_id, content, nonce, reply_to, state, created_at)"
                " VALUES (?, ?, ?, ?, 'pending', ?)",
                (channel_id, content, nonce, reply_to, created_at),
            )
            assert cursor.lastrowid is not None
            row = self._db.fetchone(
                f"SELECT {_COLUMNS} FROM outbox WHERE local_id = ?", (cursor.lastrowid,)
            )
        assert row is not None
        return _pending_message(row)

    def get(self, local_id: int) -> PendingMessage | None:
        row = self._db.fetchone(f"SELECT {_COLUMNS} FROM outbox WHERE local_id = ?", (local_id,))
        return None if row is None else _pending_message(row)

    def oldest_pending(self) -> PendingMessage | None:
        row = self._db.fetchone(
            f"SELECT {_COLUMNS} FROM outbox WHERE state = 'pending' ORDER BY local_id LIMIT 1"
        )
        return None if row is None else _pending_message(row)

    def count_waiting(self) -> int:
        """Rows still to be delivered: pending or sending (not failed)."""
        row = self._db.fetchone("SELECT count(*) FROM outbox WHERE state IN ('pending', 'sending')")
        return 0 if row is None else int(row[0])

    def unsent(self, channel_id: int | None) -> list[PendingMessage]:
        """Pending, sending and failed rows, oldest first."""
        sql = f"SELECT {_COLUMNS} FROM outbox WHERE state != 'sent'"
        params: tuple[int, ...] = ()
        if channel_id is not None:
            sql += " AND channel_id = ?"
            params = (channel_id,)
        return [
            _pending_message(row) for row in self._db.fetchall(sql + " ORDER BY local_id", params)
        ]

    def move(
        self,
        local_id: int,
        *,
        from_states: tuple[OutboxState, ...],
        to_state: OutboxState,
        message_id: int | None = None,
        error: str | None = None,
    ) -> bool:
        """Change a row's state if it is in one of ``from_states``; False otherwise."""
        marks = ", ".join("?" for _ in from_states)
        with self._db.transaction():
            changed = (
                self._db.execute(
                    f"UPDATE outbox SET state = ?, message_id = ?, error = ?"
                    f" WHERE local_id = ? AND state IN ({marks})",
                    (to_state, message_id, error, local_id, *from_states),
                ).rowcount
                == 1
            )
            if changed and to_state == "sent":
                self._prune_sent()
        return changed

    def delete(self, local_id: int, *, from_states: tuple[OutboxState, ...]) -> bool:
        marks = ", ".join("?" for _ in from_states)
        with self._db.transaction():
            return (
                self._db.execute(
                    f"DELETE FROM outbox WHERE local_id = ? AND state IN ({marks})",
                    (local_id, *from_states),
                ).rowcount
                == 1
            )

    def _prune_sent(self) -> None:
        self._db.execute(
            "DELETE FROM outbox WHERE state = 'sent' AND local_id NOT IN"
            " (SELECT local_id FROM outbox WHERE state = 'sent'"
            "  ORDER BY local_id DESC LIMIT ?)",
            (KEEP_SENT,),
        )
