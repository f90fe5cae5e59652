"""The test rig itself: asyncio runs on Qt's loop, so awaiting lets widgets live."""

from __future__ import annotations

import asyncio

from PySide6.QtWidgets import QLabel


async def test_awaiting_keeps_the_qt_loop_running(relay_url: str) -> None:
    label = QLabel("waiting")
    label.show()
    await asyncio.sleep(0.05)
    assert label.isVisible()
    assert type(asyncio.get_running_loop()).__module__ == "qasync"
    label.close()
