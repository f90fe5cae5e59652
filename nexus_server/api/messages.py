"""Channels and their messages: /channels/*."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from pydantic.json_schema import models_json_schema
from python_multipart.multipart import parse_options_header
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException
from starlette.types import Message, Receive

from nexus_protocol.errors import ErrorCode
from nexus_protocol.permissions import Permissions
from nexus_protocol.requests import CreateMessageBody

from ..errors import BadRequest, InvalidForm, NotFound
from ..relay import Relay
from ..services.accounts import Principal
from ..services.attachments import MAX_FILES, Upload
from .deps import Caller, RelayDep, snowflake_param
from .strict import BodyError, StrictRoute, parse_json

_FILE_FIELD = re.compile(r"files\[(\d{1,2})\]")
# Generous: a form part carries its name, a file name and a type.
_FORM_FIELDS = 2 * MAX_FILES + 4

CREATE_MESSAGE_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/CreateMessageBody"}},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "payload_json": {
                            "type": "string",
                            "description": "The JSON body, optionally with ``attachments``:"
                            " [{id, filename, description}], id being N of files[N].",
                        },
                        **{
                            f"files[{n}]": {"type": "string", "format": "binary"}
                            for n in range(MAX_FILES)
                        },
                    },
                }
            },
        },
    }
}

router = APIRouter(route_class=StrictRoute, tags=["messages"])


@router.get("/channels/{channel_id}")
async def get_channel(channel_id: str, caller: Caller, relay: RelayDep) -> dict[str, Any]:
    cid = snowflake_param(channel_id, "channel_id")
    try:
        return await relay.channels.get_channel(caller, cid)
    except NotFound:
        if await relay.dms.recipients(cid) is None:
            raise
        return await relay.dms.get_dm(caller, cid)


@router.get("/channels/{channel_id}/messages")
async def list_messages(
    channel_id: str,
    caller: Caller,
    relay: RelayDep,
    before: str | None = None,
    after: str | None = None,
    around: str | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    device_id: str | None = None,
) -> list[dict[str, Any]]:
    """History, newest first; page with ``before``/``after``/``around`` (one at a time).
    In a DM (Nexus): ``device_id`` is required and each message carries the envelope
    addressed to that device of the caller."""
    if sum(x is not None for x in (before, after, around)) > 1:
        raise InvalidForm.field("around", "ONE_OF", "Use only one of before, after and around")
    if device_id is not None:
        if around is not None:
            raise InvalidForm.field("around", "DM_UNSUPPORTED", "Use before or after in a DM")
        return await relay.dms.list_messages(
            caller,
            snowflake_param(channel_id, "channel_id"),
            device_id=device_id,
            before=snowflake_param(before, "before") if before is not None else None,
            after=snowflake_param(after, "after") if after is not None else None,
            limit=limit,
        )
    cid = snowflake_param(channel_id, "channel_id")
    try:
        return await relay.messages.list_messages(
            caller,
            cid,
            before=snowflake_param(before, "before") if before is not None else None,
            after=snowflake_param(after, "after") if after is not None else None,
            around=snowflake_param(around, "around") if around is not None else None,
            limit=limit,
        )
    except NotFound:
        if await relay.dms.recipients(cid) is None:
            raise
        raise InvalidForm.field("device_id", "BASE_TYPE_REQUIRED", "Required in a DM") from None


@router.get("/channels/{channel_id}/messages/{message_id}")
async def get_message(
    channel_id: str, message_id: str, caller: Caller, relay: RelayDep
) -> dict[str, Any]:
    return await relay.messages.get_message(
        caller, snowflake_param(channel_id, "channel_id"), snowflake_param(message_id, "message_id")
    )


@router.post("/channels/{channel_id}/messages", openapi_extra=CREATE_MESSAGE_BODY)
async def create_message(
    channel_id: str, request: Request, caller: Caller, relay: RelayDep, response: Response
) -> dict[str, Any]:
    """Send a message. A retry with the same ``nonce`` returns the first message instead
    of sending twice. With files: ``multipart/form-data`` as Discord takes it, the body
    in ``payload_json`` and the files in ``files[0]`` … ``files[9]`` (Attach Files
    needed; the text may then be empty). In a DM (Nexus): ``envelopes`` (one ciphertext
    per device of each recipient and of the sender's other devices) and no ``content``.
    In a group DM or an encrypted channel (Nexus): ``megolm`` (one ciphertext for all)
    and, when a session key is being shared, ``envelopes``."""
    cid = snowflake_param(channel_id, "channel_id")
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        payload = await request.json() if await request.body() else None
        return await _send(caller, cid, relay, _create_body(payload, with_files=False), [])
    await _check_may_send(caller, cid, relay)
    async with _read_form(request, relay) as (payload, uploads):
        if not isinstance(payload, dict):
            raise InvalidForm.field("payload_json", "DICT_TYPE", "Must be a JSON object")
        return await _send(
            caller, cid, relay, _create_body(payload, with_files=bool(uploads)), uploads
        )


async def _check_may_send(caller: Principal, channel_id: int, relay: Relay) -> None:
    """Before a form's files are read: someone who may not post there is refused at
    once, not after the relay has taken in up to 250 MiB from them."""
    try:
        await relay.channels.check_channel(
            caller, channel_id, Permissions.VIEW_CHANNEL | Permissions.SEND_MESSAGES
        )
    except NotFound:
        if await relay.dms.recipients(channel_id) is None:
            raise
        # A DM: its own checks follow, and files are refused there.


async def _send(
    caller: Principal, cid: int, relay: Relay, body: CreateMessageBody, uploads: list[Upload]
) -> dict[str, Any]:
    if uploads and (body.megolm is not None or body.envelopes is not None):
        raise InvalidForm.field(
            "files", "E2EE_UNSUPPORTED", "Files cannot be sent in an encrypted channel yet"
        )
    if body.megolm is not None:
        return await relay.groups.do_send(caller, cid, body)
    if body.envelopes is not None:
        return await relay.dms.do_send(caller, cid, body)
    try:
        message, _created = await relay.messages.do_send_message(caller, cid, body, uploads)
    except NotFound:
        if await relay.dms.recipients(cid) is None:
            raise
        if uploads:
            raise InvalidForm.field(
                "files", "E2EE_UNSUPPORTED", "Files cannot be sent in a DM yet"
            ) from None
        return await relay.dms.do_send(caller, cid, body)
    return message


def request_body_schemas() -> dict[str, Any]:
    """Component schemas for the models this router parses by hand (its endpoint takes
    JSON or a form, so FastAPI does not see the model to list it)."""
    _, definitions = models_json_schema(
        [(CreateMessageBody, "validation")], ref_template="#/components/schemas/{model}"
    )
    schemas: dict[str, Any] = definitions.get("$defs", {})
    return schemas


def _create_body(payload: Any, *, with_files: bool) -> CreateMessageBody:
    if not isinstance(payload, dict):
        raise InvalidForm.field("_body", "DICT_TYPE", "The body must be a JSON object")
    # File metadata is read with the files; the message model knows nothing of it.
    payload = {key: value for key, value in payload.items() if key != "attachments"}
    if with_files and payload.get("content", "") is None:
        del payload["content"]  # discord.py sends null beside files when there is no text
    try:
        return CreateMessageBody.model_validate(payload)
    except ValidationError as exc:
        raise RequestValidationError(exc.errors()) from None


@asynccontextmanager
async def _read_form(request: Request, relay: Relay) -> AsyncIterator[tuple[Any, list[Upload]]]:
    """``payload_json`` and the ``files[N]`` parts, with each file's metadata from
    ``payload_json.attachments`` (matched by ``id`` = N). The files' bytes count against
    the relay's upload memory until the block ends (the message is stored)."""
    try:
        receive = _until_closing_boundary(request, relay.settings.upload_stall_seconds)
        form = await Request(request.scope, receive).form(
            max_files=MAX_FILES + 1, max_fields=_FORM_FIELDS
        )
    except HTTPException as exc:
        if "files" in str(exc.detail).lower():
            raise InvalidForm.field(
                "files", "BASE_TYPE_MAX_LENGTH", f"Too many files (at most {MAX_FILES})"
            ) from None
        raise BadRequest(ErrorCode.GENERAL, f"Malformed form body: {exc.detail}") from None
    try:
        payload: Any = {}
        raw_payload = form.get("payload_json")
        if isinstance(raw_payload, UploadFile):
            if (raw_payload.size or 0) > relay.settings.max_body_bytes:
                raise InvalidForm.field(
                    "payload_json", "BASE_TYPE_MAX_LENGTH", "payload_json is too large"
                )
            raw_payload = (await raw_payload.read()).decode("utf-8", errors="strict")
        if raw_payload is not None:
            try:
                payload = parse_json(raw_payload.encode())
            except (BodyError, UnicodeError):
                raise InvalidForm.field(
                    "payload_json", "JSON_INVALID", "payload_json is not valid JSON"
                ) from None
        parts: dict[int, UploadFile] = {}
        for name, value in form.multi_items():
            if name == "payload_json":
                continue
            named = _FILE_FIELD.fullmatch(name)
            if named is not None and not isinstance(value, UploadFile):
                raise InvalidForm.field(name, "BASE_TYPE_REQUIRED", "A file part needs a filename")
            if named is None or not isinstance(value, UploadFile):
                raise InvalidForm.field(
                    name[:40] or "files", "UNKNOWN_FIELD", "Expected files[0] to files[9]"
                )
            index = int(named.group(1))
            if index >= MAX_FILES or index in parts:
                raise InvalidForm.field(
                    "files", "BASE_TYPE_MAX_LENGTH", f"Too many files (at most {MAX_FILES})"
                )
            parts[index] = value
        metadata = _attachment_metadata(payload)
        in_memory = sum(part.size or 0 for part in parts.values())
        async with relay.attachments.upload_memory.hold(in_memory):
            uploads: list[Upload] = []
            for index, part in sorted(parts.items()):
                known = metadata.get(index, {})
                filename = known.get("filename") or part.filename or ""
                description = known.get("description")
                uploads.append(Upload(index, str(filename), await part.read(), description))
            yield payload, uploads
    finally:
        await form.close()


def _until_closing_boundary(request: Request, stall_seconds: float) -> Receive:
    """The request's body, refused if it ends before the form's closing boundary or
    stops arriving for ``stall_seconds``.

    The form parser drops a part that is still open when the body ends (a cut-off
    upload, a client that miscounted), so the message would go out without that file;
    raising here, inside the parse, also makes the parser close the part's spool file."""
    receive = request.receive
    _, options = parse_options_header(request.headers.get("content-type", ""))
    boundary = options.get(b"boundary")
    if not boundary:
        return receive  # the parser refuses a form without a boundary itself
    closing = b"--" + boundary + b"--"
    # A CRLF before the first delimiter is optional: a form with no parts starts with it.
    tail = b"\r\n"
    seen = False

    async def receive_checked() -> Message:
        nonlocal tail, seen
        try:
            message = await asyncio.wait_for(receive(), stall_seconds)
        except TimeoutError:
            raise MultiPartException(
                f"The upload stalled (nothing arrived for {stall_seconds:g} s)"
            ) from None
        if message["type"] != "http.request":
            return message
        if not seen:
            window = tail + message.get("body", b"")
            seen = closing in window
            tail = window[-(len(closing) - 1) :]
        if not message.get("more_body", False) and not seen:
            raise MultiPartException("The form ends before its closing boundary")
        return message

    return receive_checked


def _attachment_metadata(payload: Any) -> dict[int, dict[str, Any]]:
    if not isinstance(payload, dict) or payload.get("attachments") is None:
        return {}
    listed = payload["attachments"]
    if not isinstance(listed, list):
        raise InvalidForm.field("attachments", "LIST_TYPE", "Must be a list")
    found: dict[int, dict[str, Any]] = {}
    for position, item in enumerate(listed[:MAX_FILES]):
        if not isinstance(item, dict):
            raise InvalidForm.field(("attachments", position), "DICT_TYPE", "Must be an object")
        try:
            index = int(item.get("id", position))
        except (TypeError, ValueError):
            raise InvalidForm.field(
                ("attachments", position, "id"), "NUMBER_TYPE_COERCE", "Must be a number"
            ) from None
        for key in ("filename", "description"):
            if item.get(key) is not None and not isinstance(item[key], str):
                raise InvalidForm.field(
                    ("attachments", position, key), "STRING_TYPE_CONVERT", "Must be a string"
                )
        found[index] = item
    return found
