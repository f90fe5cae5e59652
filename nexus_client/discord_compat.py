"""Point an unmodified discord.py bot at a Nexus relay.

discord.py sends every REST call to ``discord.http.Route.BASE``, but a plain (unsharded)
``Client`` opens its first gateway socket at ``DiscordWebSocket.DEFAULT_GATEWAY``
(``wss://gateway.discord.gg/``) without asking ``GET /gateway/bot``; afterwards it
resumes at READY's ``resume_gateway_url``. Both class attributes are set here, and
``discord.asset.Asset.BASE`` too, so avatars and icons come from the relay (which serves
them at Discord's CDN paths) and ``Asset.read()`` sends the bot's token, as the relay
asks for one. Attachment URLs are the relay's own (``/attachments/…``), so
``Attachment.read()`` goes through the same token-sending fetch; ``channel.send(file=…)``
needs nothing: discord.py's multipart upload is what the relay takes::

    NEXUS_RELAY=http://127.0.0.1:8470 python -m nexus_client.discord_compat bot.py [args]

runs ``bot.py`` unchanged against the relay. In code, ``install("http://…")`` does the
same before the bot starts. This module imports nothing from the relay; discord.py is
the bot author's dependency, not Nexus's.
"""

from __future__ import annotations

import functools
import os
import runpy
import sys
from typing import Any, cast

__all__ = ["ENV_VAR", "gateway_url", "install", "main"]

ENV_VAR = "NEXUS_RELAY"


def gateway_url(relay: str) -> str:
    """The relay's gateway socket: ``http://host:port`` → ``ws://host:port/api/v10/gateway/ws``."""
    relay = relay.rstrip("/")
    scheme, sep, rest = relay.partition("://")
    if not sep or scheme not in ("http", "https"):
        raise ValueError(f"expected an http(s):// address, got {relay!r}")
    return f"{'wss' if scheme == 'https' else 'ws'}://{rest}/api/v10/gateway/ws"


def install(relay: str | None = None) -> str:
    """Send discord.py's REST calls and gateway sockets to ``relay`` (by default the
    ``NEXUS_RELAY`` environment variable). Returns the API base now in use."""
    # The bot author's dependency, so imported only when asked for.
    import discord.asset
    import discord.gateway
    import discord.http
    import yarl

    relay = relay or os.environ.get(ENV_VAR)
    if not relay:
        raise RuntimeError(f"set {ENV_VAR} to the relay's address, e.g. http://127.0.0.1:8470")
    base = f"{relay.rstrip('/')}/api/v10"
    discord.http.Route.BASE = base
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(gateway_url(relay))
    discord.asset.Asset.BASE = relay.rstrip("/")
    _send_token_for_images(discord.http.HTTPClient)
    return base


def _send_token_for_images(http_client: Any) -> None:
    """discord.py fetches assets and attachments without a token (Discord's CDN is
    public); a relay's images and files are for its members, so fetches from the relay
    carry the bot's token."""
    import discord.asset
    import discord.errors

    original = getattr(http_client.get_from_cdn, "__wrapped__", http_client.get_from_cdn)

    @functools.wraps(original)
    async def get_from_cdn(self: Any, url: str) -> bytes:
        relay = discord.asset.Asset.BASE
        if self.token is None or not url.startswith(f"{relay}/"):
            return cast(bytes, await original(self, url))
        headers = {"Authorization": f"Bot {self.token}"}
        extra = {"proxy": self.proxy, "proxy_auth": self.proxy_auth}
        # discord.py keeps its aiohttp session private; this is the one it fetches with.
        session = self._HTTPClient__session
        async with session.get(url, headers=headers, **extra) as response:
            if response.status == 200:
                return cast(bytes, await response.read())
            if response.status == 404:
                raise discord.errors.NotFound(response, "asset not found")
            if response.status == 403:
                raise discord.errors.Forbidden(response, "cannot retrieve asset")
            raise discord.errors.HTTPException(response, "failed to get asset")

    http_client.get_from_cdn = get_from_cdn


def main(argv: list[str] | None = None) -> None:
    """``python -m nexus_client.discord_compat bot.py [args...]``."""
    args = sys.argv[1:] if argv is None else argv
    if not args:
        raise SystemExit("usage: python -m nexus_client.discord_compat BOT_SCRIPT [ARGS...]")
    install()
    sys.argv = list(args)
    runpy.run_path(args[0], run_name="__main__")


if __name__ == "__main__":
    main()
