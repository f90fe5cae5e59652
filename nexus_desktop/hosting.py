""" "Host a community": run the bundled relay on this machine and make a community on it.

The relay runs as a child process (its own interpreter: the GIL and a crash stay on its
side) on the loopback address; the app talks to it like to any other relay. It lives as
long as the app does.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

from nexus_client import InvalidInput, NexusError

from .session import Account, AppSession

STDERR_TAIL = 2000  # characters of the relay's stderr shown when it fails to start

# How the relay process starts on Linux: it first asks the kernel to stop it when the
# app's process ends (PR_SET_PDEATHSIG), then runs the relay. Without this, an app killed
# outright (SIGKILL, a crash) would leave the relay holding its port, and the next start
# would have to move the relay to another port, away from the saved accounts' address.
# The argument after the code is the app's pid: if the app ended before the request
# was made, the relay does not start at all.
_RELAY_UNDER_PARENT = """
import ctypes, os, runpy, signal, sys
PR_SET_PDEATHSIG = 1
ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
if os.getppid() != int(sys.argv.pop(1)):
    sys.exit("nexus: the app that started this relay has already exited")
sys.argv[0] = "nexus-server"
runpy.run_module("nexus_server.cli", run_name="__main__", alter_sys=True)
"""


class RelayStartError(NexusError):
    """The bundled relay did not come up; the message carries its stderr's tail."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


class HostedRelay:
    """The bundled relay (``nexus_server``) as a subprocess with its data in ``data_dir``.

    The port is remembered in ``data_dir/port`` so the relay keeps its address across
    runs (saved accounts are keyed by it); a new free one is taken if it is busy.
    """

    def __init__(self, data_dir: Path, *, demo: bool = False) -> None:
        self.data_dir = data_dir
        self.demo = demo
        self.process: subprocess.Popen[bytes] | None = None
        self.port = 0
        self._stdout: IO[bytes] | None = None
        self._stderr: IO[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def _choose_port(self) -> int:
        saved = self.data_dir / "port"
        with contextlib.suppress(OSError, ValueError):
            port = int(saved.read_text())
            if _port_is_free(port):
                return port
        port = free_port()
        saved.write_text(str(port))
        return port

    async def start(self, timeout: float = 30.0) -> str:
        """Start the relay and wait until it answers; returns its URL."""
        if self.running:
            return self.url
        self.launch()
        await self._wait_until_up(timeout)
        return self.url

    def launch(self) -> None:
        """Spawn the relay process (a quick fork; ``start`` also waits for it)."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.port = self._choose_port()
        # Files, not pipes: nobody reads a pipe while the app runs, and a full pipe
        # would block the relay.
        self._stdout = open(self.data_dir / "relay.out", "w+b")  # noqa: SIM115
        self._stderr = open(self.data_dir / "relay.log", "w+b")  # noqa: SIM115
        if sys.platform.startswith("linux"):
            runner = ["-c", _RELAY_UNDER_PARENT, str(os.getpid())]
        else:
            runner = ["-m", "nexus_server.cli"]
        command = [
            sys.executable,
            *runner,
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--data",
            str(self.data_dir / "relay"),
            "--log-level",
            "warning",
        ]
        if self.demo:
            command.append("--demo")
        self.process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=self._stdout, stderr=self._stderr
        )

    async def _wait_until_up(self, timeout: float) -> None:
        import httpx  # only when hosting: not on every start

        deadline = time.monotonic() + timeout
        async with httpx.AsyncClient(timeout=1.0) as http:
            while True:
                with contextlib.suppress(httpx.HTTPError):
                    response = await http.get(f"{self.url}/api/v10/gateway")
                    if response.status_code == 200:
                        return
                assert self.process is not None
                if self.process.poll() is not None:
                    raise RelayStartError(
                        f"the bundled relay exited with code {self.process.returncode}:\n"
                        + self.stderr_tail()
                    )
                if time.monotonic() > deadline:
                    self.stop()
                    raise RelayStartError(
                        f"the bundled relay did not answer within {timeout:.0f} s:\n"
                        + self.stderr_tail()
                    )
                await asyncio.sleep(0.05)

    def stderr_tail(self) -> str:
        path = self.data_dir / "relay.log"
        try:
            return path.read_text(errors="replace")[-STDERR_TAIL:]
        except OSError:
            return ""

    async def demo_invite(self, timeout: float = 15.0) -> str:
        """The invite link the relay's ``--demo`` prints once it is ready."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                for line in (self.data_dir / "relay.out").read_text().splitlines():
                    if line.startswith("Invite link: "):
                        return line.removeprefix("Invite link: ").strip()
            await asyncio.sleep(0.05)
        raise RelayStartError("the demo relay printed no invite link:\n" + self.stderr_tail())

    def demo_owner_password(self) -> str:
        return (self.data_dir / "relay" / "demo-owner-password").read_text().strip()

    def stop(self) -> None:
        """Stop the relay: terminate, then kill if it has not exited within 5 s."""
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for handle in (self._stdout, self._stderr):
            if handle is not None:
                handle.close()
        self._stdout = self._stderr = None


def account_on(session: AppSession, relay_url: str) -> Account | None:
    return next((a for a in session.accounts if a.relay_url == relay_url.rstrip("/")), None)


async def host_community(
    session: AppSession,
    relay: HostedRelay,
    name: str,
    *,
    username: str,
    password: str,
    passphrase: str | None = None,
) -> str:
    """Start ``relay`` if needed, sign in its owner account (registered on first use),
    create the community ``name`` and return a never-expiring invite link to it."""
    url = await relay.start()
    account = account_on(session, url)
    if account is None:
        try:
            account = await session.add_account(
                url, username, password, register=True, passphrase=passphrase
            )
        except InvalidInput as exc:
            if "username" not in exc.fields:
                raise
            # The name is taken on this relay: it is this person's own earlier account.
            account = await session.add_account(url, username, password, passphrase=passphrase)
        session.save_account_list()
    guild = await account.client.create_guild(name)
    channel_id = guild.system_channel_id
    if channel_id is None:
        channels = await account.client.fetch_channels(guild.id)
        channel_id = next(c.id for c in channels if c.type == 0)
    invite = await account.client.create_invite(channel_id, max_age=0)
    return f"{url}/invite/{invite.code}"
