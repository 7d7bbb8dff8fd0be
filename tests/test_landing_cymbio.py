"""Cymbio landing against the sandbox: variants, order-line statuses, and the returns protocol —
land, fsync + rename, only then acknowledge; dedupe by returnId; re-running a past partition keeps
what it held — proven by killing the process at each step."""

from __future__ import annotations

import subprocess
import sys
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from assets import cymbio as cy
from resources import lake
from sandbox import cymbio as cy_sandbox
from tests.test_landing_tickettailor import (
    _materialize_script,
    check_results,
    materializations,
    run,
    subprocess_env,
)
from tests.test_landing_tickettailor import sandbox as sandbox  # noqa: F401  (fixture)

PROJECT = Path(__file__).resolve().parent.parent
DAY = date(2026, 3, 15)
NEXT = date(2026, 3, 16)


def _not_acknowledged(sb: Any) -> set[int]:
    return {r["returnId"] for r in cy_sandbox.current_returns(sb.ctx) if not r["acknowledged"]}


def _acknowledged(sb: Any) -> set[int]:
    return {r["returnId"] for r in cy_sandbox.current_returns(sb.ctx) if r["acknowledged"]}


def _landed_ids() -> list[int]:
    return list(lake.iter_column(cy.RETURNS, "return_id"))


def test_variants_and_order_line_statuses(sandbox: Any) -> None:  # noqa: F811
    result = run([cy.cymbio_variants, cy.cymbio_returns_assets, cy.cymbio_order_line_statuses,
                  *cy.PROVIDER.checks], DAY.isoformat())
    assert result.success
    mats = materializations(result)
    assert mats["cymbio_variants"]["dagster/row_count"] == cy_sandbox.variant_count(sandbox.world)
    returns = lake.read_partition(cy.RETURNS, DAY)
    order_ids = set(returns.column("cymbio_order_id").to_pylist()) - {None}
    statuses = lake.read_partition(cy.ORDER_LINE_STATUSES, DAY)
    assert set(statuses.column("cymbio_order_id").to_pylist()) == order_ids
    assert mats["cymbio_order_line_statuses"]["dagster/row_count"] == statuses.num_rows > len(order_ids) - 1
    lines = lake.read_partition(cy.RETURN_LINES, DAY)
    assert lines.num_rows == sum(returns.column("line_count").to_pylist())
    assert all(c.passed for c in check_results(result).values())
    # Re-running the (past) day keeps the catalog taken then: no rewrite, nothing written.
    catalog = lake.partition_path(cy.VARIANTS, DAY).read_bytes()
    again = run([cy.cymbio_variants], DAY.isoformat())
    assert again.success
    meta = materializations(again)["cymbio_variants"]
    assert (meta["dagster/row_count"], meta["snapshot_written_to"], meta["snapshot_kept_days"]) == (0, "none", 1)
    assert lake.partition_path(cy.VARIANTS, DAY).read_bytes() == catalog


def test_returns_land_then_acknowledge_and_are_never_landed_twice(sandbox: Any) -> None:  # noqa: F811
    pending = _not_acknowledged(sandbox)
    assert pending
    result = run([cy.cymbio_returns_assets], DAY.isoformat())
    assert result.success
    mats = materializations(result)
    assert mats["cymbio_returns"]["dagster/row_count"] == len(pending)
    assert mats["cymbio_returns"]["acknowledged"] == len(pending)
    assert set(_landed_ids()) == pending and _not_acknowledged(sandbox) == set()
    # Nothing new the next day: an empty typed partition, still one row per return overall.
    assert run([cy.cymbio_returns_assets], NEXT.isoformat()).success
    assert lake.read_partition(cy.RETURNS, NEXT).num_rows == 0
    assert sorted(_landed_ids()) == sorted(pending)


def test_rerunning_a_past_partition_keeps_its_returns(sandbox: Any) -> None:  # noqa: F811
    first = _not_acknowledged(sandbox)
    assert run([cy.cymbio_returns_assets], DAY.isoformat()).success
    new = set(cy_sandbox.add_returns(sandbox.ctx, 4))
    assert run([cy.cymbio_returns_assets], DAY.isoformat()).success
    assert set(lake.read_partition(cy.RETURNS, DAY).column("return_id").to_pylist()) == first | new
    assert run([cy.cymbio_returns_assets], DAY.isoformat()).success  # the API serves nothing now
    assert sorted(lake.read_partition(cy.RETURNS, DAY).column("return_id").to_pylist()) == sorted(first | new)
    lines = lake.read_partition(cy.RETURN_LINES, DAY)
    keys = list(zip(lines.column("return_id").to_pylist(), lines.column("line_number").to_pylist(), strict=True))
    assert len(keys) == len(set(keys))


@pytest.mark.parametrize(
    ("step", "landed_after_crash", "acked_after_crash"),
    [
        ("lake.before_rename", False, 0),  # died writing: nothing visible, nothing acknowledged
        ("lake.after_rename", False, 0),  # lines renamed, returns not: lines are not landed again
        ("lake.after_rename@2", True, 0),  # both files renamed, died before any acknowledgement
        ("cymbio_returns.before_ack", True, 0),
        ("cymbio_returns.after_ack@3", True, 3),  # died mid-acknowledgement
    ],
)
def test_crash_at_each_step_never_loses_or_duplicates_a_return(
        sandbox: Any, step: str, landed_after_crash: bool, acked_after_crash: int) -> None:  # noqa: F811
    pending = _not_acknowledged(sandbox)
    already_acked = _acknowledged(sandbox)
    script = _materialize_script("assets.cymbio", "cymbio_returns_assets")
    proc = subprocess.run([sys.executable, "-c", script, DAY.isoformat()], cwd=PROJECT, capture_output=True,
                          text=True, timeout=120, env=subprocess_env({lake.CRASH_ENV: step}))
    assert proc.returncode == lake.CRASH_EXIT_CODE, proc.stderr[-2000:]

    landed = set(_landed_ids())
    acked_now = _acknowledged(sandbox) - already_acked
    assert landed == (pending if landed_after_crash else set())
    assert len(acked_now) == acked_after_crash
    assert acked_now <= landed  # the invariant: nothing is acknowledged that is not durably landed

    # The next run (next day) picks up what was not acknowledged, lands only what is missing,
    # and acknowledges everything.
    assert run([cy.cymbio_returns_assets], NEXT.isoformat()).success
    ids = _landed_ids()
    assert sorted(ids) == sorted(pending)  # every return exactly once, across all partitions
    assert _not_acknowledged(sandbox) == set()
    next_day = set(lake.read_partition(cy.RETURNS, NEXT).column("return_id").to_pylist())
    assert next_day == (set() if landed_after_crash else pending)
    line_returns = set(lake.iter_column(cy.RETURN_LINES, "return_id"))
    assert line_returns == pending
