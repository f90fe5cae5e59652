"""Message actions in the desktop app's encrypted DM view against a real relay: alice
replies, edits (Up in the empty box), reacts and deletes through the view's menu and
keys; bob, a plain SDK client, sees each one decrypted; bob's own edit and reaction
show live in alice's view."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QMenu

from nexus_client import DMMessage
from nexus_desktop.session import AppSession
from nexus_desktop.views.dm_view import DMView
from tests.desktop.sdk_users import collect, sdk_user
from tests.waiting import until


def trigger(menu: QMenu, text: str) -> None:
    for action in menu.actions():
        if action.text() == text:
            assert action.isEnabled(), text
            action.trigger()
            return
        sub = action.menu()
        if isinstance(sub, QMenu) and action.text() != text:
            for inner in sub.actions():
                if inner.text() == text:
                    inner.trigger()
                    return
    raise AssertionError(f"no {text!r} in {[a.text() for a in menu.actions()]}")


def entry_of(view: DMView, message_id: int) -> dict[str, Any]:
    return next(e for e in view.visible_entries() if e.get("id") == str(message_id))


def decrypted(client: Any, message_id: int) -> DMMessage:
    found = client.decrypted_message(message_id)
    assert isinstance(found, DMMessage), found
    return found


async def test_reply_edit_react_and_delete_in_a_dm(relay_url: str, tmp_path: Path) -> None:
    bob = await sdk_user(relay_url, tmp_path, "bob", device="bob-desktop", register=True)
    bob_got: list[DMMessage] = collect(bob, "dm_message")
    guild = await bob.create_guild("Lighthouse")
    general = next(c for c in await bob.fetch_channels(guild.id) if c.type == 0)
    invite = await bob.create_invite(general.id)
    assert bob.user is not None
    bob_id = bob.user.id
    session = AppSession(tmp_path / "app")
    view = DMView(session)
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
        dm = await session.open_dm_now(bob_id, account)
        view.resize(800, 600)
        view.show()
        view.set_channel(dm)

        question = await bob.send_dm(dm, "is the lighthouse key under the mat?")
        await until(lambda: any("under the mat" in t for t in view.row_texts()))

        # Right-click menu → Reply: the bar shows; Esc cancels it; Reply again and send.
        menu = view.message_menu(entry_of(view, question))
        assert [a.text() for a in menu.actions() if a.text()] == [
            "Reply",
            "Add reaction",
            "Copy text",
        ]  # not alice's message: no Edit, no Delete
        trigger(menu, "Reply")
        assert view.reply_bar.isVisible() and "Replying to bob" in view.reply_label.text()
        QTest.keyClick(view.editor, Qt.Key.Key_Escape)
        assert view.reply_bar.isHidden() and view.replying_to is None
        trigger(view.message_menu(entry_of(view, question)), "Reply")
        QTest.keyClicks(view.editor, "no, under the blu stone")
        QTest.keyClick(view.editor, Qt.Key.Key_Return)
        await until(lambda: any(m.reply_to == question for m in bob_got))
        reply = next(m for m in bob_got if m.reply_to == question).message_id
        await until(lambda: view.reply_bar.isHidden() and view.editor.toPlainText() == "")
        await until(lambda: any("↪ bob: is the lighthouse key" in t for t in view.row_texts()))

        # Up in the empty box edits alice's last message; Enter saves it.
        view.editor.setFocus()
        QTest.keyClick(view.editor, Qt.Key.Key_Up)
        assert view.editing is not None and view.editing["id"] == str(reply)
        assert view.editor.toPlainText() == "no, under the blu stone"
        view.editor.setPlainText("no, under the blue stone")
        QTest.keyClick(view.editor, Qt.Key.Key_Return)
        await until(lambda: decrypted(bob, reply).text == "no, under the blue stone")
        assert decrypted(bob, reply).edited
        await until(lambda: any("blue stone" in t and "(edited)" in t for t in view.row_texts()))
        assert entry_of(view, reply)["edited"] is True

        # The Menu key on a message opens its menu; Add reaction → 👍.
        label = view.row_label(question)
        assert label is not None and label.accessibleName() == "Message from bob"
        label.setFocus()
        QTest.keyClick(label, Qt.Key.Key_Menu)
        assert view.active_menu is not None and view.active_menu.isVisible()
        view.active_menu.close()
        trigger(view.message_menu(entry_of(view, question)), "👍")
        await until(lambda: dict(decrypted(bob, question).reactions) == {"👍": (alice_id,)})
        await until(lambda: [b.text() for b in view.reaction_buttons(question)] == ["👍 1"])
        assert view.reaction_buttons(question)[0].isChecked()

        # bob reacts too and edits his question: both show live in alice's view.
        await bob.react_dm(dm, question, "👍")
        await until(lambda: [b.text() for b in view.reaction_buttons(question)] == ["👍 2"])
        assert "including you" in view.reaction_buttons(question)[0].accessibleName()
        await bob.edit_dm(dm, question, "is the lighthouse key under the red mat?")
        await until(lambda: any("red mat?" in t and "(edited)" in t for t in view.row_texts()))

        # A click on her reaction takes alice's back.
        QTest.mouseClick(view.reaction_buttons(question)[0], Qt.MouseButton.LeftButton)
        await until(lambda: dict(decrypted(bob, question).reactions) == {"👍": (bob_id,)})
        await until(lambda: [b.text() for b in view.reaction_buttons(question)] == ["👍 1"])
        assert not view.reaction_buttons(question)[0].isChecked()

        # Copy text, then Delete (alice's own): gone for bob and from her view.
        trigger(view.message_menu(entry_of(view, reply)), "Copy text")
        assert QApplication.clipboard().text() == "no, under the blue stone"
        own_menu = view.message_menu(entry_of(view, reply))
        assert "Edit" in [a.text() for a in own_menu.actions()]
        trigger(own_menu, "Delete")
        await until(lambda: decrypted(bob, reply).deleted)
        await until(lambda: not any("blue stone" in t for t in view.row_texts()))
        assert [m.kind for m in bob_got] == ["text", "edit", "reaction", "reaction", "delete"]

        # The conversation's search still finds the edited text, and only that.
        view.search_box.setText("red mat")
        assert [e["id"] for e in view.visible_entries()] == [str(question)]
        assert session.search_dms("blue stone") == []
        view.search_box.clear()
    finally:
        view.close()
        await session.close()
        await bob.close()
