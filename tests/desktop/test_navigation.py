"""Navigation against a real relay: the community rail, the channel tree, unread and
mention badges, the member list with hoisted roles and presence, the quick switcher."""

from __future__ import annotations

import asyncio
from pathlib import Path

from nexus_client import Client
from nexus_desktop.models.channels import ChannelIdRole, MentionRole, UnreadRole
from nexus_desktop.models.guilds import MentionRole as GuildMentionRole
from nexus_desktop.models.guilds import UnreadRole as GuildUnreadRole
from nexus_desktop.models.members import PresenceRole, RoleColorRole, UserIdRole
from nexus_desktop.qt import QHBoxLayout, QMenu, QModelIndex, Qt, QWidget
from nexus_desktop.session import AppSession
from nexus_desktop.views.channel_list import ChannelList
from nexus_desktop.views.member_list import MemberList
from nexus_desktop.views.quick_switcher import QuickSwitcher
from nexus_desktop.views.server_rail import ServerRail
from nexus_desktop.views.user_panel import UserPanel
from tests.waiting import until

PASSWORD = "correct horse battery"


async def alice_and_bob(relay_url: str, tmp_path: Path) -> tuple[AppSession, Client, int]:
    """Alice in the app with her own community; bob (a plain client) owns "Book club"."""
    session = AppSession(tmp_path / "app")
    account = await session.add_account(
        relay_url, "alice", PASSWORD, register=True, passphrase="test passphrase"
    )
    session.run(account.client.create_guild("Alice home"))
    await until(lambda: len(session.all_guilds()) == 1)
    bob = Client(relay_url)
    await bob.register("bob", PASSWORD)
    await bob.start()
    guild = await bob.create_guild("Book club")
    await until(lambda: guild.id in bob.cache.guilds)
    return session, bob, guild.id


def channel_id_named(session: AppSession, guild_id: int, name: str) -> int:
    return next(c.id for c in session.channels(guild_id) if c.name == name)


async def test_rail_channels_unread_members_presence(
    relay_url: str, artifacts: Path, tmp_path: Path
) -> None:
    session, bob, book_club = await alice_and_bob(relay_url, tmp_path)
    account = session.accounts[0]
    alice_id = account.user.id if account.user else 0
    try:
        rail = ServerRail(session)
        channels = ChannelList(session)
        members = MemberList(session)
        panel = UserPanel(session)
        rail.guild_selected.connect(channels.set_guild)
        rail.guild_selected.connect(members.set_guild)
        rail.guild_selected.connect(panel.set_guild)
        window = QWidget()
        row = QHBoxLayout(window)
        row.addWidget(rail)
        row.addWidget(channels)
        row.addWidget(members)
        window.resize(640, 460)
        window.show()

        # The rail shows alice's community, then bob's after she joins through an invite.
        assert rail.guild_names() == ["Alice home"]
        await until(lambda: channels.title.text() == "Alice home")  # the first one opens
        general = next(c for c in bob.cache.channels_of(book_club) if c.name == "general")
        invite = await bob.create_invite(general.id)
        session.run(account.client.join(invite.code))
        await until(lambda: rail.guild_names() == ["Alice home", "Book club"])

        # Opening bob's community: categories and channels in Discord's order.
        rail.select_guild(book_club)
        await until(lambda: channels.title.text() == "Book club")
        assert channels.visible_names() == ["TEXT CHANNELS", "general", "VOICE CHANNELS", "General"]
        channels.select_channel(general.id)
        assert channels.current_channel() == general.id

        # Bob adds a channel: it appears in place, alice's selection stays on general.
        resets: list[None] = []
        channels.model.modelReset.connect(lambda: resets.append(None))
        category = general.parent_id
        random = await bob.create_channel(book_club, "random", parent_id=category, position=1)
        await until(lambda: "random" in channels.visible_names())
        assert channels.visible_names()[:3] == ["TEXT CHANNELS", "general", "random"]
        assert resets == []
        assert channels.current_channel() == general.id
        selected = channels.tree.selectionModel().selectedIndexes()
        assert [ix.data(ChannelIdRole) for ix in selected] == [general.id]

        # Bob writes in random, which alice has not open: bold; a mention: a badge.
        await bob.post_message(random.id, "anyone reading?")

        def random_row() -> QModelIndex:
            return channels.model.index_of(random.id)

        await until(lambda: random_row().data(UnreadRole))
        assert random_row().data(Qt.ItemDataRole.FontRole).bold()
        assert random_row().data(MentionRole) == 0
        await bob.post_message(random.id, f"<@{alice_id}> you there?")
        await until(lambda: random_row().data(MentionRole) == 1)
        rail_row = rail.model.index(rail.model.row_of(book_club))
        assert rail_row.data(GuildMentionRole) == 1 and rail_row.data(GuildUnreadRole)
        # A message in the open channel leaves it read.
        await bob.post_message(general.id, "and here")
        await until(lambda: len(session.messages(general.id)) >= 1)
        assert not channels.model.index_of(general.id).data(UnreadRole)

        # A hoisted, coloured role groups bob under it; alice stays "Online"; bob's new
        # status (idle) shows in the list.
        role = await bob.create_role(book_club, name="Moderators", hoist=True, color=0x3498DB)
        await bob.http.request("PUT", f"/guilds/{book_club}/members/{bob.user.id}/roles/{role.id}")  # type: ignore[union-attr]
        await bob.set_presence("idle")
        expected = [
            (True, "MODERATORS — 1"),
            (False, "bob"),
            (True, "ONLINE — 1"),
            (False, "alice"),
        ]
        await until(lambda: members.model.rows() == expected)
        header = members.model.index(0)
        assert header.data(RoleColorRole).name() == "#3498db"

        # Bob's presence dot follows his status without regrouping the list.
        def bob_row() -> QModelIndex:
            return members.model.index(1)

        assert bob_row().data(UserIdRole) == bob.user.id  # type: ignore[union-attr]
        await until(lambda: bob_row().data(PresenceRole) == "idle")
        await bob.set_presence("dnd")
        await until(lambda: bob_row().data(PresenceRole) == "dnd")
        await bob.set_presence("invisible")
        await until(lambda: members.model.rows()[-2:] == [(True, "OFFLINE — 1"), (False, "bob")])
        await bob.set_presence("online")
        await until(lambda: members.model.rows() == expected)

        # The user panel names alice; the status picker changes her status.
        assert panel.name.text() == "alice"
        panel.set_status("dnd")
        assert panel.status_label.text() == "Do not disturb"
        await until(lambda: session.presence(alice_id) == "dnd")

        # Clicking random opens it and clears its badges everywhere.
        await asyncio.sleep(0.1)
        window.grab().save(str(artifacts / "navigation_unread.png"))
        assert rail.isVisible() and channels.isVisible() and members.isVisible()
        channels.select_channel(random.id)
        assert not random_row().data(UnreadRole) and random_row().data(MentionRole) == 0
        assert rail_row.data(GuildMentionRole) == 0
        window.grab().save(str(artifacts / "navigation.png"))
        # hide, not close: closing the last window would quit the test's Qt loop
        window.hide()
    finally:
        await bob.close()
        await session.close()


async def test_keyboard_and_collapsed_categories(relay_url: str, tmp_path: Path) -> None:
    session, bob, book_club = await alice_and_bob(relay_url, tmp_path)
    account = session.accounts[0]
    try:
        general = next(c for c in bob.cache.channels_of(book_club) if c.name == "general")
        second = await bob.create_channel(book_club, "second", parent_id=general.parent_id)
        session.run(account.client.join((await bob.create_invite(general.id)).code))
        await until(lambda: session.guild(book_club) is not None)
        channels = ChannelList(session)
        channels.set_guild(book_club)
        channels.show()
        channels.select_channel(general.id)

        # Alt+Down jumps to the next unread channel.
        await bob.post_message(second.id, "over here")
        await until(lambda: channels.model.index_of(second.id).data(UnreadRole))
        from PySide6.QtTest import QTest

        QTest.keyClick(channels.tree, Qt.Key.Key_Down, Qt.KeyboardModifier.AltModifier)
        assert channels.current_channel() == second.id
        # Up + Enter opens the channel above.
        opened: list[int] = []
        channels.channel_selected.connect(opened.append)
        QTest.keyClick(channels.tree, Qt.Key.Key_Up)
        QTest.keyClick(channels.tree, Qt.Key.Key_Return)
        assert opened == [general.id]

        # Collapsing a category is remembered for the next list of this account.
        category = channels.model.index_of(general.parent_id or 0)
        channels.tree.collapse(category)
        assert "general" not in channels.visible_names()
        again = ChannelList(session)
        again.set_guild(book_club)
        assert "TEXT CHANNELS" in again.visible_names()
        assert "general" not in again.visible_names()
        assert "General" in again.visible_names()  # the voice category stays open

        # The context menu carries levels, mutes and mark-as-read.
        menu = channels.channel_menu(second.id)
        labels = [a.text() for a in menu.actions()]
        assert labels == ["Mark as read", "Notifications", "Mute channel"]
        mute_menu = menu.actions()[2].menu()
        assert isinstance(mute_menu, QMenu)
        assert [a.text() for a in mute_menu.actions()][-1] == "Until I turn it back on"
        mute_menu.actions()[0].trigger()
        assert (
            channels.model.index_of(second.id)
            .data(Qt.ItemDataRole.AccessibleTextRole)
            .endswith("muted")
        )
        channels.hide()
    finally:
        await bob.close()
        await session.close()


async def test_quick_switcher(relay_url: str, tmp_path: Path) -> None:
    session, bob, book_club = await alice_and_bob(relay_url, tmp_path)
    account = session.accounts[0]
    try:
        general = next(c for c in bob.cache.channels_of(book_club) if c.name == "general")
        session.run(account.client.join((await bob.create_invite(general.id)).code))
        await until(lambda: session.guild(book_club) is not None)
        reading = await bob.create_channel(book_club, "reading-list", parent_id=general.parent_id)
        await until(lambda: session.channel(reading.id) is not None)
        await bob.post_message(reading.id, "new book!")

        window = QWidget()  # as in the app: the switcher sits over the main window
        window.show()
        switcher = QuickSwitcher(session, window)
        from nexus_desktop.models.channels import read_states_for

        await until(lambda: read_states_for(session).unread(reading.id))
        switcher.open()
        shown = switcher.shown()
        # Unread first with an empty query; voice channels are not destinations.
        assert shown[0] == "reading-list — Book club"
        assert set(shown) == {
            "reading-list — Book club",
            "general — Book club",
            "general — Alice home",
        }

        chosen: list[int] = []
        switcher.channel_chosen.connect(chosen.append)
        switcher.query.setText("gnbc")  # g-e-n… in "general — Book club"
        assert switcher.shown() == ["general — Book club"]
        switcher.query.setText("read")
        assert switcher.shown()[0] == "reading-list — Book club"
        from PySide6.QtTest import QTest

        QTest.keyClick(switcher.query, Qt.Key.Key_Return)
        assert chosen == [reading.id]
        assert not switcher.isVisible()

        switcher.open()
        QTest.keyClick(switcher.query, Qt.Key.Key_Escape)
        assert not switcher.isVisible()
        window.hide()
    finally:
        await bob.close()
        await session.close()
