"""The live progress line of `marquee run`/`demo`/`dev`: what it shows, and from where."""

from __future__ import annotations

import io
import time

import dagster as dg
from rich.console import Console

from pipelines.progress import Figures, PhaseProgress, render, run_figures, terminal_console


def test_the_line_shows_assets_rows_requests_and_elapsed() -> None:
    line = render("raw", 13, Figures(assets_done=7, rows=2412, requests=318), 6.08).plain
    assert line == "[raw] 7/13 assets · 2,412 rows · 318 requests · 6.1s"


def test_a_terminal_gets_a_redrawn_line_that_follows_the_run() -> None:
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=120)
    figures = iter([Figures(1, 10, 3), Figures(3, 1234, 56)] + [Figures(3, 1234, 56)] * 20)
    with PhaseProgress("raw", 13, lambda: next(figures), console):
        time.sleep(1.3)  # two polls
    text = out.getvalue()
    assert "[raw] 1/13 assets · 10 rows · 3 requests" in text
    assert "[raw] 3/13 assets · 1,234 rows · 56 requests" in text
    assert "\x1b[" in text  # drawn in place with terminal control codes, then removed (transient)


def test_a_poll_that_fails_never_fails_the_run_and_keeps_the_last_figures() -> None:
    out = io.StringIO()
    answers = iter([Figures(5, 500, 9)])

    def busy_after_one() -> Figures:
        for figures in answers:
            return figures
        raise RuntimeError("database is locked")

    with PhaseProgress("models", 41, busy_after_one, Console(file=out, force_terminal=True, width=120)):
        time.sleep(1.3)
    text = out.getvalue()
    assert text.count("[models] 5/41 assets · 500 rows · 9 requests") >= 2  # kept through the failed poll


def test_no_live_line_when_stdout_is_not_a_terminal() -> None:
    assert terminal_console(io.StringIO()) is None


def test_figures_come_from_the_runs_materializations_and_the_request_counter() -> None:
    @dg.asset
    def orders() -> dg.MaterializeResult:
        return dg.MaterializeResult(metadata={"dagster/row_count": dg.MetadataValue.int(451)})

    @dg.asset
    def events() -> dg.MaterializeResult:
        return dg.MaterializeResult(metadata={"dagster/row_count": dg.MetadataValue.int(6)})

    with dg.DagsterInstance.ephemeral() as instance:
        result = dg.materialize([orders, events], instance=instance)
        figures = run_figures(instance, result.run_id, requests_at_start=100, requests_now=lambda: 142)
    assert figures == Figures(assets_done=2, rows=457, requests=42)


def test_the_request_counter_counts_each_request_the_server_received() -> None:
    from resources.http.core import requests_sent_by_this_process
    from resources.tickettailor import TicketTailorResource
    from sandbox import start_sandbox

    with start_sandbox(faults="5xx:0.3") as sb:  # retries are requests too
        res = TicketTailorResource(api_key=sb.env["TICKETTAILOR_API_KEY"], base_url=sb.env["TICKETTAILOR_BASE_URL"],
                                   backoff_base_seconds=0.01, backoff_max_seconds=0.05)
        before = requests_sent_by_this_process()
        events = [e for page in res.iter_events() for e in page]
        sent = requests_sent_by_this_process() - before
        assert events and sent == sb.ctx.request_counts["tickettailor"] and sent > 1


def test_a_single_run_backfill_counts_an_assets_rows_once_not_per_partition() -> None:
    from pipelines.progress import rows_by_asset

    def mat(key: str, rows: int | None) -> dg.AssetMaterialization:
        meta = {} if rows is None else {"dagster/row_count": dg.MetadataValue.int(rows)}
        return dg.AssetMaterialization(asset_key=key, metadata=meta)

    # three partitions of one run, each carrying the run's whole count; an asset that reports none
    got = rows_by_asset([mat("orders", 451), mat("orders", 451), mat("orders", 451), mat("events", None)])
    assert got == {"orders": 451, "events": 0}

    # a landing asset: each partition its own day's count, and the run's count beside it
    days = [dg.AssetMaterialization(asset_key="tickets", metadata={
        "dagster/row_count": dg.MetadataValue.int(n), "rows_in_run": dg.MetadataValue.int(12)}) for n in (5, 0, 7)]
    assert rows_by_asset(days) == {"tickets": 12}
