"""Voice: the audio pipeline, frame encryption, recording and the call connection.

Nothing is imported here on purpose: numpy, PyAV and aiortc are costly to load, and a
client that never joins a call should not pay for them. Import the modules you use
(``nexus_client.voice.audio``, ``.connection``…), or call ``Client.join_voice``.
"""
