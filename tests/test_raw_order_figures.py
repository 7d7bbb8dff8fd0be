"""The figures the raw orders assets report for the UI's Plots tab (orders, gross and refunded cents
per currency, refunds), landed from the sandbox over loopback HTTP and compared with the sandbox's
own facts, never with numbers the code under test produced.

The expected revenue figures come from `sandbox.truth.expected_revenue`, the ground truth that the
end-to-end tests hold `marts.revenue` to: equal here means the raw figures and the mart agree for
the same days, without running dbt in this file. What the sandboxes never send (Sympla's refunded
status, null refund amounts, other spellings of statuses and currency codes, reais amounts that
floats get wrong) is checked on hand-made rows."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, date, timedelta
from decimal import Decimal
from typing import Any

import dagster as dg
import pyarrow as pa
import pytest

from assets import sympla as sy
from assets import tickettailor as tt
from assets.providers import build_resources
from resources import settings
from resources.currencies import minor_unit_exponent, to_minor_units
from sandbox import truth
from tests.test_landing_tickettailor import sandbox as sandbox  # noqa: F401  (fixture)

ASSETS = [tt.tickettailor_orders_assets, sy.sympla_orders]
ORDER_ASSETS = ("tickettailor_orders", "sympla_orders")
FIGURE_PREFIXES = ("orders", "refunds", "gross_cents ", "refunded_cents ")


def _figures(metadata: Any) -> dict[str, Any]:
    return {k: getattr(v, "value", v) for k, v in metadata.items() if k.startswith(FIGURE_PREFIXES)}


def _land_metadata(first: date, last: date) -> dict[tuple[str, date], dict[str, Any]]:
    """Both providers' orders for the days [first, last] in one run (a single-run backfill when the
    window has several days, as the UI and the daily schedule launch it): the metadata of every
    materialization event, by (asset, partition day)."""
    tags = {"dagster/asset_partition_range_start": first.isoformat(),
            "dagster/asset_partition_range_end": last.isoformat()}
    result = dg.materialize(ASSETS, resources=build_resources(), raise_on_error=False,
                            **({"partition_key": first.isoformat()} if first == last else {"tags": tags}))
    assert result.success
    out = {}
    for event in result.get_asset_materialization_events():
        mat = event.event_specific_data.materialization
        out[(mat.asset_key.to_user_string(), date.fromisoformat(mat.partition))] = {
            k: getattr(v, "value", v) for k, v in mat.metadata.items()}
    return out


def _land(first: date, last: date) -> dict[tuple[str, date], dict[str, Any]]:
    """The figures of every materialization event of `_land_metadata`."""
    return {key: _figures(meta) for key, meta in _land_metadata(first, last).items()}


def _expected(world: Any, provider: str, day: date) -> dict[str, int]:
    """A day's figures as the truth has them: marts.revenue's rows of that day, summed per currency
    (never across), and the count of its revenue orders with a refund amount."""
    expected: dict[str, int] = defaultdict(int)
    expected["orders"] = 0
    for row in truth.expected_revenue(world, day, day):
        if row["provider"] != provider:
            continue
        expected["orders"] += row["orders"]
        expected[f"gross_cents {row['currency']}"] += row["gross_cents"]
        # Sympla reports no refund amount: the mart's 0 is not a figure of the raw asset.
        if provider == "tickettailor":
            expected[f"refunded_cents {row['currency']}"] += row["refunded_cents"]
    expected["refunds"] = sum(1 for o in truth.order_facts(world)
                              if o.provider == provider and o.counts_as_revenue and o.refunded_cents > 0
                              and o.created_at.astimezone(UTC).date() == day)
    return dict(expected)


def test_one_day_of_orders_reports_the_truths_figures_per_currency(sandbox: Any) -> None:  # noqa: F811
    day = date(2026, 3, 10)
    figures = _land(day, day)
    # Plain numbers only, so each is a series and none can carry a buyer's details.
    assert all(type(v) is int for f in figures.values() for v in f.values())

    tt_expected = _expected(sandbox.world, "tickettailor", day)
    # The day exercises what the figures are for: several currencies, refunds, and orders that do
    # not count (pending, cancelled, whose refunds must not count either).
    assert len([k for k in tt_expected if k.startswith("gross_cents ")]) >= 3
    assert tt_expected["refunds"] > 0
    assert any(not o.counts_as_revenue and o.refunded_cents > 0 for o in truth.order_facts(sandbox.world)
               if o.provider == "tickettailor" and o.created_at.astimezone(UTC).date() == day)
    assert figures[("tickettailor_orders", day)] == tt_expected
    # Only the orders plot figures; their children report their usual metadata.
    assert figures[("tickettailor_order_line_items", day)] == {}

    sy_expected = _expected(sandbox.world, "sympla", day)
    assert sy_expected["orders"] > 0 and set(sy_expected) == {"orders", "gross_cents BRL", "refunds"}
    assert figures[("sympla_orders", day)] == sy_expected


def test_a_multi_day_run_puts_each_days_figures_on_its_own_partition(sandbox: Any) -> None:  # noqa: F811
    days = [date(2026, 2, 20) + timedelta(days=i) for i in range(3)]
    figures = _land(days[0], days[-1])
    for asset, provider in zip(ORDER_ASSETS, ("tickettailor", "sympla"), strict=True):
        per_day = [_expected(sandbox.world, provider, day) for day in days]
        assert [figures[(asset, day)] for day in days] == per_day
        # Days that differ: a window total repeated on every partition could not pass.
        assert len({d["orders"] for d in per_day}) > 1, provider


def test_a_multi_day_run_reports_each_days_row_count_on_its_own_partition(sandbox: Any) -> None:  # noqa: F811
    days = [date(2026, 2, 20) + timedelta(days=i) for i in range(3)]
    metadata = _land_metadata(days[0], days[-1])
    for asset, provider in zip(ORDER_ASSETS, ("tickettailor", "sympla"), strict=True):
        # Every order the sandbox created that day lands, whatever its status.
        expected = [sum(1 for o in truth.order_facts(sandbox.world)
                        if o.provider == provider and o.created_at.astimezone(UTC).date() == day) for day in days]
        assert len(set(expected)) > 1, provider  # days that differ: a repeated window total could not pass
        assert [metadata[(asset, day)]["dagster/row_count"] for day in days] == expected
        assert {metadata[(asset, day)]["rows_in_run"] for day in days} == {sum(expected)}


def test_the_figures_are_described_on_the_assets() -> None:
    specs = {s.key.to_user_string(): s for s in tt.tickettailor_orders_assets.specs}
    for description in (specs["tickettailor_orders"].description, sy.sympla_orders.descriptions_by_key[
            dg.AssetKey("sympla_orders")]):
        assert all(f"`{key}" in description for key in ("orders", "gross_cents", "refunds"))
    assert "`refunded_cents" in specs["tickettailor_orders"].description
    assert "refunds" not in (specs["tickettailor_order_line_items"].description or "")


# --- hand-made rows: the status rules the sandbox does not exercise ---------------------------------


def _schema(spec: Any, figures: Any) -> pa.Schema:
    return pa.schema([spec.schema.field(c) for c in figures.columns])


def _values(figures: dict[str, dg.MetadataValue]) -> dict[str, Any]:
    return {k: v.value for k, v in figures.items()}


def test_ticket_tailor_counts_completed_orders_only_and_never_adds_currencies() -> None:
    rows = [
        # status, currency, total, refund_amount
        ("completed", "gbp", 2650, 0),
        ("Completed", "GBP", 4750, 1250),  # the models lower-case the status and upper-case the code
        ("completed", "jpy", 3800, None),  # no refund amount: refunded 0
        ("completed", "usd", 3200, 3200),
        ("cancelled", "gbp", 9999, 9999),  # not revenue (as in marts.revenue), its refund neither
        ("pending", "usd", 5000, 0),
        (None, "usd", 7000, 0),
    ]
    table = pa.Table.from_pylist([dict(zip(("status", "currency", "total", "refund_amount"), r, strict=True))
                                  for r in rows], schema=_schema(tt.ORDERS, tt.ORDER_FIGURES))
    assert _values(tt.order_figures(table)) == {
        "orders": 4, "refunds": 2,
        "gross_cents GBP": 2650 + 4750, "gross_cents JPY": 3800, "gross_cents USD": 3200,
        "refunded_cents GBP": 1250, "refunded_cents JPY": 0, "refunded_cents USD": 3200,
    }


def test_sympla_counts_approved_orders_converts_reais_exactly_and_counts_refunded_status() -> None:
    rows = [
        # order_status, order_total_sale_price (reais)
        ("APPROVED", "0.29"),
        ("A", "0.58"),  # participants' spelling; the models map both
        (" approved ", "10.10"),  # spaces trimmed, as DuckDB's trim() does
        ("APPROVED", None),
        ("REFUNDED", "50.00"),  # a refund is a status: counted, not revenue
        ("R", "20.00"),
        ("CANCELLED", "30.00"),
        ("PENDING", "40.00"),
        ("\tAPPROVED", "99.00"),  # a tab is not what DuckDB's trim() removes: not approved in the mart either
    ]
    table = pa.Table.from_pylist(
        [{"order_status": s, "order_total_sale_price": None if p is None else Decimal(p)} for s, p in rows],
        schema=_schema(sy.ORDERS, sy.ORDER_FIGURES))
    # 0.29 + 0.58 + 10.10 reais; in floats 0.29 * 100 is 28.999..., which truncates to 28.
    assert _values(sy.order_figures(table)) == {"orders": 4, "refunds": 2, "gross_cents BRL": 29 + 58 + 1010}
    assert _values(sy.order_figures(table.slice(0, 0))) == {"orders": 0, "refunds": 0, "gross_cents BRL": 0}


def test_minor_units_come_from_the_one_currency_table() -> None:
    seed = dict(line.split(",") for line in (settings.DBT_PROJECT_DIR / "seeds" / "currencies.csv")
                .read_text().splitlines()[1:])
    assert (seed["BRL"], seed["JPY"], seed["BHD"]) == ("2", "0", "3")
    assert all(minor_unit_exponent(code) == int(e) for code, e in seed.items())
    assert to_minor_units(Decimal("123.5"), "BRL") == 12350
    assert to_minor_units(Decimal("3500"), "jpy") == 3500
    assert to_minor_units(Decimal("1.234"), "BHD") == 1234
    for amount, code in ((Decimal("0.005"), "BRL"), (Decimal("1.5"), "JPY")):
        with pytest.raises(ValueError, match="finer than"):
            to_minor_units(amount, code)  # refused, never rounded
    with pytest.raises(KeyError):
        minor_unit_exponent("XXZ")  # no guessed exponent for a code the table does not know
