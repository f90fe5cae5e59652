"""A new font size or theme applies to the messages already on screen, not only to
those rendered afterwards."""

from __future__ import annotations

import asyncio
from pathlib import Path

from PySide6.QtWidgets import QApplication

from nexus_client import Client
from nexus_desktop.session import AppSession
from nexus_desktop.themes import apply_theme
from nexus_desktop.views.message_view import MessageView
from tests.waiting import until


async def test_a_bigger_font_relays_out_the_shown_messages(relay_url: str, tmp_path: Path) -> None:
    app = QApplication.instance()
    assert isinstance(app, QApplication)
    bob = Client(relay_url)
    await bob.register("bob", "correct horse battery")
    guild = await bob.create_guild("Large Print")
    general = next(c for c in await bob.fetch_channels(guild.id) if c.type == 0)
    invite = await bob.create_invite(general.id)
    for number in range(3):
        await bob.post_message(general.id, f"message {number} with **bold** and ||a spoiler||")
    session = AppSession(tmp_path / "app")
    view = MessageView(session)
    try:
        apply_theme(app, "dark")
        await session.add_account(
            relay_url,
            "alice",
            "correct horse battery",
            register=True,
            passphrase="test passphrase",
            invite=invite.code,
        )
        await until(lambda: session.channel(general.id) is not None)
        view.resize(800, 600)
        view.show()
        view.set_channel(general.id)
        await until(lambda: view.model.rowCount() >= 3)
        last = view.model.index(view.model.rowCount() - 1)

        def row_height() -> int:
            QApplication.processEvents()
            return view.list.visualRect(last).height()

        def drawn_text_size() -> float:
            # The documents the rows paint from: every one of them, not one made anew.
            sizes = {doc.defaultFont().pointSizeF() for doc in view.delegate._docs.values()}
            assert len(sizes) == 1, sizes
            return sizes.pop()

        await asyncio.sleep(0.1)
        height, points = row_height(), drawn_text_size()
        apply_theme(app, "dark", font_scale=1.5)
        await asyncio.sleep(0.1)
        bigger_height, bigger_points = row_height(), drawn_text_size()
        assert bigger_points > points * 1.4
        assert bigger_height > height * 1.2
    finally:
        apply_theme(app, "dark")
        view.close()
        await bob.close()
        await session.close()
