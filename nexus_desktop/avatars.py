"""Avatars, banners and community icons as the views paint them.

``avatars_for(session)`` is the app's one ``ImageCache``, made the first time a view
paints an avatar, so start-up never waits for it. A view asks ``pixmap(...)`` while it
paints: the answer comes from memory at once, or is None and the view paints its
fallback (the coloured initial). Asking queues the image; off the paint path the cache
fetches it through the session (the account's encrypted store answers for images seen
before, so they show offline too), decodes it on a worker thread into a downscaled
``QImage``, cuts the shapes the views asked for at their size and device pixel ratio,
and emits ``image_ready`` so each view repaints just the rows showing that image.

Invariants:

- ``pixmap()`` never decodes, scales, fetches or awaits: a dictionary look-up, and on a
  miss a note in the queue.
- An image is fetched at most once at a time, at most ``MAX_IN_FLIGHT`` images at once;
  one that failed is not asked for again until a connection comes back, so nothing
  loops on a broken image.
- Memory is bounded: ``PIXMAP_CACHE`` cut pixmaps and ``SOURCE_CACHE`` decoded images,
  least recently used dropped first.

Messages carry their author as they were when sent; ``user_hash`` gives the avatar a
user has now (from USER_UPDATE, newer messages and member lists), so every row of
theirs shows the same, current picture.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections import OrderedDict
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from enum import Enum
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from nexus_client import InvalidInput
from nexus_protocol.models import Message, User

from .qt import (
    QBuffer,
    QByteArray,
    QColor,
    QFileDialog,
    QImage,
    QImageReader,
    QObject,
    QPainter,
    QPixmap,
    QRect,
    QSize,
    Qt,
    QTimer,
    QWidget,
    Signal,
)
from .session import Account, AppSession

if TYPE_CHECKING:
    from concurrent.futures import ThreadPoolExecutor

log = logging.getLogger(__name__)

ImageKind = Literal["avatar", "banner", "icon", "guild_banner"]
T = TypeVar("T")

MAX_IN_FLIGHT = 3
PIXMAP_CACHE = 600  # a 36 px avatar is ~5 KB, so a few megabytes at most
SOURCE_CACHE = 24  # decoded images kept to cut new sizes from (≤ 256 KB each for avatars)
#: The size asked of the relay, and the longest side a decoded image is kept at: enough
#: for the largest place each kind is shown (the profile card), at a 2x pixel ratio.
FETCH_SIZE: dict[str, int] = {"avatar": 256, "icon": 256, "banner": 1024, "guild_banner": 1024}
MAX_PIXELS = 50_000_000  # what a header may claim before we refuse to decode it
LARGE_PIXELS = 4096 * 4096  # larger ones are scaled while they are decoded
MAX_UPLOAD = 16 * 1024 * 1024  # the relay says what it accepts; this guards our memory
IMAGE_FILTER = "Images (*.png *.jpg *.jpeg *.gif *.webp)"


class Shape(Enum):
    CIRCLE = "circle"
    ROUNDED = "rounded"  # a community icon hovered or selected in the rail
    RECT = "rect"  # a banner, cropped to fill


@dataclass(frozen=True, slots=True)
class ImageKey:
    """One stored image: what it is, whose it is, and its hash."""

    kind: ImageKind
    owner_id: int
    image_hash: str


@dataclass(frozen=True, slots=True)
class Variant:
    """One cut of an image: its logical size, pixel ratio and shape."""

    width: int
    height: int
    ratio: float
    shape: Shape


#: The account that shows an image, or the id of a channel or community one of them sees.
Scope = Account | int
_PixmapKey = tuple[str, int, str, int, int, float, Shape]


class ImageFileError(ValueError):
    """A chosen image file cannot be read (missing, unreadable, far too large)."""


# Decoding and cutting: pure functions on QImage, safe on a worker thread. ---------------


def decode_image(data: bytes, longest_side: int) -> QImage | None:
    """``data`` decoded (the first frame of an animation) and scaled down so no side is
    longer than ``longest_side``; None if it is not an image Qt can read."""
    buffer = QBuffer()
    buffer.setData(QByteArray(data))
    if not buffer.open(QBuffer.OpenModeFlag.ReadOnly):
        return None
    reader = QImageReader(buffer)
    reader.setAutoTransform(True)
    size = reader.size()
    if size.isValid() and size.width() * size.height() > MAX_PIXELS:
        return None
    if size.isValid() and size.width() * size.height() > LARGE_PIXELS:
        # Let the reader scale while decoding (JPEG does it natively): a huge photo
        # never sits in memory at full size.
        reader.setScaledSize(
            size.scaled(longest_side, longest_side, Qt.AspectRatioMode.KeepAspectRatio)
        )
    image = reader.read()
    buffer.close()
    if image.isNull():
        return None
    if max(image.width(), image.height()) > longest_side:
        image = image.scaled(
            longest_side,
            longest_side,
            Qt.AspectRatioMode.KeepAspectRatio,
            Qt.TransformationMode.SmoothTransformation,
        )
    return image.convertToFormat(QImage.Format.Format_ARGB32_Premultiplied)


def cut(image: QImage, variant: Variant) -> QImage:
    """``image`` scaled to cover ``variant``'s size in device pixels, centred, with
    anti-aliased round edges for the round shapes."""
    width = max(1, round(variant.width * variant.ratio))
    height = max(1, round(variant.height * variant.ratio))
    # Crop the source to the box's shape before scaling: scaling a whole 1024 x 1
    # banner to cover a 560 x 200 box would make a picture 200 px high and 200,000 wide.
    crop = QSize(width, height).scaled(image.size(), Qt.AspectRatioMode.KeepAspectRatio)
    crop = QSize(max(1, crop.width()), max(1, crop.height()))
    middle = QRect(
        (image.width() - crop.width()) // 2,
        (image.height() - crop.height()) // 2,
        crop.width(),
        crop.height(),
    )
    scaled = image.copy(middle).scaled(
        width,
        height,
        Qt.AspectRatioMode.IgnoreAspectRatio,
        Qt.TransformationMode.SmoothTransformation,
    )
    out = QImage(width, height, QImage.Format.Format_ARGB32_Premultiplied)
    out.fill(Qt.GlobalColor.transparent)
    painter = QPainter(out)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    painter.setPen(Qt.PenStyle.NoPen)
    painter.setBrush(QColor("white"))
    if variant.shape is Shape.CIRCLE:
        painter.drawEllipse(0, 0, width, height)
    elif variant.shape is Shape.ROUNDED:
        radius = width / 3
        painter.drawRoundedRect(0, 0, width, height, radius, radius)
    else:
        painter.drawRect(0, 0, width, height)
    # The mask above keeps its anti-aliased edge; the picture only fills inside it.
    painter.setCompositionMode(QPainter.CompositionMode.CompositionMode_SourceIn)
    painter.drawImage(0, 0, scaled)
    painter.end()
    return out


def _cut_all(image: QImage, variants: list[Variant]) -> list[QImage]:
    return [cut(image, variant) for variant in variants]


_decoder: ThreadPoolExecutor | None = None


def _worker() -> ThreadPoolExecutor:
    """The thread pictures are decoded and cut on: one for the process (decoding is
    quick; it only has to stay off the GUI thread), made with the first picture."""
    global _decoder
    if _decoder is None:
        # Imported here: start-up never needs the module.
        from concurrent.futures import ThreadPoolExecutor

        _decoder = ThreadPoolExecutor(1, thread_name_prefix="nexus-images")
    return _decoder


# Files the user picks. -------------------------------------------------------------------


def choose_image_file(parent: QWidget, title: str) -> str | None:
    """Ask for a PNG, JPEG, GIF or WebP file; None if the user cancelled."""
    path, _filter = QFileDialog.getOpenFileName(parent, title, "", IMAGE_FILTER)
    return path or None


def read_image_file(path: str | Path) -> bytes:
    """The bytes of a chosen image file; ``ImageFileError`` says why it cannot be used.
    Whether they are an image the relay takes is the relay's to say."""
    file = Path(path)
    try:
        size = file.stat().st_size
        if size > MAX_UPLOAD:
            raise ImageFileError(
                f"{file.name} is {size / 1024 / 1024:.0f} MB; choose an image under"
                f" {MAX_UPLOAD // 1024 // 1024} MB."
            )
        return file.read_bytes()
    except OSError as exc:
        raise ImageFileError(f"Could not read {file.name}: {exc.strerror or exc}") from None


def image_refusal(field: str, text: str) -> InvalidInput:
    """A picture refused on this side (an unreadable file, not an image), in the relay's
    shape, so a form shows it next to the field as it shows the relay's refusals."""
    sentence = text[:1].upper() + text[1:]
    errors = {field: {"_errors": [{"code": "IMAGE_INVALID", "message": sentence}]}}
    return InvalidInput(400, 50035, "Invalid Form Body", errors)


def send_image(
    session: AppSession,
    upload: Callable[[bytes | None], Coroutine[Any, Any, T]],
    kind: ImageKind,
    data: bytes | None,
    *,
    preview: Callable[[QImage | None], None],
    on_done: Callable[[T, QImage | None], None],
    on_error: Callable[[Exception], None],
) -> None:
    """Set a picture (``data``) or remove it (None) with ``upload`` (an SDK setter such
    as ``client.set_avatar``): the file is decoded on the worker thread and shown through
    ``preview`` while it uploads; ``on_done`` gets the relay's answer and the decoded
    picture (None if Qt could not read it; the relay judges the bytes either way)."""

    def start(image: QImage | None) -> None:
        if data is not None:
            preview(image)
        session.run(upload(data), on_done=lambda result: on_done(result, image), on_error=on_error)

    if data is None:
        start(None)
    else:
        session.run(avatars_for(session).decode(data, kind), on_done=start, on_error=on_error)


def paint_avatar(
    painter: QPainter,
    rect: QRect,
    pixmap: QPixmap | None,
    fill: QColor,
    ink: QColor,
    letter: str,
) -> None:
    """The avatar in ``rect``: its picture when ready, else a coloured circle with the
    initial (what every view showed before pictures, and shows until one arrives)."""
    if pixmap is not None:
        painter.drawPixmap(rect.topLeft(), pixmap)
        return
    painter.setPen(Qt.PenStyle.NoPen)
    painter.setBrush(fill)
    painter.drawEllipse(rect)
    painter.setPen(ink)
    painter.drawText(rect, Qt.AlignmentFlag.AlignCenter, (letter[:1] or "?").upper())


# The cache. -------------------------------------------------------------------------------


class ImageCache(QObject):
    """Pictures ready to paint, and the queue of those asked for (see the module's
    docstring); one per session, from ``avatars_for``."""

    image_ready = Signal(object)  # ImageKey: new cuts of it can be painted
    user_changed = Signal(object)  # user id: the avatar they show changed

    def __init__(self, session: AppSession, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._session = session
        self._pixmaps: OrderedDict[_PixmapKey, QPixmap] = OrderedDict()
        self._sources: OrderedDict[ImageKey, QImage] = OrderedDict()
        #: Cuts asked for and not made yet, by image.
        self._wanted: dict[ImageKey, set[Variant]] = {}
        self._queue: OrderedDict[ImageKey, Scope] = OrderedDict()  # to fetch or cut
        self._busy: set[ImageKey] = set()  # being fetched, decoded or cut
        self._failed: set[ImageKey] = set()
        self._latest: dict[int, str | None] = {}  # user id → the avatar they have now
        # Work starts on the next turn of the loop: never inside the paint that asked.
        self._pump = QTimer(self)
        self._pump.setSingleShot(True)
        self._pump.setInterval(0)
        self._pump.timeout.connect(self._start_work)
        for account in session.accounts:
            if account.user is not None:
                self._latest[account.user.id] = account.user.avatar
        session.user_updated.connect(self._user_updated)
        session.message_created.connect(self._message_created)
        session.members_changed.connect(self._members_changed)
        session.connection_changed.connect(self._connection_changed)

    # What views call while painting ------------------------------------------------------

    def pixmap(
        self,
        scope: Scope,
        kind: ImageKind,
        owner_id: int,
        image_hash: str | None,
        width: int,
        height: int,
        ratio: float,
        shape: Shape = Shape.CIRCLE,
    ) -> QPixmap | None:
        """The image cut to (``width`` x ``height``, ``ratio``, ``shape``) if it is ready;
        otherwise None, and it is queued (``image_ready`` says when it is there)."""
        if not image_hash:
            return None
        key = (kind, owner_id, image_hash, width, height, ratio, shape)
        found = self._pixmaps.get(key)
        if found is not None:
            self._pixmaps.move_to_end(key)
            return found
        self._want(
            scope, ImageKey(kind, owner_id, image_hash), Variant(width, height, ratio, shape)
        )
        return None

    def avatar(
        self, scope: Scope, user_id: int, image_hash: str | None, size: int, ratio: float
    ) -> QPixmap | None:
        """A user's round avatar (``pixmap`` for the common case)."""
        return self.pixmap(scope, "avatar", user_id, image_hash, size, size, ratio)

    def user_hash(self, user_id: int, known: str | None) -> str | None:
        """The avatar ``user_id`` has now; ``known`` is what the caller's record says
        (a message's author, as they were when it was sent)."""
        return self._latest.get(user_id, known)

    def own_hash(self, user_id: int) -> str | None:
        """The avatar of one of the signed-in users (for rows not sent yet)."""
        if user_id in self._latest:
            return self._latest[user_id]
        for account in self._session.accounts:
            if account.user is not None and account.user.id == user_id:
                return account.user.avatar
        return None

    # Off the paint path -----------------------------------------------------------------

    def prime(self, key: ImageKey, image: QImage) -> None:
        """Keep ``image`` as the picture of ``key`` (one just uploaded from this
        computer: no need to download it again)."""
        self._failed.discard(key)
        self._keep_source(key, image)
        if key in self._wanted and key not in self._busy:
            self._queue[key] = 0  # no account needed: the source is here
            self._pump.start()

    async def decode(self, data: bytes, kind: ImageKind) -> QImage | None:
        """``data`` decoded on the worker thread (a preview of a chosen file); None if
        it is not an image."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(_worker(), decode_image, data, FETCH_SIZE[kind])

    def failed(self, key: ImageKey) -> bool:
        """Whether ``key`` could not be fetched or read (it is not asked for again)."""
        return key in self._failed

    def pending(self) -> int:
        """How many images are queued or being fetched, decoded or cut."""
        return len(self._queue) + len(self._busy)

    def forget_failures(self) -> None:
        """Let images that failed be asked for again (a connection came back)."""
        self._failed.clear()

    def _want(self, scope: Scope, key: ImageKey, variant: Variant) -> None:
        if key in self._failed:
            return
        variants = self._wanted.setdefault(key, set())
        if variant in variants:
            return  # asked already: it is queued or being made
        variants.add(variant)
        if key not in self._busy:
            self._queue.setdefault(key, scope)
            if not self._pump.isActive():
                self._pump.start()

    def _start_work(self) -> None:
        while self._queue and len(self._busy) < MAX_IN_FLIGHT:
            key, scope = self._queue.popitem(last=False)
            account: Account | None = None
            if key not in self._sources:
                account = self._account(scope)
                if account is None:
                    # Not on any connected account (yet): a later paint asks again.
                    self._wanted.pop(key, None)
                    continue
            self._busy.add(key)
            self._session.run(
                self._load(key, account),
                on_done=partial(self._finished, key, scope),
                on_error=partial(self._failed_to_load, key),
            )

    def _account(self, scope: Scope) -> Account | None:
        if isinstance(scope, Account):
            return scope if scope in self._session.accounts else None
        return self._session.account_for_channel(scope) or self._session.account_for_guild(scope)

    async def _load(self, key: ImageKey, account: Account | None) -> None:
        source = self._sources.get(key)
        loop = asyncio.get_running_loop()
        if source is None:
            assert account is not None
            data = await self._session.fetch_image(
                account, key.kind, key.owner_id, key.image_hash, FETCH_SIZE[key.kind]
            )
            source = await loop.run_in_executor(_worker(), decode_image, data, FETCH_SIZE[key.kind])
            if source is None:
                raise ValueError(f"{key.kind} {key.image_hash} is not an image Qt can read")
            self._keep_source(key, source)
        # Cuts asked for while this ran are made in the next round.
        while variants := list(self._wanted.get(key, ())):
            images = await loop.run_in_executor(_worker(), _cut_all, source, variants)
            for variant, image in zip(variants, images, strict=True):
                pixmap = QPixmap.fromImage(image)
                pixmap.setDevicePixelRatio(variant.ratio)
                self._keep_pixmap(key, variant, pixmap)
            remaining = self._wanted.get(key)
            if remaining is not None:
                remaining.difference_update(variants)
                if not remaining:
                    del self._wanted[key]
            self.image_ready.emit(key)

    def _finished(self, key: ImageKey, scope: Scope, _result: object) -> None:
        self._busy.discard(key)
        if self._wanted.get(key):
            self._queue.setdefault(key, scope)
        self._start_work()

    def _failed_to_load(self, key: ImageKey, exc: Exception) -> None:
        log.info("%s %s of %s unavailable: %s", key.kind, key.image_hash, key.owner_id, exc)
        self._busy.discard(key)
        self._wanted.pop(key, None)
        self._failed.add(key)
        self._start_work()

    def _keep_source(self, key: ImageKey, image: QImage) -> None:
        self._sources[key] = image
        self._sources.move_to_end(key)
        while len(self._sources) > SOURCE_CACHE:
            self._sources.popitem(last=False)

    def _keep_pixmap(self, key: ImageKey, variant: Variant, pixmap: QPixmap) -> None:
        index = (
            key.kind,
            key.owner_id,
            key.image_hash,
            variant.width,
            variant.height,
            variant.ratio,
            variant.shape,
        )
        self._pixmaps[index] = pixmap
        self._pixmaps.move_to_end(index)
        while len(self._pixmaps) > PIXMAP_CACHE:
            self._pixmaps.popitem(last=False)

    # Who has which avatar now --------------------------------------------------------------

    def _note(self, user: User) -> None:
        if self._latest.get(user.id, "") != user.avatar:
            self._latest[user.id] = user.avatar
            self.user_changed.emit(user.id)

    def _user_updated(self, user: object) -> None:
        if isinstance(user, User):
            self._note(user)

    def _message_created(self, message: object) -> None:
        if isinstance(message, Message):
            self._note(message.author)

    def _members_changed(self, guild_id: object) -> None:
        # Member lists are the freshest record after a reconnect (the session keeps
        # them current on USER_UPDATE): follow them for the users rows already show.
        if not isinstance(guild_id, int) or not self._latest:
            return
        for member in self._session.members(guild_id):
            user = member.user
            if user is not None and user.id in self._latest:
                self._note(user)

    def _connection_changed(self, online: bool) -> None:
        if online:
            self.forget_failures()


_caches: weakref.WeakKeyDictionary[AppSession, ImageCache] = weakref.WeakKeyDictionary()


def avatars_for(session: AppSession) -> ImageCache:
    """The one image cache of ``session`` (made on first use)."""
    cache = _caches.get(session)
    if cache is None:
        cache = _caches[session] = ImageCache(session)
    return cache


def device_ratio(widget: QWidget | None) -> float:
    """The pixel ratio to cut images for (1.0 without a widget)."""
    return float(widget.devicePixelRatioF()) if widget is not None else 1.0


__all__ = [
    "IMAGE_FILTER",
    "ImageCache",
    "ImageFileError",
    "ImageKey",
    "ImageKind",
    "Shape",
    "Variant",
    "avatars_for",
    "choose_image_file",
    "cut",
    "decode_image",
    "device_ratio",
    "image_refusal",
    "paint_avatar",
    "read_image_file",
    "send_image",
]
