"""``nexus``: the desktop app. One QApplication, one asyncio loop on top of Qt's (qasync),
no threads for network I/O.

This module is the launcher and imports only the standard library: before Qt and the
SDK are imported (~0.5 s), it reads the passphrase and starts deriving the saved
accounts' store keys on worker threads (``store_keys``), so the derivation is done by
the time the accounts are opened. The rest of the start is in ``startup``.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

log = logging.getLogger("nexus_desktop")

NO_DISPLAY = (
    "Nexus needs a graphical display, and none was found: neither DISPLAY nor "
    "WAYLAND_DISPLAY is set. Start it from a desktop session (or over ssh -X), or set "
    "QT_QPA_PLATFORM=offscreen to run it without a visible window."
)
# Qt platforms that draw without a display server.
_HEADLESS_PLATFORMS = {"offscreen", "minimal", "vnc", "eglfs", "linuxfb", "vkkhrdisplay"}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="nexus", description="Nexus, the chat app.")
    parser.add_argument("--relay", metavar="URL", help="sign in to this relay")
    parser.add_argument("--invite", metavar="LINK", help="join the community of this invite")
    parser.add_argument(
        "--host-demo",
        action="store_true",
        help="start a relay on this computer with a demo community and connect to it",
    )
    parser.add_argument("--data", metavar="DIR", type=Path, help="where Nexus keeps its data")
    parser.add_argument(
        "--passphrase-stdin",
        action="store_true",
        help="read the local-history passphrase from standard input (machines without a keyring)",
    )
    return parser.parse_args(argv)


def display_problem(env: dict[str, str] | None = None) -> str | None:
    """Why Qt would find no display here (it would abort the process), or None."""
    env = dict(os.environ) if env is None else env
    if not sys.platform.startswith("linux"):
        return None
    platform = env.get("QT_QPA_PLATFORM", "").split(":", 1)[0].split(";", 1)[0]
    if platform in _HEADLESS_PLATFORMS:
        return None
    if platform.startswith("wayland"):
        return None if env.get("WAYLAND_DISPLAY") else NO_DISPLAY
    if platform in ("", "xcb"):
        if env.get("DISPLAY") or (not platform and env.get("WAYLAND_DISPLAY")):
            return None
        return NO_DISPLAY
    return None  # a platform we do not know: let Qt judge


def default_data_dir() -> Path:
    import platformdirs

    return Path(platformdirs.user_data_dir("nexus", appauthor=False))


def host_demo_headless(data_dir: Path) -> int:
    """No screen (a server, a container): host the demo community anyway, so the
    invite link can be opened from the app on another machine. The relay replaces
    this process and runs until stopped."""
    relay_data = data_dir / "hosted"
    relay_data.mkdir(parents=True, exist_ok=True)
    print("nexus: hosting the demo community without the app instead.", file=sys.stderr)
    command = [sys.executable, "-m", "nexus_server.cli", "--demo", "--data", str(relay_data)]
    os.execv(sys.executable, command)
    return 0  # not reached: execv does not return


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    log.setLevel(logging.INFO)
    problem = display_problem()
    if problem is not None:
        print(f"nexus: {problem}", file=sys.stderr)
        if args.host_demo:
            return host_demo_headless(args.data or default_data_dir())
        return 2
    passphrase = sys.stdin.readline().rstrip("\r\n") or None if args.passphrase_stdin else None
    data_dir = args.data or default_data_dir()
    data_dir.mkdir(parents=True, exist_ok=True)
    from .store_keys import derive_saved_keys

    derivations = derive_saved_keys(data_dir, passphrase) if passphrase else {}
    from .startup import launch

    return launch(args, data_dir, passphrase, derivations)


if __name__ == "__main__":
    sys.exit(main())
