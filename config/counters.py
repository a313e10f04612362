"""Atomic counters in the shared cache, for rate limits and sign-in lockouts.

On Redis (django-redis) one hit is a single round trip: one script (`EVALSHA`) that runs
`SET key 0 EX ttl NX` and `INCR` for each counter, so several counters share it, and it is atomic
across every app server. Elsewhere (the local-memory cache of development and tests) it falls back
to the cache API's `add` and `incr`.
"""

from collections.abc import Sequence

from django.conf import settings
from django.core.cache import cache
from redis.commands.core import Script

# Each KEYS[i] starts at 0 with a lifetime of ARGV[i] seconds unless it exists (the window is
# fixed at its first hit), then counts one. One command: a pipeline of two per counter cost
# redis-py a fifth more client CPU for one counter and two fifths more for two (docs/PERFORMANCE.md,
# the 2026-11-30 afternoon round). Run with `EVALSHA` on the client it is given, loading it first
# where the server does not know it (a restart, SCRIPT FLUSH): redis-py's Script does both.
_HIT = Script(
    None,
    b"""
local counts = {}
for i, key in ipairs(KEYS) do
    redis.call('SET', key, 0, 'EX', ARGV[i], 'NX')
    counts[i] = redis.call('INCR', key)
end
return counts
""",
)


def counter_hit(key: str, *, ttl: int) -> int:
    """Add one to the counter `key`, which starts at 0 and expires `ttl` seconds after creation."""
    return counters_hit([(key, ttl)])[0]


def counters_hit(counters: Sequence[tuple[str, int]]) -> list[int]:
    """Add one to each `(key, ttl)` counter, all in one round trip on Redis; their new values."""
    if not counters:
        return []
    if settings.CACHES["default"]["BACKEND"] == "django_redis.cache.RedisCache":
        from django_redis import get_redis_connection

        make_key = cache.client.make_key
        counts = _HIT(
            keys=[make_key(key) for key, _ in counters],
            args=[ttl for _, ttl in counters],
            client=get_redis_connection("default"),
        )
        return [int(value) for value in counts]
    return [_local_counter_hit(key, ttl=ttl) for key, ttl in counters]


def _local_counter_hit(key: str, *, ttl: int) -> int:
    cache.add(key, 0, timeout=ttl)
    try:
        return cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.set(key, 1, timeout=ttl)
        return 1
