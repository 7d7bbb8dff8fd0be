"""What `marquee run` and `marquee demo` do: the headless twin of a UI backfill.

A run has three phases, in dependency order, each one Dagster execution recorded in the same
instance the UI reads (so `marquee dev` shows what `marquee run` did):

1. raw:    every daily-partitioned landing asset, for the whole range in one run (the assets read
           `context.partition_time_window`, so one run covers many days);
2. models: the dbt assets, with the range passed as the half-open [min_date, max_date) window that
           the incremental models reload;
3. sync:   the reverse-sync assets, partitioned like orders, for the same range.

A failing raw asset does not stop the later phases (the marts still refresh for the providers that
landed); a failing models phase does stop the sync (it pushes only models that built and passed
their checks). The command then exits non-zero naming every failing asset.

Before each phase, `_housekeeping` reaps runs whose process died (pipelines/reaper.py), so a run
killed while holding the `duckdb` slot never blocks this one. SIGTERM and SIGINT stop the command
within seconds: Dagster fails the step in flight (its lake writers and dbt unwind), the run is
recorded as failed, its slots are freed, and no later phase starts. Exit status 128 + signal.
"""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import dagster as dg

from assets import providers
from pipelines.instance import dagster_home, ensure_pool_slots, sqlite_storage_kept_open
from pipelines.pool_wait import install as install_pool_wait
from pipelines.progress import PhaseProgress, rows_by_asset, run_figures, terminal_console
from pipelines.reaper import owner_tags, reap_dead_runs
from pipelines.run_log import RunLog
from resources import lake, settings
from resources.http.core import requests_sent_by_this_process
from resources.lake import sweep_orphaned_temp_files
from resources.names import MAX_DATE_TAG, MIN_DATE_TAG, RANGE_END_TAG, RANGE_START_TAG, SYNC_GROUP
from resources.partitions import daily_partitions


class RunFailed(RuntimeError):
    def __init__(self, phase: str, failures: list[str]) -> None:
        self.phase = phase
        self.failures = failures
        super().__init__(f"{phase} phase failed: " + "; ".join(failures))


class RunInterrupted(RuntimeError):
    """SIGTERM or SIGINT stopped `marquee run` (the phase in flight was failed and cleaned up)."""

    def __init__(self, phase: str, signum: int) -> None:
        self.phase = phase
        self.signum = signum
        super().__init__(f"stopped by {signal.Signals(signum).name} in the {phase} phase")

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


@dataclass
class PhaseResult:
    phase: str
    materialized: dict[str, int] = field(default_factory=dict)  # asset -> rows (or -1 if unknown)
    seconds: float = 0.0




class _SignalLatch:
    """Records every SIGTERM/SIGINT the process receives, whoever handles it.

    During an execution Dagster swaps in its own handlers (they only set a flag, which it clears
    when the execution ends), so a signal that lands just after the last step finished would be
    forgotten and the next phase would start. The interpreter's wakeup fd sees every signal that
    has a Python handler, Dagster's included, so it is the one record that cannot be lost.
    Outside executions, both signals raise KeyboardInterrupt (SIGTERM's default would kill the
    process without cleanup; an inherited "ignore SIGINT" would make Ctrl-C do nothing).
    """

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self) -> None:
        self.signum: int | None = None
        self._active = threading.current_thread() is threading.main_thread()
        self._previous: dict[int, object] = {}
        self._old_fd = -1
        self._reader: socket.socket | None = None
        self._writer: socket.socket | None = None

    def __enter__(self) -> _SignalLatch:
        if not self._active:
            return self
        self._reader, self._writer = socket.socketpair()
        for sock in (self._reader, self._writer):
            sock.setblocking(False)
        self._old_fd = signal.set_wakeup_fd(self._writer.fileno(), warn_on_full_buffer=False)
        for signum in self.SIGNALS:
            self._previous[signum] = signal.signal(signum, self._raise)
        return self

    def _raise(self, signum: int, _frame: object) -> None:
        self.signum = self.signum or signum
        raise KeyboardInterrupt

    def received(self) -> int | None:
        """The first SIGTERM/SIGINT received so far, or None."""
        if self._reader is not None:
            with contextlib.suppress(BlockingIOError, InterruptedError):
                for byte in self._reader.recv(4096):
                    if byte in self.SIGNALS and self.signum is None:
                        self.signum = byte
        return self.signum

    def __exit__(self, *exc: object) -> None:
        if not self._active:
            return
        self.received()
        signal.set_wakeup_fd(self._old_fd)
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)  # type: ignore[arg-type]
        for sock in (self._reader, self._writer):
            if sock is not None:
                sock.close()


@contextlib.contextmanager
def signals_stop_the_run(phase: list[str]) -> Iterator[_SignalLatch]:
    """Turn SIGTERM/SIGINT (and the KeyboardInterrupt they raise) into RunInterrupted."""
    with _SignalLatch() as latch:
        try:
            yield latch
        except KeyboardInterrupt:
            raise RunInterrupted(phase[0], latch.received() or signal.SIGINT) from None


def _housekeeping(instance, progress: Callable[[str], None]) -> None:
    """Runs at the start of every phase (and of `marquee dev`): the one place for housekeeping.

    - runs whose process died (SIGKILL, OOM, eviction) are marked failed and their pool slots freed;
    - temp files those processes left in the lake, the model exports and the catalog are removed
      (a live writer's are never touched: resources/lake.py `sweep_orphaned_temp_files`).
    """
    for line in reap_dead_runs(instance):
        progress(f"  reaped {line}")
    swept = sweep_orphaned_temp_files()
    if swept:
        progress(f"  removed {swept} temp file(s) left by processes that died mid-write")


def _settle(instance, run_id: str) -> None:
    """After a phase's execution, however it ended: the run is not left STARTED, and it holds no
    pool slot (it runs in this process, and nothing of it runs any more)."""
    run = instance.get_run_by_id(run_id)
    if run is not None and not run.is_finished:
        instance.report_run_failed(run, "marquee run stopped before this run finished (signal or crash).")
    if instance.event_log_storage.supports_global_concurrency_limits:
        instance.event_log_storage.free_concurrency_slots_for_run(run_id)


_INTERRUPT_ERRORS = {"DagsterExecutionInterruptedError", "KeyboardInterrupt"}


def _was_interrupted(result) -> bool:
    for event in result.all_events:
        data = event.event_specific_data
        error = getattr(data, "error", None)
        if error is not None and error.cls_name in _INTERRUPT_ERRORS:
            return True
    return False


def _step_failures(result) -> list[str]:
    failures = []
    for event in result.all_events:
        if event.is_step_failure:
            data = event.step_failure_data
            message = data.error.message.strip() if data and data.error else "failed"
            failures.append(f"{event.step_key}: {message.splitlines()[0] if message else 'failed'}")
    if not failures:
        # A run can fail outside any step, e.g. a step that gave up waiting for its pool.
        for event in result.all_events:
            if event.is_run_failure:
                error = getattr(event.event_specific_data, "error", None)
                text = (error.message if error else event.message or "").strip()
                prefix, sep, rest = text.partition(": ")
                if error and sep and prefix.endswith(error.cls_name):
                    text = rest  # "package.module.Error: message" -> "message"
                if text:
                    failures.append(" ".join(text.split()))
    return failures


def _skipped_by_provider(asset_keys: set[str]) -> dict[str, list[str]]:
    """Assets a successful phase selected but did not materialize: their provider skipped them."""
    out: dict[str, list[str]] = {}
    for key in sorted(asset_keys):
        provider = providers.provider_of(key)
        out.setdefault(provider.name if provider else "other", []).append(key)
    return out


def run_range(start: date, end: date, select: str | None = None,
              progress: Callable[[str], None] = print, verbose: bool = False) -> list[PhaseResult]:
    """Materialize raw partitions, models and syncs for the inclusive UTC day range [start, end].
    What the phases print (dbt's per-node lines) goes to the run's log file, and also to the
    terminal when `verbose` (pipelines/run_log.py); `progress` gets marquee's own lines.

    Raises RunFailed when an asset failed (after all phases ran), RunInterrupted on SIGTERM/SIGINT."""
    if end < start:
        raise SystemExit("marquee run: --end is before --start")
    first = settings.start_date()
    if start < first:
        raise SystemExit(
            f"marquee run: --start {start} is before MARQUEE_START_DATE ({first}); "
            "set MARQUEE_START_DATE earlier to load that history."
        )
    problem = lake.lock_problem()
    if problem:  # before any request: the same check fails the first locked step of a UI run
        raise SystemExit(f"marquee run: {problem}")
    phase_box = ["setup"]
    with signals_stop_the_run(phase_box) as latch:
        run_log = RunLog.new(verbose)
        try:
            return _run_range(start, end, select, progress, latch, phase_box, run_log)
        finally:
            run_log.close()


def _run_range(start: date, end: date, select: str | None, progress: Callable[[str], None],
               latch: _SignalLatch, phase_box: list[str], run_log: RunLog) -> list[PhaseResult]:
    # Imported here, not at the top: the Definitions bind each provider's resource from the environment
    # as it is NOW (`marquee demo` points it at the sandbox just before), not when this module loaded.
    from pipelines.definitions import build_definitions

    install_pool_wait()
    dagster_home()
    defs = build_definitions()
    repo = defs.get_repository_def()
    graph = repo.asset_graph
    instance = dg.DagsterInstance.get()
    # A run writes a few thousand events, and Dagster's PostgreSQL storage opens a new connection for
    # each (NullPool, right for short-lived processes): a server fork and a password handshake per
    # event. `marquee run` is one long-lived process, so it keeps a small pool, as Dagster's own
    # webserver does with this call (no statement timeout: a run must not fail on a slow write).
    # SQLite storage ignores it.
    instance.optimize_for_webserver(statement_timeout=0, pool_recycle=3600, max_overflow=8)
    ensure_pool_slots(instance)
    # Providers whose credentials are not set, as their resources say.
    unconfigured = {p.name: p.resource for p in providers.PROVIDERS if not p.resource.from_env().configured()}

    wanted = None
    if select:
        wanted = dg.AssetSelection.from_string(select).resolve(graph)
        if not wanted:
            raise SystemExit(f"marquee run: --select {select!r} matches no asset")

    def keys_where(pred) -> set:
        keys = {k for k in graph.materializable_asset_keys if pred(graph.get(k))}
        return keys & wanted if wanted is not None else keys

    raw = keys_where(lambda n: n.partitions_def is not None and n.group_name != SYNC_GROUP)
    models = keys_where(lambda n: n.partitions_def is None and n.group_name != SYNC_GROUP)
    sync = keys_where(lambda n: n.group_name == SYNC_GROUP)
    range_tags = {RANGE_START_TAG: start.isoformat(), RANGE_END_TAG: end.isoformat()}
    if end.isoformat() not in daily_partitions.get_partition_keys():
        raise SystemExit(f"marquee run: {end} is not a partition yet (the last one is today, UTC)")

    # The full event log is in the instance (and the UI); the terminal gets warnings and errors.
    log_level = os.environ.get("MARQUEE_LOG_LEVEL", "WARNING").upper()
    results: list[PhaseResult] = []
    failed: list[tuple[str, list[str]]] = []
    plan = [("raw", raw, range_tags), ("models", models, {
        MIN_DATE_TAG: start.isoformat(),
        MAX_DATE_TAG: (end + timedelta(days=1)).isoformat(),
    }), ("sync", sync, range_tags)]
    # One job per phase, so each phase runs its assets' checks too and shows up as a named job
    # in the UI's run list.
    run_defs = dg.Definitions.merge(defs, dg.Definitions(jobs=[
        dg.define_asset_job(f"marquee_run_{phase}", selection=dg.AssetSelection.assets(*keys))
        for phase, keys, _ in plan if keys
    ]))
    if not run_log.verbose:
        progress(f"Run log (dbt's and Dagster's output): {run_log.path}  (-v shows it here)")
    for phase, keys, tags in plan:
        phase_box[0] = phase
        if not keys:
            progress(f"[{phase}] nothing selected")
            continue
        if phase == "sync" and any(p == "models" for p, _ in failed):
            # The sync reads the models' last good export and checks their blocking checks itself;
            # after a failed build there is nothing new to push, and a failed check must stop it.
            progress("[sync] not started: the models phase failed, and the sync only pushes models that "
                     "built and passed their checks")
            failed.append(("sync", ["not started because the models phase failed"]))
            continue
        _housekeeping(instance, progress)
        if latch.received():
            raise RunInterrupted(phase, latch.signum or signal.SIGTERM)
        progress(f"[{phase}] materializing {len(keys)} asset(s) for {start} .. {end}")
        t0 = time.monotonic()
        job = run_defs.resolve_job_def(f"marquee_run_{phase}")
        run_id = str(uuid.uuid4())  # known before the run starts, so a signal cannot lose it
        requests_at_start = requests_sent_by_this_process()
        console = None if run_log.verbose else terminal_console(sys.stdout)
        live = contextlib.nullcontext() if console is None else PhaseProgress(
            phase, len(keys),
            functools.partial(run_figures, instance, run_id, requests_at_start, requests_sent_by_this_process),
            console)
        try:
            with live, run_log.capture(phase), sqlite_storage_kept_open():
                result = job.execute_in_process(
                    instance=instance, tags={**tags, **owner_tags()}, raise_on_error=False, run_id=run_id,
                    run_config={"loggers": {"console": {"config": {"log_level": log_level}}}},
                )
        finally:
            _settle(instance, run_id)
        if latch.received() or _was_interrupted(result):
            progress(f"[{phase}] STOPPED by a signal; the run was marked failed")
            raise RunInterrupted(phase, latch.signum or signal.SIGTERM)
        phase_result = PhaseResult(phase, seconds=time.monotonic() - t0)
        phase_result.materialized.update(
            rows_by_asset(e.materialization for e in result.get_asset_materialization_events()))
        for key, rows in sorted(phase_result.materialized.items()):
            progress(f"  {key}: {rows} rows")
        # Raw and sync assets belong to a provider; a model that did not build is in the failures.
        skipped = ({k.to_user_string() for k in keys} - set(phase_result.materialized)) if phase != "models" else set()
        for provider, names in _skipped_by_provider(skipped).items():
            if provider in unconfigured:
                hint = unconfigured[provider].credential_hint()
                progress(f"  skipped {provider}: credentials not configured (set {hint}); "
                         f"{len(names)} asset(s) not materialized")
            else:
                # Configured, yet not materialized: it failed (the failures are listed at the end),
                # or was skipped because something upstream failed. Not a credentials problem.
                progress(f"  {provider}: {len(names)} asset(s) not materialized (failed or skipped; see the "
                         "errors below)")
        if phase == "raw" and skipped and not phase_result.materialized and result.success and unconfigured:
            progress("  No provider is configured: set credentials (README, 'Connecting real accounts'), "
                     "or try `marquee demo` against the built-in sandbox.")
        results.append(phase_result)
        if not result.success:
            # Keep going: the marts still refresh for the providers that did land (as the
            # marts sensor does after a partly failed scheduled run); the command fails at the end.
            failed.append((phase, _step_failures(result) or ["the run failed (see the Dagster logs)"]))
            progress(f"[{phase}] FAILED after {phase_result.seconds:.1f}s")
        else:
            progress(f"[{phase}] done in {phase_result.seconds:.1f}s")
    if failed:
        raise RunFailed(failed[0][0], [line for _, lines in failed for line in lines])
    return results


def today_utc() -> date:
    return datetime.now(UTC).date()
