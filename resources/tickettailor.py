"""Ticket Tailor REST v1 client (provider-docs/002): events, orders by creation window, issued tickets.

Auth is HTTP Basic with the API key as the username. Lists use the id cursor (`starting_after`,
`limit` up to 100) and end when `links.next` is null. Ticket Tailor is the provider that reports
`X-Rate-Limit-*` headers (2000 requests/hour); the core paces from them.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any, ClassVar

from pydantic import Field

from resources.http import BasicUsernameAuth, HttpCore, ProviderResource, RetryPolicy, require_utc, secret_value
from resources.pagination import TICKETTAILOR_PAGE, Endpoint, cursor_pages

MAX_LIMIT = 100  # "limit ... Maximum: 100" (Pagination)


class TicketTailorResource(ProviderResource):
    """Ticket Tailor box office API. Each `iter_*` yields pages (lists) of records as the API sends them."""

    api_key: str | None = Field(default=None, repr=False, description="Ticket Tailor API key (secret).")
    base_url: str = Field(default="https://api.tickettailor.com", description="API root, without /v1.")

    provider_name: ClassVar[str] = "tickettailor"
    env: ClassVar[Mapping[str, str]] = {"api_key": "TICKETTAILOR_API_KEY", "base_url": "TICKETTAILOR_BASE_URL"}
    secrets: ClassVar[frozenset[str]] = frozenset({"api_key"})
    required: ClassVar[tuple[str, ...]] = ("TICKETTAILOR_API_KEY",)

    def configured(self) -> bool:
        return secret_value(self.api_key) is not None

    def _make_core(self, policy: RetryPolicy) -> HttpCore:
        key = secret_value(self.api_key) or ""
        return HttpCore(
            self.provider_name, self.base_url, auth=BasicUsernameAuth(key), policy=policy,
            timeout=self.timeout_seconds, secrets=(key,),
            auth_hints={
                401: "The API key was not accepted: create a key in Box office settings > API and set "
                     "TICKETTAILOR_API_KEY to it",
                403: "The API key has no access to this box office or resource: use a key issued by the box "
                     "office whose data you want (TICKETTAILOR_API_KEY)",
            },
        )

    def _pages(self, path: str, params: dict[str, Any]) -> Iterator[list[dict]]:
        core = self._http()
        return cursor_pages(Endpoint(core, path, TICKETTAILOR_PAGE), params, limit=MAX_LIMIT)

    def iter_events(self) -> Iterator[list[dict]]:
        """Every event of the box office, whatever its status."""
        return self._pages("/v1/events", {})

    def iter_orders(self, start: datetime, end: datetime) -> Iterator[list[dict]]:
        """Orders with `created_at` in [start, end) (UTC instants), via `created_at.gte` / `created_at.lt`."""
        start_utc, end_utc = require_utc(start, "start"), require_utc(end, "end")
        if end_utc <= start_utc:
            return iter(())
        # created_at is a whole-second Unix timestamp; ceil the bounds so [start, end) keeps its meaning
        # for a window that does not fall on whole seconds.
        gte = -int(-start_utc.timestamp() // 1)
        lt = -int(-end_utc.timestamp() // 1)
        return self._pages("/v1/orders", {"created_at.gte": gte, "created_at.lt": lt})

    def iter_issued_tickets(self, event_id: str) -> Iterator[list[dict]]:
        """Issued tickets of one event. The id is sent as the API returns it (`ev_40980`), DESIGN.md point 7."""
        return self._pages("/v1/issued_tickets", {"event_id": event_id})
