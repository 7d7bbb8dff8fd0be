"""The Cymbio sandbox over loopback HTTP: OAuth tokens, variants paging, order lines, returns, acknowledge."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import date, datetime

import httpx
import pytest

from sandbox import start_sandbox
from sandbox import world as w
from sandbox.cymbio import add_returns, configure

ANCHOR = date(2026, 3, 15)
RETAILER = f"/v3/retailers/{w.CYMBIO_RETAILER_ID}"
# Field lists straight from the doc's tables.
VARIANT_FIELDS = {"id", "sku", "upc", "ean", "options", "properties", "currency", "supplier_id", "supplier_name",
                  "retail_price", "model", "title", "description", "description_extra", "description_bullets",
                  "images", "retailer_title", "retailer_description", "retailer_description_extra",
                  "retailer_description_bullets", "special_sale_price", "special_sale_price_start",
                  "special_sale_price_end", "available_inventory", "square_images"}
RETURN_FIELDS = {"returnId", "salesOrderNumber", "cymbioOrderId", "orderIdInSource", "orderPo", "reasonCode",
                 "reason", "acknowledged", "createdAt", "updatedAt", "returnLines"}
LINE_STATUSES = {"Rejected before acceptance", "In progress", "Partially shipped", "Shipped",
                 "Rejected by warehouse"}


def _token_form(**overrides: str) -> dict[str, str]:
    return {"grant_type": "client_credentials", "client_id": w.CYMBIO_CLIENT_ID,
            "client_secret": w.CYMBIO_CLIENT_SECRET, "scope": "variants orders", **overrides}


def _token(base: str) -> str:
    r = httpx.post(base + "/oauth/token", data=_token_form())
    assert r.status_code == 200
    return r.json()["access_token"]


def _client(sandbox) -> httpx.Client:
    base = sandbox.url("cymbio")
    return httpx.Client(base_url=base, headers={"Authorization": f"Bearer {_token(base)}"}, timeout=10)


@pytest.fixture(scope="module")
def _module_sandbox() -> Iterator:
    # One server per module: stopping one waits out the server's poll interval.
    with start_sandbox(anchor=ANCHOR) as sandbox:
        yield sandbox


@pytest.fixture
def sb(_module_sandbox) -> Iterator:
    _module_sandbox.ctx.state.pop("cymbio", None)  # fresh tokens, acknowledgements and returns
    yield _module_sandbox


@pytest.fixture
def client(sb) -> Iterator[httpx.Client]:
    with _client(sb) as c:
        yield c


def _returns(client: httpx.Client, flt: dict | None = None, **params: object) -> list[dict]:
    if flt is not None:
        params["filter"] = json.dumps(flt)
    r = client.get(f"{RETAILER}/returns", params=params)
    assert r.status_code == 200, r.text
    return r.json()


# --- OAuth --------------------------------------------------------------------------------------------

def test_token_reply_follows_the_design(sb):
    r = httpx.post(sb.url("cymbio") + "/oauth/token", data=_token_form())
    body = r.json()
    assert r.status_code == 200
    assert set(body) == {"access_token", "token_type", "expires_in"}
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 360  # the doc: tokens are valid for 6 minutes
    assert body["access_token"]


@pytest.mark.parametrize("override", [{"client_secret": "wrong"}, {"client_id": "someone-else"},
                                      {"client_secret": ""}])
def test_bad_client_credentials_are_401(sb, override):
    r = httpx.post(sb.url("cymbio") + "/oauth/token", data=_token_form(**override))
    assert r.status_code == 401
    assert r.json()["error"] == "invalid_client"
    assert w.CYMBIO_CLIENT_SECRET not in r.text


def test_other_grant_type_is_400(sb):
    r = httpx.post(sb.url("cymbio") + "/oauth/token", data=_token_form(grant_type="password"))
    assert r.status_code == 400


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer not-a-token"},
                                     {"Authorization": f"Basic {w.CYMBIO_CLIENT_SECRET}"}])
def test_api_needs_a_valid_bearer(sb, headers):
    r = httpx.get(sb.url("cymbio") + f"{RETAILER}/variants", headers=headers)
    assert r.status_code == 401
    assert r.json()["error"] == "invalid_token"


def test_tokens_expire_after_their_lifetime(sb):
    configure(sb.ctx, token_ttl_seconds=1)
    base = sb.url("cymbio")
    body = httpx.post(base + "/oauth/token", data=_token_form()).json()
    assert body["expires_in"] == 1
    headers = {"Authorization": f"Bearer {body['access_token']}"}
    assert httpx.get(base + f"{RETAILER}/variants", params={"limit": 1}, headers=headers).status_code == 200
    time.sleep(1.2)
    expired = httpx.get(base + f"{RETAILER}/variants", params={"limit": 1}, headers=headers)
    assert expired.status_code == 401
    fresh = {"Authorization": f"Bearer {_token(base)}"}
    assert httpx.get(base + f"{RETAILER}/variants", params={"limit": 1}, headers=fresh).status_code == 200


def test_expire_fault_rejects_a_used_token_once_and_reauth_recovers():
    with start_sandbox(anchor=ANCHOR, faults="expire:1.0") as sandbox, _client(sandbox) as c:
        assert c.get(f"{RETAILER}/variants", params={"limit": 1}).status_code == 200  # first use: never faulted
        rejected = c.get(f"{RETAILER}/variants", params={"limit": 2})
        assert rejected.status_code == 401
        assert rejected.json()["error"] == "invalid_token"
        # The token is now gone for good, as a real expiry would be.
        assert c.get(f"{RETAILER}/variants", params={"limit": 3}).status_code == 401
        c.headers["Authorization"] = f"Bearer {_token(sandbox.url('cymbio'))}"
        assert c.get(f"{RETAILER}/variants", params={"limit": 2}).status_code == 200
        assert sandbox.ctx.faults.injected["expire"] == 1


def test_other_retailer_is_403(client):
    r = client.get("/v3/retailers/9999/variants")
    assert r.status_code == 403
    assert r.json()["message"]


# --- variants -----------------------------------------------------------------------------------------

def test_variants_default_page_holds_the_whole_small_catalog(client):
    variants = client.get(f"{RETAILER}/variants", params={"service_type": "ecommerce"}).json()
    assert isinstance(variants, list)
    assert len(variants) == 300  # ~300 at scale 1, fewer than one 1000-record page
    assert len({v["id"] for v in variants}) == 300
    assert len({v["sku"] for v in variants}) == 300
    for v in variants:
        assert set(v) == VARIANT_FIELDS
        assert isinstance(v["retail_price"], int) and v["retail_price"] > 0
        assert len(v["currency"]) == 3 and v["currency"].isupper()
        assert v["sku"].startswith(v["model"])
        assert len(v["upc"]) == 12 and v["upc"].isdigit()
        if v["special_sale_price"] is not None:
            assert v["special_sale_price"] < v["retail_price"]


def test_variants_paging_at_exact_multiples_of_the_page_size(client):
    full = client.get(f"{RETAILER}/variants").json()
    pages = [client.get(f"{RETAILER}/variants", params={"limit": 100, "offset": off}).json()
             for off in (0, 100, 200, 300)]
    assert [len(p) for p in pages] == [100, 100, 100, 0]
    assert [v["id"] for p in pages for v in p] == [v["id"] for v in full]
    tail = client.get(f"{RETAILER}/variants", params={"limit": 7, "offset": 294}).json()
    assert [v["id"] for v in tail] == [v["id"] for v in full[294:]]


def test_variants_at_scale_span_several_1000_pages():
    with start_sandbox(anchor=ANCHOR, scale=4) as sandbox, _client(sandbox) as c:
        first = c.get(f"{RETAILER}/variants", params={"limit": 1000, "offset": 0}).json()
        second = c.get(f"{RETAILER}/variants", params={"limit": 1000, "offset": 1000}).json()
        third = c.get(f"{RETAILER}/variants", params={"limit": 1000, "offset": 2000}).json()
        assert (len(first), len(second), len(third)) == (1000, 200, 0)
        assert not {v["id"] for v in first} & {v["id"] for v in second}


@pytest.mark.parametrize("params", [{"limit": 1001}, {"limit": 0}, {"offset": -1}, {"limit": "ten"}])
def test_variants_bad_paging_is_400(client, params):
    assert client.get(f"{RETAILER}/variants", params=params).status_code == 400


def test_repeat_fault_on_variants_and_returns_duplicates_the_previous_record():
    with start_sandbox(anchor=ANCHOR, faults="repeat:1.0") as sandbox, _client(sandbox) as c:
        first = c.get(f"{RETAILER}/variants", params={"limit": 50, "offset": 0}).json()
        second = c.get(f"{RETAILER}/variants", params={"limit": 50, "offset": 50}).json()
        assert len(first) == 50
        assert second[0]["id"] == first[-1]["id"] and len(second) == 51
        r1 = c.get(f"{RETAILER}/returns", params={"limit": 5, "offset": 0}).json()
        r2 = c.get(f"{RETAILER}/returns", params={"limit": 5, "offset": 5}).json()
        assert r2[0]["returnId"] == r1[-1]["returnId"]


# --- order lines ----------------------------------------------------------------------------------------

def test_order_line_statuses_for_an_order_referenced_by_a_return(client):
    ret = _returns(client)[0]
    r = client.get(f"{RETAILER}/orders/order-line", params={"cymbio_order_id": ret["cymbioOrderId"]})
    assert r.status_code == 200
    order = r.json()
    assert order["cymbioOrderId"] == ret["cymbioOrderId"]
    assert order["orderPo"] == ret["orderPo"]
    assert datetime.fromisoformat(order["createdAt"]) < datetime.fromisoformat(ret["createdAt"])
    assert order["orderLines"]
    for line in order["orderLines"]:
        assert line["status"] in LINE_STATUSES
        shipped = sum(s["quantity"] for s in line.get("shipments", []))
        rejected = sum(x["quantity"] for x in line.get("rejections", []))
        assert shipped + rejected <= line["quantity"]
        if line["status"] == "Shipped":
            assert shipped == line["quantity"]
        if line["status"] == "Partially shipped":
            assert 0 < shipped < line["quantity"]
        assert set(line["variant"]) == {"sku", "model", "title", "upc", "ean"}
    returned_skus = {ln["identifiers"]["sku"] for ln in ret["returnLines"]}
    assert returned_skus <= {ln["variant"]["sku"] for ln in order["orderLines"]}


def test_order_line_errors(client):
    assert client.get(f"{RETAILER}/orders/order-line", params={"cymbio_order_id": 1}).status_code == 404
    assert client.get(f"{RETAILER}/orders/order-line").status_code == 400
    assert client.get(f"{RETAILER}/orders/order-line", params={"cymbio_order_id": "abc"}).status_code == 400


# --- returns and acknowledge --------------------------------------------------------------------------

def test_returns_shape_and_status_filter(client):
    everything = _returns(client)
    assert 20 <= len(everything) <= 30  # ~25 at scale 1
    for ret in everything:
        assert set(ret) == RETURN_FIELDS
        assert ret["returnLines"]
        for line in ret["returnLines"]:
            assert set(line["identifiers"]) == {"sku", "upc"}
            assert 1 <= line["returnedQuantity"] <= line["orderedQuantity"]
        assert ret["createdAt"].endswith("Z") and ret["updatedAt"] >= ret["createdAt"]
    pending = _returns(client, {"status": "not_acknowledged"})
    done = _returns(client, {"status": "acknowledged"})
    assert pending and all(r["acknowledged"] is False for r in pending)
    assert all(r["acknowledged"] is True for r in done)
    assert sorted(r["returnId"] for r in pending + done) == sorted(r["returnId"] for r in everything)


def test_returns_filter_by_order(client):
    target = _returns(client)[0]["cymbioOrderId"]
    got = _returns(client, {"cymbio_order_id": target, "status": "not_acknowledged"})
    expected = [r["returnId"] for r in _returns(client, {"status": "not_acknowledged"})
                if r["cymbioOrderId"] == target]
    assert [r["returnId"] for r in got] == expected


@pytest.mark.parametrize("raw", ['{"status": not json', '["not_acknowledged"]', '{"state": "open"}',
                                 '{"status": "pending"}', '{"cymbio_order_id": "abc"}'])
def test_returns_bad_filter_is_400(client, raw):
    assert client.get(f"{RETAILER}/returns", params={"filter": raw}).status_code == 400


def test_returns_paging(client):
    pending = _returns(client, {"status": "not_acknowledged"})
    n = len(pending)
    pages = [_returns(client, {"status": "not_acknowledged"}, limit=4, offset=off) for off in range(0, n + 4, 4)]
    assert [r["returnId"] for p in pages for r in p] == [r["returnId"] for r in pending]
    assert pages[-1] == [] or len(pages[-1]) < 4


@pytest.mark.parametrize("spelling", ["returns", "return"])
def test_acknowledge_via_either_spelling_removes_from_not_acknowledged(client, spelling):
    pending = _returns(client, {"status": "not_acknowledged"})
    target = pending[0]["returnId"]
    r = client.put(f"{RETAILER}/{spelling}/{target}/acknowledge")
    assert r.status_code == 200
    assert r.json() == {"success": True}
    after = {x["returnId"] for x in _returns(client, {"status": "not_acknowledged"})}
    assert target not in after
    assert after == {x["returnId"] for x in pending} - {target}
    assert target in {x["returnId"] for x in _returns(client, {"status": "acknowledged"})}
    again = client.put(f"{RETAILER}/{spelling}/{target}/acknowledge")
    assert again.status_code == 200  # idempotent


def test_acknowledge_unknown_return_is_404(client):
    assert client.put(f"{RETAILER}/returns/999999/acknowledge").status_code == 404
    assert client.put(f"{RETAILER}/returns/abc/acknowledge").status_code == 404
    assert client.get(f"{RETAILER}/returns/1701/acknowledge").status_code == 404


def test_later_pull_sees_new_returns(sb, client):
    before = {r["returnId"] for r in _returns(client, {"status": "not_acknowledged"})}
    for rid in before:
        assert client.put(f"{RETAILER}/returns/{rid}/acknowledge").status_code == 200
    assert _returns(client, {"status": "not_acknowledged"}) == []
    new_ids = add_returns(sb.ctx, 3)
    assert len(set(new_ids)) == 3
    later = _returns(client, {"status": "not_acknowledged"})
    assert [r["returnId"] for r in later] == new_ids
    assert not set(new_ids) & before
    assert all(r["createdAt"] > "2026-03-15" for r in later)  # they appeared near the end of the history


def test_same_seed_same_catalog_and_returns():
    def fetch() -> tuple[list, list]:
        with start_sandbox(anchor=ANCHOR) as sandbox, _client(sandbox) as c:
            return c.get(f"{RETAILER}/variants").json(), c.get(f"{RETAILER}/returns").json()

    assert fetch() == fetch()
