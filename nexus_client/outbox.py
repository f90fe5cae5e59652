"""The offline outbox: what the user sends is written to the local store first and
delivered exactly once, in order, when the relay can be reached.

Exactly once comes from the nonce. ``enqueue`` gives each message a random nonce that
never changes; the relay keeps one message per (author, nonce) and answers a repeat with
the first one. So a message may be *sent* more than once (its send was in flight when the
link or the process died; it is still pending after a restart) but is *delivered* once.

Order: ``flush`` sends the oldest pending message first (global FIFO by ``local_id``)
and sends the next only once the previous one has a final id.

Failures:

- ``PermanentFailure`` (or a 400/403/404/413 ``HTTPError``) from ``send``: the relay will
  never accept this message. It is marked ``failed`` with the reason and the flush moves
  on: a failed message does not block the ones after it. The user may ``retry`` it (back
  to pending, same nonce, at its original place: it goes before newer pending messages
  but after those already sent) or ``discard`` it.
- Any other exception: transient (offline, 5xx, rate limited, token expired). The message
  stays pending and the flush stops; call ``flush`` again when the connection returns.

Sent entries stay ``KEEP_SENT`` (100) deep so a UI can map a local id to its final id.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from ._exceptions import HTTPError, NexusError
from .store import LocalStore, PendingMessage

__all__ = ["FlushResult", "Outbox", "PendingMessage", "PermanentFailure", "SendMessage"]

SendMessage = Callable[[PendingMessage], Awaitable[int]]

# Statuses for which the same request will never succeed. 401 and 429 are not here:
# a new token or a wait fixes them.
_PERMANENT_STATUSES = frozenset({400, 403, 404, 413})


class PermanentFailure(NexusError):
    """Raised by a ``send`` callable when the relay refused the message for good."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class FlushResult:
    """What one ``flush`` did."""

    sent: int
    failed: int
    remaining: int
    #: The transient error that stopped the flush; None if the queue was emptied.
    #: ``remaining`` counts pending messages left, not failed ones.
    interrupted_by: Exception | None = None


def _permanent_reason(exc: Exception) -> str | None:
    if isinstance(exc, PermanentFailure):
        return exc.reason
    if isinstance(exc, HTTPError) and exc.status in _PERMANENT_STATUSES:
        return str(exc)
    return None


class Outbox:
    """The outbox of one ``LocalStore``. Each method commits before it returns."""

    def __init__(self, store: LocalStore) -> None:
        self._rows = store.outbox_rows
        self._flush_lock = asyncio.Lock()

    def enqueue(self, channel_id: int, content: str, reply_to: int | None = None) -> PendingMessage:
        """Queue a message; it is on disk when this returns."""
        nonce = secrets.token_hex(12)  # 24 characters, within Discord's 25-character limit
        return self._rows.insert(channel_id, content, nonce, reply_to, time.time())

    def get(self, local_id: int) -> PendingMessage | None:
        """The entry for ``local_id``: unsent, or sent recently (its ``message_id``)."""
        return self._rows.get(local_id)

    def next_to_send(self) -> PendingMessage | None:
        """The oldest pending message (failed ones are skipped)."""
        return self._rows.oldest_pending()

    def has_pending(self) -> bool:
        """Whether anything is still to be delivered (failed messages do not count:
        they wait for the user's ``retry`` or ``discard``)."""
        return self._rows.count_waiting() > 0

    def pending(self, channel_id: int | None = None) -> list[PendingMessage]:
        """Every message not yet sent (pending, sending or failed), oldest first."""
        return self._rows.unsent(channel_id)

    def mark_sending(self, local_id: int) -> bool:
        return self._rows.move(local_id, from_states=("pending",), to_state="sending")

    def mark_sent(self, local_id: int, message_id: int) -> bool:
        """Record the final id. False if the entry is not pending or sending."""
        return self._rows.move(
            local_id, from_states=("pending", "sending"), to_state="sent", message_id=message_id
        )

    def mark_failed(self, local_id: int, reason: str) -> bool:
        """Park a message the relay will not accept. False if not pending or sending."""
        return self._rows.move(
            local_id, from_states=("pending", "sending"), to_state="failed", error=reason
        )

    def retry(self, local_id: int) -> bool:
        """Put a failed message back in the queue at its place, with its nonce.
        False if it is not failed."""
        return self._rows.move(local_id, from_states=("failed",), to_state="pending")

    def discard(self, local_id: int) -> bool:
        """Remove a pending or failed message. False otherwise (e.g. being sent)."""
        return self._rows.delete(local_id, from_states=("pending", "failed"))

    async def flush(self, send: SendMessage) -> FlushResult:
        """Send pending messages in order until the queue is empty or a transient
        failure; ``send`` returns the relay's message id. Concurrent calls take turns."""
        async with self._flush_lock:
            sent = failed = 0
            interrupted_by: Exception | None = None
            while (message := self._rows.oldest_pending()) is not None:
                if not self.mark_sending(message.local_id):
                    continue  # discarded between the read and now
                try:
                    message_id = await send(message)
                except Exception as exc:
                    reason = _permanent_reason(exc)
                    if reason is None:
                        self._rows.move(
                            message.local_id, from_states=("sending",), to_state="pending"
                        )
                        interrupted_by = exc
                        break
                    self.mark_failed(message.local_id, reason)
                    failed += 1
                    continue
                except BaseException:
                    # Cancelled (or the process is going down): it was maybe delivered,
                    # maybe not; pending again, the nonce settles it on the next flush.
                    self._rows.move(message.local_id, from_states=("sending",), to_state="pending")
                    raise
                self.mark_sent(message.local_id, message_id)
                sent += 1
            return FlushResult(
                sent=sent,
                failed=failed,
                remaining=self._rows.count_waiting(),
                interrupted_by=interrupted_by,
            )
