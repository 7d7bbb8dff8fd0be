"""Cymbio client against the sandbox over real HTTP on 127.0.0.1, token expiry included."""

from __future__ import annotations

import threading
import time
from datetime import date

import pytest

from resources.cymbio import CymbioResource
from resources.errors import ProviderAuthError, ProviderRequestError
from sandbox import cymbio as cb_sandbox
from sandbox import start_sandbox
from sandbox import world as w

ANCHOR = date(2026, 3, 15)
# Retry-After: 0 on the 429s: honouring a real wait is tested in test_http_core; here it only cost time.
FAULTS = "429:0.08:0,5xx:0.1,reset:0.1,truncate:0.08,slow:0.05:0.6,repeat:0.5,expire:0.3"


def client(sb, **kw) -> CymbioResource:
    params = dict(client_id=sb.env["CYMBIO_CLIENT_ID"], client_secret=sb.env["CYMBIO_CLIENT_SECRET"],
                  retailer_id=sb.env["CYMBIO_RETAILER_ID"], base_url=sb.env["CYMBIO_BASE_URL"],
                  backoff_base_seconds=0.05, backoff_max_seconds=0.2, timeout_seconds=10.0)
    return CymbioResource(**{**params, **kw})


def flat(pages) -> list[dict]:
    return [r for page in pages for r in page]


def count(sb) -> int:
    return sb.ctx.request_counts.get("cymbio", 0)


def test_variants_one_token_minimum_pages():
    with start_sandbox(anchor=ANCHOR, scale=4) as sb, client(sb).session() as c:
        got = flat(c.iter_variants())
        truth = list(cb_sandbox.iter_variants(sb.world))
        assert got == truth and len(truth) == 1200
        # 1 token + 2 pages of limit=1000 (1000 + 200): the minimum.
        assert count(sb) == 3 and c.token_fetches == 1


def test_token_expiry_mid_read_reauthenticates_and_loses_nothing():
    with start_sandbox(anchor=ANCHOR, scale=4) as sb:
        expected = list(cb_sandbox.iter_variants(sb.world))
    # expire:1 -> every token is rejected on its second use: each page after the first hits a 401.
    with start_sandbox(anchor=ANCHOR, scale=4, faults="expire:1") as sb, client(sb).session() as c:
        pages = c.iter_variants()
        first = next(pages)
        rest = flat(pages)
        assert first + rest == expected
        assert c.token_fetches == 2 and sb.ctx.faults.injected.get("expire") == 1


def test_token_refreshed_before_expiry_without_a_401():
    with start_sandbox(anchor=ANCHOR, scale=4) as sb:
        cb_sandbox.configure(sb.ctx, token_ttl_seconds=2)
        with client(sb, token_margin_seconds=1.0).session() as c:
            pages = c.iter_variants()
            first = next(pages)
            time.sleep(1.2)  # past expiry minus the margin: the next page must use a fresh token
            rest = flat(pages)
            assert len(first) + len(rest) == 1200
            assert c.token_fetches == 2
            assert count(sb) == 4  # 2 tokens + 2 pages: no request was wasted on a 401


def test_token_cache_is_shared_by_threads():
    with start_sandbox(anchor=ANCHOR) as sb, client(sb).session() as c:
        first_order = cb_sandbox.FIRST_ORDER_ID
        results: list[list[dict]] = []
        threads = [threading.Thread(target=lambda k=k: results.append(c.get_order_line_statuses(first_order + k)))
                   for k in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(results) == 8 and c.token_fetches == 1


def test_order_line_statuses():
    with start_sandbox(anchor=ANCHOR) as sb, client(sb).session() as c:
        oid = cb_sandbox.FIRST_ORDER_ID + 5
        assert c.get_order_line_statuses(oid) == cb_sandbox.order(sb.world, 5)["orderLines"]
        assert c.get_order(oid)["cymbioOrderId"] == oid
        with pytest.raises(ProviderRequestError) as info:
            c.get_order_line_statuses(1)
        assert info.value.status == 404


def test_returns_not_acknowledged_then_acknowledge():
    with start_sandbox(anchor=ANCHOR) as sb, client(sb).session() as c:
        truth = [r for r in cb_sandbox.current_returns(sb.ctx) if not r["acknowledged"]]
        got = flat(c.iter_returns_not_acknowledged())
        assert got == truth and got
        for r in got:
            assert c.acknowledge_return(r["returnId"]) is None
        assert flat(c.iter_returns_not_acknowledged()) == []
        new_ids = cb_sandbox.add_returns(sb.ctx, 3)
        assert [r["returnId"] for r in flat(c.iter_returns_not_acknowledged())] == new_ids


def test_faulty_run_returns_exactly_the_fault_free_records():
    with start_sandbox(anchor=ANCHOR, scale=4) as sb, client(sb).session() as c:
        variants, returns = flat(c.iter_variants()), flat(c.iter_returns_not_acknowledged())
        lines = c.get_order_line_statuses(cb_sandbox.FIRST_ORDER_ID)
    # A read timeout below the sandbox's `slow` delay (0.6 s), so slow replies are cut and retried. The
    # other tests keep a generous one: they count requests, and a loaded machine must not add a retry.
    with start_sandbox(anchor=ANCHOR, scale=4, faults=FAULTS) as sb, client(sb, timeout_seconds=0.4).session() as c:
        for _ in range(3):  # several passes so every fault type gets its chance
            assert flat(c.iter_variants()) == variants
            assert flat(c.iter_returns_not_acknowledged()) == returns
        assert c.get_order_line_statuses(cb_sandbox.FIRST_ORDER_ID) == lines
        for r in returns[:10]:
            c.acknowledge_return(r["returnId"])
        assert flat(c.iter_returns_not_acknowledged()) == returns[10:]
        injected = sb.ctx.faults.injected
    for fault in ("429", "5xx", "reset", "truncate", "slow", "repeat", "expire"):
        assert injected.get(fault, 0) > 0, f"{fault} was never injected"


def test_bad_client_secret_fails_fast_without_leaking_it():
    with start_sandbox(anchor=ANCHOR) as sb:
        bad = client(sb, client_secret="not-the-secret-4321")
        with pytest.raises(ProviderAuthError) as info:
            list(bad.iter_variants())
        assert count(sb) == 1  # the token request only, not retried
    message = str(info.value)
    assert "CYMBIO_CLIENT_SECRET" in message and "not-the-secret-4321" not in message


def test_wrong_retailer_is_a_403_not_retried():
    with start_sandbox(anchor=ANCHOR) as sb, client(sb, retailer_id="999").session() as c:
        with pytest.raises(ProviderAuthError) as info:
            list(c.iter_variants())
        assert info.value.status == 403 and "CYMBIO_RETAILER_ID" in str(info.value)
        assert count(sb) == 2  # token + one refused request
    assert w.CYMBIO_CLIENT_SECRET not in str(info.value)


def test_ids_that_could_rewrite_the_path_are_refused_before_sending():
    with start_sandbox(anchor=ANCHOR) as sb, client(sb).session() as c:
        for bad in ("1/../../2", "..", "7?x=1", "7#"):
            with pytest.raises(ProviderRequestError, match="cymbio: the return id .* cannot be used in a URL path"):
                c.acknowledge_return(bad)
        assert count(sb) == 0  # not even a token was fetched
        c.acknowledge_return(next(iter(flat(c.iter_returns_not_acknowledged())))["returnId"])  # ints are fine
    with start_sandbox(anchor=ANCHOR) as sb, client(sb, retailer_id="4242/../1").session() as c:
        with pytest.raises(ProviderRequestError, match="cymbio: the retailer id '4242/../1' cannot be used"):
            list(c.iter_variants())
        assert count(sb) == 0

