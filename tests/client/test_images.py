"""Avatars, banners and community icons through the SDK (and a discord.py bot): set
from bytes, fetched, and cached in the encrypted store so they show offline."""

from __future__ import annotations

import asyncio
import io
import json
import secrets
import warnings
from pathlib import Path

import aiohttp
import pytest
from PIL import Image

from nexus_client import Client, ConnectionLost, Forbidden, InvalidInput, NotFound
from nexus_client.store import LocalStore
from nexus_client.store._image_table import ImageCacheTable
from tests.client.test_cli import CLI
from tests.relay.harness import RunningRelay
from tests.relay.test_media import CAMERA, photo, png

with warnings.catch_warnings():
    # discord.player imports audioop (deprecated in 3.11) even when voice is unused.
    warnings.filterwarnings("ignore", "'audioop' is deprecated", DeprecationWarning)
    import discord

from nexus_client import discord_compat
from tests.compat.test_discord_py import NoOutsideHosts, community_with_bot, start_bot, stop_bot

STORE_KEY = bytes(range(32))


def size_of(data: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(data)) as image:
        assert image.format == "PNG"
        return image.size


async def registered(relay: RunningRelay, store: LocalStore | None = None) -> Client:
    client = Client(relay.settings.base_url, store=store)
    await client.register(f"pic_{secrets.token_hex(4)}", "correct horse battery")
    return client


async def test_images_are_set_fetched_and_shown_offline(
    relay: RunningRelay, tmp_path: Path
) -> None:
    store_path = tmp_path / "alice.db"
    alice = await registered(relay, LocalStore.open_with_key(store_path, STORE_KEY))
    bob = await registered(relay)
    try:
        guild = await alice.create_guild("Painters")
        assert guild.system_channel_id is not None
        invite = await alice.create_invite(guild.system_channel_id)
        await bob.join(invite.code)
        await bob.start()

        # Bytes in: the SDK tells the type from them and the relay answers with a hash.
        seen = asyncio.create_task(bob.wait_for("user_update", timeout=10))
        me = await alice.set_avatar(photo(800, 600))
        assert me.avatar is not None and len(me.avatar) == 32
        assert (await seen).avatar == me.avatar
        me = await alice.set_banner(png(1200, 300))
        assert me.banner is not None and me.avatar is not None
        with pytest.raises(ValueError):
            await alice.set_avatar(b"GIF87 is not quite a GIF")
        with pytest.raises(InvalidInput) as refused:
            await alice.set_avatar(b"\x89PNG\r\n\x1a\n but nothing after")
        assert "avatar" in refused.value.fields

        updated = await alice.set_guild_icon(guild.id, png(256, 256))
        assert updated.icon is not None
        updated = await alice.set_guild_banner(guild.id, png(960, 384))
        assert updated.banner is not None and updated.icon is not None
        with pytest.raises(Forbidden):
            await bob.set_guild_icon(guild.id, png(16, 16))

        avatar = await alice.fetch_image("avatar", me.id, me.avatar)
        assert size_of(avatar) == (600, 600) and CAMERA.encode() not in avatar
        small = await alice.fetch_image("avatar", me.id, me.avatar, 64)
        assert size_of(small) == (64, 64)
        banner = await alice.fetch_image("banner", me.id, me.banner, 256)
        assert size_of(banner) == (256, 64)
        icon = await alice.fetch_image("icon", guild.id, updated.icon, 128)
        guild_banner = await alice.fetch_image("guild_banner", guild.id, updated.banner)
        assert size_of(icon) == (128, 128) and size_of(guild_banner) == (960, 384)
        # Bob, without a store, asks the relay each time and sees the same pictures.
        assert await bob.fetch_image("avatar", me.id, me.avatar, 64) == small
        with pytest.raises(NotFound):
            await bob.fetch_image("icon", me.id, me.avatar)  # an avatar is no icon
        with pytest.raises(ValueError):
            await bob.fetch_image("avatar", me.id, "../../api/v10/users/@me")
        assert alice.store is not None
        assert alice.store.images.total_bytes() == sum(
            map(len, (avatar, small, banner, icon, guild_banner))
        )
    finally:
        await bob.close()

    # The relay goes away: what was fetched still shows, from the encrypted store.
    await relay.stop()
    assert await alice.fetch_image("avatar", me.id, me.avatar, 64) == small
    with pytest.raises(ConnectionLost):
        await alice.fetch_image("avatar", me.id, me.avatar, 32)  # never fetched
    await alice.close()
    offline = Client(relay.settings.base_url, store=LocalStore.open_with_key(store_path, STORE_KEY))
    try:
        assert await offline.fetch_image("avatar", me.id, me.avatar) == avatar
        assert await offline.fetch_image("guild_banner", guild.id, updated.banner) == guild_banner
    finally:
        await offline.close()
    # On disk, the cache is ciphertext like the rest of the store.
    for path in (store_path, store_path.with_name(store_path.name + "-wal")):
        if path.exists():
            assert b"IHDR" not in path.read_bytes()


def test_image_cache_keeps_the_most_recently_used_within_its_bound(tmp_path: Path) -> None:
    with LocalStore.open_with_key(tmp_path / "cache.db", STORE_KEY) as store:
        images = ImageCacheTable(store._db, max_bytes=350)
        for owner in (1, 2, 3):
            images.put("avatar", owner, f"{owner:032x}", 0, bytes([owner]) * 100)
        assert images.total_bytes() == 300
        images.put("avatar", 4, f"{4:032x}", 0, b"\4" * 100)  # 400 > 350: the oldest goes
        assert images.get("avatar", 1, f"{1:032x}", 0) is None
        assert images.get("avatar", 4, f"{4:032x}", 0) == b"\4" * 100
        assert images.total_bytes() == 300
        # A new picture replaces the owner's old one, at every size.
        images.put("avatar", 2, f"{2:032x}", 64, b"\2" * 10)
        images.put("avatar", 2, "f" * 32, 0, b"\5" * 50)
        assert images.get("avatar", 2, f"{2:032x}", 0) is None
        assert images.get("avatar", 2, f"{2:032x}", 64) is None
        assert images.get("avatar", 2, "f" * 32, 0) == b"\5" * 50
        # Other kinds of the same owner are other pictures.
        images.put("banner", 2, "e" * 32, 0, b"\6" * 10)
        assert images.get("avatar", 2, "f" * 32, 0) is not None
    with LocalStore.open_with_key(tmp_path / "cache.db", STORE_KEY) as store:
        assert store.images.get("banner", 2, "e" * 32, 0) == b"\6" * 10


async def test_a_discord_py_bot_sets_and_reads_its_avatar(relay: RunningRelay) -> None:
    discord_compat.install(relay.settings.base_url)
    owner, _guild_id, _channel_id, app = await community_with_bot(relay, "Picture Bot")
    bot = discord.Client(
        intents=discord.Intents.default(),
        connector=aiohttp.TCPConnector(resolver=NoOutsideHosts()),
    )
    task = await start_bot(bot, app["bot"]["token"])
    try:
        assert bot.user is not None
        edited = await bot.user.edit(avatar=png(128, 128, (250, 200, 0, 255)))
        assert edited.avatar is not None
        assert edited.avatar.url.startswith(f"{relay.settings.base_url}/avatars/")
        read = await edited.avatar.read()  # ?size=1024, as discord.py asks
        with Image.open(io.BytesIO(read)) as image:
            assert image.size == (128, 128)
            assert image.convert("RGB").getpixel((64, 64)) == (250, 200, 0)
        seen = await owner.ok("GET", f"/users/{app['id']}")
        assert seen["avatar"] == edited.avatar.key
    finally:
        await stop_bot(bot, task)


async def test_nexus_cli_sets_and_removes_the_avatar(relay: RunningRelay, tmp_path: Path) -> None:
    cli = CLI(tmp_path / "cli.json")
    name = f"cli_{secrets.token_hex(3)}"
    await cli.ok("--relay", relay.settings.base_url, "register", name)
    picture = tmp_path / "me.png"
    picture.write_bytes(png(300, 300))
    image_hash = (await cli.ok("avatar", str(picture))).strip()
    assert len(image_hash) == 32
    watcher = await registered(relay)
    try:
        found = await watcher.http.request("GET", f"/users/{json_id(tmp_path)}")
        assert found["username"] == name and found["avatar"] == image_hash
        avatar = await watcher.fetch_image("avatar", int(found["id"]), image_hash)
        assert size_of(avatar) == (300, 300)
    finally:
        await watcher.close()
    not_an_image = tmp_path / "notes.txt"
    not_an_image.write_text("hello")
    code, _out, err = await cli.run("avatar", str(not_an_image))
    assert code == 1 and "not a PNG, JPEG, GIF or WebP image" in err
    assert (await cli.ok("avatar", "--remove")).strip() == "no avatar"


def json_id(tmp_path: Path) -> str:
    """The user id ``nexus-cli`` remembered in its config file."""
    return str(json.loads((tmp_path / "cli.json").read_text())["user_id"])
