"""Command line: ``ticker serve``, ``ticker feeds``, ``ticker record``, ``ticker replay``,
``ticker token``.

I/O shell. ``ticker serve`` (and ``ticker replay``) prints ``listening on http://HOST:PORT`` (or
``https://`` with ``--tls-cert``) as its first stdout line; ``ticker record`` prints ``recording to
DIR``; ``ticker token`` prints a client token. SIGINT/SIGTERM close every socket with 1001 and
exit 0.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import os
import signal
import ssl
import sys
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ticker import __version__
from ticker.core.roles import ROLES

if TYPE_CHECKING:
    from aiohttp import web

    from ticker.bus.supervisor import FeedSource
    from ticker.core.auth import AuthConfig
    from ticker.core.events import Feed
    from ticker.store.recorder import Recorder

__all__ = ["build_parser", "main"]

DEFAULT_FEEDS = ("sim", "simnews")
EXIT_USAGE = 2

# ``ticker serve`` flags for limits: flag -> (HubConfig field, also the ``[server]`` config key;
# help). README "Limits" has the outcome of each.
LIMIT_FLAGS = {
    "--max-connections": ("max_connections", "WebSocket connections in total; 0 = no limit"),
    "--max-connections-per-ip": (
        "max_connections_per_ip",
        "WebSocket connections per client address; 0 = no limit",
    ),
    "--max-symbols-per-connection": (
        "max_symbols_per_connection",
        "symbols one connection may subscribe to; 0 = no limit",
    ),
    "--max-symbols-per-request": ("max_symbols_per_request", "symbols or topics in one request"),
    "--max-frame-bytes": ("max_frame_bytes", "largest inbound frame"),
    "--control-rate": ("rate", "control messages per second per connection"),
    "--control-burst": ("burst", "control messages a connection may send at once"),
    "--heartbeat-s": ("heartbeat_s", "ping a connection silent for this many seconds"),
    "--max-buffer-bytes": ("max_buffer_bytes", "unsent bytes while replaying news"),
    "--slow-close-after": ("slow_close_after", "seconds stuck before a slow consumer is closed"),
    "--http-idle-s": ("http_idle_s", "seconds an HTTP connection may go without a whole request"),
}


class UsageError(Exception):
    """A bad flag, config or feed spec: one line on stderr, exit code 2."""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ticker", description="Live stock and news ticker service.")
    p.add_argument("--version", action="version", version=f"ticker {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("serve", help="serve prices and news over WebSockets and HTTP")
    s.add_argument("--host", default=None, help="address to bind (default 127.0.0.1)")
    s.add_argument("--port", type=int, default=None, help="port (default 8080; 0 = a free port)")
    s.add_argument(
        "--feed",
        action="append",
        default=None,
        metavar="SPEC",
        help="feed to run, name[:key=value,...]; repeatable (default: sim + simnews)",
    )
    s.add_argument(
        "--throttle-ms",
        type=float,
        default=None,
        help="default throttle window for new connections (default 100)",
    )
    s.add_argument(
        "--bus",
        default=None,
        metavar="URL",
        help="event bus: memory:// (default, one process) or redis://[:password@]host:port/db "
        "(also rediss://; ?prefix=NAME names the keys) shared by many processes",
    )
    s.add_argument(
        "--role",
        choices=ROLES,
        default=None,
        help="all (default): feeds and clients; ingest: run feeds, publish to the bus; "
        "edge: no feeds, serve clients from the bus",
    )
    _limit_args(s)
    s.add_argument("--config", type=Path, default=None, help="TOML file with the same settings")
    s.add_argument("--log-level", default="INFO", help="logging level (default INFO)")
    s.add_argument("--log-json", action="store_true", help="log one JSON object per line")
    s.add_argument(
        "--record",
        type=Path,
        default=None,
        metavar="DIR",
        help="also record every event to Parquet files in DIR",
    )
    _recording_args(s)
    _access_args(s)

    sub.add_parser("feeds", help="list available feed adapters and their options")

    r = sub.add_parser("record", help="record feeds to Parquet files without serving")
    r.add_argument(
        "--feed",
        action="append",
        required=True,
        metavar="SPEC",
        help="feed to record, name[:key=value,...]; repeatable",
    )
    r.add_argument("--out", type=Path, required=True, metavar="DIR", help="directory for the files")
    r.add_argument(
        "--duration",
        type=float,
        default=None,
        metavar="S",
        help="stop after S seconds (default: on Ctrl-C, or when every feed finished)",
    )
    r.add_argument("--log-level", default="INFO", help="logging level (default INFO)")
    r.add_argument("--log-json", action="store_true", help="log one JSON object per line")
    _recording_args(r)

    rp = sub.add_parser("replay", help="serve a replay of recorded or downloaded market data")
    rp.add_argument("path", type=Path, help="a data file (CSV, CSV.gz, Parquet) or a directory")
    rp.add_argument("--speed", default="1", help="market seconds per second, or max (default 1)")
    rp.add_argument("--start", default=None, help="from this market time (ISO 8601, epoch...)")
    rp.add_argument("--end", default=None, help="up to this market time")
    rp.add_argument("--symbols", default=None, help="only these symbols, +-separated")
    rp.add_argument("--loop", action="store_true", help="start over at the end")
    rp.add_argument(
        "--columns",
        default=None,
        metavar="ROLE:NAME+...",
        help="column overrides, e.g. ts:Date+price:Close",
    )
    rp.add_argument(
        "--symbol",
        default=None,
        help="symbol of a table without a symbol column (default: file name)",
    )
    rp.add_argument(
        "--check",
        action="store_true",
        help="only load: print the one-line summary and exit (2 if unreadable)",
    )
    rp.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    rp.add_argument("--port", type=int, default=8080, help="port (default 8080; 0 = a free port)")
    rp.add_argument("--log-level", default="INFO", help="logging level (default INFO)")
    rp.add_argument("--log-json", action="store_true", help="log one JSON object per line")
    _token_parser(sub)
    return p


def _limit_args(p: argparse.ArgumentParser) -> None:
    from ticker.hub.broadcaster import HubConfig

    defaults = HubConfig()
    g = p.add_argument_group("limits (README: Limits; also [server] keys of --config)")
    for flag, (key, text) in LIMIT_FLAGS.items():
        default = getattr(defaults, key)
        g.add_argument(
            flag,
            dest=f"limit_{key}",
            type=int if isinstance(default, int) else float,
            default=None,
            metavar="N" if isinstance(default, int) else "X",
            help=f"{text} (default {default:,})",
        )
    g.add_argument(
        "--trusted-proxy",
        dest="limit_trusted_proxies",
        action="append",
        default=None,
        metavar="ADDR",
        help="a reverse proxy (address or network) whose X-Forwarded-For names the client for "
        "the per-address limit; repeatable",
    )


def _recording_args(p: argparse.ArgumentParser) -> None:
    from ticker.bus.supervisor import QUARANTINE_AFTER, QUARANTINE_WINDOW

    p.add_argument(
        "--rotate-mb",
        type=float,
        default=64.0,
        metavar="MB",
        help="start a new file after MB of data (default 64)",
    )
    p.add_argument(
        "--rotate-s",
        type=float,
        default=3600.0,
        metavar="S",
        help="start a new file after S seconds (default 3600)",
    )
    p.add_argument(
        "--stall-timeout",
        type=float,
        default=None,
        metavar="S",
        help="restart a feed that sends nothing for S seconds (default: the feed's "
        "own setting, else never)",
    )
    p.add_argument(
        "--quarantine-after",
        type=int,
        default=None,
        metavar="N",
        help=f"stop a feed for good after N failures within the quarantine window "
        f"(default {QUARANTINE_AFTER}; 0 = never)",
    )
    p.add_argument(
        "--quarantine-window",
        type=float,
        default=None,
        metavar="S",
        help=f"the window failures are counted in (default {QUARANTINE_WINDOW:g} s)",
    )


def _load_config(path: Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except OSError as exc:
        raise UsageError(f"cannot read config {path}: {exc.strerror or exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"config {path} is not valid TOML: {exc}") from exc


def _config_feeds(raw: Any) -> list[str]:
    """``feeds = ["sim:rate=10", {name = "simnews", rate = "5"}]`` -> SPEC strings."""
    if not isinstance(raw, list):
        raise UsageError("config 'feeds' must be a list of specs or tables")
    specs: list[str] = []
    for item in raw:
        if isinstance(item, str):
            specs.append(item)
        elif isinstance(item, dict) and isinstance(item.get("name"), str):
            opts = ",".join(f"{k}={v}" for k, v in item.items() if k != "name")
            specs.append(item["name"] + (":" + opts if opts else ""))
        else:
            raise UsageError(f"config 'feeds' entry {item!r} is not a spec or a table with name")
    return specs


def _serve_settings(args: argparse.Namespace) -> tuple[str, int, list[str], dict[str, Any]]:
    from ticker.hub.broadcaster import HubConfig

    cfg = _load_config(args.config)
    known = {
        "host",
        "port",
        "feeds",
        "throttle_ms",
        "server",
        "bus",
        "role",
        *ACCESS_KEYS,
        "quarantine_after",
        "quarantine_window",
    }
    unknown = set(cfg) - known
    if unknown:
        raise UsageError(f"config: unknown keys {sorted(unknown)}; valid: {sorted(known)}")
    host = args.host or cfg.get("host", "127.0.0.1")
    port = args.port if args.port is not None else cfg.get("port", 8080)
    if not isinstance(port, int) or not 0 <= port <= 65535:
        raise UsageError(f"port must be 0..65535, got {port!r}")
    feeds = args.feed or (_config_feeds(cfg["feeds"]) if "feeds" in cfg else list(DEFAULT_FEEDS))
    hub: dict[str, Any] = dict(cfg.get("server", {}))
    valid = set(HubConfig.__dataclass_fields__)
    bad = set(hub) - valid
    if bad:
        raise UsageError(f"config [server]: unknown keys {sorted(bad)}; valid: {sorted(valid)}")
    if "throttle_ms" in cfg:
        hub["throttle_ms"] = cfg["throttle_ms"]
    if args.throttle_ms is not None:
        hub["throttle_ms"] = args.throttle_ms
    for key in (*(k for k, _ in LIMIT_FLAGS.values()), "trusted_proxies"):
        value = getattr(args, f"limit_{key}", None)
        if value is not None:
            hub[key] = value
    for key in ("quarantine_after", "quarantine_window"):
        if getattr(args, key) is None and key in cfg:
            setattr(args, key, cfg[key])
    return host, port, feeds, hub


async def _serve(args: argparse.Namespace) -> int:
    from ticker.hub.broadcaster import HubConfig
    from ticker.net.server import create_app

    host, port, specs, hub_settings = _serve_settings(args)
    sources = _sources(specs, args.stall_timeout, _quarantine(args))
    try:
        config = HubConfig(**hub_settings)
    except (TypeError, ValueError) as exc:  # HubConfig checks types and signs
        raise UsageError(f"bad server setting: {exc}") from exc
    recorder = None if args.record is None else _open_recorder(args.record, args)
    cfg = _load_config(args.config)
    bus = args.bus or cfg.get("bus", "memory://")
    role = args.role or cfg.get("role", "all")
    if not isinstance(bus, str) or not isinstance(role, str):
        raise UsageError("config 'bus' and 'role' must be strings")
    _protect_url(bus)
    auth = _served_name(_auth_config(args, cfg), host)
    tls = _ssl_context(args, cfg)
    try:
        app = create_app(sources, config, recorder=recorder, bus=bus, role=role, auth=auth)
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    return await _serve_app(app, host, port, tls)


def _protect_url(url: str) -> None:
    """Keep the password of a ``redis://:password@host`` URL out of every log record."""
    from urllib.parse import unquote, urlsplit

    from ticker.ops.logs import protect

    with contextlib.suppress(ValueError):
        password = urlsplit(url).password
        if password:
            protect(password, unquote(password))


def _quarantine(args: argparse.Namespace) -> tuple[int, float]:
    """(quarantine_after, quarantine_window) from the flags (or config), checked."""
    from ticker.bus.supervisor import QUARANTINE_AFTER, QUARANTINE_WINDOW

    after = QUARANTINE_AFTER if args.quarantine_after is None else args.quarantine_after
    window = QUARANTINE_WINDOW if args.quarantine_window is None else args.quarantine_window
    if isinstance(after, bool) or not isinstance(after, int) or after < 0:
        raise UsageError(f"quarantine_after must be an integer >= 0, got {after!r}")
    if isinstance(window, bool) or not isinstance(window, int | float) or not window > 0:
        raise UsageError(f"quarantine_window must be a number > 0, got {window!r}")
    return after, float(window)


def _sources(
    specs: Sequence[str],
    stall_timeout: float | None,
    quarantine: tuple[int, float] | None = None,
) -> list[FeedSource]:
    """Feed sources for ``specs``, labelled ``name``, ``name#2``...

    A plug-in that fails to import is reported by name and, when other feeds are fine, kept as a
    source that retries its import with backoff (shown in /healthz) while the others run.
    ``quarantine``: (failures, window) after which a failing feed is stopped for good.
    """
    from ticker.bus.registry import (
        PluginError,
        SpecError,
        deferred_source,
        parse_spec,
        source_from_options,
    )

    sources: list[FeedSource] = []
    broken: list[PluginError] = []
    counts: dict[str, int] = {}
    for spec in specs:
        try:
            name, opts = parse_spec(spec)
            counts[name] = counts.get(name, 0) + 1
            label = name if counts[name] == 1 else f"{name}#{counts[name]}"
            sources.append(
                source_from_options(name, opts, label=label, stall_timeout=stall_timeout)
            )
        except PluginError as exc:
            broken.append(exc)
            sources.append(deferred_source(spec, label=label))
        except SpecError as exc:
            raise UsageError(str(exc)) from exc
    if broken and len(broken) == len(sources):
        raise UsageError(str(broken[0]))
    if quarantine is not None:
        after, window = quarantine
        sources = [
            dataclasses.replace(src, quarantine_after=after, quarantine_window=window)
            for src in sources
        ]
    for err in broken:
        print(f"ticker: {err} (the other feeds run; it is retried with backoff)", file=sys.stderr)
    return sources


def _open_recorder(directory: Path, args: argparse.Namespace) -> Recorder:
    from ticker.store.recorder import Recorder, RecorderError

    if args.rotate_mb <= 0 or args.rotate_s <= 0:
        raise UsageError("--rotate-mb and --rotate-s must be > 0")
    rec = Recorder(
        directory, rotate_bytes=int(args.rotate_mb * 1024 * 1024), rotate_seconds=args.rotate_s
    )
    try:
        rec.open()
    except RecorderError as exc:
        raise UsageError(str(exc)) from exc
    return rec


async def _serve_app(
    app: web.Application, host: str, port: int, tls: ssl.SSLContext | None = None
) -> int:
    """Serve ``app`` until SIGINT/SIGTERM (over TLS with ``tls``); 1 when the address cannot be
    bound."""
    from ticker.net.server import serve

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    try:
        await serve(app, host, port, stop=stop, ssl_context=tls)
    except OSError as exc:
        print(f"ticker: cannot listen on {host}:{port}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    return 0


async def _record(args: argparse.Namespace) -> int:
    """``ticker record``: run the feeds into a recorder until a signal, the duration or the end."""
    from ticker.bus.memory import MemoryBus
    from ticker.bus.supervisor import FeedRunner

    if args.duration is not None and args.duration <= 0:
        raise UsageError("--duration must be > 0")
    sources = _sources(args.feed, args.stall_timeout, _quarantine(args))
    rec = _open_recorder(args.out, args)
    await rec.start()
    bus = MemoryBus(rec.record)
    runners = [FeedRunner(src, bus.publish) for src in sources]
    for r in runners:
        r.start()
    print(f"recording to {args.out}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    deadline = None if args.duration is None else loop.time() + args.duration
    while not stop.is_set():
        if deadline is not None and loop.time() >= deadline:
            break
        if all(r.health()["state"] in ("finished", "quarantined") for r in runners):
            break
        wait = 0.2 if deadline is None else max(0.0, min(0.2, deadline - loop.time()))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), wait)
    for r in runners:
        await r.stop()
    await rec.aclose()
    files = f"{len(rec.files)} file{'s' if len(rec.files) != 1 else ''}"
    print(f"recorded {rec.written:,} events in {files} to {args.out}", flush=True)
    return 1 if rec.errors else 0


def _replay_feed(args: argparse.Namespace) -> Feed:
    """The replay feed for ``ticker replay``, its data loaded (errors: one line, exit 2)."""
    from ticker.bus.registry import SpecError, load

    opts = {"path": str(args.path), "speed": args.speed, "loop": "yes" if args.loop else "no"}
    for key in ("start", "end", "symbols", "columns", "symbol"):
        if getattr(args, key) is not None:
            opts[key] = getattr(args, key)
    try:
        feed = load("replay")(opts)
        report = feed.load()  # type: ignore[attr-defined]
    except SpecError as exc:
        raise UsageError(str(exc)) from exc
    except ValueError as exc:
        raise UsageError(
            f"replay: {exc}" if not str(exc).startswith("replay") else str(exc)
        ) from exc
    if args.check:
        print(report.summary())
    if not report.events:
        raise UsageError(f"nothing to replay in {args.path}: {report.summary()}")
    return feed


def _replay(args: argparse.Namespace) -> int:
    from ticker.bus.supervisor import FeedSource
    from ticker.net.server import create_app

    feed = _replay_feed(args)
    if args.check:
        return 0
    auth = _served_name(_auth_config(None, {}), args.host)  # TICKER_ADMIN_TOKEN / ..._SECRET
    return _run(_serve_app(create_app([FeedSource.of(feed)], auth=auth), args.host, args.port))


# Access: origins, tokens, TLS (ticker.core.auth, ticker.net.guard)

ACCESS_KEYS = ("auth", "tls_cert", "tls_key")
"""Top-level config keys of this section: the ``[auth]`` table and the TLS files."""
ENV_ADMIN_TOKEN = "TICKER_ADMIN_TOKEN"
ENV_TOKEN_SECRET = "TICKER_TOKEN_SECRET"


def _access_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--allow-origin",
        action="append",
        default=None,
        metavar="ORIGIN",
        help="a browser origin allowed to open /ws besides the server's own, e.g. "
        "https://app.example.com, https://*.example.com, http://localhost:* or *; repeatable "
        "(default: localhost, 127.0.0.1 and [::1] on any port)",
    )
    p.add_argument(
        "--public-host",
        action="append",
        default=None,
        metavar="NAME",
        help="a name clients reach this server by (the Host header of /ws and /api/*), e.g. "
        "ticker.example.com or *.example.com; * for any; repeatable (always served: IP "
        "addresses, localhost, and the --host name)",
    )
    p.add_argument(
        "--require-token",
        action="store_true",
        default=None,
        help="/ws and the read APIs need a client token (signed with TICKER_TOKEN_SECRET)",
    )
    p.add_argument("--tls-cert", type=Path, default=None, metavar="FILE", help="serve https/wss")
    p.add_argument("--tls-key", type=Path, default=None, metavar="FILE", help="its private key")


def _token_parser(sub: Any) -> None:
    t = sub.add_parser("token", help="print a client token signed with the token secret")
    t.add_argument("--sub", default=None, help="who the token is for (its 'sub' claim)")
    t.add_argument(
        "--symbols",
        default="*",
        help="comma-separated symbols it may see, or * for all (default *)",
    )
    t.add_argument("--ttl", type=float, default=3600.0, help="seconds until it expires (3600)")
    t.add_argument("--config", type=Path, default=None, help="TOML file with an [auth] table")


def _auth_table(cfg: dict[str, Any]) -> dict[str, Any]:
    table = cfg.get("auth", {})
    if not isinstance(table, dict):
        raise UsageError("config 'auth' must be a table")
    valid = {
        "admin_token",
        "token_secret",
        "require_token",
        "allow_origins",
        "local_replay",
        "public_hosts",
    }
    bad = set(table) - valid
    if bad:
        raise UsageError(f"config [auth]: unknown keys {sorted(bad)}; valid: {sorted(valid)}")
    return table


def _auth_config(args: argparse.Namespace | None, cfg: dict[str, Any]) -> AuthConfig:
    """Access settings: flags over environment over the ``[auth]`` table over defaults.

    Secrets come only from the environment or the config file (a flag would show in ``ps``).
    """
    from ticker.core.auth import DEFAULT_ORIGINS, AuthConfig, AuthError

    table = _auth_table(cfg)
    admin = os.environ.get(ENV_ADMIN_TOKEN) or table.get("admin_token")
    secret = os.environ.get(ENV_TOKEN_SECRET) or table.get("token_secret")
    require = table.get("require_token", False)
    origins = table.get("allow_origins", list(DEFAULT_ORIGINS))
    local_replay = table.get("local_replay", True)
    hosts = table.get("public_hosts", [])
    if args is not None:
        if args.require_token is not None:
            require = args.require_token
        if args.allow_origin is not None:
            origins = args.allow_origin
        if args.public_host is not None:
            hosts = args.public_host
    for name, v in (("admin_token", admin), ("token_secret", secret)):
        if v is not None and not isinstance(v, str):
            raise UsageError(f"config [auth] {name} must be a string")
    if not isinstance(require, bool) or not isinstance(local_replay, bool):
        raise UsageError("config [auth] require_token and local_replay must be true or false")
    if not isinstance(origins, list) or not all(isinstance(o, str) for o in origins):
        raise UsageError("config [auth] allow_origins must be a list of strings")
    if not isinstance(hosts, list) or not all(isinstance(h, str) for h in hosts):
        raise UsageError("config [auth] public_hosts must be a list of strings")
    try:
        return AuthConfig(
            admin_token=admin,
            token_secret=secret,
            require_token=require,
            allow_origins=tuple(origins),
            local_replay=local_replay,
            public_hosts=tuple(hosts),
        )
    except AuthError as exc:  # the message names the setting, never its value
        raise UsageError(str(exc)) from exc


def _served_name(auth: AuthConfig, bind: str) -> AuthConfig:
    """``auth`` with the name ``--host`` binds to (when it is a name, not an address) among
    the public hosts: clients that reach the server by it are not rebinding anything."""
    from ticker.core.auth import AuthError, host_allowed, parse_public_host

    try:
        name = parse_public_host(bind)
    except AuthError:
        return auth  # an IPv6 address, or nothing a browser could put in Host
    if host_allowed(name, auth.host_rules):
        return auth  # an IPv4 address, localhost, or listed already
    return dataclasses.replace(auth, public_hosts=(*auth.public_hosts, name))


def _ssl_context(args: argparse.Namespace, cfg: dict[str, Any]) -> ssl.SSLContext | None:
    """A server TLS context from ``--tls-cert``/``--tls-key`` (or ``tls_cert``/``tls_key`` in
    the config file, relative to it); None for plain HTTP."""
    base = args.config.parent if args.config is not None else Path()
    cert = args.tls_cert or (base / cfg["tls_cert"] if "tls_cert" in cfg else None)
    key = args.tls_key or (base / cfg["tls_key"] if "tls_key" in cfg else None)
    if cert is None and key is None:
        return None
    if cert is None or key is None:
        raise UsageError("--tls-cert and --tls-key go together")
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        ctx.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        detail = getattr(exc, "strerror", None) or getattr(exc, "reason", None) or exc
        raise UsageError(f"cannot load TLS certificate {cert} / key {key}: {detail}") from exc
    return ctx


def _token(args: argparse.Namespace) -> int:
    """``ticker token``: mint a client token from the configured secret; print it."""
    import time

    from ticker.core.auth import AuthError, mint_token

    cfg = _load_config(args.config)
    secret = os.environ.get(ENV_TOKEN_SECRET) or _auth_table(cfg).get("token_secret")
    if not isinstance(secret, str) or not secret:
        raise UsageError(f"no token secret: set {ENV_TOKEN_SECRET} or [auth] token_secret")
    raw = [s.strip() for s in args.symbols.split(",") if s.strip()]
    symbols = None if raw == ["*"] else raw
    try:
        token = mint_token(secret, now=time.time(), ttl=args.ttl, sub=args.sub, symbols=symbols)
    except AuthError as exc:
        raise UsageError(str(exc)) from exc
    print(token)
    return 0


def _feeds() -> int:
    from ticker.bus.registry import describe

    for info in describe():
        if info.error:
            print(f"{info.name}  (broken) {info.error}")
            continue
        print(f"{info.name}  {info.description}")
        for key, help_text in info.options.items():
            print(f"    {key:<12} {help_text}")
    return 0


def _setup_logging(level: str, json: bool) -> None:
    """Plain or JSON lines on stderr, secrets scrubbed (ticker.ops.logs)."""
    from ticker.ops.logs import setup_logging

    try:
        setup_logging(level, json=json)
    except ValueError as exc:
        raise UsageError(str(exc)) from exc


def _run(coro: Any) -> int:
    try:
        import uvloop
    except ImportError:
        return int(asyncio.run(coro))
    return int(uvloop.run(coro))


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``ticker`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "serve":
            _setup_logging(args.log_level, args.log_json)
            return _run(_serve(args))
        if args.command == "feeds":
            return _feeds()
        if args.command == "token":
            return _token(args)
        if args.command in ("record", "replay"):
            level = "WARNING" if getattr(args, "check", False) else args.log_level
            _setup_logging(level, args.log_json)
            return _run(_record(args)) if args.command == "record" else _replay(args)
    except UsageError as exc:
        print(f"ticker: {exc}", file=sys.stderr)
        return EXIT_USAGE
    parser.error(f"unknown command {args.command!r}")


if __name__ == "__main__":
    sys.exit(main())
