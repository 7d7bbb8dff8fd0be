"""End to end: the whole pipeline on the sandbox for a week, every mart row compared with the
ground truth the sandbox computes from its own dataset (in Python, not SQL), to the cent.
Then again with faults switched on: the same marts."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime

import duckdb
import pytest

from pipelines.sandbox import start_sandbox, truth

ANCHOR = date(2026, 3, 15)
START = date(2026, 3, 9)
END = ANCHOR

pytestmark = pytest.mark.slow


def _run_week(monkeypatch, tmp_path, faults: str = ""):
    from pipelines.runner import run_range

    data = tmp_path / ("data-faults" if faults else "data")
    monkeypatch.setenv("MARQUEE_DATA_DIR", str(data))
    monkeypatch.setenv("DAGSTER_HOME", str(data / "dagster_home"))
    monkeypatch.setenv("MARQUEE_START_DATE", "2026-01-01")
    with start_sandbox(anchor=ANCHOR, faults=faults) as sandbox:
        for key, value in sandbox.env.items():
            monkeypatch.setenv(key, value)
        run_range(START, END, progress=lambda _: None)
        world = sandbox.world
    con = duckdb.connect(str(data / "warehouse.duckdb"), read_only=True)
    try:
        marts = {
            name: [dict(zip([d[0] for d in con.description], row, strict=True)) for row in rows]
            for name, rows in (
                (n, con.execute(f"select * from marts.{n}").fetchall())
                for n in ("attendance", "revenue", "campaign_attribution")
            )
        }
    finally:
        con.close()
    return world, marts


def _norm(value):
    if isinstance(value, datetime):
        return value.astimezone(UTC).replace(microsecond=0)
    if isinstance(value, float):
        return round(value, 9)
    return value


def _keyed(rows, key_cols, cols):
    out = {}
    for row in rows:
        key = tuple(_norm(row[c]) for c in key_cols)
        assert key not in out, f"duplicate grain {key}"
        out[key] = {c: _norm(row[c]) for c in cols}
    return out


def _compare(actual, expected, key_cols, cols):
    a = _keyed(actual, key_cols, cols)
    e = _keyed(expected, key_cols, cols)
    assert set(a) == set(e), f"missing {sorted(set(e) - set(a))[:5]} extra {sorted(set(a) - set(e))[:5]}"
    for key in e:
        for col in cols:
            av, ev = a[key][col], e[key][col]
            if isinstance(ev, float) and av is not None:
                assert math.isclose(av, ev, rel_tol=1e-9), (key, col, av, ev)
            else:
                assert av == ev, (key, col, av, ev)


def check_against_truth(world, marts):
    now = datetime.now(UTC)
    # Tickets were loaded only for events starting inside the range, and the mart reports only
    # events whose start day's tickets were loaded: exactly the events the truth expects.
    _compare(marts["attendance"], truth.expected_attendance(world, START, END, now),
             ["provider", "event_id"],
             ["event_name", "starts_at", "tickets_issued", "tickets_checked_in", "no_shows", "attendance_rate"])
    _compare(marts["revenue"], truth.expected_revenue(world, START, END),
             ["provider", "event_id", "currency", "order_date"],
             ["orders", "gross_cents", "refunded_cents", "net_cents"])
    _compare(marts["campaign_attribution"], truth.expected_campaign_attribution(world, START, END, 7),
             ["campaign_id", "currency"],
             ["campaign_name", "channel", "sent_at", "links_clicked", "reported_revenue_cents",
              "attributed_orders", "attributed_revenue_cents", "conversion_rate"])


def test_marts_match_ground_truth(monkeypatch, tmp_path):
    world, marts = _run_week(monkeypatch, tmp_path)
    assert marts["revenue"], "the sandbox week must produce revenue rows"
    assert {r["currency"] for r in marts["revenue"]} >= {"BRL", "JPY"}
    check_against_truth(world, marts)


def test_marts_match_ground_truth_under_faults(monkeypatch, tmp_path):
    world, marts = _run_week(monkeypatch, tmp_path, faults="429:0.05,5xx:0.05,reset:0.03,truncate:0.03,repeat:0.1")
    check_against_truth(world, marts)
