"""Cymbal raw landing: campaign analytics, a daily snapshot."""

# No `from __future__ import annotations`: Dagster reads the types of an asset's parameters (its
# context, its resources) from the real annotations.
from collections.abc import Callable, Iterator
from datetime import date, datetime
from pathlib import Path
from typing import Any

import dagster as dg
import pyarrow as pa

from assets.landing.checks import entity_checks
from assets.landing.convert import req, to_id, to_int, to_money_minor, to_str, ts_text
from assets.landing.lander import EntityResult
from assets.landing.materialize import column_schema, kinds, materialize_result, provider_configured, window_days
from assets.landing.snapshot import land_snapshot
from resources.cymbal import CymbalResource
from resources.entity import EntitySpec
from resources.partitions import daily_partitions
from resources.provider import Provider
from resources.warehouse import WarehouseResource

NAME = "cymbal"

TS = pa.timestamp("us", tz="UTC")
STR = pa.string()
I64 = pa.int64()

CAMPAIGN_ANALYTICS = EntitySpec(
    provider=NAME, entity="campaign_analytics", snapshot=True, primary_key=("id",),
    money_minor_columns=("attributed_revenue",),
    description="GET /v1/partners/campaigns/analytics: every campaign's counters as observed on the day "
                "the snapshot was taken (UTC), landed under that day; past days keep their own snapshot. "
                "attributed_revenue is integer cents in currency_code.",
    columns=pa.schema([
        pa.field("id", STR, nullable=False),
        ("name", STR),
        ("type", STR),
        ("sent_at", TS),
        ("num_recipients", I64),
        ("num_delivered", I64),
        ("num_opened", I64),
        ("num_links_clicked", I64),
        ("num_unsubscribed", I64),
        ("attributed_revenue", I64),
        ("currency_code", STR),
    ]),
)


def convert_campaign(rec: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": to_id(req(rec, "id"), "id"),
        "name": to_str(rec.get("name"), "name"),
        "type": to_str(rec.get("type"), "type"),
        "sent_at": ts_text(rec.get("sent_at"), "sent_at"),
        "num_recipients": to_int(rec.get("num_recipients"), "num_recipients"),
        "num_delivered": to_int(rec.get("num_delivered"), "num_delivered"),
        "num_opened": to_int(rec.get("num_opened"), "num_opened"),
        "num_links_clicked": to_int(rec.get("num_links_clicked"), "num_links_clicked"),
        "num_unsubscribed": to_int(rec.get("num_unsubscribed"), "num_unsubscribed"),
        "attributed_revenue": to_money_minor(rec.get("attributed_revenue"), "attributed_revenue"),
        # DESIGN.md point 3: the currency defaults to USD when the reply leaves it out.
        "currency_code": to_str(rec.get("currency_code", "USD"), "currency_code"),
    }


def land_campaign_analytics(client: CymbalResource, days: list[date], root: Path | str | None = None,
                            loaded_at: datetime | None = None, today: date | None = None,
                            log: Callable[[str], None] | None = None) -> EntityResult:
    """The counters as they are now, written under at most one day of the window (today, or the
    last day of a past window that has no snapshot yet); see `assets.landing.plan_snapshot`."""
    return land_snapshot(CAMPAIGN_ANALYTICS, days, client.iter_campaign_analytics, convert_campaign, root,
                         loaded_at, today, log)


@dg.asset(
    name=CAMPAIGN_ANALYTICS.name, group_name=NAME, kinds=kinds(NAME), partitions_def=daily_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(), output_required=False,
    metadata={"dagster/column_schema": column_schema(CAMPAIGN_ANALYTICS), "primary_key": "id"},
)
def cymbal_campaign_analytics(context: dg.AssetExecutionContext, cymbal: CymbalResource,
                              warehouse: WarehouseResource) -> Iterator[dg.MaterializeResult]:
    """Cymbal campaign analytics: the counters of every campaign as of the run, a daily snapshot
    (the marts use each campaign's latest one). A snapshot is an observation of *now*.

    Written under today's partition (UTC) when today is in the window. A window of past days
    (a backfill) writes it under its last day only if that day has no snapshot yet, so the marts
    still have current counters. Every other day keeps what it holds: a snapshot taken on its own
    day is never overwritten with today's counters, and a day without one gets no file (one log
    line says which and why). Metadata: `snapshot_written_to`, `snapshot_kept_days`; the row count
    is the rows written by this run."""
    if not provider_configured(context, cymbal, "campaign analytics"):
        return
    result = land_campaign_analytics(cymbal, window_days(context), log=context.log.info)
    warehouse.publish((CAMPAIGN_ANALYTICS,))
    yield materialize_result(result)


PROVIDER = Provider(
    name=NAME,
    resource=CymbalResource,
    entities=(CAMPAIGN_ANALYTICS,),
    assets=(cymbal_campaign_analytics,),
    checks=tuple(entity_checks(CAMPAIGN_ANALYTICS)),
    roles={"snapshot": (CAMPAIGN_ANALYTICS.name,)},
    watched=(CAMPAIGN_ANALYTICS.name,),
)
