"""Spread a swarm's connections over several loopback targets, so ephemeral ports last.

Why: Linux gives a client about 28,000 ephemeral ports (32768-60999) per (source address,
target address, target port). One machine holding 50,000 connections to one server
address and port runs out of ports; spreading them over several targets gives each its own
28,000. A target is a `host:port` on 127.0.0.0/8, where the backend must listen: a server
bound to 0.0.0.0 answers on every 127.x.y.z, and the reference server's workers can also
listen on their own ports (`--worker-port-base`, used by benchmarks/swarm_scale.py, which
keeps everything bound to 127.0.0.1).

Spec grammar (a comma-separated list; the last octet and the port may be ranges):

    127.0.0.1-4            four addresses, the target URL's port
    127.0.0.1:8080-8083    one address, four ports
    127.0.0.2,127.0.0.3:9000

Pure: parsing and URL rewriting only; the connection itself is the adapter's job.
Only loopback addresses are accepted: this spreads load on one machine, never beyond it.
"""
from __future__ import annotations

import ipaddress
import itertools
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

#: Ephemeral ports on Linux's default range (net.ipv4.ip_local_port_range 32768 60999).
PORTS_PER_TARGET = 60999 - 32768 + 1
MAX_TARGETS = 1024


class SpreadError(ValueError):
    """A bad spread spec (the user's input)."""


@dataclass(frozen=True)
class Target:
    """One place to connect to: a loopback address and, if given, a port (else the URL's)."""

    host: str
    port: int | None = None


def _range(text: str, lo: int, hi: int, what: str) -> list[int]:
    first, dash, last = text.partition("-")
    try:
        a = int(first)
        b = int(last) if dash else a
    except ValueError:
        raise SpreadError(f"bad {what} {text!r}") from None
    if not lo <= a <= b <= hi:
        raise SpreadError(f"{what} {text!r} out of range {lo}-{hi} (or reversed)")
    return list(range(a, b + 1))


def _hosts(text: str) -> list[str]:
    head, dot, last = text.rpartition(".")
    if not dot or head.count(".") != 2:
        raise SpreadError(f"bad address {text!r}: expected 127.a.b.c or 127.a.b.c-d")
    out = []
    for octet in _range(last, 0, 255, "address octet"):
        host = f"{head}.{octet}"
        try:
            addr = ipaddress.IPv4Address(host)
        except ValueError:
            raise SpreadError(f"bad address {host!r}") from None
        if not addr.is_loopback:
            raise SpreadError(f"{host} is not a loopback address: spreading is for 127.0.0.0/8 only")
        out.append(host)
    return out


def parse(spec: str) -> list[Target]:
    """The targets of a spec, in order (see the module docstring). Empty spec: none."""
    targets: list[Target] = []
    for part in (p.strip() for p in spec.split(",")):
        if not part:
            continue
        host_text, colon, port_text = part.partition(":")
        ports: list[int | None] = [None]
        if colon:
            ports = list(_range(port_text, 1, 65535, "port"))
        targets += [Target(h, p) for h in _hosts(host_text) for p in ports]
        if len(targets) > MAX_TARGETS:
            raise SpreadError(f"more than {MAX_TARGETS} targets in {spec!r}")
    if len(set(targets)) != len(targets):
        raise SpreadError(f"a target appears twice in {spec!r}")
    return targets


def rewrite(url: str, target: Target) -> str:
    """`url` with its host (and port, if the target has one) replaced by the target's."""
    parts = urlsplit(url)
    port = target.port if target.port is not None else parts.port
    netloc = target.host if port is None else f"{target.host}:{port}"
    if parts.username or parts.password:
        raise SpreadError("a target URL with credentials cannot be spread")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def capacity(targets: list[Target]) -> int:
    """How many simultaneous connections the targets allow from one source address."""
    return PORTS_PER_TARGET * max(1, len(targets))


class Spread:
    """Round-robin over the targets, one step per connection: the connections of one process
    are balanced over the targets whatever the visits do (the port space is per machine, so
    every process balancing its own share balances the whole)."""

    def __init__(self, spec: str = "") -> None:
        self.targets = parse(spec)
        self._next = itertools.count()

    def __bool__(self) -> bool:
        return bool(self.targets)

    def url(self, base: str) -> str:
        """The URL for the next connection: `base` itself when there are no targets."""
        if not self.targets:
            return base
        return rewrite(base, self.targets[next(self._next) % len(self.targets)])
