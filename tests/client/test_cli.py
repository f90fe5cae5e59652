"""``nexus-cli`` as a user runs it: a real process against a real relay."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import sys
from pathlib import Path

from nexus_client import Client
from tests.relay.harness import RunningRelay

REPO = Path(__file__).resolve().parents[2]
PASSWORD = "correct horse battery"


class CLI:
    """Runs ``python -m nexus_client.cli`` with its own config file and password."""

    def __init__(self, config: Path) -> None:
        self.env = {
            **os.environ,
            "NEXUS_CLI_CONFIG": str(config),
            "NEXUS_PASSWORD": PASSWORD,
            "PYTHONPATH": str(REPO),
        }

    async def spawn(self, *args: str) -> asyncio.subprocess.Process:
        return await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "nexus_client.cli",
            *args,
            env=self.env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )

    async def run(self, *args: str) -> tuple[int, str, str]:
        process = await self.spawn(*args)
        out, err = await asyncio.wait_for(process.communicate(), 30)
        assert process.returncode is not None
        return process.returncode, out.decode(), err.decode()

    async def ok(self, *args: str) -> str:
        code, out, err = await self.run(*args)
        assert code == 0, (args, code, out, err)
        return out


async def test_register_browse_send_history_and_tail(relay: RunningRelay, tmp_path: Path) -> None:
    url = relay.settings.base_url
    cli = CLI(tmp_path / "cli.json")
    name = f"dana_{secrets.token_hex(3)}"
    out = await cli.ok("--relay", url, "register", name)
    assert f"Logged in as {name}" in out
    config = json.loads((tmp_path / "cli.json").read_text())
    assert config["relay"] == url and config["token"]
    assert (tmp_path / "cli.json").stat().st_mode & 0o077 == 0

    # Another user owns a community and invites the CLI user in.
    owner = Client(url)
    try:
        await owner.register(f"erin_{secrets.token_hex(3)}", PASSWORD)
        guild = await owner.create_guild("Shell club")
        channel = guild.system_channel_id
        assert channel is not None
        member = Client(url, token=config["token"])
        await member.join((await owner.create_invite(channel)).code)
        await member.close()

        servers = await cli.ok("servers")
        assert f"{guild.id}  Shell club" in servers.splitlines()
        channels = await cli.ok("channels", str(guild.id))
        assert any(
            line.split()[0] == str(channel) and line.split()[-1] == "general"
            for line in channels.splitlines()
        ), channels

        sent_id = (await cli.ok("send", str(channel), "hello from a shell")).strip()
        assert sent_id.isdigit()
        history = [
            json.loads(line)
            for line in (await cli.ok("history", str(channel), "--json")).splitlines()
        ]
        assert history[-1]["id"] == sent_id
        assert history[-1]["content"] == "hello from a shell"
        assert history[-1]["author"]["username"] == name

        code, out, err = await cli.run("send", str(channel), "x" * 4001)
        assert code == 1 and out == ""
        assert err.startswith("content:"), err
        assert "Traceback" not in err

        tail = await cli.spawn("tail", str(channel), "--json", "--limit", "0")
        try:
            assert tail.stdout is not None
            await owner.start()
            # The tail is live once its gateway is up; until then a message could be
            # missed, so keep sending until one shows.
            line = b""
            for attempt in range(20):
                await owner.post_message(channel, f"live {attempt}")
                try:
                    line = await asyncio.wait_for(tail.stdout.readline(), 1.0)
                    break
                except TimeoutError:
                    continue
            shown = json.loads(line)
            assert shown["content"].startswith("live ")
            assert shown["author"]["id"] == str(owner.user.id)  # type: ignore[union-attr]
        finally:
            if tail.returncode is None:
                tail.terminate()
            await asyncio.wait_for(tail.wait(), 10)
    finally:
        await owner.close()


async def test_commands_need_a_relay_and_a_login(relay: RunningRelay, tmp_path: Path) -> None:
    cli = CLI(tmp_path / "empty.json")
    code, _, err = await cli.run("servers")
    assert code != 0 and "--relay" in err
    code, _, err = await cli.run("--relay", relay.settings.base_url, "servers")
    assert code != 0 and "login" in err
    code, _, err = await cli.run("--relay", relay.settings.base_url, "login", "nobody_here")
    assert code == 1 and "invalid" in err.lower() and "Traceback" not in err
