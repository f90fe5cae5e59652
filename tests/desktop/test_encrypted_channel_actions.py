"""Reactions and deletions in an end-to-end encrypted community channel, through the
app's message view against a real relay: alice (the app) and bob (an SDK client) react
to each other's messages and the counts show on both sides; alice deletes her message
and it disappears for bob; bob may not delete alice's, and the app does not offer it."""

from __future__ import annotations

import asyncio
from pathlib import Path

from PySide6.QtWidgets import QVBoxLayout, QWidget

from nexus_client import Client, GroupMessage
from nexus_desktop.session import AppSession
from nexus_desktop.views.message_view import MessageView
from nexus_protocol.models import Message
from tests.desktop.sdk_users import PASSWORD, collect, sdk_user
from tests.waiting import until


def row_of(view: MessageView, message_id: int) -> Message | None:
    found = (view.model.item(r) for r in range(view.model.rowCount()))
    return next((m for m in found if isinstance(m, Message) and m.id == message_id), None)


def counts(message: Message | None) -> dict[str, tuple[int, bool]]:
    if message is None:
        return {}
    return {r.emoji.name: (r.count, r.me) for r in message.reactions}


async def test_reactions_and_deletions_in_an_encrypted_channel(
    relay_url: str, tmp_path: Path
) -> None:
    session = AppSession(tmp_path / "app")
    bob: Client | None = None
    window = QWidget()
    try:
        account = await session.add_account(
            relay_url, "alice", PASSWORD, register=True, passphrase="pass"
        )
        client = account.client
        guild = await client.create_guild("Quiet room")
        general = next(c for c in await client.fetch_channels(guild.id) if c.type == 0)
        bob = await sdk_user(relay_url, tmp_path, "bob")
        await bob.join((await client.create_invite(general.id)).code)
        bob_got: list[GroupMessage] = collect(bob, "group_message")
        await until(lambda: session.channel(general.id) is not None)
        encrypted = asyncio.get_running_loop().create_future()
        session.encrypt_channel(general.id, on_done=encrypted.set_result)
        await encrypted
        await until(lambda: len(session.members(guild.id)) == 2)

        view = MessageView(session)
        QVBoxLayout(window).addWidget(view)
        window.resize(800, 600)
        window.show()
        view.set_channel(general.id)

        # bob writes; alice reacts through the message menu; bob's client counts it.
        news = await bob.send_group(general.id, "the garden is planted")
        shown = await until(lambda: row_of(view, news))
        menu = view.build_menu(shown)
        react = next(a for a in menu.actions() if a.text() == "Add reaction").menu()
        assert react is not None
        next(a for a in react.actions() if a.text() == "👍").trigger()
        await until(lambda: counts(row_of(view, news)) == {"👍": (1, True)})
        await until(lambda: any(m.kind == "reaction" for m in bob_got))
        read = bob.decrypted_message(news)
        assert isinstance(read, GroupMessage) and read.reactions == {"👍": (client.user.id,)}  # type: ignore[union-attr]

        # bob adds his; alice sees two. Her click on it takes hers back.
        await bob.react_dm(general.id, news, "👍")
        await until(lambda: counts(row_of(view, news)) == {"👍": (2, True)})
        session.toggle_reaction(general.id, news, "👍", mine=True)
        await until(lambda: counts(row_of(view, news)) == {"👍": (1, False)})
        # Reactions are no rows of their own, and the relay saw only ciphertext.
        assert [m.id for m in (view.model.item(r) for r in range(view.model.rowCount()))] == [news]
        stored = await bob.http.request("GET", f"/channels/{general.id}/messages")
        assert all(m["content"] == "" and not m.get("reactions") for m in stored)

        # alice deletes her own message; it disappears here and for bob.
        mine = await session_send(session, general.id, "oops, wrong channel")
        await until(lambda: row_of(view, mine) is not None)
        assert view.can_delete(row_of(view, mine))  # type: ignore[arg-type]
        view.delete(row_of(view, mine))  # type: ignore[arg-type]
        await until(lambda: row_of(view, mine) is None)
        await until(lambda: (m := bob.decrypted_message(mine)) is not None and m.deleted)  # type: ignore[union-attr]

        # bob's message is not alice's to delete in an encrypted channel.
        assert not view.can_delete(row_of(view, news))  # type: ignore[arg-type]
        menu = view.build_menu(row_of(view, news))  # type: ignore[arg-type]
        assert "Delete" not in [a.text() for a in menu.actions()]
    finally:
        window.close()
        await session.close()
        if bob is not None:
            await bob.close()


async def session_send(session: AppSession, channel_id: int, text: str) -> int:
    """Send through the app's encrypted path; the new message's id."""
    sent: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    def created(message: object) -> None:
        if isinstance(message, Message) and message.content == text and not sent.done():
            sent.set_result(message.id)

    session.message_created.connect(created)
    session.message_updated.connect(created)
    session.send_message(channel_id, text)
    try:
        return await asyncio.wait_for(sent, 15)
    finally:
        session.message_created.disconnect(created)
        session.message_updated.disconnect(created)
