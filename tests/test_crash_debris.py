"""Crash debris (issue 12, item 8): orphaned temp files are swept without ever touching a live
writer's, new directories are fsynced in their parent, and a day's entities are prepared before
any of them is renamed."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from datetime import date
from pathlib import Path

import pyarrow as pa
import pytest

from assets.landing.lander import EntityLander
from resources import files, lake, lakefs
from resources.warehouse import publish_catalog
from tests.test_lake import SPEC, _convert, _records

PROJECT = Path(__file__).resolve().parent.parent
DAY = date(2026, 3, 10)

# A writer in another process: lands one page, flushes it into its temp file, says so, and keeps
# the file open until told to go on (or is killed).
WRITER = textwrap.dedent("""
    import sys
    from datetime import date
    from resources import lake
    from tests.test_lake import SPEC, _records
    writer = lake.PartitionWriter(SPEC, date.fromisoformat(sys.argv[2]), sys.argv[1])
    writer.write_rows([{"id": r["id"], "amount": r["amount"], "at": None, "_raw": "{}",
                        "_loaded_at": __import__("datetime").datetime(2026, 3, 10), "_partition": writer.day}
                       for r in _records(3)])
    writer.flush()
    print(writer._tmp, flush=True)
    sys.stdin.readline()
    writer.commit()
""")


def _start_writer(root: Path, day: date) -> tuple[subprocess.Popen, Path]:
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(root), day.isoformat()], cwd=PROJECT,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline().strip()
    assert line, "the writer did not start"
    return proc, Path(line)


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _temp_name(target: str, host: str, pid: int, start: str) -> str:
    return f".{target}.{host}.{pid}.{start}.0123456789ab{files.TMP_SUFFIX}"


def test_a_sweep_removes_a_dead_writers_temp_files_everywhere_and_never_a_live_writers(tmp_path: Path) -> None:
    data = tmp_path / "data"
    root = data / "lake"
    live, live_tmp = _start_writer(root, DAY)
    killed, killed_tmp = _start_writer(root, date(2026, 3, 11))
    killed.kill()
    killed.wait(timeout=30)
    host = files._HOST
    dead = _dead_pid()
    orphans = [
        killed_tmp,
        # dead writers' temp files in every area the durable writers use
        root / "quarantine" / "unit" / "things" / "date=2026-03-10" / _temp_name("part-0.parquet", host, dead, "1"),
        root / "models" / "marts" / _temp_name("revenue.parquet", host, dead, "1"),
        root / "sync_log" / "cymbal" / _temp_name("part-x.parquet", host, dead, "1"),
        data / "catalog" / _temp_name("warehouse-000002.duckdb", host, dead, "1"),
        data / "catalog" / (_temp_name("warehouse-000002.duckdb", host, dead, "1") + ".wal"),
        data / _temp_name("warehouse.duckdb", host, dead, "1"),
        # a live pid that now belongs to another process (pid reuse): its start time differs
        root / "raw" / "unit" / "things" / "date=2026-03-12" / _temp_name("part-0.parquet", host, live.pid, "1"),
    ]
    other_host_old = root / "raw" / "unit" / "things" / "date=2026-03-12" / _temp_name("part-0.parquet",
                                                                                      "elsewhere", 7, "9")
    other_host_young = root / "raw" / "unit" / "things" / "date=2026-03-13" / _temp_name("part-0.parquet",
                                                                                        "elsewhere", 7, "9")
    for path in [*orphans[1:], other_host_old, other_host_young]:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
    old = time.time() - files.STALE_TEMP_SECONDS - 60
    os.utime(other_host_old, (old, old))
    try:
        assert killed_tmp.exists() and live_tmp.exists()
        removed = lake.sweep_orphaned_temp_files(root, data)
        assert removed == len(orphans) + 1
        assert not [p for p in [*orphans, other_host_old] if p.exists()]
        assert live_tmp.exists() and other_host_young.exists()
        # The live writer finishes normally afterwards.
        live.stdin.write("\n")
        live.stdin.flush()
        assert live.wait(timeout=60) == 0
    finally:
        if live.poll() is None:
            live.kill()
    assert lake.read_partition(SPEC, DAY, root).num_rows == 3
    assert lake.sweep_orphaned_temp_files(root, data) == 0


def test_the_first_landing_of_a_process_sweeps_the_whole_lake(tmp_path: Path) -> None:
    root = tmp_path / "lake"
    orphan = root / "raw" / "other" / "entity" / "date=2026-01-01" / _temp_name("part-0.parquet", files._HOST,
                                                                             _dead_pid(), "1")
    orphan.parent.mkdir(parents=True)
    orphan.write_bytes(b"x")
    with EntityLander(SPEC, [DAY], root=root) as lander:
        lander.add_page(_records(2), _convert, DAY)
        lander.commit()
    assert not orphan.exists()


def test_new_directories_are_fsynced_in_their_parent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[Path] = []
    real = files.fsync_dir

    def record(path: Path) -> None:
        synced.append(Path(path))
        real(path)

    monkeypatch.setattr(files, "fsync_dir", record)
    monkeypatch.setattr(lakefs, "fsync_dir", record)
    root = tmp_path / "lake"
    with EntityLander(SPEC, [DAY], root=root) as lander:
        lander.add_page(_records(2), _convert, DAY)
        lander.commit()
    day_dir = lake.partition_dir(SPEC, DAY, root)
    # Every directory that did not exist is durable in its parent, from the lake root down.
    for new in (root, root / "raw", root / "raw" / "unit", root / "raw" / "unit" / "things", day_dir):
        assert new.parent in synced, f"{new} was created but its parent was never fsynced"
    assert day_dir in synced  # and the rename into it
    # The catalog's directory too.
    synced.clear()
    publish_catalog(tmp_path / "data")
    assert tmp_path / "data" in synced


def test_a_multi_day_commit_prepares_every_file_before_renaming_any(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    events: list[str] = []
    prepare, commit = lake.PartitionWriter.prepare, lake.PartitionWriter.commit

    def spy_prepare(self: lake.PartitionWriter) -> None:
        if not self._prepared:
            events.append(f"prepare {self.day}")
        prepare(self)

    def spy_commit(self: lake.PartitionWriter):
        out = commit(self)
        events.append(f"rename {self.day}")
        return out

    monkeypatch.setattr(lake.PartitionWriter, "prepare", spy_prepare)
    monkeypatch.setattr(lake.PartitionWriter, "commit", spy_commit)
    days = [DAY, date(2026, 3, 11)]
    lander = EntityLander(SPEC, days, root=tmp_path / "lake")
    lander.add_page(_records(3), _convert, DAY)
    lander.commit()
    assert events == [f"prepare {days[0]}", f"prepare {days[1]}", f"rename {days[0]}", f"rename {days[1]}"]
    assert pa.types.is_string(lake.read_partition(SPEC, days[1], tmp_path / "lake").schema.field("id").type)
