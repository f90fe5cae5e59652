"""Per-user, per-route rate limits in Discord's form (token buckets, one node's view)."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass

from ..errors import RateLimited


@dataclass(frozen=True, slots=True)
class Limit:
    requests: int
    per_seconds: float


@dataclass(slots=True)
class _Bucket:
    remaining: float
    updated: float


@dataclass(frozen=True, slots=True)
class Grant:
    bucket: str
    limit: int
    remaining: int
    reset_after: float


class RateLimiter:
    """``check`` takes one request from the (user, route) bucket and from the user's
    global bucket, or raises ``RateLimited`` with the wait."""

    def __init__(
        self,
        routes: dict[str, Limit] | None = None,
        default: Limit = Limit(50, 1.0),
        global_limit: Limit = Limit(200, 1.0),
        clock: Callable[[], float] = time.monotonic,
        max_buckets: int = 100_000,
    ) -> None:
        self._routes = routes or {}
        self._default = default
        self._global = global_limit
        self._clock = clock
        self._buckets: dict[tuple[int, str], _Bucket] = {}
        self._max_buckets = max_buckets

    def limit_for(self, route: str) -> Limit:
        return self._routes.get(route, self._default)

    def _take(self, key: tuple[int, str], limit: Limit, now: float) -> tuple[bool, float, float]:
        bucket = self._buckets.get(key)
        rate = limit.requests / limit.per_seconds
        if bucket is None:
            if len(self._buckets) >= self._max_buckets:
                self._evict(now)
            bucket = _Bucket(float(limit.requests), now)
            self._buckets[key] = bucket
        else:
            bucket.remaining = min(
                float(limit.requests), bucket.remaining + (now - bucket.updated) * rate
            )
            bucket.updated = now
        if bucket.remaining >= 1.0:
            bucket.remaining -= 1.0
            return True, bucket.remaining, (limit.requests - bucket.remaining) / rate
        return False, bucket.remaining, (1.0 - bucket.remaining) / rate

    def _evict(self, now: float) -> None:
        # Full buckets carry no state worth keeping.
        stale = [key for key, b in self._buckets.items() if now - b.updated > 60.0]
        for key in stale:
            del self._buckets[key]

    def check(self, user_id: int, route: str) -> Grant:
        now = self._clock()
        ok, _, wait = self._take((user_id, "*global*"), self._global, now)
        if not ok:
            raise RateLimited(wait, is_global=True, bucket="global")
        limit = self.limit_for(route)
        ok, remaining, reset_after = self._take((user_id, route), limit, now)
        if not ok:
            raise RateLimited(reset_after, is_global=False, bucket=_bucket_name(route))
        return Grant(_bucket_name(route), limit.requests, int(remaining), reset_after)


def _bucket_name(route: str) -> str:
    return hashlib.blake2s(route.encode(), digest_size=8).hexdigest()
