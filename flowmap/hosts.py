"""Which destinations may receive the tenant baggage (runtime and analyzer share this)."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

__all__ = ["AllowedHosts", "DEFAULT_SUFFIXES"]

DEFAULT_SUFFIXES: tuple[str, ...] = (".svc", ".svc.cluster.local", ".internal", ".local")
_DEFAULT_NAMES = frozenset({"localhost"})
#: a host as a Host header (or an instrumentation's server.address) may record it:
#: ``name[:port]`` or ``[ipv6][:port]``; a bare IPv6 literal (two colons or more) is not one
_HOST_PORT = re.compile(r"\[(?P<v6>[^\]]*)\](?::\d*)?|(?P<host>[^:\[\]]*)(?::\d*)?")


def _without_port(host: str) -> str:
    """``host`` without a trailing ``:port`` and without the brackets of an IPv6 literal
    (``tools.svc:8080`` -> ``tools.svc``, ``[::1]:8080`` -> ``::1``); ``fe80::1`` as is."""
    m = _HOST_PORT.fullmatch(host)
    if m is None:
        return host
    v6 = m.group("v6")
    return v6 if v6 is not None else m.group("host")


#: the private address ranges of the default allowed destinations, listed rather than
#: ``ip.is_private``: that also holds documentation, benchmarking and reserved ranges and
#: Teredo (2001::/32, public hosts on the internet), and its list changes between Python
#: releases (3.12.4, 3.13), which would change a verdict with the interpreter
_PRIVATE_NETWORKS = tuple(
    ipaddress.ip_network(net)
    for net in (
        "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16",  # RFC 1918
        "169.254.0.0/16", "fe80::/10",  # link-local
        "fc00::/7",  # unique local (RFC 4193)
    )
)


@dataclass(frozen=True)
class AllowedHosts:
    """An allow list of destinations.

    By default: loopback and private address ranges, ``localhost``, and names ending in
    ``.svc``, ``.svc.cluster.local``, ``.internal`` or ``.local``. ``extra`` entries are
    exact host names, suffixes starting with ``.`` or ``*.``, IP addresses or CIDR networks.
    """

    extra: tuple[str, ...] = ()
    include_defaults: bool = True
    _names: frozenset[str] = field(init=False, repr=False, compare=False)
    _suffixes: tuple[str, ...] = field(init=False, repr=False, compare=False)
    _networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = field(
        init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        names: set[str] = set(_DEFAULT_NAMES) if self.include_defaults else set()
        suffixes: list[str] = list(DEFAULT_SUFFIXES) if self.include_defaults else []
        networks = []
        for raw in self.extra:
            entry = raw.strip().lower().rstrip(".")
            if not entry:
                continue
            if entry.startswith("*."):
                suffixes.append(entry[1:])
            elif entry.startswith("."):
                suffixes.append(entry)
            else:
                try:
                    networks.append(ipaddress.ip_network(entry, strict=False))
                except ValueError:
                    names.add(entry)
        object.__setattr__(self, "_names", frozenset(names))
        object.__setattr__(self, "_suffixes", tuple(suffixes))
        object.__setattr__(self, "_networks", tuple(networks))

    @classmethod
    def from_config(cls, entries: Iterable[str] | None, include_defaults: bool = True) -> "AllowedHosts":
        return cls(tuple(entries or ()), include_defaults)

    def allows(self, host: str | None) -> bool:
        """Whether tenant baggage may be sent to ``host`` (a name or an IP literal, with or
        without a ``:port``, as an old-semconv ``http.host`` records the Host header)."""
        if not host:
            return False
        h = host.strip().lower()
        if h.rstrip(".") in self._names:  # an exact entry, even one written with its port
            return True
        h = _without_port(h).rstrip(".")
        try:
            ip = ipaddress.ip_address(h.split("%", 1)[0])
        except ValueError:
            ip = None
        if ip is not None:
            if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
                ip = ip.ipv4_mapped
            if self.include_defaults and (ip.is_loopback or any(ip in net for net in _PRIVATE_NETWORKS)):
                return True
            return any(ip in net for net in self._networks)
        if h in self._names:
            return True
        return any(h.endswith(s) for s in self._suffixes)
