"""When marquee runs by itself: daily schedules with lookback for the raw layer, then the marts.

Why schedules for the raw layer and not automation conditions: the Dagster docs recommend
schedules for "regular, time-based job runs" and declarative automation for "asset-centric,
condition-based updates". Pulling from a vendor API is time-based (nothing in Dagster changes
when a vendor's data does), and our loads need a *lookback*: orders reload 8 days because refunds
and cancellations rewrite old orders, participants reload 3 days for late check-ins. An
`AutomationCondition.on_cron` requests only the latest time partition, so it cannot express "the
last 8 days"; a schedule can, and we request the whole window as ONE run (a partition-key range,
like a single-run backfill), so a tick is one run and one set of API calls, not eight.

Why a sensor (not `AutomationCondition.eager`) for the marts: the dbt assets are unpartitioned and
incremental over a date window that the run's tags carry (`marquee/min_date`, `marquee/max_date`,
the same tags `marquee run` uses). A sensor that follows each finished raw run can hand dbt
exactly the days that run reloaded; an automation-launched run carries no such window, and
`eager` would fire once per upstream partition update instead of once per load.

Defaults (an operator can flip any of these in the UI; Dagster remembers the choice):
- RUNNING: the read-only pulls (orders, attendance, daily snapshots) and the marts sensor. A
  deployment is expected to keep the warehouse current without anyone remembering to switch it
  on, and a provider without credentials is skipped with a log line, so they are harmless on a
  laptop.
- STOPPED: anything that changes state at a vendor. `cymbio_returns_daily` acknowledges returns
  (an acknowledged return is never served again, so a laptop running it against the real account
  would take returns away from production) and `reverse_sync_after_marts` pushes to Cymbal and
  Cordial. Turn them on once, in the one deployment that owns those accounts.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta

import dagster as dg

from assets import providers
from assets.reverse_sync.assets import DESTINATIONS as SYNC_DESTINATIONS
from resources import settings
from resources.names import (
    DBT_GROUPS,
    MAX_DATE_TAG,
    MIN_DATE_TAG,
    PARTITION_TAG,
    RANGE_END_TAG,
    RANGE_START_TAG,
    SYNC_GROUP,
    TRIGGERED_BY_TAG,
    provider_tag,
)

# The half-open [min_date, max_date) window the incremental dbt models reload (see pipelines/runner.py).


# Lookbacks, in days before "yesterday" (DESIGN.md, Orchestration).
ORDERS_LOOKBACK_DAYS = 7
ATTENDANCE_LOOKBACK_DAYS = 2
SYNC_LOOKBACK_DAYS = ORDERS_LOOKBACK_DAYS  # reverse sync is partitioned like orders

# Transient failures (a provider's bad minute, a reset connection that outlived the HTTP core's
# own retries) get a few more tries at the asset level, spaced out so a rate-limit window can
# pass. An asset that knows a failure is permanent (401/403) raises `dg.Failure(allow_retries=False)`.
# `op_retry_policy` only applies to assets that do not declare their own `retry_policy`.
TRANSIENT_RETRY = dg.RetryPolicy(
    max_retries=3, delay=30, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS,
)

# --- selections: by the schedule role each provider declares for its assets (assets/providers.py) ---

def _role(role: str) -> dg.AssetSelection:
    # A key query rather than `AssetSelection.assets`: a code location that leaves a provider out (a
    # test's stand-in project) still resolves the jobs, with what it has.
    return dg.AssetSelection.from_string(" or ".join(f'key:"{name}"' for name in providers.with_role(role)))


# Ticketing orders and the entities landed under the order's creation day (line items, the tickets
# inside an order).
ORDERS_SELECTION = _role("orders")
# Landed under the event's start date.
ATTENDANCE_SELECTION = _role("attendance")
# Cymbio returns (and what lands with them) mutate vendor state: their own, default-off schedule.
RETURNS_SELECTION = _role("returns")
# Daily snapshots (events, catalog variants, campaign analytics).
SNAPSHOTS_SELECTION = _role("snapshot")
MARTS_SELECTION = dg.AssetSelection.groups(*DBT_GROUPS)
SYNC_SELECTION = dg.AssetSelection.groups(SYNC_GROUP)


def _calls(provider_names: Iterable[str]) -> dict[str, str]:
    """Job tags that put every run of a job in the run queue's per-provider limits (resources/names.py).

    Job tags, not the schedules' run requests: they reach every run of the job, whether a schedule, a
    sensor, a backfill or the launchpad started it."""
    return {provider_tag(name): "true" for name in sorted(set(provider_names))}


raw_orders_job = dg.define_asset_job(
    "raw_orders_job", selection=ORDERS_SELECTION, tags=_calls(providers.providers_with_role("orders")),
    op_retry_policy=TRANSIENT_RETRY,
    description="Ticketing orders by creation day (UTC); scheduled with an 8-day lookback.",
)
raw_attendance_job = dg.define_asset_job(
    "raw_attendance_job", selection=ATTENDANCE_SELECTION, tags=_calls(providers.providers_with_role("attendance")),
    op_retry_policy=TRANSIENT_RETRY,
    description="Issued tickets / participants by event start day; scheduled with a 3-day lookback.",
)
raw_snapshots_job = dg.define_asset_job(
    "raw_snapshots_job", selection=SNAPSHOTS_SELECTION, tags=_calls(providers.providers_with_role("snapshot")),
    op_retry_policy=TRANSIENT_RETRY,
    description="Daily snapshots (events, catalog variants, campaign analytics) under the day they were taken.",
)
cymbio_returns_job = dg.define_asset_job(
    "cymbio_returns_job", selection=RETURNS_SELECTION, tags=_calls(providers.providers_with_role("returns")),
    op_retry_policy=TRANSIENT_RETRY,
    description="Cymbio returns under the day they were pulled; acknowledges them once landed.",
)
marts_job = dg.define_asset_job(
    "marts_job", selection=MARTS_SELECTION, op_retry_policy=dg.RetryPolicy(max_retries=1, delay=60),
    description="dbt: staging -> intermediate -> marts and the sync models, for the window in the "
                "marquee/min_date tags.",
)
reverse_sync_job = dg.define_asset_job(
    "reverse_sync_job", selection=SYNC_SELECTION, tags=_calls(d.provider for d in SYNC_DESTINATIONS),
    op_retry_policy=TRANSIENT_RETRY,
    description="Push changed events, orders and consenting contacts to Cymbal and Cordial.",
)

RAW_JOBS = (raw_orders_job, raw_attendance_job, raw_snapshots_job, cymbio_returns_job)


# --- windows --------------------------------------------------------------------------------------


def _first_partition() -> date:
    return settings.start_date()


def lookback_days(tick: datetime, lookback: int) -> tuple[date, date] | None:
    """Yesterday (relative to the tick, UTC) and `lookback` days before it, clamped to the first
    partition; None if even yesterday is before MARQUEE_START_DATE."""
    end = tick.astimezone(UTC).date() - timedelta(days=1)
    start = max(end - timedelta(days=lookback), _first_partition())
    return (start, end) if end >= start else None


def range_tags(start: date, end: date) -> dict[str, str]:
    return {RANGE_START_TAG: start.isoformat(), RANGE_END_TAG: end.isoformat()}


def run_window(tags: dict[str, str]) -> tuple[date, date] | None:
    """The inclusive day range a run covered, from its partition or partition-range tags."""
    if RANGE_START_TAG in tags and RANGE_END_TAG in tags:
        return date.fromisoformat(tags[RANGE_START_TAG]), date.fromisoformat(tags[RANGE_END_TAG])
    if PARTITION_TAG in tags:
        day = date.fromisoformat(tags[PARTITION_TAG])
        return day, day
    if MIN_DATE_TAG in tags and MAX_DATE_TAG in tags:
        return (date.fromisoformat(tags[MIN_DATE_TAG]),
                date.fromisoformat(tags[MAX_DATE_TAG]) - timedelta(days=1))
    return None


def dbt_window_tags(start: date, end: date) -> dict[str, str]:
    return {MIN_DATE_TAG: start.isoformat(), MAX_DATE_TAG: (end + timedelta(days=1)).isoformat()}


def _lookback_request(context: dg.ScheduleEvaluationContext, lookback: int) -> dg.RunRequest | dg.SkipReason:
    window = lookback_days(context.scheduled_execution_time, lookback)
    if window is None:
        return dg.SkipReason(f"yesterday is before MARQUEE_START_DATE ({_first_partition()})")
    start, end = window
    # One run for the whole window: the assets read context.partition_time_window.
    return dg.RunRequest(run_key=f"{start}..{end}", tags=range_tags(start, end))


def _today_request(context: dg.ScheduleEvaluationContext) -> dg.RunRequest | dg.SkipReason:
    # A snapshot belongs to the day it is taken (lake contract), which is the tick's day.
    day = context.scheduled_execution_time.astimezone(UTC).date()
    if day < _first_partition():
        return dg.SkipReason(f"{day} is before MARQUEE_START_DATE ({_first_partition()})")
    return dg.RunRequest(run_key=day.isoformat(), partition_key=day.isoformat())


# --- schedules ------------------------------------------------------------------------------------
# Staggered so the two Ticket Tailor loads do not share one rate-limit hour at the same minute.

@dg.schedule(job=raw_orders_job, cron_schedule="0 1 * * *", execution_timezone="UTC",
             default_status=dg.DefaultScheduleStatus.RUNNING,
             description="01:00 UTC: orders created yesterday plus the 7 days before (refunds, cancellations).")
def raw_orders_daily(context: dg.ScheduleEvaluationContext) -> dg.RunRequest | dg.SkipReason:
    return _lookback_request(context, ORDERS_LOOKBACK_DAYS)


@dg.schedule(job=raw_attendance_job, cron_schedule="30 1 * * *", execution_timezone="UTC",
             default_status=dg.DefaultScheduleStatus.RUNNING,
             description="01:30 UTC: tickets/participants of events that started yesterday plus 2 more days.")
def raw_attendance_daily(context: dg.ScheduleEvaluationContext) -> dg.RunRequest | dg.SkipReason:
    return _lookback_request(context, ATTENDANCE_LOOKBACK_DAYS)


@dg.schedule(job=raw_snapshots_job, cron_schedule="0 2 * * *", execution_timezone="UTC",
             default_status=dg.DefaultScheduleStatus.RUNNING,
             description="02:00 UTC: today's snapshot of events, catalog variants and campaign analytics.")
def raw_snapshots_daily(context: dg.ScheduleEvaluationContext) -> dg.RunRequest | dg.SkipReason:
    return _today_request(context)


@dg.schedule(job=cymbio_returns_job, cron_schedule="30 2 * * *", execution_timezone="UTC",
             default_status=dg.DefaultScheduleStatus.STOPPED,
             description="02:30 UTC: pull and acknowledge Cymbio returns. Off by default: acknowledging "
                         "changes the vendor's state; enable it only in the deployment that owns the account.")
def cymbio_returns_daily(context: dg.ScheduleEvaluationContext) -> dg.RunRequest | dg.SkipReason:
    return _today_request(context)


# --- sensors: marts after raw, sync after marts ---------------------------------------------------

_FINISHED = [dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE]


def _finished_runs(instance: dg.DagsterInstance, job_names: Iterable[str], after: datetime,
                   statuses: list[dg.DagsterRunStatus]) -> list[dg.RunRecord]:
    records: list[dg.RunRecord] = []
    for name in job_names:
        records += instance.get_run_records(
            dg.RunsFilter(job_name=name, statuses=statuses, updated_after=after), limit=100,
        )
    return sorted(records, key=lambda r: r.update_timestamp)


def _follow(context: dg.SensorEvaluationContext, job_names: Iterable[str], statuses: list[dg.DagsterRunStatus],
            make_tags) -> dg.SensorResult | dg.SkipReason:
    """One run request per upstream run that finished since the cursor (a timestamp).

    The first evaluation only sets the cursor, so switching the sensor on does not replay history.
    `run_key` = the upstream run id: a sensor tick that is retried never launches twice.
    """
    now = datetime.now(UTC)
    if not context.cursor:
        return dg.SensorResult(skip_reason=dg.SkipReason("started; following runs from now on"),
                               cursor=now.isoformat())
    after = datetime.fromisoformat(context.cursor)
    requests: list[dg.RunRequest] = []
    newest = after
    for record in _finished_runs(context.instance, job_names, after, statuses):
        newest = max(newest, record.update_timestamp)
        run = record.dagster_run
        window = run_window(dict(run.tags))
        if window is None:
            continue
        # A partly failed raw run (one provider down) still landed the others: model those.
        if (run.status == dg.DagsterRunStatus.FAILURE
                and context.instance.get_run_stats(run.run_id).materializations == 0):
            continue
        tags = make_tags(*window)
        if tags is None:
            continue
        requests.append(dg.RunRequest(run_key=run.run_id, tags={**tags, TRIGGERED_BY_TAG: run.run_id}))
    if not requests:
        return dg.SensorResult(skip_reason=dg.SkipReason("no newly finished upstream run"),
                               cursor=newest.isoformat())
    return dg.SensorResult(run_requests=requests, cursor=newest.isoformat())


@dg.sensor(job=marts_job, minimum_interval_seconds=60, default_status=dg.DefaultSensorStatus.RUNNING,
           description="Builds the dbt models for the days each finished raw run reloaded.")
def marts_after_raw(context: dg.SensorEvaluationContext) -> dg.SensorResult | dg.SkipReason:
    return _follow(context, [j.name for j in RAW_JOBS], _FINISHED, dbt_window_tags)


def _sync_tags(start: date, end: date) -> dict[str, str] | None:
    # The sync is partitioned like orders; its sync log skips unchanged records, so resending a
    # window is cheap. Never request a partition that does not exist yet (after today, UTC).
    today = datetime.now(UTC).date()
    end = min(end, today)
    start = max(start, _first_partition())
    return range_tags(start, end) if start <= end else None


@dg.sensor(job=reverse_sync_job, minimum_interval_seconds=60, default_status=dg.DefaultSensorStatus.STOPPED,
           description="After the marts build: push changed records to Cymbal and Cordial. Off by "
                       "default: it writes to the marketing tools.")
def reverse_sync_after_marts(context: dg.SensorEvaluationContext) -> dg.SensorResult | dg.SkipReason:
    return _follow(context, [marts_job.name], [dg.DagsterRunStatus.SUCCESS], _sync_tags)


JOBS = (*RAW_JOBS, marts_job, reverse_sync_job)
SCHEDULES = (raw_orders_daily, raw_attendance_daily, raw_snapshots_daily, cymbio_returns_daily)
SENSORS = (marts_after_raw, reverse_sync_after_marts)
