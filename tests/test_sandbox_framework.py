"""The sandbox framework: generic faults strike and a retry gets through, fault specs, the
stats endpoint, and the `marquee sandbox` command."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from datetime import date

import httpx
import pytest

from pipelines.sandbox import start_sandbox
from pipelines.sandbox import world as w
from pipelines.sandbox.cli import main as sandbox_main
from pipelines.sandbox.faults import MAX_CONSECUTIVE, FaultPlan, FaultSpecError

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


def test_cli_serves_prints_exports_and_stops_cleanly_on_ctrl_c():
    proc = subprocess.Popen(
        [sys.executable, "-m", "pipelines.cli", "sandbox", "--port", "0", "--faults", "429:0.1"],
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
        base = exports["TICKETTAILOR_BASE_URL"]
        r = httpx.get(base + "/v1/events", auth=(exports["TICKETTAILOR_API_KEY"], ""), params={"limit": 1})
        assert r.status_code in (200, 429)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


# --- vendor glitches: scoped, sticky, changeable on a running sandbox ------------------------------

from pipelines.sandbox.faults import GLITCH_NAMES  # noqa: E402


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
