"""'Host a community': the bundled relay as a subprocess, a community on it, an invite
link that another person's client can use, and the relay gone after stop."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from nexus_client import Client
from nexus_desktop.hosting import HostedRelay, RelayStartError, host_community
from nexus_desktop.session import AppSession


async def test_host_community_gives_a_working_invite_and_stops_cleanly(tmp_path: Path) -> None:
    relay = HostedRelay(tmp_path / "hosted")
    session = AppSession(tmp_path / "app")
    try:
        link = await host_community(
            session,
            relay,
            "Book Club",
            username="host",
            password="correct horse battery",
            passphrase="test passphrase",
        )
        assert relay.running
        assert link.startswith(f"{relay.url}/invite/")
        owner = session.account_on(relay.url)
        assert owner is not None
        assert [g.name for _, g in session.all_guilds()] == ["Book Club"]

        # Someone else joins with the link alone.
        async with Client(relay.url) as guest:
            await guest.register("guest", "correct horse battery")
            invite = await guest.join(link)
            assert invite.guild is not None and invite.guild.name == "Book Club"

        # A second community on the same relay reuses the running relay and the account.
        second = await host_community(
            session, relay, "Chess", username="host", password="correct horse battery"
        )
        assert second.startswith(relay.url)
        assert len(session.accounts) == 1
    finally:
        await session.close()
        process = relay.process
        relay.stop()
    assert process is not None and process.poll() is not None
    assert not relay.running


async def test_a_relay_that_cannot_start_reports_its_stderr(tmp_path: Path) -> None:
    relay = HostedRelay(tmp_path / "hosted")
    # A file where the relay wants its data directory: it fails at start-up.
    (tmp_path / "hosted").mkdir()
    (tmp_path / "hosted" / "relay").write_text("not a directory")
    with pytest.raises(RelayStartError) as failure:
        await relay.start(timeout=20)
    assert "exited with code" in str(failure.value) or "did not answer" in str(failure.value)
    assert len(str(failure.value).splitlines()) > 1  # the relay's own words are included
    relay.stop()


async def test_the_demo_relay_prints_an_invite_and_keeps_its_port(tmp_path: Path) -> None:
    relay = HostedRelay(tmp_path / "hosted", demo=True)
    try:
        url = await relay.start()
        link = await relay.demo_invite()
        assert link.startswith(f"{url}/invite/")
        assert relay.demo_owner_password()
        # Whoever opens the demo is greeted in #general, with the link to share.
        assert await demo_messages(url, relay.demo_owner_password()) == [link]
    finally:
        relay.stop()
    again = HostedRelay(tmp_path / "hosted", demo=True)
    try:
        assert await again.start() == url  # same port: saved accounts still match
        await again.demo_invite()
        # The welcome is posted once, when the community is made, not on every start.
        assert await demo_messages(url, again.demo_owner_password()) == [link]
    finally:
        again.stop()


async def demo_messages(url: str, password: str) -> list[str]:
    """The invite links quoted by the messages in the demo community's #general."""
    async with Client(url) as host:
        await host.login("nexus_host", password)
        guild = (await host.fetch_guilds())[0]
        channel = (await host.fetch_guild(int(guild["id"]))).system_channel_id
        assert channel is not None
        messages = await host.fetch_messages(channel)
    return [
        word
        for message in messages
        for word in message.content.split()
        if word.startswith(f"{url}/invite/")
    ]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
async def test_the_relay_stops_when_the_app_is_killed(tmp_path: Path) -> None:
    # An app that hosts a relay, then is killed outright: no clean-up code runs.
    app = await asyncio.create_subprocess_exec(
        sys.executable, "-c", HOSTING_APP, str(tmp_path / "hosted"), stdout=subprocess.PIPE
    )
    try:
        assert app.stdout is not None
        relay_pid, url = (await app.stdout.readline()).decode().split()
        relay = psutil.Process(int(relay_pid))
        async with Client(url) as guest:
            await guest.register("guest", "correct horse battery")  # it serves
        app.kill()
        await app.wait()
        # psutil.TimeoutExpired if the relay outlived the app.
        await asyncio.to_thread(relay.wait, 10)
        assert not relay.is_running()
    finally:
        if app.returncode is None:
            app.kill()
            await app.wait()
    # The port is free again, so the next start keeps the address accounts are saved with.
    again = HostedRelay(tmp_path / "hosted")
    try:
        assert await again.start() == url
    finally:
        again.stop()


HOSTING_APP = """
import asyncio, sys, time
from pathlib import Path
from nexus_desktop.hosting import HostedRelay

relay = HostedRelay(Path(sys.argv[1]))
url = asyncio.run(relay.start())
print(relay.process.pid, url, flush=True)
time.sleep(120)
"""
