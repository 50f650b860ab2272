"""Who may do what: WebSocket origins, client tokens with symbol entitlements, the admin token.

Pure; no I/O (PyJWT only computes). The aiohttp shell that applies this to requests is
:mod:`ticker.net.guard`; the hub applies entitlements at subscribe time (``Client.entitled``).

* **Origins**: a browser page may open ``/ws`` only from the server's own origin (same host and
  port, whatever the scheme, so a TLS-terminating proxy in front changes nothing) or from an origin
  on the allow-list (default: ``localhost``, ``127.0.0.1`` and ``[::1]`` on any port). A request
  without ``Origin`` is not from a browser page (curl, Node ``ws``, Python clients) and is allowed:
  cross-site WebSocket hijacking needs a victim's browser, which always sends ``Origin``.
* **Client tokens**: JWT HS256 signed with the configured secret; ``exp`` is required; ``sub``
  (who) and ``symbols`` (a list, or ``"*"``/absent for every symbol) are optional.
* **Hosts** (DNS rebinding): ``/ws`` and the APIs answer only a ``Host`` this server is known by:
  an IP literal (an address cannot be rebound to another machine), ``localhost`` and
  ``*.localhost`` (loopback by RFC 6761), and the configured public names (``*``: any ``Host``).
  A page on ``evil.example`` whose DNS answer turns into ``127.0.0.1`` is same-origin with itself,
  so the origin rule cannot refuse it; its ``Host`` still says ``evil.example``.
* **Admin token**: one shared secret for the write endpoints, compared in constant time.
"""

from __future__ import annotations

import hmac
import ipaddress
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

__all__ = [
    "DEFAULT_ORIGINS",
    "FULL",
    "MAX_EXP",
    "MIN_ADMIN_TOKEN",
    "MIN_SECRET",
    "AuthConfig",
    "AuthError",
    "Grant",
    "OriginRule",
    "admin_ok",
    "bearer",
    "entitled_only",
    "host_allowed",
    "host_name",
    "mint_token",
    "news_visible",
    "origin_allowed",
    "parse_origin",
    "parse_origin_rule",
    "parse_public_host",
    "permits",
    "split_entitled",
    "verify_token",
]

DEFAULT_ORIGINS = (
    "http://localhost:*",
    "https://localhost:*",
    "http://127.0.0.1:*",
    "https://127.0.0.1:*",
    "http://[::1]:*",
    "https://[::1]:*",
)
"""The allow-list when none is configured: pages served from this machine, on any port."""

MIN_SECRET = 32
"""Bytes a token secret needs at least (RFC 7518 3.2: an HS256 key as long as the hash)."""

MIN_ADMIN_TOKEN = 16
"""Characters an admin token needs at least (``python -c 'import secrets;
print(secrets.token_urlsafe(32))'`` makes a good one)."""

MAX_EXP = 253_402_300_799
"""The latest ``exp`` a token may have: 9999-12-31T23:59:59Z. Anything later is absurd (and
``10**400`` is no float at all)."""

_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}
_SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*$")
_HOST = re.compile(r"^(\*\.)?[a-z0-9._~%!$&'()+,;=:-]+$")
_LABEL = r"[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?"
_NAME = re.compile(rf"^(\*\.)?{_LABEL}(\.{_LABEL})*$")


class AuthError(ValueError):
    """A token or a setting was refused. The message never contains the token itself."""


# Settings


@dataclass(frozen=True, slots=True)
class OriginRule:
    """One allow-list entry: ``scheme://host[:port]``; ``*.`` host prefix = any subdomain,
    port ``*`` (``None`` here) = any port; ``any_origin`` for the entry ``*``."""

    scheme: str = ""
    host: str = ""
    port: int | None = None
    any_origin: bool = False

    def matches(self, scheme: str, host: str, port: int | None) -> bool:
        """Whether a parsed origin (see :func:`parse_origin`) is covered."""
        if self.any_origin:
            return True
        if scheme != self.scheme or (self.port is not None and port != self.port):
            return False
        if self.host.startswith("*."):
            return host.endswith(self.host[1:]) and len(host) > len(self.host) - 1
        return host == self.host


def parse_origin_rule(text: str) -> OriginRule:
    """Pure; no I/O. One ``--allow-origin`` value as an :class:`OriginRule`.

    Raises:
        AuthError: not ``*`` nor ``scheme://host[:port]`` (port a number or ``*``).
    """
    s = text.strip().lower()
    if s == "*":
        return OriginRule(any_origin=True)
    if s == "null":  # sandboxed iframes, file:// pages: only when listed explicitly
        return OriginRule(scheme="null")
    any_port = s.endswith(":*")
    parsed = _split_origin(s[:-2] if any_port else s)
    if parsed is None:
        raise AuthError(
            f"allowed origin {text!r} is not * nor scheme://host[:port] (port may be *)"
        )
    scheme, host, port = parsed
    return OriginRule(scheme, host, None if any_port else port)


def _split_origin(s: str) -> tuple[str, str, int | None] | None:
    """``scheme://host[:port]`` (no path) -> (scheme, host, effective port), else None."""
    try:
        parts = urlsplit(s)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    # urlsplit drops the brackets of an IPv6 literal: put them back so rules and origins agree.
    if ":" in host:
        host = f"[{host}]"
    if (
        not _SCHEME.match(scheme)
        or not host
        or not _HOST.match(host.strip("[]"))
        or parts.username is not None
        or parts.path not in ("", "/")
        or parts.query
        or parts.fragment
    ):
        return None
    return scheme, host, port if port is not None else _DEFAULT_PORTS.get(scheme)


def parse_origin(origin: str) -> tuple[str, str, int | None] | None:
    """Pure; no I/O. An ``Origin`` header as (scheme, host, effective port); ``("null", "", None)``
    for ``null``; None when malformed (refused). Default ports are made explicit (80, 443)."""
    o = origin.strip().lower()
    if o == "null":
        return ("null", "", None)
    if "*" in o:  # wildcards belong in rules, never in what a browser sends
        return None
    return _split_origin(o)


def _split_host(host: str) -> tuple[str, int | None] | None:
    """A ``Host`` header as (host, port or None when absent)."""
    h = host.strip().lower()
    if not h:
        return None
    if h.startswith("["):
        end = h.find("]")
        if end < 0:
            return None
        name, rest = h[: end + 1], h[end + 1 :]
    else:
        name, _, port = h.partition(":")
        rest = ":" + port if port else ""
    if not rest:
        return name, None
    if not rest.startswith(":") or not rest[1:].isdigit():
        return None
    return name, int(rest[1:])


def origin_allowed(origin: str | None, host: str | None, rules: Sequence[OriginRule]) -> bool:
    """Pure; no I/O. Whether a WebSocket handshake with this ``Origin`` may proceed.

    Args:
        origin: the ``Origin`` header; None (absent) is a non-browser client and is allowed.
        host: the request's ``Host`` header: an origin with the same host and port is the
            server's own page (the scheme is not compared: behind a TLS proxy the page is https
            while the request reaching us is http). Without a port in ``Host``, the origin must
            use its scheme's default port.
        rules: the allow-list.
    """
    if origin is None:
        return True
    parsed = parse_origin(origin)
    if parsed is None:
        return False
    scheme, ohost, oport = parsed
    if scheme != "null" and host is not None:
        own = _split_host(host)
        if own is not None and own[0] == ohost:
            if own[1] is None:
                if oport == _DEFAULT_PORTS.get(scheme):
                    return True
            elif own[1] == oport:
                return True
    return any(r.matches(scheme, ohost, oport) for r in rules)


def parse_public_host(text: str) -> str:
    """Pure; no I/O. One ``--public-host`` value, normalized: ``*`` (any ``Host``), a name, or
    ``*.name`` (any subdomain of it), lower-case, without a trailing dot.

    Raises:
        AuthError: not one of those (a port, a scheme, a path...).
    """
    s = text.strip().lower()
    if s == "*":
        return s
    name = s[:-1] if s.endswith(".") else s
    if not _NAME.match(name) and not _ip_literal(name):  # (an address is served anyway)
        raise AuthError(
            f"public host {text!r} is not a host name (no scheme, port or path), *.name or *"
        )
    return name


def host_name(host: str | None) -> str:
    """Pure; no I/O. The name part of a ``Host`` header, lower-case, without its port (for
    messages); the header as sent when malformed, '' when absent."""
    if host is None:
        return ""
    parsed = _split_host(host)
    return parsed[0].removesuffix(".") if parsed is not None else host.strip()


def _ip_literal(name: str) -> bool:
    try:
        if name.startswith("[") and name.endswith("]"):
            ipaddress.IPv6Address(name[1:-1])
        else:
            ipaddress.IPv4Address(name)
    except ValueError:
        return False
    return True


def host_allowed(host: str | None, public_hosts: Sequence[str]) -> bool:
    """Pure; no I/O. Whether a request with this ``Host`` header is for this server (DNS
    rebinding: a rebound name still says its own name in ``Host``).

    Args:
        host: the ``Host`` header; None (absent) is refused.
        public_hosts: names from :func:`parse_public_host`; ``*`` allows every ``Host``.

    Allowed, whatever the port and case: an IP literal (IPv6 in brackets), ``localhost`` and
    ``*.localhost``, a name in ``public_hosts`` (``*.name``: its subdomains).
    """
    parsed = _split_host(host) if host is not None else None
    if parsed is None or not parsed[0]:
        return False
    name = parsed[0]
    if _ip_literal(name) or "*" in public_hosts:
        return True
    if name.endswith("."):
        name = name[:-1]
    if name == "localhost" or name.endswith(".localhost"):
        return True
    for rule in public_hosts:
        if rule.startswith("*."):
            if name.endswith(rule[1:]) and len(name) > len(rule) - 1:
                return True
        elif name == rule:
            return True
    return False


@dataclass(frozen=True, slots=True)
class AuthConfig:
    """Access settings (``[auth]`` in ``--config``, ``TICKER_*`` env vars and flags map onto these).

    Attributes:
        admin_token: the token write endpoints need (``Authorization: Bearer``); None disables
            ``POST /api/ticks`` and ``POST /api/news``. Never shown in ``repr``.
        token_secret: HS256 secret client tokens are signed with; None: no client tokens.
        require_token: ``/ws`` and the read APIs need a valid client token (or the admin token).
        allow_origins: the WebSocket origin allow-list, besides the server's own origin.
        local_replay: without an admin token, ``POST /api/replay`` is allowed from a loopback
            peer (no proxy headers) whose origin passes the check: ``ticker replay`` on a laptop.
        public_hosts: names ``/ws`` and the APIs answer to besides IP literals and localhost
            (:func:`host_allowed`); ``*`` for any.

    Raises:
        AuthError: a secret is too short, ``require_token`` without a secret, a bad origin or
            public host.
    """

    admin_token: str | None = field(default=None, repr=False)
    token_secret: str | None = field(default=None, repr=False)
    require_token: bool = False
    allow_origins: tuple[str, ...] = DEFAULT_ORIGINS
    local_replay: bool = True
    public_hosts: tuple[str, ...] = ()
    rules: tuple[OriginRule, ...] = field(init=False, repr=False, compare=False)
    host_rules: tuple[str, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.admin_token is not None and len(self.admin_token) < MIN_ADMIN_TOKEN:
            raise AuthError(f"the admin token must be at least {MIN_ADMIN_TOKEN} characters")
        if self.token_secret is not None and len(self.token_secret.encode()) < MIN_SECRET:
            raise AuthError(f"the token secret must be at least {MIN_SECRET} bytes")
        if self.require_token and not self.token_secret:
            raise AuthError("require_token needs a token secret (TICKER_TOKEN_SECRET)")
        object.__setattr__(self, "rules", tuple(parse_origin_rule(o) for o in self.allow_origins))
        object.__setattr__(
            self, "host_rules", tuple(parse_public_host(h) for h in self.public_hosts)
        )


# Grants and entitlements


@dataclass(frozen=True, slots=True)
class Grant:
    """What one request may see: ``symbols`` None means every symbol.

    Attributes:
        sub: the token's subject (for logs and metrics; never the token).
        symbols: entitled symbols (each as given and upper-cased), or None for all.
        expires: the token's ``exp`` (epoch seconds), None without a token.
        admin: authenticated with the admin token.
    """

    sub: str | None = None
    symbols: frozenset[str] | None = None
    expires: float | None = None
    admin: bool = False


FULL = Grant()
"""The grant of a request without a token when tokens are not required."""


def permits(entitled: frozenset[str] | None, symbol: str) -> bool:
    """Pure; no I/O. Whether ``symbol`` is entitled (None: everything is)."""
    return entitled is None or symbol in entitled


def entitled_only(symbols: Iterable[str], entitled: frozenset[str] | None) -> list[str]:
    """Pure; no I/O. ``symbols`` without the ones not entitled, order kept."""
    if entitled is None:
        return list(symbols)
    return [s for s in symbols if s in entitled]


def split_entitled(
    symbols: Iterable[str], entitled: frozenset[str] | None
) -> tuple[list[str], list[str]]:
    """Pure; no I/O. ``symbols`` as (entitled, not entitled), order kept. A symbol counts as
    entitled when it or its upper-case form is (requests match symbols case-insensitively)."""
    if entitled is None:
        return list(symbols), []
    yes: list[str] = []
    no: list[str] = []
    for s in symbols:
        (yes if s in entitled or s.upper() in entitled else no).append(s)
    return yes, no


def news_visible(symbols: Sequence[str], entitled: frozenset[str] | None) -> bool:
    """Pure; no I/O. Whether a news item tagged ``symbols`` may be shown: every item without
    entitlements; else an item on at least one entitled symbol, or one with no symbols at all
    (general market news is not any one symbol's licensed data)."""
    return entitled is None or not symbols or not entitled.isdisjoint(symbols)


# Tokens


def _entitlement(raw: object) -> frozenset[str] | None:
    if raw is None or raw == "*":
        return None
    if not isinstance(raw, list) or not all(isinstance(s, str) and s for s in raw):
        raise AuthError("token claim 'symbols' must be a list of symbols or \"*\"")
    if "*" in raw:
        return None
    return frozenset(x for s in raw for x in (s, s.upper()))


def mint_token(
    secret: str,
    *,
    now: float,
    ttl: float,
    sub: str | None = None,
    symbols: Sequence[str] | None = None,
) -> str:
    """Pure; no I/O. A client token: HS256 JWT with ``iat``, ``exp`` = now + ttl, and ``sub``
    and ``symbols`` when given (None: every symbol).

    Raises:
        AuthError: a short secret, or ``ttl`` not > 0.
    """
    if len(secret.encode()) < MIN_SECRET:
        raise AuthError(f"the token secret must be at least {MIN_SECRET} bytes")
    if not ttl > 0 or math.isinf(ttl):
        raise AuthError(f"ttl must be a positive number of seconds, got {ttl!r}")
    if now + ttl > MAX_EXP:
        raise AuthError(f"ttl {ttl!r} ends after the year 9999")
    import jwt  # here, not at the top: the hub imports this module for entitlements only

    claims: dict[str, object] = {"iat": int(now), "exp": math.ceil(now + ttl)}
    if sub is not None:
        claims["sub"] = sub
    if symbols is not None:
        claims["symbols"] = list(symbols)
    return jwt.encode(claims, secret, algorithm="HS256")


def verify_token(token: str, secret: str, *, now: float) -> Grant:
    """Pure; no I/O. The grant of a client token.

    Raises:
        AuthError: a bad signature, another algorithm, a malformed token, no or a past ``exp``
            or one after :data:`MAX_EXP`, a ``sub`` that is not a string or a bad ``symbols``
            claim. The message says which, never what the token was.
    """
    import jwt

    try:
        # PyJWT compares signatures with hmac.compare_digest. `now` is ours (testable): PyJWT
        # checks exp against its own clock, so we check it here instead.
        claims = jwt.decode(
            token,
            secret,
            algorithms=["HS256"],
            options={"require": ["exp"], "verify_exp": False, "verify_iat": False},
        )
    except jwt.MissingRequiredClaimError:
        raise AuthError("token has no 'exp' claim") from None
    except jwt.InvalidSignatureError:
        raise AuthError("token signature does not match") from None
    except jwt.InvalidTokenError:
        raise AuthError("token is malformed") from None
    except (ValueError, TypeError, ArithmeticError, RecursionError):
        # A signed token is still untrusted input to PyJWT's own claim checks (an `nbf` of
        # 1e400 is an OverflowError there).
        raise AuthError("token is malformed") from None
    exp = claims["exp"]
    if isinstance(exp, bool) or not isinstance(exp, int | float) or exp != exp:
        raise AuthError("token 'exp' is not a number")
    # int and float compare exactly, whatever their size: no conversion of 10**400 to a float.
    if exp <= now:
        raise AuthError("token has expired")
    if exp > MAX_EXP:
        raise AuthError("token 'exp' is after the year 9999")
    sub = claims.get("sub")
    if sub is not None and not isinstance(sub, str):
        raise AuthError("token 'sub' is not a string")
    return Grant(sub=sub, symbols=_entitlement(claims.get("symbols")), expires=float(exp))


def admin_ok(presented: str | None, admin_token: str | None) -> bool:
    """Pure; no I/O. Whether ``presented`` is the admin token, compared in constant time
    (``hmac.compare_digest`` on the UTF-8 bytes). False when no admin token is configured."""
    if presented is None or admin_token is None:
        return False
    return hmac.compare_digest(presented.encode(), admin_token.encode())


def bearer(authorization: str | None) -> str | None:
    """Pure; no I/O. The token of an ``Authorization: Bearer <token>`` header, else None."""
    if not authorization:
        return None
    scheme, _, value = authorization.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    return value.strip() or None
