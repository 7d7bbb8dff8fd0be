"""Durable file operations shared by the lake, the catalog, the dbt export and the sync log.

Everything a reader can see is written to a temp file beside its target, fsynced, renamed over
the target and the directory fsynced, so a crash or a concurrent reader only ever sees the old
file or the new one. New directories are created one level at a time and each is fsynced in its
parent, so a file that was durably renamed into a new `date=` directory survives a power cut
together with the directory. Small and hand-written: the standard library has the pieces, no
maintained package combines them for Parquet and DuckDB files.

Temp files carry their writer's host, pid and process start time in their name
(`.{target}.{host}.{pid}.{start}.{random}.inprogress`), so `sweep_temp_files` can tell an orphan of
a dead process (same host, process gone or pid reused) from a live concurrent writer, whose file
it must never remove. A temp file from another host (a shared volume) can only be judged by age.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import socket
import time
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path

TMP_SUFFIX = ".inprogress"
# A temp file whose writer cannot be identified as dead (another host, an old-style name) is an
# orphan once it has not been written to for this long: a live writer appends at least one row
# group (or the whole file) far more often than that.
STALE_TEMP_SECONDS = 3600


def fsync_file(path: Path) -> None:
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def ensure_dir(path: Path) -> Path:
    """`mkdir -p` that makes each new level durable: after a crash, a directory that a durably
    renamed file lives in still exists (`mkdir(parents=True)` leaves new entries in the page cache)."""
    path = Path(path)
    if path.is_dir():
        return path
    missing: list[Path] = []
    cur = path
    while not cur.is_dir():
        missing.append(cur)
        if cur.parent == cur:
            break
        cur = cur.parent
    for new in reversed(missing):
        try:
            new.mkdir()
        except FileExistsError:
            if not new.is_dir():
                raise
            continue  # a concurrent writer made it; it fsyncs the parent itself
        fsync_dir(new.parent)
    return path


# --- temp names -----------------------------------------------------------------------------------

def _safe_host() -> str:
    """The host name plus the pid namespace: containers that share a host name (host networking)
    and a volume still have separate pid spaces, so a pid is only meaningful within its namespace."""
    host = re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname())[:40] or "host"
    with contextlib.suppress(OSError):
        host += f"-{os.stat('/proc/self/ns/pid').st_ino:x}"
    return host


def process_start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (Linux /proc), or None if the process
    does not exist. Together with the pid it identifies one process, even after the pid is reused."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return None
    except OSError:
        return "0"
    # Field 22; the command name (field 2) may contain spaces and parentheses, so split after it.
    return stat.rsplit(")", 1)[-1].split()[19]


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


_HOST = _safe_host()
_OWN_TAG: tuple[int, str] | None = None


def _own_tag() -> str:
    # Cached per pid: a forked child gets its own tag.
    global _OWN_TAG
    pid = os.getpid()
    if _OWN_TAG is None or _OWN_TAG[0] != pid:
        start = process_start_time(pid) if Path("/proc").is_dir() else None
        _OWN_TAG = (pid, f"{_HOST}.{pid}.{start or 0}")
    return _OWN_TAG[1]


def temp_path_for(target: Path) -> Path:
    """A unique hidden temp name in the target's directory (same filesystem, so rename is atomic),
    naming the writing process so a sweep can tell an orphan from a live writer."""
    return target.parent / f".{target.name}.{_own_tag()}.{uuid.uuid4().hex[:12]}{TMP_SUFFIX}"


_TEMP_RE = re.compile(r"\.(?P<host>[A-Za-z0-9-]+)\.(?P<pid>\d+)\.(?P<start>\d+)\.[0-9a-f]{12}"
                      + re.escape(TMP_SUFFIX) + r"(?:\.wal)?$")


def temp_file_is_orphan(path: Path, now: float | None = None) -> bool:
    """True if no live process can still be writing this temp file.

    Same host: its writer is gone (no such pid, or the pid now belongs to a later process).
    Another host or an unparseable name: not written to for STALE_TEMP_SECONDS.
    """
    m = _TEMP_RE.search(path.name)
    if m and m["host"] == _HOST and Path("/proc").is_dir():
        pid = int(m["pid"])
        if pid == os.getpid():
            return False
        if not _pid_alive(pid):
            return True
        start = process_start_time(pid)
        if start is None:
            return True
        return m["start"] != "0" and start != m["start"]  # a different process now has that pid
    try:
        age = (now or time.time()) - path.lstat().st_mtime
    except FileNotFoundError:
        return False
    return age > STALE_TEMP_SECONDS


def is_temp_name(name: str) -> bool:
    return name.startswith(".") and (name.endswith(TMP_SUFFIX) or name.endswith(f"{TMP_SUFFIX}.wal"))


def sweep_temp_files(directories: Iterable[Path]) -> int:
    """Remove the orphaned temp files (and temp symlinks) directly inside each directory; returns
    how many. A directory that does not exist is skipped. Never recurses: callers say where to look."""
    removed = 0
    now = time.time()
    for directory in directories:
        try:
            entries = list(os.scandir(directory))
        except (FileNotFoundError, NotADirectoryError):
            continue
        for entry in entries:
            if not is_temp_name(entry.name):
                continue
            path = Path(entry.path)
            if temp_file_is_orphan(path, now):
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
                    removed += 1
    return removed


# --- durable writes -------------------------------------------------------------------------------

def replace_durably(tmp: Path, target: Path) -> Path:
    """fsync `tmp`, rename it over `target`, fsync the directory."""
    fsync_file(tmp)
    os.replace(tmp, target)
    fsync_dir(target.parent)
    return target


@contextlib.contextmanager
def written_atomically(target: Path) -> Iterator[Path]:
    """Yield a temp path to write; on success it replaces `target` durably, on failure it is removed."""
    ensure_dir(target.parent)
    tmp = temp_path_for(target)
    try:
        yield tmp
        replace_durably(tmp, target)
    finally:
        for leftover in (tmp, Path(f"{tmp}.wal")):
            with contextlib.suppress(FileNotFoundError):
                leftover.unlink()


@contextlib.contextmanager
def exclusive_lock(lock_file: Path) -> Iterator[None]:
    """An advisory, process-wide exclusive lock on `lock_file` (writers only; readers never take it).

    flock, so the kernel releases it when the holder dies however it dies (SIGKILL included): a
    crashed run never leaves the lock held. Waiting blocks in the kernel (no CPU)."""
    ensure_dir(lock_file.parent)
    with open(lock_file, "a+") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
