"""``--demo``: make sure a ready-made community exists and print how to join it."""

from __future__ import annotations

import secrets
from pathlib import Path

from nexus_protocol.requests import CreateGuildBody, LoginBody, RegisterBody

from .errors import ApiError
from .relay import Relay

DEMO_OWNER = "nexus_host"


async def announce_demo(relay: Relay) -> None:
    secret_file = Path(relay.settings.data_dir) / "demo-owner-password"
    invites = relay.invites
    if secret_file.exists():
        password = secret_file.read_text().strip()
        _, _user = await relay.accounts.do_login(LoginBody(login=DEMO_OWNER, password=password))
        principal_token = _
    else:
        password = secrets.token_urlsafe(18)
        try:
            principal_token, _user = await relay.accounts.do_register(
                RegisterBody(username=DEMO_OWNER, password=password)
            )
        except ApiError:
            print("The demo owner account exists but its password file is gone.", flush=True)
            return
        secret_file.parent.mkdir(parents=True, exist_ok=True)
        secret_file.write_text(password)
        secret_file.chmod(0o600)
    principal = await relay.accounts.authenticate(principal_token)
    guilds = await relay.guilds.list_my_guilds(principal)
    if guilds:
        guild = await relay.guilds.get_guild(principal, int(guilds[0]["id"]), False)
    else:
        guild = await relay.guilds.do_create_guild(principal, CreateGuildBody(name="Nexus Demo"))
    code = await invites.demo_invite(principal, int(guild["id"]), int(guild["system_channel_id"]))
    base = relay.settings.base_url
    print(f"Community: {guild['name']}", flush=True)
    print(f"Invite link: {base}/invite/{code}", flush=True)
    print(f"Host account: {DEMO_OWNER} (password in {secret_file})", flush=True)
