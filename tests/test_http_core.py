"""Unit tests of the shared HTTP core: retry decisions, back-off, Retry-After, rate budget, auth
caching, paginators, secrets in reprs and errors, and the registry's handling of unset secrets.

HTTP faults are produced by a tiny scripted server on 127.0.0.1 (real sockets, so resets and
truncated bodies are the real thing); sleeps are recorded instead of slept, so the suite is fast.
"""

from __future__ import annotations

import base64
import logging
import socket
import struct
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import quote, quote_plus

import dagster as dg
import orjson
import pytest

from resources.errors import (
    ProviderAuthError,
    ProviderNotConfiguredError,
    ProviderRequestError,
    ProviderUnavailableError,
    error_code,
    redact,
    secret_forms,
)
from resources.http import (
    BasicUsernameAuth,
    ClientCredentialsAuth,
    HeaderAuth,
    HttpCore,
    RateBudget,
    RetryPolicy,
    is_safe_path_segment,
    parse_rate_limit,
    parse_retry_after,
    path_segment,
    request_logger,
)
from resources.pagination import cursor_pages, offset_pages, page_number_pages, short_page_pages


@dataclass
class Src:
    """A page source for the paginators without a server: `get(query)` is a function of the query."""

    fetch: Any
    what: str = "x"
    provider: str = "p"

    def get(self, query: dict) -> Any:
        return self.fetch(query)

SECRET = "sk_live_TOPSECRET_0123456789"


# --- a scripted server ----------------------------------------------------------------------------

class Script:
    """Replies in order; the last one repeats. A reply is (status, body, headers) or "reset" /
    ("truncate", body) / ("slow", seconds, body)."""

    def __init__(self, *replies: object) -> None:
        self.replies = list(replies)
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self.lock = threading.Lock()

    def next(self) -> object:
        with self.lock:
            return self.replies.pop(0) if len(self.replies) > 1 else self.replies[0]


@pytest.fixture
def server() -> Iterator[tuple[str, list[Script]]]:
    holder: list[Script] = [Script((200, {}, {}))]

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def _reply(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            script = holder[0]
            with script.lock:
                script.requests.append((self.command, self.path, {k.lower(): v for k, v in self.headers.items()}))
            reply = script.next()
            if reply == "reset":
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.close_connection = True
                self.connection.close()
                return
            truncate = False
            if isinstance(reply, tuple) and reply[0] == "truncate":
                truncate, reply = True, (200, reply[1], {})
            if isinstance(reply, tuple) and reply[0] == "slow":
                time.sleep(reply[1])
                reply = (200, reply[2], {})
            status, body, headers = reply  # type: ignore[misc]
            raw = body if isinstance(body, bytes) else orjson.dumps(body)
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            if truncate:
                self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(raw[: len(raw) // 2] if truncate else raw)
            if truncate:
                self.close_connection = True

        do_GET = do_POST = do_PUT = _reply

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    # A short poll: shutdown() waits up to one poll interval (0.5 s by default) per test.
    thread = threading.Thread(target=httpd.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", holder
    httpd.shutdown()
    httpd.server_close()


class Sleeps(list):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def make_core(url: str, *, sleeps: Sleeps | None = None, timeout: float = 5.0, max_elapsed: float = 60.0,
              budget: RateBudget | None = None, **kw: object) -> HttpCore:
    return HttpCore("testprov", url, auth=HeaderAuth("X-Key", SECRET), timeout=timeout, secrets=(SECRET,),
                    policy=RetryPolicy(backoff_base=0.05, backoff_max=0.2, max_elapsed=max_elapsed),
                    sleep=sleeps if sleeps is not None else Sleeps(), budget=budget,
                    auth_hints={403: "generate a new key in the test console"}, **kw)  # type: ignore[arg-type]


# --- retries --------------------------------------------------------------------------------------

@pytest.mark.parametrize("fault", [
    (503, {"message": "down"}, {}),
    (500, {}, {}),
    (502, b"<html>bad gateway</html>", {}),
    (408, {}, {}),
    "reset",
    ("truncate", {"data": list(range(200))}),
    (200, b'{"data": [1, 2', {}),  # 2xx with invalid JSON
])
def test_retryable_faults_are_retried_until_success(server, fault):
    url, holder = server
    holder[0] = script = Script(fault, fault, (200, {"ok": True}, {}))
    sleeps = Sleeps()
    reply = make_core(url, sleeps=sleeps).request("GET", "/v1/things")
    assert reply.body == {"ok": True}
    assert len(script.requests) == 3
    assert len(sleeps) == 2 and all(0 <= s <= 0.2 for s in sleeps)


def test_timeout_is_retried(server):
    url, holder = server
    holder[0] = script = Script(("slow", 0.6, {"late": True}), (200, {"ok": True}, {}))
    reply = make_core(url, timeout=0.2).request("GET", "/slow")
    assert reply.body == {"ok": True}
    assert len(script.requests) == 2


def test_retry_after_seconds_is_honoured_never_shorter(server):
    url, holder = server
    holder[0] = Script((429, {"message": "Too Many Requests"}, {"Retry-After": "3"}), (200, {"ok": 1}, {}))
    sleeps = Sleeps()
    make_core(url, sleeps=sleeps).request("GET", "/x")
    assert sleeps and sleeps[0] >= 3.0  # the back-off (<= 0.2 s) would have been far shorter


def test_retry_after_http_date(server):
    url, holder = server
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    holder[0] = Script((503, {}, {"Retry-After": when}), (200, {"ok": 1}, {}))
    sleeps = Sleeps()
    make_core(url, sleeps=sleeps).request("GET", "/x")
    assert 28 <= sleeps[0] <= 31


def test_parse_retry_after_forms():
    now = datetime(2026, 3, 15, 12, 0, tzinfo=UTC)
    assert parse_retry_after("120") == 120
    assert parse_retry_after(" 1.5 ") == 1.5
    assert parse_retry_after("Sun, 15 Mar 2026 12:01:00 GMT", now=now) == 60
    assert parse_retry_after("Sun, 15 Mar 2026 11:00:00 GMT", now=now) == 0  # in the past: no wait
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None


def test_backoff_is_capped_exponential_with_jitter():
    policy = RetryPolicy(backoff_base=0.5, backoff_max=4.0)
    for attempt, ceiling in [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (5, 4.0), (10, 4.0)]:
        samples = [policy.backoff(attempt) for _ in range(200)]
        assert all(0 <= s <= ceiling for s in samples)
        assert max(samples) > ceiling * 0.5  # jittered over the range, not a constant
        assert len(set(samples)) > 100


def test_gives_up_after_bounded_time_naming_provider_endpoint_status(server):
    url, holder = server
    holder[0] = Script((503, {"message": "maintenance"}, {}))
    core = HttpCore("testprov", url, policy=RetryPolicy(backoff_base=0.05, backoff_max=0.1, max_elapsed=1.0))
    started = time.monotonic()
    with pytest.raises(ProviderUnavailableError) as info:
        core.request("GET", "/v1/orders", params={"limit": 100})
    assert time.monotonic() - started < 3
    message = str(info.value)
    assert "testprov" in message and "GET /v1/orders" in message and "503" in message
    assert info.value.status == 503


def test_gives_up_at_once_when_retry_after_exceeds_the_bound(server):
    url, holder = server
    holder[0] = script = Script((429, {}, {"Retry-After": "3600"}))
    sleeps = Sleeps()
    with pytest.raises(ProviderUnavailableError, match="429"):
        make_core(url, sleeps=sleeps, max_elapsed=60).request("GET", "/x")
    assert len(script.requests) == 1 and not [s for s in sleeps if s >= 3600]


@pytest.mark.parametrize("status,error", [
    (400, ProviderRequestError), (401, ProviderAuthError), (403, ProviderAuthError),
    (404, ProviderRequestError), (422, ProviderRequestError),
])
def test_client_errors_are_never_retried(server, status, error):
    url, holder = server
    # The API echoes the key back: our message must still not carry it.
    holder[0] = script = Script((status, {"error_code": "nope", "message": f"bad key {SECRET}"}, {}))
    sleeps = Sleeps()
    with pytest.raises(error) as info:
        make_core(url, sleeps=sleeps).request("GET", "/v1/events")
    assert len(script.requests) == 1 and sleeps == []
    text = str(info.value) + repr(info.value)
    assert SECRET not in text
    assert "testprov" in text and "GET /v1/events" in text and str(status) in text
    if status == 403:
        assert "generate a new key in the test console" in text


def test_auth_header_sent_and_secret_absent_from_logs(server, caplog):
    url, holder = server
    holder[0] = script = Script((500, {}, {}), (200, {"ok": 1}, {}))
    with caplog.at_level("DEBUG"):
        make_core(url).request("GET", "/v1/x")
    assert script.requests[-1][2]["x-key"] == SECRET
    assert caplog.records and SECRET not in caplog.text
    assert "testprov GET /v1/x -> 200 attempt=2" in caplog.text


# --- rate budget ----------------------------------------------------------------------------------

def test_rate_budget_paces_inside_the_reserve_and_waits_at_zero():
    now = [0.0]
    budget = RateBudget(reserve_fraction=0.1, min_reserve=5, clock=lambda: now[0])
    budget.observe({"x-rate-limit-limit": "2000", "x-rate-limit-remaining": "1500", "x-rate-limit-reset": "1800"}, 200)
    assert budget.delay() == 0  # plenty left: full speed
    budget.observe({"x-rate-limit-limit": "2000", "x-rate-limit-remaining": "100", "x-rate-limit-reset": "1000"}, 200)
    assert budget.delay() == pytest.approx(10.0)  # 100 left for 1000 s: one per 10 s
    budget.observe({"x-rate-limit-remaining": "0", "x-rate-limit-reset": "42"}, 200)
    assert budget.delay() == pytest.approx(42.0)
    now[0] = 50.0
    assert budget.delay() == 0  # window rolled over


def test_rate_budget_429_retry_after_blocks_the_next_request():
    now = [0.0]
    budget = RateBudget(clock=lambda: now[0])
    budget.observe({}, 429, retry_after=7)
    assert budget.delay() == pytest.approx(7.0)


def test_core_slows_down_before_being_throttled(server):
    url, holder = server
    holder[0] = Script(
        (200, {"n": 1}, {"X-Rate-Limit-Limit": "100", "X-Rate-Limit-Remaining": "50", "X-Rate-Limit-Reset": "600"}),
        (200, {"n": 2}, {"X-Rate-Limit-Limit": "100", "X-Rate-Limit-Remaining": "4", "X-Rate-Limit-Reset": "400"}),
        (200, {"n": 3}, {"X-Rate-Limit-Limit": "100", "X-Rate-Limit-Remaining": "3", "X-Rate-Limit-Reset": "399"}),
    )
    sleeps = Sleeps()
    core = make_core(url, sleeps=sleeps)
    core.request("GET", "/a")
    core.request("GET", "/b")  # budget 50 > reserve 10: no wait
    assert sleeps == []
    core.request("GET", "/c")  # 4 left for ~400 s: about 100 s between requests
    assert len(sleeps) == 1 and 90 <= sleeps[0] <= 101


# --- auth -----------------------------------------------------------------------------------------

def test_client_credentials_cached_refreshed_before_expiry_and_thread_safe():
    now = [0.0]
    minted: list[int] = []

    def fetch() -> dict:
        time.sleep(0.01)
        minted.append(1)
        return {"access_token": f"tok{len(minted)}", "expires_in": 360}

    auth = ClientCredentialsAuth("p", fetch, margin=60, clock=lambda: now[0])
    threads = [threading.Thread(target=auth.headers) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(minted) == 1 and auth.headers() == {"Authorization": "Bearer tok1"}
    now[0] = 299.0
    assert auth.headers()["Authorization"] == "Bearer tok1"
    now[0] = 301.0  # inside the 60 s margin of a 360 s token: refreshed before it expires
    assert auth.headers()["Authorization"] == "Bearer tok2"
    assert auth.on_unauthorized() and auth.headers()["Authorization"] == "Bearer tok3"
    assert SECRET not in repr(auth)


def test_401_reauthenticates_once_then_succeeds(server):
    url, holder = server
    holder[0] = script = Script((401, {"error": "invalid_token"}, {}), (200, {"ok": 1}, {}))
    tokens = iter(["t1", "t2", "t3"])
    auth = ClientCredentialsAuth("p", lambda: {"access_token": next(tokens), "expires_in": 360})
    core = HttpCore("p", url, auth=auth, policy=RetryPolicy(backoff_base=0.01), sleep=Sleeps())
    assert core.request("GET", "/v3/x").body == {"ok": 1}
    assert [r[2]["authorization"] for r in script.requests] == ["Bearer t1", "Bearer t2"]


def test_static_key_401_is_not_retried(server):
    url, holder = server
    holder[0] = script = Script((401, {"message": "unauthorized"}, {}))
    with pytest.raises(ProviderAuthError):
        make_core(url).request("GET", "/x")
    assert len(script.requests) == 1


# --- paginators -----------------------------------------------------------------------------------

def _cursor_api(n: int, repeat_pages: set[int] = frozenset()):  # type: ignore[assignment]
    """A Ticket Tailor-like list of n records, ids it_1..it_n, newest first like the real API."""
    ids = [f"it_{i}" for i in range(n, 0, -1)]
    calls: list[dict] = []

    def fetch(q: dict) -> dict:
        calls.append(dict(q))
        limit = int(q["limit"])
        start = ids.index(q["starting_after"]) + 1 if "starting_after" in q else 0
        chunk = ids[start:start + limit]
        if len(calls) in repeat_pages and start > 0:
            chunk = [ids[start - 1], *chunk]
        more = start + limit < n
        return {"data": [{"id": i} for i in chunk],
                "links": {"next": f"/v1/x?starting_after={chunk[-1]}" if more else None, "previous": None}}

    return fetch, calls, ids


@pytest.mark.parametrize("n,pages", [(0, 1), (1, 1), (99, 1), (100, 1), (101, 2), (250, 3), (300, 3)])
def test_cursor_pages_boundaries_and_minimum_requests(n, pages):
    fetch, calls, ids = _cursor_api(n)
    got = list(cursor_pages(Src(fetch, "GET /x"), {"created_at.gte": 1}, limit=100))
    assert [r["id"] for page in got for r in page] == ids
    assert len(calls) == pages
    assert all(c["limit"] == 100 and c["created_at.gte"] == 1 for c in calls)  # filters kept on every page


def test_cursor_pages_drop_the_repeated_record():
    fetch, calls, ids = _cursor_api(350, repeat_pages={2, 3, 4})
    got = [r["id"] for page in cursor_pages(Src(fetch, "x"), {}, limit=100) for r in page]
    assert got == ids


def _numbered_api(n: int, max_size: int, repeat: bool = False, echo: bool = True):
    calls: list[dict] = []

    def fetch(q: dict) -> dict:
        calls.append(dict(q))
        size = min(int(q.get("page_size") or q.get("per_page")), max_size)  # a server that clamps
        page = int(q["page"])
        start = (page - 1) * size
        chunk = list(range(start, min(start + size, n)))
        if repeat and page >= 2 and chunk:
            chunk = [start - 1, *chunk]
        body = {"data": [{"id": i} for i in chunk], "pagination": {"has_next": start + size < n}}
        if echo:
            body["per_page"] = size
        return body

    return fetch, calls


@pytest.mark.parametrize("n,pages", [(0, 1), (1, 1), (200, 1), (201, 2), (401, 3)])
def test_page_number_pages(n, pages):
    fetch, calls = _numbered_api(n, 200)
    got = [r["id"] for p in page_number_pages(Src(fetch, "x"), {"status": "true"}, page_size=200)
           for r in p]
    assert got == list(range(n)) and len(calls) == pages
    assert all(c["page_size"] == 200 and c["status"] == "true" for c in calls)


def test_page_number_pages_with_repeats():
    fetch, calls = _numbered_api(650, 200, repeat=True)
    got = [r["id"] for p in page_number_pages(Src(fetch, "x"), {}, page_size=200) for r in p]
    assert got == list(range(650)) and len(calls) == 4


@pytest.mark.parametrize("n,pages", [(0, 1), (5, 1), (100, 2), (101, 2), (250, 3)])
def test_short_page_pages(n, pages):
    fetch, calls = _numbered_api(n, 100)
    got = [r["id"] for p in short_page_pages(Src(fetch, "x"), {}, per_page=100) for r in p]
    assert got == list(range(n)) and len(calls) == pages  # an exact multiple needs one empty page


def test_short_page_pages_trust_the_echoed_page_size_over_the_requested_one():
    fetch, calls = _numbered_api(120, 50)  # the server clamps per_page=100 to 50 and says so
    got = [r["id"] for p in short_page_pages(Src(fetch, "x"), {}, per_page=100) for r in p]
    assert got == list(range(120)) and len(calls) == 3


def test_short_page_pages_with_repeats():
    fetch, calls = _numbered_api(230, 100, repeat=True)
    got = [r["id"] for p in short_page_pages(Src(fetch, "x"), {}, per_page=100) for r in p]
    assert got == list(range(230))


@pytest.mark.parametrize("n,pages", [(0, 1), (999, 1), (1000, 2), (1001, 2), (2500, 3)])
def test_offset_pages(n, pages):
    calls: list[dict] = []

    def fetch(q: dict) -> list:
        calls.append(dict(q))
        off, lim = q["offset"], q["limit"]
        idx = list(range(off, min(off + lim, n)))
        if off > 0 and len(calls) % 2 == 0:
            idx.insert(0, off - 1)  # the repeat fault on every other page
        return [{"returnId": i} for i in idx]

    got = [r["returnId"] for p in offset_pages(Src(fetch, "x"), {}, limit=1000, id_key="returnId")
           for r in p]
    assert got == list(range(n)) and len(calls) == pages
    assert [c["offset"] for c in calls] == [1000 * i for i in range(pages)]


def test_paginators_are_lazy_generators():
    fetch, calls, _ = _cursor_api(1000)
    pages = cursor_pages(Src(fetch, "x"), {}, limit=100)
    assert calls == []
    next(pages)
    assert len(calls) == 1  # one page fetched per page consumed: memory stays flat


# --- resources: repr, configuration, registry ------------------------------------------------------

def test_resource_reprs_hide_secrets():
    from resources.cordial import CordialResource
    from resources.cymbal import CymbalResource
    from resources.cymbio import CymbioResource
    from resources.sympla import SymplaResource
    from resources.tickettailor import TicketTailorResource

    resources = [
        TicketTailorResource(api_key=SECRET), SymplaResource(token=SECRET), CymbalResource(api_key=SECRET),
        CymbioResource(client_id="cid", client_secret=SECRET, retailer_id="1"),
        CordialResource(api_key=SECRET, base_url="http://127.0.0.1:9"),
    ]
    for r in resources:
        assert r.configured()
        assert SECRET not in repr(r) and SECRET not in str(r)


def test_unconfigured_resource_raises_a_clear_error():
    from resources.cymbal import CymbalResource

    with pytest.raises(ProviderNotConfiguredError, match="CYMBAL_API_KEY"):
        list(CymbalResource().iter_campaign_analytics())


_ENV = ("TICKETTAILOR_API_KEY", "SYMPLA_TOKEN", "CYMBAL_API_KEY", "CYMBIO_CLIENT_ID", "CYMBIO_CLIENT_SECRET",
        "CYMBIO_RETAILER_ID", "CORDIAL_API_KEY", "CORDIAL_BASE_URL")


def test_registry_unset_secrets_load_and_run_as_not_configured(monkeypatch):
    from assets.providers import build_resources

    for name in _ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CYMBAL_API_KEY", SECRET)
    resources = {k: v for k, v in build_resources().items() if k != "warehouse"}
    assert set(resources) == {"tickettailor", "sympla", "cymbal", "cymbio", "cordial"}
    seen: dict[str, bool] = {}

    @dg.asset(required_resource_keys=set(resources))
    def probe(context) -> None:  # noqa: ANN001 - dagster rejects string annotations here
        for key in resources:
            seen[key] = getattr(context.resources, key).configured()

    result = dg.materialize([probe], resources=resources)
    assert result.success
    assert seen == {"tickettailor": False, "sympla": False, "cymbal": True, "cymbio": False, "cordial": False}
    # Called directly (outside a run) the EnvVar-backed resource resolves the same way.
    assert resources["cymbal"].configured() and not resources["sympla"].configured()
    assert SECRET not in repr(resources["cymbal"])


# --- replies that are not a documented answer (issue 12) -------------------------------------------

from resources.errors import (  # noqa: E402 - grouped with the tests that use them
    ProviderRedirectError,
    ProviderResponseError,
    ProviderResponseTooLargeError,
)
from resources.http import DEFAULT_MAX_PAGE_BYTES, MAX_PAGE_BYTES_ENV, max_page_bytes_from_env  # noqa: E402
from resources.jsonbody import OutOfRangeNumber, quarantine_json, unrepresentable  # noqa: E402
from resources.pagination import TICKETTAILOR_PAGE  # noqa: E402

GOOD_PAGE = {"data": [{"id": "or_1"}], "links": {"next": None, "previous": None}}


@pytest.mark.parametrize("bad,missing", [
    ((200, b"", {}), "an empty body"),
    ((200, {}, {}), "an empty object {}"),
    ((200, {"data": None, "links": {"next": None}}, {}), "'data': null"),
    ((200, {"data": []}, {}), "no 'links'"),
    ((200, {"data": [], "links": {}}, {}), "'links' that is not"),
    ((200, b"<html>maintenance</html>", {}), "a body that is not JSON"),
])
def test_a_reply_without_the_envelope_is_asked_twice_more_then_a_clear_error(server, bad, missing):
    url, holder = server
    holder[0] = script = Script(bad)
    with pytest.raises(ProviderResponseError) as info:
        make_core(url).get("/v1/orders", {"limit": 100}, expect=TICKETTAILOR_PAGE)
    assert not isinstance(info.value, ProviderUnavailableError)
    message = str(info.value)
    assert "testprov" in message and "GET /v1/orders" in message and missing in message
    assert "not \"no records\"" in message and "unavailable" not in message
    assert len(script.requests) == RetryPolicy().bad_reply_attempts == 3


def test_one_bad_reply_then_a_good_one_is_ridden_out(server):
    url, holder = server
    holder[0] = script = Script((200, b"", {}), (200, {}, {}), (200, GOOD_PAGE, {}))
    assert make_core(url).get("/v1/orders", expect=TICKETTAILOR_PAGE) == GOOD_PAGE
    assert len(script.requests) == 3


@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_a_redirect_is_never_followed(server, status):
    url, holder = server
    holder[0] = script = Script((status, b"", {"Location": f"{url}/elsewhere?token=abc"}), (200, GOOD_PAGE, {}))
    with pytest.raises(ProviderRedirectError) as info:
        make_core(url).get("/v1/orders", expect=TICKETTAILOR_PAGE)
    message = str(info.value)
    assert f"redirected ({status})" in message and "/elsewhere" in message and "TESTPROV_BASE_URL" in message
    assert "token=abc" not in message  # a query string may carry a token
    assert info.value.allow_retries is False and len(script.requests) == 1


@pytest.mark.parametrize("body,reason", [
    (b'{"data": [{"id": "a", "name": "\\ud800"}, {"id": "b"}], "links": {"next": null}}', "not valid Unicode"),
    (b'{"data": [{"id": "a", "name": "caf\xff"}, {"id": "b"}], "links": {"next": null}}', "not valid Unicode"),
    (b'{"data": [{"id": "a", "total": 1e400}, {"id": "b"}], "links": {"next": null}}', "out of range (1e400)"),
])
def test_a_page_orjson_rejects_is_decoded_tolerantly_once(server, body, reason):
    url, holder = server
    holder[0] = script = Script((200, body, {}))
    page = make_core(url).get("/v1/orders", expect=TICKETTAILOR_PAGE)
    assert len(script.requests) == 1  # deterministic: nothing to gain from asking again
    assert [r["id"] for r in page["data"]] == ["a", "b"]
    assert reason in unrepresentable(page["data"][0]) and unrepresentable(page["data"][1]) is None
    assert quarantine_json(page["data"][0]).isascii()


def test_a_200_body_cut_mid_document_is_retried_with_the_usual_budget(server):
    url, holder = server
    cut = (200, b'{"data": [{"id": "a"}, {"id": "b", "name": "ab', {})
    holder[0] = script = Script(cut, cut, cut, cut, (200, GOOD_PAGE, {}))
    assert make_core(url).get("/v1/orders", expect=TICKETTAILOR_PAGE) == GOOD_PAGE
    assert len(script.requests) == 5  # more than the 3 a deterministic bad reply gets


def test_content_length_over_the_cap_fails_before_the_body_is_read(server):
    url, holder = server
    holder[0] = script = Script((200, {"data": ["x" * 2000], "links": {"next": None}}, {}))
    with pytest.raises(ProviderResponseTooLargeError) as info:
        make_core(url, max_body_bytes=1000).get("/v1/orders")
    message = str(info.value)
    assert "testprov" in message and "GET /v1/orders" in message and MAX_PAGE_BYTES_ENV in message
    assert "announced" in message and info.value.allow_retries is False and len(script.requests) == 1


def test_the_page_cap_comes_from_the_environment(monkeypatch):
    monkeypatch.delenv(MAX_PAGE_BYTES_ENV, raising=False)
    assert max_page_bytes_from_env() == DEFAULT_MAX_PAGE_BYTES == 64 * 1024 * 1024
    monkeypatch.setenv(MAX_PAGE_BYTES_ENV, "1_048_576")
    assert max_page_bytes_from_env() == 1048576
    assert HttpCore("p", "http://127.0.0.1:9").max_body_bytes == 1048576
    for bad in ("0", "-5", "64MB"):
        monkeypatch.setenv(MAX_PAGE_BYTES_ENV, bad)
        with pytest.raises(ValueError, match=MAX_PAGE_BYTES_ENV):
            max_page_bytes_from_env()


def test_unrepresentable_names_the_spot_never_the_text():
    record = {"id": "x", "buyer": {"name": "Jos\udcc3"}, "items": [{"q": 1}, {"q": OutOfRangeNumber("1e400")}]}
    reason = unrepresentable(record)
    assert reason == "text that is not valid Unicode (lone surrogate or invalid UTF-8 byte) at $.buyer.name"
    assert "Jos" not in reason
    del record["buyer"]
    assert unrepresentable(record) == "number out of range (1e400) at $.items[1].q"
    assert unrepresentable({"n": 2**64}) == "integer out of 64-bit range at $.n"
    assert unrepresentable({"ok": [1, 2.5, "é", None, True]}) is None


# --- paginators and ids that are not scalars -------------------------------------------------------


def test_dedup_survives_list_valued_ids_and_keeps_distinct_malformed_records():
    pages = [{"data": [{"id": "a"}, {"id": ["b"]}, {"id": ["b"], "n": 2}, {"id": None}, 7],
              "links": {"next": None}}]
    got = [r for page in cursor_pages(Src(lambda q: pages[0], "x"), {}, limit=100) for r in page]
    assert got == pages[0]["data"]  # nothing dropped: the lander quarantines the misfits


def _cursor_api_with_bad_ids(n: int, bad: set[str], link_cursor: bool):
    """Like `_cursor_api`, but the records named in `bad` come back with a list-valued id; the API's
    own `links.next` carries the real id only if `link_cursor`."""
    ids = [f"it_{i}" for i in range(n, 0, -1)]
    calls: list[dict] = []

    def fetch(q: dict) -> dict:
        calls.append(dict(q))
        limit = int(q["limit"])
        start = ids.index(q["starting_after"]) + 1 if "starting_after" in q else 0
        chunk = ids[start:start + limit]
        more = start + limit < n
        link = f"/v1/x?starting_after={chunk[-1] if link_cursor else ''}" if more else None
        return {"data": [{"id": [i] if i in bad else i, "n": i} for i in chunk], "links": {"next": link}}

    return fetch, calls, ids


@pytest.mark.parametrize("link_cursor", [True, False])
def test_cursor_pages_get_past_a_record_whose_id_is_unusable(link_cursor):
    # it_151 ends page 1 and, once the cursor backs up to it_152, it_52 ends page 2: both times the
    # documented cursor (the last record's id) is unusable.
    fetch, calls, ids = _cursor_api_with_bad_ids(250, {"it_151", "it_52"}, link_cursor)
    got = [r["n"] for page in cursor_pages(Src(fetch, "x"), {}, limit=100) for r in page]
    assert got == ids  # every record exactly once, the malformed ones included, in order
    cursors = [c.get("starting_after") for c in calls]
    assert cursors == ([None, "it_151", "it_51"] if link_cursor else [None, "it_152", "it_53"])


def test_cursor_pages_stop_with_an_error_when_nothing_can_advance():
    def fetch(q: dict) -> dict:
        return {"data": [{"id": ["x"]}, {"id": None}], "links": {"next": "/v1/x?starting_after="}}

    with pytest.raises(ProviderResponseError, match="cannot advance"):
        list(cursor_pages(Src(fetch, "GET /x"), {}, limit=2))


@pytest.mark.parametrize("paginate", ["page_number", "short_page", "offset"])
def test_other_paginators_survive_list_valued_ids(paginate):
    data = [{"id": ["a"]}, {"id": {"k": 1}}, {"id": "c"}]
    if paginate == "page_number":
        pages = page_number_pages(Src(lambda q: {"data": data, "pagination": {"has_next": False}}), {},
                                  page_size=200)
    elif paginate == "short_page":
        pages = short_page_pages(Src(lambda q: {"data": data, "per_page": 100}), {}, per_page=100)
    else:
        pages = offset_pages(Src(lambda q: data, "x"), {}, limit=1000)
    assert [r for page in pages for r in page] == data


@pytest.mark.parametrize("body", [None, {}, {"data": None}, {"links": {"next": None}}])
def test_paginators_never_read_a_shapeless_body_as_no_records(body):
    with pytest.raises(ProviderResponseError):
        list(cursor_pages(Src(lambda q: body, "x"), {}, limit=100))
    with pytest.raises(ProviderResponseError):
        list(offset_pages(Src(lambda q: body, "x"), {}, limit=100))


@pytest.mark.parametrize("body,cut", [
    (b'{"data": [1, 2', True), (b'{"a": "abc', True), (b'{"a": tr', True), (b'[1.', True), (b'[-', True),
    (b'{"a": 1, ', True), (b"<html>", False), (b"[1] trailing", False), (b'{"a" 1}', False), (b"[true, x]", False),
])
def test_a_body_cut_short_is_told_apart_from_one_that_is_wrong_where_it_stands(body, cut):
    import json

    from resources.jsonbody import cut_short, tolerant_loads

    with pytest.raises(json.JSONDecodeError) as info:
        tolerant_loads(body)
    assert cut_short(body, info.value) is cut


def test_an_empty_token_reply_is_a_response_error_not_a_credentials_one(server):
    from resources.cymbio import CymbioResource

    url, holder = server
    holder[0] = script = Script((200, b"", {}))
    resource = CymbioResource(client_id="id", client_secret=SECRET, retailer_id="7", base_url=url,
                              backoff_base_seconds=0.01, backoff_max_seconds=0.02)
    with resource.session(), pytest.raises(ProviderResponseError) as info:
        list(resource.iter_variants())
    assert "cymbio: POST /oauth/token answered 200 with an empty body" in str(info.value)
    assert len(script.requests) == 3 and SECRET not in str(info.value)


# --- redaction of every derived form of a secret ---------------------------------------------------

# Characters that change under base64 padding, quote and quote_plus alike.
ODD_SECRET = "sk live/x+y=z:?&%é-0123456789"


def _forms(secret: str) -> dict[str, str]:
    b64 = {f"b64({raw!r})": base64.b64encode(raw.encode()).decode() for raw in (f"{secret}:", secret)}
    return {
        "plain": secret,
        **b64,
        **{f"{k} unpadded": v.rstrip("=") for k, v in b64.items()},
        "quote": quote(secret, safe=""),
        "quote_plus": quote_plus(secret),
    }


@pytest.mark.parametrize("form", list(_forms(ODD_SECRET)))
def test_redact_covers_each_derived_form_of_a_secret(form):
    value = _forms(ODD_SECRET)[form]
    text = f"the API said: bad credential <{value}> (Authorization: Basic {value})"
    redacted = redact(text, (ODD_SECRET,))
    assert value not in redacted and "***" in redacted and redacted.startswith("the API said: bad credential <")
    assert set(_forms(ODD_SECRET).values()) <= set(secret_forms((ODD_SECRET,)))
    assert redact("short abc secrets are ignored", ("abc",)) == "short abc secrets are ignored"


@pytest.mark.parametrize("status,error", [(401, ProviderAuthError), (403, ProviderAuthError),
                                          (422, ProviderRequestError), (404, ProviderRequestError)])
def test_no_form_of_a_secret_survives_in_an_error_built_from_api_text(server, status, error):
    url, holder = server
    forms = _forms(ODD_SECRET)
    holder[0] = Script((status, {"message": " | ".join(forms.values()), "errors": list(forms.values())}, {}))
    core = HttpCore("testprov", url, auth=BasicUsernameAuth(ODD_SECRET), secrets=(ODD_SECRET,), sleep=Sleeps())
    with pytest.raises(error) as info:
        core.request("POST", "/v1/things", json={"x": 1})
    text = str(info.value) + repr(info.value) + info.value.code
    for name, value in forms.items():
        assert value not in text, name
    assert "***" in text


def test_no_form_of_a_secret_in_give_up_redirect_and_bad_reply_messages(server, caplog):
    url, holder = server
    forms = list(_forms(ODD_SECRET).values())
    core = HttpCore("testprov", url, secrets=(ODD_SECRET,), sleep=Sleeps(),
                    policy=RetryPolicy(backoff_base=0.01, max_elapsed=5, max_attempts=3))
    holder[0] = Script((301, {}, {"Location": f"https://elsewhere.example/{quote(ODD_SECRET, safe='')}/x?k=1"}))
    with pytest.raises(ProviderRedirectError) as redirect:
        core.request("GET", "/a")
    # A body whose keys echo the key: the envelope check names the keys it found.
    holder[0] = Script((200, {f: 1 for f in forms}, {}))
    with caplog.at_level(logging.DEBUG), pytest.raises(ProviderResponseError) as bad:
        core.request("GET", "/b", expect=lambda body: f"an object with keys {list(body)}")
    texts = [str(redirect.value), str(bad.value), caplog.text]
    for text in texts:
        for value in forms:
            assert value not in text


def test_the_live_oauth_token_and_the_url_encoded_client_secret_are_redacted(server):
    url, holder = server
    client_secret = "cs/with+odd=chars:0042"
    tokens = iter(["tok-ALPHA-000111", "tok-BRAVO-000222", "tok-CHARLIE-000333", "tok-DELTA-000444"])
    auth = ClientCredentialsAuth("p", lambda: {"access_token": next(tokens), "expires_in": 360})
    core = HttpCore("p", url, auth=auth, secrets=(client_secret,), sleep=Sleeps())
    # Every 401 echoes the token it got (and the form body the token request sent): after two
    # re-authentications the last 401 names a token that is current and two that were dropped.
    echo = (f"invalid token tok-ALPHA-000111 tok-BRAVO-000222 tok-CHARLIE-000333; request was "
            f"client_secret={quote_plus(client_secret)}&grant_type=client_credentials")
    holder[0] = Script((401, {"error": "invalid_token", "message": echo}, {}))
    with pytest.raises(ProviderAuthError) as info:
        core.request("GET", "/v3/retailers/1/variants")
    text = str(info.value) + repr(info.value) + info.value.code
    for secret in ("tok-ALPHA-000111", "tok-BRAVO-000222", "tok-CHARLIE-000333", quote_plus(client_secret)):
        assert secret not in text
    assert info.value.code == "401 invalid_token"
    assert set(auth.secrets()) == {"tok-ALPHA-000111", "tok-BRAVO-000222", "tok-CHARLIE-000333"}


# --- ProviderError.code ---------------------------------------------------------------------------

def test_error_code_keeps_only_a_short_token_never_free_text():
    assert error_code(422, {"error_code": "validation_error", "message": "email is wrong"}) == "422 validation_error"
    assert error_code(404, {"error_code": "Not Found", "message": "x"}) == "404"  # a phrase, not a token
    assert error_code(401, {"error": True, "code": 401, "message": "Invalid s_token: abc"}) == "401"
    assert error_code(400, {"code": "E1002"}) == "400 E1002"
    assert error_code(500, "not a dict") == "500" and error_code(None, {}) is None
    assert error_code(401, {"error": SECRET}, (SECRET,)) == "401"  # an echoed key is not a code
    assert error_code(401, {"error": SECRET[:12]}, (SECRET,)) == "401"  # nor a piece of one
    assert error_code(400, {"error": "x" * 65}) == "400"


def test_errors_carry_a_safe_code(server):
    url, holder = server
    holder[0] = Script((422, {"error_code": "validation_error", "message": f"bad {SECRET}"}, {}))
    with pytest.raises(ProviderRequestError) as info:
        make_core(url).request("POST", "/v1/x", json={})
    assert info.value.code == "422 validation_error"
    holder[0] = Script((404, {"message": "no such thing"}, {}))
    with pytest.raises(ProviderRequestError) as info:
        make_core(url).request("GET", "/v1/x")
    assert info.value.code == "404"
    holder[0] = Script((503, {"error": "maintenance"}, {}))
    with pytest.raises(ProviderUnavailableError) as unavailable:
        make_core(url, max_elapsed=0.5).request("GET", "/v1/x")
    assert unavailable.value.code == "503"
    holder[0] = Script("reset")
    with pytest.raises(ProviderUnavailableError) as reset:
        make_core(url, max_elapsed=0.5).request("GET", "/v1/x")
    assert reset.value.code == "unavailable"
    assert ProviderNotConfiguredError("x", provider="p").code == "not_configured"


# --- ids in URL paths -------------------------------------------------------------------------------

@pytest.mark.parametrize("value", ["ev_1001", "s12A3B", "1.5", "a-b_c.d", 1772, "X" * 128])
def test_path_segment_accepts_safe_ids(value):
    assert path_segment(value, "event id", "sympla") == str(value) and is_safe_path_segment(value)


@pytest.mark.parametrize("value", ["../../v1.5.1/events/1?x=#", "..", ".", "a/b", "a?b", "a#b", "a%2Fb", "a b", "",
                                   "é", "X" * 129, None, True, ["1"], 1.5])
def test_path_segment_refuses_ids_that_could_rewrite_the_path(value):
    assert not is_safe_path_segment(value)
    with pytest.raises(ProviderRequestError) as info:
        path_segment(value, "event id", "sympla")
    message = str(info.value)
    assert message.startswith("sympla: the event id ") and "cannot be used in a URL path" in message
    assert info.value.provider == "sympla" and info.value.code == "bad_id" and info.value.allow_retries is False


# --- the configured rate limit ------------------------------------------------------------------------

class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_rate_limit_first_n_at_once_then_one_per_share_of_the_window():
    clock = Clock()
    budget = RateBudget(clock=clock, limit=(3, 10.0))
    delays = [budget.delay() for _ in range(7)]
    # A bucket of 3 (1 kept in reserve for our send lag), refilled one per 10/3 s; each slot 2% wider
    # (3.4 s) for the server's clock.
    assert delays == pytest.approx([0, 0, 3.4, 6.8, 10.2, 13.6, 17.0])
    clock.now = 140.0  # long after: the bucket is full again
    assert [budget.delay() for _ in range(3)] == pytest.approx([0, 0, 3.4])


def test_rate_limit_slack_is_at_least_2ms_and_combines_with_header_pacing():
    clock = Clock()
    budget = RateBudget(clock=clock, limit=(2, 1.0))
    assert [budget.delay() for _ in range(3)] == pytest.approx([0, 0.51, 1.02])
    budget.observe({}, 429, retry_after=7)  # the server's own Retry-After still blocks everyone
    assert budget.delay() == pytest.approx(7.0)
    # ... and that send is booked at its real time: the bucket refills from there.
    assert budget.delay() == pytest.approx(7.51)
    fast = RateBudget(clock=clock, limit=(1000, 1.0))  # 1 ms per request: the slack is 2 ms, not 2%
    delays = [fast.delay() for _ in range(1000)]
    assert delays[979] == pytest.approx(0) and delays[980] == pytest.approx(0.003)  # 20 kept in reserve


def test_rate_limit_is_shared_by_threads_and_never_exceeded():
    clock = Clock()
    budget = RateBudget(clock=clock, limit=(50, 2.0))
    times: list[float] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(100):
            d = budget.delay()
            with lock:
                times.append(clock.now + d)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    times.sort()
    assert len(times) == 800
    # A server's bucket of 50 refilled at 25/s never runs dry: by the k-th send, at most 50 + 25 * t
    # requests were due, and 50 went at once.
    start = times[0]
    assert all(k + 1 <= 50 + 25 * (t - start) + 1e-9 for k, t in enumerate(times))
    assert sum(1 for t in times if t - start < 1e-9) == 49  # 1 of the 50 kept in reserve
    assert times[-1] - start == pytest.approx(751 * 0.042)  # and no slower than the 2 ms slack


@pytest.mark.parametrize("text,expected", [("100/10s", (100, 10.0)), ("100/10", (100, 10.0)),
                                           ("2000/1h", (2000, 3600.0)), ("50/1m", (50, 60.0)), (" 5 / s ", (5, 1.0)),
                                           ("3/0.5", (3, 0.5))])
def test_rate_limit_settings(text, expected):
    assert parse_rate_limit(text, "CORDIAL_RATE_LIMIT") == expected


@pytest.mark.parametrize("text", ["", "100", "100/", "0/10s", "100/0", "ten/10s", "100/10d", "-1/10"])
def test_a_bad_rate_limit_names_the_variable(text):
    with pytest.raises(ValueError, match="CORDIAL_RATE_LIMIT must be N requests per window"):
        parse_rate_limit(text, "CORDIAL_RATE_LIMIT")


def test_rate_limits_are_bound_from_the_environment(monkeypatch):
    from assets.providers import build_resources
    from resources.cordial import CordialResource

    monkeypatch.setenv("CORDIAL_API_KEY", "k" * 8)
    monkeypatch.setenv("CORDIAL_BASE_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("CORDIAL_RATE_LIMIT", "50/2s")
    monkeypatch.setenv("CYMBAL_RATE_LIMIT", "100/10")
    resources = build_resources()
    assert resources["cordial"].rate_limit == "50/2s" and resources["cymbal"].rate_limit == "100/10"
    assert resources["sympla"].rate_limit is None
    assert resources["cordial"]._http().budget.configured_limit == (50, 2.0)
    resources["cordial"].close()
    monkeypatch.setenv("CORDIAL_RATE_LIMIT", "lots")
    with pytest.raises(ValueError, match="CORDIAL_RATE_LIMIT"):
        build_resources()
    with pytest.raises(ValueError, match="CORDIAL_RATE_LIMIT"):
        CordialResource(api_key="k" * 8, base_url="http://127.0.0.1:9", rate_limit="often")._http()


# --- per-request cost: the retry machinery and the per-request log line ---------------------------------

def test_a_first_attempt_that_succeeds_never_builds_the_retry_machinery(server, monkeypatch):
    import tenacity

    url, holder = server
    holder[0] = Script((200, {"ok": 1}, {}))
    real = tenacity.Retrying

    def refuse(*args, **kwargs):  # noqa: ANN002, ANN003
        raise AssertionError("tenacity used on a first attempt that succeeded")

    monkeypatch.setattr(tenacity, "Retrying", refuse)
    core = make_core(url)
    assert core.request("GET", "/v1/x").body == {"ok": 1}
    monkeypatch.setattr(tenacity, "Retrying", real)
    holder[0] = script = Script((503, {}, {}), (200, {"ok": 2}, {}))
    assert core.request("GET", "/v1/x").body == {"ok": 2} and len(script.requests) == 2


def test_give_up_counts_the_time_of_the_first_attempt(server):
    url, holder = server
    # The first reply takes 0.6 s and is cut short; the second asks for 0.5 s more. With 1 s allowed
    # from the first send, that wait would cross the bound: the core gives up after two sends.
    # (Counting from when the retry machinery took over, it would have tried again.)
    holder[0] = script = Script(("slow", 0.6, b'{"data": [1, 2'), (503, {}, {"Retry-After": "0.5"}))
    core = make_core(url, max_elapsed=1.0)
    with pytest.raises(ProviderUnavailableError) as info:
        core.request("GET", "/v1/x")
    assert len(script.requests) == 2
    assert float(str(info.value).split(" over ")[1].split("s ")[0]) >= 0.6


def test_per_request_lines_go_to_a_plain_logger_not_dagsters(server, caplog):
    url, holder = server
    holder[0] = Script((200, {"ok": 1}, {}))
    assert request_logger.name == "marquee.http.requests" and not request_logger.name.startswith("dagster")
    with caplog.at_level(logging.WARNING):
        make_core(url).request("GET", "/v1/quiet")
    assert "/v1/quiet" not in caplog.text  # off by default: nothing is formatted, nothing reaches Dagster
    with caplog.at_level(logging.DEBUG, logger="marquee.http.requests"):
        make_core(url).request("GET", "/v1/loud")
    assert "testprov GET /v1/loud -> 200 attempt=1" in caplog.text
