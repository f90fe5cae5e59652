"""Where the app keeps the list of saved accounts and each account's encrypted store.

Only the standard library here: start-up reads the list before Qt and the SDK are
imported, to start deriving the stores' keys at once (``store_keys``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

REQUIRED = frozenset({"relay_url", "username", "user_id"})


def account_list_path(data_dir: Path) -> Path:
    return data_dir / "accounts.json"


def read_saved_accounts(data_dir: Path) -> list[dict[str, Any]]:
    """The accounts the app remembers: ``relay_url``, ``username``, ``user_id``. No
    secrets here: each token lives in its account's encrypted store (meta "token").
    A missing or damaged list is an empty one."""
    try:
        entries = json.loads(account_list_path(data_dir).read_text())
    except (OSError, ValueError):
        return []
    if not isinstance(entries, list):
        return []
    return [e for e in entries if isinstance(e, dict) and e.keys() >= REQUIRED]


def store_path(data_dir: Path, relay_url: str, username: str) -> Path:
    """The encrypted store of ``username`` on ``relay_url``."""
    host = urlsplit(relay_url).netloc.replace(":", "_")
    return data_dir / "accounts" / host / f"{username}.db"
