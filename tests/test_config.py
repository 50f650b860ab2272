"""ticker.config: the config file, the environment and the flags -> one frozen settings object.

Pure, so these tests are synchronous and start nothing. The CLI's own tests (test_cli.py,
test_auth_cli.py, test_tls.py, test_limits.py) run the same through ``python -m ticker``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, strategies as st

from ticker.config import (
    AUTH_KEYS,
    SERVER_KEYS,
    ConfigError,
    HubConfig,
    RecordConfig,
    ServerConfig,
    Settings,
    Supervision,
    TlsFiles,
    parse_toml,
    record_settings,
    replay_settings,
    serve_settings,
    split_server_table,
    token_secret,
)
from ticker.core.auth import AuthConfig

SECRET = "config-test-secret-" + "s" * 32
OTHER_SECRET = "config-other-secret-" + "o" * 32
ADMIN = "config-admin-" + "a" * 16


def test_nothing_given_is_the_defaults() -> None:
    assert serve_settings({}, {}, {}) == Settings()
    assert Settings().feeds == ("sim", "simnews") and Settings().tls is None


def test_the_server_table_splits_into_what_the_hub_and_the_server_use() -> None:
    hub_keys = {f.name for f in dataclasses.fields(HubConfig)}
    server_keys = {f.name for f in dataclasses.fields(ServerConfig)}
    assert not hub_keys & server_keys
    assert hub_keys | server_keys == set(SERVER_KEYS)
    for net_only in ("max_connections", "max_connections_per_ip", "trusted_proxies"):
        assert net_only in server_keys
    for net_only in ("http_idle_s", "socket_send_buffer", "max_frame_bytes", "heartbeat_s"):
        assert net_only in server_keys
    hub, server = split_server_table({"rate": 3.0, "max_connections": 7, "heartbeat_s": 1.5})
    assert (hub.rate, server.max_connections, server.heartbeat_s) == (3.0, 7, 1.5)
    assert hub == HubConfig(rate=3.0)


# One precedence rule: a flag given > the environment > the config file > the default

_INT_KEYS = sorted(k for k, v in SERVER_KEYS.items() if type(v) is int)


@given(
    key=st.sampled_from(_INT_KEYS),
    file_value=st.none() | st.integers(1, 10_000),
    flag_value=st.none() | st.integers(1, 10_000),
)
def test_a_flag_beats_the_file_which_beats_the_default(
    key: str, file_value: int | None, flag_value: int | None
) -> None:
    file = {} if file_value is None else {"server": {key: file_value}}
    flags = {} if flag_value is None else {"server": {key: flag_value}}
    s = serve_settings(file, flags, {})
    want = next(v for v in (flag_value, file_value, SERVER_KEYS[key]) if v is not None)
    got = getattr(s.hub, key) if key in HubConfig.__dataclass_fields__ else getattr(s.server, key)
    assert got == want
    others = {k: v for k, v in SERVER_KEYS.items() if k != key}
    assert {
        k: getattr(s.hub if k in HubConfig.__dataclass_fields__ else s.server, k) for k in others
    } == others


def test_precedence_of_each_kind_of_setting(tmp_path: Path) -> None:
    file = {
        "port": 9000,
        "throttle_ms": 250,
        "feeds": ["sim:rate=5", {"name": "simnews", "rate": "3"}],
        "server": {"throttle_ms": 50, "news_retain": 5, "max_connections": 9},
        "auth": {"token_secret": SECRET, "allow_origins": ["https://a.example"]},
        "quarantine_after": 7,
        "tls_cert": "c.pem",
        "tls_key": "k.pem",
    }
    s = serve_settings(file, {}, {}, base=tmp_path)
    assert s.port == 9000 and s.feeds == ("sim:rate=5", "simnews:rate=3")
    assert s.hub.throttle_ms == 250, "the top-level throttle_ms over [server]'s"
    assert (s.hub.news_retain, s.server.max_connections) == (5, 9)
    assert s.auth.token_secret == SECRET and s.auth.allow_origins == ("https://a.example",)
    assert s.supervision == Supervision(quarantine_after=7)
    assert s.tls == TlsFiles(tmp_path / "c.pem", tmp_path / "k.pem"), "relative to the file"

    env = {"TICKER_TOKEN_SECRET": OTHER_SECRET, "TICKER_ADMIN_TOKEN": ADMIN}
    flags: dict[str, Any] = {
        "port": 0,
        "throttle_ms": 40.0,
        "feeds": ["sim:symbols=KO"],
        "server": {"max_connections": 3},
        "auth": {"allow_origins": ["http://localhost:*"]},
        "quarantine_window": 12.0,
        "tls_cert": Path("flag.pem"),
    }
    s = serve_settings(file, flags, env, base=tmp_path)
    assert s.port == 0 and s.feeds == ("sim:symbols=KO",)
    assert s.hub.throttle_ms == 40.0 and s.hub.news_retain == 5, "file keys no flag names stay"
    assert s.server.max_connections == 3
    assert (s.auth.token_secret, s.auth.admin_token) == (OTHER_SECRET, ADMIN), "env over file"
    assert s.auth.allow_origins == ("http://localhost:*",), "a list is replaced, not extended"
    assert s.supervision == Supervision(quarantine_after=7, quarantine_window=12.0)
    assert s.tls == TlsFiles(Path("flag.pem"), tmp_path / "k.pem")
    empty = serve_settings(file, {}, {"TICKER_TOKEN_SECRET": ""}, base=tmp_path)
    assert empty.auth.token_secret == SECRET, "an empty variable gives nothing"


def test_flag_only_settings_and_the_served_name() -> None:
    flags = {"host": "ticker.lan", "record": Path("rec"), "rotate_mb": 2.0, "stall_timeout": 9.0}
    s = serve_settings({}, flags, {})
    assert s.record == RecordConfig(Path("rec"), rotate_mb=2.0)
    assert s.record.rotate_bytes == 2 * 1024 * 1024
    assert s.supervision.stall_timeout == 9.0
    assert s.auth.public_hosts == ("ticker.lan",), "the name it binds to is served"
    with pytest.raises(ConfigError, match="unknown keys"):
        serve_settings({"record": "rec"}, {}, {})  # a flag, not a config key


def test_record_replay_and_token_settings() -> None:
    r = record_settings({"feeds": ["sim"], "out": Path("o"), "duration": 2.0, "rotate_s": 60.0})
    assert (r.feeds, r.out, r.duration) == (("sim",), RecordConfig(Path("o"), rotate_s=60.0), 2.0)
    p = replay_settings({"path": Path("d.csv"), "speed": "max", "loop": True, "port": 0}, {})
    assert p.options == {"path": "d.csv", "speed": "max", "loop": "yes"}
    assert (p.host, p.port, p.check, p.auth) == ("127.0.0.1", 0, False, AuthConfig())
    assert token_secret({"auth": {"token_secret": SECRET}}, {}) == SECRET
    assert token_secret({"auth": {"token_secret": SECRET}}, {"TICKER_TOKEN_SECRET": "x"}) == "x"


# Errors: one line naming the setting, never a secret


@pytest.mark.parametrize(
    ("file", "flags", "env", "message"),
    [
        ({"colour": "red"}, {}, {}, "config: unknown keys ['colour']"),
        ({"server": {"bogus": 1}}, {}, {}, "config [server]: unknown keys ['bogus']"),
        ({"server": 5}, {}, {}, "config 'server' must be a table"),
        ({"auth": 5}, {}, {}, "config 'auth' must be a table"),
        ({"feeds": "sim"}, {}, {}, "config 'feeds' must be a list"),
        ({"feeds": [3]}, {}, {}, "config 'feeds' entry 3 is not a spec"),
        ({"port": "80"}, {}, {}, "port must be 0..65535, got '80'"),
        ({}, {"port": 70000}, {}, "port must be 0..65535, got 70000"),
        ({}, {"host": ""}, {}, "host must be a name or an address"),
        ({"bus": 1}, {}, {}, "config 'bus' and 'role' must be strings"),
        ({"throttle_ms": "fast"}, {}, {}, "bad server setting: throttle_ms"),
        ({"server": {"rate": 0}}, {}, {}, "rate must be > 0"),
        ({}, {"server": {"trusted_proxies": ["nonsense"]}}, {}, "address or network"),
        ({"quarantine_after": -2}, {}, {}, "quarantine_after must be an integer >= 0"),
        ({}, {"quarantine_window": 0.0}, {}, "quarantine_window must be a number > 0"),
        ({}, {"stall_timeout": -1.0}, {}, "stall_timeout must be a number >= 0"),
        ({"tls_cert": 5}, {}, {}, "config 'tls_cert' must be a file name"),
        ({}, {"tls_key": Path("k.pem")}, {}, "--tls-cert and --tls-key go together"),
        ({}, {"record": Path("r"), "rotate_s": 0.0}, {}, "--rotate-mb and --rotate-s must be > 0"),
        ({"auth": {"require_token": "yes"}}, {}, {}, "must be true or false"),
        ({"auth": {"token_secret": 5}}, {}, {}, "config [auth] token_secret must be a string"),
        ({"auth": {"public_hosts": "x"}}, {}, {}, "public_hosts must be a list of strings"),
        ({}, {}, {"TICKER_ADMIN_TOKEN": "short-admin"}, "at least 16 characters"),
        ({"auth": {"token_secret": "short-secret"}}, {}, {}, "at least 32 bytes"),
    ],
)
def test_a_bad_setting_is_one_line_naming_it(
    file: dict[str, Any], flags: dict[str, Any], env: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError) as err:
        serve_settings(file, flags, env)
    text = str(err.value)
    assert message in text and "\n" not in text
    assert "short-admin" not in text and "short-secret" not in text


def test_other_errors() -> None:
    with pytest.raises(ConfigError, match="not valid TOML"):
        parse_toml(b"feeds = [\n", "t.toml")
    with pytest.raises(ConfigError, match="not valid TOML: not UTF-8"):
        parse_toml(b"host = '\xff'\n", "t.toml")
    assert parse_toml(b"port = 1\n", "t.toml") == {"port": 1}
    with pytest.raises(ConfigError, match="--duration must be > 0"):
        record_settings({"feeds": ["sim"], "out": Path("o"), "duration": 0.0})
    with pytest.raises(ConfigError, match="no token secret"):
        token_secret({}, {})
    with pytest.raises(ConfigError, match=r"config \[auth\]: unknown keys \['bogus'\]"):
        token_secret({"auth": {"bogus": 1}}, {"TICKER_TOKEN_SECRET": SECRET})
    assert {"admin_token", "token_secret", "public_hosts"} <= AUTH_KEYS
