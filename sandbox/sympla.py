"""Sandbox for the Sympla public API v1.5.1 (served under `/sympla`, so a client's base URL is
`http://127.0.0.1:PORT/sympla` and it appends `/events`, `/events/{id}/orders`, ...).

What it serves, following the vendor doc (provider-docs/004_*.txt):

- `GET /events`, `/events/{event_id}`, `/events/{event_id}/presentations[/{presentation_id}]`
- `GET /events/{event_id}/orders` (`status`, `from`, `to`, `timezone`, `buyer_email`),
  `/events/{event_id}/orders/{order_id}`, `/events/{event_id}/orders/{order_id}/participants`
- `GET /events/{event_id}/participants` (`cancelled_filter`, `ticket_number`, `participant_email`,
  `from`, `to`), `/events/{event_id}/participants/{participant_id}`,
  `/events/{event_id}/participants/ticketNumber/{ticket_number}`
- auth: header `s_token`; every list takes `page` (1-based), `page_size` (default 100, 1..200),
  `field_sort`, `sort`, `fields`.

Where the doc is silent the sandbox decides, and clients should not depend on more than this:

- Errors use the doc's error schema `{"error": true, "code": <http status>, "message": ...}`:
  401 for a missing/wrong token, 400 for a bad parameter (page_size outside 1..200, bad date,
  unknown timezone), 404 for an unknown event / order / participant.
- `order_status` is spelled as in the doc's examples: orders say `APPROVED` / `PENDING` /
  `CANCELLED`; participants say `A` / `P` / `C`.
- `pagination.offset` is the 1-based position of the page's first record; `quantity` is the
  number of records on the page. Orders and participants also carry `total_records` and
  `total_page` (the events/presentations examples do not, so those lists omit them).
- Date-times are `YYYY-MM-DD HH:MM:SS` in the `timezone` parameter (default America/Sao_Paulo),
  which also interprets `from`/`to` (inclusive; `from` defaults to 00:00:00, `to` to 23:59:59).
  The participant endpoints honour `timezone` too. `checkin.check_in_date` is ISO-8601 with offset.
  Events have no timezone parameter: their dates are Sao Paulo local time.
- `custom_form` is a list of `{id, name, value}` (the doc's example shows one bare object, which
  cannot hold several answers); it is omitted when the participant answered nothing.
- Nulls are omitted, recursively, unless `fields` is given (then the listed top-level fields are
  returned, nulls included), as the doc's introduction says.
- The `repeat` fault on page >= 2 prepends the previous page's last record to the page (nothing is
  lost, a record is duplicated), as an offset paginator shows when a record is inserted mid-scan.

Data is a pure function of the world: events are few and computed whole; each event's order index
(time, status, participant count per order) is generated from indices and cached for a handful of
events only; record details are re-derived per request from per-record random streams.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sandbox import world as w
from sandbox.http import Provider, SandboxContext
from sandbox.messages import Request, Response, json_response

SAO_PAULO = ZoneInfo("America/Sao_Paulo")
PROVIDER = "sympla"
DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 200
ORDERS_PER_SCALE = 1000
MARKETING_QUESTION = "Aceito receber comunicações de marketing?"

# Prices chosen so that float arithmetic on them is wrong (0.29 * 100 == 28.999...).
TICKET_TIERS = (
    ("Pista", ("0.29", "10.1", "45", "60.5", "80")),
    ("Meia-entrada", ("10.1", "22.45", "30", "0.29")),
    ("VIP", ("99.99", "123.5", "150.7", "250")),
    ("Camarote", ("199.9", "320.15", "99.99")),
)
ORDER_STATUS = {"approved": "APPROVED", "pending": "PENDING", "cancelled": "CANCELLED"}
PARTICIPANT_STATUS = {"approved": "A", "pending": "P", "cancelled": "C"}
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


def _fmt(dt: datetime | None, tz: ZoneInfo) -> str | None:
    return dt.astimezone(tz).strftime("%Y-%m-%d %H:%M:%S") if dt else None


def _money(d: Decimal) -> float:
    # JSON number with the shortest repr: Decimal("123.50") -> 123.5, and Decimal(str(x)) gets it back.
    return float(d)


def _cents2(d: Decimal) -> Decimal:
    return d.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def _drop_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _drop_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_nulls(v) for v in value if v is not None]
    return value


# --- the dataset ----------------------------------------------------------------------------------

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


def _decode_participant_id(pid: int) -> tuple[int, int, int]:
    seq, j = divmod(pid - _PARTICIPANT_BASE, _MAX_PARTICIPANTS)
    event, index = divmod(seq, _PER_EVENT)
    return event, index, j


# --- rendering ------------------------------------------------------------------------------------

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


# --- HTTP -----------------------------------------------------------------------------------------

class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _error(status: int, message: str) -> Response:
    return json_response({"error": True, "code": status, "message": message}, status)


def _int_arg(request: Request, name: str, default: int) -> int:
    raw = request.arg(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ApiError(400, f"O parâmetro {name} deve ser um número inteiro.") from None


def _timezone(request: Request) -> ZoneInfo:
    name = request.arg("timezone") or "America/Sao_Paulo"
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ApiError(400, f"Timezone inválido: {name}") from None


_DATE_RE = re.compile(r"^(\d{4}-\d{2}-\d{2})(?:[ T](\d{2}:\d{2}:\d{2}))?$")


def _bound(request: Request, name: str, tz: ZoneInfo, default_time: str) -> datetime | None:
    raw = (request.arg(name) or "").strip()
    if not raw:
        return None
    m = _DATE_RE.match(raw)
    if not m:
        raise ApiError(400, f"O parâmetro {name} deve estar no formato YYYY-MM-DD ou YYYY-MM-DD HH:mm:ss.")
    try:
        naive = datetime.strptime(f"{m.group(1)} {m.group(2) or default_time}", "%Y-%m-%d %H:%M:%S")
    except ValueError:
        raise ApiError(400, f"Data inválida no parâmetro {name}.") from None
    return naive.replace(tzinfo=tz).astimezone(UTC)


def _sorting(request: Request, allowed: tuple[str, ...], default: str) -> tuple[str, bool]:
    field = request.arg("field_sort") or default
    if field not in allowed:
        raise ApiError(400, f"field_sort deve ser um de: {', '.join(allowed)}")
    direction = (request.arg("sort") or "ASC").upper()
    if direction not in ("ASC", "DESC"):
        raise ApiError(400, "sort deve ser ASC ou DESC")
    return field, direction == "DESC"


def _shape(record: dict[str, Any], request: Request) -> dict[str, Any]:
    fields = [f.strip() for f in (request.arg("fields") or "").split(",") if f.strip()]
    if fields:
        return {f: record.get(f) for f in fields}
    return _drop_nulls(record)


class SymplaSandbox(Provider):
    name = "sympla"

    def error(self, status: int, message: str) -> Response:
        return _error(status, message)

    def handle(self, request: Request, ctx: SandboxContext) -> Response:
        if request.headers.get("s_token") != w.SYMPLA_TOKEN:
            return _error(401, "Token de acesso inválido ou não informado.")
        if request.method != "GET":
            return _error(405, "Método não suportado.")
        try:
            return self._route(request, ctx)
        except ApiError as exc:
            return _error(exc.status, exc.message)

    def _route(self, request: Request, ctx: SandboxContext) -> Response:
        world: w.World = ctx.world
        parts = [p for p in request.path.split("/") if p]
        if not parts or parts[0] != "events":
            raise ApiError(404, "Recurso não encontrado.")
        if len(parts) == 1:
            return self._list_events(request, ctx)
        plan = self._event(world, parts[1])
        rest = parts[2:]
        if not rest:
            return json_response({"data": _shape(_render_event(plan), request)})
        if rest[0] == "presentations":
            if len(rest) == 1:
                return self._paged(request, ctx, [plan], lambda p: _render_presentation(p),
                                   totals=False, sort={"field_sort": "start_date", "sort": "ASC"})
            if len(rest) == 2 and rest[1] == str(plan.presentation_id):
                return json_response({"data": _shape(_render_presentation(plan), request)})
            raise ApiError(404, "Apresentação não encontrada.")
        if rest[0] == "orders":
            if len(rest) == 1:
                return self._list_orders(request, ctx, plan)
            core = self._order(world, plan, rest[1])
            tz = _timezone(request)
            detail = _order_detail(world, plan, core)
            if len(rest) == 2:
                return json_response({"data": _shape(_render_order(plan, detail, tz), request)})
            if len(rest) == 3 and rest[2] == "participants":
                if core.status == "cancelled" and (request.arg("cancelled") or "").lower() != "true":
                    items: list[tuple[OrderCore, int]] = []
                else:
                    items = [(core, j) for j in range(core.n_participants)]
                return self._paged(request, ctx, items, self._participant_renderer(world, plan, tz),
                                   totals=False, sort={"field_sort": "id", "sort": "ASC"})
            raise ApiError(404, "Recurso não encontrado.")
        if rest[0] == "participants":
            if len(rest) == 1:
                return self._list_participants(request, ctx, plan)
            if len(rest) == 3 and rest[1] == "ticketNumber":
                return self._one_participant(request, world, plan, self._pid_from_ticket(rest[2]))
            if len(rest) == 2 and rest[1].isdigit():
                return self._one_participant(request, world, plan, int(rest[1]))
        raise ApiError(404, "Recurso não encontrado.")

    # -- lookups

    @staticmethod
    def _event(world: w.World, event_id: str) -> EventPlan:
        for plan in _event_plans(world):
            if event_id in (plan.id, str(plan.reference_id)):
                return plan
        raise ApiError(404, "Evento não encontrado.")

    @staticmethod
    def _order(world: w.World, plan: EventPlan, order_id: str) -> OrderCore:
        decoded = _decode_order_id(order_id)
        if decoded is None or decoded[0] != plan.index or not 0 <= decoded[1] < plan.n_orders:
            raise ApiError(404, "Pedido não encontrado.")
        return _order_core(world, plan, decoded[1])

    @staticmethod
    def _pid_from_ticket(ticket_number: str) -> int:
        n = _unb36(ticket_number.replace("-", ""))
        if n is None:
            raise ApiError(404, "Participante não encontrado.")
        return ((n - _TICKET_ADD) * pow(_TICKET_MUL, -1, _TICKET_SPACE)) % _TICKET_SPACE

    def _one_participant(self, request: Request, world: w.World, plan: EventPlan, pid: int) -> Response:
        event, index, j = _decode_participant_id(pid)
        if pid < _PARTICIPANT_BASE or event != plan.index or not 0 <= index < plan.n_orders:
            raise ApiError(404, "Participante não encontrado.")
        core = _order_core(world, plan, index)
        if j >= core.n_participants or core.status not in self._statuses_for(request):
            raise ApiError(404, "Participante não encontrado.")
        record = self._participant_renderer(world, plan, _timezone(request))((core, j))
        return json_response({"data": _shape(record, request)})

    @staticmethod
    def _statuses_for(request: Request) -> tuple[str, ...]:
        mode = (request.arg("cancelled_filter") or "none").lower()
        if mode not in ("none", "include", "only"):
            raise ApiError(400, "cancelled_filter deve ser none, include ou only.")
        return {"none": ("approved",), "include": ("approved", "cancelled"), "only": ("cancelled",)}[mode]

    @staticmethod
    def _participant_renderer(world: w.World, plan: EventPlan,
                              tz: ZoneInfo) -> Callable[[tuple[OrderCore, int]], dict[str, Any]]:
        def render(item: tuple[OrderCore, int]) -> dict[str, Any]:
            core, j = item
            detail = _order_detail(world, plan, core)
            return _render_participant(plan, detail, _participant_detail(world, plan, detail, j), tz)
        return render

    # -- lists

    def _list_events(self, request: Request, ctx: SandboxContext) -> Response:
        field, desc = _sorting(request, ("id", "start_date", "end_date", "name"), "start_date")
        since = _bound(request, "from", SAO_PAULO, "00:00:00")
        plans = [p for p in _event_plans(ctx.world) if since is None or p.starts_at >= since]
        key: dict[str, Callable[[EventPlan], Any]] = {
            "id": lambda p: p.id, "start_date": lambda p: p.starts_at,
            "end_date": lambda p: p.ends_at, "name": lambda p: p.name,
        }
        plans.sort(key=key[field], reverse=desc)
        return self._paged(request, ctx, plans, _render_event, totals=False,
                           sort={"field_sort": field, "sort": "DESC" if desc else "ASC"})

    def _filtered_cores(self, request: Request, world: w.World, plan: EventPlan, tz: ZoneInfo,
                        statuses: tuple[str, ...]) -> list[OrderCore]:
        lo = _bound(request, "from", tz, "00:00:00")
        hi = _bound(request, "to", tz, "23:59:59")
        return [
            c for c in _event_index(world, plan.index)
            if c.status in statuses and (lo is None or c.created_at >= lo) and (hi is None or c.created_at <= hi)
        ]

    def _list_orders(self, request: Request, ctx: SandboxContext, plan: EventPlan) -> Response:
        world: w.World = ctx.world
        tz = _timezone(request)
        field, desc = _sorting(request, ("id", "order_date", "updated_date", "approved_date"), "order_date")
        all_statuses = (request.arg("status") or "false").lower() == "true"
        cores = self._filtered_cores(request, world, plan, tz,
                                     tuple(ORDER_STATUS) if all_statuses else ("approved",))
        buyer_email = (request.arg("buyer_email") or "").strip().lower()
        if buyer_email or field in ("updated_date", "approved_date"):
            details = [_order_detail(world, plan, c) for c in cores]
            if buyer_email:
                details = [d for d in details if d.buyer_email == buyer_email]
            if field == "updated_date":
                details.sort(key=lambda d: (d.updated_at, d.core.id), reverse=desc)
            elif field == "approved_date":
                far = datetime.max.replace(tzinfo=UTC)
                details.sort(key=lambda d: (d.approved_at or far, d.core.id), reverse=desc)
            else:
                details.sort(key=(lambda d: d.core.id) if field == "id" else (lambda d: d.core.created_at),
                             reverse=desc)
            return self._paged(request, ctx, details, lambda d: _render_order(plan, d, tz),
                               sort={"field_sort": field, "sort": "DESC" if desc else "ASC"})
        if field == "id":
            cores.sort(key=lambda c: c.id, reverse=desc)
        elif desc:
            cores.reverse()
        return self._paged(request, ctx, cores,
                           lambda c: _render_order(plan, _order_detail(world, plan, c), tz),
                           sort={"field_sort": field, "sort": "DESC" if desc else "ASC"})

    def _list_participants(self, request: Request, ctx: SandboxContext, plan: EventPlan) -> Response:
        world: w.World = ctx.world
        tz = _timezone(request)
        field, desc = _sorting(
            request,
            ("id", "order_id", "order_date", "order_updated_date", "order_approved_date", "check_in_date",
             "ticket_number", "ticket_num_qr_code"),
            "id",
        )
        cores = self._filtered_cores(request, world, plan, tz, self._statuses_for(request))
        items = [(c, j) for c in cores for j in range(c.n_participants)]
        render = self._participant_renderer(world, plan, tz)
        ticket_number = (request.arg("ticket_number") or "").strip().upper()
        email = (request.arg("participant_email") or "").strip().lower()
        if field == "id":
            items.sort(key=lambda it: _participant_id(*it), reverse=desc)
        elif field in ("order_id", "order_date"):
            def by_order(it: tuple[OrderCore, int]) -> tuple[Any, int]:
                return (it[0].id if field == "order_id" else it[0].created_at, _participant_id(*it))
            items.sort(key=by_order, reverse=desc)
        if ticket_number or email or field not in ("id", "order_id", "order_date"):
            # Rare paths: materialise this event's records (bounded by one event's size).
            records = [render(it) for it in items]
            if ticket_number:
                records = [r for r in records if r["ticket_number"] == ticket_number]
            if email:
                records = [r for r in records if r["email"] == email]
            if field not in ("id", "order_id", "order_date"):
                def by_field(r: dict[str, Any]) -> tuple[bool, str, int]:
                    value = r["checkin"]["check_in_date"] if field == "check_in_date" else r[field]
                    return (value is None, value or "", r["id"])
                records.sort(key=by_field, reverse=desc)
            return self._paged(request, ctx, records, lambda r: r,
                               sort={"field_sort": field, "sort": "DESC" if desc else "ASC"})
        return self._paged(request, ctx, items, render,
                           sort={"field_sort": field, "sort": "DESC" if desc else "ASC"})

    def _paged(self, request: Request, ctx: SandboxContext, items: list[Any],
               render: Callable[[Any], dict[str, Any]], sort: dict[str, str], totals: bool = True) -> Response:
        page = _int_arg(request, "page", 1)
        page_size = _int_arg(request, "page_size", DEFAULT_PAGE_SIZE)
        if not 1 <= page_size <= MAX_PAGE_SIZE:
            raise ApiError(400, f"O parâmetro page_size deve estar entre 1 e {MAX_PAGE_SIZE}.")
        if page < 1:
            raise ApiError(400, "O parâmetro page deve ser maior ou igual a 1.")
        start = (page - 1) * page_size
        chunk = items[start:start + page_size]
        if page >= 2 and chunk and ctx.faults.hit("repeat", f"{self.name} {request.key}"):
            chunk = items[start - 1:start] + chunk
        total = len(items)
        pagination: dict[str, Any] = {
            "has_next": start + page_size < total,
            "has_prev": page > 1,
            "quantity": len(chunk),
            "offset": start + 1,
            "page": page,
            "page_size": page_size,
        }
        if totals:
            pagination["total_records"] = total
            pagination["total_page"] = math.ceil(total / page_size)
        return json_response({
            "data": [_shape(render(item), request) for item in chunk],
            "sort": sort,
            "pagination": pagination,
        })
