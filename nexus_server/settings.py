"""How a relay is configured: command-line flags become one frozen value."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import platformdirs


def default_data_dir() -> Path:
    return Path(platformdirs.user_data_dir("nexus-server", appauthor=False))


@dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8470
    data_dir: Path = field(default_factory=default_data_dir)
    database_url: str | None = None
    redis_url: str | None = None
    public_url: str | None = None
    rate_limits: bool = True
    max_body_bytes: int = 1 * 1024 * 1024
    # Avatars, banners and icons: the largest upload (decoded), the most pixels an upload
    # may decode to (a few kilobytes can claim gigapixels), and memory for resized copies.
    max_image_bytes: int = 8 * 1024 * 1024
    max_image_pixels: int = 50_000_000
    image_cache_bytes: int = 64 * 1024 * 1024
    # Files on messages: the largest one (up to 10 per message), and how many bytes of
    # files all uploads together may hold in memory while they are checked and stored
    # (the others wait, their bytes in temporary files; one message always fits).
    max_attachment_bytes: int = 25 * 1024 * 1024
    upload_memory_bytes: int = 256 * 1024 * 1024
    # A form whose body stops arriving for this long is refused: a stalled upload holds
    # up to a megabyte per file in memory and a temporary file on disk.
    upload_stall_seconds: float = 60.0
    heartbeat_interval_ms: int = 41_250
    replay_limit: int = 4096
    gateway_queue_limit: int = 2048
    detached_session_ttl: float = 120.0
    # SFU worker processes (0: no voice); started with the relay, or at the first call.
    voice_workers: int = 1
    voice_start_eagerly: bool = False
    # How many of the loudest talkers each listener receives at once.
    voice_forward_loudest: int = 5

    @property
    def database(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.data_dir / 'nexus.db'}"

    @property
    def base_url(self) -> str:
        if self.public_url:
            return self.public_url.rstrip("/")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def gateway_url(self) -> str:
        base = self.base_url
        scheme = "wss" if base.startswith("https") else "ws"
        return f"{scheme}{base[base.index(':') :]}/api/v10/gateway/ws"
