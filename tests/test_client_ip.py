"""config.http.client_ip: REMOTE_ADDR, or the X-Forwarded-For hop TRUSTED_PROXY_COUNT names."""

import pytest
from django.test import RequestFactory

from config.http import client_ip


def request_from(remote: str, forwarded: str | None = None):
    extra = {"REMOTE_ADDR": remote}
    if forwarded is not None:
        extra["HTTP_X_FORWARDED_FOR"] = forwarded
    return RequestFactory().get("/", **extra)


@pytest.mark.parametrize(
    ("hops", "forwarded", "expected"),
    [
        (0, "203.0.113.9", "10.0.0.2"),
        (1, "203.0.113.9", "203.0.113.9"),
        (1, "198.51.100.1, 203.0.113.9", "203.0.113.9"),
        (2, "198.51.100.1, 203.0.113.9", "198.51.100.1"),
        (1, "2001:DB8::1", "2001:db8::1"),
        # more hops trusted than proxies: the entry the client wrote is used only if an address
        (3, "x" * 5000 + ", 203.0.113.9", "10.0.0.2"),
        (2, "not-an-ip, 203.0.113.9", "10.0.0.2"),
        (1, "", "10.0.0.2"),
    ],
)
def test_the_client_is_the_trusted_hop_and_always_an_address(settings, hops, forwarded, expected):
    settings.TRUSTED_PROXY_COUNT = hops

    assert client_ip(request_from("10.0.0.2", forwarded)) == expected
