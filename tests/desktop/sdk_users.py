"""The people on the other side of a desktop test: SDK clients with their own encrypted
stores and E2EE devices, on the same relay as the app."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

from nexus_client import Client
from nexus_client.store import LocalStore

PASSWORD = "correct horse battery"


async def sdk_user(
    relay_url: str, tmp_path: Path, name: str, *, device: str = "", register: bool = True
) -> Client:
    folder = tmp_path / "sdk"
    folder.mkdir(exist_ok=True)
    store = LocalStore.open_with_key(folder / f"{device or name}.db", secrets.token_bytes(32))
    client = Client(relay_url, store=store)
    action = client.register if register else client.login
    await action(name, PASSWORD)
    await client.start()
    await client.e2ee_setup(device_name=device or name)
    return client


def collect(client: Client, event: str) -> list[Any]:
    """Everything ``client`` dispatches as ``event`` from now on."""
    got: list[Any] = []

    @client.listen(event)
    async def keep(item: Any) -> None:
        got.append(item)

    return got
