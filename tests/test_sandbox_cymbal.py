"""The Cymbal sandbox over loopback HTTP: auth, campaign analytics paging, filters, faults, writes."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, date, datetime

import httpx
import pytest

from sandbox import start_sandbox
from sandbox import world as w
from sandbox.cymbal import campaign_analytics, stored

ANCHOR = date(2026, 3, 15)
ANALYTICS = "/v1/partners/campaigns/analytics"
HEADERS = {"Cymbal-Partner-API-Key": w.CYMBAL_API_KEY}
RECORD_FIELDS = {"id", "name", "type", "sent_at", "num_recipients", "num_delivered", "num_opened",
                 "num_links_clicked", "num_unsubscribed", "attributed_revenue", "currency_code"}


@pytest.fixture(scope="module")
def _module_sandbox() -> Iterator:
    # One server per module: stopping one waits out the server's poll interval.
    with start_sandbox(anchor=ANCHOR) as sandbox:
        yield sandbox


@pytest.fixture
def sb(_module_sandbox) -> Iterator:
    _module_sandbox.ctx.recorder.clear()
    _module_sandbox.ctx.state.pop("cymbal", None)
    yield _module_sandbox


@pytest.fixture
def client(sb) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sb.url("cymbal"), headers=HEADERS, timeout=10) as c:
        yield c


def _sent_before_now(world: w.World) -> list[w.Campaign]:
    return [c for c in world.campaigns if c.sent_at < world.end]


def _page_sizes(client: httpx.Client, per_page: int, **params: str) -> list[list[dict]]:
    pages = []
    for page in range(1, 20):
        r = client.get(ANALYTICS, params={"page": page, "per_page": per_page, **params})
        assert r.status_code == 200
        pages.append(r.json()["data"])
        if len(pages[-1]) < per_page:
            return pages
    raise AssertionError("pagination never ended")


# --- auth ---------------------------------------------------------------------------------------------

def test_missing_key_is_401_and_wrong_key_is_403(sb):
    url = sb.url("cymbal") + ANALYTICS
    missing = httpx.get(url)
    assert missing.status_code == 401
    assert missing.headers["content-type"].startswith("application/json")
    assert missing.json()["message"]
    revoked = httpx.get(url, headers={"Cymbal-Partner-API-Key": "revoked-key"})
    assert revoked.status_code == 403
    assert "revoked" in revoked.json()["message"]
    # Writes are guarded the same way.
    assert httpx.post(sb.url("cymbal") + "/v1/partners/events", json={"events": []}).status_code == 401


# --- campaign analytics -------------------------------------------------------------------------------

def test_default_page_has_the_design_shape(sb, client):
    body = client.get(ANALYTICS).json()
    assert set(body) == {"data", "page", "per_page", "total"}
    assert body["page"] == 1 and body["per_page"] == 10
    expected = _sent_before_now(sb.world)
    assert body["total"] == len(expected) == 8
    assert {r["id"] for r in body["data"]} == {c.id for c in expected}


def test_records_match_the_world_and_are_sane(sb, client):
    by_id = {c.id: c for c in sb.world.campaigns}
    records = client.get(ANALYTICS, params={"per_page": 100}).json()["data"]
    for rec in records:
        assert set(rec) == RECORD_FIELDS
        camp = by_id[rec["id"]]
        assert rec["name"] == camp.name and rec["type"] == camp.type
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z", rec["sent_at"])
        assert datetime.fromisoformat(rec["sent_at"]) == camp.sent_at.astimezone(UTC)
        assert rec["currency_code"] == camp.currency_code
        assert isinstance(rec["attributed_revenue"], int)
        assert 0 <= rec["num_delivered"] <= rec["num_recipients"]
        assert 0 <= rec["num_opened"] <= rec["num_delivered"]
        assert 0 <= rec["num_links_clicked"] <= rec["num_delivered"]
        assert 0 <= rec["num_unsubscribed"] <= rec["num_delivered"]
        assert rec == campaign_analytics(sb.world, camp)
    assert any(r["num_links_clicked"] == 0 for r in records), "the mart needs a campaign nobody clicked"
    assert any(r["num_links_clicked"] > 0 for r in records)
    sent = [r["sent_at"] for r in records]
    assert sent == sorted(sent, reverse=True)


def test_pagination_when_total_is_not_a_multiple_of_per_page(sb, client):
    total = len(_sent_before_now(sb.world))
    assert total % 3 != 0
    pages = _page_sizes(client, 3)
    assert [len(p) for p in pages] == [3] * (total // 3) + [total % 3]
    ids = [r["id"] for p in pages for r in p]
    assert len(ids) == len(set(ids)) == total


def test_pagination_when_total_is_an_exact_multiple(sb, client):
    total = len(_sent_before_now(sb.world))
    assert total % 4 == 0
    pages = _page_sizes(client, 4)
    assert [len(p) for p in pages] == [4] * (total // 4) + [0]
    beyond = client.get(ANALYTICS, params={"page": total // 4 + 1, "per_page": 4}).json()
    assert beyond["data"] == [] and beyond["total"] == total and beyond["page"] == total // 4 + 1


@pytest.mark.parametrize("params", [{"per_page": 101}, {"per_page": 0}, {"page": 0}, {"page": "x"},
                                    {"type": "push"}])
def test_bad_query_parameters_are_400(client, params):
    r = client.get(ANALYTICS, params=params)
    assert r.status_code == 400
    assert r.json()["message"]


def test_per_page_maximum_is_accepted(sb, client):
    body = client.get(ANALYTICS, params={"per_page": 100}).json()
    assert body["per_page"] == 100 and len(body["data"]) == body["total"]


@pytest.mark.parametrize("kind", ["email", "sms"])
def test_type_filter(sb, client, kind):
    expected = {c.id for c in _sent_before_now(sb.world) if c.type == kind}
    assert expected  # the world has both kinds
    body = client.get(ANALYTICS, params={"type": kind, "per_page": 100}).json()
    assert {r["id"] for r in body["data"]} == expected
    assert body["total"] == len(expected)
    assert all(r["type"] == kind for r in body["data"])


def test_campaigns_sent_after_now_are_not_listed():
    with start_sandbox(anchor=ANCHOR, history_days=10) as sandbox:
        expected = {c.id for c in sandbox.world.campaigns if c.sent_at < sandbox.world.end}
        assert 0 < len(expected) < len(sandbox.world.campaigns)
        body = httpx.get(sandbox.url("cymbal") + ANALYTICS, headers=HEADERS, params={"per_page": 100}).json()
        assert {r["id"] for r in body["data"]} == expected
        assert body["total"] == len(expected)


def test_same_seed_same_data_and_another_seed_differs():
    def fetch(seed: int) -> list[dict]:
        with start_sandbox(seed=seed, anchor=ANCHOR) as sandbox:
            return httpx.get(sandbox.url("cymbal") + ANALYTICS, headers=HEADERS).json()["data"]

    assert fetch(7) == fetch(7)
    assert fetch(7) != fetch(8)


def test_repeat_fault_starts_page_two_with_page_one_last_record():
    with start_sandbox(anchor=ANCHOR, faults="repeat:1.0") as sandbox, \
            httpx.Client(base_url=sandbox.url("cymbal"), headers=HEADERS) as c:
        first = c.get(ANALYTICS, params={"page": 1, "per_page": 3}).json()["data"]
        second = c.get(ANALYTICS, params={"page": 2, "per_page": 3}).json()["data"]
        assert len(first) == 3  # page 1 has no previous page to repeat
        assert second[0]["id"] == first[-1]["id"]
        assert len(second) == 4
        third = c.get(ANALYTICS, params={"page": 3, "per_page": 3}).json()["data"]
        ids = {r["id"] for r in first + second + third}
        assert ids == {camp.id for camp in _sent_before_now(sandbox.world)}, "repeat duplicates, never loses"
        assert sandbox.ctx.faults.injected["repeat"] >= 2


# --- writes ---------------------------------------------------------------------------------------------

def _event(event_id: str = "ev_1", **overrides: object) -> dict:
    return {"id": event_id, "url": "https://tickets.example.com/ev_1", "name": "Spring Gig",
            "image_url": "https://img.example.com/ev_1.png", "start_datetime": "2026-04-02T19:30:00Z",
            "location": "The Hall, London", "status": "live", **overrides}


def _order(order_id: str = "or_1", **overrides: object) -> dict:
    return {"id": order_id, "event_id": "ev_1", "customer": {"email": "fan@example.com", "first_name": "Ana"},
            "marketing_opt_ins": {"email": True, "sms": None},
            "items": [{"name": "GA", "price": 2500, "quantity": 2, "currency_code": "GBP"}], **overrides}


def test_create_events_queues_and_records_each_item(sb, client):
    events = [_event("ev_1"), _event("ev_2", status="canceled", end_datetime="2026-04-02T23:00:00Z")]
    r = client.post("/v1/partners/events", json={"events": events})
    assert r.status_code == 201
    assert r.json() == {"status": "queued"}
    assert [i.payload for i in sb.ctx.recorder.items("cymbal", "events")] == events
    assert set(stored(sb.ctx, "events")) == {"ev_1", "ev_2"}


@pytest.mark.parametrize(("change", "field"), [
    ({"start_datetime": "2026-04-02T19:30:00+00:00"}, "start_datetime"),
    ({"start_datetime": "2026-04-02 19:30:00"}, "start_datetime"),
    ({"start_datetime": "2026-13-02T19:30:00Z"}, "start_datetime"),
    ({"end_datetime": "2026-04-02T23:00:00.123Z"}, "end_datetime"),
    ({"id": None}, "id"),
    ({"url": ""}, "url"),
    ({"image_url": None}, "image_url"),
    ({"location": None}, "location"),
    ({"status": "cancelled"}, "status"),
])
def test_invalid_event_rejects_the_whole_batch(sb, client, change, field):
    bad = _event("ev_bad", **change)
    r = client.post("/v1/partners/events", json={"events": [_event("ev_ok"), bad]})
    assert r.status_code == 422
    assert field in r.json()["message"]
    assert sb.ctx.recorder.items("cymbal") == []
    assert stored(sb.ctx, "events") == {}


def test_missing_required_event_field_is_422(client):
    event = _event()
    del event["name"]
    r = client.post("/v1/partners/events", json={"events": [event]})
    assert r.status_code == 422 and "name" in r.json()["message"]


@pytest.mark.parametrize("body", [b"[1, 2", b'[{"id": "ev_1"}]', b'{"event": []}', b'{"events": {"id": "x"}}'])
def test_events_body_must_be_the_documented_wrapper(client, body):
    r = client.post("/v1/partners/events", content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 400
    assert r.json()["message"]


def test_create_orders(sb, client):
    phone_only = _order("or_2", customer={"phone": "+15555550100"})
    r = client.post("/v1/partners/orders", json={"orders": [_order("or_1"), phone_only]})
    assert r.status_code == 201 and r.json() == {"status": "queued"}
    assert [i.payload["id"] for i in sb.ctx.recorder.items("cymbal", "orders")] == ["or_1", "or_2"]


@pytest.mark.parametrize(("change", "field"), [
    ({"customer": {"first_name": "Ana"}}, "customer"),
    ({"customer": {"email": "not-an-email"}}, "customer.email"),
    ({"items": []}, "items"),
    ({"items": [{"name": "GA", "currency_code": "usd"}]}, "currency_code"),
    ({"marketing_opt_ins": {"email": "yes"}}, "marketing_opt_ins"),
    ({"event_id": ""}, "event_id"),
])
def test_invalid_orders_are_422(sb, client, change, field):
    r = client.post("/v1/partners/orders", json={"orders": [_order(**change)]})
    assert r.status_code == 422
    assert field in r.json()["message"]
    assert sb.ctx.recorder.items("cymbal") == []


@pytest.mark.parametrize("field", ["id", "event_id", "customer", "marketing_opt_ins", "items"])
def test_order_required_fields(client, field):
    order = _order()
    del order[field]
    r = client.post("/v1/partners/orders", json={"orders": [order]})
    assert r.status_code == 422 and field in r.json()["message"]


def test_create_contact(sb, client):
    contact = {"email": "fan@example.com", "first_name": "Ana", "opt_ins": {"email": True, "sms": None}}
    r = client.post("/v1/partners/contact", json={"contact": contact})
    assert r.status_code == 201 and r.json() == {"status": "queued"}
    assert [i.payload for i in sb.ctx.recorder.items("cymbal", "contact")] == [contact]
    sms = client.post("/v1/partners/contact", json={"contact": {"phone": "+15555550100"}})
    assert sms.status_code == 201


@pytest.mark.parametrize(("body", "status"), [
    ({"contact": [{"email": "a@example.com"}]}, 400),  # the doc takes one contact object, not a list
    ({"email": "a@example.com"}, 400),
    ({"contact": {"first_name": "Ana"}}, 422),
    ({"contact": {"email": "a@example.com", "opt_ins": {"sms": "yes"}}}, 422),
])
def test_invalid_contact(sb, client, body, status):
    r = client.post("/v1/partners/contact", json=body)
    assert r.status_code == status
    assert r.json()["message"]
    assert sb.ctx.recorder.items("cymbal") == []


def test_ids_are_idempotent(sb, client):
    client.post("/v1/partners/events", json={"events": [_event("ev_1", name="Old name")]})
    client.post("/v1/partners/events", json={"events": [_event("ev_1", name="New name"), _event("ev_2")]})
    events = stored(sb.ctx, "events")
    assert set(events) == {"ev_1", "ev_2"}
    assert events["ev_1"]["name"] == "New name"
    assert len(sb.ctx.recorder.items("cymbal", "events")) == 3  # the recorder keeps every arrival
    client.post("/v1/partners/orders", json={"orders": [_order("or_1")]})
    client.post("/v1/partners/orders", json={"orders": [_order("or_1", event_id="ev_2")]})
    assert {k: v["event_id"] for k, v in stored(sb.ctx, "orders").items()} == {"or_1": "ev_2"}
    client.post("/v1/partners/contact", json={"contact": {"email": "Fan@Example.com", "first_name": "A"}})
    client.post("/v1/partners/contact", json={"contact": {"email": "fan@example.com", "first_name": "B"}})
    contacts = stored(sb.ctx, "contact")
    assert len(contacts) == 1 and next(iter(contacts.values()))["first_name"] == "B"


def test_received_endpoint_shows_pushes(sb, client):
    client.post("/v1/partners/events", json={"events": [_event()]})
    got = httpx.get(sb.base_url + "/_sandbox/received", params={"provider": "cymbal"}).json()
    assert got == [{"provider": "cymbal", "endpoint": "events", "payload": _event()}]


def test_unknown_route_and_wrong_method(client):
    assert client.get("/v1/partners/nothing").status_code == 404
    assert client.get("/v1/partners/events").status_code == 405
    assert client.post(ANALYTICS, json={}).status_code == 405
