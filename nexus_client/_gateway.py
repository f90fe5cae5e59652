"""The gateway link: one WebSocket at a time around the protocol's ``ClientSession``,
reconnecting with jittered exponential backoff and resuming where it left off."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable

import websockets
from websockets.asyncio.client import ClientConnection, connect

from nexus_protocol.gateway import Intents
from nexus_protocol.session import (
    ClientSession,
    Dispatch,
    GatewayProtocolError,
    Heartbeat,
    Hello,
    InvalidSession,
    Reconnect,
)

from ._exceptions import GatewayError

log = logging.getLogger(__name__)

DispatchHandler = Callable[[Dispatch], Awaitable[None]]


class GatewayLink:
    """Keeps a gateway session alive until ``close()``.

    ``on_dispatch`` sees every dispatch in order, READY and RESUMED included. ``online``
    is set while a session is established and cleared while reconnecting. A close code
    that no reconnect can fix (bad token, bad intents) ends ``run()`` with
    ``GatewayError``.
    """

    def __init__(
        self,
        url: str,
        token: str,
        intents: Intents,
        on_dispatch: DispatchHandler,
        *,
        properties: dict[str, str] | None = None,
        max_backoff: float = 30.0,
    ) -> None:
        self._url = url
        self._session = ClientSession(token, intents, properties)
        self._on_dispatch = on_dispatch
        self._max_backoff = max_backoff
        self.online = asyncio.Event()
        self._ws: ClientConnection | None = None
        self._closed = False
        self.reconnects = 0
        self.resumes = 0
        self._established = False

    @property
    def session_id(self) -> str | None:
        return self._session.session_id

    async def run(self) -> None:
        failures = 0
        while not self._closed:
            url = self._session.resume_gateway_url or self._url
            close_code: int | None = None
            try:
                async with connect(
                    f"{url}?v=10&encoding=json", max_size=None, open_timeout=10, ping_interval=None
                ) as ws:
                    self._ws = ws
                    self._established = False
                    await self._serve(ws)
            except GatewayProtocolError as exc:
                log.warning("gateway protocol error: %s", exc)
            except (TimeoutError, OSError, websockets.WebSocketException) as exc:
                log.info("gateway connection lost: %s", exc)
            finally:
                self.online.clear()
                if self._ws is not None:
                    close_code = self._ws.close_code
                self._ws = None
            if self._closed:
                break
            if close_code is not None and not ClientSession.close_code_allows_reconnect(close_code):
                raise GatewayError(close_code, "the relay refused this session")
            self._session.connection_lost(close_code)
            # A link that worked before it dropped retries at once-ish; one that keeps
            # failing backs off further each time.
            failures = 1 if self._established else failures + 1
            self.reconnects += 1
            # Full jitter: spreads a crowd of clients that lost the same relay.
            delay = random.uniform(0, min(self._max_backoff, 0.25 * 2 ** min(failures, 10)))
            await asyncio.sleep(delay)

    async def _serve(self, ws: ClientConnection) -> None:
        """Run one connection until it closes."""
        heartbeat: asyncio.Task[None] | None = None
        try:
            async for raw in ws:
                event = self._session.receive(raw)
                if isinstance(event, Hello):
                    heartbeat = asyncio.create_task(self._heartbeat(ws, event.heartbeat_interval))
                    await ws.send(self._session.connect_frame().decode())
                elif isinstance(event, Dispatch):
                    if event.event in ("READY", "RESUMED"):
                        self._established = True
                        if event.event == "RESUMED":
                            self.resumes += 1
                        self.online.set()
                    await self._on_dispatch(event)
                elif isinstance(event, Heartbeat):
                    await ws.send(self._session.heartbeat().decode())
                elif isinstance(event, InvalidSession):
                    # Discord asks for a pause of 1 to 5 s before identifying again.
                    await asyncio.sleep(random.uniform(1, 5) if not event.resumable else 0.1)
                    await ws.send(self._session.connect_frame().decode())
                elif isinstance(event, Reconnect):
                    await ws.close(4000, "reconnect requested")
                    break
        finally:
            if heartbeat is not None:
                heartbeat.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await heartbeat

    async def _heartbeat(self, ws: ClientConnection, interval_ms: int) -> None:
        await asyncio.sleep(interval_ms / 1000 * random.random())
        while True:
            if not self._session.heartbeat_acked:
                # No ACK since the last beat: a zombie connection. Drop it and resume.
                log.info("gateway heartbeat not acknowledged; reconnecting")
                await ws.close(4000, "zombie connection")
                return
            await ws.send(self._session.heartbeat().decode())
            await asyncio.sleep(interval_ms / 1000)

    async def drop(self) -> None:
        """Cut the current connection as a network failure would (it reconnects)."""
        ws = self._ws
        if ws is not None:
            self.online.clear()
            ws.transport.abort()

    async def send(self, payload: bytes) -> None:
        ws = self._ws
        if ws is not None:
            await ws.send(payload.decode())

    async def close(self) -> None:
        self._closed = True
        ws = self._ws
        if ws is not None:
            await ws.close(1000)
