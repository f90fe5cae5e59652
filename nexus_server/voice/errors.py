"""The voice package's exception tree; the relay turns these into voice-state errors.

VoiceError
├── VoiceUnavailable       the SFU worker for the room is down, restarting or not answering:
│                          the participant should retry (``on_restart`` says when)
└── VoiceRequestError      the worker refused the command: a malformed offer, a participant
                           who is not in the room, a command that does not parse
"""

from __future__ import annotations


class VoiceError(Exception):
    pass


class VoiceUnavailable(VoiceError):
    pass


class VoiceRequestError(VoiceError, ValueError):
    pass
