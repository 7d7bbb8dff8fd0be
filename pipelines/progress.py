"""One live line per phase while `marquee run`, `demo` or `dev` works, on a terminal only.

    [raw] 7/13 assets · 2,412 rows · 318 requests · 6.1s

A phase runs inside Dagster's `execute_in_process`, which returns only when the phase is done, so a
thread polls the run's materializations in the instance (what the UI shows too) and the process's
request counter (resources/http/core.py) twice a second, and rich redraws the line. When stdout is
not a terminal (CI, a pipe, a log collector) nothing is drawn: the runner's plain phase lines are
the whole output. With `-v` nothing is drawn either, since dbt's lines would tear the live line.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TextIO

import dagster as dg
from rich.console import Console
from rich.live import Live
from rich.text import Text

POLL_SECONDS = 0.5


@dataclass(frozen=True)
class Figures:
    assets_done: int = 0
    rows: int = 0
    requests: int = 0


def render(phase: str, total: int, figures: Figures, elapsed: float) -> Text:
    return Text(f"[{phase}] {figures.assets_done}/{total} assets · {figures.rows:,} rows · "
                f"{figures.requests:,} requests · {elapsed:.1f}s")


class PhaseProgress:
    """Draws `render(...)` on `console` until the `with` block ends; `poll()` gives the figures."""

    def __init__(self, phase: str, total: int, poll: Callable[[], Figures], console: Console) -> None:
        self.phase, self.total, self.poll, self.console = phase, total, poll, console
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._started = 0.0
        self._live: Live | None = None
        self._last = Figures()

    def _line(self) -> Text:
        # Display only: a busy instance must not fail the run, whose own events and errors the
        # runner reports; after a failed poll the line keeps its last figures.
        with contextlib.suppress(Exception):
            self._last = self.poll()
        return render(self.phase, self.total, self._last, time.monotonic() - self._started)

    def _loop(self) -> None:
        while not self._stop.wait(POLL_SECONDS):
            assert self._live is not None
            self._live.update(self._line(), refresh=True)

    def __enter__(self) -> PhaseProgress:
        self._started = time.monotonic()
        # transient: the runner prints the phase's result lines once it is done, in place of this one
        # No stdout/stderr redirection by rich: the run log owns stdout (pipelines/run_log.py).
        self._live = Live(render(self.phase, self.total, Figures(), 0.0), console=self.console,
                          auto_refresh=False, transient=True, redirect_stdout=False, redirect_stderr=False)
        self._live.__enter__()
        self._thread = threading.Thread(target=self._loop, name="marquee-progress", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
        if self._live is not None:
            self._live.__exit__(None, None, None)


def rows_by_asset(materializations: Iterable[dg.AssetMaterialization]) -> dict[str, int]:
    """Rows per asset, 0 when not reported. A single-run backfill reports one materialization per
    partition: a landing asset puts each day's count in `dagster/row_count` and the run's in
    `rows_in_run` on every one of them (assets/landing/materialize.py); other assets repeat the run's
    count in `dagster/row_count`. So: the run's count where given, else the largest; never a sum."""
    rows: dict[str, int] = {}
    for materialization in materializations:
        metadata = materialization.metadata or {}
        value = metadata.get("rows_in_run", metadata.get("dagster/row_count"))
        key = materialization.asset_key.to_user_string()
        rows[key] = max(rows.get(key, 0), int(value.value) if value is not None else 0)
    return rows


def run_figures(instance: Any, run_id: str, requests_at_start: int, requests_now: Callable[[], int]) -> Figures:
    """What a run has done so far: distinct assets materialized, their rows, requests sent."""
    records = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION).records
    rows = rows_by_asset(r.event_log_entry.asset_materialization for r in records
                         if r.event_log_entry.asset_materialization is not None)
    return Figures(assets_done=len(rows), rows=sum(rows.values()),
                   requests=requests_now() - requests_at_start)


def terminal_console(stream: TextIO) -> Console | None:
    """A console on `stream` when it is a terminal; None otherwise (plain lines only)."""
    if not stream.isatty():
        return None
    return Console(file=stream)
