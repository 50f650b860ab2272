"""Limits: a token bucket per connection; connection admission (global and per client address).

Pure; no I/O. The caller passes ``now`` (seconds, ``loop.time()``) and addresses as strings.
"""

from __future__ import annotations

import functools
import ipaddress
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "RETRY_AFTER_S",
    "ConnectionLimits",
    "Refusal",
    "TokenBucket",
    "client_key",
    "parse_networks",
]


class TokenBucket:
    """``rate`` tokens per second, at most ``burst`` banked; ``take`` spends one.

    Args:
        rate: refill rate, tokens per second.
        burst: capacity; a fresh bucket is full.
        now: the current time.
    """

    __slots__ = ("burst", "rate", "stamp", "tokens")

    def __init__(self, rate: float, burst: float, now: float) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be > 0 and burst >= 1")
        self.rate = rate
        self.burst = burst
        self.tokens = float(burst)
        self.stamp = now

    def available(self, now: float) -> float:
        """Tokens there would be at ``now`` (nothing spent)."""
        return min(self.burst, self.tokens + max(0.0, now - self.stamp) * self.rate)

    def take(self, now: float) -> bool:
        """Spend one token if there is one; False when the caller is over its rate."""
        elapsed = now - self.stamp
        if elapsed > 0:
            self.tokens = min(self.burst, self.tokens + elapsed * self.rate)
            self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


# Connection admission (before the WebSocket upgrade)

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

RETRY_AFTER_S = 5
"""``Retry-After`` (seconds) sent with a refusal."""


def parse_networks(specs: Iterable[str]) -> tuple[Network, ...]:
    """``["10.0.0.1", "192.168.0.0/16", "::1"]`` -> networks (an address is a /32 or /128).

    Raises:
        ValueError: an entry that is not an address or a network.
    """
    out: list[Network] = []
    for spec in specs:
        if not isinstance(spec, str):
            raise ValueError(f"not an address or network: {spec!r}")
        try:
            out.append(ipaddress.ip_network(spec.strip(), strict=False))
        except ValueError:
            raise ValueError(f"not an address or network: {spec!r}") from None
    return tuple(out)


@functools.lru_cache(maxsize=4096)  # (a handshake's cost: the same peers come back)
def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        addr = ipaddress.ip_address(text.strip().strip("[]"))
    except ValueError:
        return None
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    return addr


def _trusted(addr: ipaddress.IPv4Address | ipaddress.IPv6Address, nets: Sequence[Network]) -> bool:
    return any(addr.version == n.version and addr in n for n in nets)


def client_key(
    remote: str | None, forwarded_for: Sequence[str] = (), trusted: Sequence[Network] = ()
) -> str:
    """The key per-address limits count a connection under.

    The peer's address; when the peer is a trusted proxy, the right-most address of
    ``X-Forwarded-For`` that is not itself a trusted proxy (the left part of the header is
    whatever the client wrote, so only what trusted proxies appended counts). IPv4-mapped IPv6 is
    IPv4; IPv6 counts per /64 (one subscriber's usual allocation).

    Args:
        remote: the peer address (``request.remote``); None or "" for a Unix socket.
        forwarded_for: the values of every ``X-Forwarded-For`` header, in order.
        trusted: networks of proxies whose ``X-Forwarded-For`` is believed.

    Returns:
        the address (IPv4) or ``prefix/64`` (IPv6); ``remote`` unchanged when not an address.
    """
    addr = _address(remote or "")
    if addr is None:
        return remote or ""
    if trusted and forwarded_for and _trusted(addr, trusted):
        hops = [h for value in forwarded_for for h in value.split(",")]
        for hop in reversed(hops):
            hop_addr = _address(hop)
            if hop_addr is None:
                break  # garbage where a proxy should have written an address: count the proxy
            addr = hop_addr
            if not _trusted(hop_addr, trusted):
                break
    return _key(addr)


@functools.lru_cache(maxsize=4096)
def _key(addr: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    if isinstance(addr, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network((addr, 64), strict=False))
    return str(addr)


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a connection is refused before the upgrade: HTTP ``status``, error ``code``."""

    status: int
    code: str
    message: str
    retry_after: int = RETRY_AFTER_S


class ConnectionLimits:
    """Open WebSocket connections, in total and per client key; admits or refuses new ones.

    ``admit`` reserves a slot (handshakes in flight count, so a burst of them cannot overshoot);
    the caller gives it back with ``release`` when the connection ends, whatever the outcome.

    Args:
        max_total: connections in total (0: no limit); over it, 503.
        max_per_key: connections per client key (0: no limit); over it, 429.
    """

    __slots__ = ("admitted", "max_per_key", "max_total", "open", "per_key", "refused")

    def __init__(self, max_total: int, max_per_key: int) -> None:
        self.max_total = max_total
        self.max_per_key = max_per_key
        self.open = 0
        self.per_key: dict[str, int] = {}
        self.refused: Counter[str] = Counter()
        self.admitted = 0

    def admit(self, key: str) -> Refusal | None:
        """Reserve a slot for ``key``; the refusal when a limit is reached."""
        if self.max_total and self.open >= self.max_total:
            self.refused["total"] += 1
            return Refusal(
                503,
                "too_many_connections",
                f"the server is at its limit of {self.max_total} connections; retry later",
            )
        n = self.per_key.get(key, 0)
        if self.max_per_key and n >= self.max_per_key:
            self.refused["per_ip"] += 1
            return Refusal(
                429,
                "too_many_connections",
                f"at most {self.max_per_key} connections per client address",
            )
        self.open += 1
        self.per_key[key] = n + 1
        self.admitted += 1
        return None

    def release(self, key: str) -> None:
        """Give back the slot ``admit`` reserved for ``key``."""
        n = self.per_key.get(key, 0)
        if n <= 0:
            return
        self.open -= 1
        if n == 1:
            del self.per_key[key]
        else:
            self.per_key[key] = n - 1

    def health(self) -> dict[str, Any]:
        """Counters for ``/healthz``."""
        return {
            "open": self.open,
            "addresses": len(self.per_key),
            "max_connections": self.max_total,
            "max_connections_per_ip": self.max_per_key,
            "admitted": self.admitted,
            "refused_total": self.refused["total"],
            "refused_per_ip": self.refused["per_ip"],
        }
