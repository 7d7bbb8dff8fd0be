"""Ground truth on a tiny hand-built set of facts, with expectations computed by hand."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from sandbox import truth
from sandbox import world as w

SENT = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _dt(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.fixture
def world(monkeypatch):
    world = w.World(seed=1, anchor=date(2026, 3, 15))
    campaigns = [
        w.Campaign("cmp1003", "Weekend", "email", SENT, "USD"),
        w.Campaign("cmp1004", "Quiet one", "sms", SENT + timedelta(days=1), "GBP"),
        w.Campaign("cmp1005", "Nobody clicked", "email", SENT, "JPY"),
    ]
    world.__dict__["campaigns"] = campaigns  # cached_property: seed the cache
    events = [
        w.EventFact("tickettailor", "ev_1", "Past show", _dt(2026, 3, 10, 20)),
        w.EventFact("sympla", "77", "Future show", _dt(2026, 3, 20, 22)),
        w.EventFact("tickettailor", "ev_2", "Empty show", _dt(2026, 3, 12, 23, 59)),
        w.EventFact("tickettailor", "ev_3", "Out of range", _dt(2026, 4, 1)),
    ]
    tickets = (
        [w.TicketFact("tickettailor", "ev_1", True, True)] * 3
        + [w.TicketFact("tickettailor", "ev_1", True, False)] * 2
        + [w.TicketFact("tickettailor", "ev_1", False, False)]  # voided: not issued
        + [w.TicketFact("sympla", "77", True, False)] * 4
        + [w.TicketFact("tickettailor", "ev_3", True, True)]
    )

    def order(oid, provider, event, currency, created, revenue, gross, refunded=0, tag=None):
        return w.OrderFact(provider, oid, event, currency, created, revenue, gross, refunded, tag)

    orders = [
        order("or_1", "tickettailor", "ev_1", "USD", SENT, True, 1000, 100, " CMP1003 "),  # at sent_at: in
        order("or_2", "tickettailor", "ev_1", "USD", _dt(2026, 3, 2, 23, 59, 59), True, 2000, 0, "cmp1003"),
        order("or_3", "tickettailor", "ev_1", "GBP", _dt(2026, 3, 3), True, 500, 0, "Cmp1003\t"),
        order("or_4", "tickettailor", "ev_1", "USD", SENT + timedelta(days=7), True, 9999, 0, "cmp1003"),  # edge: out
        order("or_5", "tickettailor", "ev_1", "USD", SENT - timedelta(seconds=1), True, 8888, 0, "cmp1003"),  # early
        order("or_6", "tickettailor", "ev_1", "USD", _dt(2026, 3, 4), False, 7777, 0, "cmp1003"),  # cancelled
        order("or_7", "tickettailor", "ev_1", "USD", SENT + timedelta(days=7, seconds=-1), True, 300, 0, "CMP1003"),
        order("s_1", "sympla", "77", "BRL", _dt(2026, 3, 2, 0, 0, 1), True, 12345, 0, "cmp1004"),
        order("s_2", "sympla", "77", "BRL", _dt(2026, 3, 2, 10), True, 655, 0, None),
        order("s_3", "sympla", "77", "BRL", _dt(2026, 3, 4), True, 4000, 0, "cmp1004 "),
    ]
    monkeypatch.setattr(truth, "event_facts", lambda _w: iter(events))
    monkeypatch.setattr(truth, "ticket_facts", lambda _w: iter(tickets))
    monkeypatch.setattr(truth, "order_facts", lambda _w: iter(orders))
    analytics = {
        "cmp1003": {"num_links_clicked": 40, "attributed_revenue": 5000, "currency_code": "USD"},
        "cmp1004": {"num_links_clicked": 10, "attributed_revenue": 700, "currency_code": "GBP"},
        "cmp1005": {"num_links_clicked": 0, "attributed_revenue": 0, "currency_code": "JPY"},
    }
    monkeypatch.setattr(truth, "campaign_analytics", lambda _w, c: analytics[c.id])
    return world


def test_attendance(world):
    rows = truth.expected_attendance(world, date(2026, 3, 1), date(2026, 3, 31), now=_dt(2026, 3, 15))
    assert [(r["provider"], r["event_id"]) for r in rows] == [
        ("sympla", "77"), ("tickettailor", "ev_1"), ("tickettailor", "ev_2")]
    sym, ev1, ev2 = rows
    assert (ev1["tickets_issued"], ev1["tickets_checked_in"], ev1["no_shows"]) == (5, 3, 2)
    assert ev1["attendance_rate"] == pytest.approx(0.6) and ev1["event_name"] == "Past show"
    assert (sym["tickets_issued"], sym["tickets_checked_in"], sym["no_shows"]) == (4, 0, None)  # not started
    assert sym["attendance_rate"] == 0.0
    assert (ev2["tickets_issued"], ev2["no_shows"], ev2["attendance_rate"]) == (0, 0, None)


def test_attendance_range_is_inclusive_utc_dates(world):
    rows = truth.expected_attendance(world, date(2026, 3, 12), date(2026, 3, 12), now=_dt(2026, 3, 15))
    assert [r["event_id"] for r in rows] == ["ev_2"]


def test_revenue(world):
    rows = truth.expected_revenue(world, date(2026, 3, 1), date(2026, 3, 2))
    got = {(r["provider"], r["event_id"], r["currency"], r["order_date"]):
           (r["orders"], r["gross_cents"], r["refunded_cents"], r["net_cents"]) for r in rows}
    assert got == {
        ("tickettailor", "ev_1", "USD", date(2026, 3, 1)): (2, 9888, 100, 9788),  # or_1 + or_5 (11:59:59)
        ("tickettailor", "ev_1", "USD", date(2026, 3, 2)): (1, 2000, 0, 2000),
        ("sympla", "77", "BRL", date(2026, 3, 2)): (2, 13000, 0, 13000),
    }  # or_6 (cancelled) and s_2's missing tag change nothing here; s_1 + s_2 share a BRL row


def test_revenue_excludes_non_revenue_and_splits_currency(world):
    rows = truth.expected_revenue(world, date(2026, 3, 3), date(2026, 3, 8))
    got = {(r["currency"], r["order_date"]): (r["orders"], r["gross_cents"]) for r in rows}
    # or_6 (cancelled) is absent; or_3 is GBP on its own row; or_4 and or_7 on 03-08.
    assert got == {("GBP", date(2026, 3, 3)): (1, 500), ("USD", date(2026, 3, 8)): (2, 10299),
                   ("BRL", date(2026, 3, 4)): (1, 4000)}


def test_campaign_attribution(world):
    rows = truth.expected_campaign_attribution(world, date(2026, 2, 1), date(2026, 3, 31))
    got = {(r["campaign_id"], r["currency"]): r for r in rows}
    # cmp1004 (GBP) was sent at 03-02 12:00: s_1 (03-02 00:00:01) is too early, s_3 (BRL) counts.
    # Its own currency keeps a zero row carrying Cymbal's reported figure.
    assert list(got) == [("cmp1003", "GBP"), ("cmp1003", "USD"), ("cmp1004", "BRL"), ("cmp1004", "GBP"),
                         ("cmp1005", "JPY")]
    usd = got[("cmp1003", "USD")]
    # or_1 (at sent_at, trimmed + case-folded), or_2, or_7 (one second before the window closes);
    # not or_4 (exactly sent_at + 7 days), or_5 (before sending), or_6 (cancelled).
    assert (usd["attributed_orders"], usd["attributed_revenue_cents"]) == (3, 3300)
    assert usd["reported_revenue_cents"] == 5000 and usd["links_clicked"] == 40
    assert usd["conversion_rate"] == pytest.approx(3 / 40)
    assert (usd["campaign_name"], usd["channel"], usd["sent_at"]) == ("Weekend", "email", SENT)
    gbp = got[("cmp1003", "GBP")]
    assert (gbp["attributed_orders"], gbp["attributed_revenue_cents"], gbp["reported_revenue_cents"]) == (1, 500, None)
    quiet = got[("cmp1004", "GBP")]
    assert quiet["attributed_orders"] == quiet["attributed_revenue_cents"] == 0
    assert quiet["reported_revenue_cents"] == 700
    assert quiet["conversion_rate"] == 0.0
    brl = got[("cmp1004", "BRL")]
    assert (brl["attributed_orders"], brl["attributed_revenue_cents"], brl["reported_revenue_cents"]) == (1, 4000, None)
    assert brl["conversion_rate"] == pytest.approx(0.1)


def test_campaign_without_orders_gets_one_zero_row_in_its_currency(world):
    rows = truth.expected_campaign_attribution(world, date(2026, 2, 1), date(2026, 3, 31))
    jpy = [r for r in rows if r["campaign_id"] == "cmp1005"]
    assert len(jpy) == 1
    r = jpy[0]
    assert (r["currency"], r["attributed_orders"], r["attributed_revenue_cents"]) == ("JPY", 0, 0)
    assert r["reported_revenue_cents"] == 0 and r["conversion_rate"] is None  # zero clicks: no rate


def test_attribution_only_considers_loaded_order_dates(world):
    rows = truth.expected_campaign_attribution(world, date(2026, 3, 2), date(2026, 3, 2))
    usd = next(r for r in rows if r["campaign_id"] == "cmp1003" and r["currency"] == "USD")
    assert (usd["attributed_orders"], usd["attributed_revenue_cents"]) == (1, 2000)  # only or_2
    assert not any(r["campaign_id"] == "cmp1003" and r["currency"] == "GBP" for r in rows)


def test_window_is_configurable(world):
    rows = truth.expected_campaign_attribution(world, date(2026, 2, 1), date(2026, 3, 31), window_days=1)
    usd = next(r for r in rows if r["campaign_id"] == "cmp1003" and r["currency"] == "USD")
    assert (usd["attributed_orders"], usd["attributed_revenue_cents"]) == (1, 1000)  # or_1 only


def test_normalise_tag():
    assert truth.normalise_tag(" CMP1003 ") == "cmp1003"
    assert truth.normalise_tag("\tCmp1003\n") == "cmp1003"
    assert truth.normalise_tag("   ") is None and truth.normalise_tag(None) is None


def test_real_world_truth_runs_on_sandbox_facts():
    world = w.World(anchor=date(2026, 3, 15))
    rows = truth.expected_revenue(world, world.start.date(), world.anchor)
    tt_rows = [r for r in rows if r["provider"] == "tickettailor"]
    assert {r["currency"] for r in tt_rows} >= {"GBP", "USD", "JPY"}
    assert all(r["net_cents"] == r["gross_cents"] - r["refunded_cents"] for r in rows)
    attribution = truth.expected_campaign_attribution(world, world.start.date(), world.anchor)
    assert {r["campaign_id"] for r in attribution} == {c.id for c in world.campaigns}
    assert sum(r["attributed_orders"] for r in attribution) > 0
    attendance = truth.expected_attendance(world, world.start.date(), world.anchor + timedelta(days=30),
                                           now=datetime(2026, 3, 15, tzinfo=UTC))
    assert any(r["no_shows"] is None for r in attendance) and any(r["no_shows"] for r in attendance)
