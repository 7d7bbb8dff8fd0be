"""Dead runs are reaped: a run whose process is gone is marked failed and its pool slots freed.

A run killed with SIGKILL (OOM killer, pod eviction, `kill -9`) cannot report its own end. Dagster
then keeps it STARTED, and a pool slot it claimed (the `duckdb` pool allows one writer) stays
claimed: every later dbt build would wait for it forever. Dagster's run monitoring cannot see this
for the DefaultRunLauncher (it has no worker health check), and `execute_in_process` runs, which
`marquee run` uses, have no launcher at all. So every process that executes a run records who it
is as run tags, and a reaper compares them with the live process table:

- `marquee/host`: the hostname. Runs of other hosts are never touched: we cannot see their pids.
- `marquee/pid`: the process that holds the run's pool claims (the run worker).
- `marquee/process`: the identity of that process (Linux: machine id, boot id, pid namespace and
  the process start time in clock ticks), so a recycled pid is not mistaken for the owner.

A run is *provably dead* only when it was tagged on this host and the pid is gone, is a zombie,
belongs to a process started at another time, or the host rebooted since. Anything else (a live
pid, another host, another pid namespace, no tags) is treated as alive and left alone: a slow run
must never lose its slot. The reaper marks the run failed with `DagsterInstance.report_run_failed`
and frees its slots and queued claims with the event log storage's own
`free_concurrency_slots_for_run` (what the UI's "free slots" button calls).

`marquee reap` runs it by hand; `marquee reap --run-id RUN` also stops a live local run (SIGTERM,
it then fails its step and frees its slot itself) or, for a run on another host, frees its slots
on the operator's word.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HOST_TAG = "marquee/host"
PID_TAG = "marquee/pid"
PROCESS_TAG = "marquee/process"
OWNER_TAGS = (HOST_TAG, PID_TAG, PROCESS_TAG)

REAP_COMMAND = "marquee reap"


# --- who is this process -------------------------------------------------------------------------


def _read(path: str) -> str:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return ""


def _linux_identity(pid: int) -> str | None:
    """`linux:<machine-id>:<boot-id>:<pid-ns>:<start-ticks>`, or None if `pid` is not running.

    The start time (field 22 of /proc/<pid>/stat, in clock ticks since boot) tells a pid's owner
    from a later process that got the same pid; the boot id makes ticks comparable; the machine
    id and the pid namespace say whether "this pid" even means the same thing here.
    """
    stat = _read(f"/proc/{pid}/stat")
    if not stat:
        return None
    # The command name (field 2) is in parentheses and may contain spaces or parentheses.
    fields = stat[stat.rfind(")") + 2:].split()
    if len(fields) < 20 or fields[0] in ("Z", "X"):  # a zombie has already exited
        return None
    pid_ns = ""
    for path in (f"/proc/{pid}/ns/pid", "/proc/self/ns/pid"):  # another user's process may be unreadable
        with contextlib.suppress(OSError):
            pid_ns = os.readlink(path)
            break
    return ":".join(["linux", _read("/etc/machine-id"), _read("/proc/sys/kernel/random/boot_id"), pid_ns,
                     fields[19]])


def process_identity(pid: int) -> str | None:
    """A token that is equal for one process over its life and differs for any other process with
    the same pid; None when no such process runs (or it is a zombie)."""
    if os.path.exists("/proc/self/stat"):
        return _linux_identity(pid)
    try:  # macOS and others: psutil when installed (a dev dependency), else no identity at all
        import psutil

        return f"psutil:{psutil.Process(pid).create_time():.2f}"
    except ImportError:
        return f"pid:{pid}" if _pid_exists(pid) else None
    except Exception:  # psutil.NoSuchProcess, AccessDenied
        return None if not _pid_exists(pid) else f"pid:{pid}"


def _pid_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def owner_tags(pid: int | None = None) -> dict[str, str]:
    """The run tags that name the process executing a run (default: this one)."""
    pid = os.getpid() if pid is None else pid
    return {HOST_TAG: socket.gethostname(), PID_TAG: str(pid), PROCESS_TAG: process_identity(pid) or ""}


# --- dead or alive -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Verdict:
    dead: bool
    reason: str


def judge(tags: Mapping[str, str]) -> Verdict:
    """Whether the process named by a run's owner tags is provably gone (see the module doc)."""
    host, pid_text, recorded = tags.get(HOST_TAG), tags.get(PID_TAG), tags.get(PROCESS_TAG, "")
    if not host or not pid_text:
        return Verdict(False, "it was started without marquee's owner tags, so its process cannot be checked")
    if host != socket.gethostname():
        return Verdict(False, f"it runs on host {host}, whose processes this host cannot see")
    try:
        pid = int(pid_text)
    except ValueError:
        return Verdict(False, f"its pid tag {pid_text!r} is not a number")
    ours = process_identity(os.getpid()) or ""
    if recorded.startswith("linux:") and ours.startswith("linux:"):
        r_machine, r_boot, r_ns = recorded.split(":")[1:4]
        o_machine, o_boot, o_ns = ours.split(":")[1:4]
        if r_machine and o_machine and r_machine != o_machine:
            return Verdict(False, f"it runs on another machine that is also called {host}")
        if r_boot != o_boot:
            if not (r_machine and o_machine):
                # Containers often have no machine id, and then another machine that shares this
                # hostname (a replica with a fixed hostname, on a shared PostgreSQL instance) looks
                # exactly like this one after a reboot: not provably dead, so left alone.
                return Verdict(False, f"it may run on another machine also called {host} (no machine id "
                                      "tells a reboot of this one from another machine)")
            return Verdict(True, f"host {host} has rebooted since pid {pid} started it")
        if r_ns != o_ns:
            return Verdict(False, f"it runs in another pid namespace (container) on {host}")
    current = process_identity(pid)
    if current is None:
        return Verdict(True, f"its process (pid {pid} on {host}) is gone")
    if recorded and current != recorded and recorded.split(":")[0] == current.split(":")[0]:
        return Verdict(True, f"its process (pid {pid} on {host}) is gone; that pid now belongs to another process")
    return Verdict(False, f"its process (pid {pid} on {host}) is alive")


# --- reaping -------------------------------------------------------------------------------------


def _storage(instance: Any) -> Any:
    return instance.event_log_storage


def release(instance: Any, run: Any, message: str) -> None:
    """Mark `run` failed (unless it already finished) and free its pool slots and queued claims."""
    current = instance.get_run_by_id(run.run_id) or run
    if not current.is_finished:
        instance.report_run_failed(current, message)
    storage = _storage(instance)
    if storage.supports_global_concurrency_limits:
        storage.free_concurrency_slots_for_run(run.run_id)


def reap_dead_runs(instance: Any) -> list[str]:
    """Reap every provably dead run of this host; returns one line per reaped run.

    Looks at unfinished runs tagged with this hostname, and at every run that holds or queues for
    a pool slot (a finished run whose slot was never freed, e.g. killed between its last event and
    the free).
    """
    import dagster as dg

    host = socket.gethostname()
    in_progress = [dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.CANCELING]
    candidates = {r.dagster_run.run_id: r.dagster_run for r in instance.get_run_records(
        filters=dg.RunsFilter(statuses=in_progress, tags={HOST_TAG: host}))}
    storage = _storage(instance)
    if storage.supports_global_concurrency_limits:
        slot_runs = set(storage.get_concurrency_run_ids()) - set(candidates)
        if slot_runs:
            for record in instance.get_run_records(filters=dg.RunsFilter(run_ids=sorted(slot_runs))):
                candidates[record.dagster_run.run_id] = record.dagster_run
    reaped: list[str] = []
    for run in candidates.values():
        verdict = judge(run.tags)
        if not verdict.dead:
            continue
        was = run.status.value
        release(instance, run, f"marquee reaper: {verdict.reason}: the run was killed (SIGKILL, out of memory, "
                               "eviction or a host restart) before it could report. Marked failed and its pool "
                               "slots freed; rerun its partitions.")
        reaped.append(f"run {run.run_id} ({run.job_name}, was {was}): {verdict.reason}; marked failed, slots freed")
    return reaped


def describe_run(instance: Any, run_id: str) -> str:
    """`run <id> (job, STATUS, pid P on host H, alive)` for messages that name a slot's holder."""
    run = instance.get_run_by_id(run_id)
    if run is None:
        return f"run {run_id} (no longer in the instance)"
    where = ""
    if run.tags.get(PID_TAG):
        where = f", pid {run.tags[PID_TAG]} on host {run.tags.get(HOST_TAG, '?')}"
    return f"run {run_id} ({run.job_name}, {run.status.value}{where})"


def holders(instance: Any, pool: str) -> list[str]:
    """Run ids that hold a slot of `pool` right now."""
    info = _storage(instance).get_concurrency_info(pool)
    return list(dict.fromkeys(slot.run_id for slot in info.claimed_slots if slot.run_id))


# --- `marquee reap` ------------------------------------------------------------------------------


def _wait_until_gone(pid: int, identity: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process_identity(pid) != identity:
            return True
        time.sleep(0.2)
    return False


def stop_run(instance: Any, run_id: str, timeout: float = 20.0, out=sys.stdout) -> int:
    """`marquee reap --run-id`: end one run, whatever state it is in, and free its slots."""
    run = instance.get_run_by_id(run_id)
    if run is None:
        _storage(instance).free_concurrency_slots_for_run(run_id)
        print(f"run {run_id} is not in this instance ({instance.root_directory}); freed any slots it held.",
              file=out)
        return 0
    verdict = judge(run.tags)
    pid_text = run.tags.get(PID_TAG, "")
    local_alive = (not verdict.dead and run.tags.get(HOST_TAG) == socket.gethostname()
                   and pid_text.isdigit() and process_identity(int(pid_text)) == run.tags.get(PROCESS_TAG))
    if local_alive and not run.is_finished:
        pid = int(pid_text)
        print(f"{describe_run(instance, run_id)} is alive: sending it SIGTERM ...", file=out)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        # A marquee run fails its step, records the failure and frees its slots before it exits.
        if not _wait_until_gone(pid, run.tags[PROCESS_TAG], timeout):
            print(f"it did not stop within {timeout:.0f}s; end it with `kill -9 {pid}` and run `{REAP_COMMAND}`.",
                  file=out)
            return 1
    elif not verdict.dead and not run.is_finished:
        print(f"warning: {verdict.reason}. Marking it failed and freeing its slots on your word; if it is "
              "in fact still running it may now overlap with the next DuckDB writer.", file=out)
    release(instance, run, f"marquee reap --run-id {run_id}: ended by the operator ({verdict.reason}).")
    print(f"{describe_run(instance, run_id)}: slots freed.", file=out)
    return 0
