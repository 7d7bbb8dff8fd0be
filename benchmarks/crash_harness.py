"""Crash harness: SIGKILL `marquee run` at random moments, then prove the next run repairs everything.

    .venv/bin/python benchmarks/crash_harness.py --kills 100 --seed 1      # the long version
    .venv/bin/python benchmarks/crash_harness.py --kills 20 --s3           # the lake in object storage
    (tests/test_crash_harness.py runs the same engine with 5+ kills)

One sandbox (the "vendors") stays up for the whole session, so Cymbio's acknowledgements persist
across runs as they would at the real vendor. Each round launches `marquee run` for a short range
in its own process group and SIGKILLs the whole group (the runner, dbt and anything else it
started) at a moment chosen by a seeded generator:

- `time`:    a random instant of the run;
- `dbt`:     while `dbt build` is running (its process is in the group);
- `ack`:     between landing Cymbio returns and acknowledging them, or between two acknowledgements;
- `publish`: while the analysts' catalog is being published;
- `lake`:    between writing a partition's temp file and renaming it into place.

The targeted moments use the pause seam of resources/seams.py (`MARQUEE_TEST_PAUSE_DIR`): the
process announces it reached the n-th passage of the step and waits there to be killed, so the
kill lands exactly at that step and not near it. Between rounds new returns
appear at the vendor, so acknowledgements keep happening.

After every kill: every return acknowledged at the vendor is in the lake, and a reader can open
the published catalog. After the last kill, one run is let finish, and then:
- it exits 0 (it reaped the dead runs and took the pool slot they held);
- the marts equal the sandbox's ground truth to the cent;
- no run is left STARTED/STARTING, no pool slot is claimed;
- every acknowledged return is in the lake; no temp file is left anywhere in the data dir.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

PROJECT = Path(__file__).resolve().parent.parent
if str(PROJECT) not in sys.path:
    sys.path.insert(0, str(PROJECT))

PAUSE_ENV = "MARQUEE_TEST_PAUSE_DIR"
# (mode, pause step or None). The @n suffix is drawn per round so kills spread over the run.
MODES: tuple[tuple[str, str | None], ...] = (
    ("time", None),
    ("dbt", None),
    ("ack", "cymbio_returns.after_ack"),
    ("ack", "cymbio_returns.before_ack"),
    ("publish", "warehouse.before_publish"),
    ("lake", "lake.before_rename"),
)
TEMP_MARKERS = (".inprogress", ".tmp")


@dataclass
class Round:
    mode: str
    step: str | None
    killed_after: float  # seconds from launch to the SIGKILL (or to the natural end)
    reached: bool  # the targeted moment was reached (False: the run ended before it)
    exit_code: int | None


@dataclass
class Report:
    rounds: list[Round] = field(default_factory=list)
    final_seconds: float = 0.0
    final_exit: int | None = None
    acknowledged: int = 0
    problems: list[str] = field(default_factory=list)

    def summary(self) -> str:
        by_mode: dict[str, list[Round]] = {}
        for r in self.rounds:
            by_mode.setdefault(r.mode, []).append(r)
        lines = [f"kills: {sum(1 for r in self.rounds if r.exit_code is None or r.exit_code < 0)} "
                 f"of {len(self.rounds)} rounds; acknowledged returns: {self.acknowledged}; "
                 f"final run exit {self.final_exit} in {self.final_seconds:.1f}s"]
        for mode, rounds in sorted(by_mode.items()):
            reached = sum(r.reached for r in rounds)
            lines.append(f"  {mode:8s} rounds {len(rounds):3d}  moment reached {reached:3d}")
        lines.append("problems: " + ("none" if not self.problems else "; ".join(self.problems)))
        return "\n".join(lines)


def _marquee_cmd(start: date, end: date) -> list[str]:
    return [sys.executable, "-m", "pipelines.cli", "run", "--start", start.isoformat(), "--end", end.isoformat()]


def _group_has_dbt(pid: int) -> bool:
    import psutil

    try:
        children = psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return False
    for child in children:
        try:
            cmd = " ".join(child.cmdline())
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        if "dbt" in cmd and " build" in cmd:
            return True
    return False


def _kill_group(proc: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def acknowledged_at_vendor(sandbox: Any, initially_acknowledged: set[int]) -> set[int]:
    from sandbox import cymbio

    return set(cymbio._state(sandbox.ctx)["acknowledged"]) - initially_acknowledged


def returns_in_lake(lake_root: Path | str) -> set[int]:
    from resources import lakefs

    ids: set[int] = set()
    for path in lakefs.glob(lakefs.join(lakefs.as_location(lake_root), "raw", "cymbio", "returns"),
                            "date=*/*.parquet"):
        ids.update(int(v) for v in lakefs.read_table(path, columns=["return_id"]).column(0).to_pylist())
    return ids


def temp_files(*dirs: Path) -> list[Path]:
    return [p for d in dirs for p in d.rglob("*") if p.is_file() and any(m in p.name for m in TEMP_MARKERS)
            and "dagster_home" not in p.parts]


def catalog_readable(data_dir: Path, lake_root: Path | str) -> str | None:
    """None if the published catalog opens read-only and answers; else the error."""
    import duckdb

    from resources import lakefs

    path = data_dir / "warehouse.duckdb"
    if not path.exists():
        return None  # never published yet: nothing for a reader to trip on
    try:
        con = duckdb.connect(str(path), read_only=True)
        try:
            lakefs.register_duckdb(con, lakefs.as_location(lake_root))
            con.execute("select count(*) from raw.landed_partitions").fetchone()
        finally:
            con.close()
    except Exception as exc:  # noqa: BLE001 - the harness reports, it does not judge the type
        return f"{type(exc).__name__}: {exc}"
    return None


def instance_problems(home: Path) -> list[str]:
    import dagster as dg
    from dagster._core.storage.dagster_run import DagsterRunStatus, RunsFilter

    problems = []
    with dg.DagsterInstance.from_config(str(home)) as instance:
        stuck = instance.get_runs(filters=RunsFilter(statuses=[
            DagsterRunStatus.STARTED, DagsterRunStatus.STARTING, DagsterRunStatus.QUEUED,
            DagsterRunStatus.CANCELING]))
        if stuck:
            problems.append(f"{len(stuck)} run(s) left {', '.join(sorted({r.status.value for r in stuck}))}")
        storage = instance.event_log_storage
        for pool in storage.get_concurrency_keys():
            info = storage.get_concurrency_info(pool)
            claimed = [s for s in info.claimed_slots]
            if claimed:
                problems.append(f"pool {pool}: {len(claimed)} slot(s) still claimed by "
                                f"{', '.join(sorted({s.run_id[:8] for s in claimed}))}")
            if info.pending_steps:
                problems.append(f"pool {pool}: {len(info.pending_steps)} pending step(s)")
    return problems


def run_harness(kills: int, seed: int, workdir: Path, days: int = 2, max_round_seconds: float = 240.0,
                plan: list[tuple[str, str | None]] | None = None, log=print,
                store: dict[str, str] | None = None) -> Report:
    """Run `kills` killed rounds and one final complete run; return what was seen.

    `plan` fixes the (mode, pause step) of each round in turn (the short test uses it to cover
    every moment); by default each round draws one from MODES. `store`: the variables of a lake in
    object storage (MARQUEE_LAKE_URL and the store's), for the same rounds against it."""
    from sandbox import cymbio, start_sandbox, truth

    rng = random.Random(seed)
    today = datetime.now(UTC).date()
    start, end = today - timedelta(days=days - 1), today
    data_dir = workdir / "data"
    home = data_dir / "dagster_home"
    pause_dir = workdir / "pause"
    spool = workdir / "spool"
    store = dict(store or {})
    if store:
        store["MARQUEE_SPOOL_DIR"] = str(spool)
        os.environ.update(store)  # this process reads the lake too
    lake_root = store.get("MARQUEE_LAKE_URL") or data_dir / "lake"
    report = Report()
    with start_sandbox(anchor=today) as sandbox:
        initially_acked = set(cymbio._state(sandbox.ctx)["acknowledged"])
        env = {**os.environ, **sandbox.env,
               "MARQUEE_DATA_DIR": str(data_dir), "DAGSTER_HOME": str(home),
               "MARQUEE_START_DATE": (today - timedelta(days=60)).isoformat(),
               "MARQUEE_LOG_LEVEL": "CRITICAL", "PYTHONPATH": str(PROJECT),
               # A slot held by a run the harness killed must be reaped, not waited for: a short
               # deadline turns a reaping bug into a failed final run instead of a hang.
               "MARQUEE_POOL_WAIT_SECONDS": "120", **store}
        env.pop(PAUSE_ENV, None)
        typical = 15.0  # refined from the first natural end
        # `kills` counts rounds that really were killed: a round whose run ended before its moment
        # came does not count, so a long session cannot report 100 kills after 70.
        killed, i = 0, -1
        while killed < kills and i + 1 < max(kills * 3, kills + 10):
            i += 1
            mode, step = plan[i % len(plan)] if plan else MODES[rng.randrange(len(MODES))]
            round_env = dict(env)
            reached_file = None
            if step:
                nth = 1 if (plan or step == "cymbio_returns.before_ack") else rng.randint(1, 6)
                shutil.rmtree(pause_dir, ignore_errors=True)
                pause_dir.mkdir(parents=True)
                (pause_dir / f"{step}.hold").write_text(str(nth))
                reached_file = pause_dir / f"{step}.reached"
                round_env[PAUSE_ENV] = str(pause_dir)
            cymbio.add_returns(sandbox.ctx, rng.randint(1, 4))  # the brands keep processing returns
            deadline_at = rng.uniform(0.5, typical) if mode == "time" else None
            t0 = time.monotonic()
            proc = subprocess.Popen(_marquee_cmd(start, end), cwd=PROJECT, env=round_env, start_new_session=True,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            reached = False
            while proc.poll() is None and time.monotonic() - t0 < max_round_seconds:
                elapsed = time.monotonic() - t0
                if (mode == "time" and elapsed >= deadline_at) or (reached_file is not None and reached_file.exists()) \
                        or (mode == "dbt" and _group_has_dbt(proc.pid)):
                    if mode == "dbt":
                        time.sleep(rng.uniform(0.0, 3.0))  # somewhere inside the build, not at its start
                    reached = True
                    break
                time.sleep(0.05)
            killed_after = time.monotonic() - t0
            natural_end = proc.poll()
            _kill_group(proc)
            exit_code = None if natural_end is None else natural_end
            killed += natural_end is None
            if natural_end is not None and natural_end == 0:
                typical = max(typical * 0.5, killed_after)
            if time.monotonic() - t0 >= max_round_seconds:
                report.problems.append(f"round {i}: the run neither ended nor reached {mode} in {max_round_seconds}s")
            report.rounds.append(Round(mode, step, killed_after, reached, exit_code))
            log(f"round {i + 1} (kill {killed}/{kills}): {mode}{f' ({step}@{nth})' if step else ''} "
                f"{'killed' if natural_end is None else f'ended itself ({natural_end})'} after {killed_after:.1f}s")
            missing = acknowledged_at_vendor(sandbox, initially_acked) - returns_in_lake(lake_root)
            if missing:
                report.problems.append(f"round {i}: acknowledged returns missing from the lake: {sorted(missing)}")
            unreadable = catalog_readable(data_dir, lake_root)
            if unreadable:
                report.problems.append(f"round {i}: the catalog cannot be read: {unreadable}")

        # The next run finishes, and leaves everything consistent.
        t0 = time.monotonic()
        final = subprocess.run(_marquee_cmd(start, end), cwd=PROJECT, env=env, capture_output=True, text=True,
                               timeout=max_round_seconds * 2)
        report.final_seconds = time.monotonic() - t0
        report.final_exit = final.returncode
        if final.returncode != 0:
            report.problems.append(f"final run exited {final.returncode}: {final.stderr[-2000:]}")
        acked = acknowledged_at_vendor(sandbox, initially_acked)
        report.acknowledged = len(acked)
        missing = acked - returns_in_lake(lake_root)
        if missing:
            report.problems.append(f"final: acknowledged returns missing from the lake: {sorted(missing)}")
        leftovers = temp_files(data_dir, *([spool] if spool.exists() else []))
        if leftovers:
            report.problems.append(f"final: temp files left: {[str(p) for p in leftovers][:5]}")
        if store and (data_dir / "lake").exists():
            report.problems.append("final: a local lake directory was written with the lake in the store")
        report.problems += [f"final: {p}" for p in instance_problems(home)]
        unreadable = catalog_readable(data_dir, lake_root)
        if unreadable:
            report.problems.append(f"final: the catalog cannot be read: {unreadable}")
        if final.returncode == 0:
            import duckdb

            from resources import lakefs

            con = duckdb.connect(str(data_dir / "warehouse.duckdb"), read_only=True)
            try:
                lakefs.register_duckdb(con, lakefs.as_location(lake_root))
                truth.assert_marts_match(None, sandbox.world, start, end, marts=truth.read_marts(con))
            except AssertionError as exc:
                report.problems.append(f"final: marts differ from the sandbox truth: {exc}"[:2000])
            finally:
                con.close()
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=100, help="rounds that must end in a SIGKILL")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--days", type=int, default=2, help="days in each run's range")
    parser.add_argument("--workdir", default=None, help="default: a fresh temp directory")
    parser.add_argument("--s3", action="store_true",
                        help="the lake in object storage: moto's S3 server on 127.0.0.1 (tests/s3.py)")
    args = parser.parse_args(argv)
    import tempfile

    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="marquee-crash-"))
    workdir.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    with contextlib.ExitStack() as stack:
        store = None
        if args.s3:
            from tests.s3 import running_server

            server = stack.enter_context(running_server())
            server.create_bucket("crash-lake")
            store = server.env("s3://crash-lake/marquee")
        report = run_harness(args.kills, args.seed, workdir, days=args.days, store=store)
    print(report.summary())
    print(f"seed {args.seed}, {args.kills} kills, {time.monotonic() - t0:.0f}s, workdir {workdir}")
    return 0 if not report.problems else 1


if __name__ == "__main__":
    sys.exit(main())
