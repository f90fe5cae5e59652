"""Image work for avatars, banners and icons, with Pillow: pure functions, no I/O, no
event loop (the media service runs them in worker threads).

What an upload goes through:

- Only PNG, JPEG, GIF and WebP decoders are ever tried, whatever the upload claims.
- Its pixel count is checked from the header, before any pixel is decoded: a few
  kilobytes can claim to be gigapixels (a decompression bomb).
- The first frame is decoded (an animated GIF or WebP becomes a still image), turned
  upright as its EXIF orientation says, and converted to sRGB from any embedded ICC
  profile; then everything else in the file is dropped: EXIF (camera, GPS position,
  time), XMP, comments and the profile itself, since only pixels are re-encoded.
- Avatars and icons are centre-cropped square; banners keep their aspect. Both are
  scaled down (never up) to ``Shape``'s limits and stored as WebP, lossless when the
  upload was lossless (PNG, GIF), quality 90 otherwise.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Final, Literal

from PIL import Image, ImageCms, ImageOps, ImageSequence

STORED_CONTENT_TYPE: Final = "image/webp"
DECODERS: Final = ("PNG", "JPEG", "GIF", "WEBP")
OutputFormat = Literal["png", "webp", "jpeg"]
CONTENT_TYPES: Final[dict[OutputFormat, str]] = {
    "png": "image/png",
    "webp": "image/webp",
    "jpeg": "image/jpeg",
}
_QUALITY: Final = 90


@dataclass(frozen=True, slots=True)
class Shape:
    """How big a kind of image may be stored; ``square`` crops to the centre square."""

    max_width: int
    max_height: int
    square: bool


AVATAR_SHAPE: Final = Shape(1024, 1024, square=True)
BANNER_SHAPE: Final = Shape(1920, 768, square=False)


@dataclass(frozen=True, slots=True)
class ProcessedImage:
    data: bytes
    content_type: str
    width: int
    height: int


class ImageRejected(Exception):
    """The upload is not an image this relay stores; ``code`` is for the field error."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def invalid_image() -> ImageRejected:
    return ImageRejected("IMAGE_INVALID", "Invalid image data")


def process_upload(raw: bytes, shape: Shape, max_pixels: int) -> ProcessedImage:
    """Decode, clean and re-encode an upload; raises ``ImageRejected``."""
    try:
        with Image.open(io.BytesIO(raw), formats=DECODERS) as image:
            width, height = image.size
            if width < 1 or height < 1:
                raise invalid_image()
            if width * height > max_pixels:
                raise _too_many_pixels(max_pixels)
            lossless = image.format in ("PNG", "GIF")
            if image.format == "JPEG":
                # libjpeg decodes at 1/2, 1/4 or 1/8 scale for far less time and memory.
                longest = max(shape.max_width, shape.max_height)
                image.draft("RGB", (longest, longest))
            image.load()
            icc_profile = image.info.get("icc_profile")
            pixels = _to_srgb(_rgb_or_rgba(_upright(image)), icc_profile)
    except ImageRejected:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        # Pillow's own cap (far above ours) fired before ours could look.
        raise _too_many_pixels(max_pixels) from None
    except Exception:
        # Pillow reports malformed files with many kinds of error (OSError, ValueError,
        # SyntaxError, struct.error, EOFError…); to the uploader they are all one.
        raise invalid_image() from None
    fitted = _fit(pixels, shape)
    out = io.BytesIO()
    fitted.save(out, "WEBP", lossless=lossless, quality=_QUALITY, method=4)
    return ProcessedImage(out.getvalue(), STORED_CONTENT_TYPE, fitted.width, fitted.height)


def render(stored: bytes, size: int | None, output: OutputFormat) -> bytes:
    """A stored image in ``output`` format, its longest side at most ``size``."""
    with Image.open(io.BytesIO(stored), formats=("WEBP",)) as image:
        image.load()
        pixels: Image.Image = image
        if size is not None and max(image.size) > size:
            pixels = image.copy()
            pixels.thumbnail((size, size), Image.Resampling.LANCZOS)
        out = io.BytesIO()
        if output == "png":
            pixels.save(out, "PNG", compress_level=6)
        elif output == "webp":
            pixels.save(out, "WEBP", quality=_QUALITY, method=4)
        else:
            _flatten(pixels).save(out, "JPEG", quality=_QUALITY)
    return out.getvalue()


def _too_many_pixels(max_pixels: int) -> ImageRejected:
    return ImageRejected(
        "IMAGE_TOO_LARGE", f"Image dimensions are too large (at most {max_pixels:,} pixels)"
    )


def _upright(image: Image.Image) -> Image.Image:
    try:
        return ImageOps.exif_transpose(image)
    except Exception:
        return image  # unreadable EXIF: the photo still uploads, as it was taken


def _rgb_or_rgba(image: Image.Image) -> Image.Image:
    has_alpha = image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
        image.mode == "P" and "transparency" in image.info
    )
    return image.convert("RGBA" if has_alpha else "RGB")


def _to_srgb(image: Image.Image, icc_profile: object) -> Image.Image:
    if not isinstance(icc_profile, bytes) or not icc_profile:
        return image
    try:
        source = ImageCms.ImageCmsProfile(io.BytesIO(icc_profile))
        converted = ImageCms.profileToProfile(
            image, source, ImageCms.createProfile("sRGB"), outputMode=image.mode
        )
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
        return image  # a broken profile: keep the pixels as they are
    return converted if converted is not None else image


def _fit(image: Image.Image, shape: Shape) -> Image.Image:
    width, height = image.size
    if shape.square:
        side = min(width, height)
        left, top = (width - side) // 2, (height - side) // 2
        target = min(side, shape.max_width, shape.max_height)
        return image.resize(
            (target, target),
            Image.Resampling.LANCZOS,
            box=(left, top, left + side, top + side),
        )
    scale = min(1.0, shape.max_width / width, shape.max_height / height)
    if scale >= 1.0:
        return image
    target_size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return image.resize(target_size, Image.Resampling.LANCZOS)


def _flatten(image: Image.Image) -> Image.Image:
    """JPEG has no transparency: transparent parts become white."""
    if image.mode != "RGBA":
        return image.convert("RGB")
    background = Image.new("RGB", image.size, (255, 255, 255))
    background.paste(image, mask=image.getchannel("A"))
    return background


# Attachments ----------------------------------------------------------------------------
#
# A file attached to a message is an image only if its first bytes say so (whatever the
# uploader's Content-Type claims) and Pillow decodes it. Images are re-encoded from their
# pixels in their own format, so nothing but pixels survives: no EXIF (camera, GPS
# position, time), XMP or comments. Photos (JPEG) are turned upright and re-encoded at
# quality 95; PNG stays lossless; animated GIFs and WebPs keep every frame and their
# timing (only a file whose frames together pass ``max_pixels`` is cut to its first
# frame, as is one of more than ``MAX_ANIMATION_FRAMES`` frames). They are not resized:
# an attachment is the picture as sent.

ATTACHMENT_IMAGE_TYPES: Final = {
    "PNG": "image/png",
    "JPEG": "image/jpeg",
    "GIF": "image/gif",
    "WEBP": "image/webp",
}
_PHOTO_QUALITY: Final = 95
# Each frame costs its re-encoding whatever its size: a 2 MB GIF of 100,000 one-pixel
# frames took 38 s of a worker. A thousand frames is over a minute at 15 frames a second.
MAX_ANIMATION_FRAMES: Final = 1000


def sniff_image(raw: bytes) -> str | None:
    """The Pillow format name of an image upload, from its magic bytes alone."""
    if raw.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if raw.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if raw.startswith((b"GIF87a", b"GIF89a")):
        return "GIF"
    if raw[:4] == b"RIFF" and raw[8:12] == b"WEBP":
        return "WEBP"
    return None


def clean_attachment_image(raw: bytes, max_pixels: int) -> ProcessedImage | None:
    """The image without its metadata, or None when ``raw`` is not an image this relay
    can decode (it is then kept as an ordinary file)."""
    kind = sniff_image(raw)
    if kind is None:
        return None
    try:
        with Image.open(io.BytesIO(raw), formats=(kind,)) as image:
            width, height = image.size
            if width < 1 or height < 1 or width * height > max_pixels:
                return None
            frames = _frames_up_to(image, MAX_ANIMATION_FRAMES + 1)
            if (
                kind in ("GIF", "WEBP")
                and 1 < frames <= MAX_ANIMATION_FRAMES
                and width * height * frames <= max_pixels
            ):
                return _reencode_animation(image, kind)
            image.load()
            pixels = _rgb_or_rgba(_upright(image) if kind == "JPEG" else image)
            return _reencode_still(pixels, kind)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        return None
    except Exception:
        # Malformed files raise many kinds of error; such a file is simply not an image.
        return None


def _frames_up_to(image: Image.Image, limit: int) -> int:
    """How many frames ``image`` has, counting no further than ``limit``: a GIF's frames
    are only found by reading through them, so a huge count is never walked in full."""
    if not getattr(image, "is_animated", False):
        return 1
    try:
        image.seek(limit - 1)
    except EOFError:
        count = int(getattr(image, "n_frames", 1))
    else:
        count = limit
    image.seek(0)
    return count


def _reencode_still(pixels: Image.Image, kind: str) -> ProcessedImage:
    pixels.info = {}  # nothing from the upload rides along into the encoder
    out = io.BytesIO()
    if kind == "JPEG":
        _flatten(pixels).save(out, "JPEG", quality=_PHOTO_QUALITY, subsampling=0)
    elif kind == "PNG":
        pixels.save(out, "PNG", compress_level=6)
    elif kind == "GIF":
        pixels.save(out, "GIF")
    else:
        pixels.save(out, "WEBP", quality=_PHOTO_QUALITY, method=4)
    return ProcessedImage(out.getvalue(), ATTACHMENT_IMAGE_TYPES[kind], *pixels.size)


def _reencode_animation(image: Image.Image, kind: str) -> ProcessedImage:
    frames: list[Image.Image] = []
    durations: list[int] = []
    for frame in ImageSequence.Iterator(image):
        durations.append(int(frame.info.get("duration", 100)))
        copy = frame.convert("RGBA")
        copy.info = {}
        frames.append(copy)
    loop = int(image.info.get("loop", 0))
    out = io.BytesIO()
    options: dict[str, object] = {"save_all": True, "append_images": frames[1:]}
    options |= {"duration": durations, "loop": loop}
    if kind == "GIF":
        frames[0].save(out, "GIF", disposal=2, **options)
    else:
        frames[0].save(out, "WEBP", quality=_PHOTO_QUALITY, method=4, **options)
    return ProcessedImage(out.getvalue(), ATTACHMENT_IMAGE_TYPES[kind], *frames[0].size)


def render_preview(stored: bytes, size: int) -> tuple[bytes, str]:
    """A still preview of a stored attachment image, its longest side at most ``size``:
    PNG for lossless sources (PNG, GIF), WebP for photos. Returns (bytes, type)."""
    kind = sniff_image(stored) or "PNG"
    with Image.open(io.BytesIO(stored), formats=tuple(ATTACHMENT_IMAGE_TYPES)) as image:
        image.load()
        pixels = _rgb_or_rgba(image)
        if max(pixels.size) > size:
            pixels.thumbnail((size, size), Image.Resampling.LANCZOS)
        out = io.BytesIO()
        if kind in ("PNG", "GIF"):
            pixels.save(out, "PNG", compress_level=6)
            return out.getvalue(), "image/png"
        pixels.save(out, "WEBP", quality=_QUALITY, method=4)
        return out.getvalue(), "image/webp"
