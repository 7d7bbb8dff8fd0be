"""Ticket Tailor in the sandbox: `GET /v1/events`, `/v1/orders`, `/v1/issued_tickets` (and the
single-object reads), shaped field for field like the vendor doc's examples.

Data shape (all a pure function of the world's seed, scale and anchor):

- 6 events whatever the scale (3 that started before the anchor day, with check-ins; 3 within
  the next 30 days), in GBP, USD, JPY (zero-decimal: `base_multiplier` 1) and EUR, in London,
  New York, Tokyo, UTC, Berlin and Los Angeles time.
- `2000 * scale` orders spread over `[world.start, world.end)`. Order `i` has id `or_{i+1}`
  and a `created_at` that never decreases with `i`, so a `created_at` filter is a binary search
  over indices and a page is generated on the fly: nothing holds the whole dataset.
  A few orders per day are squeezed within two minutes of UTC midnight to exercise date bucketing.
- Every order issues its `quantity` tickets: `it_{(i+1)*10 + k}`. Issued-ticket ids therefore sort
  like their orders. Listing tickets (or orders) of one event, and the events' totals, use a
  per-event index of order numbers built on first use with numpy: ~0.15 s and ~4 bytes per order
  at scale 500. A `status` or `referral_tag` filter is checked record by record, so a rare value
  scans many orders per page at large scale.

Pagination (the doc leaves the boundary open, decided here): newest first; `links.next` is
null exactly when no record follows the page, so a filter matching exactly 100 records answers
one page with `next: null`. `links.previous` is null when nothing newer precedes the page.
Links keep the request's other query parameters. `limit` defaults to 100; above 100 is a 400.

Rate limit: a fixed one-hour window per sandbox, 2000 requests by default (the doc's figure);
`configure(ctx, hourly_limit=...)` changes it. Every reply carries `X-Rate-Limit-*`; past the
limit the reply is 429 with `Retry-After`.
"""

from __future__ import annotations

import bisect
import hashlib
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from functools import lru_cache
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np

from sandbox import world as w
from sandbox.http import Provider, SandboxContext
from sandbox.messages import Request, Response, json_response

PROVIDER = "tickettailor"
ORDERS_PER_SCALE = 2000
DEFAULT_HOURLY_LIMIT = 2000  # the doc: "up to 2000 requests per hour"
MAX_LIMIT = 100
MARKETING_QUESTION = "Marketing: keep me posted about future events by email"
# A checkout question some box offices add: "Yes" here means NO consent. Its label contains
# "marketing" too, so a consent rule that matches labels by substring reads it backwards.
NEGATED_MARKETING_QUESTION = "Tick if you do NOT want marketing emails"
NEGATED_SHARE = 0.04  # of orders whose buyer answered it
# Minutes either side of UTC midnight that are squeezed into +-110 s (see `_created_at`).
_MIDNIGHT_HALF_WIDTH_S = 110

# (days from anchor, local start time, IANA zone, currency, name stem)
_EVENT_PLAN = (
    (-22, (19, 0), "Europe/London", "gbp", "Hackney Downs Tulip Festival"),
    (-12, (20, 0), "America/New_York", "usd", "Brooklyn Night Market"),
    (-4, (18, 30), "Asia/Tokyo", "jpy", "Shibuya Jazz Evening"),
    (3, (21, 0), "UTC", "gbp", "Camden Late Show"),
    (9, (19, 30), "Europe/Berlin", "eur", "Kreuzberg Techno Sessions"),
    (21, (20, 0), "America/Los_Angeles", "usd", "Echo Park Rising"),
)
_FALLBACK_OFFSETS = {"Europe/London": 0, "America/New_York": -5, "Asia/Tokyo": 9, "UTC": 0,
                     "Europe/Berlin": 1, "America/Los_Angeles": -8}
# Per currency: (price of ticket type 0, type 1), booking fee per ticket for type 0, type 1. Minor units.
_PRICES = {
    "gbp": ((2500, 4500), (150, 250)),
    "usd": ((3000, 6500), (200, 350)),
    "jpy": ((3500, 8000), (300, 500)),
    "eur": ((2200, 3900), (150, 250)),
}
_MULTIPLIER = {"jpy": 1}
_TICKET_TYPE_NAMES = ("General Admission", "VIP")
_FIRST = ("John", "Amara", "Kenji", "Sofia", "Liam", "Priya", "Mateo", "Chloe", "Yuki", "Noah", "Fatima", "Lucas")
_LAST = ("Doe", "Okafor", "Tanaka", "Rossi", "Murphy", "Patel", "Garcia", "Martin", "Sato", "Smith", "Khan", "Silva")

_ERRORS = {
    400: ("Bad Request", "The request was invalid, often due to a missing a required parameter."),
    401: ("Unauthorized", "Your request was not authenticated correctly."),
    404: ("Not Found", "The requested resource does not exist."),
    405: ("Method Not Allowed", "The sandbox serves only GET on this resource."),
    429: ("Too Many Requests", "Too many requests hit the API too quickly."),
}


class _BadRequest(Exception):
    pass


# --- The dataset ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Event:
    index: int
    id: str
    name: str
    start: datetime  # aware, in the event's zone
    end: datetime
    tz: str
    currency: str  # lower case, as the API writes it
    created_at: int

    @property
    def start_unix(self) -> int:
        return int(self.start.timestamp())


@dataclass(frozen=True)
class _Skeleton:
    """The count-relevant decisions for one order, cheap enough to compute for every order."""

    index: int
    created_at: int
    event: int
    quantity: int
    status: str
    ticket_type: int
    void: tuple[bool, ...]
    checkin: tuple[bool, ...]


def _zone(name: str) -> Any:
    try:
        return ZoneInfo(name)
    except ZoneInfoNotFoundError:  # no tz database on this machine: standard-time offsets will do
        return timezone(timedelta(hours=_FALLBACK_OFFSETS[name]))


def n_orders(world: w.World) -> int:
    return ORDERS_PER_SCALE * max(1, int(world.scale))


@lru_cache(maxsize=8)
def _events(world: w.World) -> tuple[_Event, ...]:
    rng = world.rng("tt", "events")
    out = []
    for j, (days, (hh, mm), tz, currency, stem) in enumerate(_EVENT_PLAN):
        local_day = world.anchor + timedelta(days=days)
        start = datetime(local_day.year, local_day.month, local_day.day, hh, mm, tzinfo=_zone(tz))
        edition = rng.choice(("Spring", "Live", "Special", "Season Opener", "Encore"))
        out.append(_Event(
            index=j,
            id=f"ev_{1001 + j}",
            name=f"{stem} {local_day.year} {edition}",
            start=start,
            end=start + timedelta(hours=4),
            tz=tz,
            currency=currency,
            created_at=int((world.start - timedelta(days=90 - 7 * j)).timestamp()),
        ))
    return tuple(out)


@lru_cache(maxsize=8)
def _params(world: w.World) -> tuple[int, int, int, int, int, tuple[int, ...], int]:
    """(history start unix, span seconds, order count, midnight half-width, anchor midnight,
    event starts, hash key)."""
    start = int(world.start.timestamp())
    span = int(world.end.timestamp()) - start
    n = n_orders(world)
    half = max(span * 3 // (2 * n), 240)  # ~1.5 order spacings: a few orders per midnight at any scale
    anchor_midnight = int(datetime.combine(world.anchor, datetime.min.time(), UTC).timestamp())
    key = int.from_bytes(hashlib.blake2b(f"{world.seed}|tt".encode(), digest_size=8).digest(), "big")
    return start, span, n, half, anchor_midnight, tuple(e.start_unix for e in _events(world)), key


# The cheap per-order decisions come from splitmix64, written twice: on Python ints for one order
# and on numpy arrays for the one-pass index. Both are exact integer arithmetic mod 2**64, so they
# agree bit for bit, and the index over a million orders takes well under a second.
_M64 = (1 << 64) - 1
_GOLDEN, _MUL1, _MUL2 = 0x9E3779B97F4A7C15, 0xBF58476D1CE4E5B9, 0x94D049BB133111EB
_SALT_EVENT, _SALT_MISC, _SALT_CHECKIN = 0x5851F42D4C957F2D, 0x14057B7EF767814F, 0x2545F4914F6CDD1D
_SALT_NEGATED = 0x3C6EF372FE94F82B
_JITTER_BITS = 16  # keeps (i * 2**16 + u) * span inside int64 up to ~8,000x scale


def _mix(z: int) -> int:
    z = (z + _GOLDEN) & _M64
    z = ((z ^ (z >> 30)) * _MUL1) & _M64
    z = ((z ^ (z >> 27)) * _MUL2) & _M64
    return z ^ (z >> 31)


def _mix_np(z: np.ndarray) -> np.ndarray:
    z = z + np.uint64(_GOLDEN)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(_MUL1)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(_MUL2)
    return z ^ (z >> np.uint64(31))


def _squeeze(offset: int, half: int) -> int:
    # Squeeze [midnight - half, midnight + half] into +-110 s. Monotonic (it only ever jumps
    # forward), so created_at stays non-decreasing in i.
    day, sec = divmod(offset, 86400)
    if sec < half:
        sec = sec * _MIDNIGHT_HALF_WIDTH_S // half
    elif sec > 86400 - half:
        sec = 86400 - (-(-(86400 - sec) * _MIDNIGHT_HALF_WIDTH_S // half))
    return day * 86400 + sec


def _created_at_from(params: tuple, i: int, h1: int) -> int:
    start, span, n, half = params[:4]
    # (i + u) * span / n with u in [0, 1): strictly ordered slots, jittered within each slot.
    offset = ((i << _JITTER_BITS) + (h1 >> (64 - _JITTER_BITS))) * span // (n << _JITTER_BITS)
    return start + _squeeze(offset, half)


def _created_at(world: w.World, i: int) -> int:
    params = _params(world)
    return _created_at_from(params, i, _mix(params[6] ^ i))


def _quantity(qb: int) -> int:
    return 1 if qb < 102 else 2 if qb < 192 else 3 if qb < 230 else 4


def _status(sb: int) -> str:
    return "completed" if sb < 55700 else "pending" if sb < 59000 else "cancelled"


def _skeleton(world: w.World, i: int) -> _Skeleton:
    params = _params(world)
    h1 = _mix(params[6] ^ i)
    h2, h3, h4 = _mix(h1 ^ _SALT_EVENT), _mix(h1 ^ _SALT_MISC), _mix(h1 ^ _SALT_CHECKIN)
    created = _created_at_from(params, i, h1)
    starts = params[5]
    first_open = bisect.bisect_right(starts, created)  # events still on sale at creation
    event = min(first_open + h2 % max(1, len(starts) - first_open), len(starts) - 1)
    quantity = _quantity(h3 & 0xFF)
    status = _status((h3 >> 8) & 0xFFFF)
    started = starts[event] < params[4]
    void = tuple(status == "cancelled" or ((h3 >> (32 + 8 * k)) & 0xFF) < 10 for k in range(quantity))
    checkin = tuple(started and not void[k] and ((h4 >> (8 * k)) & 0xFF) < 205 for k in range(quantity))
    return _Skeleton(i, created, event, quantity, status, (h3 >> 24) & 1, void, checkin)


@dataclass(frozen=True)
class _Index:
    by_event: tuple[np.ndarray, ...]  # ascending order indices per event (uint32)
    orders: tuple[int, ...]
    valid_tickets: tuple[int, ...]


@lru_cache(maxsize=2)
def _index(world: w.World) -> _Index:
    """Per-event order indices and totals: the numpy twin of `_skeleton`, built on first use in
    chunks so memory stays at ~4 bytes per order."""
    start, span, n, half, _, starts, key = _params(world)
    n_events = len(starts)
    starts_np = np.array(starts, dtype=np.int64)
    parts: list[list[np.ndarray]] = [[] for _ in range(n_events)]
    valid = [0] * n_events
    chunk = 1 << 18
    for lo in range(0, n, chunk):
        i = np.arange(lo, min(n, lo + chunk), dtype=np.uint64)
        h1 = _mix_np(np.uint64(key) ^ i)
        h2 = _mix_np(h1 ^ np.uint64(_SALT_EVENT))
        h3 = _mix_np(h1 ^ np.uint64(_SALT_MISC))
        u = (h1 >> np.uint64(64 - _JITTER_BITS)).astype(np.int64)
        offset = ((i.astype(np.int64) << _JITTER_BITS) + u) * span // (n << _JITTER_BITS)
        day, sec = np.divmod(offset, 86400)
        low = sec < half
        high = sec > 86400 - half
        squeezed = np.where(low, sec * _MIDNIGHT_HALF_WIDTH_S // half,
                            np.where(high, 86400 - (-(-(86400 - sec) * _MIDNIGHT_HALF_WIDTH_S // half)), sec))
        created = start + day * 86400 + squeezed
        first_open = np.searchsorted(starts_np, created, side="right")
        open_count = np.maximum(1, n_events - first_open).astype(np.uint64)
        event = np.minimum(first_open + (h2 % open_count).astype(np.int64), n_events - 1)
        qb = (h3 & np.uint64(0xFF)).astype(np.int64)
        quantity = np.where(qb < 102, 1, np.where(qb < 192, 2, np.where(qb < 230, 3, 4)))
        cancelled = ((h3 >> np.uint64(8)) & np.uint64(0xFFFF)) >= 59000
        valid_count = np.zeros(len(i), dtype=np.int64)
        for k in range(4):
            void_k = cancelled | (((h3 >> np.uint64(32 + 8 * k)) & np.uint64(0xFF)) < 10)
            valid_count += (quantity > k) & ~void_k
        for e in range(n_events):
            mask = event == e
            parts[e].append(i[mask].astype(np.uint32))
            valid[e] += int(valid_count[mask].sum())
    by_event = tuple(np.concatenate(p) if p else np.zeros(0, dtype=np.uint32) for p in parts)
    return _Index(by_event, tuple(len(a) for a in by_event), tuple(valid))


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
    started = ev.start_unix < _params(world)[4]
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


def _referral_tag(world: w.World, rng: Any, created_at: int) -> str | None:
    roll = rng.random()
    if roll < 0.30:
        sent = [c for c in world.campaigns if int(c.sent_at.timestamp()) <= created_at]
        if sent:
            # Mostly the latest campaign (often inside its attribution window), sometimes an older one.
            campaign = sent[-1] if rng.random() < 0.7 else rng.choice(sent)
            cid = campaign.id
            return rng.choice((cid, cid, cid.upper(), f" {cid.upper()} ", cid.capitalize(), f"{cid} ", f"\t{cid}"))
        return None
    if roll < 0.38:
        return rng.choice(("website", "facebook", "instagram", "newsletter"))
    return None


def _custom_questions(rng: Any) -> list[dict[str, Any]]:
    questions: list[dict[str, Any]] = []
    roll = rng.random()
    if roll < 0.35:
        questions.append({"question": MARKETING_QUESTION, "answer": "Yes"})
    elif roll < 0.45:
        questions.append({"question": MARKETING_QUESTION, "answer": "yes"})
    elif roll < 0.70:
        questions.append({"question": MARKETING_QUESTION, "answer": "No"})
    elif roll < 0.85:
        questions.append({"question": MARKETING_QUESTION, "answer": None})
    # else: the buyer never saw the question (no answer at all)
    if rng.random() < 0.2:
        questions.append({"question": "Dietary requirements", "answer": rng.choice(("Vegan", "None", "Gluten free"))})
    return questions


def _with_negated_question(world: w.World, i: int, questions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A few percent of buyers also answer NEGATED_MARKETING_QUESTION, some of them without ever
    answering the real one. Decided from its own splitmix stream, never from the order's `rng`,
    so every other field of every order (and so every mart figure) stays what it was."""
    h = _mix(_params(world)[6] ^ i ^ _SALT_NEGATED)
    if (h & 0xFFFF) >= NEGATED_SHARE * 0x10000:
        return questions
    entry = {"question": NEGATED_MARKETING_QUESTION, "answer": "Yes" if (h >> 16) & 3 else "No"}
    # Sometimes first: a rule that takes the first label mentioning "marketing" must not win by luck.
    return [entry, *questions] if (h >> 18) & 1 else [*questions, entry]


@lru_cache(maxsize=4096)
def _order(world: w.World, i: int) -> dict[str, Any]:
    """The order as the API returns it (tickets included). Callers must not mutate it."""
    return _build_order(world, i)


def _build_order(world: w.World, i: int) -> dict[str, Any]:
    s = _skeleton(world, i)
    ev = _events(world)[s.event]
    rng = world.rng("tt", "order", i)
    prices, fees = _PRICES[ev.currency]
    price, fee = prices[s.ticket_type], fees[s.ticket_type]
    subtotal = (price + fee) * s.quantity
    total = subtotal
    if s.status == "completed":
        total_paid = total
        refund = (price if s.quantity > 1 else price // 2) if rng.random() < 0.08 else 0
    elif s.status == "cancelled":
        total_paid, refund = total, total
    else:
        total_paid, refund = 0, 0
    first, last = rng.choice(_FIRST), rng.choice(_LAST)
    email = f"{first}.{last}{i + 1}@example.com".lower()
    order_id = f"or_{i + 1}"
    history_end = int(world.end.timestamp()) - 1
    tickets = []
    for k in range(s.quantity):
        num = (i + 1) * 10 + k
        token = hashlib.blake2b(f"{world.seed}|it|{num}".encode(), digest_size=10).hexdigest()
        updated = s.created_at
        voided_at = None
        if s.void[k]:
            voided_at = min(s.created_at + 3600 * (1 + k), history_end)
            updated = voided_at
        elif s.checkin[k]:
            updated = ev.start_unix + 60 * (5 + (num % 90))
        tickets.append({
            "object": "issued_ticket",
            "id": f"it_{num}",
            "barcode": token[:5],
            "barcode_url": f"https://www.tickettailor.com/userfiles/cache/barcode/qr/attendee/{num}/{token}",
            "checked_in": "true" if s.checkin[k] else "false",
            "created_at": s.created_at,
            "custom_questions": [],
            "description": _TICKET_TYPE_NAMES[s.ticket_type],
            "email": email,
            "event_id": ev.id,
            "reference": None,
            "full_name": f"{first} {last}" if k == 0 else None,
            "first_name": first if k == 0 else None,
            "last_name": last if k == 0 else None,
            "reservation": None,
            "status": "void" if s.void[k] else "valid",
            "source": "api" if rng.random() < 0.1 else None,
            "ticket_type_id": _ticket_type_id(ev.index, s.ticket_type),
            "updated_at": updated,
            "voided_at": voided_at,
            "order_id": order_id,
            "qr_code_url": f"https://www.tickettailor.com/userfiles/cache/barcode/st/attendee/{num}/{token}",
        })
    has_address = rng.random() < 0.6
    return {
        "object": "order",
        "id": order_id,
        "buyer_details": {
            "address": {
                "address_1": f"{rng.randint(1, 200)} High Street" if has_address else None,
                "address_2": None,
                "address_3": rng.choice(("London", "New York", "Tokyo", "Berlin")) if has_address else None,
                "postal_code": f"N{rng.randint(1, 22)} {rng.randint(1, 9)}AB" if has_address else None,
            },
            "custom_questions": _with_negated_question(world, i, _custom_questions(rng)),
            "email": email,
            "first_name": first,
            "last_name": last,
            "name": f"{first} {last}",
            "phone": f"07{rng.randint(100000000, 999999999)}" if rng.random() < 0.5 else None,
        },
        "created_at": s.created_at,
        "currency": {"base_multiplier": _MULTIPLIER.get(ev.currency, 100), "code": ev.currency},
        "event_summary": _event_summary(ev),
        "issued_tickets": tickets,
        "line_items": [
            {
                "object": "line_item",
                "id": f"li_{(i + 1) * 10}",
                "booking_fee": fee * s.quantity,
                "description": _TICKET_TYPE_NAMES[s.ticket_type],
                "type": "ticket",
                "total": subtotal,
                "value": price,
                "quantity": s.quantity,
            }
        ],
        "payment_method": (
            {"external_id": None, "id": "pm_6687", "instructions": "Pay when you arrive", "name": "Pay on the door",
             "type": "offline"}
            if s.status == "pending"
            else {"external_id": None, "id": "pm_6690", "instructions": None, "name": None, "type": "stripe"}
        ),
        "referral_tag": _referral_tag(world, rng, s.created_at),
        "refund_amount": refund,
        "status": s.status,
        "status_message": None,
        "subtotal": subtotal,
        "tax": 0,
        "total": total,
        "total_paid": total_paid,
        "txn_id": None if s.status == "pending" else "ch_"
        + hashlib.blake2b(order_id.encode(), digest_size=6).hexdigest(),
    }


# --- Facts for the ground truth ----------------------------------------------------------------

def event_facts(world: w.World) -> Iterator[w.EventFact]:
    for ev in _events(world):
        yield w.EventFact(PROVIDER, ev.id, ev.name, ev.start.astimezone(UTC))


def order_facts(world: w.World) -> Iterator[w.OrderFact]:
    for i in range(n_orders(world)):
        o = _build_order(world, i)
        yield w.OrderFact(
            provider=PROVIDER,
            order_id=o["id"],
            event_id=o["event_summary"]["id"],
            currency=o["currency"]["code"].upper(),
            created_at=datetime.fromtimestamp(o["created_at"], UTC),
            counts_as_revenue=o["status"] == "completed",
            gross_cents=o["total"],
            refunded_cents=o["refund_amount"],
            campaign_tag=o["referral_tag"],
        )


def ticket_facts(world: w.World) -> Iterator[w.TicketFact]:
    # Skeletons carry everything attendance needs: no need to render whole orders.
    events = _events(world)
    for i in range(n_orders(world)):
        s = _skeleton(world, i)
        for k in range(s.quantity):
            yield w.TicketFact(PROVIDER, events[s.event].id, not s.void[k], s.checkin[k])


# --- Listing machinery -------------------------------------------------------------------------

@dataclass(frozen=True)
class _Collection:
    """Records in ascending id order, lazily: `n` positions, `at(p)` the owner index at position
    p (ascending), `expand(owner)` its records as (id number, record) in descending id order."""

    n: int
    at: Callable[[int], int]
    expand: Callable[[int], list[tuple[int, dict[str, Any]]]]
    owner_of: Callable[[int], int]  # id number -> owner index
    pred: Callable[[dict[str, Any]], bool]

    def _position_le(self, owner: int) -> int:
        return bisect.bisect_right(range(self.n), owner, key=self.at) - 1

    def _position_ge(self, owner: int) -> int:
        return bisect.bisect_left(range(self.n), owner, key=self.at)

    def older(self, below: int | None) -> Iterator[tuple[int, dict[str, Any]]]:
        p = self.n - 1 if below is None else self._position_le(self.owner_of(below))
        while p >= 0:
            for num, rec in self.expand(self.at(p)):
                if (below is None or num < below) and self.pred(rec):
                    yield num, rec
            p -= 1

    def newer(self, above: int) -> Iterator[tuple[int, dict[str, Any]]]:
        p = self._position_ge(self.owner_of(above))
        while p < self.n:
            for num, rec in reversed(self.expand(self.at(p))):
                if num > above and self.pred(rec):
                    yield num, rec
            p += 1

    def get(self, num: int) -> dict[str, Any] | None:
        owner = self.owner_of(num)
        p = self._position_ge(owner)
        if p >= self.n or self.at(p) != owner:
            return None
        for n, rec in self.expand(owner):
            if n == num and self.pred(rec):
                return rec
        return None


def _take(it: Iterator[tuple[int, dict[str, Any]]], k: int) -> list[tuple[int, dict[str, Any]]]:
    out = []
    for item in it:
        out.append(item)
        if len(out) >= k:
            break
    return out


def _parse_id(value: str, prefix: str, what: str) -> int:
    raw = value.strip()
    if raw.startswith(prefix + "_"):
        raw = raw[len(prefix) + 1:]
    if not raw.isdigit():
        raise _BadRequest(f"{what} must be an id like {prefix}_123")
    return int(raw)


def _int_arg(request: Request, name: str) -> int | None:
    value = request.arg(name)
    if value is None or value == "":
        return None
    try:
        return int(value)
    except ValueError:
        raise _BadRequest(f"{name} must be a unix timestamp (integer seconds)") from None


def _time_bounds(request: Request, field_name: str) -> tuple[int | None, int | None]:
    """[lo, hi) in unix seconds from `field`, `field.gt/.gte/.lt/.lte`; None = unbounded."""
    lo: int | None = None
    hi: int | None = None

    def raise_lo(v: int) -> None:
        nonlocal lo
        lo = v if lo is None else max(lo, v)

    def lower_hi(v: int) -> None:
        nonlocal hi
        hi = v if hi is None else min(hi, v)

    if (v := _int_arg(request, field_name)) is not None:
        raise_lo(v)
        lower_hi(v + 1)
    if (v := _int_arg(request, f"{field_name}.gte")) is not None:
        raise_lo(v)
    if (v := _int_arg(request, f"{field_name}.gt")) is not None:
        raise_lo(v + 1)
    if (v := _int_arg(request, f"{field_name}.lt")) is not None:
        lower_hi(v)
    if (v := _int_arg(request, f"{field_name}.lte")) is not None:
        lower_hi(v + 1)
    return lo, hi


def _order_range(world: w.World, request: Request) -> tuple[int, int]:
    """Order indices [lo, hi) whose created_at satisfies the request's created_at filters."""
    n = n_orders(world)
    t_lo, t_hi = _time_bounds(request, "created_at")
    indices = range(n)
    lo = 0 if t_lo is None else bisect.bisect_left(indices, t_lo, key=lambda i: _created_at(world, i))
    hi = n if t_hi is None else bisect.bisect_left(indices, t_hi, key=lambda i: _created_at(world, i))
    return lo, max(lo, hi)


def _event_index_arg(world: w.World, request: Request) -> int | None:
    """-1 for an unknown event (an empty list), None when not filtering."""
    value = request.arg("event_id")
    if value is None or value == "":
        return None
    num = _parse_id(value, "ev", "event_id")
    for ev in _events(world):
        if ev.id == f"ev_{num}":
            return ev.index
    return -1


def _owners(world: w.World, request: Request) -> tuple[int, Callable[[int], int]]:
    """Positions over the order indices the request can touch (created_at range, event, order)."""
    lo, hi = _order_range(world, request)
    event = _event_index_arg(world, request)
    if request.arg("order_id"):
        idx = _parse_id(request.arg("order_id") or "", "or", "order_id") - 1
        if lo <= idx < hi and (event is None or (event >= 0 and _skeleton(world, idx).event == event)):
            return 1, lambda p: idx
        return 0, lambda p: 0
    if event is None:
        return hi - lo, lambda p: lo + p
    if event < 0:
        return 0, lambda p: 0
    arr = _index(world).by_event[event]
    a, b = int(np.searchsorted(arr, lo)), int(np.searchsorted(arr, hi))
    return b - a, lambda p: int(arr[a + p])


def _orders_collection(world: w.World, request: Request) -> _Collection:
    n, at = _owners(world, request)
    status = request.arg("status")
    tag = request.arg("referral_tag")

    def pred(rec: dict[str, Any]) -> bool:
        return (not status or rec["status"] == status) and (not tag or rec["referral_tag"] == tag)

    return _Collection(n, at, lambda i: [(i + 1, _order(world, i))], lambda num: num - 1, pred)


def _tickets_collection(world: w.World, request: Request) -> _Collection:
    n, at = _owners(world, request)
    status = request.arg("status")
    wanted = "void" if status in ("void", "voided") else status  # the doc names the filter value "voided"

    def expand(i: int) -> list[tuple[int, dict[str, Any]]]:
        return [((i + 1) * 10 + k, t) for k, t in reversed(list(enumerate(_order(world, i)["issued_tickets"])))]

    def pred(rec: dict[str, Any]) -> bool:
        return not wanted or rec["status"] == wanted

    return _Collection(n, at, expand, lambda num: num // 10 - 1, pred)


def _events_collection(world: w.World, request: Request) -> _Collection:
    events = _events(world)
    s_lo, s_hi = _time_bounds(request, "start_at")
    e_lo, e_hi = _time_bounds(request, "end_at")
    statuses = {s.strip() for s in (request.arg("status") or "").split(",") if s.strip()}

    def pred(rec: dict[str, Any]) -> bool:
        s, e = rec["start"]["unix"], rec["end"]["unix"]
        return ((s_lo is None or s >= s_lo) and (s_hi is None or s < s_hi) and (e_lo is None or e >= e_lo)
                and (e_hi is None or e < e_hi) and (not statuses or rec["status"] in statuses))

    return _Collection(len(events), lambda p: p, lambda j: [(1001 + j, _event_json(world, events[j]))],
                       lambda num: num - 1001, pred)


def _link(path: str, request: Request, cursor_name: str, cursor: str) -> str:
    pairs = [(k, v) for k, vs in request.query.items() if k not in ("starting_after", "ending_before") for v in vs]
    pairs.append((cursor_name, cursor))
    return f"{path}?{urlencode(pairs, safe=',')}"


def _list(request: Request, ctx: SandboxContext, coll: _Collection, prefix: str) -> Response:
    limit_raw = request.arg("limit")
    try:
        limit = MAX_LIMIT if limit_raw in (None, "") else int(limit_raw)
    except ValueError:
        raise _BadRequest("limit must be an integer between 1 and 100") from None
    if not 1 <= limit <= MAX_LIMIT:
        raise _BadRequest(f"limit must be between 1 and {MAX_LIMIT}")
    ending_before = request.arg("ending_before")
    starting_after = request.arg("starting_after")
    if ending_before:  # the doc: "If both parameters are provided, only ending_before is used."
        cursor = _parse_id(ending_before, prefix, "ending_before")
        items = _take(coll.newer(cursor), limit + 1)
        has_prev = len(items) > limit
        items = items[:limit][::-1]
        has_next = bool(items) and next(coll.older(items[-1][0]), None) is not None
    else:
        cursor = _parse_id(starting_after, prefix, "starting_after") if starting_after else None
        items = _take(coll.older(cursor), limit + 1)
        has_next = len(items) > limit
        items = items[:limit]
        has_prev = cursor is not None and bool(items) and next(coll.newer(items[0][0]), None) is not None
        if cursor is not None and items and ctx.faults.hit("repeat", f"{PROVIDER} {request.key}"):
            # What a live API does under concurrent inserts: the previous page's last record again.
            again = coll.get(cursor)
            if again is not None:
                items = [(cursor, again), *items]
                has_prev = True
                if len(items) > limit:
                    items = items[:limit]
                    has_next = True
    path = "/v1/" + request.path.strip("/").split("/", 1)[1]
    next_link = _link(path, request, "starting_after", f"{prefix}_{items[-1][0]}") if has_next and items else None
    prev_link = _link(path, request, "ending_before", f"{prefix}_{items[0][0]}") if has_prev and items else None
    return json_response({"data": [rec for _, rec in items], "links": {"next": next_link, "previous": prev_link}})


# --- Auth, rate limit, routing -------------------------------------------------------------------

def _state(ctx: SandboxContext) -> dict[str, Any]:
    with ctx.lock:
        return ctx.state.setdefault(PROVIDER, {
            "hourly_limit": DEFAULT_HOURLY_LIMIT, "window_start": None, "used": 0, "lock": threading.Lock(),
        })


def configure(ctx: SandboxContext, hourly_limit: int | None = None) -> None:
    """Set the hourly request budget (the doc's default is 2000) and start a fresh window."""
    state = _state(ctx)
    with state["lock"]:
        if hourly_limit is not None:
            if hourly_limit < 1:
                raise ValueError("hourly_limit must be at least 1")
            state["hourly_limit"] = int(hourly_limit)
        state["window_start"] = None
        state["used"] = 0


def _rate(ctx: SandboxContext, consume: bool) -> tuple[bool, dict[str, str]]:
    state = _state(ctx)
    now = time.monotonic()
    with state["lock"]:
        if state["window_start"] is None or now - state["window_start"] >= 3600:
            state["window_start"], state["used"] = now, 0
        limit = state["hourly_limit"]
        allowed = state["used"] < limit
        if consume and allowed:
            state["used"] += 1
        reset = max(1, int(3600 - (now - state["window_start"]) + 0.999))
        headers = {
            "X-Rate-Limit-Limit": str(limit),
            "X-Rate-Limit-Remaining": str(max(0, limit - state["used"])),
            "X-Rate-Limit-Reset": str(reset),
        }
    if consume and not allowed:
        headers["Retry-After"] = str(reset)
    return allowed, headers


def _error(status: int, message: str | None = None, headers: dict[str, str] | None = None) -> Response:
    code, default = _ERRORS[status]
    return json_response({"status": status, "error_code": code, "message": message or default}, status, headers)


class TickettailorSandbox(Provider):
    name = PROVIDER

    def error(self, status: int, message: str) -> Response:
        return _error(status, message)

    def handle(self, request: Request, ctx: SandboxContext) -> Response:
        if request.basic_username() != w.TICKETTAILOR_API_KEY:
            _, headers = _rate(ctx, consume=False)
            return _error(401, headers=headers)
        allowed, headers = _rate(ctx, consume=True)
        if not allowed:
            return _error(429, headers=headers)
        try:
            response = self._route(request, ctx)
        except _BadRequest as exc:
            response = _error(400, str(exc))
        response.headers.update(headers)
        return response

    def _route(self, request: Request, ctx: SandboxContext) -> Response:
        world = ctx.world
        parts = request.path.strip("/").split("/")
        if len(parts) < 2 or parts[0] != "v1" or parts[1] not in ("events", "orders", "issued_tickets"):
            return _error(404)
        if request.method != "GET":
            return _error(405)
        kind = parts[1]
        if len(parts) == 2:
            if kind == "events":
                return _list(request, ctx, _events_collection(world, request), "ev")
            if kind == "orders":
                return _list(request, ctx, _orders_collection(world, request), "or")
            return _list(request, ctx, _tickets_collection(world, request), "it")
        if len(parts) != 3:
            return _error(404)
        return self._one(world, kind, parts[2])

    def _one(self, world: w.World, kind: str, ident: str) -> Response:
        prefix = {"events": "ev", "orders": "or", "issued_tickets": "it"}[kind]
        body = ident[len(prefix) + 1:] if ident.startswith(prefix + "_") else ""
        if not body.isdigit():
            return _error(404)
        num = int(body)
        if kind == "events":
            events = _events(world)
            j = num - 1001
            return json_response(_event_json(world, events[j])) if 0 <= j < len(events) else _error(404)
        if kind == "orders":
            return json_response(_order(world, num - 1)) if 1 <= num <= n_orders(world) else _error(404)
        i, k = num // 10 - 1, num % 10
        if 0 <= i < n_orders(world):
            tickets = _order(world, i)["issued_tickets"]
            if k < len(tickets):
                return json_response(tickets[k])
        return _error(404)

