"""Fan-out benchmark: Ticker against naive broadcasters, same load generator, workloads W1-W5.

I/O shell (processes and files). For each workload it starts the server (``ticker serve``,
``bench.naive`` or ``naive_node.mjs``) with a seeded market, runs the Node ``ws`` load generator
(``bench/loadgen.mjs``, spread over several processes), samples from /proc over the measured
period the CPU of the server, of *each* load-generator process and of the whole machine, and
collects latency percentiles (receive time - quote ``ts``) in two modes at once:

- **parse**: a sample of connections in every generator process ``JSON.parse`` every frame and
  apply it to their quotes, as a real client must; latency is read from their copy.
- **scan**: every other connection reads ``type``/``seq``/``ts`` in place (``scan.mjs``).

A generator process near a full core (or whose event loop lags) queues frames itself: its
latencies measure the generator, not the server. Such a run is flagged (``flags``), as is a run
during which other processes on the machine took a large share of the CPU.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import resource
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "WORKLOADS",
    "LoadGen",
    "Workload",
    "free_port",
    "listening",
    "raise_nofile",
    "run_workload",
    "stop",
    "ticker_cmd",
]

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"


@dataclass(frozen=True)
class Workload:
    name: str
    clients: int
    symbols: int
    rate: float
    throttle: int | None  # None = the server's default window (100 ms)
    note: str = ""
    naive: bool = True
    extra: dict[str, Any] = field(default_factory=dict)
    opt_in: bool = False  # heavy: runs only when named in --only
    procs: int = 0  # load-generator processes (0: by the number of clients)
    local_addresses: tuple[str, ...] = ()  # source addresses, past the ephemeral-port limit
    duration: float | None = None  # measured seconds (None: the run's --duration)
    server_args: tuple[str, ...] = ()
    connect_wait: float = 120.0  # seconds the generators wait for every connection
    transport: str = "ws"  # ws (JSON text frames) | msgpack (ticker.v1.msgpack) | sse (GET /sse)
    # >0: Ticker runs as that many edge processes sharing one port (--reuse-port) behind an
    # ingest node on a private redis-server, instead of one process (the in-memory bus).
    edges: int = 0

    def gen_procs(self) -> int:
        """Load-generator processes: 2 for a few hundred clients, else one per 1,250 clients,
        4 to 8. More processes than cores still help: one event loop per process walks fewer
        sockets per turn (W2 measured: 2 processes' loops lagged 55 ms at p99 and its p99 read
        107 ms; 4 processes, 72 ms, none flagged)."""
        if self.procs:
            return self.procs
        return 2 if self.clients < 500 else max(4, min(8, math.ceil(self.clients / 1250)))

    def parse_sample(self) -> int:
        """Connections that parse every frame: a tenth of the clients, 20 to 250."""
        return min(self.clients, max(20, min(250, self.clients // 10)))


WORKLOADS = [
    Workload("W1", 100, 50, 1000, 0, "throttle 0"),
    Workload("W2", 1000, 50, 1000, 0, "throttle 0"),
    Workload("W2d", 1000, 50, 1000, None, "default 100 ms window"),
    Workload("W3", 5000, 50, 10, 0, "throttle 0"),
    # W3 over the other transports (issue 16): the same hub, encoded once per encoding.
    Workload("W3m", 5000, 50, 10, 0, "throttle 0, MessagePack", naive=False, transport="msgpack"),
    Workload("W3s", 5000, 50, 10, 0, "throttle 0, SSE", naive=False, transport="sse"),
    Workload(
        "W4",
        10000,
        100,
        2000,
        None,
        "default window, 5-symbol watchlists",
        naive=False,
        extra={"subset": 5},
        # The fan-out to those already connected takes most of the one process's time while
        # the rest connect (a py-spy profile of the ramp: 73 % in write(2)): they come in
        # slower than at W3, so the generators wait longer for them.
        connect_wait=300.0,
    ),
    Workload(
        "W5",
        50_000,
        100,
        2000,
        1000,
        "1 s window, 5-symbol watchlists, 8 source addresses",
        naive=False,
        extra={"subset": 5},
        procs=8,
        local_addresses=tuple(f"127.0.0.{i}" for i in range(2, 10)),
        duration=60.0,
        server_args=("--max-connections", "0"),
        connect_wait=400.0,
        # One process holds at most the open-file hard limit (20,000 in this sandbox, not
        # raisable without CAP_SYS_RESOURCE): three edges on one port hold ~16,700 each.
        edges=3,
    ),
]

NOFILE = 200_000
"""Open files the benchmark asks for (its own limit, inherited by the servers and generators it
starts): W5's 50,000 connections need one descriptor at each end."""

SATURATED_CPU = 90.0
"""A load-generator process at or above this % of one core is saturated: it queues frames."""
LAGGING_LOOP_MS = 50.0
"""A load-generator event loop whose p99 delay is over this adds that much to what it measures."""
BUSY_OTHER = 40.0
"""Other processes on the machine above this % of one core during a run: the figures are noisy."""


def raise_nofile(want: int = NOFILE) -> int:
    """Raise this process's open-file limit (soft and, when allowed, hard) towards ``want``;
    returns the soft limit now in force (children inherit it).

    Raising the hard limit needs CAP_SYS_RESOURCE (root on a normal host; not in every sandbox):
    without it the soft limit goes up to the hard one, and a workload with more clients than
    that is flagged (a server process cannot hold them)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= want:
        return soft
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, max(want, hard)))
    except (ValueError, OSError):  # not root: as far as the hard limit goes
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _status_mb(pid: int, key: str = "VmHWM") -> float:
    """A memory figure of ``pid`` from /proc (VmHWM: peak RSS; VmRSS: now), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _peak_rss_mb(pid: int) -> float:
    return _status_mb(pid, "VmHWM")


def _machine_cpu_seconds() -> float:
    """CPU seconds spent busy by the whole machine, all cores (from /proc/stat)."""
    parts = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    ticks = [int(x) for x in parts]
    idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)  # idle + iowait
    return (sum(ticks[:8]) - idle) / os.sysconf("SC_CLK_TCK")


class LoadGen:
    """One running ``loadgen.mjs``: ``measuring`` is set when its measured period starts (it
    says so on stderr: its ramp adapts to how fast the server accepts), ``result()`` its report.
    """

    def __init__(self, args: list[str]) -> None:
        self.proc = subprocess.Popen(
            ["node", str(BENCH / "loadgen.mjs"), *args, "--sync"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.ready = threading.Event()
        self.measuring = threading.Event()
        self.stderr: list[str] = []
        self._reader = threading.Thread(target=self._read_stderr, daemon=True)
        self._reader.start()

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            if '"measuring"' in line:
                self.measuring.set()
            elif '"ready"' in line:
                self.ready.set()
            else:
                self.stderr.append(line)

    @staticmethod
    def start_together(gens: list[LoadGen], timeout: float) -> bool:
        """Wait until every generator is connected and warmed up (or ``timeout``), then start
        them all measuring at once; False when one was not ready in time (it starts anyway)."""
        deadline = time.monotonic() + timeout
        ok = all(g.ready.wait(max(0.0, deadline - time.monotonic())) for g in gens)
        for g in gens:
            if g.proc.stdin is not None:
                with contextlib.suppress(OSError):
                    g.proc.stdin.write("go\n")
                    g.proc.stdin.flush()
        return ok

    @staticmethod
    def wait_measuring(gens: list[LoadGen], timeout: float) -> bool:
        """Wait until every generator measures (False: one never started within ``timeout``)."""
        deadline = time.monotonic() + timeout
        return all(g.measuring.wait(max(0.0, deadline - time.monotonic())) for g in gens)

    def result(self, timeout: float) -> dict[str, Any]:
        """Its JSON report (waits for it to finish)."""
        try:
            self.proc.wait(timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
        self._reader.join(5)
        assert self.proc.stdout is not None
        with self.proc.stdout:
            lines = self.proc.stdout.read().strip().splitlines()
        for pipe in (self.proc.stdin, self.proc.stderr):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()
        if not lines:
            raise RuntimeError(f"load generator failed: {''.join(self.stderr)[-500:]}")
        report: dict[str, Any] = json.loads(lines[-1])
        return report


@dataclass
class Servers:
    """What serves one run: ``url`` (the clients' ``ws://``), every server-side process (their CPU
    and memory are summed: Ticker's edges, its ingest node and Redis count alike), and how to
    stop them."""

    url: str
    procs: list[subprocess.Popen[Any]]
    edges: list[subprocess.Popen[Any]]  # the processes clients connect to
    stack: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)

    def stop(self) -> None:
        for proc in reversed(self.procs):  # (all asked to stop first: they stop together)
            if proc.poll() is None:
                proc.terminate()
        for proc in reversed(self.procs):
            stop(proc)
        self.stack.close()


def stop(proc: subprocess.Popen[Any]) -> None:
    """Stop ``proc`` (SIGTERM, SIGKILL after 10 s) and close its stdout pipe."""
    if proc.poll() is None:
        proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    if proc.stdout is not None:
        proc.stdout.close()


def listening(cmd: list[str], what: str) -> tuple[subprocess.Popen[str], str]:
    """Start a server that prints ``listening on http://HOST:PORT`` first; returns it and that
    ``http://HOST:PORT``."""
    proc = subprocess.Popen(
        cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    if not line.startswith("listening on "):
        stop(proc)
        raise RuntimeError(f"{what} did not start: {line!r}")
    return proc, line.split()[-1]


def ticker_cmd(*args: str) -> list[str]:
    """``ticker serve ARGS`` (warnings only)."""
    return [sys.executable, "-m", "ticker", "serve", "--log-level", "WARNING", *args]


def free_port() -> int:
    """A TCP port that was free a moment ago on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _ws(base: str) -> str:
    return base.replace("http://", "ws://") + "/ws"


def _start_server(kind: str, w: Workload) -> Servers:
    feed = f"sim:symbols={w.symbols},rate={w.rate:g},seed=1,burst=1"
    # Every benchmark client comes from 127.0.0.x (up to 50,000 of them).
    edge_args = ("--max-connections-per-ip", "0", *w.server_args)
    if kind == "ticker" and w.edges:
        return _start_cluster(w, feed, edge_args)
    if kind == "ticker":
        cmd = ticker_cmd("--port", "0", "--feed", feed, *edge_args)
    else:
        market = ["--port", "0", "--symbols", str(w.symbols), "--rate", f"{w.rate:g}"]
        if kind == "node":  # the Node `ws` broadcaster (the reference figures)
            cmd = ["node", str(BENCH / "naive_node.mjs"), *market]
        else:  # the aiohttp send loop
            cmd = [sys.executable, "-m", "bench.naive", *market]
    proc, base = listening(cmd, f"{kind} server")
    return Servers(_ws(base), [proc], [proc])


def _start_cluster(w: Workload, feed: str, edge_args: tuple[str, ...]) -> Servers:
    """A private redis-server, an ingest node running the feed, and ``w.edges`` edges sharing
    one port (``--reuse-port``: the kernel spreads the connections over them)."""
    from bench.redis import redis_server  # (bench.redis imports this module)

    servers = Servers("", [], [])
    try:
        redis_port, redis_proc = servers.stack.enter_context(redis_server())
        bus = ("--bus", f"redis://127.0.0.1:{redis_port}/0")
        servers.procs.append(redis_proc)
        ingest, _ = listening(
            ticker_cmd("--port", "0", *bus, "--role", "ingest", "--feed", feed), "ingest node"
        )
        servers.procs.append(ingest)
        port = free_port()
        for i in range(w.edges):
            cmd = ticker_cmd("--port", str(port), "--reuse-port", *bus, "--role", "edge")
            edge, base = listening([*cmd, *edge_args], f"edge {i}")
            servers.url = _ws(base)
            servers.procs.append(edge)
            servers.edges.append(edge)
    except BaseException:
        servers.stop()
        raise
    return servers


def _merge_latency(lats: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Percentiles over several generators: the worst of them, conservatively."""
    if not lats:
        return None
    out: dict[str, Any] = {k: max(x[k] for x in lats) for k in ("p50", "p95", "p99", "max")}
    out["n"] = sum(x.get("n", 0) for x in lats)
    return out


def _merge(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Combine the load generators' reports."""
    out: dict[str, Any] = {
        k: sum(r[k] for r in results)
        for k in (
            "clients",
            "connected",
            "still_open",
            "frames",
            "frames_per_s",
            "updates",
            "updates_per_s",
            "bytes",
            "bytes_per_s",
            "errors",
            "seq_gaps",
            "parse_clients",
        )
    }
    out["connect_s"] = max((r.get("connect_s") or 0.0) for r in results) if results else None
    out["latency_ms"] = _merge_latency([r["latency_ms"] for r in results if r.get("latency_ms")])
    out["latency_parse_ms"] = _merge_latency(
        [r["latency_parse_ms"] for r in results if r.get("latency_parse_ms")]
    )
    out["bytes_per_frame"] = round(out["bytes"] / out["frames"], 1) if out["frames"] else None
    out["bytes_per_quote"] = round(out["bytes"] / out["updates"], 1) if out["updates"] else None
    out["loadgen_loop_delay_p99_ms"] = max(
        (r.get("loop_delay_ms") or {}).get("p99", 0.0) for r in results
    )
    codes: dict[str, int] = {}
    kinds: dict[str, int] = {}
    for r in results:
        for k, v in r.get("close_codes", {}).items():
            codes[k] = codes.get(k, 0) + v
        for k, v in r.get("error_kinds", {}).items():
            kinds[k] = kinds.get(k, 0) + v
    out["close_codes"] = codes
    out["error_kinds"] = kinds
    return out


def _server_stats(ws_url: str, pids: set[int]) -> dict[str, Any]:
    """What Ticker itself counted (``/healthz`` stats): its closes by code, slow consumers,
    catch-ups, frames; {} when it does not answer. Edges sharing a port answer in turn (each
    request is a new connection, which the kernel gives to one of them; ``pid`` says which):
    asked until each has answered, their counts summed."""
    url = ws_url.replace("ws://", "http://").removesuffix("/ws") + "/healthz"
    keep = ("closed_", "slow_", "flow_", "catchup", "frames_sent", "deltas_sent", "connections")
    by_pid: dict[int, dict[str, Any]] = {}
    for _ in range(20 * len(pids)):
        try:
            with urllib.request.urlopen(url, timeout=10) as resp:
                health: dict[str, Any] = json.loads(resp.read())
        except (OSError, ValueError):
            break
        stats = health.get("stats", {})
        by_pid[health.get("pid", 0)] = {k: v for k, v in stats.items() if k.startswith(keep)}
        if pids <= set(by_pid):
            break
    out: dict[str, Any] = {}
    for stats in by_pid.values():
        for k, v in stats.items():
            out[k] = out.get(k, 0) + v if isinstance(v, int | float) else v
    if len(pids) > 1:
        out["edges_answered"] = len(by_pid)
    return dict(sorted(out.items()))


def flags(r: dict[str, Any]) -> list[str]:
    """Why a run's latencies may not measure the server: a saturated or lagging generator, a
    busy machine, clients that never connected."""
    out = []
    gens = r.get("loadgen_cpu_pct") or []
    if gens and max(gens) >= SATURATED_CPU:
        out.append(f"loadgen saturated ({max(gens):.0f} % of a core)")
    if (r.get("loadgen_loop_delay_p99_ms") or 0.0) > LAGGING_LOOP_MS:
        out.append(f"loadgen loop lag p99 {r['loadgen_loop_delay_p99_ms']:.0f} ms")
    nofile = r.get("open_file_limit")
    per_process = r.get("clients", 0) / max(1, r.get("server_edges", 1))
    if nofile is not None and per_process + 64 > nofile:
        out.append(f"open-file limit {nofile:,} < clients: one server process holds fewer")
    other = r.get("other_cpu_pct")
    if other is not None and other > BUSY_OTHER:
        out.append(f"machine busy (others {other:.0f} %)")
    if r.get("connected", 0) < r.get("clients", 0):
        out.append("not all connected")
    return out


def run_workload(
    kind: str,
    w: Workload,
    duration: float,
    warmup: float = 3.0,
    procs: int | None = None,
    profile: Path | None = None,
) -> dict[str, Any]:
    """Run one workload against one server kind; returns the merged figures.

    Args:
        duration: measured seconds (the workload's own, when it has one, wins).
        procs: load-generator processes (default: :meth:`Workload.gen_procs`).
        profile: write the server's py-spy profile over the measured period there (collapsed
            stacks; ``py-spy`` must be on PATH, and may slow the server a little).
    """
    duration = w.duration or duration
    n_procs = procs or w.gen_procs()
    servers = _start_server(kind, w)
    url = servers.url
    server_pids = [p.pid for p in servers.procs]

    def server_cpu() -> float:
        return sum(_cpu_seconds(pid) for pid in server_pids)

    def server_mb(key: str) -> float:
        return sum(_status_mb(pid, key) for pid in server_pids)

    try:
        time.sleep(0.5)
        base_rss = server_mb("VmRSS")
        per = [w.clients // n_procs + (1 if i < w.clients % n_procs else 0) for i in range(n_procs)]
        sample = w.parse_sample()
        gens = []
        first = 0
        # At most ~4,000 handshakes pending in all (the server's listen queue is 4,096).
        inflight = max(100, 4000 // n_procs)
        for i, n in enumerate(per):
            parse = sample // n_procs + (1 if i < sample % n_procs else 0)
            args = ["--url", url, "--clients", str(n), "--duration", str(duration)]
            args += ["--warmup", str(warmup), "--ramp", "2500", "--inflight", str(inflight)]
            args += ["--parse", str(parse), "--first", str(first)]
            args += ["--connect-wait", f"{w.connect_wait:g}", "--transport", w.transport]
            if w.local_addresses:
                addr = w.local_addresses[i % len(w.local_addresses)]
                args += ["--local-address", addr]
            if w.throttle is not None:
                args += ["--throttle", str(w.throttle)]
            for k, v in w.extra.items():
                args += [f"--{k}", str(v)]
            gens.append(LoadGen(args))
            first += n
        # CPU over the measured period (connect + warm-up first): the server, each generator,
        # the whole machine; RSS at its end (the generators are still connected).
        pids = [g.proc.pid for g in gens]
        cpu: dict[str, Any] = {}
        done = threading.Event()
        started = time.monotonic()
        spy: subprocess.Popen[bytes] | None = None

        def sample_cpu() -> None:
            # The generators ramp, wait for all connections, warm up, then say so; they all
            # start measuring together.
            LoadGen.start_together(gens, w.connect_wait + 300 + warmup)
            if not LoadGen.wait_measuring(gens, 10) or done.is_set():
                return
            cpu["connect_wall_s"] = time.monotonic() - started
            cpu["load1"] = os.getloadavg()[0]
            t0 = time.monotonic()
            s0, m0 = server_cpu(), _machine_cpu_seconds()
            g0 = [_cpu_seconds(p) for p in pids]
            nonlocal spy
            if profile is not None:
                spy_args = ["-d", str(int(duration) - 1), "-f", "raw", "-r", "100", "--nonblocking"]
                spy_args += ["-p", str(servers.edges[0].pid), "-o", str(profile)]
                spy = subprocess.Popen(
                    ["py-spy", "record", *spy_args],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            done.wait(duration - 0.2)  # (a little early: the generators are still running)
            span = time.monotonic() - t0
            s1, m1 = server_cpu(), _machine_cpu_seconds()
            g1 = [_cpu_seconds(p) for p in pids]
            cpu["rss_mb"] = server_mb("VmRSS")
            cpu["server"] = 100 * (s1 - s0) / span
            cpu["gens"] = [100 * (b - a) / span for a, b in zip(g0, g1, strict=True)]
            cpu["machine"] = 100 * (m1 - m0) / span
            if spy is not None:
                spy.wait(30)

        th = threading.Thread(target=sample_cpu)
        th.start()
        try:
            results = [g.result(timeout=duration + warmup + w.connect_wait + 360) for g in gens]
        finally:
            done.set()
            th.join()
        merged = _merge(results)
        merged["loadgen_procs"] = n_procs
        merged["open_file_limit"] = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        merged["server_edges"] = len(servers.edges)
        merged["server_processes"] = len(servers.procs)
        if kind == "ticker":
            merged["server_stats"] = _server_stats(url, {p.pid for p in servers.edges})
        if "server" in cpu:
            merged["server_cpu_pct"] = round(cpu["server"], 1)
            merged["loadgen_cpu_pct"] = [round(c, 1) for c in cpu["gens"]]
            merged["loadgen_cpu_total_pct"] = round(sum(cpu["gens"]), 1)
            merged["machine_cpu_pct"] = round(cpu["machine"], 1)
            merged["other_cpu_pct"] = round(
                max(0.0, cpu["machine"] - cpu["server"] - sum(cpu["gens"])), 1
            )
            merged["load1_at_start"] = round(cpu["load1"], 2)
            merged["server_rss_mb"] = round(cpu["rss_mb"], 1)
        else:
            merged["server_cpu_pct"] = None
        merged["server_peak_rss_mb"] = round(server_mb("VmHWM"), 1)  # (sum of each one's peak)
        merged["server_base_rss_mb"] = round(base_rss, 1)
        if merged["connected"] and "rss_mb" in cpu:
            merged["kb_per_connection"] = round(
                1024 * (cpu["rss_mb"] - base_rss) / merged["connected"], 2
            )
        if merged.get("connect_s"):
            merged["connect_per_s"] = round(merged["connected"] / merged["connect_s"])
        merged["flags"] = flags(merged)
        return merged
    finally:
        servers.stop()
