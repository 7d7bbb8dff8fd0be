"""Ticket Tailor landing against the sandbox over loopback HTTP: counts against the sandbox's own
facts, idempotent re-runs, a killed re-run, quarantine, skipping when unconfigured, and parallel
partitions while an analyst holds the warehouse open."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, date, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import pyarrow as pa
import pytest

from assets import tickettailor as tt
from assets.providers import build_resources
from resources import lake, settings
from resources.partitions import window_bounds
from sandbox import start_sandbox
from sandbox import tickettailor as tt_sandbox

PROJECT = Path(__file__).resolve().parent.parent
ANCHOR = date(2026, 3, 15)


@pytest.fixture
def sandbox(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    with start_sandbox(anchor=ANCHOR) as sb:
        for key, value in sb.env.items():
            monkeypatch.setenv(key, value)
        yield sb


# --- helpers other landing tests import (no test_ prefix) ------------------------------------------


def run(assets: list, partition: str, resources: dict | None = None,
        instance: dg.DagsterInstance | None = None) -> dg.ExecuteInProcessResult:
    return dg.materialize(assets, partition_key=partition, resources=resources or build_resources(),
                          raise_on_error=False, instance=instance)


def materializations(result: dg.ExecuteInProcessResult) -> dict[str, dict[str, Any]]:
    out = {}
    for event in result.get_asset_materialization_events():
        mat = event.event_specific_data.materialization
        out[mat.asset_key.to_user_string()] = {k: v.value for k, v in mat.metadata.items()}
    return out


def check_results(result: dg.ExecuteInProcessResult) -> dict[tuple[str, str], Any]:
    return {(e.event_specific_data.asset_key.to_user_string(), e.event_specific_data.check_name): e.event_specific_data
            for e in result.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"}


def content(spec: Any, day: date) -> pa.Table:
    """A landed partition without `_loaded_at`, sorted by key: what must not change on a re-run."""
    table = lake.read_partition(spec, day)
    assert table is not None, f"{spec.name} {day} not landed"
    return table.drop_columns(["_loaded_at"]).sort_by([(k, "ascending") for k in spec.primary_key])


def subprocess_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != lake.CRASH_ENV}
    env.update(extra or {})
    return env


ALL_TT = [tt.tickettailor_orders_assets, tt.tickettailor_events, tt.tickettailor_issued_tickets, *tt.PROVIDER.checks]


# --- tests ----------------------------------------------------------------------------------------


def test_orders_land_per_creation_day_and_match_the_sandbox(sandbox: Any) -> None:
    facts = Counter(f.created_at.astimezone(UTC).date() for f in tt_sandbox.order_facts(sandbox.world))
    for day in (date(2026, 3, 1), date(2026, 3, 10)):
        result = run(ALL_TT, day.isoformat())
        assert result.success
        mats = materializations(result)
        assert set(mats) == {"tickettailor_orders", "tickettailor_order_line_items",
                             "tickettailor_order_issued_tickets", "tickettailor_events", "tickettailor_issued_tickets"}
        orders = mats["tickettailor_orders"]
        assert orders["dagster/row_count"] == facts[day] > 0
        assert [c.name for c in orders["dagster/column_schema"].columns][:3] == ["id", "event_id", "event_name"]
        assert orders["preview"].startswith("| id |") and "buyer_email" not in orders["preview"]
        assert orders["quarantined"] == 0
        table = lake.read_partition(tt.ORDERS, day)
        assert {d.date() for d in table.column("created_at").to_pylist()} == {day}
        assert table.column("id").to_pylist() and pa.types.is_int64(table.schema.field("total").type)
        # Children are their own entities, one row per nested record, keyed back to their order.
        items = lake.read_partition(tt.ORDER_LINE_ITEMS, day)
        assert set(items.column("order_id").to_pylist()) <= set(table.column("id").to_pylist())
        tickets = lake.read_partition(tt.ORDER_ISSUED_TICKETS, day)
        assert tickets.num_rows == sum(table.column("issued_ticket_count").to_pylist())
        assert mats["tickettailor_events"]["dagster/row_count"] == len(list(tt_sandbox.event_facts(sandbox.world)))
        checks = check_results(result)
        assert checks and all(c.passed for c in checks.values()), [k for k, c in checks.items() if not c.passed]
    con = duckdb.connect(str(settings.warehouse_path()), read_only=True)
    try:
        by_day = dict(con.execute("select _partition, count(*) from raw.tickettailor_orders group by 1").fetchall())
    finally:
        con.close()
    assert by_day == {date(2026, 3, 1): facts[date(2026, 3, 1)], date(2026, 3, 10): facts[date(2026, 3, 10)]}


def test_issued_tickets_land_under_the_event_start_day(sandbox: Any) -> None:
    events = list(tt_sandbox.event_facts(sandbox.world))
    per_event = Counter(f.event_id for f in tt_sandbox.ticket_facts(sandbox.world))
    day = events[0].starts_at.astimezone(UTC).date()
    expected = sum(per_event[e.event_id] for e in events if e.starts_at.astimezone(UTC).date() == day)
    result = run([tt.tickettailor_issued_tickets, *tt.PROVIDER.checks], day.isoformat())
    assert result.success
    assert materializations(result)["tickettailor_issued_tickets"]["dagster/row_count"] == expected > 0
    table = lake.read_partition(tt.ISSUED_TICKETS, day)
    assert {t.date() for t in table.column("event_start_at").to_pylist()} == {day}
    assert set(table.column("checked_in").to_pylist()) <= {True, False}


def test_rerun_is_idempotent(sandbox: Any) -> None:
    day = date(2026, 3, 10)
    contents = []
    for _ in range(3):
        assert run([tt.tickettailor_orders_assets], day.isoformat()).success
        contents.append([content(s, day) for s in (tt.ORDERS, tt.ORDER_LINE_ITEMS, tt.ORDER_ISSUED_TICKETS)])
    for later in contents[1:]:
        for a, b in zip(contents[0], later, strict=True):
            assert a.equals(b)
    assert lake.landed_days(tt.ORDERS) == [day]


def _materialize_script(module: str, asset_attr: str) -> str:
    return textwrap.dedent(f"""
        import sys
        import dagster as dg
        from assets.providers import build_resources
        import {module} as m
        result = dg.materialize([m.{asset_attr}], partition_key=sys.argv[1], resources=build_resources(),
                                raise_on_error=False)
        sys.exit(0 if result.success else 1)
    """)


def test_kill_mid_write_leaves_the_previous_partition_intact(sandbox: Any) -> None:
    day = date(2026, 3, 10)
    assert run([tt.tickettailor_orders_assets], day.isoformat()).success
    before = content(tt.ORDERS, day)
    script = _materialize_script("assets.tickettailor", "tickettailor_orders_assets")
    proc = subprocess.run([sys.executable, "-c", script, day.isoformat()], cwd=PROJECT, capture_output=True,
                          text=True, timeout=120, env=subprocess_env({lake.CRASH_ENV: "lake.before_rename"}))
    assert proc.returncode == lake.CRASH_EXIT_CODE, proc.stderr[-2000:]
    assert content(tt.ORDERS, day).equals(before)
    # And the next, uninterrupted run completes over the debris.
    assert run([tt.tickettailor_orders_assets], day.isoformat()).success
    assert content(tt.ORDERS, day).equals(before)


class _BrokenOrders:
    """A Ticket Tailor client whose one page holds two misfits among good orders."""

    def __init__(self, good: list[dict]) -> None:
        self.good = good

    def configured(self) -> bool:
        return True

    def iter_orders(self, start: Any, end: Any) -> Iterator[list[dict]]:
        missing_id = {k: v for k, v in self.good[0].items() if k != "id"}
        wrong_type = {**self.good[1], "id": "or_wrong", "total": "12.50"}
        yield [*self.good[2:], missing_id, wrong_type]


def test_misfit_records_are_quarantined_counted_and_flagged(sandbox: Any) -> None:
    day = date(2026, 3, 10)
    start, end = window_bounds(day, day)
    good = [o for page in build_resources()["tickettailor"].iter_orders(start, end) for o in page]
    result = run([tt.tickettailor_orders_assets, *tt.PROVIDER.checks], day.isoformat(),
                 resources={**build_resources(), "tickettailor": _BrokenOrders(good)})
    assert result.success  # the rest of the partition landed
    mats = materializations(result)
    assert mats["tickettailor_orders"]["dagster/row_count"] == len(good) - 2
    assert mats["tickettailor_orders"]["quarantined"] == 2
    q = lake.read_partition(tt.ORDERS, day, area="quarantine").to_pylist()
    assert sorted(r["reason"].split(":")[0] for r in q) == ["missing key 'id'", "total"]
    assert all(r["_raw"].startswith("{") for r in q)
    checks = check_results(result)
    flagged = checks[("tickettailor_orders", "quarantine_empty")]
    assert not flagged.passed and flagged.severity == dg.AssetCheckSeverity.WARN
    assert checks[("tickettailor_orders", "pk_unique")].passed
    con = duckdb.connect(str(settings.warehouse_path()), read_only=True)
    try:
        assert con.execute("select count(*) from raw.quarantine where entity = 'orders'").fetchone() == (2,)
    finally:
        con.close()


def test_unconfigured_provider_is_skipped_and_others_run(sandbox: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from assets import cymbal

    monkeypatch.delenv("TICKETTAILOR_API_KEY")
    instance = dg.DagsterInstance.ephemeral()
    result = run([*ALL_TT, cymbal.cymbal_campaign_analytics, *cymbal.PROVIDER.checks], "2026-03-10",
                 instance=instance)
    assert result.success
    assert set(materializations(result)) == {"cymbal_campaign_analytics"}
    lines = [e.user_message for e in instance.all_logs(result.run_id)
             if "credentials not configured" in (e.user_message or "")]
    assert len(lines) == 3 and all("TICKETTAILOR_API_KEY" in line for line in lines)  # one per TT asset
    assert not lake.landed_days(tt.ORDERS)


@pytest.mark.pipeline  # four Python processes, three of them Dagster runs: the suite's multi-process half
def test_parallel_partitions_while_a_reader_holds_the_warehouse(sandbox: Any, tmp_path: Path) -> None:
    from assets.providers import entities
    from resources.warehouse import publish_catalog

    warehouse = publish_catalog(entities=entities())
    stop = tmp_path / "stop"
    reader_script = textwrap.dedent(f"""
        import os, sys, time, duckdb
        con = duckdb.connect({str(warehouse)!r}, read_only=True)
        n = 0
        while not os.path.exists({str(stop)!r}):
            con.execute("select count(*) from raw.tickettailor_orders").fetchall()
            n += 1
            time.sleep(0.05)
        con.close()
        print(n)
    """)
    reader = subprocess.Popen([sys.executable, "-c", reader_script], cwd=PROJECT, env=subprocess_env(),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    days = ["2026-03-08", "2026-03-09", "2026-03-10"]
    script = _materialize_script("assets.tickettailor", "tickettailor_orders_assets")
    try:
        time.sleep(0.5)
        workers = [subprocess.Popen([sys.executable, "-c", script, d], cwd=PROJECT, env=subprocess_env(),
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for d in days]
        codes = [w.wait(timeout=180) for w in workers]
        assert codes == [0, 0, 0], [w.stderr.read()[-2000:] for w in workers]
    finally:
        stop.touch()
        out, err = reader.communicate(timeout=60)
    assert reader.returncode == 0, err[-2000:]
    assert int(out.strip()) > 0
    assert [d.isoformat() for d in lake.landed_days(tt.ORDERS)] == days
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        assert con.execute("select count(distinct _partition) from raw.tickettailor_orders").fetchone() == (3,)
    finally:
        con.close()


def test_single_run_backfill_lands_each_day_of_the_window(sandbox: Any) -> None:
    """A range run reads the partition time window: every day gets its own partition file."""
    facts = Counter(f.created_at.astimezone(UTC).date() for f in tt_sandbox.order_facts(sandbox.world))
    result = dg.materialize(
        [tt.tickettailor_orders_assets], resources=build_resources(), raise_on_error=False,
        tags={"dagster/asset_partition_range_start": "2026-03-05", "dagster/asset_partition_range_end": "2026-03-07"},
    )
    assert result.success
    days = [date(2026, 3, 5), date(2026, 3, 6), date(2026, 3, 7)]
    assert lake.landed_days(tt.ORDERS) == days
    for day in days:
        assert lake.read_partition(tt.ORDERS, day).num_rows == facts[day]
    # Each partition's row count is its own day's, and the run's count is beside it on every one.
    counts = {mat.partition: (mat.metadata["dagster/row_count"].value, mat.metadata["rows_in_run"].value)
              for mat in (e.event_specific_data.materialization for e in result.get_asset_materialization_events())
              if mat.asset_key.to_user_string() == "tickettailor_orders"}
    assert counts == {d.isoformat(): (facts[d], sum(facts[x] for x in days)) for d in days}


# --- snapshots: an observation of now, under at most one day of the window ----------------------


def _range(assets: list, start: date, end: date, instance: dg.DagsterInstance | None = None
           ) -> dg.ExecuteInProcessResult:
    return dg.materialize(assets, resources=build_resources(), raise_on_error=False, instance=instance,
                          tags={"dagster/asset_partition_range_start": start.isoformat(),
                                "dagster/asset_partition_range_end": end.isoformat()})


def test_events_backfill_of_past_days_writes_the_last_day_and_keeps_history(sandbox: Any) -> None:
    events = len(list(tt_sandbox.event_facts(sandbox.world)))
    d5, d6, d7 = date(2026, 3, 5), date(2026, 3, 6), date(2026, 3, 7)
    # A snapshot that exists for 03-06 (as if taken that day): the backfill must not replace it.
    assert run([tt.tickettailor_events], d6.isoformat()).success
    history = lake.partition_path(tt.EVENTS, d6).read_bytes()

    instance = dg.DagsterInstance.ephemeral()
    result = _range([tt.tickettailor_events, *tt.PROVIDER.checks], d5, d7, instance)
    assert result.success
    assert lake.landed_days(tt.EVENTS) == [d6, d7]  # 03-05 gets no file, not even an empty one
    assert lake.partition_path(tt.EVENTS, d6).read_bytes() == history
    assert lake.read_partition(tt.EVENTS, d7).num_rows == events > 0
    meta = materializations(result)["tickettailor_events"]
    assert meta["snapshot_written_to"] == d7.isoformat()
    assert (meta["snapshot_kept_days"], meta["snapshot_absent_days"]) == (1, 1)
    assert meta["dagster/row_count"] == events
    checks = {k: c for k, c in check_results(result).items() if k[0] == "tickettailor_events"}
    assert checks and all(c.passed for c in checks.values())  # absent snapshot days are not failures
    lines = [e.user_message for e in instance.all_logs(result.run_id)
             if "can only be taken on their own day" in (e.user_message or "")]
    assert len(lines) == 1 and d5.isoformat() in lines[0] and d6.isoformat() in lines[0]


def test_rerunning_a_past_events_partition_keeps_its_snapshot(sandbox: Any) -> None:
    day = date(2026, 3, 10)
    assert run([tt.tickettailor_events], day.isoformat()).success
    before = lake.partition_path(tt.EVENTS, day).read_bytes()
    for _ in range(2):
        result = run([tt.tickettailor_events], day.isoformat())
        assert result.success
        meta = materializations(result)["tickettailor_events"]
        assert meta["dagster/row_count"] == 0 and meta["snapshot_written_to"] == "none"
        assert meta["snapshot_kept_days"] == 1
        assert lake.partition_path(tt.EVENTS, day).read_bytes() == before


def test_a_window_ending_today_writes_one_snapshot_per_asset_under_today(sandbox: Any) -> None:
    """What `marquee demo` does: the last 7 days ending today (UTC)."""
    from assets import cymbal, cymbio, sympla

    today = lake.utc_now().date()
    assets = [tt.tickettailor_events, sympla.sympla_events, cymbal.cymbal_campaign_analytics, cymbio.cymbio_variants]
    specs = [tt.EVENTS, sympla.EVENTS, cymbal.CAMPAIGN_ANALYTICS, cymbio.VARIANTS]
    result = _range(assets, today - timedelta(days=6), today)
    assert result.success
    mats = materializations(result)
    for spec in specs:
        assert lake.landed_days(spec) == [today], spec.name
        assert mats[spec.name]["snapshot_written_to"] == today.isoformat()
        assert mats[spec.name]["snapshot_absent_days"] == 6
        assert mats[spec.name]["dagster/row_count"] == lake.read_partition(spec, today).num_rows > 0
