"""The sync's input: the dbt models of schema `sync`, read from their exports in the lake.

The dbt asset exports every model to `lake/models/{schema}/{name}.parquet` after a build whose
blocking checks passed (a failed build exports nothing), so these files are always the last good
build, and reading them never waits for, or locks, the build database or the analysts' catalog.
A missing export is an error, never "nothing to send".
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb

from resources import lake, lakefs
from resources.lakefs import Location

SCHEMA = "sync"
EVENTS = "sync_events"
ORDERS = "sync_orders"
ORDER_ITEMS = "sync_order_items"
CONTACTS = "sync_contacts"
CONSENT_QUESTIONS = "sync_consent_questions"
MODELS = (EVENTS, ORDERS, ORDER_ITEMS, CONTACTS, CONSENT_QUESTIONS)


def model_key(name: str) -> dg.AssetKey:
    """The Dagster asset key of a sync model (assets/dbt.py keys models by schema and name)."""
    return dg.AssetKey([SCHEMA, name])


class SyncInputMissing(Exception):
    """A sync model has never been exported: the models must be built before anything is pushed."""


def model_path(name: str, lake_root: Path | str | None = None) -> Location:
    return lake.model_path(SCHEMA, name, lake_root)


def read_model(name: str, where: str = "", params: Sequence[Any] = (), order_by: str = "",
               lake_root: Path | str | None = None) -> list[dict[str, Any]]:
    """Rows of one sync model's export as dicts, optionally filtered (`where` with `?` params)."""
    path = model_path(name, lake_root)
    if not lakefs.exists(path):
        raise SyncInputMissing(
            f"reverse sync: the model {SCHEMA}.{name} has not been built yet ({path} is missing). Build the "
            "models first (`marquee run`, or materialize the dbt assets / marts_job in the UI); nothing was sent.")
    con = duckdb.connect()  # in memory: never touches the build database or the catalog
    try:
        lakefs.register_duckdb(con, lake.lake_root(lake_root))
        sql = "SELECT * FROM read_parquet(?)"
        if where:
            sql += f" WHERE {where}"
        if order_by:
            sql += f" ORDER BY {order_by}"
        return con.sql(sql, params=[str(path), *params]).to_arrow_table().to_pylist()
    finally:
        con.close()


def events() -> list[dict[str, Any]]:
    return read_model(EVENTS, order_by="event_key")


def orders_created_in(start: datetime, end: datetime) -> list[dict[str, Any]]:
    """Orders created in [start, end), every status (the sync decides which to send)."""
    return read_model(ORDERS, "created_at >= ? AND created_at < ?", [start, end], order_by="order_key")


def items_of(order_keys: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
    """Lines per order key, in each order's own sequence."""
    out: dict[str, list[dict[str, Any]]] = {}
    if not order_keys:
        return out
    rows = read_model(ORDER_ITEMS, "order_key IN (SELECT unnest(?))", [list(order_keys)],
                      order_by="order_key, position, item_id")
    for row in rows:
        out.setdefault(row["order_key"], []).append(row)
    return out


def contacts() -> list[dict[str, Any]]:
    return read_model(CONTACTS, order_by="contact_identity")


def consent_questions() -> list[dict[str, Any]]:
    return read_model(CONSENT_QUESTIONS, order_by="provider, question_label, question_id")
