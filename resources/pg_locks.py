"""Locks shared by machines: PostgreSQL advisory locks, for a lake in object storage.

A lake on local disk locks with flock (resources/files.py). A lake in object storage is shared by
processes on many machines, and S3 has no lock; the PostgreSQL that already holds Dagster's state
(MARQUEE_PG_URL, or Dagster's DAGSTER_PG_* variables) does. `pg_advisory_lock` is held by one
session and released by the server when that session ends, however its client dies (a killed
process's socket closes; a vanished machine's is dropped by TCP keepalive), so a crash never leaves
a lock held, just as with flock.

The variables' names are defined here, at the bottom floor, and pipelines/instance.py reads them
from here when it writes Dagster's storage.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import time
from collections.abc import Iterator, Mapping

PG_URL_ENV = "MARQUEE_PG_URL"
# Dagster's documented names for `storage: postgres: postgres_db:` (docs: dagster.yaml, "storage");
# Dagster's Helm chart sets DAGSTER_PG_PASSWORD from its Secret. Port and password are optional
# (5432; trust or .pgpass authentication).
DAGSTER_PG_ENV: dict[str, str] = {
    "username": "DAGSTER_PG_USERNAME",
    "password": "DAGSTER_PG_PASSWORD",
    "hostname": "DAGSTER_PG_HOST",
    "db_name": "DAGSTER_PG_DB",
    "port": "DAGSTER_PG_PORT",
}
DAGSTER_PG_REQUIRED = ("username", "hostname", "db_name")
LOCK_POLL_SECONDS = 0.25


def configured(environ: Mapping[str, str] | None = None) -> bool:
    env = os.environ if environ is None else environ
    return bool(env.get(PG_URL_ENV, "").strip()) or all(
        env.get(DAGSTER_PG_ENV[key], "").strip() for key in DAGSTER_PG_REQUIRED)


def _connect_kwargs(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    env = os.environ if environ is None else environ
    url = env.get(PG_URL_ENV, "").strip()
    if url:
        # psycopg2 takes a libpq URL; the SQLAlchemy driver suffix is not part of it.
        return {"dsn": "postgresql://" + url.split("://", 1)[1]}
    names = {"username": "user", "password": "password", "hostname": "host", "db_name": "dbname", "port": "port"}
    return {names[key]: env[var] for key, var in DAGSTER_PG_ENV.items() if env.get(var, "").strip()}


def lock_id(name: str) -> int:
    """A signed 64-bit key for `pg_advisory_lock`, stable across processes and machines."""
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "big", signed=True)


@contextlib.contextmanager
def advisory_lock(name: str) -> Iterator[None]:
    """Hold the session-level advisory lock `name` for the block (waits while another session has it)."""
    import psycopg2  # the [postgres] extra: only a deployment with PostgreSQL gets here

    try:
        conn = psycopg2.connect(application_name="marquee-lake-lock", keepalives=1, keepalives_idle=30,
                                **_connect_kwargs())
    except psycopg2.OperationalError as exc:
        # libpq's message names host and port, never the password.
        raise RuntimeError(f"lake lock {name!r}: cannot reach PostgreSQL ({str(exc).strip()[:300]}); check "
                           f"{PG_URL_ENV} or the DAGSTER_PG_* variables") from exc
    try:
        conn.autocommit = True
        # Polled rather than a blocking pg_advisory_lock: psycopg2 waits for a reply inside libpq,
        # where a SIGTERM (Dagster terminating the run) is only acted on once the lock is granted,
        # which for the build lock can be a whole dbt build away. Between polls it acts at once.
        with conn.cursor() as cur:
            while True:
                cur.execute("SELECT pg_try_advisory_lock(%s)", (lock_id(name),))
                if cur.fetchone()[0]:
                    break
                time.sleep(LOCK_POLL_SECONDS)
        yield
    finally:
        conn.close()  # ends the session, which releases the lock even if the unlock was never sent
