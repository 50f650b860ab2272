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
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["WORKLOADS", "LoadGen", "Workload", "raise_nofile", "run_workload"]

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
        opt_in=True,
        procs=8,
        local_addresses=tuple(f"127.0.0.{i}" for i in range(2, 10)),
        duration=60.0,
        server_args=("--max-connections", "0"),
        connect_wait=400.0,
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
        lines = self.proc.stdout.read().strip().splitlines()
        if not lines:
            raise RuntimeError(f"load generator failed: {''.join(self.stderr)[-500:]}")
        report: dict[str, Any] = json.loads(lines[-1])
        return report


def _start_server(kind: str, w: Workload) -> tuple[subprocess.Popen[str], str]:
    if kind == "ticker":
        cmd = [
            sys.executable,
            "-m",
            "ticker",
            "serve",
            "--port",
            "0",
            "--log-level",
            "WARNING",
            "--feed",
            f"sim:symbols={w.symbols},rate={w.rate:g},seed=1,burst=1",
            # Every benchmark client comes from 127.0.0.x (up to 50,000 of them).
            "--max-connections-per-ip",
            "0",
            *w.server_args,
        ]
    else:
        market = ["--port", "0", "--symbols", str(w.symbols), "--rate", f"{w.rate:g}"]
        if kind == "node":  # the Node `ws` broadcaster (the reference figures)
            cmd = ["node", str(BENCH / "naive_node.mjs"), *market]
        else:  # the aiohttp send loop
            cmd = [sys.executable, "-m", "bench.naive", *market]
    proc = subprocess.Popen(
        cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    if not line.startswith("listening on "):
        proc.kill()
        raise RuntimeError(f"{kind} server did not start: {line!r}")
    return proc, line.split()[-1].replace("http://", "ws://") + "/ws"


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


def _server_stats(ws_url: str) -> dict[str, Any]:
    """What Ticker itself counted (``/healthz`` stats): its closes by code, slow consumers,
    catch-ups, frames; {} when it does not answer."""
    url = ws_url.replace("ws://", "http://").removesuffix("/ws") + "/healthz"
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            health: dict[str, Any] = json.loads(resp.read())
    except (OSError, ValueError):
        return {}
    stats = health.get("stats", {})
    keep = ("closed_", "slow_", "flow_", "catchup", "frames_sent", "deltas_sent", "connections")
    return {k: v for k, v in sorted(stats.items()) if k.startswith(keep)}


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
    if nofile is not None and r.get("clients", 0) + 64 > nofile:
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
    proc, url = _start_server(kind, w)
    try:
        time.sleep(0.5)
        base_rss = _status_mb(proc.pid, "VmRSS")
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
            s0, m0 = _cpu_seconds(proc.pid), _machine_cpu_seconds()
            g0 = [_cpu_seconds(p) for p in pids]
            nonlocal spy
            if profile is not None:
                spy_args = ["-d", str(int(duration) - 1), "-f", "raw", "-r", "100", "--nonblocking"]
                spy = subprocess.Popen(
                    ["py-spy", "record", "-p", str(proc.pid), *spy_args, "-o", str(profile)],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            done.wait(duration - 0.2)  # (a little early: the generators are still running)
            span = time.monotonic() - t0
            s1, m1 = _cpu_seconds(proc.pid), _machine_cpu_seconds()
            g1 = [_cpu_seconds(p) for p in pids]
            cpu["rss_mb"] = _status_mb(proc.pid, "VmRSS")
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
        if kind == "ticker":
            merged["server_stats"] = _server_stats(url)
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
        merged["server_peak_rss_mb"] = round(_peak_rss_mb(proc.pid), 1)
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
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
