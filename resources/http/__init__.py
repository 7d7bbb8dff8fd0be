"""The shared HTTP core every provider client sits on: retries, rate budget, auth, logging.

Provider modules only describe endpoints, parameters and record shapes; everything about *how*
a request is sent lives here, so the five clients fail, retry, pace and log the same way.

- Retries (tenacity): 429, 5xx (except 501), connection errors, timeouts, and 2xx bodies that are
  cut short. Capped exponential back-off with full jitter, never shorter than the server's
  Retry-After. Gives up once the next wait would cross `max_elapsed` seconds, with a
  `ProviderUnavailableError` naming provider, endpoint and last status.
- Never retried: 400/401/403/404/422 (and any other 4xx but 408/429). 401/403 raise
  `ProviderAuthError` with the provider's own "what to do" hint.
- Replies that are not a documented answer are errors, never "no records" (DESIGN.md, Storage):
  - a 3xx raises `ProviderRedirectError` at once: redirects are not followed;
  - a 2xx that is empty, not JSON, or without the envelope the caller `expect`s (`{}`,
    `{"data": null}`, no `links`) is asked again `bad_reply_attempts - 1` times (a gateway or a
    deploy can serve one such reply; the same answer three times in a row is the API's answer),
    then raises `ProviderResponseError`, which says what was missing, never "unavailable";
  - a 2xx that orjson rejects is decoded again by `jsonbody.tolerant_loads` (lone surrogates,
    invalid UTF-8, `1e400`): the page lands and the landing code quarantines the records that
    still cannot be represented. A body that ends mid-document was cut on the way: retried.
- Size cap: a page is streamed and counted; once it passes `max_body_bytes` (default 64 MiB,
  `MARQUEE_MAX_PAGE_BYTES`) the read stops and `ProviderResponseTooLargeError` is raised, so a
  page that ignores `limit` never sits whole in memory. A Content-Length over the cap fails before
  any of the body is read.
- Rate budget: `X-Rate-Limit-Remaining` / `-Reset` (Ticket Tailor) are read on every reply; once
  the remaining budget drops into a reserve, requests are spaced so the rest of the window's
  budget lasts until it resets, i.e. a long sync slows down before it is throttled. Optionally
  (`<PROVIDER>_RATE_LIMIT=100/10s`) a configured token bucket caps the requests of every thread
  sharing the core: N at once, then one every W/N seconds, with a 2% slack.
- Secrets: the core is given the secret values so it can redact them, in every form an API may
  echo them (base64 in a Basic header, URL-encoded, the live OAuth token: `errors.secret_forms`,
  `Auth.secrets`), from any text it puts into an error or a log line; log lines carry provider,
  method, path, status, attempt and timing, nothing else. Errors also carry a short `code`
  (`422 validation_error`) for logs that must never hold API text.
- Ids in URL paths go through `path_segment`: an id that could rewrite the path (`..`, `/`, `?`,
  `#`) is refused before anything is sent.
- Per-request lines (`GET /v1/orders -> 200 attempt=1 12ms`) go to the plain logger
  `marquee.http.requests` at DEBUG, off by default: through Dagster's logger they became one
  event-log entry per request (a sync of 5,000 requests/s wrote 5,000 rows/s to the run's log).
  Retries, waits and failures stay on Dagster's logger, in the run's log.

Modules: `retry` (policy, attempts), `budget` (rate pacing), `auth` (keys and tokens), `core`
(HttpCore), `resource` (ProviderResource, the Dagster resource every client is).
"""

from resources.http.auth import Auth, BasicUsernameAuth, ClientCredentialsAuth, HeaderAuth
from resources.http.budget import RATE_LIMIT_ENV, RateBudget, parse_rate_limit
from resources.http.core import (
    DEFAULT_MAX_PAGE_BYTES,
    MAX_PAGE_BYTES_ENV,
    Expect,
    HttpCore,
    Reply,
    is_safe_path_segment,
    max_page_bytes_from_env,
    path_segment,
    request_logger,
)
from resources.http.resource import ProviderResource, require_utc, secret_value
from resources.http.retry import RetryPolicy, parse_retry_after

__all__ = [
    "DEFAULT_MAX_PAGE_BYTES", "MAX_PAGE_BYTES_ENV", "RATE_LIMIT_ENV", "Auth", "BasicUsernameAuth",
    "ClientCredentialsAuth", "Expect", "HeaderAuth", "HttpCore", "ProviderResource", "RateBudget",
    "Reply", "RetryPolicy", "is_safe_path_segment", "max_page_bytes_from_env", "parse_rate_limit",
    "parse_retry_after", "path_segment", "request_logger", "require_utc", "secret_value",
]
