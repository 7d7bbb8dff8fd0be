"""The Parquet lake: streaming, atomic, per-day partition files.

Layout: see "paths" below, the one place it is written down.

Why the writer looks the way it does:
- Rows arrive page by page and are appended to a `ParquetWriter` as row groups, so memory is
  bounded by one row group per writer (and by a shared budget for writers used together),
  never by the partition's size.
- The file is written under a temporary name in the partition's own directory (same filesystem,
  so the rename is atomic), fsynced, renamed over `part-0.parquet`, and the directory is fsynced
  so the rename itself survives a power cut. A reader sees the old partition or the new one,
  never half of one; a killed run leaves the old partition in place and a temp file that
  `sweep_orphaned_temp_files` removes (at the start of every `marquee run` phase, and once per
  process before its first landing). The temp name names its writer (host, pid, start time), so
  a sweep never removes a live concurrent writer's file, and it does not end in `.parquet`, so
  the warehouse's globs never pick it up.
- New directories (`date=...`) are created one level at a time and fsynced in their parent
  (`resources.files.ensure_dir`): a durably renamed file is useless if its directory entry is not.
- A day with no records still gets a file with the schema: "no data" differs from "not loaded".
- A lake in object storage (`MARQUEE_LAKE_URL=s3://...`, resources/lakefs.py) keeps every rule
  above with the store's own step: the temp file is in the local spool, and "rename" is one
  upload of the whole file to its final key, which the store makes visible only once complete.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from resources import lakefs, pg_locks, seams, settings
from resources.entity import QUARANTINE_SCHEMA, EntitySpec
from resources.files import exclusive_lock, fsync_file, sweep_temp_files
from resources.lakefs import Location

PART_FILE = "part-0.parquet"
# A row group is written when the buffered pages reach ROW_GROUP_BYTES of Arrow data or
# ROW_GROUP_ROWS rows, whichever comes first; memory in flight is bounded by the byte limit.
#
# Why 32 MiB and not less: a partition must be one file (a reader sees the old partition or the
# new one, never a mix of files), and the C++ ParquetWriter keeps every written row group's
# footer metadata in memory until close: ~875 bytes per leaf column per row group, whether or not
# statistics are written (~12x the serialized footer). For one entity, that memory per order
# times the buffer per row group is fixed (leaf columns x 875 B x Arrow bytes per row), so bigger
# groups trade a higher floor for less growth with N: 5,000-row groups grew peak RSS by ~22 B per
# Ticket Tailor order, 16 MiB groups by ~7.5 B. Measurements: benchmarks/README.md.
ROW_GROUP_ROWS = 25_000
ROW_GROUP_BYTES = 32 * 2**20

# --- test seams (resources/seams.py; re-exported because the tests and assets know them here) -----
CRASH_ENV, CRASH_EXIT_CODE, PAUSE_ENV = seams.CRASH_ENV, seams.CRASH_EXIT_CODE, seams.PAUSE_ENV
crash_point, pause_point = seams.crash_point, seams.pause_point


# --- paths ----------------------------------------------------------------------------------------
#
# The lake's layout, in one place (every other module asks these functions for a path or a glob):
#
#   {lake}/raw/{provider}/{entity}/date=YYYY-MM-DD/part-0.parquet         landed records
#   {lake}/quarantine/{provider}/{entity}/date=YYYY-MM-DD/part-0.parquet  records that did not fit
#   {lake}/schemas/{provider}_{entity}.parquet                             each entity's typed schema
#   {lake}/models/{schema}/{model}.parquet                                 dbt's exports
#   {lake}/sync_log/{destination}/part-*.parquet                           the reverse sync's log
#   {lake}/locks/{name}.lock                                               cross-process locks (local lake)
#   {lake}/catalog/warehouse.duckdb                                        the analysts' catalog (object store)

RAW_AREA = "raw"
QUARANTINE_AREA = "quarantine"
# Where each declared raw entity's schema is kept, as an empty typed Parquet file: what the catalog
# shows for an entity that has not landed yet (resources/warehouse.py).
SCHEMAS_AREA = "schemas"
MODELS_AREA = "models"
SYNC_LOG_AREA = "sync_log"


# Every function takes `root`: a local directory (Path or str), an `s3://bucket/prefix` URL, or None
# for this process's lake (`MARQUEE_LAKE_URL`, else `$MARQUEE_DATA_DIR/lake`). Paths come back as a
# `lakefs.Location` (a Path, or an `s3://` string), which resources/lakefs.py reads and writes.
Root = Path | str | None


def lake_root(root: Root = None) -> Location:
    return lakefs.as_location(root) if root is not None else settings.lake_location()


def partition_dir(spec: EntitySpec, day: date, root: Root = None, area: str = RAW_AREA) -> Location:
    return lakefs.join(lake_root(root), area, spec.provider, spec.entity, f"date={day.isoformat()}")


def partition_path(spec: EntitySpec, day: date, root: Root = None, area: str = RAW_AREA) -> Location:
    return lakefs.join(partition_dir(spec, day, root, area), PART_FILE)


def partition_glob(root: Root = None, area: str = RAW_AREA, provider: str = "*",
                   entity: str = "*", file: str = "*.parquet") -> str:
    """A glob over the partition files of one entity (or, with the `*` defaults, of every entity)."""
    return str(lakefs.join(lake_root(root), area, provider, entity, "date=*", file))


def has_partitions(root: Root = None, area: str = RAW_AREA, provider: str = "*", entity: str = "*") -> bool:
    return lakefs.any_match(lakefs.join(lake_root(root), area), f"{provider}/{entity}/date=*/*.parquet")


def landed_entity_dirs(root: Root = None) -> Iterator[tuple[str, str]]:
    """(provider, entity) of every raw entity with at least one partition file, registered or not.
    A local lake is asked entity by entity, each stopping at its first file (it runs at every
    publish); an object store is listed once, since each request costs a round trip."""
    base = lakefs.join(lake_root(root), RAW_AREA)
    if lakefs.is_remote(base):
        found = {tuple(lakefs.relative(f, base).split("/")[:2]) for f in lakefs.glob(base, "*/*/date=*/*.parquet")}
        yield from sorted(found)  # type: ignore[misc]
        return
    raw = Path(base)
    if not raw.is_dir():
        return
    for provider_dir in sorted(p for p in raw.iterdir() if p.is_dir()):
        for entity_dir in sorted(p for p in provider_dir.iterdir() if p.is_dir()):
            if lakefs.any_match(entity_dir, "date=*/*.parquet"):
                yield provider_dir.name, entity_dir.name


def schema_path(name: str, root: Root = None) -> Location:
    return lakefs.join(lake_root(root), SCHEMAS_AREA, f"{name}.parquet")


def models_dir(root: Root = None) -> Location:
    return lakefs.join(lake_root(root), MODELS_AREA)


def model_path(schema: str, name: str, root: Root = None) -> Location:
    return lakefs.join(models_dir(root), schema, f"{name}.parquet")


CATALOG_AREA = "catalog"


def catalog_object(root: Root = None) -> Location:
    """Where a lake in object storage keeps a copy of the analysts' catalog, for other machines."""
    return lakefs.join(lake_root(root), CATALOG_AREA, "warehouse.duckdb")


def sync_log_dir(destination: str, root: Root = None) -> Location:
    return lakefs.join(lake_root(root), SYNC_LOG_AREA, destination)


def lock_path(name: str, root: Root = None) -> Path:
    """A local lake keeps its lock files in `locks/`; a lake in object storage has no file to lock,
    so its lock files are local to this machine (see `lake_lock`)."""
    lake = lake_root(root)
    base = Path(lake) / "locks" if not lakefs.is_remote(lake) else settings.data_dir() / "locks"
    return base / f"{name}.lock"


def lake_lock(name: str, root: Root = None) -> contextlib.AbstractContextManager[None]:
    """An exclusive lock named `name`, shared by every process that uses this lake, released if the
    holder dies however it dies.

    A local lake: flock on a file in the lake (one host, or an NFS mount that supports locks). A lake
    in object storage is shared by machines: with PostgreSQL configured (MARQUEE_PG_URL or
    DAGSTER_PG_*), a PostgreSQL advisory lock named after the lake and `name`, held by a session the
    server ends when its client dies; without it, a LakeLockError, unless MARQUEE_LAKE_SINGLE_HOST=1
    says this machine alone writes the lake, and then flock on a local file (docs/scale-out.md)."""
    lake = lake_root(root)
    if lakefs.is_remote(lake) and pg_locks.configured():
        return pg_locks.advisory_lock(f"{lake}#{name}")
    problem = lock_problem(lake)
    if problem:
        raise LakeLockError(f"lake lock {name!r}: {problem}")
    return exclusive_lock(lock_path(name, root))


SINGLE_HOST_ENV = "MARQUEE_LAKE_SINGLE_HOST"


class LakeLockError(RuntimeError):
    """A lake lock that cannot hold where the lake is shared: an object store without PostgreSQL."""


def single_host() -> bool:
    """Whether the operator declared that one machine alone writes a lake in object storage."""
    return os.environ.get(SINGLE_HOST_ENV, "").strip().lower() in ("1", "true", "yes")


def lock_problem(root: Root = None) -> str | None:
    """Why this lake's locks cannot be trusted, or None. A lake in object storage is meant to be
    shared by machines, and a flock holds on one: without PostgreSQL to hold its locks, two Cymbio
    pulls on two machines could each acknowledge returns that the other's upload then overwrites.
    marquee refuses that setup rather than assume one machine, unless the operator says so."""
    lake = lake_root(root)
    if not lakefs.is_remote(lake) or pg_locks.configured() or single_host():
        return None
    return (f"the lake {lake} is in object storage, and its locks must hold across machines, but no PostgreSQL "
            f"is configured to hold them. Set {pg_locks.PG_URL_ENV} (or the DAGSTER_PG_* variables) to the "
            f"PostgreSQL of Dagster's instance; or, if this machine is the only one that ever writes this lake, "
            f"set {SINGLE_HOST_ENV}=1. Then re-run: what was landed before this stays.")


# The lock of the dbt build; its name is the Dagster pool's, which the build also runs in.
BUILD_LOCK = "duckdb"


def build_lock(root: Root = None) -> contextlib.AbstractContextManager[None]:
    """One dbt build at a time per lake: its DuckDB build database and the model exports it writes.

    The build also runs in the `duckdb` pool (limit 1), which keeps a second build queued in Dagster
    rather than waiting here. The pool alone is not a guarantee: Dagster 1.13 claims a slot with a
    SELECT ... FOR UPDATE and then an UPDATE on an autocommit connection, so the row lock ends with
    the SELECT, and two steps that ask at the same instant can both be given the last slot (seen
    with PostgreSQL in CI, and in 20 of 40 two-thread trials; SQLite, whose writes queue on its file
    lock, gave one slot in 40 of 40). This lock makes the second wait."""
    return lake_lock(BUILD_LOCK, root)


# --- crash debris ---------------------------------------------------------------------------------


def _subdirs(base: Path, depth: int, prefix: str = "") -> Iterator[Path]:
    """Directories exactly `depth` levels below `base` (the last level's names start with `prefix`)."""
    level = [base]
    for i in range(depth):
        last = i == depth - 1
        nxt: list[Path] = []
        for d in level:
            try:
                with os.scandir(d) as it:
                    nxt += [Path(e.path) for e in it
                            if e.is_dir(follow_symlinks=False) and (not last or e.name.startswith(prefix))]
            except (FileNotFoundError, NotADirectoryError):
                continue
        level = nxt
    return iter(level)


def temp_file_dirs(root: Root = None, data_dir: Path | str | None = None) -> Iterator[Path]:
    """Every directory the durable writers put temp files in: raw and quarantine partitions, the
    entity schemas, dbt's model exports, the sync logs, and the analysts' catalog (its versions and
    its stable name). A lake in object storage has no temp files: they are in the local spool."""
    lake = lake_root(root)
    if lakefs.is_remote(lake):
        yield lakefs.spool_dir()
        data = Path(data_dir) if data_dir is not None else settings.data_dir()
        yield data
        yield data / "catalog"
        return
    lake = Path(lake)
    data = Path(data_dir) if data_dir is not None else (settings.data_dir() if root is None else lake.parent)
    for area in (RAW_AREA, QUARANTINE_AREA):
        yield from _subdirs(lake / area, 3, prefix="date=")
    yield lake / SCHEMAS_AREA
    yield from _subdirs(lake / MODELS_AREA, 1)
    yield from _subdirs(lake / SYNC_LOG_AREA, 1)
    yield data
    yield data / "catalog"


def sweep_orphaned_temp_files(root: Root = None, data_dir: Path | str | None = None) -> int:
    """Remove the temp files that dead processes left anywhere in the lake and the catalog; returns
    how many. Safe while other runs write: a live writer's temp file is never removed (see
    `resources.files.temp_file_is_orphan`). Costs one directory listing per partition."""
    return sweep_temp_files(temp_file_dirs(root, data_dir))


_swept_roots: set[tuple[int, str]] = set()


def sweep_once_per_process(root: Root = None) -> None:
    """The whole-lake sweep, once per process and lake: runs launched by the daemon (or the UI) do
    not go through `marquee run`, so their first landing clears what earlier crashes left."""
    lake = lake_root(root)
    key = (os.getpid(), str(lake if lakefs.is_remote(lake) else Path(lake).resolve()))
    if key in _swept_roots:
        return
    _swept_roots.add(key)
    sweep_orphaned_temp_files(root)


class RowsRejected(Exception):
    """Rows Arrow could not fit into the schema (raised per row by `to_table_checked`)."""


def to_table_checked(rows: list[dict[str, Any]], schema: pa.Schema) -> tuple[pa.Table, list[tuple[dict, str]]]:
    """Build one page's table. If Arrow rejects the page, find the offending rows one by one so
    a single bad record costs only itself; returns (table of good rows, [(bad row, reason)])."""
    try:
        return pa.Table.from_pylist(rows, schema=schema), []
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, OverflowError):
        pass
    good: list[dict[str, Any]] = []
    bad: list[tuple[dict, str]] = []
    for row in rows:
        try:
            pa.Table.from_pylist([row], schema=schema)
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, OverflowError) as exc:
            bad.append((row, f"does not fit the schema: {type(exc).__name__}: {exc}"[:500]))
        else:
            good.append(row)
    return pa.Table.from_pylist(good, schema=schema), bad


# Columns whose min/max statistics are not written. The writer holds every row group's footer
# metadata until close (see ROW_GROUP_BYTES), and `_raw`'s statistics are the biggest single item
# in it: the min and the max of a whole JSON document, per row group (~45% of a serialized footer
# in a synthetic test, ~7-15% of the writer's in-memory metadata on the real run). Nobody filters
# or prunes on the raw JSON, so they buy nothing. Every other column, nested leaves included,
# keeps its statistics.
NO_STATISTICS = frozenset({"_raw"})


def _leaf_paths(name: str, typ: pa.DataType) -> list[str]:
    """Parquet leaf column paths of one Arrow field (compliant nested names, as the writer uses)."""
    if pa.types.is_struct(typ):
        return [p for i in range(typ.num_fields) for p in _leaf_paths(f"{name}.{typ.field(i).name}", typ.field(i).type)]
    if pa.types.is_map(typ):
        return (_leaf_paths(f"{name}.key_value.key", typ.key_type)
                + _leaf_paths(f"{name}.key_value.value", typ.item_type))
    if pa.types.is_list(typ) or pa.types.is_large_list(typ) or pa.types.is_fixed_size_list(typ):
        return _leaf_paths(f"{name}.list.element", typ.value_type)
    return [name]


def stats_columns(schema: pa.Schema) -> list[str] | bool:
    """`write_statistics=` for a schema: every leaf column except those in NO_STATISTICS. Leaf paths,
    not top-level names: a top-level name of a nested column would silently drop its leaves' stats."""
    if not NO_STATISTICS.intersection(schema.names):
        return True
    return [path for field in schema if field.name not in NO_STATISTICS for path in _leaf_paths(field.name, field.type)]


# Writers landing together (the day writers of one window; Ticket Tailor's orders, line items and
# issued tickets, which fill from the same pages) share one buffer budget. Each writer alone is
# bounded by its row group, but their buffers fill at different rates and the peak is where
# they happen to be full together: without a shared bound, a longer partition simply gets more
# chances at a worse alignment (1M orders peaked at 344 MB, 5M at 373). Past the budget, the
# biggest buffer is written out early, as a smaller row group of the same rows.
WRITER_GROUP_PENDING_BYTES = 48 * 2**20


class BufferBudget:
    """One buffer budget for writers used together, from one thread (flushing is not thread-safe)."""

    def __init__(self, limit: int = WRITER_GROUP_PENDING_BYTES) -> None:
        self.limit = limit
        self._writers: list[PartitionWriter] = []

    @property
    def pending_bytes(self) -> int:
        return sum(w.pending_bytes for w in self._writers)

    def join(self, writer: PartitionWriter) -> None:
        self._writers.append(writer)

    def leave(self, writer: PartitionWriter) -> None:
        if writer in self._writers:
            self._writers.remove(writer)

    def enforce(self) -> None:
        pending = self.pending_bytes
        while pending > self.limit:
            biggest = max(self._writers, key=lambda w: w.pending_bytes)
            pending -= biggest.pending_bytes
            biggest.flush()


class PartitionWriter:
    """Streams one partition (one entity, one day) into a temp file; `commit()` makes it visible.

    Use as a context manager: leaving the block by an exception aborts (the temp file goes away,
    the previous partition stays).
    """

    def __init__(self, spec: EntitySpec, day: date, root: Root = None,
                 row_group_rows: int | None = None, row_group_bytes: int | None = None,
                 budget: BufferBudget | None = None) -> None:
        self.spec = spec
        self.day = day
        self.schema = spec.schema
        self.target = partition_path(spec, day, root)
        self._root = root
        self.row_group_rows = row_group_rows or ROW_GROUP_ROWS
        self.row_group_bytes = row_group_bytes or ROW_GROUP_BYTES
        self.rows_written = 0
        self._pending: list[pa.Table] = []
        self._pending_rows = 0
        self._pending_bytes = 0
        self._writer: pq.ParquetWriter | None = None
        self._tmp: Path | None = None
        self._closed = False
        self._prepared = False
        self._budget = budget
        if budget is not None:
            budget.join(self)

    def __enter__(self) -> PartitionWriter:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is not None or not self._closed:
            self.abort()

    def _open(self) -> pq.ParquetWriter:
        if self._writer is None:
            sweep_once_per_process(self._root)
            self._tmp = lakefs.temp_for(self.target)
            self._writer = pq.ParquetWriter(self._tmp, self.schema, compression="zstd",
                                            write_statistics=stats_columns(self.schema))
        return self._writer

    def write_table(self, table: pa.Table) -> None:
        """Append an already-typed table (its schema must be the entity's)."""
        if table.num_rows == 0:
            return
        if not table.schema.equals(self.schema):
            table = table.select(self.schema.names).cast(self.schema)
        self._pending.append(table)
        self._pending_rows += table.num_rows
        self._pending_bytes += table.nbytes
        if self._pending_rows >= self.row_group_rows or self._pending_bytes >= self.row_group_bytes:
            self.flush()
        elif self._budget is not None:
            self._budget.enforce()

    def write_rows(self, rows: list[dict[str, Any]]) -> list[tuple[dict, str]]:
        """Append one page of rows (dicts with every typed column plus the meta columns).
        Returns the rows Arrow rejected, with the reason, for the caller to quarantine."""
        if not rows:
            return []
        table, bad = to_table_checked(rows, self.schema)
        self.write_table(table)
        return bad

    @property
    def pending_bytes(self) -> int:
        """Arrow bytes buffered for the next row group (what `flush` would write)."""
        return self._pending_bytes

    def flush(self) -> None:
        if not self._pending:
            return
        table = pa.concat_tables(self._pending) if len(self._pending) > 1 else self._pending[0]
        self._pending, self._pending_rows, self._pending_bytes = [], 0, 0
        self._open().write_table(table, row_group_size=max(table.num_rows, 1))
        self.rows_written += table.num_rows

    def prepare(self) -> None:
        """Write the footer and fsync the temp file: everything but the rename. The slow part of a
        commit; callers that make several partitions visible together prepare them all first, so
        a crash between their renames is a window of milliseconds, not of a footer and an fsync."""
        if self._prepared:
            return
        self.flush()
        writer = self._open()  # a writer with no row group still writes a valid, typed file
        writer.close()
        self._writer = None
        assert self._tmp is not None
        fsync_file(self._tmp)
        self._prepared = True

    def commit(self) -> Location:
        """Close, fsync and make visible in one step: a rename locally, one upload to an object store
        (an empty typed file if no rows)."""
        self.prepare()
        assert self._tmp is not None
        crash_point("lake.before_rename")
        lakefs.publish(self._tmp, self.target)
        self._closed = True
        if self._budget is not None:
            self._budget.leave(self)
        crash_point("lake.after_rename")
        return self.target

    def abort(self) -> None:
        if self._writer is not None:
            with contextlib.suppress(Exception):
                self._writer.close()
            self._writer = None
        if self._tmp is not None:
            with contextlib.suppress(FileNotFoundError):
                self._tmp.unlink()
        self._pending, self._pending_rows, self._pending_bytes = [], 0, 0
        self._closed = True
        if self._budget is not None:
            self._budget.leave(self)


# --- quarantine -----------------------------------------------------------------------------------


def quarantine_row(spec: EntitySpec, day: date, reason: str, raw_json: str, loaded_at: datetime) -> dict[str, Any]:
    return {"provider": spec.provider, "entity": spec.entity, "reason": reason, "_raw": raw_json,
            "_loaded_at": loaded_at, "_partition": day}


def write_quarantine(spec: EntitySpec, day: date, rows: list[dict[str, Any]],
                     root: Root = None) -> Location | None:
    """Replace the partition's quarantine file with `rows`; with none, remove it, because a re-run
    replaces exactly its partition and a fixed record must not stay quarantined."""
    target = partition_path(spec, day, root, area=QUARANTINE_AREA)
    if not rows:
        lakefs.remove(target)
        return None
    return lakefs.write_table(pa.Table.from_pylist(rows, schema=QUARANTINE_SCHEMA), target)


# --- reading back ---------------------------------------------------------------------------------


def read_partition(spec: EntitySpec, day: date, root: Root = None,
                   columns: list[str] | None = None, area: str = RAW_AREA) -> pa.Table | None:
    """The landed partition, or None if that day was never landed."""
    path = partition_path(spec, day, root, area)
    try:
        return lakefs.read_table(path, columns=columns)
    except FileNotFoundError:
        return None


def landed_days(spec: EntitySpec, root: Root = None, area: str = RAW_AREA) -> list[date]:
    files = lakefs.glob(lakefs.join(lake_root(root), area, spec.provider, spec.entity), f"date=*/{PART_FILE}")
    return sorted(date.fromisoformat(str(lakefs.parent(f)).rsplit("date=", 1)[1]) for f in files)


def iter_column(spec: EntitySpec, column: str, root: Root = None) -> Iterator[Any]:
    """Every value of one column across all landed partitions, one row group at a time."""
    for day in landed_days(spec, root):
        pf = lakefs.parquet_file(partition_path(spec, day, root))
        for i in range(pf.num_row_groups):
            yield from pf.read_row_group(i, columns=[column]).column(0).to_pylist()


def iter_partition_batches(spec: EntitySpec, day: date, root: Root = None,
                           columns: Iterable[str] | None = None) -> Iterator[pa.Table]:
    """A landed partition, one row group at a time (bounded memory for re-copying)."""
    path = partition_path(spec, day, root)
    try:
        pf = lakefs.parquet_file(path)
    except FileNotFoundError:
        return
    for i in range(pf.num_row_groups):
        yield pf.read_row_group(i, columns=list(columns) if columns else None)


def utc_now() -> datetime:
    return datetime.now(UTC)
