"""Operating marquee: lookback schedules, the marts sensor, the DuckDB pool, anomaly checks, and
analysts reading the warehouse through a scheduled run.

Expected windows are computed from DESIGN.md's words ("yesterday plus the previous 7 days"), by
hand, not from the schedule code.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import dagster as dg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from dagster._core.definitions.dependency import NodeHandle

from pipelines import freshness, schedules
from pipelines.instance import ensure_instance_config, ensure_pool_slots

RANGE_START = "dagster/asset_partition_range_start"
RANGE_END = "dagster/asset_partition_range_end"


@pytest.fixture(autouse=True)
def _start_date(monkeypatch):
    monkeypatch.setenv("MARQUEE_START_DATE", "2026-01-01")


def _tick(day: date, hour: int = 1) -> dg.ScheduleEvaluationContext:
    return dg.build_schedule_context(scheduled_execution_time=datetime(day.year, day.month, day.day, hour, tzinfo=UTC))


# --- lookback windows ---------------------------------------------------------------------------


def test_orders_tick_requests_yesterday_plus_previous_seven_days_as_one_run():
    request = schedules.raw_orders_daily(_tick(date(2026, 3, 15)))
    assert isinstance(request, dg.RunRequest)
    # yesterday = 14 March; the 7 days before it are 7..13 March
    assert (request.tags[RANGE_START], request.tags[RANGE_END]) == ("2026-03-07", "2026-03-14")
    assert request.partition_key is None  # a range, not eight separate partitions


def test_attendance_tick_requests_yesterday_plus_two_days():
    request = schedules.raw_attendance_daily(_tick(date(2026, 3, 1)))
    # crosses a month boundary: yesterday 28 Feb 2026, plus 26 and 27 Feb
    assert (request.tags[RANGE_START], request.tags[RANGE_END]) == ("2026-02-26", "2026-02-28")


def test_snapshot_and_returns_ticks_take_the_day_they_run():
    assert schedules.raw_snapshots_daily(_tick(date(2026, 3, 15), 2)).partition_key == "2026-03-15"
    assert schedules.cymbio_returns_daily(_tick(date(2026, 3, 15), 2)).partition_key == "2026-03-15"


def test_lookback_is_clamped_to_the_first_partition(monkeypatch):
    monkeypatch.setenv("MARQUEE_START_DATE", "2026-03-12")
    request = schedules.raw_orders_daily(_tick(date(2026, 3, 15)))
    assert (request.tags[RANGE_START], request.tags[RANGE_END]) == ("2026-03-12", "2026-03-14")
    skipped = schedules.raw_orders_daily(_tick(date(2026, 3, 12)))  # yesterday precedes the start date
    assert isinstance(skipped, dg.SkipReason)


def test_default_statuses_read_only_on_vendor_writes_off():
    running, stopped = dg.DefaultScheduleStatus.RUNNING, dg.DefaultScheduleStatus.STOPPED
    assert schedules.raw_orders_daily.default_status == running
    assert schedules.raw_attendance_daily.default_status == running
    assert schedules.raw_snapshots_daily.default_status == running
    assert schedules.cymbio_returns_daily.default_status == stopped  # acknowledges at the vendor
    assert schedules.marts_after_raw.default_status == dg.DefaultSensorStatus.RUNNING
    assert schedules.reverse_sync_after_marts.default_status == dg.DefaultSensorStatus.STOPPED
    for sched in (schedules.raw_orders_daily, schedules.raw_attendance_daily, schedules.raw_snapshots_daily):
        assert sched.execution_timezone == "UTC"


# --- the real project: selections, pools, retries ------------------------------------------------


@pytest.fixture(scope="module")
def project():
    from pipelines.definitions import defs

    return defs.get_repository_def()


def _job_keys(repo, name: str) -> set[str]:
    return {k.to_user_string() for k in repo.get_job(name).asset_layer.selected_asset_keys}


def test_jobs_partition_the_raw_layer_by_how_each_entity_is_reloaded(project):
    orders, attendance = _job_keys(project, "raw_orders_job"), _job_keys(project, "raw_attendance_job")
    snapshots, returns = _job_keys(project, "raw_snapshots_job"), _job_keys(project, "cymbio_returns_job")
    assert {"tickettailor_orders", "sympla_orders"} <= orders
    assert {"tickettailor_issued_tickets", "sympla_participants"} <= attendance
    assert {"tickettailor_events", "sympla_events", "cymbal_campaign_analytics", "cymbio_variants"} <= snapshots
    assert "cymbio_returns" in returns
    jobs = [orders, attendance, snapshots, returns]
    for i, a in enumerate(jobs):
        for b in jobs[i + 1:]:
            assert not a & b, f"an asset is scheduled twice: {a & b}"
    graph = project.asset_graph
    # The raw layer: every partitioned asset but the reverse sync's.
    raw = {k.to_user_string() for k in graph.materializable_asset_keys
           if graph.get(k).partitions_def is not None and graph.get(k).group_name != "reverse_sync"}
    assert set().union(*jobs) == raw  # every raw asset has exactly one schedule


def test_marts_job_is_every_dbt_model_and_sync_job_every_sync_asset(project):
    from assets.dbt import marquee_dbt_models

    graph = project.asset_graph
    # Every asset of the dbt project: the seed the staging models need and the sync models included.
    dbt_keys = {k.to_user_string() for k in marquee_dbt_models.keys}
    assert {"marts/revenue", "reference/currencies", "sync/sync_orders"} <= dbt_keys
    assert _job_keys(project, "marts_job") == dbt_keys
    sync = {k.to_user_string() for k in graph.materializable_asset_keys if graph.get(k).group_name == "reverse_sync"}
    assert sync and _job_keys(project, "reverse_sync_job") == sync


def test_every_duckdb_writer_is_in_the_duckdb_pool_and_landing_is_not(project):
    graph = project.asset_graph
    for key in graph.materializable_asset_keys:
        node = graph.get(key)
        if node.group_name in ("staging", "intermediate", "marts"):
            assert node.pools == {"duckdb"}, f"{key.to_user_string()} writes DuckDB outside the pool"
        if node.partitions_def is not None and node.group_name != "reverse_sync":
            assert "duckdb" not in (node.pools or set()), f"{key.to_user_string()} would serialize landing"


def test_scheduled_jobs_retry_transient_failures(project):
    for name in ("raw_orders_job", "raw_attendance_job", "raw_snapshots_job", "cymbio_returns_job"):
        job = project.get_job(name)
        for node in job.graph.node_dict.values():
            policy = job.get_retry_policy_for_handle(NodeHandle(node.name, None))
            assert policy is not None and policy.max_retries >= 1, f"{name}/{node.name} never retries"


def test_marts_carry_a_freshness_policy_once_applied(project):
    from pipelines.definitions import defs

    graph = freshness.with_operational_policies(defs).get_repository_def().asset_graph
    marts = [k for k in graph.materializable_asset_keys if graph.get(k).group_name == "marts"]
    assert marts
    for key in marts:
        policy = graph.get(key).freshness_policy
        assert policy is not None and policy.fail_window.to_timedelta() == timedelta(hours=48)


def test_anomaly_checks_cover_orders_and_snapshots_only(project):
    checks = {(c.asset_key.to_user_string(), c.name) for c in project.asset_graph.asset_check_keys}
    assert ("tickettailor_orders", "row_count_anomaly") in checks
    assert ("sympla_orders", "row_count_anomaly") in checks
    assert ("cymbal_campaign_analytics", "row_count_anomaly") in checks
    assert ("sympla_participants", "row_count_anomaly") not in checks  # zero is normal on a day without events


# --- the duckdb pool, for real -------------------------------------------------------------------


def test_instance_config_keeps_operator_keys_and_caps_the_pool(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    operator = {"concurrency": {"pools": {"default_limit": 5}}, "run_monitoring": {"enabled": True}}
    (home / "dagster.yaml").write_text(yaml.safe_dump(operator))
    path = ensure_instance_config(home)
    config = yaml.safe_load(path.read_text())
    assert config["concurrency"]["pools"]["default_limit"] == 1
    assert config["run_monitoring"] == {"enabled": True}
    before = path.stat().st_mtime_ns
    ensure_instance_config(home)
    assert path.stat().st_mtime_ns == before  # nothing to change: not rewritten
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert instance.get_concurrency_config().pool_config.default_pool_limit == 1


def test_a_read_only_instance_config_that_lacks_the_pool_limit_is_named_not_overwritten(tmp_path, monkeypatch):
    import errno

    home = tmp_path / "home"
    home.mkdir()
    chart = {"run_monitoring": {"enabled": True}, "telemetry": {"enabled": False}}  # no pools, as a chart writes
    (home / "dagster.yaml").write_text(yaml.safe_dump(chart))
    ensure_instance_config(home)  # writable: completed in place
    complete = (home / "dagster.yaml").read_text()
    (home / "dagster.yaml").write_text(yaml.safe_dump(chart))

    def read_only(self, *args, **kwargs):  # a ConfigMap mount: root is refused too, unlike chmod
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(Path, "write_text", read_only)
    with pytest.raises(ValueError) as raised:
        ensure_instance_config(home)
    message = str(raised.value)
    assert str(home / "dagster.yaml") in message and "Read-only file system" in message
    assert "concurrency" in message and "default_limit: 1" in message and "DAGSTER_HOME" in message
    monkeypatch.undo()
    assert yaml.safe_load((home / "dagster.yaml").read_text()) == chart  # untouched
    # Once the file holds what marquee needs, a read-only mount is fine: nothing is written.
    (home / "dagster.yaml").write_text(complete)
    monkeypatch.setattr(Path, "write_text", read_only)
    assert ensure_instance_config(home) == (home / "dagster.yaml").resolve()


def _intervals(log: Path) -> dict[str, list[tuple[float, float]]]:
    out: dict[str, list[tuple[float, float]]] = {}
    for line in log.read_text().splitlines():
        rec = json.loads(line)
        out.setdefault(rec["kind"], []).append((rec["start"], rec["end"]))
    return out


def _overlaps(spans: list[tuple[float, float]]) -> bool:
    spans = sorted(spans)
    return any(b[0] < a[1] for a, b in zip(spans, spans[1:], strict=False))


_PROBE = """
import json, sys, time
import dagster as dg

LOG = sys.argv[1]

def record(kind):
    start = time.time()
    time.sleep(2.0)
    with open(LOG, "a") as fh:
        fh.write(json.dumps({"kind": kind, "start": start, "end": time.time()}) + "\\n")

@dg.asset(pool="duckdb")
def writer():
    from resources import lake

    with lake.build_lock():  # what marquee_dbt_models holds besides its pool slot
        record("duckdb")

@dg.asset
def landing():
    record("landing")

with dg.DagsterInstance.get() as instance:
    sys.exit(0 if dg.materialize([writer, landing], instance=instance).success else 1)
"""


def race_two_runs(home: Path, workdir: Path) -> dict[str, list[tuple[float, float]]]:
    """Two processes each materialize a pooled writer and an unpooled landing step on the instance
    in `home`; returns when each kind of step ran (the spans the probe recorded).

    The writer does what marquee's DuckDB writer does: it runs in the `duckdb` pool and holds the
    lake's build lock. The pool alone can admit both at one instant (resources/lake.py `build_lock`)."""
    log = workdir / "spans.jsonl"
    probe = workdir / "probe.py"
    probe.write_text(_PROBE)
    env = {**os.environ, "DAGSTER_HOME": str(home)}  # the test's MARQUEE_DATA_DIR: where the lock lives
    # Create the instance's storage (so the two racing runs do not both migrate it) and the pool's
    # slot row, as `marquee run` and `marquee dev` do before any run.
    with dg.DagsterInstance.from_config(str(home)) as instance:
        ensure_pool_slots(instance)
    procs = [subprocess.Popen([sys.executable, str(probe), str(log)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT) for _ in range(2)]
    outputs = [p.communicate(timeout=120)[0].decode(errors="replace") for p in procs]
    assert all(p.returncode == 0 for p in procs), outputs
    return _intervals(log)


@pytest.mark.pipeline
def test_concurrent_runs_take_turns_in_the_duckdb_pool_while_landing_overlaps(tmp_path):
    """Two runs, two processes, one instance configured by ensure_instance_config: the pool's
    steps never overlap, the unpooled ones do. Without the limit both writers would run at once."""
    home = tmp_path / "home"
    ensure_instance_config(home)
    spans = race_two_runs(home, tmp_path)
    assert len(spans["duckdb"]) == 2 and not _overlaps(spans["duckdb"]), spans
    assert _overlaps(spans["landing"]), "landing should not be serialized by the pool"


# --- row-count anomaly ---------------------------------------------------------------------------


def test_assess_day_flags_zero_after_busy_days_only():
    busy = {date(2026, 3, d): 50 + d for d in range(1, 8)}
    verdict = freshness.assess_day({**busy, date(2026, 3, 8): 0}, date(2026, 3, 8))
    assert verdict.anomalous and "no rows" in verdict.reason
    assert not freshness.assess_day({**busy, date(2026, 3, 8): 40}, date(2026, 3, 8)).anomalous
    quiet = {date(2026, 3, d): 2 for d in range(1, 8)}
    assert not freshness.assess_day({**quiet, date(2026, 3, 8): 0}, date(2026, 3, 8)).anomalous
    young = {date(2026, 3, 6): 80, date(2026, 3, 7): 90, date(2026, 3, 8): 0}
    assert not freshness.assess_day(young, date(2026, 3, 8)).anomalous  # two days are no baseline


def test_days_to_check_follow_the_run_and_skip_todays_partial_day():
    landed = [date(2026, 3, d) for d in range(1, 16)]
    today = date(2026, 3, 15)
    tags = {RANGE_START: "2026-03-07", RANGE_END: "2026-03-15"}
    assert freshness.days_to_check(tags, landed, today, include_today=False) == landed[6:14]
    assert freshness.days_to_check({}, landed, today, include_today=False) == [date(2026, 3, 14)]
    assert freshness.days_to_check({}, landed, today, include_today=True) == [today]


def test_anomaly_check_warns_on_a_zero_day_read_from_the_lake(tmp_path, monkeypatch):
    from assets.providers import entity
    from resources.lake import partition_path

    spec = entity("tickettailor_orders")
    yesterday = datetime.now(UTC).date() - timedelta(days=1)
    for back in range(1, 9):
        day = yesterday - timedelta(days=back)
        path = partition_path(spec, day)
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.table({"id": [f"or_{day}_{i}" for i in range(60)]}), path)
    path = partition_path(spec, yesterday)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({"id": pa.array([], pa.string())}), path)

    check = next(c for c in freshness.build_anomaly_checks()
                 if c.check_key.asset_key == dg.AssetKey("tickettailor_orders"))
    stand_in = dg.AssetSpec("tickettailor_orders")
    with dg.DagsterInstance.ephemeral() as instance:
        result = dg.materialize(
            [stand_in, check], instance=instance, selection=dg.AssetSelection.checks(check),
            tags={RANGE_START: (yesterday - timedelta(days=2)).isoformat(), RANGE_END: yesterday.isoformat()},
        )
    (evaluation,) = result.get_asset_check_evaluations()
    assert not evaluation.passed
    assert evaluation.severity == dg.AssetCheckSeverity.WARN
    assert yesterday.isoformat() in (evaluation.description or "")


# --- marts follow raw runs -----------------------------------------------------------------------


def _stand_in_project():
    from resources.partitions import daily_partitions

    @dg.asset(name="tickettailor_orders", group_name="tickettailor", partitions_def=daily_partitions,
              backfill_policy=dg.BackfillPolicy.single_run())
    def tt_orders(context) -> dg.MaterializeResult:  # nested: Dagster rejects string annotations
        return dg.MaterializeResult(metadata={"days": len(context.partition_keys)})

    @dg.asset(key=["marts", "revenue"], group_name="marts", deps=[tt_orders], pool="duckdb")
    def revenue(context) -> None:
        context.log.info(f"window {context.run.tags.get('marquee/min_date')}")

    return dg.Definitions(assets=[tt_orders, revenue], jobs=list(schedules.JOBS),
                          schedules=list(schedules.SCHEDULES), sensors=list(schedules.SENSORS))


def test_marts_sensor_requests_the_window_the_raw_run_reloaded():
    defs = _stand_in_project()
    request = schedules.raw_orders_daily(_tick(datetime.now(UTC).date()))
    with dg.DagsterInstance.ephemeral() as instance:
        first = schedules.marts_after_raw(dg.build_sensor_context(instance=instance))
        assert not first.run_requests  # switching on does not replay history
        run = defs.get_job_def("raw_orders_job").execute_in_process(instance=instance, tags=request.tags)
        assert run.success
        result = schedules.marts_after_raw(dg.build_sensor_context(instance=instance, cursor=first.cursor))
        (marts_request,) = result.run_requests
        start = date.fromisoformat(request.tags[RANGE_START])
        end = date.fromisoformat(request.tags[RANGE_END])
        assert marts_request.tags["marquee/min_date"] == start.isoformat()
        assert marts_request.tags["marquee/max_date"] == (end + timedelta(days=1)).isoformat()
        again = schedules.marts_after_raw(dg.build_sensor_context(instance=instance, cursor=result.cursor))
        assert not again.run_requests  # each raw run triggers the marts once


# --- analysts: a reader held open through a scheduled run ----------------------------------------


@pytest.mark.pipeline
def test_a_reader_held_open_never_blocks_a_scheduled_run_and_is_never_blocked(tmp_path, monkeypatch):
    """An analyst's read-only connection is open before the orders tick and stays open through
    the raw run and the marts build it triggers. A second reader queries in a loop all along.
    Both runs succeed, the loop never errors, and a fresh connection afterwards sees the marts."""
    import duckdb

    from assets.providers import entities
    from pipelines.definitions import build_definitions
    from resources.warehouse import publish_catalog
    from sandbox import start_sandbox

    today = datetime.now(UTC).date()
    data = tmp_path / "data"
    home = data / "dagster_home"
    monkeypatch.setenv("MARQUEE_DATA_DIR", str(data))
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setenv("MARQUEE_START_DATE", (today - timedelta(days=30)).isoformat())
    ensure_instance_config(home)
    warehouse = publish_catalog(data, entities())  # the catalog an analyst opens before anything landed

    with start_sandbox(anchor=today) as sandbox:
        for key, value in sandbox.env.items():
            monkeypatch.setenv(key, value)
        defs = build_definitions()
        analyst = duckdb.connect(str(warehouse), read_only=True)
        analyst.execute("select count(*) from raw.tickettailor_orders").fetchone()

        errors: list[str] = []
        queries = 0
        stop = threading.Event()

        def keep_reading() -> None:
            nonlocal queries
            while not stop.is_set():
                try:
                    con = duckdb.connect(str(warehouse), read_only=True)
                    try:
                        con.execute("select count(*) from raw.tickettailor_orders").fetchone()
                        queries += 1
                    finally:
                        con.close()
                except Exception as exc:  # noqa: BLE001 - any error here is the failure under test
                    errors.append(repr(exc))
                time.sleep(0.05)

        loop = threading.Thread(target=keep_reading, daemon=True)
        loop.start()
        with dg.DagsterInstance.get() as instance:
            sensor_cursor = schedules.marts_after_raw(dg.build_sensor_context(instance=instance)).cursor
            tick = schedules.raw_orders_daily(_tick(today))
            raw = defs.get_job_def("raw_orders_job").execute_in_process(
                instance=instance, tags=tick.tags, raise_on_error=False)
            assert raw.success
            # the marts build the sensor asks for, run as the daemon would run it
            follow = schedules.marts_after_raw(dg.build_sensor_context(instance=instance, cursor=sensor_cursor))
            (marts_request,) = follow.run_requests
            marts = defs.get_job_def("marts_job").execute_in_process(
                instance=instance, tags=marts_request.tags, raise_on_error=False)
            assert marts.success
        # the analyst's connection, open the whole time, still answers
        assert analyst.execute("select count(*) from raw.tickettailor_orders").fetchone() is not None
        analyst.close()
        stop.set()
        loop.join(timeout=10)

    assert not errors, errors[:3]
    assert queries > 10  # the loop really ran through the runs
    fresh = duckdb.connect(str(warehouse), read_only=True)
    try:
        landed = fresh.execute("select count(*) from raw.tickettailor_orders").fetchone()[0]
        revenue_rows = fresh.execute("select count(*) from marts.revenue").fetchone()[0]
    finally:
        fresh.close()
    assert landed > 0 and revenue_rows > 0
