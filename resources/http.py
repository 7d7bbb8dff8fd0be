"""The shared HTTP core every provider client sits on: retries, rate budget, auth, logging.

Provider modules only describe endpoints, parameters and record shapes; everything about *how*
a request is sent lives here, so the five clients fail, retry, pace and log the same way.

- Retries (tenacity): 429, 5xx (except 501), connection errors, timeouts, and 2xx bodies that are
  cut short or are not JSON. Capped exponential back-off with full jitter, never shorter than the
  server's Retry-After. Gives up once the next wait would cross `max_elapsed` seconds, with a
  `ProviderUnavailableError` naming provider, endpoint and last status.
- Never retried: 400/401/403/404/422 (and any other 4xx but 408/429). 401/403 raise
  `ProviderAuthError` with the provider's own "what to do" hint.
- Rate budget: `X-Rate-Limit-Remaining` / `-Reset` (Ticket Tailor) are read on every reply; once
  the remaining budget drops into a reserve, requests are spaced so the rest of the window's
  budget lasts until it resets, i.e. a long sync slows down before it is throttled.
- Secrets: the core is given the secret values so it can redact them from any text it puts into
  an error; log lines carry provider, method, path, status, attempt and timing, nothing else.
"""

from __future__ import annotations

import base64
import email.utils
import random
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar

import dagster as dg
import httpx
import orjson
import tenacity
from pydantic import Field, PrivateAttr

from resources.errors import (
    ProviderAuthError,
    ProviderError,
    ProviderNotConfiguredError,
    ProviderRequestError,
    ProviderUnavailableError,
    redact,
)

logger = dg.get_dagster_logger("marquee.http")

USER_AGENT = "marquee/0.1"


# --- retry policy ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try. Defaults suit production; tests pass a small `backoff_base`."""

    backoff_base: float = 0.5  # first back-off ceiling, seconds
    backoff_max: float = 30.0  # cap on one exponential back-off step
    max_elapsed: float = 300.0  # give up once the next wait would end after this many seconds
    max_attempts: int = 12  # and never more than this many sends of one request

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


# --- rate budget ----------------------------------------------------------------------------------

class RateBudget:
    """Paces requests from the provider's own rate-limit headers (Ticket Tailor: 2000/hour).

    Nothing is hard-coded: while `X-Rate-Limit-Remaining` is above the reserve the client runs
    flat out; inside the reserve it spaces requests by `seconds_left_in_window / remaining`, so the
    window's budget lasts until `X-Rate-Limit-Reset`; at zero it waits for the reset. A 429's
    Retry-After is recorded as "zero remaining until then" so that parallel callers wait too.
    """

    def __init__(self, reserve_fraction: float = 0.1, min_reserve: int = 10,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.reserve_fraction = reserve_fraction
        self.min_reserve = min_reserve
        self._clock = clock
        self._lock = threading.Lock()
        self._limit: int | None = None
        self._remaining: int | None = None
        self._reset_at: float | None = None
        self._blocked_until = 0.0
        self._pacing_logged = False

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

    def on_unauthorized(self) -> bool:
        """Called on a 401. True means fresh credentials were obtained and one resend is worthwhile."""
        return False


class HeaderAuth(Auth):
    def __init__(self, name: str, value: str) -> None:
        self._name, self._value = name, value

    def headers(self) -> dict[str, str]:
        return {self._name: self._value}

    def __repr__(self) -> str:
        return f"HeaderAuth({self._name}=***)"


class BasicUsernameAuth(Auth):
    """HTTP Basic with the API key as the username and an empty password (Ticket Tailor, Cordial)."""

    def __init__(self, username: str) -> None:
        self._header = "Basic " + base64.b64encode(f"{username}:".encode()).decode()

    def headers(self) -> dict[str, str]:
        return {"Authorization": self._header}

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
                 max_connections: int = 8, transport: httpx.BaseTransport | None = None) -> None:
        self.provider = provider
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

    def __repr__(self) -> str:
        return f"HttpCore({self.provider}, {self._client.base_url})"

    def close(self) -> None:
        self._client.close()

    # - public --------------------------------------------------------------------------------------

    def request(self, method: str, path: str, *, params: Mapping[str, Any] | None = None,
                json: Any = None, data: Mapping[str, str] | None = None, authenticate: bool = True) -> Reply:
        """Send with retries; return the parsed reply or raise a `ProviderError` subclass."""
        endpoint = f"{method.upper()} {path}"
        state = {"attempt": 0, "last": "no reply"}

        def attempt() -> Reply:
            state["attempt"] += 1
            try:
                return self._attempt(method, path, endpoint, params, json, data, authenticate, state["attempt"])
            except _Retryable as exc:
                state["last"] = f"status {exc.status}" if exc.status else exc.reason
                raise

        def wait(retry_state: tenacity.RetryCallState) -> float:
            exc = retry_state.outcome.exception() if retry_state.outcome else None
            backoff = self.policy.backoff(retry_state.attempt_number)
            retry_after = exc.retry_after if isinstance(exc, _Retryable) else None
            # Never sooner than the server asked; the jittered back-off only ever lengthens it.
            return max(retry_after or 0.0, backoff)

        def give_up(retry_state: tenacity.RetryCallState) -> Reply:
            elapsed = retry_state.seconds_since_start or 0.0
            message = (
                f"{self.provider}: {endpoint} still failing after {retry_state.attempt_number} attempts "
                f"over {elapsed:.1f}s (last: {state['last']}). The API is unavailable or throttling; "
                f"re-run later. Nothing was lost: the run can be retried as is."
            )
            logger.error("%s %s gave up after %d attempts (last: %s)", self.provider, endpoint,
                         retry_state.attempt_number, state["last"])
            exc = retry_state.outcome.exception() if retry_state.outcome else None
            last_status = exc.status if isinstance(exc, _Retryable) else None
            raise ProviderUnavailableError(message, provider=self.provider, endpoint=endpoint, status=last_status)

        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception_type(_Retryable),
            wait=wait,
            # stop_before_delay: give up when the *coming* wait would cross the bound, rather than
            # sleeping through a long Retry-After only to stop afterwards.
            stop=tenacity.stop_before_delay(self.policy.max_elapsed)
            | tenacity.stop_after_attempt(self.policy.max_attempts),
            sleep=self._sleep,
            retry_error_callback=give_up,
            before_sleep=lambda rs: logger.warning(
                "%s %s attempt %d failed (%s); retrying in %.2fs", self.provider, endpoint, rs.attempt_number,
                state["last"], rs.next_action.sleep if rs.next_action else 0.0),
            reraise=True,
        )
        return retrying(attempt)

    def get(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        return self.request("GET", path, params=params).body

    # - one attempt -----------------------------------------------------------------------------------

    def _send(self, method: str, path: str, params: Mapping[str, Any] | None, json: Any,
              data: Mapping[str, str] | None, authenticate: bool) -> httpx.Response:
        headers = self.auth.headers() if (authenticate and self.auth) else {}
        delay = self.budget.delay()
        if delay > 0:
            self._sleep(delay)
        with self._count_lock:
            self.requests_sent += 1
        content = orjson.dumps(json) if json is not None else None
        if content is not None:
            headers = {**headers, "Content-Type": "application/json"}
        return self._client.request(method, path, params=params, content=content, data=data, headers=headers)

    def _attempt(self, method: str, path: str, endpoint: str, params: Mapping[str, Any] | None, json: Any,
                 data: Mapping[str, str] | None, authenticate: bool, attempt: int) -> Reply:
        reauths = 0
        while True:
            started = time.monotonic()
            try:
                response = self._send(method, path, params, json, data, authenticate)
            except httpx.TimeoutException as exc:
                logger.warning("%s %s %s -> timeout attempt=%d", self.provider, method, path, attempt)
                raise _Retryable(f"timeout ({type(exc).__name__})") from None
            except httpx.TransportError as exc:
                # Resets, refused connections, and bodies shorter than their Content-Length
                # (httpx raises RemoteProtocolError while reading them) all land here.
                logger.warning("%s %s %s -> %s attempt=%d", self.provider, method, path, type(exc).__name__, attempt)
                raise _Retryable(f"connection error ({type(exc).__name__})") from None
            ms = (time.monotonic() - started) * 1000
            status = response.status_code
            retry_after = parse_retry_after(response.headers.get("retry-after"))
            self.budget.observe(response.headers, status, retry_after)
            logger.debug("%s %s %s -> %d attempt=%d %.0fms", self.provider, method, path, status, attempt, ms)

            if status == 401 and authenticate and self.auth and reauths < self.MAX_REAUTH \
                    and self.auth.on_unauthorized():
                reauths += 1
                logger.info("%s %s %s -> 401: re-authenticating", self.provider, method, path)
                continue
            if status in (401, 403):
                raise ProviderAuthError(self._auth_message(endpoint, status, response),
                                        provider=self.provider, endpoint=endpoint, status=status)
            if status == 429 or status == 408 or (status >= 500 and status != 501):
                raise _Retryable(f"status {status}", status=status, retry_after=retry_after)
            if status >= 400:
                raise ProviderRequestError(self._request_message(endpoint, status, response),
                                           provider=self.provider, endpoint=endpoint, status=status)
            return Reply(status, response.headers, self._parse(response, status))

    @staticmethod
    def _parse(response: httpx.Response, status: int) -> Any:
        if not response.content:
            return None
        try:
            return orjson.loads(response.content)
        except orjson.JSONDecodeError:
            # A 2xx whose body is not JSON is a body that broke on the way: worth another try.
            raise _Retryable("invalid JSON body", status=status) from None

    # - messages --------------------------------------------------------------------------------------

    def _api_detail(self, response: httpx.Response) -> str:
        """The API's own error text (message / error_code / errors), redacted and kept short."""
        try:
            body = orjson.loads(response.content) if response.content else None
        except orjson.JSONDecodeError:
            return ""
        if not isinstance(body, dict):
            return ""
        # Each provider spells it differently: TT error_code/message/errors, Sympla error:true/message,
        # Cymbio error/message, Cymbal message/errors, Cordial error/messages.
        parts = [str(body[k]) for k in ("error_code", "error", "message", "detail")
                 if isinstance(body.get(k), str) or (isinstance(body.get(k), int) and not isinstance(body[k], bool))]
        for key in ("errors", "messages"):
            if isinstance(body.get(key), list) and body[key]:
                parts.append(orjson.dumps(body[key][:3]).decode())
        text = "; ".join(dict.fromkeys(p for p in parts if p))
        return redact(text, self._secrets)[:300]

    def _auth_message(self, endpoint: str, status: int, response: httpx.Response) -> str:
        hint = self._hints.get(status) or self._hints.get(0) or "check the credentials configured for it"
        detail = self._api_detail(response)
        return (f"{self.provider}: {endpoint} was refused with {status} "
                f"({'unauthorized' if status == 401 else 'forbidden'}){f': {detail}' if detail else ''}. "
                f"{hint}. Not retried: a rejected credential does not fix itself.")

    def _request_message(self, endpoint: str, status: int, response: httpx.Response) -> str:
        detail = self._api_detail(response)
        what = {400: "bad request", 404: "not found", 422: "validation error", 501: "not implemented"}.get(status, "")
        return (f"{self.provider}: {endpoint} failed with {status}{f' {what}' if what else ''}"
                f"{f': {detail}' if detail else ''}. Not retried: the request itself must change "
                f"(check the ids and parameters passed, and the base URL).")


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
                self._core = self._make_core(self._policy())
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
    "Auth", "BasicUsernameAuth", "ClientCredentialsAuth", "HeaderAuth", "HttpCore", "ProviderError",
    "ProviderResource", "RateBudget", "Reply", "RetryPolicy", "parse_retry_after", "require_utc", "secret_value",
]
