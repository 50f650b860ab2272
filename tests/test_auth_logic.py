"""The pure access rules of ticker.core.auth: origins, entitlements, tokens, the admin token.

Sync, no event loop, no mocks; hypothesis for the properties.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import string
from typing import Any

import jwt
import orjson
import pytest
from hypothesis import given, settings, strategies as st

from ticker.core.auth import (
    DEFAULT_ORIGINS,
    MAX_EXP,
    AuthConfig,
    AuthError,
    admin_ok,
    bearer,
    entitled_only,
    host_allowed,
    host_name,
    mint_token,
    news_visible,
    origin_allowed,
    parse_origin,
    parse_origin_rule,
    parse_public_host,
    permits,
    split_entitled,
    verify_token,
)

SECRET = "k" * 40
NOW = 1_780_000_000.0
DEFAULT_RULES = AuthConfig().rules

labels = st.text(string.ascii_lowercase + string.digits, min_size=1, max_size=10)
hostnames = st.lists(labels, min_size=1, max_size=3).map(".".join)
ports = st.integers(1, 65535)
schemes = st.sampled_from(["http", "https"])
symbols = st.text(string.ascii_uppercase + ".-", min_size=1, max_size=6)


def origin(scheme: str, host: str, port: int | None) -> str:
    return f"{scheme}://{host}" + (f":{port}" if port is not None else "")


# Origins


def test_no_origin_header_is_a_non_browser_client_and_allowed() -> None:
    assert origin_allowed(None, "ticker.example.com", ())
    assert origin_allowed(None, None, ())


@settings(max_examples=200, deadline=None)
@given(scheme=schemes, host=hostnames, port=ports)
def test_same_host_and_port_is_always_allowed(scheme: str, host: str, port: int) -> None:
    assert origin_allowed(origin(scheme, host, port), f"{host}:{port}", ())
    # Whatever the case of either side.
    assert origin_allowed(origin(scheme, host.upper(), port), f"{host}:{port}".upper(), ())


@settings(max_examples=200, deadline=None)
@given(scheme=schemes, host=hostnames, other=hostnames, port=ports, oport=ports)
def test_another_host_or_port_is_refused_without_a_rule(
    scheme: str, host: str, other: str, port: int, oport: int
) -> None:
    if other != host:
        assert not origin_allowed(origin(scheme, other, port), f"{host}:{port}", ())
    if oport != port:
        assert not origin_allowed(origin(scheme, host, oport), f"{host}:{port}", ())


@given(host=hostnames)
def test_host_without_port_means_the_origins_default_port(host: str) -> None:
    # Behind a TLS proxy: the page is https://host, the request says Host: host.
    assert origin_allowed(f"https://{host}", host, ())
    assert origin_allowed(f"http://{host}", host, ())
    assert origin_allowed(f"https://{host}:443", host, ())
    assert not origin_allowed(f"https://{host}:8443", host, ())


@settings(max_examples=200, deadline=None)
@given(scheme=schemes, port=ports, host=hostnames)
def test_default_rules_allow_this_machine_on_any_port_only(
    scheme: str, port: int, host: str
) -> None:
    for local in ("localhost", "127.0.0.1", "[::1]"):
        assert origin_allowed(origin(scheme, local, port), "ticker.example.com", DEFAULT_RULES)
        assert origin_allowed(origin(scheme, local, None), "ticker.example.com", DEFAULT_RULES)
    if host not in ("localhost", "127.0.0.1"):
        assert not origin_allowed(origin(scheme, host, port), "ticker.example.com", DEFAULT_RULES)


@settings(max_examples=200, deadline=None)
@given(sub=labels, evil=labels, scheme=schemes)
def test_wildcard_subdomain_rule(sub: str, evil: str, scheme: str) -> None:
    rules = (parse_origin_rule("https://*.example.com"),)
    assert origin_allowed(f"https://{sub}.example.com", "x", rules)
    assert origin_allowed(f"https://{evil}.{sub}.example.com", "x", rules)
    assert not origin_allowed("https://example.com", "x", rules)
    assert not origin_allowed(f"https://{sub}example.com", "x", rules)
    assert not origin_allowed(f"https://{sub}.example.com.{evil}.net", "x", rules)
    assert not origin_allowed(f"http://{sub}.example.com", "x", rules), "scheme is part of it"
    assert not origin_allowed(f"https://{sub}.example.com:8443", "x", rules), "port 443 only"


def test_explicit_rules() -> None:
    rules = tuple(
        parse_origin_rule(r)
        for r in ("https://app.example.com", "http://[::1]:3000", "HTTP://Dev.Local:*")
    )
    allowed = (
        "https://app.example.com",
        "https://app.example.com:443",
        "https://APP.example.com",
        "http://[::1]:3000",
        "http://dev.local",
        "http://dev.local:1234",
    )
    for o in allowed:
        assert origin_allowed(o, "ticker.example.com", rules), o
    refused = (
        "http://app.example.com",
        "https://app.example.com:444",
        "http://[::1]:3001",
        "https://dev.local",
        "null",
        "https://app.example.com/path",
        "https://user@app.example.com",
        "not an origin",
        "",
        "https://*.example.com",
    )
    for o in refused:
        assert not origin_allowed(o, "ticker.example.com", rules), o
    assert origin_allowed("https://anything.example", "x", (parse_origin_rule("*"),))
    assert origin_allowed("null", "x", (parse_origin_rule("null"),))


@pytest.mark.parametrize(
    "bad", ["example.com", "https://", "https://a.com/x", "https://a.com:port", "://a", "ftp:/x"]
)
def test_bad_rules_are_refused(bad: str) -> None:
    with pytest.raises(AuthError):
        parse_origin_rule(bad)


def test_parse_origin_makes_default_ports_explicit() -> None:
    assert parse_origin("https://A.example.com") == ("https", "a.example.com", 443)
    assert parse_origin("http://a:8080") == ("http", "a", 8080)
    assert parse_origin("http://[::1]") == ("http", "[::1]", 80)
    assert parse_origin("null") == ("null", "", None)
    assert parse_origin("https://a.com?q") is None


# Hosts (DNS rebinding)

ipv4s = st.ip_addresses(v=4).map(str)
ipv6s = st.ip_addresses(v=6).map(lambda a: f"[{a}]")
optional_ports = st.none() | ports


def with_port(name: str, port: int | None) -> str:
    return name if port is None else f"{name}:{port}"


def not_an_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return True
    return False


names = hostnames.filter(not_an_ip)
configured = st.lists(hostnames, max_size=3).map(lambda hs: tuple(parse_public_host(h) for h in hs))


@settings(max_examples=300, deadline=None)
@given(ip=ipv4s | ipv6s, port=optional_ports, rules=configured)
def test_any_ip_literal_with_any_port_is_allowed(
    ip: str, port: int | None, rules: tuple[str, ...]
) -> None:
    # An address cannot be rebound: the server's own, or any other (it is not this server's
    # business which of its addresses a client used).
    assert host_allowed(with_port(ip, port), rules)
    assert host_allowed(with_port(ip, port), ())


@settings(max_examples=300, deadline=None)
@given(name=names, port=optional_ports, rules=configured)
def test_a_name_neither_configured_nor_localhost_is_refused(
    name: str, port: int | None, rules: tuple[str, ...]
) -> None:
    if name in rules or name == "localhost" or name.endswith(".localhost"):
        return
    assert not host_allowed(with_port(name, port), rules)
    assert not host_allowed(with_port(name.upper(), port), rules)


@settings(max_examples=300, deadline=None)
@given(name=names, sub=labels, port=optional_ports, others=configured)
def test_a_configured_name_is_allowed_in_any_case_and_port_and_only_it(
    name: str, sub: str, port: int | None, others: tuple[str, ...]
) -> None:
    rules = (*others, parse_public_host(name.upper()))
    assert host_allowed(with_port(name, port), rules)
    assert host_allowed(with_port(name.upper(), port), rules)
    assert host_allowed(with_port(name + ".", port), rules), "the absolute form"
    # (A composed name can spell an IP address, e.g. "0.0.0" + "0": always allowed.)
    if f"{sub}.{name}" not in rules and not_an_ip(f"{sub}.{name}"):
        assert not host_allowed(with_port(f"{sub}.{name}", port), rules), "not its subdomains"
    if f"{name}.{sub}" not in rules and not_an_ip(f"{name}.{sub}"):
        assert not host_allowed(with_port(f"{name}.{sub}", port), rules)
    wild = (parse_public_host(f"*.{name}"),)
    assert host_allowed(with_port(f"{sub}.{name}", port), wild)
    assert not host_allowed(with_port(name, port), wild), "*.name is the subdomains only"


@settings(max_examples=200, deadline=None)
@given(name=names, sub=labels, port=optional_ports)
def test_localhost_and_star(name: str, sub: str, port: int | None) -> None:
    for local in ("localhost", "LOCALHOST", f"{sub}.localhost", "localhost."):
        assert host_allowed(with_port(local, port), ())
    assert not host_allowed(with_port(f"localhost.{name}", port), ())
    assert host_allowed(with_port(name, port), ("*",)), "* is any Host"
    # Absent or malformed: refused; absent even with "*".
    for bad in (None, "", ":80", f"{name}:port", "::1", "[::1", "[not-an-ip]", "[127.0.0.1]"):
        assert not host_allowed(bad, ()), bad
    assert not host_allowed(None, ("*",)) and not host_allowed("", ("*",))


def test_host_name_for_the_message() -> None:
    assert host_name("Evil.Example:8080") == "evil.example"
    assert host_name("evil.example.") == "evil.example"
    assert host_name("[::1]:80") == "[::1]"
    assert host_name(None) == ""


@pytest.mark.parametrize(
    "bad", ["https://a.example", "a.example:443", "a.example/x", "", "a..b", "*.", "[::1"]
)
def test_bad_public_hosts_are_refused(bad: str) -> None:
    with pytest.raises(AuthError, match="public host"):
        parse_public_host(bad)
    with pytest.raises(AuthError, match="public host"):
        AuthConfig(public_hosts=(bad,))


def test_public_hosts_are_normalized() -> None:
    cfg = AuthConfig(public_hosts=("Ticker.Example.COM.", "*.Tenants.example", "[::1]", "*"))
    assert cfg.host_rules == ("ticker.example.com", "*.tenants.example", "[::1]", "*")


# Entitlements


@given(syms=st.lists(symbols, max_size=20), ent=st.frozensets(symbols, max_size=10))
def test_split_entitled_partitions_in_order(syms: list[str], ent: frozenset[str]) -> None:
    yes, no = split_entitled(syms, ent)
    assert sorted(yes + no) == sorted(syms)
    assert all(s in ent for s in yes) and not any(s in ent for s in no)
    assert yes == [s for s in syms if s in ent], "order kept"
    assert entitled_only(syms, ent) == yes
    assert all(permits(ent, s) for s in yes) and not any(permits(ent, s) for s in no)


@given(syms=st.lists(symbols, max_size=20))
def test_no_entitlements_means_everything(syms: list[str]) -> None:
    assert split_entitled(syms, None) == (syms, [])
    assert entitled_only(syms, None) == syms
    assert all(permits(None, s) for s in syms)
    assert news_visible(tuple(syms), None)


@given(tags=st.lists(symbols, max_size=5), ent=st.frozensets(symbols, max_size=5))
def test_news_visible_on_an_entitled_symbol_or_untagged(
    tags: list[str], ent: frozenset[str]
) -> None:
    assert news_visible(tuple(tags), ent) == (not tags or any(t in ent for t in tags))


def test_split_entitled_matches_the_upper_case_form() -> None:
    # Requests match symbols case-insensitively (docs/protocol.md), entitlements the same way.
    grant = verify_token(mint_token(SECRET, now=NOW, ttl=60, symbols=["aapl"]), SECRET, now=NOW)
    assert grant.symbols is not None
    assert split_entitled(["aapl", "AAPL", "msft"], grant.symbols) == (["aapl", "AAPL"], ["msft"])


# Tokens


@settings(max_examples=100, deadline=None)
@given(
    sub=st.none() | st.text(max_size=20),
    syms=st.none() | st.lists(symbols, max_size=8),
    ttl=st.floats(1, 10 * 365 * 86400),
)
def test_tokens_round_trip(sub: str | None, syms: list[str] | None, ttl: float) -> None:
    token = mint_token(SECRET, now=NOW, ttl=ttl, sub=sub, symbols=syms)
    grant = verify_token(token, SECRET, now=NOW)
    assert grant.sub == sub
    assert grant.expires is not None and NOW + ttl <= grant.expires < NOW + ttl + 1
    if syms is None:
        assert grant.symbols is None
    else:
        assert grant.symbols == frozenset(syms) | {s.upper() for s in syms}
    assert not grant.admin


@given(ttl=st.floats(1, 1e6), late=st.floats(0, 1e6))
def test_expired_tokens_are_refused(ttl: float, late: float) -> None:
    token = mint_token(SECRET, now=NOW, ttl=ttl)
    exp = verify_token(token, SECRET, now=NOW).expires
    assert exp is not None
    with pytest.raises(AuthError, match="expired"):
        verify_token(token, SECRET, now=exp + late)


def _unsigned(claims: dict[str, Any], header: dict[str, Any]) -> str:
    def b64(obj: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(orjson.dumps(obj)).rstrip(b"=").decode()

    return f"{b64(header)}.{b64(claims)}."


def test_forged_and_malformed_tokens_are_refused_without_echoing_them() -> None:
    good = mint_token(SECRET, now=NOW, ttl=60, symbols=["AAPL"])
    head, _, sig = good.split(".")
    claims = {"exp": NOW + 60, "symbols": "*"}
    widened = (
        head
        + "."
        + base64.urlsafe_b64encode(orjson.dumps(claims)).rstrip(b"=").decode()
        + "."
        + sig
    )
    forged = (
        mint_token("o" * 40, now=NOW, ttl=60),  # another secret
        widened,  # entitlements widened, old signature
        _unsigned(claims, {"alg": "none", "typ": "JWT"}),  # alg=none
        jwt.encode(claims, SECRET * 2, algorithm="HS512"),  # not the one algorithm we accept
        jwt.encode({"symbols": "*"}, SECRET, algorithm="HS256"),  # no exp
        jwt.encode({"exp": NOW + 60, "symbols": "AAPL"}, SECRET, algorithm="HS256"),
        jwt.encode({"exp": NOW + 60, "symbols": [1]}, SECRET, algorithm="HS256"),
        jwt.encode({"exp": NOW + 60, "sub": 7}, SECRET, algorithm="HS256"),
        jwt.encode({"exp": "soon"}, SECRET, algorithm="HS256"),
        "garbage",
        "",
        good[:-2],
    )
    for token in forged:
        with pytest.raises(AuthError) as err:
            verify_token(token, SECRET, now=NOW)
        if token:
            assert token not in str(err.value)


def signed_token(payload: bytes, secret: str = SECRET) -> str:
    """An HS256 token over ``payload`` as given (numbers no JSON encoder would write)."""

    def b64(data: bytes) -> bytes:
        return base64.urlsafe_b64encode(data).rstrip(b"=")

    signing = b64(b'{"alg":"HS256","typ":"JWT"}') + b"." + b64(payload)
    sig = hmac.new(secret.encode(), signing, hashlib.sha256).digest()
    return (signing + b"." + b64(sig)).decode()


@pytest.mark.parametrize(
    "payload",
    [
        b'{"exp": 1' + b"0" * 400 + b"}",
        b'{"exp": -1' + b"0" * 400 + b"}",
        b'{"exp": 1e308}',
        b'{"exp": 1e400}',
        b'{"exp": -1e400}',
        b'{"exp": NaN}',
        b'{"exp": 253402300800}',
        b'{"exp": [1]}',
        b'{"exp": true}',
        b'{"exp": 4102444800, "nbf": 1e400}',
        b'{"exp": 4102444800, "nbf": "x"}',
        b'{"exp": 4102444800, "x": ' + b"[" * 5000 + b"]" * 5000 + b"}",
    ],
)
def test_absurd_claims_are_an_auth_error(payload: bytes) -> None:
    with pytest.raises(AuthError):
        verify_token(signed_token(payload), SECRET, now=NOW)


def test_exp_up_to_the_year_9999() -> None:
    assert verify_token(signed_token(b'{"exp": 253402300799}'), SECRET, now=NOW).expires == MAX_EXP
    with pytest.raises(AuthError, match="year 9999"):
        verify_token(signed_token(b'{"exp": 253402300800}'), SECRET, now=NOW)
    with pytest.raises(AuthError, match="year 9999"):
        mint_token(SECRET, now=NOW, ttl=1e300)


def test_star_in_the_symbols_claim_means_every_symbol() -> None:
    for syms in (["*"], None):
        token = mint_token(SECRET, now=NOW, ttl=60, symbols=syms)
        assert verify_token(token, SECRET, now=NOW).symbols is None
    raw = jwt.encode({"exp": NOW + 60, "symbols": "*"}, SECRET, algorithm="HS256")
    assert verify_token(raw, SECRET, now=NOW).symbols is None


def test_mint_refuses_short_secrets_and_bad_ttls() -> None:
    with pytest.raises(AuthError, match="at least 32 bytes"):
        mint_token("short", now=NOW, ttl=60)
    for ttl in (0.0, -1.0, float("inf"), float("nan")):
        with pytest.raises(AuthError):
            mint_token(SECRET, now=NOW, ttl=ttl)


# Admin token and settings


@given(a=st.text(min_size=1), b=st.text(min_size=1))
def test_admin_ok_is_equality(a: str, b: str) -> None:
    assert admin_ok(a, a)
    assert admin_ok(a, b) == (a == b)
    assert not admin_ok(None, a) and not admin_ok(a, None) and not admin_ok(None, None)


def test_admin_ok_compares_in_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    assert admin_ok("x" * 20, "x" * 20) and not admin_ok("y" * 20, "x" * 20)
    assert calls == [(b"x" * 20, b"x" * 20), (b"y" * 20, b"x" * 20)]


def test_bearer() -> None:
    assert bearer("Bearer abc.def") == "abc.def"
    assert bearer("bearer   abc ") == "abc"
    assert bearer("Basic abc") is None
    assert bearer("Bearer ") is None
    assert bearer(None) is None and bearer("") is None


def test_auth_config_checks_and_hides_secrets() -> None:
    cfg = AuthConfig(admin_token="a" * 20, token_secret="s" * 32, require_token=True)
    assert "a" * 20 not in repr(cfg) and "s" * 32 not in repr(cfg)
    assert len(cfg.rules) == len(DEFAULT_ORIGINS)
    with pytest.raises(AuthError, match="admin token must be at least 16") as err:
        AuthConfig(admin_token="short-secret")
    assert "short-secret" not in str(err.value)
    with pytest.raises(AuthError, match="at least 32 bytes"):
        AuthConfig(token_secret="s" * 31)
    with pytest.raises(AuthError, match="needs a token secret"):
        AuthConfig(require_token=True)
    with pytest.raises(AuthError, match="allowed origin"):
        AuthConfig(allow_origins=("example.com",))
