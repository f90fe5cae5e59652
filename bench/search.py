"""Message search over 100,000 messages on SQLite (FTS5): p50/p95 of a few query shapes,
how long filling the index took, and the index's size on disk.

A fresh relay database (every migration) gets one community with 10 channels and 50
authors; each message is 6 to 20 words drawn from a 5,000-word vocabulary with a Zipf
distribution (a few words in most messages, most words rare), 5% carry a link. The
queries run through the store's search (count, stopping at 5,000, + one page +
mentions), as the relay's route does before rendering; each shape runs ``--repeat``
times after one warm-up.

There is no named baseline: ../shared/bench holds Synapse's fan-out figures only, none
for search.

    .venv/bin/python bench/search.py                     # 100,000 messages
    .venv/bin/python bench/search.py --messages 20000 --repeat 20
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import tempfile
import time
from pathlib import Path

from sqlalchemy import insert

from nexus_protocol.snowflake import SnowflakeGenerator
from nexus_server.store import search as search_store
from nexus_server.store.database import Database
from nexus_server.store.schema import channels, guilds, messages, users

CHANNELS = 10
AUTHORS = 50
VOCABULARY = 5_000


def vocabulary(rng: random.Random) -> list[str]:
    letters = "abcdefghijklmnopqrstuvwxyz"
    words: set[str] = set()
    while len(words) < VOCABULARY:
        words.add("".join(rng.choice(letters) for _ in range(rng.randint(3, 10))))
    return sorted(words, key=lambda w: rng.random())


async def fill(db: Database, count: int, rng: random.Random) -> tuple[list[str], float]:
    words = vocabulary(rng)
    weights = [1 / (rank + 1) for rank in range(len(words))]
    ids = SnowflakeGenerator()
    rows = []
    for _ in range(count):
        content = rng.choices(words, weights, k=rng.randint(6, 20))
        if rng.random() < 0.05:
            content.append(f"https://example.org/{rng.choice(words)}")
        rows.append(
            {
                "id": ids.next_id(),
                "channel_id": 100 + rng.randrange(CHANNELS),
                "guild_id": 1,
                "author_id": 10 + rng.randrange(AUTHORS),
                "content": " ".join(content),
            }
        )
    started = time.perf_counter()
    async with db.write("bench_fill") as tx:
        await tx.execute(
            insert(users),
            [{"id": 10 + n, "username": f"u{n}", "password_hash": "!"} for n in range(AUTHORS)],
        )
        await tx.execute(insert(guilds).values(id=1, name="Bench", owner_id=10))
        await tx.execute(
            insert(channels),
            [{"id": 100 + n, "guild_id": 1, "type": 0} for n in range(CHANNELS)],
        )
        for start in range(0, len(rows), 5_000):
            await tx.execute(insert(messages), rows[start : start + 5_000])
    return words, time.perf_counter() - started


def shapes(words: list[str]) -> dict[str, search_store.MessageQuery]:
    every = frozenset(range(100, 100 + CHANNELS))
    common, second, rare = words[0], words[1], words[3_000]

    def q(**fields: object) -> search_store.MessageQuery:
        return search_store.MessageQuery(channel_ids=every, **fields)  # type: ignore[arg-type]

    return {
        f"common word ({common})": q(words=(common,)),
        f"rare word ({rare})": q(words=(rare,)),
        f"two common words ({common} {second})": q(words=(common, second)),
        f"2-letter prefix ({common[:2]}*)": q(words=(common[:2],)),
        "common word, one channel": search_store.MessageQuery(
            channel_ids=frozenset({100}), words=(common,)
        ),
        "common word + author": q(words=(common,), author_ids=frozenset({10})),
        "author only": q(author_ids=frozenset({11})),
        "has link": q(has_link=True),
        "common word, offset 5000": q(words=(common,), offset=5_000),
        "common word, oldest first": q(words=(common,), oldest_first=True),
    }


async def measure(db: Database, query: search_store.MessageQuery, repeat: int) -> list[float]:
    timings = []
    for n in range(repeat + 1):
        started = time.perf_counter()
        async with db.read("bench_search") as tx:
            await search_store.search_messages(tx, query, sqlite=True)
        if n:  # the first run warms the page cache
            timings.append((time.perf_counter() - started) * 1000)
    return timings


def index_size(path: Path) -> tuple[int, int]:
    """The database file with and without the search index (dropped, then VACUUM)."""
    import sqlite3

    connection = sqlite3.connect(path)
    connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    with_index = path.stat().st_size
    connection.execute("DROP TABLE messages_fts")
    connection.commit()
    connection.execute("VACUUM")
    connection.close()
    return with_index, path.stat().st_size


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=50)
    args = parser.parse_args()
    rng = random.Random(7)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "search.db"
        db = Database(f"sqlite:///{path}")
        await db.migrate()
        words, fill_seconds = await fill(db, args.messages, rng)
        print(
            f"{args.messages:,} messages stored and indexed in {fill_seconds:.1f} s"
            f" ({args.messages / fill_seconds:,.0f}/s)"
        )
        print(f"{'query':<44} {'hits':>7} {'p50 ms':>8} {'p95 ms':>8}")
        for name, query in shapes(words).items():
            async with db.read("bench_count") as tx:
                total, _ = await search_store.search_messages(tx, query, sqlite=True)
            timings = await measure(db, query, args.repeat)
            p95 = statistics.quantiles(timings, n=20)[-1]
            hits = f"{total:,}" + ("+" if total == search_store.MAX_COUNTED else "")
            print(f"{name:<44} {hits:>7} {statistics.median(timings):>8.2f} {p95:>8.2f}")
        await db.close()
        with_index, without = index_size(path)
        print(
            f"database {with_index / 1e6:.1f} MB, of which the search index"
            f" {(with_index - without) / 1e6:.1f} MB ({(with_index - without) / without:.0%}"
            " of the rest)"
        )


if __name__ == "__main__":
    asyncio.run(main())
