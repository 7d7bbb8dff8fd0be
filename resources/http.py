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
"""

from __future__ import annotations

import base64
import contextlib
import email.utils
import json as stdlib_json
import logging
import os
import random
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar
from urllib.parse import quote

import dagster as dg
import httpx
import orjson
import tenacity
from pydantic import Field, PrivateAttr

from resources.errors import (
    ProviderAuthError,
    ProviderError,
    ProviderNotConfiguredError,
    ProviderRedirectError,
    ProviderRequestError,
    ProviderResponseError,
    ProviderResponseTooLargeError,
    ProviderUnavailableError,
    error_code,
    redact,
)
from resources.jsonbody import cut_short, tolerant_loads

logger = dg.get_dagster_logger("marquee.http")
# One line per request: a plain logger, so it is not captured into Dagster's event log (see above).
request_logger = logging.getLogger("marquee.http.requests")
# httpx logs every request line at INFO and httpcore every header it sends and receives at DEBUG:
# a Location, a query string or an echoed header may carry a credential, and those lines bypass our
# redaction. Our own lines (above) say what an operator needs; theirs stay quiet below WARNING.
for _noisy in ("httpx", "httpcore"):
    logging.getLogger(_noisy).setLevel(logging.WARNING)

USER_AGENT = "marquee/0.1"

MAX_PAGE_BYTES_ENV = "MARQUEE_MAX_PAGE_BYTES"
DEFAULT_MAX_PAGE_BYTES = 64 * 1024 * 1024
# What of a non-2xx body is read, for the API's own error text: nothing useful is ever longer.
_ERROR_BODY_BYTES = 64 * 1024

# Checks a parsed 2xx body against the documented envelope: None if it is one, else what is wrong
# with it ("an empty body", "no 'links' object"). It may also raise a ProviderError itself.
Expect = Callable[[Any], "str | None"]


def max_page_bytes_from_env() -> int:
    """The page-size cap: `MARQUEE_MAX_PAGE_BYTES` (bytes, > 0) or 64 MiB."""
    raw = os.environ.get(MAX_PAGE_BYTES_ENV, "").strip().replace("_", "")
    if not raw:
        return DEFAULT_MAX_PAGE_BYTES
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value <= 0:
        raise ValueError(f"{MAX_PAGE_BYTES_ENV} must be a positive number of bytes (e.g. 67108864 for 64 MiB), "
                         f"got {raw!r}")
    return value


RATE_LIMIT_ENV = "{PROVIDER}_RATE_LIMIT"
_RATE_LIMIT = re.compile(r"^\s*(\d+)\s*/\s*(\d+(?:\.\d+)?)?\s*([smh]?)\s*$")
_RATE_UNITS = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_rate_limit(text: str, name: str) -> tuple[int, float]:
    """`100/10s` (also `100/10`, `50/1m`, `2000/1h`, `5/s`) -> (100, 10.0): N requests per W seconds.
    A bad value is a ValueError naming the variable (`name`) it came from."""
    m = _RATE_LIMIT.match(text or "")
    count = int(m.group(1)) if m else 0
    window = float(m.group(2) or 1) * _RATE_UNITS[m.group(3)] if m and (m.group(2) or m.group(3)) else 0.0
    if count < 1 or window <= 0:
        raise ValueError(f"{name} must be N requests per window, like 100/10s, 100/10 (seconds), 50/1m or "
                         f"2000/1h, with N >= 1 and a window above 0; got {text!r}")
    return count, window


# Ids that go into URL paths: letters, digits and `_ - .`, as every provider's ids are. Anything
# else (`/`, `?`, `#`, `%`, spaces, `..`) could point the request at another resource or host path.
_SAFE_SEGMENT = re.compile(r"[A-Za-z0-9_.-]{1,128}")


def is_safe_path_segment(value: Any) -> bool:
    """Whether `value` (a str or an int) may be used as an id in a URL path: see `path_segment`."""
    text = str(value) if isinstance(value, int) and not isinstance(value, bool) else value
    return isinstance(text, str) and bool(_SAFE_SEGMENT.fullmatch(text)) and text not in (".", "..")


def path_segment(value: Any, what: str, provider: str) -> str:
    """`value` as one URL path segment, or a `ProviderRequestError` naming the provider and the id's
    role (`what`, e.g. "event id") if it is not a safe id. An id comes from an API reply or a
    setting, and used raw (`/events/../../x?y=#`) it would rewrite the request's path: refused
    before anything is sent. Percent-quoted as well, in case the rule above is ever loosened."""
    if not is_safe_path_segment(value):
        shown = repr(value)
        shown = shown if len(shown) <= 80 else shown[:77] + "..."
        raise ProviderRequestError(
            f"{provider}: the {what} {shown} cannot be used in a URL path (only letters, digits, '_', '-' and "
            f"'.' are, and never '.' or '..' alone): nothing was sent for it. It came from the API or the "
            f"configuration; check it there.", provider=provider, code="bad_id")
    return quote(str(value), safe="")


# --- retry policy ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try. Defaults suit production; tests pass a small `backoff_base`."""

    backoff_base: float = 0.5  # first back-off ceiling, seconds
    backoff_max: float = 30.0  # cap on one exponential back-off step
    max_elapsed: float = 300.0  # give up once the next wait would end after this many seconds
    max_attempts: int = 12  # and never more than this many sends of one request
    # Sends of one request that come back 2xx but not in the documented shape (empty, not JSON,
    # no envelope) before that is the answer: enough to ride out one bad reply from a gateway or
    # a deploy, few enough that a broken API fails in seconds with the real reason.
    bad_reply_attempts: int = 3

    def backoff(self, attempt: int) -> float:
        """Full-jitter back-off before retry number `attempt` (1 = first retry)."""
        ceiling = min(self.backoff_max, self.backoff_base * 2 ** (attempt - 1))
        return random.uniform(0, ceiling)


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header: delta-seconds or an HTTP date; None if absent/bad."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


class _Retryable(Exception):
    """One failed attempt that is worth another: carries what the next wait must respect."""

    def __init__(self, reason: str, status: int | None = None, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.retry_after = retry_after


class _BadReply(_Retryable):
    """A 2xx that is not the documented answer: worth `bad_reply_attempts` sends, no more."""


# --- rate budget ----------------------------------------------------------------------------------

class RateBudget:
    """Paces requests from the provider's own rate-limit headers (Ticket Tailor: 2000/hour), and
    optionally within a configured limit of N requests per W seconds.

    Nothing is hard-coded: while `X-Rate-Limit-Remaining` is above the reserve the client runs
    flat out; inside the reserve it spaces requests by `seconds_left_in_window / remaining`, so the
    window's budget lasts until `X-Rate-Limit-Reset`; at zero it waits for the reset. A 429's
    Retry-After is recorded as "zero remaining until then" so that parallel callers wait too.

    The configured limit (`set_limit`, from `<PROVIDER>_RATE_LIMIT`) is kept on our side, for APIs
    that throttle without telling (Cymbal, Cordial). "N per W seconds" is read as a token bucket
    (GCRA): N requests may go at once (less a 2% reserve for our own send lag), then one every W/N
    seconds, which is what a "100 requests / 10 s" limit usually means and the fastest any such
    limit allows. Every thread sharing the core
    books its send slot under one lock, so together they never exceed it. Each slot is spaced 2%
    (at least 2 ms) wider than W/N: that slack absorbs the jitter between our send and the server's
    arrival clock, so a server counting arrivals never finds the bucket empty. A stricter server
    (a sliding window) still answers 429 now and then, and its Retry-After is honoured. Hand-written
    rather than `limits` / `pyrate-limiter`: it must book a future slot and return the wait (the
    core sleeps through its injectable `sleep`, and the header pacing above shares the decision),
    which is one timestamp and a few lines; those libraries answer "allowed now?" and would need
    polling.
    """

    def __init__(self, reserve_fraction: float = 0.1, min_reserve: int = 10,
                 clock: Callable[[], float] = time.monotonic, limit: tuple[int, float] | None = None) -> None:
        self.reserve_fraction = reserve_fraction
        self.min_reserve = min_reserve
        self._clock = clock
        self._lock = threading.Lock()
        self._limit: int | None = None
        self._remaining: int | None = None
        self._reset_at: float | None = None
        self._blocked_until = 0.0
        self._pacing_logged = False
        self._window: tuple[int, float, float] | None = None  # (N, W, spacing of one request)
        self._tat = 0.0  # GCRA "theoretical arrival time": when the bucket would be full again
        if limit is not None:
            self.set_limit(*limit)

    def set_limit(self, count: int, window: float) -> None:
        """At most `count` requests in any `window` seconds (from now on, for every thread)."""
        if count < 1 or window <= 0:
            raise ValueError(f"a rate limit needs at least 1 request per a positive window, got {count}/{window}")
        with self._lock:
            interval = float(window) / int(count)
            self._window = (int(count), float(window), interval + max(0.002, 0.02 * interval))

    @property
    def configured_limit(self) -> tuple[int, float] | None:
        return None if self._window is None else self._window[:2]

    @staticmethod
    def _int(headers: Mapping[str, str], name: str) -> int | None:
        raw = headers.get(name)
        try:
            return int(float(raw)) if raw is not None else None
        except ValueError:
            return None

    def observe(self, headers: Mapping[str, str], status: int, retry_after: float | None = None) -> None:
        remaining = self._int(headers, "x-rate-limit-remaining")
        reset = self._int(headers, "x-rate-limit-reset")
        limit = self._int(headers, "x-rate-limit-limit")
        now = self._clock()
        with self._lock:
            if limit is not None:
                self._limit = limit
            if remaining is not None and reset is not None:
                self._remaining = remaining
                self._reset_at = now + max(0, reset)
            if status == 429:
                # Blocked for Retry-After (else until the window resets), not for the whole window:
                # a 429 from a burst limit says nothing about the hourly budget.
                wait = retry_after if retry_after is not None else reset
                if wait is not None:
                    self._blocked_until = max(self._blocked_until, now + wait)

    def delay(self) -> float:
        """Seconds to wait before the next request; also books that request against the budget."""
        with self._lock:
            now = self._clock()
            wait = self._header_delay(now)
            if self._window is not None:
                wait = self._book(now, wait)
            return wait

    def _book(self, now: float, wait: float) -> float:
        """Books the send at the first instant the bucket allows (and not before `wait`).

        The first burst keeps 2% of N (at least 1) in reserve: our sends leave a little after their
        booked instant (threads, the GIL), and the server's bucket starts from the first ARRIVAL, so a
        full burst would leave no room for that lag; the reserve is it."""
        count, _window, spacing = self._window  # type: ignore[misc]
        reserve = min(count - 1, max(1, count // 50))
        tolerance = (count - 1 - reserve) * spacing
        at = max(now + wait, self._tat - tolerance)
        self._tat = max(self._tat, at) + spacing
        return at - now

    def _header_delay(self, now: float) -> float:
        blocked = max(0.0, self._blocked_until - now)
        if self._remaining is None or self._reset_at is None:
            return blocked
        left = self._reset_at - now
        if left <= 0:  # the window has rolled over: the next reply tells us the new budget
            self._remaining = self._reset_at = None
            self._pacing_logged = False
            return blocked
        reserve = max(self.min_reserve, int((self._limit or 0) * self.reserve_fraction))
        remaining = self._remaining
        self._remaining = max(0, remaining - 1)  # so concurrent callers see the spend at once
        if remaining <= 0:
            return max(blocked, left)
        if remaining > reserve:
            return blocked
        if not self._pacing_logged:
            self._pacing_logged = True
            logger.info("rate budget low (%d left, window resets in %.0fs): spacing requests", remaining, left)
        return max(blocked, left / remaining)

    @property
    def remaining(self) -> int | None:
        return self._remaining


# --- auth -----------------------------------------------------------------------------------------

class Auth:
    """How a request is authenticated. Static keys never refresh; tokens can."""

    def headers(self) -> dict[str, str]:
        return {}

    def secrets(self) -> tuple[str, ...]:
        """The secret values this auth sends or has just sent (a minted token included), for
        redaction: an API may echo any of them back in an error."""
        return ()

    def on_unauthorized(self) -> bool:
        """Called on a 401. True means fresh credentials were obtained and one resend is worthwhile."""
        return False


class HeaderAuth(Auth):
    def __init__(self, name: str, value: str) -> None:
        self._name, self._value = name, value

    def headers(self) -> dict[str, str]:
        return {self._name: self._value}

    def secrets(self) -> tuple[str, ...]:
        return (self._value,)

    def __repr__(self) -> str:
        return f"HeaderAuth({self._name}=***)"


class BasicUsernameAuth(Auth):
    """HTTP Basic with the API key as the username and an empty password (Ticket Tailor, Cordial)."""

    def __init__(self, username: str) -> None:
        self._username = username
        self._header = "Basic " + base64.b64encode(f"{username}:".encode()).decode()

    def headers(self) -> dict[str, str]:
        return {"Authorization": self._header}

    def secrets(self) -> tuple[str, ...]:
        return (self._username,)  # its base64 forms are derived by `errors.secret_forms`

    def __repr__(self) -> str:
        return "BasicUsernameAuth(***)"


class ClientCredentialsAuth(Auth):
    """OAuth2 client-credentials bearer token, cached and refreshed before it expires.

    Thread-safe: one lock guards the cache, so parallel readers share one token and only one of
    them fetches a new one. The token is refreshed `margin` seconds before `expires_in` runs out
    (Cymbio's tokens live 6 minutes, so a long paginated read crosses several), and a 401 drops
    the cached token so the core re-authenticates and resends.
    """

    def __init__(self, provider: str, fetch_token: Callable[[], dict[str, Any]], margin: float = 60.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._provider = provider
        self._fetch = fetch_token
        self._margin = margin
        self._clock = clock
        self._lock = threading.Lock()
        self._token: str | None = None
        self._expires_at = 0.0
        self.fetches = 0  # how many tokens were minted: tests assert caching on it
        # The last few tokens minted, newest first: a 401 may echo the token just dropped. A tuple
        # swapped whole, so `secrets()` never needs the lock, which `token()` holds while the core
        # fetches (and may build an error message that asks for these).
        self._recent: tuple[str, ...] = ()

    def _valid(self) -> bool:
        return self._token is not None and self._clock() < self._expires_at

    def token(self) -> str:
        with self._lock:
            if not self._valid():
                reply = self._fetch()
                token = reply.get("access_token") if isinstance(reply, dict) else None
                if not token:
                    raise ProviderAuthError(f"{self._provider}: the token endpoint replied without an "
                                            "access_token; check the client credentials and scope.",
                                            provider=self._provider)
                lifetime = float(reply.get("expires_in") or 300)
                # Never plan to use a token for less than half its life, whatever the margin says.
                margin = min(self._margin, lifetime / 2)
                self._token, self._expires_at = token, self._clock() + lifetime - margin
                self._recent = (str(token), *self._recent[:3])
                self.fetches += 1
            assert self._token is not None
            return self._token

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token()}"}

    def invalidate(self) -> None:
        with self._lock:
            self._token, self._expires_at = None, 0.0

    def on_unauthorized(self) -> bool:
        self.invalidate()
        return True

    def secrets(self) -> tuple[str, ...]:
        return self._recent

    def __repr__(self) -> str:
        return "ClientCredentialsAuth(***)"


# --- the core -------------------------------------------------------------------------------------

@dataclass
class Reply:
    status: int
    headers: httpx.Headers
    body: Any  # parsed JSON (None for an empty body)


class HttpCore:
    """One pooled httpx client for one provider, with the retry loop and the rate budget."""

    # A 401 right after re-authenticating is re-authenticated once more before giving up: the
    # expiry fault (and real token propagation delays) can strike the same request twice in a row.
    MAX_REAUTH = 2

    def __init__(self, provider: str, base_url: str, *, auth: Auth | None = None,
                 policy: RetryPolicy | None = None, timeout: float = 30.0, connect_timeout: float = 10.0,
                 budget: RateBudget | None = None, secrets: Sequence[str | None] = (),
                 auth_hints: Mapping[int, str] | None = None, sleep: Callable[[float], None] = time.sleep,
                 max_connections: int = 8, transport: httpx.BaseTransport | None = None,
                 max_body_bytes: int | None = None) -> None:
        self.provider = provider
        self.max_body_bytes = max_body_bytes if max_body_bytes is not None else max_page_bytes_from_env()
        self.auth = auth
        self.policy = policy or RetryPolicy()
        self.budget = budget if budget is not None else RateBudget()
        self._secrets = tuple(s for s in secrets if s)
        self._hints = dict(auth_hints or {})
        self._sleep = sleep
        self._client = httpx.Client(
            base_url=base_url.rstrip("/"),
            timeout=httpx.Timeout(timeout, connect=connect_timeout),
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
            headers={"Accept": "application/json", "User-Agent": USER_AGENT},
            transport=transport,
        )
        self.requests_sent = 0  # every send, retries and re-auths included
        self._count_lock = threading.Lock()
        self._urls: dict[str, httpx.URL] = {}  # path -> absolute URL (see _url)

    def __repr__(self) -> str:
        return f"HttpCore({self.provider}, {self._client.base_url})"

    def close(self) -> None:
        self._client.close()

    # - public --------------------------------------------------------------------------------------

    def request(self, method: str, path: str, *, params: Mapping[str, Any] | None = None,
                json: Any = None, data: Mapping[str, str] | None = None, authenticate: bool = True,
                expect: Expect | None = None, what: str | None = None) -> Reply:
        """Send with retries; return the parsed reply or raise a `ProviderError` subclass.

        `expect` checks a 2xx body's envelope (see `Expect`); `what` is the endpoint as errors name
        it (e.g. `GET /v3/retailers/{id}/returns`, without the id), by default the method and path."""
        endpoint = what or f"{method.upper()} {path}"
        started = time.monotonic()
        # The first attempt runs outside tenacity: most requests succeed at once, and a Retrying
        # object with its closures costs more CPU than a small POST's own send. Only a retryable
        # failure enters the retry machinery, which then starts from that failed attempt.
        try:
            return self._attempt(method, path, endpoint, params, json, data, authenticate, 1, expect)
        except _Retryable as first:
            return self._retry(first, started, method, path, endpoint, params, json, data, authenticate, expect)

    def _retry(self, first: _Retryable, started: float, method: str, path: str, endpoint: str,
               params: Mapping[str, Any] | None, json: Any, data: Mapping[str, str] | None, authenticate: bool,
               expect: Expect | None) -> Reply:
        """Attempts 2, 3, ... of a request whose first attempt failed with `first` (tenacity)."""
        state: dict[str, Any] = {"attempt": 0, "last": "no reply"}

        def note(exc: _Retryable) -> None:
            state["last"] = exc.reason if isinstance(exc, _BadReply) or not exc.status else f"status {exc.status}"

        def attempt() -> Reply:
            state["attempt"] += 1
            if state["attempt"] == 1:  # tenacity's first call replays the attempt already made
                note(first)
                raise first
            try:
                return self._attempt(method, path, endpoint, params, json, data, authenticate, state["attempt"],
                                     expect)
            except _Retryable as exc:
                note(exc)
                raise

        def elapsed() -> float:  # from the first send, not from when tenacity took over
            return time.monotonic() - started

        def stop(retry_state: tenacity.RetryCallState) -> bool:
            exc = retry_state.outcome.exception() if retry_state.outcome else None
            if isinstance(exc, _BadReply) and retry_state.attempt_number >= self.policy.bad_reply_attempts:
                return True
            # Like tenacity.stop_before_delay: give up when the *coming* wait would cross the bound,
            # rather than sleeping through a long Retry-After only to stop afterwards.
            return (elapsed() + retry_state.upcoming_sleep >= self.policy.max_elapsed
                    or retry_state.attempt_number >= self.policy.max_attempts)

        def wait(retry_state: tenacity.RetryCallState) -> float:
            exc = retry_state.outcome.exception() if retry_state.outcome else None
            backoff = self.policy.backoff(retry_state.attempt_number)
            retry_after = exc.retry_after if isinstance(exc, _Retryable) else None
            # Never sooner than the server asked; the jittered back-off only ever lengthens it.
            return max(retry_after or 0.0, backoff)

        def give_up(retry_state: tenacity.RetryCallState) -> Reply:
            exc = retry_state.outcome.exception() if retry_state.outcome else None
            if isinstance(exc, _BadReply):
                reason = self._redact(exc.reason)
                logger.error("%s %s gave up after %d attempts: %s", self.provider, endpoint,
                             retry_state.attempt_number, reason)
                raise ProviderResponseError(self._redact(
                    f"{self.provider}: {endpoint} answered {exc.status} with {reason}, "
                    f"{retry_state.attempt_number} times in a row. That is not a documented answer, so it is an "
                    f"error and not \"no records\": nothing from this request was landed and the partitions "
                    f"already landed are kept as they were. Check that {self._base_url_var} points at the API "
                    f"and the provider's status; re-run once it answers normally."),
                    provider=self.provider, endpoint=endpoint, status=exc.status)
            last = self._redact(state["last"])
            message = self._redact(
                f"{self.provider}: {endpoint} still failing after {retry_state.attempt_number} attempts "
                f"over {elapsed():.1f}s (last: {last}). The API is unavailable or throttling; "
                f"re-run later. Nothing was lost: the run can be retried as is."
            )
            logger.error("%s %s gave up after %d attempts (last: %s)", self.provider, endpoint,
                         retry_state.attempt_number, last)
            last_status = exc.status if isinstance(exc, _Retryable) else None
            raise ProviderUnavailableError(message, provider=self.provider, endpoint=endpoint, status=last_status)

        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception_type(_Retryable),
            wait=wait,
            stop=stop,
            sleep=self._sleep,
            retry_error_callback=give_up,
            before_sleep=lambda rs: logger.warning(
                "%s %s attempt %d failed (%s); retrying in %.2fs", self.provider, endpoint, rs.attempt_number,
                self._redact(state["last"]), rs.next_action.sleep if rs.next_action else 0.0),
            reraise=True,
        )
        return retrying(attempt)

    def get(self, path: str, params: Mapping[str, Any] | None = None, *, expect: Expect | None = None,
            what: str | None = None) -> Any:
        return self.request("GET", path, params=params, expect=expect, what=what).body

    def error_from_body(self, endpoint: str, code: Any, body: Any) -> ProviderError:
        """The typed error for an API's own error body that arrived with a 2xx status (Sympla's
        `{"error": true, "code": 401, "message": ...}`): code 401/403 is a `ProviderAuthError` with
        the same hint as a real 401/403 (never retried), any other code a `ProviderRequestError`.
        The message is redacted like every other: the API may echo the token in it."""
        status = code if isinstance(code, int) and not isinstance(code, bool) else None
        if status in (401, 403):
            return ProviderAuthError(self._auth_message(endpoint, status, body), provider=self.provider,
                                     endpoint=endpoint, status=status, code=self._code(status, body))
        detail = self._api_detail(body)
        shown = self._redact(str(code))[:20] if code is not None else "none"
        return ProviderRequestError(
            f"{self.provider}: {endpoint} answered with an error body (code {shown}){f': {detail}' if detail else ''}. "
            f"Not retried: the API said the request failed, so nothing from it was landed; check the ids and "
            f"parameters passed, and the base URL.",
            provider=self.provider, endpoint=endpoint, status=status, code=self._code(status, body))

    @property
    def _base_url_var(self) -> str:
        return f"{self.provider.upper()}_BASE_URL"

    # - one attempt -----------------------------------------------------------------------------------

    def _url(self, path: str) -> httpx.URL:
        """The absolute URL of `path` below the base URL, merged by httpx once per path and then
        reused: merging re-parses both URLs on every request otherwise."""
        url = self._urls.get(path)
        if url is None:
            if len(self._urls) >= 512:  # ids in paths (returns to acknowledge): keep it bounded
                self._urls.clear()
            url = self._urls[path] = self._client.build_request("GET", path).url
        return url

    def _send(self, method: str, path: str, params: Mapping[str, Any] | None, json: Any,
              data: Mapping[str, str] | None, authenticate: bool) -> httpx.Response:
        """Send and return once the headers are in: the body is still on the wire (streamed)."""
        headers = self.auth.headers() if (authenticate and self.auth) else {}
        delay = self.budget.delay()
        if delay > 0:
            self._sleep(delay)
        with self._count_lock:
            self.requests_sent += 1
        content = None
        if json is not None:
            content = orjson.dumps(json)
            headers["Content-Type"] = "application/json"  # auth.headers() returns a fresh dict
        request = self._client.build_request(method, self._url(path), params=params, content=content, data=data,
                                             headers=headers)
        return self._client.send(request, stream=True)

    def _read(self, response: httpx.Response, endpoint: str, cap: int | None, declared: str | None) -> bytearray:
        """The body, read chunk by chunk. Past `cap` bytes a 2xx page fails without reading on (the
        connection is dropped); an error reply is simply cut, as only its first lines matter."""
        if cap is not None and declared and declared.isdigit() and int(declared) > cap and response.is_success:
            raise self._too_large(endpoint, response.status_code, f"announced {int(declared):,} bytes")
        body = bytearray()
        for chunk in response.iter_bytes():
            body += chunk
            if cap is not None and len(body) > cap:
                if response.is_success:
                    raise self._too_large(endpoint, response.status_code, f"passed {cap:,} bytes and was still going")
                del body[cap:]
                break
        return body

    def _too_large(self, endpoint: str, status: int, how: str) -> ProviderResponseTooLargeError:
        cap = self.max_body_bytes
        logger.error("%s %s -> %d page over the %d-byte cap (%s)", self.provider, endpoint, status, cap, how)
        return ProviderResponseTooLargeError(
            f"{self.provider}: {endpoint} answered a page that {how}, over the {cap:,}-byte cap per page. "
            f"The API is probably ignoring the page size (`limit`) it was asked for; reading on could exhaust "
            f"memory, so the read stopped and nothing from it was landed. If pages this large are expected, raise "
            f"{MAX_PAGE_BYTES_ENV}; otherwise report it to the provider.",
            provider=self.provider, endpoint=endpoint, status=status)

    def _attempt(self, method: str, path: str, endpoint: str, params: Mapping[str, Any] | None, json: Any,
                 data: Mapping[str, str] | None, authenticate: bool, attempt: int,
                 expect: Expect | None = None) -> Reply:
        reauths = 0
        while True:
            started = time.monotonic()
            try:
                response = self._send(method, path, params, json, data, authenticate)
                try:
                    status = response.status_code
                    # One pass over the reply's headers instead of a case-insensitive scan per lookup.
                    headers = dict(response.headers.items())
                    raw = self._read(response, endpoint, self.max_body_bytes if response.is_success
                                     else _ERROR_BODY_BYTES, headers.get("content-length"))
                finally:
                    response.close()
            except httpx.TimeoutException as exc:
                logger.warning("%s %s %s -> timeout attempt=%d", self.provider, method, path, attempt)
                raise _Retryable(f"timeout ({type(exc).__name__})") from None
            except httpx.TransportError as exc:
                # Resets, refused connections, and bodies shorter than their Content-Length
                # (httpx raises RemoteProtocolError while reading them) all land here.
                logger.warning("%s %s %s -> %s attempt=%d", self.provider, method, path, type(exc).__name__, attempt)
                raise _Retryable(f"connection error ({type(exc).__name__})") from None
            retry_after = parse_retry_after(headers.get("retry-after"))
            self.budget.observe(headers, status, retry_after)
            if request_logger.isEnabledFor(logging.DEBUG):
                request_logger.debug("%s %s %s -> %d attempt=%d %.0fms", self.provider, method, path, status, attempt,
                                     (time.monotonic() - started) * 1000)

            if status < 300 and status >= 200:
                body = self._parse(raw, status, endpoint)
                if expect is not None:
                    problem = expect(body)
                    if problem:
                        problem = self._redact(problem)
                        logger.warning("%s %s %s -> %d but %s attempt=%d", self.provider, method, path, status,
                                       problem, attempt)
                        raise _BadReply(problem, status=status)
                return Reply(status, response.headers, body)
            if status == 401 and authenticate and self.auth and reauths < self.MAX_REAUTH \
                    and self.auth.on_unauthorized():
                reauths += 1
                logger.info("%s %s %s -> 401: re-authenticating", self.provider, method, path)
                continue
            error_body = self._error_body(raw)
            if status in (401, 403):
                raise ProviderAuthError(self._auth_message(endpoint, status, error_body), provider=self.provider,
                                        endpoint=endpoint, status=status, code=self._code(status, error_body))
            if status == 429 or status == 408 or (status >= 500 and status != 501):
                raise _Retryable(f"status {status}", status=status, retry_after=retry_after)
            if status >= 400:
                raise ProviderRequestError(self._request_message(endpoint, status, error_body), provider=self.provider,
                                           endpoint=endpoint, status=status, code=self._code(status, error_body))
            if 300 <= status < 400:
                raise ProviderRedirectError(self._redirect_message(endpoint, status, response),
                                            provider=self.provider, endpoint=endpoint, status=status)
            # A 1xx as the final reply: httpx handles 100-continue, so this is not HTTP.
            raise _BadReply(f"an informational status {status} as the final reply", status=status)

    def _parse(self, raw: bytearray, status: int, endpoint: str) -> Any:
        if not raw:
            return None
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError as strict_error:
            strict = str(strict_error)
        # orjson refuses the whole page for one bad spot. Decode it again tolerantly: the page lands,
        # and the records that still cannot be represented are quarantined by the lander.
        try:
            body = tolerant_loads(bytes(raw))
        except stdlib_json.JSONDecodeError as exc:
            if cut_short(bytes(raw), exc):
                # The document stops mid-way: a body that broke on the way, worth another try.
                raise _Retryable("body cut short (incomplete JSON)", status=status) from None
            # Messages carry the decoder's position, never the body (it may hold personal data).
            raise _BadReply(f"a body that is not JSON ({exc.msg} at byte {exc.pos} of {len(raw)})",
                            status=status) from None
        except ValueError as exc:  # e.g. a number literal Python itself refuses
            raise _BadReply(f"a body that is not valid JSON ({type(exc).__name__})", status=status) from None
        logger.warning("%s %s: the page is not strict JSON (%s); decoded it tolerantly, the records that "
                       "cannot be represented will be quarantined", self.provider, endpoint, strict)
        return body

    # - messages --------------------------------------------------------------------------------------

    def _live_secrets(self) -> tuple[str, ...]:
        """The configured secrets and the auth's live ones (Cymbio's current bearer token)."""
        return self._secrets + (self.auth.secrets() if self.auth else ())

    def _redact(self, text: str) -> str:
        """Every secret, in every form an API may echo it (errors.secret_forms), replaced by ***."""
        return redact(text, self._live_secrets())

    def _code(self, status: int | None, body: Any) -> str | None:
        return error_code(status, body, self._live_secrets())

    @staticmethod
    def _error_body(raw: bytes | bytearray) -> Any:
        try:
            return orjson.loads(raw) if raw else None
        except orjson.JSONDecodeError:
            return None

    def _api_detail(self, body: Any) -> str:
        """The API's own error text (message / error_code / errors) of a parsed error body,
        redacted and kept short."""
        if not isinstance(body, dict):
            return ""
        # Each provider spells it differently: TT error_code/message/errors, Sympla error:true/message,
        # Cymbio error/message, Cymbal message/errors, Cordial error/messages.
        parts = [str(body[k]) for k in ("error_code", "error", "message", "detail")
                 if isinstance(body.get(k), str) or (isinstance(body.get(k), int) and not isinstance(body[k], bool))]
        for key in ("errors", "messages"):
            if isinstance(body.get(key), list) and body[key]:
                with contextlib.suppress(TypeError):  # text orjson cannot write (a lone surrogate)
                    parts.append(orjson.dumps(body[key][:3]).decode())
        text = "; ".join(dict.fromkeys(p for p in parts if p))
        # Redacted before it is cut: a cut could split a secret and leave a fragment unrecognised.
        return self._redact(text)[:300]

    def _auth_message(self, endpoint: str, status: int, body: Any) -> str:
        hint = self._hints.get(status) or self._hints.get(0) or "check the credentials configured for it"
        detail = self._api_detail(body)
        return self._redact(
            f"{self.provider}: {endpoint} was refused with {status} "
            f"({'unauthorized' if status == 401 else 'forbidden'}){f': {detail}' if detail else ''}. "
            f"{hint}. Not retried: a rejected credential does not fix itself.")

    def _request_message(self, endpoint: str, status: int, body: Any) -> str:
        detail = self._api_detail(body)
        what = {400: "bad request", 404: "not found", 422: "validation error", 501: "not implemented"}.get(status, "")
        return self._redact(
            f"{self.provider}: {endpoint} failed with {status}{f' {what}' if what else ''}"
            f"{f': {detail}' if detail else ''}. Not retried: the request itself must change "
            f"(check the ids and parameters passed, and the base URL).")

    def _redirect_message(self, endpoint: str, status: int, response: httpx.Response) -> str:
        location = response.headers.get("location", "")
        # Scheme, host and path only: a query string may carry tokens.
        where = self._redact(location.split("?", 1)[0].split("#", 1)[0])[:200] or "no Location given"
        return self._redact(
            f"{self.provider}: {endpoint} was redirected ({status}) to {where}. marquee does not follow "
            f"redirects: a moved API is a configuration change, and following one blindly could read another "
            f"host or drop the credentials on the way. Nothing from this request was landed. Set "
            f"{self._base_url_var} to the API's current address (see the provider's docs) and re-run.")


# --- the resource base class ----------------------------------------------------------------------

def secret_value(value: Any) -> str | None:
    """A secret field's value, whether it holds a plain string or a still-unresolved `dg.EnvVar`.

    Inside a Dagster run, EnvVar fields arrive resolved. Called directly (tests, the CLI), a
    resource built by `registry.build_resources()` still holds the EnvVar; resolve it here so the
    resource behaves the same both ways. An unset variable resolves to None: "not configured".
    """
    if isinstance(value, dg.EnvVar):
        value = value.get_value()
    return value or None


class ProviderResource(dg.ConfigurableResource):
    """Shared fields and lifecycle of the five provider clients.

    The httpx client lives in a PrivateAttr, created on first use (frozen pydantic models cannot
    hold it as a field), and is closed in `teardown_after_execution`, so the same object works
    inside Dagster and when called directly in tests.
    """

    timeout_seconds: float = Field(default=30.0, description="Read timeout of one HTTP request.")
    max_retry_seconds: float = Field(default=300.0, description="Give up retrying a request after this long.")
    backoff_base_seconds: float = Field(default=0.5, description="First exponential back-off step.")
    backoff_max_seconds: float = Field(default=30.0, description="Longest single back-off step.")
    max_page_bytes: int | None = Field(
        default=None, description=f"Largest reply body (one page) read, in bytes; past it the request fails. "
                                  f"Unset: {MAX_PAGE_BYTES_ENV}, else 64 MiB.")
    rate_limit: str | None = Field(
        default=None, description="Client-side cap on requests, N per window: `100/10s` (also `100/10`, `50/1m`, "
                                  "`2000/1h`), shared by every thread using this resource; from "
                                  "`<PROVIDER>_RATE_LIMIT`. Unset: only the API's own rate-limit headers pace it.")

    _core: HttpCore | None = PrivateAttr(default=None)
    _core_lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    # - subclasses provide ---------------------------------------------------------------------------
    provider_name: ClassVar[str] = ""
    env_hint: ClassVar[str] = ""  # which variables to set, for the "not configured" message

    def configured(self) -> bool:
        raise NotImplementedError

    def _make_core(self, policy: RetryPolicy) -> HttpCore:
        raise NotImplementedError

    # - shared -----------------------------------------------------------------------------------------

    @classmethod
    def rate_limit_var(cls) -> str:
        """The environment variable `rate_limit` is read from: `CORDIAL_RATE_LIMIT`, ..."""
        return RATE_LIMIT_ENV.format(PROVIDER=cls.provider_name.upper())

    def _policy(self) -> RetryPolicy:
        return RetryPolicy(backoff_base=self.backoff_base_seconds, backoff_max=self.backoff_max_seconds,
                           max_elapsed=self.max_retry_seconds)

    def _http(self) -> HttpCore:
        if not self.configured():
            raise ProviderNotConfiguredError(
                f"{self.provider_name} is not configured: set {self.env_hint} (see README, Configuration).",
                provider=self.provider_name)
        with self._core_lock:
            if self._core is None:
                core = self._make_core(self._policy())
                if self.max_page_bytes is not None:
                    if self.max_page_bytes <= 0:
                        raise ValueError(f"{self.provider_name}: max_page_bytes must be positive")
                    core.max_body_bytes = self.max_page_bytes
                if self.rate_limit:
                    core.budget.set_limit(*parse_rate_limit(self.rate_limit, self.rate_limit_var()))
                self._core = core
            return self._core

    def close(self) -> None:
        with self._core_lock:
            if self._core is not None:
                self._core.close()
                self._core = None

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        self.close()

    @contextmanager
    def session(self) -> Iterator[ProviderResource]:
        """`with resource.session() as r:` closes the pooled client afterwards (direct use)."""
        try:
            yield self
        finally:
            self.close()


def require_utc(value: datetime, name: str) -> datetime:
    """Windows are instants: a naive datetime is ambiguous, so refuse it rather than guess."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware (UTC), got naive {value.isoformat()}")
    return value.astimezone(UTC)


__all__ = [
    "DEFAULT_MAX_PAGE_BYTES", "MAX_PAGE_BYTES_ENV", "RATE_LIMIT_ENV", "Auth", "BasicUsernameAuth",
    "ClientCredentialsAuth", "Expect", "HeaderAuth", "HttpCore", "ProviderError", "ProviderResource", "RateBudget",
    "Reply", "RetryPolicy", "is_safe_path_segment", "max_page_bytes_from_env", "parse_rate_limit",
    "parse_retry_after", "path_segment", "require_utc", "secret_value",
]
