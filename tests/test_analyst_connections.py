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

from resources.warehouse import publish_catalog

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
