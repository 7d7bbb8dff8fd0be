"""Ticket Tailor's records as the API writes them, field for field like the vendor doc's examples:
events (with their ticket types and totals), orders (with line items and issued tickets), tickets."""

from __future__ import annotations

import hashlib
from datetime import datetime
from functools import lru_cache
from typing import Any

from sandbox import world as w
from sandbox.tickettailor.data import (
    _PRICES,
    _TICKET_TYPE_NAMES,
    _Event,
    _index,
    _order_detail,
    _started,
)

_MULTIPLIER = {"jpy": 1}  # currency.base_multiplier: minor units per major unit, 100 unless listed


def _when(dt: datetime) -> dict[str, Any]:
    hour12 = dt.hour % 12 or 12
    iso = dt.isoformat(timespec="seconds")
    return {
        "date": dt.date().isoformat(),
        "formatted": f"{dt:%a} {dt.day} {dt:%b %Y} {hour12}:{dt:%M} {'AM' if dt.hour < 12 else 'PM'}",
        "iso": iso,
        "time": f"{dt:%H:%M}",
        "timezone": iso[-6:],
        "unix": int(dt.timestamp()),
    }


def _ticket_type_id(event: int, kind: int) -> str:
    return f"tt_{230600 + event * 10 + kind}"


def _event_json(world: w.World, ev: _Event) -> dict[str, Any]:
    index = _index(world)
    prices, fees = _PRICES[ev.currency]
    started = _started(world, ev)
    numeric = ev.id[3:]
    return {
        "object": "event",
        "id": ev.id,
        "access_code": None,
        "call_to_action": "Buy tickets",
        "created_at": ev.created_at,
        "currency": ev.currency,
        "description": None,
        "end": _when(ev.end),
        "event_series_id": f"es_{50000 + ev.index}",
        "hidden": "false",
        "images": {
            "header": f"https://cdn.example.test/events/{numeric}/header.jpg",
            "thumbnail": f"https://cdn.example.test/events/{numeric}/thumbnail.jpg",
        },
        "name": ev.name,
        "online_event": "false",
        "payment_methods": [
            {"external_id": None, "id": "pm_6687", "instructions": "Pay when you arrive", "name": "Pay on the door",
             "type": "offline"},
        ],
        "private": "false",
        "start": _when(ev.start),
        "status": "sales_closed" if started else "published",
        "ticket_groups": [],
        "ticket_types": [
            {
                "object": "ticket_type",
                "id": _ticket_type_id(ev.index, kind),
                "access_code": None,
                "booking_fee": fees[kind],
                "description": None,
                "group_id": None,
                "max_per_order": 10,
                "min_per_order": 1,
                "name": _TICKET_TYPE_NAMES[kind],
                "price": prices[kind],
                "status": "off_sale" if started else "on_sale",
                "sort_order": 50050 + kind,
                "type": "paid",
                "quantity": 100000,
                "quantity_held": 0,
                "quantity_issued": 0,
                "quantity_total": 100000,
            }
            for kind in (0, 1)
        ],
        "tickets_available": "false" if started else "true",
        "timezone": ev.tz,
        "total_holds": 0,
        "total_issued_tickets": index.valid_tickets[ev.index],
        "total_orders": index.orders[ev.index],
        "unavailable": "false",
        "unavailable_status": None,
        "url": f"https://www.tickettailor.com/events/marquee/{numeric}",
        "venue": {"name": f"{ev.name.split(' ')[0]} Hall", "postal_code": None},
    }


def _event_summary(ev: _Event) -> dict[str, Any]:
    return {"id": ev.id, "end_date": _when(ev.end), "name": ev.name, "start_date": _when(ev.start)}


@lru_cache(maxsize=4096)
def _order(world: w.World, i: int) -> dict[str, Any]:
    """The order as the API returns it (tickets included). Callers must not mutate it."""
    return _build_order(world, i)


def _build_order(world: w.World, i: int) -> dict[str, Any]:
    o = _order_detail(world, i)
    s, ev = o.skeleton, o.event
    tickets = [
        {
            "object": "issued_ticket",
            "id": f"it_{t.num}",
            "barcode": t.token[:5],
            "barcode_url": f"https://www.tickettailor.com/userfiles/cache/barcode/qr/attendee/{t.num}/{t.token}",
            "checked_in": "true" if t.checked_in else "false",
            "created_at": s.created_at,
            "custom_questions": [],
            "description": _TICKET_TYPE_NAMES[s.ticket_type],
            "email": o.email,
            "event_id": ev.id,
            "reference": None,
            "full_name": f"{o.first} {o.last}" if k == 0 else None,
            "first_name": o.first if k == 0 else None,
            "last_name": o.last if k == 0 else None,
            "reservation": None,
            "status": "void" if t.void else "valid",
            "source": t.source,
            "ticket_type_id": _ticket_type_id(ev.index, s.ticket_type),
            "updated_at": t.updated_at,
            "voided_at": t.voided_at,
            "order_id": o.id,
            "qr_code_url": f"https://www.tickettailor.com/userfiles/cache/barcode/st/attendee/{t.num}/{t.token}",
        }
        for k, t in enumerate(o.tickets)
    ]
    address_1, city, postal_code = o.address or (None, None, None)
    return {
        "object": "order",
        "id": o.id,
        "buyer_details": {
            "address": {
                "address_1": address_1,
                "address_2": None,
                "address_3": city,
                "postal_code": postal_code,
            },
            "custom_questions": [{"question": q, "answer": a} for q, a in o.questions],
            "email": o.email,
            "first_name": o.first,
            "last_name": o.last,
            "name": f"{o.first} {o.last}",
            "phone": o.phone,
        },
        "created_at": s.created_at,
        "currency": {"base_multiplier": _MULTIPLIER.get(ev.currency, 100), "code": ev.currency},
        "event_summary": _event_summary(ev),
        "issued_tickets": tickets,
        "line_items": [
            {
                "object": "line_item",
                "id": f"li_{(i + 1) * 10}",
                "booking_fee": o.fee * s.quantity,
                "description": _TICKET_TYPE_NAMES[s.ticket_type],
                "type": "ticket",
                "total": o.subtotal,
                "value": o.price,
                "quantity": s.quantity,
            }
        ],
        "payment_method": (
            {"external_id": None, "id": "pm_6687", "instructions": "Pay when you arrive", "name": "Pay on the door",
             "type": "offline"}
            if s.status == "pending"
            else {"external_id": None, "id": "pm_6690", "instructions": None, "name": None, "type": "stripe"}
        ),
        "referral_tag": o.referral_tag,
        "refund_amount": o.refund,
        "status": s.status,
        "status_message": None,
        "subtotal": o.subtotal,
        "tax": 0,
        "total": o.total,
        "total_paid": o.total_paid,
        "txn_id": None if s.status == "pending" else "ch_" + hashlib.blake2b(o.id.encode(), digest_size=6).hexdigest(),
    }
