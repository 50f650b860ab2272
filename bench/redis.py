"""Redis backplane benchmark: the same 1,000-client load on the memory bus and through Redis.

I/O shell (processes, sockets). Starts a private ``redis-server`` on a free port (never the one
on 6379; persistence off) and runs, one after the other:

* **memory**: one ``ticker serve`` (``sim`` feed, 50 symbols, 1,000 ticks/s), 1,000 clients
  (two load generators x 500) at the default window;
* **redis**: one ``--role ingest`` node with the same feed and two ``--role edge`` nodes on
  ``--bus redis://...``, one load generator of 500 clients per edge.

Reports feed-to-client latency (receive time - quote ``ts``: p50/p95/p99/max), clients connected,
updates/s, per-process CPU over the measured period, and for Redis the commands it processed
per tick published (``INFO stats`` / ``INFO commandstats`` deltas over the measured period,
divided by the ingest node's feed event delta), plus the p99 difference vs memory (target: within
20 ms). Figures are reported, never asserted.

    python -m bench.redis [--duration 10]
"""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import redis as redis_py

from bench.fanout import (
    LoadGen,
    _cpu_seconds,
    _merge,
    _peak_rss_mb,
    free_port,
    listening,
    stop,
    ticker_cmd,
)

__all__ = ["main", "redis_server", "run"]

FEED = "sim:symbols=50,rate=1000,seed=1,burst=1"  # steady: runs compare
PER_GEN = 500  # clients per load generator
RAMP = 2500  # connections per second per generator
TARGET_P99_DELTA_MS = 20.0


def _ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


@contextmanager
def redis_server() -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    """A private ``redis-server`` on 127.0.0.1:<free port>, persistence off; stopped after."""
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    with tempfile.TemporaryDirectory(prefix="ticker-bench-redis-") as tmp:
        for _ in range(5):  # another process may take the port between probe and bind
            port = free_port()
            proc = subprocess.Popen(
                [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                 "--appendonly", "no", "--dir", tmp, "--loglevel", "warning"],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )  # fmt: skip
            try:
                deadline = time.monotonic() + 5.0
                while time.monotonic() < deadline and proc.poll() is None and not _ping(port):
                    time.sleep(0.01)
                if proc.poll() is None and _ping(port):
                    yield port, proc
                    return
            finally:
                stop(proc)
        raise RuntimeError("could not start redis-server on a free port")


def _serve(*extra: str) -> tuple[subprocess.Popen[str], str]:
    """``ticker serve --port 0 ...``; returns the process and its ``http://host:port``."""
    return listening(ticker_cmd("--port", "0", *extra), f"ticker serve {' '.join(extra)}")


def _health(base: str) -> dict[str, Any]:
    with urllib.request.urlopen(base + "/healthz", timeout=5) as resp:
        body: dict[str, Any] = json.loads(resp.read())
        return body


def _loadgen(base: str, clients: int, duration: float, warmup: float) -> LoadGen:
    url = base.replace("http://", "ws://") + "/ws"
    args = ["--url", url, "--clients", str(clients), "--duration", str(duration)]
    return LoadGen([*args, "--warmup", str(warmup), "--ramp", str(RAMP)])


def _measure(
    targets: list[str],
    duration: float,
    warmup: float,
    procs: dict[str, subprocess.Popen[Any]],
    snapshot: Callable[[], dict[str, Any]] = dict,
) -> dict[str, Any]:
    """Load generators against ``targets`` (one each); CPU and ``snapshot()`` over the window.

    The generators ramp, wait for all their connections, warm up, then measure ``duration``; the
    sampler takes its first reading when they say they start measuring and its second
    ``duration`` later, so both cover (about) the same period.
    """
    gens = [_loadgen(t, PER_GEN, duration, warmup) for t in targets]
    marks: dict[str, Any] = {}
    done = threading.Event()

    watched = {**procs, **{f"loadgen{i + 1}": g.proc for i, g in enumerate(gens)}}

    def cpu() -> dict[str, float]:
        return {k: _cpu_seconds(p.pid) for k, p in watched.items()}

    def sample() -> None:
        # The generators ramp, connect and warm up, then measure together on a `go`.
        LoadGen.start_together(gens, 200 + warmup)
        if not LoadGen.wait_measuring(gens, 10) or done.is_set():
            return
        marks["t0"], marks["snap0"], marks["cpu0"] = time.monotonic(), snapshot(), cpu()
        # Read again after `duration`, a little early so the generators are still running.
        if done.wait(duration - 0.5):
            return
        marks["t1"], marks["snap1"], marks["cpu1"] = time.monotonic(), snapshot(), cpu()

    th = threading.Thread(target=sample)
    th.start()
    try:
        results = [g.result(timeout=duration + warmup + 240) for g in gens]
    finally:
        done.set()
        th.join()
    merged = _merge(results)
    span = marks.get("t1", 0.0) - marks.get("t0", 0.0)
    merged["cpu_pct"] = (
        {k: round(100 * (marks["cpu1"][k] - marks["cpu0"][k]) / span, 1) for k in watched}
        if span > 0
        else None
    )
    merged["peak_rss_mb"] = {k: round(_peak_rss_mb(p.pid), 1) for k, p in procs.items()}
    merged["window_s"] = round(span, 2) if span > 0 else None
    merged["snapshots"] = (marks.get("snap0"), marks.get("snap1"))
    return merged


def _run_memory(duration: float, warmup: float) -> dict[str, Any]:
    proc, base = _serve("--feed", FEED)
    try:
        time.sleep(0.5)
        r = _measure([base, base], duration, warmup, {"server": proc})
    finally:
        stop(proc)
    r.pop("snapshots")
    return r


def _run_redis(
    port: int, redis_proc: subprocess.Popen[bytes], duration: float, warmup: float
) -> dict[str, Any]:
    bus = f"redis://127.0.0.1:{port}/0?prefix=bench"
    started: list[subprocess.Popen[str]] = []
    client = redis_py.Redis(host="127.0.0.1", port=port)
    try:
        ingest, ingest_base = _serve("--role", "ingest", "--bus", bus, "--feed", FEED)
        started.append(ingest)
        time.sleep(0.5)  # the quote hash and symbol set exist before the edges load them
        edges = []
        for _ in range(2):
            proc, base = _serve("--role", "edge", "--bus", bus)
            started.append(proc)
            edges.append(base)
        time.sleep(0.5)

        def snapshot() -> dict[str, Any]:
            h = _health(ingest_base)
            stats = client.info("stats")
            cmds = client.info("commandstats")
            return {
                "total_commands": stats["total_commands_processed"],
                "commandstats": {k.removeprefix("cmdstat_"): v["calls"] for k, v in cmds.items()},
                "ticks": h["feeds"][0]["events"],
                "written": h["bus"]["written"],
                "edge_read": [_health(b)["bus"]["read"] for b in edges],
            }

        procs: dict[str, subprocess.Popen[Any]] = {
            "ingest": ingest,
            "edge1": started[1],
            "edge2": started[2],
            "redis-server": redis_proc,
        }
        r = _measure(edges, duration, warmup, procs, snapshot)
    finally:
        for p in started:
            stop(p)
        client.close()
    s0, s1 = r.pop("snapshots")
    if s0 and s1:
        ticks = s1["ticks"] - s0["ticks"]
        # Our own INFO calls during the window (2 per snapshot) are not the service's.
        total = s1["total_commands"] - s0["total_commands"] - 2
        per_cmd = {
            k: v - s0["commandstats"].get(k, 0)
            for k, v in s1["commandstats"].items()
            if v - s0["commandstats"].get(k, 0) > 0 and k != "info"
        }
        r["ticks_published"] = ticks
        r["ticks_per_s"] = round(ticks / r["window_s"], 1) if r["window_s"] else None
        r["bus_written"] = s1["written"] - s0["written"]
        r["edge_read"] = [b - a for a, b in zip(s0["edge_read"], s1["edge_read"], strict=True)]
        r["redis_commands"] = total
        r["redis_commands_per_tick"] = round(total / ticks, 3) if ticks else None
        r["redis_commandstats"] = dict(sorted(per_cmd.items(), key=lambda kv: -kv[1]))
    return r


def _fmt(v: Any) -> str:
    return "-" if v is None else (f"{v:,.1f}" if isinstance(v, float) else f"{v:,}")


def _table(res: dict[str, Any]) -> str:
    lines = [
        "| bus | clients connected | updates/s | p50 ms | p95 ms | p99 ms | max ms | "
        "Redis cmds/tick | CPU % |",
        "|" + "---|" * 9,
    ]
    for name in ("memory", "redis"):
        r = res[name]
        lat = r.get("latency_ms") or {}
        cpu = ", ".join(f"{k} {v}" for k, v in (r.get("cpu_pct") or {}).items())
        lines.append(
            f"| {name} | {r['connected']:,} / {r['clients']:,} | {_fmt(r['updates_per_s'])} | "
            f"{_fmt(lat.get('p50'))} | {_fmt(lat.get('p95'))} | {_fmt(lat.get('p99'))} | "
            f"{_fmt(lat.get('max'))} | {_fmt(r.get('redis_commands_per_tick'))} | {cpu} |"
        )
    d = res["p99_delta_ms"]
    lines += [
        "",
        f"p99 redis - memory: {_fmt(d)} ms (target <= {TARGET_P99_DELTA_MS:g} ms: "
        f"{'met' if res['within_target'] else 'NOT met'})",
    ]
    return "\n".join(lines)


def run(duration: float = 10.0, warmup: float = 3.0) -> dict[str, Any]:
    """Run both configurations; returns the figures (and prints a Markdown table)."""
    memory = _run_memory(duration, warmup)
    with redis_server() as (port, redis_proc):
        red = _run_redis(port, redis_proc, duration, warmup)
    p_mem = (memory.get("latency_ms") or {}).get("p99")
    p_red = (red.get("latency_ms") or {}).get("p99")
    delta = round(p_red - p_mem, 2) if p_mem is not None and p_red is not None else None
    res: dict[str, Any] = {
        "feed": FEED,
        "duration_s": duration,
        "memory": memory,
        "redis": red,
        "p99_delta_ms": delta,
        "target_p99_delta_ms": TARGET_P99_DELTA_MS,
        "within_target": delta is not None and delta <= TARGET_P99_DELTA_MS,
    }
    print(_table(res), flush=True)
    return res


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--duration", type=float, default=10.0, help="measured seconds per run")
    p.add_argument("--warmup", type=float, default=3.0, help="warm-up seconds per run")
    p.add_argument("--json", action="store_true", help="also print the full result as JSON")
    a = p.parse_args()
    res = run(a.duration, a.warmup)
    if a.json:
        print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
