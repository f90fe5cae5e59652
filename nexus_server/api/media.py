"""Images at Discord's CDN paths, on the relay itself (outside ``/api/v10``):
``/avatars/{user_id}/{hash}.png``, ``/banners/{user_or_guild_id}/{hash}.png`` and
``/icons/{guild_id}/{hash}.png``; ``.webp`` and ``.jpg`` work too, and ``?size=``
(a power of two, 16 to 4096) bounds the longest side.

They need a token like the rest of the API: a privacy-first relay shows its members'
faces to its members, not to whoever finds a link. The URL of an image never changes
meaning (a new upload gets a new hash), so answers may be kept for a year; ``private``
keeps shared proxies from handing an image to someone who sent no token.
"""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from nexus_protocol.errors import ErrorCode

from ..errors import InvalidForm, NotFound
from ..services.media import EXTENSIONS, IMAGE_SIZES, image_etag
from .deps import Caller, RelayDep, snowflake_param
from .strict import StrictRoute

router = APIRouter(route_class=StrictRoute, tags=["images"])

CACHE_CONTROL = "private, max-age=31536000, immutable"
_FILE_NAME = re.compile(r"([0-9a-f]{32})\.([a-z]{3,4})")

SizeQuery = Annotated[
    int | None,
    Query(description="Longest side at most this many pixels: a power of two, 16 to 4096."),
]


async def _serve(
    collection: str,
    owner_id: int,
    file_name: str,
    size: int | None,
    request: Request,
    relay: RelayDep,
) -> Response:
    if size is not None and size not in IMAGE_SIZES:
        raise InvalidForm.field(
            "size", "IMAGE_SIZE_INVALID", "Size must be a power of two from 16 to 4096"
        )
    named = _FILE_NAME.fullmatch(file_name)
    output = EXTENSIONS.get(named.group(2)) if named else None
    if named is None or output is None:
        raise NotFound(ErrorCode.GENERAL, "404: Not Found")
    record = await relay.media.find(collection, owner_id, named.group(1))
    etag = image_etag(record.hash, size, output)
    headers = {"ETag": etag, "Cache-Control": CACHE_CONTROL}
    if _matches(request.headers.get("if-none-match", ""), etag):
        return Response(status_code=304, headers=headers)
    served = await relay.media.render(record, size, output)
    return Response(served.data, media_type=served.content_type, headers=headers)


def _matches(if_none_match: str, etag: str) -> bool:
    # If-None-Match compares weakly (RFC 9110 13.1.2): a W/ prefix does not matter.
    tags = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
    return "*" in tags or etag in tags


@router.get("/avatars/{user_id}/{file_name}", response_class=Response)
async def avatar(
    user_id: str,
    file_name: str,
    request: Request,
    _caller: Caller,
    relay: RelayDep,
    size: SizeQuery = None,
) -> Response:
    """A user's avatar."""
    owner_id = snowflake_param(user_id, "user_id")
    return await _serve("avatars", owner_id, file_name, size, request, relay)


@router.get("/banners/{owner_id}/{file_name}", response_class=Response)
async def banner(
    owner_id: str,
    file_name: str,
    request: Request,
    _caller: Caller,
    relay: RelayDep,
    size: SizeQuery = None,
) -> Response:
    """A user's profile banner or a community's banner."""
    return await _serve(
        "banners", snowflake_param(owner_id, "owner_id"), file_name, size, request, relay
    )


@router.get("/icons/{guild_id}/{file_name}", response_class=Response)
async def icon(
    guild_id: str,
    file_name: str,
    request: Request,
    _caller: Caller,
    relay: RelayDep,
    size: SizeQuery = None,
) -> Response:
    """A community's icon."""
    owner_id = snowflake_param(guild_id, "guild_id")
    return await _serve("icons", owner_id, file_name, size, request, relay)
