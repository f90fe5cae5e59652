"""Files and pictures carried by messages, as the desktop app sends and shows them.

Sizes come from the message, never from the picture: an image attachment is shown in
a box fitted into ``PREVIEW_WIDTH`` x ``PREVIEW_HEIGHT`` from the width and height the
relay recorded, so a row has its final height before the picture arrives. Other files
show as a card of ``CARD_HEIGHT``.

``attachment_images_for(session)`` is the app's one ``AttachmentImages``: the message
delegate asks it for a preview while painting and gets a pixmap from memory or None
(it then paints a placeholder). Asking queues the picture; off the paint path it is
fetched through the session at the smallest power-of-two size that covers the box (the
client keeps previews in the account's encrypted store), decoded and scaled on the
image worker thread, and ``image_ready`` names the attachment so only rows showing it
are repainted.

Invariants:

- ``pixmap()`` never decodes, scales, fetches or awaits.
- A preview is fetched at most once at a time, at most ``MAX_IN_FLIGHT`` at once; one
  that failed is not asked for again until a connection comes back.
- Memory is bounded: cut previews are kept up to ``PIXMAP_BUDGET`` bytes, least
  recently used dropped first.

Names of files from the relay are hostile: ``safe_filename`` turns one into a plain
name for a file dialog's default, and files are written with ``write_atomically``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import tempfile
import unicodedata
import weakref
from collections import OrderedDict
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from nexus_protocol.models import Attachment, Message

from .avatars import _worker, decode_image
from .qt import QImage, QObject, QPixmap, QRect, QSize, Qt, QTimer, Signal

if TYPE_CHECKING:
    from .session import AppSession

log = logging.getLogger(__name__)

__all__ = [
    "CARD_HEIGHT",
    "ENCRYPTED_REASON",
    "MAX_FILES",
    "MAX_FILE_SIZE",
    "PREVIEW_HEIGHT",
    "PREVIEW_WIDTH",
    "AttachmentImages",
    "attachment_boxes",
    "attachment_images_for",
    "attachments_height",
    "fetch_size",
    "file_glyph",
    "human_size",
    "is_image",
    "preview_size",
    "safe_filename",
    "save_attachment",
    "shown_filename",
    "write_atomically",
]

MAX_FILES = 10  # per message, as Discord allows
MAX_FILE_SIZE = 25 * 1024 * 1024  # the relay's default limit per file
ENCRYPTED_REASON = "Files can't be sent in end-to-end encrypted conversations yet."
PREVIEW_WIDTH = 400
PREVIEW_HEIGHT = 300
#: The box of a picture whose size the relay does not know (it could not read it).
UNKNOWN_WIDTH, UNKNOWN_HEIGHT = 240, 160
CARD_WIDTH = 400
CARD_HEIGHT = 56
GAP = 6  # between the text and the first attachment, and between attachments
MAX_IN_FLIGHT = 3
PIXMAP_BUDGET = 64 * 1024 * 1024  # bytes of cut previews kept (~140 full-size boxes)
VIEWER_SIZE = 4096  # the longest side the viewer shows (a 4K screen)
_IMAGE_TYPES = ("image/png", "image/jpeg", "image/gif", "image/webp", "image/bmp")
_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".webp", ".bmp")
_UNSAFE = re.compile(r'[\x00-\x1f\x7f<>:"/\\|?*]')
_SPOILER = "SPOILER_"
_RESERVED_ON_WINDOWS = {"CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"} | {
    f"{prefix}{number}" for prefix in ("COM", "LPT") for number in (*"123456789", "¹", "²", "³")
}
#: Most file systems refuse names longer than 255 bytes; leave room for "(1)" suffixes.
MAX_NAME_BYTES = 200
#: Characters that are never shown as themselves: controls, format characters (the
#: right-to-left override that makes "evil\u202egnp.exe" read "evilexe.png", zero-width
#: joiners), line and paragraph separators, lone surrogates, unassigned code points.
_INVISIBLE_CATEGORIES = {"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"}
SHOWN_NAME_CHARS = 255


# What a message's attachments look like: pure functions of their records. -------------


def is_image(attachment: Attachment) -> bool:
    """Whether ``attachment`` is shown as a picture (a raster type Qt reads)."""
    kind = (attachment.content_type or "").split(";")[0].strip().lower()
    if kind:
        return kind in _IMAGE_TYPES
    return attachment.filename.lower().endswith(_IMAGE_SUFFIXES)


def preview_size(attachment: Attachment, room: int) -> tuple[int, int]:
    """The box a picture is shown in: its own size fitted into ``PREVIEW_WIDTH`` x
    ``PREVIEW_HEIGHT`` and ``room`` pixels of width, keeping its aspect, never
    enlarged."""
    limit_w = max(16, min(PREVIEW_WIDTH, room))
    width, height = attachment.width or 0, attachment.height or 0
    if width <= 0 or height <= 0:
        return min(UNKNOWN_WIDTH, limit_w), UNKNOWN_HEIGHT
    scale = min(1.0, limit_w / width, PREVIEW_HEIGHT / height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def attachment_boxes(message: Message, room: int) -> list[tuple[int, int, bool]]:
    """(width, height, is a picture) of each attachment's box, in order."""
    boxes = []
    for attachment in message.attachments:
        if is_image(attachment):
            boxes.append((*preview_size(attachment, room), True))
        else:
            boxes.append((max(120, min(CARD_WIDTH, room)), CARD_HEIGHT, False))
    return boxes


def attachments_height(message: Message, room: int) -> int:
    """The height the attachments add below a message's text."""
    if not message.attachments:
        return 0
    return sum(height + GAP for _w, height, _image in attachment_boxes(message, room))


def fetch_size(width: int, height: int, ratio: float) -> int:
    """The preview size to ask the relay for: the smallest power of two that covers
    the box at the screen's pixel ratio."""
    longest = max(1, round(max(width, height) * ratio))
    size = 16
    while size < longest and size < VIEWER_SIZE:
        size *= 2
    return size


def human_size(size: int) -> str:
    if size < 1024:
        return f"{size} bytes"
    for unit in ("KB", "MB", "GB"):
        size_f = size / 1024
        if size_f < 1024 or unit == "GB":
            return f"{size_f:.1f} {unit}" if size_f < 100 else f"{size_f:.0f} {unit}"
        size = int(size_f)
    return f"{size} bytes"  # pragma: no cover


def file_glyph(filename: str, content_type: str | None = None) -> str:
    """A glyph for a file card, by what the file is."""
    kind = (content_type or "").lower()
    suffix = Path(filename).suffix.lower()
    if kind.startswith("audio/") or suffix in (".mp3", ".ogg", ".opus", ".wav", ".flac"):
        return "🎵"
    if kind.startswith("video/") or suffix in (".mp4", ".mkv", ".webm", ".mov"):
        return "🎞"
    if suffix in (".zip", ".gz", ".tar", ".7z", ".xz", ".bz2", ".rar"):
        return "🗜"
    if kind.startswith("text/") or suffix in (".txt", ".md", ".py", ".json", ".csv", ".log"):
        return "📝"
    if kind.startswith("image/"):
        return "🖼"
    return "📄"


def _visible(name: str) -> str:
    """``name`` with every character that is not shown as itself replaced by ``_``."""
    return "".join(
        "_" if unicodedata.category(char) in _INVISIBLE_CATEGORIES else char for char in name
    )


def shown_filename(name: str) -> str:
    """A relay-given file name as the app shows it: invisible and direction-changing
    characters replaced, at most ``SHOWN_NAME_CHARS`` characters (the middle elided)."""
    name = _visible(name)
    if len(name) > SHOWN_NAME_CHARS:
        half = SHOWN_NAME_CHARS // 2
        name = f"{name[:half]}…{name[-half:]}"
    return name or "attachment"


def _utf8_prefix(text: str, limit: int) -> str:
    """The longest prefix of ``text`` that is at most ``limit`` bytes in UTF-8."""
    return text.encode("utf-8")[:limit].decode("utf-8", "ignore")


def safe_filename(name: str) -> str:
    """A relay-given file name made safe as a default in a save dialog: no folders,
    no control, direction-changing or reserved characters, no leading dots, no trailing
    dots or spaces (Windows drops them), at most 120 characters and ``MAX_NAME_BYTES``
    bytes, never a Windows device name."""
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    if name.startswith(_SPOILER):
        name = name[len(_SPOILER) :]
    name = _UNSAFE.sub("_", _visible(name)).strip().lstrip(".").rstrip(". ").strip()
    stem, dot, suffix = name.rpartition(".")
    if not dot:
        stem, suffix = name, ""
    suffix = _utf8_prefix(suffix[:16], 64)
    stem = _utf8_prefix(stem[: 120 - len(suffix) - 1], MAX_NAME_BYTES - 1 - len(suffix.encode()))
    stem = stem.rstrip(". ")
    name = f"{stem}.{suffix}" if suffix and stem else stem or suffix
    if name.upper().split(".")[0].rstrip() in _RESERVED_ON_WINDOWS:
        name = "_" + name
    return name or "attachment"


def write_atomically(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and a
    rename: a reader sees the old file or the whole new one, never a part."""
    handle, temporary = tempfile.mkstemp(prefix=".nexus-", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


async def save_attachment(
    session: AppSession, channel_id: int, attachment: Attachment, path: Path
) -> int:
    """Download ``attachment`` and write it to ``path`` atomically (an operation for
    ``session.run``); returns the bytes written."""
    data = await session.fetch_attachment(channel_id, attachment, None)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, write_atomically, path, data)
    return len(data)


async def load_full_image(
    session: AppSession, channel_id: int, attachment: Attachment
) -> QImage | None:
    """The picture at up to ``VIEWER_SIZE`` (the viewer's), decoded off the GUI thread."""
    data = await session.fetch_attachment(channel_id, attachment, None)
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_worker(), decode_image, data, VIEWER_SIZE)


# Decoding and cutting: pure functions on QImage, run on the image worker thread. --------


def blur(image: QImage) -> QImage:
    """A heavily blurred, darkened copy (a spoiler's cover): shrunk to a few pixels
    across and smoothly scaled back, which is cheap and hides any detail."""
    small = image.scaled(
        max(1, image.width() // 24),
        max(1, image.height() // 24),
        Qt.AspectRatioMode.IgnoreAspectRatio,
        Qt.TransformationMode.SmoothTransformation,
    )
    out = small.scaled(
        image.width(),
        image.height(),
        Qt.AspectRatioMode.IgnoreAspectRatio,
        Qt.TransformationMode.SmoothTransformation,
    )
    return out.convertToFormat(QImage.Format.Format_ARGB32_Premultiplied)


def cut_preview(data: bytes, width: int, height: int, blurred: bool) -> QImage | None:
    """``data`` decoded and scaled to fit (``width`` x ``height``) device pixels."""
    image = decode_image(data, max(width, height))
    if image is None:
        return None
    if image.width() != width or image.height() != height:
        image = image.scaled(
            width,
            height,
            Qt.AspectRatioMode.KeepAspectRatio,
            Qt.TransformationMode.SmoothTransformation,
        )
    return blur(image) if blurred else image


# The preview cache. ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Wanted:
    channel_id: int
    attachment: Attachment
    width: int  # device pixels
    height: int
    ratio: float
    blurred: bool

    @property
    def key(self) -> tuple[int, int, int, float, bool]:
        return (self.attachment.id, self.width, self.height, self.ratio, self.blurred)


class AttachmentImages(QObject):
    """Previews of picture attachments ready to paint (see the module's docstring)."""

    image_ready = Signal(object)  # attachment id: a preview of it can be painted

    def __init__(self, session: AppSession, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._session = session
        self._pixmaps: OrderedDict[tuple[int, int, int, float, bool], QPixmap] = OrderedDict()
        self._bytes = 0
        self._queue: OrderedDict[tuple[int, int, int, float, bool], _Wanted] = OrderedDict()
        self._busy: set[tuple[int, int, int, float, bool]] = set()
        self._failed: set[int] = set()  # attachment ids
        self._pump = QTimer(self)
        self._pump.setSingleShot(True)
        self._pump.setInterval(0)
        self._pump.timeout.connect(self._start_work)
        session.connection_changed.connect(self._connection_changed)

    def pixmap(
        self,
        channel_id: int,
        attachment: Attachment,
        size: QSize,
        ratio: float,
        blurred: bool = False,
    ) -> QPixmap | None:
        """The preview for a box of ``size`` if it is ready; otherwise None, and it is
        queued (``image_ready`` says when it is there)."""
        wanted = _Wanted(
            channel_id,
            attachment,
            max(1, round(size.width() * ratio)),
            max(1, round(size.height() * ratio)),
            ratio,
            blurred,
        )
        key = wanted.key
        found = self._pixmaps.get(key)
        if found is not None:
            self._pixmaps.move_to_end(key)
            return found
        if attachment.id in self._failed or key in self._busy or key in self._queue:
            return None
        self._queue[key] = wanted
        if not self._pump.isActive():
            self._pump.start()
        return None

    def prime(
        self, attachment: Attachment, size: QSize, ratio: float, image: QImage, blurred: bool
    ) -> None:
        """Keep ``image`` (already fitted to ``size``) as that box's preview: a picture
        this computer has at hand, so it need not be fetched."""
        key = (
            attachment.id,
            max(1, round(size.width() * ratio)),
            max(1, round(size.height() * ratio)),
            ratio,
            blurred,
        )
        pixmap = QPixmap.fromImage(image)
        pixmap.setDevicePixelRatio(ratio)
        self._keep(key, pixmap)

    def failed(self, attachment_id: int) -> bool:
        return attachment_id in self._failed

    def pending(self) -> int:
        """How many previews are queued or being fetched or cut."""
        return len(self._queue) + len(self._busy)

    def _start_work(self) -> None:
        while self._queue and len(self._busy) < MAX_IN_FLIGHT:
            key, wanted = self._queue.popitem(last=False)
            self._busy.add(key)
            self._session.run(
                self._load(wanted),
                on_done=partial(self._finished, wanted),
                on_error=partial(self._failed_to_load, wanted),
            )

    async def _load(self, wanted: _Wanted) -> QImage:
        size = fetch_size(wanted.width, wanted.height, 1.0)
        data = await self._session.fetch_attachment(wanted.channel_id, wanted.attachment, size)
        loop = asyncio.get_running_loop()
        image = await loop.run_in_executor(
            _worker(), cut_preview, data, wanted.width, wanted.height, wanted.blurred
        )
        if image is None:
            raise ValueError(f"{wanted.attachment.filename!r} is not a picture Qt can read")
        return image

    def _finished(self, wanted: _Wanted, image: QImage) -> None:
        self._busy.discard(wanted.key)
        pixmap = QPixmap.fromImage(image)
        pixmap.setDevicePixelRatio(wanted.ratio)
        self._keep(wanted.key, pixmap)
        self.image_ready.emit(wanted.attachment.id)
        self._start_work()

    def _failed_to_load(self, wanted: _Wanted, exc: Exception) -> None:
        log.info("preview of attachment %s unavailable: %s", wanted.attachment.id, exc)
        self._busy.discard(wanted.key)
        self._failed.add(wanted.attachment.id)
        self.image_ready.emit(wanted.attachment.id)  # its rows show the failure
        self._start_work()

    def _keep(self, key: tuple[int, int, int, float, bool], pixmap: QPixmap) -> None:
        old = self._pixmaps.pop(key, None)
        if old is not None:
            self._bytes -= _cost(old)
        self._pixmaps[key] = pixmap
        self._bytes += _cost(pixmap)
        while self._bytes > PIXMAP_BUDGET and len(self._pixmaps) > 1:
            _key, dropped = self._pixmaps.popitem(last=False)
            self._bytes -= _cost(dropped)

    def _connection_changed(self, online: bool) -> None:
        if online:
            self._failed.clear()


def _cost(pixmap: QPixmap) -> int:
    return pixmap.width() * pixmap.height() * 4


def centred(box: QRect, pixmap: QPixmap) -> QRect:
    """Where ``pixmap`` (logical size) sits centred in ``box``."""
    ratio = pixmap.devicePixelRatio() or 1.0
    width, height = round(pixmap.width() / ratio), round(pixmap.height() / ratio)
    return QRect(
        box.left() + (box.width() - width) // 2,
        box.top() + (box.height() - height) // 2,
        width,
        height,
    )


_caches: weakref.WeakKeyDictionary[AppSession, AttachmentImages] = weakref.WeakKeyDictionary()


def attachment_images_for(session: AppSession) -> AttachmentImages:
    """The one preview cache of ``session`` (made on first use)."""
    cache = _caches.get(session)
    if cache is None:
        cache = _caches[session] = AttachmentImages(session)
    return cache
