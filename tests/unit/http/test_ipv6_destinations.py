"""IPv6 forms that carry an IPv4 address, or are not public, judged by what they reach."""

from __future__ import annotations

import pytest
import yarl

from harvester.http import Destinations, HostNotAllowedError
from harvester.http.destinations import FilteringResolver


@pytest.mark.parametrize(
    "host",
    [
        "[64:ff9b::7f00:1]",  # NAT64 well-known prefix: 127.0.0.1 through the translator
        "[64:ff9b::a00:1]",  # ... 10.0.0.1, an internal host an IPv6-only cluster reaches
        "[64:ff9b::a9fe:a9fe]",  # ... the metadata service
        "[64:ff9b:1::a00:1]",  # the local-use NAT64 prefix (RFC 8215)
        "[::7f00:1]",  # IPv4-compatible (deprecated)
        "[::ffff:0:a00:1]",  # IPv4-translated (SIIT)
        "[fec0::1]",  # site-local (deprecated, still routed inside some networks)
    ],
)
def test_ipv6_spellings_of_inner_addresses_are_refused(host: str) -> None:
    with pytest.raises(HostNotAllowedError):
        Destinations.public().check(yarl.URL(f"http://{host}/x.jpg"), host)


@pytest.mark.parametrize("host", ["[64:ff9b::808:808]", "[2606:4700::1111]", "8.8.8.8"])
def test_public_addresses_pass_in_any_of_those_forms(host: str) -> None:
    Destinations.public().check(yarl.URL(f"http://{host}/x.jpg"), host)


async def test_the_resolver_drops_an_answer_that_is_a_nat64_form_of_a_private_address() -> None:
    class Answers:
        async def resolve(self, host: str, port: int = 0, family: int = 0) -> list[dict]:  # type: ignore[type-arg]
            return [{"hostname": host, "host": "64:ff9b::a00:1", "port": port, "family": 10,
                     "proto": 0, "flags": 0}]  # fmt: skip

        async def close(self) -> None:
            return None

    resolver = FilteringResolver(Destinations.public(), Answers())  # type: ignore[arg-type]
    with pytest.raises(HostNotAllowedError):
        await resolver.resolve("inner.test", 80)


def test_ipv6_loopback_is_its_own_address_not_an_ipv4_one_inside_it() -> None:
    """[::1] lies inside ::/96 (IPv4-compatible), but is no 0.0.0.1: allowing ::1 lets it
    through, and it stays refused otherwise, as [::] does."""
    Destinations.public(["::1"]).check(yarl.URL("http://[::1]:8900/x.jpg"), "[::1]")
    for host in ("[::1]", "[::]"):
        with pytest.raises(HostNotAllowedError):
            Destinations.public(["127.0.0.1"]).check(yarl.URL(f"http://{host}/x.jpg"), host)
