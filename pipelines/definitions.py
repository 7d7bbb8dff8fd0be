"""The project's single `dg.Definitions`, loaded by `dagster dev` through workspace.yaml.

Composed here, by plain imports, from what each floor below declares: the providers' landing assets
and checks (assets/providers.py), the dbt models, the reverse sync, the row-count checks, and the
jobs, schedules and sensors. Resources are bound once, here: each provider's client from the
environment, the analysts' catalog, and dbt.
"""

from __future__ import annotations

import dagster as dg

from assets import providers
from assets.dbt import DBT_RESOURCE_KEY, dbt_resource, marquee_dbt_models
from assets.reverse_sync import SYNC_ASSETS, SYNC_CHECKS
from pipelines import (
    freshness,
    pool_wait,  # noqa: F401  (every process that loads the code location waits for pools sanely)
    schedules,
)


def build_definitions() -> dg.Definitions:
    defs = dg.Definitions(
        assets=[*providers.landing_assets(), marquee_dbt_models, *SYNC_ASSETS],
        asset_checks=[*providers.landing_checks(), *SYNC_CHECKS, *freshness.build_anomaly_checks()],
        jobs=list(schedules.JOBS),
        schedules=list(schedules.SCHEDULES),
        sensors=list(schedules.SENSORS),
        resources={**providers.build_resources(), DBT_RESOURCE_KEY: dbt_resource()},
    )
    # Freshness applies to the dbt marts, which are defined in another module than the policy.
    return freshness.with_operational_policies(defs)


defs = build_definitions()
