"""The sandbox framework: generic faults strike and a retry gets through, fault specs, the
stats endpoint, and the `marquee sandbox` command."""

from __future__ import annotations

import argparse
import base64
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from datetime import date
from pathlib import Path

import httpx
import pytest

from sandbox import Sandbox, _internal, start_sandbox
from sandbox import cordial as co_sandbox
from sandbox import world as w
from sandbox.cli import main as sandbox_main
from sandbox.cordial import CordialSandbox
from sandbox.faults import MAX_CONSECUTIVE, FaultPlan, FaultSpecError
from sandbox.http import LISTEN_BACKLOG, SandboxContext
from sandbox.ratelimit import RateLimits, RateLimitSpecError, parse_rate_limits

ANCHOR = date(2026, 3, 15)
KEY = (w.TICKETTAILOR_API_KEY, "")
PATH = "/tickettailor/v1/events"


def _get(base: str) -> httpx.Response:
    # A fresh connection per attempt, as a retrying client would open after a reset.
    return httpx.get(base + PATH, auth=KEY, timeout=10)


@pytest.mark.parametrize("spec", ["reset:1", "truncate:1"])
def test_transport_faults_strike_then_a_retry_gets_through(spec):
    with start_sandbox(anchor=ANCHOR, faults=spec) as sb:
        for _ in range(MAX_CONSECUTIVE):
            with pytest.raises(httpx.TransportError):
                _get(sb.base_url)
        r = _get(sb.base_url)
        assert r.status_code == 200 and len(r.json()["data"]) == 6
        assert sb.ctx.faults.injected[spec.split(":")[0]] == MAX_CONSECUTIVE


def test_429_fault_has_retry_after():
    with start_sandbox(anchor=ANCHOR, faults="429:1:3") as sb:
        for _ in range(MAX_CONSECUTIVE):
            r = _get(sb.base_url)
            assert r.status_code == 429 and r.headers["Retry-After"] == "3"
        assert _get(sb.base_url).status_code == 200


def test_5xx_fault_then_success():
    with start_sandbox(anchor=ANCHOR, faults="5xx:1") as sb:
        for _ in range(MAX_CONSECUTIVE):
            assert _get(sb.base_url).status_code in (500, 502, 503)
        assert _get(sb.base_url).status_code == 200


def test_slow_fault_delays_by_its_parameter():
    with start_sandbox(anchor=ANCHOR, faults="slow:1:0.3") as sb:
        t0 = time.monotonic()
        assert _get(sb.base_url).status_code == 200
        assert time.monotonic() - t0 >= 0.3


def test_faults_are_per_request_key():
    # A fault streak on one request does not stop another request from being faulted.
    with start_sandbox(anchor=ANCHOR, faults="5xx:1") as sb:
        assert _get(sb.base_url).status_code >= 500
        other = httpx.get(sb.base_url + "/tickettailor/v1/orders", auth=KEY, params={"limit": 1})
        assert other.status_code >= 500


@pytest.mark.parametrize("spec", ["bogus:0.1", "429:abc", "429:1.5", "5xx:-0.1", "slow:0.1:fast"])
def test_fault_spec_errors(spec):
    with pytest.raises(FaultSpecError):
        FaultPlan.parse(spec)


def test_fault_spec_parsing():
    plan = FaultPlan.parse(" 429:0.1 , slow:0.2:1.5,")
    assert plan.rates == {"429": 0.1, "slow": 0.2} and plan.param("slow") == 1.5 and plan.param("429") == 1.0
    assert set(FaultPlan.parse("all:0.05").rates) == {"429", "5xx", "reset", "truncate", "slow", "expire", "repeat"}
    assert not FaultPlan.parse("").active


def test_fault_decisions_are_deterministic_by_seed():
    keys = [f"tickettailor GET /v1/orders?starting_after=or_{i}" for i in range(300)]

    def decisions(seed: int) -> list[bool]:
        plan = FaultPlan.parse("5xx:0.3", seed=seed)
        return [plan.hit("5xx", k) for k in keys]

    a, b, c = decisions(1), decisions(1), decisions(2)
    assert a == b and a != c
    assert 40 < sum(a) < 140  # about 30 %


def test_never_more_than_max_consecutive_strikes():
    plan = FaultPlan.parse("reset:1", seed=3)
    seq = [plan.hit("reset", "k") for _ in range(9)]
    assert seq == ([True] * MAX_CONSECUTIVE + [False]) * 3


def test_stats_count_requests_and_injected_faults():
    with start_sandbox(anchor=ANCHOR, faults="5xx:1") as sb:
        for _ in range(MAX_CONSECUTIVE + 1):
            _get(sb.base_url)
        stats = httpx.get(sb.base_url + "/_sandbox/stats").json()
        assert stats["requests"]["tickettailor"] == MAX_CONSECUTIVE + 1
        assert stats["faults_injected"]["5xx"] == MAX_CONSECUTIVE


def test_cli_rejects_a_bad_fault_spec(capsys):
    args = argparse.Namespace(port=0, seed=7, scale=1, faults="nope:1")
    assert sandbox_main(args) == 2
    assert "unknown fault" in capsys.readouterr().err


# The child starts as from a shell: default SIGINT/SIGTERM dispositions and nothing blocked, whatever
# the test worker's state. Twice under pytest-xdist a child here inherited a state in which
# SIGINT/SIGTERM did nothing (not reproduced since); what is tested is the child's own handling.
DEFAULT_SIGNALS = [sys.executable, "-c",
                   "import os, signal, sys; signal.pthread_sigmask(signal.SIG_SETMASK, []); "
                   "[signal.signal(s, signal.SIG_DFL) for s in (signal.SIGINT, signal.SIGTERM)]; "
                   "os.execvp(sys.argv[1], sys.argv[1:])"]


def _signal_state(pid: int) -> str:
    """The blocked, ignored and caught signal masks of a process, from /proc (Linux)."""
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError as exc:
        return f"unreadable ({exc})"
    return " ".join(line.replace("\t", "") for line in lines if line.startswith(("SigBlk", "SigIgn", "SigCgt")))


def test_cli_serves_prints_exports_and_stops_cleanly_on_ctrl_c():
    proc = subprocess.Popen(
        [*DEFAULT_SIGNALS, sys.executable, "-m", "pipelines.cli", "sandbox", "--port", "0", "--faults", "429:0.1",
         "--rate-limit", "cordial=100/10,cymbal=100/10"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        lines = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line.strip())
            if line.startswith("Press Ctrl-C"):
                break
        exports = dict(line[len("export "):].split("=", 1) for line in lines if line.startswith("export "))
        assert {"TICKETTAILOR_BASE_URL", "TICKETTAILOR_API_KEY", "SYMPLA_TOKEN", "CORDIAL_API_KEY"} <= set(exports)
        assert any("429:0.1" in line for line in lines if line.startswith("faults"))
        assert "rate limits: cordial=100/10, cymbal=100/10" in lines
        base = exports["TICKETTAILOR_BASE_URL"]
        r = httpx.get(base + "/v1/events", auth=(exports["TICKETTAILOR_API_KEY"], ""), params={"limit": 1})
        assert r.status_code in (200, 429)
        signals = _signal_state(proc.pid)  # for the message: a stop that never comes is a signal masked
        proc.send_signal(signal.SIGINT)
        try:
            code = proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the sandbox did not stop within 15 s of SIGINT; its signal state then: {signals}")
        assert code == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


# --- vendor glitches: scoped, sticky, changeable on a running sandbox ------------------------------

from sandbox.faults import GLITCH_NAMES  # noqa: E402


def test_glitch_specs_take_a_path_scope_and_stay_out_of_all():
    plan = FaultPlan.parse("empty:1@/tickettailor/v1/orders, 5xx:0.5")
    assert plan.scopes == {"empty": "/tickettailor/v1/orders"}
    assert plan.spec == "5xx:0.5,empty:1@/tickettailor/v1/orders"
    assert plan.hit("empty", "tickettailor GET /v1/orders?limit=100")
    assert not plan.hit("empty", "tickettailor GET /v1/events?limit=100")
    assert not plan.hit("empty", "sympla GET /v1/orders?limit=100")
    assert not set(GLITCH_NAMES) & set(FaultPlan.parse("all:0.5").rates)
    for bad in ("empty:1@tickettailor", "all:0.1@/x", "oversize:1:-3"):
        with pytest.raises(FaultSpecError):
            FaultPlan.parse(bad)


def test_glitches_are_sticky_per_request_not_capped_like_transport_faults():
    plan = FaultPlan.parse("shapeless:0.5", seed=3)
    keys = [f"tickettailor GET /v1/orders?starting_after=or_{i}" for i in range(200)]
    first = [plan.hit("shapeless", k) for k in keys]
    assert all([plan.hit("shapeless", k) for k in keys] == first for _ in range(MAX_CONSECUTIVE + 1))
    assert 60 < sum(first) < 140
    assert [plan.hit("shapeless", "k") for _ in range(5)] in ([True] * 5, [False] * 5)


def test_glitches_change_on_a_running_sandbox_and_strike_only_their_scope():
    with start_sandbox(anchor=ANCHOR) as sb:
        put = httpx.put(sb.base_url + "/_sandbox/faults", params={"spec": "nulldata:1@/tickettailor/v1/events"})
        assert put.json()["spec"] == "nulldata:1@/tickettailor/v1/events"
        assert _get(sb.base_url).json() == {"data": None}
        orders = httpx.get(sb.base_url + "/tickettailor/v1/orders", auth=KEY, params={"limit": 2}).json()
        assert len(orders["data"]) == 2  # out of scope: untouched
        assert httpx.put(sb.base_url + "/_sandbox/faults", params={"spec": "bogus:1"}).status_code == 400
        sb.set_faults("")
        assert len(_get(sb.base_url).json()["data"]) == 6


# --- generic rate limits (any provider), the listen backlog, many keep-alive connections ------------

CORDIAL = (w.CORDIAL_API_KEY, "")


def _contact(i: int) -> dict:
    return {"identifiers": {"email": f"fan{i}@example.com"}}


def _upsert(client: httpx.Client, base: str, i: int) -> httpx.Response:
    return client.post(base + "/cordial/upsertContact", json=_contact(i), auth=CORDIAL)


def _stats(sb) -> dict:
    return httpx.get(sb.base_url + "/_sandbox/stats").json()


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_rate_limit_is_a_token_bucket_and_says_when_a_request_would_be_taken():
    clock = FakeClock()
    limits = RateLimits({"cordial": (3, 10.0)}, clock=clock)  # 3 at once, then one per 3.33 s
    for t in (0.0, 1.0, 2.0):
        clock.now = 1000 + t
        assert limits.admit("cordial") is None
    clock.now = 1003.0
    assert limits.admit("cordial") == 1  # the bucket has a request again at t=3.33: 0.33 s rounds up to 1
    clock.now = 1003.4
    assert limits.admit("cordial") is None
    clock.now = 1004.0
    assert limits.admit("cordial") == 3  # the next one at t=6.67
    clock.now = 1006.7
    assert limits.admit("cordial") is None
    clock.now = 1040.0
    assert [limits.admit("cordial") for _ in range(4)] == [None, None, None, 4]  # full again: 3 at once
    assert limits.rejected == {"cordial": 3}
    assert limits.admit("sympla") is None  # not limited


def test_rate_limit_specs():
    assert parse_rate_limits("cordial=100/10, cymbal=100/10s,tickettailor=2000/1h,sympla=50/1m,cymbio=5/s") == {
        "cordial": (100, 10.0), "cymbal": (100, 10.0), "tickettailor": (2000, 3600.0), "sympla": (50, 60.0),
        "cymbio": (5, 1.0)}
    assert parse_rate_limits("") == {}
    for bad in ("cordial", "cordial=100", "cordial=0/10", "cordial=10/0", "cordial=10/", "cordial=ten/10"):
        with pytest.raises(RateLimitSpecError):
            parse_rate_limits(bad)


def test_a_rate_limited_request_is_a_429_with_retry_after_and_is_not_processed():
    with start_sandbox(anchor=ANCHOR, rate_limits={"cordial": (3, 2.5)}) as sb, httpx.Client(timeout=10) as c:
        assert [_upsert(c, sb.base_url, i).status_code for i in range(3)] == [202] * 3
        limited = _upsert(c, sb.base_url, 3)
        assert limited.status_code == 429
        assert limited.headers["Retry-After"] == "1"  # 0.83 s until the bucket takes one, rounded up
        assert "Too Many Requests" in limited.json()["error"]  # Cordial's own error style
        assert set(co_sandbox.stored(sb.ctx, "upsertContact")) == {f"fan{i}@example.com" for i in range(3)}
        assert len(sb.ctx.recorder.items("cordial")) == 3  # the 429'd push was not recorded
        # Other providers are not limited.
        assert c.get(sb.base_url + PATH, auth=KEY).status_code == 200
        stats = _stats(sb)
        assert stats["rate_limited"] == {"cordial": 1} and stats["requests"]["cordial"] == 4
        time.sleep(0.9)
        assert _upsert(c, sb.base_url, 4).status_code == 202  # the bucket has refilled by one


@pytest.mark.parametrize("provider,call,shape", [
    ("tickettailor", lambda c, b: c.get(b + "/tickettailor/v1/events", auth=KEY),
     lambda body: body["status"] == 429 and body["error_code"] == "Too Many Requests"),
    ("sympla", lambda c, b: c.get(b + "/sympla/events", headers={"s_token": w.SYMPLA_TOKEN}),
     lambda body: body["error"] is True and body["code"] == 429),
    ("cymbal", lambda c, b: c.get(b + "/cymbal/v1/partners/campaigns/analytics",
                                  headers={"Cymbal-Partner-API-Key": w.CYMBAL_API_KEY}),
     lambda body: body["status"] == 429 and "Too Many Requests" in body["message"]),
    ("cymbio", lambda c, b: c.post(b + "/cymbio/oauth/token", data={
        "grant_type": "client_credentials", "client_id": w.CYMBIO_CLIENT_ID, "client_secret": w.CYMBIO_CLIENT_SECRET}),
     lambda body: body["success"] is False and body["error"] == "too_many_requests"),
    ("cordial", lambda c, b: c.post(b + "/cordial/upsertContact", json=_contact(1), auth=CORDIAL),
     lambda body: "Too Many Requests" in body["error"]),
])
def test_every_provider_can_be_rate_limited_in_its_own_error_style(provider, call, shape):
    with start_sandbox(anchor=ANCHOR, rate_limits={provider: (1, 60.0)}) as sb, httpx.Client(timeout=10) as c:
        assert call(c, sb.base_url).status_code < 400
        limited = call(c, sb.base_url)
        assert limited.status_code == 429 and 59 <= int(limited.headers["Retry-After"]) <= 60
        assert shape(limited.json())
        assert _stats(sb)["rate_limited"] == {provider: 1}


def test_ticket_tailor_keeps_its_hourly_budget_and_headers_under_a_generic_limit():
    with start_sandbox(anchor=ANCHOR, rate_limits={"tickettailor": (2, 60.0)}) as sb, httpx.Client(timeout=10) as c:
        first = c.get(sb.base_url + PATH, auth=KEY)
        second = c.get(sb.base_url + PATH, auth=KEY)
        assert first.headers["X-Rate-Limit-Limit"] == "2000"
        assert int(first.headers["X-Rate-Limit-Remaining"]) - 1 == int(second.headers["X-Rate-Limit-Remaining"])
        assert c.get(sb.base_url + PATH, auth=KEY).status_code == 429  # the generic limit
        sb.set_rate_limits({})
        after = c.get(sb.base_url + PATH, auth=KEY)
        # The generic 429 did not spend the hourly budget: it was never processed.
        assert int(after.headers["X-Rate-Limit-Remaining"]) == int(second.headers["X-Rate-Limit-Remaining"]) - 1


def test_rate_limits_change_on_a_running_sandbox():
    with start_sandbox(anchor=ANCHOR) as sb, httpx.Client(timeout=10) as c:
        assert [_upsert(c, sb.base_url, i).status_code for i in range(5)] == [202] * 5
        sb.set_rate_limits({"cordial": (1, 60.0)})
        assert sb.rate_limits == {"cordial": (1, 60.0)}
        assert [_upsert(c, sb.base_url, i).status_code for i in range(2)] == [202, 429]
        put = c.put(sb.base_url + "/_sandbox/rate_limits", params={"spec": "cordial=3/1m"})
        assert put.json() == {"spec": "cordial=3/60", "limits": {"cordial": [3, 60.0]}}
        assert [_upsert(c, sb.base_url, i).status_code for i in range(4)] == [202, 202, 202, 429]
        assert c.put(sb.base_url + "/_sandbox/rate_limits", params={"spec": "cordial=lots"}).status_code == 400
        assert c.put(sb.base_url + "/_sandbox/rate_limits", params={"spec": ""}).json()["limits"] == {}
        assert _upsert(c, sb.base_url, 9).status_code == 202
        assert _stats(sb)["rate_limited"] == {"cordial": 2}


def test_the_listen_backlog_holds_many_connections_before_they_are_accepted():
    # Listening but not accepting yet: only `backlog` connections complete their handshake. With the
    # stdlib's default of 5, the rest would wait for SYN retries (or be reset) under a burst.
    ctx = SandboxContext(world=w.World(anchor=ANCHOR), faults=FaultPlan.parse(""))
    sb = Sandbox([CordialSandbox()], ctx, _internal)
    socks = []
    try:
        for _ in range(40):
            s = socket.create_connection(("127.0.0.1", sb.port), timeout=0.5)  # raises if not queued
            socks.append(s)
        sb.start()
        request = b"GET /_sandbox/stats HTTP/1.1\r\nHost: x\r\n\r\n"
        for s in socks:
            s.sendall(request)
            assert s.recv(64).startswith(b"HTTP/1.1 200")
    finally:
        for s in socks:
            s.close()
        sb.stop()
    assert LISTEN_BACKLOG >= 128 and sb._server.daemon_threads


def test_many_concurrent_keep_alive_connections_are_all_served():
    with start_sandbox(anchor=ANCHOR) as sb:
        errors: list[str] = []
        done = [0] * 32
        barrier = threading.Barrier(32)

        def worker(k: int) -> None:
            barrier.wait()
            try:
                with httpx.Client(timeout=20) as c:
                    for i in range(10):
                        assert _upsert(c, sb.base_url, k * 100 + i).status_code == 202
                        done[k] += 1
            except Exception as exc:  # noqa: BLE001 - collected and asserted below
                errors.append(repr(exc))

        threads = [threading.Thread(target=worker, args=(k,)) for k in range(32)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        assert errors == [] and sum(done) == 320
        assert len(sb.ctx.recorder.items("cordial")) == 320


def test_stats_list_every_path_requested_even_unknown_ones():
    with start_sandbox(anchor=ANCHOR) as sb:
        _get(sb.base_url)
        assert httpx.get(sb.base_url + "/v1.5.1/events/1").status_code == 404
        paths = _stats(sb)["paths"]
        assert paths == {PATH: 1, "/v1.5.1/events/1": 1}


def test_the_server_reads_headers_with_the_stdlib_limits_and_refuses_malformed_ones():
    with start_sandbox(anchor=ANCHOR) as sb:
        def raw(head: bytes) -> bytes:
            with socket.create_connection(("127.0.0.1", sb.port), timeout=5) as s:
                s.sendall(head)
                return s.recv(65536)

        auth = "Basic " + base64.b64encode(f"{KEY[0]}:".encode()).decode()
        folded = raw(f"GET {PATH} HTTP/1.1\r\nHost: x\r\nX-Other: a\r\n b\r\nAuthorization: {auth}\r\n"
                     f"Connection: close\r\n\r\n".encode())
        assert folded.startswith(b"HTTP/1.1 200") and b"Connection: close" not in folded.split(b"\r\n\r\n")[0]
        assert raw(b"GET / HTTP/1.1\r\nno colon here\r\n\r\n").startswith(b"HTTP/1.1 400 Malformed header")
        assert raw(b"POST /cordial/upsertContact HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}"
                   ).startswith(b"HTTP/1.1 400 Conflicting Content-Length")
        many = "".join(f"X-{i}: {i}\r\n" for i in range(101))
        assert raw(f"GET / HTTP/1.1\r\n{many}\r\n".encode()).startswith(b"HTTP/1.1 431 Too many headers")
        assert raw(b"GET / HTTP/1.1\r\nX-Long: " + b"a" * 70000 + b"\r\n\r\n").startswith(b"HTTP/1.1 431 Line too")


def test_cli_rejects_a_bad_rate_limit(capsys):
    args = argparse.Namespace(port=0, seed=7, scale=1, faults="", rate_limit="cordial=many")
    assert sandbox_main(args) == 2
    assert "--rate-limit" in capsys.readouterr().err
