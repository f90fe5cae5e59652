"""A listener's bounded queue of payloads waiting to be sent.

Audio that is late is worthless, and a listener whose link stalls must not make the SFU
hoard memory: when the queue is full the oldest payload goes and is counted as dropped.
"""

from __future__ import annotations

import asyncio
from collections import deque

DEFAULT_OUTBOX_SIZE = 64  # ~0.25 s of five talkers at 50 packets/s each


class Outbox:
    def __init__(self, capacity: int = DEFAULT_OUTBOX_SIZE) -> None:
        if capacity < 1:
            raise ValueError(f"outbox capacity must be at least 1, got {capacity}")
        self._payloads: deque[bytes] = deque(maxlen=capacity)
        self._ready = asyncio.Event()
        self._closed = False
        self.dropped = 0

    def __len__(self) -> int:
        return len(self._payloads)

    def put(self, payload: bytes) -> None:
        if self._closed:
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
        self._payloads.clear()
        self._ready.set()
