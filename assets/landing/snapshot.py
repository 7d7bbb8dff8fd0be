"""Snapshots: where an observation of *now* (events, catalog variants, campaign analytics) may be
written in a window of days, and the one function every snapshot entity lands through."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import date, datetime
from pathlib import Path
from typing import Any

import dagster as dg

from assets.landing.lander import EntityLander, EntityResult, SnapshotPlan
from resources import lake, lakefs
from resources.entity import EntitySpec
from resources.partitions import day_spans

SNAPSHOT_RULE = ("snapshot partitions can only be taken on their own day: a run writes today's observation "
                 "under today (UTC) when today is in the window, otherwise under the window's last day if that "
                 "day has no snapshot yet; every existing snapshot is kept untouched and no other day gets a file")


def plan_snapshot(spec: EntitySpec, days: Sequence[date], today: date | None = None,
                  root: Path | str | None = None) -> SnapshotPlan:
    """Decide where a snapshot taken now may be written, for a window of `days`.

    A snapshot is an observation of *now*: the API cannot say what it looked like on a past day.
    - Today (UTC) in the window: write under today (re-running today replaces today's snapshot).
    - Otherwise (a backfill of past days): write under the window's last day only if that day has
      no snapshot file yet, so the models still have current events / catalog to join against.
    - Every other day is left as it is: an existing snapshot there is genuine history and is never
      overwritten with today's state; a day without one stays without one.
    A window wholly after today (not reachable with the project's partitions) writes nothing.
    """
    window = tuple(sorted(set(days)))
    if not window:
        raise ValueError("a snapshot needs at least one day in its window")
    today = today or lake.utc_now().date()

    def has_file(day: date) -> bool:
        return lakefs.exists(lake.partition_path(spec, day, root))

    if today in window:
        target: date | None = today
        why = f"today ({today}) is in the window"
    elif window[-1] > today:
        target, why = None, f"the window starts after today ({today}): nothing can be observed yet"
    elif has_file(window[-1]):
        target = None
        why = (f"today ({today}) is outside the window and its last day ({window[-1]}) already holds a "
               "snapshot, which is kept")
    else:
        target = window[-1]
        why = f"today ({today}) is outside the window; its last day ({target}) had no snapshot yet"
    others = [d for d in window if d != target]
    kept = tuple(d for d in others if has_file(d))
    absent = tuple(d for d in others if d not in kept)
    return SnapshotPlan(window, today, target, kept, absent, why)


def day_ranges(days: Sequence[date]) -> str:
    """Compact text for a set of days: `2026-01-01..2026-01-31, 2026-02-03` (a year stays one line)."""
    runs = day_spans(list(days), max_days=max(len(days), 1))
    return ", ".join(r[0].isoformat() if len(r) == 1 else f"{r[0]}..{r[-1]}" for r in runs) or "none"


def land_snapshot(spec: EntitySpec, days: Sequence[date], pages: Callable[[], Iterable[Sequence[Any]]],
                  convert: Callable[[Any], dict[str, Any]], root: Path | str | None = None,
                  loaded_at: datetime | None = None, today: date | None = None,
                  log: Callable[[str], None] | None = None) -> EntityResult:
    """Land one snapshot entity for a window, under the rule of `plan_snapshot`: the provider's
    current state (`pages()`, fetched only if there is a day to write) goes to at most one day,
    and every other day of the window is left untouched. Logs one line for the days that get no
    file and why. The result's rows are the rows written by this run."""
    plan = plan_snapshot(spec, days, today, root)
    if plan.kept or plan.absent:
        parts = []
        if plan.kept:
            parts.append(f"kept the existing snapshot of {len(plan.kept)} day(s) ({day_ranges(plan.kept)})")
        if plan.absent:
            parts.append(f"left {len(plan.absent)} day(s) absent, no file ({day_ranges(plan.absent)})")
        written = f"written to {plan.target}" if plan.target else "nothing written"
        message = (f"{spec.name}: snapshot {written} because {plan.why}; snapshot partitions can only be taken "
                   f"on their own day, so {' and '.join(parts)}.")
        if log:
            log(message)
    if plan.target is None:
        return EntityResult(spec, [], snapshot=plan)
    with EntityLander(spec, [plan.target], loaded_at, root) as lander:
        for page in pages():
            lander.add_page(page, convert, plan.target)
        result = lander.commit()
    result.snapshot = plan
    return result


def snapshot_metadata(plan: SnapshotPlan) -> dict[str, Any]:
    return {
        "snapshot_written_to": plan.target.isoformat() if plan.target else "none",
        "snapshot_kept_days": dg.MetadataValue.int(len(plan.kept)),
        "snapshot_absent_days": dg.MetadataValue.int(len(plan.absent)),
        "snapshot_kept": day_ranges(plan.kept),
        "snapshot_reason": plan.why,
        "snapshot_note": SNAPSHOT_RULE,
    }


