"""An analyst's connection never fails a run (DESIGN.md, Storage), even the worst kind: the duckdb
CLI's default read-WRITE connection, held by another process, which takes DuckDB's exclusive lock."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from resources.warehouse import catalog_versions, publish_catalog

HOLDER = textwrap.dedent("""
    import sys, time, duckdb
    con = duckdb.connect(sys.argv[1])          # read-write, like `duckdb warehouse.duckdb`
    con.execute("select 1").fetchall()
    print("locked", flush=True)
    sys.stdin.readline()                        # hold the lock until the test says so
    print(con.execute("select orders from marts.revenue").fetchall(), flush=True)
""")


def test_publish_succeeds_while_another_process_holds_a_read_write_connection(tmp_path: Path, monkeypatch) -> None:
    data = tmp_path / "data"
    monkeypatch.setenv("MARQUEE_DATA_DIR", str(data))
    models = data / "lake" / "models" / "marts"
    models.mkdir(parents=True)
    pq.write_table(pa.table({"orders": [1]}), models / "revenue.parquet")
    warehouse = publish_catalog()

    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(warehouse)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        # Proof the lock is real: opening the file in place fails while the analyst holds it.
        try:
            duckdb.connect(str(warehouse)).close()
            raise AssertionError("expected DuckDB's lock to refuse a second writer")
        except duckdb.IOException:
            pass

        # A run lands new data and republishes: must succeed despite the held lock.
        pq.write_table(pa.table({"orders": [2]}), models / "revenue.parquet")
        publish_catalog()

        # The analyst's open connection keeps working and already reads the new Parquet...
        holder.stdin.write("\n")
        holder.stdin.flush()
        assert holder.stdout.readline().strip() == "[(2,)]"
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
    # ...and a fresh connection sees the new catalog.
    con = duckdb.connect(str(warehouse), read_only=True)
    assert con.execute("select orders from marts.revenue").fetchall() == [(2,)]
    con.close()


# --- versioned catalog: a read-write analyst across publishes (issue 12, item 6) ---------------------

ANALYST = textwrap.dedent("""
    import sys, duckdb
    con = duckdb.connect(sys.argv[1])          # read-write, the duckdb CLI's default
    con.execute("create table my_notes as select 42 as answer")
    print("ready", flush=True)
    for line in sys.stdin:
        cmd = line.strip()
        if cmd == "write":
            con.execute("insert into my_notes values (43)")
            print("ok", flush=True)
        elif cmd == "read":
            print(con.execute("select orders from marts.revenue").fetchall(), flush=True)
        elif cmd == "quit":
            break
    con.close()
    print("closed", flush=True)
""")

OPEN_AND_READ = textwrap.dedent("""
    import sys, duckdb
    con = duckdb.connect(sys.argv[1], read_only=sys.argv[2] == "ro")
    print(con.execute("select orders from marts.revenue").fetchall(), flush=True)
    con.close()
""")


def _third_connection(warehouse: Path, mode: str = "ro") -> str:
    """A new connection from another process, the way an analyst opens the catalog."""
    proc = subprocess.run([sys.executable, "-c", OPEN_AND_READ, str(warehouse), mode], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr[-1500:]
    return proc.stdout.strip()


def _ask(proc: subprocess.Popen, cmd: str) -> str:
    proc.stdin.write(cmd + "\n")
    proc.stdin.flush()
    return proc.stdout.readline().strip()


def _revenue(models: Path, orders: int) -> None:
    pq.write_table(pa.table({"orders": [orders]}), models / "revenue.parquet")


def test_a_read_write_analyst_across_two_publishes_hurts_nobody_and_keeps_their_tables(tmp_path: Path,
                                                                                       monkeypatch) -> None:
    data = tmp_path / "data"
    monkeypatch.setenv("MARQUEE_DATA_DIR", str(data))
    models = data / "lake" / "models" / "marts"
    models.mkdir(parents=True)
    _revenue(models, 1)
    warehouse = publish_catalog()

    analyst = subprocess.Popen([sys.executable, "-c", ANALYST, str(warehouse)], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, text=True)
    try:
        assert analyst.stdout.readline().strip() == "ready"  # holds the file read-write, with a WAL
        for orders in (2, 3):  # two publishes while the analyst holds their session and writes to it
            _revenue(models, orders)
            publish_catalog()
            assert _third_connection(warehouse) == f"[({orders},)]"  # no lock error, no WAL mismatch
            assert _ask(analyst, "write") == "ok"
            assert _ask(analyst, "read") == f"[({orders},)]"
        # Even a second read-write session works: it gets the current version to itself.
        assert _third_connection(warehouse, "rw") == "[(3,)]"
        assert not Path(f"{warehouse}.wal").exists()  # nothing stale behind the stable name
        assert _ask(analyst, "quit") == "closed"
    finally:
        analyst.stdin.close()
        analyst.wait(timeout=30)

    # The analyst's tables are where they were written, in the version they had open, and that
    # version survives garbage collection while the versions nobody holds are deleted.
    _revenue(models, 4)
    publish_catalog()
    assert _third_connection(warehouse) == "[(4,)]"
    versions = catalog_versions(data)
    assert len(versions) == 2, versions  # the analyst's and the current one
    assert warehouse.resolve() == versions[-1]
    con = duckdb.connect(str(versions[0]), read_only=True)
    assert sorted(con.execute("select answer from my_notes").fetchall()) == [(42,), (43,), (43,)]
    con.close()


def test_a_killed_read_write_analyst_leaves_nothing_in_anyone_elses_way(tmp_path: Path, monkeypatch) -> None:
    data = tmp_path / "data"
    monkeypatch.setenv("MARQUEE_DATA_DIR", str(data))
    models = data / "lake" / "models" / "marts"
    models.mkdir(parents=True)
    _revenue(models, 1)
    warehouse = publish_catalog()
    analyst = subprocess.Popen([sys.executable, "-c", ANALYST, str(warehouse)], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, text=True)
    assert analyst.stdout.readline().strip() == "ready"
    held = warehouse.resolve()
    analyst.kill()  # no checkpoint: the table exists only in the version's WAL
    analyst.wait(timeout=30)
    assert Path(f"{held}.wal").exists()
    _revenue(models, 2)
    publish_catalog()
    publish_catalog()
    assert _third_connection(warehouse) == "[(2,)]"
    assert held.exists() and Path(f"{held}.wal").exists()  # the unsaved work is kept, with its WAL
    assert len(catalog_versions(data)) == 2
    con = duckdb.connect(str(held), read_only=True)
    assert con.execute("select answer from my_notes").fetchall() == [(42,)]
    con.close()


def test_old_versions_are_collected_once_nobody_holds_them(tmp_path: Path, monkeypatch) -> None:
    data = tmp_path / "data"
    monkeypatch.setenv("MARQUEE_DATA_DIR", str(data))
    warehouse = publish_catalog()
    reader = duckdb.connect(str(warehouse), read_only=True)  # holds version 1
    held = warehouse.resolve()
    for _ in range(4):
        publish_catalog()
    assert catalog_versions(data) == [held, warehouse.resolve()]  # the held one and the current one
    assert reader.execute("select count(*) from raw.quarantine").fetchone() == (0,)
    reader.close()
    publish_catalog()
    assert catalog_versions(data) == [warehouse.resolve()]
    assert not [p for p in (data / "catalog").iterdir() if p.name.startswith(".")]  # no temp left


def test_a_plain_file_catalog_from_before_versioning_is_adopted_with_its_tables(tmp_path: Path,
                                                                                  monkeypatch) -> None:
    data = tmp_path / "data"
    monkeypatch.setenv("MARQUEE_DATA_DIR", str(data))
    data.mkdir()
    legacy = duckdb.connect(str(data / "warehouse.duckdb"))
    legacy.execute("create table my_notes as select 7 as answer")
    legacy.close()
    warehouse = publish_catalog()
    assert warehouse.is_symlink()
    kept = catalog_versions(data)[0]
    con = duckdb.connect(str(kept), read_only=True)
    assert con.execute("select answer from my_notes").fetchall() == [(7,)]
    con.close()
