"""Files on messages, at ``/attachments/{channel_id}/{attachment_id}/{filename}`` on the
relay itself (Discord's CDN path), for whoever may read the channel's history.

Answers are built so that a file can never act as a page of the relay: images (whose
type the relay sniffed and re-encoded) show inline under their real type, everything
else is ``application/octet-stream`` and a download, and ``nosniff`` keeps browsers
from guessing otherwise. The bytes behind a URL never change, so the SHA-256 of the
stored file is a strong ETag and answers may be kept for a year, privately.
"""

from __future__ import annotations

from urllib.parse import quote

from fastapi import APIRouter, Request, Response

from ..errors import InvalidForm
from ..services.attachments import PREVIEW_SIZES
from .deps import Caller, RelayDep, snowflake_param
from .media import CACHE_CONTROL, SizeQuery, _matches
from .strict import StrictRoute

router = APIRouter(route_class=StrictRoute, tags=["attachments"])


@router.get("/attachments/{channel_id}/{attachment_id}/{filename}", response_class=Response)
async def attachment(
    channel_id: str,
    attachment_id: str,
    filename: str,
    request: Request,
    caller: Caller,
    relay: RelayDep,
    size: SizeQuery = None,
) -> Response:
    """A file attached to a message; for an image, ``size`` asks for a still preview
    (PNG or WebP) whose longest side is at most that many pixels."""
    if size is not None and size not in PREVIEW_SIZES:
        raise InvalidForm.field(
            "size", "IMAGE_SIZE_INVALID", "Size must be a power of two from 16 to 4096"
        )
    record = await relay.attachments.check_attachment(
        caller,
        snowflake_param(channel_id, "channel_id"),
        snowflake_param(attachment_id, "attachment_id"),
        filename,
    )
    preview = size if record.is_image else None
    etag = f'"{record.sha256}-{preview or 0}"'
    disposition = "inline" if record.is_image else "attachment"
    headers = {
        "ETag": etag,
        "Cache-Control": CACHE_CONTROL,
        "X-Content-Type-Options": "nosniff",
        # RFC 6266: an ASCII fallback for old clients, the real name in filename*.
        "Content-Disposition": (
            f'{disposition}; filename="{_ascii_fallback(record.filename)}";'
            f" filename*=UTF-8''{quote(record.filename, safe='')}"
        ),
    }
    if _matches(request.headers.get("if-none-match", ""), etag):
        return Response(status_code=304, headers=headers)
    served = await relay.attachments.serve(record, preview)
    return Response(served.data, media_type=served.content_type, headers=headers)


def _ascii_fallback(filename: str) -> str:
    return "".join(
        c if c.isascii() and c.isprintable() and c not in '"\\' else "_" for c in filename
    )
