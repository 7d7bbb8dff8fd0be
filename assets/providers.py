"""Every provider marquee knows, in one list: the registration a new provider adds itself to.

Each entry is the `PROVIDER` a provider's asset module declares (resources/provider.py says what a
declaration holds). Everything that is per provider reads this list: the resources bound in the
Definitions, the raw views of the build database, the schedules' jobs, the row-count checks, and
the command line's "not configured" hints.
"""

from __future__ import annotations

from collections.abc import Iterator

import dagster as dg

from assets import cordial, cymbal, cymbio, sympla, tickettailor
from resources.entity import EntitySpec
from resources.http import ProviderResource
from resources.provider import Provider
from resources.warehouse import WarehouseResource

PROVIDERS: tuple[Provider, ...] = (
    tickettailor.PROVIDER, sympla.PROVIDER, cymbal.PROVIDER, cymbio.PROVIDER, cordial.PROVIDER,
)


def build_resources() -> dict[str, ProviderResource | WarehouseResource]:
    """What the providers' assets need: each provider's client, configured from the environment,
    under its name, and the analysts' catalog they publish to (`warehouse`)."""
    return {**{p.name: p.resource.from_env() for p in PROVIDERS}, "warehouse": WarehouseResource()}


def entities() -> tuple[EntitySpec, ...]:
    return tuple(e for p in PROVIDERS for e in p.entities)


def entity(name: str) -> EntitySpec:
    by_name = {e.name: e for e in entities()}
    if name not in by_name:
        raise KeyError(f"no raw entity named {name!r}; known: {', '.join(sorted(by_name))}")
    return by_name[name]


def landing_assets() -> list[dg.AssetsDefinition]:
    return [a for p in PROVIDERS for a in p.assets]


def landing_checks() -> list[dg.AssetChecksDefinition]:
    return [c for p in PROVIDERS for c in p.checks]


def provider_of(asset_name: str) -> Provider | None:
    """The provider an asset belongs to: a landing asset, or a reverse-sync asset named for it."""
    for p in PROVIDERS:
        if dg.AssetKey(asset_name) in p.asset_keys() or asset_name.startswith(f"sync_{p.name}_"):
            return p
    return None


def with_role(role: str) -> Iterator[str]:
    """Asset names with this schedule role, over every provider."""
    for p in PROVIDERS:
        yield from p.roles.get(role, ())  # type: ignore[call-overload]


def providers_with_role(role: str) -> list[str]:
    """Names of the providers that have assets with this schedule role."""
    return [p.name for p in PROVIDERS if p.roles.get(role)]  # type: ignore[call-overload]
