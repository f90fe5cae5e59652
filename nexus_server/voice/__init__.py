"""Voice rooms: an SFU that forwards Opus RTP payloads between participants undecoded.

The relay uses ``VoiceSupervisor``; everything else here runs inside the SFU worker
processes it starts (``python -m nexus_server.voice.sfu``).
"""

from __future__ import annotations

from nexus_server.voice.errors import VoiceError, VoiceRequestError, VoiceUnavailable
from nexus_server.voice.supervisor import VoiceSupervisor

__all__ = ["VoiceError", "VoiceRequestError", "VoiceSupervisor", "VoiceUnavailable"]
