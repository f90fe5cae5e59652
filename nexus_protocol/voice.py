"""Voice signalling on the main gateway: Discord's op 4 and voice states, and Nexus's
extension ops for the WebRTC handshake, direct calls, recording consent and voice keys.

Discord runs a second "voice gateway" per call; Nexus keeps every signal on the one
gateway the client already holds, so a voice join costs no extra socket or handshake:

- op 4 ``VOICE_STATE_UPDATE`` (Discord's): join, move, leave, self mute and deafen. The
  relay answers with a ``VOICE_STATE_UPDATE`` dispatch to everyone who can see the channel
  and, to the joiner, ``VOICE_SERVER_UPDATE`` carrying a one-use token.
- op 40 ``VOICE_OFFER``: the client's SDP offer for the SFU, with that token; the relay
  answers ``VOICE_ANSWER`` with the SFU's SDP (vanilla ICE: candidates are in the SDP).
- op 41 ``CALL_SIGNAL``: a direct (peer-to-peer) offer or answer for a one-to-one call,
  passed to the other person's sessions as a ``CALL_SIGNAL`` dispatch; ``decline`` stops
  their ringing.
- op 42 ``VOICE_RECORDING``: request, consent to, refuse or stop a recording; everyone in
  the channel gets ``VOICE_RECORDING_UPDATE`` with who records and who consented.
- op 43 ``VOICE_KEYS``: frame-key envelopes (sealed with the pairwise E2EE sessions) for
  the other people in an encrypted call; each gets ``VOICE_KEYS`` with only its own. Not
  stored: keys exist only while the call does.

Refused requests come back as a ``VOICE_ERROR`` dispatch naming the channel and why.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from .e2ee import EnvelopeBody
from .models import Snowflake

# An SDP offer from aiortc or a browser is 2 to 6 kB; this leaves room for many candidates.
MAX_SDP_LENGTH = 16_000
# A call of 25 people, some with a few devices (and under the frame limit).
MAX_KEY_ENVELOPES = 64
# Discord's largest voice channel user limit.
MAX_USER_LIMIT = 99


class VoiceErrorCode(StrEnum):
    UNKNOWN_CHANNEL = "unknown_channel"
    NOT_VOICE_CHANNEL = "not_voice_channel"
    MISSING_PERMISSIONS = "missing_permissions"
    CHANNEL_FULL = "channel_full"
    NOT_CONNECTED = "not_connected"
    BAD_TOKEN = "bad_token"
    VOICE_UNAVAILABLE = "voice_unavailable"
    INVALID = "invalid"


class _Body(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class VoiceStateUpdateBody(_Body):
    """Op 4's ``d``: ``channel_id`` null leaves; ``guild_id`` null means a DM call."""

    guild_id: Snowflake | None = None
    channel_id: Snowflake | None = None
    self_mute: bool = False
    self_deaf: bool = False


Sdp = Annotated[str, StringConstraints(min_length=10, max_length=MAX_SDP_LENGTH)]


class VoiceOfferBody(_Body):
    channel_id: Snowflake
    token: Annotated[str, StringConstraints(min_length=1, max_length=128)]
    sdp: Sdp


class CallSignalKind(StrEnum):
    OFFER = "offer"
    ANSWER = "answer"
    DECLINE = "decline"


class CallSignalBody(_Body):
    channel_id: Snowflake
    user_id: Snowflake  # who it is for
    kind: CallSignalKind
    sdp: Sdp | None = None


class RecordingAction(StrEnum):
    REQUEST = "request"
    CONSENT = "consent"
    REFUSE = "refuse"
    STOP = "stop"


class VoiceRecordingBody(_Body):
    channel_id: Snowflake
    action: RecordingAction


class VoiceKeysBody(_Body):
    channel_id: Snowflake
    envelopes: Annotated[list[EnvelopeBody], Field(min_length=1, max_length=MAX_KEY_ENVELOPES)]


def voice_state(
    *,
    user_id: int,
    channel_id: int | None,
    guild_id: int | None,
    session_id: str,
    self_mute: bool,
    self_deaf: bool,
    mute: bool,
    deaf: bool,
    member: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A voice state object in Discord's shape."""
    state: dict[str, Any] = {
        "guild_id": None if guild_id is None else str(guild_id),
        "channel_id": None if channel_id is None else str(channel_id),
        "user_id": str(user_id),
        "session_id": session_id,
        "deaf": deaf,
        "mute": mute,
        "self_deaf": self_deaf,
        "self_mute": self_mute,
        "self_stream": False,
        "self_video": False,
        "suppress": False,
        "request_to_speak_timestamp": None,
    }
    if member is not None:
        state["member"] = member
    return state
