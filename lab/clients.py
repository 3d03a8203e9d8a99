"""Who a request or a WebSocket comes from, for the per-address caps (sandboxes, open lab pages).

An address is grouped the way one client holds addresses: an IPv4 address alone, an IPv6 address by its /64 (one
home or phone gets a whole /64, so counting single IPv6 addresses would cap nothing). It is kept only as a keyed
hash (HMAC with SECRET_KEY), so the database never holds a learner's address.

Behind a proxy the address is the one the server was told (daphne --proxy-headers, as `make cluster` runs it).
"""

from __future__ import annotations

import ipaddress

from django.utils.crypto import salted_hmac

KEY_LENGTH = 32  # hex characters kept of the hash: Sandbox.client's max_length
_SALT = "reqflow.lab.client"


def address_group(address: str | None) -> str:
    """The address as counted: an IPv4 address, an IPv6 /64 ("2001:db8:1:2::/64"), or "" when unknown. An IPv4
    address written in IPv6 (::ffff:192.0.2.1) counts as the IPv4 one."""
    if not address:
        return ""
    try:
        ip = ipaddress.ip_address(address.strip().strip("[]").split("%", 1)[0])
    except ValueError:
        return address.strip()[:64]  # not an IP (a unix socket's name): counted as given
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


def client_key(address: str | None) -> str:
    """The keyed hash of the address's group, as stored and counted; "" when the address is unknown."""
    group = address_group(address)
    if not group:
        return ""
    return salted_hmac(_SALT, group, algorithm="sha256").hexdigest()[:KEY_LENGTH]


def browser_key(csrf_cookie: str | None) -> str:
    """A browser without a session yet, known by its CSRF cookie (set by any page with a form): a keyed hash of it,
    safe to use in a channel-layer group name. "" without the cookie."""
    if not csrf_cookie:
        return ""
    return salted_hmac(_SALT + ".browser", csrf_cookie, algorithm="sha256").hexdigest()[:KEY_LENGTH]
