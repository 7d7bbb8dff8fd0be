"""Cymbio raw landing: catalog variants (snapshot), returns (by pull day, land-then-acknowledge)
with their lines as their own entity, and the order-line statuses of the returned orders."""

# No `from __future__ import annotations`: Dagster reads the types of an asset's parameters (its
# context, its resources) from the real annotations.
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

import dagster as dg
import pyarrow as pa

from assets.landing.checks import entity_checks
from assets.landing.convert import (
    RecordError,
    opt,
    req,
    to_bool,
    to_int,
    to_money_minor,
    to_req_int,
    to_str,
    to_str_list,
    ts_text,
)
from assets.landing.lander import EntityLander, EntityResult
from assets.landing.materialize import (
    asset_spec,
    column_schema,
    kinds,
    materialize_result,
    provider_configured,
    window_days,
)
from assets.landing.snapshot import land_snapshot
from resources import lake
from resources.cymbio import CymbioResource
from resources.entity import EntitySpec
from resources.errors import ProviderError
from resources.names import CYMBIO_RETURNS_POOL
from resources.partitions import daily_partitions
from resources.provider import Provider
from resources.warehouse import WarehouseResource

NAME = "cymbio"

TS = pa.timestamp("us", tz="UTC")
STR = pa.string()
I64 = pa.int64()

VARIANTS = EntitySpec(
    provider=NAME, entity="variants", snapshot=True, primary_key=("id",),
    money_minor_columns=("retail_price", "special_sale_price"),
    description="GET /v3/retailers/{id}/variants: the catalog when the snapshot was taken, landed under "
                "the day it was taken (UTC); past days keep their own snapshot. "
                "Prices are cents in `currency`.",
    columns=pa.schema([
        pa.field("id", I64, nullable=False),
        ("sku", STR),
        ("upc", STR),
        ("ean", STR),
        ("model", STR),
        ("title", STR),
        ("description", STR),
        ("currency", STR),
        ("supplier_id", I64),
        ("supplier_name", STR),
        ("retail_price", I64),
        ("special_sale_price", I64),
        ("special_sale_price_start", TS),
        ("special_sale_price_end", TS),
        ("available_inventory", I64),
        ("retailer_title", STR),
        ("options", pa.map_(STR, STR)),
        ("images", pa.list_(STR)),
    ]),
)

RETURNS = EntitySpec(
    provider=NAME, entity="returns", primary_key=("return_id",),
    description="GET .../returns?filter={\"status\":\"not_acknowledged\"}, landed under the day they "
                "were pulled, then acknowledged. Unique by return_id across all partitions.",
    columns=pa.schema([
        pa.field("return_id", I64, nullable=False),
        ("sales_order_number", STR),
        ("cymbio_order_id", I64),
        ("order_id_in_source", STR),
        ("order_po", STR),
        ("reason_code", STR),
        ("reason", STR),
        ("acknowledged", pa.bool_()),
        ("created_at", TS),
        ("updated_at", TS),
        ("line_count", I64),
    ]),
)

RETURN_LINES = EntitySpec(
    provider=NAME, entity="return_lines", primary_key=("return_id", "line_number"),
    description="returns[].returnLines, landed with their return.",
    columns=pa.schema([
        pa.field("return_id", I64, nullable=False),
        pa.field("line_number", I64, nullable=False),  # position in returnLines, from 1
        ("sku", STR),
        ("upc", STR),
        ("ordered_quantity", I64),
        ("returned_quantity", I64),
    ]),
)

SHIPMENTS = pa.list_(pa.struct([("quantity", I64), ("tracking_number", STR), ("shipping_carrier", STR)]))

ORDER_LINE_STATUSES = EntitySpec(
    provider=NAME, entity="order_line_statuses", primary_key=("cymbio_order_id", "line_number"),
    description="GET .../orders/order-line?cymbio_order_id= for every order referenced by the returns "
                "landed in the same partition: that day's status of each line.",
    columns=pa.schema([
        pa.field("cymbio_order_id", I64, nullable=False),
        pa.field("line_number", I64, nullable=False),  # position in orderLines, from 1
        ("order_po", STR),
        ("sales_order_number", STR),
        ("order_id_in_source", STR),
        ("order_created_at", TS),
        ("status", STR),
        ("quantity", I64),
        ("id_in_source", STR),
        ("sku", STR),
        ("model", STR),
        ("title", STR),
        ("upc", STR),
        ("ean", STR),
        ("shipped_quantity", I64),
        ("rejected_quantity", I64),
        ("shipments", SHIPMENTS),
    ]),
)


# --- record -> row --------------------------------------------------------------------------------


def _options(value: Any) -> list[tuple[str, str | None]] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise RecordError(f"options: expected an object, got {type(value).__name__}")
    # Option values are strings or numbers (size 10): kept as text, the way a shop shows them.
    return [(str(k), None if v is None else str(v)) for k, v in value.items()]


def convert_variant(rec: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": to_req_int(req(rec, "id"), "id"),
        "sku": to_str(rec.get("sku"), "sku"),
        "upc": to_str(rec.get("upc"), "upc"),
        "ean": to_str(rec.get("ean"), "ean"),
        "model": to_str(rec.get("model"), "model"),
        "title": to_str(rec.get("title"), "title"),
        "description": to_str(rec.get("description"), "description"),
        "currency": to_str(rec.get("currency"), "currency"),
        "supplier_id": to_int(rec.get("supplier_id"), "supplier_id"),
        "supplier_name": to_str(rec.get("supplier_name"), "supplier_name"),
        "retail_price": to_money_minor(rec.get("retail_price"), "retail_price"),
        "special_sale_price": to_money_minor(rec.get("special_sale_price"), "special_sale_price"),
        "special_sale_price_start": ts_text(rec.get("special_sale_price_start"), "special_sale_price_start"),
        "special_sale_price_end": ts_text(rec.get("special_sale_price_end"), "special_sale_price_end"),
        "available_inventory": to_int(rec.get("available_inventory"), "available_inventory"),
        "retailer_title": to_str(rec.get("retailer_title"), "retailer_title"),
        "options": _options(rec.get("options")),
        "images": to_str_list(rec.get("images"), "images"),
    }


def convert_return(rec: dict[str, Any]) -> dict[str, Any]:
    lines = req(rec, "returnLines")
    if not isinstance(lines, list):
        raise RecordError(f"returnLines: expected a list, got {type(lines).__name__}")
    return {
        "return_id": to_req_int(req(rec, "returnId"), "returnId"),
        "sales_order_number": to_str(rec.get("salesOrderNumber"), "salesOrderNumber"),
        "cymbio_order_id": to_int(rec.get("cymbioOrderId"), "cymbioOrderId"),
        "order_id_in_source": to_str(rec.get("orderIdInSource"), "orderIdInSource"),
        "order_po": to_str(req(rec, "orderPo"), "orderPo"),
        "reason_code": to_str(rec.get("reasonCode"), "reasonCode"),
        "reason": to_str(rec.get("reason"), "reason"),
        "acknowledged": to_bool(rec.get("acknowledged"), "acknowledged"),
        "created_at": ts_text(rec.get("createdAt"), "createdAt"),
        "updated_at": ts_text(rec.get("updatedAt"), "updatedAt"),
        "line_count": len(lines),
    }


def convert_return_line(item: tuple[dict[str, Any], int, dict[str, Any]]) -> dict[str, Any]:
    line, number, parent = item
    if not isinstance(line, dict):
        raise RecordError(f"returnLines[]: expected an object, got {type(line).__name__}")
    return {
        "return_id": to_req_int(req(parent, "returnId"), "returnId"),
        "line_number": number,
        "sku": to_str(req(line, "identifiers", "sku"), "identifiers.sku"),
        "upc": to_str(opt(line, "identifiers", "upc"), "identifiers.upc"),
        "ordered_quantity": to_int(req(line, "orderedQuantity"), "orderedQuantity"),
        "returned_quantity": to_int(req(line, "returnedQuantity"), "returnedQuantity"),
    }


def _quantity_sum(items: Any, name: str) -> int | None:
    if items is None:
        return None
    if not isinstance(items, list):
        raise RecordError(f"{name}: expected a list, got {type(items).__name__}")
    return sum(to_int(i.get("quantity"), f"{name}[].quantity") or 0 for i in items if isinstance(i, dict))


def convert_order_line(item: tuple[dict[str, Any], int, dict[str, Any]]) -> dict[str, Any]:
    line, number, order = item
    if not isinstance(line, dict):
        raise RecordError(f"orderLines[]: expected an object, got {type(line).__name__}")
    shipments = line.get("shipments")
    return {
        "cymbio_order_id": to_req_int(req(order, "cymbioOrderId"), "cymbioOrderId"),
        "line_number": number,
        "order_po": to_str(order.get("orderPo"), "orderPo"),
        "sales_order_number": to_str(order.get("salesOrderNumber"), "salesOrderNumber"),
        "order_id_in_source": to_str(order.get("orderIdInSource"), "orderIdInSource"),
        "order_created_at": ts_text(order.get("createdAt"), "createdAt"),
        "status": to_str(req(line, "status"), "status"),
        "quantity": to_int(line.get("quantity"), "quantity"),
        "id_in_source": to_str(line.get("id_in_source"), "id_in_source"),
        "sku": to_str(opt(line, "variant", "sku"), "variant.sku"),
        "model": to_str(opt(line, "variant", "model"), "variant.model"),
        "title": to_str(opt(line, "variant", "title"), "variant.title"),
        "upc": to_str(opt(line, "variant", "upc"), "variant.upc"),
        "ean": to_str(opt(line, "variant", "ean"), "variant.ean"),
        "shipped_quantity": _quantity_sum(shipments, "shipments"),
        "rejected_quantity": _quantity_sum(line.get("rejections"), "rejections"),
        "shipments": None if shipments is None else [
            {"quantity": to_int(sh.get("quantity"), "shipments[].quantity"),
             "tracking_number": to_str(sh.get("trackingNumber"), "shipments[].trackingNumber"),
             "shipping_carrier": to_str(sh.get("shippingCarrier"), "shipments[].shippingCarrier")}
            for sh in shipments if isinstance(sh, dict)
        ],
    }


# --- landing --------------------------------------------------------------------------------------


def land_variants(client: CymbioResource, days: list[date], root: Path | str | None = None,
                  loaded_at: datetime | None = None, today: date | None = None,
                  log: Callable[[str], None] | None = None) -> EntityResult:
    """The catalog as it is now, written under at most one day of the window (today, or the last
    day of a past window that has no snapshot yet); see `assets.landing.plan_snapshot`. A year-long
    backfill lands one catalog, not 365 copies of it."""
    return land_snapshot(VARIANTS, days, client.iter_variants, convert_variant, root, loaded_at, today, log)


@dataclass
class ReturnsOutcome:
    returns: EntityResult
    lines: EntityResult
    fetched: int = 0
    new: int = 0
    already_landed: int = 0
    acknowledged: list[int] = field(default_factory=list)


def _return_id(rec: Any) -> int | None:
    try:
        return to_req_int(rec.get("returnId"), "returnId") if isinstance(rec, dict) else None
    except RecordError:
        return None


RETURNS_LOCK = CYMBIO_RETURNS_POOL  # the lake lock; also the Dagster pool of the returns asset


def land_returns(client: CymbioResource, day: date, root: Path | str | None = None, loaded_at: datetime | None = None,
                 log: Callable[[str], None] | None = None) -> ReturnsOutcome:
    """Land the not-acknowledged returns under `day`, then acknowledge them.

    Why this order and these rules (DESIGN.md "Cymbio returns"):
    - The API serves a return until it is acknowledged and never again after, so the lake is the
      only copy: acknowledge only what is in a committed (fsynced + renamed) file.
    - A crash after the commit and before (or during) the acknowledgements means those returns
      come back next time: they are recognised by `returnId` in ANY landed partition, not landed
      twice, and acknowledged then.
    - The day's existing file is carried over into the new one, so re-running a past partition
      never drops returns the API will not serve again.
    - A return that does not fit the schema goes to quarantine and is NOT acknowledged: it stays
      on the API until the schema is fixed.
    - Everything from reading what is landed to the last acknowledgement happens under one lock in
      the lake, held across processes and runs. Without it, run B could read the day file, run A
      land and acknowledge r2, and B then replace the file with its stale copy plus what it
      fetched, which no longer includes r2: the only copy of r2 gone. The asset is also in the
      Dagster pool of the same name, so a second run queues in Dagster instead of in the kernel;
      the lock is what holds when something bypasses the pool (another instance, a script).
    """
    loaded_at = loaded_at or lake.utc_now()
    lake.pause_point("cymbio_returns.before_lock")
    with lake.lake_lock(RETURNS_LOCK, root):
        lake.pause_point("cymbio_returns.locked")
        return _land_returns_locked(client, day, root, loaded_at, log)


def _land_returns_locked(client: CymbioResource, day: date, root: Path | str | None, loaded_at: datetime,
                         log: Callable[[str], None] | None) -> ReturnsOutcome:
    landed = {int(v) for v in lake.iter_column(RETURNS, "return_id", root) if v is not None}
    landed_lines = {int(v) for v in lake.iter_column(RETURN_LINES, "return_id", root) if v is not None}
    returns = EntityLander(RETURNS, [day], loaded_at, root)
    lines = EntityLander(RETURN_LINES, [day], loaded_at, root)
    outcome = ReturnsOutcome(returns.result, lines.result)
    try:
        for table in lake.iter_partition_batches(RETURNS, day, root):
            returns.add_table(day, table)
        for table in lake.iter_partition_batches(RETURN_LINES, day, root):
            lines.add_table(day, table)
        lake.pause_point("cymbio_returns.after_read")
        fetched_ids: list[int] = []
        seen: set[int] = set()
        for page in client.iter_returns_not_acknowledged():
            fresh, line_items = [], []
            for rec in page:
                outcome.fetched += 1
                rid = _return_id(rec)
                if rid is not None:
                    fetched_ids.append(rid)
                if rid is not None and (rid in landed or rid in seen):
                    outcome.already_landed += 1
                    continue
                if rid is not None:
                    seen.add(rid)
                fresh.append(rec)
                if rid is not None and rid not in landed_lines and isinstance(rec.get("returnLines"), list):
                    line_items += [(ln, i, rec) for i, ln in enumerate(rec["returnLines"], start=1)]
            outcome.new += returns.add_page(fresh, convert_return, day)
            lines.add_page(line_items, convert_return_line, day, raw=lambda item: item[0])
        lake.pause_point("cymbio_returns.after_fetch")
        # Both written and fsynced before either is renamed. Lines first: once a return row is
        # landed, a re-run skips it, lines included.
        lines.prepare()
        returns.prepare()
        lines.commit()
        returns.commit()
    except BaseException:
        returns.abort()
        lines.abort()
        raise
    lake.crash_point("cymbio_returns.before_ack")  # a pause point too (resources/seams.py)
    # What is durably landed now: every earlier partition plus the file just committed.
    committed = {int(v) for v in (lake.read_partition(RETURNS, day, root, ["return_id"]) or
                                  RETURNS.schema.empty_table()).column("return_id").to_pylist()}
    durable = landed | committed
    for rid in dict.fromkeys(fetched_ids):
        if rid in durable:
            client.acknowledge_return(rid)
            outcome.acknowledged.append(rid)
            lake.crash_point("cymbio_returns.after_ack")
    if log:
        log(f"cymbio returns {day}: fetched {outcome.fetched}, new {outcome.new}, "
            f"already landed {outcome.already_landed}, acknowledged {len(outcome.acknowledged)}")
    return outcome


def land_order_line_statuses(client: CymbioResource, days: list[date], root: Path | str | None = None,
                             loaded_at: datetime | None = None) -> EntityResult:
    """Order-line statuses of the orders referenced by the returns landed on each day."""
    with EntityLander(ORDER_LINE_STATUSES, days, loaded_at, root) as lander:
        for day in days:
            returned = lake.read_partition(RETURNS, day, root, ["cymbio_order_id"])
            order_ids = sorted({v for v in returned.column(0).to_pylist() if v is not None}) if returned else []
            for order_id in order_ids:
                try:
                    order = client.get_order(order_id)
                except ProviderError as exc:
                    # One unreadable order must not hide the others: recorded, visible in the checks.
                    lander.quarantine(day, f"order-line fetch failed: {exc}"[:500], {"cymbio_order_id": order_id})
                    continue
                order_lines = order.get("orderLines") if isinstance(order, dict) else None
                if not isinstance(order_lines, list):
                    lander.quarantine(day, "orderLines: missing or not a list", order)
                    continue
                lander.add_page([(ln, i, order) for i, ln in enumerate(order_lines, start=1)],
                                convert_order_line, day, raw=lambda item: item[0])
        return lander.commit()


# --- assets ---------------------------------------------------------------------------------------


@dg.asset(
    name=VARIANTS.name, group_name=NAME, kinds=kinds(NAME), partitions_def=daily_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(), output_required=False,
    metadata={"dagster/column_schema": column_schema(VARIANTS), "primary_key": "id"},
)
def cymbio_variants(context: dg.AssetExecutionContext, cymbio: CymbioResource,
        warehouse: WarehouseResource) -> Iterator[dg.MaterializeResult]:
    """Cymbio catalog variants approved for this retailer: a snapshot, an observation of *now*.

    Written under today's partition (UTC) when today is in the window. A window of past days
    (a backfill) writes it under its last day only if that day has no snapshot yet, so the models
    still have the current catalog to join against. Every other day keeps what it holds: a catalog
    taken on its own day is never overwritten with today's, and a day without one gets no file (one
    log line says which and why). Metadata: `snapshot_written_to`, `snapshot_kept_days`; the row
    count is the rows written by this run."""
    if not provider_configured(context, cymbio, "variants"):
        return
    result = land_variants(cymbio, window_days(context), log=context.log.info)
    warehouse.publish(ENTITIES)
    yield materialize_result(result)


@dg.multi_asset(
    name="cymbio_returns_landing",
    specs=[asset_spec(RETURNS), asset_spec(RETURN_LINES)],
    partitions_def=daily_partitions,
    can_subset=False,
    # One returns pull at a time across runs (the instance's pool default limit is 1); the lake
    # lock in `land_returns` backs it up.
    pool=RETURNS_LOCK,
)
def cymbio_returns_assets(context: dg.AssetExecutionContext, cymbio: CymbioResource,
        warehouse: WarehouseResource) -> Iterator[dg.MaterializeResult]:
    """Cymbio returns not yet acknowledged, landed under the day they were pulled (the partition's
    last day), deduplicated by returnId across all partitions, then acknowledged one by one.
    Re-running a past partition merges into it and never drops what it already holds."""
    if not provider_configured(context, cymbio, "returns"):
        return
    outcome = land_returns(cymbio, window_days(context)[-1], log=context.log.info)
    warehouse.publish(ENTITIES)
    extra = {"fetched": outcome.fetched, "new_returns": outcome.new, "already_landed": outcome.already_landed,
             "acknowledged": len(outcome.acknowledged)}
    yield materialize_result(outcome.returns, extra)
    yield materialize_result(outcome.lines)


@dg.asset(
    name=ORDER_LINE_STATUSES.name, group_name=NAME, kinds=kinds(NAME), partitions_def=daily_partitions,
    deps=[RETURNS.name], output_required=False,
    metadata={"dagster/column_schema": column_schema(ORDER_LINE_STATUSES),
              "primary_key": "cymbio_order_id, line_number"},
)
def cymbio_order_line_statuses(context: dg.AssetExecutionContext, cymbio: CymbioResource,
        warehouse: WarehouseResource) -> Iterator[dg.MaterializeResult]:
    """Cymbio order-line statuses (shipped, rejected...) of every order referenced by the returns
    landed in the same partition, as of the run."""
    if not provider_configured(context, cymbio, "order-line statuses"):
        return
    result = land_order_line_statuses(cymbio, window_days(context))
    warehouse.publish(ENTITIES)
    yield materialize_result(result)


ENTITIES = (VARIANTS, RETURNS, RETURN_LINES, ORDER_LINE_STATUSES)

PROVIDER = Provider(
    name=NAME,
    resource=CymbioResource,
    entities=ENTITIES,
    assets=(cymbio_variants, cymbio_returns_assets, cymbio_order_line_statuses),
    checks=tuple(c for spec in ENTITIES for c in entity_checks(spec)),
    # Pulling returns acknowledges them at Cymbio: its own schedule, off by default. The order-line
    # statuses explain the returns of the same partition, so they run with them.
    roles={"returns": (RETURNS.name, RETURN_LINES.name, ORDER_LINE_STATUSES.name), "snapshot": (VARIANTS.name,)},
    watched=(VARIANTS.name,),
)
