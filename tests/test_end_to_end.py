"""End to end: the whole pipeline on the sandbox for a week, every mart row compared with the
ground truth the sandbox computes from its own dataset (in Python, not SQL), to the cent.
Then again with faults switched on: the same marts."""

from __future__ import annotations

from datetime import date

import pytest

from pipelines.sandbox import start_sandbox, truth

ANCHOR = date(2026, 3, 15)
START = date(2026, 3, 9)
END = ANCHOR

pytestmark = pytest.mark.slow


def _run_week(monkeypatch, tmp_path, faults: str = ""):
    from pipelines.runner import run_range

    data = tmp_path / ("data-faults" if faults else "data")
    monkeypatch.setenv("MARQUEE_DATA_DIR", str(data))
    monkeypatch.setenv("DAGSTER_HOME", str(data / "dagster_home"))
    monkeypatch.setenv("MARQUEE_START_DATE", "2026-01-01")
    with start_sandbox(anchor=ANCHOR, faults=faults) as sandbox:
        for key, value in sandbox.env.items():
            monkeypatch.setenv(key, value)
        run_range(START, END, progress=lambda _: None)
        world = sandbox.world
    return world, truth.read_marts(data / "warehouse.duckdb")


def check_against_truth(world, marts):
    truth.assert_marts_match(None, world, START, END, marts=marts)


def test_marts_match_ground_truth(monkeypatch, tmp_path):
    world, marts = _run_week(monkeypatch, tmp_path)
    assert marts["revenue"], "the sandbox week must produce revenue rows"
    assert {r["currency"] for r in marts["revenue"]} >= {"BRL", "JPY"}
    check_against_truth(world, marts)


def test_marts_match_ground_truth_under_faults(monkeypatch, tmp_path):
    world, marts = _run_week(monkeypatch, tmp_path, faults="429:0.05,5xx:0.05,reset:0.03,truncate:0.03,repeat:0.1")
    check_against_truth(world, marts)
