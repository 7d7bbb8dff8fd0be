"""Typed errors raised by the provider clients.

Every message names the provider and the endpoint, and says what to do next. Messages are built
from the request line and status only (plus the API's own error text, redacted): never from
headers, auth, or request bodies, so a secret cannot leak into a log or a failed run's summary.

`ProviderError.code` is a short, safe summary for logs that must never carry API text (the
reverse sync logs only it): the HTTP status, plus the API's own error token when it is one
(`422 validation_error`, `404`), or the kind of failure when there was no status (`unavailable`).
"""

from __future__ import annotations

import base64
import re
from functools import lru_cache
from typing import Any, ClassVar
from urllib.parse import quote, quote_plus

import dagster as dg

# An API error token worth keeping in `code`: short, and nothing a sentence (or a secret with
# spaces, slashes or colons around it) could be.
_CODE_TOKEN = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_CODE_KEYS = ("error_code", "code", "error")


class ProviderError(Exception):
    """Base class: a call to a provider's API failed."""

    kind: ClassVar[str] = "error"  # `code` when there is no HTTP status

    def __init__(self, message: str, *, provider: str, endpoint: str = "", status: int | None = None,
                 code: str | None = None) -> None:
        super().__init__(message)
        self.provider = provider
        self.endpoint = endpoint  # "GET /v1/orders": method and path, no query, no host
        self.status = status
        self.code = code or (str(status) if status is not None else self.kind)


class _FinalProviderError(ProviderError, dg.Failure):
    """An error no retry can fix. Also a `dg.Failure(allow_retries=False)`, so an asset-level
    RetryPolicy does not re-run a rejected key three times before showing the same message."""

    def __init__(self, message: str, *, provider: str, endpoint: str = "", status: int | None = None,
                 code: str | None = None) -> None:
        super().__init__(message, provider=provider, endpoint=endpoint, status=status, code=code)
        self.allow_retries = False


class ProviderNotConfiguredError(_FinalProviderError):
    """The resource was used without its credentials being set."""

    kind = "not_configured"


class ProviderAuthError(_FinalProviderError):
    """401 / 403: the credentials were rejected. Never retried: retrying cannot fix a bad key."""

    kind = "auth"


class ProviderRequestError(_FinalProviderError):
    """400 / 404 / 422 and other 4xx: the request itself is wrong. Never retried. Also an id that
    cannot go into a URL path (`resources.http.path_segment`): the request is never sent."""

    kind = "bad_request"


class ProviderUnavailableError(ProviderError):
    """Retryable failures (429, 5xx, resets, timeouts, broken bodies) outlasted the retry budget."""

    kind = "unavailable"


class ProviderResponseError(ProviderError):
    """The API answered with a reply that is not a documented answer: an empty body, a body that
    is not JSON, a JSON body without the documented envelope (`{}`, `{"data": null}`, a missing
    `links` / `pagination`), a redirect, or a page over the size cap.

    Never read as "no records": the landing code lets it propagate, so the partition being written
    is aborted and the file already landed for that day stays as it was."""

    kind = "bad_response"


class ProviderRedirectError(_FinalProviderError, ProviderResponseError):
    """A 3xx. Redirects are never followed: a moved API is a configuration change (the base URL),
    and following one silently could read another host or drop the auth header on the way."""

    kind = "redirect"


class ProviderResponseTooLargeError(_FinalProviderError, ProviderResponseError):
    """One page was larger than the configured cap (`MARQUEE_MAX_PAGE_BYTES`). The same request
    would get the same page, so retrying (in the core or as a Dagster retry) cannot help."""

    kind = "too_large"


def error_code(status: int | None, body: Any, secrets: tuple[str, ...] = ()) -> str | None:
    """`ProviderError.code` for an API error reply: the status, plus the body's `error_code` /
    `code` / `error` when that is a short token (`422 validation_error`). Free text is never
    kept, nor a token in which a secret shows (an API may echo the key as its "error")."""
    if status is None:
        return None
    if isinstance(body, dict):
        for key in _CODE_KEYS:
            value = body.get(key)
            if isinstance(value, int) and not isinstance(value, bool):
                value = str(value)
            if isinstance(value, str) and _CODE_TOKEN.fullmatch(value):
                if value == str(status) or _shows_a_secret(value, secrets):
                    continue
                return f"{status} {value}"
    return str(status)


def _shows_a_secret(token: str, secrets: tuple[str, ...]) -> bool:
    forms = secret_forms(tuple(secrets))
    # A token holding a secret, or a long enough piece of one (an API may echo a truncated key).
    return any(f in token for f in forms) or (len(token) >= 6 and any(token in f for f in forms))


@lru_cache(maxsize=64)
def secret_forms(secrets: tuple[str, ...]) -> tuple[str, ...]:
    """Every form in which a secret can show up in an API's echo of a request, longest first:
    as is; in an HTTP Basic header (base64 of `secret:` and of `secret`, padded or not); URL-encoded
    in a path, a query or a form body (`quote(secret, safe="")`, `quote_plus`). Secrets shorter
    than 4 characters are ignored: replacing them would garble every message."""
    forms: set[str] = set()
    for secret in secrets:
        if not secret or len(secret) < 4:
            continue
        forms.update((secret, quote(secret, safe=""), quote_plus(secret)))
        for raw in (f"{secret}:", secret):
            encoded = base64.b64encode(raw.encode()).decode()
            forms.update((encoded, encoded.rstrip("=")))
    return tuple(sorted(forms, key=len, reverse=True))


def redact(text: str, secrets: tuple[str, ...]) -> str:
    """Replace every secret, in every form an API may echo it (`secret_forms`), by `***`."""
    for form in secret_forms(tuple(secrets)):
        if form in text:
            text = text.replace(form, "***")
    return text
