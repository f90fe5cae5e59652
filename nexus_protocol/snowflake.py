"""Snowflake ids: 64-bit, time-sortable, unique across relay nodes.

Layout (Discord's): 42 bits of milliseconds since ``EPOCH``, 10 bits of worker id,
12 bits of sequence. Using Discord's epoch keeps ``discord.utils.snowflake_time``
right for bots that migrate.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Final

EPOCH_MS: Final = 1_420_070_400_000
WORKER_BITS: Final = 10
SEQUENCE_BITS: Final = 12
MAX_WORKER: Final = (1 << WORKER_BITS) - 1
MAX_SEQUENCE: Final = (1 << SEQUENCE_BITS) - 1
MAX_SNOWFLAKE: Final = (1 << 63) - 1
_UNIX_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


class SnowflakeGenerator:
    """Hands out strictly increasing ids for one worker, even if the clock steps back."""

    def __init__(self, worker_id: int = 0, clock_ms: Callable[[], int] | None = None) -> None:
        if not 0 <= worker_id <= MAX_WORKER:
            raise ValueError(f"worker_id must be within 0..{MAX_WORKER}")
        self._worker_id = worker_id
        self._clock_ms = clock_ms or (lambda: time.time_ns() // 1_000_000)
        self._last_ms = 0
        self._sequence = 0
        self._lock = threading.Lock()

    def next_id(self) -> int:
        with self._lock:
            now = max(self._clock_ms(), self._last_ms)
            if now == self._last_ms:
                self._sequence = (self._sequence + 1) & MAX_SEQUENCE
                if self._sequence == 0:
                    # The sequence wrapped within one millisecond: borrow the next one
                    # rather than wait, which keeps ids unique and increasing.
                    now += 1
            else:
                self._sequence = 0
            self._last_ms = now
            return (
                ((now - EPOCH_MS) << (WORKER_BITS + SEQUENCE_BITS))
                | (self._worker_id << SEQUENCE_BITS)
                | self._sequence
            )


def snowflake_time(snowflake: int) -> datetime:
    """When an id was made."""
    ms = (snowflake >> (WORKER_BITS + SEQUENCE_BITS)) + EPOCH_MS
    # Integer arithmetic: a float of milliseconds loses the last one past 2038.
    return _UNIX_EPOCH + timedelta(milliseconds=ms)


def snowflake_at(moment: datetime) -> int:
    """The lowest id made at ``moment``: a bound for ``before``/``after`` queries."""
    ms = (moment - _UNIX_EPOCH) // timedelta(milliseconds=1)
    return max(0, (ms - EPOCH_MS) << (WORKER_BITS + SEQUENCE_BITS))


def parse_snowflake(value: object) -> int:
    """An id from the wire: a decimal string or an integer (Discord libraries send both)."""
    if isinstance(value, bool):
        raise ValueError("must be a snowflake id")
    if isinstance(value, int):
        number = value
    elif isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 20:
        number = int(value)
    else:
        raise ValueError("must be a snowflake id")
    if not 0 <= number <= MAX_SNOWFLAKE:
        raise ValueError("must be a snowflake id")
    return number
