"""Atomic counters in the shared cache, for rate limits and sign-in lockouts.

On Redis (django-redis) one hit is a single round trip (`SET key 0 EX ttl NX` and `INCR` in one
pipeline), and it is atomic across every app server. Elsewhere (the local-memory cache of
development and tests) it falls back to the cache API's `add` and `incr`.
"""

from django.conf import settings
from django.core.cache import cache


def counter_hit(key: str, *, ttl: int) -> int:
    """Add one to the counter `key`, which starts at 0 and expires `ttl` seconds after creation."""
    if settings.CACHES["default"]["BACKEND"] == "django_redis.cache.RedisCache":
        from django_redis import get_redis_connection

        full_key = cache.client.make_key(key)
        pipe = get_redis_connection("default").pipeline(transaction=False)
        pipe.set(full_key, 0, ex=ttl, nx=True)
        pipe.incr(full_key)
        return int(pipe.execute()[1])
    cache.add(key, 0, timeout=ttl)
    try:
        return cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.set(key, 1, timeout=ttl)
        return 1
