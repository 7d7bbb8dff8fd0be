"""Ticket Tailor's HTTP surface: `GET /v1/events`, `/v1/orders`, `/v1/issued_tickets` and the
single-object reads, with the doc's filters, cursor pagination, hourly rate limit and error body.

Filters: `created_at` (and `.gt/.gte/.lt/.lte`) is a binary search over order indices, since
`created_at` never decreases with the index; `event_id` reads the per-event index. A `status` or
`referral_tag` filter is checked record by record, so a rare value scans many orders per page at
large scale.

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
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import numpy as np

from sandbox import world as w
from sandbox.http import Provider, SandboxContext
from sandbox.messages import Request, Response, json_response
from sandbox.tickettailor.data import PROVIDER, _created_at, _events, _index, _skeleton, n_orders
from sandbox.tickettailor.render import _event_json, _order

DEFAULT_HOURLY_LIMIT = 2000  # the doc: "up to 2000 requests per hour"
MAX_LIMIT = 100

_ERRORS = {
    400: ("Bad Request", "The request was invalid, often due to a missing a required parameter."),
    401: ("Unauthorized", "Your request was not authenticated correctly."),
    404: ("Not Found", "The requested resource does not exist."),
    405: ("Method Not Allowed", "The sandbox serves only GET on this resource."),
    429: ("Too Many Requests", "Too many requests hit the API too quickly."),
}


class _BadRequest(Exception):
    pass


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

    @classmethod
    def env(cls, base_url: str) -> dict[str, str]:
        return {"TICKETTAILOR_BASE_URL": base_url, "TICKETTAILOR_API_KEY": w.TICKETTAILOR_API_KEY}

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

