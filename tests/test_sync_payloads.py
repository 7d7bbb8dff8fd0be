"""Unit tests of the reverse-sync rules (assets/sync_payloads.py): consent, money, time, payloads.

Expected values come from the vendor docs and DESIGN.md (point 8, Storage "Money"), not from the code.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import orjson
import pytest

from assets import sync_payloads as sp

# The documented Ticket Tailor order example (provider-docs/002), with a consent answer added.
TT_ORDER = {
    "object": "order",
    "id": "or_737352",
    "buyer_details": {
        "address": {"address_1": "The Queen's Walk", "postal_code": "SE1 7PB"},
        "custom_questions": [{"question": "Can we send you marketing emails?", "answer": "Yes"}],
        "email": "john@example.com",
        "first_name": "John",
        "last_name": "Doe",
        "name": "John Doe",
        "phone": "07123456789",
    },
    "created_at": 1587042691,  # 2020-04-16T13:11:31Z
    "currency": {"base_multiplier": 100, "code": "gbp"},
    "event_summary": {"id": "ev_40980", "name": "Hackney Downs 2020 Tulip Festival"},
    "line_items": [
        {"object": "line_item", "id": "li_1", "booking_fee": 0, "description": "Adult", "type": "ticket",
         "total": 2998, "value": 2998, "quantity": 2},
        {"object": "line_item", "id": "li_2", "booking_fee": 0, "description": "Fee", "type": "transaction_charge",
         "total": 29, "value": 29, "quantity": 1},
    ],
    "referral_tag": "cmp1001",
    "refund_amount": 0,
    "status": "completed",
    "subtotal": 3027,
    "tax": 0,
    "total": 3027,
}

# The documented Sympla order and participant examples (provider-docs/004).
SY_ORDER = {
    "id": "Q080KEE", "event_id": "b1234", "order_date": "2018-10-21 10:12:23", "order_status": "APPROVED",
    "order_total_sale_price": 0.29, "buyer_first_name": "Joaquim", "buyer_last_name": "Lopes",
    "buyer_email": "meuemail@sympla.com.br", "utm": {"utm_campaign": "nome_da_campanha"},
}


def participant(pid: int, email: str, answer: str | None, price: float = 0.29) -> dict:
    form = [{"id": 1, "name": "CPF", "value": "142.536.789-55"}]
    if answer is not None:
        form.append({"id": 2, "name": "Aceito receber comunicações de Marketing?", "value": answer})
    return {"id": pid, "order_id": "Q080KEE", "email": email, "ticket_name": "VIP", "ticket_sale_price": price,
            "custom_form": form}


def tt(**changes) -> dict:
    order = orjson.loads(orjson.dumps(TT_ORDER))
    order.update(changes)
    return order


# --- consent --------------------------------------------------------------------------------------

@pytest.mark.parametrize("answer", ["yes", "Yes", " YES ", "sim", "Sim", "true", "TRUE", "1", True, 1])
def test_yes_answers_consent(answer):
    assert sp.consent_answer([{"question": "Marketing opt-in", "answer": answer}], "marketing") is True


@pytest.mark.parametrize("answer", [None, "", "no", "No", "não", "Nao", "false", "0", "y", "maybe", False, 0])
def test_other_answers_do_not_consent(answer):
    assert sp.consent_answer([{"question": "Marketing opt-in", "answer": answer}], "marketing") is not True


def test_consent_needs_the_labelled_question():
    questions = [{"question": "Dietary requirements", "answer": "yes"}]
    assert sp.consent_answer(questions, "marketing") is not True
    assert sp.consent_answer([], "marketing") is not True
    assert sp.consent_answer(None, "marketing") is not True
    # The label is matched case-insensitively as a substring, and is configurable.
    assert sp.consent_answer(questions, "DIETARY") is True


def test_consent_shapes_sympla_single_object_and_mapping():
    assert sp.consent_answer({"id": 2, "name": "Quero receber marketing", "value": "sim"}, "marketing") is True
    assert sp.consent_answer({"Marketing emails": "yes"}, "marketing") is True
    assert sp.consent_answer({"Marketing emails": None}, "marketing") is not True


@pytest.mark.parametrize("answer", ["Sim", "sim", "YES", "yes", " Yes ", "1", "true", "TRUE", True, 1])
def test_consent_answer_explicit_yes(answer):
    assert sp.consent_answer([{"question": "Marketing opt-in", "answer": answer}], "marketing") is True


@pytest.mark.parametrize("answer", ["Não", "nao", "Nao", "no", "NO", "0", "false", "False", "maybe", "y", False, 0])
def test_consent_answer_explicit_no(answer):
    # Anything answered that is not a yes is an explicit no (DESIGN.md point 8: yes / sim / true / 1 only).
    assert sp.consent_answer([{"question": "Marketing opt-in", "answer": answer}], "marketing") is False


@pytest.mark.parametrize("questions", [
    None, [], [{"question": "Dietary requirements", "answer": "no"}],
    [{"question": "Marketing opt-in", "answer": None}], [{"question": "Marketing opt-in", "answer": ""}],
    [{"question": "Marketing opt-in", "answer": "   "}], [{"question": "Marketing opt-in"}],
    {"Marketing emails": None},
])
def test_consent_answer_none_when_unanswered(questions):
    assert sp.consent_answer(questions, "marketing") is None


def test_consent_answer_within_one_order_a_yes_wins():
    both = [{"question": "Marketing by email", "answer": "no"}, {"question": "Marketing by SMS", "answer": "yes"}]
    assert sp.consent_answer(both, "marketing") is True
    assert sp.consent_answer([{"question": "Marketing", "answer": None},
                              {"question": "Marketing", "answer": "no"}], "marketing") is False


def test_consent_label_from_env(monkeypatch):
    monkeypatch.delenv("MARQUEE_CONSENT_LABEL", raising=False)
    assert sp.consent_label() == "marketing"
    monkeypatch.setenv("MARQUEE_CONSENT_LABEL", "newsletter")
    assert sp.consent_label() == "newsletter"


# --- money and time -------------------------------------------------------------------------------

def test_to_cents_is_exact():
    assert sp.to_cents(0.29, "BRL") == 29  # 0.29 * 100 == 28.999... in floating point
    assert sp.to_cents("10.1", "BRL") == 1010
    assert sp.to_cents(Decimal("123.5"), "BRL") == 12350
    assert sp.to_cents(1500, "JPY") == 1500
    with pytest.raises(ValueError):
        sp.to_cents("1.234", "BRL")


def test_cents_to_major_exponents():
    assert sp.cents_to_major(1999, "GBP") == Decimal("19.99")
    assert sp.cents_to_major(1500, "JPY") == Decimal("1500")
    assert sp.cents_to_major(1500, "jpy", base_multiplier=1) == Decimal("1500")
    assert sp.cents_to_major(12345, "KWD") == Decimal("12.345")


@pytest.mark.parametrize("cents", [1, 29, 1010, 2899, 2999, 10001, 123456789, 99999999999])
def test_json_number_text_is_the_exact_decimal(cents):
    value = sp.cents_to_major(cents, "USD")
    text = orjson.dumps({"x": sp.json_number(value)}).decode()
    assert Decimal(text[len('{"x":'):-1]) == Decimal(cents) / 100


def test_utc_z_and_iso():
    dt = datetime(2024, 3, 2, 12, 30, tzinfo=sp.ZoneInfo("America/Sao_Paulo"))
    assert sp.utc_z(dt) == "2024-03-02T15:30:00Z"
    assert sp.iso_utc(dt) == "2024-03-02T15:30:00+00:00"
    with pytest.raises(ValueError):
        sp.utc_z(datetime(2024, 3, 2))


def test_to_utc_inputs():
    assert sp.to_utc(1587042691) == datetime(2020, 4, 16, 13, 11, 31, tzinfo=UTC)
    assert sp.to_utc("2020-05-01T18:00:00+01:00") == datetime(2020, 5, 1, 17, 0, tzinfo=UTC)
    # Sympla event dates are Sao Paulo local time (UTC-3 in September 2018).
    assert sp.to_utc("2018-09-21 22:00:00", naive_tz=sp.SAO_PAULO) == datetime(2018, 9, 22, 1, 0, tzinfo=UTC)
    assert sp.to_utc(None) is None and sp.to_utc("not a date") is None


# --- unified orders -------------------------------------------------------------------------------

def test_tickettailor_order_unified():
    o = sp.tickettailor_order(TT_ORDER, "marketing")
    assert o.key == "tickettailor:or_737352"
    assert o.currency == "GBP" and o.total_cents == 3027 and o.refunded_cents == 0
    assert o.created_at == datetime(2020, 4, 16, 13, 11, 31, tzinfo=UTC)
    assert o.counts_as_revenue and o.consent
    assert [i.id for i in o.items] == ["tickettailor:li_1", "tickettailor:li_2"]
    assert o.campaign_tag == "cmp1001"


@pytest.mark.parametrize("status, revenue", [("completed", True), ("pending", False), ("cancelled", False)])
def test_tickettailor_revenue_rule(status, revenue):
    assert sp.tickettailor_order(tt(status=status), "marketing").counts_as_revenue is revenue


def test_tickettailor_no_answer_no_consent():
    order = tt(buyer_details={**TT_ORDER["buyer_details"], "custom_questions": []})
    assert not sp.tickettailor_order(order, "marketing").consent
    assert sp.tickettailor_order(order, "marketing").consent_answer is None
    no = tt(buyer_details={**TT_ORDER["buyer_details"], "custom_questions": [{"question": "Marketing?",
                                                                              "answer": "No"}]})
    assert sp.tickettailor_order(no, "marketing").consent_answer is False
    assert sp.tickettailor_order(TT_ORDER, "marketing").consent_answer is True


def test_sympla_consent_is_the_buyers_own_answer():
    buyer, guest = "meuemail@sympla.com.br", "guest@example.com"
    # Buyer's own ticket says yes (email matched case-insensitively).
    assert sp.sympla_order(SY_ORDER, [participant(1, buyer.upper(), "Sim")], "marketing").consent
    # Only a guest said yes: the buyer is not subscribed.
    assert not sp.sympla_order(SY_ORDER, [participant(1, buyer, "Não"), participant(2, guest, "sim")],
                               "marketing").consent
    # No answer, or no participants landed yet: no consent, and no answer either.
    assert not sp.sympla_order(SY_ORDER, [participant(1, buyer, None)], "marketing").consent
    assert not sp.sympla_order(SY_ORDER, [], "marketing").consent
    assert sp.sympla_order(SY_ORDER, [participant(1, buyer, None)], "marketing").consent_answer is None
    assert sp.sympla_order(SY_ORDER, [], "marketing").consent_answer is None
    # The buyer's own "Não" is an explicit no; a guest's "Não" is not the buyer's answer.
    assert sp.sympla_order(SY_ORDER, [participant(1, buyer, "Não")], "marketing").consent_answer is False
    assert sp.sympla_order(SY_ORDER, [participant(1, buyer, None), participant(2, guest, "Não")],
                           "marketing").consent_answer is None


def test_sympla_order_money_and_time():
    o = sp.sympla_order(SY_ORDER, [participant(1, "x@example.com", None, 0.29)], "marketing")
    assert o.total_cents == 29 and o.currency == "BRL"
    assert o.items[0].total_cents == 29
    # Without a typed column, order_date is UTC (the client asks for timezone=UTC).
    assert o.created_at == datetime(2018, 10, 21, 10, 12, 23, tzinfo=UTC)
    typed = datetime(2018, 10, 21, 13, 12, 23, tzinfo=UTC)
    assert sp.sympla_order(SY_ORDER, [], "marketing", created_at=typed, total=Decimal("12.50")).total_cents == 1250
    assert sp.sympla_order({**SY_ORDER, "order_status": "CANCELLED"}, [], "marketing").counts_as_revenue is False


def test_ids_from_providers_never_collide():
    a = sp.tickettailor_order(tt(id="X1"), "marketing")
    b = sp.sympla_order({**SY_ORDER, "id": "X1"}, [], "marketing")
    assert a.key != b.key
    assert sp.cymbal_order(a)["id"] != sp.cymbal_order(b)["id"]
    assert sp.cordial_order(a)["orderID"] != sp.cordial_order(b)["orderID"]


def test_orders_to_sync_keeps_revenue_and_known_changes():
    done = sp.tickettailor_order(tt(id="or_1"), "m")
    cancelled = sp.tickettailor_order(tt(id="or_2", status="cancelled"), "m")
    pending = sp.tickettailor_order(tt(id="or_3", status="pending"), "m")
    assert [o.order_id for o in sp.orders_to_sync([done, cancelled, pending])] == ["or_1"]
    # Cymbal already has or_2 from when it was completed: its cancellation must reach Cymbal.
    assert [o.order_id for o in sp.orders_to_sync([done, cancelled, pending], {"tickettailor:or_2"})] == [
        "or_1", "or_2"]


# --- contacts -------------------------------------------------------------------------------------

def test_consenting_contacts_only_and_deduplicated():
    yes_q = [{"question": "Marketing", "answer": "yes"}]
    no_q = [{"question": "Marketing", "answer": "no"}]
    a1 = sp.tickettailor_order(tt(id="or_1", buyer_details={"email": "A@x.com", "custom_questions": yes_q}), "m")
    a2 = sp.tickettailor_order(tt(id="or_2", buyer_details={"email": "a@x.com", "custom_questions": yes_q,
                                                            "first_name": "Ann"}, created_at=1587042999), "m")
    b = sp.tickettailor_order(tt(id="or_3", buyer_details={"email": "b@x.com", "custom_questions": no_q}), "m")
    c = sp.tickettailor_order(tt(id="or_4", buyer_details={"email": "c@x.com"}), "m")
    contacts = sp.consenting_contacts([a2, b, c, a1])
    assert len(contacts) == 1
    assert contacts[0].email == "a@x.com" and contacts[0].first_name == "Ann"  # latest order's details
    assert set(contacts[0].source_orders) == {"tickettailor:or_1", "tickettailor:or_2"}


def buyer_order(oid: str, answer: str | None, day: int, email: str = "pat@x.com", **buyer) -> sp.UnifiedOrder:
    """A Ticket Tailor order by one buyer on 2024-01-`day`; `answer` None = the question was not asked."""
    questions = [] if answer is None else [{"question": "Marketing emails?", "answer": answer}]
    created = int(datetime(2024, 1, day, 12, tzinfo=UTC).timestamp())
    return sp.tickettailor_order(tt(id=oid, created_at=created,
                                    buyer_details={"email": email, "custom_questions": questions, **buyer}), "m")


def contact_emails(*orders: sp.UnifiedOrder) -> list[str]:
    return [c.email for c in sp.consenting_contacts(orders)]


def test_latest_explicit_answer_wins_yes_then_no():
    # Given in any order: creation order decides, not the order of the input.
    assert contact_emails(buyer_order("or_2", "No", 2), buyer_order("or_1", "Yes", 1)) == []


def test_latest_explicit_answer_wins_no_then_yes():
    (contact,) = sp.consenting_contacts([buyer_order("or_2", "Yes", 2), buyer_order("or_1", "No", 1)])
    assert contact.email == "pat@x.com" and contact.source_orders == ("tickettailor:or_2",)


def test_no_answer_later_keeps_an_earlier_yes():
    unanswered = [buyer_order("or_2", None, 2), buyer_order("or_3", "", 3), buyer_order("or_4", "  ", 4)]
    (contact,) = sp.consenting_contacts([buyer_order("or_1", "Sim", 1), *unanswered])
    assert contact.source_orders == ("tickettailor:or_1",)
    # ... and an earlier no: unanswered orders never make a contact.
    assert contact_emails(buyer_order("or_1", "Não", 1), *unanswered) == []


def test_only_unanswered_is_not_a_contact():
    assert contact_emails(buyer_order("or_1", None, 1), buyer_order("or_2", "", 2)) == []


@pytest.mark.parametrize("later, contact", [
    ("Sim", True), ("sim", True), ("YES", True), ("1", True), ("true", True),
    ("Não", False), ("nao", False), ("no", False), ("0", False), ("false", False), ("maybe", False),
])
def test_latest_answer_forms(later, contact):
    # An earlier opposite answer, so the latest one alone decides.
    first = "no" if contact else "yes"
    assert contact_emails(buyer_order("or_1", first, 1), buyer_order("or_2", later, 2)) == (
        ["pat@x.com"] if contact else [])


def test_latest_answer_is_per_buyer_across_providers_and_email_case():
    # The same person (email matched case-insensitively) said yes at Ticket Tailor, then no at Sympla.
    tt_yes = buyer_order("or_1", "yes", 1, email="Meuemail@Sympla.com.br")
    sy_no = sp.sympla_order(SY_ORDER, [participant(1, "meuemail@sympla.com.br", "Não")], "marketing",
                            created_at=datetime(2024, 1, 2, tzinfo=UTC))
    assert contact_emails(tt_yes, sy_no) == []
    # Sympla participants not landed yet: no answer, so the Ticket Tailor yes stands.
    sy_unknown = sp.sympla_order(SY_ORDER, [], "marketing", created_at=datetime(2024, 1, 2, tzinfo=UTC))
    assert contact_emails(tt_yes, sy_unknown) == ["Meuemail@Sympla.com.br"]
    # Another buyer's no never touches this one.
    assert contact_emails(tt_yes, buyer_order("or_9", "no", 3, email="other@x.com")) == ["Meuemail@Sympla.com.br"]


def test_contact_payload_hash_stable_under_the_latest_answer_rule():
    # Details (and so the hash the sync log compares) come from the latest yes order: a later order
    # with no answer, even with new details, does not change the payload.
    first = buyer_order("or_1", "yes", 1, first_name="Pat")
    (before,) = sp.consenting_contacts([first])
    (after,) = sp.consenting_contacts([first, buyer_order("or_2", None, 2, first_name="Patricia")])
    assert sp.payload_hash(sp.cymbal_contact(after)) == sp.payload_hash(sp.cymbal_contact(before))
    assert sp.payload_hash(sp.cordial_contact(after)) == sp.payload_hash(sp.cordial_contact(before))
    # A yes, a no, then a yes again with new details: the new yes order's details.
    (again,) = sp.consenting_contacts([first, buyer_order("or_2", "no", 2),
                                       buyer_order("or_3", "sim", 3, first_name="Patricia")])
    assert again.first_name == "Patricia" and again.source_orders == ("tickettailor:or_3",)


def test_order_opt_ins_follow_that_orders_own_answer():
    # Order payloads: true only for an explicit yes on THAT order, else null; never false.
    for answer, expected in (("yes", True), ("no", None), (None, None), ("", None)):
        p = sp.cymbal_order(buyer_order("or_1", answer, 1))
        assert p["marketing_opt_ins"] == {"email": expected, "sms": None}, answer
        assert sp.cordial_order(buyer_order("or_1", answer, 1))["properties"]["marketingConsent"] is (
            expected is True)


def test_contact_key_hides_pii():
    key = sp.contact_key("John@Example.com", None)
    assert key == sp.contact_key("john@example.com ", None)
    assert "john" not in key and "example" not in key


# --- payloads -------------------------------------------------------------------------------------

def test_cymbal_order_payload():
    p = sp.cymbal_order(sp.tickettailor_order(TT_ORDER, "marketing"))
    assert p["id"] == "tickettailor:or_737352" and p["event_id"] == "tickettailor:ev_40980"
    assert p["customer"]["email"] == "john@example.com" and p["customer"]["phone"] == "07123456789"
    assert p["marketing_opt_ins"] == {"email": True, "sms": True}
    assert all(i["currency_code"] == "GBP" for i in p["items"])
    assert [i["price"] for i in p["items"]] == [2998, 29]
    assert p["created_datetime"] == "2020-04-16T13:11:31Z"
    assert p["total"] == 3027 and p["refunded_amount"] == 0


def test_cymbal_order_without_consent_never_opts_in():
    order = tt(buyer_details={**TT_ORDER["buyer_details"], "custom_questions": [
        {"question": "Marketing?", "answer": "No"}]})
    p = sp.cymbal_order(sp.tickettailor_order(order, "marketing"))
    assert p["marketing_opt_ins"] == {"email": None, "sms": None}


def test_cymbal_event_payloads():
    tt_event = {
        "id": "ev_1", "name": "Tulip Festival", "url": "https://www.tickettailor.com/events/x/1",
        "images": {"header": "https://img/h.jpg", "thumbnail": "https://img/t.jpg"},
        "start": {"iso": "2020-05-01T18:00:00+01:00", "unix": 1588352400},
        "end": {"iso": "2020-05-01T22:30:00+01:00", "unix": 1588368600},
        "status": "published", "timezone": "Europe/London", "venue": {"name": "Hackney Downs", "postal_code": "E5"},
    }
    p = sp.cymbal_event(sp.tickettailor_event(tt_event))
    assert p["id"] == "tickettailor:ev_1"
    assert p["start_datetime"] == "2020-05-01T17:00:00Z" and p["end_datetime"] == "2020-05-01T21:30:00Z"
    assert p["image_url"] == "https://img/h.jpg" and p["location"] == "Hackney Downs, E5" and p["status"] == "live"
    sy_event = {"id": "b1", "name": "Workshop da Sympla", "start_date": "2018-09-21 22:00:00",
                "end_date": "2018-09-22 12:00:01", "cancelled": 1,
                "address": {"name": "Loja Contempo", "city": "Belo Horizonte", "state": "MG"}}
    ev = sp.sympla_event(sy_event)
    assert sp.cymbal_event_missing(ev) == []
    q = sp.cymbal_event(ev)
    assert q["start_datetime"] == "2018-09-22T01:00:00Z" and q["status"] == "canceled"
    assert q["location"] == "Loja Contempo, Belo Horizonte, MG" and q["url"] and q["image_url"]
    for field in ("id", "url", "name", "image_url", "start_datetime", "location"):
        assert p[field] and q[field]


def test_cymbal_event_missing_start_is_reported():
    ev = sp.tickettailor_event({"id": "ev_2", "name": "x", "url": "https://u", "venue": {"name": "v"}})
    assert "start_datetime" in sp.cymbal_event_missing(ev)


def test_cordial_order_payload_decimal_major_units():
    order = sp.tickettailor_order(tt(total=2899, tax=29, refund_amount=1000), "marketing")
    p = sp.cordial_order(order)
    text = orjson.dumps(p).decode()
    assert '"totalAmount":28.99' in text and '"tax":0.29' in text
    assert p["properties"]["refundedAmount"] == 10 and p["properties"]["netAmount"] == 18.99
    assert p["purchaseDate"] == "2020-04-16T13:11:31+00:00"
    assert p["orderID"] == "tickettailor:or_737352"
    assert p["contact"]["identifiers"]["email"] == "john@example.com"
    # 2998 for 2 tickets splits evenly: itemPrice 14.99, qty 2.
    assert p["items"][0] == {"productID": "tickettailor:ev_40980", "sku": "tickettailor:li_1", "name": "Adult",
                             "category": "ticket", "itemPrice": 14.99, "qty": 2}
    for item in p["items"]:
        assert item["productID"] and item["sku"] and item["name"]


def test_cordial_order_jpy_has_no_decimals():
    order = sp.tickettailor_order(tt(currency={"code": "jpy", "base_multiplier": 1}, total=1500, tax=0,
                                     line_items=[]), "marketing")
    p = sp.cordial_order(order)
    assert p["totalAmount"] == 1500 and isinstance(p["totalAmount"], int)
    assert p["items"][0]["itemPrice"] == 1500  # the order itself stands in for missing line items


def test_contact_payloads():
    order = sp.tickettailor_order(TT_ORDER, "marketing")
    (contact,) = sp.consenting_contacts([order])
    cy = sp.cymbal_contact(contact)
    assert cy["email"] == "john@example.com" and cy["opt_ins"] == {"email": True, "sms": True}
    co = sp.cordial_contact(contact)
    assert co["identifiers"] == {"email": "john@example.com"}
    assert co["attributes"]["channels.email.subscribeStatus"] == "subscribed"
    assert "forceSubscribe" not in co


def test_payload_hash_ignores_key_order_and_sees_changes():
    assert sp.payload_hash({"a": 1, "b": [1, 2]}) == sp.payload_hash({"b": [1, 2], "a": 1})
    assert sp.payload_hash({"a": 1}) != sp.payload_hash({"a": 2})
