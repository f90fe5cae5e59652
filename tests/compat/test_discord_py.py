"""An unmodified discord.py 2.x bot against a real relay, in the same event loop.

The bot's only change is the shim (``nexus_client.discord_compat.install``). Its HTTP
connector resolves no host name at all: every address the bot uses is the relay's
loopback IP, and any attempt to look up another host (discord.com, gateway.discord.gg,
the CDN) is recorded and fails the test.
"""

from __future__ import annotations

import asyncio
import warnings
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.abc import AbstractResolver, ResolveResult

with warnings.catch_warnings():
    # discord.player imports audioop (deprecated in 3.11) even when voice is unused.
    warnings.filterwarnings("ignore", "'audioop' is deprecated", DeprecationWarning)
    import discord
    from discord.ext import commands

from nexus_client import discord_compat
from tests.relay.harness import (
    Gateway,
    RunningRelay,
    User,
    connect_gateway,
    open_clients,
    register,
    start_relay,
)

BOT_PERMISSIONS = (1 << 10) | (1 << 11) | (1 << 6) | (1 << 16)  # view, send, react, history


class NoOutsideHosts(AbstractResolver):
    """aiohttp resolves only host names, never IP literals: every call is a leak."""

    def __init__(self) -> None:
        self.attempts: list[str] = []

    async def resolve(self, host: str, port: int = 0, family: int = 0) -> list[ResolveResult]:
        self.attempts.append(host)
        raise OSError(f"the test bot may not reach {host}")

    async def close(self) -> None:
        pass


@pytest.fixture
async def running(tmp_path: Path) -> AsyncIterator[RunningRelay]:
    relay = await start_relay(tmp_path)
    discord_compat.install(relay.settings.base_url)
    try:
        yield relay
    finally:
        while open_clients:
            await open_clients.pop().aclose()
        await relay.stop()


async def community_with_bot(
    running: RunningRelay, name: str
) -> tuple[User, str, str, dict[str, Any]]:
    """An owner, their guild's text channel, and an application whose bot was added."""
    owner = await register(running.api)
    guild = await owner.ok("POST", "/guilds", json={"name": "bots welcome"})
    channels = await owner.ok("GET", f"/guilds/{guild['id']}/channels")
    channel_id = next(c["id"] for c in channels if c["type"] == 0)
    app = await owner.ok("POST", "/applications", json={"name": name})
    await owner.ok(
        "POST",
        f"/oauth2/authorize?client_id={app['id']}&scope=bot&permissions={BOT_PERMISSIONS}",
        json={"guild_id": int(guild["id"]), "permissions": str(BOT_PERMISSIONS), "authorize": True},
    )
    return owner, guild["id"], channel_id, app


async def start_bot(client: discord.Client, token: str) -> asyncio.Task[None]:
    task = asyncio.create_task(client.start(token))
    ready = asyncio.create_task(client.wait_until_ready())
    done, _ = await asyncio.wait({task, ready}, timeout=15, return_when=asyncio.FIRST_COMPLETED)
    if task in done:
        task.result()  # the bot failed to start: show why
    assert ready in done, "the bot never became ready"
    return task


async def stop_bot(client: discord.Client, task: asyncio.Task[None]) -> None:
    await client.close()
    await asyncio.wait_for(task, 10)


class Inbox:
    """A user's dispatches, matched in any order: a bot's typing, reply and edit race."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.unmatched: list[dict[str, Any]] = []

    async def expect(self, name: str, check: Any, within: float = 10.0) -> Any:
        async def wait() -> Any:
            while True:
                for frame in self.unmatched:
                    if frame["t"] == name and check(frame["d"]):
                        self.unmatched.remove(frame)
                        return frame["d"]
                self.unmatched.append(await self.gateway.next_dispatch(None, within))

        return await asyncio.wait_for(wait(), within)


async def test_discord_py_bot_commands_and_resume(running: RunningRelay) -> None:
    owner, _guild_id, channel_id, app = await community_with_bot(running, "Pong Bot")
    human = await connect_gateway(running.api, owner.token)
    await human.next_dispatch("GUILD_CREATE")
    inbox = Inbox(human)

    resolver = NoOutsideHosts()
    intents = discord.Intents.default()
    intents.message_content = True
    bot = commands.Bot(
        command_prefix="!",
        intents=intents,
        connector=aiohttp.TCPConnector(resolver=resolver),
        help_command=None,
    )
    seen: list[discord.Message] = []
    resumed = asyncio.Event()

    @bot.command()
    async def ping(ctx: commands.Context[commands.Bot]) -> None:
        await ctx.reply("pong", mention_author=False)

    @bot.command()
    async def react(ctx: commands.Context[commands.Bot]) -> None:
        await ctx.message.add_reaction("👍")

    @bot.command()
    async def edit(ctx: commands.Context[commands.Bot]) -> None:
        async with ctx.typing():
            sent = await ctx.send("editing…")
        await sent.edit(content="edited")

    @bot.command()
    async def gone(ctx: commands.Context[commands.Bot]) -> None:
        sent = await ctx.send("here for a moment")
        fetched = await ctx.channel.fetch_message(sent.id)
        await fetched.delete()

    @bot.command()
    async def history(ctx: commands.Context[commands.Bot]) -> None:
        recent = [m async for m in ctx.channel.history(limit=50)]
        author = await bot.fetch_user(ctx.author.id)
        await ctx.send(f"{len(recent)} messages, last command by {author.name}")

    @bot.listen("on_message")
    async def record(message: discord.Message) -> None:
        seen.append(message)

    @bot.listen("on_resumed")
    async def on_resumed() -> None:
        resumed.set()

    task = await start_bot(bot, app["bot"]["token"])
    try:
        assert bot.user is not None and bot.user.bot and str(bot.user.id) == app["id"]
        assert bot.application_id == int(app["id"])
        guild = bot.guilds[0]
        me = guild.me
        assert [r.name for r in me.roles if r.managed] == ["Pong Bot"]
        assert me.guild_permissions.value & BOT_PERMISSIONS == BOT_PERMISSIONS
        bot_id = app["id"]

        async def command(text: str) -> str:
            # The relay's limit (5 messages / 5 s) applies; wait out a 429 as clients do.
            while True:
                response = await owner.request(
                    "POST", f"/channels/{channel_id}/messages", json={"content": text}
                )
                if response.status_code != 429:
                    assert response.status_code == 200, response.text
                    return str(response.json()["id"])
                assert response.json()["global"] is False
                assert response.headers["X-RateLimit-Bucket"]
                await asyncio.sleep(float(response.json()["retry_after"]))

        # A prefix command answered with a reply.
        ping_id = await command("!ping")
        pong = await inbox.expect("MESSAGE_CREATE", lambda d: d["author"]["id"] == bot_id)
        assert pong["author"]["bot"] is True
        assert pong["content"] == "pong"
        assert pong["message_reference"]["message_id"] == ping_id

        # A reaction added with a percent-encoded emoji.
        react_id = await command("!react")
        reaction = await inbox.expect("MESSAGE_REACTION_ADD", lambda d: d["message_id"] == react_id)
        assert reaction["user_id"] == bot_id and reaction["emoji"]["name"] == "👍"

        # Send, then edit.
        await command("!edit")
        created = await inbox.expect("MESSAGE_CREATE", lambda d: d["author"]["id"] == bot_id)
        assert created["content"] == "editing…"
        updated = await inbox.expect("MESSAGE_UPDATE", lambda d: d["id"] == created["id"])
        assert updated["content"] == "edited" and updated["author"]["bot"] is True

        # Typing, fetching one message, deleting it.
        typing = await inbox.expect("TYPING_START", lambda d: d["user_id"] == bot_id)
        assert typing["channel_id"] == channel_id
        await command("!gone")
        brief = await inbox.expect("MESSAGE_CREATE", lambda d: d["author"]["id"] == bot_id)
        await inbox.expect("MESSAGE_DELETE", lambda d: d["id"] == brief["id"])

        # Paging history (!ping, pong, !react, !edit, edited, !gone, !history) and
        # fetching a user over REST.
        await command("!history")
        summary = await inbox.expect("MESSAGE_CREATE", lambda d: d["author"]["id"] == bot_id)
        assert summary["content"] == f"7 messages, last command by {owner.username}"

        contents = [m.content for m in seen if m.author.id == owner.id]
        assert contents == ["!ping", "!react", "!edit", "!gone", "!history"]

        # The relay asks the bot's session to reconnect: discord.py RESUMEs it.
        assert bot.ws is not None
        entry = running.relay.hub.find(bot.ws.session_id)
        assert entry is not None and entry.connection is not None and entry.bot
        entry.connection.request_reconnect()
        await asyncio.wait_for(resumed.wait(), 15)
        assert entry.resumes == 1 and entry.connection is not None

        ping_id = await command("!ping")
        pong = await inbox.expect("MESSAGE_CREATE", lambda d: d["author"]["id"] == bot_id)
        assert pong["message_reference"]["message_id"] == ping_id
        assert resolver.attempts == []
    finally:
        await stop_bot(bot, task)
        await human.close()


async def test_bot_without_message_content_intent(running: RunningRelay) -> None:
    owner, _guild_id, channel_id, app = await community_with_bot(running, "Quiet Bot")
    resolver = NoOutsideHosts()
    client = discord.Client(
        intents=discord.Intents.default(), connector=aiohttp.TCPConnector(resolver=resolver)
    )
    seen: asyncio.Queue[discord.Message] = asyncio.Queue()

    @client.event
    async def on_message(message: discord.Message) -> None:
        await seen.put(message)

    task = await start_bot(client, app["bot"]["token"])
    try:
        human = await connect_gateway(running.api, owner.token)
        await human.next_dispatch("GUILD_CREATE")
        path = f"/channels/{channel_id}/messages"

        await owner.ok("POST", path, json={"content": "a secret"})
        plain = await asyncio.wait_for(seen.get(), 10)
        assert plain.author.id == owner.id and plain.content == ""
        # Users are never filtered.
        mine = await human.next_dispatch("MESSAGE_CREATE")
        assert mine["d"]["content"] == "a secret"

        await owner.ok("POST", path, json={"content": f"<@{app['id']}> hello"})
        mentioned = await asyncio.wait_for(seen.get(), 10)
        assert mentioned.content == f"<@{app['id']}> hello"
        assert client.user in mentioned.mentions

        channel = client.get_channel(int(channel_id))
        assert isinstance(channel, discord.TextChannel)
        await channel.send("the bot's own words")
        own = await asyncio.wait_for(seen.get(), 10)
        assert own.author == client.user and own.content == "the bot's own words"
        assert resolver.attempts == []
        await human.close()
    finally:
        await stop_bot(client, task)


def test_shim_runs_a_bot_script_unchanged(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    script = tmp_path / "bot.py"
    out = tmp_path / "seen.txt"
    script.write_text(
        "import sys, discord.http, discord.gateway\n"
        "if __name__ == '__main__':\n"
        "    from pathlib import Path\n"
        f"    Path({str(out)!r}).write_text('|'.join([discord.http.Route.BASE,"
        " str(discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY), *sys.argv]))\n"
    )
    monkeypatch.setenv(discord_compat.ENV_VAR, "https://relay.example:8443/")
    monkeypatch.setattr("sys.argv", ["x"])
    monkeypatch.setattr(discord.http.Route, "BASE", discord.http.Route.BASE)
    monkeypatch.setattr(
        discord.gateway.DiscordWebSocket,
        "DEFAULT_GATEWAY",
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY,
    )
    discord_compat.main([str(script), "--verbose"])
    assert out.read_text().split("|") == [
        "https://relay.example:8443/api/v10",
        "wss://relay.example:8443/api/v10/gateway/ws",
        str(script),
        "--verbose",
    ]
