"""The sandbox's providers, declared once.

Each entry names a provider's sandbox class, which carries the provider's URL prefix (`name`) and
the environment variables that point marquee at it (`env`), and what the provider contributes to
the ground truth (`truth.py`): a ticketing provider's facts, the campaign platform's analytics.
The server (`start_sandbox`), `Sandbox.env` and the truth all read this list.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from sandbox import cordial, cymbal, cymbio, sympla, tickettailor
from sandbox import world as w
from sandbox.http import Provider


class TicketingFacts(Protocol):
    """A ticketing provider's normalised view of its own data (a module that exposes these)."""

    def event_facts(self, world: w.World) -> Iterator[w.EventFact]: ...

    def order_facts(self, world: w.World) -> Iterator[w.OrderFact]: ...

    def ticket_facts(self, world: w.World) -> Iterator[w.TicketFact]: ...


CampaignAnalytics = Callable[[w.World, w.Campaign], dict[str, Any]]


@dataclass(frozen=True)
class ProviderEntry:
    sandbox: type[Provider]
    facts: TicketingFacts | None = None  # events, orders and tickets the truth builds the marts from
    campaign_analytics: CampaignAnalytics | None = None  # the analytics record per campaign, as the API shows it

    @property
    def name(self) -> str:
        return self.sandbox.name

    def env(self, base_url: str) -> dict[str, str]:
        return self.sandbox.env(base_url)


PROVIDERS: tuple[ProviderEntry, ...] = (
    ProviderEntry(tickettailor.TickettailorSandbox, facts=tickettailor),
    ProviderEntry(sympla.SymplaSandbox, facts=sympla),
    ProviderEntry(cymbal.CymbalSandbox, campaign_analytics=cymbal.campaign_analytics),
    ProviderEntry(cymbio.CymbioSandbox),
    ProviderEntry(cordial.CordialSandbox),
)
