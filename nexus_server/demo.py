"""``--demo``: make sure a ready-made community exists and print how to join it."""

from __future__ import annotations

import secrets
from pathlib import Path

from nexus_protocol.requests import CreateGuildBody, CreateMessageBody, LoginBody, RegisterBody

from .errors import ApiError
from .relay import Relay

DEMO_OWNER = "nexus_host"

# The demo community's first message: what someone who just ran the app sees in
# #general, so an empty channel does not greet them. {invite} is the demo's invite link.
WELCOME = """**Welcome to your own Nexus community!** It runs on this computer: nothing you \
write here goes anywhere else.

Things to try:
- Invite a friend with this link: {invite}
- Write with *markdown*: **bold**, __underline__, ~~strike~~, `code`, ||spoilers|| and
```python
print("code blocks, highlighted")
```
- Right-click a message to reply, react or edit; press Up to edit your last one.
- Press Ctrl+K to jump anywhere, and open the settings (⚙) for themes and notifications.
- Join the voice channel to talk; direct messages are end-to-end encrypted."""


def _read_secret(path: Path) -> str | None:
    return path.read_text().strip() if path.exists() else None


def _write_secret(path: Path, secret: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(secret)
    path.chmod(0o600)


async def _owner_token(relay: Relay, secret_file: Path) -> str | None:
    password = _read_secret(secret_file)
    if password is not None:
        token, _ = await relay.accounts.do_login(LoginBody(login=DEMO_OWNER, password=password))
        return token
    password = secrets.token_urlsafe(18)
    try:
        token, _ = await relay.accounts.do_register(
            RegisterBody(username=DEMO_OWNER, password=password)
        )
    except ApiError:
        return None
    _write_secret(secret_file, password)
    return token


async def announce_demo(relay: Relay) -> None:
    secret_file = Path(relay.settings.data_dir) / "demo-owner-password"
    token = await _owner_token(relay, secret_file)
    if token is None:
        print(f"The demo account {DEMO_OWNER} exists but {secret_file} is gone.", flush=True)
        return
    owner = await relay.accounts.authenticate(token)
    guilds = await relay.guilds.list_my_guilds(owner)
    created = not guilds
    if guilds:
        guild = await relay.guilds.get_guild(owner, int(guilds[0]["id"]), False)
    else:
        guild = await relay.guilds.do_create_guild(owner, CreateGuildBody(name="Nexus Demo"))
    channel_id = int(guild["system_channel_id"])
    code = await relay.invites.demo_invite(owner, int(guild["id"]), channel_id)
    base = relay.settings.base_url
    if created:
        welcome = WELCOME.format(invite=f"{base}/invite/{code}")
        await relay.messages.do_send_message(owner, channel_id, CreateMessageBody(content=welcome))
    print(f"Community: {guild['name']}", flush=True)
    print(f"Invite link: {base}/invite/{code}", flush=True)
    print(f"Host account: {DEMO_OWNER} (password in {secret_file})", flush=True)
