"""The Cordial sandbox over loopback HTTP: Basic auth, upsertContact / upsertOrder validation, the recorder."""

from __future__ import annotations

import copy
import uuid
from collections.abc import Iterator
from datetime import date

import httpx
import pytest

from sandbox import start_sandbox
from sandbox import world as w
from sandbox.cordial import stored

ANCHOR = date(2026, 3, 15)

# The doc's example requests, with its quotes made JSON.
CONTACT = {
    "source": "api.example.com",
    "identifiers": {"customId": "test-user", "email": "test@example.com", "channels.phone.address": "+1234567890"},
    "identifiersPriority": ["customId", "email", "phone"],
    "attributes": {"channels.email.subscribeStatus": "subscribed", "array": [1, 2, 3], "number": 2,
                   "location.postal_code": "92613", "email": "new@example.com", "customId": "test-user",
                   "LISTNAME": False},
    "forceSubscribe": True,
    "mergeOptions": {"mergeAllowed": True, "mergeableSecondaryKeys": ["email"]},
}
ORDER = {
    "source": "api.example.com",
    "contact": {"identifiers": {"segment_id": "test-user", "email": "test@example.com"},
                "identifiersPriority": ["segment_id", "email"]},
    "orderID": "test-order-id",
    "purchaseDate": "2022-04-29T09:00:23+00:00",
    "status": "Order Completed",
    "totalAmount": 623.32,
    "tax": 42.76,
    "properties": {"affiliation": "Google"},
    "removeItemsFromCart": True,
    "items": [{"productID": "test-product-id", "sku": "test-sku", "name": "test-product-name",
               "category": "test-category", "manufacturerName": "test-brand", "itemPrice": 23.54, "qty": 2,
               "url": "https://example.com/product", "images": ["https://cdn.example.com/product.jpg"],
               "properties": {"variant": "black", "size": "xs"}, "attr": []}],
}


@pytest.fixture(scope="module")
def _module_sandbox() -> Iterator:
    # One server per module: stopping one waits out the server's poll interval.
    with start_sandbox(anchor=ANCHOR) as sandbox:
        yield sandbox


@pytest.fixture
def sb(_module_sandbox) -> Iterator:
    _module_sandbox.ctx.recorder.clear()
    _module_sandbox.ctx.state.pop("cordial", None)
    yield _module_sandbox


@pytest.fixture
def client(sb) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sb.url("cordial"), auth=(w.CORDIAL_API_KEY, ""), timeout=10) as c:
        yield c


def _with(base: dict, path: str, value: object) -> dict:
    """A deep copy of `base` with the dotted `path` set to `value` (or removed when value is ...)."""
    out = copy.deepcopy(base)
    *parents, leaf = path.split(".")
    node = out
    for p in parents:
        node = node[int(p)] if isinstance(node, list) else node[p]
    if value is ...:
        del node[leaf]
    else:
        node[leaf] = value
    return out


@pytest.mark.parametrize("auth", [None, ("wrong-key", ""), ("", w.CORDIAL_API_KEY)])
def test_missing_or_wrong_key_is_401(sb, auth):
    r = httpx.post(sb.url("cordial") + "/upsertContact", json=CONTACT, auth=auth)
    assert r.status_code == 401
    assert r.json()["error"]
    assert sb.ctx.recorder.items("cordial") == []


def test_bearer_is_not_basic(sb):
    r = httpx.post(sb.url("cordial") + "/upsertContact", json=CONTACT,
                   headers={"Authorization": f"Bearer {w.CORDIAL_API_KEY}"})
    assert r.status_code == 401


def test_upsert_contact_doc_example_is_accepted_and_recorded(sb, client):
    r = client.post("/upsertContact", json=CONTACT)
    assert r.status_code == 202
    body = r.json()
    assert body["accepted"] is True
    uuid.UUID(body["requestId"])
    assert [i.payload for i in sb.ctx.recorder.items("cordial", "upsertContact")] == [CONTACT]
    assert client.post("/upsertContact", json=CONTACT).json()["requestId"] != body["requestId"]


def test_upsert_order_doc_example_is_accepted_and_recorded(sb, client):
    r = client.post("/upsertOrder", json=ORDER)
    assert r.status_code == 202 and r.json()["accepted"] is True
    assert [i.payload for i in sb.ctx.recorder.items("cordial", "upsertOrder")] == [ORDER]
    assert sb.ctx.recorder.items("cordial", "upsertContact") == []


def test_minimal_contact_with_only_an_email(client):
    assert client.post("/upsertContact", json={"identifiers": {"email": "fan@example.com"}}).status_code == 202


@pytest.mark.parametrize(("path", "value", "needle"), [
    ("identifiers", ..., "identifiers"),
    ("identifiers", {}, "identifiers"),
    ("identifiers", {"email": ""}, "identifiers"),
    ("identifiers", {"email": "not-an-email"}, "email"),
    ("identifiersPriority", "email", "identifiersPriority"),
    ("attributes", [1, 2], "attributes"),
    ("forceSubscribe", "yes", "forceSubscribe"),
])
def test_invalid_contacts_are_422(sb, client, path, value, needle):
    r = client.post("/upsertContact", json=_with(CONTACT, path, value))
    assert r.status_code == 422
    assert needle in r.json()["error"]
    assert sb.ctx.recorder.items("cordial") == []


@pytest.mark.parametrize(("path", "value", "needle"), [
    ("orderID", ..., "orderID"),
    ("orderID", "", "orderID"),
    ("status", ..., "status"),
    ("contact", ..., "contact"),
    ("contact.identifiers", {}, "contact.identifiers"),
    ("purchaseDate", ..., "purchaseDate"),
    ("purchaseDate", "2022-04-29T09:00:23", "purchaseDate"),  # no offset: ambiguous
    ("purchaseDate", "29/04/2022", "purchaseDate"),
    ("totalAmount", "623.32", "totalAmount"),
    ("items", ..., "items"),
    ("items", [], "items"),
    ("items.0.sku", ..., "sku"),
    ("items.0.productID", ..., "productID"),
    ("items.0.name", "", "name"),
    ("items.0.qty", -1, "qty"),
    ("items.0.itemPrice", "23.54", "itemPrice"),
])
def test_invalid_orders_are_422(sb, client, path, value, needle):
    r = client.post("/upsertOrder", json=_with(ORDER, path, value))
    assert r.status_code == 422
    assert needle in r.json()["error"]
    assert sb.ctx.recorder.items("cordial") == []


def test_utc_z_purchase_date_is_accepted(client):
    assert client.post("/upsertOrder", json=_with(ORDER, "purchaseDate", "2026-03-14T10:00:00Z")).status_code == 202


@pytest.mark.parametrize("body", [b"{not json", b"[]", b'[{"identifiers": {"email": "a@example.com"}}]', b'"x"'])
def test_malformed_bodies_are_400(client, body):
    r = client.post("/upsertContact", content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 400
    assert r.json()["error"]


def test_upserts_keep_the_latest_version(sb, client):
    client.post("/upsertOrder", json=ORDER)
    client.post("/upsertOrder", json=_with(ORDER, "status", "Order Refunded"))
    orders = stored(sb.ctx, "upsertOrder")
    assert list(orders) == ["test-order-id"] and orders["test-order-id"]["status"] == "Order Refunded"
    client.post("/upsertContact", json={"identifiers": {"email": "Fan@Example.com"}, "attributes": {"a": 1}})
    client.post("/upsertContact", json={"identifiers": {"email": "fan@example.com"}, "attributes": {"a": 2}})
    contacts = stored(sb.ctx, "upsertContact")
    assert len(contacts) == 1 and next(iter(contacts.values()))["attributes"] == {"a": 2}
    assert len(sb.ctx.recorder.items("cordial")) == 4


def test_received_endpoint_lists_cordial_pushes(sb, client):
    client.post("/upsertContact", json=CONTACT)
    got = httpx.get(sb.base_url + "/_sandbox/received", params={"provider": "cordial"}).json()
    assert got == [{"provider": "cordial", "endpoint": "upsertContact", "payload": CONTACT}]


def test_routes(client):
    assert client.get("/upsertContact").status_code == 405
    assert client.post("/nope", json={}).status_code == 404
    assert client.post("/createContactactivities", json={}).status_code == 501
