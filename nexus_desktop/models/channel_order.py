"""Where channels land when a member with Manage Channels drags or moves them.

The order is Discord's (``build_tree`` in ``channels.py`` draws it): channels outside any
category first, then the categories; inside a group, text-like channels above voice
channels, each part sorted by (position, id). A move is only planned here, without Qt
or I/O: ``plan_move`` answers the ``Placement`` of every channel whose position or
parent changes, which the desktop sends as one ``PATCH /guilds/{id}/channels``, or None
where the channel cannot go. Only the groups a move touches are renumbered 0, 1, 2…, so
a move never rewrites the positions of channels elsewhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from nexus_protocol.models import Channel, ChannelType

__all__ = ["Destination", "Placement", "apply_placements", "plan_move", "step_destination"]

GroupKey = int | None  # a category's id, or None for channels outside any category


@dataclass(frozen=True, slots=True)
class Destination:
    """Where a dropped or keyboard-moved channel should go.

    ``index`` counts the channels of the destination group (the categories, for a
    category) without the moved one; ``len`` of the group appends. With ``clamp`` an
    index in the wrong part of a group (a text channel among voice channels) becomes
    the nearest allowed one; without it such a move is refused."""

    parent_id: GroupKey
    index: int
    clamp: bool = False


@dataclass(frozen=True, slots=True)
class Placement:
    """One channel's new position (and parent, when ``parent_changed``)."""

    channel_id: int
    position: int
    parent_id: GroupKey
    parent_changed: bool = False

    def to_json(self) -> dict[str, Any]:
        """One entry of Discord's ``PATCH /guilds/{id}/channels`` body."""
        body: dict[str, Any] = {"id": str(self.channel_id), "position": self.position}
        if self.parent_changed:
            body["parent_id"] = None if self.parent_id is None else str(self.parent_id)
        return body


def _is_voice(channel: Channel) -> bool:
    return channel.type == ChannelType.GUILD_VOICE


def _order(channel: Channel) -> tuple[int, int, int]:
    return (int(_is_voice(channel)), channel.position, channel.id)


def _groups(channels: list[Channel]) -> tuple[list[Channel], dict[GroupKey, list[Channel]]]:
    """The categories in order, and each group's channels in order. A channel whose
    category is missing (deleted, or hidden from this member) counts as outside any."""
    categories = sorted(
        (c for c in channels if c.type == ChannelType.GUILD_CATEGORY),
        key=lambda c: (c.position, c.id),
    )
    known = {c.id for c in categories}
    groups: dict[GroupKey, list[Channel]] = {None: []}
    groups.update({c.id: [] for c in categories})
    for channel in sorted(channels, key=_order):
        if channel.type != ChannelType.GUILD_CATEGORY:
            parent = channel.parent_id if channel.parent_id in known else None
            groups[parent].append(channel)
    return categories, groups


def _group_of(channel: Channel, groups: dict[GroupKey, list[Channel]]) -> GroupKey:
    return channel.parent_id if channel.parent_id in groups else None


def _renumber(order: list[Channel], moved: Channel, new_parent: GroupKey) -> list[Placement]:
    placements: list[Placement] = []
    for position, channel in enumerate(order):
        is_moved = channel.id == moved.id
        parent = new_parent if is_moved else channel.parent_id
        parent_changed = is_moved and channel.parent_id != new_parent
        if channel.position != position or parent_changed:
            placements.append(Placement(channel.id, position, parent, parent_changed))
    return placements


def plan_move(
    channels: list[Channel], moved_id: int, destination: Destination
) -> list[Placement] | None:
    """The placements that put ``moved_id`` at ``destination`` ([] when it is already
    there), or None when it cannot go there."""
    by_id = {c.id: c for c in channels}
    moved = by_id.get(moved_id)
    if moved is None:
        return None
    categories, groups = _groups(channels)
    if moved.type == ChannelType.GUILD_CATEGORY:
        order = [c for c in categories if c.id != moved_id]
        index = destination.index
        if destination.clamp:
            index = min(max(index, 0), len(order))
        if not 0 <= index <= len(order):
            return None
        order.insert(index, moved)
        return _renumber(order, moved, None)

    target_key = destination.parent_id
    if target_key not in groups:
        return None  # not a category of this community (or a channel, or unknown)
    source_key = _group_of(moved, groups)
    target = [c for c in groups[target_key] if c.id != moved_id]
    texts = sum(1 for c in target if not _is_voice(c))
    low, high = (texts, len(target)) if _is_voice(moved) else (0, texts)
    index = destination.index
    if destination.clamp:
        index = min(max(index, low), high)
    if not low <= index <= high:
        return None
    target.insert(index, moved)
    # Staying in its group keeps the parent as stored, even a category this member
    # cannot see: moving a channel up must not take it out of a hidden category.
    new_parent = moved.parent_id if source_key == target_key else target_key
    placements: list[Placement] = []
    if source_key != target_key:
        left = [c for c in groups[source_key] if c.id != moved_id]
        placements += _renumber(left, moved, new_parent)
    placements += _renumber(target, moved, new_parent)
    return placements


def step_destination(channels: list[Channel], moved_id: int, *, up: bool) -> Destination | None:
    """The keyboard's "Move up" / "Move down": past the neighbour of the same kind, or
    at a group's edge into the previous group's end or the next group's start (out of
    the first category is outside any category). None at the very top or bottom."""
    moved = next((c for c in channels if c.id == moved_id), None)
    if moved is None:
        return None
    categories, groups = _groups(channels)
    if moved.type == ChannelType.GUILD_CATEGORY:
        index = next(i for i, c in enumerate(categories) if c.id == moved_id)
        wanted = index - 1 if up else index + 1
        return Destination(None, wanted) if 0 <= wanted < len(categories) else None
    key = _group_of(moved, groups)
    group = groups[key]
    index = next(i for i, c in enumerate(group) if c.id == moved_id)
    neighbour = index - 1 if up else index + 1
    if 0 <= neighbour < len(group) and _is_voice(group[neighbour]) == _is_voice(moved):
        return Destination(key, neighbour)
    keys: list[GroupKey] = [None, *(c.id for c in categories)]
    next_key = keys.index(key) + (-1 if up else 1)
    if not 0 <= next_key < len(keys):
        return None
    # Clamped: into the end (or start) of the part of that group its kind belongs to.
    return Destination(keys[next_key], len(groups[keys[next_key]]) if up else 0, clamp=True)


def apply_placements(channels: list[Channel], placements: dict[int, Placement]) -> list[Channel]:
    """``channels`` as they will be once the relay applied ``placements`` (by id)."""
    moved: list[Channel] = []
    for channel in channels:
        placement = placements.get(channel.id)
        if placement is None:
            moved.append(channel)
            continue
        update: dict[str, Any] = {"position": placement.position}
        if placement.parent_changed:
            update["parent_id"] = placement.parent_id
        moved.append(channel.model_copy(update=update))
    return moved
