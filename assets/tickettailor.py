"""Ticket Tailor raw landing: events (snapshot), orders (by creation date) with their line items and
issued tickets as their own entities, and issued tickets by event start date."""

# No `from __future__ import annotations`: Dagster reads the types of an asset's parameters (its
# context, its resources) from the real annotations.
from collections.abc import Callable, Iterator
from datetime import date, datetime
from pathlib import Path
from typing import Any

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc

from assets.landing.checks import entity_checks
from assets.landing.convert import (
    RecordError,
    child_list,
    opt,
    questions,
    req,
    to_bool,
    to_id,
    to_int,
    to_money_minor,
    to_str,
    ts_unix,
    utc_day,
)
from assets.landing.lander import EntityLander, EntityResult, merge_results
from assets.landing.materialize import (
    Figures,
    asset_spec,
    column_schema,
    kinds,
    materialize_result,
    minor_units_by_currency,
    provider_configured,
    window_days,
)
from assets.landing.snapshot import land_snapshot
from resources import lake
from resources.entity import EntitySpec
from resources.lake import utc_now
from resources.partitions import daily_partitions, window_bounds
from resources.provider import Provider
from resources.tickettailor import TicketTailorResource
from resources.warehouse import WarehouseResource

NAME = "tickettailor"

TS = pa.timestamp("us", tz="UTC")
STR = pa.string()
I64 = pa.int64()
QUESTIONS = pa.list_(pa.struct([("question", STR), ("answer", STR)]))

# --- schemas (column names are a public interface for dbt staging: extend, never rename) ----------

EVENTS = EntitySpec(
    provider=NAME, entity="events", snapshot=True, primary_key=("id",),
    description="GET /v1/events, the state of every event when the snapshot was taken, landed under the "
                "day it was taken (UTC); past days keep their own snapshot.",
    columns=pa.schema([
        pa.field("id", STR, nullable=False),
        ("name", STR),
        ("status", STR),
        ("currency", STR),  # as sent, lower case (e.g. "gbp")
        ("created_at", TS),
        ("start_at", TS),  # start.unix
        ("end_at", TS),  # end.unix
        ("start_iso", STR),  # start.iso: the local start with its offset, as sent
        ("end_iso", STR),
        ("start_date_local", STR),  # start.date
        ("start_time_local", STR),  # start.time
        ("timezone", STR),
        ("event_series_id", STR),
        ("call_to_action", STR),
        ("description", STR),
        ("access_code", STR),
        ("url", STR),
        ("venue_name", STR),
        ("venue_postal_code", STR),
        ("hidden", pa.bool_()),
        ("online_event", pa.bool_()),
        ("private", pa.bool_()),
        ("tickets_available", pa.bool_()),
        ("unavailable", pa.bool_()),
        ("unavailable_status", STR),
        ("total_holds", I64),
        ("total_issued_tickets", I64),
        ("total_orders", I64),
    ]),
)

ORDERS = EntitySpec(
    provider=NAME, entity="orders", primary_key=("id",),
    money_minor_columns=("total", "subtotal", "tax", "total_paid", "refund_amount"),
    description="GET /v1/orders by created_at day (UTC). Amounts are minor units as sent.",
    columns=pa.schema([
        pa.field("id", STR, nullable=False),
        ("event_id", STR),  # event_summary.id
        ("event_name", STR),
        ("event_start_at", TS),  # event_summary.start_date.unix
        ("event_start_iso", STR),
        ("status", STR),
        ("status_message", STR),
        ("currency", STR),  # currency.code, as sent (lower case)
        ("currency_base_multiplier", I64),
        ("total", I64),
        ("subtotal", I64),
        ("tax", I64),
        ("total_paid", I64),
        ("refund_amount", I64),
        ("created_at", TS),
        ("referral_tag", STR),
        ("txn_id", STR),
        ("buyer_email", STR),
        ("buyer_first_name", STR),
        ("buyer_last_name", STR),
        ("buyer_name", STR),
        ("buyer_phone", STR),
        ("buyer_postal_code", STR),
        ("buyer_custom_questions", QUESTIONS),
        ("payment_method_type", STR),
        ("payment_method_id", STR),
        ("line_item_count", I64),
        ("issued_ticket_count", I64),
    ]),
)

ORDER_LINE_ITEMS = EntitySpec(
    provider=NAME, entity="order_line_items", primary_key=("id",),
    money_minor_columns=("booking_fee", "total", "value"),
    description="orders[].line_items, landed under the order's creation day.",
    columns=pa.schema([
        pa.field("id", STR, nullable=False),
        pa.field("order_id", STR, nullable=False),
        ("order_created_at", TS),
        ("type", STR),
        ("description", STR),
        ("quantity", I64),
        ("booking_fee", I64),
        ("value", I64),
        ("total", I64),
    ]),
)

_ISSUED_TICKET_COLUMNS = [
    pa.field("id", STR, nullable=False),
    ("order_id", STR),
    ("event_id", STR),
    ("ticket_type_id", STR),
    ("status", STR),
    ("checked_in", pa.bool_()),  # the API's "true"/"false" string, parsed
    ("barcode", STR),
    ("description", STR),
    ("email", STR),
    ("full_name", STR),
    ("first_name", STR),
    ("last_name", STR),
    ("reference", STR),
    ("reservation", STR),
    ("source", STR),
    ("created_at", TS),
    ("updated_at", TS),
    ("voided_at", TS),
    ("custom_questions", QUESTIONS),
]

ORDER_ISSUED_TICKETS = EntitySpec(
    provider=NAME, entity="order_issued_tickets", primary_key=("id",),
    description="orders[].issued_tickets, landed under the order's creation day.",
    columns=pa.schema([*_ISSUED_TICKET_COLUMNS, ("order_created_at", TS)]),
)

ISSUED_TICKETS = EntitySpec(
    provider=NAME, entity="issued_tickets", primary_key=("id",),
    description="GET /v1/issued_tickets?event_id=, landed under the event's start day (UTC).",
    columns=pa.schema([*_ISSUED_TICKET_COLUMNS, ("event_start_at", TS)]),
)


# --- record -> row --------------------------------------------------------------------------------


def convert_event(rec: dict[str, Any]) -> dict[str, Any]:
    start = req(rec, "start")
    end = opt(rec, "end")
    return {
        "id": to_id(req(rec, "id"), "id"),
        "name": to_str(rec.get("name"), "name"),
        "status": to_str(rec.get("status"), "status"),
        "currency": to_str(rec.get("currency"), "currency"),
        "created_at": ts_unix(rec.get("created_at"), "created_at"),
        "start_at": ts_unix(req(start, "unix"), "start.unix"),
        "end_at": ts_unix(opt(end, "unix"), "end.unix"),
        "start_iso": to_str(opt(start, "iso"), "start.iso"),
        "end_iso": to_str(opt(end, "iso"), "end.iso"),
        "start_date_local": to_str(opt(start, "date"), "start.date"),
        "start_time_local": to_str(opt(start, "time"), "start.time"),
        "timezone": to_str(rec.get("timezone"), "timezone"),
        "event_series_id": to_str(rec.get("event_series_id"), "event_series_id"),
        "call_to_action": to_str(rec.get("call_to_action"), "call_to_action"),
        "description": to_str(rec.get("description"), "description"),
        "access_code": to_str(rec.get("access_code"), "access_code"),
        "url": to_str(rec.get("url"), "url"),
        "venue_name": to_str(opt(rec, "venue", "name"), "venue.name"),
        "venue_postal_code": to_str(opt(rec, "venue", "postal_code"), "venue.postal_code"),
        "hidden": to_bool(rec.get("hidden"), "hidden"),
        "online_event": to_bool(rec.get("online_event"), "online_event"),
        "private": to_bool(rec.get("private"), "private"),
        "tickets_available": to_bool(rec.get("tickets_available"), "tickets_available"),
        "unavailable": to_bool(rec.get("unavailable"), "unavailable"),
        "unavailable_status": to_str(rec.get("unavailable_status"), "unavailable_status"),
        "total_holds": to_int(rec.get("total_holds"), "total_holds"),
        "total_issued_tickets": to_int(rec.get("total_issued_tickets"), "total_issued_tickets"),
        "total_orders": to_int(rec.get("total_orders"), "total_orders"),
    }


def convert_order(rec: dict[str, Any]) -> dict[str, Any]:
    summary = opt(rec, "event_summary")
    buyer = opt(rec, "buyer_details")
    # An order whose children are not a list is malformed as a whole: quarantined, children and all,
    # rather than landed with its line items silently missing.
    line_items = child_list(rec, "line_items")
    tickets = child_list(rec, "issued_tickets")
    return {
        "id": to_id(req(rec, "id"), "id"),
        "event_id": to_str(opt(summary, "id"), "event_summary.id"),
        "event_name": to_str(opt(summary, "name"), "event_summary.name"),
        "event_start_at": ts_unix(opt(summary, "start_date", "unix"), "event_summary.start_date.unix"),
        "event_start_iso": to_str(opt(summary, "start_date", "iso"), "event_summary.start_date.iso"),
        "status": to_str(req(rec, "status"), "status"),
        "status_message": to_str(rec.get("status_message"), "status_message"),
        "currency": to_str(req(rec, "currency", "code"), "currency.code"),
        "currency_base_multiplier": to_int(opt(rec, "currency", "base_multiplier"), "currency.base_multiplier"),
        "total": to_money_minor(req(rec, "total"), "total"),
        "subtotal": to_money_minor(rec.get("subtotal"), "subtotal"),
        "tax": to_money_minor(rec.get("tax"), "tax"),
        "total_paid": to_money_minor(rec.get("total_paid"), "total_paid"),
        "refund_amount": to_money_minor(rec.get("refund_amount"), "refund_amount"),
        "created_at": ts_unix(req(rec, "created_at"), "created_at"),
        "referral_tag": to_str(rec.get("referral_tag"), "referral_tag"),
        "txn_id": to_str(rec.get("txn_id"), "txn_id"),
        "buyer_email": to_str(opt(buyer, "email"), "buyer_details.email"),
        "buyer_first_name": to_str(opt(buyer, "first_name"), "buyer_details.first_name"),
        "buyer_last_name": to_str(opt(buyer, "last_name"), "buyer_details.last_name"),
        "buyer_name": to_str(opt(buyer, "name"), "buyer_details.name"),
        "buyer_phone": to_str(opt(buyer, "phone"), "buyer_details.phone"),
        "buyer_postal_code": to_str(opt(buyer, "address", "postal_code"), "buyer_details.address.postal_code"),
        "buyer_custom_questions": questions(opt(buyer, "custom_questions"), "buyer_details.custom_questions"),
        "payment_method_type": to_str(opt(rec, "payment_method", "type"), "payment_method.type"),
        "payment_method_id": to_str(opt(rec, "payment_method", "id"), "payment_method.id"),
        "line_item_count": len(line_items) if line_items is not None else None,
        "issued_ticket_count": len(tickets) if tickets is not None else None,
    }


def convert_line_item(pair: tuple[dict[str, Any], dict[str, Any]]) -> dict[str, Any]:
    item, order = pair
    if not isinstance(item, dict):
        raise RecordError(f"line_items[]: expected an object, got {type(item).__name__}")
    return {
        "id": to_id(req(item, "id"), "line_items[].id"),
        "order_id": to_id(req(order, "id"), "id"),
        "order_created_at": ts_unix(req(order, "created_at"), "created_at"),
        "type": to_str(item.get("type"), "type"),
        "description": to_str(item.get("description"), "description"),
        "quantity": to_int(item.get("quantity"), "quantity"),
        "booking_fee": to_money_minor(item.get("booking_fee"), "booking_fee"),
        "value": to_money_minor(item.get("value"), "value"),
        "total": to_money_minor(item.get("total"), "total"),
    }


def _issued_ticket(rec: dict[str, Any]) -> dict[str, Any]:
    if not isinstance(rec, dict):
        raise RecordError(f"issued ticket: expected an object, got {type(rec).__name__}")
    return {
        "id": to_id(req(rec, "id"), "id"),
        "order_id": to_str(rec.get("order_id"), "order_id"),
        "event_id": to_str(rec.get("event_id"), "event_id"),
        "ticket_type_id": to_str(rec.get("ticket_type_id"), "ticket_type_id"),
        "status": to_str(req(rec, "status"), "status"),
        "checked_in": to_bool(rec.get("checked_in"), "checked_in"),
        "barcode": to_str(rec.get("barcode"), "barcode"),
        "description": to_str(rec.get("description"), "description"),
        "email": to_str(rec.get("email"), "email"),
        "full_name": to_str(rec.get("full_name"), "full_name"),
        "first_name": to_str(rec.get("first_name"), "first_name"),
        "last_name": to_str(rec.get("last_name"), "last_name"),
        "reference": to_str(rec.get("reference"), "reference"),
        "reservation": to_str(rec.get("reservation"), "reservation"),
        "source": to_str(rec.get("source"), "source"),
        "created_at": ts_unix(rec.get("created_at"), "created_at"),
        "updated_at": ts_unix(rec.get("updated_at"), "updated_at"),
        "voided_at": ts_unix(rec.get("voided_at"), "voided_at"),
        "custom_questions": questions(rec.get("custom_questions"), "custom_questions"),
    }


def convert_order_issued_ticket(pair: tuple[dict[str, Any], dict[str, Any]]) -> dict[str, Any]:
    ticket, order = pair
    row = _issued_ticket(ticket)
    row["order_created_at"] = ts_unix(req(order, "created_at"), "created_at")
    return row


def convert_issued_ticket(pair: tuple[dict[str, Any], datetime]) -> dict[str, Any]:
    ticket, event_start = pair
    row = _issued_ticket(ticket)
    row["event_start_at"] = event_start
    return row


def _children(page: list[Any], key: str) -> list[tuple[Any, dict[str, Any]]]:
    # A `key` that is not a list (`line_items: 5`) fans out nothing: `convert_order` quarantines the
    # order itself with the reason, so nothing is lost and nothing half-lands.
    return [(child, order) for order in page if isinstance(order, dict) and isinstance(order.get(key), list)
            for child in order[key]]


# --- figures the UI plots ------------------------------------------------------------------------

# The revenue rule of marts.revenue (dbt_project/models/intermediate/int_orders.sql): an order counts
# when its status, lower-cased, is `completed`; pending and cancelled orders do not, so a cancelled
# order's refund is not a refund of revenue either. The figures follow it so that, for the same
# days, they equal what marts.revenue reports.
REVENUE_STATUS = "completed"


def order_figures(orders: pa.Table) -> dict[str, dg.MetadataValue]:
    """The orders figures (see ORDER_FIGURES) of landed Ticket Tailor order rows."""
    revenue = orders.filter(pc.equal(pc.utf8_lower(orders["status"]), REVENUE_STATUS))
    refunded = pc.greater(pc.fill_null(revenue["refund_amount"], 0), 0)
    return {
        "orders": dg.MetadataValue.int(revenue.num_rows),
        "refunds": dg.MetadataValue.int(int(pc.sum(refunded, min_count=0).as_py())),
        **minor_units_by_currency(revenue, "total", "currency", "gross_cents"),
        **minor_units_by_currency(revenue, "refund_amount", "currency", "refunded_cents"),
    }


ORDER_FIGURES = Figures(
    columns=("status", "currency", "total", "refund_amount"),
    compute=order_figures,
    description="Figures plotted per partition, each over the orders created on that UTC day (a run over "
                "several days puts each day's on its own partition), counting only orders with status "
                "`completed`, the revenue rule of marts.revenue (pending and cancelled orders are in the row "
                "count only): `orders`, how many; `gross_cents <CUR>`, the sum of their `total` per currency "
                "(ISO code, minor units, never added across currencies); `refunded_cents <CUR>`, the sum of "
                "their `refund_amount`; `refunds`, how many of them have a refund amount above zero (refunds "
                "per day, by the day the order was created, not the day of the refund).",
)


# --- landing (plain functions: the assets, the crash tests and the benchmark call these) ----------


def land_orders(client: TicketTailorResource, days: list[date], root: Path | str | None = None,
                loaded_at: datetime | None = None) -> dict[str, EntityResult]:
    """Orders created on each day, one day at a time (each day committed before the next is fetched),
    with their line items and issued tickets landed as their own entities under the same day."""
    loaded_at = loaded_at or utc_now()
    per_entity: dict[str, list[EntityResult]] = {s.name: [] for s in (ORDERS, ORDER_LINE_ITEMS, ORDER_ISSUED_TICKETS)}
    for day in days:
        start, end = window_bounds(day, day)
        budget = lake.BufferBudget()  # the three fill from the same pages: one bound for their buffers
        landers = [EntityLander(s, [day], loaded_at, root, budget=budget)
                   for s in (ORDERS, ORDER_LINE_ITEMS, ORDER_ISSUED_TICKETS)]
        orders, items, tickets = landers
        try:
            for page in client.iter_orders(start, end):
                orders.add_page(page, convert_order, lambda row: utc_day(row["created_at"]))
                items.add_page(_children(page, "line_items"), convert_line_item,
                               lambda row: utc_day(row["order_created_at"]), raw=lambda p: p[0])
                tickets.add_page(_children(page, "issued_tickets"), convert_order_issued_ticket,
                                 lambda row: utc_day(row["order_created_at"]), raw=lambda p: p[0])
            # All three written and fsynced before any rename, so a crash can leave the day mixed
            # only between three renames. Children first: the orders file is the one a reader
            # checks for "day landed".
            for lander in landers:
                lander.prepare()
            for lander in (items, tickets, orders):
                per_entity[lander.spec.name].append(lander.commit())
        except BaseException:
            for lander in landers:
                lander.abort()
            raise
    return {name: merge_results(results) for name, results in per_entity.items()}  # type: ignore[misc]


def land_events(client: TicketTailorResource, days: list[date], root: Path | str | None = None,
                loaded_at: datetime | None = None, today: date | None = None,
                log: Callable[[str], None] | None = None) -> EntityResult:
    """The events as they are now, written under at most one day of the window (today, or the
    last day of a past window that has no snapshot yet); see `assets.landing.plan_snapshot`."""
    return land_snapshot(EVENTS, days, client.iter_events, convert_event, root, loaded_at, today, log)


def land_issued_tickets(client: TicketTailorResource, days: list[date], root: Path | str | None = None,
                        loaded_at: datetime | None = None) -> EntityResult:
    """Issued tickets of the events that start in the window, under each event's start day (UTC)."""
    lander = EntityLander(ISSUED_TICKETS, days, loaded_at, root)
    wanted = set(days)
    with lander:
        starts: list[tuple[str, datetime]] = []
        for page in client.iter_events():
            for ev in page:
                try:
                    row = convert_event(ev)
                except RecordError:
                    continue  # a broken event is quarantined by tickettailor_events; nothing to fetch
                if row["start_at"] is not None and row["start_at"].date() in wanted:
                    starts.append((row["id"], row["start_at"]))
        for event_id, start_at in starts:
            for page in client.iter_issued_tickets(event_id):
                lander.add_page([(t, start_at) for t in page], convert_issued_ticket,
                                utc_day(start_at), raw=lambda p: p[0])
        return lander.commit()


# --- assets ---------------------------------------------------------------------------------------

_ORDER_SPECS = (ORDERS, ORDER_LINE_ITEMS, ORDER_ISSUED_TICKETS)
_FIGURES = {ORDERS.name: ORDER_FIGURES}


@dg.multi_asset(
    name="tickettailor_orders_landing",
    specs=[asset_spec(s, figures=_FIGURES.get(s.name)) for s in _ORDER_SPECS],
    partitions_def=daily_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    can_subset=False,
)
def tickettailor_orders_assets(context: dg.AssetExecutionContext, tickettailor: TicketTailorResource,
        warehouse: WarehouseResource) -> Iterator[dg.MaterializeResult]:
    """Ticket Tailor orders created on each day of the window (UTC), with their line items and issued
    tickets as their own entities. One API pass feeds all three, so they materialize together.
    The orders also report the figures of `ORDER_FIGURES` (orders, gross and refunded cents per
    currency, refunds) for the UI's Plots tab."""
    if not provider_configured(context, tickettailor, "orders"):
        return
    results = land_orders(tickettailor, window_days(context))
    warehouse.publish(ENTITIES)
    for spec in _ORDER_SPECS:
        yield materialize_result(results[spec.name], figures=_FIGURES.get(spec.name), context=context)


@dg.asset(
    name=EVENTS.name, description=EVENTS.description, group_name=NAME, kinds=kinds(NAME),
    partitions_def=daily_partitions, backfill_policy=dg.BackfillPolicy.single_run(), output_required=False,
    metadata={"dagster/column_schema": column_schema(EVENTS)},
)
def tickettailor_events(context: dg.AssetExecutionContext, tickettailor: TicketTailorResource,
        warehouse: WarehouseResource) -> Iterator[dg.MaterializeResult]:
    """Ticket Tailor events: a snapshot of every event, an observation of *now*.

    Written under today's partition (UTC) when today is in the window. A window of past days
    (a backfill) writes it under its last day only if that day has no snapshot yet, so the models
    still have the current events to join against. Every other day keeps what it holds: an
    existing snapshot is genuine history and is never overwritten with today's state, and a day
    without one gets no file (one log line says which and why). Metadata: `snapshot_written_to`,
    `snapshot_kept_days`; the row count is the rows written by this run."""
    if not provider_configured(context, tickettailor, "events"):
        return
    result = land_events(tickettailor, window_days(context), log=context.log.info)
    warehouse.publish(ENTITIES)
    yield materialize_result(result)


@dg.asset(
    name=ISSUED_TICKETS.name, description=ISSUED_TICKETS.description, group_name=NAME, kinds=kinds(NAME),
    partitions_def=daily_partitions, backfill_policy=dg.BackfillPolicy.single_run(), output_required=False,
    metadata={"dagster/column_schema": column_schema(ISSUED_TICKETS)},
)
def tickettailor_issued_tickets(context: dg.AssetExecutionContext, tickettailor: TicketTailorResource,
        warehouse: WarehouseResource) -> Iterator[dg.MaterializeResult]:
    """Ticket Tailor issued tickets of the events starting in the window, under the event's start
    day (UTC): re-running a recent day picks up late check-ins."""
    if not provider_configured(context, tickettailor, "issued tickets"):
        return
    result = land_issued_tickets(tickettailor, window_days(context))
    warehouse.publish(ENTITIES)
    yield materialize_result(result, context=context)


ENTITIES = (EVENTS, ORDERS, ORDER_LINE_ITEMS, ORDER_ISSUED_TICKETS, ISSUED_TICKETS)

PROVIDER = Provider(
    name=NAME,
    resource=TicketTailorResource,
    entities=ENTITIES,
    assets=(tickettailor_orders_assets, tickettailor_events, tickettailor_issued_tickets),
    checks=tuple(c for spec in ENTITIES for c in entity_checks(spec)),
    roles={"orders": tuple(s.name for s in _ORDER_SPECS), "attendance": (ISSUED_TICKETS.name,),
           "snapshot": (EVENTS.name,)},
    watched=(ORDERS.name, EVENTS.name),
)
