"""What every service is built with: the store, ids, the clock, permissions and the bus."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from nexus_protocol.snowflake import SnowflakeGenerator

from ..bus import Bus
from ..events import Event
from ..store.database import Database
from .permissions import PermissionService


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class Context:
    db: Database
    bus: Bus
    permissions: PermissionService
    ids: SnowflakeGenerator = field(default_factory=SnowflakeGenerator)
    clock: Callable[[], datetime] = utcnow

    async def publish(self, events: Iterable[Event]) -> None:
        """Hand committed changes to the bus. Call only after the transaction committed."""
        for event in events:
            if event.user_ids:
                await self.bus.publish(event)
