"""The client's address: the TCP peer, or, when the peer is a trusted proxy, the address that proxy reports.

Behind a load balancer or an ingress every request comes from the proxy, so a per-client limit would lump all
senders together; the proxy names the client in a header. That header is believed only when the TCP peer is
listed in `server.trusted_proxies` (anybody can send it otherwise):

- `X-Forwarded-For` (the default): each proxy appends the address it received the request from, so the list is
  read from the right, skipping trusted proxies; the first address that is not one is the client (what a client
  wrote at the left cannot pass for it). When every hop is trusted, the leftmost one is the client;
- any other header (`Fly-Client-IP`, `X-Real-IP`, `CF-Connecting-IP`, ...) holds the one address the proxy saw,
  and must be one the proxy sets itself (overwriting what a client sent).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address, ip_network
from typing import Annotated, Any

from pydantic import BeforeValidator, WithJsonSchema

__all__ = ["Cidrs", "ClientAddress", "IPAddress", "Network", "parse_address", "split_cidrs"]

IPAddress = IPv4Address | IPv6Address
Network = IPv4Network | IPv6Network

FORWARDED_FOR = "x-forwarded-for"


def split_cidrs(raw: Any) -> Any:
    """A list of CIDRs, or one string of them separated by commas or spaces (`${TRUSTED_PROXIES:-}` in YAML),
    as networks; a single address is a network of one. None (`${VAR:-}` with VAR unset) is none."""
    if raw is None:
        return []
    if isinstance(raw, str):
        raw = [part for part in raw.replace(",", " ").split() if part]
    if not isinstance(raw, list):
        return raw
    out: list[Any] = []
    for item in raw:
        if isinstance(item, IPv4Network | IPv6Network):
            out.append(item)
            continue
        if not isinstance(item, str):
            raise ValueError(f"{item!r} is not an address range like 10.0.0.0/8 or fd00::/8")
        try:
            out.append(ip_network(item.strip()))
        except ValueError:
            try:
                loose = ip_network(item.strip(), strict=False)
            except ValueError:
                raise ValueError(f"{item!r} is not an address range like 10.0.0.0/8 or fd00::/8") from None
            raise ValueError(f"{item!r} has bits set after the prefix: did you mean {loose}?") from None
    return out


Cidrs = Annotated[
    list[IPv4Network | IPv6Network],
    BeforeValidator(split_cidrs),
    WithJsonSchema({"anyOf": [{"type": "array", "items": {"type": "string"}}, {"type": "string"}],
                    "description": "address ranges (CIDR, or a single address): a list, or one string with "
                                   "commas between them",
                    "examples": [["10.0.0.0/8", "fd00::/8"], "10.0.0.0/8,fd00::/8"]}),
]


def parse_address(text: str | None) -> IPAddress | None:
    """'203.0.113.7', '203.0.113.7:4711', '[2001:db8::1]:443', '"2001:db8::1"' -> the address; None if not one.
    An IPv4-mapped IPv6 address (::ffff:203.0.113.7) is the IPv4 address it maps."""
    if not text:
        return None
    value = text.strip().strip('"').strip()
    if value.startswith("["):  # [v6] or [v6]:port
        value = value[1:].partition("]")[0]
    elif value.count(":") == 1:  # v4:port
        value = value.partition(":")[0]
    try:
        address = ip_address(value)
    except ValueError:
        return None
    if isinstance(address, IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


@dataclass(frozen=True)
class ClientAddress:
    """How to find the client's address (server.trusted_proxies and server.client_ip_header)."""

    trusted: tuple[Network, ...] = ()
    header: str = "X-Forwarded-For"

    def is_trusted(self, address: IPAddress) -> bool:
        return any(address in network for network in self.trusted)

    def resolve(self, peer: str | None, headers: Mapping[str, str] | Any) -> IPAddress | None:
        """The client's address; None when the peer has no IP address (a Unix socket)."""
        direct = parse_address(peer)
        if direct is None or not self.trusted or not self.is_trusted(direct):
            return direct
        values: Iterable[str] = headers.getall(self.header, ()) if hasattr(headers, "getall") else \
            [v for v in [headers.get(self.header)] if v is not None]
        hops = [part for value in values for part in value.split(",") if part.strip()]
        if not hops:
            return direct
        if self.header.lower() != FORWARDED_FOR:
            return parse_address(hops[-1]) or direct
        client = direct
        for hop in reversed(hops):
            address = parse_address(hop)
            if address is None:  # not an address: nothing left of it can be believed
                break
            client = address
            if not self.is_trusted(address):
                break
        return client
