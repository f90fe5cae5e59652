"""What the user has not read yet, and the channel tree of one community.

``ReadStateTracker`` is shared by every view of a session (``read_states_for``): the
rail, the channel list, the quick switcher and the notifier must agree on what is unread
and which channel is open. It is seeded from the relay's read states once per account
and then kept current from ``message_created`` without another request.

The channel tree also lists who is in each voice channel, as rows right below it (kind
``PERSON_KIND``), kept current from the session's ``VoiceController``.

Members with Manage Channels reorder the tree by drag and drop (the model's mime and
drop API) or from the keyboard (``move_step``). A move shows at once: its placements
(``channel_order``) overlay the cached channels until the relay's CHANNEL_UPDATEs agree,
and are taken back, with ``move_failed``, if the relay refuses the move.
"""

from __future__ import annotations

import json
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from nexus_protocol.models import Channel, ChannelType, Message
from nexus_protocol.permissions import Permissions

from ..qt import (
    QAbstractItemModel,
    QByteArray,
    QFont,
    QMimeData,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    Qt,
    QTimer,
    Signal,
)
from ..session import Account, AppSession, describe_error
from ..voice import VoicePerson
from .channel_order import Destination, Placement, apply_placements, plan_move, step_destination

Index = QModelIndex | QPersistentModelIndex
ROOT = QModelIndex()  # the invalid parent, shared as a default argument

ChannelIdRole = Qt.ItemDataRole.UserRole + 1
KindRole = Qt.ItemDataRole.UserRole + 2
UnreadRole = Qt.ItemDataRole.UserRole + 3
MentionRole = Qt.ItemDataRole.UserRole + 4
MutedRole = Qt.ItemDataRole.UserRole + 5
CurrentRole = Qt.ItemDataRole.UserRole + 6
VoiceUserRole = Qt.ItemDataRole.UserRole + 7  # person rows: their user id
VoiceMutedRole = Qt.ItemDataRole.UserRole + 8
VoiceDeafRole = Qt.ItemDataRole.UserRole + 9
SpeakingRole = Qt.ItemDataRole.UserRole + 10
InVoiceRole = Qt.ItemDataRole.UserRole + 11  # voice channels: the user is connected here
EncryptedRole = Qt.ItemDataRole.UserRole + 12  # end-to-end encrypted (a lock is drawn)
VoiceAvatarRole = Qt.ItemDataRole.UserRole + 13  # person rows: their avatar's hash

PERSON_KIND = -1  # KindRole of a person row under a voice channel

#: What a dragged channel carries: ``{"guild_id": "…", "channel_id": "…"}`` as JSON.
CHANNEL_MIME = "application/x-nexus-channel"
#: After the relay accepted a move, how long its placements may still stand in for
#: CHANNEL_UPDATEs that have not arrived (someone else moved the same channel meanwhile).
SETTLE_MS = 3000


def mentions_me(session: AppSession, message: Message) -> bool:
    """True when ``message`` pings the account that received it: by name, @everyone,
    or one of that account's roles in the community."""
    me = session.me(message.channel_id)
    if me is None:
        return False
    if message.mention_everyone or any(user.id == me.id for user in message.mentions):
        return True
    if not message.mention_roles:
        return False
    channel = session.channel(message.channel_id)
    guild_id = message.guild_id or (channel.guild_id if channel else None)
    if guild_id is None:
        return False
    member = next((m for m in session.members(guild_id) if m.user and m.user.id == me.id), None)
    return member is not None and bool(set(member.roles) & set(message.mention_roles))


class ReadStateTracker(QObject):
    """Unread and mention counts per channel, and which channel the user has open."""

    changed = Signal(object)  # channel_id

    def __init__(self, session: AppSession) -> None:
        super().__init__(session)
        self._session = session
        self._unread: dict[int, int] = {}
        self._mentions: dict[int, int] = {}
        self._seeded: set[int] = set()  # id() of accounts whose relay counts we asked for
        #: Per channel, the newest message the relay's seeded count includes.
        self._counted_through: dict[int, int] = {}
        self.current_channel: int | None = None
        session.message_created.connect(self._on_message)
        session.read_elsewhere.connect(self._read_elsewhere)
        session.guilds_changed.connect(self._seed_new_accounts)
        self._seed_new_accounts()

    # Queries -------------------------------------------------------------------------

    def unread(self, channel_id: int) -> int:
        return self._unread.get(channel_id, 0)

    def mentions(self, channel_id: int) -> int:
        return self._mentions.get(channel_id, 0)

    def guild_unread(self, guild_id: int, skip: Callable[[int], bool] | None = None) -> bool:
        """Any unread channel in the community (``skip`` leaves out e.g. muted ones)."""
        return any(
            self.unread(c.id) and not (skip and skip(c.id))
            for c in self._session.channels(guild_id)
        )

    def guild_mentions(self, guild_id: int) -> int:
        return sum(self.mentions(c.id) for c in self._session.channels(guild_id))

    # Changes ---------------------------------------------------------------------------

    def open_channel(self, channel_id: int | None) -> None:
        """The user looks at ``channel_id`` now: it is read, and stays read while open."""
        self.current_channel = channel_id
        if channel_id is not None:
            self.mark_read(channel_id)

    def mark_read(self, channel_id: int) -> None:
        had = self._unread.pop(channel_id, 0) + self._mentions.pop(channel_id, 0)
        channel = self._session.channel(channel_id)
        if had and channel is not None and channel.last_message_id is not None:
            # Tell the relay too, so other devices and the next start agree.
            self._session.ack(channel_id, channel.last_message_id)
        if had:
            self.changed.emit(channel_id)

    def _on_message(self, message: Message) -> None:
        me = self._session.me(message.channel_id)
        if me is not None and message.author.id == me.id:
            return
        if message.channel_id == self.current_channel:
            return
        if message.id <= self._counted_through.get(message.channel_id, 0):
            return  # the relay's unread count, seeded already, includes it
        self._unread[message.channel_id] = self.unread(message.channel_id) + 1
        if mentions_me(self._session, message):
            self._mentions[message.channel_id] = self.mentions(message.channel_id) + 1
        self.changed.emit(message.channel_id)

    def _read_elsewhere(self, channel_id: int, message_id: int) -> None:
        """The user read ``channel_id`` up to ``message_id`` on another device (or this
        one: the relay echoes acks): only what came after it stays unread."""
        unread, mentions = self.unread(channel_id), self.mentions(channel_id)
        if not unread and not mentions:
            return
        me = self._session.me(channel_id)
        newer = [
            m
            for m in self._session.messages(channel_id)
            if m.id > message_id and (me is None or m.author.id != me.id)
        ]
        left = min(unread, len(newer))
        left_mentions = min(mentions, sum(1 for m in newer if mentions_me(self._session, m)))
        if left:
            self._unread[channel_id] = left
        else:
            self._unread.pop(channel_id, None)
        if left_mentions:
            self._mentions[channel_id] = left_mentions
        else:
            self._mentions.pop(channel_id, None)
        if (left, left_mentions) != (unread, mentions):
            self.changed.emit(channel_id)

    def _seed_new_accounts(self) -> None:
        for account in self._session.accounts:
            if id(account) in self._seeded:
                continue
            self._seeded.add(id(account))
            self._session.fetch_read_states(account, self._seed)

    def _seed(self, entries: list[dict[str, Any]]) -> None:
        for entry in entries:
            channel_id = int(entry["channel_id"])
            if channel_id == self.current_channel:
                continue
            unread = int(entry.get("unread_count") or 0)
            mentions = int(entry.get("mention_count") or 0)
            last_read = int(entry.get("last_message_id") or 0)
            me = self._session.me(channel_id)
            held = [
                m
                for m in self._session.messages(channel_id)
                if m.id > last_read and (me is None or m.author.id != me.id)
            ]
            if "counted_through_id" in entry:
                # The relay says up to which message it counted: add those held here that
                # came after, and do not count again those that arrive later but are in.
                through = int(entry.get("counted_through_id") or 0)
                self._counted_through[channel_id] = through
                later = [m for m in held if m.id > through]
                unread += len(later)
                mentions += sum(1 for m in later if mentions_me(self._session, m))
            else:
                # A relay that does not say: the messages held here are a lower bound.
                unread = max(unread, len(held))
                mentions = max(mentions, sum(1 for m in held if mentions_me(self._session, m)))
            self._unread[channel_id] = unread
            self._mentions[channel_id] = mentions
            self.changed.emit(channel_id)


_trackers: weakref.WeakKeyDictionary[AppSession, ReadStateTracker] = weakref.WeakKeyDictionary()


def read_states_for(session: AppSession) -> ReadStateTracker:
    """The one tracker of ``session`` (created on first use)."""
    tracker = _trackers.get(session)
    if tracker is None:
        tracker = _trackers[session] = ReadStateTracker(session)
    return tracker


# The channel tree ----------------------------------------------------------------------


@dataclass
class _Node:
    channel: Channel  # for a person row: the voice channel they are in
    children: list[_Node] = field(default_factory=list)
    person: VoicePerson | None = None


PeopleOf = Callable[[int], list[VoicePerson]]


def _with_people(nodes: list[_Node], people_of: PeopleOf) -> list[_Node]:
    rows: list[_Node] = []
    for node in nodes:
        rows.append(node)
        if node.channel.type == ChannelType.GUILD_VOICE:
            rows.extend(_Node(node.channel, person=p) for p in people_of(node.channel.id))
    return rows


def build_tree(channels: list[Channel], people_of: PeopleOf | None = None) -> list[_Node]:
    """Discord's order: channels outside a category first, then categories, each sorted
    by (position, id); text-like channels above voice channels inside a group. With
    ``people_of``, who is in a voice channel follows it, one row each."""

    def order(channel: Channel) -> tuple[int, int, int]:
        voice = channel.type == ChannelType.GUILD_VOICE
        return (int(voice), channel.position, channel.id)

    categories = {c.id: _Node(c) for c in channels if c.type == ChannelType.GUILD_CATEGORY}
    loose: list[_Node] = []
    for channel in sorted(channels, key=order):
        if channel.type == ChannelType.GUILD_CATEGORY:
            continue
        parent = categories.get(channel.parent_id or 0)
        (parent.children if parent else loose).append(_Node(channel))
    sorted_categories = sorted(
        categories.values(), key=lambda n: (n.channel.position, n.channel.id)
    )
    if people_of is not None:
        loose = _with_people(loose, people_of)
        for category in sorted_categories:
            category.children = _with_people(category.children, people_of)
    return loose + sorted_categories


RowKey = tuple[int, int]  # (channel id, user id or 0): a row's identity across rebuilds


def _key(node: _Node) -> RowKey:
    return (node.channel.id, node.person.user_id if node.person else 0)


class ChannelTreeModel(QAbstractItemModel):
    """Categories and channels of one community. Top-level rows have internal id 0;
    a child's internal id is its category's row + 1, so no pointers are needed."""

    move_failed = Signal(str)  # the relay refused a move (taken back): why, for people
    move_accepted = Signal()

    def __init__(
        self,
        session: AppSession,
        read_states: ReadStateTracker,
        is_muted: Callable[[int], bool] = lambda _channel_id: False,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self._session = session
        self._read_states = read_states
        self._is_muted = is_muted
        self._guild_id: int | None = None
        self._roots: list[_Node] = []
        session.channels_changed.connect(self._on_channels_changed)
        read_states.changed.connect(self.refresh_channel)
        voice = session.voice
        voice.voice_states_changed.connect(self._on_voice_states_changed)
        voice.speaking_changed.connect(self._on_speaking_changed)
        voice.state_changed.connect(self._on_voice_connection)
        self._in_voice: int | None = None
        self._speaking: frozenset[int] = frozenset()
        # Moves on their way to the relay, shown already: channel id → (request, placement).
        self._moves: dict[int, tuple[int, Placement]] = {}
        self._requests = 0
        self._accepted: set[int] = set()  # requests the relay answered with success
        self._settle = QTimer(self)
        self._settle.setSingleShot(True)
        self._settle.setInterval(SETTLE_MS)
        self._settle.timeout.connect(self._settled)

    @property
    def guild_id(self) -> int | None:
        return self._guild_id

    def set_guild(self, guild_id: int | None) -> None:
        self.beginResetModel()
        self._guild_id = guild_id
        self._roots = self._build()
        self.endResetModel()

    def _build(self) -> list[_Node]:
        return build_tree(self._channels(), self._session.voice.people_in)

    def _channels(self) -> list[Channel]:
        """The community's channels as shown: the cache, with moves still on their way."""
        if self._guild_id is None:
            return []
        channels = self._session.channels(self._guild_id)
        if not self._moves:
            return channels
        return apply_placements(channels, {cid: p for cid, (_, p) in self._moves.items()})

    # Structure ----------------------------------------------------------------------------

    def _node(self, index: Index) -> _Node | None:
        if not index.isValid():
            return None
        parent_row = index.internalId()
        if parent_row == 0:
            return self._roots[index.row()] if index.row() < len(self._roots) else None
        siblings = self._roots[parent_row - 1].children
        return siblings[index.row()] if index.row() < len(siblings) else None

    def index(self, row: int, column: int = 0, parent: Index = ROOT) -> QModelIndex:
        if column != 0 or row < 0:
            return QModelIndex()
        if not parent.isValid():
            return self.createIndex(row, 0, 0) if row < len(self._roots) else QModelIndex()
        if parent.internalId() != 0:
            return QModelIndex()
        children = self._roots[parent.row()].children
        return self.createIndex(row, 0, parent.row() + 1) if row < len(children) else QModelIndex()

    def parent(self, index: Index = ROOT) -> QModelIndex:  # type: ignore[override]
        if not index.isValid() or index.internalId() == 0:
            return QModelIndex()
        return self.createIndex(index.internalId() - 1, 0, 0)

    def rowCount(self, parent: Index = ROOT) -> int:
        if not parent.isValid():
            return len(self._roots)
        if parent.internalId() != 0 or parent.row() >= len(self._roots):
            return 0
        return len(self._roots[parent.row()].children)

    def columnCount(self, parent: Index = ROOT) -> int:
        return 1

    def index_of(self, channel_id: int, user_id: int = 0) -> QModelIndex:
        """A channel's row, or with ``user_id`` that person's row under a voice channel."""
        wanted = (channel_id, user_id)
        for row, node in enumerate(self._roots):
            if _key(node) == wanted:
                return self.index(row, 0)
            for child_row, child in enumerate(node.children):
                if _key(child) == wanted:
                    return self.index(child_row, 0, self.index(row, 0))
        return QModelIndex()

    def people_rows(self) -> list[QModelIndex]:
        """Every person row, top to bottom."""
        rows: list[QModelIndex] = []
        for row, node in enumerate(self._roots):
            parent = self.index(row, 0)
            if node.person is not None:
                rows.append(parent)
            rows.extend(
                self.index(child_row, 0, parent)
                for child_row, child in enumerate(node.children)
                if child.person is not None
            )
        return rows

    def flags(self, index: Index) -> Qt.ItemFlag:
        node = self._node(index)
        if node is None:
            # The empty space below the rows takes drops too (they append).
            if not index.isValid() and self.can_reorder():
                return Qt.ItemFlag.ItemIsDropEnabled
            return Qt.ItemFlag.NoItemFlags
        if node.person is not None:
            return Qt.ItemFlag.ItemIsEnabled
        flags = Qt.ItemFlag.ItemIsEnabled
        if self.can_reorder():
            flags |= Qt.ItemFlag.ItemIsDragEnabled
            # Only a category takes a drop "on" it; a channel row splits into the gaps
            # above and below it, so the view draws a line there, not a box.
            if node.channel.type == ChannelType.GUILD_CATEGORY:
                flags |= Qt.ItemFlag.ItemIsDropEnabled
        # Categories, voice channels and the people in them are never "the open channel":
        # clicking them toggles, joins or shows a menu, and the selection stays put.
        if node.channel.type not in (ChannelType.GUILD_CATEGORY, ChannelType.GUILD_VOICE):
            flags |= Qt.ItemFlag.ItemIsSelectable
        return flags

    # Data ----------------------------------------------------------------------------------

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        node = self._node(index)
        if node is None:
            return None
        if node.person is not None:
            return self._person_data(node.person, role)
        channel = node.channel
        name = channel.name or "unnamed"
        muted = self._is_muted(channel.id)
        unread = bool(self._read_states.unread(channel.id)) and not muted
        if role == Qt.ItemDataRole.DisplayRole:
            return name.upper() if channel.type == ChannelType.GUILD_CATEGORY else name
        encrypted = self._session.channel_encrypted(channel.id)
        if role == Qt.ItemDataRole.ToolTipRole:
            tip = channel.topic or name
            return f"{tip} — end-to-end encrypted" if encrypted else tip
        if role == Qt.ItemDataRole.AccessibleTextRole:
            parts = [name]
            if encrypted:
                parts.append("end-to-end encrypted")
            if unread:
                parts.append("unread")
            if mentions := self._read_states.mentions(channel.id):
                parts.append(f"{mentions} mentions")
            if muted:
                parts.append("muted")
            if channel.id == self._in_voice:
                parts.append("connected")
            return ", ".join(parts)
        if role == Qt.ItemDataRole.FontRole:
            font = QFont()
            font.setBold(unread or channel.type == ChannelType.GUILD_CATEGORY)
            return font
        if role == ChannelIdRole:
            return channel.id
        if role == KindRole:
            return int(channel.type)
        if role == UnreadRole:
            return unread
        if role == MentionRole:
            return self._read_states.mentions(channel.id)
        if role == MutedRole:
            return muted
        if role == CurrentRole:
            return channel.id == self._read_states.current_channel
        if role == InVoiceRole:
            return channel.id == self._in_voice
        if role == EncryptedRole:
            return encrypted
        return None

    def _person_data(self, person: VoicePerson, role: int) -> Any:
        speaking = person.user_id in self._speaking
        if role == Qt.ItemDataRole.DisplayRole:
            return person.name
        if role in (Qt.ItemDataRole.AccessibleTextRole, Qt.ItemDataRole.ToolTipRole):
            parts = [person.name]
            if speaking:
                parts.append("speaking")
            if person.deafened:
                parts.append("deafened")
            elif person.muted:
                parts.append("muted")
            return ", ".join(parts)
        if role == KindRole:
            return PERSON_KIND
        if role == VoiceUserRole:
            return person.user_id
        if role == VoiceAvatarRole:
            return person.avatar
        if role == VoiceMutedRole:
            return person.muted
        if role == VoiceDeafRole:
            return person.deafened
        if role == SpeakingRole:
            return speaking
        return None

    def _on_voice_states_changed(self) -> None:
        self._on_channels_changed(self._guild_id)

    def _on_speaking_changed(self, speaking: object) -> None:
        before = self._speaking
        self._speaking = frozenset(speaking) if isinstance(speaking, frozenset) else frozenset()
        changed = before ^ self._speaking
        for index in self.people_rows():
            if index.data(VoiceUserRole) in changed:
                self.dataChanged.emit(index, index)

    def _on_voice_connection(self) -> None:
        before, self._in_voice = self._in_voice, self._session.voice.channel_id
        for channel_id in {before, self._in_voice} - {None}:
            assert channel_id is not None
            self.refresh_channel(channel_id)

    def refresh_channel(self, channel_id: int) -> None:
        """Repaint one row (unread, mentions, mute changed)."""
        index = self.index_of(channel_id)
        if index.isValid():
            self.dataChanged.emit(index, index)

    def refresh_all(self) -> None:
        for row, node in enumerate(self._roots):
            parent = self.index(row, 0)
            self.dataChanged.emit(parent, parent)
            if node.children:
                first = self.index(0, 0, parent)
                last = self.index(len(node.children) - 1, 0, parent)
                self.dataChanged.emit(first, last)

    def _on_channels_changed(self, guild_id: object) -> None:
        if self._moves:
            self._drop_settled()
        if guild_id != self._guild_id or self._guild_id is None:
            return
        self._relayout()

    def _relayout(self) -> None:
        new_roots = self._build()
        # A layout change with remapped persistent indexes keeps the view's selection,
        # current item and expanded categories, which a reset would throw away.
        self.layoutAboutToBeChanged.emit()
        old = []
        for index in self.persistentIndexList():
            node = self._node(index)
            old.append((index, _key(node) if node is not None else None))
        self._roots = new_roots
        for index, key in old:
            self.changePersistentIndex(index, self.index_of(*key) if key else QModelIndex())
        self.layoutChanged.emit()

    # Reordering ----------------------------------------------------------------------------

    def can_reorder(self) -> bool:
        """Whether the signed-in member may move channels here (Manage Channels, as the
        relay checks it: community-wide)."""
        guild_id = self._guild_id
        return guild_id is not None and bool(
            self._session.guild_permissions(guild_id) & Permissions.MANAGE_CHANNELS
        )

    def can_step(self, channel_id: int, *, up: bool) -> bool:
        """Whether "Move up" / "Move down" would move ``channel_id``."""
        return self._plan_step(channel_id, up=up) is not None

    def move_step(self, channel_id: int, *, up: bool) -> bool:
        """The keyboard's move: one place up or down (see ``step_destination``)."""
        planned = self._plan_step(channel_id, up=up)
        if planned is None:
            return False
        self._send(*planned)
        return True

    def _plan_step(self, channel_id: int, *, up: bool) -> tuple[Channel, list[Placement]] | None:
        if not self.can_reorder():
            return None
        channels = self._channels()
        moved = next((c for c in channels if c.id == channel_id), None)
        destination = step_destination(channels, channel_id, up=up)
        if moved is None or destination is None:
            return None
        placements = plan_move(channels, channel_id, destination)
        return (moved, placements) if placements else None

    def mimeTypes(self) -> list[str]:
        return [CHANNEL_MIME]

    def supportedDragActions(self) -> Qt.DropAction:
        return Qt.DropAction.MoveAction

    def supportedDropActions(self) -> Qt.DropAction:
        return Qt.DropAction.MoveAction

    def mimeData(self, indexes: Sequence[QModelIndex]) -> QMimeData:
        """The first channel or category among ``indexes`` (one is moved at a time)."""
        data = QMimeData()
        node = next(
            (n for n in map(self._node, indexes) if n is not None and n.person is None), None
        )
        if node is not None and self._guild_id is not None:
            payload = {"guild_id": str(self._guild_id), "channel_id": str(node.channel.id)}
            data.setData(CHANNEL_MIME, QByteArray(json.dumps(payload).encode()))
        return data

    def canDropMimeData(
        self, data: QMimeData, action: Qt.DropAction, row: int, column: int, parent: Index
    ) -> bool:
        return self._plan_drop(data, action, row, parent) is not None

    def dropMimeData(
        self, data: QMimeData, action: Qt.DropAction, row: int, column: int, parent: Index
    ) -> bool:
        """Move the dragged channel where it was dropped: shown at once, sent as one
        request, taken back if the relay refuses."""
        planned = self._plan_drop(data, action, row, parent)
        if planned is None:
            return False
        self._send(*planned)
        return True

    def dragged_channel(self, data: QMimeData) -> int | None:
        """The channel ``data`` carries, if it is one of this community's; anything else
        (another app's drop, a malformed payload) is None."""
        if self._guild_id is None or not data.hasFormat(CHANNEL_MIME):
            return None
        raw = bytes(data.data(CHANNEL_MIME).data())
        if len(raw) > 200:
            return None
        try:
            payload = json.loads(raw.decode())
            if int(payload["guild_id"]) != self._guild_id:
                return None
            channel_id = int(payload["channel_id"])
        except (ValueError, TypeError, KeyError, IndexError):
            return None
        return channel_id if any(c.id == channel_id for c in self._channels()) else None

    def _plan_drop(
        self, data: QMimeData, action: Qt.DropAction, row: int, parent: Index
    ) -> tuple[Channel, list[Placement]] | None:
        if action != Qt.DropAction.MoveAction or not self.can_reorder():
            return None
        channel_id = self.dragged_channel(data)
        channels = self._channels()
        moved = next((c for c in channels if c.id == channel_id), None)
        if moved is None:
            return None
        destination = self._drop_destination(moved, row, parent)
        if destination is None:
            return None
        placements = plan_move(channels, moved.id, destination)
        return None if placements is None else (moved, placements)

    def _drop_destination(self, moved: Channel, row: int, parent: Index) -> Destination | None:
        """Where a drop at (``row``, ``parent``) puts ``moved``, as the view draws it:
        ``row`` -1 is "on ``parent``", otherwise the gap above that row."""
        moving_category = moved.type == ChannelType.GUILD_CATEGORY
        categories = [
            n.channel.id
            for n in self._roots
            if n.person is None
            and n.channel.type == ChannelType.GUILD_CATEGORY
            and n.channel.id != moved.id
        ]
        if parent.isValid():
            node = self._node(parent)
            if node is None or parent.internalId() != 0 or node.channel.id not in categories:
                return None  # only categories hold channels
            category = node.channel.id
            if moving_category:
                # On a header it takes that category's place; below its last row it
                # goes after the whole block. Among its channels it cannot go.
                if row < 0:
                    return Destination(None, categories.index(category))
                if row >= len(node.children):
                    return Destination(None, categories.index(category) + 1)
                return None
            if row < 0:
                return Destination(category, 0, clamp=True)  # on the header: on top
            return Destination(category, _channels_above(node.children, row, moved.id))
        # Between top-level rows: channels outside any category first, then categories.
        first_category = next(
            (
                i
                for i, n in enumerate(self._roots)
                if n.person is None and n.channel.type == ChannelType.GUILD_CATEGORY
            ),
            len(self._roots),
        )
        if row < 0:  # the empty space under the list: the very end
            if moving_category:
                return Destination(None, len(categories))
            last = categories[-1] if categories else None
            return Destination(last, len(self._channels()), clamp=True)
        row = min(row, len(self._roots))
        if moving_category:
            above = self._roots[:row]
            return Destination(
                None,
                sum(
                    1
                    for n in above
                    if n.person is None
                    and n.channel.type == ChannelType.GUILD_CATEGORY
                    and n.channel.id != moved.id
                ),
            )
        if row <= first_category:
            return Destination(None, _channels_above(self._roots, row, moved.id))
        # Just above a category header: the end of the category before it.
        before = self._roots[row - 1].channel
        if before.id == moved.id or before.type != ChannelType.GUILD_CATEGORY:
            return None
        return Destination(before.id, len(self._channels()), clamp=True)

    def _send(self, moved: Channel, placements: list[Placement]) -> None:
        guild_id = self._guild_id
        account = self._session.account_for_guild(guild_id) if guild_id is not None else None
        if not placements or account is None:
            return
        self._requests += 1
        request = self._requests
        for placement in placements:
            self._moves[placement.channel_id] = (request, placement)
        self._relayout()
        name = moved.name or "the channel"
        self._session.run(
            self._session.http(
                account,
                "PATCH",
                f"/guilds/{guild_id}/channels",
                [placement.to_json() for placement in placements],
            ),
            on_done=lambda _answer: self._move_accepted(request),
            on_error=lambda exc: self._move_refused(request, name, exc),
        )

    def _move_accepted(self, request: int) -> None:
        self._accepted.add(request)
        # CHANNEL_UPDATEs usually arrive before the answer; the rest replace the
        # placements as they come, or once SETTLE_MS has passed.
        self._drop_settled()
        if any(r in self._accepted for r, _ in self._moves.values()):
            self._settle.start()
        self.move_accepted.emit()

    def _move_refused(self, request: int, name: str, exc: Exception) -> None:
        for channel_id, (owner, _) in list(self._moves.items()):
            if owner == request:
                del self._moves[channel_id]
        self._relayout()
        self.move_failed.emit(f"Could not move {name}: {describe_error(exc)}")

    def _drop_settled(self) -> None:
        """Forget accepted placements the cache now agrees with."""
        for channel_id, (request, placement) in list(self._moves.items()):
            if request not in self._accepted:
                continue
            cached = self._session.channel(channel_id)
            if cached is None or (
                cached.position == placement.position
                and (not placement.parent_changed or cached.parent_id == placement.parent_id)
            ):
                del self._moves[channel_id]
        self._accepted &= {request for request, _ in self._moves.values()}

    def _settled(self) -> None:
        for channel_id, (request, _) in list(self._moves.items()):
            if request in self._accepted:
                del self._moves[channel_id]
        self._accepted.clear()
        if self._guild_id is not None:
            self._relayout()


def _channels_above(nodes: list[_Node], row: int, moved_id: int) -> int:
    """How many channels (not people, categories or the moved one) sit above ``row``."""
    return sum(
        1
        for n in nodes[: max(row, 0)]
        if n.person is None
        and n.channel.type != ChannelType.GUILD_CATEGORY
        and n.channel.id != moved_id
    )


# Collapsed categories, remembered per account ------------------------------------------

_COLLAPSED_KEY = "collapsed_categories"


def load_collapsed(account: Account | None) -> set[int]:
    store = account.client.store if account else None
    if store is None:
        return set()
    try:
        return {int(x) for x in json.loads(store.get_meta(_COLLAPSED_KEY) or "[]")}
    except (ValueError, TypeError):
        return set()


def save_collapsed(account: Account | None, collapsed: set[int]) -> None:
    store = account.client.store if account else None
    if store is not None:
        store.set_meta(_COLLAPSED_KEY, json.dumps(sorted(collapsed)))
