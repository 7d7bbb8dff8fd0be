"""`marquee sql [QUERY]`: the analysts' warehouse, read-only, in the DuckDB CLI the project installs.

With a query it prints the result as a table and exits with the CLI's status; without one it starts
the interactive DuckDB shell on the warehouse. The CLI is PyPI's `duckdb-cli` (a dependency), so a
newcomer needs nothing else, and it is a 1.x client: each run of `marquee sql` also proves that the
published catalog opens in the DuckDB most analysts' tools embed (resources/warehouse.py,
CATALOG_STORAGE_VERSION).

Which warehouse: `--db PATH`, else `$MARQUEE_DATA_DIR/warehouse.duckdb` when that variable is set,
else `./data/warehouse.duckdb`, else the demo's (`$MARQUEE_DEMO_DIR`, default `./data/demo`), so
`marquee sql` right after `make demo` opens the demo's warehouse.

With the lake in object storage (`MARQUEE_LAKE_URL=s3://...`) the catalog's views read `s3://` paths,
which the CLI reads only with `httpfs`, an extension it cannot download here. A query then runs in
this process's DuckDB, with the store registered as marquee's own connections have it
(resources/lakefs.py), and prints the same kind of table; the interactive shell says what to use.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

from pipelines.cli.demo import demo_dir
from resources import lakefs, settings

CLI_NAME = "duckdb"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("query", nargs="?", default=None,
                        help="SQL to run; without it, an interactive DuckDB shell on the warehouse")
    parser.add_argument("--db", default=None,
                        help="the warehouse file (default: $MARQUEE_DATA_DIR/warehouse.duckdb when set, else "
                             "./data/warehouse.duckdb, else the demo's ./data/demo/warehouse.duckdb)")


def warehouse_candidates() -> list[Path]:
    """Where `marquee sql` looks for the warehouse, in order: the data dir's (MARQUEE_DATA_DIR, or
    ./data), then, when no data dir is set, the demo's."""
    if os.environ.get("MARQUEE_DATA_DIR"):
        return [settings.warehouse_path()]
    return [settings.warehouse_path(), settings.warehouse_path(demo_dir())]


def duckdb_cli() -> Path | None:
    """The DuckDB CLI installed with marquee (next to this Python), else one on PATH."""
    beside = Path(sys.executable).parent / CLI_NAME
    if beside.is_file() and os.access(beside, os.X_OK):
        return beside
    found = shutil.which(CLI_NAME)
    return Path(found) if found else None


def main(args: argparse.Namespace) -> int:
    if args.db:
        warehouse = Path(args.db).expanduser()
        if not warehouse.exists():
            print(f"marquee sql: no warehouse at {warehouse}", file=sys.stderr)
            return 2
    else:
        candidates = warehouse_candidates()
        warehouse = next((p for p in candidates if p.exists()), None)
        if warehouse is None:
            tried = ", ".join(str(p) for p in candidates)
            print(f"marquee sql: no warehouse found (looked at {tried}). Run `make demo` (or `marquee run`) "
                  "first, or pass --db PATH.", file=sys.stderr)
            return 2
    lake = settings.lake_location()
    if lakefs.is_remote(lake) and os.environ.get(lakefs.HTTPFS_ENV) != "1":
        return _query_through_python(warehouse, lake, args.query)
    cli = duckdb_cli()
    if cli is None:
        print("marquee sql: the DuckDB CLI is not installed; run `make setup` (it installs PyPI's duckdb-cli).",
              file=sys.stderr)
        return 2
    command = [str(cli), "-readonly", str(warehouse)]
    if args.query is None:
        # The shell takes over the terminal: exec, so Ctrl-C and Ctrl-D go to DuckDB, not to us.
        os.execv(command[0], command)
    # -bail: a failing statement is an exit status, not a line of text a script would miss.
    return subprocess.run([*command, "-bail", "-c", args.query], check=False).returncode


def _query_through_python(warehouse: Path, lake: str, query: str | None) -> int:
    if query is None:
        print(f"marquee sql: the lake is in object storage ({lake}) and the DuckDB CLI reads it only with its "
              "httpfs extension. Give a query (`marquee sql \"select ...\"`), or open the catalog from Python or "
              "with httpfs as the README shows (\"The lake in object storage\"); with httpfs installed, set "
              f"{lakefs.HTTPFS_ENV}=1.", file=sys.stderr)
        return 2
    import duckdb

    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        lakefs.register_duckdb(con, lake)
        relation = con.sql(query)
        if relation is not None:
            relation.show(max_rows=10_000, max_width=10_000)
    except duckdb.Error as exc:
        print(f"marquee sql: {exc}", file=sys.stderr)
        return 1
    finally:
        con.close()
    return 0
