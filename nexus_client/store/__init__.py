"""The client's local store: one SQLCipher database per account, keyed from the OS
keyring or a passphrase, holding caches (images too), read states, meta and the offline
outbox."""

from ._e2ee_table import E2EETable
from ._image_table import IMAGE_CACHE_BYTES, ImageCacheTable
from ._keys import ScryptParams
from ._local_store import MESSAGES_PER_CHANNEL, LocalStore, ReadState
from ._migrations import SCHEMA_VERSION
from ._outbox_table import KEEP_SENT, OutboxState, PendingMessage

__all__ = [
    "IMAGE_CACHE_BYTES",
    "KEEP_SENT",
    "MESSAGES_PER_CHANNEL",
    "SCHEMA_VERSION",
    "E2EETable",
    "ImageCacheTable",
    "LocalStore",
    "OutboxState",
    "PendingMessage",
    "ReadState",
    "ScryptParams",
]
