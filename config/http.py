"""Request helpers shared by every app."""

import ipaddress

from django.conf import settings


def client_ip(request) -> str:
    """REMOTE_ADDR, unless TRUSTED_PROXY_COUNT says how many X-Forwarded-For hops to trust.

    With N trusted proxies the client is the N-th address from the right, the one the outermost
    trusted proxy saw; anything further left was written by the client and is ignored.
    """
    remote = request.META.get("REMOTE_ADDR", "") or "unknown"
    hops = settings.TRUSTED_PROXY_COUNT
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
    if hops <= 0 or not forwarded:
        return remote
    addresses = [a.strip() for a in forwarded.split(",") if a.strip()]
    if not addresses:
        return remote
    chosen = addresses[-min(hops, len(addresses))]
    # With more hops trusted than there are proxies, the entry can be one the client wrote: it is
    # the client's address only if it is an address at all (it keys throttles and audit events).
    try:
        return str(ipaddress.ip_address(chosen))
    except ValueError:
        return remote


def client_network(ip: str) -> str:
    """What per-client limits count: an IPv4 address itself, an IPv6 address's /64.

    One IPv6 host usually holds a whole /64 and can send from any address in it, so counting
    single addresses would give it billions of fresh budgets. An IPv4-mapped address counts as
    its IPv4 address. Anything else (no address at all) is counted as it is.
    """
    if ":" not in ip:
        return ip
    try:
        address = ipaddress.IPv6Address(ip)
    except ValueError:
        return ip
    if address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(ipaddress.IPv6Network((address, 64), strict=False))
