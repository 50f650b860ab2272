"""Command line: ``ticker serve``, ``ticker feeds``, ``ticker record``, ``ticker replay``,
``ticker token``, ``ticker watch`` (ticker.watch).

I/O shell: the parser, and one function per command that reads what it must (the config file, the
environment, TLS files), takes its settings from ticker.config and runs. ``ticker serve`` (and
``ticker replay``) prints ``listening on http://HOST:PORT`` (or ``https://`` with ``--tls-cert``)
as its first stdout line; ``ticker record`` prints ``recording to DIR``; ``ticker token`` prints a
client token. SIGINT/SIGTERM close every socket with 1001 and exit 0. A bad flag, config or feed
spec is one line on stderr and exit code 2.
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
import time
from collections.abc import Coroutine, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from aiohttp import web

from ticker import __version__
from ticker.bus.registry import SpecError, describe, load, sources_from_specs
from ticker.bus.supervisor import FeedSource, run_feeds
from ticker.config import (
    MAX_TIME_SKEW_S,
    QUARANTINE_AFTER,
    QUARANTINE_WINDOW,
    SERVER_KEYS,
    ConfigError,
    RecordConfig,
    ReplaySettings,
    Supervision,
    parse_toml,
    record_settings,
    replay_settings,
    serve_settings,
    token_secret,
)
from ticker.core.auth import AuthError, mint_token
from ticker.core.events import Feed, Preloadable
from ticker.core.roles import ROLES
from ticker.net.server import create_app, serve, tls_context
from ticker.ops.logs import protect, setup_logging
from ticker.replay.options import OPTIONS as REPLAY_OPTIONS

if TYPE_CHECKING:
    from ticker.store.recorder import Recorder

__all__ = ["build_parser", "flags_given", "main"]

EXIT_USAGE = 2

# ``ticker serve`` flags for limits: flag -> (``[server]`` key of the config file; help). README
# "Limits" has the outcome of each.
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
    "--max-bar-streams": ("max_bar_streams", "live bars streams (symbol, interval) per connection"),
    "--max-symbols-per-request": ("max_symbols_per_request", "symbols or topics in one request"),
    "--max-frame-bytes": ("max_frame_bytes", "largest inbound frame"),
    "--control-rate": ("rate", "control messages per second per connection"),
    "--control-burst": ("burst", "control messages a connection may send at once"),
    "--heartbeat-s": ("heartbeat_s", "ping a connection silent for this many seconds"),
    "--max-buffer-bytes": ("max_buffer_bytes", "unsent bytes while replaying news"),
    "--slow-close-after": ("slow_close_after", "seconds stuck before a slow consumer is closed"),
    "--http-idle-s": ("http_idle_s", "seconds an HTTP connection may go without a whole request"),
    "--bandwidth-bps": (
        "bandwidth_bps",
        "bandwidth cap of a new connection's quote frames, bytes/s; 0 = none",
    ),
    "--max-bandwidth-bps": (
        "max_bandwidth_bps",
        "highest bandwidth cap a connection may ask for, bytes/s; 0 = none (may be uncapped)",
    ),
}
# A flag's ``dest`` is where its value goes in the config file's shape (``server.rate``: ``rate``
# of ``[server]``), so flags and file merge by one rule (ticker.config); but for these, which steer
# the process itself.
PROCESS_FLAGS = frozenset({"command", "config", "log_level", "log_json"})


class UsageError(Exception):
    """A bad flag, config or feed spec: one line on stderr, exit code 2."""


# Parser


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ticker", description="Live stock and news ticker service.")
    p.add_argument("--version", action="version", version=f"ticker {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("serve", help="serve prices and news over WebSockets and HTTP")
    s.add_argument("--host", help="address to bind (default 127.0.0.1)")
    s.add_argument("--port", type=int, help="port (default 8080; 0 = a free port)")
    s.add_argument(
        "--feed",
        dest="feeds",
        action="append",
        metavar="SPEC",
        help="feed to run, name[:key=value,...]; repeatable (default: sim + simnews)",
    )
    s.add_argument(
        "--throttle-ms",
        type=float,
        help="default throttle window for new connections (default 100)",
    )
    s.add_argument(
        "--bus",
        metavar="URL",
        help="event bus: memory:// (default, one process) or redis://[:password@]host:port/db "
        "(also rediss://; ?prefix=NAME names the keys) shared by many processes",
    )
    s.add_argument(
        "--role",
        choices=ROLES,
        help="all (default): feeds and clients; ingest: run feeds, publish to the bus; "
        "edge: no feeds, serve clients from the bus",
    )
    _limit_args(s)
    s.add_argument("--config", type=Path, help="TOML file with the same settings")
    _log_args(s)
    s.add_argument(
        "--record", type=Path, metavar="DIR", help="also record every event to Parquet files in DIR"
    )
    s.add_argument(
        "--history",
        type=Path,
        metavar="DIR",
        help="at start, load bars and last quotes from the recordings in DIR, and record there "
        "(unless --record names another directory): a restart serves the same charts",
    )
    _recording_args(s)
    _access_args(s)

    sub.add_parser("feeds", help="list available feed adapters and their options")

    r = sub.add_parser("record", help="record feeds to Parquet files without serving")
    r.add_argument(
        "--feed",
        dest="feeds",
        action="append",
        required=True,
        metavar="SPEC",
        help="feed to record, name[:key=value,...]; repeatable",
    )
    r.add_argument("--out", type=Path, required=True, metavar="DIR", help="directory for the files")
    r.add_argument(
        "--duration",
        type=float,
        metavar="S",
        help="stop after S seconds (default: on Ctrl-C, or when every feed finished)",
    )
    _log_args(r)
    _recording_args(r)

    rp = sub.add_parser("replay", help="serve a replay of recorded or downloaded market data")
    _replay_args(rp)
    rp.add_argument(
        "--check",
        action="store_true",
        help="only load: print the one-line summary and exit (2 if unreadable)",
    )
    rp.add_argument("--host", help="address to bind (default 127.0.0.1)")
    rp.add_argument("--port", type=int, help="port (default 8080; 0 = a free port)")
    _log_args(rp)

    w = sub.add_parser(
        "watch",
        help="a live ticker in the terminal (a client of a running server)",
        description="Watch SYMBOLS live: a table updating in place on a terminal, one line per "
        "change when piped. The client token, if the server needs one, comes from $TICKER_TOKEN.",
    )
    w.add_argument("symbols", nargs="+", metavar="SYMBOL", help="symbols to watch, or *")
    w.add_argument(
        "--url",
        default="ws://127.0.0.1:8080/ws",
        help="the server (default ws://127.0.0.1:8080/ws)",
    )
    w.add_argument("--news", action="store_true", help="also show news on those symbols")

    t = sub.add_parser("token", help="print a client token signed with the token secret")
    t.add_argument("--sub", help="who the token is for (its 'sub' claim)")
    t.add_argument(
        "--symbols",
        default="*",
        help="comma-separated symbols it may see, or * for all (default *)",
    )
    t.add_argument("--ttl", type=float, default=3600.0, help="seconds until it expires (3600)")
    t.add_argument("--config", type=Path, help="TOML file with an [auth] table")
    return p


def _replay_args(p: argparse.ArgumentParser) -> None:
    """One flag per option of the replay feed, from its table (ticker.replay.options), so that
    none is missing or drifts: ``path`` is the positional argument, a yes/no option is
    ``--name/--no-name``, any other ``--name VALUE``. A value is checked by the feed."""
    for key, opt in REPLAY_OPTIONS.items():
        text = opt.help + (f" (default {opt.default})" if opt.default else "")
        if key == "path":
            p.add_argument("path", type=Path, help=text)
        elif opt.boolean:
            p.add_argument(f"--{key}", action=argparse.BooleanOptionalAction, help=text)
        else:
            p.add_argument(f"--{key}", metavar=key.upper(), help=text)


def _log_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--log-level", default="INFO", help="logging level (default INFO)")
    p.add_argument("--log-json", action="store_true", help="log one JSON object per line")


def _limit_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("limits (README: Limits; also [server] keys of --config)")
    for flag, (key, text) in LIMIT_FLAGS.items():
        default = SERVER_KEYS[key]
        g.add_argument(
            flag,
            dest=f"server.{key}",
            type=int if isinstance(default, int) else float,
            metavar="N" if isinstance(default, int) else "X",
            help=f"{text} (default {default:,})",
        )
    g.add_argument(
        "--trusted-proxy",
        dest="server.trusted_proxies",
        action="append",
        metavar="ADDR",
        help="a reverse proxy (address or network) whose X-Forwarded-For names the client for "
        "the per-address limit; repeatable",
    )
    g.add_argument(
        "--reuse-port",
        dest="server.reuse_port",
        action="store_true",
        default=None,
        help="bind with SO_REUSEPORT: several edges of one bus on one port, the kernel spreads "
        "connections over them",
    )


def _recording_args(p: argparse.ArgumentParser) -> None:
    rotate = {f.name: f.default for f in dataclasses.fields(RecordConfig)}
    p.add_argument(
        "--rotate-mb",
        type=float,
        metavar="MB",
        help=f"start a new file after MB of data (default {rotate['rotate_mb']:g})",
    )
    p.add_argument(
        "--rotate-s",
        type=float,
        metavar="S",
        help=f"start a new file after S seconds (default {rotate['rotate_s']:g})",
    )
    p.add_argument(
        "--stall-timeout",
        type=float,
        metavar="S",
        help="restart a feed that sends nothing for S seconds (default: the feed's "
        "own setting, else never)",
    )
    p.add_argument(
        "--quarantine-after",
        type=int,
        metavar="N",
        help=f"stop a feed for good after N failures within the quarantine window "
        f"(default {QUARANTINE_AFTER}; 0 = never)",
    )
    p.add_argument(
        "--quarantine-window",
        type=float,
        metavar="S",
        help=f"the window failures are counted in (default {QUARANTINE_WINDOW:g} s)",
    )
    p.add_argument(
        "--max-time-skew",
        dest="max_time_skew_s",
        type=float,
        metavar="S",
        help=f"drop events of a live feed whose time is more than S seconds from the clock "
        f"(a ts in seconds or microseconds; default {MAX_TIME_SKEW_S:g}; 0 = never; replays "
        "are not checked)",
    )


def _access_args(p: argparse.ArgumentParser) -> None:
    """Origins, tokens, TLS (ticker.core.auth, ticker.net.guard). Secrets have no flag: they come
    from the environment or the config file (a flag would show in ``ps``)."""
    p.add_argument(
        "--allow-origin",
        dest="auth.allow_origins",
        action="append",
        metavar="ORIGIN",
        help="a browser origin allowed to open /ws besides the server's own, e.g. "
        "https://app.example.com, https://*.example.com, http://localhost:* or *; repeatable "
        "(default: localhost, 127.0.0.1 and [::1] on any port)",
    )
    p.add_argument(
        "--public-host",
        dest="auth.public_hosts",
        action="append",
        metavar="NAME",
        help="a name clients reach this server by (the Host header of /ws and /api/*), e.g. "
        "ticker.example.com or *.example.com; * for any; repeatable (always served: IP "
        "addresses, localhost, and the --host name)",
    )
    p.add_argument(
        "--require-token",
        dest="auth.require_token",
        action="store_true",
        default=None,
        help="/ws and the read APIs need a client token (signed with TICKER_TOKEN_SECRET)",
    )
    p.add_argument("--tls-cert", type=Path, metavar="FILE", help="serve https/wss")
    p.add_argument("--tls-key", type=Path, metavar="FILE", help="its private key")


def flags_given(args: argparse.Namespace) -> dict[str, Any]:
    """The settings among the flags given (argparse leaves the others None), in the config file's
    shape: dest ``server.rate`` -> ``{"server": {"rate": ...}}``."""
    out: dict[str, Any] = {}
    for dest, value in vars(args).items():
        if value is None or dest in PROCESS_FLAGS:
            continue
        table, _, key = dest.rpartition(".")
        (out.setdefault(table, {}) if table else out)[key] = value
    return out


# Commands


async def _serve(args: argparse.Namespace) -> int:
    """``ticker serve``: check everything (settings, feeds, TLS files, the recording directory)
    before serving."""
    base = None if args.config is None else args.config.parent
    settings = serve_settings(_read_config(args.config), flags_given(args), os.environ, base=base)
    _protect_url(settings.bus)
    sources = _sources(settings.feeds, settings.supervision)
    recorder = None if settings.record is None else _recorder(settings.record)
    try:
        tls = None if settings.tls is None else tls_context(settings.tls.cert, settings.tls.key)
        app = create_app(
            sources,
            settings.hub,
            server=settings.server,
            recorder=recorder,
            bus=settings.bus,
            role=settings.role,
            auth=settings.auth,
            history=settings.history,
        )
    except ValueError as exc:  # the TLS files, the bus URL or the role
        raise UsageError(str(exc)) from exc
    return await _serve_app(app, settings.host, settings.port, tls)


async def _record(args: argparse.Namespace) -> int:
    """``ticker record``: run the feeds into a recorder until a signal, the duration or the end."""
    settings = record_settings(flags_given(args))
    sources = _sources(settings.feeds, settings.supervision)
    rec = _recorder(settings.out)
    await rec.start()
    print(f"recording to {settings.out.directory}", flush=True)
    await run_feeds(sources, rec.record, stop=_stop_on_signals(), duration=settings.duration)
    await rec.aclose()
    files = f"{len(rec.files)} file{'s' if len(rec.files) != 1 else ''}"
    print(f"recorded {rec.written:,} events in {files} to {settings.out.directory}", flush=True)
    return 1 if rec.errors else 0


def _replay(args: argparse.Namespace) -> int:
    """``ticker replay``: load the data (``--check``: only that), then serve it."""
    settings = replay_settings(flags_given(args), os.environ)
    feed = _replay_feed(settings)
    if settings.check:
        return 0
    app = create_app([FeedSource.of(feed)], auth=settings.auth)
    return _run(_serve_app(app, settings.host, settings.port))


def _token(args: argparse.Namespace) -> int:
    """``ticker token``: mint a client token from the configured secret; print it."""
    secret = token_secret(_read_config(args.config), os.environ)
    raw = [s.strip() for s in args.symbols.split(",") if s.strip()]
    symbols = None if raw == ["*"] else raw
    try:
        token = mint_token(secret, now=time.time(), ttl=args.ttl, sub=args.sub, symbols=symbols)
    except AuthError as exc:
        raise UsageError(str(exc)) from exc
    print(token)
    return 0


def _feeds() -> int:
    """``ticker feeds``: every installed adapter, its description and options."""
    for info in describe():
        if info.error:
            print(f"{info.name}  (broken) {info.error}")
            continue
        print(f"{info.name}  {info.description}")
        for key, help_text in info.options.items():
            print(f"    {key:<12} {help_text}")
    return 0


# What the commands share


def _read_config(path: Path | None) -> dict[str, Any]:
    """The ``--config`` file's table; {} without one."""
    if path is None:
        return {}
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read config {path}: {exc.strerror or exc}") from exc
    return parse_toml(data, str(path))


def _protect_url(url: str) -> None:
    """Keep the password of a ``redis://:password@host`` URL out of every log record."""
    with contextlib.suppress(ValueError):
        password = urlsplit(url).password
        if password:
            protect(password, unquote(password))


def _sources(specs: Sequence[str], supervision: Supervision) -> list[FeedSource]:
    """Feed sources for ``specs``; a plug-in that fails to import (others being fine) is reported
    here and retried with backoff while the others run."""
    try:
        sources, broken = sources_from_specs(specs, supervision)
    except SpecError as exc:
        raise UsageError(str(exc)) from exc
    for err in broken:
        print(f"ticker: {err} (the other feeds run; it is retried with backoff)", file=sys.stderr)
    return sources


def _recorder(config: RecordConfig) -> Recorder:
    """A recorder, opened now: an unusable directory fails before anything runs (the server's
    start finds it open)."""
    # pyarrow (tens of MB, a slow import) loads only when something is recorded.
    from ticker.store.recorder import Recorder, RecorderError

    rec = Recorder(
        config.directory, rotate_bytes=config.rotate_bytes, rotate_seconds=config.rotate_s
    )
    try:
        rec.open()
    except RecorderError as exc:
        raise UsageError(str(exc)) from exc
    return rec


def _replay_feed(settings: ReplaySettings) -> Feed:
    """The replay feed for ``ticker replay``, its data loaded (errors: one line, exit 2)."""
    try:
        feed = load("replay")(settings.options)
        if not isinstance(feed, Preloadable):
            raise UsageError("the installed replay feed cannot load its data ahead")
        report = feed.load()
    except SpecError as exc:
        raise UsageError(str(exc)) from exc
    except ValueError as exc:
        raise UsageError(
            f"replay: {exc}" if not str(exc).startswith("replay") else str(exc)
        ) from exc
    if settings.check:
        print(report.summary())
    if not report.events:
        raise UsageError(f"nothing to replay in {settings.options['path']}: {report.summary()}")
    return feed


def _stop_on_signals() -> asyncio.Event:
    """An event that SIGINT and SIGTERM set (where the loop can handle signals)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    return stop


async def _serve_app(
    app: web.Application, host: str, port: int, tls: ssl.SSLContext | None = None
) -> int:
    """Serve ``app`` until SIGINT/SIGTERM (over TLS with ``tls``); 1 when the address cannot be
    bound."""
    try:
        await serve(app, host, port, stop=_stop_on_signals(), ssl_context=tls)
    except OSError as exc:
        print(f"ticker: cannot listen on {host}:{port}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    return 0


def _run(coro: Coroutine[Any, Any, int]) -> int:
    try:
        import uvloop  # optional (not on Windows): the faster loop where it is installed
    except ImportError:
        return asyncio.run(coro)
    return int(uvloop.run(coro))


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``ticker`` console script."""
    args = build_parser().parse_args(argv)
    try:
        if args.command == "feeds":
            return _feeds()
        if args.command == "token":
            return _token(args)
        if args.command == "watch":
            from ticker.watch import watch

            token = os.environ.get("TICKER_TOKEN") or None
            return _run(watch(args.url, args.symbols, news=args.news, token=token))
        quiet = args.command == "replay" and args.check  # --check prints only its summary
        try:  # plain or JSON lines on stderr, secrets scrubbed
            setup_logging("WARNING" if quiet else args.log_level, json=args.log_json)
        except ValueError as exc:
            raise UsageError(str(exc)) from exc
        if args.command == "replay":
            return _replay(args)
        return _run(_serve(args) if args.command == "serve" else _record(args))
    except (UsageError, ConfigError) as exc:
        print(f"ticker: {exc}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
