"""Layering guards: imports flow one way between the layer packages, with no cycles, and the pure
modules never pull in I/O (the house style's rule zero: pure cores, I/O at the edges).

The layers, bottom to top (README, Architecture)::

    core            pure: events, book, conflate, protocol, validate, auth, limits, ...
    config          settings (TOML + flags -> frozen objects)
    aio             small asyncio helpers
    hub, bus,       the broadcaster; fan-in, supervisor, Redis; pandas replay; recording
    replay, store
    ops             metrics, logs
    net             HTTP, WebSocket, access control, publish API
    cli             commands

Every import counts, also one inside a function (a lazy import is still a dependency), except
those under ``if TYPE_CHECKING:`` (annotations only).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from tests.conftest import ROOT

# What each layer may import (besides itself and the package root, for ``__version__``).
ALLOWED: dict[str, set[str]] = {
    "core": set(),
    "config": {"core"},
    "aio": set(),
    "hub": {"core", "config", "aio"},
    "bus": {"core", "config", "aio"},
    "replay": {"core", "store"},  # (it reads what the recorder wrote)
    "store": {"core", "config", "aio"},
    "ops": {"core", "config", "aio", "hub", "bus", "store"},
    "net": {"core", "config", "aio", "hub", "bus", "replay", "store", "ops"},
    # The Python client: what it shares with the server is the pure core (the wire rules, backoff).
    "client": {"core"},
    "watch": {"core", "client"},
    "cli": {"core", "config", "aio", "hub", "bus", "replay", "store", "ops", "net", "watch"},
    "__main__": {"cli"},
}
# What a feed adapter may import of ticker: the feed API (and the replay engine for the replay
# feed, the backoff rule for upstream reconnects).
FEED_API = {"ticker.core.events", "ticker.core.backoff", "ticker.core.validate", "ticker.replay"}

# Modules that must import neither asyncio, aiohttp, pandas nor pyarrow.
PURE = [
    "ticker.core",
    "ticker.client.state",
    # The server parses replay commands with these: that must not cost pandas.
    "ticker.replay.errors",
    "ticker.replay.control",
    "ticker.replay.clock",
    "ticker.replay.columns",
    "ticker.replay.options",
    "ticker.core.wsframe",
    "ticker.config",
    "ticker_feeds.base",
    "ticker.hub.flow",
    "ticker.hub.news",
    "ticker.hub.session",
    "ticker.hub.windows",
    "ticker.hub.pacing",
]


def modules(package: str) -> Iterator[tuple[str, Path]]:
    base = ROOT / package
    for path in sorted(base.rglob("*.py")):
        rel = path.relative_to(ROOT).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts.pop()
        yield ".".join(parts), path


def _type_checking_lines(tree: ast.Module) -> set[int]:
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                lines.update(range(child.lineno, (child.end_lineno or child.lineno) + 1))
    return lines


def imports_of(name: str, path: Path) -> set[str]:
    """The project modules ``name`` imports (absolute names; relative imports resolved)."""
    tree = ast.parse(path.read_text())
    skip = _type_checking_lines(tree)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(tree):
        if getattr(node, "lineno", 0) in skip:
            continue
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                mod = ".".join([*base, node.module] if node.module else base)
            else:
                mod = node.module or ""
            out.add(mod)
            out.update(f"{mod}.{a.name}" for a in node.names)  # `from pkg import module`
    return {m for m in out if m.split(".")[0] in ("ticker", "ticker_feeds")}


def graph() -> dict[str, set[str]]:
    mods = dict(modules("ticker")) | dict(modules("ticker_feeds"))
    return {name: {m for m in imports_of(name, path) if m in mods} for name, path in mods.items()}


def layer(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if parts[0] == "ticker" and len(parts) > 1 else None


def test_layers_import_only_what_is_below_them() -> None:
    bad = []
    for mod, deps in graph().items():
        own = layer(mod)
        if own is None:
            continue
        allowed = ALLOWED[own] | {own}
        for dep in deps:
            theirs = layer(dep)
            if dep.startswith("ticker") and theirs is not None and theirs not in allowed:
                bad.append(f"{mod} -> {dep}")
            if dep.startswith("ticker_feeds"):
                bad.append(f"{mod} -> {dep} (the core reaches feeds only through entry points)")
    assert not bad, "\n".join(sorted(bad))


def test_feeds_import_only_the_feed_api() -> None:
    bad = [
        f"{mod} -> {dep}"
        for mod, deps in graph().items()
        if mod.startswith("ticker_feeds")
        for dep in deps
        if dep.startswith("ticker.") and not any(dep.startswith(api) for api in FEED_API)
    ]
    assert not bad, "\n".join(sorted(bad))


def test_no_import_cycles() -> None:
    g = graph()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in g[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in g:
        if v not in index:
            visit(v)
    assert not cycles, cycles


def test_pure_modules_import_no_io() -> None:
    names = [m for pkg in PURE for m, _ in modules(pkg.replace(".", "/")) if not m.endswith("__")]
    names += [m for m in PURE if not (ROOT / m.replace(".", "/")).is_dir()]
    code = (
        f"import sys, importlib\nfor m in {sorted(set(names))!r}: importlib.import_module(m)\n"
        "bad = [m for m in ('aiohttp', 'asyncio', 'pandas', 'pyarrow') if m in sys.modules]\n"
        "print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_serving_without_replay_or_history_does_not_load_pandas() -> None:
    """pandas costs ~100 MB resident: a plain server loads it only on first use (history,
    replay), so its memory goes to connections."""
    code = (
        "import sys, asyncio\n"
        "from ticker.net.server import create_app\n"
        "from ticker.bus.registry import source_from_spec\n"
        "from aiohttp.test_utils import TestServer, TestClient\n"
        "async def main():\n"
        "    app = create_app([source_from_spec('sim'), source_from_spec('simnews')])\n"
        "    async with TestClient(TestServer(app)) as c:\n"
        "        for path in ('/healthz', '/api/replay', '/api/quotes', '/api/news', '/'):\n"
        "            assert (await c.get(path)).status == 200, path\n"
        "        ws = await c.ws_connect('/ws'); await ws.receive(); await ws.close()\n"
        "asyncio.run(main())\n"
        "print(','.join(m for m in ('pandas', 'pyarrow') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
