"""Sympla and Cymbal landing against the sandbox: counts against the sandbox's facts, exact money,
UTC timestamps, idempotent re-runs."""

from __future__ import annotations

import math
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import dagster as dg
import httpx
import pyarrow as pa

from assets import cymbal as cb
from assets import sympla as sy
from assets.providers import build_resources
from resources import lake
from sandbox import sympla as sy_sandbox
from tests.test_landing_tickettailor import check_results, content, materializations, run
from tests.test_landing_tickettailor import sandbox as sandbox  # noqa: F401  (fixture)

ALL = [sy.sympla_events, sy.sympla_orders, sy.sympla_participants, *sy.PROVIDER.checks]


def test_orders_of_every_status_land_per_utc_creation_day(sandbox: Any) -> None:  # noqa: F811
    facts = list(sy_sandbox.order_facts(sandbox.world))
    per_day = Counter(f.created_at.astimezone(UTC).date() for f in facts)
    gross = {f.order_id: f.gross_cents for f in facts}
    for day in (date(2026, 2, 20), date(2026, 3, 2)):
        result = run(ALL, day.isoformat())
        assert result.success
        mats = materializations(result)
        assert mats["sympla_orders"]["dagster/row_count"] == per_day[day] > 0
        assert all(c.passed for c in check_results(result).values())
        orders = lake.read_partition(sy.ORDERS, day)
        assert orders.schema.field("order_total_sale_price").type == pa.decimal128(18, 2)
        assert {t.date() for t in orders.column("order_date").to_pylist()} == {day}
        assert len(set(orders.column("order_status").to_pylist())) >= 1
        # Exact reais: the landed decimal times 100 is the sandbox's own cents, for every order.
        for oid, price in zip(orders.column("id").to_pylist(), orders.column("order_total_sale_price").to_pylist(),
                              strict=True):
            assert price * 100 == Decimal(gross[oid]), oid


def test_participants_land_under_the_event_start_day(sandbox: Any) -> None:  # noqa: F811
    events = list(sy_sandbox.event_facts(sandbox.world))
    tickets = Counter(f.event_id for f in sy_sandbox.ticket_facts(sandbox.world) if f.issued)
    ev = events[0]
    day = ev.starts_at.astimezone(UTC).date()
    result = run(ALL, day.isoformat())
    assert result.success
    parts = lake.read_partition(sy.PARTICIPANTS, day)
    assert parts.num_rows == materializations(result)["sympla_participants"]["dagster/row_count"] > 0
    same_day = {e.event_id for e in events if e.starts_at.astimezone(UTC).date() == day}
    assert set(parts.column("event_id").to_pylist()) == same_day
    statuses = Counter(parts.column("order_status").to_pylist())
    # Approved participants are exactly the issued tickets; cancelled ones are landed too.
    assert statuses["A"] == sum(tickets[e] for e in same_day)
    assert {t for t in parts.column("event_start_date").to_pylist()} == {
        e.starts_at for e in events if e.event_id in same_day}
    events_table = lake.read_partition(sy.EVENTS, day)
    starts = dict(zip(events_table.column("id").to_pylist(), events_table.column("start_date").to_pylist(),
                      strict=True))
    assert starts[ev.event_id] == ev.starts_at  # local Sao Paulo time parsed to the right UTC instant


def test_sympla_and_cymbal_reruns_are_idempotent(sandbox: Any) -> None:  # noqa: F811
    day = date(2026, 3, 2)
    seen = []
    snapshot_bytes = []
    for _ in range(3):
        assert run([sy.sympla_orders, cb.cymbal_campaign_analytics], day.isoformat()).success
        seen.append((content(sy.ORDERS, day), content(cb.CAMPAIGN_ANALYTICS, day)))
        snapshot_bytes.append(lake.partition_path(cb.CAMPAIGN_ANALYTICS, day).read_bytes())
    for later in seen[1:]:
        assert all(a.equals(b) for a, b in zip(seen[0], later, strict=True))
    # A past day's analytics snapshot is taken once and kept: re-runs never rewrite it.
    assert snapshot_bytes[1:] == snapshot_bytes[:1] * 2
    campaigns = lake.read_partition(cb.CAMPAIGN_ANALYTICS, day)
    assert sorted(campaigns.column("id").to_pylist()) == sorted(c.id for c in sandbox.world.campaigns)
    assert pa.types.is_int64(campaigns.schema.field("attributed_revenue").type)


def test_sympla_events_backfill_writes_only_the_last_past_day(sandbox: Any) -> None:  # noqa: F811
    events = len(list(sy_sandbox.event_facts(sandbox.world)))
    result = dg.materialize([sy.sympla_events], resources=build_resources(), raise_on_error=False,
                            tags={"dagster/asset_partition_range_start": "2026-03-01",
                                  "dagster/asset_partition_range_end": "2026-03-03"})
    assert result.success
    assert lake.landed_days(sy.EVENTS) == [date(2026, 3, 3)]
    meta = materializations(result)["sympla_events"]
    assert meta["dagster/row_count"] == lake.read_partition(sy.EVENTS, date(2026, 3, 3)).num_rows == events > 0
    assert (meta["snapshot_written_to"], meta["snapshot_kept_days"], meta["snapshot_absent_days"]) == (
        "2026-03-03", 0, 2)


def test_a_window_of_orders_asks_each_event_once_and_lands_what_day_by_day_does(
        sandbox: Any, tmp_path: Path) -> None:  # noqa: F811
    """Sympla lists orders per event: a 7-day window costs one request series per event (the minimum
    number of pages), not one per event and day, and lands exactly what seven one-day runs land."""
    client = build_resources()["sympla"]
    days = [date(2026, 2, 20) + timedelta(days=i) for i in range(7)]
    lo, hi = datetime.combine(days[0], datetime.min.time(), UTC), datetime.combine(
        days[-1] + timedelta(days=1), datetime.min.time(), UTC)
    events = list(sy_sandbox.event_facts(sandbox.world))
    facts = [f for f in sy_sandbox.order_facts(sandbox.world) if lo <= f.created_at < hi]

    def requests() -> int:
        return httpx.get(sandbox.base_url + "/_sandbox/stats").json()["requests"].get("sympla", 0)

    before = requests()
    sy.land_orders(client, days, root=tmp_path / "window")
    window_requests = requests() - before
    before = requests()
    sy.land_orders(client, days, root=tmp_path / "daily", span_days=1)
    daily_requests = requests() - before

    per_event = Counter(f.event_id for f in facts)
    event_pages = math.ceil(len(events) / sy_sandbox.MAX_PAGE_SIZE)
    assert window_requests == event_pages + sum(
        max(1, math.ceil(per_event[e.event_id] / sy_sandbox.MAX_PAGE_SIZE)) for e in events)
    assert daily_requests >= event_pages + len(events) * len(days) > window_requests
    per_day = Counter(f.created_at.astimezone(UTC).date() for f in facts)
    for day in days:
        window, daily = (lake.read_partition(sy.ORDERS, day, tmp_path / k).drop_columns(["_loaded_at"])
                         .sort_by("id") for k in ("window", "daily"))
        assert window.equals(daily)
        assert window.num_rows == per_day[day]
    assert sum(per_day.values()) == len(facts) > 0


# --- an unusable event id, and an error body echoing the token, through the assets ------------------------


def _event_log(instance: dg.DagsterInstance, result: dg.ExecuteInProcessResult) -> str:
    return "\n".join(f"{e.user_message} {e.dagster_event}" for e in instance.all_logs(result.run_id))


def _failure_text(result: dg.ExecuteInProcessResult) -> str:
    parts = []
    for event in result.all_events:
        if event.is_step_failure:
            error = event.step_failure_data.error
            while error is not None:
                parts.append(error.message + "".join(error.stack))
                error = error.cause
    assert parts, "the run did not fail"
    return "\n".join(parts)


def test_an_event_whose_id_would_rewrite_the_path_is_quarantined_and_the_day_lands(sandbox: Any) -> None:  # noqa: F811
    from sandbox.glitches import BAD_EVENT_ID

    events = sorted(sy_sandbox.event_facts(sandbox.world), key=lambda e: e.starts_at)
    bad = events[0].event_id  # GET /events lists by start date: the glitch strikes the first one
    facts = list(sy_sandbox.order_facts(sandbox.world))
    day = Counter(f.created_at.astimezone(UTC).date() for f in facts if f.event_id == bad).most_common(1)[0][0]
    expected = {f.order_id for f in facts if f.created_at.astimezone(UTC).date() == day and f.event_id != bad}
    assert expected and any(f.event_id == bad and f.created_at.astimezone(UTC).date() == day for f in facts)

    plan = sandbox.set_faults("badid:1@/sympla/events")
    instance = dg.DagsterInstance.ephemeral()
    result = run([sy.sympla_events, sy.sympla_orders, sy.sympla_participants, *sy.PROVIDER.checks],
                 day.isoformat(), instance=instance)
    assert result.success and plan.injected["badid"] >= 2  # the events landing and each per-event walk

    (quarantined,) = lake.read_partition(sy.EVENTS, day, area="quarantine").to_pylist()
    assert quarantined["reason"].startswith("id: '../../v1.5.1/events/1?x=#' cannot be used in a URL path")
    assert BAD_EVENT_ID in quarantined["_raw"]
    assert set(lake.read_partition(sy.EVENTS, day).column("id").to_pylist()) == {e.event_id for e in events} - {bad}
    orders = lake.read_partition(sy.ORDERS, day)
    assert set(orders.column("id").to_pylist()) == expected  # every other event's orders landed
    # No request ever went anywhere the id pointed: every path is one the client meant.
    paths = httpx.get(sandbox.base_url + "/_sandbox/stats").json()["paths"]
    good = {e.event_id for e in events} - {bad}
    allowed = {"/sympla/events"} | {f"/sympla/events/{e}/{what}" for e in good for what in ("orders", "participants")}
    assert set(paths) <= allowed and "/sympla/events" in paths, set(paths) - allowed
    skipped = [line for line in _event_log(instance, result).splitlines()
               if "skipped the orders and participants of event" in line]
    assert skipped and all("../../v1.5.1/events/1?x=#" in line for line in skipped)


def test_an_error_body_echoing_the_token_fails_the_run_without_the_token(sandbox: Any) -> None:  # noqa: F811
    sandbox.set_faults("errorbody:1@/sympla/events")
    instance = dg.DagsterInstance.ephemeral()
    result = run([sy.sympla_events], "2026-03-02", instance=instance)
    assert not result.success
    failure = _failure_text(result)
    assert "sympla: GET /events was refused with 401 (unauthorized)" in failure
    assert "Minha Conta > Integrações" in failure  # the hint a real 401 gets
    token = sandbox.env["SYMPLA_TOKEN"]
    assert token not in failure and token not in _event_log(instance, result)
    assert lake.read_partition(sy.EVENTS, date(2026, 3, 2)) is None  # nothing landed from it
