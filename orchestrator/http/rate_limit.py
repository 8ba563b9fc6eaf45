"""The API keys' rate limit: one limit for the whole fleet, per key and per scope.

Counted by the `limits` library with its moving window (at most N requests in any 60 s,
so a burst of N is allowed and then one more each time the oldest leaves the window), in
Redis when the fleet has one, so N replicas together allow N requests, not N times N. With
no Redis, the library's in-process storage serves the single node. While Redis does not
answer, each replica counts on its own (per replica, rather than refusing every call or
letting every call through) and tries Redis again after a short pause.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from limits import RateLimitItemPerMinute
from limits.aio.storage import MemoryStorage, RedisStorage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.errors import StorageError
from redis.asyncio import ConnectionPool

log = logging.getLogger(__name__)

REDIS_RETRY_SECONDS = 5.0
"""After Redis failed to answer, how long the in-process count stands in for it."""
REDIS_TIMEOUT_SECONDS = 0.5
KEY_PREFIX = "vo:ratelimit"


@dataclass(frozen=True)
class RateLimitOptions:
    """Requests a minute per API key and scope; 0 means no limit."""

    per_minute: int = 0
    """The limit of every scope not named in `scopes`."""
    scopes: Mapping[str, int] = field(default_factory=dict)
    """Limits of particular scopes (e.g. {"sessions": 60})."""
    redis_url: str | None = None
    """Where the fleet's counts live; None: in this process (a single node)."""

    def __post_init__(self) -> None:
        if self.per_minute < 0 or any(n < 0 for n in self.scopes.values()):
            raise ValueError("rate limits must be 0 (none) or more requests a minute")

    def limit(self, scope: str) -> int:
        return self.scopes.get(scope, self.per_minute)

    @property
    def enabled(self) -> bool:
        return self.per_minute > 0 or any(self.scopes.values())


class RateLimiter:
    """Counts each (key, scope) request against its scope's limit, fleet-wide."""

    def __init__(self, options: RateLimitOptions) -> None:
        self.options = options
        self._local = MovingWindowRateLimiter(MemoryStorage())
        self._pool: ConnectionPool | None = None
        self._shared: MovingWindowRateLimiter | None = None
        if options.redis_url:
            self._pool = ConnectionPool.from_url(
                options.redis_url,
                socket_timeout=REDIS_TIMEOUT_SECONDS,
                socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
            )
            storage = RedisStorage(
                "async+" + _scheme_checked(options.redis_url),
                implementation="redispy",
                wrap_exceptions=True,
                key_prefix=KEY_PREFIX,
                connection_pool=self._pool,  # type: ignore[arg-type]  # passed on to redis-py
            )
            self._shared = MovingWindowRateLimiter(storage)
        self._shared_down_until = 0.0
        self._items: dict[str, RateLimitItemPerMinute] = {}

    def _item(self, scope: str) -> RateLimitItemPerMinute | None:
        limit = self.options.limit(scope)
        if limit <= 0:
            return None
        item = self._items.get(scope)
        if item is None:
            item = self._items[scope] = RateLimitItemPerMinute(limit)
        return item

    @property
    def shared(self) -> bool:
        """Whether the counts are the fleet's (Redis answering) right now."""
        return self._shared is not None and time.monotonic() >= self._shared_down_until

    async def retry_after(self, key: str, scope: str) -> float:
        """0 when the request may go ahead (and is counted), else the seconds until the
        oldest request of the window leaves it. `key` is a fingerprint, never the key."""
        item = self._item(scope)
        if item is None:
            return 0.0
        if self._shared is not None and self.shared:
            try:
                return await _check(self._shared, item, scope, key)
            except StorageError as exc:
                log.warning(
                    "rate limit store unavailable; counting in this replica for now",
                    extra={"reason": type(exc.storage_error).__name__},
                )
                self._shared_down_until = time.monotonic() + REDIS_RETRY_SECONDS
        return await _check(self._local, item, scope, key)

    async def aclose(self) -> None:
        if self._pool is not None:
            await self._pool.aclose()


async def _check(
    limiter: MovingWindowRateLimiter, item: RateLimitItemPerMinute, scope: str, key: str
) -> float:
    if await limiter.hit(item, scope, key):
        return 0.0
    stats = await limiter.get_window_stats(item, scope, key)
    return max(stats.reset_time - time.time(), 0.001)


def _scheme_checked(url: str) -> str:
    if not url.startswith(("redis://", "rediss://")):
        raise ValueError("the rate limit's Redis URL must start with redis:// or rediss://")
    return url
