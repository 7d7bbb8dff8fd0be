"""Cymbal client against the sandbox over real HTTP on 127.0.0.1."""

from __future__ import annotations

from datetime import date

import pytest

from resources.cymbal import CymbalResource
from resources.errors import ProviderAuthError, ProviderRequestError
from sandbox import cymbal as cy_sandbox
from sandbox import start_sandbox

ANCHOR = date(2026, 3, 15)
# Retry-After: 0 on the 429s: honouring a real wait is tested in test_http_core; here it only cost time.
FAULTS = "429:0.1:0,5xx:0.15,reset:0.15,truncate:0.1,slow:0.08:0.6,repeat:0.9"


def client(sb, **kw) -> CymbalResource:
    return CymbalResource(api_key=sb.env["CYMBAL_API_KEY"], base_url=sb.env["CYMBAL_BASE_URL"],
                          backoff_base_seconds=0.05, backoff_max_seconds=0.2, timeout_seconds=0.4, **kw)


def flat(pages) -> list[dict]:
    return [r for page in pages for r in page]


def event(i: int) -> dict:
    return {"id": f"ev{i}", "url": f"https://example.com/e/{i}", "name": f"Event {i}",
            "image_url": "https://example.com/i.png", "start_datetime": "2026-03-20T19:00:00Z",
            "location": "London", "status": "live"}


def order(i: int) -> dict:
    return {"id": f"or{i}", "event_id": "ev1", "customer": {"email": f"buyer{i}@example.com"},
            "marketing_opt_ins": {"email": True, "sms": None},
            "items": [{"name": "GA", "price": 2500, "quantity": 1, "currency_code": "GBP"}]}


def test_campaign_analytics_all_pages_both_types():
    with start_sandbox(anchor=ANCHOR) as sb, client(sb).session() as c:
        got = flat(c.iter_campaign_analytics())
        assert sb.ctx.request_counts["cymbal"] == 1  # 8 campaigns < per_page 100: one short page
        truth = [cy_sandbox.campaign_analytics(sb.world, k) for k in cy_sandbox.listed_campaigns(sb.world)]
    assert got == truth
    assert {c["type"] for c in got} == {"email", "sms"}


def test_campaign_analytics_pages_to_the_short_page(monkeypatch):
    # A server that serves at most 3 per page (and says so): the client must follow every page.
    monkeypatch.setattr(cy_sandbox, "MAX_PER_PAGE", 3)
    with start_sandbox(anchor=ANCHOR) as sb:
        c = CymbalResource(api_key=sb.env["CYMBAL_API_KEY"], base_url=sb.env["CYMBAL_BASE_URL"])
        monkeypatch.setattr("resources.cymbal.MAX_PER_PAGE", 3)
        got = flat(c.iter_campaign_analytics())
        assert [x["id"] for x in got] == [k.id for k in cy_sandbox.listed_campaigns(sb.world)]
        assert sb.ctx.request_counts["cymbal"] == 3  # 8 records, 3 per page: 3 + 3 + 2


def test_faulty_reads_and_writes_end_in_the_fault_free_state():
    with start_sandbox(anchor=ANCHOR) as sb:
        expected = flat(client(sb).iter_campaign_analytics())
    with start_sandbox(anchor=ANCHOR, faults=FAULTS) as sb, client(sb, batch_size=40).session() as c:
        assert flat(c.iter_campaign_analytics()) == expected
        events, orders = [event(i) for i in range(100)], [order(i) for i in range(90)]
        contacts = [{"email": f"fan{i}@example.com", "opt_ins": {"email": True}} for i in range(12)]
        assert c.create_events(events) == [{"status": "queued"}] * 3  # batches of 40, 40, 20
        assert c.create_orders(orders) == [{"status": "queued"}] * 3
        assert c.create_contacts(contacts) == [{"status": "queued"}] * 12
        assert cy_sandbox.stored(sb.ctx, "events") == {e["id"]: e for e in events}
        assert cy_sandbox.stored(sb.ctx, "orders") == {o["id"]: o for o in orders}
        assert set(cy_sandbox.stored(sb.ctx, "contact")) == {x["email"] for x in contacts}
        injected = sb.ctx.faults.injected
    for fault in ("429", "5xx", "reset", "truncate", "slow"):
        assert injected.get(fault, 0) > 0, f"{fault} was never injected"


def test_writes_batch_without_faults():
    with start_sandbox(anchor=ANCHOR) as sb, client(sb, batch_size=100).session() as c:
        c.create_events([event(i) for i in range(250)])
        assert sb.ctx.request_counts["cymbal"] == 3
        assert len(sb.ctx.recorder.items("cymbal", "events")) == 250


def test_revoked_key_403_says_generate_a_new_one_and_is_not_retried():
    with start_sandbox(anchor=ANCHOR) as sb:
        bad = CymbalResource(api_key="revoked-key-98765", base_url=sb.env["CYMBAL_BASE_URL"])
        with pytest.raises(ProviderAuthError) as info:
            list(bad.iter_campaign_analytics())
        with pytest.raises(ProviderAuthError):
            bad.create_events([event(1)])
        assert sb.ctx.request_counts["cymbal"] == 2
    message = str(info.value)
    assert info.value.status == 403 and "revoked" in message and "Cymbal manager" in message
    assert "revoked-key-98765" not in message


def test_invalid_batch_422_is_not_retried():
    with start_sandbox(anchor=ANCHOR) as sb, client(sb).session() as c:
        with pytest.raises(ProviderRequestError) as info:
            c.create_events([{"id": "x"}])
        assert sb.ctx.request_counts["cymbal"] == 1 and info.value.status == 422
