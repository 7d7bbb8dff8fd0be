"""`marquee reap [--run-id RUN]`: fail runs whose process died and free their pool slots (pipelines/reaper.py)."""

from __future__ import annotations

import argparse
from collections.abc import Iterable
from typing import Any

import dagster as dg

from pipelines.instance import MARQUEE_POOLS, dagster_home
from pipelines.reaper import REAP_COMMAND, describe_run, holders, judge, reap_dead_runs, stop_run


def main(args: argparse.Namespace) -> int:
    dagster_home()
    with dg.DagsterInstance.get() as instance:
        if getattr(args, "run_id", None):
            return stop_run(instance, args.run_id)
        lines = reap_dead_runs(instance)
        for line in lines:
            print(f"reaped {line}")
        for pool, run_ids in _held_pools(instance).items():
            for run_id in run_ids:
                run = instance.get_run_by_id(run_id)
                why = judge(run.tags).reason if run else "the run is gone from the instance"
                print(f"pool {pool}: held by {describe_run(instance, run_id)}; {why}. "
                      f"To end it: {REAP_COMMAND} --run-id {run_id}")
        if not lines:
            print("no dead runs found")
    return 0


def _held_pools(instance: Any, pools: Iterable[str] | None = None) -> dict[str, list[str]]:
    out = {}
    for pool in pools or MARQUEE_POOLS:
        ids = holders(instance, pool)
        if ids:
            out[pool] = ids
    return out
