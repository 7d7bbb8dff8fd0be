"""Builds every resource the Definitions bind, from the environment.

Secrets are passed as `dg.EnvVar`, so Dagster resolves them at run time and never shows their
values in the UI, the logs or a resource's repr.

An unset variable must not break anything: Dagster raises at run time ("You have attempted to
fetch the environment variable ... which is not set") when it resolves an `EnvVar` whose
variable is missing, and that failure would take down every asset of the run, including other
providers'. So a secret is bound as `EnvVar` only when its variable is set when definitions load
(which happens again in each run worker, so a run sees the environment it starts in); otherwise
the field is None and the resource reports `configured() == False`, which the assets turn into
one "skipped: not configured" log line.
"""

from __future__ import annotations

import os
from typing import Any

import dagster as dg

from resources.cordial import CordialResource
from resources.cymbal import CymbalResource
from resources.cymbio import CymbioResource
from resources.http import parse_rate_limit
from resources.sympla import SymplaResource
from resources.tickettailor import TicketTailorResource

# What each provider needs set before its assets run (the variables `build_resources` binds below).
CREDENTIAL_ENV: dict[str, tuple[str, ...]] = {
    "tickettailor": ("TICKETTAILOR_API_KEY",),
    "sympla": ("SYMPLA_TOKEN",),
    "cymbal": ("CYMBAL_API_KEY",),
    "cymbio": ("CYMBIO_CLIENT_ID", "CYMBIO_CLIENT_SECRET", "CYMBIO_RETAILER_ID"),
    "cordial": ("CORDIAL_API_KEY", "CORDIAL_BASE_URL"),
}


def credential_hint(provider: str) -> str:
    """The variables to set for `provider`, for a "not configured" message: "A, B and C"."""
    names = CREDENTIAL_ENV.get(provider)
    if not names:
        return "its credentials"
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def _secret(name: str) -> dg.EnvVar | None:
    return dg.EnvVar(name) if os.environ.get(name) else None


def _setting(name: str, default: str | None) -> str | None:
    return os.environ.get(name) or default


def _rate_limit(name: str) -> str | None:
    """`<PROVIDER>_RATE_LIMIT` (`100/10s`), checked now: a typo fails loading with a ValueError naming
    the variable, rather than each run of that provider's assets."""
    value = (os.environ.get(name) or "").strip()
    if not value:
        return None
    parse_rate_limit(value, name)
    return value


def build_resources() -> dict[str, Any]:
    return {
        "tickettailor": TicketTailorResource(
            api_key=_secret("TICKETTAILOR_API_KEY"),
            base_url=_setting("TICKETTAILOR_BASE_URL", "https://api.tickettailor.com"),
            rate_limit=_rate_limit("TICKETTAILOR_RATE_LIMIT"),
        ),
        "sympla": SymplaResource(
            token=_secret("SYMPLA_TOKEN"),
            base_url=_setting("SYMPLA_BASE_URL", "https://api.sympla.com.br/public/v1.5.1"),
            rate_limit=_rate_limit("SYMPLA_RATE_LIMIT"),
        ),
        "cymbal": CymbalResource(
            api_key=_secret("CYMBAL_API_KEY"),
            base_url=_setting("CYMBAL_BASE_URL", "https://api.cymbal.co"),
            rate_limit=_rate_limit("CYMBAL_RATE_LIMIT"),
        ),
        "cymbio": CymbioResource(
            client_id=_secret("CYMBIO_CLIENT_ID"),
            client_secret=_secret("CYMBIO_CLIENT_SECRET"),
            retailer_id=_setting("CYMBIO_RETAILER_ID", None),
            base_url=_setting("CYMBIO_BASE_URL", "https://api.cym.bio"),
            scope=_setting("CYMBIO_SCOPE", "") or "",
            rate_limit=_rate_limit("CYMBIO_RATE_LIMIT"),
        ),
        "cordial": CordialResource(
            api_key=_secret("CORDIAL_API_KEY"),
            base_url=_setting("CORDIAL_BASE_URL", None),
            rate_limit=_rate_limit("CORDIAL_RATE_LIMIT"),
        ),
    }
