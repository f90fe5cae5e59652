"""Desktop tests: one offscreen QApplication for the session, asyncio running on Qt's
event loop (qasync, as in the app), and a real relay started as a subprocess."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import httpx
import pytest
import qasync
from PySide6.QtWidgets import QApplication

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"


@pytest.fixture(scope="session")
def qapp_instance() -> QApplication:
    app = QApplication.instance() or QApplication(["nexus-tests"])
    assert isinstance(app, QApplication)
    return app


def _qt_event_loop() -> asyncio.AbstractEventLoop:
    app = QApplication.instance() or QApplication(["nexus-tests"])
    assert isinstance(app, QApplication)
    # A test closing its last window must not stop the loop under the test.
    app.setQuitOnLastWindowClosed(False)
    return qasync.QEventLoop(app)


def pytest_asyncio_loop_factories(config: pytest.Config, item: pytest.Item) -> dict[str, object]:
    """Every async desktop test runs on a Qt event loop, as the app does, so widgets
    paint and signals flow while the test awaits."""
    return {"qt": _qt_event_loop}


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def relay_url(tmp_path: Path) -> Iterator[str]:
    """A real relay (SQLite) in its own process, as the app's "Host a community" runs it."""
    port = _free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "nexus_server.cli",
            "--port",
            str(port),
            "--data",
            str(tmp_path / "relay"),
            "--log-level",
            "warning",
            "--no-rate-limits",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/api/v10/gateway", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"relay did not start: {process.stderr.read()!r}")  # type: ignore[union-attr]
            time.sleep(0.05)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stderr is not None:
            process.stderr.close()
