"""Dagster's SQLite storage during a marquee run (pipelines/instance.py): one idle reader per file
keeps each event's close from checkpointing the WAL, and commits skip the fsync; nothing of it
outlives the run, and the instance records the same run either way."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import dagster as dg
import pytest

from pipelines.instance import sqlite_storage_kept_open


@dg.op
def chatty(context) -> int:
    for i in range(20):
        context.log.info(f"event {i}")
    return 1


@dg.job
def chatty_job() -> None:
    chatty()


def _open_files_under(base: Path) -> set[str]:
    out = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith(str(base)):
            out.add(target)
    return out


def _events(instance: dg.DagsterInstance, run_id: str) -> list[str]:
    return [e.dagster_event.event_type_value if e.dagster_event else "log"
            for e in instance.all_logs(run_id)]


@pytest.fixture
def instance(tmp_path: Path):
    with dg.instance_for_test(temp_dir=str(tmp_path)) as inst:
        yield inst


def test_a_run_inside_records_what_a_run_outside_records(instance, tmp_path: Path) -> None:
    plain = chatty_job.execute_in_process(instance=instance)
    with sqlite_storage_kept_open():
        kept = chatty_job.execute_in_process(instance=instance)
        # inside: the run's event log file (and the index) are held open by the reader
        held = _open_files_under(tmp_path)
        assert any(p.endswith(f"{kept.run_id}.db") for p in held), held
    assert plain.success and kept.success
    assert _events(instance, kept.run_id) == _events(instance, plain.run_id)
    assert sum(1 for e in _events(instance, kept.run_id) if e == "log") == 20
    # outside: nothing of the run is held open, and the WAL was checkpointed into the file
    assert not {p for p in _open_files_under(tmp_path) if p.endswith(".db")}
    run_db = next(tmp_path.rglob(f"{kept.run_id}.db"))
    assert not run_db.with_name(run_db.name + "-wal").exists()
    con = sqlite3.connect(run_db)
    try:
        assert con.execute("SELECT count(*) FROM event_logs").fetchone()[0] == len(_events(instance, kept.run_id))
    finally:
        con.close()


def test_commits_skip_the_fsync_only_inside(instance, tmp_path: Path) -> None:
    from sqlalchemy import create_engine, text

    engine = create_engine(f"sqlite:///{tmp_path / 'probe.db'}")

    def synchronous() -> int:
        with engine.connect() as conn:
            return conn.execute(text("PRAGMA synchronous")).scalar_one()

    assert synchronous() == 2  # FULL, SQLite's default
    with sqlite_storage_kept_open():
        engine.dispose()
        assert synchronous() == 1  # NORMAL
    engine.dispose()
    assert synchronous() == 2
    engine.dispose()


def test_nested_use_keeps_the_readers_until_the_outer_exit(instance, tmp_path: Path) -> None:
    with sqlite_storage_kept_open():
        with sqlite_storage_kept_open():
            result = chatty_job.execute_in_process(instance=instance)
        assert any(p.endswith(f"{result.run_id}.db") for p in _open_files_under(tmp_path))
    assert not {p for p in _open_files_under(tmp_path) if p.endswith(".db")}


def test_inside_each_database_is_reached_through_one_engine(instance, monkeypatch) -> None:
    import pipelines.instance as instance_module

    made: list[str] = []
    real = instance_module._dagster_create_engine

    def counting(url, **kwargs):
        made.append(str(url))
        return real(url, **kwargs)

    monkeypatch.setattr(instance_module, "_dagster_create_engine", counting)
    chatty_job.execute_in_process(instance=instance)
    outside = list(made)
    made.clear()
    with sqlite_storage_kept_open():
        kept = chatty_job.execute_in_process(instance=instance)
        assert instance_module._engines  # in use while the run is kept open
    inside = list(made)
    # Dagster's own way, outside: an engine per connection, so many per file (20 log events alone).
    assert len(outside) > 20
    assert max(outside.count(url) for url in set(outside)) > 20
    # Inside: one per database file (the run's shard, the index, the runs table...), however many events.
    assert len(inside) == len(set(inside)) <= 4, inside
    assert any(url.endswith(f"{kept.run_id}.db") for url in inside)
    assert not instance_module._engines  # disposed of when the run ended
    assert sum(1 for e in _events(instance, kept.run_id) if e == "log") == 20


def test_dagsters_sqlite_storages_build_their_engines_through_marquee() -> None:
    # If a Dagster upgrade renames what its SQLite storages call, the reuse above silently stops:
    # this says so instead.
    import pipelines.instance as instance_module

    for module in instance_module.SQLITE_STORAGE_MODULES:
        assert module.create_engine is instance_module._storage_engine, module.__name__
        assert "create_engine(" in Path(module.__file__).read_text(), module.__name__
