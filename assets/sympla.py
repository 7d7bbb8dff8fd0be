"""Sympla raw landing: events (snapshot), orders of every status (by order day, UTC) and
participants including cancelled orders (by event start day, UTC).

Orders and participants are fetched per event, with the event's id in the path
(`/events/{id}/orders`). An event whose id could rewrite that path (`../..`, `?`, `#`) is
quarantined by the events landing, and skipped, with one log line, when orders and participants
are fetched: the rest of the day lands, and no request ever goes to a path the id chose."""

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
    opt,
    req,
    to_bool,
    to_decimal,
    to_id,
    to_int,
    to_req_int,
    to_str,
    ts_text,
    utc_day,
)
from assets.landing.lander import EntityLander, EntityResult, merge_results
from assets.landing.materialize import (
    Figures,
    column_schema,
    described,
    kinds,
    materialize_result,
    provider_configured,
    window_days,
)
from assets.landing.snapshot import land_snapshot
from resources.currencies import to_minor_units
from resources.entity import EntitySpec
from resources.http import is_safe_path_segment
from resources.lake import utc_now
from resources.partitions import daily_partitions, day_spans, window_bounds
from resources.provider import Provider
from resources.sympla import SymplaResource
from resources.warehouse import WarehouseResource

NAME = "sympla"
log = dg.get_dagster_logger("marquee.sympla")

TS = pa.timestamp("us", tz="UTC")
STR = pa.string()
I64 = pa.int64()
# Reais as sent (123.5), exact: never float. Two decimals is what BRL has; a value with more
# decimals does not fit and is quarantined rather than rounded.
MONEY = pa.decimal128(18, 2)

EVENTS = EntitySpec(
    provider=NAME, entity="events", snapshot=True, primary_key=("id",),
    description="GET /events, the state of every event when the snapshot was taken, landed under the "
                "day it was taken (UTC); past days keep their own snapshot. "
                "Sympla sends local times (America/Sao_Paulo); *_local keeps them as sent.",
    columns=pa.schema([
        pa.field("id", STR, nullable=False),
        ("reference_id", I64),
        ("name", STR),
        ("start_date", TS),
        ("end_date", TS),
        ("start_date_local", STR),
        ("end_date_local", STR),
        ("detail", STR),
        ("private_event", pa.bool_()),
        ("published", pa.bool_()),
        ("cancelled", pa.bool_()),
        ("address_name", STR),
        ("address_city", STR),
        ("address_state", STR),
        ("address_country", STR),
        ("host_name", STR),
        ("category_prim", STR),
        ("category_sec", STR),
        ("url", STR),
    ]),
)

ORDERS = EntitySpec(
    provider=NAME, entity="orders", primary_key=("id",),
    description="GET /events/{id}/orders?status=true&timezone=UTC, by order_date day (UTC). "
                "Money is decimal reais as sent.",
    columns=pa.schema([
        pa.field("id", STR, nullable=False),
        ("event_id", STR),
        ("order_status", STR),
        ("order_date", TS),
        ("updated_date", TS),
        ("approved_date", TS),
        ("discount_code", STR),
        ("transaction_type", STR),
        ("order_total_sale_price", MONEY),
        ("order_total_net_value", MONEY),
        ("buyer_first_name", STR),
        ("buyer_last_name", STR),
        ("buyer_email", STR),
        ("invoice_doc_type", STR),
        ("utm_source", STR),
        ("utm_medium", STR),
        ("utm_campaign", STR),
        ("utm_term", STR),
        ("utm_content", STR),
        ("utm_referrer", STR),
    ]),
)

PARTICIPANTS = EntitySpec(
    provider=NAME, entity="participants", primary_key=("id",),
    description="GET /events/{id}/participants?cancelled_filter=include, landed under the event's "
                "start day (UTC).",
    columns=pa.schema([
        pa.field("id", I64, nullable=False),
        ("event_id", STR),
        ("event_start_date", TS),
        ("order_id", STR),
        ("order_status", STR),
        ("order_date", TS),
        ("order_updated_date", TS),
        ("order_approved_date", TS),
        ("order_discount", STR),
        ("first_name", STR),
        ("last_name", STR),
        ("email", STR),
        ("ticket_number", STR),
        ("ticket_num_qr_code", STR),
        ("ticket_name", STR),
        ("sector_name", STR),
        ("marked_place_name", STR),
        ("access_information", STR),
        ("pdv_user", STR),
        ("ticket_sale_price", MONEY),
        ("checkin_id", I64),
        ("check_in", pa.bool_()),
        ("check_in_date", TS),
        ("custom_form", pa.list_(pa.struct([("id", I64), ("name", STR), ("value", STR)]))),
        ("ticket_created_at", TS),
        ("ticket_updated_at", TS),
        ("presentation_id", I64),
    ]),
)


# --- record -> row --------------------------------------------------------------------------------

# Events have no `timezone` parameter: their date-times are Sao Paulo local time (provider-docs/004).
EVENT_TZ = "America/Sao_Paulo"
# Orders and participants are requested with `timezone=UTC` (resources/sympla.py), so their
# naive date-times are UTC; `check_in_date` carries its own offset.
DATA_TZ = "UTC"


def _path_id(value: Any, name: str) -> str:
    """An event id, which must also be usable in `/events/{id}/orders` (see the module docstring)."""
    event_id = to_id(value, name)
    if not is_safe_path_segment(event_id):
        shown = event_id if len(event_id) <= 80 else event_id[:77] + "..."
        raise RecordError(f"{name}: {shown!r} cannot be used in a URL path (/events/{{id}}/orders); only letters, "
                          f"digits, '_', '-' and '.' can")
    return event_id


def convert_event(rec: dict[str, Any]) -> dict[str, Any]:
    start_local = to_str(req(rec, "start_date"), "start_date")
    end_local = to_str(rec.get("end_date"), "end_date")
    return {
        "id": _path_id(req(rec, "id"), "id"),
        "reference_id": to_int(rec.get("reference_id"), "reference_id"),
        "name": to_str(rec.get("name"), "name"),
        "start_date": ts_text(start_local, "start_date", EVENT_TZ),
        "end_date": ts_text(end_local, "end_date", EVENT_TZ),
        "start_date_local": start_local,
        "end_date_local": end_local,
        "detail": to_str(rec.get("detail"), "detail"),
        "private_event": to_bool(rec.get("private_event"), "private_event"),
        "published": to_bool(rec.get("published"), "published"),
        "cancelled": to_bool(rec.get("cancelled"), "cancelled"),
        "address_name": to_str(opt(rec, "address", "name"), "address.name"),
        "address_city": to_str(opt(rec, "address", "city"), "address.city"),
        "address_state": to_str(opt(rec, "address", "state"), "address.state"),
        "address_country": to_str(opt(rec, "address", "country"), "address.country"),
        "host_name": to_str(opt(rec, "host", "name"), "host.name"),
        "category_prim": to_str(opt(rec, "category_prim", "name"), "category_prim.name"),
        "category_sec": to_str(opt(rec, "category_sec", "name"), "category_sec.name"),
        "url": to_str(rec.get("url"), "url"),
    }


def convert_order(rec: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": to_id(req(rec, "id"), "id"),
        "event_id": to_str(rec.get("event_id"), "event_id"),
        "order_status": to_str(req(rec, "order_status"), "order_status"),
        "order_date": ts_text(req(rec, "order_date"), "order_date", DATA_TZ),
        "updated_date": ts_text(rec.get("updated_date"), "updated_date", DATA_TZ),
        "approved_date": ts_text(rec.get("approved_date"), "approved_date", DATA_TZ),
        "discount_code": to_str(rec.get("discount_code"), "discount_code"),
        "transaction_type": to_str(rec.get("transaction_type"), "transaction_type"),
        "order_total_sale_price": to_decimal(req(rec, "order_total_sale_price"), "order_total_sale_price"),
        "order_total_net_value": to_decimal(rec.get("order_total_net_value"), "order_total_net_value"),
        "buyer_first_name": to_str(rec.get("buyer_first_name"), "buyer_first_name"),
        "buyer_last_name": to_str(rec.get("buyer_last_name"), "buyer_last_name"),
        "buyer_email": to_str(rec.get("buyer_email"), "buyer_email"),
        "invoice_doc_type": to_str(opt(rec, "invoice_info", "doc_type"), "invoice_info.doc_type"),
        "utm_source": to_str(opt(rec, "utm", "utm_source"), "utm.utm_source"),
        "utm_medium": to_str(opt(rec, "utm", "utm_medium"), "utm.utm_medium"),
        "utm_campaign": to_str(opt(rec, "utm", "utm_campaign"), "utm.utm_campaign"),
        "utm_term": to_str(opt(rec, "utm", "utm_term"), "utm.utm_term"),
        "utm_content": to_str(opt(rec, "utm", "utm_content"), "utm.utm_content"),
        "utm_referrer": to_str(opt(rec, "utm", "referrer"), "utm.referrer"),
    }


def _custom_form(value: Any) -> list[dict[str, Any]] | None:
    # The doc's example shows one bare object; the API sends a list. Accept both.
    if value is None:
        return None
    items = value if isinstance(value, list) else [value]
    out = []
    for f in items:
        if not isinstance(f, dict):
            raise RecordError(f"custom_form[]: expected an object, got {type(f).__name__}")
        v = f.get("value")
        if isinstance(v, bool):
            v = str(v).lower()
        elif isinstance(v, int | float):
            v = str(v)
        out.append({"id": to_int(f.get("id"), "custom_form[].id"), "name": to_str(f.get("name"), "custom_form[].name"),
                    "value": to_str(v, "custom_form[].value")})
    return out


def convert_participant(pair: tuple[dict[str, Any], datetime]) -> dict[str, Any]:
    rec, event_start = pair
    checkin = rec.get("checkin")
    if isinstance(checkin, list):  # tolerate a list of check-ins: checked in if any is
        first = checkin[0] if checkin else None
        checkin = next((c for c in checkin if isinstance(c, dict) and c.get("check_in")), first)
    if checkin is not None and not isinstance(checkin, dict):
        raise RecordError(f"checkin: expected an object, got {type(checkin).__name__}")
    return {
        "id": to_req_int(req(rec, "id"), "id"),
        "event_id": to_str(rec.get("event_id"), "event_id"),
        "event_start_date": event_start,
        "order_id": to_str(rec.get("order_id"), "order_id"),
        "order_status": to_str(rec.get("order_status"), "order_status"),
        "order_date": ts_text(rec.get("order_date"), "order_date", DATA_TZ),
        "order_updated_date": ts_text(rec.get("order_updated_date"), "order_updated_date", DATA_TZ),
        "order_approved_date": ts_text(rec.get("order_approved_date"), "order_approved_date", DATA_TZ),
        "order_discount": to_str(rec.get("order_discount"), "order_discount"),
        "first_name": to_str(rec.get("first_name"), "first_name"),
        "last_name": to_str(rec.get("last_name"), "last_name"),
        "email": to_str(rec.get("email"), "email"),
        "ticket_number": to_str(rec.get("ticket_number"), "ticket_number"),
        "ticket_num_qr_code": to_str(rec.get("ticket_num_qr_code"), "ticket_num_qr_code"),
        "ticket_name": to_str(rec.get("ticket_name"), "ticket_name"),
        "sector_name": to_str(rec.get("sector_name"), "sector_name"),
        "marked_place_name": to_str(rec.get("marked_place_name"), "marked_place_name"),
        "access_information": to_str(rec.get("access_information"), "access_information"),
        "pdv_user": to_str(rec.get("pdv_user"), "pdv_user"),
        "ticket_sale_price": to_decimal(rec.get("ticket_sale_price"), "ticket_sale_price"),
        "checkin_id": to_int(opt(checkin, "id"), "checkin.id"),
        "check_in": to_bool(opt(checkin, "check_in"), "checkin.check_in"),
        "check_in_date": ts_text(opt(checkin, "check_in_date"), "checkin.check_in_date", DATA_TZ),
        "custom_form": _custom_form(rec.get("custom_form")),
        "ticket_created_at": ts_text(rec.get("ticket_created_at"), "ticket_created_at", DATA_TZ),
        "ticket_updated_at": ts_text(rec.get("ticket_updated_at"), "ticket_updated_at", DATA_TZ),
        "presentation_id": to_int(rec.get("presentation_id"), "presentation_id"),
    }


# --- landing --------------------------------------------------------------------------------------


def _event_starts(client: SymplaResource) -> list[tuple[str, datetime | None]]:
    """(event id, UTC start) of every event; a broken event still has its orders fetched, unless its
    id cannot go into a URL path: that one is skipped with one log line naming it."""
    out: list[tuple[str, datetime | None]] = []
    for page in client.iter_events():
        for ev in page:
            if not isinstance(ev, dict) or not isinstance(ev.get("id"), str):
                continue
            if not is_safe_path_segment(ev["id"]):
                log.warning("sympla: skipped the orders and participants of event %r: its id cannot be used in a "
                            "URL path (the events landing quarantines the event with the reason)", ev["id"][:80])
                continue
            try:
                out.append((ev["id"], convert_event(ev)["start_date"]))
            except RecordError:
                out.append((ev["id"], None))
    return out


def land_events(client: SymplaResource, days: list[date], root: Path | str | None = None,
                loaded_at: datetime | None = None, today: date | None = None,
                log: Callable[[str], None] | None = None) -> EntityResult:
    """The events as they are now, written under at most one day of the window (today, or the
    last day of a past window that has no snapshot yet); see `assets.landing.plan_snapshot`."""
    return land_snapshot(EVENTS, days, client.iter_events, convert_event, root, loaded_at, today, log)


# Sympla lists orders per event only, so a window costs (events x spans) request series. One
# series per event per day made a year-long backfill of 200 events 73,000 series; a span of up to
# ORDER_SPAN_DAYS consecutive days cuts that by up to 31x, while a long backfill still commits (and
# keeps) its progress a month at a time. Memory stays bounded by the lander's shared budget.
ORDER_SPAN_DAYS = 31


def land_orders(client: SymplaResource, days: list[date], root: Path | str | None = None,
                loaded_at: datetime | None = None, span_days: int = ORDER_SPAN_DAYS) -> EntityResult:
    """Orders of every status created on each day (UTC). Each event's orders are asked once per span
    of consecutive days ([first day 00:00, last day + 1 00:00) UTC) and routed to their creation
    day; each span is committed before the next one is fetched."""
    loaded_at = loaded_at or utc_now()
    events = _event_starts(client)
    results: list[EntityResult] = []
    for span in day_spans(days, span_days):
        start, end = window_bounds(span[0], span[-1])
        with EntityLander(ORDERS, span, loaded_at, root) as lander:
            for event_id, _ in events:
                for page in client.iter_orders(event_id, start, end):
                    lander.add_page(page, convert_order, lambda row: utc_day(row["order_date"]))
            results.append(lander.commit())
    return merge_results(results)  # type: ignore[return-value]


def land_participants(client: SymplaResource, days: list[date], root: Path | str | None = None,
                      loaded_at: datetime | None = None) -> EntityResult:
    """Participants (approved and cancelled orders) of the events starting in the window, under the
    event's start day (UTC)."""
    wanted = set(days)
    with EntityLander(PARTICIPANTS, days, loaded_at, root) as lander:
        for event_id, start in _event_starts(client):
            if start is None or start.date() not in wanted:
                continue
            for page in client.iter_participants(event_id):
                lander.add_page([(p, start) for p in page], convert_participant, utc_day(start),
                                raw=lambda pair: pair[0])
        return lander.commit()


# --- figures the UI plots ------------------------------------------------------------------------

# Sympla sells in reais only and its orders carry no currency (staging says 'BRL' too).
CURRENCY = "BRL"
# The status rule of the models (macro sympla_order_status, intermediate/int_orders.sql), which
# compare upper(trim(status)) with DuckDB's trim (spaces only): an approved order counts as revenue,
# and a refund is a status, never an amount. Mirrored so the figures equal marts.revenue's days.
APPROVED = pa.array(["A", "APPROVED"])
REFUNDED = pa.array(["R", "REFUNDED"])


def order_figures(orders: pa.Table) -> dict[str, dg.MetadataValue]:
    """The orders figures (see ORDER_FIGURES) of landed Sympla order rows."""
    status = pc.utf8_upper(pc.utf8_trim(orders["order_status"], " "))
    approved = orders.filter(pc.is_in(status, value_set=APPROVED))
    # Summed as exact decimals, then scaled once by the currency table's exponent: never a float.
    gross = pc.sum(approved["order_total_sale_price"], min_count=0).as_py()
    return {
        "orders": dg.MetadataValue.int(approved.num_rows),
        "refunds": dg.MetadataValue.int(int(pc.sum(pc.is_in(status, value_set=REFUNDED), min_count=0).as_py())),
        f"gross_cents {CURRENCY}": dg.MetadataValue.int(to_minor_units(gross, CURRENCY)),
    }


ORDER_FIGURES = Figures(
    columns=("order_status", "order_total_sale_price"),
    compute=order_figures,
    description="Figures plotted per partition, each over the orders created on that UTC day (a run over "
                "several days puts each day's on its own partition): `orders`, how many are approved (the "
                "revenue rule of marts.revenue; pending, cancelled and refunded orders are in the row count "
                "only); `gross_cents BRL`, the sum of their order_total_sale_price in centavos, converted "
                "exactly; `refunds`, how many have the status refunded (refunds per day, by the day the order "
                "was created, not the day of the refund). Sympla reports a refund as a status, never an "
                "amount, so there is no refunded_cents (marts.revenue carries 0).",
)


# --- assets ---------------------------------------------------------------------------------------


def _asset(spec: EntitySpec, fn: Callable[..., EntityResult], what: str, single_run: bool,
           doc: str, figures: Figures | None = None) -> dg.AssetsDefinition:
    @dg.asset(
        name=spec.name, description=described(doc, figures), group_name=NAME, kinds=kinds(NAME),
        partitions_def=daily_partitions, output_required=False,
        backfill_policy=dg.BackfillPolicy.single_run() if single_run else None,
        metadata={"dagster/column_schema": column_schema(spec), "primary_key": ", ".join(spec.primary_key)},
    )
    def _landing_asset(context: dg.AssetExecutionContext, sympla: SymplaResource,
                       warehouse: WarehouseResource) -> Iterator[dg.MaterializeResult]:
        if not provider_configured(context, sympla, what):
            return
        # Snapshot landers log the one line that says which days got no file, and why.
        extra = {"log": context.log.info} if spec.snapshot else {}
        result = fn(sympla, window_days(context), **extra)
        warehouse.publish(ENTITIES)
        yield materialize_result(result, figures=figures, context=context)

    return _landing_asset


sympla_events = _asset(EVENTS, land_events, "events", True,
                       "Sympla events (published or not): a snapshot, an observation of *now*. Written under "
                       "today's partition (UTC) when today is in the window; a window of past days (a backfill) "
                       "writes it under its last day only if that day has no snapshot yet, so the models still "
                       "have the current events. Every other day keeps what it holds: an existing snapshot is "
                       "never overwritten with today's state, and a day without one gets no file (one log line "
                       "says why). Metadata: snapshot_written_to, snapshot_kept_days; the row count is the rows "
                       "written by this run.")
sympla_orders = _asset(ORDERS, land_orders, "orders", True,
                       "Sympla orders of every status (status=true) created on each day of the window, UTC "
                       "(timezone=UTC), fetched per event over spans of up to 31 days. Money is decimal reais as sent.",
                       ORDER_FIGURES)
sympla_participants = _asset(PARTICIPANTS, land_participants, "participants", True,
                             "Sympla participants of approved and cancelled orders (cancelled_filter=include) of "
                             "the events starting in the window, under the event's start day (UTC).")

ENTITIES = (EVENTS, ORDERS, PARTICIPANTS)

PROVIDER = Provider(
    name=NAME,
    resource=SymplaResource,
    entities=ENTITIES,
    assets=(sympla_events, sympla_orders, sympla_participants),
    checks=tuple(c for spec in ENTITIES for c in entity_checks(spec)),
    roles={"orders": (ORDERS.name,), "attendance": (PARTICIPANTS.name,), "snapshot": (EVENTS.name,)},
    watched=(ORDERS.name, EVENTS.name),
)
