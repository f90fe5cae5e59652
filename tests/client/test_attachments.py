"""Files on messages through the SDK and through an unmodified discord.py bot, against a
real relay: upload with progress, download, previews cached in the encrypted store."""

from __future__ import annotations

import io
import secrets
import warnings
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from PIL import Image

from nexus_client import BadRequest, Client, File, Forbidden, InvalidInput
from nexus_client.store import LocalStore
from tests.relay.harness import RunningRelay, register
from tests.relay.test_media import CAMERA, photo, png

with warnings.catch_warnings():
    # discord.player imports audioop (deprecated in 3.11) even when voice is unused.
    warnings.filterwarnings("ignore", "'audioop' is deprecated", DeprecationWarning)
    import discord

from nexus_client import discord_compat
from tests.compat.test_discord_py import NoOutsideHosts, start_bot, stop_bot

STORE_KEY = bytes(range(32))
# View, send, history and attach files.
BOT_PERMISSIONS = (1 << 10) | (1 << 11) | (1 << 16) | (1 << 15)


async def registered(relay: RunningRelay, store: LocalStore | None = None) -> Client:
    client = Client(relay.settings.base_url, store=store)
    await client.register(f"files_{secrets.token_hex(4)}", "correct horse battery")
    return client


async def test_post_files_with_progress_and_fetch_them(relay: RunningRelay, tmp_path: Path) -> None:
    store = LocalStore.open_with_key(tmp_path / "alice.db", STORE_KEY)
    alice = await registered(relay, store)
    bob = await registered(relay)
    try:
        guild = await alice.create_guild("Archivists")
        channel_id = guild.system_channel_id
        assert channel_id is not None
        await bob.join((await alice.create_invite(channel_id)).code)

        report = tmp_path / "report.pdf"
        report.write_bytes(secrets.token_bytes(300 * 1024))
        seen: list[tuple[int, int]] = []
        message = await alice.post_message(
            channel_id,
            files=[
                File(report),
                File(photo(400, 300), "beach.jpg", description="A beach at noon"),
                File(b"plot twist", "ending.txt", spoiler=True),
            ],
            progress=lambda sent, total: seen.append((sent, total)),
        )
        assert message.content == ""
        report_file, beach, ending = message.attachments
        assert (report_file.filename, report_file.size) == ("report.pdf", 300 * 1024)
        assert report_file.content_type == "application/pdf"
        assert (beach.width, beach.height, beach.description) == (400, 300, "A beach at noon")
        assert beach.content_type == "image/jpeg" and not beach.spoiler
        assert (ending.filename, ending.spoiler) == ("SPOILER_ending.txt", True)

        # Progress went up in steps as the body left, and ended at the whole body.
        sent_values = [sent for sent, _total in seen]
        total = seen[-1][1]
        assert sent_values == sorted(sent_values)
        assert len(set(sent_values)) > 3
        assert sent_values[0] == 0 and sent_values[-1] == total > 300 * 1024
        assert all(t == total for _s, t in seen)

        # Bob reads the history and downloads both files.
        [fetched] = await bob.fetch_messages(channel_id, limit=1)
        assert fetched.attachments == message.attachments
        assert await bob.fetch_attachment(fetched.attachments[0]) == report.read_bytes()
        photo_bytes = await bob.fetch_attachment(fetched.attachments[1])
        assert CAMERA.encode() not in photo_bytes
        assert Image.open(io.BytesIO(photo_bytes)).size == (400, 300)

        # Previews are cached in Alice's encrypted store; whole files are not.
        preview = await alice.fetch_attachment(beach, size=128)
        assert Image.open(io.BytesIO(preview)).size == (128, 96)
        assert store.images.get("attachment", beach.id, "preview", 128) == preview
        await alice.fetch_attachment(report_file)
        assert store.images.total_bytes() == len(preview)
        await relay.stop()
        # The relay is gone: the preview still shows, from the store.
        assert await alice.fetch_attachment(beach, size=128) == preview
    finally:
        await alice.close()
        await bob.close()


async def test_refusals_surface_as_sdk_errors(relay: RunningRelay) -> None:
    alice = await registered(relay)
    bob = await registered(relay)
    try:
        guild = await alice.create_guild("Strict")
        channel_id = guild.system_channel_id
        assert channel_id is not None
        await bob.join((await alice.create_invite(channel_id)).code)
        with pytest.raises(InvalidInput) as empty:
            await alice.post_message(channel_id, files=[File(b"", "nothing.txt")])
        assert empty.value.fields == {"files[0]": ["The file is empty"]}
        with pytest.raises(ValueError, match="filename"):
            File(b"data")
        bob_user = await bob.fetch_me()
        await alice.http.request(
            "PUT",
            f"/channels/{channel_id}/permissions/{bob_user.id}",
            json={"type": 1, "allow": "0", "deny": str(1 << 15)},
        )
        with pytest.raises(Forbidden):
            await bob.post_message(channel_id, "look", files=[File(b"x", "x.txt")])
        # Without files, an empty message is still refused.
        with pytest.raises(BadRequest):
            await bob.post_message(channel_id)
    finally:
        await alice.close()
        await bob.close()


async def bot_community(relay: RunningRelay) -> tuple[Any, str, dict[str, Any]]:
    owner = await register(relay.api)
    guild = await owner.ok("POST", "/guilds", json={"name": "bot files"})
    channel_id = guild["system_channel_id"]
    app = await owner.ok("POST", "/applications", json={"name": "File Bot"})
    await owner.ok(
        "POST",
        f"/oauth2/authorize?client_id={app['id']}&scope=bot&permissions={BOT_PERMISSIONS}",
        json={"guild_id": int(guild["id"]), "permissions": str(BOT_PERMISSIONS), "authorize": True},
    )
    return owner, channel_id, app


async def test_a_discord_py_bot_sends_and_reads_files(relay: RunningRelay) -> None:
    discord_compat.install(relay.settings.base_url)
    owner, channel_id, app = await bot_community(relay)
    resolver = NoOutsideHosts()
    bot = discord.Client(
        intents=discord.Intents.default(), connector=aiohttp.TCPConnector(resolver=resolver)
    )
    task = await start_bot(bot, app["bot"]["token"])
    try:
        channel = bot.get_channel(int(channel_id))
        assert isinstance(channel, discord.TextChannel)
        sent = await channel.send(
            "two files",
            files=[
                discord.File(io.BytesIO(b"hello from a bot"), filename="hello.txt"),
                discord.File(io.BytesIO(png(32, 16)), filename="dot.png", spoiler=True),
            ],
        )
        assert [a.filename for a in sent.attachments] == ["hello.txt", "SPOILER_dot.png"]
        assert sent.attachments[1].is_spoiler()
        assert (sent.attachments[1].width, sent.attachments[1].height) == (32, 16)
        one = await channel.send(file=discord.File(io.BytesIO(b"solo"), filename="solo.bin"))
        assert await one.attachments[0].read() == b"solo"
        assert await sent.attachments[0].read() == b"hello from a bot"

        # The owner sees the same files over the relay's API.
        stored = await owner.ok("GET", f"/channels/{channel_id}/messages/{sent.id}")
        assert [a["filename"] for a in stored["attachments"]] == ["hello.txt", "SPOILER_dot.png"]
        # A file a user posted reaches the bot, readable with Attachment.read().
        fetched = await channel.fetch_message(one.id)
        assert await fetched.attachments[0].read() == b"solo"
        assert resolver.attempts == []
    finally:
        await stop_bot(bot, task)
