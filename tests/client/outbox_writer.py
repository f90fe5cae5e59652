"""Run as a separate process by the outbox tests: queue messages while the relay is
down, say so, then wait to be killed (as a crash would end it)."""

from __future__ import annotations

import sys
import time

from nexus_client.outbox import Outbox
from nexus_client.store import LocalStore, ScryptParams

FAST_KDF = ScryptParams(n=2**10)


def main() -> None:
    store_path, passphrase, channel_id, count = sys.argv[1:5]
    store = LocalStore.open(store_path, passphrase=passphrase, kdf=FAST_KDF)
    outbox = Outbox(store)
    for index in range(int(count)):
        outbox.enqueue(int(channel_id), f"offline {index}")
    print("queued", flush=True)
    time.sleep(600)


if __name__ == "__main__":
    main()
