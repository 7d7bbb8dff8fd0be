"""Cymbio retailer API client (provider-docs/001, DESIGN.md points 1 and 2).

OAuth2 client credentials: tokens live 6 minutes, so a long read crosses several. The token is
cached, refreshed `token_margin_seconds` before it expires, shared by threads, and dropped and
re-fetched once when the API answers 401 (the core then resends the request). Error texts are
redacted of the client secret (also as URL-encoded in the token request's form body) and of the
live bearer tokens (`ClientCredentialsAuth.secrets`). The retailer id and return ids go into
paths only through `path_segment`.
Lists (variants, returns) are bare JSON arrays paged by `limit` (at most 1000) and `offset`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

from pydantic import Field, PrivateAttr

from resources.errors import ProviderResponseError
from resources.http import (
    ClientCredentialsAuth,
    HttpCore,
    ProviderResource,
    RetryPolicy,
    path_segment,
    secret_value,
)
from resources.pagination import CYMBIO_LIST, Endpoint, offset_pages

PAGE_LIMIT = 1000  # the doc's page size, and the most the API serves


def _TOKEN_REPLY(body: Any) -> str | None:  # noqa: N802 - an envelope, like the pagination constants
    """DESIGN.md point 1: `{"access_token", "token_type", "expires_in"}`. Only the envelope is checked
    here; an object without a token is a credentials problem, which `ClientCredentialsAuth` reports."""
    if isinstance(body, dict):
        return None
    what = "an empty body" if body is None else f"a bare JSON {type(body).__name__}"
    return f"{what} where the docs promise a token object {{\"access_token\": ..., \"expires_in\": ...}}"


def _ORDER_OBJECT(body: Any) -> str | None:  # noqa: N802 - reads like the Envelope constants it sits beside
    """`GET .../orders/order-line` answers one order object (cymbioOrderId, orderLines, ...)."""
    if isinstance(body, dict) and body:
        return None
    what = "an empty body" if body is None else "an empty object {}" if body == {} else f"a {type(body).__name__}"
    return f"{what} where the docs promise the order object"


class CymbioResource(ProviderResource):
    """Cymbio dropship marketplace (retailer side)."""

    client_id: str | None = Field(default=None, repr=False, description="OAuth2 client id.")
    client_secret: str | None = Field(default=None, repr=False, description="OAuth2 client secret (secret).")
    retailer_id: str | None = Field(default=None, description="Your Cymbio retailer id.")
    base_url: str = Field(default="https://api.cym.bio", description="API root (staging: cymbio3-api-staging).")
    scope: str = Field(default="", description="OAuth2 scope(s), space separated; empty = the client's default.")
    service_type: str = Field(default="ecommerce", description="`service_type` filter for variants.")
    token_margin_seconds: float = Field(default=60.0, description="Refresh a token this long before it expires.")

    provider_name: ClassVar[str] = "cymbio"
    env: ClassVar[Mapping[str, str]] = {
        "client_id": "CYMBIO_CLIENT_ID", "client_secret": "CYMBIO_CLIENT_SECRET", "retailer_id": "CYMBIO_RETAILER_ID",
        "base_url": "CYMBIO_BASE_URL", "scope": "CYMBIO_SCOPE"}
    secrets: ClassVar[frozenset[str]] = frozenset({"client_id", "client_secret"})
    required: ClassVar[tuple[str, ...]] = ("CYMBIO_CLIENT_ID", "CYMBIO_CLIENT_SECRET", "CYMBIO_RETAILER_ID")

    _auth: ClientCredentialsAuth | None = PrivateAttr(default=None)

    def configured(self) -> bool:
        return all(secret_value(v) is not None for v in (self.client_id, self.client_secret, self.retailer_id))

    def _make_core(self, policy: RetryPolicy) -> HttpCore:
        client_id = secret_value(self.client_id) or ""
        client_secret = secret_value(self.client_secret) or ""
        core_ref: dict[str, HttpCore] = {}

        def fetch_token() -> dict[str, Any]:
            form = {"grant_type": "client_credentials", "client_id": client_id, "client_secret": client_secret,
                    "scope": self.scope}
            # authenticate=False: the token request carries its credentials in the form body.
            return core_ref["core"].request("POST", "/oauth/token", data=form, authenticate=False,
                                            expect=_TOKEN_REPLY).body

        self._auth = ClientCredentialsAuth(self.provider_name, fetch_token, margin=self.token_margin_seconds)
        core = HttpCore(
            self.provider_name, self.base_url, auth=self._auth, policy=policy, timeout=self.timeout_seconds,
            secrets=(client_secret, client_id),
            auth_hints={
                401: "The client credentials were rejected: check CYMBIO_CLIENT_ID and CYMBIO_CLIENT_SECRET "
                     "(issued on account activation; ask support@cym.bio to re-issue them)",
                403: "The credentials do not grant this retailer or scope: check CYMBIO_RETAILER_ID and the "
                     "scope (variants/retailers/orders read, orders write)",
            },
        )
        core_ref["core"] = core
        return core

    @property
    def _retailer(self) -> str:
        return f"/v3/retailers/{path_segment(secret_value(self.retailer_id), 'retailer id', self.provider_name)}"

    def iter_variants(self) -> Iterator[list[dict]]:
        """The catalog variants the brands approved for this retailer, 1000 per page."""
        core = self._http()
        path = f"{self._retailer}/variants"
        params = {"service_type": self.service_type} if self.service_type else {}
        what = "GET /v3/retailers/{id}/variants"
        return offset_pages(Endpoint(core, path, CYMBIO_LIST, what), params, limit=PAGE_LIMIT)

    def get_order(self, cymbio_order_id: int | str) -> dict:
        """The whole order object of `GET .../orders/order-line` (cymbioOrderId, orderPo, orderLines...)."""
        what = "GET /v3/retailers/{id}/orders/order-line"
        body = self._http().get(f"{self._retailer}/orders/order-line", {"cymbio_order_id": cymbio_order_id},
                                expect=_ORDER_OBJECT, what=what)
        if not isinstance(body, dict):  # unreachable past `expect`; kept so no caller ever gets a non-object
            raise ProviderResponseError(
                f"cymbio: GET .../orders/order-line replied with {type(body).__name__}, not the order object",
                provider=self.provider_name, endpoint=what)
        return body

    def get_order_line_statuses(self, cymbio_order_id: int | str) -> list[dict]:
        """The order's `orderLines` records (status, shipments, rejections, variant) as the API sends them.

        The lines carry no order id of their own: callers that land them add `cymbio_order_id`
        (or use `get_order` for the order-level fields).
        """
        lines = self.get_order(cymbio_order_id).get("orderLines") or []
        return list(lines)

    def iter_returns_not_acknowledged(self) -> Iterator[list[dict]]:
        """Returns the brands processed and we have not acknowledged yet.

        Read the whole list before acknowledging any of it: an acknowledged return leaves this
        list, which would shift later offsets under a paginator that is still reading.
        """
        core = self._http()
        path = f"{self._retailer}/returns"
        params = {"filter": json.dumps({"status": "not_acknowledged"}, separators=(",", ":"))}
        what = "GET /v3/retailers/{id}/returns"
        return offset_pages(Endpoint(core, path, CYMBIO_LIST, what), params, limit=PAGE_LIMIT, id_key="returnId")

    def acknowledge_return(self, return_id: int | str) -> None:
        """`PUT .../returns/{id}/acknowledge` (DESIGN.md point 2). Idempotent, so safe to retry."""
        rid = path_segment(return_id, "return id", self.provider_name)
        self._http().request("PUT", f"{self._retailer}/returns/{rid}/acknowledge")

    @property
    def token_fetches(self) -> int:
        """How many access tokens this resource has minted (for tests and diagnostics)."""
        return self._auth.fetches if self._auth else 0
