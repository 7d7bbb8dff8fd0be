"""The run's log file: where the chatter of a headless run goes instead of the terminal.

dagster-dbt re-emits every dbt event on stdout (`1 of 132 START sql view model ...`), and a week's
build prints a few hundred of them between marquee's phase lines. A person reads neither, and the
figures that matter scroll away. So while a phase executes, `marquee run`/`demo`/`dev` send stdout to
`$MARQUEE_DATA_DIR/logs/run-<UTC time>.log`, and to the terminal as well only with `-v`.
Warnings and errors are unaffected: Dagster's console logger writes them to stderr, and the runner
lists every failing asset at the end. Runs launched from the UI keep Dagster's captured stdout.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TextIO

from resources import settings

LOGS_DIR = "logs"
KEEP_RUN_LOGS = 20  # a run log is small (tens of kB); keep enough to look back a few days of runs


class _Tee:
    """stdout that writes to the log file and, with -v, to the terminal too."""

    def __init__(self, *streams: IO[str]) -> None:
        self._streams = streams

    def write(self, text: str) -> int:
        for stream in self._streams:
            stream.write(text)
        return len(text)

    def flush(self) -> None:
        for stream in self._streams:
            stream.flush()

    def isatty(self) -> bool:
        return False


class RunLog:
    """One log file per command invocation; `capture()` routes stdout into it for one phase."""

    def __init__(self, path: Path, verbose: bool = False) -> None:
        self.path = path
        self.verbose = verbose
        self._file: TextIO | None = None

    @classmethod
    def new(cls, verbose: bool = False, data_dir: Path | None = None) -> RunLog:
        logs = (data_dir if data_dir is not None else settings.data_dir()) / LOGS_DIR
        logs.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
        _prune(logs, keep=KEEP_RUN_LOGS - 1)
        return cls(logs / f"run-{stamp}.log", verbose)

    @contextlib.contextmanager
    def capture(self, phase: str) -> Iterator[None]:
        if self._file is None:
            self._file = self.path.open("a", encoding="utf-8", errors="replace")
        self._file.write(f"===== phase {phase} at {datetime.now(UTC).isoformat(timespec='seconds')}\n")
        self._file.flush()
        terminal = sys.stdout
        target = _Tee(self._file, terminal) if self.verbose else self._file
        with contextlib.redirect_stdout(target):  # type: ignore[type-var]
            try:
                yield
            finally:
                sys.stdout.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def _prune(logs: Path, keep: int) -> None:
    runs = sorted(logs.glob("run-*.log"))
    for old in runs[: max(0, len(runs) - keep)]:
        with contextlib.suppress(FileNotFoundError):
            old.unlink()
