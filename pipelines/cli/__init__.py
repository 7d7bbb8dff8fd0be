"""The `marquee` command line: sandbox, demo, run, dev, reap, sql.

Each command lives in its own module of this package (`run`, `demo`, `dev`, `reap`, `sql`; `marquee
sandbox` is the sandbox package's own `sandbox.cli`) and is imported when it is called, so
`marquee --help` does not load Dagster. A command that fails to import fails loudly.
"""

from __future__ import annotations

import argparse
import atexit
import os
import sys
import threading
import warnings
from collections.abc import Sequence


def _run(args: argparse.Namespace) -> int:
    from pipelines.cli import run

    return run.main(args)


def _demo(args: argparse.Namespace) -> int:
    from pipelines.cli import demo

    return demo.main(args)


def _dev(args: argparse.Namespace) -> int:
    from pipelines.cli import dev

    return dev.main(args)


def _reap(args: argparse.Namespace) -> int:
    from pipelines.cli import reap

    return reap.main(args)


def _sql(args: argparse.Namespace) -> int:
    from pipelines.cli import sql

    return sql.main(args)


def _sandbox(args: argparse.Namespace) -> int:
    import sandbox.cli

    return int(sandbox.cli.main(args) or 0)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="marquee",
        description="Ticketing, event-marketing and merchandise data in one DuckDB warehouse.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    sandbox = sub.add_parser("sandbox", help="serve all five provider APIs on loopback with synthetic data")
    sandbox.add_argument("--port", type=int, default=8765, help="port to listen on (0 = any free port)")
    sandbox.add_argument("--seed", type=int, default=7, help="seed for the deterministic dataset")
    sandbox.add_argument("--scale", type=int, default=1, help="multiplies the dataset size")
    sandbox.add_argument("--faults", default="", help="fault spec, e.g. '429:0.1,reset:0.05' (see README)")
    sandbox.add_argument("--rate-limit", default="", dest="rate_limit",
                         help="per-provider limits, e.g. 'cordial=100/10,cymbal=100/10' (N requests per W seconds)")
    sandbox.set_defaults(func=_sandbox)

    demo = sub.add_parser("demo", help="run the whole pipeline against the built-in sandbox and show the marts")
    demo.add_argument("--days", type=int, default=7, help="how many recent days to load")
    demo.add_argument("--end", default=None,
                      help="last day to load, YYYY-MM-DD (default: today, UTC); the sandbox's data is anchored on "
                           "it, so a demo of a given day is the same every time")
    demo.add_argument("-v", "--verbose", action="store_true",
                      help="also print dbt's and Dagster's output (always in the run's log file)")
    demo.set_defaults(func=_demo)

    run = sub.add_parser("run", help="materialize raw partitions, marts and syncs for a date range")
    run.add_argument("--start", required=True, help="first day, YYYY-MM-DD (inclusive)")
    run.add_argument("--end", required=True, help="last day, YYYY-MM-DD (inclusive)")
    run.add_argument("--select", default=None, help="Dagster asset selection, e.g. 'group:tickettailor'")
    run.add_argument("-v", "--verbose", action="store_true",
                     help="also print dbt's and Dagster's output (always in the run's log file)")
    run.set_defaults(func=_run)

    reap = sub.add_parser("reap", help="fail runs whose process died and free their pool slots")
    reap.add_argument("--run-id", default=None,
                      help="end this run (SIGTERM if it is alive here) and free its pool slots")
    reap.set_defaults(func=_reap)

    sql = sub.add_parser("sql", help="query the warehouse read-only, or open a DuckDB shell on it")
    from pipelines.cli import sql as sql_command  # its flags; a light module

    sql_command.add_arguments(sql)
    sql.set_defaults(func=_sql)

    dev = sub.add_parser("dev", help="start the sandbox and `dagster dev`, wired together")
    from pipelines.cli import dev as dev_command  # its flags; a light module (Dagster loads on use)

    dev_command.add_arguments(dev)
    dev.set_defaults(func=_dev)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    # Dagster flags the beta/preview APIs we use deliberately (single-run backfills, partitioned
    # checks) on every import; users cannot act on that, so keep it out of their terminal.
    warnings.filterwarnings("ignore", message=r".*is currently in (beta|preview)")
    # `marquee run` executes one range run per phase; backfill-policy advice does not apply to it.
    warnings.filterwarnings("ignore", message=r".*materializes assets with varying BackfillPolicies")
    args = build_parser().parse_args(argv)
    return args.func(args)


def entry() -> None:
    """The `marquee` console script (and `python -m pipelines.cli`): `main`, then a quick exit.

    Why not a plain `sys.exit(main())`: tearing down the interpreter's ~3,500 modules (Dagster, dbt,
    pyarrow, DuckDB) took ~1 s after every `marquee run` and `marquee demo` (measured in
    benchmarks/README.md), and nothing in that teardown is marquee's to wait for: every file,
    database and log it writes is closed or committed when a command returns, since the pipeline is
    built to survive a SIGKILL at any instant, a harsher end than this one. What an orderly exit
    does that matters still happens here: other threads are joined, the exit handlers run (logging
    flushes and closes its handlers there), stdout and stderr are flushed. Only on a normal return:
    an exception or SystemExit takes Python's ordinary way out, traceback and all. `main` itself
    stays a plain function that tests call in their own process."""
    code = main()
    for thread in threading.enumerate():
        if thread is not threading.main_thread() and not thread.daemon:
            thread.join()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe: what Python's own exit reports as status 120
            code = code or 120
    os._exit(code)


if __name__ == "__main__":
    entry()
