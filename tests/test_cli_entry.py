"""The `marquee` console script's quick exit (pipelines/cli `entry`): it skips only the interpreter's
teardown. The command's status, every buffered byte of output, the exit handlers and the other
threads' work all still happen."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

SCRIPT = """
import atexit, threading, time
import pipelines.cli as cli

atexit.register(lambda: print("[exit handler]", end=""))

def command():
    def late():
        time.sleep(0.3)
        print("[thread]", end="")
    threading.Thread(target=late).start()  # not a daemon: it must finish before the process ends
    print("[output]", end="")  # no newline: still in stdout's buffer when the command returns
    return 3

cli.main = command
cli.entry()
"""


def test_the_quick_exit_keeps_the_status_the_output_the_exit_handlers_and_the_threads() -> None:
    result = subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 3, result.stderr
    assert result.stdout == "[output][thread][exit handler]", result.stdout
