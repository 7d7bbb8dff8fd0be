"""Sympla's records as the API writes them.

Where the doc is silent the sandbox decides, and clients should not depend on more than this:

- `order_status` is spelled as in the doc's examples: orders say `APPROVED` / `PENDING` /
  `CANCELLED`; participants say `A` / `P` / `C`.
- Date-times are `YYYY-MM-DD HH:MM:SS` in the requested timezone (`api.py`);
  `checkin.check_in_date` is ISO-8601 with offset. Events have no timezone parameter: their dates
  are Sao Paulo local time.
- `custom_form` is a list of `{id, name, value}` (the doc's example shows one bare object, which
  cannot hold several answers); it is omitted when the participant answered nothing.
- Money is a JSON number with the shortest repr of the exact decimal (`Decimal(str(x))` gets it back).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sandbox.sympla.data import SAO_PAULO, VENUES, EventPlan, OrderDetail, ParticipantDetail

ORDER_STATUS = {"approved": "APPROVED", "pending": "PENDING", "cancelled": "CANCELLED"}
PARTICIPANT_STATUS = {"approved": "A", "pending": "P", "cancelled": "C"}


def _fmt(dt: datetime | None, tz: ZoneInfo) -> str | None:
    return dt.astimezone(tz).strftime("%Y-%m-%d %H:%M:%S") if dt else None


def _money(d: Decimal) -> float:
    # JSON number with the shortest repr: Decimal("123.50") -> 123.5, and Decimal(str(x)) gets it back.
    return float(d)


def _drop_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _drop_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_nulls(v) for v in value if v is not None]
    return value


def _render_event(plan: EventPlan) -> dict[str, Any]:
    return {
        "id": plan.id,
        "reference_id": plan.reference_id,
        "start_date": _fmt(plan.starts_at, SAO_PAULO),
        "end_date": _fmt(plan.ends_at, SAO_PAULO),
        "name": plan.name,
        "detail": f"<b>{plan.name}</b><br>Ingressos limitados.",
        "private_event": 0,
        "published": 1,
        "cancelled": 0,
        "image": None,
        "address": dict(VENUES[plan.venue]),
        "host": {"name": "Marquee Produções", "description": "Produtora de eventos ao vivo"},
        "category_prim": {"name": plan.category[0]},
        "category_sec": {"name": plan.category[1]},
    }


def _render_presentation(plan: EventPlan) -> dict[str, Any]:
    event = _render_event(plan)
    return {
        "id": plan.presentation_id, "event_id": plan.id, "reference_id": plan.reference_id,
        "start_date": event["start_date"], "name": plan.name, "detail": event["detail"],
        "private_event": 0, "private_presentation": 0, "event_published": 1, "event_cancelled": 0,
        "presentation_published": 1, "presentation_cancelled": 0, "address": event["address"],
        "host": event["host"], "category_prim": event["category_prim"], "category_sec": event["category_sec"],
        "sectors": [{"id": 1, "name": "Pista", "has_online_sale_available": True}],
    }


def _render_order(plan: EventPlan, d: OrderDetail, tz: ZoneInfo) -> dict[str, Any]:
    return {
        "id": d.core.id,
        "event_id": plan.id,
        "order_date": _fmt(d.core.created_at, tz),
        "order_status": ORDER_STATUS[d.core.status],
        "updated_date": _fmt(d.updated_at, tz),
        "approved_date": _fmt(d.approved_at, tz),
        "discount_code": d.discount_code,
        "transaction_type": d.transaction_type,
        "order_total_sale_price": _money(d.total),
        "order_total_net_value": _money(d.net),
        "buyer_first_name": d.buyer_first,
        "buyer_last_name": d.buyer_last,
        "buyer_email": d.buyer_email,
        "invoice_info": d.invoice,
        "utm": d.utm,
    }


def _render_participant(plan: EventPlan, d: OrderDetail, p: ParticipantDetail, tz: ZoneInfo) -> dict[str, Any]:
    return {
        "id": p.id,
        "event_id": plan.id,
        "order_id": d.core.id,
        "order_status": PARTICIPANT_STATUS[d.core.status],
        "order_date": _fmt(d.core.created_at, tz),
        "order_updated_date": _fmt(d.updated_at, tz),
        "order_approved_date": _fmt(d.approved_at, tz),
        "order_discount": d.discount_code,
        "first_name": p.first,
        "last_name": p.last,
        "email": p.email,
        "ticket_number": p.ticket_number,
        "ticket_num_qr_code": p.ticket_number.replace("-", ""),
        "ticket_name": p.tier,
        "sector_name": "Pista",
        "marked_place_name": None,
        "access_information": "Portão 1",
        "pdv_user": None,
        "ticket_sale_price": _money(p.price),
        "checkin": {
            "id": p.id,
            "check_in": p.checked_in_at is not None,
            "check_in_date": p.checked_in_at.astimezone(tz).isoformat() if p.checked_in_at else None,
        },
        "custom_form": [{"id": i, "name": n, "value": v} for i, n, v in p.custom_form] or None,
        "ticket_created_at": _fmt(d.core.created_at, tz),
        "ticket_updated_at": _fmt(d.updated_at, tz),
        "presentation_id": plan.presentation_id,
    }
