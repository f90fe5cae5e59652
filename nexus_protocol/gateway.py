"""Gateway opcodes, close codes, intents and the events each intent unlocks (Discord v10)."""

from __future__ import annotations

from enum import IntEnum, IntFlag
from typing import Final


class Opcode(IntEnum):
    DISPATCH = 0
    HEARTBEAT = 1
    IDENTIFY = 2
    PRESENCE_UPDATE = 3
    VOICE_STATE_UPDATE = 4
    RESUME = 6
    RECONNECT = 7
    REQUEST_GUILD_MEMBERS = 8
    INVALID_SESSION = 9
    HELLO = 10
    HEARTBEAT_ACK = 11
    # Nexus extensions: voice signalling on the main gateway (see nexus_protocol.voice).
    VOICE_OFFER = 40
    CALL_SIGNAL = 41
    VOICE_RECORDING = 42
    VOICE_KEYS = 43


class CloseCode(IntEnum):
    UNKNOWN_ERROR = 4000
    UNKNOWN_OPCODE = 4001
    DECODE_ERROR = 4002
    NOT_AUTHENTICATED = 4003
    AUTHENTICATION_FAILED = 4004
    ALREADY_AUTHENTICATED = 4005
    INVALID_SEQ = 4007
    RATE_LIMITED = 4008
    SESSION_TIMED_OUT = 4009
    INVALID_SHARD = 4010
    SHARDING_REQUIRED = 4011
    INVALID_API_VERSION = 4012
    INVALID_INTENTS = 4013
    DISALLOWED_INTENTS = 4014


class Intents(IntFlag):
    GUILDS = 1 << 0
    GUILD_MEMBERS = 1 << 1
    GUILD_MODERATION = 1 << 2
    GUILD_EXPRESSIONS = 1 << 3
    GUILD_INTEGRATIONS = 1 << 4
    GUILD_WEBHOOKS = 1 << 5
    GUILD_INVITES = 1 << 6
    GUILD_VOICE_STATES = 1 << 7
    GUILD_PRESENCES = 1 << 8
    GUILD_MESSAGES = 1 << 9
    GUILD_MESSAGE_REACTIONS = 1 << 10
    GUILD_MESSAGE_TYPING = 1 << 11
    DIRECT_MESSAGES = 1 << 12
    DIRECT_MESSAGE_REACTIONS = 1 << 13
    DIRECT_MESSAGE_TYPING = 1 << 14
    MESSAGE_CONTENT = 1 << 15
    # Discord's other defined bits: accepted (discord.py's defaults include them), though
    # the relay sends none of their events yet.
    GUILD_SCHEDULED_EVENTS = 1 << 16
    AUTO_MODERATION_CONFIGURATION = 1 << 20
    AUTO_MODERATION_EXECUTION = 1 << 21
    GUILD_MESSAGE_POLLS = 1 << 24
    DIRECT_MESSAGE_POLLS = 1 << 25


ALL_INTENTS: Final = Intents(sum(intent.value for intent in Intents))
DEFAULT_INTENTS: Final = ALL_INTENTS

# Which intent a dispatch needs before a session receives it. Events not listed
# (READY, RESUMED, USER_UPDATE…) go to every session.
EVENT_INTENTS: Final[dict[str, Intents]] = {
    "GUILD_CREATE": Intents.GUILDS,
    "GUILD_UPDATE": Intents.GUILDS,
    "GUILD_DELETE": Intents.GUILDS,
    "GUILD_ROLE_CREATE": Intents.GUILDS,
    "GUILD_ROLE_UPDATE": Intents.GUILDS,
    "GUILD_ROLE_DELETE": Intents.GUILDS,
    "CHANNEL_CREATE": Intents.GUILDS,
    "CHANNEL_UPDATE": Intents.GUILDS,
    "CHANNEL_DELETE": Intents.GUILDS,
    "CHANNEL_PINS_UPDATE": Intents.GUILDS,
    "GUILD_MEMBER_ADD": Intents.GUILD_MEMBERS,
    "GUILD_MEMBER_UPDATE": Intents.GUILD_MEMBERS,
    "GUILD_MEMBER_REMOVE": Intents.GUILD_MEMBERS,
    "GUILD_AUDIT_LOG_ENTRY_CREATE": Intents.GUILD_MODERATION,
    "GUILD_BAN_ADD": Intents.GUILD_MODERATION,
    "GUILD_BAN_REMOVE": Intents.GUILD_MODERATION,
    "INVITE_CREATE": Intents.GUILD_INVITES,
    "INVITE_DELETE": Intents.GUILD_INVITES,
    "PRESENCE_UPDATE": Intents.GUILD_PRESENCES,
    "MESSAGE_CREATE": Intents.GUILD_MESSAGES,
    "MESSAGE_UPDATE": Intents.GUILD_MESSAGES,
    "MESSAGE_DELETE": Intents.GUILD_MESSAGES,
    "MESSAGE_DELETE_BULK": Intents.GUILD_MESSAGES,
    "MESSAGE_REACTION_ADD": Intents.GUILD_MESSAGE_REACTIONS,
    "MESSAGE_REACTION_REMOVE": Intents.GUILD_MESSAGE_REACTIONS,
    "MESSAGE_REACTION_REMOVE_ALL": Intents.GUILD_MESSAGE_REACTIONS,
    "TYPING_START": Intents.GUILD_MESSAGE_TYPING,
    "VOICE_STATE_UPDATE": Intents.GUILD_VOICE_STATES,
}

# The same events outside a community (DMs, group DMs) need the DIRECT_* intents instead.
DM_EVENT_INTENTS: Final[dict[str, Intents]] = {
    "MESSAGE_CREATE": Intents.DIRECT_MESSAGES,
    "MESSAGE_UPDATE": Intents.DIRECT_MESSAGES,
    "MESSAGE_DELETE": Intents.DIRECT_MESSAGES,
    "MESSAGE_DELETE_BULK": Intents.DIRECT_MESSAGES,
    "CHANNEL_PINS_UPDATE": Intents.DIRECT_MESSAGES,
    "MESSAGE_REACTION_ADD": Intents.DIRECT_MESSAGE_REACTIONS,
    "MESSAGE_REACTION_REMOVE": Intents.DIRECT_MESSAGE_REACTIONS,
    "MESSAGE_REACTION_REMOVE_ALL": Intents.DIRECT_MESSAGE_REACTIONS,
    "TYPING_START": Intents.DIRECT_MESSAGE_TYPING,
}
