"""Where image fetches may go: host patterns, and never a private address unless allowed.

A URL from a provider record or an operator's list is data an attacker may shape: it and
every redirect it leads to must not reach loopback, the cloud metadata service or the
operator's internal network. The host name is checked before each hop; the addresses are
checked by the resolver the connection is made with (``FilteringResolver``), so the address
checked is the address connected to and a name that re-resolves elsewhere (DNS rebinding)
gains nothing. IP literals skip resolvers in aiohttp, so they are checked with the name.
"""

from __future__ import annotations

import ipaddress
import socket
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from functools import lru_cache
from typing import NamedTuple

import yarl
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

from harvester.http.errors import PermanentHttpError

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

# IPv6 prefixes whose last 32 bits are an IPv4 address a translator or the stack delivers
# to: NAT64's well-known prefix (RFC 6052), IPv4-translated (SIIT) and IPv4-compatible ones.
_EMBEDDING_V4 = tuple(
    ipaddress.IPv6Network(n) for n in ("64:ff9b::/96", "::ffff:0:0:0/96", "::/96")
)
# Not public although Python's is_global says so: NAT64's local-use prefix (RFC 8215) and
# the deprecated site-local range.
_INNER_V6 = tuple(ipaddress.IPv6Network(n) for n in ("64:ff9b:1::/48", "fec0::/10"))


class HostNotAllowedError(PermanentHttpError):
    """The destination is not one this fetch may reach (private address or foreign host)."""

    reason = "host_not_allowed"
    status_is_reason = False


# Every fetch checks its host, and a harvest fetches from few hosts: each is worked out once.
_HOSTS_KNOWN = 4096


@lru_cache(maxsize=_HOSTS_KNOWN)
def normalise_host(host: str) -> str:
    """The host as a resolver sees it: NFKC (fullwidth, circled digits), lower case, no dot."""
    return unicodedata.normalize("NFKC", host).strip().rstrip(".").lower().strip("[]")


@lru_cache(maxsize=_HOSTS_KNOWN)
def _as_address(host: str) -> Address | None:
    """The address a host names, if it is an IP literal in any form (the same object for
    the same host: addresses are immutable)."""
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return _legacy_ipv4(host)
    # ::1 and :: lie inside ::/96 but are IPv6's own loopback and unspecified addresses.
    if isinstance(address, ipaddress.IPv4Address) or address.is_loopback or address.is_unspecified:
        return address
    embedded = address.ipv4_mapped or address.sixtofour
    if embedded is not None:
        return embedded
    if address.teredo is not None:
        return address.teredo[1]
    if any(address in n for n in _EMBEDDING_V4):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address


def _legacy_ipv4(host: str) -> Address | None:
    """``127.1``, ``2130706433``, ``0x7f000001``: forms inet_aton (and so some resolvers)
    accept as an address."""
    if not host or any(c not in "0123456789abcdefx." for c in host) or not host[0].isdigit():
        return None
    try:
        return ipaddress.IPv4Address(socket.inet_aton(host))
    except OSError:
        return None


def is_public(address: Address) -> bool:
    """Globally routable unicast: not loopback, link-local, private, CGNAT, multicast, reserved."""
    if isinstance(address, ipaddress.IPv6Address) and any(address in n for n in _INNER_V6):
        return False
    return address.is_global and not address.is_multicast


def parse_allowed(entries: Iterable[str]) -> tuple[tuple[Network, ...], frozenset[str]]:
    """``HARVESTER_ALLOW_NETWORKS`` entries: addresses and CIDR networks, else host names."""
    networks: list[Network] = []
    names: set[str] = set()
    for raw in entries:
        entry = raw.strip()
        if not entry:
            continue
        try:
            networks.append(ipaddress.ip_network(normalise_host(entry), strict=False))
        except ValueError:
            names.add(normalise_host(entry))
    return tuple(networks), frozenset(names)


# The names this machine answers to: an emulator whose API is on one of them serves its
# images under any of them. Not the rest of 127/8: a service bound to 127.0.0.2 alone is
# another service, and stays out of reach.
_LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})


class _ApiTrust(NamedTuple):
    """What the host of a configured API URL vouches for, beyond public addresses."""

    names: frozenset[str]  # an IP literal: that address, on any port
    loopback: frozenset[str]  # a loopback host's names: loopback addresses, on any port
    origins: frozenset[tuple[str, int]]  # a name: what it resolves to, on the API's port

    @classmethod
    def of(cls, api_url: str) -> _ApiTrust:
        # A name other than localhost may be a public one (api.flickr.com is), whose other
        # ports the operator did not vouch for: a private address there is not trusted.
        api = yarl.URL(api_url)
        host = normalise_host(api.raw_host or "")  # as check() reads a URL
        address = _as_address(host)
        if host == "localhost" or (address is not None and address.is_loopback):
            return cls(frozenset(), _LOOPBACK_NAMES | {host}, frozenset())
        if address is not None:
            return cls(frozenset({host}), frozenset(), frozenset())
        if host and api.port is not None:
            return cls(frozenset(), frozenset(), frozenset({(host, api.port)}))
        return cls(frozenset(), frozenset(), frozenset())

    @property
    def hosts(self) -> list[str]:
        """The host names this trust lets through the host allow-list, on any port."""
        return sorted(self.names | self.loopback | {host for host, _ in self.origins})


@dataclass(frozen=True)
class Destinations:
    """One fetch policy. ``hosts`` None means any host name; addresses must be public unless
    in ``networks`` or the name connected to is trusted for them: ``trusted_names`` (the
    operator's allowed names, an API host's IP literal) for any address on any port,
    ``loopback_names`` (a loopback API host's) for loopback addresses on any port,
    ``trusted_origins`` (an API host's name) for any address on that port. Trust goes by
    name, never by address alone: another name resolving to a trusted address gains nothing."""

    hosts: tuple[str, ...] | None = None
    networks: tuple[Network, ...] = ()
    trusted_names: frozenset[str] = frozenset()
    loopback_names: frozenset[str] = frozenset()
    trusted_origins: frozenset[tuple[str, int]] = frozenset()
    label: str = field(default="public addresses", compare=False)

    @classmethod
    def public(cls, allow: Iterable[str] = ()) -> Destinations:
        """URL lists: any public address, and what the operator allowed."""
        networks, names = parse_allowed(allow)
        return cls(None, networks, names)

    @classmethod
    def provider(
        cls, name: str, patterns: Iterable[str], api_url: str, allow: Iterable[str] = ()
    ) -> Destinations:
        """A provider's CDN host patterns, plus the host of the API the operator configured
        (an emulator or a mirror serving its images on another port, or as ``localhost``)."""
        networks, names = parse_allowed(allow)
        api = _ApiTrust.of(api_url)
        cdn = [normalise_host(p) for p in patterns if p.strip()]
        hosts = tuple(dict.fromkeys([*cdn, *api.hosts]))
        label = f"{name} image hosts ({', '.join(hosts)})"
        return cls(hosts, networks, names | api.names, api.loopback, api.origins, label)

    def name_allowed(self, host: str) -> bool:
        if self.hosts is None:
            return True
        host = normalise_host(host)
        return any(host == p or fnmatchcase(host, p) for p in self.hosts)

    def address_allowed(self, host: str, port: int | None, address: Address) -> bool:
        """Whether ``address`` may be connected to for ``host:port`` (the URL's, as written)."""
        host = normalise_host(host)
        return (
            is_public(address)
            or host in self.trusted_names
            or (address.is_loopback and host in self.loopback_names)
            or (host, port or 0) in self.trusted_origins
            or any(address.version == n.version and address in n for n in self.networks)
        )

    def check(self, url: yarl.URL, shown: str) -> None:
        """Refuse a URL whose host name (or IP literal) this policy does not allow."""
        host = normalise_host(url.raw_host or "")
        if not self.name_allowed(host):
            raise HostNotAllowedError(
                f"host_not_allowed: {shown} is not in {self.label}", url=shown
            )
        address = _as_address(host)
        if address is not None and not self.address_allowed(host, url.port, address):
            raise HostNotAllowedError(
                f"host_not_allowed: {shown} is a non-public address ({address})", url=shown
            )


class FilteringResolver(AbstractResolver):
    """Resolves with the default resolver and drops the addresses the policy refuses."""

    def __init__(self, destinations: Destinations, inner: AbstractResolver | None = None) -> None:
        self._destinations = destinations
        self._inner = inner or DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        kept = [r for r in results if self._allowed(host, port, r)]
        if not kept:
            found = ", ".join(sorted({r["host"] for r in results}))
            raise HostNotAllowedError(
                f"host_not_allowed: {host} resolves only to non-public addresses ({found})",
                url="",  # the client names the URL
            )
        return kept

    def _allowed(self, host: str, port: int, result: ResolveResult) -> bool:
        address = _as_address(result["host"])
        return address is not None and self._destinations.address_allowed(host, port, address)

    async def close(self) -> None:
        await self._inner.close()


def strip_userinfo(url: yarl.URL) -> yarl.URL:
    """A redirect target without user:password@ (a redirect must not bring credentials)."""
    if url.user is None and url.password is None:
        return url
    return url.with_user(None)


__all__ = [
    "Destinations",
    "FilteringResolver",
    "HostNotAllowedError",
    "is_public",
    "normalise_host",
    "parse_allowed",
    "strip_userinfo",
]
