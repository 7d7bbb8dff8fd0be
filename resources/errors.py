"""Typed errors raised by the provider clients.

Every message names the provider and the endpoint, and says what to do next. Messages are built
from the request line and status only (plus the API's own error text, redacted): never from
headers, auth, or request bodies, so a secret cannot leak into a log or a failed run's summary.
"""

from __future__ import annotations

import dagster as dg


class ProviderError(Exception):
    """Base class: a call to a provider's API failed."""

    def __init__(self, message: str, *, provider: str, endpoint: str = "", status: int | None = None) -> None:
        super().__init__(message)
        self.provider = provider
        self.endpoint = endpoint  # "GET /v1/orders": method and path, no query, no host
        self.status = status


class _FinalProviderError(ProviderError, dg.Failure):
    """An error no retry can fix. Also a `dg.Failure(allow_retries=False)`, so an asset-level
    RetryPolicy does not re-run a rejected key three times before showing the same message."""

    def __init__(self, message: str, *, provider: str, endpoint: str = "", status: int | None = None) -> None:
        super().__init__(message, provider=provider, endpoint=endpoint, status=status)
        self.allow_retries = False


class ProviderNotConfiguredError(_FinalProviderError):
    """The resource was used without its credentials being set."""


class ProviderAuthError(_FinalProviderError):
    """401 / 403: the credentials were rejected. Never retried: retrying cannot fix a bad key."""


class ProviderRequestError(_FinalProviderError):
    """400 / 404 / 422 and other 4xx: the request itself is wrong. Never retried."""


class ProviderUnavailableError(ProviderError):
    """Retryable failures (429, 5xx, resets, timeouts, broken bodies) outlasted the retry budget."""


class ProviderResponseError(ProviderError):
    """The API answered with a reply that is not a documented answer: an empty body, a body that
    is not JSON, a JSON body without the documented envelope (`{}`, `{"data": null}`, a missing
    `links` / `pagination`), a redirect, or a page over the size cap.

    Never read as "no records": the landing code lets it propagate, so the partition being written
    is aborted and the file already landed for that day stays as it was."""


class ProviderRedirectError(_FinalProviderError, ProviderResponseError):
    """A 3xx. Redirects are never followed: a moved API is a configuration change (the base URL),
    and following one silently could read another host or drop the auth header on the way."""


class ProviderResponseTooLargeError(_FinalProviderError, ProviderResponseError):
    """One page was larger than the configured cap (`MARQUEE_MAX_PAGE_BYTES`). The same request
    would get the same page, so retrying (in the core or as a Dagster retry) cannot help."""


def redact(text: str, secrets: tuple[str, ...]) -> str:
    """Replace every configured secret in `text` by `***` (an API may echo a key back in an error)."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "***")
    return text
