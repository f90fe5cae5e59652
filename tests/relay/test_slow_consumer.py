"""A consumer that stops reading is cut off with a resumable close; memory stays bounded.

A peer that never reads cannot be made cheaply over loopback (kernel buffers absorb
megabytes first), so the socket here is a stand-in whose sends never complete; the
connection, its queue and the session machine are the relay's own.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from nexus_protocol.gateway import Intents
from nexus_protocol.session import ServerSession
from nexus_server.events import Event
from nexus_server.gateway.connection import GatewayConnection
from nexus_server.gateway.hub import SessionEntry
from nexus_server.relay import Relay
from nexus_server.settings import Settings


class StalledSocket:
    """Accepts frames into the void: the first send blocks forever, like a full pipe."""

    def __init__(self) -> None:
        self.sent = 0
        self.closed_with: tuple[int, str] | None = None
        self.application_state = None
        self.query_params: dict[str, str] = {}  # no compress=zlib-stream: text frames

    async def send_text(self, _text: str) -> None:
        self.sent += 1
        await asyncio.Event().wait()

    async def close(self, code: int, reason: str) -> None:
        self.closed_with = (code, reason)


async def test_stalled_consumer_is_closed_resumably_with_a_bounded_queue(tmp_path: Path) -> None:
    relay = Relay(Settings(data_dir=tmp_path, gateway_queue_limit=16))
    socket = StalledSocket()
    connection = GatewayConnection(socket, relay)  # type: ignore[arg-type]
    session = ServerSession()
    session.hello(0.0)
    session.receive(b'{"op":2,"d":{"token":"t","intents":513,"properties":{}}}', 0.0)
    session.establish("s1", b"{}", 0.0)
    entry = SessionEntry(session=session, user_id=1, intents=Intents(513), pending=None)
    entry.connection = connection
    writer = asyncio.create_task(connection._write_loop())

    event = Event("MESSAGE_CREATE", b'{"content":"x"}', frozenset({1}), guild_id=7)
    for _ in range(1000):
        entry.deliver(event)
        await asyncio.sleep(0)

    # The queue never held more than its limit, and the relay asked for a close that
    # tells the client to resume (4000), not to start over.
    assert connection._queue.qsize() <= 16
    assert connection._closing is not None and connection._closing[0] == 4000
    # Nothing is lost for the resume: every frame after READY is still replayable.
    replay = session.frames_since(1)
    assert replay is not None and len(replay) == 1000
    writer.cancel()
    await relay.db.close()
