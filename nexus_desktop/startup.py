"""Everything between the launcher (``app``) and the running app: the QApplication and
its asyncio loop, the theme, reopening saved accounts, the first-run login, the main
window, and connecting once it has painted."""

from __future__ import annotations

import argparse
import asyncio
import atexit
import logging
import signal
import sys
import threading
import traceback
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

from nexus_client import NexusError, NoKeyAvailable, StoreLocked

from .hosting import HostedRelay
from .qt import QApplication, QEvent, QMessageBox, QObject, Qt, QTimer, QWidget
from .session import Account, AppSession, describe_error, relay_from_invite
from .store_keys import StoreKeyDerivation
from .views.login_dialog import LoginDialog, PassphraseDialog, keyring_available

log = logging.getLogger("nexus_desktop")

FIRST_PAINT_PATIENCE_MS = 500  # connect anyway if the window has not painted by then


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
        from .themes import add_theme_dir, apply_theme, user_theme_dir

        add_theme_dir(user_theme_dir(data_dir))
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
    httpcore (httpx loads it when a saved account's client is made) and markdown-it with
    its parser, built once. Started before the QApplication is made, it runs whenever
    the main thread leaves the GIL (Qt's own start-up, reading the stores). anyio's
    backend is left to the first request: connecting waits for the first paint."""

    def work() -> None:
        try:
            import httpcore  # noqa: F401

            from . import markdown

            markdown.warm_up()
        except Exception as exc:  # only a head start: the first use imports it anyway
            log.debug("prewarm: %s", exc)

    thread = threading.Thread(target=work, name="nexus-prewarm", daemon=True)
    thread.start()
    return thread


class _FirstPaint(QObject):
    def __init__(self, widget: QWidget, then: Callable[[], None]) -> None:
        super().__init__(widget)
        self._then = then
        widget.installEventFilter(self)
        # A window that never paints (minimised at start) must connect all the same.
        QTimer.singleShot(FIRST_PAINT_PATIENCE_MS, self._fire)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() == QEvent.Type.Paint:
            # After this paint has finished, not in the middle of it.
            QTimer.singleShot(0, self._fire)
        return False

    def _fire(self) -> None:
        then, self._then = self._then, lambda: None
        then()
        parent = self.parent()
        if isinstance(parent, QWidget):
            parent.removeEventFilter(self)


def after_first_paint(widget: QWidget, then: Callable[[], None]) -> None:
    """Call ``then`` once, right after ``widget`` first paints (or after a short wait)."""
    _FirstPaint(widget, then)


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
        self,
        session: AppSession,
        args: argparse.Namespace,
        passphrase: str | None,
        derivations: dict[tuple[str, str], StoreKeyDerivation] | None = None,
    ) -> None:
        """``derivations``: store keys already being derived from ``passphrase``
        (``store_keys.derive_saved_keys``), by (relay URL, username)."""
        self.session = session
        self.args = args
        self.passphrase = passphrase
        self.hosted = HostedRelay(session.data_dir / "hosted", demo=args.host_demo)
        self.open_guild: int | None = None
        self._derivations = dict(derivations or {})
        #: Accounts reopened from their stores, to connect once the window has painted.
        self.to_connect: list[Account] = []

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
                    self.to_connect.append(
                        self.session.restore_account(
                            entry["relay_url"], entry["username"], passphrase, connect=False
                        )
                    )
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
        its backends takes ~80 ms). The store key was derived ahead, while Qt and the
        SDK were imported; a key that does not open the store is tried again the SDK's
        way before giving up. A store kept under a keyring key has no salt file and
        refuses a passphrase at once, before any key derivation; anything else falls
        back to the usual keyring-or-passphrase path."""
        if not self.passphrase:
            return False
        relay_url, username = entry["relay_url"].rstrip("/"), entry["username"]
        derivation = self._derivations.pop((relay_url, username), None)
        key = derivation.key() if derivation is not None else None
        for attempt in ([key] if key is not None else []) + [None]:
            try:
                account = self.session.restore_account(
                    relay_url, username, self.passphrase, key=attempt, connect=False
                )
            except (StoreLocked, NoKeyAvailable):
                continue
            except NexusError as exc:
                log.warning("saved account not restored: %s", exc)
                return True
            self.to_connect.append(account)
            return True
        return False

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
        dialog = LoginDialog(self.session, invite=link, hosted_relay=self.hosted)
        if not keyring_available() and self.passphrase:
            dialog.use_passphrase(self.passphrase)
        if await wait_for_dialog(dialog):
            self.open_guild = dialog.guild_id or self.open_guild
            return True
        return bool(self.session.accounts)

    def connect_restored(self) -> None:
        """Connect the accounts reopened from their stores (each once)."""
        for account in self.to_connect:
            self.session.connect_account(account)
        self.to_connect.clear()

    async def run(self) -> bool:
        """Everything before the main window; False means quit."""
        if self.args.host_demo:
            await self.hosted.start()  # before the saved accounts reconnect to it
        if not await self.restore_accounts():
            return False
        if self.args.host_demo or self.args.invite or self.args.relay:
            self.connect_restored()  # what comes next may need them online
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
        # The window paints from the stores first; connecting (imports, TLS, the
        # gateway's first frames) waits for that paint instead of delaying it.
        after_first_paint(window, startup.connect_restored)
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


def launch(
    args: argparse.Namespace,
    data_dir: Path,
    passphrase: str | None,
    derivations: dict[tuple[str, str], StoreKeyDerivation],
) -> int:
    """Run the app until it quits; its exit code."""
    prewarm()
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

    apply_saved_theme(app, data_dir)
    session = AppSession(data_dir)
    startup = Startup(session, args, passphrase, derivations)
    app.aboutToQuit.connect(startup.hosted.stop)
    atexit.register(startup.hosted.stop)
    with loop:
        code: int = loop.run_until_complete(run_app(app, session, startup, reporter))
    return code
