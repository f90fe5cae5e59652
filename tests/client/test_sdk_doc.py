"""The bot in docs/sdk.md runs as written: a real process against a real relay answers
``!ping`` with a reply ``pong``."""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import sys
from pathlib import Path

from nexus_client import Client
from nexus_protocol.models import Message
from tests.relay.harness import RunningRelay

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "sdk.md"
HEADING = "## A bot in 20 lines"


def bot_source() -> str:
    """The first ```python block after the heading "A bot in 20 lines"."""
    text = DOC.read_text(encoding="utf-8")
    start = text.index(HEADING)
    found = re.search(r"```python\n(.*?)```", text[start:], re.DOTALL)
    assert found is not None, f"no python block after {HEADING!r}"
    return found.group(1)


def test_the_bot_is_short() -> None:
    lines = [line for line in bot_source().splitlines() if line.strip()]
    assert len(lines) <= 25, f"the bot has {len(lines)} non-blank lines"


async def test_the_documented_bot_answers_ping(relay: RunningRelay, tmp_path: Path) -> None:
    url = relay.settings.base_url
    bot_account = Client(url)
    user = Client(url)
    await bot_account.register(f"pingbot_{secrets.token_hex(3)}", "correct horse battery")
    await user.register(f"carol_{secrets.token_hex(3)}", "correct horse battery")
    guild = await user.create_guild("Bot test")
    channel = guild.system_channel_id
    assert channel is not None
    await bot_account.join((await user.create_invite(channel)).code)
    assert bot_account.token is not None
    await bot_account.close()

    script = tmp_path / "pingbot.py"
    script.write_text(bot_source(), encoding="utf-8")
    env = {
        **os.environ,
        "NEXUS_RELAY": url,
        "NEXUS_TOKEN": bot_account.token,
        "PYTHONPATH": str(REPO),
    }
    bot = await asyncio.create_subprocess_exec(
        sys.executable,
        str(script),
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        assert bot.stdout is not None
        first_line = await asyncio.wait_for(bot.stdout.readline(), 30)
        assert first_line.startswith(b"ready as pingbot_"), first_line

        await user.start()
        pong = asyncio.create_task(
            user.wait_for(
                "message",
                check=lambda m: m.content == "pong" and m.message_reference is not None,
                timeout=20,
            )
        )
        ping = await user.post_message(channel, "!ping")
        reply: Message = await pong
        assert reply.message_reference is not None
        assert reply.message_reference.message_id == ping.id
        assert reply.channel_id == channel
        assert user.user is not None and reply.author.id != user.user.id
    finally:
        if bot.returncode is None:
            bot.kill()
        output = await asyncio.wait_for(bot.communicate(), 10)
        await user.close()
    # Killed by us, not crashed: anything the bot logged is shown if the test failed.
    assert bot.returncode == -9, output[0].decode(errors="replace")
