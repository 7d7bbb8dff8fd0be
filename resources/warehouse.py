"""The warehouse: a views-only DuckDB catalog over the Parquet lake, and the registry of raw entities.

Why views only: DuckDB allows one writer or many readers per file. Analysts keep
`warehouse.duckdb` open for hours, so the pipeline never writes to it in place. The views
re-expand their Parquet globs at every query, so a newly landed partition is visible without
republishing; only a new entity (or a new dbt model) needs `publish_catalog()`.

Why versioned files behind a symlink (see `publish_catalog`): `warehouse.duckdb` is a symlink to
`catalog/warehouse-NNNNNN.duckdb`, and each publish writes a new version and swaps the symlink.
DuckDB (2.x) resolves the symlink when it opens a database and names the WAL after the real file
(`catalog/warehouse-NNNNNN.duckdb.wal`). So an analyst who opens the catalog read-write writes to
their version and its own WAL: the next connection opens the next version and never meets their
WAL, and their tables stay in the version they had open. The older design renamed a new file over
`warehouse.duckdb`; a read-write session then left `warehouse.duckdb.wal` beside the new file, every
new connection failed with "WAL does not match database file", and the analyst's tables were gone.

A raw entity (`EntitySpec`: provider, entity, typed pyarrow schema, primary key) is declared by its
provider's asset module and listed by assets/providers.py; nothing here is provider-specific. The
analysts' catalog gets a `raw.*` view per entity that has landed at least once (the lake says which);
the dbt build database also gets an empty typed view for an entity not landed yet, so the models
build whatever is configured.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import re
import struct
from collections.abc import Iterable, Iterator
from pathlib import Path

import dagster as dg
import duckdb
import pyarrow as pa
from dagster_duckdb import DuckDBResource
from pydantic import Field

from resources import lake, lakefs, seams, settings
from resources.entity import QUARANTINE_SCHEMA, EntitySpec
from resources.files import (
    ensure_dir,
    exclusive_lock,
    fsync_dir,
    sweep_temp_files,
    temp_path_for,
    written_atomically,
)
from resources.lake import PART_FILE, QUARANTINE_AREA, RAW_AREA, SCHEMAS_AREA

# --- views ----------------------------------------------------------------------------------------


def _quote(ident: str) -> str:
    return '"' + ident.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def duckdb_types(schema: pa.Schema) -> list[tuple[str, str]]:
    """(column, DuckDB SQL type) for a pyarrow schema, as DuckDB itself maps it."""
    probe = duckdb.connect()
    try:
        rel = probe.from_arrow(schema.empty_table())
        return [(col, str(typ)) for col, typ in zip(rel.columns, rel.types, strict=True)]
    finally:
        probe.close()


def empty_view_sql(schema: pa.Schema) -> str:
    cols = ", ".join(f"CAST(NULL AS {typ}) AS {_quote(col)}" for col, typ in duckdb_types(schema))
    return f"SELECT {cols} WHERE false"


def record_schemas(lake_root: Path | str, entities: Iterable[EntitySpec]) -> None:
    """Keep each entity's schema in the lake (an empty typed Parquet file), so every later catalog
    shows a typed, empty `raw.*` view for it until it lands, whoever publishes."""
    for spec in entities:
        path = lake.schema_path(spec.name, lake_root)
        with contextlib.suppress(FileNotFoundError):
            if lakefs.read_schema(path).equals(spec.schema, check_metadata=False):
                continue
        lakefs.write_table(spec.schema.empty_table(), path)


def create_raw_views(con: duckdb.DuckDBPyConnection, lake_root: Path | str | None = None,
                     schema: str = "raw", entities: Iterable[EntitySpec] = ()) -> list[str]:
    """(Re)create one view `{schema}.{provider}_{entity}` per raw entity, plus `{schema}.quarantine`
    and `{schema}.landed_partitions` (which partition days are in the lake); returns the view names.

    An entity with files gets a view over them. An entity without files yet (one of `entities`, or
    one whose schema the lake keeps: `record_schemas`) gets an empty view of its typed columns, so
    dbt never fails on a provider that is not configured and analysts see every table from the
    start. Hive partitioning is off on purpose: `_partition` is already a column in every file, and
    an extra `date` column would make the view's shape differ from the empty one.
    """
    root = lake.lake_root(lake_root)
    lakefs.register_duckdb(con, root)
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {_quote(schema)}")
    specs = {e.name: e for e in entities}
    kept = {lakefs.name(p).removesuffix(".parquet"): p
            for p in lakefs.glob(lakefs.join(root, SCHEMAS_AREA), "*.parquet")}
    names: list[str] = []
    on_disk = {f"{p}_{e}": (p, e) for p, e in lake.landed_entity_dirs(root)}
    for name in sorted(set(specs) | set(on_disk) | set(kept)):
        if name in on_disk:
            provider, ent = on_disk[name]
            glob = lake.partition_glob(root, RAW_AREA, provider, ent)
            body = f"SELECT * FROM read_parquet({_literal(glob)}, union_by_name = true, hive_partitioning = false)"
        elif name in specs:
            body = empty_view_sql(specs[name].schema)
        else:
            body = f"SELECT * FROM read_parquet({_literal(str(kept[name]))})"
        con.execute(f"CREATE OR REPLACE VIEW {_quote(schema)}.{_quote(name)} AS {body}")
        names.append(f"{schema}.{name}")
    # Quarantined records of every entity, one view (empty and typed until something is quarantined).
    qglob = lake.partition_glob(root, QUARANTINE_AREA)
    if lake.has_partitions(root, QUARANTINE_AREA):
        qbody = f"SELECT * FROM read_parquet({_literal(qglob)}, union_by_name = true, hive_partitioning = false)"
    else:
        qbody = empty_view_sql(QUARANTINE_SCHEMA)
    con.execute(f"CREATE OR REPLACE VIEW {_quote(schema)}.quarantine AS {qbody}")
    names.append(f"{schema}.quarantine")
    con.execute(f"CREATE OR REPLACE VIEW {_quote(schema)}.{LANDED_PARTITIONS_VIEW} AS {landed_partitions_sql(root)}")
    names.append(f"{schema}.{LANDED_PARTITIONS_VIEW}")
    return names


LANDED_PARTITIONS_VIEW = "landed_partitions"


def landed_partitions_sql(lake_root: Path | str) -> str:
    """SELECT of every partition file in the lake: (provider, entity, asset, partition_date).

    A partition's `part-0.parquet` exists iff its day was loaded (a day without records is an
    empty typed file), so this tells "loaded, no data" from "never loaded". `glob()` is expanded
    at every query, like the entity views, and gives an empty VARCHAR `file` column when nothing
    matches, so an empty (or missing) lake is an empty view of the same four typed columns.
    """
    pattern = lake.partition_glob(lake_root, RAW_AREA, file=PART_FILE)
    # Anchored at the end and `[^/]` only: a `/raw/` higher up in the lake root cannot match.
    regex = _literal("/" + re.escape(RAW_AREA) + r"/([^/]+)/([^/]+)/date=(\d{4}-\d{2}-\d{2})/"
                     + re.escape(PART_FILE) + "$")
    parts = f"regexp_extract(replace(file, '\\', '/'), {regex}, ['provider', 'entity', 'day'])"
    return (
        "SELECT CAST(m.provider AS VARCHAR) AS provider, CAST(m.entity AS VARCHAR) AS entity, "
        "CAST(m.provider || '_' || m.entity AS VARCHAR) AS asset, "
        "TRY_CAST(m.day AS DATE) AS partition_date "
        f"FROM (SELECT {parts} AS m FROM glob({_literal(pattern)})) "
        "WHERE TRY_CAST(m.day AS DATE) IS NOT NULL"
    )


# Exported model schemas that are not the analysts': `sync` holds the buyers' contact details the
# reverse sync pushes (personal data), so it is read by the sync from its files and never published.
PRIVATE_MODEL_SCHEMAS = frozenset({"raw", "sync"})


def create_model_views(con: duckdb.DuckDBPyConnection, lake_root: Path | str | None = None) -> list[str]:
    """A `{schema}.{name}` view for every `lake/models/{schema}/{name}.parquet` (dbt exports), except
    the private schemas."""
    root = lake.lake_root(lake_root)
    lakefs.register_duckdb(con, root)
    models = lake.models_dir(root)
    names: list[str] = []
    by_schema: dict[str, list[str]] = {}
    for f in lakefs.glob(models, "*/*.parquet"):
        schema_name, file_name = lakefs.relative(f, models).split("/")
        by_schema.setdefault(schema_name, []).append(file_name.removesuffix(".parquet"))
    for schema_name in sorted(set(by_schema) - PRIVATE_MODEL_SCHEMAS):
        con.execute(f"CREATE SCHEMA IF NOT EXISTS {_quote(schema_name)}")
        for stem in by_schema[schema_name]:
            path = lake.model_path(schema_name, stem, root)
            con.execute(
                f"CREATE OR REPLACE VIEW {_quote(schema_name)}.{_quote(stem)} AS "
                f"SELECT * FROM read_parquet({_literal(str(path))})"
            )
            names.append(f"{schema_name}.{stem}")
    return names


CATALOG_NAME = "warehouse.duckdb"
# The storage format the analysts' catalog is written in. DuckDB writes its newest format by
# default, and DuckDB 2.x files (storage version 69) cannot be opened by the 1.x clients most
# analysts have (the PyPI `duckdb-cli` 1.5, DBeaver's and Metabase's drivers). The catalog holds views
# only, which every format since 0.10 stores; v1.2.0 is the oldest whose readers the tests prove
# can query every mart (DuckDB 1.2 Python and the 1.5 CLI, tests/test_older_clients.py).
CATALOG_STORAGE_VERSION = "v1.2.0"
CATALOG_DIR = "catalog"  # under the data dir: the versions the stable name points at
_VERSION_RE = re.compile(r"^warehouse-(\d{6,})\.duckdb$")
_CATALOG_SCHEMAS_OF_ANALYSTS = ("main",)  # where DuckDB puts what an analyst creates without a schema


def catalog_dir(data_dir: Path | str | None = None) -> Path:
    base = Path(data_dir) if data_dir is not None else settings.data_dir()
    return base / CATALOG_DIR


def catalog_versions(data_dir: Path | str | None = None) -> list[Path]:
    """Every catalog version on disk, oldest first."""
    directory = catalog_dir(data_dir)
    if not directory.is_dir():
        return []
    found = [(int(m[1]), p) for p in directory.iterdir() if (m := _VERSION_RE.match(p.name))]
    return [p for _, p in sorted(found)]


def _is_locked_by_anyone(path: Path) -> bool:
    """True if /proc/locks shows any lock on `path`'s inode (DuckDB takes a read lock per read-only
    database and a write lock per read-write one). Read without opening the file: closing any
    descriptor of a file drops every POSIX lock this process holds on it, including those of an
    in-process DuckDB connection. False if /proc/locks is unavailable (the caller then tries a lock)."""
    try:
        st = path.stat()
        table = Path("/proc/locks").read_text()
    except OSError:
        return False
    inode = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    # "1: POSIX  ADVISORY  READ 12822 fe:00:2146934 0 EOF"; a blocked waiter's line has a "->" too.
    for line in table.splitlines():
        fields = [f for f in line.split() if f != "->"]
        if len(fields) > 5 and fields[5] == inode:
            return True
    return False


@contextlib.contextmanager
def _try_exclusive(path: Path) -> Iterator[bool]:
    """Try a non-blocking exclusive lock on the whole file, the kind DuckDB checks before opening:
    yields True (held until the block ends; no DuckDB can open the file meanwhile) or False (some
    connection, read-only or read-write, has it open). Open file description locks where the OS
    has them: they also see this process's own DuckDB connections."""
    fd = os.open(path, os.O_RDWR)
    try:
        try:
            if hasattr(fcntl, "F_OFD_SETLK"):
                fcntl.fcntl(fd, fcntl.F_OFD_SETLK, struct.pack("hhqqi", fcntl.F_WRLCK, os.SEEK_SET, 0, 0, 0))
            else:  # pragma: no cover - macOS: POSIX record lock
                fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in (errno.EAGAIN, errno.EACCES):
                yield False
                return
            raise
        yield True
    finally:
        os.close(fd)


def _analyst_objects(path: Path) -> list[str]:
    """Tables (anywhere) and other objects in `main` that a catalog version holds. Published
    catalogs hold only views in their own schemas, so anything listed is an analyst's work."""
    schemas = ", ".join(map(_literal, _CATALOG_SCHEMAS_OF_ANALYSTS))
    con = duckdb.connect(str(path), read_only=True)
    try:
        rows = con.execute(
            "SELECT schema_name || '.' || table_name FROM duckdb_tables() WHERE NOT internal AND NOT temporary "
            "UNION ALL SELECT schema_name || '.' || view_name FROM duckdb_views() "
            f"WHERE NOT internal AND NOT temporary AND schema_name IN ({schemas})"
        ).fetchall()
    finally:
        con.close()
    return sorted(r[0] for r in rows)


_reported_kept: set[Path] = set()


def collect_old_catalogs(data_dir: Path | str | None = None, current: Path | None = None) -> list[Path]:
    """Delete catalog versions nobody can need any more; returns the ones deleted.

    A version other than `current` is deleted only if no connection has it open (no lock on it, and
    we hold an exclusive lock while deleting, so nobody can open it meanwhile), it has no WAL (a
    read-write session's unsaved work), and it holds no object an analyst created. A version kept
    for an analyst's tables is reported once per process, with its path."""
    log = dg.get_dagster_logger("marquee.warehouse")
    deleted: list[Path] = []
    for version in catalog_versions(data_dir):
        if current is not None and version.name == current.name:
            continue
        wal = Path(f"{version}.wal")
        if wal.exists() or _is_locked_by_anyone(version):
            continue
        try:
            objects = _analyst_objects(version)
        except duckdb.Error:
            continue  # being opened read-write right now, or not a database we can read: keep it
        if objects:
            if version not in _reported_kept:
                _reported_kept.add(version)
                log.warning(f"Kept analysts' catalog version {version}: it holds {', '.join(objects[:5])}"
                            f"{' ...' if len(objects) > 5 else ''}, created in a read-write session. Open it with "
                            f"duckdb.connect({str(version)!r}) to get them back; delete the file when done.")
            continue
        with _try_exclusive(version) as free:
            if free and not wal.exists():
                version.unlink()
                deleted.append(version)
    if deleted:
        fsync_dir(catalog_dir(data_dir))
    return deleted


def _adopt_unversioned(target: Path, versions_dir: Path) -> None:
    """A `warehouse.duckdb` that is a plain file (written before catalogs were versioned) becomes
    version 0 under a second name (a hard link, so an analyst holding it keeps writing to the
    same file), so replacing the stable name by a symlink loses nothing it holds."""
    if target.is_symlink() or not target.exists():
        return
    legacy = versions_dir / "warehouse-000000.duckdb"
    if not legacy.exists():
        os.link(target, legacy)
    wal = Path(f"{target}.wal")
    # A WAL left by a read-write session that has ended travels with its file; one still in use
    # stays where that session will look for it (it checkpoints into the same inode on close).
    if wal.exists() and not _is_locked_by_anyone(target) and not Path(f"{legacy}.wal").exists():
        os.link(wal, Path(f"{legacy}.wal"))
        wal.unlink()
    fsync_dir(versions_dir)


def publish_catalog(data_dir: Path | str | None = None, entities: Iterable[EntitySpec] = ()) -> Path:
    """Build the analysts' views-only catalog as a new version and point `warehouse.duckdb` at it.
    `entities`: raw entities whose schemas the lake should keep from now on (`record_schemas`).

    Steps (under a lock that serializes publishers; readers never take it):
    1. sweep temp files dead publishers left;
    2. build `catalog/warehouse-NNNNNN.duckdb` in a temp file, fsync, rename into place;
    3. atomically replace the symlink `warehouse.duckdb` with one to the new version, fsync the
       directory (a connection opens the old version or the new one, never a half-built one);
    4. delete the old versions no connection holds (`collect_old_catalogs`);
    5. with the lake in object storage, upload the new version to `{lake}/catalog/warehouse.duckdb`
       (one upload: a reader there gets the old catalog or the new one).
    Never opens a published version for writing, so no analyst connection (not even a read-write
    one) can make it fail, and a read-write analyst's WAL is never next to a version it does not
    belong to (see the module docstring).
    """
    base = Path(data_dir) if data_dir is not None else settings.data_dir()
    target = base / CATALOG_NAME
    versions_dir = catalog_dir(base)
    lake_root = settings.lake_location(base)
    ensure_dir(versions_dir)
    # A lake in a store is published by workers on several machines: the lake lock (PostgreSQL)
    # orders their list-build-upload steps, so the last upload is built from the newest listing and a
    # worker's older view of the lake never replaces a newer catalog.
    shared = lake.lake_lock("catalog", lake_root) if lakefs.is_remote(lake_root) else contextlib.nullcontext()
    with exclusive_lock(base / ".warehouse.lock"), shared:
        sweep_temp_files([base, versions_dir])
        record_schemas(lake_root, entities)
        _adopt_unversioned(target, versions_dir)
        existing = catalog_versions(base)
        number = int(_VERSION_RE.match(existing[-1].name)[1]) + 1 if existing else 1  # type: ignore[index]
        version = versions_dir / f"warehouse-{number:06d}.duckdb"
        with written_atomically(version) as tmp:
            con = duckdb.connect(str(tmp), config={"storage_compatibility_version": CATALOG_STORAGE_VERSION})
            try:
                create_raw_views(con, lake_root)
                create_model_views(con, lake_root)
                con.execute("CHECKPOINT")
            finally:
                con.close()
        seams.pause_point("warehouse.before_publish")
        link = temp_path_for(target)
        os.symlink(f"{CATALOG_DIR}/{version.name}", link)
        try:
            os.replace(link, target)
        finally:
            with contextlib.suppress(FileNotFoundError):
                link.unlink()
        fsync_dir(base)
        collect_old_catalogs(base, current=version)
        if lakefs.is_remote(lake_root):
            # Analysts on other machines attach the catalog from the object store (README, "The lake
            # in object storage"); one upload, so they get the old catalog or the new one.
            lakefs.upload(version, lake.catalog_object(lake_root))
    return target


class WarehouseResource(DuckDBResource):
    """The analysts' DuckDB catalog (`$MARQUEE_DATA_DIR/warehouse.duckdb`), as assets use it.

    Landing assets call `publish()` after landing, so a newly landed entity gets its `raw.*` view;
    `read_connection()` queries the catalog as an analyst would. `get_connection()` (from
    DuckDBResource) would open it read-write, which the pipeline never does (see `publish_catalog`).
    """

    database: str = Field(
        default_factory=lambda: str(settings.warehouse_path()),
        description="Path of the views-only catalog; defaults to $MARQUEE_DATA_DIR/warehouse.duckdb.",
    )

    @contextlib.contextmanager
    def read_connection(self) -> Iterator[duckdb.DuckDBPyConnection]:
        if not Path(self.database).exists():
            publish_catalog(Path(self.database).parent)
        con = duckdb.connect(self.database, read_only=True)
        try:
            lakefs.register_duckdb(con, settings.lake_location())
            yield con
        finally:
            con.close()

    def publish(self, entities: Iterable[EntitySpec] = ()) -> Path:
        """Publish a new catalog version; `entities` (the caller's provider's) get typed views from now
        on even before they land."""
        return publish_catalog(Path(self.database).parent, entities)
