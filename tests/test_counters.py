"""The shared counters behind throttles and lockouts (CI runs these again on Redis)."""

import threading
import uuid

import pytest
from django.core.cache import cache
from rest_framework.exceptions import Throttled
from rest_framework.views import APIView

from config.counters import counter_hit, counters_hit
from identity.api.throttles import OneRoundTripThrottlesMixin, WindowRateThrottle

pytestmark = pytest.mark.redis


def test_a_counter_starts_at_one_and_counts_each_hit():
    key = f"t:{uuid.uuid4()}"

    assert [counter_hit(key, ttl=60) for _ in range(3)] == [1, 2, 3]


def test_a_counter_expires_with_its_ttl():
    key = f"t:{uuid.uuid4()}"
    counter_hit(key, ttl=60)

    # when: the window's key is gone (expired)
    cache.delete(key)

    assert counter_hit(key, ttl=60) == 1


def test_concurrent_hits_are_never_lost():
    # given: 8 threads each hitting the same counter 50 times (on Redis: 8 connections)
    key = f"t:{uuid.uuid4()}"
    seen: list[int] = []
    lock = threading.Lock()

    def hammer():
        counts = [counter_hit(key, ttl=60) for _ in range(50)]
        with lock:
            seen.extend(counts)

    threads = [threading.Thread(target=hammer) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    # then: every hit got its own number, none was overwritten
    assert sorted(seen) == list(range(1, 401))


class _Scoped(WindowRateThrottle):
    scope = "counters_test"
    rate = "3/min"

    def get_cache_key(self, request, view):
        return self.cache_format % {"scope": self.scope, "ident": self.ident}


def test_the_window_throttle_allows_the_rate_then_refuses_until_the_next_window(monkeypatch):
    ident = str(uuid.uuid4())
    now = [6000.0]  # 100 minutes exactly: the start of a window

    def throttle():
        t = _Scoped()
        t.ident = ident
        t.timer = lambda: now[0]
        return t

    assert [throttle().allow_request(None, None) for _ in range(3)] == [True] * 3
    refused = throttle()
    now[0] = 6045.0
    assert refused.allow_request(None, None) is False
    assert refused.wait() == 15

    # when: the next window opens
    now[0] = 6060.0

    assert throttle().allow_request(None, None) is True


def test_several_counters_in_one_call_each_count_on_their_own():
    first, second = f"t:{uuid.uuid4()}", f"t:{uuid.uuid4()}"
    counter_hit(first, ttl=60)

    assert counters_hit([(first, 60), (second, 60)]) == [2, 1]
    assert counters_hit([]) == []


class _Other(_Scoped):
    scope = "counters_test_other"
    rate = "5/min"


class _TwoThrottlesView(OneRoundTripThrottlesMixin, APIView):
    throttle_classes = [_Scoped, _Other]


def two_throttles_check(ident: str, now: float):
    throttles = [_Scoped(), _Other()]
    for throttle in throttles:
        throttle.ident = ident
        throttle.timer = lambda: now
    view = _TwoThrottlesView()
    view.get_throttles = lambda: throttles
    view.check_throttles(None)


def test_one_round_trip_counts_every_throttle_and_waits_for_the_longest(monkeypatch):
    ident = str(uuid.uuid4())
    for _ in range(3):
        two_throttles_check(ident, now=6000.0)

    # when: the 3/min throttle is spent; the 5/min one still counts this request
    with pytest.raises(Throttled) as refused:
        two_throttles_check(ident, now=6010.0)

    # then
    assert refused.value.wait == 50
    assert counters_hit([(f"throttle:counters_test_other:{ident}:6000", 61)]) == [
        5
    ]  # four requests and this probe


def redis_client():
    """The shared Redis behind the cache; the test skips on the local-memory cache."""
    from django.conf import settings

    if settings.CACHES["default"]["BACKEND"] != "django_redis.cache.RedisCache":
        pytest.skip("needs REDIS_URL: the TTL and the script are Redis's")
    from django_redis import get_redis_connection

    return get_redis_connection("default")


def test_on_redis_the_window_is_fixed_at_the_first_hit():
    redis = redis_client()
    key = f"t:{uuid.uuid4()}"

    counters_hit([(key, 60)])
    redis.expire(cache.make_key(key), 30)  # as if 30 of its 60 seconds had passed
    counters_hit([(key, 60), (f"{key}:other", 90)])

    # then: later hits counted without stretching the window; a new counter got its own TTL
    assert 0 < redis.ttl(cache.make_key(key)) <= 30
    assert 60 < redis.ttl(cache.make_key(f"{key}:other")) <= 90
    assert counter_hit(key, ttl=60) == 3


def test_on_redis_the_counters_survive_a_server_that_forgot_the_script():
    redis = redis_client()
    key = f"t:{uuid.uuid4()}"
    counter_hit(key, ttl=60)

    # when: Redis restarted, or someone ran SCRIPT FLUSH
    redis.script_flush()

    assert counter_hit(key, ttl=60) == 2
