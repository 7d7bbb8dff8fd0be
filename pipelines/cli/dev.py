"""`marquee dev`: the sandbox and `dagster dev`, wired together, in one command.

1. start the provider sandbox on a free loopback port (synthetic data, no credentials, no network);
2. point every resource at it, and keep its data apart from a real lake: MARQUEE_DATA_DIR is
   MARQUEE_DEV_DIR, or a MARQUEE_DATA_DIR given in the shell, else `./data/dev` -- never the one
   in `.env`, so synthetic rows cannot mix with real ones; DAGSTER_HOME is `{that}/dagster_home`;
3. write that instance's dagster.yaml (the `duckdb` pool capped at 1, see pipelines/instance.py);
4. load the last week (skip with --no-load), so the UI opens on an asset graph with data;
5. run `dagster dev` in the foreground until Ctrl-C or SIGTERM, then shut everything down.

The sandbox lives in this process (a background thread), so it stops when `marquee dev` stops.

Stopping takes seconds, never minutes. It used to take over 60 s when `marquee dev` was started
with SIGINT ignored (a shell's background job, nohup, some supervisors): that disposition is
inherited across exec, `dagster dev` maps SIGTERM to whatever SIGINT does, so it ignored both and
only the final SIGKILL ended it. Now `marquee dev` installs its own handlers first (a handler is
reset to the default on exec, so children start with working signals); on SIGTERM/SIGINT it sends
SIGINT to dagster dev's process group (webserver, daemon, code servers, run workers), gives it
GROUP_STOP_SECONDS, and SIGKILLs what is left. Runs that this leaves STARTED are reaped the next
time `marquee dev` or `marquee run` starts (pipelines/reaper.py).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

from pipelines.instance import ensure_instance_config, ensure_pool_slots
from resources import settings

DEFAULT_DEV_DIR = "./data/dev"
# dagster dev needs ~4 s to stop its services; anything still alive after this is killed, so the
# whole command ends within 10 s of a signal.
GROUP_STOP_SECONDS = 7.0
DEFAULT_DAYS = 7
# Sandbox history is 30 days; partitions from a bit earlier keep the UI's partition bar readable.
SANDBOX_HISTORY_DAYS = 30


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The `marquee dev` flags (pipelines/cli adds them to its `dev` subcommand)."""
    parser.add_argument("--port", type=int, default=3000, help="port for the Dagster UI")
    parser.add_argument("--no-load", action="store_true", help="do not pre-load the last week before starting")
    parser.add_argument("--days", type=int, default=DEFAULT_DAYS, help="how many recent days to pre-load")
    parser.add_argument("--seed", type=int, default=7, help="sandbox dataset seed")
    parser.add_argument("--faults", default="", help="sandbox fault spec, e.g. '429:0.05' (see README)")


def dev_data_dir(env: dict[str, str], dotenv: dict[str, str | None] | None = None) -> Path:
    """MARQUEE_DEV_DIR; else a MARQUEE_DATA_DIR set in the shell (e.g. to open `marquee demo`'s
    data); else ./data/dev. A MARQUEE_DATA_DIR that only comes from `.env` is ignored: that is
    where the real lake lives, and sandbox rows must never land in it."""
    if env.get("MARQUEE_DEV_DIR"):
        return Path(env["MARQUEE_DEV_DIR"]).expanduser().resolve()
    if dotenv is None:
        from dotenv import dotenv_values

        dotenv = dict(dotenv_values(Path.cwd() / ".env"))
    shell_value = env.get("MARQUEE_DATA_DIR")
    if shell_value and shell_value != dotenv.get("MARQUEE_DATA_DIR"):
        return Path(shell_value).expanduser().resolve()
    return Path(DEFAULT_DEV_DIR).resolve()


def dev_environment(sandbox_env: dict[str, str], base: dict[str, str] | None = None,
                    dotenv: dict[str, str | None] | None = None) -> dict[str, str]:
    """The environment `dagster dev` runs with: the sandbox's URLs and credentials win over any
    real ones in the shell or `.env`, and the data directory and instance are the dev ones."""
    env = dict(os.environ if base is None else base)
    data = dev_data_dir(env, dotenv)
    env.update(sandbox_env)
    env["MARQUEE_DATA_DIR"] = str(data)
    env["DAGSTER_HOME"] = str(data / "dagster_home")
    env.setdefault("DO_NOT_TRACK", "1")
    return env


class Stopped(Exception):
    def __init__(self, signum: int) -> None:
        self.signum = signum
        super().__init__(signal.Signals(signum).name)


def _raise_stopped(signum: int, _frame: object) -> None:
    raise Stopped(signum)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stop_process_group(proc: subprocess.Popen, timeout: float = GROUP_STOP_SECONDS) -> int:
    """SIGINT the group led by `proc`; SIGKILL whatever is left after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGINT)
    code: int | None = None
    while time.monotonic() < deadline:
        code = proc.poll()
        if code is not None and not _group_alive(proc.pid):
            return code
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    print(f"marquee dev: dagster dev did not stop within {timeout:.0f}s; killed it.", file=sys.stderr)
    return proc.wait()


def _run_dagster_dev(port: int, env: dict[str, str]) -> int:
    cmd = [sys.executable, "-m", "dagster", "dev", "-w", str(settings.PROJECT_ROOT / "workspace.yaml"),
           "-p", str(port), "-h", "127.0.0.1"]
    # Its own process group: a terminal Ctrl-C reaches only us, and we forward exactly one SIGINT
    # to the whole group (dagster dev, its webserver, daemon, code servers and run workers).
    proc = subprocess.Popen(cmd, cwd=settings.PROJECT_ROOT, env=env, start_new_session=True)
    try:
        return proc.wait()
    except (KeyboardInterrupt, Stopped):
        print("\nmarquee dev: stopping dagster dev ...", file=sys.stderr)
        # A second signal while stopping must not abandon the group half-stopped.
        with _signals_ignored():
            stop_process_group(proc)
        raise


@contextlib.contextmanager
def _signals_ignored() -> Iterator[None]:
    previous = {s: signal.signal(s, signal.SIG_IGN) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def main(args: argparse.Namespace) -> int:
    """`marquee dev`; exits 0 after Ctrl-C/SIGTERM once everything it started has stopped."""
    # Own handlers, not inherited dispositions (see the module doc): SIGINT raises
    # KeyboardInterrupt, SIGTERM raises Stopped; both unwind the sandbox and stop dagster dev.
    previous = {signal.SIGINT: signal.signal(signal.SIGINT, signal.default_int_handler),
                signal.SIGTERM: signal.signal(signal.SIGTERM, _raise_stopped)}
    try:
        return _main(args)
    except (KeyboardInterrupt, Stopped):
        return 0
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _main(args: argparse.Namespace) -> int:
    from pipelines.runner import RunFailed, RunInterrupted, _housekeeping, run_range, today_utc
    from sandbox import start_sandbox

    port = int(getattr(args, "port", 3000))
    no_load = bool(getattr(args, "no_load", False))
    days = int(getattr(args, "days", DEFAULT_DAYS))
    today = today_utc()

    with start_sandbox(seed=int(getattr(args, "seed", 7)), faults=str(getattr(args, "faults", "") or ""),
                       anchor=today, port=0) as sandbox:
        env = dev_environment(sandbox.env)
        env.setdefault("MARQUEE_START_DATE", (today - timedelta(days=SANDBOX_HISTORY_DAYS)).isoformat())
        home = Path(env["DAGSTER_HOME"])
        ensure_instance_config(home)
        import dagster as dg

        with dg.DagsterInstance.from_config(str(home)) as instance:
            ensure_pool_slots(instance)  # before `dagster dev` or the pre-load claims the pool
            # Runs a killed `marquee dev` (or run) left STARTED, holding pool slots.
            _housekeeping(instance, lambda line: print(line.strip(), file=sys.stderr))
        # This process runs the pre-load, so it needs the same settings as the child.
        os.environ.update(env)
        print(f"Sandbox: all five provider APIs at {sandbox.base_url}")
        print(f"Data:    {env['MARQUEE_DATA_DIR']}   (instance: {home})")

        if not no_load and days > 0:
            start = max(today - timedelta(days=days - 1), settings.start_date())
            print(f"Loading {start} .. {today} so the UI has data (skip with --no-load) ...")
            try:
                run_range(start, today)
            except RunInterrupted as exc:
                print(f"marquee dev: {exc}; the run in flight was marked failed.", file=sys.stderr)
                return 0
            except RunFailed as exc:
                # The UI is the place to look at a failed run; start it anyway.
                print(f"marquee dev: the pre-load failed in the {exc.phase} phase:", file=sys.stderr)
                for line in exc.failures:
                    print(f"  - {line}", file=sys.stderr)

        print(f"\nDagster UI: http://127.0.0.1:{port}   (Ctrl-C stops the UI and the sandbox)\n", flush=True)
        return _run_dagster_dev(port, env)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="marquee dev", description=__doc__.splitlines()[0])
    add_arguments(parser)
    return parser


if __name__ == "__main__":
    sys.exit(main(build_parser().parse_args()))
