"""Benchmark: the reverse sync's speed, against the rate limit's floor and without a limit.

    .venv/bin/python benchmarks/bench_sync.py limited       # 7 days, 100 requests / 10 s per destination
    .venv/bin/python benchmarks/bench_sync.py unlimited     # 50,000 Cordial orders, no limit
    .venv/bin/python benchmarks/bench_sync.py               # both

`limited`: the sandbox (in its own process) caps Cymbal and Cordial at 100 requests per trailing 10 s
and answers 429 past it; marquee is told the same limit (`CYMBAL_RATE_LIMIT`, `CORDIAL_RATE_LIMIT`).
`marquee run` loads the last 7 days and the sync phase is timed. The floor is what the limit
allows at best: the first `limit` requests at once, then `limit / window` per second, so
`max over destinations of (requests - limit) / (limit / window)`, with the requests counted by the
sandbox during the sync phase. Target: sync phase <= 1.1 x floor, zero 429s.

`unlimited`: one day of ~60,000 Ticket Tailor orders (every order on that day, ~51,000 of them
revenue-counting, so ~51,000 Cordial `upsertOrder` requests, one order each), landed and modelled
first, then only `sync_cordial_orders` is timed, end to end (read the models, build, push, log), at
concurrency 1 and 8. Target: >= 4 x the sync before issue 13 (commit cd21459: 1,142 orders/s end to
end on this machine, idle; see benchmarks/README.md).

`latency`: ~3,400 Cordial orders with the sandbox delaying replies ~20 ms, as a real API would be:
concurrency 1 against 8.
"""

from __future__ import annotations

import json
import math
import multiprocessing as mp
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
LIMIT, WINDOW = 100, 10.0
BASELINE_ORDERS_PER_S = 1142.0  # cd21459, idle, end to end (benchmarks/README.md)


def _serve(kwargs: dict, conn) -> None:  # noqa: ANN001 - a multiprocessing pipe
    from sandbox import start_sandbox
    from sandbox import tickettailor as tt_sandbox

    sb = start_sandbox(**kwargs)
    tt_sandbox.configure(sb.ctx, hourly_limit=10**9)
    conn.send(sb.env)
    conn.recv()


def _stats(env: dict) -> dict:
    url = env["TICKETTAILOR_BASE_URL"].rsplit("/", 1)[0] + "/_sandbox/stats"
    with urllib.request.urlopen(url) as resp:
        return json.load(resp)


def _sandbox(**kwargs):
    parent, child = mp.Pipe()
    proc = mp.get_context("spawn").Process(target=_serve, args=(kwargs, child), daemon=True)
    proc.start()
    return proc, parent, parent.recv()


def limited() -> dict:
    today = datetime.now(UTC).date()
    proc, pipe, env = _sandbox(anchor=today, rate_limits={"cymbal": (LIMIT, WINDOW), "cordial": (LIMIT, WINDOW)})
    try:
        with tempfile.TemporaryDirectory() as data:
            worker_env = {**os.environ, **env, "MARQUEE_DATA_DIR": data, "DAGSTER_HOME": f"{data}/dagster_home",
                          "MARQUEE_START_DATE": (today - timedelta(days=60)).isoformat(),
                          "CYMBAL_RATE_LIMIT": f"{LIMIT}/{WINDOW:g}s", "CORDIAL_RATE_LIMIT": f"{LIMIT}/{WINDOW:g}s"}
            out = subprocess.run([sys.executable, __file__, "--limited-worker", (today - timedelta(days=6)).isoformat(),
                                  today.isoformat()], cwd=PROJECT, env=worker_env, capture_output=True, text=True)
            if out.returncode != 0:
                raise SystemExit(out.stdout[-3000:] + out.stderr[-3000:])
            result = json.loads(out.stdout.strip().splitlines()[-1])
        after = _stats(env)
    finally:
        pipe.send("stop")
        proc.join(timeout=10)
    before = result["requests_before_sync"]
    requests = {p: after["requests"].get(p, 0) - before.get(p, 0) for p in ("cymbal", "cordial")}
    floor = max((n - LIMIT) / (LIMIT / WINDOW) for n in requests.values())
    return {"sync_seconds": result["sync_seconds"], "requests": requests, "floor_seconds": floor,
            "ratio": result["sync_seconds"] / floor if floor > 0 else float("nan"),
            "rate_limited_429s": after.get("rate_limited", {})}


def _limited_worker(start: str, end: str) -> None:
    from pipelines.runner import run_range

    env = {k: os.environ[k] for k in ("TICKETTAILOR_BASE_URL",)}
    seen: dict = {}

    def progress(line: str) -> None:
        if line.startswith("[sync] materializing"):
            seen.update(_stats(env)["requests"])

    results = run_range(date.fromisoformat(start), date.fromisoformat(end), progress=progress)
    sync = next(r for r in results if r.phase == "sync")
    print(json.dumps({"sync_seconds": sync.seconds, "requests_before_sync": seen}))


def unlimited(n: int = 60_000, faults: str = "", concurrency: int | None = None) -> dict:
    anchor = date(2026, 3, 15)
    proc, pipe, env = _sandbox(anchor=anchor, scale=math.ceil(n / 2000), history_days=0, faults=faults)
    try:
        with tempfile.TemporaryDirectory() as data:
            worker_env = {**os.environ, **env, "MARQUEE_DATA_DIR": data, "DAGSTER_HOME": f"{data}/dagster_home",
                          "MARQUEE_START_DATE": "2026-01-01"}
            if concurrency is not None:
                worker_env["MARQUEE_SYNC_CONCURRENCY"] = str(concurrency)
            out = subprocess.run([sys.executable, __file__, "--unlimited-worker", anchor.isoformat()], cwd=PROJECT,
                                 env=worker_env, capture_output=True, text=True)
            if out.returncode != 0:
                raise SystemExit(out.stdout[-3000:] + out.stderr[-3000:])
            result = json.loads(out.stdout.strip().splitlines()[-1])
    finally:
        pipe.send("stop")
        proc.join(timeout=10)
    result["orders_per_s"] = result["sent"] / result["seconds"]
    result["vs_baseline"] = result["orders_per_s"] / BASELINE_ORDERS_PER_S
    return result


def _unlimited_worker(day: str) -> None:
    import dagster as dg

    from assets import tickettailor
    from assets.dbt import defs as dbt_defs
    from assets.dbt import marquee_dbt_models
    from assets.providers import build_resources
    from assets.reverse_sync.assets import SYNC_ASSETS

    anchor = date.fromisoformat(day)
    res = build_resources()
    tickettailor.land_orders(res["tickettailor"], [anchor])
    tickettailor.land_events(res["tickettailor"], [anchor])
    dg.materialize([marquee_dbt_models], resources={"dbt": dbt_defs.resources["dbt"]})
    t0 = time.perf_counter()
    result = dg.materialize(SYNC_ASSETS, resources=build_resources(), partition_key=day,
                            selection=dg.AssetSelection.assets("sync_cordial_orders"))
    seconds = time.perf_counter() - t0
    meta = result.get_asset_materialization_events()[0].materialization.metadata
    print(json.dumps({"sent": meta["sent"].value, "requests": meta["requests"].value, "seconds": seconds,
                      "push_seconds": meta["seconds"].value}))


def main(argv: list[str]) -> None:
    if argv[:1] == ["--limited-worker"]:
        _limited_worker(argv[1], argv[2])
        return
    if argv[:1] == ["--unlimited-worker"]:
        _unlimited_worker(argv[1])
        return
    which = argv[:1] or ["limited", "unlimited", "latency"]
    if "limited" in which or which == ["all"]:
        r = limited()
        print(f"limited  {LIMIT}/{WINDOW:g}s per destination: sync phase {r['sync_seconds']:.1f}s, floor "
              f"{r['floor_seconds']:.1f}s (x{r['ratio']:.3f}), requests {r['requests']}, "
              f"429s {r['rate_limited_429s'] or 0}", flush=True)
    if "latency" in which:
        # A real API is tens of milliseconds away: the sandbox delays replies ~20 ms ("slow" strikes
        # two requests of three), and requests in flight overlap that wait.
        for c in (1, 8):
            r = unlimited(4_000, faults="slow:1:0.02", concurrency=c)
            print(f"latency  ~20 ms replies, concurrency {c}: {r['sent']} Cordial orders in {r['push_seconds']:.1f}s "
                  f"of pushing: {r['sent'] / r['push_seconds']:.0f} orders/s", flush=True)
    if "unlimited" in which or which == ["all"]:
        for c in (1, 8):
            r = unlimited(concurrency=c)
            print(f"unlimited  concurrency {c}: {r['sent']} Cordial orders in {r['seconds']:.1f}s (pushing "
                  f"{r['push_seconds']:.1f}s): {r['orders_per_s']:.0f} orders/s ({r['vs_baseline']:.2f} x the "
                  f"{BASELINE_ORDERS_PER_S:.0f}/s before), {r['requests']} requests", flush=True)


if __name__ == "__main__":
    sys.path.insert(0, str(PROJECT))
    main(sys.argv[1:])
