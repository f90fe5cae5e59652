"""Nexus's headless client and Python SDK: REST, the gateway with resume, an encrypted
local store and an offline outbox. It never imports Qt."""

from nexus_protocol.gateway import Intents

from ._client import Client
from ._dm import DMMessage, UndecryptableMessage
from ._exceptions import (
    BadRequest,
    ConnectionLost,
    Forbidden,
    GatewayError,
    HTTPError,
    InvalidInput,
    NexusError,
    NoKeyAvailable,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    ServerError,
    StoreError,
    StoreLocked,
    Unauthorized,
)
from ._files import File
from ._groups import GroupMessage
from ._search import SearchResults

__all__ = [
    "BadRequest",
    "Client",
    "ConnectionLost",
    "DMMessage",
    "File",
    "Forbidden",
    "GatewayError",
    "GroupMessage",
    "HTTPError",
    "Intents",
    "InvalidInput",
    "NexusError",
    "NoKeyAvailable",
    "NotFound",
    "PayloadTooLarge",
    "RateLimited",
    "SearchResults",
    "ServerError",
    "StoreError",
    "StoreLocked",
    "Unauthorized",
    "UndecryptableMessage",
]
