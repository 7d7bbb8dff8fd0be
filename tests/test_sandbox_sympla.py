"""The Sympla sandbox over real loopback HTTP, checked against the vendor doc (provider-docs/004_*)
and against its own ground-truth facts."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from sandbox import start_sandbox
from sandbox import sympla as sy
from sandbox import world as w
from sandbox.glitches import BAD_EVENT_ID

ANCHOR = date(2026, 3, 15)
SP = ZoneInfo("America/Sao_Paulo")
LOCAL_FMT = "%Y-%m-%d %H:%M:%S"
LOCAL_RE = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$")


@pytest.fixture(scope="module")
def sb() -> Iterator[Any]:
    with start_sandbox(anchor=ANCHOR) as sandbox:
        yield sandbox


@pytest.fixture(scope="module")
def client(sb: Any) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sb.url("sympla"), headers={"s_token": w.SYMPLA_TOKEN}, timeout=30) as c:
        yield c


def _all(client: httpx.Client, path: str, **params: Any) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    page = 1
    while True:
        r = client.get(path, params={**params, "page": page, "page_size": params.get("page_size", 200)})
        assert r.status_code == 200, r.text
        body = r.json()
        out.extend(body["data"])
        if not body["pagination"]["has_next"]:
            return out
        page += 1


@pytest.fixture(scope="module")
def events(client: httpx.Client) -> list[dict[str, Any]]:
    return _all(client, "/events")


def _walk_nulls(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, dict):
        return any(_walk_nulls(v) for v in value.values())
    if isinstance(value, list):
        return any(_walk_nulls(v) for v in value)
    return False


def test_auth_missing_and_wrong_token(sb: Any) -> None:
    for headers in ({}, {"s_token": "nope"}):
        r = httpx.get(sb.url("sympla") + "/events", headers=headers)
        assert r.status_code == 401
        body = r.json()
        assert body["error"] is True and isinstance(body["code"], int) and body["message"]
        assert w.SYMPLA_TOKEN not in r.text


def test_events_shape_and_window(events: list[dict[str, Any]], sb: Any) -> None:
    assert 4 <= len(events) <= 8
    world = sb.world
    starts = []
    for e in events:
        assert LOCAL_RE.match(e["start_date"]) and LOCAL_RE.match(e["end_date"])
        start = datetime.strptime(e["start_date"], LOCAL_FMT).replace(tzinfo=SP).astimezone(UTC)
        assert world.start <= start < world.end + timedelta(days=31)
        starts.append(start)
        assert e["address"]["country"] == "BR"
        assert not _walk_nulls(e)
    assert starts == sorted(starts)  # default field_sort start_date ASC
    assert any(s < world.end for s in starts) and any(s >= world.end for s in starts)


def test_single_event_and_unknown_event(client: httpx.Client, events: list[dict[str, Any]]) -> None:
    r = client.get(f"/events/{events[0]['id']}")
    assert r.status_code == 200 and r.json()["data"] == events[0]
    r = client.get("/events/s0/orders")
    assert r.status_code == 404 and r.json()["error"] is True


def test_page_boundaries_on_events(client: httpx.Client, events: list[dict[str, Any]]) -> None:
    n = len(events)
    exact = client.get("/events", params={"page_size": n}).json()
    assert len(exact["data"]) == n
    assert exact["pagination"]["has_next"] is False and exact["pagination"]["has_prev"] is False

    first = client.get("/events", params={"page_size": n - 1}).json()
    assert len(first["data"]) == n - 1 and first["pagination"]["has_next"] is True
    second = client.get("/events", params={"page_size": n - 1, "page": 2}).json()
    assert len(second["data"]) == 1
    assert second["pagination"]["has_next"] is False and second["pagination"]["has_prev"] is True
    assert [e["id"] for e in first["data"] + second["data"]] == [e["id"] for e in events]


def test_page_boundaries_on_orders(client: httpx.Client, events: list[dict[str, Any]]) -> None:
    eid = events[0]["id"]
    # An independent count: walk the list in pages of 7 and dedupe by id.
    ids: list[str] = []
    page = 1
    while True:
        body = client.get(f"/events/{eid}/orders", params={"page_size": 7, "page": page}).json()
        ids.extend(o["id"] for o in body["data"])
        if not body["pagination"]["has_next"]:
            break
        page += 1
    n = len(set(ids))
    assert n == len(ids) and 1 < n <= 200

    exact = client.get(f"/events/{eid}/orders", params={"page_size": n}).json()
    assert len(exact["data"]) == n and exact["pagination"]["has_next"] is False
    assert exact["pagination"]["total_records"] == n and exact["pagination"]["total_page"] == 1

    p1 = client.get(f"/events/{eid}/orders", params={"page_size": n - 1}).json()
    p2 = client.get(f"/events/{eid}/orders", params={"page_size": n - 1, "page": 2}).json()
    assert p1["pagination"]["has_next"] is True and p1["pagination"]["total_page"] == 2
    assert len(p2["data"]) == 1 and p2["pagination"]["has_next"] is False
    beyond = client.get(f"/events/{eid}/orders", params={"page_size": n - 1, "page": 3}).json()
    assert beyond["data"] == [] and beyond["pagination"]["has_next"] is False


def test_page_size_limits(client: httpx.Client, events: list[dict[str, Any]]) -> None:
    eid = events[2]["id"]
    ok = client.get(f"/events/{eid}/orders", params={"page_size": 200, "status": "true"})
    assert ok.status_code == 200 and len(ok.json()["data"]) == 200
    default = client.get(f"/events/{eid}/orders", params={"status": "true"}).json()
    assert default["pagination"]["page_size"] == 100 and len(default["data"]) == 100  # doc: default 100
    for bad in (201, 0):
        r = client.get(f"/events/{eid}/orders", params={"page_size": bad})
        assert r.status_code == 400
        assert r.json()["error"] is True


def test_status_true_versus_approved_only(client: httpx.Client, events: list[dict[str, Any]]) -> None:
    eid = events[2]["id"]
    approved = _all(client, f"/events/{eid}/orders")
    everything = _all(client, f"/events/{eid}/orders", status="true")
    assert {o["order_status"] for o in approved} == {"APPROVED"}
    statuses = Counter(o["order_status"] for o in everything)
    assert set(statuses) == {"APPROVED", "PENDING", "CANCELLED"}
    assert {o["id"] for o in everything if o["order_status"] == "APPROVED"} == {o["id"] for o in approved}
    for o in everything:
        if o["order_status"] == "APPROVED":
            assert LOCAL_RE.match(o["approved_date"])
        else:
            assert "approved_date" not in o  # null -> omitted


def _near_utc_midnight(client: httpx.Client, events: list[dict[str, Any]]) -> tuple[str, dict[str, Any]]:
    """An order created between 00:00 and 03:00 UTC: its Sao Paulo date is the day before."""
    for e in events:
        for o in _all(client, f"/events/{e['id']}/orders", status="true", timezone="UTC"):
            t = datetime.strptime(o["order_date"], LOCAL_FMT)
            if t.hour < 3:
                return e["id"], o
    raise AssertionError("no order near UTC midnight in the dataset")


def test_timezone_rendering(client: httpx.Client, events: list[dict[str, Any]]) -> None:
    eid = events[1]["id"]
    in_sp = {o["id"]: o for o in _all(client, f"/events/{eid}/orders", status="true")}
    in_utc = {o["id"]: o for o in _all(client, f"/events/{eid}/orders", status="true", timezone="UTC")}
    in_tokyo = {o["id"]: o for o in _all(client, f"/events/{eid}/orders", status="true", timezone="Asia/Tokyo")}
    assert in_sp.keys() == in_utc.keys() == in_tokyo.keys()
    for oid, o in in_sp.items():
        assert LOCAL_RE.match(o["order_date"])
        sp_instant = datetime.strptime(o["order_date"], LOCAL_FMT).replace(tzinfo=SP)
        utc_instant = datetime.strptime(in_utc[oid]["order_date"], LOCAL_FMT).replace(tzinfo=UTC)
        tokyo_instant = datetime.strptime(in_tokyo[oid]["order_date"], LOCAL_FMT).replace(tzinfo=ZoneInfo("Asia/Tokyo"))
        assert sp_instant == utc_instant == tokyo_instant
    r = client.get(f"/events/{eid}/orders", params={"timezone": "Mars/Olympus"})
    assert r.status_code == 400


def test_from_to_follow_the_timezone(client: httpx.Client, events: list[dict[str, Any]]) -> None:
    eid, order = _near_utc_midnight(client, events)
    utc_date = order["order_date"][:10]
    sp_date = datetime.strptime(order["order_date"], LOCAL_FMT).replace(tzinfo=UTC).astimezone(SP).date().isoformat()
    assert sp_date != utc_date

    def ids(**params: str) -> set[str]:
        return {o["id"] for o in _all(client, f"/events/{eid}/orders", status="true", **params)}

    assert order["id"] in ids(**{"from": utc_date, "to": utc_date, "timezone": "UTC"})
    assert order["id"] not in ids(**{"from": utc_date, "to": utc_date})  # default: Sao Paulo dates
    assert order["id"] in ids(**{"from": sp_date, "to": sp_date})
    assert order["id"] not in ids(**{"from": sp_date, "to": sp_date, "timezone": "UTC"})
    # With a time of day, bounds are inclusive to the second.
    exact = order["order_date"]
    assert order["id"] in ids(**{"from": exact, "to": exact, "timezone": "UTC"})

    # Every order returned for a Sao Paulo day really falls on that local day.
    day = client.get(f"/events/{eid}/orders", params={"status": "true", "from": sp_date, "to": sp_date,
                                                       "page_size": 200}).json()["data"]
    assert day and all(o["order_date"].startswith(sp_date) for o in day)
    assert client.get(f"/events/{eid}/orders", params={"from": "15/03/2026"}).status_code == 400


def test_nulls_omitted_unless_fields(client: httpx.Client, events: list[dict[str, Any]]) -> None:
    eid = events[1]["id"]
    orders = _all(client, f"/events/{eid}/orders", status="true")
    parts = _all(client, f"/events/{eid}/participants", cancelled_filter="include")
    assert not any(_walk_nulls(r) for r in orders + parts)
    # Optional fields really do come and go (they are omitted, not always absent).
    assert any("utm" in o for o in orders) and any("utm" not in o for o in orders)
    assert any("discount_code" in o for o in orders) and any("discount_code" not in o for o in orders)
    projected = _all(client, f"/events/{eid}/orders", status="true", fields="id,approved_date")
    assert all(set(o) == {"id", "approved_date"} for o in projected)
    assert any(o["approved_date"] is None for o in projected)  # with `fields`, nulls are returned


def test_cancelled_filter(client: httpx.Client, events: list[dict[str, Any]]) -> None:
    eid = events[0]["id"]
    orders = _all(client, f"/events/{eid}/orders", status="true")
    by_status = {s: {o["id"] for o in orders if o["order_status"] == s} for s in ("APPROVED", "CANCELLED")}
    default = _all(client, f"/events/{eid}/participants")
    include = _all(client, f"/events/{eid}/participants", cancelled_filter="include")
    only = _all(client, f"/events/{eid}/participants", cancelled_filter="only")
    assert {p["order_status"] for p in default} == {"A"}
    assert {p["order_status"] for p in include} == {"A", "C"}
    assert {p["order_status"] for p in only} == {"C"}
    assert {p["order_id"] for p in default} == by_status["APPROVED"]
    assert {p["order_id"] for p in only} == by_status["CANCELLED"]
    assert len(include) == len(default) + len(only)
    assert len({p["id"] for p in include}) == len(include)
    for p in include:
        assert set(p["checkin"]) >= {"id", "check_in"}
        assert p["first_name"] and p["last_name"] and "@" in p["email"] and p["ticket_name"]
        assert re.match(r"^[0-9A-Z]{4}-[0-9A-Z]{2}-[0-9A-Z]{4}$", p["ticket_number"])
        for answer in p.get("custom_form", []):
            assert set(answer) == {"id", "name", "value"}
        if p["order_status"] == "C":
            assert p["checkin"]["check_in"] is False


def test_checkins_only_for_started_events(client: httpx.Client, events: list[dict[str, Any]], sb: Any) -> None:
    now = sb.world.end
    seen_checkin = False
    for e in events:
        start = datetime.strptime(e["start_date"], LOCAL_FMT).replace(tzinfo=SP)
        parts = _all(client, f"/events/{e['id']}/participants")
        checked = [p for p in parts if p["checkin"]["check_in"]]
        if start >= now:
            assert not checked
        for p in checked:
            seen_checkin = True
            at = datetime.fromisoformat(p["checkin"]["check_in_date"])
            assert at.utcoffset() is not None and at < now
    assert seen_checkin


def test_marketing_answers_present(client: httpx.Client, events: list[dict[str, Any]]) -> None:
    parts = _all(client, f"/events/{events[2]['id']}/participants")
    answers = [a["value"] for p in parts for a in p.get("custom_form", []) if "marketing" in a["name"].lower()]
    assert any(a.lower() == "sim" for a in answers) and any(a.lower() != "sim" for a in answers)
    assert any(not any("marketing" in a["name"].lower() for a in p.get("custom_form", [])) for p in parts)


def test_single_order_and_participant_lookups(client: httpx.Client, events: list[dict[str, Any]]) -> None:
    eid = events[1]["id"]
    order = client.get(f"/events/{eid}/orders", params={"page_size": 1}).json()["data"][0]
    assert client.get(f"/events/{eid}/orders/{order['id']}").json()["data"] == order
    assert client.get(f"/events/{eid}/orders/ZZZZZZZ").status_code == 404
    part = client.get(f"/events/{eid}/participants", params={"page_size": 1}).json()["data"][0]
    assert client.get(f"/events/{eid}/participants/{part['id']}").json()["data"] == part
    by_ticket = client.get(f"/events/{eid}/participants/ticketNumber/{part['ticket_number']}").json()["data"]
    assert by_ticket == part
    of_order = client.get(f"/events/{part['event_id']}/orders/{part['order_id']}/participants").json()["data"]
    assert part["id"] in {p["id"] for p in of_order}


def test_determinism_by_seed(events: list[dict[str, Any]]) -> None:
    eid = events[2]["id"]

    def snapshot(seed: int) -> bytes:
        with start_sandbox(seed=seed, anchor=ANCHOR) as sandbox:
            headers = {"s_token": w.SYMPLA_TOKEN}
            base = sandbox.url("sympla")
            event_ids = [e["id"] for e in httpx.get(base + "/events", headers=headers).json()["data"]]
            target = eid if eid in event_ids else event_ids[2]
            orders = httpx.get(f"{base}/events/{target}/orders", headers=headers,
                               params={"status": "true", "page": 2, "page_size": 50})
            parts = httpx.get(f"{base}/events/{target}/participants", headers=headers, params={"page_size": 50})
            return orders.content + parts.content

    assert snapshot(7) == snapshot(7)
    assert snapshot(7) != snapshot(8)


def test_repeat_fault_prepends_previous_last_record(events: list[dict[str, Any]]) -> None:
    eid = events[2]["id"]
    with start_sandbox(anchor=ANCHOR, faults="repeat:1.0") as sandbox:
        c = httpx.Client(base_url=sandbox.url("sympla"), headers={"s_token": w.SYMPLA_TOKEN})
        p1 = c.get(f"/events/{eid}/orders", params={"status": "true", "page_size": 50}).json()["data"]
        p2 = c.get(f"/events/{eid}/orders", params={"status": "true", "page_size": 50, "page": 2}).json()["data"]
        assert p2[0] == p1[-1]
        # Nothing is lost: deduplicating by id yields exactly the unfaulted list.
        faulted = [o["id"] for o in p1] + [o["id"] for o in p2]
        assert len(faulted) != len(set(faulted))
        c.close()
    with start_sandbox(anchor=ANCHOR) as clean:
        c = httpx.Client(base_url=clean.url("sympla"), headers={"s_token": w.SYMPLA_TOKEN})
        first_100 = [o["id"] for o in c.get(f"/events/{eid}/orders",
                                              params={"status": "true", "page_size": 100}).json()["data"]]
        c.close()
    assert list(dict.fromkeys(faulted)) == first_100


def test_money_is_decimal_reais_that_floats_get_wrong(client: httpx.Client, events: list[dict[str, Any]]) -> None:
    prices = {p["ticket_sale_price"] for e in events for p in _all(client, f"/events/{e['id']}/participants")}
    # 0.29 * 100 == 28.999999999999996: the sandbox must serve such amounts.
    assert any(int(x * 100) != int(Decimal(str(x)) * 100) for x in prices)
    assert all(Decimal(str(x)) == Decimal(str(x)).quantize(Decimal("0.01")) for x in prices)


def test_facts_match_what_the_api_serves(client: httpx.Client, events: list[dict[str, Any]], sb: Any) -> None:
    world = sb.world
    efacts = {f.event_id: f for f in sy.event_facts(world)}
    assert set(efacts) == {e["id"] for e in events}
    ofacts = list(sy.order_facts(world))
    tfacts = list(sy.ticket_facts(world))
    assert all(f.provider == "sympla" and f.currency == "BRL" and f.refunded_cents == 0 for f in ofacts)
    assert 800 <= len(ofacts) <= 1200

    for e in events:
        eid = e["id"]
        starts = datetime.strptime(e["start_date"], LOCAL_FMT).replace(tzinfo=SP).astimezone(UTC)
        assert efacts[eid].starts_at == starts and efacts[eid].name == e["name"]

        served = _all(client, f"/events/{eid}/orders", status="true", timezone="UTC")
        facts = {f.order_id: f for f in ofacts if f.event_id == eid}
        assert set(facts) == {o["id"] for o in served}
        for o in served:
            f = facts[o["id"]]
            assert f.created_at == datetime.strptime(o["order_date"], LOCAL_FMT).replace(tzinfo=UTC)
            assert f.counts_as_revenue == (o["order_status"] == "APPROVED")
            assert f.campaign_tag == o.get("utm", {}).get("utm_campaign")
        api_sum = sum((Decimal(str(o["order_total_sale_price"])) for o in served
                       if o["order_status"] == "APPROVED"), Decimal(0))
        fact_sum = Decimal(sum(f.gross_cents for f in facts.values() if f.counts_as_revenue)) / 100
        assert api_sum == fact_sum

        participants = _all(client, f"/events/{eid}/participants")
        event_tickets = [t for t in tfacts if t.event_id == eid]
        assert sum(t.issued for t in event_tickets) == len(participants)
        assert sum(t.checked_in for t in event_tickets) == sum(p["checkin"]["check_in"] for p in participants)

    tagged = [f for f in ofacts if f.campaign_tag and f.campaign_tag.strip().lower().startswith("cmp")]
    assert 0.2 <= len(tagged) / len(ofacts) <= 0.4
    assert any(t != t.strip().lower() for t in (f.campaign_tag for f in tagged))
    campaign_ids = {c.id for c in world.campaigns}
    assert {f.campaign_tag.strip().lower() for f in tagged} <= campaign_ids


def test_scale_generates_lazily() -> None:
    world = w.World(seed=3, scale=1000, anchor=ANCHOR)
    plans = sy._event_plans(world)
    assert sum(p.n_orders for p in plans) == pytest.approx(1_000_000, rel=0.01)
    facts = sy.order_facts(world)
    first = [next(facts) for _ in range(10)]
    assert len({f.order_id for f in first}) == 10


# --- vendor glitches specific to Sympla ---------------------------------------------------------------


@pytest.mark.parametrize("param,code,needle", [("", 401, "Invalid s_token: "), (":403", 403, "s_token "),
                                               (":500", 500, "(s_token: ")])
def test_errorbody_glitch_is_the_documented_error_shape_with_status_200(param, code, needle):
    with start_sandbox(anchor=ANCHOR, faults=f"errorbody:1{param}@/sympla/events") as sb, \
            httpx.Client(base_url=sb.url("sympla"), headers={"s_token": w.SYMPLA_TOKEN}, timeout=30) as c:
        for _ in range(3):  # sticky: every retry gets the same reply
            r = c.get("/events")
            assert r.status_code == 200
            body = r.json()
            assert set(body) == {"error", "code", "message"} and body["error"] is True and body["code"] == code
            assert needle + w.SYMPLA_TOKEN in body["message"]  # the token echoed back, as a real API might
        assert sb.ctx.faults.injected["errorbody"] == 3
        # Other providers are never struck, even with no scope.
        sb.set_faults("errorbody:1")
        tt = httpx.get(sb.url("tickettailor") + "/v1/events", auth=(w.TICKETTAILOR_API_KEY, ""))
        assert tt.status_code == 200 and "data" in tt.json()


def test_badid_glitch_gives_one_event_per_events_page_a_path_rewriting_id(events: list[dict[str, Any]]) -> None:
    with start_sandbox(anchor=ANCHOR, faults="badid:1") as sb, \
            httpx.Client(base_url=sb.url("sympla"), headers={"s_token": w.SYMPLA_TOKEN}, timeout=30) as c:
        pages = [c.get("/events", params={"page": p, "page_size": 2}).json() for p in (1, 2)]
        for page in pages:
            glitched = page["data"]
            assert glitched[0]["id"] == BAD_EVENT_ID and isinstance(glitched[0]["id"], str)
            assert all(e["id"] != BAD_EVENT_ID for e in glitched[1:])
        clean = {e["reference_id"]: e for e in events}
        first = pages[0]["data"][0]
        assert {k: v for k, v in first.items() if k != "id"} == \
            {k: v for k, v in clean[first["reference_id"]].items() if k != "id"}  # the rest stays valid
        # Only the events list: an event's orders keep their ids.
        orders = c.get(f"/events/{events[0]['id']}/orders", params={"status": "true"}).json()["data"]
        assert orders and all(o["id"] != BAD_EVENT_ID for o in orders)
        assert c.get(f"/events/{events[0]['id']}").json()["data"]["id"] == events[0]["id"]
        assert sb.ctx.faults.injected["badid"] == 2
