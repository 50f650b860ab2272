"""Command line: ``ticker serve``, ``ticker feeds``.

I/O shell. ``ticker serve`` prints ``listening on http://HOST:PORT`` as its first stdout line.
SIGINT/SIGTERM close every socket with 1001 and exit 0.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ticker import __version__

__all__ = ["build_parser", "main"]

DEFAULT_FEEDS = ("sim", "simnews")
EXIT_USAGE = 2


class UsageError(Exception):
    """A bad flag, config or feed spec: one line on stderr, exit code 2."""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ticker", description="Live stock and news ticker service.")
    p.add_argument("--version", action="version", version=f"ticker {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("serve", help="serve prices and news over WebSockets and HTTP")
    s.add_argument("--host", default=None, help="address to bind (default 127.0.0.1)")
    s.add_argument("--port", type=int, default=None, help="port (default 8080; 0 = a free port)")
    s.add_argument("--feed", action="append", default=None, metavar="SPEC",
                   help="feed to run, name[:key=value,...]; repeatable (default: sim + simnews)")
    s.add_argument("--throttle-ms", type=float, default=None,
                   help="default throttle window for new connections (default 100)")
    s.add_argument("--config", type=Path, default=None, help="TOML file with the same settings")
    s.add_argument("--log-level", default="INFO", help="logging level (default INFO)")

    sub.add_parser("feeds", help="list available feed adapters and their options")
    return p


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
    from ticker.broadcaster import HubConfig

    cfg = _load_config(args.config)
    known = {"host", "port", "feeds", "throttle_ms", "server"}
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
    if hub.get("throttle_ms", 0) < 0:
        raise UsageError("throttle-ms must be >= 0")
    return host, port, feeds, hub


async def _serve(args: argparse.Namespace) -> int:
    from ticker.broadcaster import HubConfig
    from ticker.registry import SpecError, source_from_spec
    from ticker.server import create_app, serve

    host, port, specs, hub_settings = _serve_settings(args)
    sources = []
    counts: dict[str, int] = {}
    for spec in specs:
        try:
            name = spec.partition(":")[0].strip()
            counts[name] = counts.get(name, 0) + 1
            label = name if counts[name] == 1 else f"{name}#{counts[name]}"
            sources.append(source_from_spec(spec, label=label))
        except SpecError as exc:
            raise UsageError(str(exc)) from exc
    try:
        config = HubConfig(**hub_settings)
    except TypeError as exc:
        raise UsageError(f"bad server setting: {exc}") from exc
    app = create_app(sources, config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    try:
        await serve(app, host, port, stop=stop)
    except OSError as exc:
        print(f"ticker: cannot listen on {host}:{port}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    return 0


def _feeds() -> int:
    from ticker.registry import describe

    for info in describe():
        if info.error:
            print(f"{info.name}  (broken) {info.error}")
            continue
        print(f"{info.name}  {info.description}")
        for key, help_text in info.options.items():
            print(f"    {key:<12} {help_text}")
    return 0


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
            logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                                format="%(asctime)s %(levelname)s %(name)s: %(message)s")
            return _run(_serve(args))
        if args.command == "feeds":
            return _feeds()
    except UsageError as exc:
        print(f"ticker: {exc}", file=sys.stderr)
        return EXIT_USAGE
    parser.error(f"unknown command {args.command!r}")


if __name__ == "__main__":
    sys.exit(main())
