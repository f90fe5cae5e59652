"""The gateway session as a pure state machine: no I/O, no asyncio, no clock.

Both ends of a Discord-v10-shaped gateway live here, in the form h11 gives HTTP/1.1:
the caller feeds in the frames it read (``receive``) and the time it read them, asks
for the frames it should write, and owns the socket, the timers and the event loop.
The relay (``nexus_server``), the client (``nexus_client``) and the tests wrap the same
objects.

Wire frames are JSON objects ``{"op": int, "d": ..., "s": int | null, "t": str | null}``.

Server side (`ServerSession`)
=============================

One object is one *logical session*. It is created for a new connection, and lives
on after that connection drops, until the relay forgets it or it can no longer be
resumed::

    AWAITING_IDENTIFY --establish()--> ESTABLISHED --detach()--> CLOSED (detached)
           |                                ^                         |
           +--detach() / consumed by        +---- old.resume_onto(fresh, ...) ----+
              resume_onto() --> CLOSED

Invariants:

1. ``hello()`` is the first thing sent on a connection, once; ``receive()`` refuses
   frames before it (that is a bug in the caller: `SessionStateError`).
2. Before establishment only IDENTIFY, RESUME and HEARTBEAT are accepted; one
   IDENTIFY or RESUME may be awaiting the relay's answer at a time. Once established,
   IDENTIFY and RESUME are refused.
3. ``seq`` is the sequence number of the last dispatch built; it starts at 0, READY
   is 1, and every dispatch (RESUMED included) takes the next number. Numbers are
   never reused or skipped.
4. The replay buffer holds every dispatch numbered above the last evicted one, except
   RESUMED frames: a RESUMED replayed inside a later resume would tell the client
   that resume had finished before its replay had. At most ``replay_limit`` frames
   and ``replay_bytes_limit`` bytes are held; the oldest go first. A resume from
   ``n`` succeeds exactly when nothing numbered above ``n`` was evicted.
5. A detached session (CLOSED, but established before) keeps its ``session_id``,
   ``seq`` and buffer, and ``dispatch()`` keeps buffering into it, so a RESUME on a
   new connection loses nothing. A session ended by ``invalid_session(False)`` keeps
   nothing and can never be resumed.
6. Resuming moves the *new connection* onto the *old session*: the old object (which
   the relay's registry and fan-out already point at) adopts the fresh object's
   connection state (heartbeat interval and deadline, rate-limit window), and the
   fresh object, which only carried the pre-identify phase, is CLOSED for good. The
   relay then serves the socket from the old object.
7. The heartbeat deadline restarts on HELLO, on every HEARTBEAT received, and when
   the session is established on a connection (READY or RESUMED).
8. Every frame a client sends counts against ``rate_limit_frames`` per
   ``rate_limit_window`` seconds (Discord: 120 per 60 s).

Client side (`ClientSession`)
=============================

One object survives every reconnect of one client, so it can RESUME::

    AWAITING_HELLO --connect_frame()--> IDENTIFYING --READY-----> ESTABLISHED
                                  \\--> RESUMING ----RESUMED---/
    any --RECONNECT--> CLOSED;  INVALID_SESSION --> AWAITING_HELLO (handshake again)
    any --connection_lost()--> AWAITING_HELLO (new connection, waiting for HELLO)

Invariants:

1. ``seq`` is the highest sequence number received in this session (``None`` before
   the first dispatch); dispatches are never dropped, even if a number repeats.
2. ``session_id`` and ``seq`` are kept across connections and forgotten by an
   IDENTIFY, by INVALID_SESSION with ``d: false``, and by ``forget()``.
3. ``heartbeat_acked`` is False between a heartbeat sent and its ACK; a heartbeat due
   while it is False means a zombie connection: the caller reconnects and resumes.

Errors: `GatewayProtocolError` means the peer broke the protocol (it carries the close
code to send); `SessionStateError` means the caller used the state machine out of
order, a bug in Nexus, never something a peer can cause.
"""

from ._client_session import ClientSession, ClientState
from ._gateway_frames import (
    Command,
    Dispatch,
    GatewayProtocolError,
    Heartbeat,
    HeartbeatAck,
    Hello,
    Identify,
    InvalidSession,
    Reconnect,
    Resume,
    SessionStateError,
)
from ._server_session import ServerSession, ServerState

__all__ = [
    "ClientSession",
    "ClientState",
    "Command",
    "Dispatch",
    "GatewayProtocolError",
    "Heartbeat",
    "HeartbeatAck",
    "Hello",
    "Identify",
    "InvalidSession",
    "Reconnect",
    "Resume",
    "ServerSession",
    "ServerState",
    "SessionStateError",
]
