"""Waiting for a pool slot: ~0% CPU, interruptible, reaps a dead holder, and has a deadline.

Dagster 1.13's executors wait for a pool slot (e.g. `duckdb`, limit 1) in a loop that never
sleeps: `InstanceConcurrencyContext.interval_to_next_pending_claim_check` returns
`min([0, *intervals])`, which is never positive, so the in-process executor's `sleep_til_ready`
sleeps 0 s (dagster-io/dagster#20367 noticed it and was closed unmerged); the multiprocess executor
has no sleep at all while nothing is in flight. A blocked run burns a core. It also ignores
SIGTERM/SIGINT: during execution Dagster only records the signal, and acts on it when user code
next runs, which a blocked step never does. And it waits forever, even for a run that was killed.

Dagster has no hook for any of this, so `install()` adjusts four methods of the classes both
executors share (the only place that covers `execute_in_process`, used by `marquee run`, and the
daemon-launched runs, which load this module with the definitions):

- `ActiveExecution.get_steps_to_execute`: when nothing can run and nothing is in flight, sleep
  until the next claim check (in slices, waking early on a signal) instead of spinning;
- `ActiveExecution.sleep_til_ready` (in-process executor only): a recorded SIGTERM/SIGINT raises
  `DagsterExecutionInterruptedError`, which fails the run the way Dagster fails an interrupted one;
- `InstanceConcurrencyContext.__enter__`: the run worker records its owner tags and reaps dead runs;
- `InstanceConcurrencyContext.claim`: each time a blocked claim is re-checked, a provably dead
  holder is reaped (so the wait ends by itself), and past MARQUEE_POOL_WAIT_SECONDS the run fails
  with a message naming the holder and the command that frees it.

Installed once per process, guarded by the Dagster version range pyproject.toml allows.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

log = logging.getLogger(__name__)

POOL_WAIT_ENV = "MARQUEE_POOL_WAIT_SECONDS"
DEFAULT_POOL_WAIT_SECONDS = 3600.0
# Longest uninterrupted sleep while blocked: the signal latency of a waiting run.
SLICE_SECONDS = 0.25

_installed = False


class PoolWaitTimeout(Exception):
    """A step waited longer than MARQUEE_POOL_WAIT_SECONDS for a pool slot."""


def pool_wait_seconds() -> float:
    raw = os.environ.get(POOL_WAIT_ENV, "").strip()
    if not raw:
        return DEFAULT_POOL_WAIT_SECONDS
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{POOL_WAIT_ENV}={raw!r} is not a number of seconds") from None
    if value <= 0:
        raise ValueError(f"{POOL_WAIT_ENV}={raw!r} must be a positive number of seconds")
    return value


def timeout_message(instance: Any, pool: str, step_key: str, waited: float) -> str:
    from pipelines.reaper import REAP_COMMAND, describe_run, holders, judge

    held_by = holders(instance, pool)
    lines = [f"step {step_key} waited {waited:.0f}s for a slot of the Dagster pool '{pool}' and gave up "
             f"({POOL_WAIT_ENV}={pool_wait_seconds():g})."]
    if not held_by:
        lines.append(f"No run holds a slot of '{pool}' now; other steps were queued ahead. Rerun; to clear "
                     f"runs that died, run: {REAP_COMMAND}")
    for run_id in held_by:
        run = instance.get_run_by_id(run_id)
        why = judge(run.tags).reason if run is not None else "the run is gone from the instance"
        lines.append(f"The slot is held by {describe_run(instance, run_id)}; {why}. "
                     f"If that run is stuck, free the slot with: {REAP_COMMAND} --run-id {run_id}")
    return " ".join(lines)


def _interrupted() -> bool:
    from dagster._utils.interrupts import check_captured_interrupt

    return check_captured_interrupt()


def _next_check_in(context: Any) -> float:
    timeouts = getattr(context, "_pending_timeouts", None) or {}
    if not timeouts:
        return 0.0
    return max(0.0, min(timeouts.values()) - time.time())


def _idle_wait(context: Any) -> None:
    """Sleep until the next claim check is due, waking early when a signal was recorded."""
    remaining = min(_next_check_in(context), 15.0)
    end = time.monotonic() + remaining
    while not _interrupted():
        left = end - time.monotonic()
        if left <= 0:
            return
        time.sleep(min(SLICE_SECONDS, left))


def _reap_dead_holders(instance: Any, pool: str) -> bool:
    from pipelines.reaper import holders, judge, release

    reaped = False
    for run_id in holders(instance, pool):
        run = instance.get_run_by_id(run_id)
        if run is None:
            instance.event_log_storage.free_concurrency_slots_for_run(run_id)
            reaped = True
            continue
        verdict = judge(run.tags)
        if verdict.dead:
            release(instance, run, f"marquee reaper: {verdict.reason} while it held the pool '{pool}'. Marked "
                                   "failed and its slot freed so the waiting run can go on.")
            log.warning("reaped run %s, which held pool %s: %s", run_id, pool, verdict.reason)
            reaped = True
    return reaped


def _on_run_start(instance: Any, run_id: str) -> None:
    """In the process that executes a run: say who holds its claims, and clear dead runs."""
    from pipelines.reaper import PID_TAG, owner_tags, reap_dead_runs

    run = instance.get_run_by_id(run_id)
    if run is not None and run.tags.get(PID_TAG) != str(os.getpid()):
        instance.add_run_tags(run_id, owner_tags())
    for line in reap_dead_runs(instance):
        log.warning("reaped %s", line)


def install() -> None:
    """Patch Dagster's pool wait (see the module doc). Idempotent."""
    global _installed
    if _installed:
        return
    import dagster as dg
    from dagster._core.errors import DagsterExecutionInterruptedError
    from dagster._core.execution.plan.active import ActiveExecution
    from dagster._core.execution.plan.instance_concurrency_context import InstanceConcurrencyContext

    major_minor = tuple(int(p) for p in dg.__version__.split(".")[:2])
    if major_minor != (1, 13):
        raise RuntimeError(f"pipelines/pool_wait.py patches Dagster 1.13 internals; found {dg.__version__}. "
                           "Check whether the pool wait still spins, then update it.")

    orig_get_steps = ActiveExecution.get_steps_to_execute
    orig_enter = InstanceConcurrencyContext.__enter__
    orig_claim = InstanceConcurrencyContext.claim

    def get_steps_to_execute(self: Any, limit: int | None = None) -> Any:
        steps = orig_get_steps(self, limit)
        context = self._instance_concurrency_context
        if not steps and not self._in_flight and context is not None and context.has_pending_claims():
            _idle_wait(context)
        return steps

    def sleep_til_ready(self: Any) -> None:
        # Only the in-process executor calls this; the multiprocess one checks interrupts itself.
        from dagster._utils.interrupts import pop_captured_interrupt

        if pop_captured_interrupt():
            raise DagsterExecutionInterruptedError("interrupted while waiting for a pool slot")
        context = self._instance_concurrency_context
        if context is not None and context.has_pending_claims():
            _idle_wait(context)
            if pop_captured_interrupt():
                raise DagsterExecutionInterruptedError("interrupted while waiting for a pool slot")

    def enter(self: Any) -> Any:
        result = orig_enter(self)
        try:
            _on_run_start(self._instance, self._run_id)
        except Exception:  # bookkeeping must never stop a run; the next run reaps instead
            log.exception("marquee: could not record the run's owner tags or reap dead runs")
        return result

    def claim(self: Any, concurrency_key: str, step_key: str, step_priority: int = 0) -> bool:
        due = step_key not in self._pending_claims or time.time() > self._pending_timeouts.get(step_key, 0.0)
        claimed = orig_claim(self, concurrency_key, step_key, step_priority)
        waits: dict[str, float] = self.__dict__.setdefault("_marquee_wait_started", {})
        if claimed:
            waits.pop(step_key, None)
            return True
        started = waits.setdefault(step_key, time.monotonic())
        if not due:
            return False
        if _reap_dead_holders(self._instance, concurrency_key):
            self._pending_timeouts[step_key] = 0.0  # re-check at once: the slot is free now
            return False
        waited = time.monotonic() - started
        if waited > pool_wait_seconds():
            raise PoolWaitTimeout(timeout_message(self._instance, concurrency_key, step_key, waited))
        return False

    ActiveExecution.get_steps_to_execute = get_steps_to_execute
    ActiveExecution.sleep_til_ready = sleep_til_ready
    InstanceConcurrencyContext.__enter__ = enter
    InstanceConcurrencyContext.claim = claim
    _installed = True


# `pipelines.definitions` imports this module, so each process that loads the code location (code
# server, run worker, step worker, `marquee run`) installs it.
install()
