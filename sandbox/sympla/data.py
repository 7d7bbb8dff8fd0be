"""Sympla's dataset, a pure function of the world's seed, scale and anchor.

Events are few (5 per square root of the scale) and computed whole. Each event's order index
(time, status, participant count per order: its `OrderCore`s) is generated from indices and cached
for a handful of events only; record details (`OrderDetail`, `ParticipantDetail`) are re-derived
per request from per-record random streams. Order ids, participant ids and ticket numbers are
bijections of the generator's indices, so any id decodes back to its record without a lookup table.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

from sandbox import world as w

SAO_PAULO = ZoneInfo("America/Sao_Paulo")
PROVIDER = "sympla"
ORDERS_PER_SCALE = 1000
MARKETING_QUESTION = "Aceito receber comunicações de marketing?"

# Prices chosen so that float arithmetic on them is wrong (0.29 * 100 == 28.999...).
TICKET_TIERS = (
    ("Pista", ("0.29", "10.1", "45", "60.5", "80")),
    ("Meia-entrada", ("10.1", "22.45", "30", "0.29")),
    ("VIP", ("99.99", "123.5", "150.7", "250")),
    ("Camarote", ("199.9", "320.15", "99.99")),
)
TRANSACTION_TYPES = ("CREDIT_CARD", "CREDIT_CARD", "PIX", "PIX", "BOLETO_BANCARIO", "DEBIT_CARD")
FIRST_NAMES = ("Joaquim", "Ana", "Beatriz", "Carlos", "Daniela", "Eduardo", "Fernanda", "Gabriel", "Helena",
               "Igor", "Juliana", "Lucas", "Mariana", "Nicolas", "Olivia", "Pedro", "Rafaela", "Thiago")
LAST_NAMES = ("Lopes", "Silva", "Souza", "Oliveira", "Santos", "Pereira", "Costa", "Almeida", "Ferreira",
              "Rodrigues", "Gomes", "Martins", "Araujo", "Barbosa")
EVENT_NAMES = ("Festival de Verão", "Noite do Samba", "Workshop de Dados", "Rock na Praça", "Jazz ao Entardecer",
               "Conferência Tech BH", "Forró Universitário", "Stand-up Comedy Night", "Sarau Literário")
VENUES = (
    {"name": "Loja Contempo", "address": "Rua Fernandes Tourinho", "address_num": "147",
     "address_alt": "10º Andar", "neighborhood": "Funcionários", "city": "Belo Horizonte", "state": "MG",
     "zip_code": "31112-000", "country": "BR", "lon": "-43.9352", "lat": "-19.9386"},
    {"name": "Espaço Unimed", "address": "Rua Tagipuru", "address_num": "795", "address_alt": None,
     "neighborhood": "Barra Funda", "city": "São Paulo", "state": "SP", "zip_code": "01156-000",
     "country": "BR", "lon": "-46.6636", "lat": "-23.5262"},
    {"name": "Circo Voador", "address": "Rua dos Arcos", "address_num": "s/n", "address_alt": None,
     "neighborhood": "Lapa", "city": "Rio de Janeiro", "state": "RJ", "zip_code": "20230-060",
     "country": "BR", "lon": "-43.1801", "lat": "-22.9129"},
)
CATEGORIES = ("show-musica", "festa-balada", "encontro-networking", "curso-workshop", "teatro-espetaculo")

# Order ids are a bijection of (event index, order index) onto 7 base-36 digits, so any id can be
# decoded back to its generator inputs without a lookup table (unique at any scale we support).
_ID_SPACE = 36**7
_ID_MUL = 1_572_869  # coprime with 36
_ID_ADD = 12_345_678
_PER_EVENT = 10**7
_TICKET_SPACE = 36**10
_TICKET_MUL = 3_486_784_403  # coprime with 36
_TICKET_ADD = 98_765_432_101
_PARTICIPANT_BASE = 100_000
_MAX_PARTICIPANTS = 4
_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def _b36(n: int, width: int) -> str:
    out = []
    for _ in range(width):
        n, r = divmod(n, 36)
        out.append(_ALPHABET[r])
    return "".join(reversed(out))


def _unb36(s: str) -> int | None:
    n = 0
    for ch in s.upper():
        idx = _ALPHABET.find(ch)
        if idx < 0:
            return None
        n = n * 36 + idx
    return n


def _cents2(d: Decimal) -> Decimal:
    return d.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


@dataclass(frozen=True)
class EventPlan:
    index: int
    id: str
    reference_id: int
    name: str
    starts_at: datetime  # UTC
    ends_at: datetime  # UTC
    sales_start: datetime  # UTC, first possible order
    sales_end: datetime  # UTC, exclusive
    n_orders: int
    tiers: tuple[tuple[str, Decimal], ...]
    venue: int
    category: tuple[str, str]

    @property
    def presentation_id(self) -> int:
        return self.reference_id * 10 + 1


@dataclass(frozen=True)
class OrderCore:
    """What pagination and filters need; everything else is derived on demand."""

    event: int
    index: int
    created_at: datetime  # UTC, whole seconds
    status: str  # approved | pending | cancelled
    n_participants: int

    @property
    def seq(self) -> int:
        return self.event * _PER_EVENT + self.index

    @property
    def id(self) -> str:
        return _b36((self.seq * _ID_MUL + _ID_ADD) % _ID_SPACE, 7)


@dataclass(frozen=True)
class OrderDetail:
    core: OrderCore
    buyer_first: str
    buyer_last: str
    buyer_email: str
    updated_at: datetime
    approved_at: datetime | None
    discount_code: str | None
    transaction_type: str
    ticket_prices: tuple[tuple[str, Decimal], ...]  # per participant: (tier name, sale price)
    total: Decimal
    net: Decimal
    utm: dict[str, Any] | None
    invoice: dict[str, Any] | None


def _n_events(world: w.World) -> int:
    return 5 * max(1, math.isqrt(world.scale))


@lru_cache(maxsize=16)
def _event_plans(world: w.World) -> tuple[EventPlan, ...]:
    n = _n_events(world)
    first = world.start + timedelta(days=7)
    span = (world.end + timedelta(days=30)) - first
    drafts = []
    for e in range(n):
        rng = world.rng("sympla", "event", e)
        day = (first + span * ((e + rng.random()) / n)).astimezone(SAO_PAULO).date()
        local_start = datetime.combine(day, time(rng.choice((19, 20, 21)), rng.choice((0, 30))), SAO_PAULO)
        starts = local_start.astimezone(UTC)
        ends = starts + timedelta(hours=rng.randint(3, 6))
        sales_end = min(world.end, starts)
        tiers = tuple(
            (name, Decimal(rng.choice(prices)))
            for name, prices in rng.sample(TICKET_TIERS, rng.randint(2, 3))
        )
        reference_id = 1_200_000 + e * 7_919 + world.seed % 997
        drafts.append(dict(
            index=e, id=f"s{reference_id:X}", reference_id=reference_id,
            name=f"{rng.choice(EVENT_NAMES)} {day.year}/{e + 1}", starts_at=starts, ends_at=ends,
            sales_start=world.start, sales_end=sales_end, tiers=tiers, venue=rng.randrange(len(VENUES)),
            category=tuple(rng.sample(CATEGORIES, 2)),
            weight=max(0.0, (sales_end - world.start).total_seconds()) * (0.5 + rng.random()),
        ))
    total_weight = sum(d["weight"] for d in drafts) or 1.0
    plans = []
    for d in drafts:
        weight = d.pop("weight")
        n_orders = round(ORDERS_PER_SCALE * world.scale * weight / total_weight) if weight > 0 else 0
        plans.append(EventPlan(n_orders=n_orders, **d))
    return tuple(plans)


def _order_core(world: w.World, plan: EventPlan, i: int) -> OrderCore:
    rng = world.rng("sympla", "order", plan.index, i)
    window = int((plan.sales_end - plan.sales_start).total_seconds())
    created = plan.sales_start + timedelta(seconds=int(rng.random() * window))
    if rng.random() < 0.08:
        # Near UTC midnight, i.e. ~21:00 the previous day in Sao Paulo: a different local date.
        days = window // 86400
        midnight = plan.sales_start + timedelta(days=rng.randint(1, max(1, days)))
        near = midnight + timedelta(seconds=rng.randint(-25 * 60, 25 * 60))
        if plan.sales_start <= near < plan.sales_end:
            created = near
    r = rng.random()
    status = "approved" if r < 0.8 else "pending" if r < 0.88 else "cancelled"
    n_part = rng.choices((1, 2, 3, 4), weights=(50, 30, 12, 8))[0]
    return OrderCore(plan.index, i, created, status, n_part)


@lru_cache(maxsize=8)
def _event_index(world: w.World, event: int) -> tuple[OrderCore, ...]:
    """One event's orders, by creation time (ties by index). Small: ~1000 * scale / events."""
    plan = _event_plans(world)[event]
    return tuple(sorted((_order_core(world, plan, i) for i in range(plan.n_orders)),
                        key=lambda c: (c.created_at, c.index)))


def _order_detail(world: w.World, plan: EventPlan, core: OrderCore) -> OrderDetail:
    rng = world.rng("sympla", "order-detail", plan.index, core.index)
    first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
    email = f"{first}.{last}{rng.randint(1, 999)}@example.com.br".lower()
    cap = max(core.created_at, world.end - timedelta(seconds=1))
    transaction_type = rng.choice(TRANSACTION_TYPES)
    approved_at = None
    if core.status == "approved":
        delay = rng.randint(3600, 2 * 86400) if transaction_type == "BOLETO_BANCARIO" else rng.randint(5, 600)
        approved_at = min(core.created_at + timedelta(seconds=delay), cap)
        updated_at = approved_at
    elif core.status == "cancelled":
        updated_at = min(core.created_at + timedelta(seconds=rng.randint(600, 3 * 86400)), cap)
    else:
        updated_at = core.created_at
    discount = rng.random() < 0.1
    prices = []
    for _ in range(core.n_participants):
        tier, price = rng.choice(plan.tiers)
        prices.append((tier, _cents2(price * Decimal("0.9")) if discount else price))
    total = sum((p for _, p in prices), Decimal(0))
    net = total - _cents2(total * Decimal("0.1"))

    r = rng.random()
    utm: dict[str, Any] | None = None
    if r < 0.3:
        sent = [c for c in world.campaigns if c.sent_at <= core.created_at]
        campaign = sent[-1] if sent and rng.random() < 0.7 else rng.choice(world.campaigns)
        cid = campaign.id
        tag = rng.choice((cid, cid, cid.upper(), f" {cid}", f"{cid} ", cid.capitalize(), f" {cid.upper()}  "))
        medium = campaign.type
        utm = {"utm_source": "cymbal", "utm_medium": medium, "utm_campaign": tag, "utm_content": None,
               "referrer": "l.cymbal.co"}
    elif r < 0.34:
        utm = {"utm_source": "instagram", "utm_medium": "social", "utm_campaign": "bio_link"}
    elif r < 0.5:
        utm = {"utm_source": "google", "utm_medium": "organic", "utm_campaign": None,
               "user_agent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko)",
               "referrer": "www.google.com"}
    invoice = None
    if rng.random() < 0.4:
        venue = VENUES[rng.randrange(len(VENUES))]
        invoice = {
            "doc_type": "CPF", "doc_number": _cpf(rng), "client_name": f"{first} {last}",
            "address_zip_code": venue["zip_code"], "address_street": venue["address"],
            "address_street_number": str(rng.randint(1, 2000)), "address_street2": None,
            "address_neighborhood": venue["neighborhood"], "address_city": venue["city"],
            "address_state": venue["state"], "mei": 0,
        }
    return OrderDetail(core, first, last, email, updated_at, approved_at,
                       "10,00% - desconto10" if discount else None, transaction_type, tuple(prices),
                       total, net, utm, invoice)


def _cpf(rng: Any) -> str:
    d = f"{rng.randrange(10**11):011d}"
    return f"{d[:3]}.{d[3:6]}.{d[6:9]}-{d[9:]}"


@dataclass(frozen=True)
class ParticipantDetail:
    id: int
    ticket_number: str
    first: str
    last: str
    email: str
    tier: str
    price: Decimal
    checked_in_at: datetime | None
    custom_form: tuple[tuple[int, str, str], ...]


def _participant_id(core: OrderCore, j: int) -> int:
    return _PARTICIPANT_BASE + core.seq * _MAX_PARTICIPANTS + j


def _ticket_number(pid: int) -> str:
    raw = _b36((pid * _TICKET_MUL + _TICKET_ADD) % _TICKET_SPACE, 10)
    return f"{raw[:4]}-{raw[4:6]}-{raw[6:]}"


def _participant_detail(world: w.World, plan: EventPlan, detail: OrderDetail, j: int) -> ParticipantDetail:
    core = detail.core
    rng = world.rng("sympla", "participant", plan.index, core.index, j)
    pid = _participant_id(core, j)
    if j == 0:
        first, last, email = detail.buyer_first, detail.buyer_last, detail.buyer_email
    else:
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        email = f"{first}.{last}{rng.randint(1, 999)}@example.com.br".lower()
    form: list[tuple[int, str, str]] = []
    if rng.random() < 0.5:
        form.append((1, "CPF", _cpf(rng)))
    if rng.random() < (0.7 if j == 0 else 0.3):
        answer = rng.choice(("Sim", "Sim", "sim", "Não", "Não", "Nao"))
        form.append((2, MARKETING_QUESTION, answer))
    checked_in_at = None
    now = world.end
    if core.status == "approved" and plan.starts_at < now and rng.random() < 0.8:
        latest = min(plan.ends_at, now - timedelta(seconds=1))
        window = int((latest - plan.starts_at).total_seconds()) + 3600
        checked_in_at = plan.starts_at - timedelta(seconds=3600) + timedelta(seconds=rng.randrange(max(1, window)))
    tier, price = detail.ticket_prices[j]
    return ParticipantDetail(pid, _ticket_number(pid), first, last, email, tier, price, checked_in_at, tuple(form))


def _decode_order_id(order_id: str) -> tuple[int, int] | None:
    n = _unb36(order_id) if len(order_id) == 7 else None
    if n is None:
        return None
    seq = ((n - _ID_ADD) * pow(_ID_MUL, -1, _ID_SPACE)) % _ID_SPACE
    return divmod(seq, _PER_EVENT)


def _decode_ticket_number(ticket_number: str) -> int | None:
    """The participant id a ticket number stands for (`_ticket_number` backwards); None if not base 36."""
    n = _unb36(ticket_number.replace("-", ""))
    if n is None:
        return None
    return ((n - _TICKET_ADD) * pow(_TICKET_MUL, -1, _TICKET_SPACE)) % _TICKET_SPACE


def _decode_participant_id(pid: int) -> tuple[int, int, int]:
    seq, j = divmod(pid - _PARTICIPANT_BASE, _MAX_PARTICIPANTS)
    event, index = divmod(seq, _PER_EVENT)
    return event, index, j


# --- facts for the ground truth ---------------------------------------------------------------------

def event_facts(world: w.World) -> Iterator[w.EventFact]:
    for plan in _event_plans(world):
        yield w.EventFact(provider=PROVIDER, event_id=plan.id, name=plan.name, starts_at=plan.starts_at)


def order_facts(world: w.World) -> Iterator[w.OrderFact]:
    for plan in _event_plans(world):
        for i in range(plan.n_orders):
            core = _order_core(world, plan, i)
            d = _order_detail(world, plan, core)
            yield w.OrderFact(
                provider=PROVIDER, order_id=core.id, event_id=plan.id, currency="BRL",
                created_at=core.created_at, counts_as_revenue=core.status == "approved",
                gross_cents=int(d.total * 100), refunded_cents=0,
                campaign_tag=(d.utm or {}).get("utm_campaign"),
            )


def ticket_facts(world: w.World) -> Iterator[w.TicketFact]:
    """One fact per participant of every order; `issued` only for approved orders (DESIGN.md)."""
    for plan in _event_plans(world):
        for i in range(plan.n_orders):
            core = _order_core(world, plan, i)
            d = _order_detail(world, plan, core)
            for j in range(core.n_participants):
                p = _participant_detail(world, plan, d, j)
                issued = core.status == "approved"
                yield w.TicketFact(provider=PROVIDER, event_id=plan.id, issued=issued,
                                   checked_in=issued and p.checked_in_at is not None)
