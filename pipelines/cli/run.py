"""`marquee run --start D --end D [--select SEL]`: the headless twin of a UI backfill (pipelines/runner.py)."""

from __future__ import annotations

import argparse
import sys
from datetime import date

from pipelines.runner import RunFailed, RunInterrupted, run_range
from resources import settings


def _parse_day(value: str, flag: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise SystemExit(f"marquee run: {flag} {value!r} is not a date; use YYYY-MM-DD") from None


def main(args: argparse.Namespace) -> int:
    start = _parse_day(args.start, "--start")
    end = _parse_day(args.end, "--end")
    try:
        run_range(start, end, args.select, verbose=args.verbose)
    except RunInterrupted as exc:
        print(f"marquee run: {exc}; the run in flight was marked failed and its pool slots freed. "
              "Rerun the same range to finish it.", file=sys.stderr)
        return exc.exit_code
    except RunFailed as exc:
        print(f"marquee run FAILED (first in the {exc.phase} phase):", file=sys.stderr)
        for line in exc.failures:
            print(f"  - {line}", file=sys.stderr)
        return 1
    print(f"Warehouse: {settings.warehouse_path()}")
    return 0
