"""`marquee demo`: the sandbox, the whole pipeline for the last week, and the headline figures.

It never touches real accounts: the sandbox's base URLs and credentials replace any provider
settings in the environment for this process only, and the demo keeps its own data directory
(`MARQUEE_DEMO_DIR`, default `./data/demo`) so it cannot mix synthetic rows into a real lake.
"""

from __future__ import annotations

import argparse
import os
import sys
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

from resources import settings
from resources.lakefs import LAKE_URL_ENV


def _money(cents: int | None, currency: str, exponents: dict[str, int]) -> str:
    """Minor units shown in major units, with the exponent from the dbt seed `reference.currencies`
    (the one currency table the models and the reverse sync read too); an unknown currency stays
    in minor units rather than being guessed at."""
    if cents is None:
        return "-"
    exponent = exponents.get(currency)
    if exponent is None:
        return f"{cents:,} {currency} minor units"
    return f"{Decimal(cents).scaleb(-exponent):,.{exponent}f} {currency}"


def _table(rows: list[tuple], headers: list[str]) -> str:
    cells = [headers] + [["" if v is None else str(v) for v in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join("  " + line for line in lines)


def print_headlines(warehouse: Path, out=sys.stdout) -> None:
    """The marts' headline figures, read through a read-only connection like an analyst's."""
    import duckdb

    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        exponents = dict(con.execute(
            "select currency, minor_unit_exponent from reference.currencies "
            "where minor_unit_exponent is not null").fetchall())
        att = con.execute("""
            select count(*), sum(tickets_issued), sum(tickets_checked_in),
                   sum(tickets_checked_in) / nullif(sum(tickets_issued), 0)
            from marts.attendance where no_shows is not null""").fetchone()
        print("\nAttendance (events that have started):", file=out)
        print(_table([(att[0], att[1], att[2], f"{(att[3] or 0):.1%}")],
                     ["events", "tickets issued", "checked in", "attendance rate"]), file=out)

        rev = con.execute("""
            select provider, currency, sum(orders), sum(gross_cents), sum(refunded_cents), sum(net_cents)
            from marts.revenue group by all order by provider, currency""").fetchall()
        print("\nRevenue by provider and currency (never summed across currencies):", file=out)
        rows = [(p, c, o, *(_money(v, c, exponents) for v in (g, r, n))) for p, c, o, g, r, n in rev]
        print(_table(rows,
                     ["provider", "currency", "orders", "gross", "refunded", "net"]), file=out)

        camp = con.execute("""
            select campaign_id, channel, currency, links_clicked, attributed_orders,
                   attributed_revenue_cents, reported_revenue_cents, conversion_rate
            from marts.campaign_attribution order by campaign_id, currency""").fetchall()
        print("\nCampaign attribution (7-day window):", file=out)
        print(_table([(i, ch, cur, clicks, orders, _money(a, cur, exponents), _money(r, cur, exponents),
                       "-" if cr is None else f"{cr:.1%}")
                      for i, ch, cur, clicks, orders, a, r, cr in camp],
                     ["campaign", "channel", "currency", "clicks", "orders", "attributed", "reported", "conv."]),
              file=out)
    finally:
        con.close()


DEFAULT_DEMO_DIR = "./data/demo"


def demo_dir() -> Path:
    """Where the demo keeps its data (`MARQUEE_DEMO_DIR`, default ./data/demo), apart from a real lake."""
    return Path(os.environ.get("MARQUEE_DEMO_DIR", DEFAULT_DEMO_DIR)).expanduser().resolve()


def main(args: argparse.Namespace) -> int:
    end = None
    if args.end:
        try:
            end = date.fromisoformat(args.end)
        except ValueError:
            print(f"marquee demo: --end {args.end!r} is not a date; use YYYY-MM-DD", file=sys.stderr)
            return 2
    if args.days < 1:
        print("marquee demo: --days must be at least 1", file=sys.stderr)
        return 2
    return run_demo(days=args.days, verbose=args.verbose, end=end)


def run_demo(days: int = 7, verbose: bool = False, end: date | None = None) -> int:
    """The sandbox anchored on `end` (default today, UTC), the pipeline for the `days` up to it, the figures."""
    from pipelines.runner import RunFailed, RunInterrupted, run_range, today_utc

    data = demo_dir()
    if os.environ.pop(LAKE_URL_ENV, None):
        # The demo's rows are synthetic: they must never land in a real lake.
        print(f"marquee demo: ignoring {LAKE_URL_ENV}; the demo keeps its own lake under {data}")
    os.environ["MARQUEE_DATA_DIR"] = str(data)
    os.environ["DAGSTER_HOME"] = str(data / "dagster_home")
    end = end or today_utc()
    start = end - timedelta(days=days - 1)
    os.environ["MARQUEE_START_DATE"] = (end - timedelta(days=60)).isoformat()

    from sandbox import start_sandbox

    with start_sandbox(anchor=end) as sandbox:
        os.environ.update(sandbox.env)
        print(f"Sandbox serving all five provider APIs at {sandbox.base_url}")
        print(f"Loading {start} .. {end} into {data}\n")
        try:
            run_range(start, end, verbose=verbose)
        except RunInterrupted as exc:
            print(f"\nmarquee demo: {exc}; the run in flight was marked failed.", file=sys.stderr)
            return exc.exit_code
        except RunFailed as exc:
            print(f"\nmarquee demo FAILED in the {exc.phase} phase:", file=sys.stderr)
            for line in exc.failures:
                print(f"  - {line}", file=sys.stderr)
            return 1
        pushes = len(sandbox.ctx.recorder.items())

    warehouse = settings.warehouse_path()
    print_headlines(warehouse)
    print(f"\nReverse sync: the sandbox received {pushes} push requests (Cymbal + Cordial).")
    # `marquee sql` finds ./data/demo by itself; any other demo dir needs naming.
    db = "" if data == Path(DEFAULT_DEMO_DIR).resolve() else f" --db {warehouse}"
    print(f"""
The warehouse: {warehouse}
  .venv/bin/marquee sql{db} "select * from marts.revenue limit 10"
  .venv/bin/marquee sql{db}            (an interactive DuckDB shell on it, read-only)
Open the same data in the Dagster UI:
  MARQUEE_DATA_DIR={data} DAGSTER_HOME={data / 'dagster_home'} .venv/bin/marquee dev""")
    return 0
