"""The project's single `dg.Definitions`, loaded by `dagster dev` through workspace.yaml.

Every module under `assets/` and `pipelines/` that exposes a module-level `defs: dg.Definitions`
is merged here, so a new provider or job plugs in without editing this file. Resources are built
once, centrally, because two modules binding the same resource key would conflict on merge.
"""

from __future__ import annotations

import importlib
import pkgutil

import dagster as dg

import assets as assets_pkg
import pipelines as pipelines_pkg
from pipelines import (
    pool_wait,  # noqa: F401  (every process that loads the code location waits for pools sanely)
    settings,  # noqa: F401  (loads .env and DO_NOT_TRACK before dbt is touched)
)
from resources.registry import build_resources

_SKIP = {"pipelines.definitions", "pipelines.cli"}


def _discovered_defs() -> list[dg.Definitions]:
    found: list[dg.Definitions] = []
    for pkg in (assets_pkg, pipelines_pkg):
        for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda i: i.name):
            name = f"{pkg.__name__}.{info.name}"
            if name in _SKIP or (info.ispkg and pkg is pipelines_pkg):
                continue
            module = importlib.import_module(name)
            module_defs = getattr(module, "defs", None)
            if isinstance(module_defs, dg.Definitions):
                found.append(module_defs)
    return found


def build_definitions() -> dg.Definitions:
    parts = _discovered_defs()
    merged = dg.Definitions.merge(*parts) if parts else dg.Definitions()
    from pipelines.freshness import with_operational_policies

    merged = dg.Definitions.merge(merged, dg.Definitions(resources=build_resources()))
    # Freshness applies to the dbt marts, which are defined in another module than the policy.
    return with_operational_policies(merged)


defs = build_definitions()
