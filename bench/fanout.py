"""Fan-out benchmark: Ticker against a naive broadcaster, same load generator, workloads W1-W4.

I/O shell (processes and files). For each workload it starts the server (``ticker serve`` or
``bench.naive``) with a seeded ``sim`` feed, runs the Node ``ws`` load generator
(``bench/loadgen.mjs``, split over two processes), samples the server's CPU time and peak RSS from
/proc over the measured period, and collects latency percentiles (receive time - quote ``ts``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["WORKLOADS", "LoadGen", "Workload", "run_workload"]

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


WORKLOADS = [
    Workload("W1", 100, 50, 1000, 0, "throttle 0"),
    Workload("W2", 1000, 50, 1000, 0, "throttle 0"),
    Workload("W2d", 1000, 50, 1000, None, "default 100 ms window"),
    Workload("W3", 5000, 50, 10, 0, "throttle 0"),
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
]


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class LoadGen:
    """One running ``loadgen.mjs``: ``measuring`` is set when its measured period starts (it
    says so on stderr: its ramp adapts to how fast the server accepts), ``result()`` its report.
    """

    def __init__(self, args: list[str]) -> None:
        self.proc = subprocess.Popen(
            ["node", str(BENCH / "loadgen.mjs"), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.measuring = threading.Event()
        self.stderr: list[str] = []
        self._reader = threading.Thread(target=self._read_stderr, daemon=True)
        self._reader.start()

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            if '"measuring"' in line:
                self.measuring.set()
            else:
                self.stderr.append(line)

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
            # Every benchmark client comes from 127.0.0.1 (up to 10,000 of them).
            "--max-connections-per-ip",
            "0",
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


def _merge(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Combine the load generators' reports (percentiles: the worst of them, conservatively)."""
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
            "bytes_per_s",
            "errors",
            "seq_gaps",
        )
    }
    out["connect_s"] = max((r.get("connect_s") or 0.0) for r in results) if results else None
    lats = [r["latency_ms"] for r in results if r.get("latency_ms")]
    out["latency_ms"] = (
        {k: max(x[k] for x in lats) for k in ("p50", "p95", "p99", "max")} if lats else None
    )
    codes: dict[str, int] = {}
    for r in results:
        for k, v in r.get("close_codes", {}).items():
            codes[k] = codes.get(k, 0) + v
    out["close_codes"] = codes
    return out


def run_workload(
    kind: str, w: Workload, duration: float, warmup: float = 3.0, procs: int = 2
) -> dict[str, Any]:
    """Run one workload against one server kind; returns the merged figures."""
    proc, url = _start_server(kind, w)
    try:
        time.sleep(0.5)
        per = [w.clients // procs + (1 if i < w.clients % procs else 0) for i in range(procs)]
        gens = []
        for n in per:
            args = ["--url", url, "--clients", str(n), "--duration", str(duration)]
            args += ["--warmup", str(warmup), "--ramp", "2500"]
            if w.throttle is not None:
                args += ["--throttle", str(w.throttle)]
            for k, v in w.extra.items():
                args += [f"--{k}", str(v)]
            gens.append(LoadGen(args))
        # CPU and RSS over the measured period: connect + warm-up first, then sample.
        cpu = {"start": 0.0, "end": 0.0, "t0": 0.0, "t1": 0.0}
        done = threading.Event()

        def sample() -> None:
            # The generators ramp, wait for all connections (~2 min at most), warm up, then say so.
            if not LoadGen.wait_measuring(gens, 200 + warmup) or done.is_set():
                return
            cpu["start"], cpu["t0"] = _cpu_seconds(proc.pid), time.monotonic()
            done.wait(duration - 0.2)  # (a little early: the generators are still running)
            cpu["end"], cpu["t1"] = _cpu_seconds(proc.pid), time.monotonic()

        th = threading.Thread(target=sample)
        th.start()
        try:
            results = [g.result(timeout=duration + warmup + 240) for g in gens]
        finally:
            done.set()
            th.join()
        merged = _merge(results)
        span = cpu["t1"] - cpu["t0"]
        merged["server_cpu_pct"] = (
            round(100 * (cpu["end"] - cpu["start"]) / span, 1) if span > 0 else None
        )
        merged["server_peak_rss_mb"] = round(_peak_rss_mb(proc.pid), 1)
        return merged
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
