"""Where a store's 32-byte SQLCipher key comes from: a passphrase or the OS keyring.

Invariants:

- A key is always 32 random-looking bytes; there is no plaintext mode and no fallback
  to one. Without a passphrase and without a working keyring, ``NoKeyAvailable``.
- A passphrase is stretched with scrypt over a per-store random salt kept beside the
  database in ``<db>.salt`` (JSON: salt and the scrypt parameters), so SQLCipher's own
  PBKDF2 is skipped (raw key) and the cost can be raised later without a migration.
- Nothing here creates key material for a database that already exists: a missing
  salt file or keyring entry for an existing store means ``StoreLocked``, never a new key
  (which would only hide the real problem behind a wrong-key error).
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from .._exceptions import NoKeyAvailable, StoreError, StoreLocked

KEY_BYTES = 32
KEYRING_SERVICE = "nexus"
_SALT_FORMAT = "nexus-store-salt"
_SALT_VERSION = 1


@dataclass(frozen=True, slots=True)
class ScryptParams:
    """scrypt cost for new passphrase stores (an existing store keeps the cost it was
    created with: it is read from its salt file). The default costs ~32 MiB and ~0.15 s."""

    n: int = 2**15
    r: int = 8
    p: int = 1

    def __post_init__(self) -> None:
        if self.n < 2 or self.n & (self.n - 1):
            raise ValueError("scrypt n must be a power of two greater than 1")
        if self.r < 1 or self.p < 1:
            raise ValueError("scrypt r and p must be positive")


def salt_path(db_path: Path) -> Path:
    return db_path.with_name(db_path.name + ".salt")


def passphrase_key(
    db_path: Path, passphrase: str, *, db_exists: bool, params: ScryptParams
) -> bytes:
    """The raw key for ``passphrase``, creating the salt file for a new store."""
    if not passphrase:
        raise ValueError("the passphrase must not be empty")
    path = salt_path(db_path)
    if path.exists():
        salt, params = _read_salt_file(path)
    elif db_exists:
        raise StoreLocked(
            f"{db_path} was not created with a passphrase (no {path.name} beside it); "
            "open it with the key it was created with"
        )
    else:
        salt = secrets.token_bytes(16)
        try:
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            _write_salt_file(path, salt, params)
        except OSError as exc:
            raise StoreError(f"cannot write the store's salt file {path}: {exc}") from exc
    # NFC so the same passphrase typed on different systems gives the same bytes.
    secret = unicodedata.normalize("NFC", passphrase).encode("utf-8")
    return hashlib.scrypt(
        secret,
        salt=salt,
        n=params.n,
        r=params.r,
        p=params.p,
        maxmem=256 * params.r * params.n + (1 << 20),
        dklen=KEY_BYTES,
    )


def keyring_key(username: str, *, db_exists: bool) -> bytes:
    """The store's key from the OS keyring; a new random one for a new store."""
    # Imported here: loading keyring's backends costs ~40 ms, and a store opened with a
    # passphrase never needs them.
    import keyring
    import keyring.backends.fail
    import keyring.errors

    try:
        backend = keyring.get_keyring()
        if isinstance(backend, keyring.backends.fail.Keyring):
            raise keyring.errors.NoKeyringError(str(backend))
        stored = keyring.get_password(KEYRING_SERVICE, username)
        if stored is not None:
            try:
                key = bytes.fromhex(stored)
            except ValueError:
                key = b""
            if len(key) != KEY_BYTES:
                raise StoreError(f"the keyring entry {KEYRING_SERVICE}/{username} is not a key")
            return key
        if db_exists:
            raise StoreLocked(
                f"the OS keyring holds no key for {username}; if this store was created "
                "with a passphrase, open it with that passphrase"
            )
        key = secrets.token_bytes(KEY_BYTES)
        keyring.set_password(KEYRING_SERVICE, username, key.hex())
        return key
    except keyring.errors.KeyringError as exc:
        raise NoKeyAvailable(
            f"no usable OS keyring to keep the local store's key ({exc}); "
            "pass a passphrase to encrypt the store with instead"
        ) from exc


def _write_salt_file(path: Path, salt: bytes, params: ScryptParams) -> None:
    body = json.dumps(
        {
            "format": _SALT_FORMAT,
            "version": _SALT_VERSION,
            "kdf": "scrypt",
            "n": params.n,
            "r": params.r,
            "p": params.p,
            "salt": salt.hex(),
        }
    ).encode()
    # Written whole and renamed into place: a crash leaves either no salt file or a
    # complete one, never a torn one that would lock the store for good.
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, body)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def _read_salt_file(path: Path) -> tuple[bytes, ScryptParams]:
    try:
        data = json.loads(path.read_bytes())
        if data["format"] != _SALT_FORMAT or data["version"] != _SALT_VERSION:
            raise ValueError("unknown salt file format")
        if data["kdf"] != "scrypt":
            raise ValueError(f"unknown key derivation {data['kdf']!r}")
        salt = bytes.fromhex(data["salt"])
        params = ScryptParams(n=int(data["n"]), r=int(data["r"]), p=int(data["p"]))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise StoreError(f"cannot read the store's salt file {path}: {exc}") from exc
    if len(salt) < 16:
        raise StoreError(f"the store's salt file {path} holds a salt that is too short")
    return salt, params
