"""Names that several floors must spell the same way: run tags, Dagster pools, asset groups.

Written once, here, so a schedule, the headless runner, a check and the dbt asset can never
disagree on which tag carries a window or which pool serialises DuckDB writers.
"""

from __future__ import annotations

# Dagster's own tags: the partition range of a single-run backfill, or one partition.
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"
PARTITION_TAG = "dagster/partition"

# marquee's: the half-open [min_date, max_date) window of UTC days the incremental dbt models reload,
# and which sensor launched a run.
MIN_DATE_TAG = "marquee/min_date"
MAX_DATE_TAG = "marquee/max_date"
TRIGGERED_BY_TAG = "marquee/triggered_by"

# The run queue (pipelines/instance.py): every job that calls a provider's API tags its runs with
# `marquee/provider-<name>`, one key per provider it calls, and the QueuedRunCoordinator starts at
# most one run per key at a time, so one API's request budget is never split between two runs
# while runs that call other providers go on in parallel. One key per provider (not one key with
# the provider as value) because a job may call several providers, and a run has one value per key.
# Dagster allows one `/` namespace in a tag key (a second is deprecated), hence the dash.
PROVIDER_TAG_PREFIX = "marquee/provider-"
# What the first release wrote into dagster.yaml; still recognised as marquee's own block, so it is
# rewritten with the keys above rather than kept as an operator's.
OLD_PROVIDER_TAG_PREFIX = "marquee/provider/"


def provider_tag(provider: str) -> str:
    """The run tag key that says a run calls `provider`'s API."""
    return f"{PROVIDER_TAG_PREFIX}{provider}"

# Pools (limit 1 each, pipelines/instance.py): every DuckDB writer (the dbt build), and the Cymbio
# returns pull (read, merge, commit and acknowledge happen under it and the lake lock of that name).
DUCKDB_POOL = "duckdb"
CYMBIO_RETURNS_POOL = "cymbio_returns"

# Asset groups. Raw assets are grouped by provider name; the dbt assets by their folder (and the
# seeds under "reference"); the pushes to Cymbal and Cordial form "reverse_sync".
SEED_GROUP = "reference"
MODEL_GROUPS = ("staging", "intermediate", "marts", "sync")
DBT_GROUPS = (SEED_GROUP, *MODEL_GROUPS)
MART_GROUP = "marts"
SYNC_GROUP = "reverse_sync"
