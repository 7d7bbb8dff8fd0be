"""Sandbox for the Cymbio retailer API (provider-docs/001, DESIGN.md points 1 and 2).

Endpoints (below the `/cymbio` prefix):

- `POST /oauth/token`, form body `grant_type=client_credentials&client_id&client_secret&scope` ->
  `{"access_token", "token_type": "Bearer", "expires_in": 360}`. Wrong client -> 401 `invalid_client`;
  another grant type -> 400. Tokens live `token_ttl_seconds` (default 360, the doc's 6 minutes;
  `configure()` shortens it for tests). An unknown or expired bearer -> 401 `invalid_token`.
- `GET /v3/retailers/{id}/variants?service_type=ecommerce&limit=&offset=` -> a bare JSON array, as in the
  doc. `limit` defaults to 1000 and may not exceed 1000 (400 otherwise, never a silent clamp).
- `GET /v3/retailers/{id}/orders/order-line?cymbio_order_id=N` -> the doc's order object with
  `orderLines`; unknown order -> 404.
- `GET /v3/retailers/{id}/returns?filter={"status":"not_acknowledged","cymbio_order_id":N}&limit=&offset=`
  -> a bare array of return objects (doc shape: `returnId`, `cymbioOrderId`, `returnLines[].identifiers`...).
  Filter keys: `status` (`not_acknowledged` | `acknowledged`) and `cymbio_order_id`; any other key is 400.
  Same limit/offset rules as variants. Ordered by `returnId`.
- `PUT /v3/retailers/{id}/returns/{return_id}/acknowledge` and `.../return/{return_id}/acknowledge` ->
  `{"success": true}`, idempotent; unknown return -> 404.

A retailer id other than the client's (world.CYMBIO_RETAILER_ID) is 403: the credentials are valid but
do not grant that retailer.

Faults: `expire` rejects a valid token with 401 (and forgets it), but never on the token's first use,
so a client that re-authenticates once always gets through. `repeat` on a list page with offset > 0
prepends the record just before the offset (a duplicate, never a loss).
"""

from __future__ import annotations

import json
import math
import re
import secrets
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs

from sandbox import world as w
from sandbox.http import Provider, SandboxContext
from sandbox.messages import Request, Response, json_response

DEFAULT_TOKEN_TTL = 360
PAGE_LIMIT = 1000  # the doc's page size; also the maximum
VARIANTS_PER_SCALE = 300
SIZES = ("XS", "S", "M", "L", "XL")
ORDERS_PER_SCALE = 80
RETURNS_PER_SCALE = 25
FIRST_VARIANT_ID = 15000
FIRST_ORDER_ID = 39000
FIRST_RETURN_ID = 1700
PRE_ACKNOWLEDGED_RATE = 0.2
LINE_STATUSES = ("Rejected before acceptance", "In progress", "Partially shipped", "Shipped",
                 "Rejected by warehouse")
REASON_CODES = ("other", "damaged", "wrong_item", "too_small", "too_large", "not_as_described")
SUPPLIERS = ((1, "Backline Apparel", "USD"), (2, "Tour Press", "USD"), (3, "Stagewear Europe", "EUR"),
             (4, "Merch Lab UK", "GBP"))
PRODUCTS = (("Tour T-Shirt", "T-Shirt", 2500), ("Logo Hoodie", "Hoodie", 5500), ("Snapback Cap", "Cap", 2200),
            ("Tote Bag", "Bag", 1800), ("Long Sleeve Tee", "T-Shirt", 3200))
COLORS = (("Black", "BLK"), ("White", "WHT"), ("Rose Gold", "RGD"), ("Navy", "NVY"), ("Forest", "FST"))
FILTER_KEYS = ("status", "cymbio_order_id")
RETURN_STATUSES = ("not_acknowledged", "acknowledged")
_RETAILER_PATH = re.compile(r"^/v3/retailers/([^/]+)(/.*)$")
_ACK_PATH = re.compile(r"^/(?:returns|return)/([^/]+)/acknowledge$")


# --- deterministic data ------------------------------------------------------------------------------

def _ms_z(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def _upc(rng_digits: str) -> str:
    """A 12-digit UPC-A with a correct check digit."""
    digits = [int(c) for c in rng_digits[:11]]
    total = sum(d * (3 if i % 2 == 0 else 1) for i, d in enumerate(digits))
    return rng_digits[:11] + str((10 - total % 10) % 10)


def variant_count(world: w.World) -> int:
    return VARIANTS_PER_SCALE * world.scale


def variant(world: w.World, index: int) -> dict[str, Any]:
    """Variant `index` of the catalog, as the API returns it. Five sizes share one model."""
    model_idx, size = divmod(index, len(SIZES))
    mrng = world.rng("cymbio", "model", model_idx)
    title, kind, base_price = mrng.choice(PRODUCTS)
    color, color_code = mrng.choice(COLORS)
    supplier_id, supplier_name, currency = mrng.choice(SUPPLIERS)
    price = base_price + mrng.randint(0, 20) * 100
    year = str(world.anchor.year - mrng.randint(0, 2))
    season = mrng.choice(("SS", "FW"))
    model = f"MQ{model_idx:05d}-{color_code}"
    vrng = world.rng("cymbio", "variant", index)
    on_sale = vrng.random() < 0.15
    sale_start = world.anchor - timedelta(days=vrng.randint(1, 20))
    image = f"https://cdn.sandbox.invalid/cymbio/{supplier_name.replace(' ', '')}/{model}"
    return {
        "id": FIRST_VARIANT_ID + index,
        "sku": f"{model}-{SIZES[size]}",
        "upc": _upc(f"8{model_idx:06d}{size:02d}{vrng.randint(0, 99):02d}"),
        "ean": None,
        "options": {"size": SIZES[size], "color": color},
        "properties": {"type": [kind], "year": [year], "color": [color], "season": [season],
                       "category": [supplier_name]},
        "currency": currency,
        "supplier_id": supplier_id,
        "supplier_name": supplier_name,
        "retail_price": price,
        "model": model,
        "title": f"{title} {color}".upper(),
        "description": f"{title} in {color.lower()}, official tour merchandise.",
        "description_extra": "<ul><li>Official merchandise</li></ul>",
        "description_bullets": None,
        "images": [f"{image}-front.png", f"{image}-back.png"],
        "retailer_title": None,
        "retailer_description": None,
        "retailer_description_extra": None,
        "retailer_description_bullets": None,
        "special_sale_price": price * 8 // 10 if on_sale else None,
        "special_sale_price_start": sale_start.isoformat() if on_sale else None,
        "special_sale_price_end": (sale_start + timedelta(days=30)).isoformat() if on_sale else None,
        "available_inventory": vrng.choice((0, 0, *range(1, 200))),
        "square_images": [f"{image}-front-300.png"],
    }


def iter_variants(world: w.World) -> Iterator[dict[str, Any]]:
    for i in range(variant_count(world)):
        yield variant(world, i)


def order_count(world: w.World) -> int:
    return ORDERS_PER_SCALE * world.scale


def order(world: w.World, index: int) -> dict[str, Any]:
    """Merch order `index` with its line-level statuses, as `GET .../orders/order-line` returns it."""
    rng = world.rng("cymbio", "order", index)
    # Orders are old enough that their returns (created days later) still fall inside the history.
    span = (world.end - world.start - timedelta(days=12)).total_seconds()
    created = world.start + timedelta(seconds=rng.uniform(0, span))
    created = created.replace(microsecond=rng.randint(0, 999) * 1000)
    lines = []
    for _ in range(rng.randint(1, 3)):
        v = variant(world, rng.randrange(variant_count(world)))
        status = rng.choices(LINE_STATUSES, weights=(1, 2, 1, 6, 1))[0]
        # A partial shipment needs at least two units: some shipped, some rejected.
        quantity = rng.randint(2 if status == "Partially shipped" else 1, 4)
        line: dict[str, Any] = {"quantity": quantity, "id_in_source": None, "status": status}
        tracking = f"1Z{rng.randint(10**9, 10**10 - 1)}"
        if status == "Shipped":
            line["shipments"] = [{"quantity": quantity, "trackingNumber": tracking, "shippingCarrier": "ups"}]
        elif status == "Partially shipped":
            shipped = rng.randint(1, quantity - 1)
            line["shipments"] = [{"quantity": shipped, "trackingNumber": tracking, "shippingCarrier": "ups"}]
            line["rejections"] = [{"quantity": quantity - shipped}]
        elif status.startswith("Rejected"):
            line["rejections"] = [{"quantity": quantity}]
        line["variant"] = {k: v[k] for k in ("sku", "model", "title", "upc", "ean")}
        lines.append(line)
    return {
        "cymbioOrderId": FIRST_ORDER_ID + index,
        "orderPo": f"MQ-{index:06d}",
        "salesOrderNumber": f"mq-{index}" if rng.random() < 0.7 else None,
        "orderIdInSource": None,
        "createdAt": _ms_z(created),
        "orderLines": lines,
    }


def base_return_count(world: w.World) -> int:
    return RETURNS_PER_SCALE * world.scale


def return_record(world: w.World, index: int) -> dict[str, Any]:
    """Return `index` with `acknowledged` as it stands when the sandbox starts.

    Indices past `base_return_count` are the ones `add_returns` makes appear later: created near the
    end of the history and never acknowledged up front.
    """
    rng = world.rng("cymbio", "return", index)
    late = index >= base_return_count(world)
    o = order(world, rng.randrange(order_count(world)))
    created_order = datetime.fromisoformat(o["createdAt"])
    if late:
        created = world.end - timedelta(hours=1 + (index - base_return_count(world)) % 12, minutes=rng.randint(0, 59))
    else:
        created = created_order + timedelta(days=rng.randint(3, 10), minutes=rng.randint(0, 1439))
    created = created.replace(microsecond=rng.randint(0, 999) * 1000)
    updated = min(created + timedelta(hours=rng.randint(1, 48)), world.end - timedelta(milliseconds=1))
    shipped = [ln for ln in o["orderLines"] if ln.get("shipments")] or o["orderLines"][:1]
    return_lines = []
    for ln in rng.sample(shipped, rng.randint(1, len(shipped))):
        qty = ln["shipments"][0]["quantity"] if ln.get("shipments") else ln["quantity"]
        return_lines.append({
            "identifiers": {"sku": ln["variant"]["sku"], "upc": ln["variant"]["upc"]},
            "orderedQuantity": ln["quantity"],
            "returnedQuantity": rng.randint(1, qty),
        })
    reason_code = rng.choice(REASON_CODES)
    return {
        "returnId": FIRST_RETURN_ID + index,
        "salesOrderNumber": o["salesOrderNumber"],
        "cymbioOrderId": o["cymbioOrderId"],
        "orderIdInSource": None,
        "orderPo": o["orderPo"],
        "reasonCode": reason_code,
        "reason": None if reason_code != "other" else rng.choice((None, "Changed my mind", "Arrived late")),
        "acknowledged": _pre_acknowledged(world, index),
        "createdAt": _ms_z(created),
        "updatedAt": _ms_z(updated),
        "returnLines": return_lines,
    }


def _pre_acknowledged(world: w.World, index: int) -> bool:
    # Its own stream, so the starting acknowledgement set is cheap to compute without building returns.
    if index >= base_return_count(world):
        return False
    return world.rng("cymbio", "return-acknowledged", index).random() < PRE_ACKNOWLEDGED_RATE


def iter_returns(world: w.World, count: int | None = None) -> Iterator[dict[str, Any]]:
    for i in range(base_return_count(world) if count is None else count):
        yield return_record(world, i)


# --- mutable state -----------------------------------------------------------------------------------

def _state(ctx: SandboxContext) -> dict[str, Any]:
    st = ctx.state.get("cymbio")
    if st is not None:
        return st
    base = base_return_count(ctx.world)
    fresh = {
        "token_ttl_seconds": DEFAULT_TOKEN_TTL,
        "tokens": {},  # access_token -> {"expires_at": monotonic seconds, "uses": int}
        "acknowledged": {FIRST_RETURN_ID + i for i in range(base) if _pre_acknowledged(ctx.world, i)},
        "return_count": base,  # grows with add_returns
        "returns": None,  # built on first use: costly at large scales, and token calls never need it
    }
    with ctx.lock:
        return ctx.state.setdefault("cymbio", fresh)


def _returns_list(ctx: SandboxContext) -> list[dict[str, Any]]:
    st = _state(ctx)
    if st["returns"] is None:
        # Generated outside the lock (it is shared with every request's counter); a racing duplicate is harmless.
        built = list(iter_returns(ctx.world))
        with ctx.lock:
            if st["returns"] is None:
                st["returns"] = built
    return st["returns"]


def configure(ctx: SandboxContext, token_ttl_seconds: float | None = None) -> None:
    """Test hook: change how long newly issued tokens live."""
    st = _state(ctx)
    with ctx.lock:
        if token_ttl_seconds is not None:
            st["token_ttl_seconds"] = token_ttl_seconds


def add_returns(ctx: SandboxContext, n: int) -> list[int]:
    """Make `n` new, not-acknowledged returns appear (as if the brands processed more); their ids."""
    st = _state(ctx)
    returns = _returns_list(ctx)
    with ctx.lock:
        first = st["return_count"]
        new = [return_record(ctx.world, i) for i in range(first, first + n)]
        returns.extend(new)
        st["return_count"] += n
    return [r["returnId"] for r in new]


def current_returns(ctx: SandboxContext) -> list[dict[str, Any]]:
    """Every return the API knows now, with `acknowledged` reflecting acknowledgements received."""
    st = _state(ctx)
    returns = _returns_list(ctx)
    with ctx.lock:
        records = list(returns)
        acked = set(st["acknowledged"])
    return [{**r, "acknowledged": r["returnId"] in acked} for r in records]


# --- HTTP --------------------------------------------------------------------------------------------

def _error(status: int, message: str, code: str | None = None) -> Response:
    body: dict[str, Any] = {"success": False, "message": message}
    if code:
        body["error"] = code
    return json_response(body, status)


def _page_args(request: Request) -> tuple[int, int] | Response:
    try:
        limit = int(request.arg("limit") or PAGE_LIMIT)
        offset = int(request.arg("offset") or 0)
    except ValueError:
        return _error(400, "limit and offset must be integers")
    if not 1 <= limit <= PAGE_LIMIT:
        return _error(400, f"limit must be between 1 and {PAGE_LIMIT}")
    if offset < 0:
        return _error(400, "offset must be >= 0")
    return limit, offset


class CymbioSandbox(Provider):
    name = "cymbio"

    @classmethod
    def env(cls, base_url: str) -> dict[str, str]:
        return {
            "CYMBIO_BASE_URL": base_url,
            "CYMBIO_CLIENT_ID": w.CYMBIO_CLIENT_ID,
            "CYMBIO_CLIENT_SECRET": w.CYMBIO_CLIENT_SECRET,
            "CYMBIO_RETAILER_ID": w.CYMBIO_RETAILER_ID,
        }

    def error(self, status: int, message: str) -> Response:
        return _error(status, message, "too_many_requests" if status == 429 else None)

    def handle(self, request: Request, ctx: SandboxContext) -> Response:
        if request.path == "/oauth/token":
            if request.method != "POST":
                return _error(405, "use POST /oauth/token")
            return self._token(request, ctx)
        match = _RETAILER_PATH.match(request.path)
        if not match:
            return _error(404, f"no such endpoint: {request.path}")
        denied = self._authenticate(request, ctx)
        if denied is not None:
            return denied
        retailer_id, rest = match.groups()
        if retailer_id != w.CYMBIO_RETAILER_ID:
            return _error(403, f"these credentials do not grant access to retailer {retailer_id}")
        if request.method == "GET" and rest == "/variants":
            return self._variants(request, ctx)
        if request.method == "GET" and rest == "/orders/order-line":
            return self._order_lines(request, ctx)
        if request.method == "GET" and rest == "/returns":
            return self._returns(request, ctx)
        ack = _ACK_PATH.match(rest)
        if ack and request.method == "PUT":
            return self._acknowledge(ack.group(1), ctx)
        return _error(404, f"no such endpoint: {request.method} {request.path}")

    def _token(self, request: Request, ctx: SandboxContext) -> Response:
        form = {k: v[-1] for k, v in parse_qs(request.body.decode("utf-8", "replace")).items()}
        if form.get("grant_type") != "client_credentials":
            return json_response({"error": "unsupported_grant_type",
                                  "message": "grant_type must be client_credentials"}, 400)
        if form.get("client_id") != w.CYMBIO_CLIENT_ID or form.get("client_secret") != w.CYMBIO_CLIENT_SECRET:
            return json_response({"error": "invalid_client", "message": "client authentication failed"}, 401)
        st = _state(ctx)
        token = secrets.token_urlsafe(24)
        with ctx.lock:
            ttl = st["token_ttl_seconds"]
            st["tokens"][token] = {"expires_at": time.monotonic() + ttl, "uses": 0}
        return json_response({"access_token": token, "token_type": "Bearer", "expires_in": math.ceil(ttl)})

    def _authenticate(self, request: Request, ctx: SandboxContext) -> Response | None:
        token = request.bearer()
        if not token:
            return json_response({"error": "invalid_token", "message": "missing Bearer access token"}, 401)
        st = _state(ctx)
        with ctx.lock:
            info = st["tokens"].get(token)
            if info is not None and info["expires_at"] <= time.monotonic():
                del st["tokens"][token]
                info = None
            used_before = info is not None and info["uses"] > 0
            if info is not None:
                info["uses"] += 1
        if info is None:
            return json_response({"error": "invalid_token", "message": "access token is invalid or expired"}, 401)
        # Never on a token's first use: a client that re-authenticates once must get through.
        if used_before and ctx.faults.hit("expire", f"cymbio {request.key}"):
            with ctx.lock:
                st["tokens"].pop(token, None)
            return json_response({"error": "invalid_token", "message": "access token is invalid or expired"}, 401)
        return None

    def _page(self, request: Request, ctx: SandboxContext, total: int, fetch: Callable[[int], Any],
              offset: int, limit: int) -> list[Any]:
        indices = list(range(offset, min(offset + limit, total)))
        if offset > 0 and offset <= total and ctx.faults.hit("repeat", f"cymbio {request.key}"):
            indices.insert(0, offset - 1)
        return [fetch(i) for i in indices]

    def _variants(self, request: Request, ctx: SandboxContext) -> Response:
        paging = _page_args(request)
        if isinstance(paging, Response):
            return paging
        limit, offset = paging
        service_type = request.arg("service_type")
        if service_type not in (None, "", "ecommerce"):
            return json_response([])  # every sandbox variant is an ecommerce listing
        total = variant_count(ctx.world)
        return json_response(self._page(request, ctx, total, lambda i: variant(ctx.world, i), offset, limit))

    def _order_lines(self, request: Request, ctx: SandboxContext) -> Response:
        raw = request.arg("cymbio_order_id")
        if not raw:
            return _error(400, "cymbio_order_id is required")
        try:
            order_id = int(raw)
        except ValueError:
            return _error(400, "cymbio_order_id must be a number")
        index = order_id - FIRST_ORDER_ID
        if not 0 <= index < order_count(ctx.world):
            return _error(404, f"order {order_id} not found")
        return json_response(order(ctx.world, index))

    def _returns(self, request: Request, ctx: SandboxContext) -> Response:
        paging = _page_args(request)
        if isinstance(paging, Response):
            return paging
        limit, offset = paging
        raw = request.arg("filter")
        flt: dict[str, Any] = {}
        if raw:
            try:
                flt = json.loads(raw)
            except ValueError:
                return _error(400, "filter must be URL-encoded JSON, e.g. {\"status\":\"not_acknowledged\"}")
            if not isinstance(flt, dict):
                return _error(400, "filter must be a JSON object")
            unknown = sorted(set(flt) - set(FILTER_KEYS))
            if unknown:
                return _error(400, f"unknown filter key(s): {', '.join(unknown)}")
        status = flt.get("status")
        if status is not None and status not in RETURN_STATUSES:
            return _error(400, f"filter status must be one of {', '.join(RETURN_STATUSES)}")
        order_filter = flt.get("cymbio_order_id")
        if order_filter is not None:
            try:
                order_filter = int(order_filter)
            except (TypeError, ValueError):
                return _error(400, "filter cymbio_order_id must be a number")
        matching = [
            r for r in current_returns(ctx)
            if (status is None or r["acknowledged"] == (status == "acknowledged"))
            and (order_filter is None or r["cymbioOrderId"] == order_filter)
        ]
        return json_response(self._page(request, ctx, len(matching), matching.__getitem__, offset, limit))

    def _acknowledge(self, raw_id: str, ctx: SandboxContext) -> Response:
        st = _state(ctx)
        try:
            return_id = int(raw_id)
        except ValueError:
            return _error(404, f"return {raw_id} not found")
        with ctx.lock:
            if not 0 <= return_id - FIRST_RETURN_ID < st["return_count"]:
                return _error(404, f"return {return_id} not found")
            st["acknowledged"].add(return_id)
        return json_response({"success": True})
