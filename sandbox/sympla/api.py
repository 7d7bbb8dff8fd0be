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

Where the doc is silent the sandbox decides, and clients should not depend on more than this
(`render.py` lists the decisions about the records themselves):

- Errors use the doc's error schema `{"error": true, "code": <http status>, "message": ...}`:
  401 for a missing/wrong token, 400 for a bad parameter (page_size outside 1..200, bad date,
  unknown timezone), 404 for an unknown event / order / participant.
- `pagination.offset` is the 1-based position of the page's first record; `quantity` is the
  number of records on the page. Orders and participants also carry `total_records` and
  `total_page` (the events/presentations examples do not, so those lists omit them).
- Date-times are `YYYY-MM-DD HH:MM:SS` in the `timezone` parameter (default America/Sao_Paulo),
  which also interprets `from`/`to` (inclusive; `from` defaults to 00:00:00, `to` to 23:59:59).
  The participant endpoints honour `timezone` too.
- Nulls are omitted, recursively, unless `fields` is given (then the listed top-level fields are
  returned, nulls included), as the doc's introduction says.
- The `repeat` fault on page >= 2 prepends the previous page's last record to the page (nothing is
  lost, a record is duplicated), as an offset paginator shows when a record is inserted mid-scan.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sandbox import world as w
from sandbox.http import Provider, SandboxContext
from sandbox.messages import Request, Response, json_response
from sandbox.sympla.data import (
    _PARTICIPANT_BASE,
    SAO_PAULO,
    EventPlan,
    OrderCore,
    _decode_order_id,
    _decode_participant_id,
    _decode_ticket_number,
    _event_index,
    _event_plans,
    _order_core,
    _order_detail,
    _participant_detail,
    _participant_id,
)
from sandbox.sympla.render import (
    ORDER_STATUS,
    _drop_nulls,
    _render_event,
    _render_order,
    _render_participant,
    _render_presentation,
)

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 200


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

    @classmethod
    def env(cls, base_url: str) -> dict[str, str]:
        return {"SYMPLA_BASE_URL": base_url, "SYMPLA_TOKEN": w.SYMPLA_TOKEN}

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
        pid = _decode_ticket_number(ticket_number)
        if pid is None:
            raise ApiError(404, "Participante não encontrado.")
        return pid

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
