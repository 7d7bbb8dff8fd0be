"""Sympla public API v1.5.1 client (provider-docs/004): events, orders, participants.

Auth is the `s_token` header. Lists use `page` + `page_size` (at most 200) and end when
`pagination.has_next` is false. Errors come as `{"error": true, "code": ..., "message": ...}`,
which the core turns into typed errors. The same body can also arrive with a 2xx status: it is
checked here and raised as the error it describes (code 401/403: `ProviderAuthError`, with the
hint a real 401 gets), its message redacted, since it may echo the `s_token`.
Event ids go into paths (`/events/{id}/orders`) only through `path_segment`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import datetime, timedelta
from typing import Any, ClassVar

from pydantic import Field

from resources.http import (
    HeaderAuth,
    HttpCore,
    ProviderResource,
    RetryPolicy,
    path_segment,
    require_utc,
    secret_value,
)
from resources.pagination import SYMPLA_PAGE, Endpoint, page_number_pages

MAX_PAGE_SIZE = 200  # "Mínimo 1 e máximo 200"
TIMEZONE = "UTC"  # sent explicitly: without it date-times come back in America/Sao_Paulo


def _sympla_time(value: datetime) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S")


class SymplaResource(ProviderResource):
    """Sympla organiser API. Each `iter_*` yields pages (lists) of records as the API sends them."""

    token: str | None = Field(default=None, repr=False, description="Sympla access key, `s_token` (secret).")
    base_url: str = Field(default="https://api.sympla.com.br/public/v1.5.1", description="API root.")

    provider_name: ClassVar[str] = "sympla"
    env: ClassVar[Mapping[str, str]] = {"token": "SYMPLA_TOKEN", "base_url": "SYMPLA_BASE_URL"}
    secrets: ClassVar[frozenset[str]] = frozenset({"token"})
    required: ClassVar[tuple[str, ...]] = ("SYMPLA_TOKEN",)

    def configured(self) -> bool:
        return secret_value(self.token) is not None

    def _make_core(self, policy: RetryPolicy) -> HttpCore:
        token = secret_value(self.token) or ""
        hint = ("The access key was rejected: create one in Sympla under Minha Conta > Integrações "
                "(\"Criar chave de acesso\") and set SYMPLA_TOKEN to it")
        return HttpCore(self.provider_name, self.base_url, auth=HeaderAuth("s_token", token), policy=policy,
                        timeout=self.timeout_seconds, secrets=(token,), auth_hints={401: hint, 403: hint})

    def _pages(self, path: str, params: dict[str, Any]) -> Iterator[list[dict]]:
        core = self._http()

        def expect(body: Any) -> str | None:
            # The documented error body can also arrive with a 2xx status: never mistake it for data,
            # nor for a shapeless page worth asking again.
            if isinstance(body, dict) and body.get("error") is True:
                raise core.error_from_body(f"GET {path}", body.get("code"), body)
            return SYMPLA_PAGE(body)

        return page_number_pages(Endpoint(core, path, expect), params, page_size=MAX_PAGE_SIZE)

    def _event(self, event_id: Any) -> str:
        return path_segment(event_id, "event id", self.provider_name)

    def iter_events(self) -> Iterator[list[dict]]:
        """All the organiser's events: `published=false` lifts the default "published only" filter."""
        return self._pages("/events", {"published": "false"})

    def iter_orders(self, event_id: str, start: datetime | None = None,
                    end: datetime | None = None) -> Iterator[list[dict]]:
        """Orders of every status (`status=true`) of one event created in [start, end), date-times in UTC.

        `from`/`to` are read in the `timezone` we send (UTC) and `to` is inclusive to the second, so the
        exclusive end becomes `end - 1s` (order dates are whole seconds).
        """
        params: dict[str, Any] = {"status": "true", "timezone": TIMEZONE}
        if start is not None:
            params["from"] = _sympla_time(require_utc(start, "start"))
        if end is not None:
            params["to"] = _sympla_time(require_utc(end, "end") - timedelta(seconds=1))
        return self._pages(f"/events/{self._event(event_id)}/orders", params)

    def iter_participants(self, event_id: str) -> Iterator[list[dict]]:
        """Participants of approved and cancelled orders (`cancelled_filter=include`), date-times in UTC."""
        return self._pages(f"/events/{self._event(event_id)}/participants",
                           {"cancelled_filter": "include", "timezone": TIMEZONE})
