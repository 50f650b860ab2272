"""``make bench``: fan-out workloads (Ticker vs two naive broadcasters: an aiohttp send loop and a
Node ``ws`` server), then the other benchmarks.

Writes ``bench/results/latest.md``, ``latest.json`` and ``latency.html`` (plotly: latency
percentiles vs clients). Figures are reported, never asserted. Every fan-out row gives latency
in both load-generator modes (``parse``: a sample of clients that decode every frame; ``scan``:
the rest, reading frames in place), each generator process's CPU, the rest of the machine's
CPU, and flags a row whose generator saturated or whose machine was busy.

    python -m bench [--only W1,W2] [--duration 15] [--no-naive] [--skip-extra]
    python -m bench --only W5        # 50,000 connections alone (~5 minutes)
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import os
import platform
import subprocess
import time
from pathlib import Path
from typing import Any

from bench.fanout import ROOT, WORKLOADS, raise_nofile, run_workload

RESULTS = ROOT / "bench" / "results"
BASELINES = ("naive", "node")  # the aiohttp send loop, the Node `ws` server


def _ensure_node_deps() -> None:
    """``npm ci`` the load generator's dependencies when one of them is missing."""
    bench = ROOT / "bench"
    wanted = json.loads((bench / "package.json").read_text())["dependencies"]
    if not all((bench / "node_modules" / name).is_dir() for name in wanted):
        subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund", "--prefix", str(ROOT / "bench")], check=True
        )


def _fmt(v: Any) -> str:
    return "-" if v is None else (f"{v:,.1f}" if isinstance(v, float) else f"{v:,}")


def _pct(lat: dict[str, Any] | None, key: str = "p99") -> str:
    return "-" if not lat else _fmt(lat.get(key))


def _table(rows: list[dict[str, Any]]) -> str:
    head = (
        "| workload | server | connected / open | connect s (/s) | quotes/s | frames/s | "
        "MB/s | B/frame | B/quote | p50 / p99 ms parse | p50 / p99 ms scan | server CPU % | "
        "loadgen CPU % (each) | others CPU % | RSS MB (KB/conn) | closes | flags |"
    )
    lines = [head, "|" + "---|" * 17]
    for r in rows:
        lat, plat = r.get("latency_ms"), r.get("latency_parse_ms")
        gens = r.get("loadgen_cpu_pct") or []
        kb = r.get("kb_per_connection")
        rss = r.get("server_rss_mb") or r.get("server_peak_rss_mb")
        lines.append(
            f"| {r['workload']} ({r['note']}) | {r['server']} | {r['connected']:,} / "
            f"{r['still_open']:,} | {_fmt(r.get('connect_s'))} ({_fmt(r.get('connect_per_s'))}) | "
            f"{_fmt(r['updates_per_s'])} | {_fmt(r['frames_per_s'])} | "
            f"{r['bytes_per_s'] / 1e6:,.2f} | "
            f"{_fmt(r.get('bytes_per_frame'))} | {_fmt(r.get('bytes_per_quote'))} | "
            f"{_pct(plat, 'p50')} / {_pct(plat)} (n={r.get('parse_clients', 0)}) | "
            f"{_pct(lat, 'p50')} / {_pct(lat)} | {_fmt(r['server_cpu_pct'])} | "
            f"{' '.join(f'{g:.0f}' for g in gens) or '-'} | {_fmt(r.get('other_cpu_pct'))} | "
            f"{_fmt(rss)} ({_fmt(kb)}) | {r['close_codes'] or '-'} | "
            f"{'; '.join(r.get('flags') or []) or 'ok'} |"
        )
    return "\n".join(lines)


def _ratios(rows: list[dict[str, Any]]) -> str:
    out = [
        "| workload | baseline | p99 (parse) baseline / Ticker | CPU baseline / Ticker |",
        "|---|---|---|---|",
    ]
    by = {(r["workload"], r["server"]): r for r in rows}
    for (name, server), r in by.items():
        if server != "ticker":
            continue
        for kind in BASELINES:
            base = by.get((name, kind))
            if base is None:
                continue
            p_t = (r.get("latency_parse_ms") or {}).get("p99")
            p_n = (base.get("latency_parse_ms") or {}).get("p99")
            c_t, c_n = r.get("server_cpu_pct"), base.get("server_cpu_pct")
            out.append(
                f"| {name} | {kind} | {p_n / p_t:,.1f}x | {c_n / c_t:,.2f}x |"
                if p_t and p_n and c_t and c_n
                else f"| {name} | {kind} | - | - |"
            )
    return "\n".join(out)


def _chart(rows: list[dict[str, Any]], path: Path) -> None:
    import plotly.graph_objects as go

    fig = go.Figure()
    for server in ("ticker", *BASELINES):
        pts = sorted(
            ((r["clients"], r) for r in rows if r["server"] == server and r.get("latency_ms")),
            key=lambda p: p[0],  # W2 and W2d have as many clients: never compare the rows
        )
        for pct in ("p50", "p99"):
            fig.add_trace(
                go.Scatter(
                    x=[c for c, _ in pts],
                    y=[(r.get("latency_parse_ms") or r["latency_ms"])[pct] for _, r in pts],
                    text=[r["workload"] for _, r in pts],
                    mode="lines+markers",
                    name=f"{server} {pct}",
                )
            )
    fig.update_layout(
        title="Feed-to-client latency vs clients",
        xaxis_title="clients",
        yaxis_title="latency ms (log; parsing clients)",
        yaxis_type="log",
        xaxis_type="log",
    )
    fig.write_html(path, include_plotlyjs=True, full_html=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--only", default="", help="comma-separated workload names")
    p.add_argument("--duration", type=float, default=15.0, help="measured seconds per run")
    p.add_argument("--procs", type=int, default=0, help="load-generator processes (0: auto)")
    p.add_argument(
        "--clients", type=int, default=0, help="run the workloads with this many clients instead"
    )
    p.add_argument(
        "--profile",
        action="store_true",
        help="py-spy the Ticker server over each measured period (bench/results/profile-*.txt)",
    )
    p.add_argument("--no-naive", action="store_true", help="skip the naive baselines")
    p.add_argument(
        "--skip-extra", action="store_true", help="skip the replay and dashboard benchmarks"
    )
    a = p.parse_args()
    _ensure_node_deps()
    nofile = raise_nofile()
    RESULTS.mkdir(parents=True, exist_ok=True)
    only = {s.strip() for s in a.only.split(",") if s.strip()}
    rows: list[dict[str, Any]] = []
    for w in WORKLOADS:
        if (only and w.name not in only) or (w.opt_in and w.name not in only):
            continue
        if a.clients:
            w = dataclasses.replace(w, clients=a.clients, note=f"{w.note}; {a.clients:,} clients")
        for server in ("ticker", *BASELINES):
            if server != "ticker" and (a.no_naive or not w.naive):
                continue
            print(
                f"running {w.name} ({w.clients} clients, {w.symbols} symbols, "
                f"{w.rate:g} ticks/s, {w.note}) against {server} ...",
                flush=True,
            )
            prof = RESULTS / f"profile-{w.name}.txt" if a.profile and server == "ticker" else None
            r = run_workload(server, w, a.duration, procs=a.procs or None, profile=prof)
            label = f"{server} ({w.edges} edges, ingest, Redis)" if w.edges else server
            r.update(workload=w.name, server=label, note=w.note, symbols=w.symbols, rate=w.rate)
            rows.append(r)
            print(_table([r]).splitlines()[-1], flush=True)
    extra: dict[str, Any] = {}
    if not a.skip_extra:
        for name in ("ingest", "replay", "dashboard", "redis"):
            try:
                mod = importlib.import_module(f"bench.{name}")
            except ModuleNotFoundError:
                continue
            print(f"running the {name} benchmark ...", flush=True)
            try:  # one that fails is reported; the others still run
                extra[name] = mod.run() if hasattr(mod, "run") else None
            except Exception as exc:  # any failure: reported, not hidden
                extra[name] = {"error": f"{type(exc).__name__}: {exc}"}
            print(json.dumps(extra[name], default=str), flush=True)
    md = [
        f"# Benchmark results ({time.strftime('%Y-%m-%d %H:%M')}, "
        f"{platform.machine()}, {len(os.sched_getaffinity(0))} cores, "
        f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())} at the end, "
        f"open-file limit {nofile:,})",
        "",
        "Latency = receive time - quote `ts`. *parse*: clients that JSON.parse every frame and "
        "apply it (as a real client must; the figure to trust); *scan*: every other client, "
        "reading frames in place. Percentiles: the worst load-generator process. *loadgen CPU*: "
        "each generator process, % of one core (>= 90: saturated, its latencies include its own "
        "queueing); *others*: the rest of the machine (other jobs sharing it).",
        "",
        _table(rows),
        "",
        "Ratios (higher is better for Ticker):",
        "",
        _ratios(rows),
        "",
    ]
    for name, res in extra.items():
        md += [f"## {name}", "", "```", json.dumps(res, indent=2, default=str), "```", ""]
    (RESULTS / "latest.md").write_text("\n".join(md))
    (RESULTS / "latest.json").write_text(
        json.dumps({"fanout": rows, **extra}, indent=2, default=str)
    )
    if rows:
        _chart(rows, RESULTS / "latency.html")
    print("\n".join(md))
    print(f"written: {RESULTS}/latest.md, latest.json, latency.html")


if __name__ == "__main__":
    main()
