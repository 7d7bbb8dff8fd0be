"""Project-wide settings read from the environment (and a `.env` in the working directory).

Only non-secret settings live here. Secrets are read by the resources through `dg.EnvVar`,
so they never pass through this module and never end up in logs.
"""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path

from dotenv import load_dotenv

from resources.lakefs import LAKE_URL_ENV, Location, parse_lake_url

# A `.env` next to where marquee runs is honoured, but never overrides the real environment.
load_dotenv(Path.cwd() / ".env", override=False)

os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DBT_PROJECT_DIR = PROJECT_ROOT / "dbt_project"

# The first daily partition when MARQUEE_START_DATE is unset: early enough for a year of history,
# late enough that a fresh backfill of "everything" stays a reasonable size.
DEFAULT_START_DATE = "2026-01-01"


def data_dir() -> Path:
    """Where the lake and the warehouse live (`MARQUEE_DATA_DIR`, default `./data`)."""
    return Path(os.environ.get("MARQUEE_DATA_DIR", "./data")).expanduser().resolve()


def lake_dir(data: Path | None = None) -> Path:
    """The local Parquet lake inside a data directory (default: this process's)."""
    return (data if data is not None else data_dir()) / "lake"


def lake_location(data: Path | None = None) -> Location:
    """Where the lake is: `MARQUEE_LAKE_URL` (a local path or `s3://bucket/prefix`) if set, else the
    `lake` directory of the data directory. resources/lake.py lays it out."""
    url = os.environ.get(LAKE_URL_ENV, "").strip()
    return parse_lake_url(url) if url else lake_dir(data)


def warehouse_path(data: Path | None = None) -> Path:
    """The analysts' DuckDB file in a data directory (default: this process's)."""
    return (data if data is not None else data_dir()) / "warehouse.duckdb"


def start_date() -> date:
    raw = os.environ.get("MARQUEE_START_DATE", DEFAULT_START_DATE)
    try:
        return date.fromisoformat(raw)
    except ValueError as exc:
        raise ValueError(
            f"MARQUEE_START_DATE={raw!r} is not a date; set it as YYYY-MM-DD (e.g. 2026-01-01)."
        ) from exc
