"""Cordial Asynchronous API client (provider-docs/003, DESIGN.md point 5): upsertContact, upsertOrder.

Auth is HTTP Basic with the API key as the username. Both calls are upserts keyed by the
contact identifiers / `orderID`, so the core may safely resend them after a failure.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from pydantic import Field

from resources.http import BasicUsernameAuth, HttpCore, ProviderResource, RetryPolicy, secret_value


class CordialResource(ProviderResource):
    """Cordial marketing platform (push only)."""

    api_key: str | None = Field(default=None, repr=False, description="Cordial API key (secret).")
    base_url: str | None = Field(default=None, description="Asynchronous API root (no default: set it).")

    provider_name: ClassVar[str] = "cordial"
    env: ClassVar[Mapping[str, str]] = {"api_key": "CORDIAL_API_KEY", "base_url": "CORDIAL_BASE_URL"}
    secrets: ClassVar[frozenset[str]] = frozenset({"api_key"})
    required: ClassVar[tuple[str, ...]] = ("CORDIAL_API_KEY", "CORDIAL_BASE_URL")

    def configured(self) -> bool:
        return secret_value(self.api_key) is not None and bool(self.base_url)

    def _make_core(self, policy: RetryPolicy) -> HttpCore:
        key = secret_value(self.api_key) or ""
        return HttpCore(
            self.provider_name, self.base_url or "", auth=BasicUsernameAuth(key), policy=policy,
            timeout=self.timeout_seconds, secrets=(key,),
            auth_hints={0: "The API key was rejected: create an API key in Cordial (Integrations > API) allowing "
                           "this host and set CORDIAL_API_KEY to it"},
        )

    def upsert_contact(self, payload: dict[str, Any]) -> dict:
        """`POST /upsertContact`; returns the acceptance (`{"accepted": true, "requestId": ...}`)."""
        return self._http().request("POST", "/upsertContact", json=payload).body

    def upsert_order(self, payload: dict[str, Any]) -> dict:
        """`POST /upsertOrder`; returns the acceptance."""
        return self._http().request("POST", "/upsertOrder", json=payload).body
