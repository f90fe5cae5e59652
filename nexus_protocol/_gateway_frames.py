"""What both ends of the gateway share: the events the session machines emit, their
errors, and the helpers that read a frame. See ``nexus_protocol.session``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TypeGuard

import orjson

from nexus_protocol.gateway import CloseCode, Intents, Opcode


class GatewayProtocolError(Exception):
    """The peer broke the gateway protocol; close the socket with ``close_code``."""

    def __init__(self, close_code: CloseCode, reason: str) -> None:
        super().__init__(f"{close_code.value} {close_code.name}: {reason}")
        self.close_code = close_code
        self.reason = reason


class SessionStateError(RuntimeError):
    """The caller asked for something the session's current state does not allow."""


# -- events -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Hello:
    heartbeat_interval: int  # milliseconds


@dataclass(frozen=True, slots=True)
class Identify:
    token: str = field(repr=False)
    intents: Intents
    properties: Mapping[str, str]
    presence: Mapping[str, object] | None
    compress: bool


@dataclass(frozen=True, slots=True)
class Resume:
    token: str = field(repr=False)
    session_id: str
    seq: int


@dataclass(frozen=True, slots=True)
class Heartbeat:
    seq: int | None


@dataclass(frozen=True, slots=True)
class HeartbeatAck:
    pass


@dataclass(frozen=True, slots=True)
class Dispatch:
    event: str
    seq: int
    data: object


@dataclass(frozen=True, slots=True)
class Reconnect:
    pass


@dataclass(frozen=True, slots=True)
class InvalidSession:
    resumable: bool


@dataclass(frozen=True, slots=True)
class Command:
    """PRESENCE_UPDATE, VOICE_STATE_UPDATE or REQUEST_GUILD_MEMBERS; ``data`` is the
    decoded ``d`` object, for the relay to validate."""

    op: Opcode
    data: object


def _is_int(value: object) -> TypeGuard[int]:
    # JSON true/false decode to bool, a subclass of int that must not pass as one.
    return type(value) is int


def _decode_error(reason: str) -> GatewayProtocolError:
    return GatewayProtocolError(CloseCode.DECODE_ERROR, reason)


def _load_object(frame: str | bytes) -> dict[str, object]:
    """Parse one frame. orjson refuses NaN, Infinity, invalid UTF-8, lone surrogates
    and nesting deeper than 1024, so all of those become DECODE_ERROR here."""
    try:
        payload: object = orjson.loads(frame)
    except orjson.JSONDecodeError as exc:
        raise _decode_error(f"frame is not valid JSON: {exc}") from exc
    if not isinstance(payload, dict):
        raise _decode_error("frame is not a JSON object")
    return payload


def _opcode(payload: Mapping[str, object], allowed: frozenset[Opcode]) -> Opcode:
    raw = payload.get("op")
    if not _is_int(raw):
        raise _decode_error("op is missing or not an integer")
    try:
        op = Opcode(raw)
    except ValueError:
        raise GatewayProtocolError(CloseCode.UNKNOWN_OPCODE, f"unknown opcode {raw}") from None
    if op not in allowed:
        raise GatewayProtocolError(CloseCode.UNKNOWN_OPCODE, f"opcode {op.name} not allowed")
    return op


def _object_field(payload: Mapping[str, object], name: str) -> dict[str, object]:
    value = payload.get(name)
    if not isinstance(value, dict):
        raise _decode_error(f"{name} must be an object")
    return value


def _str_field(data: Mapping[str, object], name: str) -> str:
    value = data.get(name)
    if not isinstance(value, str) or not value:
        raise _decode_error(f"d.{name} must be a non-empty string")
    return value


def _seq_field(data: Mapping[str, object], name: str) -> int:
    value = data.get(name)
    if not _is_int(value) or value < 0:
        raise _decode_error(f"{name} must be a non-negative integer")
    return value
