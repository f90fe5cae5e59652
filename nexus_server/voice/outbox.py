"""A listener's way out: payloads go to the wire at once, or wait in a bounded queue.

Audio that is late is worthless, and a listener whose link stalls must not make the SFU
hoard memory: when the queue is full the oldest payload goes and is counted as dropped.

Most of the time nothing waits: once the listener's connection is up, ``put`` hands the
payload straight to the send function given to ``send_through`` (no task wake-up per
packet per listener, which would cost more than the send itself). The queue holds what
that function declines: payloads put before the connection is up, while its socket is
not writable, or while earlier payloads are still queued (order is kept). Whoever
drains the queue (``get``) sends those.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable

DEFAULT_OUTBOX_SIZE = 64  # ~0.25 s of five talkers at 50 packets/s each

SendNow = Callable[[bytes], bool]
"""Sends a payload at once and returns True, or returns False to have it queued."""


class Outbox:
    def __init__(self, capacity: int = DEFAULT_OUTBOX_SIZE) -> None:
        if capacity < 1:
            raise ValueError(f"outbox capacity must be at least 1, got {capacity}")
        self._payloads: deque[bytes] = deque(maxlen=capacity)
        self._ready = asyncio.Event()
        self._closed = False
        self._send_now: SendNow | None = None
        self.dropped = 0

    def __len__(self) -> int:
        return len(self._payloads)

    def send_through(self, send_now: SendNow | None) -> None:
        """Offer each payload to ``send_now`` before queueing it (``None``: always queue)."""
        self._send_now = send_now

    def put(self, payload: bytes) -> None:
        if self._closed:
            return
        if not self._payloads and self._send_now is not None and self._send_now(payload):
            return
        if len(self._payloads) == self._payloads.maxlen:
            self.dropped += 1
        self._payloads.append(payload)
        self._ready.set()

    async def get(self) -> bytes | None:
        """The oldest payload, waiting for one; ``None`` once the outbox is closed."""
        while not self._payloads:
            if self._closed:
                return None
            self._ready.clear()
            await self._ready.wait()
        return self._payloads.popleft()

    def close(self) -> None:
        self._closed = True
        self._send_now = None
        self._payloads.clear()
        self._ready.set()
