"""``nexus-cli``: Nexus from a terminal or a script.

    nexus-cli --relay http://127.0.0.1:8470 register alice        (password from a prompt,
    nexus-cli login alice                                           or NEXUS_PASSWORD)
    nexus-cli servers
    nexus-cli channels SERVER_ID
    nexus-cli send CHANNEL_ID "hello"
    nexus-cli tail CHANNEL_ID
    nexus-cli history CHANNEL_ID --limit 20 --json
    nexus-cli avatar picture.png                                    (or: avatar --remove)

The relay URL and token are remembered in a file readable by you only
(``$NEXUS_CLI_CONFIG`` or the platform config directory).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import json
import os
import sys
from pathlib import Path
from typing import Any

import platformdirs

from nexus_protocol.gateway import Intents
from nexus_protocol.models import Message
from nexus_protocol.requests import image_content_type

from ._client import Client
from ._exceptions import InvalidInput, NexusError


def config_path() -> Path:
    override = os.environ.get("NEXUS_CLI_CONFIG")
    if override:
        return Path(override)
    return Path(platformdirs.user_config_dir("nexus", appauthor=False)) / "cli.json"


def load_config() -> dict[str, Any]:
    path = config_path()
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def save_config(config: dict[str, Any]) -> None:
    path = config_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    # Written whole, then renamed: a crash never leaves half a config behind.
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(config, handle)
    temporary.replace(path)


def read_password(confirm: bool) -> str:
    from_env = os.environ.get("NEXUS_PASSWORD")
    if from_env:
        return from_env
    if not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\n")
    password = getpass.getpass("Password: ")
    if confirm and getpass.getpass("Again: ") != password:
        raise SystemExit("The passwords differ.")
    return password


def _read_image(path: Path) -> bytes:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SystemExit(f"cannot read {path}: {exc.strerror or exc}") from None
    if image_content_type(data) is None:
        raise SystemExit(f"{path} is not a PNG, JPEG, GIF or WebP image")
    return data


def show(message: Message, as_json: bool) -> None:
    if as_json:
        print(json.dumps(message.wire(), ensure_ascii=False))
    else:
        stamp = message.timestamp.strftime("%Y-%m-%d %H:%M")
        name = message.author.global_name or message.author.username
        print(f"[{stamp}] {name}: {message.content}")


async def run(args: argparse.Namespace) -> int:
    config = load_config()
    relay = args.relay or config.get("relay")
    if not relay:
        raise SystemExit("Which relay? Pass --relay http://host:port once; it is remembered.")
    token = None if args.command in {"register", "login"} else config.get("token")
    if args.command not in {"register", "login"} and not token:
        raise SystemExit("Not logged in: run `nexus-cli login USERNAME` first.")
    intents = Intents.GUILDS | Intents.GUILD_MESSAGES | Intents.MESSAGE_CONTENT
    async with Client(relay, token=token, intents=intents) as client:
        if args.command in {"register", "login"}:
            password = read_password(confirm=args.command == "register")
            action = client.register if args.command == "register" else client.login
            user = await action(args.username, password)
            save_config({"relay": relay, "token": client.token, "user_id": str(user.id)})
            print(f"Logged in as {user.username} ({user.id}) on {relay}")
        elif args.command == "servers":
            for guild in await client.fetch_guilds():
                print(f"{guild['id']}  {guild['name']}")
        elif args.command == "channels":
            for channel in await client.fetch_channels(args.server):
                print(f"{channel.id}  {channel.type.name.lower():<20} {channel.name}")
        elif args.command == "send":
            text = args.text if args.text != "-" else sys.stdin.read()
            message = await client.post_message(args.channel, text)
            print(message.id)
        elif args.command == "avatar":
            picture = None if args.file is None else _read_image(args.file)
            user = await client.set_avatar(picture)
            print(user.avatar or "no avatar")
        elif args.command == "history":
            messages = await client.fetch_messages(args.channel, limit=args.limit)
            for message in reversed(messages):
                show(message, args.json)
        elif args.command == "tail":
            backlog = (
                await client.fetch_messages(args.channel, limit=args.limit) if args.limit else []
            )
            for message in reversed(backlog):
                show(message, args.json)

            @client.event
            async def on_message(message: Message) -> None:
                if message.channel_id == args.channel:
                    show(message, args.json)
                    sys.stdout.flush()

            await client.start()
            await asyncio.Event().wait()
    return 0


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="nexus-cli", description="Nexus from the terminal.")
    root.add_argument("--relay", help="relay URL, e.g. http://127.0.0.1:8470 (remembered)")
    commands = root.add_subparsers(dest="command", required=True)
    for name in ("register", "login"):
        sub = commands.add_parser(name, help=f"{name} and remember the token")
        sub.add_argument("username")
    commands.add_parser("servers", help="the communities you are in")
    sub = commands.add_parser("channels", help="channels of a community")
    sub.add_argument("server", type=int)
    sub = commands.add_parser("send", help="send a message ('-' reads it from stdin)")
    sub.add_argument("channel", type=int)
    sub.add_argument("text")
    sub = commands.add_parser("avatar", help="set your avatar from an image file, or remove it")
    which = sub.add_mutually_exclusive_group(required=True)
    which.add_argument("file", nargs="?", type=Path, help="a PNG, JPEG, GIF or WebP file")
    which.add_argument("--remove", action="store_true", help="remove your avatar")
    for name in ("history", "tail"):
        sub = commands.add_parser(
            name, help="recent messages" if name == "history" else "follow a channel live"
        )
        sub.add_argument("channel", type=int)
        sub.add_argument("--limit", type=int, default=50 if name == "history" else 10)
        sub.add_argument("--json", action="store_true", help="one JSON object per line")
    return root


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        with contextlib.suppress(KeyboardInterrupt):
            return asyncio.run(run(args))
        return 130
    except InvalidInput as exc:
        for field, problems in exc.fields.items():
            print(f"{field}: {'; '.join(problems)}", file=sys.stderr)
        return 1
    except NexusError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
