"""Benchmark: land N Ticket Tailor orders from the sandbox into ONE daily partition.

    .venv/bin/python benchmarks/bench_landing_tickettailor.py            # N = 1,000,000
    .venv/bin/python benchmarks/bench_landing_tickettailor.py 50000 200000 1000000

For each N it starts the sandbox in its own process (so the sandbox's memory is not counted), with
every order created on the anchor day (`history_days=0`) and the rate budget lifted, then lands that
day in a fresh worker process and reports records/s, the worker's peak RSS, and the HTTP requests
the sandbox received against the minimum ceil(N / 100) (Ticket Tailor's page size).
Targets: peak RSS under 500 MB and flat as N grows; requests = minimum + at most one.
"""

from __future__ import annotations

import json
import math
import multiprocessing as mp
import os
import resource
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import date
from pathlib import Path

import pyarrow.parquet as pq

PROJECT = Path(__file__).resolve().parent.parent
ANCHOR = date(2026, 3, 15)
ORDERS_PER_SCALE = 2000


def _serve(scale: int, conn: object) -> None:
    from sandbox import start_sandbox
    from sandbox import tickettailor as tt_sandbox

    sb = start_sandbox(scale=scale, anchor=ANCHOR, history_days=0)
    tt_sandbox.configure(sb.ctx, hourly_limit=10**9)
    conn.send(sb.env)  # type: ignore[attr-defined]
    conn.recv()  # type: ignore[attr-defined]  # block until the parent is done


def _worker() -> None:
    """Runs in a fresh process: land the anchor day and print a JSON line."""
    from assets import tickettailor as tt
    from assets.providers import build_resources
    from resources import lake

    if os.environ.get("BENCH_ROW_GROUP_MIB"):  # tuning runs: the row-group size to try
        lake.ROW_GROUP_BYTES = int(float(os.environ["BENCH_ROW_GROUP_MIB"]) * 2**20)
    client = build_resources()["tickettailor"]
    baseline_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # after imports, before landing
    start = time.perf_counter()
    results = tt.land_orders(client, [ANCHOR])
    seconds = time.perf_counter() - start
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    print(json.dumps({
        "orders": results["tickettailor_orders"].row_count,
        "line_items": results["tickettailor_order_line_items"].row_count,
        "issued_tickets": results["tickettailor_order_issued_tickets"].row_count,
        "quarantined": results["tickettailor_orders"].quarantine_count,
        "seconds": seconds,
        "peak_rss_mb": peak_kb / 1024,
        "baseline_rss_mb": baseline_kb / 1024,
    }))


def bench(n: int) -> dict:
    scale = max(1, math.ceil(n / ORDERS_PER_SCALE))
    parent, child = mp.Pipe()
    server = mp.get_context("spawn").Process(target=_serve, args=(scale, child), daemon=True)
    server.start()
    env = parent.recv()
    stats_url = env["TICKETTAILOR_BASE_URL"].rsplit("/", 1)[0] + "/_sandbox/stats"
    with tempfile.TemporaryDirectory() as data:
        worker_env = {**os.environ, **env, "MARQUEE_DATA_DIR": data}
        proc = subprocess.run([sys.executable, __file__, "--worker"], cwd=PROJECT, env=worker_env,
                              capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise SystemExit(proc.stderr[-3000:])
        out = json.loads(proc.stdout.strip().splitlines()[-1])
        size = sum(f.stat().st_size for f in Path(data).rglob("*.parquet"))
        row_groups = {p.parent.parent.name: pq.read_metadata(p).num_row_groups
                      for p in Path(data).glob("lake/raw/tickettailor/*/date=*/part-0.parquet")}
    with urllib.request.urlopen(stats_url) as resp:
        requests = json.load(resp)["requests"].get("tickettailor", 0)
    parent.send("stop")
    server.join(timeout=10)
    if server.is_alive():
        server.terminate()
    minimum = math.ceil(out["orders"] / 100) if out["orders"] else 1
    out.update(requested_n=n, records_per_s=out["orders"] / out["seconds"], requests=requests,
               min_requests=minimum, extra_requests=requests - minimum, lake_mb=size / 2**20,
               row_groups=row_groups)
    return out


def main(argv: list[str]) -> None:
    if argv and argv[0] == "--worker":
        _worker()
        return
    sizes = [int(a) for a in argv] or [1_000_000]
    header = ("N", "orders", "s", "rec/s", "peakMB", "vs1st", "baseMB", "req", "min", "extra", "lakeMB")
    widths = (9, 9, 7, 8, 7, 6, 7, 6, 6, 5, 7)
    print(" ".join(f"{h:>{w}}" for h, w in zip(header, widths, strict=True)))
    first_peak = None
    for n in sizes:
        r = bench(n)
        first_peak = first_peak or r["peak_rss_mb"]
        growth = 100 * (r["peak_rss_mb"] / first_peak - 1)  # the flatness target: 5M within 10% of 1M
        print(f"{r['requested_n']:>9} {r['orders']:>9} {r['seconds']:>7.1f} {r['records_per_s']:>8.0f} "
              f"{r['peak_rss_mb']:>7.0f} {growth:>+5.1f}% {r.get('baseline_rss_mb', 0):>7.0f} "
              f"{r['requests']:>6} {r['min_requests']:>6} {r['extra_requests']:>5} "
              f"{r['lake_mb']:>7.1f}  row groups {r['row_groups']}", flush=True)


if __name__ == "__main__":
    sys.path.insert(0, str(PROJECT))
    main(sys.argv[1:])
