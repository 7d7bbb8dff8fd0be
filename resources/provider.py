"""What a provider declares about itself, once: the unit the rest of marquee iterates over.

A provider is one vendor API. Its knowledge lives in four places, each named here:

- its client module, `resources/<name>.py`: the resource class (endpoints, auth, the environment
  variables it reads: `ProviderResource.env`, `secrets`, `required`);
- its asset module, `assets/<name>.py`: the raw entities it lands (typed schemas), the Dagster
  assets and checks, and this declaration, `PROVIDER`;
- its sandbox module, `sandbox/<name>/`: the vendor API imitated on loopback (the product never
  imports it; the declaration only names it);
- its dbt staging folder, `dbt_project/models/staging/<name>/`.

`assets/providers.py` lists every provider's `PROVIDER` (that list is the one line a new provider
adds), and the registry of resources, the raw views, the schedules' jobs, the freshness checks and
the command line's hints all read that list.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

import dagster as dg

from resources.entity import EntitySpec
from resources.http import ProviderResource

# How a raw asset is scheduled (pipelines/schedules.py):
# - "orders": landed by order creation day, reloaded for 8 days (refunds, cancellations);
# - "attendance": landed by event start day, reloaded for 3 days (late check-ins);
# - "snapshot": an observation of now, taken daily;
# - "returns": changes state at the vendor when pulled (acknowledgements): its own, default-off schedule.
Role = Literal["orders", "attendance", "snapshot", "returns"]
ROLES: tuple[Role, ...] = ("orders", "attendance", "snapshot", "returns")


@dataclass(frozen=True)
class Provider:
    name: str
    resource: type[ProviderResource]
    entities: tuple[EntitySpec, ...] = ()
    assets: tuple[dg.AssetsDefinition, ...] = ()
    checks: tuple[dg.AssetChecksDefinition, ...] = ()
    # Raw asset names by schedule role; every asset of the provider has exactly one.
    roles: Mapping[Role, tuple[str, ...]] = field(default_factory=dict)
    # Entities whose daily row count is watched for anomalies (a day of zero orders after busy days).
    watched: tuple[str, ...] = ()

    @property
    def sandbox_module(self) -> str:
        return f"sandbox.{self.name}"

    @property
    def staging_folder(self) -> str:
        return f"dbt_project/models/staging/{self.name}"

    def asset_keys(self) -> set[dg.AssetKey]:
        return {key for a in self.assets for key in a.keys}

    def role_of(self, asset_name: str) -> Role | None:
        return next((role for role, names in self.roles.items() if asset_name in names), None)


def by_name(providers: Iterable[Provider]) -> dict[str, Provider]:
    return {p.name: p for p in providers}
