"""Cordial client against the sandbox over real HTTP on 127.0.0.1."""

from __future__ import annotations

from datetime import date

import pytest

from resources.cordial import CordialResource
from resources.errors import ProviderAuthError, ProviderRequestError
from sandbox import cordial as co_sandbox
from sandbox import start_sandbox

ANCHOR = date(2026, 3, 15)
# Retry-After: 0 on the 429s: honouring a real wait is tested in test_http_core; here it only cost time.
FAULTS = "429:0.1:0,5xx:0.15,reset:0.15,truncate:0.1,slow:0.1:0.6"


def client(sb) -> CordialResource:
    return CordialResource(api_key=sb.env["CORDIAL_API_KEY"], base_url=sb.env["CORDIAL_BASE_URL"],
                           backoff_base_seconds=0.05, backoff_max_seconds=0.2, timeout_seconds=0.4)


def contact(i: int) -> dict:
    return {"source": "marquee", "identifiers": {"email": f"fan{i}@example.com"},
            "attributes": {"channels.email.subscribeStatus": "subscribed"}}


def order(i: int) -> dict:
    return {"source": "marquee", "contact": {"identifiers": {"email": f"fan{i}@example.com"}},
            "orderID": f"tickettailor:or_{i}", "purchaseDate": "2026-03-01T10:00:00+00:00",
            "status": "completed", "totalAmount": 25.5,
            "items": [{"productID": "ev_1", "sku": "tt_1", "name": "GA", "qty": 1, "itemPrice": 25.5}]}


def test_upserts_are_accepted():
    with start_sandbox(anchor=ANCHOR) as sb, client(sb).session() as c:
        reply = c.upsert_contact(contact(1))
        assert reply["accepted"] is True and reply["requestId"]
        assert c.upsert_order(order(1))["accepted"] is True
        assert co_sandbox.stored(sb.ctx, "upsertContact") == {"fan1@example.com": contact(1)}
        assert co_sandbox.stored(sb.ctx, "upsertOrder") == {"tickettailor:or_1": order(1)}


def test_upserts_under_faults_end_in_the_same_state():
    with start_sandbox(anchor=ANCHOR, faults=FAULTS) as sb, client(sb).session() as c:
        for i in range(25):
            assert c.upsert_contact(contact(i))["accepted"] is True
            assert c.upsert_order(order(i))["accepted"] is True
        assert co_sandbox.stored(sb.ctx, "upsertContact") == {f"fan{i}@example.com": contact(i) for i in range(25)}
        assert co_sandbox.stored(sb.ctx, "upsertOrder") == {f"tickettailor:or_{i}": order(i) for i in range(25)}
        injected = sb.ctx.faults.injected
    for fault in ("429", "5xx", "reset", "truncate", "slow"):
        assert injected.get(fault, 0) > 0, f"{fault} was never injected"


def test_bad_key_and_invalid_payload_are_not_retried():
    with start_sandbox(anchor=ANCHOR) as sb:
        bad = CordialResource(api_key="wrong-cordial-key-1", base_url=sb.env["CORDIAL_BASE_URL"])
        with pytest.raises(ProviderAuthError) as info:
            bad.upsert_contact(contact(1))
        assert "CORDIAL_API_KEY" in str(info.value) and "wrong-cordial-key-1" not in str(info.value)
        with pytest.raises(ProviderRequestError) as info422:
            client(sb).upsert_order({"orderID": "x"})
        assert info422.value.status == 422
        assert sb.ctx.request_counts["cordial"] == 2


def test_base_url_is_required():
    assert not CordialResource(api_key="k").configured()


def test_threads_sharing_one_client_stay_within_a_configured_rate_limit():
    """4 threads push 250 upserts through one resource limited to 50 per 2 s, against a sandbox
    that enforces 50 per 2 s: no 429 at all, and it takes about the floor time, (250 - 50) / 25 = 8 s
    (the first 50 go at once; the client keeps a 50 ms margin per window)."""
    import threading
    import time

    requests, limit, window = 250, 50, 2.0
    floor = (requests - limit) / (limit / window)
    with start_sandbox(anchor=ANCHOR, rate_limits={"cordial": (limit, window)}) as sb:
        res = CordialResource(api_key=sb.env["CORDIAL_API_KEY"], base_url=sb.env["CORDIAL_BASE_URL"],
                              rate_limit="50/2s", timeout_seconds=10)
        errors: list[BaseException] = []
        queue = list(range(requests))
        lock = threading.Lock()

        def worker() -> None:
            while True:
                with lock:
                    if not queue:
                        return
                    i = queue.pop()
                try:
                    res.upsert_order(order(i))
                except BaseException as exc:  # noqa: BLE001 - collected and asserted below
                    errors.append(exc)

        with res.session():
            threads = [threading.Thread(target=worker) for _ in range(4)]
            started = time.monotonic()
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=60)
            elapsed = time.monotonic() - started
            sent = res._http().requests_sent
        assert errors == []
        assert sb.ctx.rate_limits.rejected == {} and sent == requests  # zero 429s, so no retries either
        assert len(co_sandbox.stored(sb.ctx, "upsertOrder")) == requests
        assert floor <= elapsed < floor * 1.2, elapsed
