"""Message search in the main window against a real relay: Ctrl+F, filters, the
results panel, paging order, hostile hit text, and jumping to a hit that is not in
the loaded history."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QKeySequence
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication

from nexus_client import Client
from nexus_desktop.session import AppSession
from nexus_desktop.views.main_window import MainWindow
from nexus_protocol.models import Message
from tests.waiting import until

PASSWORD = "correct horse battery"
HOSTILE = '<img src="file:///etc/passwd"> pineapple <b>bold</b> &amp; <a href="x">y</a>'


@pytest.fixture(autouse=True)
def keep_running_without_windows(qapp_instance: QApplication) -> None:
    qapp_instance.setQuitOnLastWindowClosed(False)


def search(window: MainWindow, text: str) -> None:
    box = window.search_box
    box.clear()
    QTest.keyClicks(box, text)
    QTest.keyClick(box, Qt.Key.Key_Return)


def hit_ids(window: MainWindow) -> list[int]:
    model = window.search_panel.model
    return [m.id for row in range(model.rowCount()) if (m := model.message(row)) is not None]


def shown_and_selected(window: MainWindow, message_id: int) -> bool:
    current = window.message_view.current_message()
    return current is not None and current.id == message_id and row_visible(window, message_id)


def row_visible(window: MainWindow, message_id: int) -> bool:
    view = window.message_view
    row = view.model.row_of(message_id)
    if row is None:
        return False
    rect = view.list.visualRect(view.model.index(row))
    return view.list.viewport().rect().intersects(rect)


async def test_search_filters_and_jump_to_an_old_hit(
    relay_url: str, tmp_path: Path, artifacts: Path
) -> None:
    bob = Client(relay_url)
    await bob.register("bob", PASSWORD)
    await bob.start()
    guild = await bob.create_guild("Fruit club")
    await until(lambda: guild.id in bob.cache.guilds, what="bob's community")
    general = next(c for c in bob.cache.channels_of(guild.id) if c.name == "general")
    channel2 = await bob.create_channel(guild.id, "channel2", parent_id=general.parent_id)

    # 150 messages in general (every tenth mentions pineapple), 50 in channel2 (every
    # fifth). The first ones are far older than what the app loads when it opens general.
    posted: dict[int, list[Message]] = {general.id: [], channel2.id: []}
    for i in range(150):
        text = f"pineapple number {i} in general" if i % 10 == 0 else f"general chatter {i}"
        posted[general.id].append(await bob.post_message(general.id, text))
    for i in range(50):
        text = f"pineapple number {i} in channel2" if i % 5 == 0 else f"side chatter {i}"
        posted[channel2.id].append(await bob.post_message(channel2.id, text))
    hostile = await bob.post_message(general.id, HOSTILE)
    last = await bob.post_message(general.id, "the latest word")
    pineapples = sorted(
        [m for msgs in posted.values() for m in msgs if "pineapple" in m.content] + [hostile],
        key=lambda m: m.id,
        reverse=True,
    )
    invite = await bob.create_invite(general.id)

    session = AppSession(tmp_path / "app")
    await session.add_account(
        relay_url,
        "alice",
        PASSWORD,
        register=True,
        passphrase="test passphrase",
        invite=invite.code,
    )
    window = MainWindow(session)
    window.resize(1280, 800)
    window.show()
    window.activateWindow()
    try:
        await until(lambda: window.guild_id == guild.id, what="the community open")
        await until(lambda: window.channel_id == general.id, what="#general open")
        await until(
            lambda: any(m.user and m.user.username == "bob" for m in session.members(guild.id)),
            what="bob among the members",
        )
        await until(lambda: window.message_view.model.row_of(last.id) is not None, what="history")
        oldest = posted[general.id][0]
        assert window.message_view.model.row_of(oldest.id) is None  # not loaded

        # Ctrl+F (a changeable keybind) puts the cursor in the header's search box.
        assert window.shortcuts["search"].key() == QKeySequence("Ctrl+F")
        window.message_view.list.setFocus()
        QTest.keyClick(window, Qt.Key.Key_F, Qt.KeyboardModifier.ControlModifier)
        await until(lambda: window.search_box.hasFocus(), what="the search box focused")

        # A word: every hit, newest first, in the panel where the member list was.
        panel = window.search_panel
        search(window, "pineapple")
        await until(lambda: panel.count_label.text() == "26 results", what="26 results")
        assert panel.isVisible() and not window.member_list.isVisible()
        assert hit_ids(window) == [m.id for m in pineapples[:25]]
        assert panel.page_label.text() == "Page 1 of 2" and not panel.previous_button.isEnabled()
        assert panel.result_texts()[1:3] == [
            "pineapple number 45 in channel2",
            "pineapple number 40 in channel2",
        ]
        assert not panel.status.isVisible()

        # Hostile text is shown as text: escaped, no image, nothing loaded.
        row = hit_ids(window).index(hostile.id)
        assert "<img" in panel.result_texts()[row]
        doc = panel.delegate.document(row, 300)
        assert "<img" not in doc.toHtml() and "&lt;img" in doc.toHtml()
        assert doc.toPlainText().startswith('<img src="file:///etc/passwd"> pineapple')
        assert doc.resource(2, "file:///etc/passwd") is None  # 2: an image resource
        assert "<b>pineapple</b>" in doc.toHtml() or "font-weight" in doc.toHtml()

        # The panel, laid out: rows one under another, painted, not blank.
        await asyncio.sleep(0.1)
        first = panel.list.visualRect(panel.model.index(0))
        second = panel.list.visualRect(panel.model.index(1))
        assert first.height() > panel.fontMetrics().height() * 2
        assert second.top() >= first.bottom() and second.height() > 0
        shot = panel.grab()
        shot.save(str(artifacts / "search_panel.png"))
        window.grab().save(str(artifacts / "search_window.png"))
        image = shot.toImage()
        colours = {
            image.pixel(x, y)
            for x in range(0, image.width(), 3)
            for y in range(first.top(), min(image.height(), second.bottom()), 3)
        }
        assert shot.width() == panel.width() and len(colours) > 4

        # The next page, and back.
        QTest.mouseClick(panel.next_button, Qt.MouseButton.LeftButton)
        await until(lambda: hit_ids(window) == [pineapples[25].id], what="page 2")
        assert panel.page_label.text() == "Page 2 of 2" and not panel.next_button.isEnabled()
        QTest.mouseClick(panel.previous_button, Qt.MouseButton.LeftButton)
        await until(lambda: len(hit_ids(window)) == 25, what="page 1 again")

        # Oldest first.
        QTest.mouseClick(panel.sort_button, Qt.MouseButton.LeftButton)
        oldest_first = [m.id for m in reversed(pineapples)][:25]
        await until(lambda: hit_ids(window) == oldest_first, what="oldest first")

        # Filters: from:bob in:channel2.
        search(window, "from:bob in:channel2 pineapple")
        await until(lambda: panel.count_label.text() == "10 results", what="channel2 hits")
        found = [panel.model.message(row) for row in range(panel.model.rowCount())]
        assert {m.channel_id for m in found if m is not None} == {channel2.id}

        # An unknown name is said so, not searched.
        search(window, "from:nobody pineapple")
        await until(lambda: "nobody" in panel.status.text(), what="unknown name")
        assert "no member called" in panel.status.text()
        assert panel.model.rowCount() == 0 and panel.count_label.text() == ""

        # Clicking a hit in another channel opens it there, selected.
        search(window, "in:channel2 pineapple")
        await until(lambda: panel.count_label.text() == "10 results", what="channel2 again")
        target = panel.model.message(2)
        assert target is not None
        rect = panel.list.visualRect(panel.model.index(2))
        QTest.mouseClick(panel.list.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
        await until(lambda: window.channel_id == channel2.id, what="channel2 open")
        await until(lambda: shown_and_selected(window, target.id), what="the channel2 hit")

        # The keyboard: down into the results, Enter opens the oldest general hit, which
        # is not in the loaded history: fetched around, scrolled to, selected.
        search(window, "in:general pineapple")
        await until(lambda: panel.count_label.text() == "16 results", what="general hits")
        QTest.keyClick(window.search_box, Qt.Key.Key_Down)
        assert panel.list.hasFocus()
        assert panel.sort_button.isChecked()  # still oldest first: the oldest on top
        for key in (Qt.Key.Key_Down, Qt.Key.Key_Down, Qt.Key.Key_Up, Qt.Key.Key_Up):
            QTest.keyClick(panel.list, key)
        chosen = panel.model.message(panel.list.currentIndex().row())
        assert chosen is not None and chosen.id == oldest.id
        QTest.keyClick(panel.list, Qt.Key.Key_Return)
        await until(lambda: window.channel_id == general.id, what="general open")
        await until(lambda: shown_and_selected(window, oldest.id), what="the old hit")
        view = window.message_view
        assert not view.model.at_present and view.model.row_of(last.id) is None
        assert view.jump_button.isVisible()

        # "Jump to present" returns to the newest messages, live again.
        QTest.mouseClick(view.jump_button, Qt.MouseButton.LeftButton)
        newest = view.model.newest_message()
        assert view.model.at_present and newest is not None and newest.id == last.id
        ids = [m.id for m in view.model.messages()]
        assert ids == sorted(ids) and oldest.id not in ids
        live = await bob.post_message(general.id, "after the jump")
        await until(lambda: view.model.row_of(live.id) is not None, what="a live message")

        # A hit in the middle of the past: scrolling up from it brings older messages,
        # reading down brings newer ones until the window is live again, with no gap.
        middle = posted[general.id][30]
        panel.list.setFocus()
        panel.list.setCurrentIndex(panel.model.index(3))
        QTest.keyClick(panel.list, Qt.Key.Key_Return)
        await until(lambda: shown_and_selected(window, middle.id), what="the middle hit")
        assert view.model.detached and view.model.row_of(oldest.id) is None
        view.list.verticalScrollBar().setValue(0)
        await until(lambda: view.model.oldest_id() == oldest.id, what="the channel's start")

        def read_down() -> bool:
            bar = view.list.verticalScrollBar()
            bar.setValue(bar.maximum())
            return view.model.at_present

        await until(read_down, what="reading down to the present")
        everything = sorted(m.id for m in [*posted[general.id], hostile, last, live])
        assert [m.id for m in view.model.messages()] == everything
        later = await bob.post_message(general.id, "live again")
        await until(lambda: view.model.row_of(later.id) is not None, what="live again")

        # Esc in the search box closes the panel; the member list is back.
        window.search_box.setFocus()
        QTest.keyClick(window.search_box, Qt.Key.Key_Escape)
        assert not panel.isVisible() and window.member_list.isVisible()
    finally:
        window.close()
        await session.close()
        await bob.close()


@pytest.fixture
def stoppable_relay(tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A relay of this test's own, which the test may stop (the shared fixture's
    cannot be)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "nexus_server.cli", "--port", str(port)),
            *("--data", str(tmp_path / "relay"), "--log-level", "warning", "--no-rate-limits"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
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
            assert process.poll() is None and time.monotonic() < deadline, "relay start"
            time.sleep(0.05)
        yield url, process
    finally:
        process.terminate()
        process.wait(10)


async def test_search_states_empty_closing_and_errors(
    stoppable_relay: tuple[str, subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    relay_url, relay = stoppable_relay
    session = AppSession(tmp_path / "app")
    account = await session.add_account(
        relay_url, "alice", PASSWORD, register=True, passphrase="test passphrase"
    )
    session.run(account.client.create_guild("Alone"))
    await until(lambda: len(session.all_guilds()) == 1, what="the community")
    window = MainWindow(session)
    window.show()
    try:
        await until(lambda: window.channel_id is not None, what="a channel open")
        panel = window.search_panel
        # Empty input: a hint, no request.
        search(window, "   ")
        assert panel.isVisible() and "Type words to search" in panel.status.text()
        # The close button brings the member list back.
        QTest.mouseClick(panel.close_button, Qt.MouseButton.LeftButton)
        assert not panel.isVisible() and window.member_list.isVisible()
        # A search with no hit says so.
        search(window, "nothing-here")
        await until(lambda: panel.count_label.text() == "0 results", what="no hits")
        assert "No messages match" in panel.status.text()
        # The relay gone: the panel says so instead of spinning.
        relay.terminate()
        relay.wait(10)
        search(window, "anything")
        assert panel.status.text() == "Searching…"
        await until(lambda: panel.status.text() != "Searching…", 30, what="an error shown")
        assert "cannot be reached" in panel.status.text()
        assert panel.status.isVisible() and panel.model.rowCount() == 0
        # The Members button, pressed twice, takes the member list back as well.
        QTest.mouseClick(window.members_toggle, Qt.MouseButton.LeftButton)
        QTest.mouseClick(window.members_toggle, Qt.MouseButton.LeftButton)
        assert window.member_list.isVisible() and not panel.isVisible()
    finally:
        window.close()
        await session.close()
