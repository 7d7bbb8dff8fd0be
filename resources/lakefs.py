"""Where the lake lives: a local directory (the default) or an S3-compatible object store.

A place in the lake is a `Location`: a `Path` for a local lake, or an `s3://bucket/key` string for
one in object storage (`MARQUEE_LAKE_URL`). Every module that reads or writes the lake goes through
the functions here, so only this module knows which kind it has.

One filesystem layer, pyarrow's: `pyarrow.fs.S3FileSystem` writes and reads the files (it ships in
the pyarrow wheel, needs no other package, and speaks any S3-compatible endpoint); DuckDB and dbt
read the same filesystem through fsspec's `ArrowFSWrapper`, registered on each connection
(`register_duckdb`), because DuckDB 2.x cannot download `httpfs` here. Where `httpfs` is already
installed it is used instead (`MARQUEE_DUCKDB_HTTPFS=1`).

Atomicity on an object store, which has no rename:
- A file is written in full to a local spool file first (`MARQUEE_SPOOL_DIR`, default a
  `marquee-spool` directory under the system temp dir), then uploaded to its final key.
  The upload is one PUT or one multipart upload, and S3 makes the key visible only when the PUT or
  the CompleteMultipartUpload succeeds: a reader sees the old object or the new one, never half.
- A crash before completion leaves an invisible incomplete multipart upload (a bucket lifecycle
  rule `AbortIncompleteMultipartUpload` removes it) and a spool file that the sweep removes.
- The spool file is uploaded only once written and closed; pyarrow's output stream completes an
  upload when it is closed, so nothing that could fail half-way is ever written to it directly.

Credentials are never read here: pyarrow's S3 client takes them from the standard AWS chain
(`AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`, a profile, an instance role), so no secret passes
through marquee's code, logs or files.
"""

from __future__ import annotations

import contextlib
import fnmatch
import os
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from resources.files import ensure_dir, fsync_dir, replace_durably, temp_path_for
from resources.files import written_atomically as _local_atomic

Location = Path | str

S3_PREFIX = "s3://"
LAKE_URL_ENV = "MARQUEE_LAKE_URL"
ENDPOINT_ENV = "MARQUEE_S3_ENDPOINT_URL"
SPOOL_ENV = "MARQUEE_SPOOL_DIR"
HTTPFS_ENV = "MARQUEE_DUCKDB_HTTPFS"


class LakeStoreError(RuntimeError):
    """The object store holding the lake could not be read or written."""


def parse_lake_url(raw: str) -> Location:
    """A `MARQUEE_LAKE_URL` value as a Location: `s3://bucket[/prefix]`, or a local path."""
    value = raw.strip()
    if "://" not in value:
        return Path(value).expanduser().resolve()
    parts = urlsplit(value)
    if parts.scheme == "file":
        return Path(parts.path).resolve()
    if parts.scheme != "s3" or not parts.netloc:
        raise ValueError(f"{LAKE_URL_ENV}={value!r}: use s3://bucket/prefix for object storage (any S3-compatible "
                         f"server, with {ENDPOINT_ENV}) or a local directory path")
    if parts.username or parts.password or parts.query:
        raise ValueError(f"{LAKE_URL_ENV} must not carry credentials or options: give only s3://bucket/prefix and "
                         "set the standard AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY variables")
    return S3_PREFIX + parts.netloc + parts.path.rstrip("/")


def is_remote(loc: Location) -> bool:
    return isinstance(loc, str) and loc.startswith(S3_PREFIX)


def as_location(loc: Location | os.PathLike[str]) -> Location:
    if isinstance(loc, str):
        return loc.rstrip("/") if is_remote(loc) else Path(loc)
    return Path(loc)


def join(base: Location, *parts: str) -> Location:
    if is_remote(base):
        return "/".join([str(base).rstrip("/"), *(p.strip("/") for p in parts if p)])
    return Path(base).joinpath(*parts)


def name(loc: Location) -> str:
    return str(loc).rstrip("/").rsplit("/", 1)[-1] if is_remote(loc) else Path(loc).name


def parent(loc: Location) -> Location:
    return str(loc).rstrip("/").rsplit("/", 1)[0] if is_remote(loc) else Path(loc).parent


# --- the S3 client --------------------------------------------------------------------------------

_S3: dict[tuple[str, str], pafs.S3FileSystem] = {}


def endpoint_url() -> str:
    return os.environ.get(ENDPOINT_ENV, "").strip()


def s3() -> pafs.S3FileSystem:
    """This process's S3 client for the configured endpoint and region (credentials: the AWS chain)."""
    endpoint = endpoint_url()
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    key = (endpoint, region)
    if key not in _S3:
        kwargs: dict[str, Any] = {
            "region": region,
            # A store that is down must fail a run, with the lake named, never hang it.
            "connect_timeout": 5, "request_timeout": 30,
            "retry_strategy": pafs.AwsStandardS3RetryStrategy(max_attempts=3),
        }
        if endpoint:
            parts = urlsplit(endpoint)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise ValueError(f"{ENDPOINT_ENV}={endpoint!r}: give the store's base URL, e.g. http://127.0.0.1:9000")
            kwargs.update(endpoint_override=parts.netloc, scheme=parts.scheme,
                          force_virtual_addressing=False)
        _S3[key] = pafs.S3FileSystem(**kwargs)
    return _S3[key]


def _fs(loc: Location) -> tuple[pafs.FileSystem, str]:
    if is_remote(loc):
        return s3(), str(loc)[len(S3_PREFIX):]
    return pafs.LocalFileSystem(), str(loc)


@contextlib.contextmanager
def store_errors(loc: Location, doing: str) -> Iterator[None]:
    """Turn the S3 client's errors into one that names the lake location and what to check."""
    if not is_remote(loc):
        yield
        return
    try:
        yield
    except FileNotFoundError:
        raise
    except OSError as exc:
        where = f" at {endpoint_url()}" if endpoint_url() else ""
        raise LakeStoreError(
            f"lake {loc}: could not {doing} in the object store{where} ({str(exc).splitlines()[0][:300]}). "
            f"Check that the store is up and reachable, {LAKE_URL_ENV}, {ENDPOINT_ENV} and the AWS credentials; "
            "then re-run the partition. Nothing half-written is visible.") from exc


# --- reading --------------------------------------------------------------------------------------


def _info(loc: Location) -> pafs.FileInfo:
    fs, path = _fs(loc)
    with store_errors(loc, "look up a file"):
        return fs.get_file_info(path)


def exists(loc: Location) -> bool:
    if not is_remote(loc):
        return Path(loc).exists()
    return _info(loc).type != pafs.FileType.NotFound


def glob(base: Location, pattern: str) -> list[Location]:
    """The files under `base` matching a relative `pattern` of `/`-separated fnmatch segments (no
    `**`), sorted. An object store is listed once, recursively, and matched segment by segment."""
    if not is_remote(base):
        root = Path(base)
        return sorted(root.glob(pattern)) if root.is_dir() else []
    fs, path = _fs(base)
    want = pattern.split("/")
    with store_errors(base, "list files"):
        infos = fs.get_file_info(pafs.FileSelector(path, recursive=True, allow_not_found=True))
    found: list[Location] = []
    for info in infos:
        if info.type != pafs.FileType.File:
            continue
        rel = info.path[len(path):].lstrip("/").split("/")
        if len(rel) == len(want) and all(fnmatch.fnmatchcase(r, w) for r, w in zip(rel, want, strict=True)):
            found.append(S3_PREFIX + info.path)
    return sorted(found)


def any_match(base: Location, pattern: str) -> bool:
    """Whether any file under `base` matches `pattern` (as `glob`). Locally it stops at the first
    match: the catalog asks this of every entity at every publish, and a lake holds years of days."""
    if not is_remote(base):
        root = Path(base)
        return root.is_dir() and any(root.glob(pattern))
    return bool(glob(base, pattern))


def read_table(loc: Location, columns: list[str] | None = None, schema: pa.Schema | None = None) -> pa.Table:
    fs, path = _fs(loc)
    with store_errors(loc, "read a file"):
        return pq.read_table(path, columns=columns, schema=schema, filesystem=fs)


def read_metadata(loc: Location) -> pq.FileMetaData:
    fs, path = _fs(loc)
    with store_errors(loc, "read a file's footer"):
        return pq.read_metadata(path, filesystem=fs)


def read_schema(loc: Location) -> pa.Schema:
    fs, path = _fs(loc)
    with store_errors(loc, "read a file's schema"):
        return pq.read_schema(path, filesystem=fs)


def parquet_file(loc: Location) -> pq.ParquetFile:
    fs, path = _fs(loc)
    with store_errors(loc, "open a file"):
        return pq.ParquetFile(path, filesystem=fs)


def download(loc: Location, target: Path) -> Path:
    """Copy one object (or local file) to a local path, atomically."""
    fs, path = _fs(loc)
    with store_errors(loc, "download a file"), _local_atomic(target) as tmp:
        pafs.copy_files(path, str(tmp), source_filesystem=fs, destination_filesystem=pafs.LocalFileSystem())
    return target


# --- writing --------------------------------------------------------------------------------------


def spool_dir() -> Path:
    """Where files bound for an object store are written in full before their upload."""
    raw = os.environ.get(SPOOL_ENV, "").strip()
    base = Path(raw) if raw else Path(tempfile.gettempdir()) / f"marquee-spool-{os.getuid()}"
    base.mkdir(parents=True, exist_ok=True, mode=0o700)
    return base


def temp_for(target: Location) -> Path:
    """A local temp file to write `target`'s bytes to: beside it for a local lake (so the rename is
    atomic), in the spool for an object store. Its name says its writer (resources/files.py), so a
    sweep removes it only once that writer is dead."""
    if is_remote(target):
        return temp_path_for(spool_dir() / name(target))
    ensure_dir(Path(target).parent)
    return temp_path_for(Path(target))


def publish(tmp: Path, target: Location) -> Location:
    """Make a finished temp file `target`, in one step a reader can observe: a durable rename
    locally, one upload (PUT or completed multipart upload) on an object store."""
    if not is_remote(target):
        return replace_durably(tmp, Path(target))
    upload(tmp, target)
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    return target


def upload(local: Path, target: Location) -> Location:
    """Copy a finished local file to an object-store key in one upload; the local file stays."""
    fs, path = _fs(target)
    with store_errors(target, "upload a file"):
        pafs.copy_files(str(local), path, source_filesystem=pafs.LocalFileSystem(), destination_filesystem=fs)
    return target


@contextlib.contextmanager
def written_atomically(target: Location) -> Iterator[Path]:
    """Yield a local temp path to write; on success it becomes `target` in one step (`publish`), on
    failure it is removed and `target` is untouched."""
    if not is_remote(target):
        with _local_atomic(Path(target)) as tmp:
            yield tmp
        return
    tmp = temp_for(target)
    try:
        yield tmp
        publish(tmp, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def write_table(table: pa.Table, target: Location) -> Location:
    """Write a whole (small) Arrow table to `target` as Parquet, atomically."""
    with written_atomically(target) as tmp:
        pq.write_table(table, tmp)
    return target


def remove(loc: Location) -> bool:
    """Delete one file; True if it was there."""
    if not is_remote(loc):
        path = Path(loc)
        if not path.exists():
            return False
        path.unlink()
        fsync_dir(path.parent)
        return True
    fs, path = _fs(loc)
    with store_errors(loc, "delete a file"):
        try:
            fs.delete_file(path)
        except FileNotFoundError:
            return False
    return True


# --- DuckDB ---------------------------------------------------------------------------------------


def register_duckdb(con: Any, lake: Location) -> None:
    """Let a DuckDB connection read `s3://` paths of this lake: with `httpfs` where it is installed and
    asked for (`MARQUEE_DUCKDB_HTTPFS=1`), otherwise through pyarrow's S3 client wrapped as an fsspec
    filesystem. A local lake needs nothing."""
    if not is_remote(lake):
        return
    if os.environ.get(HTTPFS_ENV) == "1":
        con.execute("LOAD httpfs")  # never INSTALL: that would download
        parts = urlsplit(endpoint_url()) if endpoint_url() else None
        opts = ["TYPE s3", "PROVIDER config"]
        for key, env in (("KEY_ID", "AWS_ACCESS_KEY_ID"), ("SECRET", "AWS_SECRET_ACCESS_KEY"),
                         ("SESSION_TOKEN", "AWS_SESSION_TOKEN"), ("REGION", "AWS_REGION")):
            if os.environ.get(env):
                opts.append(f"{key} " + "'" + os.environ[env].replace("'", "''") + "'")
        if parts is not None:
            use_ssl = str(parts.scheme == "https").lower()
            opts += [f"ENDPOINT '{parts.netloc}'", "URL_STYLE 'path'", f"USE_SSL {use_ssl}"]
        # A TEMPORARY secret lives in this connection's memory only.
        con.execute(f"CREATE OR REPLACE TEMPORARY SECRET marquee_lake ({', '.join(opts)})")
        return
    if "s3" in con.list_filesystems():
        return
    con.register_filesystem(_duckdb_filesystem(str(lake)))


class PositionalReader:
    """A read-only file for DuckDB's Python filesystem: every read is a positional read, and each
    thread has its own position.

    DuckDB reads a Parquet file's row groups from several threads through one file object, as a
    `seek(offset)` call and then a `read(n)` call, each taking the GIL on its own; pyarrow releases the
    GIL while it reads, so another thread's seek lands in between and the first thread reads the
    wrong bytes ("Invalid data", "Variable-length int over 10 bytes": seen here on any file of more
    than one row group). A position per thread, and pyarrow's thread-safe `read_at`, make the pair
    atomic per thread. A thread that never sought starts at the last position any thread set, so a
    sequential reader that moves between threads still continues where it was.
    """

    def __init__(self, native: pa.NativeFile, path: str) -> None:
        self._file = native
        self.path = path
        self.size = native.size()
        self._local = threading.local()
        self._last = 0

    def _position(self) -> int:
        return getattr(self._local, "position", self._last)

    def seek(self, offset: int, whence: int = 0) -> int:
        base = {0: 0, 1: self._position(), 2: self.size}[whence]
        self._local.position = self._last = base + offset
        return self._local.position

    def tell(self) -> int:
        return self._position()

    def read(self, length: int | None = -1) -> bytes:
        position = self._position()
        if length is None or length < 0:
            length = self.size - position
        data = self._file.read_at(length, position) if length else b""
        self._local.position = self._last = position + len(data)
        return data

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def writable(self) -> bool:
        return False

    @property
    def closed(self) -> bool:
        return self._file.closed

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> PositionalReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _duckdb_filesystem(lake: str) -> Any:
    """pyarrow's S3 client as the fsspec filesystem DuckDB registers, reading through PositionalReader."""
    try:
        from fsspec.implementations.arrow import ArrowFSWrapper
    except ImportError as exc:
        raise ImportError(f"the lake {lake} is in object storage and DuckDB reads it through fsspec: "
                          "install marquee's [s3] extra (pip install 'marquee[s3]')") from exc

    class ReadAtFileSystem(ArrowFSWrapper):
        def _open(self, path: str, mode: str = "rb", *args: Any, **kwargs: Any) -> Any:
            if mode != "rb":
                return super()._open(path, mode, *args, **kwargs)
            return PositionalReader(self.fs.open_input_file(path), path)

    return ReadAtFileSystem(s3())


def relative(loc: Location, base: Location) -> str:
    """`loc`'s path below `base`, `/`-separated."""
    if is_remote(loc):
        return str(loc)[len(str(base).rstrip("/")) + 1:]
    return PurePosixPath(Path(loc).relative_to(Path(base))).as_posix()
