"""Test seams: named points in the write paths where a test can kill or hold the process.

Unset in production, where each call is one environment lookup and nothing else. They live in
their own module so every durable writer (the lake, the catalog publisher, the Cymbio returns)
can mark its critical steps without importing the others.

- Crash tests set MARQUEE_TEST_CRASH_AT=<step>[@n] to make the process die (os._exit, no cleanup,
  no flush: as close to SIGKILL as Python gets) the n-th time (default 1st) it reaches the step.
- Race tests and the crash harness set MARQUEE_TEST_PAUSE_DIR=<dir>: at `pause_point(step)` the
  process touches `<dir>/<step>.reached`, then waits while `<dir>/<step>.hold` exists (at most
  PAUSE_MAX_SECONDS). A hold file that contains a number n holds only the n-th reach, so a test
  can stop the process at, say, the third partition rename rather than always the first.
  Every `crash_point` is a pause point too.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

CRASH_ENV = "MARQUEE_TEST_CRASH_AT"
CRASH_EXIT_CODE = 86
PAUSE_ENV = "MARQUEE_TEST_PAUSE_DIR"
PAUSE_MAX_SECONDS = 120.0

_crash_hits: dict[str, int] = {}
_pause_hits: dict[str, int] = {}


def crash_point(step: str) -> None:
    """Die here if MARQUEE_TEST_CRASH_AT names this step; hold here if a pause test asks to."""
    pause_point(step)
    wanted = os.environ.get(CRASH_ENV)
    if not wanted:
        return
    name, _, nth = wanted.partition("@")
    if name != step:
        return
    _crash_hits[step] = _crash_hits.get(step, 0) + 1
    if _crash_hits[step] >= int(nth or 1):
        os._exit(CRASH_EXIT_CODE)


def pause_point(step: str) -> None:
    """Announce reaching `step` and wait while the test holds it. A no-op otherwise."""
    directory = os.environ.get(PAUSE_ENV)
    if not directory:
        return
    base = Path(directory)
    hold = base / f"{step}.hold"
    _pause_hits[step] = _pause_hits.get(step, 0) + 1
    try:
        wanted = int(hold.read_text().strip() or 0)
    except (OSError, ValueError):
        wanted = 0
    if wanted and _pause_hits[step] != wanted:
        return
    (base / f"{step}.reached").touch()
    deadline = time.monotonic() + PAUSE_MAX_SECONDS
    while hold.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
