"""The short crash harness: `marquee run` SIGKILLed (whole process group) at least five times, at
chosen moments (inside dbt, between landing and acknowledging Cymbio returns, between two
acknowledgements, during a catalog publish, before a partition's rename), then one run let finish.
It must finish, the marts must equal the sandbox truth, nothing may stay STARTED or hold a pool
slot, every acknowledged return must be in the lake and no temp file may be left.

The long version (100+ kills, random moments, seeds) is `benchmarks/crash_harness.py`."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.pipeline

HARNESS = Path(__file__).resolve().parent.parent / "benchmarks" / "crash_harness.py"


def _harness():
    spec = importlib.util.spec_from_file_location("crash_harness", HARNESS)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve their annotations through it
    spec.loader.exec_module(module)
    return module


def test_killed_runs_leave_nothing_the_next_run_cannot_repair(tmp_path):
    harness = _harness()
    plan = [
        ("dbt", None),
        ("ack", "cymbio_returns.before_ack"),
        ("ack", "cymbio_returns.after_ack"),
        ("publish", "warehouse.before_publish"),
        ("lake", "lake.before_rename"),
        ("time", None),
    ]
    report = harness.run_harness(kills=len(plan), seed=3, workdir=tmp_path, days=1, plan=plan, log=lambda _: None)
    print(report.summary())
    assert report.problems == []
    killed = [r for r in report.rounds if r.exit_code is None]
    assert len(killed) >= 5, report.summary()
    # Each targeted moment was really reached before the kill, not missed by a run that ended first.
    assert all(r.reached for r in report.rounds if r.mode != "time"), report.summary()
    assert report.final_exit == 0
    assert report.acknowledged > 0  # returns were acknowledged, so the lake check had something to prove
