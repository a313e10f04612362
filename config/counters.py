"""Atomic counters in the shared cache, for rate limits and sign-in lockouts.

On Redis (django-redis) one hit is a single round trip (`SET key 0 EX ttl NX` and `INCR` in one
pipeline; several counters can share it), and it is atomic across every app server. Elsewhere
(the local-memory cache of development and tests) it falls back to the cache API's `add` and
`incr`.
"""

from collections.abc import Sequence

from django.conf import settings
from django.core.cache import cache


def counter_hit(key: str, *, ttl: int) -> int:
    """Add one to the counter `key`, which starts at 0 and expires `ttl` seconds after creation."""
    return counters_hit([(key, ttl)])[0]


def counters_hit(counters: Sequence[tuple[str, int]]) -> list[int]:
    """Add one to each `(key, ttl)` counter, all in one round trip on Redis; their new values."""
    if not counters:
        return []
    if settings.CACHES["default"]["BACKEND"] == "django_redis.cache.RedisCache":
        from django_redis import get_redis_connection

        pipe = get_redis_connection("default").pipeline(transaction=False)
        for key, ttl in counters:
            full_key = cache.client.make_key(key)
            pipe.set(full_key, 0, ex=ttl, nx=True)
            pipe.incr(full_key)
        return [int(value) for value in pipe.execute()[1::2]]
    return [_local_counter_hit(key, ttl=ttl) for key, ttl in counters]


def _local_counter_hit(key: str, *, ttl: int) -> int:
    cache.add(key, 0, timeout=ttl)
    try:
        return cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.set(key, 1, timeout=ttl)
        return 1
