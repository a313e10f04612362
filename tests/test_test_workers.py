"""The test suite's own isolation: parallel workers never share a Redis database."""

import pytest

from tests.conftest import redis_url_for_worker


@pytest.mark.parametrize(
    ("url", "worker", "expected"),
    [
        ("redis://127.0.0.1:6379/9", 0, "redis://127.0.0.1:6379/9"),
        ("redis://127.0.0.1:6379/9", 1, "redis://127.0.0.1:6379/10"),
        ("redis://127.0.0.1:6379", 2, "redis://127.0.0.1:6379/2"),
        ("redis://:secret@cache.internal:6380/3?ssl_cert_reqs=none", 1,
         "redis://:secret@cache.internal:6380/4?ssl_cert_reqs=none"),
    ],
)  # fmt: skip
def test_each_worker_gets_the_urls_database_plus_its_number(url, worker, expected):
    assert redis_url_for_worker(url, worker) == expected


def test_a_database_past_redis_default_sixteen_is_refused_plainly():
    with pytest.raises(pytest.UsageError, match="database 16"):
        redis_url_for_worker("redis://127.0.0.1:6379/15", 1)
