"""Cymbal Partners API client (provider-docs/000, DESIGN.md points 3 and 4).

Pull: campaign analytics, `page` + `per_page`, ending on a short page (`total` is not trusted).
Push: events and orders in batches (`{"events": [...]}`, `{"orders": [...]}`), contacts one per
request (`{"contact": {...}}`, the API takes one). Ids are idempotent, so a retried batch updates
rather than duplicates. Auth: `Cymbal-Partner-API-Key`; a 403 means the key was revoked.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import ClassVar

from pydantic import Field

from resources.http import HeaderAuth, HttpCore, ProviderResource, RetryPolicy, secret_value
from resources.pagination import CYMBAL_PAGE, Endpoint, short_page_pages

# The doc states no maximum; 100 is the largest the sandbox accepts (and it says so on a 400
# rather than clamping). The paginator compares against the `per_page` echoed in the reply, so
# a server that clamps lower still paginates correctly.
MAX_PER_PAGE = 100


class CymbalResource(ProviderResource):
    """Cymbal event-marketing CRM."""

    api_key: str | None = Field(default=None, repr=False, description="Cymbal partner API key (secret).")
    base_url: str = Field(default="https://api.cymbal.co", description="API root.")
    batch_size: int = Field(default=100, description="Events / orders per POST.")

    provider_name: ClassVar[str] = "cymbal"
    env: ClassVar[Mapping[str, str]] = {"api_key": "CYMBAL_API_KEY", "base_url": "CYMBAL_BASE_URL"}
    secrets: ClassVar[frozenset[str]] = frozenset({"api_key"})
    required: ClassVar[tuple[str, ...]] = ("CYMBAL_API_KEY",)

    def configured(self) -> bool:
        return secret_value(self.api_key) is not None

    def _make_core(self, policy: RetryPolicy) -> HttpCore:
        key = secret_value(self.api_key) or ""
        revoked = ("The API key was revoked: generate a new API token for this partner in the Cymbal manager "
                   "and set CYMBAL_API_KEY to it")
        return HttpCore(
            self.provider_name, self.base_url, auth=HeaderAuth("Cymbal-Partner-API-Key", key), policy=policy,
            timeout=self.timeout_seconds, secrets=(key,),
            auth_hints={401: "No API key was accepted: set CYMBAL_API_KEY to a token generated in the Cymbal "
                             "manager", 403: revoked},
        )

    def iter_campaign_analytics(self) -> Iterator[list[dict]]:
        """Every campaign's analytics, email and SMS alike (no `type` filter returns both)."""
        core = self._http()
        path = "/v1/partners/campaigns/analytics"
        return short_page_pages(Endpoint(core, path, CYMBAL_PAGE), {}, per_page=MAX_PER_PAGE)

    def _post_batches(self, kind: str, records: Sequence[dict]) -> list[dict]:
        core = self._http()
        replies = []
        for i in range(0, len(records), max(1, self.batch_size)):
            chunk = list(records[i:i + self.batch_size])
            replies.append(core.request("POST", f"/v1/partners/{kind}", json={kind: chunk}).body)
        return replies

    def create_events(self, events: Sequence[dict]) -> list[dict]:
        """POST events in batches of `batch_size`; returns one reply (`{"status": "queued"}`) per batch."""
        return self._post_batches("events", events)

    def create_orders(self, orders: Sequence[dict]) -> list[dict]:
        """POST orders in batches of `batch_size`; returns one reply per batch."""
        return self._post_batches("orders", orders)

    def create_contacts(self, contacts: Sequence[dict]) -> list[dict]:
        """POST each contact (the endpoint takes one `contact` object); returns one reply per contact."""
        core = self._http()
        return [core.request("POST", "/v1/partners/contact", json={"contact": c}).body for c in contacts]
