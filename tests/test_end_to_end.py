"""End to end under faults: the whole pipeline on the sandbox for a week with 429s, 5xx, resets,
truncated and repeated replies switched on, and every mart row still equal to the ground truth the
sandbox computes from its own dataset (in Python, not SQL), to the cent. The same week without
faults is `marquee demo` in tests/test_demo.py."""

from __future__ import annotations

from datetime import date

import pytest

from sandbox import start_sandbox, truth

ANCHOR = date(2026, 3, 15)
START = date(2026, 3, 9)
END = ANCHOR

pytestmark = pytest.mark.pipeline

PII_KEY = "e2e-pii-key-7f3a9c0b5d"


def _run_week(monkeypatch, tmp_path, faults: str):
    from pipelines.runner import run_range

    data = tmp_path / "data-faults"
    monkeypatch.setenv("MARQUEE_DATA_DIR", str(data))
    monkeypatch.setenv("DAGSTER_HOME", str(data / "dagster_home"))
    monkeypatch.setenv("MARQUEE_START_DATE", "2026-01-01")
    monkeypatch.setenv("MARQUEE_PII_HASH_KEY", PII_KEY)
    with start_sandbox(anchor=ANCHOR, faults=faults) as sandbox:
        for key, value in sandbox.env.items():
            monkeypatch.setenv(key, value)
        run_range(START, END, progress=lambda _: None)
        world = sandbox.world
    return world, truth.read_marts(data / "warehouse.duckdb")


def test_marts_match_ground_truth_under_faults(monkeypatch, tmp_path):
    # Retry-After: 0 on the 429s: the clients honour the header (test_http_core proves the wait), and
    # here a second per 429 only made the run sleep; every fault still costs its retry.
    world, marts = _run_week(monkeypatch, tmp_path, faults="429:0.05:0,5xx:0.05,reset:0.03,truncate:0.03,repeat:0.1")
    truth.assert_marts_match(None, world, START, END, marts=marts)
