"""The gateway session state machines, on their own and talking to each other in memory."""

from __future__ import annotations

from collections import deque
from typing import Any

import orjson
import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from nexus_protocol.gateway import CloseCode, Intents, Opcode
from nexus_protocol.session import (
    ClientSession,
    ClientState,
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
    ServerSession,
    ServerState,
    SessionStateError,
)

TOKEN = "secret-token-value"


def frame(op: int, d: object = None) -> bytes:
    return orjson.dumps({"op": op, "d": d})


def identify(**overrides: object) -> bytes:
    d: dict[str, object] = {
        "token": TOKEN,
        "intents": int(Intents.GUILDS | Intents.GUILD_MESSAGES),
        "properties": {"os": "linux", "browser": "nexus", "device": "nexus"},
    }
    d.update(overrides)
    return frame(Opcode.IDENTIFY, d)


def resume(session_id: str = "s1", seq: int = 1) -> bytes:
    return frame(Opcode.RESUME, {"token": TOKEN, "session_id": session_id, "seq": seq})


def server(**kwargs: Any) -> ServerSession:
    session = ServerSession(**kwargs)
    session.hello(0.0)
    return session


def established(session_id: str = "s1", **kwargs: Any) -> ServerSession:
    session = server(**kwargs)
    session.receive(identify(), 0.0)
    session.establish(session_id, b'{"session_id":"%b"}' % session_id.encode(), 0.0)
    return session


def expect_close(code: CloseCode, session: ServerSession, data: str | bytes) -> None:
    with pytest.raises(GatewayProtocolError) as info:
        session.receive(data, 1.0)
    assert info.value.close_code is code
    assert info.value.reason


# -- server: every error with its close code ----------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"not json",
        b'{"op": 1, "d": NaN}',
        b'{"op": 1, "d": Infinity}',
        b'{"op": 1, "d": -Infinity}',
        b'{"op": 1, "d": 1e999}',
        b'{"op": 1, "d": "\\ud800"}',  # lone surrogate escape
        '{"op": 1, "d": "\ud800"}',  # lone surrogate in a str frame
        b'{"op": 1, "d": "\xff"}',  # invalid UTF-8
        b'{"op": 1, "d": "\xed\xa0\x80"}',  # surrogate encoded as UTF-8
        b"[1, null]",
        b"1",
        b'"op"',
        b'{"d": null}',
        b'{"op": "1", "d": null}',
        b'{"op": true, "d": null}',
        b'{"op": 1.0, "d": null}',
        b'{"op": null}',
        b'{"op": 99999999999999999999999}',
    ],
)
def test_malformed_frames_are_decode_errors(data: str | bytes) -> None:
    expect_close(CloseCode.DECODE_ERROR, server(), data)


def test_absurd_nesting_is_a_decode_error() -> None:
    nested = b'{"op": 3, "d": ' + b"[" * 2000 + b"]" * 2000 + b"}"
    expect_close(CloseCode.DECODE_ERROR, established(max_frame_bytes=10_000), nested)


def test_frame_size_limit_counts_bytes_not_characters() -> None:
    session = server(max_frame_bytes=64)
    fits = '{"op":1,"d":null,"t":"' + "é" * 20 + '"}'  # 42 characters, 62 bytes
    assert isinstance(session.receive(fits, 1.0), Heartbeat)
    too_big = '{"op":1,"d":null,"t":"' + "é" * 22 + '"}'  # 44 characters, 66 bytes
    expect_close(CloseCode.DECODE_ERROR, session, too_big)
    expect_close(CloseCode.DECODE_ERROR, session, too_big.encode())


@pytest.mark.parametrize("op", [-1, 5, 12, 13, 99])
def test_unknown_opcodes(op: int) -> None:
    expect_close(CloseCode.UNKNOWN_OPCODE, server(), frame(op))
    expect_close(CloseCode.UNKNOWN_OPCODE, established(), frame(op))


@pytest.mark.parametrize(
    "op",
    [
        Opcode.DISPATCH,
        Opcode.RECONNECT,
        Opcode.INVALID_SESSION,
        Opcode.HELLO,
        Opcode.HEARTBEAT_ACK,
    ],
)
def test_server_only_opcodes_are_unknown_from_a_client(op: Opcode) -> None:
    expect_close(CloseCode.UNKNOWN_OPCODE, established(), frame(op, {}))


@pytest.mark.parametrize(
    "op", [Opcode.PRESENCE_UPDATE, Opcode.VOICE_STATE_UPDATE, Opcode.REQUEST_GUILD_MEMBERS]
)
def test_commands_before_identify_are_not_authenticated(op: Opcode) -> None:
    session = server()
    expect_close(CloseCode.NOT_AUTHENTICATED, session, frame(op, {}))
    session.receive(identify(), 1.0)  # pending, not yet accepted by the relay
    expect_close(CloseCode.NOT_AUTHENTICATED, session, frame(op, {}))


def test_commands_after_establishment_are_passed_through() -> None:
    session = established()
    event = session.receive(frame(Opcode.PRESENCE_UPDATE, {"status": "idle"}), 1.0)
    assert event == Command(Opcode.PRESENCE_UPDATE, {"status": "idle"})
    expect_close(CloseCode.DECODE_ERROR, session, frame(Opcode.VOICE_STATE_UPDATE, [1]))
    expect_close(CloseCode.DECODE_ERROR, session, frame(Opcode.REQUEST_GUILD_MEMBERS, None))


@pytest.mark.parametrize("data", [identify(), resume()])
def test_identify_or_resume_when_established_is_already_authenticated(data: bytes) -> None:
    expect_close(CloseCode.ALREADY_AUTHENTICATED, established(), data)


@pytest.mark.parametrize("second", [identify(), resume()])
def test_second_handshake_while_one_is_pending_is_already_authenticated(second: bytes) -> None:
    session = server()
    session.receive(resume(), 1.0)
    expect_close(CloseCode.ALREADY_AUTHENTICATED, session, second)


@pytest.mark.parametrize("intents", [None, "1", 1.0, True, -1, 1 << 17, (1 << 22) | 1, 2**63])
def test_bad_intents(intents: object) -> None:
    expect_close(CloseCode.INVALID_INTENTS, server(), identify(intents=intents))


def test_missing_intents() -> None:
    data = orjson.dumps({"op": 2, "d": {"token": TOKEN, "properties": {}}})
    expect_close(CloseCode.INVALID_INTENTS, server(), data)


@pytest.mark.parametrize(
    "data",
    [
        frame(Opcode.IDENTIFY, None),
        frame(Opcode.IDENTIFY, [TOKEN]),
        identify(token=None),
        identify(token=""),
        identify(token=12),
        identify(properties=["os"]),
        identify(properties={"os": 1}),
        identify(presence=["online"]),
        identify(compress="no"),
        frame(Opcode.RESUME, None),
        frame(Opcode.RESUME, {"session_id": "s1", "seq": 1}),
        frame(Opcode.RESUME, {"token": TOKEN, "session_id": 5, "seq": 1}),
        frame(Opcode.RESUME, {"token": TOKEN, "session_id": "s1", "seq": -1}),
        frame(Opcode.RESUME, {"token": TOKEN, "session_id": "s1", "seq": "1"}),
        frame(Opcode.RESUME, {"token": TOKEN, "session_id": "s1", "seq": True}),
        frame(Opcode.RESUME, {"token": TOKEN, "session_id": "s1"}),
        frame(Opcode.HEARTBEAT, "1"),
        frame(Opcode.HEARTBEAT, -1),
        frame(Opcode.HEARTBEAT, False),
        frame(Opcode.HEARTBEAT, {}),
    ],
)
def test_bad_payload_shapes_are_decode_errors(data: bytes) -> None:
    expect_close(CloseCode.DECODE_ERROR, server(), data)


def test_rate_limit_per_window() -> None:
    session = server(rate_limit_frames=3, rate_limit_window=60.0)
    for _ in range(3):
        session.receive(frame(Opcode.HEARTBEAT), 10.0)
    with pytest.raises(GatewayProtocolError) as info:
        session.receive(frame(Opcode.HEARTBEAT), 59.9)
    assert info.value.close_code is CloseCode.RATE_LIMITED


def test_rate_limit_window_starts_over() -> None:
    session = server(rate_limit_frames=3, rate_limit_window=60.0)
    for now in (1.0, 2.0, 3.0, 61.0, 62.0, 63.0):
        session.receive(frame(Opcode.HEARTBEAT), now)


def test_error_carries_code_and_reason() -> None:
    error = GatewayProtocolError(CloseCode.INVALID_SEQ, "seq from the future")
    assert error.close_code is CloseCode.INVALID_SEQ
    assert error.reason == "seq from the future"
    assert "4007" in str(error)


# -- server: accepted frames and built frames ---------------------------------------


def test_identify_is_parsed_into_a_frozen_event_that_hides_the_token() -> None:
    session = server()
    event = session.receive(identify(presence={"status": "dnd"}, compress=False), 1.0)
    assert isinstance(event, Identify)
    assert event.token == TOKEN
    assert event.intents == Intents.GUILDS | Intents.GUILD_MESSAGES
    assert isinstance(event.intents, Intents)
    assert event.properties["os"] == "linux"
    assert event.presence is not None and event.presence["status"] == "dnd"
    assert event.compress is False
    assert TOKEN not in repr(event)
    with pytest.raises(AttributeError):
        event.token = "other"  # type: ignore[misc]
    with pytest.raises(TypeError):
        event.properties["os"] = "other"  # type: ignore[index]


def test_identify_defaults() -> None:
    data = orjson.dumps({"op": 2, "d": {"token": TOKEN, "intents": 0}})
    event = server().receive(data, 1.0)
    assert event == Identify(TOKEN, Intents(0), {}, None, False)


def test_resume_and_heartbeat_events() -> None:
    session = server()
    assert session.receive(frame(Opcode.HEARTBEAT), 1.0) == Heartbeat(None)
    assert session.receive(frame(Opcode.HEARTBEAT, 7), 1.0) == Heartbeat(7)
    event = session.receive(resume("abc", 0), 1.0)
    assert event == Resume(TOKEN, "abc", 0)
    assert TOKEN not in repr(event)
    assert session.state is ServerState.AWAITING_IDENTIFY


def test_hello_and_control_frames() -> None:
    session = ServerSession(heartbeat_interval_ms=1234)
    assert orjson.loads(session.hello(0.0)) == {
        "op": 10,
        "d": {"heartbeat_interval": 1234},
        "s": None,
        "t": None,
    }
    assert orjson.loads(session.heartbeat_ack())["op"] == Opcode.HEARTBEAT_ACK
    assert orjson.loads(session.reconnect())["op"] == Opcode.RECONNECT
    assert orjson.loads(session.invalid_session(True))["d"] is True
    assert orjson.loads(session.invalid_session(False))["d"] is False


def test_establish_sends_ready_as_seq_1_and_buffers_it() -> None:
    session = server()
    session.receive(identify(), 1.0)
    ready = session.establish("s1", b'{"session_id":"s1","v":10}', 1.0)
    assert orjson.loads(ready) == {
        "op": 0,
        "s": 1,
        "t": "READY",
        "d": {"session_id": "s1", "v": 10},
    }
    assert session.state is ServerState.ESTABLISHED
    assert session.session_id == "s1"
    assert session.seq == 1
    assert session.frames_since(0) == [ready]


def test_dispatch_concatenates_the_encoded_data_and_counts() -> None:
    session = established()
    data = orjson.dumps({"content": 'quote " and \\ and \u2028 snowman \u2603'})
    first = session.dispatch("MESSAGE_CREATE", data)
    second = session.dispatch("TYPING_START", b"{}")
    assert data in first
    assert orjson.loads(first) == {
        "op": 0,
        "s": 2,
        "t": "MESSAGE_CREATE",
        "d": orjson.loads(data),
    }
    assert orjson.loads(second)["s"] == 3
    assert session.seq == 3
    assert session.frames_since(1) == [first, second]
    assert session.frames_since(3) == []
    assert session.frames_since(4) is None


@pytest.mark.parametrize("event", ["", "message_create", 'A","op":7,"x":"', "É", "A" * 65])
def test_dispatch_refuses_event_names_that_would_need_escaping(event: str) -> None:
    with pytest.raises(ValueError):
        established().dispatch(event, b"{}")


def test_heartbeat_deadline_follows_simulated_time() -> None:
    session = ServerSession(heartbeat_interval_ms=1000)  # deadline: 1.5 s + 5 s
    assert not session.heartbeat_expired(1e9)  # no HELLO yet, no deadline
    session.hello(100.0)
    assert not session.heartbeat_expired(106.5)
    assert session.heartbeat_expired(106.6)
    session.receive(frame(Opcode.HEARTBEAT), 106.0)  # heartbeats before identify count
    assert not session.heartbeat_expired(112.5)
    assert session.heartbeat_expired(112.6)
    session.detach()
    assert not session.heartbeat_expired(1e9)


# -- server: misuse by the caller ---------------------------------------------------


def test_caller_misuse_raises_session_state_error() -> None:
    fresh = ServerSession()
    with pytest.raises(SessionStateError):
        fresh.receive(frame(Opcode.HEARTBEAT), 0.0)  # before hello()
    fresh.hello(0.0)
    with pytest.raises(SessionStateError):
        fresh.hello(0.0)
    with pytest.raises(SessionStateError):
        fresh.establish("s1", b"{}", 0.0)  # no IDENTIFY received
    with pytest.raises(SessionStateError):
        fresh.dispatch("MESSAGE_CREATE", b"{}")
    fresh.receive(resume(), 0.0)
    with pytest.raises(SessionStateError):
        fresh.establish("s1", b"{}", 0.0)  # a RESUME is pending, not an IDENTIFY
    fresh.detach()
    assert fresh.state is ServerState.CLOSED
    for call in (
        lambda: fresh.receive(frame(Opcode.HEARTBEAT), 0.0),
        fresh.heartbeat_ack,
        fresh.reconnect,
        lambda: fresh.invalid_session(False),
        lambda: fresh.dispatch("MESSAGE_CREATE", b"{}"),
    ):
        with pytest.raises(SessionStateError):
            call()


def test_resume_onto_requires_a_detached_session_and_a_matching_resume() -> None:
    old = established("s1")
    fresh = server()
    fresh.receive(resume("s1", 1), 0.0)
    with pytest.raises(SessionStateError):
        old.resume_onto(fresh, 1, 0.0)  # old is still on its socket
    old.detach()
    with pytest.raises(SessionStateError):
        old.resume_onto(fresh, 0, 0.0)  # not the RESUME's seq
    with pytest.raises(SessionStateError):
        old.resume_onto(old, 1, 0.0)
    other = server()
    other.receive(resume("s2", 1), 0.0)
    with pytest.raises(SessionStateError):
        old.resume_onto(other, 1, 0.0)
    identified = server()
    identified.receive(identify(), 0.0)
    with pytest.raises(SessionStateError):
        old.resume_onto(identified, 1, 0.0)


def test_invalid_session_before_establishment_allows_identify_on_the_same_connection() -> None:
    session = server()
    session.receive(resume("gone", 3), 1.0)
    session.invalid_session(False)
    assert isinstance(session.receive(identify(), 2.0), Identify)
    session.establish("s9", b"{}", 2.0)
    assert session.state is ServerState.ESTABLISHED


def test_invalid_session_false_ends_an_established_session() -> None:
    session = established()
    session.dispatch("MESSAGE_CREATE", b"{}")
    session.invalid_session(False)
    assert session.state is ServerState.CLOSED
    assert not session.detached
    assert session.frames_since(0) is None
    with pytest.raises(SessionStateError):
        session.dispatch("MESSAGE_CREATE", b"{}")


def test_detached_session_keeps_buffering() -> None:
    session = established()
    session.detach()
    assert session.state is ServerState.CLOSED
    assert session.detached
    later = session.dispatch("MESSAGE_CREATE", b'{"n":1}')
    assert session.seq == 2
    assert session.frames_since(1) == [later]


# -- resume and eviction ------------------------------------------------------------


def test_resume_replays_exactly_the_missed_frames_then_resumed() -> None:
    old = established("s1", heartbeat_interval_ms=1000)
    sent = [old.dispatch("MESSAGE_CREATE", b'{"n":%d}' % n) for n in range(5)]  # seq 2..6
    old.detach()
    sent += [old.dispatch("MESSAGE_CREATE", b'{"n":%d}' % n) for n in range(5, 8)]  # 7..9

    fresh = ServerSession(heartbeat_interval_ms=2000)
    fresh.hello(50.0)
    event = fresh.receive(resume("s1", 4), 51.0)
    assert isinstance(event, Resume)
    replay = old.resume_onto(fresh, event.seq, 52.0)

    assert replay is not None
    assert replay[:-1] == sent[3:]  # seq 5..9, in order
    resumed = orjson.loads(replay[-1])
    assert resumed == {"op": 0, "s": 10, "t": "RESUMED", "d": {}}
    assert [orjson.loads(f)["s"] for f in replay] == [5, 6, 7, 8, 9, 10]
    assert old.state is ServerState.ESTABLISHED
    assert old.seq == 10
    assert fresh.state is ServerState.CLOSED
    assert not fresh.detached
    # The old session now serves the new socket, with the new connection's timing.
    assert isinstance(old.receive(frame(Opcode.HEARTBEAT, 10), 53.0), Heartbeat)
    assert not old.heartbeat_expired(53.0 + 3.0 + 5.0)
    assert old.heartbeat_expired(53.0 + 3.0 + 5.1)
    expect_close(CloseCode.ALREADY_AUTHENTICATED, old, resume("s1", 10))


def test_resume_from_the_latest_seq_sends_only_resumed() -> None:
    old = established("s1")
    old.detach()
    fresh = server()
    fresh.receive(resume("s1", 1), 0.0)
    replay = old.resume_onto(fresh, 1, 0.0)
    assert replay is not None
    assert [orjson.loads(f)["t"] for f in replay] == ["RESUMED"]


def test_resume_from_the_future_is_refused() -> None:
    old = established("s1")
    old.detach()
    fresh = server()
    fresh.receive(resume("s1", 5), 0.0)
    assert old.resume_onto(fresh, 5, 0.0) is None
    assert old.detached  # nothing changed
    assert fresh.state is ServerState.AWAITING_IDENTIFY


def test_eviction_by_count_makes_resume_impossible() -> None:
    old = established("s1", replay_limit=3)
    for n in range(4):  # seq 2..5; the buffer keeps 3..5
        old.dispatch("MESSAGE_CREATE", b'{"n":%d}' % n)
    assert old.frames_since(1) is None
    assert old.frames_since(2) is not None
    old.detach()

    fresh = server()
    fresh.receive(resume("s1", 1), 0.0)
    assert old.resume_onto(fresh, 1, 0.0) is None
    invalid = fresh.invalid_session(False)
    assert orjson.loads(invalid) == {"op": 9, "d": False, "s": None, "t": None}
    assert isinstance(fresh.receive(identify(), 0.0), Identify)


def test_eviction_by_bytes() -> None:
    old = established("s1", replay_bytes_limit=200)
    big = old.dispatch("MESSAGE_CREATE", orjson.dumps({"pad": "x" * 100}))
    assert old.frames_since(1) == [big]
    old.dispatch("MESSAGE_CREATE", orjson.dumps({"pad": "y" * 100}))
    assert old.frames_since(1) is None
    assert old.frames_since(2) is not None
    huge = old.dispatch("MESSAGE_CREATE", orjson.dumps({"pad": "z" * 300}))
    assert len(huge) > 200
    # A frame larger than the whole budget cannot be kept, so nothing before it helps.
    assert old.frames_since(3) is None
    assert old.frames_since(4) == []


# -- client -------------------------------------------------------------------------


def hello(interval: int = 41_250) -> bytes:
    return orjson.dumps({"op": 10, "d": {"heartbeat_interval": interval}, "s": None, "t": None})


def dispatch(event: str, seq: object, d: object) -> bytes:
    return orjson.dumps({"op": 0, "d": d, "s": seq, "t": event})


def ready(session_id: str = "s1", seq: int = 1) -> bytes:
    return dispatch("READY", seq, {"session_id": session_id, "resume_gateway_url": "wss://r"})


def state_of(client: ClientSession) -> ClientState:
    """``client.state``, read through a call so mypy does not keep an earlier narrowing."""
    return client.state


def identified_client() -> ClientSession:
    client = ClientSession(TOKEN, Intents.GUILDS)
    client.receive(hello())
    client.connect_frame()
    client.receive(ready())
    return client


def expect_client_error(code: CloseCode, client: ClientSession, data: str | bytes) -> None:
    with pytest.raises(GatewayProtocolError) as info:
        client.receive(data)
    assert info.value.close_code is code


def test_client_handshake_and_resume_info() -> None:
    client = ClientSession(TOKEN, Intents.GUILDS | Intents.MESSAGE_CONTENT)
    assert client.state is ClientState.AWAITING_HELLO
    assert client.heartbeat_interval is None
    assert client.receive(hello(1000)) == Hello(1000)
    assert client.heartbeat_interval == 1000
    sent = orjson.loads(client.connect_frame())
    assert sent["op"] == Opcode.IDENTIFY
    assert sent["d"]["token"] == TOKEN
    assert sent["d"]["intents"] == int(Intents.GUILDS | Intents.MESSAGE_CONTENT)
    assert set(sent["d"]["properties"]) == {"os", "browser", "device"}
    assert state_of(client) is ClientState.IDENTIFYING
    assert not client.can_resume
    event = client.receive(ready("abc"))
    assert isinstance(event, Dispatch) and event.event == "READY" and event.seq == 1
    assert state_of(client) is ClientState.ESTABLISHED
    assert client.session_id == "abc"
    assert client.resume_gateway_url == "wss://r"
    assert client.seq == 1
    assert client.can_resume
    assert TOKEN not in repr(client)


def test_client_resumes_after_connection_lost() -> None:
    client = identified_client()
    client.receive(dispatch("MESSAGE_CREATE", 2, {}))
    client.connection_lost()
    assert client.state is ClientState.AWAITING_HELLO
    assert client.heartbeat_interval is None
    client.receive(hello())
    sent = orjson.loads(client.connect_frame())
    assert sent == {"op": 6, "d": {"token": TOKEN, "session_id": "s1", "seq": 2}}
    assert state_of(client) is ClientState.RESUMING
    client.receive(dispatch("MESSAGE_CREATE", 3, {}))
    assert state_of(client) is ClientState.RESUMING
    client.receive(dispatch("RESUMED", 4, {}))
    assert state_of(client) is ClientState.ESTABLISHED
    assert client.seq == 4


def test_client_tracks_the_highest_seq_and_never_drops_a_dispatch() -> None:
    client = identified_client()
    assert client.receive(dispatch("MESSAGE_CREATE", 5, {"a": 1})) == Dispatch(
        "MESSAGE_CREATE", 5, {"a": 1}
    )
    repeated = client.receive(dispatch("MESSAGE_CREATE", 3, {"a": 2}))
    assert repeated == Dispatch("MESSAGE_CREATE", 3, {"a": 2})
    assert client.seq == 5


def test_client_heartbeats_and_detects_zombies() -> None:
    client = ClientSession(TOKEN, Intents.GUILDS)
    client.receive(hello())
    assert client.heartbeat_acked
    assert orjson.loads(client.heartbeat()) == {"op": 1, "d": None}
    assert not client.heartbeat_acked  # a second heartbeat due now: zombie
    assert client.receive(orjson.dumps({"op": 11})) == HeartbeatAck()
    assert client.heartbeat_acked
    client.connect_frame()
    client.receive(ready())
    assert orjson.loads(client.heartbeat()) == {"op": 1, "d": 1}
    assert client.receive(orjson.dumps({"op": 1, "d": None})) == Heartbeat(None)
    client.connection_lost()
    assert client.heartbeat_acked


def test_client_reconnect_and_invalid_session() -> None:
    client = identified_client()
    assert client.receive(orjson.dumps({"op": 7, "d": None})) == Reconnect()
    assert client.state is ClientState.CLOSED
    assert client.can_resume
    with pytest.raises(SessionStateError):
        client.receive(dispatch("MESSAGE_CREATE", 2, {}))
    with pytest.raises(SessionStateError):
        client.heartbeat()
    client.connection_lost()
    client.receive(hello())
    client.connect_frame()
    assert client.receive(orjson.dumps({"op": 9, "d": True})) == InvalidSession(True)
    assert client.can_resume
    assert state_of(client) is ClientState.AWAITING_HELLO
    assert orjson.loads(client.connect_frame())["op"] == Opcode.RESUME
    assert client.receive(orjson.dumps({"op": 9, "d": False})) == InvalidSession(False)
    assert not client.can_resume
    assert client.session_id is None and client.seq is None
    assert orjson.loads(client.connect_frame())["op"] == Opcode.IDENTIFY


@pytest.mark.parametrize(
    ("code", "allowed", "keeps_session"),
    [
        (1000, True, True),
        (1006, True, True),
        (CloseCode.UNKNOWN_ERROR, True, True),
        (CloseCode.RATE_LIMITED, True, True),
        (CloseCode.INVALID_SEQ, True, False),
        (CloseCode.SESSION_TIMED_OUT, True, False),
        (CloseCode.AUTHENTICATION_FAILED, False, False),
        (CloseCode.INVALID_SHARD, False, False),
        (CloseCode.SHARDING_REQUIRED, False, False),
        (CloseCode.INVALID_API_VERSION, False, False),
        (CloseCode.INVALID_INTENTS, False, False),
        (CloseCode.DISALLOWED_INTENTS, False, False),
    ],
)
def test_close_codes(code: int, allowed: bool, keeps_session: bool) -> None:
    assert ClientSession.close_code_allows_reconnect(code) is allowed
    client = identified_client()
    client.connection_lost(code)
    assert client.can_resume is keeps_session


def test_client_forget() -> None:
    client = identified_client()
    client.forget()
    assert client.session_id is None and client.seq is None and not client.can_resume


@pytest.mark.parametrize(
    "data",
    [
        b"{",
        b"[]",
        b'{"op": 10, "d": {"heartbeat_interval": NaN}}',
        b'{"op": 10, "d": {"heartbeat_interval": 0}}',
        b'{"op": 10, "d": {"heartbeat_interval": "1"}}',
        b'{"op": 10, "d": null}',
        b'{"op": "10"}',
        b'{"d": {}}',
    ],
)
def test_client_malformed_frames(data: bytes) -> None:
    expect_client_error(CloseCode.DECODE_ERROR, ClientSession(TOKEN, Intents(0)), data)


@pytest.mark.parametrize(
    "data",
    [
        dispatch("MESSAGE_CREATE", None, {}),
        dispatch("MESSAGE_CREATE", True, {}),
        orjson.dumps({"op": 0, "d": {}, "s": 2, "t": None}),
        dispatch("READY", 1, []),
        dispatch("READY", 1, {"resume_gateway_url": "wss://r"}),
        dispatch("READY", 1, {"session_id": "s", "resume_gateway_url": 5}),
        orjson.dumps({"op": 9, "d": None}),
        orjson.dumps({"op": 1, "d": "x"}),
        b'{"op": 0, "d": "\\udc00", "s": 1, "t": "READY"}',
    ],
)
def test_client_bad_payloads(data: bytes) -> None:
    client = ClientSession(TOKEN, Intents(0))
    client.receive(hello())
    client.connect_frame()
    expect_client_error(CloseCode.DECODE_ERROR, client, data)


@pytest.mark.parametrize("op", [2, 3, 4, 5, 6, 8, 12])
def test_client_unknown_opcodes(op: int) -> None:
    client = ClientSession(TOKEN, Intents(0))
    client.receive(hello())
    expect_client_error(CloseCode.UNKNOWN_OPCODE, client, frame(op, {}))


def test_client_out_of_order_frames() -> None:
    client = ClientSession(TOKEN, Intents(0))
    expect_client_error(CloseCode.UNKNOWN_ERROR, client, ready())  # before HELLO
    client.receive(hello())
    expect_client_error(CloseCode.UNKNOWN_ERROR, client, hello())
    expect_client_error(CloseCode.UNKNOWN_ERROR, client, ready())  # before IDENTIFY sent
    client.connect_frame()
    expect_client_error(CloseCode.UNKNOWN_ERROR, client, dispatch("RESUMED", 1, {}))
    expect_client_error(CloseCode.UNKNOWN_ERROR, client, dispatch("MESSAGE_CREATE", 1, {}))


def test_client_misuse() -> None:
    with pytest.raises(ValueError):
        ClientSession("", Intents(0))
    client = ClientSession(TOKEN, Intents(0))
    with pytest.raises(SessionStateError):
        client.connect_frame()  # before HELLO
    with pytest.raises(SessionStateError):
        client.heartbeat()
    client.receive(hello())
    client.connect_frame()
    with pytest.raises(SessionStateError):
        client.connect_frame()


# -- both ends in memory ------------------------------------------------------------


def test_client_and_server_talk_in_memory() -> None:
    client = ClientSession(TOKEN, Intents.GUILDS | Intents.GUILD_MESSAGES, {"os": "test"})
    conn = ServerSession(heartbeat_interval_ms=1000)

    assert client.receive(conn.hello(0.0)) == Hello(1000)
    event = conn.receive(client.connect_frame(), 0.1)
    assert isinstance(event, Identify)
    assert event.token == TOKEN and event.properties == {"os": "test"}
    assert event.intents == Intents.GUILDS | Intents.GUILD_MESSAGES
    ready_data = orjson.dumps({"session_id": "sess-1", "resume_gateway_url": "wss://relay"})
    client.receive(conn.establish("sess-1", ready_data, 0.2))
    assert client.state is ClientState.ESTABLISHED
    assert client.session_id == "sess-1"

    beat = conn.receive(client.heartbeat(), 1.0)
    assert beat == Heartbeat(1)
    client.receive(conn.heartbeat_ack())
    assert client.heartbeat_acked

    command = orjson.dumps({"op": 3, "d": {"status": "idle", "afk": False}})
    assert conn.receive(command, 1.1) == Command(
        Opcode.PRESENCE_UPDATE, {"status": "idle", "afk": False}
    )

    payload = orjson.dumps({"id": "1", "content": "hi"})
    event2 = client.receive(conn.dispatch("MESSAGE_CREATE", payload))
    assert event2 == Dispatch("MESSAGE_CREATE", 2, {"id": "1", "content": "hi"})

    # Drop the socket; two events buffer; the client resumes on a new socket.
    lost = conn.dispatch("MESSAGE_CREATE", b'{"n":1}')  # written but never read
    conn.detach()
    client.connection_lost()
    conn.dispatch("MESSAGE_CREATE", b'{"n":2}')
    sessions = {"sess-1": conn}

    fresh = ServerSession(heartbeat_interval_ms=1000)
    client.receive(fresh.hello(5.0))
    request = fresh.receive(client.connect_frame(), 5.1)
    assert request == Resume(TOKEN, "sess-1", 2)
    assert isinstance(request, Resume)
    replay = sessions[request.session_id].resume_onto(fresh, request.seq, 5.2)
    assert replay is not None and replay[0] == lost
    seen = [client.receive(f) for f in replay]
    assert [e.data for e in seen if isinstance(e, Dispatch)] == [{"n": 1}, {"n": 2}, {}]
    assert client.state is ClientState.ESTABLISHED
    assert client.seq == conn.seq == 5


# -- hypothesis: random dispatch / drop / resume / heartbeat -----------------------

HEARTBEAT_MS = 1000
DEADLINE = HEARTBEAT_MS * 1.5 / 1000 + 5.0


class GatewayMachine(RuleBasedStateMachine):
    """A relay and a client wired in memory. The relay side is written as a relay
    would be: a registry of sessions, one object serving the socket, a queue of
    frames written but not yet read by the client (lost when the socket drops)."""

    replay_limit = 5
    replay_bytes_limit = 1 << 30

    def __init__(self) -> None:
        super().__init__()
        self.now = 0.0
        self.client = ClientSession(TOKEN, Intents.GUILDS)
        self.registry: dict[str, ServerSession] = {}
        self.session: ServerSession | None = None  # the session the relay dispatches into
        self.conn: ServerSession | None = None  # the object serving the open socket
        self.wire: deque[bytes] = deque()  # server -> client, written, not yet read
        self.closing = False  # the server sent RECONNECT and closed; wire drains first
        self.last_beat = 0.0
        self.next_payload = 0
        self.session_counter = 0
        # Model of the current session: payload id per seq, the last seq, and the
        # (seq, size) of every frame that goes to the replay buffer (not RESUMED).
        self.payload_at: dict[int, int] = {}
        self.last_seq = 0
        self.replayable: list[tuple[int, int]] = []
        self.sent_in_session: list[int] = []
        self.received_in_session: list[int] = []
        self.received_all: list[int] = []
        self.invalidations = 0
        self.connect()

    # model helpers

    def new_session(self, ready_frame: bytes) -> None:
        self.payload_at = {}
        self.last_seq = 1
        self.replayable = [(1, len(ready_frame))]
        self.sent_in_session = []

    def evicted_through(self) -> int:
        """The newest seq the buffer must have evicted: the longest suffix of
        replayable frames within both limits is kept."""
        count = total = 0
        for seq, size in reversed(self.replayable):
            if count + 1 > self.replay_limit or total + size > self.replay_bytes_limit:
                return seq
            count, total = count + 1, total + size
        return 0

    def resume_possible(self, session_id: str, seq: int) -> bool:
        if self.session is None or self.session.session_id != session_id:
            return False
        return self.evicted_through() <= seq <= self.last_seq

    # the relay's connection handling

    def connect(self) -> None:
        fresh = ServerSession(
            heartbeat_interval_ms=HEARTBEAT_MS,
            replay_limit=self.replay_limit,
            replay_bytes_limit=self.replay_bytes_limit,
            rate_limit_frames=1_000_000,
        )
        assert self.client.receive(fresh.hello(self.now)) == Hello(HEARTBEAT_MS)
        self.last_beat = self.now
        could_resume = self.client.can_resume
        request = fresh.receive(self.client.connect_frame(), self.now)
        if isinstance(request, Resume):
            assert could_resume
            old = self.registry.get(request.session_id)
            expected = self.resume_possible(request.session_id, request.seq)
            replay = old.resume_onto(fresh, request.seq, self.now) if old else None
            assert (replay is not None) is expected
            if replay is not None:
                assert old is not None
                self.last_seq += 1  # RESUMED takes a number but is never replayed
                assert [orjson.loads(f)["s"] for f in replay[:-1]] == [
                    seq for seq, _ in self.replayable if seq > request.seq
                ]
                assert orjson.loads(replay[-1])["s"] == self.last_seq
                assert fresh.state is ServerState.CLOSED
                self.conn = old
                self.wire.extend(replay)
                return
            self.invalidations += 1
            assert self.client.receive(fresh.invalid_session(False)) == InvalidSession(False)
            assert not self.client.can_resume
            request = fresh.receive(self.client.connect_frame(), self.now)
        assert isinstance(request, Identify)
        if self.session is not None:
            self.registry.pop(self.session.session_id or "", None)
        self.session_counter += 1
        session_id = f"session-{self.session_counter}"
        ready_frame = fresh.establish(
            session_id, orjson.dumps({"session_id": session_id}), self.now
        )
        self.registry[session_id] = fresh
        self.session = self.conn = fresh
        self.new_session(ready_frame)
        self.wire.append(ready_frame)

    # rules

    @rule(pads=st.lists(st.integers(min_value=0, max_value=400), min_size=1, max_size=4))
    def dispatch(self, pads: list[int]) -> None:
        session = self.session
        if session is None:
            return  # the relay forgot the session; nobody to buffer for
        for pad in pads:
            payload = self.next_payload
            self.next_payload += 1
            data = orjson.dumps({"n": payload, "pad": "x" * pad})
            sent = session.dispatch("MESSAGE_CREATE", data)
            self.last_seq += 1
            self.replayable.append((self.last_seq, len(sent)))
            self.payload_at[session.seq] = payload
            self.sent_in_session.append(payload)
            if self.conn is session and session.state is ServerState.ESTABLISHED:
                self.wire.append(sent)

    @precondition(lambda self: bool(self.wire))
    @rule(count=st.integers(min_value=1, max_value=6))
    def deliver(self, count: int) -> None:
        for _ in range(min(count, len(self.wire))):
            self.deliver_one()

    def deliver_one(self) -> None:
        event = self.client.receive(self.wire.popleft())
        if isinstance(event, Dispatch):
            if event.event == "READY":
                assert event.seq == 1
                self.received_in_session = []
            elif event.event != "RESUMED":
                assert isinstance(event.data, dict)
                payload = event.data["n"]
                assert self.payload_at[event.seq] == payload
                if self.received_all:
                    assert payload > self.received_all[-1], "duplicate or out of order"
                self.received_all.append(payload)
                self.received_in_session.append(payload)
        elif isinstance(event, Reconnect):
            assert self.closing and not self.wire
            assert self.client.state is ClientState.CLOSED
        else:
            assert isinstance(event, HeartbeatAck)

    @precondition(lambda self: self.conn is not None or self.closing)
    @rule()
    def drop_connection(self) -> None:
        if self.conn is not None:
            self.conn.detach()
            self.conn = None
        self.wire.clear()
        self.closing = False
        self.client.connection_lost()

    @precondition(lambda self: self.conn is not None)
    @rule()
    def server_asks_to_reconnect(self) -> None:
        assert self.conn is not None
        self.wire.append(self.conn.reconnect())
        self.conn.detach()
        self.conn = None
        self.closing = True

    @precondition(lambda self: self.conn is None and not self.wire)
    @rule()
    def reconnect(self) -> None:
        if self.closing:
            self.closing = False
            self.client.connection_lost(1000)
        self.connect()

    @precondition(lambda self: self.conn is not None)
    @rule()
    def heartbeat(self) -> None:
        assert self.conn is not None
        beat = self.conn.receive(self.client.heartbeat(), self.now)
        assert beat == Heartbeat(self.client.seq)
        assert not self.client.heartbeat_acked
        self.last_beat = self.now
        self.wire.append(self.conn.heartbeat_ack())

    @rule(seconds=st.floats(min_value=0.0, max_value=4.0))
    def time_passes(self, seconds: float) -> None:
        self.now += seconds
        conn = self.conn
        if conn is None:
            return
        expired = conn.heartbeat_expired(self.now)
        assert expired is (self.now - self.last_beat > DEADLINE)
        if expired:  # the relay closes with 4009 and forgets the session
            conn.detach()
            self.conn = None
            if self.session is not None:
                self.registry.pop(self.session.session_id or "", None)
            self.session = None
            self.wire.clear()
            self.client.connection_lost(CloseCode.SESSION_TIMED_OUT)
            assert not self.client.can_resume

    # invariants

    @invariant()
    def client_saw_every_dispatch_once_in_order_when_idle(self) -> None:
        if self.conn is None or self.wire:
            return
        assert self.client.state is ClientState.ESTABLISHED
        assert self.session is self.conn
        assert self.received_in_session == self.sent_in_session
        assert self.client.seq == self.conn.seq == self.last_seq

    @invariant()
    def replay_buffer_matches_the_model(self) -> None:
        if self.session is None:
            return
        assert self.session.seq == self.last_seq
        evicted = self.evicted_through()
        kept = self.session.frames_since(evicted)
        assert kept is not None
        assert [orjson.loads(f)["s"] for f in kept] == [
            seq for seq, _ in self.replayable if seq > evicted
        ]
        if evicted > 0:
            assert self.session.frames_since(evicted - 1) is None


class ByteLimitedGatewayMachine(GatewayMachine):
    replay_limit = 1_000
    replay_bytes_limit = 600  # some dispatches alone are larger than the budget


TestGatewayCountLimit = GatewayMachine.TestCase
TestGatewayCountLimit.settings = settings(max_examples=150, stateful_step_count=60, deadline=None)
TestGatewayByteLimit = ByteLimitedGatewayMachine.TestCase
TestGatewayByteLimit.settings = settings(max_examples=150, stateful_step_count=60, deadline=None)
