"""The Dagster instance configuration marquee needs: concurrency pools, and run monitoring.

DuckDB allows one writer per database file. dbt (and anything else that writes a DuckDB file)
runs in the pool `duckdb`, and the instance caps that pool at one op at a time across all runs, so
a month-long backfill, a scheduled run and a UI click can overlap without a "Could not set lock on
file" error. Landing assets are not in the pool: they only write Parquet, and run in parallel.

Dagster OSS reads pool limits from `$DAGSTER_HOME/dagster.yaml` (`concurrency: pools:
default_limit:`); there is no per-pool key in the file (per-pool limits live in the instance's
database, set through the UI or `dagster instance concurrency set`). `default_limit` covers every
pool without an explicit limit, which is what we want: every pool marquee declares (MARQUEE_POOLS:
`duckdb`, and `cymbio_returns`, which serialises the Cymbio returns landing) allows one at a time.

Run monitoring is on (the `dagster dev` daemon runs it): runs stuck STARTING are failed, and the
slots of runs that ended without freeing them are freed after `free_slots_after_run_end_seconds`.
It cannot tell a dead run worker of the DefaultRunLauncher from a live one; pipelines/reaper.py
does that, from the owner tags every run records.

PostgreSQL (docs/scale-out.md): when MARQUEE_PG_URL, or Dagster's documented DAGSTER_PG_* variables,
are set, run, event-log and schedule storage move to PostgreSQL (`storage: postgres:`), and so do
the pools' slots: the `duckdb` limit of 1 then holds across processes and machines. The file names
the variables (`{env: ...}`), never their values, so no password is written to disk. The run queue
comes with it: one run per provider API at a time (resources/names.py, `provider_tag`).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml
from dagster._core.storage.event_log.sqlite import sqlite_event_log as _sqlite_event_log
from dagster._core.storage.runs.sqlite import sqlite_run_storage as _sqlite_run_storage
from dagster._core.storage.schedules.sqlite import sqlite_schedule_storage as _sqlite_schedule_storage
from dagster._core.storage.sql import create_engine as _dagster_create_engine
from sqlalchemy import engine as sa_engine
from sqlalchemy import event as sa_event
from sqlalchemy import pool as sa_pool

from resources import settings
from resources.names import (
    CYMBIO_RETURNS_POOL,
    DUCKDB_POOL,
    OLD_PROVIDER_TAG_PREFIX,
    PROVIDER_TAG_PREFIX,
    provider_tag,
)
from resources.pg_locks import DAGSTER_PG_ENV, DAGSTER_PG_REQUIRED, PG_URL_ENV

# Every pool an asset of marquee declares; each gets `default_limit` slots.
MARQUEE_POOLS: tuple[str, ...] = (DUCKDB_POOL, CYMBIO_RETURNS_POOL)
DUCKDB_POOL_LIMIT = 1
POOL_LIMIT = DUCKDB_POOL_LIMIT

# `run_monitoring:` when dagster.yaml has none; an operator's own block is kept as it is.
_RUN_MONITORING: dict[str, Any] = {
    "enabled": True,
    # A run still STARTING after this long never got a worker: failed by the daemon.
    "start_timeout_seconds": 180,
    # A finished run's slots are freed after this long even if its worker never freed them.
    "free_slots_after_run_end_seconds": 60,
    "poll_interval_seconds": 30,
}

# Keys marquee owns in dagster.yaml. Anything else an operator adds (storage, run queue, ...) is kept.
_REQUIRED: dict[str, Any] = {
    "concurrency": {"pools": {"default_limit": DUCKDB_POOL_LIMIT, "granularity": "op"}},
    # Freshness policies (on the marts) are evaluated only when this is on; it is the 1.13 default,
    # written explicitly so a future default change does not silently hide stale marts.
    "freshness": {"enabled": True},
    "telemetry": {"enabled": False},
}


# --- PostgreSQL and the run queue ------------------------------------------------------------------

# The variables' names (PG_URL_ENV, DAGSTER_PG_ENV) live in resources/pg_locks.py, which reads them too.
# Dagster's PostgreSQL storage is built on psycopg2 (dagster-postgres depends on it, and its retry of
# concurrent table creation reads psycopg2's `pgcode`). SQLAlchemy 2.1 opens a plain `postgresql://`
# URL with psycopg 3 instead, so the driver is named wherever marquee writes the scheme.
PG_DRIVER_SCHEME = "postgresql+psycopg2"
_STORAGE_KEYS = ("storage", "run_storage", "event_log_storage", "schedule_storage")


def postgres_storage(environ: Mapping[str, str] | None = None) -> dict[str, Any] | None:
    """The `storage:` block for PostgreSQL when the environment names one, else None (SQLite).

    Only variable names go into it: Dagster reads the values when it opens the instance. A URL with a
    scheme SQLAlchemy cannot open, or an incomplete DAGSTER_PG_* set, is an error here rather than a
    silent fall back to SQLite; the messages name variables, never values (a URL holds a password).
    """
    env = os.environ if environ is None else environ
    url = env.get(PG_URL_ENV, "").strip()
    if url:
        scheme = url.split("://", 1)[0] if "://" in url else ""
        if scheme != PG_DRIVER_SCHEME and not (scheme == "postgresql" and _default_pg_driver() == "psycopg2"):
            raise ValueError(f"{PG_URL_ENV} must be a {PG_DRIVER_SCHEME}://user:password@host:port/db URL (its "
                             f"scheme is {scheme or 'missing'!r}; Dagster's PostgreSQL storage needs the psycopg2 "
                             "driver, and this SQLAlchemy reads a plain postgresql:// URL as another one)")
        return {"postgres": {"postgres_url": {"env": PG_URL_ENV}}}
    present = [key for key, var in DAGSTER_PG_ENV.items() if env.get(var, "").strip()]
    if not present:
        return None
    missing = [DAGSTER_PG_ENV[key] for key in DAGSTER_PG_REQUIRED if key not in present]
    if missing:
        given = ", ".join(DAGSTER_PG_ENV[key] for key in present)
        raise ValueError(f"{given} set but {', '.join(missing)} not: set all of them (or {PG_URL_ENV}) "
                         "for Dagster on PostgreSQL, or none for SQLite in DAGSTER_HOME")
    db: dict[str, Any] = {key: {"env": DAGSTER_PG_ENV[key]} for key in present}
    return {"postgres": {"postgres_db": {**db, "scheme": PG_DRIVER_SCHEME}}}


def _default_pg_driver() -> str:
    """The driver this SQLAlchemy uses for a plain postgresql:// URL (psycopg2 up to 2.0, psycopg from 2.1)."""
    from sqlalchemy.engine import make_url

    return make_url("postgresql://").get_dialect().driver


def _is_ours_storage(block: Any) -> bool:
    """Whether a `storage:` block is one marquee generates (so marquee may change or drop it)."""
    pg = block.get("postgres") if isinstance(block, dict) and set(block) == {"postgres"} else None
    if not isinstance(pg, dict):
        return False
    if set(pg) == {"postgres_url"}:
        return pg["postgres_url"] == {"env": PG_URL_ENV}
    db = pg.get("postgres_db") if set(pg) == {"postgres_db"} else None
    return isinstance(db, dict) and db.get("scheme") == PG_DRIVER_SCHEME and all(
        key in DAGSTER_PG_ENV and value == {"env": DAGSTER_PG_ENV[key]} for key, value in db.items() if key != "scheme")


def provider_names() -> tuple[str, ...]:
    """Every provider in assets/providers.py (imported here, late, so the SQLite path stays light)."""
    from assets.providers import PROVIDERS

    return tuple(p.name for p in PROVIDERS)


def run_queue(names: tuple[str, ...] | None = None) -> dict[str, Any]:
    """`concurrency: runs:` for PostgreSQL: the run queue lets one run per provider API in at a time.

    Dagster 1.13 takes the run queue's limits here, next to `pools` (it rejects them under
    `run_coordinator: config:` once `concurrency:` is set); the QueuedRunCoordinator applies them.
    `max_concurrent_runs` is one run per provider plus one DuckDB writer: more runs at once could only
    wait, for a provider's turn here or for the `duckdb` pool. Under `pools: granularity: op` the queue
    also holds back runs whose steps would all wait on a full pool, beyond Dagster's small buffer
    (`op_granularity_run_buffer`), so they do not each take a run slot (or a pod) to wait in.
    """
    names = provider_names() if names is None else names
    return {
        "max_concurrent_runs": len(names) + 1,
        "tag_concurrency_limits": [{"key": provider_tag(name), "limit": 1} for name in names],
    }


def _is_ours_run_queue(runs: Any) -> bool:
    limits = runs.get("tag_concurrency_limits") if isinstance(runs, dict) else None
    return bool(limits) and all(str(limit.get("key", "")).startswith((PROVIDER_TAG_PREFIX, OLD_PROVIDER_TAG_PREFIX))
                                for limit in limits)


def instance_config(existing: dict[str, Any] | None = None,
                    environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """`existing` dagster.yaml content with marquee's required keys set (theirs win elsewhere).

    With PostgreSQL in the environment, the storage block and the run queue's limits are set too,
    unless the operator wrote their own; what marquee generated earlier follows the environment
    (dropped when the variables are gone, so SQLite comes back exactly as before).
    """
    config: dict[str, Any] = dict(existing or {})
    storage = postgres_storage(environ)
    if not any(key in config for key in _STORAGE_KEYS) or _is_ours_storage(config.get("storage")):
        config.pop("storage", None)
        if storage is not None:
            config["storage"] = storage
    concurrency = dict(config.get("concurrency") or {})
    pools = dict(concurrency.get("pools") or {})
    pools.update(_REQUIRED["concurrency"]["pools"])
    concurrency["pools"] = pools
    # The legacy key is rejected by Dagster when `pools` is present.
    concurrency.pop("default_op_concurrency_limit", None)
    if "runs" not in concurrency or _is_ours_run_queue(concurrency["runs"]):
        concurrency.pop("runs", None)
        if storage is not None:
            concurrency["runs"] = run_queue()
    config["concurrency"] = concurrency
    config["freshness"] = dict(_REQUIRED["freshness"])
    config.setdefault("telemetry", dict(_REQUIRED["telemetry"]))
    # An operator who configures run monitoring owns the whole block; otherwise marquee's is used.
    config.setdefault("run_monitoring", dict(_RUN_MONITORING))
    return config


def ensure_instance_config(home: Path | str | None = None) -> Path:
    """Create `home` (default `$DAGSTER_HOME`) and make its dagster.yaml cap the `duckdb` pool at 1.

    Idempotent, and rewrites the file only when a required key is missing or different, so a
    running `dagster dev` is not disturbed by a second `marquee run`.
    """
    base = Path(home or os.environ.get("DAGSTER_HOME") or "").expanduser()
    if not str(base):
        raise ValueError("ensure_instance_config: pass a directory or set DAGSTER_HOME")
    base = base.resolve()
    base.mkdir(parents=True, exist_ok=True)
    path = base / "dagster.yaml"
    current: dict[str, Any] = {}
    if path.exists():
        loaded = yaml.safe_load(path.read_text()) or {}
        if not isinstance(loaded, dict):
            raise ValueError(f"{path} is not a YAML mapping; fix or delete it and rerun")
        current = loaded
    wanted = instance_config(current)
    if wanted != current:
        tmp = path.with_name(f".{path.name}.tmp")
        try:
            tmp.write_text(
                "# Written by marquee (pipelines/instance.py). Keys under concurrency.pools and freshness\n"
                "# are enforced on every run; with MARQUEE_PG_URL or DAGSTER_PG_* set, storage and\n"
                "# concurrency.runs too (variable names only, never a value). Anything else you add is kept.\n"
                + yaml.safe_dump(wanted, sort_keys=True)
            )
            os.replace(tmp, path)
        except OSError as exc:
            # A dagster.yaml mounted read-only (Dagster's Helm chart puts it in a ConfigMap): name what
            # it lacks rather than fail on the write, or run without the pool limit it would set.
            keys = sorted(k for k in set(wanted) | set(current) if wanted.get(k) != current.get(k))
            raise ValueError(
                f"{path} cannot be written ({exc.strerror or exc}) and lacks what marquee needs under "
                f"{', '.join(keys)}:\n{yaml.safe_dump({k: wanted.get(k) for k in keys}, sort_keys=True)}"
                "Add that to the file, or set DAGSTER_HOME to a writable directory holding a copy of it.") from None
    return path


def ensure_pool_slots(instance: Any, pools: tuple[str, ...] = MARQUEE_POOLS) -> None:
    """Create the slot rows of every pool marquee declares before any run uses them.

    `default_limit` is applied lazily, when a pool is first claimed; two runs that hit a fresh pool
    at the same moment can both initialise it and both get a slot (seen in CI: two writers
    overlapped). An explicit row removes that first-use race. Idempotent.

    Two processes that start together on a fresh PostgreSQL both find no row and both insert it;
    the unique key makes one fail (its transaction, slots included, is rolled back), and a second
    look then finds the row the other wrote.
    """
    from sqlalchemy.exc import IntegrityError

    storage = instance.event_log_storage
    for pool in pools:
        for attempt in range(3):
            if storage.get_concurrency_info(pool).slot_count == POOL_LIMIT:
                break
            try:
                storage.set_concurrency_slots(pool, POOL_LIMIT)
            except IntegrityError:
                if attempt == 2:
                    raise


def dagster_home() -> Path:
    """A persistent instance shared with `marquee dev`, so the UI shows headless runs too."""
    home = Path(os.environ.get("DAGSTER_HOME") or settings.data_dir() / "dagster_home")
    home.mkdir(parents=True, exist_ok=True)
    os.environ["DAGSTER_HOME"] = str(home)
    ensure_instance_config(home)  # the "duckdb" pool limit, shared with `marquee dev`
    return home


# Why hand-written: Dagster's SQLite event log opens, commits and closes a new connection for every
# event (NullPool), and the close of the last connection to a WAL database checkpoints it: a copy
# and an fsync per event, ~40% of the time each of a run's ~1,200 event writes took (measured in
# benchmarks/README.md). A second connection that stays open for the duration of a run, and only
# reads, turns each close into a plain close; SQLite's own auto-checkpoint (every 1,000 WAL pages)
# still runs, and the last checkpoint happens once, when the run ends. Durability and crash safety
# are SQLite's WAL guarantees, unchanged: every commit is in the WAL before the event call returns.
# Dagster has no setting for this (its `DAGSTER_EVENT_BATCH_SIZE` batches are per-event on SQLite).
# For the same reason each connection commits with `synchronous=NORMAL`, SQLite's recommended mode
# for WAL: a commit no longer waits for an fsync, a killed process loses nothing, and a power cut
# can lose only the last commits, never the file's consistency (the reaper then fails a run that
# looks STARTED, as after any crash).
_keepers: dict[str, sqlite3.Connection] | None = None
_keepers_lock = threading.Lock()


@sa_event.listens_for(sa_engine.Engine, "engine_connect")
def _keep_sqlite_open(connection: Any) -> None:
    url = connection.engine.url
    if _keepers is None or url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return
    with _keepers_lock:
        if _keepers is None:
            return
        keeper = _keepers.get(url.database)
        if keeper is None:
            keeper = _keepers[url.database] = sqlite3.connect(url.database, check_same_thread=False)
        # A read maps the WAL index: from then on this connection counts as open to SQLite. Done on
        # every connect, because the first one may come before Dagster switched the file to WAL.
        keeper.execute("PRAGMA user_version").fetchall()


@sa_event.listens_for(sa_pool.Pool, "connect")
def _commit_without_fsync(dbapi_connection: Any, _record: Any) -> None:
    if _keepers is not None and isinstance(dbapi_connection, sqlite3.Connection):
        dbapi_connection.execute("PRAGMA synchronous=NORMAL")


# Why hand-written, too: those same storages build a new SQLAlchemy engine for every connection
# (`create_engine(url, poolclass=NullPool)` inside each call), and an engine's compiled-statement
# cache lives and dies with it, so every event's INSERTs were compiled from scratch: about half of
# each event write's ~6 ms (measured in benchmarks/README.md). While a run is kept open, the same
# arguments get the same engine back. NullPool stays, so every use still opens and closes its own
# sqlite3 connection, as Dagster expects across threads and processes; only the engine object, its
# dialect and its statement cache are reused, and they are disposed of when the run ends.
_engines: dict[tuple[str, str], Any] = {}
SQLITE_STORAGE_MODULES = (_sqlite_event_log, _sqlite_run_storage, _sqlite_schedule_storage)


def _storage_engine(url: Any, **kwargs: Any) -> Any:
    if _keepers is None:
        return _dagster_create_engine(url, **kwargs)
    key = (str(url), repr(sorted(kwargs.items(), key=lambda item: item[0])))
    with _keepers_lock:
        engine = _engines.get(key)
        if engine is None:
            engine = _engines[key] = _dagster_create_engine(url, **kwargs)
        return engine


for _module in SQLITE_STORAGE_MODULES:
    _module.create_engine = _storage_engine  # type: ignore[attr-defined]


@contextlib.contextmanager
def sqlite_storage_kept_open() -> Iterator[None]:
    """While inside, every SQLite file Dagster's storage opens keeps one idle reader open, and each
    of its databases is reached through one reused engine (see above). On exit the readers close,
    the engines are disposed of, each file is checkpointed once, and no file handle outlives the run."""
    global _keepers
    with _keepers_lock:
        outer = _keepers is not None
        if not outer:
            _keepers = {}
    try:
        yield
    finally:
        if not outer:
            with _keepers_lock:
                keepers, _keepers = _keepers or {}, None
                engines = list(_engines.values())
                _engines.clear()
            for engine in engines:
                engine.dispose()
            for keeper in keepers.values():
                keeper.close()
