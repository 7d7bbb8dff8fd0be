"""Ticket Tailor's dataset, a pure function of the world's seed, scale and anchor.

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
  at scale 500.

An order's count-relevant decisions (time, event, quantity, status, void and check-in per ticket:
its `_Skeleton`) come from splitmix64 hashes of its index, cheap enough to compute for every order;
the rest (buyer, refund, questions, referral tag: its `_Order`) from a per-order random stream.
"""

from __future__ import annotations

import bisect
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np

from sandbox import world as w

PROVIDER = "tickettailor"
ORDERS_PER_SCALE = 2000
MARKETING_QUESTION = "Marketing: keep me posted about future events by email"
# A checkout question some box offices add: "Yes" here means NO consent. Its label contains
# "marketing" too, so a consent rule that matches labels by substring reads it backwards.
NEGATED_MARKETING_QUESTION = "Tick if you do NOT want marketing emails"
NEGATED_SHARE = 0.04  # of orders whose buyer answered it
# Minutes either side of UTC midnight that are squeezed into +-110 s (see `_squeeze`).
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
_TICKET_TYPE_NAMES = ("General Admission", "VIP")
_FIRST = ("John", "Amara", "Kenji", "Sofia", "Liam", "Priya", "Mateo", "Chloe", "Yuki", "Noah", "Fatima", "Lucas")
_LAST = ("Doe", "Okafor", "Tanaka", "Rossi", "Murphy", "Patel", "Garcia", "Martin", "Sato", "Smith", "Khan", "Silva")


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
# (`_skeleton`) and on numpy arrays for the one-pass index (`_skeleton_arrays`). Both are exact
# integer arithmetic mod 2**64, so they agree bit for bit, and the index over a million orders
# takes well under a second. Both read the hash fields and thresholds below, never their own copies.
_M64 = (1 << 64) - 1
_GOLDEN, _MUL1, _MUL2 = 0x9E3779B97F4A7C15, 0xBF58476D1CE4E5B9, 0x94D049BB133111EB
_SALT_EVENT, _SALT_MISC, _SALT_CHECKIN = 0x5851F42D4C957F2D, 0x14057B7EF767814F, 0x2545F4914F6CDD1D
_SALT_NEGATED = 0x3C6EF372FE94F82B
_JITTER_BITS = 16  # keeps (i * 2**16 + u) * span inside int64 up to ~8,000x scale

# Where each decision sits in the hashes. h3 (salt MISC): bits 0-7 the quantity draw, 8-23 the
# status draw, bit 24 the ticket type, bits 32+8k to 39+8k ticket k's void draw. h4 (salt CHECKIN):
# bits 8k to 8k+7 ticket k's check-in draw.
_QUANTITY_MASK = 0xFF
_STATUS_SHIFT, _STATUS_MASK = 8, 0xFFFF
_TICKET_TYPE_SHIFT = 24
_VOID_SHIFT = 32
_TICKET_DRAW_BITS, _TICKET_DRAW_MASK = 8, 0xFF
# The thresholds on those draws. A quantity draw below 102 is 1 ticket (40%), below 192 two (35%),
# below 230 three (15%), else four (10%): the count of cuts at or below the draw, plus one.
_QUANTITY_CUTS = (102, 192, 230)
_MAX_QUANTITY = len(_QUANTITY_CUTS) + 1
# A status draw below 55700 is completed (85%), below 59000 pending (5%), else cancelled (10%).
_STATUSES = ("completed", "pending", "cancelled")
_STATUS_CUTS = (55700, 59000)
_CANCELLED = _STATUSES.index("cancelled")
_VOID_BELOW = 10  # a ticket's void draw below this voids it (~4%); a cancelled order's tickets are all void
_CHECKIN_BELOW = 205  # a valid ticket of a started event is checked in when its draw is below this (~80%)


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
    return bisect.bisect_right(_QUANTITY_CUTS, qb) + 1


def _status(sb: int) -> str:
    return _STATUSES[bisect.bisect_right(_STATUS_CUTS, sb)]


def _skeleton(world: w.World, i: int) -> _Skeleton:
    params = _params(world)
    h1 = _mix(params[6] ^ i)
    h2, h3, h4 = _mix(h1 ^ _SALT_EVENT), _mix(h1 ^ _SALT_MISC), _mix(h1 ^ _SALT_CHECKIN)
    created = _created_at_from(params, i, h1)
    starts = params[5]
    first_open = bisect.bisect_right(starts, created)  # events still on sale at creation
    event = min(first_open + h2 % max(1, len(starts) - first_open), len(starts) - 1)
    quantity = _quantity(h3 & _QUANTITY_MASK)
    status = _status((h3 >> _STATUS_SHIFT) & _STATUS_MASK)
    started = starts[event] < params[4]
    void = tuple(status == "cancelled"
                 or ((h3 >> (_VOID_SHIFT + _TICKET_DRAW_BITS * k)) & _TICKET_DRAW_MASK) < _VOID_BELOW
                 for k in range(quantity))
    checkin = tuple(started and not void[k]
                    and ((h4 >> (_TICKET_DRAW_BITS * k)) & _TICKET_DRAW_MASK) < _CHECKIN_BELOW
                    for k in range(quantity))
    return _Skeleton(i, created, event, quantity, status, (h3 >> _TICKET_TYPE_SHIFT) & 1, void, checkin)


@dataclass(frozen=True)
class _Skeletons:
    """Orders [lo, hi) as arrays: what the index needs of `_skeleton`, for many orders at once."""

    index: np.ndarray  # order indices (uint64)
    created_at: np.ndarray  # int64, as `_Skeleton.created_at`
    event: np.ndarray  # int64
    quantity: np.ndarray  # int64
    status: np.ndarray  # int64, a position in `_STATUSES`
    valid_tickets: np.ndarray  # int64, the order's tickets that are not void


def _skeleton_arrays(world: w.World, lo: int, hi: int) -> _Skeletons:
    """The numpy twin of `_skeleton` for orders [lo, hi): the same hashes, fields and thresholds."""
    start, span, n, half, _, starts, key = _params(world)
    n_events = len(starts)
    starts_np = np.array(starts, dtype=np.int64)
    i = np.arange(lo, hi, dtype=np.uint64)
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
    qb = (h3 & np.uint64(_QUANTITY_MASK)).astype(np.int64)
    quantity = np.searchsorted(_QUANTITY_CUTS, qb, side="right").astype(np.int64) + 1
    sb = ((h3 >> np.uint64(_STATUS_SHIFT)) & np.uint64(_STATUS_MASK)).astype(np.int64)
    status = np.searchsorted(_STATUS_CUTS, sb, side="right").astype(np.int64)
    cancelled = status == _CANCELLED
    valid_count = np.zeros(len(i), dtype=np.int64)
    for k in range(_MAX_QUANTITY):
        draw = (h3 >> np.uint64(_VOID_SHIFT + _TICKET_DRAW_BITS * k)) & np.uint64(_TICKET_DRAW_MASK)
        void_k = cancelled | (draw < _VOID_BELOW)
        valid_count += (quantity > k) & ~void_k
    return _Skeletons(i, created, event, quantity, status, valid_count)


@dataclass(frozen=True)
class _Index:
    by_event: tuple[np.ndarray, ...]  # ascending order indices per event (uint32)
    orders: tuple[int, ...]
    valid_tickets: tuple[int, ...]


@lru_cache(maxsize=2)
def _index(world: w.World) -> _Index:
    """Per-event order indices and totals, built on first use from `_skeleton_arrays` in chunks so
    memory stays at ~4 bytes per order."""
    n, n_events = n_orders(world), len(_events(world))
    parts: list[list[np.ndarray]] = [[] for _ in range(n_events)]
    valid = [0] * n_events
    chunk = 1 << 18
    for lo in range(0, n, chunk):
        sk = _skeleton_arrays(world, lo, min(n, lo + chunk))
        for e in range(n_events):
            mask = sk.event == e
            parts[e].append(sk.index[mask].astype(np.uint32))
            valid[e] += int(sk.valid_tickets[mask].sum())
    by_event = tuple(np.concatenate(p) if p else np.zeros(0, dtype=np.uint32) for p in parts)
    return _Index(by_event, tuple(len(a) for a in by_event), tuple(valid))


def _started(world: w.World, ev: _Event) -> bool:
    """The event started before the anchor day: sales are closed and its tickets can be checked in."""
    return ev.start_unix < _params(world)[4]


# --- Whole orders -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Ticket:
    num: int  # the id is it_{num}
    token: str  # what the barcode and its URLs carry
    void: bool
    checked_in: bool
    voided_at: int | None
    updated_at: int
    source: str | None


@dataclass(frozen=True)
class _Order:
    skeleton: _Skeleton
    event: _Event
    price: int  # of one ticket, minor units
    fee: int  # booking fee per ticket
    subtotal: int
    total: int
    total_paid: int
    refund: int
    first: str
    last: str
    email: str
    tickets: tuple[_Ticket, ...]
    address: tuple[str, str, str] | None  # (first address line, city, postal code)
    questions: tuple[tuple[str, str | None], ...]  # (question, answer) as the buyer saw them
    phone: str | None
    referral_tag: str | None

    @property
    def id(self) -> str:
        return f"or_{self.skeleton.index + 1}"


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


def _custom_questions(rng: Any) -> list[tuple[str, str | None]]:
    questions: list[tuple[str, str | None]] = []
    roll = rng.random()
    if roll < 0.35:
        questions.append((MARKETING_QUESTION, "Yes"))
    elif roll < 0.45:
        questions.append((MARKETING_QUESTION, "yes"))
    elif roll < 0.70:
        questions.append((MARKETING_QUESTION, "No"))
    elif roll < 0.85:
        questions.append((MARKETING_QUESTION, None))
    # else: the buyer never saw the question (no answer at all)
    if rng.random() < 0.2:
        questions.append(("Dietary requirements", rng.choice(("Vegan", "None", "Gluten free"))))
    return questions


def _with_negated_question(world: w.World, i: int,
                           questions: list[tuple[str, str | None]]) -> list[tuple[str, str | None]]:
    """A few percent of buyers also answer NEGATED_MARKETING_QUESTION, some of them without ever
    answering the real one. Decided from its own splitmix stream, never from the order's `rng`,
    so every other field of every order (and so every mart figure) stays what it was."""
    h = _mix(_params(world)[6] ^ i ^ _SALT_NEGATED)
    if (h & 0xFFFF) >= NEGATED_SHARE * 0x10000:
        return questions
    entry = (NEGATED_MARKETING_QUESTION, "Yes" if (h >> 16) & 3 else "No")
    # Sometimes first: a rule that takes the first label mentioning "marketing" must not win by luck.
    return [entry, *questions] if (h >> 18) & 1 else [*questions, entry]


def _order_detail(world: w.World, i: int) -> _Order:
    """Order `i` whole. The order's random stream is drawn from in a fixed sequence (refund, buyer,
    ticket sources, address, questions, phone, referral tag): reordering the draws changes the data."""
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
        source = "api" if rng.random() < 0.1 else None
        tickets.append(_Ticket(num, token, s.void[k], s.checkin[k], voided_at, updated, source))
    address = None
    if rng.random() < 0.6:
        address = (f"{rng.randint(1, 200)} High Street", rng.choice(("London", "New York", "Tokyo", "Berlin")),
                   f"N{rng.randint(1, 22)} {rng.randint(1, 9)}AB")
    questions = _with_negated_question(world, i, _custom_questions(rng))
    phone = f"07{rng.randint(100000000, 999999999)}" if rng.random() < 0.5 else None
    referral_tag = _referral_tag(world, rng, s.created_at)
    return _Order(s, ev, price, fee, subtotal, total, total_paid, refund, first, last, email, tuple(tickets),
                  address, tuple(questions), phone, referral_tag)


# --- Facts for the ground truth ----------------------------------------------------------------

def event_facts(world: w.World) -> Iterator[w.EventFact]:
    for ev in _events(world):
        yield w.EventFact(PROVIDER, ev.id, ev.name, ev.start.astimezone(UTC))


def order_facts(world: w.World) -> Iterator[w.OrderFact]:
    for i in range(n_orders(world)):
        o = _order_detail(world, i)
        yield w.OrderFact(
            provider=PROVIDER,
            order_id=o.id,
            event_id=o.event.id,
            currency=o.event.currency.upper(),
            created_at=datetime.fromtimestamp(o.skeleton.created_at, UTC),
            counts_as_revenue=o.skeleton.status == "completed",
            gross_cents=o.total,
            refunded_cents=o.refund,
            campaign_tag=o.referral_tag,
        )


def ticket_facts(world: w.World) -> Iterator[w.TicketFact]:
    # Skeletons carry everything attendance needs: no need to build whole orders.
    events = _events(world)
    for i in range(n_orders(world)):
        s = _skeleton(world, i)
        for k in range(s.quantity):
            yield w.TicketFact(PROVIDER, events[s.event].id, not s.void[k], s.checkin[k])
