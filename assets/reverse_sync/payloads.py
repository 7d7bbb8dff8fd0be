"""Model rows -> each destination's JSON. Pure functions, no rules.

Every rule (what an order's status is, whether it is revenue, its exact minor units, who consented)
is decided in the dbt models `sync.*` (dbt_project/models/sync/); this module only spells the
rows the way Cymbal (provider-docs/000) and Cordial (provider-docs/003) want them. The one decision
it takes as an argument is the contact opt-in, which depends on the sync log (`consent.py`).

Ids sent are namespaced by provider (`tickettailor:or_1`, `sympla:Q080KEE`), so ids from the two
ticketing systems never collide in a destination.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import orjson

SOURCE = "marquee"  # Cordial's `source`: which system wrote the record
# Cymbal's orders require `marketing_opt_ins`; null on both channels means "leave as is". Orders never
# assert a subscription: only the contact syncs do, under the consent rule.
NO_OPT_IN: dict[str, None] = {"email": None, "sms": None}

Row = Mapping[str, Any]


def fallback_event_image_url() -> str | None:
    """MARQUEE_EVENT_IMAGE_URL: the image sent for events whose provider has none (Sympla)."""
    return (os.environ.get("MARQUEE_EVENT_IMAGE_URL") or "").strip() or None


# --- formats --------------------------------------------------------------------------------------

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


def major(cents: int, exponent: int) -> int | float:
    """Integer minor units -> the exact major-unit JSON number (1999, 2 -> 19.99; 1500 JPY, 0 -> 1500)."""
    return json_number(Decimal(int(cents)).scaleb(-int(exponent)))


def _compact(d: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v is not None}


def payload_hash(payload: Any) -> str:
    """Content hash of a payload, independent of key order: what the sync log compares."""
    return hashlib.sha256(orjson.dumps(payload, option=orjson.OPT_SORT_KEYS)).hexdigest()


# --- events ---------------------------------------------------------------------------------------

def cymbal_event_missing(ev: Row) -> list[str]:
    """Cymbal's required event fields this event cannot fill (it is then skipped, by name)."""
    missing = [f for f, v in (("name", ev["event_name"]), ("url", ev["event_url"]),
                              ("start_datetime", ev["starts_at"]), ("location", ev["location"])) if not v]
    if not (ev["image_url"] or fallback_event_image_url() or ev["event_url"]):
        missing.append("image_url")
    return missing


def cymbal_event(ev: Row) -> dict[str, Any]:
    """POST /v1/partners/events item. Required: id, url, name, image_url, start_datetime, location."""
    return _compact({
        "id": ev["event_key"],
        "url": ev["event_url"],
        "name": ev["event_name"],
        # Sympla publishes no image; an operator-set image wins, else the event page itself.
        "image_url": ev["image_url"] or fallback_event_image_url() or ev["event_url"],
        "start_datetime": utc_z(ev["starts_at"]),
        "end_datetime": utc_z(ev["ends_at"]) if ev["ends_at"] else None,
        "location": ev["location"],
        "status": "canceled" if ev["is_cancelled"] else "live",
        "timezone": ev["event_timezone"],
    })


# --- orders ---------------------------------------------------------------------------------------

def reachable(row: Row) -> bool:
    return bool(row["email"] or row["phone"])


def cymbal_order_missing(order: Row) -> list[str]:
    missing = []
    if not reachable(order):
        missing.append("customer.email|phone")
    if not order["event_id"]:
        missing.append("event_id")
    return missing


def _items(order: Row, items: Sequence[Row]) -> list[Row]:
    if items:
        return sorted(items, key=lambda it: it["position"])
    # An order without lines still needs one item: the order itself.
    return [{"item_id": order["order_key"], "item_name": order["event_name"] or "Order", "item_kind": "ticket",
             "quantity": 1, "total_cents": order["total_cents"], "position": 0}]


def cymbal_order(order: Row, items: Sequence[Row]) -> dict[str, Any]:
    """POST /v1/partners/orders item. Amounts in minor units (Cymbal reports revenue in cents)."""
    return _compact({
        "id": order["order_key"],
        "event_id": order["event_key"],
        "customer": _compact({
            "email": order["email"],
            "phone": order["phone"],
            "first_name": order["first_name"],
            "last_name": order["last_name"],
            "address": {"zip": order["postal_code"]} if order["postal_code"] else None,
        }),
        "marketing_opt_ins": dict(NO_OPT_IN),
        "items": [
            {"id": it["item_id"], "name": it["item_name"], "type": it["item_kind"], "quantity": it["quantity"],
             "price": it["total_cents"], "currency_code": order["currency"]}
            for it in _items(order, items)
        ],
        "status": order["status"],
        "currency_code": order["currency"],
        "total": order["total_cents"],
        "refunded_amount": order["refunded_cents"],
        "created_datetime": utc_z(order["created_at"]),
        "utm_campaign": order["campaign_tag"],
    })


def _cordial_identifiers(email: str | None, phone: str | None) -> tuple[dict[str, str], list[str]]:
    ids = _compact({"email": email, "channels.phone.address": phone})
    return ids, [k if k == "email" else "phone" for k in ids]


def _item_price(it: Row, exponent: int) -> tuple[int | float, int]:
    """(itemPrice, qty) in major units; a line whose total does not split evenly is sent as qty 1."""
    total, qty = int(it["total_cents"]), int(it["quantity"])
    if qty > 0 and total % qty == 0:
        return major(total // qty, exponent), qty
    return major(total, exponent), 1


def cordial_order(order: Row, items: Sequence[Row]) -> dict[str, Any]:
    """POST upsertOrder. Amounts are decimal major units, converted exactly from minor units."""
    exponent = order["currency_exponent"]
    identifiers, priority = _cordial_identifiers(order["email"], order["phone"])
    lines = [{
        "productID": order["event_key"] or order["order_key"],
        "sku": it["item_id"],
        "name": it["item_name"],
        "category": it["item_kind"],
        "itemPrice": price,
        "qty": qty,
    } for it in _items(order, items) for price, qty in [_item_price(it, exponent)]]
    return _compact({
        "source": SOURCE,
        "contact": {"identifiers": identifiers, "identifiersPriority": priority},
        "orderID": order["order_key"],
        "purchaseDate": iso_utc(order["created_at"]),
        "status": order["status"],
        "totalAmount": major(order["total_cents"], exponent),
        "tax": major(order["tax_cents"], exponent) if order["tax_cents"] is not None else None,
        "properties": _compact({
            "provider": order["provider"],
            "eventID": order["event_key"],
            "eventName": order["event_name"],
            "currency": order["currency"],
            "refundedAmount": major(order["refunded_cents"], exponent),
            "netAmount": major(order["net_cents"], exponent),
            "utmCampaign": order["campaign_tag"],
        }),
        "items": lines,
    })


# --- contacts -------------------------------------------------------------------------------------

def cymbal_contact(contact: Row, opt_in: bool) -> dict[str, Any]:
    """POST /v1/partners/contact `contact` object (the endpoint takes one contact per request).

    `opt_ins`: true subscribes the channel, null leaves it as it is (never false: see consent.py)."""
    return _compact({
        "email": contact["email"],
        "phone": contact["phone"],
        "first_name": contact["first_name"],
        "last_name": contact["last_name"],
        "address": {"zip": contact["postal_code"]} if contact["postal_code"] else None,
        "opt_ins": {"email": True if opt_in and contact["email"] else None,
                    "sms": True if opt_in and contact["phone"] else None},
    })


def cordial_contact(contact: Row, opt_in: bool) -> dict[str, Any]:
    """POST upsertContact, for a contact with an email (the subscription is email).

    `channels.email.subscribeStatus` is sent only when the consent rule allows asserting it; otherwise
    the contact's details are updated and their subscription left as it is. `forceSubscribe` is never
    sent: it would re-subscribe someone who unsubscribed in Cordial."""
    if not contact["email"]:
        raise ValueError("Cordial contacts are subscribed by email; this contact has none")
    identifiers, priority = _cordial_identifiers(contact["email"], None)
    return {
        "source": SOURCE,
        "identifiers": identifiers,
        "identifiersPriority": priority,
        "attributes": _compact({
            "channels.email.subscribeStatus": "subscribed" if opt_in else None,
            "first_name": contact["first_name"],
            "last_name": contact["last_name"],
            "location.postal_code": contact["postal_code"],
        }),
    }
