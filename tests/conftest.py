"""Shared fixtures. Every test gets its own data directory, so nothing leaks between tests.

Test data lives in RAM when it can: the pipeline fsyncs every partition, catalog and Dagster event
(SQLite) as production must, and on this kind of machine's virtual disk those syncs were a third of
a pipeline run's time. When /dev/shm is a tmpfs with room to spare, the session's base temp dir
goes there (`MARQUEE_TEST_TMP=disk` keeps pytest's default; `--basetemp` always wins). Nothing a
test asserts depends on the disk: crash tests kill processes, they do not cut the power.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

RAM_DIR = Path("/dev/shm")
RAM_NEEDED = 4 * 2**30  # the heaviest tests hold a few hundred MB each; keep a wide margin


def _ram_basetemp() -> Path | None:
    if os.environ.get("MARQUEE_TEST_TMP", "ram") != "ram" or not RAM_DIR.is_dir():
        return None
    try:
        if shutil.disk_usage(RAM_DIR).free < RAM_NEEDED:
            return None
        return Path(tempfile.mkdtemp(prefix="marquee-tests-", dir=RAM_DIR))
    except OSError:
        return None


def pytest_configure(config: pytest.Config) -> None:
    # Only the controller chooses (xdist workers inherit its basetemp and make their own subdirs).
    if hasattr(config, "workerinput") or config.option.basetemp:
        return
    base = _ram_basetemp()
    if base is not None:
        config.option.basetemp = str(base)
        config._marquee_ram_basetemp = base  # type: ignore[attr-defined]


def pytest_unconfigure(config: pytest.Config) -> None:
    # RAM is not a place to leave a session's data behind; MARQUEE_KEEP_TEST_DATA=1 keeps it.
    base = getattr(config, "_marquee_ram_basetemp", None)
    if base is not None and not os.environ.get("MARQUEE_KEEP_TEST_DATA"):
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(autouse=True)
def _isolated_data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("MARQUEE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("DO_NOT_TRACK", "1")
    yield


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The slow tests (marker `pipeline`) go first. With two workers, a long test that starts last
    leaves one core idle until it ends; started first, the short ones fill in around it (longest
    first is the classic rule for packing jobs onto machines). Within each half the order is kept."""
    items.sort(key=lambda item: item.get_closest_marker("pipeline") is None)


@pytest.hookimpl(trylast=True)
def pytest_collection_finish(session: pytest.Session) -> None:
    """Under `--dist loadgroup`, pytest-xdist marks a grouped test by a `@group` suffix on its node id
    on each worker; a pytest it cannot do that with splits every group, and each costly module
    fixture is silently built on both workers (it happened: see pyproject's pytest bound). Loud."""
    config = session.config
    if not hasattr(config, "workerinput") or not getattr(config.option, "loadgroup", False):
        return
    lost = [item.nodeid for item in session.items
            if item.get_closest_marker("xdist_group") and "@" not in item.nodeid]
    if lost:
        message = (f"--dist loadgroup did not group {lost[0]} (and {len(lost) - 1} more): this pytest-xdist "
                   "cannot group under this pytest; see the pytest bound in pyproject.toml")
        print(message, file=sys.__stderr__, flush=True)  # a worker's error reaches the terminal only as this
        raise pytest.UsageError(message)
