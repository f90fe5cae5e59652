"""``nexus-server``: host a community from your own machine."""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
from pathlib import Path

import uvicorn

from .settings import Settings, default_data_dir


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="nexus-server", description="Run a Nexus relay: host a community from this machine."
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default: loopback)"
    )
    parser.add_argument("--port", type=int, default=8470, help="port to listen on (default: 8470)")
    parser.add_argument(
        "--data", type=Path, default=None, help=f"data directory (default: {default_data_dir()})"
    )
    parser.add_argument(
        "--database",
        default=None,
        help="database URL (default: SQLite in the data directory); e.g. postgresql://user@host/db",
    )
    parser.add_argument(
        "--redis",
        default=None,
        help="Redis URL for the fan-out bus, to run several relay nodes as one",
    )
    parser.add_argument(
        "--public-url",
        default=None,
        help="the URL clients reach this relay at, when behind a proxy",
    )
    parser.add_argument(
        "--voice-workers",
        type=int,
        default=1,
        help="SFU processes for voice, each using up to one core (0 turns voice off)",
    )
    parser.add_argument(
        "--demo", action="store_true", help="create a demo community and print its invite link"
    )
    parser.add_argument(
        "--no-rate-limits", action="store_true", help="turn rate limits off (benchmarks only)"
    )
    parser.add_argument(
        "--log-level", default="info", choices=["debug", "info", "warning", "error"]
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    settings = Settings(
        host=args.host,
        port=args.port,
        data_dir=args.data or default_data_dir(),
        database_url=args.database,
        redis_url=args.redis,
        public_url=args.public_url,
        rate_limits=not args.no_rate_limits,
        voice_workers=max(0, args.voice_workers),
        voice_start_eagerly=True,
    )
    from .api.app import build_app
    from .relay import Relay

    relay = Relay(settings)

    async def on_ready() -> None:
        if args.demo:
            from .demo import announce_demo

            await announce_demo(relay)

    app = build_app(relay, on_ready=on_ready)
    print(f"Nexus relay on {settings.base_url}  (data: {settings.data_dir})", flush=True)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level=args.log_level,
        access_log=False,
        loop="uvloop",
        http="httptools",
        ws="websockets-sansio",
        ws_max_size=64 * 1024,
        lifespan="on",
    )
    # Server.run() builds the loop uvicorn was told to use (uvloop); asyncio.run() would
    # quietly use the standard loop, which costs a third of the fan-out throughput.
    with contextlib.suppress(KeyboardInterrupt):
        uvicorn.Server(config).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
