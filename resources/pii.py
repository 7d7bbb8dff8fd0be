"""The PII hash key: where it comes from, how a DuckDB session gets it, and keyed ids.

One secret, `MARQUEE_PII_HASH_KEY`, keys every pseudonym marquee makes of a person: the hashed
emails, phones and CPFs of the models (dbt macro `pii_hash`) and the contact ids of the reverse
sync's log (`keyed_id`). Without the key, a hash of a guessed email cannot be recomputed.

The key never touches disk. DuckDB connections get it as a session variable, which lives in memory
for the length of the connection and is neither written to the database file nor its WAL:
- dbt's connections through the dbt-duckdb plugin `resources/dbt_plugin.py` (profiles.yml);
- marquee's own connections to the build database through `open_build_database`.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
from pathlib import Path

import duckdb

log = logging.getLogger(__name__)

PII_KEY_ENV = "MARQUEE_PII_HASH_KEY"
DEV_PII_KEY = "marquee-DEVELOPMENT-ONLY-pii-hash-key-set-MARQUEE_PII_HASH_KEY"
# The DuckDB variable the dbt macro `pii_key()` reads.
PII_KEY_VARIABLE = "marquee_pii_key"

_warned = False


def development_key_warning() -> str | None:
    """What to tell the operator when no key is set (the development key is then used), else None.
    Whoever says it first (the dbt asset, in the run's Dagster log) says it for the whole process."""
    global _warned
    if os.environ.get(PII_KEY_ENV, ""):
        return None
    _warned = True
    return (f"{PII_KEY_ENV} is not set: hashing personal data with the fixed DEVELOPMENT key. Set it to a long "
            "random secret in production, or hashed emails can be recomputed by anyone.")


def pii_hash_key() -> str:
    """The key from the environment, or the labelled development key (with one warning per process)."""
    key = os.environ.get(PII_KEY_ENV, "")
    if key:
        return key
    if not _warned:
        log.warning(development_key_warning())
    return DEV_PII_KEY


def set_session_key(con: duckdb.DuckDBPyConnection) -> None:
    """Give one DuckDB connection (or cursor) the key, as a session variable: nothing is stored."""
    con.execute(f"SET VARIABLE {PII_KEY_VARIABLE} = ?", [pii_hash_key()])


def open_build_database(path: Path | str, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """A connection to the pipeline-private build database whose staging views can hash."""
    con = duckdb.connect(str(path), read_only=read_only)
    set_session_key(con)
    return con


def keyed_id(prefix: str, text: str, length: int = 32) -> str:
    """A stable pseudonym for personal data: `prefix` + HMAC-SHA256(key, text), hex-truncated.

    Keyed, so a list of guessed emails cannot be hashed and matched against a sync log."""
    digest = hmac.new(pii_hash_key().encode(), text.encode(), hashlib.sha256).hexdigest()
    return prefix + digest[:length]
