"""Files on messages: uploads checked, named safely and cleaned before the message that
carries them is written, and served to those who may read the channel.

The bytes go into the database in the message's own transaction (``do_send_message``),
so a message never lists a file that was lost, and every relay node can serve it.
Hashing, decoding and re-encoding run in worker threads, at most
``MAX_CONCURRENT_FILE_WORK`` at a time, so the event loop keeps serving chat.
"""

from __future__ import annotations

import asyncio
import hashlib
import mimetypes
import unicodedata
from collections import OrderedDict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Final

from nexus_protocol.errors import ErrorCode
from nexus_protocol.permissions import Permissions

from ..errors import InvalidForm, MissingAccess, NotFound
from ..settings import Settings
from ..store import attachments as attachment_store
from ..store.records import AttachmentRecord
from .accounts import Principal
from .channels import ChannelService
from .context import Context
from .images import clean_attachment_image, render_preview

MAX_FILES: Final = 10
MAX_FILENAME_BYTES: Final = 255
MAX_DESCRIPTION_LENGTH: Final = 1024
MAX_CONCURRENT_FILE_WORK: Final = 2
PREVIEW_SIZES: Final = frozenset(2**n for n in range(4, 13))  # 16 … 4096
SPOILER_PREFIX: Final = "SPOILER_"
FALLBACK_FILENAME: Final = "unknown"
OCTET_STREAM: Final = "application/octet-stream"
# Longer "extensions" are part of the name: keeping them would eat the stem.
_MAX_EXTENSION_CHARS: Final = 16


@dataclass(frozen=True, slots=True)
class Upload:
    """One file part as it came: ``index`` is N of ``files[N]``."""

    index: int
    filename: str
    data: bytes
    description: str | None = None

    @property
    def field(self) -> str:
        return f"files[{self.index}]"


@dataclass(frozen=True, slots=True)
class PreparedFile:
    """A checked upload, ready to store with its message."""

    filename: str
    description: str | None
    content_type: str
    width: int | None
    height: int | None
    sha256: str
    data: bytes

    def record(
        self, attachment_id: int, message_id: int, channel_id: int, position: int
    ) -> AttachmentRecord:
        return AttachmentRecord(
            id=attachment_id,
            message_id=message_id,
            channel_id=channel_id,
            position=position,
            filename=self.filename,
            description=self.description,
            content_type=self.content_type,
            size=len(self.data),
            width=self.width,
            height=self.height,
            sha256=self.sha256,
        )


@dataclass(frozen=True, slots=True)
class ServedFile:
    data: bytes
    content_type: str


def sanitize_filename(raw: str) -> str:
    """A name safe to show, to put in a URL path and to save on any OS: no folders, no
    control or bidirectional-override characters (U+202E can make ``exe.png`` read as
    ``gnp.exe``), at most 255 UTF-8 bytes with the extension kept."""
    name = raw.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(
        "_" if char.isspace() else char
        for char in unicodedata.normalize("NFC", name)
        if unicodedata.category(char) not in ("Cc", "Cf", "Cs", "Co", "Cn") or char.isspace()
    )
    name = name.strip("._")
    if not name:
        return FALLBACK_FILENAME
    stem, dot, extension = name.rpartition(".")
    if not dot or not stem or len(extension) > _MAX_EXTENSION_CHARS:
        stem, extension = name, ""
    suffix = f".{extension}" if extension else ""
    room = MAX_FILENAME_BYTES - len(suffix.encode())
    encoded = stem.encode()
    if len(encoded) > room:
        stem = encoded[:room].decode(errors="ignore")
    return stem + suffix


class ByteBudget:
    """At most ``limit`` bytes held at once by all holders together; a holder waits for
    room, and one asking for more than the whole budget waits for all of it."""

    def __init__(self, limit: int) -> None:
        self.limit = max(1, limit)
        self.free = self.limit
        self._waiters: list[asyncio.Future[None]] = []

    @asynccontextmanager
    async def hold(self, size: int) -> AsyncIterator[None]:
        size = min(max(size, 0), self.limit)
        while self.free < size:
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            finally:
                self._waiters.remove(waiter)
        self.free -= size
        try:
            yield
        finally:
            self.free += size
            for waiter in self._waiters:
                if not waiter.done():
                    waiter.set_result(None)


class AttachmentService:
    def __init__(self, ctx: Context, channels: ChannelService, settings: Settings) -> None:
        self._ctx = ctx
        self._channels = channels
        self.max_bytes = settings.max_attachment_bytes
        self._max_pixels = settings.max_image_pixels
        self._work = asyncio.Semaphore(MAX_CONCURRENT_FILE_WORK)
        # Uploaded files are read into memory to be checked and stored with their
        # message; without a bound, a few clients sending ten 25 MiB files each at once
        # would take gigabytes.
        self.upload_memory = ByteBudget(settings.upload_memory_bytes)
        self._previews: OrderedDict[tuple[int, int], ServedFile] = OrderedDict()
        self._preview_bytes = 0
        self._cache_limit = settings.image_cache_bytes

    # Uploads --------------------------------------------------------------------------------

    def too_large_message(self) -> str:
        return f"File too large (at most {self.max_bytes / (1024 * 1024):g} MiB)"

    def check_upload_sizes(self, uploads: list[Upload]) -> None:
        """Cheap checks first, before any file is read or decoded."""
        if len(uploads) > MAX_FILES:
            raise InvalidForm.field(
                "files", "BASE_TYPE_MAX_LENGTH", f"Too many files (at most {MAX_FILES})"
            )
        for upload in uploads:
            if not upload.data:
                raise InvalidForm.field(upload.field, "BASE_TYPE_REQUIRED", "The file is empty")
            if len(upload.data) > self.max_bytes:
                raise InvalidForm.field(
                    upload.field, "BINARY_TYPE_MAX_SIZE", self.too_large_message()
                )
            if upload.description is not None and len(upload.description) > (
                MAX_DESCRIPTION_LENGTH
            ):
                raise InvalidForm.field(
                    ("attachments", upload.index, "description"),
                    "BASE_TYPE_MAX_LENGTH",
                    f"Must be {MAX_DESCRIPTION_LENGTH} or fewer in length.",
                )

    async def prepare(self, uploads: list[Upload]) -> list[PreparedFile]:
        self.check_upload_sizes(uploads)
        prepared = []
        for upload in uploads:
            async with self._work:
                prepared.append(await asyncio.to_thread(self._prepare_one, upload))
        return prepared

    def _prepare_one(self, upload: Upload) -> PreparedFile:
        """In a worker thread: sniff, clean an image, hash."""
        filename = sanitize_filename(upload.filename)
        image = clean_attachment_image(upload.data, self._max_pixels)
        if image is not None:
            data, content_type = image.data, image.content_type
            width: int | None = image.width
            height: int | None = image.height
        else:
            data, width, height = upload.data, None, None
            content_type = mimetypes.guess_type(filename, strict=False)[0] or OCTET_STREAM
            if content_type.startswith("image/"):
                # Named like a picture but not one this relay decodes: a plain file.
                content_type = OCTET_STREAM
        return PreparedFile(
            filename=filename,
            description=upload.description or None,
            content_type=content_type,
            width=width,
            height=height,
            sha256=hashlib.sha256(data).hexdigest(),
            data=data,
        )

    # Serving --------------------------------------------------------------------------------

    async def check_attachment(
        self, principal: Principal, channel_id: int, attachment_id: int, filename: str
    ) -> AttachmentRecord:
        """The attachment, if the caller may read the channel's history (else 403); 404
        for a wrong name, so a URL cannot be guessed from an id alone."""
        try:
            await self._channels.check_channel(
                principal, channel_id, Permissions.VIEW_CHANNEL | Permissions.READ_MESSAGE_HISTORY
            )
        except NotFound:
            # A file link is shared beyond its channel: whoever cannot read the channel
            # is refused alike, whether it is hidden from them or gone.
            raise MissingAccess() from None
        async with self._ctx.db.read("find_attachment") as tx:
            record = await attachment_store.get_attachment(tx, channel_id, attachment_id)
        if record is None or record.filename != filename:
            raise NotFound(ErrorCode.GENERAL, "404: Not Found")
        return record

    async def serve(self, record: AttachmentRecord, size: int | None) -> ServedFile:
        """The stored bytes, or for an image with ``size`` a still preview whose longest
        side is at most ``size`` (kept in memory, up to ``image_cache_bytes``)."""
        if size is not None and record.is_image:
            cached = self._previews.get((record.id, size))
            if cached is not None:
                self._previews.move_to_end((record.id, size))
                return cached
        async with self._ctx.db.read("attachment_bytes") as tx:
            stored = await attachment_store.attachment_data(tx, record.id)
        if stored is None:  # deleted since ``check_attachment``
            raise NotFound(ErrorCode.GENERAL, "404: Not Found")
        if size is None or not record.is_image:
            return ServedFile(stored, record.content_type if record.is_image else OCTET_STREAM)
        async with self._work:
            data, content_type = await asyncio.to_thread(render_preview, stored, size)
        served = ServedFile(data, content_type)
        self._remember((record.id, size), served)
        return served

    def _remember(self, key: tuple[int, int], served: ServedFile) -> None:
        if len(served.data) > self._cache_limit // 4:
            return
        previous = self._previews.pop(key, None)
        if previous is not None:
            self._preview_bytes -= len(previous.data)
        self._previews[key] = served
        self._preview_bytes += len(served.data)
        while self._preview_bytes > self._cache_limit:
            _, dropped = self._previews.popitem(last=False)
            self._preview_bytes -= len(dropped.data)
