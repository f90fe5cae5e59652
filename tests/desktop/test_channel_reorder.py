"""Reordering channels and categories in the desktop channel list, against a real relay:
alice (in the app) has a role with Manage Channels in bob's community; bob is a plain
SDK client who watches the CHANNEL_UPDATEs; carol (in her own app) may not move
anything and sees alice's moves live."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
from PySide6.QtCore import QPoint, QPointF
from PySide6.QtTest import QTest

from nexus_client import Client
from nexus_desktop.models.channel_order import Destination, plan_move, step_destination
from nexus_desktop.models.channels import CHANNEL_MIME, build_tree
from nexus_desktop.qt import (
    QAbstractItemView,
    QByteArray,
    QDragMoveEvent,
    QDropEvent,
    QMimeData,
    QModelIndex,
    Qt,
    QWidget,
)
from nexus_desktop.session import AppSession
from nexus_desktop.views.channel_list import ChannelList
from nexus_protocol.models import Channel, ChannelType
from nexus_protocol.permissions import Permissions
from tests.desktop.sdk_users import collect
from tests.waiting import until

PASSWORD = "correct horse battery"
MOVE = Qt.DropAction.MoveAction


def shown(channels: list[Channel]) -> list[str]:
    """Channels in the order the app lists them (categories upper-case)."""
    names: list[str] = []
    for node in build_tree(channels):
        category = node.channel.type == ChannelType.GUILD_CATEGORY
        names.append((node.channel.name or "").upper() if category else node.channel.name or "")
        names.extend(child.channel.name or "" for child in node.children)
    return names


class Community:
    """Bob's "Book club": TEXT CHANNELS (general, random), VOICE CHANNELS (General)
    and PROJECTS (ideas, notes), with a "Mods" role that may manage channels."""

    def __init__(self, bob: Client, guild_id: int, ids: dict[str, int], role_id: int) -> None:
        self.bob = bob
        self.guild_id = guild_id
        self.ids = ids
        self.role_id = role_id

    async def relay_order(self) -> list[str]:
        return shown(await self.bob.fetch_channels(self.guild_id))

    async def relay_channel(self, name: str) -> Channel:
        channels = await self.bob.fetch_channels(self.guild_id)
        return next(c for c in channels if c.id == self.ids[name])


async def book_club(relay_url: str) -> Community:
    bob = Client(relay_url)
    await bob.register("bob", PASSWORD)
    await bob.start()
    guild = await bob.create_guild("Book club")
    await until(lambda: guild.id in bob.cache.guilds)
    channels = bob.cache.channels_of(guild.id)
    general = next(c for c in channels if c.name == "general")
    voice = next(c for c in channels if c.type == ChannelType.GUILD_VOICE)
    text = general.parent_id
    assert text is not None and voice.parent_id is not None
    random = await bob.create_channel(guild.id, "random", parent_id=text, position=1)
    projects = await bob.create_channel(
        guild.id, "Projects", type=int(ChannelType.GUILD_CATEGORY), position=5
    )
    ideas = await bob.create_channel(guild.id, "ideas", parent_id=projects.id, position=0)
    notes = await bob.create_channel(guild.id, "notes", parent_id=projects.id, position=1)
    role = await bob.create_role(
        guild.id, name="Mods", permissions=str(int(Permissions.MANAGE_CHANNELS))
    )
    ids = {
        "general": general.id,
        "TEXT CHANNELS": text,
        "VOICE CHANNELS": voice.parent_id,
        "random": random.id,
        "PROJECTS": projects.id,
        "ideas": ideas.id,
        "notes": notes.id,
    }
    return Community(bob, guild.id, ids, role.id)


async def member_app(
    relay_url: str, tmp_path: Path, community: Community, name: str, *, mod: bool
) -> tuple[AppSession, ChannelList, QWidget]:
    """``name`` in the app, joined to bob's community (with the Mods role if ``mod``),
    its channel list on screen."""
    session = AppSession(tmp_path / name)
    account = await session.add_account(
        relay_url, name, PASSWORD, register=True, passphrase="test passphrase"
    )
    invite = await community.bob.create_invite(community.ids["general"])
    session.run(account.client.join(invite.code))
    await until(lambda: session.guild(community.guild_id) is not None)
    channels = ChannelList(session)
    channels.set_guild(community.guild_id)
    window = QWidget()
    channels.setParent(window)
    channels.resize(260, 420)
    window.resize(260, 420)
    window.show()
    if mod:
        assert account.user is not None
        await community.bob.http.request(
            "PUT",
            f"/guilds/{community.guild_id}/members/{account.user.id}/roles/{community.role_id}",
        )
        await until(channels.model.can_reorder)
    return session, channels, window


def row(channels: ChannelList, name: str, ids: dict[str, int]) -> QModelIndex:
    index = channels.model.index_of(ids[name])
    assert index.isValid(), name
    return index


def dragged(channels: ChannelList, index: QModelIndex) -> QMimeData:
    data = channels.model.mimeData([index])
    assert data.hasFormat(CHANNEL_MIME)
    return data


def top_edge(channels: ChannelList, index: QModelIndex) -> QPointF:
    """A point in the gap just above ``index``'s row, where a drop lands above it."""
    rect = channels.tree.visualRect(index)
    return QPointF(rect.center().x(), rect.top() + 1)


def drag_over(channels: ChannelList, data: QMimeData, point: QPointF) -> bool:
    """Hover a drag over the tree at ``point``: whether it may drop there."""
    event = QDragMoveEvent(
        point.toPoint(), MOVE, data, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier
    )
    channels.tree.dragMoveEvent(event)
    return event.isAccepted()


def mouse_drag_starts(channels: ChannelList, index: QModelIndex) -> bool:
    """Press on ``index``'s row and move the pointer down: whether a drag began. (The
    offscreen platform ends a drag at once, so nothing is dropped.)"""
    started: list[None] = []
    channels.tree.drag_finished.connect(lambda: started.append(None))
    viewport = channels.tree.viewport()
    centre = channels.tree.visualRect(index).center()
    QTest.mousePress(viewport, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, centre)
    QTest.mouseMove(viewport, centre + QPoint(0, 24))
    QTest.mouseRelease(
        viewport, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, centre + QPoint(0, 24)
    )
    return bool(started)


def drop(channels: ChannelList, data: QMimeData, point: QPointF) -> bool:
    event = QDropEvent(point, MOVE, data, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    channels.tree.dropEvent(event)
    return event.isAccepted()


async def test_dragging_channels_and_categories_reorders_them_for_everyone(
    relay_url: str, tmp_path: Path
) -> None:
    community = await book_club(relay_url)
    bob, ids = community.bob, community.ids
    updates: list[Channel] = collect(bob, "channel_update")
    alice, channels, window = await member_app(relay_url, tmp_path, community, "alice", mod=True)
    carol, carols, carol_window = await member_app(
        relay_url, tmp_path, community, "carol", mod=False
    )
    try:
        start = ["TEXT CHANNELS", "general", "random", "VOICE CHANNELS", "General"]
        start += ["PROJECTS", "ideas", "notes"]
        assert channels.visible_names() == start
        assert await community.relay_order() == start

        # Pressing a category (never selected) and moving the pointer drags it.
        assert mouse_drag_starts(channels, row(channels, "PROJECTS", ids))
        assert channels.visible_names() == start

        # Alice drags "random" into PROJECTS, above "notes": a line shows there, and
        # the drop shows at once, before the relay has answered.
        data = dragged(channels, row(channels, "random", ids))
        point = top_edge(channels, row(channels, "notes", ids))
        assert drag_over(channels, data, point)
        assert (
            channels.tree.dropIndicatorPosition()
            == QAbstractItemView.DropIndicatorPosition.AboveItem
        )
        assert drop(channels, data, point)
        moved = ["TEXT CHANNELS", "general", "VOICE CHANNELS", "General"]
        moved += ["PROJECTS", "ideas", "random", "notes"]
        assert channels.visible_names() == moved
        # The relay has it (one request: random's parent and position, notes' position),
        # bob's client was told, and carol's app follows.
        await until(lambda: carols.visible_names() == moved)
        assert await community.relay_order() == moved
        assert (await community.relay_channel("random")).parent_id == ids["PROJECTS"]
        await until(lambda: any(c.id == ids["random"] for c in updates))
        random_update = next(c for c in updates if c.id == ids["random"])
        assert random_update.parent_id == ids["PROJECTS"] and random_update.position == 1
        assert {c.id for c in updates} == {ids["random"], ids["notes"]}
        assert not channels.move_error.isVisible()

        # A whole category above another: PROJECTS above TEXT CHANNELS, its channels with it.
        data = dragged(channels, row(channels, "PROJECTS", ids))
        text_row = row(channels, "TEXT CHANNELS", ids).row()
        assert channels.model.dropMimeData(data, MOVE, text_row, 0, QModelIndex())
        reordered = ["PROJECTS", "ideas", "random", "notes", "TEXT CHANNELS", "general"]
        reordered += ["VOICE CHANNELS", "General"]
        assert channels.visible_names() == reordered
        await until(lambda: carols.visible_names() == reordered)
        assert await community.relay_order() == reordered

        # "ideas" out of any category, to the very top.
        data = dragged(channels, row(channels, "ideas", ids))
        assert channels.model.dropMimeData(data, MOVE, 0, 0, QModelIndex())
        loose = ["ideas", "PROJECTS", "random", "notes", "TEXT CHANNELS", "general"]
        loose += ["VOICE CHANNELS", "General"]
        assert channels.visible_names() == loose
        await until(lambda: carols.visible_names() == loose)
        assert (await community.relay_channel("ideas")).parent_id is None
        assert await community.relay_order() == loose

        # A text channel cannot go below a voice channel: no line, no drop.
        data = dragged(channels, row(channels, "general", ids))
        voice = channels.model.index(0, 0, row(channels, "VOICE CHANNELS", ids))
        below_voice = channels.model.index(1, 0, voice.parent())
        assert voice.data() == "General" and not below_voice.isValid()
        parent = voice.parent()
        assert not channels.model.canDropMimeData(data, MOVE, 1, 0, parent)
        assert not channels.model.dropMimeData(data, MOVE, 1, 0, parent)
        # Dropped on the category's header instead, it goes to the top of it.
        assert channels.model.dropMimeData(data, MOVE, -1, 0, parent)
        assert channels.visible_names()[-3:] == ["VOICE CHANNELS", "general", "General"]
        await until(lambda: carols.visible_names() == channels.visible_names())
        # On the empty space under the list: the end of the last category (above its
        # voice channels, for a text channel).
        data = dragged(channels, row(channels, "ideas", ids))
        assert channels.model.dropMimeData(data, MOVE, -1, 0, QModelIndex())
        assert channels.visible_names()[-4:] == ["VOICE CHANNELS", "general", "ideas", "General"]
        await until(lambda: carols.visible_names() == channels.visible_names())
        assert await community.relay_order() == channels.visible_names()

        # Carol may not move channels: nothing to drag, no line where she points.
        carol_row = carols.model.index_of(ids["notes"])
        assert not carols.model.flags(carol_row) & Qt.ItemFlag.ItemIsDragEnabled
        assert not mouse_drag_starts(carols, carol_row)
        assert not mouse_drag_starts(carols, carols.model.index_of(ids["PROJECTS"]))
        forged = QMimeData()
        payload = {"guild_id": str(community.guild_id), "channel_id": str(ids["notes"])}
        forged.setData(CHANNEL_MIME, QByteArray(json.dumps(payload).encode()))
        assert not drag_over(carols, forged, top_edge(carols, carols.model.index_of(ids["ideas"])))
        assert not carols.model.dropMimeData(forged, MOVE, 0, 0, QModelIndex())
        labels = [a.text() for a in carols.channel_menu(ids["notes"]).actions()]
        assert "Move up" not in labels and "Move down" not in labels
        assert carols.category_menu(ids["PROJECTS"]) is None
    finally:
        window.close()
        carol_window.close()
        await bob.close()
        await alice.close()
        await carol.close()


async def test_keyboard_moves_and_a_refused_move_is_taken_back(
    relay_url: str, tmp_path: Path
) -> None:
    community = await book_club(relay_url)
    bob, ids = community.bob, community.ids
    alice, channels, window = await member_app(relay_url, tmp_path, community, "alice", mod=True)
    try:
        start = ["TEXT CHANNELS", "general", "random", "VOICE CHANNELS", "General"]
        start += ["PROJECTS", "ideas", "notes"]
        assert channels.visible_names() == start

        # Drops from elsewhere, or payloads that are not a channel of this community,
        # are refused without a fuss.
        other_guild = {"guild_id": "42", "channel_id": str(ids["notes"])}
        for payload in (
            b"",
            b"not json",
            b"[1, 2]",
            b'{"guild_id": null}',
            json.dumps(other_guild).encode(),
            b"[" * 100_000,
        ):
            data = QMimeData()
            data.setData(CHANNEL_MIME, QByteArray(payload))
            assert channels.model.dragged_channel(data) is None
            assert not channels.model.dropMimeData(data, MOVE, 0, 0, QModelIndex())
        text = QMimeData()
        text.setText(str(ids["notes"]))
        assert not channels.model.canDropMimeData(text, MOVE, 0, 0, QModelIndex())
        assert not drag_over(channels, text, top_edge(channels, row(channels, "ideas", ids)))
        assert channels.visible_names() == start

        # Alt+Shift+Down on "general": below "random"; again: to the top of VOICE
        # CHANNELS (text above voice); again: past the voice channel, into PROJECTS.
        def bob_sees(names: list[str]) -> bool:
            return shown(bob.cache.channels_of(community.guild_id)) == names

        channels.tree.setFocus()
        channels.tree.setCurrentIndex(row(channels, "general", ids))
        shift_alt = Qt.KeyboardModifier.AltModifier | Qt.KeyboardModifier.ShiftModifier
        steps = [
            ["TEXT CHANNELS", "random", "general", "VOICE CHANNELS", "General"],
            ["TEXT CHANNELS", "random", "VOICE CHANNELS", "general", "General"],
            ["TEXT CHANNELS", "random", "VOICE CHANNELS", "General", "PROJECTS", "general"],
        ]
        for names in steps:
            QTest.keyClick(channels.tree, Qt.Key.Key_Down, shift_alt)
            assert channels.visible_names()[: len(names)] == names
            assert channels.current_channel() == ids["general"]  # the cursor moves with it
            await until(lambda: bob_sees(channels.visible_names()))
        expected = ["TEXT CHANNELS", "random", "VOICE CHANNELS", "General"]
        expected += ["PROJECTS", "general", "ideas", "notes"]
        assert channels.visible_names() == expected
        assert await community.relay_order() == expected

        # Up, from the context menu, which offers what is possible: back above "General".
        menu = channels.channel_menu(ids["general"])
        actions = {a.text(): a for a in menu.actions()}
        assert actions["Move up"].isEnabled() and actions["Move down"].isEnabled()
        assert actions["Move up"].shortcut().toString() == "Alt+Shift+Up"
        actions["Move up"].trigger()
        back = ["TEXT CHANNELS", "random", "VOICE CHANNELS", "general", "General"]
        back += ["PROJECTS", "ideas", "notes"]
        assert channels.visible_names() == back
        await until(lambda: bob_sees(back))
        assert await community.relay_order() == back
        category_menu = channels.category_menu(ids["TEXT CHANNELS"])
        assert category_menu is not None
        category_actions = {a.text(): a for a in category_menu.actions()}
        assert not category_actions["Move up"].isEnabled()  # already the first one

        # Bob takes the role away; alice's app has not heard yet when she drops "notes"
        # above "ideas" (the request below blocks the loop): it shows, the relay
        # refuses, and it goes back with the reason on screen.
        assert alice.accounts[0].user is not None
        alice_id = alice.accounts[0].user.id
        assert bob.http.token is not None
        removed = httpx.delete(  # noqa: ASYNC210 - blocking the loop is the point here
            f"{relay_url}/api/v10/guilds/{community.guild_id}/members/{alice_id}"
            f"/roles/{community.role_id}",
            headers={"Authorization": bob.http.token},
        )
        assert removed.status_code == 204
        data = dragged(channels, row(channels, "notes", ids))
        assert channels.model.dropMimeData(data, MOVE, 0, 0, row(channels, "PROJECTS", ids))
        assert channels.visible_names()[-2:] == ["notes", "ideas"]
        await until(channels.move_error.isVisible)
        assert channels.visible_names() == back
        assert channels.move_error.text().startswith("Could not move notes: ")
        assert "permission" in channels.move_error.text().lower()
        assert await community.relay_order() == back

        # Once the role change arrives, she cannot drag or move any more.
        await until(lambda: not channels.model.can_reorder())
        notes = row(channels, "notes", ids)
        assert not channels.model.flags(notes) & Qt.ItemFlag.ItemIsDragEnabled
        assert not channels.model.flags(QModelIndex()) & Qt.ItemFlag.ItemIsDropEnabled
        assert not drag_over(channels, data, top_edge(channels, row(channels, "ideas", ids)))
        channels.tree.setCurrentIndex(notes)
        QTest.keyClick(channels.tree, Qt.Key.Key_Up, shift_alt)
        assert channels.visible_names() == back
        assert "Move up" not in [a.text() for a in channels.channel_menu(ids["notes"]).actions()]
    finally:
        window.close()
        await bob.close()
        await alice.close()


# Planning moves (no relay) ---------------------------------------------------------------


def _channel(
    id: int, kind: ChannelType, position: int, parent: int | None = None, name: str = ""
) -> Channel:
    return Channel(
        id=id, type=kind, guild_id=1, name=name or str(id), position=position, parent_id=parent
    )


TEXT, VOICE, CATEGORY = ChannelType.GUILD_TEXT, ChannelType.GUILD_VOICE, ChannelType.GUILD_CATEGORY


def test_a_move_renumbers_only_the_groups_it_touches() -> None:
    channels = [
        _channel(10, CATEGORY, 0),
        _channel(11, TEXT, 0, 10),
        _channel(12, TEXT, 1, 10),
        _channel(13, VOICE, 2, 10),
        _channel(20, CATEGORY, 1),
        _channel(21, TEXT, 7, 20),
        _channel(30, CATEGORY, 2),
        _channel(31, TEXT, 4, 30),
    ]
    placements = plan_move(channels, 11, Destination(20, 0))
    assert placements is not None
    sent = {p.channel_id: p.to_json() for p in placements}
    assert sent == {
        11: {"id": "11", "position": 0, "parent_id": "20"},
        12: {"id": "12", "position": 0},
        13: {"id": "13", "position": 1},
        21: {"id": "21", "position": 1},
    }  # category 30 and its channel are untouched
    assert plan_move(channels, 12, Destination(10, 1)) == []  # already there
    assert plan_move(channels, 13, Destination(10, 0)) is None  # voice above text
    assert plan_move(channels, 11, Destination(10, 5)) is None  # text below voice
    clamped = plan_move(channels, 11, Destination(10, 5, clamp=True))
    assert clamped is not None and [p.channel_id for p in clamped] == [12, 11]
    assert plan_move(channels, 11, Destination(11, 0)) is None  # a channel is no category
    assert plan_move(channels, 99, Destination(None, 0)) is None
    # Categories move among categories only.
    order = plan_move(channels, 30, Destination(None, 0))
    assert order is not None and [(p.channel_id, p.position) for p in order] == [
        (30, 0),
        (10, 1),
        (20, 2),
    ]
    # Keyboard steps: past a neighbour of the same kind, else into the next group.
    assert step_destination(channels, 11, up=False) == Destination(10, 1)
    assert step_destination(channels, 12, up=False) == Destination(20, 0, clamp=True)
    assert step_destination(channels, 11, up=True) == Destination(None, 0, clamp=True)
    assert step_destination(channels, 31, up=False) is None
    assert step_destination(channels, 10, up=True) is None


def test_moving_inside_a_hidden_category_keeps_its_parent() -> None:
    # 40 is in a category this member cannot see: it shows outside any, and moving it
    # among those must not take it out of its category for everyone else.
    channels = [_channel(40, TEXT, 0, parent=777), _channel(41, TEXT, 1)]
    placements = plan_move(channels, 40, Destination(None, 1))
    assert placements is not None
    assert [p.to_json() for p in placements] == [
        {"id": "41", "position": 0},
        {"id": "40", "position": 1},
    ]
