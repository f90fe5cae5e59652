"""``nexus``: the desktop app. One QApplication, one asyncio loop on top of Qt's (qasync),
no threads for network I/O."""

from __future__ import annotations

import argparse
import asyncio
import atexit
import logging
import os
import signal
import sys
import threading
import traceback
from pathlib import Path
from types import TracebackType
from typing import Any

from nexus_client import NexusError, NoKeyAvailable, StoreLocked

from .hosting import HostedRelay
from .qt import QApplication, QMessageBox, Qt, QTimer, QWidget
from .session import AppSession, describe_error, relay_from_invite
from .views.login_dialog import LoginDialog, PassphraseDialog, keyring_available

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


# Failures are shown, never swallowed --------------------------------------------------


class FailureReporter:
    """Shows an unexpected failure in the main window's status bar (or a message box
    before there is one) and logs its traceback."""

    def __init__(self) -> None:
        self.window: Any = None
        self.reported: list[str] = []

    def report(self, text: str) -> None:
        self.reported.append(text)
        window = self.window
        if window is not None and window.isVisible():
            window.statusBar().showMessage(f"Error: {text}", 30000)
            return
        box = QMessageBox(QMessageBox.Icon.Critical, "Nexus", text)
        box.setTextFormat(Qt.TextFormat.PlainText)
        box.open()

    def excepthook(
        self, kind: type[BaseException], value: BaseException, tb: TracebackType | None
    ) -> None:
        log.error("unhandled error:\n%s", "".join(traceback.format_exception(kind, value, tb)))
        self.report(describe_error(value) if isinstance(value, Exception) else repr(value))

    def loop_handler(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        if isinstance(exc, asyncio.CancelledError):
            return
        if isinstance(exc, BaseException):
            self.excepthook(type(exc), exc, exc.__traceback__)
        else:
            log.error("event loop: %s", context.get("message"))
            self.report(str(context.get("message", "unknown error")))


def apply_saved_theme(app: QApplication, data_dir: Path) -> None:
    try:
        from .prefs import Prefs
        from .themes import apply_theme

        prefs = Prefs(data_dir)
        apply_theme(
            app,
            str(prefs.get("theme")),
            font_scale=float(prefs.get("font_scale")),
            compact=bool(prefs.get("compact")),
        )
    except Exception as exc:  # a broken theme must not keep the app from starting
        log.warning("theme not applied: %s", exc)


# Start-up ---------------------------------------------------------------------------------


def prewarm() -> threading.Thread:
    """Import, on a worker thread, what the first paint needs but nothing imported yet:
    markdown-it (and its parser, built once), httpcore (httpx loads it when the first
    client is made) and anyio's asyncio backend (loaded by the first request). Started
    just before the saved accounts are opened, it runs while the main thread derives the
    store key (scrypt releases the GIL), so those ~70 ms no longer come after it."""

    def work() -> None:
        try:
            from . import markdown

            markdown.warm_up()
            import anyio._backends._asyncio  # noqa: F401 - what httpcore's first request loads
            import httpcore  # noqa: F401
        except Exception as exc:  # only a head start: the first use imports it anyway
            log.debug("prewarm: %s", exc)

    thread = threading.Thread(target=work, name="nexus-prewarm", daemon=True)
    thread.start()
    return thread


async def wait_for_dialog(dialog: QWidget) -> bool:
    """Open a dialog and wait for it without a nested event loop; True if accepted."""
    done: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    dialog.finished.connect(lambda code: None if done.done() else done.set_result(code))  # type: ignore[attr-defined]
    dialog.open()  # type: ignore[attr-defined]
    return bool(await done)


class Startup:
    """Everything between launch and the main window: the hosted demo relay, the
    passphrase, reconnecting saved accounts, or the first-run login."""

    def __init__(
        self, session: AppSession, args: argparse.Namespace, passphrase: str | None
    ) -> None:
        self.session = session
        self.args = args
        self.passphrase = passphrase
        self.hosted = HostedRelay(session.data_dir / "hosted", demo=args.host_demo)
        self.open_guild: int | None = None

    async def _passphrase(self, prompt: str, error: str = "") -> str | None:
        if self.passphrase is None or error:
            self.passphrase = await PassphraseDialog(prompt).ask(error)
        return self.passphrase

    async def restore_accounts(self) -> bool:
        """Reopen every saved account; False if the person chose to quit."""
        saved = self.session.saved_accounts()
        error = ""
        for entry in saved:
            if self._restore_with_given_passphrase(entry):
                continue
            while True:
                passphrase = None
                if not keyring_available() or error:
                    passphrase = await self._passphrase(
                        "Type your passphrase to open your local history.", error
                    )
                    if passphrase is None:
                        return False
                try:
                    self.session.restore_account(entry["relay_url"], entry["username"], passphrase)
                    error = ""
                    break
                except (StoreLocked, NoKeyAvailable) as exc:
                    error = f"That passphrase does not open it ({exc})."
                except NexusError as exc:
                    log.warning("saved account not restored: %s", exc)
                    break
        return True

    def _restore_with_given_passphrase(self, entry: dict[str, Any]) -> bool:
        """Open a saved account with the passphrase given on the command line, if there
        is one and it opens the store: then the OS keyring need not be probed (loading
        its backends takes ~80 ms). A store kept under a keyring key has no salt file and
        refuses a passphrase at once, before any key derivation; anything else falls
        back to the usual keyring-or-passphrase path."""
        if not self.passphrase:
            return False
        try:
            self.session.restore_account(entry["relay_url"], entry["username"], self.passphrase)
        except (StoreLocked, NoKeyAvailable):
            return False
        except NexusError as exc:
            log.warning("saved account not restored: %s", exc)
        return True

    async def host_demo(self) -> None:
        """Start the bundled relay with its demo community and sign in as its owner."""
        from nexus_server.demo import DEMO_OWNER

        url = await self.hosted.start()
        await self.hosted.demo_invite()
        if self.session.account_on(url) is not None:
            return
        passphrase = None
        if not keyring_available():
            passphrase = await self._passphrase(
                "Choose a passphrase: it encrypts the history Nexus keeps on this computer."
            )
            if passphrase is None:
                raise NexusError("no passphrase given")
        account = await self.session.add_account(
            url, DEMO_OWNER, self.hosted.demo_owner_password(), passphrase=passphrase
        )
        self.session.save_account_list()
        guilds = self.session.all_guilds()
        self.open_guild = next((g.id for a, g in guilds if a is account), None)

    async def sign_in(self) -> bool:
        """The login dialog (first run, ``--relay``, or an invite to a new relay)."""
        link = self.args.invite or self.args.relay or ""
        if self.args.invite:
            relay_url, code = relay_from_invite(self.args.invite)
            account = self.session.account_on(relay_url)
            if account is not None and code:
                self.open_guild = await self.session.accept_invite(account, code)
                return True
        if self.args.relay and self.session.account_on(self.args.relay):
            return True
        dialog = LoginDialog(self.session, invite=link)
        if not keyring_available() and self.passphrase:
            dialog.use_passphrase(self.passphrase)
        if await wait_for_dialog(dialog):
            self.open_guild = dialog.guild_id or self.open_guild
            return True
        return bool(self.session.accounts)

    async def run(self) -> bool:
        """Everything before the main window; False means quit."""
        prewarm()
        if self.args.host_demo:
            await self.hosted.start()  # before the saved accounts reconnect to it
        if not await self.restore_accounts():
            return False
        if self.args.host_demo:
            await self.host_demo()
        if self.args.invite or self.args.relay or not self.session.accounts:
            return await self.sign_in()
        return True


async def run_app(
    app: QApplication, session: AppSession, startup: Startup, reporter: FailureReporter
) -> int:
    from .views.main_window import MainWindow

    quit_requested = asyncio.Event()
    app.lastWindowClosed.connect(quit_requested.set)
    # Ctrl+C or a SIGTERM: leave through the same door as closing the window, so the
    # hosted relay is stopped and the stores are closed.
    for number in (signal.SIGINT, signal.SIGTERM):
        signal.signal(number, lambda *_: quit_requested.set())
    # Python runs signal handlers only when it gets control; Qt's loop may idle in C++.
    wake = QTimer()
    wake.timeout.connect(lambda: None)
    wake.start(250)
    try:
        if not await startup.run():
            return 0
        window = MainWindow(session, hosted_relay=startup.hosted)
        reporter.window = window
        window.show()
        if startup.open_guild is not None:
            window.select_guild_when_known(startup.open_guild)
        await quit_requested.wait()
        return 0
    except NexusError as exc:
        print(f"nexus: {describe_error(exc)}", file=sys.stderr)
        box = QMessageBox(QMessageBox.Icon.Critical, "Nexus", describe_error(exc))
        box.setTextFormat(Qt.TextFormat.PlainText)
        await wait_for_dialog(box)
        return 1
    finally:
        await session.close()
        startup.hosted.stop()


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

    import qasync

    app = QApplication.instance() or QApplication(sys.argv[:1])
    assert isinstance(app, QApplication)
    app.setApplicationName("Nexus")
    app.setQuitOnLastWindowClosed(False)  # the loop ends the app, after cleaning up
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    reporter = FailureReporter()
    sys.excepthook = reporter.excepthook
    loop.set_exception_handler(reporter.loop_handler)

    data_dir = args.data or default_data_dir()
    data_dir.mkdir(parents=True, exist_ok=True)
    apply_saved_theme(app, data_dir)
    session = AppSession(data_dir)
    startup = Startup(session, args, passphrase)
    app.aboutToQuit.connect(startup.hosted.stop)
    atexit.register(startup.hosted.stop)
    with loop:
        code: int = loop.run_until_complete(run_app(app, session, startup, reporter))
    return code


if __name__ == "__main__":
    sys.exit(main())
