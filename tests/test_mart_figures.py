"""The numeric metadata the marts report for Dagster's plots, on hand-written rows."""

from __future__ import annotations

import dagster as dg
import duckdb

from assets.dbt import mart_figures


def _con() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute("create schema marts")
    con.execute("""create table marts.revenue as select * from (values
        ('tickettailor', 'e1', 'GBP', date '2026-03-01', 2, 5000, 1000, 4000),
        ('sympla',       'e2', 'BRL', date '2026-03-01', 1, 1999, 0, 1999),
        ('tickettailor', 'e3', 'GBP', date '2026-03-02', 1, 250, 0, 250)
    ) t(provider, event_id, currency, order_date, orders, gross_cents, refunded_cents, net_cents)""")
    con.execute("""create table marts.attendance as select * from (values
        ('tickettailor', 'e1', timestamptz '2026-03-01 19:00:00+00', 10, 7, 3, 0.7),
        ('sympla',       'e2', timestamptz '2026-03-02 19:00:00+00', 5, 5, 0, 1.0),
        ('sympla',       'e9', timestamptz '2027-01-01 19:00:00+00', 4, 0, null, 0.0)
    ) t(provider, event_id, starts_at, tickets_issued, tickets_checked_in, no_shows, attendance_rate)""")
    return con


def test_revenue_reports_totals_per_currency_in_minor_units() -> None:
    figures = mart_figures(_con(), "marts", "revenue")
    assert figures["net_cents GBP"] == dg.MetadataValue.int(4250)
    assert figures["gross_cents GBP"] == dg.MetadataValue.int(5250)
    assert figures["refunded_cents GBP"] == dg.MetadataValue.int(1000)
    assert figures["orders GBP"] == dg.MetadataValue.int(3)
    assert figures["net_cents BRL"] == dg.MetadataValue.int(1999)
    assert not any("+" in key or "total" in key for key in figures)  # never summed across currencies


def test_attendance_reports_started_events_only_and_a_row_per_event() -> None:
    figures = mart_figures(_con(), "marts", "attendance")
    assert figures["tickets_issued (started events)"] == dg.MetadataValue.int(15)  # not the future e9
    assert figures["tickets_checked_in (started events)"] == dg.MetadataValue.int(12)
    assert figures["attendance_rate (started events)"].value == 12 / 15
    table = figures["attendance by event (latest 50 started)"].value
    assert "| sympla | e2 | 5 | 5 | 100.0% |" in table and "e9" not in table


def test_other_models_report_no_figures() -> None:
    assert mart_figures(_con(), "staging", "revenue") == {}


def test_revenue_draws_net_per_day_one_row_per_currency_as_an_inline_image() -> None:
    import base64
    import re
    import xml.etree.ElementTree as ET

    md = mart_figures(_con(), "marts", "revenue")["net revenue per day"].value
    match = re.fullmatch(r"!\[[^\]]+\]\(data:image/svg\+xml;base64,([A-Za-z0-9+/=]+)\)", md)
    assert match, md[:200]
    svg = ET.fromstring(base64.b64decode(match[1]))  # well-formed SVG
    titles = sorted(t.text for t in svg.iter("{http://www.w3.org/2000/svg}title"))
    # a bar per currency and day (a day without sales is an empty bar), never a sum of currencies
    assert titles == ["BRL 2026-03-01: 1,999", "BRL 2026-03-02: 0", "GBP 2026-03-01: 4,000", "GBP 2026-03-02: 250"]
