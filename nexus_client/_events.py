"""Handlers for gateway events, in the shape Python chat-bot authors know:

@client.event
async def on_message(message): ...

reply = await client.wait_for("message", check=lambda m: m.author.id == 1, timeout=30)
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

log = logging.getLogger(__name__)

Handler = Callable[..., Awaitable[None]]
H = TypeVar("H", bound=Handler)


class EventDispatcher:
    def __init__(self) -> None:
        self._handlers: dict[str, list[Handler]] = defaultdict(list)
        self._waiters: dict[str, list[tuple[asyncio.Future[Any], Callable[..., bool]]]] = (
            defaultdict(list)
        )
        self._tasks: set[asyncio.Task[None]] = set()
        self.errors: list[BaseException] = []

    def event(self, handler: H) -> H:
        """Register ``on_<name>`` as the handler of ``<name>`` (one of several allowed)."""
        name = handler.__name__
        if not name.startswith("on_"):
            raise ValueError("event handlers are named on_<event>, e.g. on_message")
        function: object = handler  # checked on a copy: the check narrows its type
        if not inspect.iscoroutinefunction(function):
            raise TypeError(f"{name} must be an async function")
        self._handlers[name[3:]].append(handler)
        return handler

    def listen(self, name: str) -> Callable[[H], H]:
        """``@client.listen("message")``: a handler under any function name."""

        def register(handler: H) -> H:
            self._handlers[name].append(handler)
            return handler

        return register

    async def wait_for(
        self, name: str, *, check: Callable[..., bool] | None = None, timeout: float | None = None
    ) -> Any:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        entry = (future, check or (lambda *_: True))
        self._waiters[name].append(entry)
        try:
            return await asyncio.wait_for(future, timeout)
        finally:
            if entry in self._waiters[name]:
                self._waiters[name].remove(entry)

    def dispatch(self, name: str, *args: Any) -> None:
        waiters = self._waiters.get(name)
        if waiters:
            for entry in list(waiters):
                future, check = entry
                if future.done():
                    continue
                try:
                    matched = check(*args)
                except Exception as exc:
                    future.set_exception(exc)
                    waiters.remove(entry)
                    continue
                if matched:
                    future.set_result(args[0] if len(args) == 1 else args)
                    waiters.remove(entry)
        for handler in self._handlers.get(name, ()):
            task = asyncio.create_task(self._run(name, handler, args))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _run(self, name: str, handler: Handler, args: tuple[Any, ...]) -> None:
        try:
            await handler(*args)
        except Exception as exc:
            # One failing handler must not take the client down; it is reported.
            self.errors.append(exc)
            log.exception("handler %s for %r failed", getattr(handler, "__name__", handler), name)

    async def drain(self) -> None:
        """Wait for the handlers already started (used on close)."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
