"""config.http.client_ip: REMOTE_ADDR, or the X-Forwarded-For hop TRUSTED_PROXY_COUNT names."""

import pytest
from django.test import RequestFactory
from rest_framework.exceptions import Throttled

from config.exceptions import Unauthenticated
from config.http import client_ip, client_network
from contacts.api.throttles import AnonymousMintIpThrottle
from contacts.models import Contact
from identity import services
from tests.conftest import PASSWORD
from tests.contacts.conftest import widget_client


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


@pytest.mark.parametrize(
    ("ip", "counted_as"),
    [
        ("203.0.113.7", "203.0.113.7"),
        ("2001:db8:1:2:aaaa:bbbb:cccc:dddd", "2001:db8:1:2::/64"),
        ("2001:db8:1:2::1", "2001:db8:1:2::/64"),
        ("::ffff:203.0.113.7", "203.0.113.7"),
        ("unknown", "unknown"),
    ],
)
def test_per_client_limits_count_an_ipv6_clients_whole_64(ip, counted_as):
    assert client_network(ip) == counted_as


@pytest.mark.django_db
def test_an_ipv6_client_rotating_addresses_in_its_64_shares_one_minting_budget(org, monkeypatch):
    # given: one mint an hour per client, spent from one address of a /64
    monkeypatch.setattr(AnonymousMintIpThrottle, "rate", "1/hour", raising=False)
    client = widget_client(org)
    first = mint_from(client, "2001:db8:1:2::1")
    assert first.status_code == 201

    # when: the same host sends from another address of its /64, then from another /64
    same_host = mint_from(client, "2001:db8:1:2:ffff::99")
    elsewhere = mint_from(client, "2001:db8:1:3::1")

    # then
    assert same_host.status_code == 429
    assert elsewhere.status_code == 201
    assert Contact.objects.count() == 2


def mint_from(client, ip: str):
    return client.post("/widget/contacts/unverified", {}, format="json", REMOTE_ADDR=ip)


@pytest.mark.django_db
def test_the_sign_in_lockout_counts_an_ipv6_clients_whole_64(settings, agent_user):
    # given: an IP lockout after two failures
    settings.LOCKOUT_IP_MAX_FAILURES = 2
    for n in range(2):
        with pytest.raises(Unauthenticated):
            services.agent_sign_in(
                email=f"nobody{n}@x.test", password="wrong", ip=f"2001:db8::{n + 1}"
            )

    # when: the right password from a third address of the same /64
    with pytest.raises(Throttled) as refused:
        services.agent_sign_in(email=agent_user.email, password=PASSWORD, ip="2001:db8::ff")

    # then: the /64 is locked, as one IPv4 address would be
    assert str(refused.value.detail).startswith(services.SIGN_IN_LOCKED)
