"""Encrypted DMs in the desktop app against a real relay: alice uses the app's DM list,
DM view and verification dialog; bob is a plain SDK client with his own store."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QHBoxLayout, QWidget

from nexus_client import Client, UndecryptableMessage
from nexus_desktop.e2ee_state import E2EEState
from nexus_desktop.search import DMLog, matches
from nexus_desktop.session import AppSession, SendBlocked
from nexus_desktop.views.dm_list import DMList
from nexus_desktop.views.dm_view import BANNER, DMView
from nexus_desktop.views.verify_dialog import digit_groups, qr_matrix
from tests.desktop.sdk_users import collect, sdk_user
from tests.waiting import until


class Meta:
    def __init__(self) -> None:
        self.values: dict[str, str] = {}

    def get_meta(self, key: str, default: str | None = None) -> str | None:
        return self.values.get(key, default)

    def set_meta(self, key: str, value: str | None) -> None:
        if value is None:
            self.values.pop(key, None)
        else:
            self.values[key] = value


def test_key_change_rule_and_log_search_without_qt() -> None:
    state = E2EEState(Meta())
    assert not state.observe(7, "a")  # first sighting: trusted
    assert not state.send_blocked(7, "a")
    assert state.observe(7, "b")  # changed, but never verified: shown, not blocked
    assert not state.send_blocked(7, "b")
    state.mark_verified(7, "b")
    assert state.is_verified(7, "b")
    assert state.observe(7, "c") and state.send_blocked(7, "c") and not state.is_verified(7, "c")
    state.acknowledge(7, "c")
    assert not state.send_blocked(7, "c") and not state.is_verified(7, "c")

    log = DMLog(Meta())
    assert log.add(1, {"type": "text", "id": "10", "author_id": "5", "text": "Pineapple pie"})
    assert not log.add(1, {"type": "text", "id": "10", "author_id": "5", "text": "dup"})
    assert not log.add(1, {"type": "edit", "target": "10", "author_id": "6", "text": "x"})
    assert log.add(1, {"type": "edit", "target": "10", "author_id": "5", "text": "apple pie"})
    log.add(2, {"type": "undecryptable", "id": "11", "author_id": "5", "reason": "replay"})
    assert [e["text"] for _, e in log.search("PIE")] == ["apple pie"]
    assert log.search("pineapple") == [] and log.channel_ids() == [1, 2]
    assert matches(log.entries(2)[0], "") and not matches(log.entries(2)[0], "pie")
    assert [len(g) for g in digit_groups("1" * 60)] == [5] * 12
    assert len(qr_matrix("x")) >= 21


def _dark_and_light(image: Any) -> tuple[int, int]:
    dark = light = 0
    for y in range(0, image.height(), 2):
        for x in range(0, image.width(), 2):
            value = QColor(image.pixel(x, y)).lightness()
            if value < 60:
                dark += 1
            elif value > 200:
                light += 1
    return dark, light


async def test_encrypted_dm_through_the_widgets(
    relay_url: str, artifacts: Path, tmp_path: Path
) -> None:
    bob = await sdk_user(relay_url, tmp_path, "bob", device="bob-desktop", register=True)
    bob_got = collect(bob, "dm_message")
    guild = await bob.create_guild("Secrets")
    general = next(c for c in await bob.fetch_channels(guild.id) if c.type == 0)
    invite = await bob.create_invite(general.id)
    assert bob.user is not None
    bob_id = bob.user.id
    bob2: Client | None = None

    session = AppSession(tmp_path / "app")
    window = QWidget()
    try:
        account = await session.add_account(
            relay_url,
            "alice",
            "correct horse battery",
            register=True,
            passphrase="test passphrase",
            invite=invite.code,
        )
        assert account.user is not None
        alice_id = account.user.id
        dm_list = DMList(session)
        view = DMView(session)
        dm_list.dm_selected.connect(view.set_channel)
        layout = QHBoxLayout(window)
        layout.addWidget(dm_list)
        layout.addWidget(view, 1)
        window.resize(980, 640)
        window.show()
        await session.enable_e2ee(account)  # the DM list started it; wait for it here
        await until(lambda: any(m.user and m.user.id == bob_id for m in session.members(guild.id)))

        # "New message" → pick bob from the shared community → the DM opens and is selected.
        dialog = dm_list.new_message_dialog()
        assert dialog.choose(bob_id), "bob is offered as a member of a shared community"
        dm_list.start_dm_from(dialog)
        dm = await until(lambda: view.channel_id)
        assert dm_list.current_dm() == dm
        assert dm_list.visible_names() == ["bob"]
        assert view.banner.text() == f"🔒 {BANNER}" and view.banner.isVisible()
        assert view.title.text() == "🔒 bob"

        # alice types and presses Enter → bob decrypts it.
        view.editor.setFocus()
        QTest.keyClicks(view.editor, "hello bob, the pineapple is **ripe**")
        QTest.keyClick(view.editor, Qt.Key.Key_Return)
        await until(lambda: any(m.text == "hello bob, the pineapple is **ripe**" for m in bob_got))
        assert bob_got[0].author_id == alice_id and bob_got[0].channel_id == dm
        await until(lambda: view.editor.toPlainText() == "")

        # bob replies → alice's view shows it, decrypted and rendered.
        await bob.send_dm(dm, "hi alice, bananas are `ready` too")
        await until(lambda: any("bananas are ready too" in t for t in view.row_texts()))
        texts = [e["text"] for e in view.visible_entries()]
        assert texts == [
            "hello bob, the pineapple is **ripe**",
            "hi alice, bananas are `ready` too",
        ]
        assert any("<code" in label.text() for label in view._row_labels)

        # A message alice's device could not decrypt is shown with its reason, not dropped.
        account.client.events.dispatch(
            "undecryptable", UndecryptableMessage(dm, 1, bob_id, "tampered", "auth failed")
        )
        await until(lambda: any("Undecryptable: tampered" in t for t in view.row_texts()))

        # Client-side search: the box filters this conversation; the session searches all.
        view.search_box.setText("pineapple")
        assert [e["text"] for e in view.visible_entries()] == [texts[0]]
        assert [e["text"] for _, e in session.search_dms("BANANAS")] == [texts[1]]
        view.search_box.setText("durian")
        assert view.visible_entries() == []
        assert "matches" in view.row_texts()[0]
        view.search_box.clear()
        assert len(view.visible_entries()) == 3
        await asyncio.sleep(0.2)
        assert window.grab().save(str(artifacts / "dm_conversation.png"))

        # Verification: the same 60 digits as bob's side, in 12 groups, and a QR code.
        verify = view.open_verify_dialog()
        assert verify is not None
        expected = bob.safety_number(alice_id)
        assert len(expected) == 60
        assert verify.shown_number() == expected == session.safety_number(bob_id)
        assert [label.text() for label in verify.group_labels] == digit_groups(expected)
        dark, light = _dark_and_light(verify.qr.render_pixmap(246).toImage())
        assert dark > 500 and light > 500, (dark, light)
        matrix = verify.qr.matrix()
        assert any(any(row) for row in matrix) and not all(all(row) for row in matrix)
        await asyncio.sleep(0.2)
        assert verify.grab().save(str(artifacts / "dm_verify_dialog.png"))
        assert not verify.verified
        QTest.mouseClick(verify.verify_button, Qt.MouseButton.LeftButton)
        assert verify.verified and verify.verify_button.text() == "Clear verification"
        assert session.is_verified(bob_id)
        verify.accept()
        await until(lambda: view.verify_button.text() == "Verified ✓")
        assert view.editor.isEnabled() and view.key_bar.isHidden()

        # bob gets a new device (new identity key): his safety number changes. alice was
        # verified with him, so the change shows and her composer waits for her.
        bob2 = await sdk_user(relay_url, tmp_path, "bob", device="bob-laptop", register=False)
        bob2_got = collect(bob2, "dm_message")
        await bob2.send_dm(dm, "bob here, from my new laptop")
        await until(lambda: any("new laptop" in t for t in view.row_texts()))
        await until(lambda: not view.key_bar.isHidden())
        assert any("bob's safety number changed" in t for t in view.row_texts())
        assert not view.editor.isEnabled() and not view.send_button.isEnabled()
        assert "Sending is paused" in view.editor.placeholderText()
        assert session.dm_send_blocked(dm) and not session.is_verified(bob_id)
        with pytest.raises(SendBlocked):
            await session.send_dm_now(dm, "must not leave")
        assert session.safety_number(bob_id) != expected
        await asyncio.sleep(0.2)
        assert window.grab().save(str(artifacts / "dm_key_change_blocked.png"))

        QTest.mouseClick(view.acknowledge_button, Qt.MouseButton.LeftButton)
        assert view.key_bar.isHidden() and view.editor.isEnabled()
        assert view.verify_button.text() == "Verify…"
        QTest.keyClicks(view.editor, "welcome, new laptop")
        QTest.keyClick(view.editor, Qt.Key.Key_Return)
        await until(lambda: any(m.text == "welcome, new laptop" for m in bob2_got))
        await until(lambda: any(m.text == "welcome, new laptop" for m in bob_got))
        assert not any(m.text == "must not leave" for m in bob_got + bob2_got)
        # The new number is equal on both of bob's devices' side and alice's.
        assert session.safety_number(bob_id) == bob2.safety_number(alice_id)
        await asyncio.sleep(0.2)
        assert window.grab().save(str(artifacts / "dm_after_acknowledge.png"))
        for name in ("dm_conversation", "dm_verify_dialog", "dm_key_change_blocked"):
            assert (artifacts / f"{name}.png").stat().st_size > 2_000
    finally:
        window.close()
        await session.close()
        await bob.close()
        if bob2 is not None:
            await bob2.close()
