"""Which intent a dispatch needs depends on where it happens: in a community the GUILD_*
intents, in a DM or group DM the DIRECT_* ones (Discord's rule)."""

from __future__ import annotations

from nexus_protocol.gateway import Intents
from nexus_protocol.session import ServerSession
from nexus_server.events import Event
from nexus_server.gateway.hub import SessionEntry


def _established(intents: Intents) -> SessionEntry:
    session = ServerSession()
    session.hello(0.0)
    session.receive(b'{"op":2,"d":{"token":"t","intents":%d,"properties":{}}}' % int(intents), 0.0)
    session.establish("s", b"{}", 0.0)
    return SessionEntry(session=session, user_id=1, intents=intents, pending=None)


def test_dm_messages_need_direct_messages_and_guild_messages_need_guild_messages() -> None:
    in_guild = Event("MESSAGE_CREATE", b'{"content":"g"}', frozenset({1}), guild_id=99)
    in_dm = Event("MESSAGE_CREATE", b'{"content":"d"}', frozenset({1}))

    guild_only = _established(Intents.GUILDS | Intents.GUILD_MESSAGES)
    guild_only.deliver(in_guild)
    guild_only.deliver(in_dm)
    assert guild_only.session.seq == 2  # READY, then the guild message only

    dm_only = _established(Intents.GUILDS | Intents.DIRECT_MESSAGES)
    dm_only.deliver(in_guild)
    dm_only.deliver(in_dm)
    replay = dm_only.session.frames_since(1)
    assert replay is not None and [b'"content":"d"' in f for f in replay] == [True]


def test_dm_typing_and_reactions_have_their_own_intents() -> None:
    typing = Event("TYPING_START", b"{}", frozenset({1}))
    reaction = Event("MESSAGE_REACTION_ADD", b"{}", frozenset({1}))
    entry = _established(Intents.DIRECT_MESSAGES)
    entry.deliver(typing)
    entry.deliver(reaction)
    assert entry.session.seq == 1
    both = _established(Intents.DIRECT_MESSAGE_TYPING | Intents.DIRECT_MESSAGE_REACTIONS)
    both.deliver(typing)
    both.deliver(reaction)
    assert both.session.seq == 3
