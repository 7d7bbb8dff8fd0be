"""Reverse sync: unified events, orders and consenting contacts pushed to Cymbal and Cordial.

Five assets in group `reverse_sync`, partitioned like orders (by order creation day, UTC; one run may
cover a range, so a backfill is a single run):

| asset                   | destination                          | records                                   |
| ----------------------- | ------------------------------------ | ----------------------------------------- |
| `sync_cymbal_events`    | Cymbal `POST /v1/partners/events`    | every event of both ticketing providers   |
| `sync_cymbal_orders`    | Cymbal `POST /v1/partners/orders`    | revenue-counting orders created in window |
| `sync_cymbal_contacts`  | Cymbal `POST /v1/partners/contact`   | every consenting buyer in the lake        |
| `sync_cordial_contacts` | Cordial `upsertContact`              | the same, those with an email             |
| `sync_cordial_orders`   | Cordial `upsertOrder`                | the same orders as Cymbal                 |

They read the raw lake directly (an in-memory DuckDB over the Parquet, latest `_loaded_at` per id), not
the dbt models, so a sync never waits for, or locks, the warehouse. All rules (consent, revenue, money,
time, payload shape) live in `assets/sync_payloads.py`; the log lives in `assets/sync_log.py`.

Why the contact syncs ignore the partition window: consent belongs to the person, not to an order
day. Sympla asks the consent question per ticket, so it is only known once the event's participants
land, under the event's START day, often weeks after the order's creation day; by then that order's
day is outside every sync window (the schedule reloads orders for 8 days only). So the contact assets
read every landed order and participant of both providers and send each consenting buyer whose
payload changed; the sync log keeps that incremental (an unchanged contact costs no request), and a
consent that appears later goes out on the next run of any partition. They stay partitioned only so
they run with the orders' schedule and sensor. Orders stay windowed, and carry the opt-ins known
when they are sent (see `sync_cymbal_orders`).

Idempotent and incremental: a record is sent only when its payload hash differs from the last one the
destination accepted. A batch is logged as sent only after the API accepted it; a batch that still
fails after the HTTP core's retries is logged as failed with the reason (and retried next run), and
the asset then fails, naming the destination and the record ids, after everything that did succeed
has been logged. A 422 on a batch is split in halves until the bad records are isolated, so one
invalid record does not hold back its batch.

Configuration: MARQUEE_CONSENT_LABEL (default "marketing"), MARQUEE_SYNC_BATCH_SIZE (default 100,
also the `batch_size` run config), MARQUEE_EVENT_IMAGE_URL (image for events whose provider has none).
"""

# No `from __future__ import annotations`: Dagster reads the config class from the real annotation.

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import orjson

from assets import sync_payloads as sp
from assets.sync_log import FAILED, SENT, SyncLog
from pipelines import settings
from pipelines.partitions import daily_partitions, days_in
from resources.errors import (
    ProviderAuthError,
    ProviderError,
    ProviderNotConfiguredError,
    ProviderRequestError,
    ProviderUnavailableError,
)
from resources.registry import credential_hint

GROUP = "reverse_sync"
DEFAULT_BATCH_SIZE = 100
# The largest batch we send in one POST: Cymbal documents no limit; 100 is what its client pages by.
MAX_BATCH_SIZE = 500
# Records named in a failure message / metadata before "... and N more".
SHOWN_IDS = 20

TT_EVENTS, TT_ORDERS = dg.AssetKey("tickettailor_events"), dg.AssetKey("tickettailor_orders")
SY_EVENTS, SY_ORDERS = dg.AssetKey("sympla_events"), dg.AssetKey("sympla_orders")
SY_PARTICIPANTS = dg.AssetKey("sympla_participants")
ORDER_DEPS = [TT_ORDERS, SY_ORDERS, SY_PARTICIPANTS]


class SyncConfig(dg.Config):
    batch_size: int | None = None  # None: MARQUEE_SYNC_BATCH_SIZE, else 100


def batch_size(config: SyncConfig | None = None) -> int:
    raw: Any = config.batch_size if config is not None and config.batch_size else None
    raw = raw or os.environ.get("MARQUEE_SYNC_BATCH_SIZE") or DEFAULT_BATCH_SIZE
    try:
        size = int(raw)
    except ValueError:
        raise ValueError(f"MARQUEE_SYNC_BATCH_SIZE={raw!r} is not an integer") from None
    return max(1, min(size, MAX_BATCH_SIZE))


# --- reading the lake -----------------------------------------------------------------------------

def _raw_dir(provider: str, entity: str) -> Path:
    return settings.lake_dir() / "raw" / provider / entity


def _files(provider: str, entity: str, days: Sequence[date] | None = None) -> list[str]:
    base = _raw_dir(provider, entity)
    if not base.is_dir():
        return []
    if days is None:
        return sorted(str(p) for p in base.glob("date=*/*.parquet"))
    return sorted(str(p) for d in days for p in (base / f"date={d.isoformat()}").glob("*.parquet"))


def read_latest(files: Sequence[str], where: str = "", params: Sequence[Any] = ()) -> list[dict[str, Any]]:
    """Rows of these Parquet files, latest `_loaded_at` per `id`, as dicts (`_raw` left as text)."""
    if not files:
        return []
    con = duckdb.connect()  # in memory: never touches the warehouse file
    try:
        rel = con.execute(
            "SELECT * FROM read_parquet(?, union_by_name = true, hive_partitioning = false) "
            f"{'WHERE ' + where if where else ''} "
            "QUALIFY row_number() OVER (PARTITION BY id ORDER BY _loaded_at DESC) = 1 ORDER BY id",
            [list(files), *params],
        )
        return rel.to_arrow_table().to_pylist()
    finally:
        con.close()


def _raw(row: dict[str, Any]) -> dict[str, Any]:
    value = orjson.loads(row["_raw"]) if isinstance(row.get("_raw"), str | bytes) else {}
    return value if isinstance(value, dict) else {}


@dataclass
class Loaded:
    orders: list[sp.UnifiedOrder] = field(default_factory=list)
    events: list[sp.UnifiedEvent] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)  # "provider:id: reason"


def _read_orders(days: Sequence[date] | None, label: str, keep: Callable[[sp.UnifiedOrder], bool]) -> Loaded:
    """Orders of both providers landed under `days` (None: every landed day), latest version of each,
    that `keep` accepts. Sympla orders come with their participants, wherever those landed."""
    out = Loaded()
    for row in read_latest(_files("tickettailor", "orders", days)):
        try:
            order = sp.tickettailor_order(_raw(row), label)
        except (ValueError, KeyError, TypeError) as exc:
            out.unreadable.append(f"tickettailor:{row.get('id')}: {exc}")
            continue
        if keep(order):
            out.orders.append(order)

    sympla_rows = read_latest(_files("sympla", "orders", days))
    by_order: dict[str, list[dict[str, Any]]] = {}
    if sympla_rows:
        # Participants land by event start day, which may be any day: read them all, for these orders.
        participant_files = _files("sympla", "participants")
        if days is None:  # every order: every participant (same rows, without a huge IN list)
            participants = read_latest(participant_files)
        else:
            ids = [str(r["id"]) for r in sympla_rows]
            participants = read_latest(participant_files, "order_id IN (SELECT unnest(?))", [ids])
        for p in participants:
            by_order.setdefault(str(p.get("order_id")), []).append(_raw(p))
    for row in sympla_rows:
        try:
            order = sp.sympla_order(_raw(row), by_order.get(str(row["id"]), []), label,
                                    created_at=row.get("order_date"), total=row.get("order_total_sale_price"))
        except (ValueError, KeyError, TypeError) as exc:
            out.unreadable.append(f"sympla:{row.get('id')}: {exc}")
            continue
        if keep(order):
            out.orders.append(order)
    return out


def load_orders(window_start: datetime, window_end: datetime, label: str) -> Loaded:
    """Orders of both providers created in [window_start, window_end), latest version of each."""
    return _read_orders(days_in(window_start, window_end), label,
                        lambda order: window_start <= order.created_at < window_end)


def load_all_orders(label: str) -> Loaded:
    """Every order of both providers in the lake, latest version of each, whatever its day.

    What the contact syncs read: consent belongs to the person, and a Sympla buyer's answer is only
    known once their event's participants land (under the event's start day, possibly weeks after
    the order's own day), so no order-day window may decide who is a contact.
    """
    return _read_orders(None, label, lambda _order: True)


def load_events() -> Loaded:
    """Every event of both providers, from the latest snapshot each appears in."""
    out = Loaded()
    for row in read_latest(_files("tickettailor", "events")):
        try:
            out.events.append(sp.tickettailor_event(_raw(row)))
        except (ValueError, KeyError, TypeError) as exc:
            out.unreadable.append(f"tickettailor:{row.get('id')}: {exc}")
    for row in read_latest(_files("sympla", "events")):
        try:
            out.events.append(sp.sympla_event(_raw(row), row.get("start_date"), row.get("end_date")))
        except (ValueError, KeyError, TypeError) as exc:
            out.unreadable.append(f"sympla:{row.get('id')}: {exc}")
    return out


# --- the sync engine ------------------------------------------------------------------------------

@dataclass
class SyncOutcome:
    destination: str
    in_scope: int = 0
    sent: int = 0
    unchanged: int = 0
    failed_ids: list[str] = field(default_factory=list)
    reasons: dict[str, str] = field(default_factory=dict)  # record id -> reason
    skipped_ids: list[str] = field(default_factory=list)  # cannot be expressed for this destination
    requests: int = 0

    @property
    def failed(self) -> int:
        return len(self.failed_ids)

    def metadata(self) -> dict[str, Any]:
        return {
            "destination": self.destination,
            "sent": self.sent,
            "unchanged": self.unchanged,
            "failed": self.failed,
            "skipped": len(self.skipped_ids),
            "requests": self.requests,
            "dagster/row_count": self.in_scope,
            **({"failed_ids": _shown(self.failed_ids)} if self.failed_ids else {}),
            **({"skipped_ids": _shown(self.skipped_ids)} if self.skipped_ids else {}),
        }


def _shown(ids: Sequence[str]) -> str:
    head = ", ".join(ids[:SHOWN_IDS])
    return head + (f" ... and {len(ids) - SHOWN_IDS} more" if len(ids) > SHOWN_IDS else "")


def _reason(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:500]


class _Abort(Exception):
    """The destination cannot take more requests in this run (auth refused or unavailable)."""

    def __init__(self, cause: ProviderError) -> None:
        super().__init__(str(cause))
        self.cause = cause


def sync_records(
    destination: str,
    records: Sequence[tuple[str, dict[str, Any]]],
    send: Callable[[list[dict[str, Any]]], Any],
    *,
    batch: int,
    per_record: bool = False,
    log: SyncLog | None = None,
    partition: str | None = None,
    run_id: str | None = None,
    logger: Any = None,
) -> SyncOutcome:
    """Send the records whose payload changed since the destination last accepted them.

    `send(payloads)` posts one batch (`per_record`: one payload per call, for endpoints that take a
    single record) and raises a `ProviderError` when the API did not accept it. Outcomes are appended to
    the log after every batch, so a crash loses at most one batch of bookkeeping (whose records are then
    re-sent: every destination upserts by id). Raises `ProviderAuthError` after logging, because no later
    record can succeed with a refused key.
    """
    log = log or SyncLog(destination)
    out = SyncOutcome(destination)
    unique: dict[str, dict[str, Any]] = {}
    for rid, payload in records:
        unique[rid] = payload
    out.in_scope = len(unique)
    state = log.state()
    pending: list[tuple[str, dict[str, Any], str]] = []
    for rid, payload in unique.items():
        digest = sp.payload_hash(payload)
        previous = state.get(rid)
        if previous is not None and previous.last_sent_hash == digest:
            out.unchanged += 1
        else:
            pending.append((rid, payload, digest))

    def record(entries: list[tuple[str, str, str, str | None]]) -> None:
        log.append(entries, partition=partition, run_id=run_id)
        for rid, _h, status, reason in entries:
            if status == SENT:
                out.sent += 1
            else:
                out.failed_ids.append(rid)
                out.reasons[rid] = reason or ""

    def attempt(chunk: list[tuple[str, dict[str, Any], str]]) -> list[tuple[str, str, str, str | None]]:
        try:
            out.requests += 1
            send([p for _rid, p, _h in chunk])
        except (ProviderAuthError, ProviderUnavailableError, ProviderNotConfiguredError) as exc:
            raise _Abort(exc) from exc
        except ProviderRequestError as exc:
            if len(chunk) > 1:  # all-or-nothing batch: split to isolate the records it refused
                half = len(chunk) // 2
                return attempt(chunk[:half]) + attempt(chunk[half:])
            return [(rid, h, FAILED, _reason(exc)) for rid, _p, h in chunk]
        except ProviderError as exc:
            return [(rid, h, FAILED, _reason(exc)) for rid, _p, h in chunk]
        return [(rid, h, SENT, None) for rid, _p, h in chunk]

    abort: _Abort | None = None
    for start in range(0, len(pending), batch):
        chunk = pending[start:start + batch]
        if abort is not None:
            record([(rid, h, FAILED, f"not attempted: {_reason(abort.cause)}") for rid, _p, h in chunk])
            continue
        entries: list[tuple[str, str, str, str | None]] = []
        units = [[c] for c in chunk] if per_record else [chunk]
        for i, unit in enumerate(units):
            try:
                entries += attempt(unit)
            except _Abort as exc:
                abort = exc
                entries += [(rid, h, FAILED, _reason(exc.cause)) for rid, _p, h in unit]
                entries += [(rid, h, FAILED, f"not attempted: {_reason(exc.cause)}")
                            for u in units[i + 1:] for rid, _p, h in u]
                break
        record(entries)
    log.compact()
    if logger is not None:
        logger.info(f"{destination}: {out.sent} sent, {out.unchanged} unchanged, {out.failed} failed, "
                    f"{len(out.skipped_ids)} skipped, {out.requests} request(s)")
    if abort is not None and isinstance(abort.cause, ProviderAuthError | ProviderNotConfiguredError):
        raise abort.cause
    return out


def finish(context: dg.AssetExecutionContext, outcome: SyncOutcome) -> dg.MaterializeResult:
    """The materialization, or, when records failed, a loud failure naming them (after logging)."""
    if outcome.skipped_ids:
        context.log.warning(
            f"{outcome.destination}: {len(outcome.skipped_ids)} record(s) cannot be expressed for this "
            f"destination and were not sent: {_shown(outcome.skipped_ids)}")
    if outcome.failed:
        first = outcome.failed_ids[0]
        raise dg.Failure(
            description=(
                f"{outcome.destination}: {outcome.failed} record(s) were not accepted and will be retried "
                f"next run ({outcome.sent} sent and logged, {outcome.unchanged} unchanged). "
                f"Failed ids: {_shown(outcome.failed_ids)}. First reason: {outcome.reasons.get(first, '')}"),
            metadata=outcome.metadata(),
        )
    return dg.MaterializeResult(metadata=outcome.metadata())


# --- assets ---------------------------------------------------------------------------------------

def _client(context: dg.AssetExecutionContext, key: str) -> Any | None:
    client = getattr(context.resources, key)
    if not client.configured():
        context.log.info(f"{key}: skipped, not configured (set {credential_hint(key)}); nothing was sent.")
        return None
    return client


def _window(context: dg.AssetExecutionContext) -> tuple[datetime, datetime, str]:
    window = context.partition_time_window
    keys = context.partition_keys
    label = keys[0] if len(keys) == 1 else f"{keys[0]}..{keys[-1]}"
    return window.start, window.end, label


def _orders_in_window(context: dg.AssetExecutionContext) -> tuple[list[sp.UnifiedOrder], str]:
    start, end, label = _window(context)
    loaded = load_orders(start, end, sp.consent_label())
    if loaded.unreadable:
        context.log.warning(f"{len(loaded.unreadable)} raw order(s) could not be read and are not synced: "
                            f"{_shown(loaded.unreadable)}")
    return loaded.orders, label


def _all_contacts(context: dg.AssetExecutionContext) -> tuple[list[sp.Contact], str]:
    """Every consenting buyer in the lake, and the run's partition label (for the log only). Not
    restricted to the window, on purpose: see the module docstring ("Why the contact syncs ...")."""
    _start, _end, label = _window(context)
    loaded = load_all_orders(sp.consent_label())
    if loaded.unreadable:
        context.log.warning(f"{len(loaded.unreadable)} raw order(s) could not be read and their buyers "
                            f"are not considered as contacts: {_shown(loaded.unreadable)}")
    return sp.consenting_contacts(loaded.orders), label


def _sync_kwargs(context: dg.AssetExecutionContext, partition: str) -> dict[str, Any]:
    return {"partition": partition, "run_id": context.run_id, "logger": context.log}


_COMMON: dict[str, Any] = {
    "group_name": GROUP,
    "partitions_def": daily_partitions,
    "backfill_policy": dg.BackfillPolicy.single_run(),
    "output_required": False,
}


@dg.asset(name="sync_cymbal_events", kinds={"cymbal"}, deps=[TT_EVENTS, SY_EVENTS],
          required_resource_keys={"cymbal"}, **_COMMON)
def sync_cymbal_events(context: dg.AssetExecutionContext, config: SyncConfig):
    """Every event of Ticket Tailor and Sympla (latest snapshot) to Cymbal `POST /v1/partners/events`.

    Ids are `tickettailor:ev_…` / `sympla:…`; `start_datetime` is UTC (`2024-03-02T15:30:00Z`); status
    is `live` or `canceled`. Not windowed by the partition: events are few and the log makes a repeat
    free, so each run sends the new and changed ones.
    """
    cymbal = _client(context, "cymbal")
    if cymbal is None:
        return
    _start, _end, partition = _window(context)
    loaded = load_events()
    records, skipped = [], list(loaded.unreadable)
    for ev in loaded.events:
        missing = sp.cymbal_event_missing(ev)
        if missing:
            skipped.append(f"{ev.key} (missing {', '.join(missing)})")
        else:
            records.append((ev.key, sp.cymbal_event(ev)))
    outcome = sync_records("cymbal_events", records, cymbal.create_events, batch=batch_size(config),
                           **_sync_kwargs(context, partition))
    outcome.skipped_ids = skipped
    yield finish(context, outcome)


@dg.asset(name="sync_cymbal_orders", kinds={"cymbal"},
          deps=[*ORDER_DEPS, dg.AssetKey("sync_cymbal_events")], required_resource_keys={"cymbal"}, **_COMMON)
def sync_cymbal_orders(context: dg.AssetExecutionContext, config: SyncConfig):
    """Revenue-counting orders created in the partition window to Cymbal `POST /v1/partners/orders`.

    Ticket Tailor `completed`, Sympla `APPROVED`; an order Cymbal already has is re-sent when it changes
    (a refund, a cancellation). Amounts are integer minor units with ISO-4217 `currency_code`; the
    customer's `marketing_opt_ins` are `true` only when the consent question was answered yes on that
    order, else null (never false).

    Opt-ins are as known when the order is sent: a Sympla buyer's answer arrives with the event's
    participants, often after the order's day left every window, and the order is then not re-sent
    for it (only if its own day is synced again, when its payload, and so its hash, has changed).
    That is deliberate: `marketing_opt_ins` null means "leave as is", never an unsubscribe, and the
    contact syncs, which read the whole lake, are the authoritative consent channel.
    """
    cymbal = _client(context, "cymbal")
    if cymbal is None:
        return
    orders, partition = _orders_in_window(context)
    log = SyncLog("cymbal_orders")
    known = {rid for rid, st in log.state().items() if st.last_sent_hash}
    records, skipped = [], []
    for order in sp.orders_to_sync(orders, known):
        missing = sp.cymbal_order_missing(order)
        if missing:
            skipped.append(f"{order.key} (missing {', '.join(missing)})")
        else:
            records.append((order.key, sp.cymbal_order(order)))
    outcome = sync_records("cymbal_orders", records, cymbal.create_orders, batch=batch_size(config), log=log,
                           **_sync_kwargs(context, partition))
    outcome.skipped_ids = skipped
    yield finish(context, outcome)


@dg.asset(name="sync_cymbal_contacts", kinds={"cymbal"}, deps=ORDER_DEPS,
          required_resource_keys={"cymbal"}, **_COMMON)
def sync_cymbal_contacts(context: dg.AssetExecutionContext, config: SyncConfig):
    """Every buyer in the lake whose latest explicit answer to the consent question is yes (rule and
    why a later "no" sends nothing: `sp.consenting_contacts`), to Cymbal `POST /v1/partners/contact`,
    one contact per request, subscribed on the channels they gave.

    Not limited to the partition's orders: consent belongs to the person, and a Sympla answer lands
    with the event's participants, usually after the order's day was synced. Each run (of any
    partition) considers all landed orders and participants of both providers; the sync log sends
    only new or changed contacts, so an unchanged re-run makes no request. Contact ids in the log and
    in metadata are hashes (`ct_…`): no email or phone is logged.
    """
    cymbal = _client(context, "cymbal")
    if cymbal is None:
        return
    contacts, partition = _all_contacts(context)
    records = [(c.key, sp.cymbal_contact(c)) for c in contacts]
    outcome = sync_records("cymbal_contacts", records, cymbal.create_contacts, batch=batch_size(config),
                           per_record=True, **_sync_kwargs(context, partition))
    yield finish(context, outcome)


@dg.asset(name="sync_cordial_contacts", kinds={"cordial"}, deps=ORDER_DEPS,
          required_resource_keys={"cordial"}, **_COMMON)
def sync_cordial_contacts(context: dg.AssetExecutionContext, config: SyncConfig):
    """Every consenting buyer in the lake with an email, to Cordial `upsertContact` (email channel
    `subscribed`).

    Like `sync_cymbal_contacts`, not limited to the partition's orders (consent belongs to the person
    and a Sympla answer lands after the order's day was synced); the sync log keeps it incremental.
    """
    cordial = _client(context, "cordial")
    if cordial is None:
        return
    contacts, partition = _all_contacts(context)
    records, skipped = [], []
    for c in contacts:
        if c.email:
            records.append((c.key, sp.cordial_contact(c)))
        else:
            skipped.append(f"{c.key} (no email)")

    def send(payloads: list[dict[str, Any]]) -> None:
        for p in payloads:
            cordial.upsert_contact(p)

    outcome = sync_records("cordial_contacts", records, send, batch=batch_size(config), per_record=True,
                           **_sync_kwargs(context, partition))
    outcome.skipped_ids = skipped
    yield finish(context, outcome)


@dg.asset(name="sync_cordial_orders", kinds={"cordial"}, deps=ORDER_DEPS,
          required_resource_keys={"cordial"}, **_COMMON)
def sync_cordial_orders(context: dg.AssetExecutionContext, config: SyncConfig):
    """The orders synced to Cymbal, to Cordial `upsertOrder`: amounts in decimal major units converted
    exactly from minor units, `purchaseDate` ISO-8601 UTC, `orderID` namespaced by provider.

    `properties.marketingConsent` is the consent known when the order is sent, like Cymbal's opt-ins
    (see `sync_cymbal_orders`); it subscribes nobody, `sync_cordial_contacts` does.
    """
    cordial = _client(context, "cordial")
    if cordial is None:
        return
    orders, partition = _orders_in_window(context)
    log = SyncLog("cordial_orders")
    known = {rid for rid, st in log.state().items() if st.last_sent_hash}
    records, skipped = [], []
    for order in sp.orders_to_sync(orders, known):
        if order.buyer.reachable:
            records.append((order.key, sp.cordial_order(order)))
        else:
            skipped.append(f"{order.key} (no email or phone)")

    def send(payloads: list[dict[str, Any]]) -> None:
        for p in payloads:
            cordial.upsert_order(p)

    outcome = sync_records("cordial_orders", records, send, batch=batch_size(config), per_record=True, log=log,
                           **_sync_kwargs(context, partition))
    outcome.skipped_ids = skipped
    yield finish(context, outcome)


SYNC_ASSETS = [sync_cymbal_events, sync_cymbal_orders, sync_cymbal_contacts, sync_cordial_contacts,
               sync_cordial_orders]
DESTINATIONS = {
    "sync_cymbal_events": "cymbal_events",
    "sync_cymbal_orders": "cymbal_orders",
    "sync_cymbal_contacts": "cymbal_contacts",
    "sync_cordial_contacts": "cordial_contacts",
    "sync_cordial_orders": "cordial_orders",
}


def _no_failures_check(asset_name: str, destination: str) -> dg.AssetChecksDefinition:
    @dg.asset_check(asset=asset_name, name="no_failed_records",
                    description=f"No record's latest attempt to {destination} failed (per the sync log).")
    def _check() -> dg.AssetCheckResult:
        failed = sorted(rid for rid, st in SyncLog(destination).state().items() if st.status == FAILED)
        return dg.AssetCheckResult(
            passed=not failed,
            metadata={"failed": len(failed), **({"failed_ids": _shown(failed)} if failed else {})},
        )

    return _check


SYNC_CHECKS = [_no_failures_check(name, dest) for name, dest in DESTINATIONS.items()]

defs = dg.Definitions(assets=SYNC_ASSETS, asset_checks=SYNC_CHECKS)
