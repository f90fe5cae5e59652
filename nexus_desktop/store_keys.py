"""Passphrase store keys derived on a worker thread from the first moment of start-up.

Opening a passphrase store costs one scrypt derivation (~0.13 s at the stores' default
cost). ``hashlib.scrypt`` releases the GIL, so started on a worker thread as soon as the
passphrase is known, before Qt and the SDK are imported, it is done by the time the
accounts are opened; the store is then opened with the finished key.

Only the standard library is imported here: importing the SDK's key module would import
the whole SDK first (~0.3 s), which is what the derivation is meant to overlap. So the
salt file (``<store>.salt``, written by ``nexus_client.store``) is read here too, for
its one known format. Anything else yields no key, and a key that does not open the
store is not trusted either: the account is then opened the SDK's own way, which
derives again and reports failures (wrong passphrase, unreadable salt) as always.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import unicodedata
from pathlib import Path

from .saved_accounts import read_saved_accounts, store_path

log = logging.getLogger(__name__)

KEY_BYTES = 32
SALT_FORMAT = ("nexus-store-salt", 1)  # the salt file's "format" and "version"


def salt_file(db_path: Path) -> Path:
    return db_path.with_name(db_path.name + ".salt")


def derive_store_key(db_path: Path, passphrase: str) -> bytes | None:
    """The key of the existing passphrase store at ``db_path``, or None when its salt
    file is missing or not in the one format known here."""
    try:
        data = json.loads(salt_file(db_path).read_bytes())
        if (data["format"], data["version"]) != SALT_FORMAT or data["kdf"] != "scrypt":
            return None
        salt = bytes.fromhex(data["salt"])
        n, r, p = int(data["n"]), int(data["r"]), int(data["p"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not passphrase or len(salt) < 16:
        return None
    secret = unicodedata.normalize("NFC", passphrase).encode("utf-8")
    try:
        return hashlib.scrypt(
            secret, salt=salt, n=n, r=r, p=p, maxmem=256 * r * n + (1 << 20), dklen=KEY_BYTES
        )
    except (ValueError, MemoryError) as exc:
        log.debug("store key not derived ahead: %s", exc)
        return None


class StoreKeyDerivation:
    """The key of the passphrase store at ``db_path``, derived on a worker thread."""

    def __init__(self, db_path: Path, passphrase: str) -> None:
        self.db_path = db_path.absolute()
        self._passphrase = passphrase
        self._key: bytes | None = None
        self._thread = threading.Thread(target=self._derive, name="nexus-store-key", daemon=True)
        self._thread.start()

    def _derive(self) -> None:
        self._key = derive_store_key(self.db_path, self._passphrase)

    def key(self) -> bytes | None:
        """The derived key (waiting for it if need be), or None if there is none."""
        self._thread.join()
        return self._key


def derive_saved_keys(data_dir: Path, passphrase: str) -> dict[tuple[str, str], StoreKeyDerivation]:
    """Start deriving the key of every saved account's store, by (relay URL, username)."""
    derivations: dict[tuple[str, str], StoreKeyDerivation] = {}
    for entry in read_saved_accounts(data_dir):
        relay_url, username = str(entry["relay_url"]).rstrip("/"), str(entry["username"])
        path = store_path(data_dir, relay_url, username)
        if path.exists():
            derivations[(relay_url, username)] = StoreKeyDerivation(path, passphrase)
    return derivations
