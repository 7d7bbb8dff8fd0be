"""Unit tests of the reverse sync's Python side: payload shapes, the opt-in rule, contact ids, and the
push engine's failure policy. (Which buyer consents, statuses and money are SQL: tests/test_dbt_sync.py.)

Expected values come from the vendor docs (provider-docs/000 Cymbal, 003 Cordial) and DESIGN.md
point 8, not from the code.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import orjson
import pytest

from assets.reverse_sync import consent
from assets.reverse_sync import payloads as pl
from assets.reverse_sync.engine import Record, sync_records
from assets.reverse_sync.log import FAILED, SENT, SyncLog
from resources.errors import (
    ProviderAuthError,
    ProviderRedirectError,
    ProviderRequestError,
    ProviderUnavailableError,
)

CREATED = datetime(2020, 4, 16, 13, 11, 31, tzinfo=UTC)


def order_row(**over) -> dict:
    row = {
        "order_key": "tickettailor:or_737352", "provider": "tickettailor", "order_id": "or_737352",
        "event_id": "ev_40980", "event_key": "tickettailor:ev_40980", "event_name": "Hackney Downs 2020 Tulip Festival",
        "status": "completed", "counts_as_revenue": True, "currency": "GBP", "currency_exponent": 2,
        "created_at": CREATED, "total_cents": 3027, "tax_cents": 0, "refunded_cents": 500, "net_cents": 2527,
        "campaign_tag": "cmp1001", "email": "john@example.com", "phone": "07123456789", "first_name": "John",
        "last_name": "Doe", "postal_code": "SE1 7PB", "consent_answer": True, "sync_problem": None,
    }
    return {**row, **over}


ITEMS = [
    {"item_id": "tickettailor:li_2", "item_name": "Fee", "item_kind": "transaction_charge", "quantity": 1,
     "total_cents": 29, "position": 2},
    {"item_id": "tickettailor:li_1", "item_name": "Adult", "item_kind": "ticket", "quantity": 2,
     "total_cents": 2998, "position": 1},
]


def contact_row(**over) -> dict:
    row = {"contact_identity": "email:john@example.com", "email": "john@example.com", "phone": "07123456789",
           "first_name": "John", "last_name": "Doe", "postal_code": "SE1 7PB", "consent_answered_at": CREATED,
           "consent_order_key": "tickettailor:or_737352"}
    return {**row, **over}


# --- formats and money ----------------------------------------------------------------------------

@pytest.mark.parametrize("cents, exponent, text", [(1999, 2, "19.99"), (29, 2, "0.29"), (1500, 0, "1500"),
                                                   (1, 3, "0.001"), (100, 2, "1"), (-2530, 2, "-25.3")])
def test_major_units_are_the_exact_decimal(cents, exponent, text):
    assert orjson.dumps(pl.major(cents, exponent)).decode() == text
    assert Decimal(orjson.dumps(pl.major(cents, exponent)).decode()) == Decimal(cents).scaleb(-exponent)


def test_utc_formats():
    sao_paulo = datetime(2024, 3, 2, 12, 30, tzinfo=UTC) - timedelta(hours=3)
    assert pl.utc_z(sao_paulo) == "2024-03-02T09:30:00Z"
    assert pl.iso_utc(CREATED.replace(microsecond=123)) == "2020-04-16T13:11:31+00:00"
    with pytest.raises(ValueError):
        pl.utc_z(datetime(2024, 1, 1))


# --- payloads -------------------------------------------------------------------------------------

def test_cymbal_order_never_opts_in_and_keeps_the_line_order():
    body = pl.cymbal_order(order_row(), ITEMS)
    assert body["marketing_opt_ins"] == {"email": None, "sms": None}  # even though this order said yes
    assert [i["id"] for i in body["items"]] == ["tickettailor:li_1", "tickettailor:li_2"]
    assert body["items"][0] == {"id": "tickettailor:li_1", "name": "Adult", "type": "ticket", "quantity": 2,
                                "price": 2998, "currency_code": "GBP"}
    assert body["total"] == 3027 and body["refunded_amount"] == 500 and body["currency_code"] == "GBP"
    assert body["created_datetime"] == "2020-04-16T13:11:31Z"
    assert body["customer"] == {"email": "john@example.com", "phone": "07123456789", "first_name": "John",
                                "last_name": "Doe", "address": {"zip": "SE1 7PB"}}
    assert body["event_id"] == "tickettailor:ev_40980" and body["utm_campaign"] == "cmp1001"


def test_an_order_without_lines_is_its_own_item():
    body = pl.cymbal_order(order_row(provider="sympla", order_key="sympla:Q080KEE", currency="BRL"), [])
    assert body["items"] == [{"id": "sympla:Q080KEE", "name": "Hackney Downs 2020 Tulip Festival", "type": "ticket",
                              "quantity": 1, "price": 3027, "currency_code": "BRL"}]


def test_cordial_order_in_major_units_without_consent():
    body = pl.cordial_order(order_row(), ITEMS)
    assert body["totalAmount"] == 30.27 and body["tax"] == 0
    assert body["properties"]["refundedAmount"] == 5 and body["properties"]["netAmount"] == 25.27
    assert "marketingConsent" not in body["properties"]
    # 2998 for 2 tickets: 14.99 each; 29 for 1.
    assert [(i["sku"], i["itemPrice"], i["qty"]) for i in body["items"]] == [
        ("tickettailor:li_1", 14.99, 2), ("tickettailor:li_2", 0.29, 1)]
    assert body["purchaseDate"] == "2020-04-16T13:11:31+00:00"
    assert body["contact"] == {"identifiers": {"email": "john@example.com", "channels.phone.address": "07123456789"},
                               "identifiersPriority": ["email", "phone"]}


def test_cordial_order_uneven_line_is_one_unit_and_jpy_has_no_decimals():
    row = order_row(currency="JPY", currency_exponent=0, total_cents=3001, tax_cents=None, net_cents=2501)
    body = pl.cordial_order(row, [{**ITEMS[1], "total_cents": 3001, "quantity": 2}])
    assert body["totalAmount"] == 3001 and "tax" not in body
    assert (body["items"][0]["itemPrice"], body["items"][0]["qty"]) == (3001, 1)


def test_contacts_assert_a_subscription_only_when_told():
    assert pl.cymbal_contact(contact_row(), True)["opt_ins"] == {"email": True, "sms": True}
    assert pl.cymbal_contact(contact_row(phone=None), True)["opt_ins"] == {"email": True, "sms": None}
    assert pl.cymbal_contact(contact_row(), False)["opt_ins"] == {"email": None, "sms": None}
    yes = pl.cordial_contact(contact_row(), True)
    assert yes["attributes"]["channels.email.subscribeStatus"] == "subscribed" and "forceSubscribe" not in yes
    no = pl.cordial_contact(contact_row(), False)
    assert "channels.email.subscribeStatus" not in no["attributes"] and no["attributes"]["first_name"] == "John"
    with pytest.raises(ValueError):
        pl.cordial_contact(contact_row(email=None), True)


def test_cymbal_event_and_its_missing_fields(monkeypatch):
    monkeypatch.delenv("MARQUEE_EVENT_IMAGE_URL", raising=False)
    ev = {"event_key": "sympla:1", "event_name": "Samba", "event_url": "https://www.sympla.com.br/evento/1",
          "image_url": None, "starts_at": CREATED, "ends_at": None, "location": "Circo Voador, Rio",
          "is_cancelled": True, "event_timezone": "America/Sao_Paulo"}
    assert pl.cymbal_event(ev) == {"id": "sympla:1", "url": ev["event_url"], "name": "Samba",
                                   "image_url": ev["event_url"], "start_datetime": "2020-04-16T13:11:31Z",
                                   "location": "Circo Voador, Rio", "status": "canceled",
                                   "timezone": "America/Sao_Paulo"}
    monkeypatch.setenv("MARQUEE_EVENT_IMAGE_URL", "https://img.example/x.png")
    assert pl.cymbal_event(ev)["image_url"] == "https://img.example/x.png"
    assert pl.cymbal_event_missing({**ev, "starts_at": None, "location": None}) == ["start_datetime", "location"]


# --- the opt-in rule ------------------------------------------------------------------------------

NOW = datetime(2026, 12, 2, 12, tzinfo=UTC)


@pytest.mark.parametrize("answered, last_sent, log_exists, expected", [
    (NOW - timedelta(days=2), NOW - timedelta(days=5), True, True),    # a yes after our last send
    (NOW - timedelta(days=5), NOW - timedelta(days=2), True, False),   # sent since: leave as is
    (NOW - timedelta(days=400), None, True, True),                     # never accepted here: new to it
    (NOW - timedelta(days=29), None, False, True),                     # no log at all: fresh answers only
    (NOW - timedelta(days=31), None, False, False),                    # ... an old one is not asserted
    (NOW - timedelta(days=31), NOW - timedelta(days=40), False, True),  # a known send always decides
])
def test_may_assert_opt_in(answered, last_sent, log_exists, expected):
    assert consent.may_assert_opt_in(answered, last_sent, log_exists, NOW, 30) is expected


def test_fresh_days_setting(monkeypatch):
    monkeypatch.delenv(consent.FRESH_DAYS_ENV, raising=False)
    assert consent.fresh_days() == 30
    monkeypatch.setenv(consent.FRESH_DAYS_ENV, "7")
    assert consent.fresh_days() == 7
    monkeypatch.setenv(consent.FRESH_DAYS_ENV, "a week")
    with pytest.raises(ValueError, match=consent.FRESH_DAYS_ENV):
        consent.fresh_days()


def test_content_hash_ignores_the_opt_in_but_sees_details_and_a_new_answer():
    row = contact_row()
    for build in (pl.cymbal_contact, pl.cordial_contact):
        asserted, left_alone = build(row, True), build(row, False)
        assert asserted != left_alone
        assert consent.content_hash(asserted, CREATED) == consent.content_hash(left_alone, CREATED)
        assert consent.content_hash(asserted, CREATED) != consent.content_hash(asserted, CREATED + timedelta(1))
        renamed = build({**row, "last_name": "Smith"}, False)
        assert consent.content_hash(renamed, CREATED) != consent.content_hash(left_alone, CREATED)


def test_contact_keys_are_keyed(monkeypatch):
    monkeypatch.setenv("MARQUEE_PII_HASH_KEY", "key-one")
    one = consent.contact_key("email:john@example.com")
    monkeypatch.setenv("MARQUEE_PII_HASH_KEY", "key-two")
    two = consent.contact_key("email:john@example.com")
    assert one != two and one.startswith("ct_") and "john" not in one
    # Without the key, the id cannot be recomputed from a guessed email (unlike the legacy id).
    import hashlib
    assert consent.legacy_contact_key("email:john@example.com") == \
        "ct_" + hashlib.sha256(b"email:john@example.com").hexdigest()[:24]
    assert one != consent.legacy_contact_key("email:john@example.com")


# --- the engine -----------------------------------------------------------------------------------

def records(n: int) -> list[Record]:
    return [Record(f"r{i}", {"id": f"r{i}"}, f"h{i}") for i in range(n)]


def refused(status: int, code: str | None = None) -> ProviderRequestError:
    err = ProviderRequestError(f"cymbal: POST /v1/partners/orders failed with {status}: a@example.com is bad",
                               provider="cymbal", endpoint="POST /v1/partners/orders", status=status)
    err.code = code or str(status)
    return err


def test_a_refused_record_is_isolated_and_retried_next_run():
    sent: list[list[str]] = []

    def send(batch):
        ids = [p["id"] for p in batch]
        if "r3" in ids:
            raise refused(422, "422 validation_error")
        sent.append(ids)

    out = sync_records("t_isolate", records(8), send, batch=4)
    assert out.sent == 7 and out.failed_ids == ["r3"] and out.stopped is None
    assert sorted(i for b in sent for i in b) == [f"r{i}" for i in range(8) if i != 3]
    state = SyncLog("t_isolate").state()
    assert state["r3"].status == FAILED and state["r3"].reason == "422 validation_error"  # no API text
    sent.clear()
    out2 = sync_records("t_isolate", records(8), lambda b: sent.append([p["id"] for p in b]), batch=4)
    assert sent == [["r3"]] and out2.sent == 1 and out2.unchanged == 7


@pytest.mark.parametrize("status", [400, 404, 405, 410])
def test_a_request_that_cannot_work_stops_the_destination_at_once(status):
    calls = []

    def send(batch):
        calls.append(batch)
        raise refused(status)

    out = sync_records(f"t_stop_{status}", records(1000), send, batch=1, per_record=True, concurrency=4)
    assert len(calls) <= 4, "a wrong URL must not cost one request per record"
    assert out.stopped and "CORDIAL_BASE_URL" not in out.stopped and f"{status}" in out.stopped
    assert out.sent == 0 and out.failed == 1000 and out.not_attempted >= 996
    reasons = {s.reason for s in SyncLog(f"t_stop_{status}").state().values()}
    assert any(r.startswith("not attempted") for r in reasons)


def test_base_url_is_named_as_the_likely_cause():
    def send(batch):
        raise refused(404)

    out = sync_records("t_named", records(3), send, batch=1, per_record=True, base_url_var="CORDIAL_BASE_URL")
    assert "CORDIAL_BASE_URL" in out.stopped and "POST /v1/partners/orders" in out.stopped


def test_a_batch_whose_halves_are_both_refused_stops_the_destination():
    calls = []

    def send(batch):
        calls.append(len(batch))
        raise refused(422)

    out = sync_records("t_shape", records(1000), send, batch=100)
    assert calls == [100, 50, 50], calls  # the first split decides: 3 requests, not 2n
    assert out.stopped and out.sent == 0 and out.failed == 1000


def test_single_record_endpoint_stops_when_every_record_is_refused():
    calls = []

    def send(batch):
        calls.append(batch)
        raise refused(422)

    out = sync_records("t_all_refused", records(500), send, batch=100, per_record=True, concurrency=1)
    # Ten refusals decide; a unit already queued for the worker may still go out.
    assert 10 <= len(calls) <= 12 and out.stopped and out.failed == 500


def test_auth_refusal_is_raised_after_logging():
    def send(batch):
        raise ProviderAuthError("cymbal: refused with 403", provider="cymbal", status=403)

    with pytest.raises(ProviderAuthError):
        sync_records("t_auth", records(5), send, batch=2)
    assert {s.status for s in SyncLog("t_auth").state().values()} == {FAILED}


def test_unavailable_and_redirect_stop_the_destination():
    for name, exc in (("t_down", ProviderUnavailableError("gave up", provider="cordial", status=503)),
                      ("t_moved", ProviderRedirectError("moved", provider="cordial", status=301))):
        calls = []

        def send(batch, exc=exc, calls=calls):
            calls.append(batch)
            raise exc

        out = sync_records(name, records(50), send, batch=10, per_record=True, concurrency=2)
        assert len(calls) <= 2 and out.stopped and out.failed == 50


def test_concurrency_sends_each_record_once_and_in_parallel():
    lock = threading.Lock()
    in_flight, peak, seen = [0], [0], []

    def send(batch):
        with lock:
            in_flight[0] += 1
            peak[0] = max(peak[0], in_flight[0])
        time.sleep(0.01)
        with lock:
            in_flight[0] -= 1
            seen.extend(p["id"] for p in batch)

    out = sync_records("t_parallel", records(200), send, batch=100, per_record=True, concurrency=8)
    assert out.sent == 200 and sorted(seen) == sorted(f"r{i}" for i in range(200))
    assert 4 <= peak[0] <= 8
    assert {s.status for s in SyncLog("t_parallel").state().values()} == {SENT}
