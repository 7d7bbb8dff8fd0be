"""Durable file operations shared by the lake, the catalog, the dbt export and the sync log.

Everything a reader can see is written to a temp file beside its target, fsynced, renamed over
the target and the directory fsynced, so a crash or a concurrent reader only ever sees the old
file or the new one. Small and hand-written: the standard library has the pieces, no maintained
package combines them for Parquet and DuckDB files.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

TMP_SUFFIX = ".inprogress"  # resources/lake.py sweeps stale ones by this suffix


def fsync_file(path: Path) -> None:
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def temp_path_for(target: Path) -> Path:
    """A unique hidden temp name in the target's directory (same filesystem, so rename is atomic)."""
    return target.parent / f".{target.name}.{uuid.uuid4().hex}{TMP_SUFFIX}"


def replace_durably(tmp: Path, target: Path) -> Path:
    """fsync `tmp`, rename it over `target`, fsync the directory."""
    fsync_file(tmp)
    os.replace(tmp, target)
    fsync_dir(target.parent)
    return target


@contextlib.contextmanager
def written_atomically(target: Path) -> Iterator[Path]:
    """Yield a temp path to write; on success it replaces `target` durably, on failure it is removed."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path_for(target)
    try:
        yield tmp
        replace_durably(tmp, target)
    finally:
        for leftover in (tmp, Path(f"{tmp}.wal")):
            with contextlib.suppress(FileNotFoundError):
                leftover.unlink()


def atomic_write_table(table: pa.Table, target: Path) -> Path:
    """Write a whole (small) Arrow table to `target` as Parquet, atomically and durably."""
    with written_atomically(target) as tmp:
        pq.write_table(table, tmp)
    return target


@contextlib.contextmanager
def exclusive_lock(lock_file: Path) -> Iterator[None]:
    """An advisory, process-wide exclusive lock on `lock_file` (writers only; readers never take it)."""
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_file, "a+") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
