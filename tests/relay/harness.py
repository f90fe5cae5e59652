"""A real relay served by uvicorn on a free loopback port, and clients that speak to it
exactly as users' apps do: httpx for REST, websockets for the gateway."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import secrets
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson
import uvicorn
import websockets

from nexus_server.api.app import build_app
from nexus_server.relay import Relay
from nexus_server.settings import Settings

POSTGRES_ADMIN_DSN = os.environ.get(
    "NEXUS_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test"
)
_names = itertools.count()
# Every HTTP client the harness opens, closed by the suite's fixture after each test.
open_clients: list[httpx.AsyncClient] = []


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.asynccontextmanager
async def postgres_database() -> AsyncIterator[str]:
    """A fresh, empty PostgreSQL database for one relay; dropped afterwards."""
    name = f"nexus_test_{os.getpid()}_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(POSTGRES_ADMIN_DSN)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    base = POSTGRES_ADMIN_DSN.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        admin = await asyncpg.connect(POSTGRES_ADMIN_DSN)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


@dataclass
class RunningRelay:
    relay: Relay
    server: uvicorn.Server
    task: asyncio.Task[None]
    settings: Settings

    @property
    def api(self) -> str:
        return f"{self.settings.base_url}/api/v10"

    async def stop(self) -> None:
        self.server.should_exit = True
        await asyncio.wait_for(self.task, timeout=15)


async def start_relay(
    data_dir: Path, database_url: str | None = None, **overrides: Any
) -> RunningRelay:
    port = overrides.pop("port", None) or free_port()
    settings = Settings(
        host="127.0.0.1",
        port=port,
        data_dir=data_dir,
        database_url=database_url,
        **overrides,
    )
    relay = Relay(settings)
    config = uvicorn.Config(
        build_app(relay),
        host=settings.host,
        port=settings.port,
        log_level="warning",
        lifespan="on",
        ws="websockets-sansio",
        ws_max_size=64 * 1024,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    for _ in range(500):
        if server.started:
            break
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    else:
        raise RuntimeError("relay did not start")
    return RunningRelay(relay, server, task, settings)


@dataclass
class User:
    """One person using the relay: a token, an HTTP client, and gateway sockets."""

    api: str
    token: str
    id: int
    username: str
    http: httpx.AsyncClient

    async def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return await self.http.request(method, f"{self.api}{path}", **kwargs)

    async def ok(self, method: str, path: str, **kwargs: Any) -> Any:
        response = await self.request(method, path, **kwargs)
        assert response.status_code < 300, (response.status_code, response.text)
        return response.json() if response.content else None


@dataclass
class Gateway:
    """A raw gateway connection that records every dispatch."""

    ws: Any
    events: asyncio.Queue[dict[str, Any]] = field(default_factory=asyncio.Queue)
    seq: int = 0
    session_id: str | None = None
    ready: dict[str, Any] | None = None
    close_code: int | None = None
    reader: asyncio.Task[None] | None = None

    async def _read(self) -> None:
        try:
            async for raw in self.ws:
                frame = orjson.loads(raw)
                if frame["op"] == 0:
                    self.seq = frame["s"]
                    if frame["t"] == "READY":
                        self.ready = frame["d"]
                        self.session_id = frame["d"]["session_id"]
                await self.events.put(frame)
        except websockets.ConnectionClosed:
            pass
        self.close_code = self.ws.close_code

    async def next_dispatch(self, name: str | None = None, within: float = 10.0) -> dict[str, Any]:
        async def wait() -> dict[str, Any]:
            while True:
                frame = await self.events.get()
                if frame["op"] == 0 and (name is None or frame["t"] == name):
                    return frame

        return await asyncio.wait_for(wait(), within)

    async def send(self, payload: dict[str, Any]) -> None:
        await self.ws.send(orjson.dumps(payload).decode())

    async def close(self) -> None:
        await self.ws.close()
        if self.reader is not None:
            await asyncio.wait_for(self.reader, 10)


async def register(
    api: str, username: str | None = None, password: str = "correct horse battery"
) -> User:
    username = username or f"user{next(_names)}_{secrets.token_hex(3)}"
    http = httpx.AsyncClient(timeout=30)
    open_clients.append(http)
    response = await http.post(
        f"{api}/auth/register", json={"username": username, "password": password}
    )
    assert response.status_code == 201, response.text
    body = response.json()
    http.headers["Authorization"] = body["token"]
    return User(api, body["token"], int(body["user"]["id"]), username, http)


async def connect_gateway(
    api: str, token: str, *, intents: int = (1 << 16) - 1, resume: tuple[str, int] | None = None
) -> Gateway:
    async with httpx.AsyncClient() as http:
        url = (await http.get(f"{api}/gateway")).json()["url"]
    ws = await websockets.connect(f"{url}?v=10&encoding=json", max_size=None)
    gateway = Gateway(ws)
    hello = orjson.loads(await ws.recv())
    assert hello["op"] == 10
    if resume is None:
        await gateway.send(
            {"op": 2, "d": {"token": token, "intents": intents, "properties": {"os": "test"}}}
        )
    else:
        gateway.session_id, gateway.seq = resume
        await gateway.send(
            {"op": 6, "d": {"token": token, "session_id": resume[0], "seq": resume[1]}}
        )
    gateway.reader = asyncio.create_task(gateway._read())
    return gateway
