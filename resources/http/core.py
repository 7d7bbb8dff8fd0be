"""HttpCore: one pooled httpx client per provider with the retry loop, the rate budget, the size cap,
the reply rules and redaction (see the package docstring)."""

from __future__ import annotations

import contextlib
import json as stdlib_json
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import dagster as dg
import httpx
import orjson
import tenacity

from resources.errors import (
    ProviderAuthError,
    ProviderError,
    ProviderRedirectError,
    ProviderRequestError,
    ProviderResponseError,
    ProviderResponseTooLargeError,
    ProviderUnavailableError,
    error_code,
    redact,
)
from resources.http.auth import Auth
from resources.http.budget import RateBudget
from resources.http.retry import BadReply, Retryable, RetryPolicy, parse_retry_after
from resources.jsonbody import cut_short, tolerant_loads

logger = dg.get_dagster_logger("marquee.http")

# Requests this process has sent, over every client: the figure `marquee run`'s live progress line
# shows (pipelines/progress.py). Per-core counts stay in `HttpCore.requests_sent`.
_process_requests = [0]
_process_requests_lock = threading.Lock()


def requests_sent_by_this_process() -> int:
    return _process_requests[0]
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
        except Retryable as first:
            return self._retry(first, started, method, path, endpoint, params, json, data, authenticate, expect)

    def _retry(self, first: Retryable, started: float, method: str, path: str, endpoint: str,
               params: Mapping[str, Any] | None, json: Any, data: Mapping[str, str] | None, authenticate: bool,
               expect: Expect | None) -> Reply:
        """Attempts 2, 3, ... of a request whose first attempt failed with `first` (tenacity)."""
        state: dict[str, Any] = {"attempt": 0, "last": "no reply"}

        def note(exc: Retryable) -> None:
            state["last"] = exc.reason if isinstance(exc, BadReply) or not exc.status else f"status {exc.status}"

        def attempt() -> Reply:
            state["attempt"] += 1
            if state["attempt"] == 1:  # tenacity's first call replays the attempt already made
                note(first)
                raise first
            try:
                return self._attempt(method, path, endpoint, params, json, data, authenticate, state["attempt"],
                                     expect)
            except Retryable as exc:
                note(exc)
                raise

        def elapsed() -> float:  # from the first send, not from when tenacity took over
            return time.monotonic() - started

        def stop(retry_state: tenacity.RetryCallState) -> bool:
            exc = retry_state.outcome.exception() if retry_state.outcome else None
            if isinstance(exc, BadReply) and retry_state.attempt_number >= self.policy.bad_reply_attempts:
                return True
            # Like tenacity.stop_before_delay: give up when the *coming* wait would cross the bound,
            # rather than sleeping through a long Retry-After only to stop afterwards.
            return (elapsed() + retry_state.upcoming_sleep >= self.policy.max_elapsed
                    or retry_state.attempt_number >= self.policy.max_attempts)

        def wait(retry_state: tenacity.RetryCallState) -> float:
            exc = retry_state.outcome.exception() if retry_state.outcome else None
            backoff = self.policy.backoff(retry_state.attempt_number)
            retry_after = exc.retry_after if isinstance(exc, Retryable) else None
            # Never sooner than the server asked; the jittered back-off only ever lengthens it.
            return max(retry_after or 0.0, backoff)

        def give_up(retry_state: tenacity.RetryCallState) -> Reply:
            exc = retry_state.outcome.exception() if retry_state.outcome else None
            if isinstance(exc, BadReply):
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
            last_status = exc.status if isinstance(exc, Retryable) else None
            raise ProviderUnavailableError(message, provider=self.provider, endpoint=endpoint, status=last_status)

        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception_type(Retryable),
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
        with _process_requests_lock:
            _process_requests[0] += 1
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
                raise Retryable(f"timeout ({type(exc).__name__})") from None
            except httpx.TransportError as exc:
                # Resets, refused connections, and bodies shorter than their Content-Length
                # (httpx raises RemoteProtocolError while reading them) all land here.
                logger.warning("%s %s %s -> %s attempt=%d", self.provider, method, path, type(exc).__name__, attempt)
                raise Retryable(f"connection error ({type(exc).__name__})") from None
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
                        raise BadReply(problem, status=status)
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
                raise Retryable(f"status {status}", status=status, retry_after=retry_after)
            if status >= 400:
                raise ProviderRequestError(self._request_message(endpoint, status, error_body), provider=self.provider,
                                           endpoint=endpoint, status=status, code=self._code(status, error_body))
            if 300 <= status < 400:
                raise ProviderRedirectError(self._redirect_message(endpoint, status, response),
                                            provider=self.provider, endpoint=endpoint, status=status)
            # A 1xx as the final reply: httpx handles 100-continue, so this is not HTTP.
            raise BadReply(f"an informational status {status} as the final reply", status=status)

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
                raise Retryable("body cut short (incomplete JSON)", status=status) from None
            # Messages carry the decoder's position, never the body (it may hold personal data).
            raise BadReply(f"a body that is not JSON ({exc.msg} at byte {exc.pos} of {len(raw)})",
                            status=status) from None
        except ValueError as exc:  # e.g. a number literal Python itself refuses
            raise BadReply(f"a body that is not valid JSON ({type(exc).__name__})", status=status) from None
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


