"""Avatars, banners and community icons: uploads checked and processed, stored in the
same transaction as the profile or guild that names them, and served resized.

An image's hash is 128 random bits chosen at upload, not derived from the bytes, so
nobody can confirm that a user's avatar is a picture they already hold; since the
bytes behind a hash never change, the hash is also a strong ETag.

Decoding and encoding run in worker threads (``asyncio.to_thread``), at most
``MAX_CONCURRENT_IMAGE_WORK`` at a time, so the event loop keeps serving chat while
an upload is processed and a burst of uploads cannot take every core.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import re
import secrets
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

from sqlalchemy.ext.asyncio import AsyncConnection

from nexus_protocol.errors import ErrorCode
from nexus_protocol.requests import IMAGE_CONTENT_TYPES

from ..errors import InvalidForm, NotFound
from ..settings import Settings
from ..store import media as media_store
from ..store.records import MediaRecord
from .context import Context
from .images import (
    AVATAR_SHAPE,
    BANNER_SHAPE,
    CONTENT_TYPES,
    ImageRejected,
    OutputFormat,
    ProcessedImage,
    Shape,
    invalid_image,
    process_upload,
    render,
)

MediaKind = Literal["avatar", "banner", "icon", "guild_banner"]
# The first path segment of an image's URL, and the kinds each one serves (Discord's CDN
# keeps user and guild banners under one path; snowflakes never collide).
COLLECTIONS: Final[dict[str, frozenset[str]]] = {
    "avatars": frozenset({"avatar"}),
    "banners": frozenset({"banner", "guild_banner"}),
    "icons": frozenset({"icon"}),
}
SHAPES: Final[dict[str, Shape]] = {
    "avatar": AVATAR_SHAPE,
    "icon": AVATAR_SHAPE,
    "banner": BANNER_SHAPE,
    "guild_banner": BANNER_SHAPE,
}
IMAGE_SIZES: Final = frozenset(2**n for n in range(4, 13))  # 16 … 4096, as Discord's CDN
EXTENSIONS: Final[dict[str, OutputFormat]] = {
    "png": "png",
    "webp": "webp",
    "jpg": "jpeg",
    "jpeg": "jpeg",
}
MAX_CONCURRENT_IMAGE_WORK: Final = 2
# What a data URI may declare ("image/jpg" is a common misspelling of JPEG). The decoders
# tried are PNG, JPEG, GIF and WebP whatever it declares.
ACCEPTED_DATA_URI_TYPES: Final = frozenset((*IMAGE_CONTENT_TYPES, "image/jpg"))

_HASH = re.compile(r"[0-9a-f]{32}")
_DATA_URI = re.compile(r"data:([A-Za-z0-9.+/-]{1,64});base64,", re.ASCII)


@dataclass(frozen=True, slots=True)
class ImageChange:
    """One image field of a request, checked: a new image, a removal (``image`` None),
    or the slot's current hash sent back unchanged (``echoed``)."""

    field: str
    kind: MediaKind
    image: ProcessedImage | None
    echoed: str | None = None


@dataclass(frozen=True, slots=True)
class ServedImage:
    data: bytes
    content_type: str


def image_etag(image_hash: str, size: int | None, output: OutputFormat) -> str:
    return f'"{image_hash}-{size or 0}-{output}"'


class MediaService:
    def __init__(self, ctx: Context, settings: Settings) -> None:
        self._ctx = ctx
        self._max_bytes = settings.max_image_bytes
        self._max_pixels = settings.max_image_pixels
        self._work = asyncio.Semaphore(MAX_CONCURRENT_IMAGE_WORK)
        self._rendered: OrderedDict[tuple[str, int | None, OutputFormat], bytes] = OrderedDict()
        self._rendered_bytes = 0
        self._cache_limit = settings.image_cache_bytes

    # Uploads --------------------------------------------------------------------------------

    async def check_image_fields(
        self, changes: Mapping[str, Any], kinds: Mapping[str, MediaKind]
    ) -> list[ImageChange]:
        """The image fields present in ``changes`` (field name → kind), decoded and
        processed; a field that is not a valid image is a 400 naming it."""
        checked = []
        for field, kind in kinds.items():
            if field not in changes:
                continue
            value = changes[field]
            if value is None:
                checked.append(ImageChange(field, kind, None))
            elif isinstance(value, str) and _HASH.fullmatch(value):
                checked.append(ImageChange(field, kind, None, echoed=value))
            else:
                checked.append(ImageChange(field, kind, await self._process(field, kind, value)))
        return checked

    async def _process(self, field: str, kind: MediaKind, value: object) -> ProcessedImage:
        try:
            encoded = self._check_data_uri(value)
            async with self._work:
                return await asyncio.to_thread(self._decode_and_process, encoded, SHAPES[kind])
        except ImageRejected as exc:
            raise InvalidForm.field(field, exc.code, exc.message) from None

    def _check_data_uri(self, value: object) -> str:
        """The base64 part of an image data URI, checked without decoding anything."""
        if not isinstance(value, str):
            raise invalid_image()
        header = _DATA_URI.match(value)
        if header is None or header.group(1).lower() not in ACCEPTED_DATA_URI_TYPES:
            raise invalid_image()
        encoded = value[header.end() :]
        # Base64 is 4 characters per 3 bytes: refuse before decoding anything too big.
        if len(encoded) > 4 * -(-self._max_bytes // 3):
            raise self._too_large()
        if not encoded:
            raise invalid_image()
        return encoded

    def _decode_and_process(self, encoded: str, shape: Shape) -> ProcessedImage:
        """In a worker thread: megabytes of base64, then the image work."""
        try:
            raw = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            raise invalid_image() from None
        if len(raw) > self._max_bytes:
            raise self._too_large()
        return process_upload(raw, shape, self._max_pixels)

    def _too_large(self) -> ImageRejected:
        limit = self._max_bytes / (1024 * 1024)
        return ImageRejected("BINARY_TYPE_MAX_SIZE", f"File too large (at most {limit:g} MiB)")

    async def write_images(
        self,
        tx: AsyncConnection,
        owner_id: int,
        checked: list[ImageChange],
        current: Mapping[str, str | None],
    ) -> dict[str, str | None]:
        """Inside the caller's write transaction: store the new images, drop the ones
        they replace, and return the column values to write (field → hash or None).
        A hash sent back that is not the slot's current one is a 400."""
        columns: dict[str, str | None] = {}
        for change in checked:
            if change.echoed is not None:
                if change.echoed != current.get(change.field):
                    raise InvalidForm.field(change.field, "IMAGE_INVALID", "Invalid image data")
                continue
            new_hash = None
            if change.image is not None:
                new_hash = secrets.token_hex(16)
                await media_store.insert_media(
                    tx,
                    image_hash=new_hash,
                    kind=change.kind,
                    owner_id=owner_id,
                    content_type=change.image.content_type,
                    width=change.image.width,
                    height=change.image.height,
                    data=change.image.data,
                    created_at=self._ctx.clock(),
                )
            await media_store.delete_replaced(tx, owner_id, change.kind, keep=new_hash)
            columns[change.field] = new_hash
        return columns

    # Serving --------------------------------------------------------------------------------

    async def find(self, collection: str, owner_id: int, image_hash: str) -> MediaRecord:
        """The image at ``/{collection}/{owner_id}/{image_hash}.*``, or 404."""
        record = None
        if _HASH.fullmatch(image_hash):
            async with self._ctx.db.read("find_media") as tx:
                record = await media_store.get_media(tx, image_hash)
        if (
            record is None
            or record.owner_id != owner_id
            or record.kind not in COLLECTIONS.get(collection, ())
        ):
            raise NotFound(ErrorCode.GENERAL, "404: Not Found")
        return record

    async def render(
        self, record: MediaRecord, size: int | None, output: OutputFormat
    ) -> ServedImage:
        """The image's bytes in ``output``, its longest side at most ``size``; resized
        copies are kept (up to ``image_cache_bytes``) for the next request."""
        if size is not None and size >= max(record.width, record.height):
            size = None  # never scaled up: the stored image is the answer
        key = (record.hash, size, output)
        cached = self._rendered.get(key)
        if cached is not None:
            self._rendered.move_to_end(key)
            return ServedImage(cached, CONTENT_TYPES[output])
        async with self._ctx.db.read("media_bytes") as tx:
            stored = await media_store.media_bytes(tx, record.hash)
        if stored is None:  # deleted since ``find``
            raise NotFound(ErrorCode.GENERAL, "404: Not Found")
        if size is None and CONTENT_TYPES[output] == record.content_type:
            return ServedImage(stored, record.content_type)
        async with self._work:
            data = await asyncio.to_thread(render, stored, size, output)
        self._remember(key, data)
        return ServedImage(data, CONTENT_TYPES[output])

    def _remember(self, key: tuple[str, int | None, OutputFormat], data: bytes) -> None:
        if len(data) > self._cache_limit // 4:
            return
        previous = self._rendered.pop(key, None)
        if previous is not None:  # two requests rendered the same copy at once
            self._rendered_bytes -= len(previous)
        self._rendered[key] = data
        self._rendered_bytes += len(data)
        while self._rendered_bytes > self._cache_limit:
            _, dropped = self._rendered.popitem(last=False)
            self._rendered_bytes -= len(dropped)
