"""Fan-out buses: in-process by default, Redis pub/sub when several relay nodes share a
community. Either way every node's subscriber sees every event, in publish order."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Protocol

from .events import Event

log = logging.getLogger(__name__)

Subscriber = Callable[[Event], None]


class Bus(Protocol):
    async def start(self) -> None: ...
    async def publish(self, event: Event) -> None: ...
    def subscribe(self, subscriber: Subscriber) -> None: ...
    async def close(self) -> None: ...


class LocalBus:
    """Delivers synchronously to this process's subscribers."""

    def __init__(self) -> None:
        self._subscribers: list[Subscriber] = []

    async def start(self) -> None:
        return None

    def subscribe(self, subscriber: Subscriber) -> None:
        self._subscribers.append(subscriber)

    async def publish(self, event: Event) -> None:
        for subscriber in self._subscribers:
            subscriber(event)

    async def close(self) -> None:
        self._subscribers.clear()


class RedisBus:
    """Redis pub/sub on one channel; a node's own events come back to it through Redis,
    so every node sees one order."""

    def __init__(self, url: str, channel: str = "nexus:events") -> None:
        import redis.asyncio as redis  # only relays started with --redis need it

        self._redis = redis.Redis.from_url(url)
        self._channel = channel
        self._subscribers: list[Subscriber] = []
        self._reader: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()

    async def start(self) -> None:
        pubsub = self._redis.pubsub()
        await pubsub.subscribe(self._channel)
        self._reader = asyncio.create_task(self._read(pubsub), name="redis-bus-reader")

    async def _read(self, pubsub: object) -> None:
        async for message in pubsub.listen():  # type: ignore[attr-defined]
            if message.get("type") != "message":
                continue
            try:
                event = Event.from_bytes(message["data"])
            except Exception:
                log.exception("dropped a malformed bus message")
                continue
            for subscriber in self._subscribers:
                subscriber(event)

    def subscribe(self, subscriber: Subscriber) -> None:
        self._subscribers.append(subscriber)

    async def publish(self, event: Event) -> None:
        await self._redis.publish(self._channel, event.to_bytes())

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        await self._redis.aclose()
