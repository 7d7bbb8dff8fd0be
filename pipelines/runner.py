"""`marquee run` and `marquee demo`: the headless twin of a UI backfill.

A run has three phases, in dependency order, each one Dagster execution recorded in the same
instance the UI reads (so `marquee dev` shows what `marquee run` did):

1. raw:    every daily-partitioned landing asset, for the whole range in one run (the assets read
           `context.partition_time_window`, so one run covers many days);
2. models: the dbt assets, with the range passed as the half-open [min_date, max_date) window that
           the incremental models reload;
3. sync:   the reverse-sync assets, partitioned like orders, for the same range.

A failing asset does not stop the later phases (the marts still refresh for the providers that
landed); the command then exits non-zero naming every failing asset.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from pipelines import settings

SYNC_GROUP = "reverse_sync"
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"


class RunFailed(RuntimeError):
    def __init__(self, phase: str, failures: list[str]) -> None:
        self.phase = phase
        self.failures = failures
        super().__init__(f"{phase} phase failed: " + "; ".join(failures))


@dataclass
class PhaseResult:
    phase: str
    materialized: dict[str, int] = field(default_factory=dict)  # asset -> rows (or -1 if unknown)
    seconds: float = 0.0


def _dagster_home() -> Path:
    """A persistent instance shared with `marquee dev`, so the UI shows headless runs too."""
    home = Path(os.environ.get("DAGSTER_HOME") or settings.data_dir() / "dagster_home")
    home.mkdir(parents=True, exist_ok=True)
    os.environ["DAGSTER_HOME"] = str(home)
    from pipelines.instance import ensure_instance_config

    ensure_instance_config(home)  # the "duckdb" pool limit, shared with `marquee dev`
    return home


def _parse_day(value: str, flag: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise SystemExit(f"marquee run: {flag} {value!r} is not a date; use YYYY-MM-DD") from None


def _row_count(event) -> int:
    meta = event.materialization.metadata or {}
    value = meta.get("dagster/row_count")
    return int(value.value) if value is not None else -1


def _step_failures(result) -> list[str]:
    failures = []
    for event in result.all_events:
        if event.is_step_failure:
            data = event.step_failure_data
            message = data.error.message.strip() if data and data.error else "failed"
            failures.append(f"{event.step_key}: {message.splitlines()[0] if message else 'failed'}")
    return failures


def _skipped_by_provider(asset_keys: set[str]) -> dict[str, list[str]]:
    """Assets a successful phase selected but did not materialize: their provider skipped them.
    Asset names start with the provider (`sympla_orders`) or `sync_<provider>_`."""
    out: dict[str, list[str]] = {}
    for key in sorted(asset_keys):
        parts = key.split("_")
        provider = parts[1] if parts[0] == "sync" and len(parts) > 1 else parts[0]
        out.setdefault(provider, []).append(key)
    return out


def run_range(start: date, end: date, select: str | None = None,
              progress: Callable[[str], None] = print) -> list[PhaseResult]:
    """Materialize raw partitions, models and syncs for the inclusive UTC day range [start, end]."""
    import dagster as dg

    from pipelines.definitions import build_definitions
    from pipelines.partitions import daily_partitions

    if end < start:
        raise SystemExit("marquee run: --end is before --start")
    first = settings.start_date()
    if start < first:
        raise SystemExit(
            f"marquee run: --start {start} is before MARQUEE_START_DATE ({first}); "
            "set MARQUEE_START_DATE earlier to load that history."
        )
    _dagster_home()
    defs = build_definitions()
    repo = defs.get_repository_def()
    graph = repo.asset_graph
    instance = dg.DagsterInstance.get()
    from pipelines.instance import ensure_pool_slots
    from resources.registry import credential_hint

    ensure_pool_slots(instance)

    wanted = None
    if select:
        wanted = dg.AssetSelection.from_string(select).resolve(graph)
        if not wanted:
            raise SystemExit(f"marquee run: --select {select!r} matches no asset")

    def keys_where(pred) -> set:
        keys = {k for k in graph.materializable_asset_keys if pred(graph.get(k))}
        return keys & wanted if wanted is not None else keys

    raw = keys_where(lambda n: n.partitions_def is not None and n.group_name != SYNC_GROUP)
    models = keys_where(lambda n: n.partitions_def is None and n.group_name != SYNC_GROUP)
    sync = keys_where(lambda n: n.group_name == SYNC_GROUP)
    range_tags = {RANGE_START_TAG: start.isoformat(), RANGE_END_TAG: end.isoformat()}
    if end.isoformat() not in daily_partitions.get_partition_keys():
        raise SystemExit(f"marquee run: {end} is not a partition yet (the last one is today, UTC)")

    # The full event log is in the instance (and the UI); the terminal gets warnings and errors.
    log_level = os.environ.get("MARQUEE_LOG_LEVEL", "WARNING").upper()
    results: list[PhaseResult] = []
    failed: list[tuple[str, list[str]]] = []
    plan = [("raw", raw, range_tags), ("models", models, {
        "marquee/min_date": start.isoformat(),
        "marquee/max_date": (end + timedelta(days=1)).isoformat(),
    }), ("sync", sync, range_tags)]
    # One job per phase, so each phase runs its assets' checks too and shows up as a named job
    # in the UI's run list.
    run_defs = dg.Definitions.merge(defs, dg.Definitions(jobs=[
        dg.define_asset_job(f"marquee_run_{phase}", selection=dg.AssetSelection.assets(*keys))
        for phase, keys, _ in plan if keys
    ]))
    for phase, keys, tags in plan:
        if not keys:
            progress(f"[{phase}] nothing selected")
            continue
        progress(f"[{phase}] materializing {len(keys)} asset(s) for {start} .. {end}")
        t0 = time.monotonic()
        job = run_defs.resolve_job_def(f"marquee_run_{phase}")
        result = job.execute_in_process(
            instance=instance, tags=tags, raise_on_error=False,
            run_config={"loggers": {"console": {"config": {"log_level": log_level}}}},
        )
        phase_result = PhaseResult(phase, seconds=time.monotonic() - t0)
        for event in result.get_asset_materialization_events():
            key = event.asset_key.to_user_string()
            rows = _row_count(event)
            # A single-run backfill reports one event per partition, each carrying the whole
            # run's row count: keep one, do not add them up.
            phase_result.materialized[key] = max(phase_result.materialized.get(key, 0), rows)
        for key, rows in sorted(phase_result.materialized.items()):
            progress(f"  {key}: {rows} rows")
        skipped = {k.to_user_string() for k in keys} - set(phase_result.materialized)
        for provider, names in _skipped_by_provider(skipped).items():
            progress(f"  skipped {provider}: credentials not configured (set {credential_hint(provider)}); "
                     f"{len(names)} asset(s) not materialized")
        if phase == "raw" and skipped and not phase_result.materialized and result.success:
            progress("  No provider is configured: set credentials (README, 'Connecting real accounts'), "
                     "or try `marquee demo` against the built-in sandbox.")
        results.append(phase_result)
        if not result.success:
            # Keep going: the marts still refresh for the providers that did land (as the
            # marts sensor does after a partly failed scheduled run); the command fails at the end.
            failed.append((phase, _step_failures(result) or ["the run failed (see the Dagster logs)"]))
            progress(f"[{phase}] FAILED after {phase_result.seconds:.1f}s")
        else:
            progress(f"[{phase}] done in {phase_result.seconds:.1f}s")
    if failed:
        raise RunFailed(failed[0][0], [line for _, lines in failed for line in lines])
    return results


def run_main(args: argparse.Namespace) -> int:
    start = _parse_day(args.start, "--start")
    end = _parse_day(args.end, "--end")
    try:
        run_range(start, end, args.select)
    except RunFailed as exc:
        print(f"marquee run FAILED (first in the {exc.phase} phase):", file=sys.stderr)
        for line in exc.failures:
            print(f"  - {line}", file=sys.stderr)
        return 1
    print(f"Warehouse: {settings.warehouse_path()}")
    return 0


def demo_main(args: argparse.Namespace) -> int:
    from pipelines.demo import run_demo

    return run_demo(days=args.days)


def today_utc() -> date:
    return datetime.now(UTC).date()
