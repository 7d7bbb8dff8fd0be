"""Every rule of the reverse sync, as pure functions: consent, revenue, money, time, payload shapes.

Nothing here does I/O, so each rule is unit-tested on its own (tests/test_sync_payloads.py) and the
assets in `assets/reverse_sync.py` only read the lake, call these, and push.

Flow: raw API records (the lake's `_raw` JSON plus a few typed columns the landing already made
exact, e.g. Sympla's UTC timestamps) -> `UnifiedEvent` / `UnifiedOrder` -> `Contact` (consenting
buyers only) -> one JSON payload per destination record. Ids sent to Cymbal and Cordial are
namespaced by provider (`tickettailor:or_1`, `sympla:Q080KEE`), so ids from the two ticketing
systems can never collide in a destination.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import orjson

DEFAULT_CONSENT_LABEL = "marketing"
CONSENT_ANSWERS = frozenset({"yes", "sim", "true", "1"})
SOURCE = "marquee"  # Cordial's `source`: which system wrote the record

# ISO-4217 minor-unit exponents that are not 2. Ticket Tailor also sends `currency.base_multiplier`,
# which wins when present.
_EXPONENT_0 = frozenset({"BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF", "UGX", "UYI",
                         "VND", "VUV", "XAF", "XOF", "XPF"})
_EXPONENT_3 = frozenset({"BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"})

SAO_PAULO = ZoneInfo("America/Sao_Paulo")
# Sympla's documented event record has neither a page URL nor an image, both of which Cymbal requires.
SYMPLA_EVENT_URL = "https://www.sympla.com.br/evento/{id}"


# --- configuration --------------------------------------------------------------------------------

def consent_label() -> str:
    """The checkout-question label fragment that means "marketing consent" (MARQUEE_CONSENT_LABEL)."""
    return (os.environ.get("MARQUEE_CONSENT_LABEL") or DEFAULT_CONSENT_LABEL).strip() or DEFAULT_CONSENT_LABEL


def fallback_event_image_url() -> str | None:
    """MARQUEE_EVENT_IMAGE_URL: the image sent for events whose provider has none (Sympla)."""
    return (os.environ.get("MARQUEE_EVENT_IMAGE_URL") or "").strip() or None


# --- money and time -------------------------------------------------------------------------------

def currency_exponent(currency: str, base_multiplier: int | None = None) -> int:
    if base_multiplier and base_multiplier > 0:
        exponent = len(str(base_multiplier)) - 1
        if 10**exponent == base_multiplier:
            return exponent
    code = currency.upper()
    if code in _EXPONENT_0:
        return 0
    if code in _EXPONENT_3:
        return 3
    return 2


def to_cents(amount: Any, currency: str) -> int:
    """Decimal major units (as an API sent them: 12.5, "0.29") -> integer minor units, exactly.

    `Decimal(str(x))` rather than `x * 100`: 0.29 * 100 is 28.999... in binary floating point.
    A value with more decimals than the currency has is refused rather than rounded.
    """
    value = amount if isinstance(amount, Decimal) else Decimal(str(amount))
    scaled = value.scaleb(currency_exponent(currency))
    if scaled != scaled.to_integral_value():
        raise ValueError(f"{amount!r} {currency} has more decimals than the currency allows")
    return int(scaled)


def cents_to_major(cents: int, currency: str, base_multiplier: int | None = None) -> Decimal:
    """Integer minor units -> exact Decimal major units (1999 GBP -> Decimal('19.99'); 1500 JPY -> 1500)."""
    return Decimal(int(cents)).scaleb(-currency_exponent(currency, base_multiplier))


def json_number(value: Decimal) -> int | float:
    """A Decimal as a JSON number whose text is exactly that decimal.

    JSON encoders take floats, not Decimals. For the amounts we send (well under 2**53 minor units)
    the float nearest a 2- or 3-decimal value prints back as that same decimal (Python and orjson
    both print the shortest round-tripping form), so no rounding ever reaches the wire.
    """
    if value == value.to_integral_value():
        return int(value)
    out = float(value)
    if Decimal(repr(out)) != value:  # pragma: no cover - only beyond 15 significant digits
        raise ValueError(f"{value} cannot be sent exactly as a JSON number")
    return out


def to_utc(value: Any, *, naive_tz: ZoneInfo | None = None) -> datetime | None:
    """A unix timestamp, ISO string, "YYYY-MM-DD HH:MM:SS" or datetime -> aware UTC datetime.

    Naive values are interpreted in `naive_tz` (UTC when not given).
    """
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, UTC)
    if isinstance(value, datetime):
        dt = value
    elif isinstance(value, str):
        text = value.strip().replace("Z", "+00:00")
        try:
            dt = datetime.fromisoformat(text)
        except ValueError:
            return None
    else:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=naive_tz or UTC)
    return dt.astimezone(UTC)


def utc_z(dt: datetime) -> str:
    """Cymbal's datetime format: `2024-03-02T15:30:00Z`, in UTC."""
    if dt.tzinfo is None:
        raise ValueError("refusing to format a naive datetime as UTC")
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def iso_utc(dt: datetime) -> str:
    """Cordial's purchaseDate: ISO-8601 with an explicit offset, `2022-04-29T09:00:23+00:00`."""
    if dt.tzinfo is None:
        raise ValueError("refusing to format a naive datetime as UTC")
    return dt.astimezone(UTC).replace(microsecond=0).isoformat()


# --- consent --------------------------------------------------------------------------------------

def is_yes(answer: Any) -> bool:
    """yes / sim / true / 1 (any case, trimmed; JSON true and 1 too). Anything else, or none, is no."""
    if isinstance(answer, bool):
        return answer
    if isinstance(answer, int | float):
        return answer == 1
    if isinstance(answer, str):
        return answer.strip().casefold() in CONSENT_ANSWERS
    return False


def is_answered(answer: Any) -> bool:
    """False for "no answer": null, a blank string, an empty list or object. JSON false and 0 ARE answers."""
    if answer is None:
        return False
    if isinstance(answer, str):
        return bool(answer.strip())
    if isinstance(answer, list | tuple | Mapping):
        return bool(answer)
    return True


def _question_pairs(questions: Any) -> Iterable[tuple[Any, Any]]:
    """(label, answer) pairs from the shapes providers use: a list of {question|name|label, answer|value}
    objects, one such object alone (Sympla's doc example), or a {label: answer} mapping."""
    if questions is None:
        return
    if isinstance(questions, str):
        try:
            questions = orjson.loads(questions)
        except orjson.JSONDecodeError:
            return
    if isinstance(questions, Mapping):
        if any(k in questions for k in ("question", "name", "label")):
            questions = [questions]
        else:
            yield from questions.items()
            return
    if not isinstance(questions, list):
        return
    for q in questions:
        if not isinstance(q, Mapping):
            continue
        label = next((q[k] for k in ("question", "name", "label", "title") if q.get(k) is not None), None)
        answer = next((q[k] for k in ("answer", "value", "response") if k in q), None)
        yield label, answer


def combine_answers(answers: Iterable[bool | None]) -> bool | None:
    """Several answers given on ONE order -> that order's answer: a yes on any of them is a yes, else any
    explicit no is a no, else no answer. (Across orders the latest answer wins: `consenting_contacts`.)"""
    seen_no = False
    for answer in answers:
        if answer is True:
            return True
        if answer is False:
            seen_no = True
    return False if seen_no else None


def consent_answer(questions: Any, label: str) -> bool | None:
    """One order's answer to the consent question, as a tri-state.

    True: a question whose label contains `label` (case-insensitive) was answered yes / sim / true / 1.
    False: such a question was answered with anything else (no, não, nao, false, 0, "maybe", ...): an
    explicit no. None: no such question, or only null / blank answers: no answer, which leaves the
    buyer's consent as their earlier orders set it.
    """
    needle = label.strip().casefold()
    if not needle:
        return None
    return combine_answers(
        is_yes(answer)
        for q_label, answer in _question_pairs(questions)
        if isinstance(q_label, str) and needle in q_label.casefold() and is_answered(answer)
    )


# --- unified records ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Buyer:
    email: str | None
    phone: str | None
    first_name: str | None = None
    last_name: str | None = None
    postal_code: str | None = None

    @property
    def reachable(self) -> bool:
        return bool(self.email or self.phone)


@dataclass(frozen=True)
class Item:
    id: str  # namespaced line-item / participant id
    name: str
    kind: str  # "ticket", "transaction_charge", ... (Ticket Tailor line item types)
    quantity: int
    total_cents: int  # the whole line, tax included


@dataclass(frozen=True)
class UnifiedOrder:
    provider: str
    order_id: str  # as the provider sends it
    event_id: str
    event_name: str | None
    status: str  # normalised: completed | pending | cancelled (or the provider's own, lower case)
    counts_as_revenue: bool
    currency: str  # ISO-4217, upper case
    base_multiplier: int | None
    created_at: datetime  # UTC
    total_cents: int
    tax_cents: int | None
    refunded_cents: int
    buyer: Buyer
    # This order's answer to the consent question: True yes, False an explicit no, None no answer.
    consent_answer: bool | None
    items: tuple[Item, ...] = ()
    campaign_tag: str | None = None

    @property
    def consent(self) -> bool:
        """An explicit yes on THIS order (what the order payloads' opt-ins carry)."""
        return self.consent_answer is True

    @property
    def key(self) -> str:
        return namespaced(self.provider, self.order_id)


@dataclass(frozen=True)
class UnifiedEvent:
    provider: str
    event_id: str
    name: str | None
    url: str | None
    image_url: str | None
    starts_at: datetime | None
    ends_at: datetime | None
    location: str | None
    canceled: bool
    timezone: str | None = None

    @property
    def key(self) -> str:
        return namespaced(self.provider, self.event_id)


@dataclass(frozen=True)
class Contact:
    """A consenting buyer, deduplicated across orders and providers by email (else phone)."""

    email: str | None
    phone: str | None
    first_name: str | None
    last_name: str | None
    postal_code: str | None
    source_orders: tuple[str, ...] = field(default=())

    @property
    def key(self) -> str:
        return contact_key(self.email, self.phone)


def namespaced(provider: str, record_id: Any) -> str:
    return f"{provider}:{record_id}"


def contact_key(email: str | None, phone: str | None) -> str:
    """A stable, non-reversible-at-a-glance id for a contact: the sync log and run metadata must not
    carry emails or phone numbers."""
    ident = f"email:{email.strip().casefold()}" if email else f"phone:{_digits(phone or '')}"
    return "ct_" + hashlib.sha256(ident.encode()).hexdigest()[:24]


def _digits(phone: str) -> str:
    return "".join(ch for ch in phone if ch.isdigit() or ch == "+")


def _s(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _int(value: Any, default: int = 0) -> int:
    if value is None or value == "" or isinstance(value, bool):
        return default
    if isinstance(value, int):
        return value
    dec = Decimal(str(value))
    if dec != dec.to_integral_value():
        raise ValueError(f"expected an integer amount of minor units, got {value!r}")
    return int(dec)


def _status(value: Any) -> str:
    raw = (_s(value) or "unknown").lower()
    return {"approved": "completed", "a": "completed", "p": "pending", "c": "cancelled",
            "canceled": "cancelled"}.get(raw, raw)


def tickettailor_order(raw: Mapping[str, Any], label: str) -> UnifiedOrder:
    """A Ticket Tailor order record (GET /v1/orders): amounts are already minor units."""
    buyer_raw = raw.get("buyer_details") or {}
    address = buyer_raw.get("address") or {}
    currency_raw = raw.get("currency") or {}
    if isinstance(currency_raw, Mapping):
        currency, multiplier = (_s(currency_raw.get("code")) or "").upper(), currency_raw.get("base_multiplier")
    else:
        currency, multiplier = (_s(currency_raw) or "").upper(), None
    event = raw.get("event_summary") or {}
    event_id = _s(event.get("id")) or _s(raw.get("event_id")) or ""
    created = to_utc(raw.get("created_at"))
    if created is None:
        raise ValueError(f"Ticket Tailor order {raw.get('id')} has no created_at")
    items = []
    for i, line in enumerate(raw.get("line_items") or []):
        if not isinstance(line, Mapping):
            continue
        line_id = _s(line.get("id")) or f"{raw.get('id')}-{i}"
        items.append(Item(
            id=namespaced("tickettailor", line_id),
            name=_s(line.get("description")) or _s(line.get("type")) or "Ticket",
            kind=_s(line.get("type")) or "ticket",
            quantity=_int(line.get("quantity"), 1),
            total_cents=_int(line.get("total")),
        ))
    status = _status(raw.get("status"))
    return UnifiedOrder(
        provider="tickettailor",
        order_id=str(raw["id"]),
        event_id=event_id,
        event_name=_s(event.get("name")),
        status=status,
        counts_as_revenue=status == "completed",
        currency=currency,
        base_multiplier=_int(multiplier) if multiplier is not None else None,
        created_at=created,
        total_cents=_int(raw.get("total")),
        tax_cents=_int(raw["tax"]) if raw.get("tax") is not None else None,
        refunded_cents=_int(raw.get("refund_amount")),
        buyer=Buyer(
            email=_s(buyer_raw.get("email")),
            phone=_s(buyer_raw.get("phone")),
            first_name=_s(buyer_raw.get("first_name")),
            last_name=_s(buyer_raw.get("last_name")),
            postal_code=_s(address.get("postal_code")) if isinstance(address, Mapping) else None,
        ),
        consent_answer=consent_answer(buyer_raw.get("custom_questions"), label),
        items=tuple(items),
        campaign_tag=_s(raw.get("referral_tag")),
    )


def sympla_order(raw: Mapping[str, Any], participants: Iterable[Mapping[str, Any]], label: str,
                 created_at: datetime | None = None, total: Decimal | None = None) -> UnifiedOrder:
    """A Sympla order (GET /events/{id}/orders) with its participants (GET .../participants).

    Sympla asks its custom questions per ticket, so consent lives on participants' `custom_form`.
    The buyer's own answer is the one on the participant carrying the buyer's email: a guest's "sim"
    never subscribes the buyer, and a guest's "Não" is never the buyer's no. No participant landed yet
    means no answer (`consent_answer` None). `created_at` / `total` are the landing's exact typed
    values (UTC, Decimal) when available; otherwise `order_date` is read as UTC (the client asks for
    timezone=UTC) and the amount via `Decimal(str(x))`.
    """
    buyer_email = _s(raw.get("buyer_email"))
    folded = buyer_email.casefold() if buyer_email else None
    people = [p for p in participants if isinstance(p, Mapping)]
    answer = combine_answers([
        consent_answer(raw.get("custom_form"), label),
        *(consent_answer(p.get("custom_form"), label) for p in people
          if folded is not None and (_s(p.get("email")) or "").casefold() == folded),
    ])
    created = created_at or to_utc(raw.get("order_date"))
    if created is None:
        raise ValueError(f"Sympla order {raw.get('id')} has no order_date")
    amount = total if total is not None else Decimal(str(raw.get("order_total_sale_price") or 0))
    items = [
        Item(
            id=namespaced("sympla", p.get("id") or p.get("ticket_number")),
            name=_s(p.get("ticket_name")) or "Ingresso",
            kind="ticket",
            quantity=1,
            total_cents=to_cents(p.get("ticket_sale_price") or 0, "BRL"),
        )
        for p in sorted(people, key=lambda p: str(p.get("id")))
    ]
    status = _status(raw.get("order_status"))
    return UnifiedOrder(
        provider="sympla",
        order_id=str(raw["id"]),
        event_id=_s(raw.get("event_id")) or "",
        event_name=None,
        status=status,
        counts_as_revenue=status == "completed",
        currency="BRL",  # Sympla sells in reais only
        base_multiplier=None,
        created_at=created,
        total_cents=to_cents(amount, "BRL"),
        tax_cents=None,
        refunded_cents=0,
        buyer=Buyer(email=buyer_email, phone=None, first_name=_s(raw.get("buyer_first_name")),
                    last_name=_s(raw.get("buyer_last_name"))),
        consent_answer=answer,
        items=tuple(items),
        campaign_tag=_s((raw.get("utm") or {}).get("utm_campaign")) if isinstance(raw.get("utm"), Mapping) else None,
    )


def tickettailor_event(raw: Mapping[str, Any]) -> UnifiedEvent:
    start = raw.get("start") or {}
    end = raw.get("end") or {}
    images = raw.get("images") or {}
    venue = raw.get("venue") or {}
    online = str(raw.get("online_event")).lower() == "true"
    location = ", ".join(x for x in (_s(venue.get("name")), _s(venue.get("postal_code"))) if x) or None
    if location is None and online:
        location = "Online"
    return UnifiedEvent(
        provider="tickettailor",
        event_id=str(raw["id"]),
        name=_s(raw.get("name")),
        url=_s(raw.get("url")),
        image_url=_s(images.get("header")) or _s(images.get("thumbnail")) if isinstance(images, Mapping) else None,
        starts_at=to_utc(start.get("unix")) or to_utc(start.get("iso")) if isinstance(start, Mapping) else None,
        ends_at=to_utc(end.get("unix")) or to_utc(end.get("iso")) if isinstance(end, Mapping) else None,
        location=location,
        # The documented statuses have no "cancelled"; a cancelled-looking one is honoured anyway.
        canceled="cancel" in (_s(raw.get("status")) or "").lower(),
        timezone=_s(raw.get("timezone")),
    )


def sympla_event(raw: Mapping[str, Any], starts_at: datetime | None = None,
                 ends_at: datetime | None = None) -> UnifiedEvent:
    """Sympla event dates are Sao Paulo local time (the events endpoint has no timezone parameter);
    the landing's typed UTC columns are preferred when given."""
    address = raw.get("address") or {}
    location = None
    if isinstance(address, Mapping):
        location = ", ".join(x for x in (_s(address.get(k)) for k in ("name", "city", "state")) if x) or None
    return UnifiedEvent(
        provider="sympla",
        event_id=str(raw["id"]),
        name=_s(raw.get("name")),
        url=_s(raw.get("url")) or SYMPLA_EVENT_URL.format(id=raw["id"]),
        image_url=_s(raw.get("image")),
        starts_at=starts_at or to_utc(raw.get("start_date"), naive_tz=SAO_PAULO),
        ends_at=ends_at or to_utc(raw.get("end_date"), naive_tz=SAO_PAULO),
        location=location,
        canceled=is_yes(raw.get("cancelled")),
        timezone="America/Sao_Paulo",
    )


def orders_to_sync(orders: Iterable[UnifiedOrder], previously_sent: set[str] | frozenset[str] = frozenset()
                   ) -> list[UnifiedOrder]:
    """Revenue-counting orders, plus any order a destination already has (by namespaced key) whose
    status has since changed, so a cancellation reaches the destination instead of being forgotten."""
    return [o for o in orders if o.counts_as_revenue or o.key in previously_sent]


def consenting_contacts(orders: Iterable[UnifiedOrder]) -> list[Contact]:
    """One contact per reachable buyer whose LATEST EXPLICIT answer to the consent question is yes.

    The rule: a buyer (contact key: normalised email, else phone) is read through their orders in
    creation order (`created_at`, then namespaced id). An order answered yes / sim / true / 1 is an
    explicit yes; answered anything else (no, não, false, 0, any other text) an explicit no; an order
    without the question, or with a null / blank answer, is no answer and changes nothing. The buyer is a
    contact iff the last explicit answer is yes: yes then no is not a contact, no then yes is, yes then
    unanswered still is, and a buyer who never answered is not.

    We never send unsubscribes. A buyer whose latest answer is no is simply not sent: no `false` opt-in,
    no unsubscribed status. A checkout "no" is not an unsubscribe request for an existing subscription
    (it declines the offer made at that checkout), so revoking a subscription an earlier yes created at
    Cymbal or Cordial is out of scope; the person withdraws it through the destination's own unsubscribe.

    The contact syncs pass every order in the lake (not an order-day window): consent belongs to the
    person, and Sympla's answer is only known once the event's participants land. Details come from
    the latest explicit-yes order, so the payload (and its hash) changes only when those details do, not
    whenever the buyer buys again. `source_orders` are the yes orders since the buyer's last explicit no.
    """
    # Buyers whose latest explicit answer so far is yes: (latest yes order, yes orders since the last no).
    by_key: dict[str, tuple[UnifiedOrder, list[str]]] = {}
    for order in sorted(orders, key=lambda o: (o.created_at, o.key)):
        if order.consent_answer is None or not order.buyer.reachable:
            continue  # no answer: the buyer's state stays as their earlier orders set it
        k = contact_key(order.buyer.email, order.buyer.phone)
        if order.consent_answer:
            refs = by_key[k][1] if k in by_key else []
            refs.append(order.key)
            by_key[k] = (order, refs)
        else:
            by_key.pop(k, None)  # an explicit no: not a contact unless a later order says yes
    out = []
    for _k, (order, refs) in sorted(by_key.items()):
        b = order.buyer
        out.append(Contact(email=b.email, phone=b.phone, first_name=b.first_name, last_name=b.last_name,
                           postal_code=b.postal_code, source_orders=tuple(refs)))
    return out


# --- payloads -------------------------------------------------------------------------------------

def _compact(d: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v is not None}


def cymbal_event_missing(ev: UnifiedEvent) -> list[str]:
    """Cymbal's required event fields this event cannot fill (it is then skipped, by name)."""
    missing = [f for f, v in (("name", ev.name), ("url", ev.url), ("start_datetime", ev.starts_at),
                              ("location", ev.location)) if not v]
    if not (ev.image_url or fallback_event_image_url() or ev.url):
        missing.append("image_url")
    return missing


def cymbal_event(ev: UnifiedEvent) -> dict[str, Any]:
    """POST /v1/partners/events item. Required: id, url, name, image_url, start_datetime, location."""
    if ev.starts_at is None:
        raise ValueError(f"event {ev.key} has no start")
    return _compact({
        "id": ev.key,
        "url": ev.url,
        "name": ev.name,
        # Sympla publishes no image; an operator-set image wins, else the event page itself.
        "image_url": ev.image_url or fallback_event_image_url() or ev.url,
        "start_datetime": utc_z(ev.starts_at),
        "end_datetime": utc_z(ev.ends_at) if ev.ends_at else None,
        "location": ev.location,
        "status": "canceled" if ev.canceled else "live",
        "timezone": ev.timezone,
    })


def _opt_ins(consent: bool, email: str | None, phone: str | None) -> dict[str, bool | None]:
    # true subscribes; null leaves the subscription as it is. Without a yes on this order we never send
    # true, and we never send false either: neither a missing answer nor a checkout "no" is an
    # unsubscribe request (see `consenting_contacts`).
    return {"email": True if consent and email else None, "sms": True if consent and phone else None}


def cymbal_order_missing(order: UnifiedOrder) -> list[str]:
    missing = []
    if not order.buyer.reachable:
        missing.append("customer.email|phone")
    if not order.event_id:
        missing.append("event_id")
    if not order.currency:
        missing.append("currency")
    return missing


def _order_items(order: UnifiedOrder) -> list[Item]:
    if order.items:
        return list(order.items)
    # An order without line items still needs one item: the order itself.
    return [Item(id=order.key, name=order.event_name or "Order", kind="ticket", quantity=1,
                 total_cents=order.total_cents)]


def cymbal_order(order: UnifiedOrder) -> dict[str, Any]:
    """POST /v1/partners/orders item. Amounts in minor units (Cymbal reports revenue in cents)."""
    b = order.buyer
    return _compact({
        "id": order.key,
        "event_id": namespaced(order.provider, order.event_id),
        "customer": _compact({
            "email": b.email,
            "phone": b.phone,
            "first_name": b.first_name,
            "last_name": b.last_name,
            "address": {"zip": b.postal_code} if b.postal_code else None,
        }),
        "marketing_opt_ins": _opt_ins(order.consent, b.email, b.phone),
        "items": [
            {"id": it.id, "name": it.name, "type": it.kind, "quantity": it.quantity,
             "price": it.total_cents, "currency_code": order.currency}
            for it in _order_items(order)
        ],
        "status": order.status,
        "currency_code": order.currency,
        "total": order.total_cents,
        "refunded_amount": order.refunded_cents,
        "created_datetime": utc_z(order.created_at),
        "utm_campaign": order.campaign_tag,
    })


def cymbal_contact(contact: Contact) -> dict[str, Any]:
    """POST /v1/partners/contact `contact` object (the endpoint takes one contact per request)."""
    return _compact({
        "email": contact.email,
        "phone": contact.phone,
        "first_name": contact.first_name,
        "last_name": contact.last_name,
        "address": {"zip": contact.postal_code} if contact.postal_code else None,
        "opt_ins": _opt_ins(True, contact.email, contact.phone),
    })


def _cordial_identifiers(email: str | None, phone: str | None) -> tuple[dict[str, str], list[str]]:
    ids = _compact({"email": email, "channels.phone.address": phone})
    return ids, [k if k == "email" else "phone" for k in ids]


def cordial_contact(contact: Contact) -> dict[str, Any]:
    """POST upsertContact. Only consenting buyers with an email get here (the subscription is email).

    `forceSubscribe` is left out on purpose: it would re-subscribe someone who unsubscribed in Cordial
    after an old checkout opt-in.
    """
    if not contact.email:
        raise ValueError("Cordial contacts are subscribed by email; this contact has none")
    identifiers, priority = _cordial_identifiers(contact.email, None)
    return {
        "source": SOURCE,
        "identifiers": identifiers,
        "identifiersPriority": priority,
        "attributes": _compact({
            "channels.email.subscribeStatus": "subscribed",
            "first_name": contact.first_name,
            "last_name": contact.last_name,
            "location.postal_code": contact.postal_code,
        }),
    }


def _item_price(it: Item, order: UnifiedOrder) -> tuple[int | float, int]:
    """(itemPrice, qty) in major units; a line whose total does not split evenly is sent as qty 1."""
    if it.quantity > 0 and it.total_cents % it.quantity == 0:
        unit, qty = it.total_cents // it.quantity, it.quantity
    else:
        unit, qty = it.total_cents, 1
    return json_number(cents_to_major(unit, order.currency, order.base_multiplier)), qty


def cordial_order(order: UnifiedOrder) -> dict[str, Any]:
    """POST upsertOrder. Amounts are decimal major units (converted exactly from minor units)."""
    b = order.buyer
    identifiers, priority = _cordial_identifiers(b.email, b.phone)

    def major(cents: int) -> int | float:
        return json_number(cents_to_major(cents, order.currency, order.base_multiplier))

    items = []
    for it in _order_items(order):
        price, qty = _item_price(it, order)
        items.append({
            "productID": namespaced(order.provider, order.event_id or order.order_id),
            "sku": it.id,
            "name": it.name,
            "category": it.kind,
            "itemPrice": price,
            "qty": qty,
        })
    return _compact({
        "source": SOURCE,
        "contact": {"identifiers": identifiers, "identifiersPriority": priority},
        "orderID": order.key,
        "purchaseDate": iso_utc(order.created_at),
        "status": order.status,
        "totalAmount": major(order.total_cents),
        "tax": major(order.tax_cents) if order.tax_cents is not None else None,
        "properties": _compact({
            "provider": order.provider,
            "eventID": namespaced(order.provider, order.event_id) if order.event_id else None,
            "eventName": order.event_name,
            "currency": order.currency,
            "refundedAmount": major(order.refunded_cents),
            "netAmount": major(order.total_cents - order.refunded_cents),
            "utmCampaign": order.campaign_tag,
            "marketingConsent": order.consent,
        }),
        "items": items,
    })


def payload_hash(payload: Any) -> str:
    """Content hash of a payload, independent of key order: what the sync log compares."""
    return hashlib.sha256(orjson.dumps(payload, option=orjson.OPT_SORT_KEYS)).hexdigest()


def order_day(order: UnifiedOrder) -> date:
    return order.created_at.astimezone(UTC).date()
