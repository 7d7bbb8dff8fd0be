"""Two processes pulling Cymbio returns for the same day never lose a return (issue 12, item 3).

The API serves a return until it is acknowledged and never again, so the lake holds the only copy
of every acknowledged return. Two real processes (forked, each with its own HTTP client) race
against the sandbox over loopback HTTP. A test-only pause seam (`lake.pause_point`) holds process B
at a chosen step of `land_returns` while process A runs, which forces the interleavings that lost
returns before the lake lock: B reads the day file, A lands and acknowledges r2, B replaces the
file with its stale copy. After every round, every return the sandbox saw acknowledged must be in
the lake, exactly once.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import time
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from assets import cymbio as cy
from assets.providers import build_resources
from resources import lake
from sandbox import cymbio as cy_sandbox
from tests.test_landing_tickettailor import sandbox as sandbox  # noqa: F401  (fixture)

DAY = date(2026, 3, 15)
# Where B is held while A runs, one round each; None = no forced order (a free race).
ROUNDS: list[str | None] = [
    "cymbio_returns.after_read",  # B read the day file; A lands + acknowledges; B would drop A's
    "cymbio_returns.after_fetch",  # B fetched; A lands + acknowledges the same returns
    "cymbio_returns.before_ack",  # B committed, not yet acknowledged
    "cymbio_returns.after_read",
    None,
    None,
]


def _pull(pause_dir: str, day: str) -> None:
    os.environ[lake.PAUSE_ENV] = pause_dir
    client = build_resources()["cymbio"]
    cy.land_returns(client, date.fromisoformat(day))


def _wait_until(cond: Any, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def _acknowledged(sb: Any) -> set[int]:
    return {r["returnId"] for r in cy_sandbox.current_returns(sb.ctx) if r["acknowledged"]}


def _race(tmp: Path, held: str | None) -> None:
    ctx = mp.get_context("fork")  # the test process already imported everything: a child starts in ms
    a_dir, b_dir = tmp / "a", tmp / "b"
    a_dir.mkdir(parents=True)
    b_dir.mkdir(parents=True)
    hold = b_dir / f"{held}.hold"
    if held:
        hold.touch()
    b = ctx.Process(target=_pull, args=(str(b_dir), DAY.isoformat()))
    b.start()
    if held:
        _wait_until(lambda: (b_dir / f"{held}.reached").exists() or not b.is_alive(), f"B at {held}")
        assert b.is_alive(), f"B ended (exit {b.exitcode}) before reaching {held}"
    a = ctx.Process(target=_pull, args=(str(a_dir), DAY.isoformat()))
    a.start()
    if held:
        # Let A go as far as it can while B is held: to its end if nothing stops it, or into the
        # wait for B's lock (it asked for the lock and did not get it within a second).
        asked_at: list[float] = []

        def a_done_or_blocked() -> bool:
            if not a.is_alive() or (a_dir / "cymbio_returns.locked.reached").exists():
                return not a.is_alive()
            if (a_dir / "cymbio_returns.before_lock.reached").exists():
                asked_at.append(time.monotonic())
                return asked_at[-1] - asked_at[0] > 1.0
            return False

        _wait_until(a_done_or_blocked, "A to finish or to wait for the lock")
        hold.unlink()
    for proc, name in ((a, "A"), (b, "B")):
        proc.join(timeout=120)
        assert proc.exitcode == 0, f"process {name} failed (exit {proc.exitcode})"


def test_racing_processes_never_lose_an_acknowledged_return(sandbox: Any, tmp_path: Path) -> None:  # noqa: F811
    before = _acknowledged(sandbox)  # the sandbox starts with some returns acknowledged elsewhere
    for i, held in enumerate(ROUNDS):
        new = set(cy_sandbox.add_returns(sandbox.ctx, 3))
        _race(tmp_path / f"round{i}", held)
        acknowledged = _acknowledged(sandbox) - before
        landed = list(lake.iter_column(cy.RETURNS, "return_id"))
        assert new <= acknowledged, f"round {i} ({held}): the new returns were not all pulled"
        lost = acknowledged - set(landed)
        assert not lost, f"round {i} ({held}): acknowledged at Cymbio but not in the lake: {sorted(lost)}"
        assert len(landed) == len(set(landed)), f"round {i} ({held}): a return landed twice"
        lines = set(lake.iter_column(cy.RETURN_LINES, "return_id"))
        assert set(landed) <= lines, f"round {i} ({held}): a landed return has no lines"


def test_the_returns_asset_is_in_its_own_pool() -> None:
    # The instance's pools default_limit (1) applies to it: one returns pull at a time across runs.
    assert cy.cymbio_returns_assets.op.pool == "cymbio_returns"


@pytest.mark.parametrize("step", ["cymbio_returns.after_read"])
def test_the_lock_is_released_when_its_holder_is_killed(sandbox: Any, tmp_path: Path, step: str) -> None:  # noqa: F811
    """A SIGKILLed puller (held inside the lock) never blocks the next one: flock dies with it."""
    ctx = mp.get_context("fork")
    b_dir = tmp_path / "b"
    b_dir.mkdir()
    (b_dir / f"{step}.hold").touch()
    b = ctx.Process(target=_pull, args=(str(b_dir), DAY.isoformat()))
    b.start()
    _wait_until(lambda: (b_dir / f"{step}.reached").exists(), "B inside the lock")
    b.kill()
    b.join(timeout=30)
    pending = {r["returnId"] for r in cy_sandbox.current_returns(sandbox.ctx) if not r["acknowledged"]}
    outcome = cy.land_returns(build_resources()["cymbio"], DAY)
    assert set(outcome.acknowledged) == pending
    assert set(lake.iter_column(cy.RETURNS, "return_id")) >= pending
