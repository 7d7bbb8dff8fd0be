"""The Ticket Tailor sandbox against the vendor doc, over real HTTP on 127.0.0.1.

Expected values come from the doc (auth, error body, pagination, filters) or from an
independent walk of the unfiltered listing, never from the filter code under test.
"""

from __future__ import annotations

import time
from collections import Counter
from datetime import UTC, date, datetime, timedelta

import httpx
import pytest

from sandbox import start_sandbox
from sandbox import tickettailor as tt
from sandbox import world as w

ANCHOR = date(2026, 3, 15)
KEY = (w.TICKETTAILOR_API_KEY, "")


@pytest.fixture(scope="module")
def sb():
    with start_sandbox(anchor=ANCHOR) as sandbox:
        tt.configure(sandbox.ctx, hourly_limit=100_000)  # these tests walk a lot
        yield sandbox


@pytest.fixture(scope="module")
def client(sb):
    with httpx.Client(base_url=sb.url("tickettailor"), auth=KEY, timeout=30) as c:
        yield c


def walk(client: httpx.Client, path: str, **params) -> tuple[list[dict], list[dict]]:
    """All records of a listing by following links.next; returns (records, raw pages)."""
    records, pages = [], []
    response = client.get(path, params=params)
    while True:
        assert response.status_code == 200, response.text
        page = response.json()
        pages.append(page)
        records.extend(page["data"])
        if page["links"]["next"] is None:
            return records, pages
        response = client.get(page["links"]["next"])


@pytest.fixture(scope="module")
def all_orders(client):
    orders, _ = walk(client, "/v1/orders")
    return orders


def test_auth_failures_have_the_documented_body(sb):
    url = sb.url("tickettailor") + "/v1/orders"
    for auth in (None, ("sk_wrong_key", ""), ("", w.TICKETTAILOR_API_KEY)):
        r = httpx.get(url, auth=auth)
        assert r.status_code == 401
        body = r.json()
        assert body["status"] == 401 and isinstance(body["error_code"], str) and body["message"]
        assert w.TICKETTAILOR_API_KEY not in r.text
    assert httpx.get(url, auth=(w.TICKETTAILOR_API_KEY, "any password is ignored")).status_code == 200
    bearer = httpx.get(url, headers={"Authorization": f"Bearer {w.TICKETTAILOR_API_KEY}"})
    assert bearer.status_code == 401


def test_full_walk_is_newest_first_complete_and_unique(client, all_orders):
    assert len(all_orders) == tt.ORDERS_PER_SCALE
    ids = [int(o["id"].removeprefix("or_")) for o in all_orders]
    assert ids == sorted(ids, reverse=True) and len(set(ids)) == len(ids)
    created = [o["created_at"] for o in all_orders]
    assert created == sorted(created, reverse=True)
    world = w.World(anchor=ANCHOR)
    assert world.start.timestamp() <= min(created) and max(created) < world.end.timestamp()
    _, pages = walk(client, "/v1/orders")
    assert len(pages) == 20  # ceil(2000 / 100): the default limit is the maximum, 100
    assert pages[0]["links"]["previous"] is None and pages[-1]["links"]["next"] is None
    assert pages[1]["links"]["previous"] is not None


def _window(all_orders: list[dict], count: int) -> tuple[int, int]:
    """created_at bounds [gte, lt) that hold exactly `count` orders, found from the full walk."""
    asc = sorted(o["created_at"] for o in all_orders)
    for k in range(1, len(asc) - count - 1):
        if asc[k - 1] < asc[k] and asc[k + count - 1] < asc[k + count]:
            return asc[k], asc[k + count]
    raise AssertionError("no window")


@pytest.mark.parametrize("count,pages_expected", [(100, 1), (200, 2), (101, 2), (99, 1)])
def test_page_size_boundaries(client, all_orders, count, pages_expected):
    gte, lt = _window(all_orders, count)
    records, pages = walk(client, "/v1/orders", **{"created_at.gte": gte, "created_at.lt": lt})
    assert len(records) == count
    assert len(pages) == pages_expected  # next is null as soon as nothing follows, even on a full page
    assert pages[-1]["links"]["next"] is None
    assert all(len(p["data"]) == 100 for p in pages[:-1])


def test_links_are_relative_and_keep_the_filters(client, all_orders):
    gte, lt = _window(all_orders, 150)
    page = client.get("/v1/orders", params={"created_at.gte": gte, "created_at.lt": lt, "limit": 50}).json()
    nxt = page["links"]["next"]
    assert nxt.startswith("/v1/orders?") and f"created_at.gte={gte}" in nxt and "limit=50" in nxt
    assert f"starting_after={page['data'][-1]['id']}" in nxt
    manual = client.get("/v1/orders", params={"created_at.gte": gte, "created_at.lt": lt, "limit": 50,
                                              "starting_after": page["data"][-1]["id"]}).json()
    assert client.get(nxt).json() == manual


def test_starting_after_and_ending_before(client, all_orders):
    ids = [o["id"] for o in all_orders]
    first = client.get("/v1/orders", params={"limit": 10}).json()
    assert [o["id"] for o in first["data"]] == ids[:10]
    second = client.get("/v1/orders", params={"limit": 10, "starting_after": ids[9]}).json()
    assert [o["id"] for o in second["data"]] == ids[10:20]
    back = client.get("/v1/orders", params={"limit": 10, "ending_before": ids[10]}).json()
    assert [o["id"] for o in back["data"]] == ids[:10]
    assert back["links"]["previous"] is None  # nothing newer than the newest page
    assert second["links"]["previous"] == f"/v1/orders?limit=10&ending_before={ids[10]}"
    both = client.get("/v1/orders", params={"limit": 5, "starting_after": ids[100], "ending_before": ids[50]}).json()
    assert [o["id"] for o in both["data"]] == ids[45:50]  # the doc: only ending_before is used
    last = client.get("/v1/orders", params={"starting_after": ids[-1]}).json()
    assert last["data"] == [] and last["links"]["next"] is None


@pytest.mark.parametrize("params", [{"limit": 101}, {"limit": 0}, {"limit": "ten"}, {"starting_after": "banana"},
                                    {"created_at.gte": "yesterday"}])
def test_invalid_parameters_are_400_with_the_error_body(client, params):
    r = client.get("/v1/orders", params=params)
    assert r.status_code == 400
    body = r.json()
    assert body["status"] == 400 and body["error_code"] and body["message"]


def test_limit_at_maximum_is_accepted(client):
    assert len(client.get("/v1/orders", params={"limit": 100}).json()["data"]) == 100


def test_every_created_at_operator(client, all_orders):
    asc = sorted({o["created_at"] for o in all_orders})
    t = asc[len(asc) // 2]
    expected = {
        "created_at": {o["id"] for o in all_orders if o["created_at"] == t},
        "created_at.gte": {o["id"] for o in all_orders if o["created_at"] >= t},
        "created_at.gt": {o["id"] for o in all_orders if o["created_at"] > t},
        "created_at.lt": {o["id"] for o in all_orders if o["created_at"] < t},
        "created_at.lte": {o["id"] for o in all_orders if o["created_at"] <= t},
    }
    for op, ids in expected.items():
        records, _ = walk(client, "/v1/orders", **{op: t})
        assert {o["id"] for o in records} == ids, op
        assert len(records) == len(ids)
    assert len(expected["created_at"]) >= 1


def test_event_id_filter_accepts_both_forms(client, all_orders):
    expected = sorted((t["id"] for o in all_orders for t in o["issued_tickets"] if t["event_id"] == "ev_1003"),
                      key=lambda i: -int(i[3:]))
    prefixed, _ = walk(client, "/v1/issued_tickets", event_id="ev_1003")
    numeric, _ = walk(client, "/v1/issued_tickets", event_id="1003")
    assert [t["id"] for t in prefixed] == expected == [t["id"] for t in numeric]
    orders, _ = walk(client, "/v1/orders", event_id="1003")
    assert {o["id"] for o in orders} == {o["id"] for o in all_orders if o["event_summary"]["id"] == "ev_1003"}
    assert client.get("/v1/issued_tickets", params={"event_id": "ev_999"}).json()["data"] == []


def test_status_filters(client, all_orders):
    for status in ("completed", "pending", "cancelled"):
        records, _ = walk(client, "/v1/orders", status=status)
        assert {o["id"] for o in records} == {o["id"] for o in all_orders if o["status"] == status}
        assert records
    void_expected = {t["id"] for o in all_orders for t in o["issued_tickets"] if t["status"] == "void"}
    for value in ("void", "voided"):  # records say "void", the doc's filter enumeration says "voided"
        records, _ = walk(client, "/v1/issued_tickets", status=value)
        assert {t["id"] for t in records} == void_expected
    valid, _ = walk(client, "/v1/issued_tickets", status="valid", event_id="ev_1001")
    assert valid and all(t["status"] == "valid" and t["event_id"] == "ev_1001" for t in valid)


def test_issued_tickets_listing_matches_the_orders(client, all_orders):
    tickets, _ = walk(client, "/v1/issued_tickets")
    embedded = [t for o in all_orders for t in o["issued_tickets"]]
    assert sorted(t["id"] for t in tickets) == sorted(t["id"] for t in embedded)
    nums = [int(t["id"][3:]) for t in tickets]
    assert nums == sorted(nums, reverse=True)
    by_order = client.get("/v1/issued_tickets", params={"order_id": all_orders[5]["id"]}).json()["data"]
    assert {t["id"] for t in by_order} == {t["id"] for t in all_orders[5]["issued_tickets"]}


ORDER_KEYS = {"object", "id", "buyer_details", "created_at", "currency", "event_summary", "issued_tickets",
              "line_items", "payment_method", "referral_tag", "refund_amount", "status", "status_message",
              "subtotal", "tax", "total", "total_paid", "txn_id"}
TICKET_KEYS = {"object", "id", "barcode", "barcode_url", "checked_in", "created_at", "custom_questions",
               "description", "email", "event_id", "reference", "full_name", "first_name", "last_name",
               "reservation", "status", "source", "ticket_type_id", "updated_at", "voided_at", "order_id",
               "qr_code_url"}
WHEN_KEYS = {"date", "formatted", "iso", "time", "timezone", "unix"}


def test_order_and_ticket_shapes_and_variety(all_orders):
    world = w.World(anchor=ANCHOR)
    anchor_midnight = datetime(2026, 3, 15, tzinfo=UTC).timestamp()
    for o in all_orders:
        assert set(o) == ORDER_KEYS
        assert set(o["buyer_details"]) == {"address", "custom_questions", "email", "first_name", "last_name",
                                           "name", "phone"}
        assert set(o["event_summary"]["start_date"]) == WHEN_KEYS
        assert isinstance(o["total"], int) and 0 <= o["refund_amount"] <= o["total"]
        assert o["currency"]["base_multiplier"] == (1 if o["currency"]["code"] == "jpy" else 100)
        assert o["status"] in ("completed", "pending", "cancelled")
        for t in o["issued_tickets"]:
            assert set(t) == TICKET_KEYS
            assert t["order_id"] == o["id"] and t["event_id"] == o["event_summary"]["id"]
            assert t["status"] in ("valid", "void") and t["checked_in"] in ("true", "false")
            if t["checked_in"] == "true":
                assert o["event_summary"]["start_date"]["unix"] < anchor_midnight and t["status"] == "valid"
    assert {o["currency"]["code"] for o in all_orders} >= {"gbp", "usd", "jpy"}
    assert Counter(o["status"] for o in all_orders).keys() == {"completed", "pending", "cancelled"}
    assert any(o["status"] == "completed" and 0 < o["refund_amount"] < o["total"] for o in all_orders)
    assert any(t["status"] == "void" for o in all_orders if o["status"] == "completed" for t in o["issued_tickets"])
    assert any(t["checked_in"] == "true" for o in all_orders for t in o["issued_tickets"])
    campaign_ids = {c.id for c in world.campaigns}
    tags = [o["referral_tag"] for o in all_orders if o["referral_tag"]]
    tagged = [t for t in tags if t.strip().lower() in campaign_ids]
    assert 0.2 < len(tagged) / len(all_orders) < 0.4
    assert any(t != t.strip() for t in tagged) and any(t.strip() != t.strip().lower() for t in tagged)
    answers = Counter()
    for o in all_orders:
        qs = [q for q in o["buyer_details"]["custom_questions"] if "marketing" in q["question"].lower()]
        answers[qs[0]["answer"] if qs else "absent"] += 1
    assert answers["Yes"] and answers["No"] and (answers[None] + answers["absent"])
    near_midnight = 0
    for o in all_orders:
        sec = o["created_at"] % 86400
        near_midnight += sec < 120 or sec > 86400 - 120
    assert near_midnight >= 10


def test_some_buyers_answer_a_negated_marketing_question(all_orders):
    """A few percent of buyers answer "Tick if you do NOT want marketing emails" (an extra entry),
    some without ever answering the real question: a consent rule matching "marketing" in the
    label would read their "Yes" as an opt-in."""
    def answers(order: dict, label: str) -> list:
        return [q["answer"] for q in order["buyer_details"]["custom_questions"] if q["question"] == label]

    negated = [o for o in all_orders if answers(o, tt.NEGATED_MARKETING_QUESTION)]
    assert tt.NEGATED_MARKETING_QUESTION == "Tick if you do NOT want marketing emails"
    assert "marketing" in tt.NEGATED_MARKETING_QUESTION.lower() and "marketing" in tt.MARKETING_QUESTION.lower()
    assert 0.02 < len(negated) / len(all_orders) < 0.07
    assert all(len(answers(o, tt.NEGATED_MARKETING_QUESTION)) == 1 for o in negated)
    assert {a for o in negated for a in answers(o, tt.NEGATED_MARKETING_QUESTION)} == {"Yes", "No"}
    only_negated_yes = [o for o in negated if not answers(o, tt.MARKETING_QUESTION)
                        and answers(o, tt.NEGATED_MARKETING_QUESTION) == ["Yes"]]
    assert only_negated_yes  # would be "consenting" under a substring match, and must not be
    assert any(o["buyer_details"]["custom_questions"][0]["question"] == tt.NEGATED_MARKETING_QUESTION
               and answers(o, tt.MARKETING_QUESTION) for o in negated)  # sometimes asked before the real one
    # Deterministic: the same seed serves the same answers.
    again = [tt._build_order(w.World(anchor=ANCHOR), int(o["id"][3:]) - 1) for o in negated[:20]]
    assert [o["buyer_details"] for o in again] == [o["buyer_details"] for o in negated[:20]]


def test_events_shape_and_spread(client):
    events, _ = walk(client, "/v1/events")
    assert len(events) == 6
    assert [e["id"] for e in events] == sorted((e["id"] for e in events), key=lambda i: -int(i[3:]))
    anchor_midnight = datetime(2026, 3, 15, tzinfo=UTC)
    starts = [datetime.fromtimestamp(e["start"]["unix"], UTC) for e in events]
    assert any(s < anchor_midnight for s in starts)
    assert any(anchor_midnight < s < anchor_midnight + timedelta(days=30) for s in starts)
    assert any(e["start"]["timezone"] != "+00:00" for e in events)
    for e in events:
        assert set(e["start"]) == WHEN_KEYS == set(e["end"])
        assert datetime.fromisoformat(e["start"]["iso"]).timestamp() == e["start"]["unix"]
        assert e["start"]["iso"].endswith(e["start"]["timezone"])
    one = client.get(f"/v1/events/{events[0]['id']}").json()
    assert one == events[0]
    assert client.get("/v1/events/ev_1").status_code == 404


def test_single_order_and_ticket(client, all_orders):
    o = all_orders[7]
    assert client.get(f"/v1/orders/{o['id']}").json() == o
    t = o["issued_tickets"][0]
    assert client.get(f"/v1/issued_tickets/{t['id']}").json() == t
    r = client.get("/v1/orders/or_99999999")
    assert r.status_code == 404 and r.json()["status"] == 404


def test_facts_agree_with_the_api(sb, all_orders):
    facts = {f.order_id: f for f in tt.order_facts(sb.world)}
    assert len(facts) == len(all_orders)
    for o in all_orders:
        f = facts[o["id"]]
        assert f.gross_cents == o["total"] and f.refunded_cents == o["refund_amount"]
        assert f.counts_as_revenue == (o["status"] == "completed")
        assert f.currency == o["currency"]["code"].upper() and f.campaign_tag == o["referral_tag"]
        assert int(f.created_at.timestamp()) == o["created_at"] and f.created_at.tzinfo is not None
    tickets = Counter((t["event_id"], t["status"] == "valid", t["checked_in"] == "true")
                      for o in all_orders for t in o["issued_tickets"])
    assert Counter((t.event_id, t.issued, t.checked_in) for t in tt.ticket_facts(sb.world)) == tickets
    api_events = {e.event_id for e in tt.event_facts(sb.world)}
    assert api_events == {f"ev_{1001 + j}" for j in range(6)}


def test_rate_limit_headers_and_429():
    with start_sandbox(anchor=ANCHOR) as sandbox, httpx.Client(base_url=sandbox.url("tickettailor")) as c:
        tt.configure(sandbox.ctx, hourly_limit=3)
        assert c.get("/v1/events").status_code == 401  # unauthenticated calls do not spend the budget
        remaining = []
        for _ in range(3):
            r = c.get("/v1/events", auth=KEY)
            assert r.status_code == 200 and r.headers["X-Rate-Limit-Limit"] == "3"
            assert 0 < int(r.headers["X-Rate-Limit-Reset"]) <= 3600
            remaining.append(int(r.headers["X-Rate-Limit-Remaining"]))
        assert remaining == [2, 1, 0]
        r = c.get("/v1/orders", auth=KEY)
        assert r.status_code == 429
        assert r.json()["status"] == 429
        assert 0 < int(r.headers["Retry-After"]) <= 3600 and r.headers["X-Rate-Limit-Remaining"] == "0"


def test_default_hourly_limit_is_the_documented_2000():
    with start_sandbox(anchor=ANCHOR) as sandbox:
        r = httpx.get(sandbox.url("tickettailor") + "/v1/events", auth=KEY)
        assert r.headers["X-Rate-Limit-Limit"] == "2000" and r.headers["X-Rate-Limit-Remaining"] == "1999"
        assert "Retry-After" not in r.headers


def test_repeat_fault_starts_a_page_with_the_previous_last_record():
    with start_sandbox(anchor=ANCHOR, faults="repeat:1") as sandbox, \
            httpx.Client(base_url=sandbox.url("tickettailor"), auth=KEY) as c:
        records, pages = walk(c, "/v1/orders")
        for before, after in zip(pages, pages[1:], strict=False):
            assert after["data"][0]["id"] == before["data"][-1]["id"]
        assert len(pages[0]["data"]) == 100 and len(pages[1]["data"]) == 100
        ids = [o["id"] for o in records]
        assert len(ids) > tt.ORDERS_PER_SCALE and len(set(ids)) == tt.ORDERS_PER_SCALE  # nothing lost
        assert sandbox.ctx.faults.injected["repeat"] >= len(pages) - 2


def test_same_seed_same_bytes_other_seed_other_bytes():
    def grab(seed: int) -> list[bytes]:
        with start_sandbox(seed=seed, anchor=ANCHOR) as sandbox, \
                httpx.Client(base_url=sandbox.url("tickettailor"), auth=KEY) as c:
            return [c.get(p, params={"limit": 100}).content
                    for p in ("/v1/events", "/v1/orders", "/v1/issued_tickets")]

    a, b, other = grab(7), grab(7), grab(8)
    assert a == b
    assert all(x != y for x, y in zip(a, other, strict=True))


def test_large_scale_is_lazy():
    with start_sandbox(anchor=ANCHOR, scale=500) as sandbox, \
            httpx.Client(base_url=sandbox.url("tickettailor"), auth=KEY, timeout=30) as c:
        t0 = time.monotonic()
        first = c.get("/v1/orders").json()
        assert first["data"][0]["id"] == "or_1000000" and len(first["data"]) == 100
        middle = c.get("/v1/orders", params={"starting_after": "or_500001"}).json()
        assert middle["data"][0]["id"] == "or_500000" and middle["data"][-1]["id"] == "or_499901"
        day = c.get("/v1/orders", params={"created_at.gte": 1772323200, "created_at.lt": 1772409600}).json()
        assert all(1772323200 <= o["created_at"] < 1772409600 for o in day["data"])
        tickets = c.get("/v1/issued_tickets", params={"event_id": "ev_1004", "limit": 100}).json()
        assert len(tickets["data"]) == 100 and all(t["event_id"] == "ev_1004" for t in tickets["data"])
        events = c.get("/v1/events").json()["data"]
        assert sum(e["total_orders"] for e in events) == 1_000_000
        assert time.monotonic() - t0 < 20
