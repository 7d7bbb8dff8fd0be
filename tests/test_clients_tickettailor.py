"""Ticket Tailor client against the sandbox over real HTTP on 127.0.0.1."""

from __future__ import annotations

import math
from datetime import date, datetime, timedelta

import pytest

from resources.errors import ProviderAuthError
from resources.tickettailor import TicketTailorResource
from sandbox import start_sandbox
from sandbox import tickettailor as tt_sandbox

ANCHOR = date(2026, 3, 15)
# Retry-After: 0 on the 429s: honouring a real wait is tested in test_http_core; here it only cost time.
FAULTS = "429:0.08:0,5xx:0.1,reset:0.12,truncate:0.08,slow:0.05:0.6,repeat:0.3"


def client(sb, **kw) -> TicketTailorResource:
    return TicketTailorResource(api_key=sb.env["TICKETTAILOR_API_KEY"], base_url=sb.env["TICKETTAILOR_BASE_URL"],
                                backoff_base_seconds=0.05, backoff_max_seconds=0.2, timeout_seconds=0.4,
                                max_retry_seconds=30, **kw)


def flat(pages) -> list[dict]:
    return [r for page in pages for r in page]


def count(sb) -> int:
    return sb.ctx.request_counts.get("tickettailor", 0)


@pytest.fixture(scope="module")
def clean():
    with start_sandbox(anchor=ANCHOR) as sb:
        yield sb


@pytest.fixture(scope="module")
def baseline(clean):
    """The fault-free reads every faulty run must reproduce exactly."""
    c = client(clean)
    world = clean.world
    events = flat(c.iter_events())
    orders = flat(c.iter_orders(world.start, world.end))
    tickets = {e["id"]: flat(c.iter_issued_tickets(e["id"])) for e in events}
    c.close()
    return events, orders, tickets


def test_events(clean, baseline):
    events, _, _ = baseline
    truth = {f.event_id for f in tt_sandbox.event_facts(clean.world)}
    assert {e["id"] for e in events} == truth and len(events) == len(truth)
    assert all(e["object"] == "event" for e in events)


def test_orders_full_history_minimum_pages(clean):
    world = clean.world
    truth = {f.order_id for f in tt_sandbox.order_facts(world) if world.start <= f.created_at < world.end}
    before = count(clean)
    with client(clean).session() as c:
        pages = list(c.iter_orders(world.start, world.end))
    used = count(clean) - before
    ids = [r["id"] for p in pages for r in p]
    assert len(ids) == len(set(ids)) and set(ids) == truth
    assert all(len(p) <= 100 for p in pages)
    assert used == max(1, math.ceil(len(truth) / 100))  # limit=100, the maximum, and no extra empty page


def test_orders_window_is_half_open_and_days_tile_the_history(clean):
    world = clean.world
    facts = list(tt_sandbox.order_facts(world))
    with client(clean).session() as c:
        seen: list[str] = []
        day = world.start
        while day < world.end:
            nxt = day + timedelta(days=1)
            got = flat(c.iter_orders(day, nxt))
            assert {r["id"] for r in got} == {f.order_id for f in facts if day <= f.created_at < nxt}
            assert all(day.timestamp() <= r["created_at"] < nxt.timestamp() for r in got)
            seen += [r["id"] for r in got]
            day = nxt
    assert len(seen) == len(set(seen)) == len([f for f in facts if world.start <= f.created_at < world.end])


def test_orders_reject_naive_datetimes(clean):
    with pytest.raises(ValueError, match="timezone-aware"):
        list(client(clean).iter_orders(datetime(2026, 3, 1), datetime(2026, 3, 2)))


def test_issued_tickets_match_the_orders_tickets(clean, baseline):
    _, orders, tickets = baseline
    from_orders: dict[str, set[str]] = {}
    for o in orders:
        for t in o.get("issued_tickets") or []:
            from_orders.setdefault(t["event_id"], set()).add(t["id"])
    for event_id, got in tickets.items():
        ids = [t["id"] for t in got]
        assert len(ids) == len(set(ids))
        assert set(ids) == from_orders.get(event_id, set())
        assert all(t["event_id"] == event_id for t in got)


def test_faulty_run_returns_exactly_the_fault_free_records(baseline):
    events, orders, tickets = baseline
    with start_sandbox(anchor=ANCHOR, faults=FAULTS) as sb, client(sb).session() as c:
        world = sb.world
        assert flat(c.iter_events()) == events
        assert flat(c.iter_orders(world.start, world.end)) == orders
        for event_id, expected in tickets.items():
            assert flat(c.iter_issued_tickets(event_id)) == expected
        injected = sb.ctx.faults.injected
    for fault in ("429", "5xx", "reset", "truncate", "slow", "repeat"):
        assert injected.get(fault, 0) > 0, f"{fault} was never injected: the test proved nothing about it"


def test_bad_key_fails_fast_with_a_clear_error(clean):
    before = count(clean)
    bad = TicketTailorResource(api_key="sk_wrong_key_123456", base_url=clean.env["TICKETTAILOR_BASE_URL"])
    with pytest.raises(ProviderAuthError) as info:
        list(bad.iter_events())
    assert count(clean) - before == 1  # no retries
    assert "tickettailor" in str(info.value) and "TICKETTAILOR_API_KEY" in str(info.value)
    assert "sk_wrong_key_123456" not in str(info.value)


def test_rate_budget_slows_down_before_the_limit():
    with start_sandbox(anchor=ANCHOR) as sb:
        tt_sandbox.configure(sb.ctx, hourly_limit=25)
        c = client(sb)
        sleeps: list[float] = []
        c._http()._sleep = sleeps.append  # record, don't wait an hour
        world = sb.world
        orders = flat(c.iter_orders(world.start, world.end))  # 20 pages of a 25-request hour
        assert len(orders) == len({r["id"] for r in orders}) > 0
        assert sb.ctx.faults.injected == {}
        # Within the reserve (10 left) the client spaced its requests across the hour left...
        assert sleeps and all(s > 60 for s in sleeps)
        assert sleeps == sorted(sleeps)  # ...more widely as the budget shrinks
        # ...and it was never throttled: the sandbox still had budget at the end.
        assert c._http().budget.remaining is not None and c._http().budget.remaining > 0
        c.close()
