"""Voice in the desktop app against a real relay and its SFU: alice uses the app (channel
list, voice panel, consent dialog, settings); bob is a plain SDK client. Nobody here has
a sound card: both speak a tone and play into nothing."""

from __future__ import annotations

import asyncio
import io
import secrets
from pathlib import Path

from PIL import Image
from PySide6.QtCore import QPoint, Qt
from PySide6.QtGui import QColor, QImage
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication

from nexus_client import Client
from nexus_client.store import LocalStore
from nexus_client.voice.audio import AudioSink, AudioSource, NullSink, ToneSource
from nexus_desktop.models.channels import (
    ChannelIdRole,
    SpeakingRole,
    VoiceMutedRole,
    VoiceUserRole,
)
from nexus_desktop.prefs import Prefs
from nexus_desktop.session import AppSession
from nexus_desktop.views.call_dialogs import ConsentDialog, RingDialog
from nexus_desktop.views.channel_list import AVATAR, PERSON_INDENT
from nexus_desktop.views.main_window import MainWindow
from nexus_desktop.views.settings_dialog import SettingsDialog
from nexus_desktop.views.voice_panel import VolumePopup
from nexus_desktop.views.voice_settings_page import VoiceSettingsPage
from nexus_desktop.voice import VoiceSettings
from tests.waiting import until

PASSWORD = "correct horse battery"
PURPLE = QColor(128, 0, 200)


def solid_png(colour: QColor, size: int = 64) -> bytes:
    picture = io.BytesIO()
    rgb = (colour.red(), colour.green(), colour.blue())
    Image.new("RGB", (size, size), rgb).save(picture, "PNG")
    return picture.getvalue()


def close_to(actual: QColor, expected: QColor, tolerance: int = 24) -> bool:
    return (
        abs(actual.red() - expected.red()) <= tolerance
        and abs(actual.green() - expected.green()) <= tolerance
        and abs(actual.blue() - expected.blue()) <= tolerance
    )


def tone_audio(_settings: VoiceSettings) -> tuple[AudioSource, AudioSink]:
    return ToneSource(440, amplitude=0.3), NullSink()


def greenish(image: QImage, x: int, y: int, radius: int = 2) -> bool:
    """Any pixel near (x, y) clearly green: the speaking ring."""
    for dx in range(-radius, radius + 1):
        for dy in range(-radius, radius + 1):
            color = QColor(image.pixel(x + dx, y + dy))
            if color.green() > color.red() + 40 and color.green() > color.blue() + 20:
                return True
    return False


async def test_voice_channel_join_mute_consent_and_disconnect(
    relay_url: str, artifacts: Path, tmp_path: Path
) -> None:
    data_dir = tmp_path / "app"
    # A steady tone is not speech to the noise suppressor; without it, it is "talking".
    VoiceSettings(noise_suppression=False).save(Prefs(data_dir))
    session = AppSession(data_dir, audio_factory=tone_audio)
    account = await session.add_account(
        relay_url, "alice", PASSWORD, register=True, passphrase="test passphrase"
    )
    alice_id = account.user.id if account.user else 0
    bob = Client(relay_url)
    await bob.register("bob", PASSWORD)
    await bob.start()
    window: MainWindow | None = None
    try:
        guild = await bob.create_guild("Voice home")
        await until(lambda: guild.id in bob.cache.guilds)
        general = next(c for c in bob.cache.channels_of(guild.id) if c.name == "general")
        session.run(account.client.join((await bob.create_invite(general.id)).code))
        voice_category = next(c for c in bob.cache.channels_of(guild.id) if c.type == 2).parent_id
        lounge = await bob.create_channel(guild.id, "Lounge", type=2, parent_id=voice_category)
        await until(lambda: session.channel(lounge.id) is not None)
        assert bob.user is not None
        bob_id = bob.user.id

        window = MainWindow(session)
        window.resize(1100, 700)
        window.show()
        window.rail.select_guild(guild.id)
        channels = window.channel_list
        await until(lambda: "Lounge" in channels.visible_names())
        assert not window.voice_panel.isVisible()
        assert channels.current_channel() == general.id

        # Bob has a picture: it shows on his row under the voice channel.
        await bob.set_avatar(solid_png(PURPLE))

        # Bob is already talking in Lounge: alice sees him under it without joining.
        bob_call = await bob.join_voice(
            lounge.id,
            source=ToneSource(660, amplitude=0.3),
            sink=NullSink(),
            noise_suppression=False,
        )

        def under_lounge() -> list[str]:
            names = channels.visible_names()
            start = names.index("Lounge") + 1
            return names[start : start + len(session.voice.people_in(lounge.id))]

        await until(lambda: under_lounge() == ["bob"])

        # Clicking Lounge joins it; general stays open and selected.
        row = channels.model.index_of(lounge.id)
        point = channels.tree.visualRect(row).center()
        QTest.mouseClick(channels.tree.viewport(), Qt.MouseButton.LeftButton, pos=point)
        panel = window.voice_panel
        await until(lambda: panel.status.text() == "Voice connected")
        assert session.voice.connected and session.voice.channel_id == lounge.id
        selected = channels.tree.selectionModel().selectedIndexes()
        assert [ix.data(ChannelIdRole) for ix in selected] == [general.id]
        await until(
            lambda: (bob.voice_states.of_user(alice_id) or {}).get("channel_id") == str(lounge.id)
        )
        await until(lambda: sorted(under_lounge()) == ["alice", "bob"])

        assert panel.isVisible()
        assert panel.channel.text() == "Lounge"
        assert panel.path.text() == "relay"
        assert not panel.lock.isVisible()  # a community voice channel: not end-to-end
        assert not panel.rec.isVisible()

        # Both tones arrive: speaking rings on both rows.
        def row_of(user_id: int) -> object:
            return channels.model.index_of(lounge.id, user_id)

        await until(lambda: row_of(bob_id).data(SpeakingRole))  # type: ignore[attr-defined]
        await until(lambda: row_of(alice_id).data(SpeakingRole))  # type: ignore[attr-defined]
        assert bob_call.path == "sfu"

        # The screenshot: panel above the user panel, people indented under Lounge.
        await asyncio.sleep(0.15)
        image = window.grab().toImage()
        image.save(str(artifacts / "voice_panel.png"))
        panel_box = panel.geometry()
        panel_top = panel.mapTo(window, QPoint(0, 0)).y()
        user_panel_top = window.user_panel.mapTo(window, QPoint(0, 0)).y()
        assert panel_box.height() > 40 and panel_top + panel_box.height() <= user_panel_top
        lounge_box = channels.tree.visualRect(channels.model.index_of(lounge.id))
        people = [channels.tree.visualRect(row_of(u)) for u in (alice_id, bob_id)]  # type: ignore[arg-type]
        tops = sorted(box.top() for box in people)
        assert tops[0] >= lounge_box.bottom() and tops[1] >= tops[0] + people[0].height()
        viewport = channels.tree.viewport()
        assert all(viewport.rect().contains(box) for box in people)
        for box in people:  # the ring left of each name is drawn green
            ring = viewport.mapTo(window, QPoint(box.left() + 30, box.center().y()))
            assert greenish(image, ring.x(), ring.y()), "no speaking ring"

        def avatar_colour(user_id: int) -> QColor:
            box = channels.tree.visualRect(row_of(user_id))  # type: ignore[arg-type]
            centre = QPoint(box.left() + PERSON_INDENT + 4 + AVATAR // 2, box.center().y())
            return viewport.grab().toImage().pixelColor(centre)

        await until(lambda: close_to(avatar_colour(bob_id), PURPLE))
        assert not close_to(avatar_colour(alice_id), PURPLE)  # hers: the initial

        # Per-person volume, by keyboard: Down from Lounge reaches bob, the menu key
        # opens his 0 to 200 % slider.
        channels.tree.setFocus()
        channels.tree.setCurrentIndex(channels.model.index_of(lounge.id))
        QTest.keyClick(channels.tree, Qt.Key.Key_Down)
        assert channels.tree.currentIndex().data(VoiceUserRole) == bob_id
        QTest.keyClick(channels.tree, Qt.Key.Key_Menu)
        popup = next(p for p in channels.findChildren(VolumePopup) if p.isVisible())
        assert popup.slider.maximum() == 200 and popup.slider.value() == 100
        popup.slider.setValue(150)
        assert session.voice.volume(bob_id) == 150
        popup.close()

        # The settings page meters alice's tone while she is in the call.
        page = VoiceSettingsPage(session.voice, Prefs(data_dir))
        page.show()
        await until(lambda: page.meter.level_db is not None and page.meter.fraction() > 0.5)
        assert page.meter_hint.text().endswith("dB")
        page.hide()
        page.deleteLater()

        # Mute: bob's client sees it, and alice's row shows the slashed mic.
        QTest.mouseClick(panel.mute_button, Qt.MouseButton.LeftButton)
        await until(lambda: (bob.voice_states.of_user(alice_id) or {}).get("self_mute") is True)
        await until(lambda: row_of(alice_id).data(VoiceMutedRole))  # type: ignore[attr-defined]
        assert panel.mute_button.accessibleName() == "Unmute"
        await until(lambda: not row_of(alice_id).data(SpeakingRole))  # type: ignore[attr-defined]

        # Bob asks to record: alice is asked, refuses; bob's side records her refusal.
        await bob_call.request_recording(tmp_path / "bob-recordings")

        def consent_dialog() -> ConsentDialog | None:
            shown = [d for d in window.findChildren(ConsentDialog) if d.isVisible()]
            return shown[0] if shown else None

        await until(consent_dialog)
        dialog = consent_dialog()
        assert dialog is not None
        assert dialog.question.text() == (
            "bob wants to record this call. Allow recording your voice?"
        )
        assert panel.rec.isVisible()
        assert not panel.record_button.isEnabled()  # one recording per call
        QTest.mouseClick(dialog.refuse_button, Qt.MouseButton.LeftButton)

        def alice_consent() -> object:
            recording = bob_call.recording or {}
            return (recording.get("consents") or {}).get(str(alice_id), "unanswered")

        await until(lambda: alice_consent() is False)
        assert consent_dialog() is None
        await bob_call.stop_recording()
        await until(lambda: not panel.rec.isVisible())

        # alice records (bob agrees); Stop says where the files went.
        assert panel.record_button.accessibleName() == "Record"
        QTest.mouseClick(panel.record_button, Qt.MouseButton.LeftButton)
        await until(lambda: (bob_call.recording or {}).get("recorder_id") == str(alice_id))
        await bob_call.answer_recording(True)
        await until(lambda: panel.record_button.accessibleName() == "Stop recording")
        assert panel.rec.isVisible()
        QTest.mouseClick(panel.record_button, Qt.MouseButton.LeftButton)
        await until(panel.notice.isVisible)
        assert panel.notice.text().startswith(f"Recording saved in {data_dir / 'recordings'}")
        await until(lambda: not panel.rec.isVisible())

        # Disconnect: bob sees alice leave; only bob stays under Lounge; the panel goes.
        QTest.mouseClick(panel.disconnect_button, Qt.MouseButton.LeftButton)
        await until(lambda: bob.voice_states.of_user(alice_id) is None)
        await until(lambda: under_lounge() == ["bob"])
        assert not panel.isVisible()
        assert not row_of(alice_id).isValid()  # type: ignore[attr-defined]

        # She joins again and bob, the owner, disconnects her: the call ends in her app.
        point = channels.tree.visualRect(channels.model.index_of(lounge.id)).center()
        QTest.mouseClick(channels.tree.viewport(), Qt.MouseButton.LeftButton, pos=point)
        await until(lambda: panel.status.text() == "Voice connected")
        await bob.http.request(
            "PATCH", f"/guilds/{guild.id}/members/{alice_id}", json={"channel_id": None}
        )
        await until(lambda: not panel.isVisible())
        assert session.voice.connection is None and under_lounge() == ["bob"]
        await bob_call.leave()
        await until(lambda: "bob" not in channels.visible_names())
    finally:
        if window is not None:
            window.hide()  # hide, not close: closing the last window would stop the loop
        await bob.close()
        await session.close()


async def test_voice_settings_page_defaults_and_persistence(tmp_path: Path) -> None:
    data_dir = tmp_path / "app"
    session = AppSession(data_dir, audio_factory=tone_audio)
    prefs = Prefs(data_dir)
    try:
        dialog = SettingsDialog(session, prefs=prefs)
        dialog.show()
        dialog.show_page("Voice & Audio")
        page = dialog.voice_page
        assert dialog.pages.currentWidget() is page and page.isVisible()
        # No sound card here: "Default" is the choice, first in each list.
        for box in (page.input_device, page.output_device):
            assert box.itemText(0) == "Default" and box.currentText() == "Default"
            assert box.accessibleName()
        assert page.noise_suppression.isChecked() and not page.spatial.isChecked()
        assert page.mode.currentText() == "Voice activity" and not page.ptt_key.isEnabled()
        assert page.meter_hint.text().startswith("Join a voice channel")
        assert page.meter.level_db is None and page.meter.fraction() == 0.0

        page.noise_suppression.setChecked(False)
        page.spatial.setChecked(True)
        page.mode.setCurrentIndex(page.mode.findData("ptt"))
        assert page.ptt_key.isEnabled()
        page.ptt_key.setKeySequence("F8")
        page.ptt_key.editingFinished.emit()
        # The Keybinds page shows the same push-to-talk key.
        assert dialog.keybinds_page.values()["push_to_talk"] == "F8"
        dialog.hide()

        saved = VoiceSettings.from_prefs(Prefs(data_dir))
        assert saved == VoiceSettings(noise_suppression=False, mode="ptt", spatial=True)
        assert Prefs(data_dir).keybinds()["push_to_talk"] == "F8"
        again = SettingsDialog(session, prefs=Prefs(data_dir)).voice_page
        assert not again.noise_suppression.isChecked() and again.spatial.isChecked()
        assert again.mode.currentData() == "ptt" and again.ptt_key.keySequence().toString() == "F8"
        for widget in (again.noise_suppression, again.spatial, again.mode, again.meter):
            assert widget.accessibleName()
        app = QApplication.instance()
        assert app is not None
    finally:
        await session.close()


async def test_dm_call_ring_decline_call_back_and_push_to_talk(
    relay_url: str, tmp_path: Path
) -> None:
    (tmp_path / "bob").mkdir()
    store = LocalStore.open_with_key(tmp_path / "bob" / "bob.db", secrets.token_bytes(32))
    bob = Client(relay_url, store=store)
    await bob.register("bob", PASSWORD)
    await bob.start()
    await bob.e2ee_setup(device_name="bob's laptop")
    calls: list[tuple[str, dict[str, object]]] = []

    @bob.listen("dispatch")
    async def on_dispatch(event: str, data: object) -> None:
        if event.startswith("CALL_") and isinstance(data, dict):
            calls.append((event, data))

    session = AppSession(tmp_path / "app", audio_factory=tone_audio)
    window: MainWindow | None = None
    try:
        guild = await bob.create_guild("Call friends")  # DMs need a shared community
        general = next(c for c in await bob.fetch_channels(guild.id) if c.type == 0)
        invite = await bob.create_invite(general.id)
        account = await session.add_account(
            relay_url,
            "alice",
            PASSWORD,
            register=True,
            passphrase="test passphrase",
            invite=invite.code,
        )
        assert account.user is not None and bob.user is not None
        alice_id = account.user.id
        await session.enable_e2ee(account)
        window = MainWindow(session)
        window.show()
        dm = await bob.open_dm(alice_id)

        # bob calls: alice's app rings, naming him; she declines and the ringing stops.
        bob_call = await bob.join_voice(
            dm, source=ToneSource(660, amplitude=0.3), sink=NullSink(), noise_suppression=False
        )

        main = window

        def ring_dialog() -> RingDialog | None:
            shown = [d for d in main.findChildren(RingDialog) if d.isVisible()]
            return shown[0] if shown else None

        await until(ring_dialog)
        ring = ring_dialog()
        assert ring is not None and ring.question.text() == "bob is calling you."
        assert ring.accept_button.accessibleName() == "Accept the call from bob"
        QTest.mouseClick(ring.decline_button, Qt.MouseButton.LeftButton)
        await until(
            lambda: calls and calls[-1][0] == "CALL_UPDATE" and calls[-1][1]["ringing"] == []
        )
        assert ring_dialog() is None
        assert session.voice.channel_id is None and not window.voice_panel.isVisible()

        # alice calls back from the DM's header: she joins bob's call, encrypted.
        window.open_dm(dm)
        assert window.dm_view.call_button.isEnabled()
        QTest.mouseClick(window.dm_view.call_button, Qt.MouseButton.LeftButton)
        panel = window.voice_panel
        await until(lambda: panel.status.text() == "Voice connected", timeout=25)
        assert panel.isVisible() and session.voice.connected
        assert panel.channel.text() == "Call with bob"
        assert panel.lock.isVisible()  # DM calls are end-to-end encrypted
        assert panel.path.text() in ("direct", "relay")
        assert panel.path.text() == {"direct": "direct", "sfu": "relay"}[bob_call.path]
        await until(lambda: session.voice.is_speaking(bob.user.id))  # type: ignore[union-attr]

        # Push to talk: silent until F8 is held in the main window.
        prefs = Prefs(tmp_path / "app")
        prefs.set("keybinds", {**prefs.keybinds(), "push_to_talk": "F8"})
        session.voice.apply_settings(VoiceSettings(noise_suppression=False, mode="ptt"))
        window.push_to_talk.reload()
        await until(lambda: not session.voice.is_speaking(alice_id))
        window.activateWindow()
        await until(window.isActiveWindow)
        QTest.keyPress(window.dm_view.editor, Qt.Key.Key_F8)
        await until(lambda: session.voice.is_speaking(alice_id))
        QTest.keyRelease(window.dm_view.editor, Qt.Key.Key_F8)
        await until(lambda: not session.voice.is_speaking(alice_id))
        QTest.mouseClick(panel.disconnect_button, Qt.MouseButton.LeftButton)
        await until(lambda: bob.voice_states.of_user(alice_id) is None)
        await bob_call.leave()
    finally:
        if window is not None:
            window.hide()
        await bob.close()
        await session.close()
