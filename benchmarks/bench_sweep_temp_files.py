"""How long `lake.sweep_orphaned_temp_files` takes on a big lake (it runs at the start of every
`marquee run` phase and once per process before its first landing).

    .venv/bin/python benchmarks/bench_sweep_temp_files.py [ENTITIES] [DAYS]   # default 20 x 1000

Builds a lake of ENTITIES raw entities x DAYS `date=` partitions (one small file each, plus a
quarantine partition for every tenth day and 50 orphaned temp files) in a temp dir, then times the
sweep cold-ish (first) and warm (median of 5).
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

from resources import files, lake


def build(root: Path, entities: int, days: int) -> None:
    start = date(2024, 1, 1)
    for e in range(entities):
        for d in range(days):
            day = start + timedelta(days=d)
            part = root / "raw" / f"p{e % 4}" / f"entity{e}" / f"date={day}"
            part.mkdir(parents=True)
            (part / "part-0.parquet").write_bytes(b"x")
            if d % 10 == 0:
                q = root / "quarantine" / f"p{e % 4}" / f"entity{e}" / f"date={day}"
                q.mkdir(parents=True)
                (q / "part-0.parquet").write_bytes(b"x")
            if d < 50 and e == 0:
                (part / f".part-0.parquet.{files._HOST}.999999999.1.0123456789ab{files.TMP_SUFFIX}").write_bytes(b"")


def main() -> None:
    entities = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    days = int(sys.argv[2]) if len(sys.argv) > 2 else 1000
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "lake"
        build(root, entities, days)
        t0 = time.perf_counter()
        removed = lake.sweep_orphaned_temp_files(root)
        first = time.perf_counter() - t0
        warm = []
        for _ in range(5):
            t0 = time.perf_counter()
            lake.sweep_orphaned_temp_files(root)
            warm.append(time.perf_counter() - t0)
        dirs = entities * days + entities * ((days + 9) // 10)
        print(f"{entities} entities x {days} days = {dirs} partition dirs: removed {removed} orphans; "
              f"first sweep {first * 1000:.0f} ms, then median {statistics.median(warm) * 1000:.0f} ms")


if __name__ == "__main__":
    main()
