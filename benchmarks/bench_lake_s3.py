"""What the lake in object storage costs against the lake on local disk, for one day's partition.

    .venv/bin/python benchmarks/bench_lake_s3.py [ROWS]    # default 500,000 rows

Writes one partition of ROWS synthetic order-like rows (an id, two money columns, a timestamp and a
~300-byte `_raw` JSON text, as landed rows have) with `lake.PartitionWriter`, to a local lake and to
an `s3://` lake on moto's S3 server on 127.0.0.1 (tests/s3.py), then reads it back through a DuckDB
view (`count`, a `sum`, the length of every `_raw`) as the dbt build and the analysts do: natively
from disk, through fsspec's wrapper of pyarrow's S3 client from the store. Median of 3 runs each,
in one process.

moto keeps objects in memory and runs in this process's threads, so the figures are the client's
costs (spooling, one upload, reads through Python) more than a real store's network; a real store
adds its latency to each request.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, date, datetime
from pathlib import Path

import duckdb
import pyarrow as pa

from resources import lake, lakefs
from resources.entity import EntitySpec
from resources.warehouse import create_raw_views

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.s3 import running_server  # noqa: E402

DAY = date(2026, 3, 10)
SPEC = EntitySpec(
    provider="bench", entity="orders", primary_key=("id",), money_minor_columns=("gross", "refunded"),
    columns=pa.schema([pa.field("id", pa.string(), nullable=False), ("gross", pa.int64()), ("refunded", pa.int64()),
                       ("created_at", pa.timestamp("us", tz="UTC"))]),
)
PAGE = 5_000


def pages(rows: int):
    loaded = datetime(2026, 3, 11, tzinfo=UTC)
    created = datetime(2026, 3, 10, 12, tzinfo=UTC)
    raw = '{"object":"order","status":"completed","buyer":{"email":"x@example.com"},"lines":[' + "1," * 100 + '1]}'
    for start in range(0, rows, PAGE):
        n = min(PAGE, rows - start)
        yield pa.table({
            "id": pa.array([f"or_{i}" for i in range(start, start + n)]),
            "gross": pa.array(range(start, start + n), pa.int64()),
            "refunded": pa.array([0] * n, pa.int64()),
            "created_at": pa.array([created] * n, pa.timestamp("us", tz="UTC")),
            # Per-row text that compresses like real records do (not to nothing, as one repeated string would).
            "_raw": pa.array([raw.replace("x@", f"{i}.{os.urandom(24).hex()}@") for i in range(start, start + n)]),
            "_loaded_at": pa.array([loaded] * n, pa.timestamp("us", tz="UTC")),
            "_partition": pa.array([DAY] * n, pa.date32()),
        }, schema=SPEC.schema)


def write(root: str | Path, rows: int) -> float:
    t0 = time.perf_counter()
    with lake.PartitionWriter(SPEC, DAY, root) as writer:
        for table in pages(rows):
            writer.write_table(table)
        writer.commit()
    return time.perf_counter() - t0


def read(root: str | Path) -> tuple[float, tuple]:
    con = duckdb.connect()
    try:
        create_raw_views(con, root, entities=[SPEC])
        t0 = time.perf_counter()
        result = con.execute("select count(*), sum(gross), sum(length(_raw)) from raw.bench_orders").fetchone()
        return time.perf_counter() - t0, result
    finally:
        con.close()


def main() -> None:
    rows = int(sys.argv[1]) if len(sys.argv) > 1 else 500_000
    with tempfile.TemporaryDirectory() as tmp, running_server() as server:
        server.create_bucket("bench")
        url = "s3://bench/lake"
        os.environ.update(server.env(url))
        os.environ["MARQUEE_SPOOL_DIR"] = f"{tmp}/spool"
        results = {}
        for name, root in (("local disk", Path(tmp) / "lake"), ("s3 (moto)", url)):
            writes = [write(root, rows) for _ in range(3)]
            reads = [read(root) for _ in range(3)]
            size = (Path(root) / "raw/bench/orders/date=2026-03-10/part-0.parquet").stat().st_size \
                if isinstance(root, Path) else lakefs.s3().get_file_info(
                    "bench/lake/raw/bench/orders/date=2026-03-10/part-0.parquet").size
            results[name] = (statistics.median(writes), statistics.median(r[0] for r in reads), reads[0][1], size)
        for name, (w, r, answer, size) in results.items():
            print(f"{name:>10}: {rows:,} rows, {size / 2**20:.1f} MiB file; write+publish {w:.2f} s, "
                  f"DuckDB scan (count, sum, every _raw byte) {r * 1000:.0f} ms -> {answer}")


if __name__ == "__main__":
    main()
