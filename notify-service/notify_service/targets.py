"""Where webhooks may go: public https URLs only, checked when an endpoint is saved and
again on every attempt, after DNS resolution (so a name that later resolves to a
private address, DNS rebinding, still cannot reach one).

`allow_loopback` (WEBHOOKS_ALLOW_PRIVATE_TARGETS, development only) also allows plain
`http` and loopback addresses (127.0.0.0/8, ::1, localhost), so a receiver on the
developer's machine works. It never allows link-local (169.254.0.0/16 with the cloud
metadata address, fe80::/10), private, shared or reserved addresses: a development stack
on a cloud machine must not be made to fetch credentials from its metadata service.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import urlsplit

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# NAT64's well-known prefix embeds an IPv4 address in the last 32 bits.
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_LOCAL_NAMES = ("localhost", "localhost.", "localhost.localdomain")
_CREATION_LOOKUP_SECONDS = 2.0


class RefusedTarget(OSError):
    """A webhook URL or the address it resolves to is not allowed."""


def is_public(address: IpAddress) -> bool:
    """True for a globally routable unicast address, IPv4 hidden in IPv6 unwrapped."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is None and address in _NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is None and address.teredo is not None:
            embedded = address.teredo[1]
        if embedded is not None and not is_public(embedded):
            return False
    return address.is_global and not address.is_multicast


def is_loopback(address: IpAddress) -> bool:
    """127.0.0.0/8 or ::1, also when written as an IPv4-mapped IPv6 address."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


def is_allowed(address: IpAddress, allow_loopback: bool) -> bool:
    """Whether a webhook may be sent to `address`."""
    return is_public(address) or (allow_loopback and is_loopback(address))


def _refusal(address: IpAddress, allow_loopback: bool) -> str:
    kinds = (
        "private, link-local or reserved"
        if allow_loopback
        else "private, loopback, link-local or reserved"
    )
    return f"{address} is a {kinds} address"


def _literal_address(host: str) -> IpAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
    except ValueError:
        return None


def check_static(url: str, allow_loopback: bool) -> str:
    """What can be said without DNS: the scheme, a literal address, local names.

    Returns the host name to resolve; raises RefusedTarget with the reason.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise RefusedTarget(f"must be an absolute {'http or ' if allow_loopback else ''}https URL")
    host = parts.hostname
    if parts.scheme != "https" and not allow_loopback:
        raise RefusedTarget("must use https")
    literal = _literal_address(host)
    if literal is not None and not is_allowed(literal, allow_loopback):
        raise RefusedTarget(_refusal(literal, allow_loopback))
    local_name = host.lower() in _LOCAL_NAMES or host.lower().rstrip(".").endswith(".localhost")
    if local_name and not allow_loopback:
        raise RefusedTarget(f"{host} is this machine")
    return host


async def check_on_save(url: str, allow_loopback: bool) -> None:
    """The checks when an endpoint is created or its URL changed.

    A name that resolves to any non-public address is refused; a name that does not
    resolve (yet) is accepted: every attempt checks again.
    """
    host = check_static(url, allow_loopback)
    if _literal_address(host) is not None:
        return
    loop = asyncio.get_running_loop()
    try:
        infos = await asyncio.wait_for(
            loop.getaddrinfo(host, 443, type=socket.SOCK_STREAM), _CREATION_LOOKUP_SECONDS
        )
    except (OSError, TimeoutError):
        return
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
        if not is_allowed(address, allow_loopback):
            raise RefusedTarget(f"{host} resolves to {address}, which is not a public address")


class PublicOnlyResolver(AbstractResolver):
    """aiohttp's resolver, minus every address a webhook may not reach.

    aiohttp connects only to what the resolver returns, so filtering here is what stops
    DNS rebinding: the address checked is the address connected to.
    """

    def __init__(self, allow_loopback: bool, inner: AbstractResolver | None = None) -> None:
        self.allow_loopback = allow_loopback
        self._inner = inner or ThreadedResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        found = await self._inner.resolve(host, port, family)
        allowed = [
            r
            for r in found
            if is_allowed(ipaddress.ip_address(r["host"].split("%")[0]), self.allow_loopback)
        ]
        if not allowed:
            refused = ", ".join(sorted({r["host"] for r in found}))
            raise RefusedTarget(f"{host} resolves to {refused}, which is not a public address")
        return allowed

    async def close(self) -> None:
        await self._inner.close()
