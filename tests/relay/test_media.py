"""Avatars, banners and community icons: uploaded as data URIs, cleaned and re-encoded
by the relay, served at Discord's CDN paths, through a real relay."""

from __future__ import annotations

import base64
import io
import re
import struct
import zlib
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import ExifTags, Image
from sqlalchemy import func, insert, select, text

from nexus_server.store.database import Database
from nexus_server.store.schema import media, users

from .harness import RunningRelay, User, connect_gateway, register

HASH = re.compile(r"[0-9a-f]{32}")
CAMERA = "SpyPhone 9 Pro"


def photo(width: int, height: int, *, gps: bool = True, orientation: int | None = None) -> bytes:
    """A JPEG as a phone takes it: a camera model, a GPS position and maybe a rotation
    in its EXIF. Left half red, right half blue, to see which way up it is served."""
    image = Image.new("RGB", (width, height), (200, 30, 30))
    image.paste((30, 30, 200), (width // 2, 0, width, height))
    exif = Image.Exif()
    exif[ExifTags.Base.Model] = CAMERA
    if orientation is not None:
        exif[ExifTags.Base.Orientation] = orientation
    if gps:
        exif[ExifTags.IFD.GPSInfo] = {
            ExifTags.GPS.GPSLatitudeRef: "N",
            ExifTags.GPS.GPSLatitude: (48.0, 51.0, 29.0),
            ExifTags.GPS.GPSLongitudeRef: "E",
            ExifTags.GPS.GPSLongitude: (2.0, 17.0, 40.0),
        }
    out = io.BytesIO()
    image.save(out, "JPEG", exif=exif, quality=95)
    return out.getvalue()


def png(width: int, height: int, color: tuple[int, ...] = (20, 160, 60, 255)) -> bytes:
    out = io.BytesIO()
    Image.new("RGBA", (width, height), color).save(out, "PNG")
    return out.getvalue()


def png_claiming(width: int, height: int) -> bytes:
    """A valid PNG header announcing ``width`` x ``height`` pixels, with a few bytes of
    data: a decompression bomb, as far as any check of the header can tell."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    rows = zlib.compress(b"\0" * (width + 1) * 4)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", rows) + chunk(b"IEND", b"")
    )


def data_uri(data: bytes, content_type: str = "image/png") -> str:
    return f"data:{content_type};base64,{base64.b64encode(data).decode()}"


def field_error(response: httpx.Response, field: str) -> dict[str, Any]:
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["code"] == 50035, body
    first: dict[str, Any] = body["errors"][field]["_errors"][0]
    return first


async def fetch(user: User, path: str, **kwargs: Any) -> httpx.Response:
    """An image path is at the relay's root, not under /api/v10."""
    return await user.http.get(f"{user.api.removesuffix('/api/v10')}{path}", **kwargs)


def opened(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


async def stored_media_count(relay: RunningRelay, owner_id: int) -> int:
    async with relay.relay.db.read("test") as tx:
        query = select(func.count()).select_from(media).where(media.c.owner_id == owner_id)
        return int((await tx.execute(query)).scalar_one())


async def test_avatar_is_cleaned_resized_and_served(relay: RunningRelay) -> None:
    alice = await register(relay.api)
    bob = await register(relay.api)
    guild = await alice.ok("POST", "/guilds", json={"name": "Photos"})
    invite = await alice.ok("POST", f"/channels/{guild['system_channel_id']}/invites", json={})
    await bob.ok("POST", f"/invites/{invite['code']}", json={})
    bob_gateway = await connect_gateway(relay.api, bob.token)
    await bob_gateway.next_dispatch("READY")

    upload = photo(1600, 1200)
    assert CAMERA.encode() in upload  # the test's photo does carry the metadata
    exif = Image.open(io.BytesIO(upload)).getexif()
    assert exif.get_ifd(ExifTags.IFD.GPSInfo)
    me = await alice.ok("PATCH", "/users/@me", json={"avatar": data_uri(upload, "image/jpeg")})
    avatar = me["avatar"]
    assert HASH.fullmatch(avatar), avatar
    assert (await alice.ok("GET", "/users/@me"))["avatar"] == avatar
    # Bob, who shares a community with her, is told.
    update = await bob_gateway.next_dispatch("USER_UPDATE")
    assert update["d"]["id"] == str(alice.id) and update["d"]["avatar"] == avatar
    await bob_gateway.close()

    served = await fetch(bob, f"/avatars/{alice.id}/{avatar}.png")
    assert served.status_code == 200, served.text
    assert served.headers["content-type"] == "image/png"
    assert served.headers["cache-control"] == "private, max-age=31536000, immutable"
    etag = served.headers["etag"]
    assert etag.startswith('"') and not etag.startswith("W/")
    image = opened(served.content)
    assert image.format == "PNG"
    # Square, centre-cropped: the red left and blue right halves both survive.
    assert image.size == (1024, 1024)
    assert image.getpixel((10, 512))[:3] == pytest.approx((200, 30, 30), abs=12)
    assert image.getpixel((1013, 512))[:3] == pytest.approx((30, 30, 200), abs=12)
    # No trace of the camera or the place: metadata does not survive re-encoding.
    assert not image.getexif() and "exif" not in image.info
    assert CAMERA.encode() not in served.content
    async with relay.relay.db.read("test") as tx:
        (row,) = (await tx.execute(select(media).where(media.c.owner_id == alice.id))).all()
    assert CAMERA.encode() not in row.data and row.kind == "avatar"

    # Other sizes and formats, each with its own strong ETag.
    small = await fetch(bob, f"/avatars/{alice.id}/{avatar}.png", params={"size": 64})
    assert small.status_code == 200 and opened(small.content).size == (64, 64)
    webp = await fetch(bob, f"/avatars/{alice.id}/{avatar}.webp", params={"size": 128})
    assert webp.headers["content-type"] == "image/webp"
    assert opened(webp.content).size == (128, 128)
    jpeg = await fetch(bob, f"/avatars/{alice.id}/{avatar}.jpg")
    assert jpeg.headers["content-type"] == "image/jpeg" and opened(jpeg.content).format == "JPEG"
    assert len({etag, small.headers["etag"], webp.headers["etag"], jpeg.headers["etag"]}) == 4
    # Asking for more than there is gives what there is, never a blown-up copy.
    huge = await fetch(bob, f"/avatars/{alice.id}/{avatar}.png", params={"size": 4096})
    assert opened(huge.content).size == (1024, 1024)
    for bad_size in ("100", "8", "8192", "big"):
        refused = await fetch(bob, f"/avatars/{alice.id}/{avatar}.png", params={"size": bad_size})
        assert field_error(refused, "size"), bad_size

    # A cached copy is revalidated without a body.
    again = await fetch(bob, f"/avatars/{alice.id}/{avatar}.png", headers={"If-None-Match": etag})
    assert again.status_code == 304 and not again.content
    assert again.headers["etag"] == etag
    other = await fetch(
        bob, f"/avatars/{alice.id}/{avatar}.png", headers={"If-None-Match": small.headers["etag"]}
    )
    assert other.status_code == 200 and other.content == served.content

    # Unknown, mismatched or malformed paths are 404; no token is 401.
    for path in (
        f"/avatars/{bob.id}/{avatar}.png",  # someone else's id
        f"/banners/{alice.id}/{avatar}.png",  # an avatar is not a banner
        f"/avatars/{alice.id}/{'0' * 32}.png",
        f"/avatars/{alice.id}/{avatar}.gif",
        f"/avatars/{alice.id}/{avatar}",
        f"/avatars/{alice.id}/../{avatar}.png",
    ):
        missing = await fetch(bob, path)
        assert missing.status_code == 404, (path, missing.status_code)
    async with httpx.AsyncClient() as anonymous:
        base = relay.settings.base_url
        refused = await anonymous.get(f"{base}/avatars/{alice.id}/{avatar}.png")
        assert refused.status_code == 401


async def test_banner_keeps_its_aspect_and_is_turned_upright(relay: RunningRelay) -> None:
    alice = await register(relay.api)
    # Taken with the phone on its side: stored 400x200, shown 200x400 (EXIF says so).
    sideways = photo(400, 200, orientation=6)
    me = await alice.ok("PATCH", "/users/@me", json={"banner": data_uri(sideways, "image/jpeg")})
    banner = me["banner"]
    assert HASH.fullmatch(banner) and me["avatar"] is None
    image = opened((await fetch(alice, f"/banners/{alice.id}/{banner}.png")).content)
    assert image.size == (200, 400)
    # A wide one is scaled down to fit 1920x768, keeping its shape.
    translucent = (20, 160, 60, 128)
    wide = await alice.ok(
        "PATCH", "/users/@me", json={"banner": data_uri(png(3000, 600, translucent))}
    )
    image = opened((await fetch(alice, f"/banners/{alice.id}/{wide['banner']}.png")).content)
    assert image.size == (1920, 384)
    assert image.getpixel((5, 5)) == pytest.approx(translucent, abs=2)  # transparency kept


async def test_bad_images_are_refused_naming_the_field(relay: RunningRelay) -> None:
    alice = await register(relay.api)
    good = await alice.ok("PATCH", "/users/@me", json={"avatar": data_uri(png(64, 64))})
    hello = base64.b64encode(b"hello, not an image").decode()
    invalid = [
        f"data:image/png;base64,{hello}",  # not an image
        f"data:text/plain;base64,{hello}",
        f"data:image/bmp;base64,{base64.b64encode(b'BM' + bytes(60)).decode()}",
        "data:image/png;base64,!!!!",  # not base64
        "data:image/png;base64,",
        "https://example.com/me.png",
        "a" * 32,  # hash-shaped, but not this user's avatar
        data_uri(png(64, 64)[:60]),  # truncated
    ]
    for value in invalid:
        refused = await alice.request("PATCH", "/users/@me", json={"avatar": value})
        assert field_error(refused, "avatar")["code"] == "IMAGE_INVALID", value[:40]
        assert field_error(refused, "avatar")["message"] == "Invalid image data"
    wrong_type = await alice.request("PATCH", "/users/@me", json={"banner": 12})
    assert field_error(wrong_type, "banner")

    # Over 8 MiB decoded: refused by size before anything is decoded.
    too_big = "data:image/png;base64," + base64.b64encode(bytes(8 * 1024 * 1024 + 1)).decode()
    refused = await alice.request("PATCH", "/users/@me", json={"avatar": too_big})
    error = field_error(refused, "avatar")
    assert error["code"] == "BINARY_TYPE_MAX_SIZE" and "File too large" in error["message"]
    # Bigger still than even the image routes' body limit: 413.
    enormous = await alice.request(
        "PATCH", "/users/@me", json={"avatar": too_big, "banner": too_big, "bio": too_big}
    )
    assert enormous.status_code == 413

    # Decompression bombs: tiny files claiming huge sizes are refused from their header.
    for bomb in (png_claiming(8000, 8000), png_claiming(100_000, 100_000)):
        assert len(bomb) < 100_000
        refused = await alice.request("PATCH", "/users/@me", json={"avatar": data_uri(bomb)})
        assert field_error(refused, "avatar")["code"] == "IMAGE_TOO_LARGE"
    gif_bomb = (
        b"GIF89a" + struct.pack("<HH", 65535, 65535) + b"\0\0\0" + b",\0\0\0\0\1\0\1\0\0\2\2D\1\0;"
    )
    refused = await alice.request(
        "PATCH", "/users/@me", json={"avatar": data_uri(gif_bomb, "image/gif")}
    )
    assert field_error(refused, "avatar")["code"] in {"IMAGE_TOO_LARGE", "IMAGE_INVALID"}

    # One bad field spoils the whole request: the good avatar beside it is not stored.
    both = await alice.request(
        "PATCH",
        "/users/@me",
        json={"avatar": data_uri(png(32, 32)), "banner": "data:image/png;base64,AAAA"},
    )
    assert field_error(both, "banner")
    assert (await alice.ok("GET", "/users/@me"))["avatar"] == good["avatar"]
    assert await stored_media_count(relay, alice.id) == 1


async def test_replacing_and_removing_deletes_the_old_image(relay: RunningRelay) -> None:
    alice = await register(relay.api)
    first = (await alice.ok("PATCH", "/users/@me", json={"avatar": data_uri(png(40, 40))}))[
        "avatar"
    ]
    # Sending the current hash back (as clients that echo the user object do) keeps it.
    echoed = await alice.ok("PATCH", "/users/@me", json={"avatar": first, "bio": "hi"})
    assert echoed["avatar"] == first and echoed["bio"] == "hi"
    # An animated GIF becomes its first frame.
    frames = [Image.new("RGB", (48, 48), c) for c in ((250, 0, 0), (0, 250, 0), (0, 0, 250))]
    gif = io.BytesIO()
    frames[0].save(gif, "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    second = (
        await alice.ok(
            "PATCH", "/users/@me", json={"avatar": data_uri(gif.getvalue(), "image/gif")}
        )
    )["avatar"]
    assert second != first
    assert (await fetch(alice, f"/avatars/{alice.id}/{first}.png")).status_code == 404
    still = opened((await fetch(alice, f"/avatars/{alice.id}/{second}.png")).content)
    assert getattr(still, "n_frames", 1) == 1
    assert still.convert("RGB").getpixel((24, 24)) == (250, 0, 0)
    banner = (await alice.ok("PATCH", "/users/@me", json={"banner": data_uri(png(60, 20))}))[
        "banner"
    ]
    assert await stored_media_count(relay, alice.id) == 2

    cleared = await alice.ok("PATCH", "/users/@me", json={"avatar": None})
    assert cleared["avatar"] is None and cleared["banner"] == banner
    assert (await fetch(alice, f"/avatars/{alice.id}/{second}.png")).status_code == 404
    assert (await fetch(alice, f"/banners/{alice.id}/{banner}.png")).status_code == 200
    assert await stored_media_count(relay, alice.id) == 1


async def test_guild_icon_and_banner_need_manage_guild(relay: RunningRelay) -> None:
    owner = await register(relay.api)
    member = await register(relay.api)
    guild = await owner.ok(
        "POST", "/guilds", json={"name": "Gardeners", "icon": data_uri(png(300, 200))}
    )
    gid, icon = guild["id"], guild["icon"]
    assert HASH.fullmatch(icon)
    invite = await owner.ok("POST", f"/channels/{guild['system_channel_id']}/invites", json={})
    await member.ok("POST", f"/invites/{invite['code']}", json={})
    served = await fetch(member, f"/icons/{gid}/{icon}.png")
    assert served.status_code == 200 and opened(served.content).size == (200, 200)

    before = await stored_media_count(relay, int(gid))
    refused = await member.request("PATCH", f"/guilds/{gid}", json={"icon": data_uri(png(8, 8))})
    assert refused.status_code == 403
    assert await stored_media_count(relay, int(gid)) == before
    bad = await owner.request("PATCH", f"/guilds/{gid}", json={"banner": "data:image/png;base64,"})
    assert field_error(bad, "banner")["code"] == "IMAGE_INVALID"
    created_bad = await owner.request(
        "POST", "/guilds", json={"name": "Nope", "icon": "data:image/gif;base64,R0lG"}
    )
    assert field_error(created_bad, "icon")

    member_gateway = await connect_gateway(relay.api, member.token)
    await member_gateway.next_dispatch("READY")
    changed = await owner.ok(
        "PATCH", f"/guilds/{gid}", json={"banner": data_uri(png(960, 384)), "icon": None}
    )
    banner = changed["banner"]
    assert HASH.fullmatch(banner) and changed["icon"] is None
    update = await member_gateway.next_dispatch("GUILD_UPDATE")
    assert update["d"]["banner"] == banner and update["d"]["icon"] is None
    await member_gateway.close()
    assert (await fetch(member, f"/icons/{gid}/{icon}.png")).status_code == 404
    assert (await fetch(member, f"/banners/{gid}/{banner}.webp")).status_code == 200
    # The audit log records the hash, not megabytes of data URI.
    log = await owner.ok("GET", f"/guilds/{gid}/audit-logs")
    changes = [c for e in log["audit_log_entries"] for c in e.get("changes", [])]
    assert {"key": "banner", "new_value": banner} in changes
    assert all("base64" not in str(c.get("new_value")) for c in changes)

    await owner.ok("DELETE", f"/guilds/{gid}")
    assert await stored_media_count(relay, int(gid)) == 0


async def test_old_free_text_values_are_cleared_by_the_migration(tmp_path: Path) -> None:
    from alembic import command
    from alembic.config import Config

    from nexus_server.store.database import MIGRATIONS

    db = Database(f"sqlite:///{tmp_path / 'old.db'}")
    assert db.sqlite is not None
    with db.sqlite.begin() as connection:
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        config.attributes["connection"] = connection
        command.upgrade(config, "0004")
        connection.execute(
            insert(users).values(
                id=1, username="old", password_hash="!", avatar="a" * 32, banner="my banner"
            )
        )
        connection.execute(
            text(
                "INSERT INTO guilds (id, name, owner_id, icon, banner)"
                " VALUES (2, 'Old', 1, 'https://example.com/i.png', NULL)"
            )
        )
    await db.migrate()
    async with db.read("test") as tx:
        user = (await tx.execute(select(users.c.avatar, users.c.banner))).one()
        guild = (await tx.execute(text("SELECT icon, banner FROM guilds"))).one()
        assert (await tx.execute(select(func.count()).select_from(media))).scalar_one() == 0
    await db.close()
    assert tuple(user) == (None, None) and tuple(guild) == (None, None)
