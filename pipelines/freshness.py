"""Is the data late, or suspiciously thin? Freshness policies on the marts, row-count anomaly checks.

Freshness: the marts are rebuilt after every daily raw load (pipelines/schedules.py, ~01:00-03:00
UTC). An analyst can trust them if they were built within the last day: WARN after 26 hours (this
morning's build is late), FAIL after 48 hours (a whole day was missed).

Row-count anomalies: a day with zero orders when the days before had many usually means the
vendor answered with an empty page, a filter changed, or a token lost its scope, not that nobody
bought a ticket. The check counts the rows of each landed day in the lake (Parquet footers, no
data read) and compares the day with the median of the 7 landed days before it. It is a WARN, not
an ERROR: a real quiet day is possible, and blocking the marts over it would hurt more than help.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import dagster as dg

from assets import providers
from resources.names import MART_GROUP, PARTITION_TAG, RANGE_END_TAG, RANGE_START_TAG

MART_FRESHNESS = dg.FreshnessPolicy.time_window(fail_window=timedelta(hours=48), warn_window=timedelta(hours=26))

ANOMALY_CHECK_NAME = "row_count_anomaly"
BASELINE_DAYS = 7  # how many landed days before the day under test form the baseline
MIN_BASELINE_DAYS = 3  # fewer than this: not enough history to call anything an anomaly
MIN_BASELINE_ROWS = 10  # below this median a zero day is plausible (a small shop on a quiet day)
DROP_RATIO = 0.1  # a day under 10% of the baseline median is an anomaly



@dataclass(frozen=True)
class DayVerdict:
    day: date
    rows: int | None
    baseline: float | None
    anomalous: bool
    reason: str


def assess_day(counts: dict[date, int], day: date) -> DayVerdict:
    """Compare `day` with the median of up to BASELINE_DAYS landed days before it."""
    rows = counts.get(day)
    before = sorted((d for d in counts if d < day), reverse=True)[:BASELINE_DAYS]
    if rows is None:
        return DayVerdict(day, None, None, False, "not landed (freshness is another check's job)")
    if len(before) < MIN_BASELINE_DAYS:
        return DayVerdict(day, rows, None, False, f"only {len(before)} earlier day(s) landed; no baseline yet")
    baseline = float(statistics.median(counts[d] for d in before))
    if baseline < MIN_BASELINE_ROWS:
        return DayVerdict(day, rows, baseline, False, f"baseline {baseline:g} rows/day is too small to judge")
    if rows < baseline * DROP_RATIO:
        what = "no rows" if rows == 0 else f"{rows} rows"
        return DayVerdict(day, rows, baseline, True,
                          f"{day}: {what}, against a median of {baseline:g}/day over the {len(before)} days before")
    return DayVerdict(day, rows, baseline, False, "within range")


def days_to_check(tags: dict[str, str], landed: Sequence[date], today: date, include_today: bool) -> list[date]:
    """The days the triggering run loaded (range or single partition); else the latest landed day.

    Today's partition of a flow entity (orders) is a day in progress, so it is never judged.
    """
    if RANGE_START_TAG in tags and RANGE_END_TAG in tags:
        lo, hi = date.fromisoformat(tags[RANGE_START_TAG]), date.fromisoformat(tags[RANGE_END_TAG])
        days = [d for d in landed if lo <= d <= hi]
    elif PARTITION_TAG in tags:
        days = [date.fromisoformat(tags[PARTITION_TAG])]
    else:
        eligible = [d for d in landed if include_today or d < today]
        days = eligible[-1:]
    return [d for d in days if include_today or d < today]


def _landed_counts(spec) -> dict[date, int]:
    from resources.lake import landed_days, partition_path
    from resources.lakefs import read_metadata

    return {day: read_metadata(partition_path(spec, day)).num_rows for day in landed_days(spec)}


def _build_anomaly_check(spec) -> dg.AssetChecksDefinition:
    flow = not spec.snapshot  # a flow entity's today is a day in progress: never judged

    @dg.asset_check(
        asset=dg.AssetKey(spec.name), name=ANOMALY_CHECK_NAME, blocking=False,
        description=(
            f"WARN when a landed day of {spec.name} has under {DROP_RATIO:.0%} of the median row count of "
            f"the {BASELINE_DAYS} landed days before it (e.g. zero rows after busy days). Counts come from the lake."
        ),
    )
    # `context` is left unannotated: Dagster rejects the string annotation `from __future__` produces.
    def _check(context) -> dg.AssetCheckResult:
        counts = _landed_counts(spec)
        today = datetime.now(UTC).date()
        days = days_to_check(dict(context.run.tags), sorted(counts), today, include_today=not flow)
        verdicts = [assess_day(counts, d) for d in days]
        bad = [v for v in verdicts if v.anomalous]
        return dg.AssetCheckResult(
            passed=not bad,
            severity=dg.AssetCheckSeverity.WARN,
            description="; ".join(v.reason for v in bad) if bad else "row counts within range",
            metadata={
                "days_checked": ", ".join(d.isoformat() for d in days) or "none",
                "rows_by_day": dg.MetadataValue.json({v.day.isoformat(): v.rows for v in verdicts}),
                "baseline_median": dg.MetadataValue.json(
                    {v.day.isoformat(): v.baseline for v in verdicts if v.baseline is not None}),
            },
        )

    return _check


def build_anomaly_checks() -> list[dg.AssetChecksDefinition]:
    """One WARN check per entity a provider watches (`Provider.watched`: its daily flow of orders,
    its snapshots). Issued tickets, participants and returns are not watched: they are keyed by event
    day or pull day, where a zero is normal (no event that day, no returns)."""
    by_name = {e.name: e for e in providers.entities()}
    return [_build_anomaly_check(by_name[name]) for p in providers.PROVIDERS for name in p.watched]


def with_operational_policies(defs: dg.Definitions) -> dg.Definitions:
    """Attach the marts' freshness policy. The dbt assets are defined elsewhere (assets/dbt.py), so
    pipelines/definitions.py applies this to the merged Definitions."""
    return defs.map_resolved_asset_specs(
        func=lambda spec: dg.apply_freshness_policy(spec, MART_FRESHNESS, overwrite_existing=False),
        selection=dg.AssetSelection.groups(MART_GROUP),
    )

