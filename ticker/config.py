"""Settings: the config file (TOML), the environment and the command-line flags, merged into one
frozen object per command.

Pure; no I/O: the CLI reads the file and hands over its bytes, the flags it was given and
``os.environ``; this module merges and checks them. One precedence rule, applied in one place
(:func:`_merge`): a flag given > the environment (the two secrets only) > the config file > the
defaults declared here. A bad value is a :class:`ConfigError` whose one-line message names the
setting (never a secret's value); the CLI prints it and exits 2.

The config file (README "Config file"): top-level :data:`FILE_KEYS`; a ``[server]`` table with
every field of :class:`HubConfig` and :class:`ServerConfig` (one table for users, two objects for
the code: the hub gets only what it uses); an ``[auth]`` table with :data:`AUTH_KEYS`.

Over 500 lines on purpose: every setting's default, check and reference documentation, with the
one merge that applies to them all, in one place; a split would put the rule apart from its cases.
"""

from __future__ import annotations

import dataclasses
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from ticker.core.auth import AuthConfig, AuthError, host_allowed, parse_public_host
from ticker.core.bars import INTERVALS
from ticker.core.limits import parse_networks

__all__ = [
    "AUTH_KEYS",
    "DEFAULT_FEEDS",
    "ENV_ADMIN_TOKEN",
    "ENV_TOKEN_SECRET",
    "FILE_KEYS",
    "MAX_TIME_SKEW_S",
    "QUARANTINE_AFTER",
    "QUARANTINE_WINDOW",
    "SERVER_KEYS",
    "ConfigError",
    "HubConfig",
    "RecordConfig",
    "RecordSettings",
    "ReplaySettings",
    "ServerConfig",
    "Settings",
    "Supervision",
    "TlsFiles",
    "parse_toml",
    "record_settings",
    "replay_settings",
    "serve_settings",
    "split_server_table",
    "token_secret",
    "with_served_name",
]

DEFAULT_FEEDS = ("sim", "simnews")
ENV_ADMIN_TOKEN = "TICKER_ADMIN_TOKEN"
ENV_TOKEN_SECRET = "TICKER_TOKEN_SECRET"
QUARANTINE_AFTER = 5
"""Default: failures within :data:`QUARANTINE_WINDOW` seconds that quarantine a feed."""
QUARANTINE_WINDOW = 60.0
"""Default: the sliding window (seconds) failures are counted in."""
MAX_TIME_SKEW_S = 7 * 86_400.0
"""Default: how far (seconds) a live feed's event time may be from the wall clock."""

FILE_KEYS = frozenset(
    "host port feeds throttle_ms server bus role auth tls_cert tls_key quarantine_after "
    "quarantine_window max_time_skew_s history".split()
)
"""Top-level keys of the config file."""
AUTH_KEYS = frozenset(f.name for f in fields(AuthConfig) if f.init)
"""Keys of its ``[auth]`` table: the settings of :class:`~ticker.core.auth.AuthConfig`."""


class ConfigError(ValueError):
    """A bad setting: one line naming it (the CLI prints it and exits 2)."""


def _check_numbers(config: Any, skip: tuple[str, ...] = ()) -> None:
    """Every field of a limits dataclass is a number >= 0, an integer where its default is one.

    Settings come from TOML and flags: a wrong type or sign is a usage error at start-up, not a
    TypeError in the middle of serving.
    """
    for f in fields(config):
        if f.name in skip:
            continue
        v = getattr(config, f.name)
        if isinstance(v, bool) or not isinstance(v, int | float) or not v >= 0:
            raise ValueError(f"{f.name} must be a number >= 0, got {v!r}")
        if type(f.default) is int and not isinstance(v, int):
            raise ValueError(f"{f.name} must be an integer, got {v!r}")


@dataclass(frozen=True, slots=True)
class HubConfig:
    """What the hub (the broadcaster) needs: windows, news, flow control, per-connection limits.

    Pure. Its fields are ``[server]`` keys of ``--config`` (and ``ticker serve`` flags).

    Attributes:
        throttle_ms: default window for new connections.
        max_throttle_ms: larger requested windows are clamped to this.
        news_retain: news items kept for ``since`` replay and ``/api/news``.
        max_symbols_per_request: a larger ``symbols``/``topics`` list is ``too_many_symbols``.
        pause_bytes: a connection with more unsent bytes than this (in our buffer, beyond what
            the kernel took) is *paused*: no deltas or live news until they are sent; then it
            gets one delta of what changed since its last frame and the news it missed.
        flow_hold_ms: flow control of window-0 connections: after a frame the hub sends a ping
            (one outstanding at a time). While its pong is missing for longer than this, the
            client is still reading older frames, so it is *held*: what arrives meanwhile is
            conflated, and sent once the pong is back as one delta of what changed. A client
            that keeps up never notices. 0 disables flow control.
        max_buffer_bytes: the bound on a connection's unsent bytes while replaying news or
            catching up (a replay continues once the buffer drains).
        slow_close_after: seconds paused without draining before a consumer is closed with 1013.
        rate: control messages per second per connection (token bucket refill).
        burst: control messages a connection may send at once (bucket size).
        bars: closed bars kept per symbol and interval (``{"1s": 3600, ...}``; intervals not
            named keep :data:`ticker.core.bars.DEFAULT_RETAIN`: 1 h of ``1s`` ... 20 years of
            ``1d``). Memory: 48 bytes a bar.
        max_bar_streams: live ``bars`` streams (symbol, interval) a connection may hold.
        max_symbols_per_connection: symbols a connection's subscription may name: its symbols,
            or while on ``"*"`` the ones it unsubscribed (``"*"`` itself counts 0). A request
            that would go over is refused whole with ``too_many_symbols``. 0: no limit.
        bandwidth_bps: the bandwidth cap of a new connection, bytes per second of its quote
            frames (``throttle`` ``max_bps`` changes it; ticker.hub.pacing). 0: none.
        max_bandwidth_bps: the highest cap a connection may ask for (higher, or none, is clamped
            to it). 0: no maximum (a connection may be uncapped).

    Raises:
        ValueError: a field that is not a number >= 0 (an integer where the default is one), a
            rate <= 0 or a burst < 1.
    """

    throttle_ms: float = 100.0
    max_throttle_ms: float = 10_000.0
    news_retain: int = 10_000
    max_symbols_per_request: int = 1_000
    pause_bytes: int = 0
    flow_hold_ms: float = 20.0
    max_buffer_bytes: int = 1024 * 1024
    slow_close_after: float = 10.0
    rate: float = 20.0
    burst: float = 60.0
    bars: Mapping[str, int] = field(default_factory=dict)
    max_bar_streams: int = 16
    max_symbols_per_connection: int = 2_000
    bandwidth_bps: int = 0
    max_bandwidth_bps: int = 0

    def __post_init__(self) -> None:
        _check_numbers(self, skip=("bars",))
        bars: Any = self.bars
        if not isinstance(bars, Mapping) or any(
            k not in INTERVALS or isinstance(v, bool) or not isinstance(v, int) or v < 1
            for k, v in bars.items()
        ):
            raise ValueError(
                f"bars must map intervals ({', '.join(INTERVALS)}) to bar counts >= 1, got {bars!r}"
            )
        if self.rate <= 0 or self.burst < 1:
            raise ValueError(f"rate must be > 0 and burst >= 1, got {self.rate!r}, {self.burst!r}")


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """What the HTTP/WebSocket server needs: connection limits, socket and frame bounds, timers.

    Pure. Its fields are ``[server]`` keys of ``--config`` (and ``ticker serve`` flags).

    Attributes:
        max_frame_bytes: inbound frames over this are closed with 1009.
        socket_send_buffer: SO_SNDBUF of each WebSocket (0 = the kernel's autotuning); small, so
            a reader that falls behind shows up as unsent bytes within a frame or two.
        heartbeat_s: after this many seconds with nothing received from a connection, the
            server pings it; no pong (nor anything else) within half as long closes it, so a dead
            peer is dropped within 1.6 x ``heartbeat_s`` of its last frame (ticker.net.wsconn).
        max_connections: WebSocket connections in total (handshakes in flight included); over
            it, the upgrade is refused with HTTP 503 and ``Retry-After``. 0: no limit.
        max_connections_per_ip: WebSocket connections per client address (IPv6: per /64); over
            it, HTTP 429 and ``Retry-After``. 0: no limit.
        http_idle_s: an HTTP connection without a complete request for this long (from its
            start, or since its last response) is closed: a slow or half-open handshake cannot
            hold a socket for long (``ticker serve`` only). 0: never.
        trusted_proxies: addresses or networks of reverse proxies whose ``X-Forwarded-For``
            names the client for the per-address limit (empty: the peer address counts).
        reuse_port: bind with SO_REUSEPORT, so that several ``ticker serve`` processes (edges of
            one bus) listen on the same port and the kernel spreads connections over them
            (``ticker serve`` only; Linux and the BSDs).

    Raises:
        ValueError: a number field that is not a number >= 0 (an integer where the default is
            one), ``trusted_proxies`` that is not a list of addresses or networks, or
            ``reuse_port`` that is not a boolean.
    """

    max_frame_bytes: int = 64 * 1024
    socket_send_buffer: int = 32 * 1024
    heartbeat_s: float = 20.0
    max_connections: int = 20_000
    max_connections_per_ip: int = 1_000
    http_idle_s: float = 30.0
    trusted_proxies: tuple[str, ...] = ()
    reuse_port: bool = False

    def __post_init__(self) -> None:
        proxies: Any = self.trusted_proxies  # TOML gives a list; anything else is an error
        if isinstance(proxies, str) or not isinstance(proxies, list | tuple):
            raise ValueError(f"trusted_proxies must be a list of addresses, got {proxies!r}")
        parse_networks(proxies)  # raises ValueError naming a bad entry
        object.__setattr__(self, "trusted_proxies", tuple(proxies))
        if not isinstance(self.reuse_port, bool):
            raise ValueError(f"reuse_port must be true or false, got {self.reuse_port!r}")
        _check_numbers(self, skip=("trusted_proxies", "reuse_port"))


SERVER_KEYS: Mapping[str, Any] = {
    f.name: f.default if f.default_factory is dataclasses.MISSING else f.default_factory()
    for cls in (HubConfig, ServerConfig)
    for f in fields(cls)
}
"""The keys of the ``[server]`` table and their defaults: :class:`HubConfig` then
:class:`ServerConfig`."""


def split_server_table(table: Mapping[str, Any]) -> tuple[HubConfig, ServerConfig]:
    """A ``[server]`` table (or keyword limits) -> the hub's settings and the server's.

    Raises:
        ConfigError: an unknown key (the message lists the valid ones), or a bad value.
    """
    bad = set(table) - set(SERVER_KEYS)
    if bad:
        raise ConfigError(
            f"config [server]: unknown keys {sorted(bad)}; valid: {sorted(SERVER_KEYS)}"
        )
    hub_keys = {f.name for f in fields(HubConfig)}
    try:
        hub = HubConfig(**{k: v for k, v in table.items() if k in hub_keys})
        return hub, ServerConfig(**{k: v for k, v in table.items() if k not in hub_keys})
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"bad server setting: {exc}") from exc


@dataclass(frozen=True, slots=True)
class Supervision:
    """How the supervisor treats failing feeds (ticker.bus.supervisor)."""

    stall_timeout: float | None = None  # s of silence (None: the feed's own, else never; 0: never)
    quarantine_after: int = QUARANTINE_AFTER  # failures in the window that stop it (0: never)
    quarantine_window: float = QUARANTINE_WINDOW  # s
    # Event times further than this from the wall clock are dropped as implausible (a feed's ts
    # in seconds, or in microseconds); 0: never. Replays (their own clock) are not checked.
    max_time_skew_s: float = MAX_TIME_SKEW_S

    def __post_init__(self) -> None:
        # From TOML and flags: the declared types are what is checked here, not given.
        after: Any = self.quarantine_after
        window: Any = self.quarantine_window
        stall: Any = self.stall_timeout
        if isinstance(after, bool) or not isinstance(after, int) or after < 0:
            raise ConfigError(f"quarantine_after must be an integer >= 0, got {after!r}")
        if isinstance(window, bool) or not isinstance(window, int | float) or not window > 0:
            raise ConfigError(f"quarantine_window must be a number > 0, got {window!r}")
        if stall is not None and not stall >= 0:
            raise ConfigError(f"stall_timeout must be a number >= 0, got {stall!r}")
        skew: Any = self.max_time_skew_s
        if isinstance(skew, bool) or not isinstance(skew, int | float) or not skew >= 0:
            raise ConfigError(f"max_time_skew_s must be a number >= 0, got {skew!r}")
        object.__setattr__(self, "quarantine_window", float(window))


@dataclass(frozen=True, slots=True)
class RecordConfig:
    """Where and how events are recorded (ticker.store.recorder)."""

    directory: Path  # of the Parquet files
    rotate_mb: float = 64.0  # a new file after this many MiB of data
    rotate_s: float = 3600.0  # ... or this many seconds

    def __post_init__(self) -> None:
        if not (self.rotate_mb > 0 and self.rotate_s > 0):
            raise ConfigError("--rotate-mb and --rotate-s must be > 0")

    @property
    def rotate_bytes(self) -> int:
        return int(self.rotate_mb * 1024 * 1024)


@dataclass(frozen=True, slots=True)
class TlsFiles:
    """The server's certificate chain and its private key (PEM files)."""

    cert: Path
    key: Path


def _check_address(host: Any, port: Any) -> None:
    if not isinstance(port, int) or not 0 <= port <= 65535:
        raise ConfigError(f"port must be 0..65535, got {port!r}")
    if not isinstance(host, str) or not host:
        raise ConfigError(f"host must be a name or an address, got {host!r}")


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything ``ticker serve`` runs with."""

    host: str = "127.0.0.1"  # the address to bind
    port: int = 8080  # 0: a free one
    feeds: tuple[str, ...] = DEFAULT_FEEDS  # specs, name[:key=value,...]
    hub: HubConfig = field(default_factory=HubConfig)
    server: ServerConfig = field(default_factory=ServerConfig)
    auth: AuthConfig = field(default_factory=AuthConfig)  # origins, tokens, public host names
    supervision: Supervision = field(default_factory=Supervision)
    bus: str = "memory://"  # or a redis:// / rediss:// URL
    role: str = "all"  # or ingest, edge (create_app checks it)
    tls: TlsFiles | None = None  # None: plain HTTP
    record: RecordConfig | None = None  # None: no recording
    history: Path | None = None  # recordings to load bars from at start (ticker.store.load)

    def __post_init__(self) -> None:
        _check_address(self.host, self.port)
        bus: Any = self.bus  # from TOML: the declared type is what is checked here
        if not isinstance(bus, str) or not isinstance(self.role, str):
            raise ConfigError("config 'bus' and 'role' must be strings")


@dataclass(frozen=True, slots=True)
class RecordSettings:
    """Everything ``ticker record`` runs with (``duration`` None: until a signal or the end)."""

    feeds: tuple[str, ...]
    out: RecordConfig
    duration: float | None = None
    supervision: Supervision = field(default_factory=Supervision)


@dataclass(frozen=True, slots=True)
class ReplaySettings:
    """Everything ``ticker replay`` runs with: the replay feed's options, where to serve it, and
    access from the environment only (``TICKER_ADMIN_TOKEN``/``TICKER_TOKEN_SECRET``)."""

    options: Mapping[str, str]
    host: str = "127.0.0.1"
    port: int = 8080
    check: bool = False
    auth: AuthConfig = field(default_factory=AuthConfig)

    def __post_init__(self) -> None:
        _check_address(self.host, self.port)


# Reading the file


def parse_toml(data: bytes, name: str) -> dict[str, Any]:
    """The config file's table from its bytes; ``name`` is what error messages call it.

    Raises:
        ConfigError: not UTF-8, or not valid TOML.
    """
    try:
        return tomllib.loads(data.decode())
    except UnicodeDecodeError as exc:
        raise ConfigError(f"config {name} is not valid TOML: not UTF-8 ({exc.reason})") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config {name} is not valid TOML: {exc}") from exc


def _table(file: Mapping[str, Any], key: str, valid: frozenset[str] | Mapping[str, Any]) -> Any:
    """The ``[key]`` table of the file, its keys checked against ``valid``."""
    table = file.get(key, {})
    if not isinstance(table, dict):
        raise ConfigError(f"config {key!r} must be a table")
    bad = set(table) - set(valid)
    if bad:
        raise ConfigError(f"config [{key}]: unknown keys {sorted(bad)}; valid: {sorted(valid)}")
    return table


def _file_feeds(raw: Any) -> list[str]:
    """``feeds = ["sim:rate=10", {name = "simnews", rate = "5"}]`` -> SPEC strings."""
    if not isinstance(raw, list):
        raise ConfigError("config 'feeds' must be a list of specs or tables")
    specs: list[str] = []
    for item in raw:
        if isinstance(item, str):
            specs.append(item)
        elif isinstance(item, dict) and isinstance(item.get("name"), str):
            opts = ",".join(f"{k}={v}" for k, v in item.items() if k != "name")
            specs.append(item["name"] + (":" + opts if opts else ""))
        else:
            raise ConfigError(f"config 'feeds' entry {item!r} is not a spec or a table with name")
    return specs


def _file_layer(file: Mapping[str, Any], base: Path) -> dict[str, Any]:
    """The config file's settings, checked for unknown keys and shapes, in the merge's form:
    feed tables as SPEC strings, TLS files relative to the file's directory ``base``."""
    unknown = set(file) - FILE_KEYS
    if unknown:
        raise ConfigError(f"config: unknown keys {sorted(unknown)}; valid: {sorted(FILE_KEYS)}")
    layer = dict(file)
    layer["server"] = _table(file, "server", SERVER_KEYS)
    layer["auth"] = _table(file, "auth", AUTH_KEYS)
    if "feeds" in file:
        layer["feeds"] = _file_feeds(file["feeds"])
    for key in ("tls_cert", "tls_key", "history"):
        if key in file:
            if not isinstance(file[key], str):
                raise ConfigError(f"config {key!r} must be a file name")
            layer[key] = base / file[key]
    return layer


def _env_layer(env: Mapping[str, str]) -> dict[str, Any]:
    """The secrets the environment gives (an empty variable gives nothing)."""
    secrets = {"admin_token": env.get(ENV_ADMIN_TOKEN), "token_secret": env.get(ENV_TOKEN_SECRET)}
    return {"auth": {k: v for k, v in secrets.items() if v}}


def _merge(*layers: Mapping[str, Any]) -> dict[str, Any]:
    """The precedence rule: later layers win, key by key, within tables too (``[server]``,
    ``[auth]``); a list (``feeds``, ``allow_origins``) is replaced whole, never appended to."""
    out: dict[str, Any] = {}
    for layer in layers:
        for key, value in layer.items():
            if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
                out[key] = {**out[key], **value}
            else:
                out[key] = value
    return out


# Building the objects


def _auth(table: Mapping[str, Any]) -> AuthConfig:
    """:class:`AuthConfig` from a merged ``[auth]`` table; errors never show a secret."""
    for name in ("admin_token", "token_secret"):
        v = table.get(name)
        if v is not None and not isinstance(v, str):
            raise ConfigError(f"config [auth] {name} must be a string")
    require = table.get("require_token", False)
    local_replay = table.get("local_replay", True)
    if not isinstance(require, bool) or not isinstance(local_replay, bool):
        raise ConfigError("config [auth] require_token and local_replay must be true or false")
    lists: dict[str, tuple[str, ...]] = {}
    for name in ("allow_origins", "public_hosts"):
        v = table.get(name)
        if v is None:
            continue
        if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
            raise ConfigError(f"config [auth] {name} must be a list of strings")
        lists[name] = tuple(v)
    try:
        return AuthConfig(
            admin_token=table.get("admin_token"),
            token_secret=table.get("token_secret"),
            require_token=require,
            local_replay=local_replay,
            **lists,
        )
    except AuthError as exc:  # the message names the setting, never its value
        raise ConfigError(str(exc)) from exc


def with_served_name(auth: AuthConfig, bind: str) -> AuthConfig:
    """``auth`` with the name the server binds to (when it is a name, not an address) among the
    public hosts: clients that reach the server by it are not rebinding anything."""
    try:
        name = parse_public_host(bind)
    except AuthError:
        return auth  # an IPv6 address, or nothing a browser could put in Host
    if host_allowed(name, auth.host_rules):
        return auth  # an IPv4 address, localhost, or listed already
    return dataclasses.replace(auth, public_hosts=(*auth.public_hosts, name))


def _supervision(s: Mapping[str, Any]) -> Supervision:
    keys = ("stall_timeout", "quarantine_after", "quarantine_window", "max_time_skew_s")
    picked = {k: s[k] for k in keys if k in s}
    return Supervision(**picked)


def _tls(s: Mapping[str, Any]) -> TlsFiles | None:
    cert, key = s.get("tls_cert"), s.get("tls_key")
    if cert is None and key is None:
        return None
    if cert is None or key is None:
        raise ConfigError("--tls-cert and --tls-key go together")
    return TlsFiles(Path(cert), Path(key))


def _record(directory: Path, s: Mapping[str, Any]) -> RecordConfig:
    picked = {k: s[k] for k in ("rotate_mb", "rotate_s") if k in s}
    return RecordConfig(directory, **picked)


def serve_settings(
    file: Mapping[str, Any],
    flags: Mapping[str, Any],
    env: Mapping[str, str],
    *,
    base: Path | None = None,
) -> Settings:
    """``ticker serve``'s settings from its config file, flags and environment.

    Args:
        file: the config file's table (:func:`parse_toml`); empty without ``--config``.
        flags: the flags given (never a default), shaped like the file: ``{"port": 0,
            "server": {"rate": 3.0}, "auth": {...}}``; besides the file's keys, the flag-only
            ``stall_timeout``, ``record``, ``rotate_mb`` and ``rotate_s``. ``history`` implies
            ``record`` into the same directory unless ``record`` names another one.
        env: the environment (``TICKER_ADMIN_TOKEN``, ``TICKER_TOKEN_SECRET``).
        base: the config file's directory: its ``tls_cert``/``tls_key`` are relative to it.

    Raises:
        ConfigError: any bad setting, one line.
    """
    s = _merge(_file_layer(file, base or Path()), _env_layer(env), flags)
    given: dict[str, Any] = {k: s[k] for k in ("host", "port", "bus", "role") if k in s}
    if "feeds" in s:
        given["feeds"] = tuple(s["feeds"])
    server_table = dict(s.get("server", {}))
    if "throttle_ms" in s:  # the top-level key (and --throttle-ms) over [server]'s
        server_table["throttle_ms"] = s["throttle_ms"]
    hub, server = split_server_table(server_table)
    history = None if s.get("history") is None else Path(s["history"])
    # What is served is recorded where it is loaded from, so the next start has it too.
    record = s.get("record") if s.get("record") is not None else history
    settings = Settings(
        **given,
        hub=hub,
        server=server,
        supervision=_supervision(s),
        tls=_tls(s),
        record=None if record is None else _record(Path(record), s),
        history=history,
    )
    auth = with_served_name(_auth(s.get("auth", {})), settings.host)
    return dataclasses.replace(settings, auth=auth)


def record_settings(flags: Mapping[str, Any]) -> RecordSettings:
    """``ticker record``'s settings from its flags (``feeds``, ``out``, ``duration``, ``rotate_mb``,
    ``rotate_s``, ``stall_timeout``, ``quarantine_after``, ``quarantine_window``).

    Raises:
        ConfigError: any bad setting, one line.
    """
    duration = flags.get("duration")
    if duration is not None and not duration > 0:
        raise ConfigError("--duration must be > 0")
    return RecordSettings(
        feeds=tuple(flags["feeds"]),
        out=_record(Path(flags["out"]), flags),
        duration=duration,
        supervision=_supervision(flags),
    )


_REPLAY_OWN = frozenset({"host", "port", "check"})
"""``ticker replay``'s flags that are not the feed's options."""


def replay_settings(flags: Mapping[str, Any], env: Mapping[str, str]) -> ReplaySettings:
    """``ticker replay``'s settings: its flags become the replay feed's options.

    Raises:
        ConfigError: a secret in the environment that is too short.
    """
    options = {"path": str(flags["path"])}
    # Every other flag given is a feed option (the CLI makes one per option); the feed checks
    # the names and values. Yes/no flags become yes/no.
    for key, value in flags.items():
        if key in _REPLAY_OWN or key == "path" or value is None:
            continue
        options[key] = ("yes" if value else "no") if isinstance(value, bool) else str(value)
    given = {k: flags[k] for k in ("host", "port") if k in flags}
    settings = ReplaySettings(options, **given, check=bool(flags.get("check")))
    auth = with_served_name(_auth(_env_layer(env)["auth"]), settings.host)
    return dataclasses.replace(settings, auth=auth)


def token_secret(file: Mapping[str, Any], env: Mapping[str, str]) -> str:
    """The secret ``ticker token`` signs with: ``TICKER_TOKEN_SECRET``, else ``[auth]
    token_secret`` of the config file.

    Raises:
        ConfigError: no secret, or a bad ``[auth]`` table.
    """
    auth = _merge({"auth": _table(file, "auth", AUTH_KEYS)}, _env_layer(env))["auth"]
    secret = auth.get("token_secret")
    if not isinstance(secret, str) or not secret:
        raise ConfigError(f"no token secret: set {ENV_TOKEN_SECRET} or [auth] token_secret")
    return secret
