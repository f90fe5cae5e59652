"""The control channel between the relay's ``VoiceSupervisor`` and an SFU worker.

Newline-delimited JSON over the worker's stdin (commands) and stdout (replies, events);
the worker logs to stderr only, so stdout carries nothing else.

* command: ``{"id": 7, "op": "join", "room": "…", "user_id": 42, "sdp": "…",
  "ice_servers": [{"urls": "stun:…"}]}`` — ops: join, leave, set_muted, set_deaf,
  stats, shutdown.
* reply: ``{"id": 7, "ok": true, "result": {…}}`` or ``{"id": 7, "ok": false,
  "error": "what is wrong"}``; every command gets exactly one.
* event (no id): ``{"event": "gone", "room": "…", "user_id": 42, "reason": "timeout"}``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

UserId = Annotated[int, Field(ge=0, lt=1 << 64)]


class _Command(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: int


class IceServerConfig(BaseModel):
    """One entry of RTCConfiguration.iceServers, as a browser would take it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    urls: str | list[str]
    username: str | None = None
    credential: str | None = None


class JoinCommand(_Command):
    op: Literal["join"]
    room: str
    user_id: UserId
    sdp: str
    ice_servers: list[IceServerConfig] | None = None


class LeaveCommand(_Command):
    op: Literal["leave"]
    room: str
    user_id: UserId


class SetMutedCommand(_Command):
    op: Literal["set_muted"]
    room: str
    user_id: UserId
    muted: bool


class SetDeafCommand(_Command):
    op: Literal["set_deaf"]
    room: str
    user_id: UserId
    deaf: bool


class StatsCommand(_Command):
    op: Literal["stats"]


class ShutdownCommand(_Command):
    op: Literal["shutdown"]


Command = Annotated[
    JoinCommand | LeaveCommand | SetMutedCommand | SetDeafCommand | StatsCommand | ShutdownCommand,
    Field(discriminator="op"),
]
COMMANDS: TypeAdapter[Command] = TypeAdapter(Command)


def encode_line(message: dict[str, Any]) -> bytes:
    return orjson.dumps(message) + b"\n"


def ok_reply(command_id: int, result: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"id": command_id, "ok": True, "result": result or {}}


def error_reply(command_id: int, error: str) -> dict[str, Any]:
    return {"id": command_id, "ok": False, "error": error}


def gone_event(room: str, user_id: int, reason: str) -> dict[str, Any]:
    return {"event": "gone", "room": room, "user_id": user_id, "reason": reason}
