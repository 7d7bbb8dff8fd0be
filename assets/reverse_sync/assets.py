"""Reverse sync assets: unified events, orders and consenting contacts pushed to Cymbal and Cordial.

Five assets in group `reverse_sync`, partitioned like orders (by order creation day, UTC; one run may
cover a range, so a backfill is a single run), computed by one multi-asset so that the two
destinations push at the same time, each within its own rate budget:

| asset                   | destination                          | records (dbt model)                            |
| ----------------------- | ------------------------------------ | ---------------------------------------------- |
| `sync_cymbal_events`    | Cymbal `POST /v1/partners/events`    | every event of a snapshot (`sync_events`)      |
| `sync_cymbal_orders`    | Cymbal `POST /v1/partners/orders`    | revenue-counting orders created in the window  |
| `sync_cymbal_contacts`  | Cymbal `POST /v1/partners/contact`   | every consenting buyer (`sync_contacts`)       |
| `sync_cordial_contacts` | Cordial `upsertContact`              | the same, those with an email                  |
| `sync_cordial_orders`   | Cordial `upsertOrder`                | the same orders as Cymbal (`sync_orders`)      |

They read the dbt models of schema `sync` (their exports in the lake: `inputs.py`), never raw JSON:
what an order's status is, whether it is revenue, its exact amounts and who consented are defined
once, in SQL. Here rows only become payloads (`payloads.py`), the opt-in is decided against the log
(`consent.py`), and the engine pushes (`engine.py`).

Before anything is sent, the latest results of the blocking checks on those models must have
passed: bad data stops before it reaches a marketing tool. Orders with a `sync_problem` (negative
money, a non-ISO currency) are never sent; the WARN check on `sync_orders` counts them.

Contacts ignore the partition window on purpose: consent belongs to the person, and a Sympla answer
is only known once the event's participants land (under the event's start day, often weeks after
the order's day). So the contact assets consider every consenting buyer and the sync log sends only
the new or changed ones. Orders stay windowed; an order a destination already has is re-sent when it
changes (a refund, a cancellation), whatever its status now.

Configuration: MARQUEE_SYNC_BATCH_SIZE (default 100; run config `batch_size`), MARQUEE_SYNC_CONCURRENCY
(requests in flight per destination, default 8; run config `concurrency`), <PROVIDER>_RATE_LIMIT
(e.g. `100/10s`), MARQUEE_CONSENT_LABEL and MARQUEE_CONSENT_FRESH_DAYS (consent, README),
MARQUEE_EVENT_IMAGE_URL (image for events whose provider has none).
"""

# No `from __future__ import annotations`: Dagster reads the config class from the real annotation.

import functools
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import dagster as dg

from assets.reverse_sync import consent, inputs
from assets.reverse_sync import payloads as pl
from assets.reverse_sync.engine import Record, SyncOutcome, shown, sync_records
from assets.reverse_sync.log import FAILED, SENT, SyncLog
from resources.cordial import CordialResource
from resources.cymbal import CymbalResource
from resources.names import SYNC_GROUP as GROUP
from resources.partitions import daily_partitions

DEFAULT_BATCH_SIZE = 100
# The largest batch we send in one POST: Cymbal documents no limit; 100 is what its client pages by.
MAX_BATCH_SIZE = 500
DEFAULT_CONCURRENCY = 8
# The provider clients pool 8 connections (resources/http.py); more threads would only queue.
MAX_CONCURRENCY = 8


class SyncConfig(dg.Config):
    batch_size: int | None = None  # None: MARQUEE_SYNC_BATCH_SIZE, else 100
    concurrency: int | None = None  # None: MARQUEE_SYNC_CONCURRENCY, else 8


def _int_setting(value: Any, env: str, default: int, lo: int, hi: int) -> int:
    raw: Any = value or os.environ.get(env) or default
    try:
        number = int(raw)
    except ValueError:
        raise ValueError(f"{env}={raw!r} is not an integer") from None
    return max(lo, min(number, hi))


def batch_size(config: SyncConfig | None = None) -> int:
    return _int_setting(config.batch_size if config else None, "MARQUEE_SYNC_BATCH_SIZE", DEFAULT_BATCH_SIZE,
                        1, MAX_BATCH_SIZE)


def concurrency(config: SyncConfig | None = None) -> int:
    return _int_setting(config.concurrency if config else None, "MARQUEE_SYNC_CONCURRENCY", DEFAULT_CONCURRENCY,
                        1, MAX_CONCURRENCY)


# --- the destinations -----------------------------------------------------------------------------

@dataclass(frozen=True)
class Destination:
    asset: str  # asset name
    log_name: str  # sync log directory
    provider: str  # resource key
    inputs: tuple[str, ...]  # sync models it reads


DESTINATIONS = (
    Destination("sync_cymbal_events", "cymbal_events", "cymbal", (inputs.EVENTS,)),
    Destination("sync_cymbal_orders", "cymbal_orders", "cymbal", (inputs.ORDERS, inputs.ORDER_ITEMS)),
    Destination("sync_cymbal_contacts", "cymbal_contacts", "cymbal", (inputs.CONTACTS, inputs.CONSENT_QUESTIONS)),
    Destination("sync_cordial_contacts", "cordial_contacts", "cordial", (inputs.CONTACTS, inputs.CONSENT_QUESTIONS)),
    Destination("sync_cordial_orders", "cordial_orders", "cordial", (inputs.ORDERS, inputs.ORDER_ITEMS)),
)
BY_ASSET = {d.asset: d for d in DESTINATIONS}
# Kept for callers that name the log directories by asset.
LOG_NAMES = {d.asset: d.log_name for d in DESTINATIONS}


@dataclass
class Run:
    """What one destination's push needs from the Dagster context."""

    partition: str
    run_id: str
    batch: int
    concurrency: int
    window: tuple[datetime, datetime]
    now: datetime


def _base_url_var(provider: str) -> str:
    return f"{provider.upper()}_BASE_URL"


def _kwargs(dest: Destination, run: Run, log: SyncLog) -> dict[str, Any]:
    return {"batch": run.batch, "concurrency": run.concurrency, "log": log, "partition": run.partition,
            "run_id": run.run_id, "base_url_var": _base_url_var(dest.provider)}


def _order_rows(run: Run, log: SyncLog) -> tuple[list[dict[str, Any]], dict[str, list[dict[str, Any]]], list[str]]:
    """Orders of the window to send: the revenue-counting ones, and any the destination already has
    (so a cancellation or refund reaches it); rows with a sync problem are skipped, by name."""
    known = {rid for rid, st in log.state().items() if st.last_sent_hash}
    chosen, skipped = [], []
    for row in inputs.orders_created_in(*run.window):
        if not (row["counts_as_revenue"] or row["order_key"] in known):
            continue
        if row["sync_problem"]:
            skipped.append(f"{row['order_key']} ({row['sync_problem']})")
            continue
        chosen.append(row)
    return chosen, inputs.items_of([r["order_key"] for r in chosen]), skipped


# A destination's client: the reverse sync pushes to these two.
Client = CymbalResource | CordialResource


def push_events(client: CymbalResource, run: Run) -> SyncOutcome:
    dest = BY_ASSET["sync_cymbal_events"]
    log = SyncLog(dest.log_name)
    records, skipped = [], []
    for ev in inputs.events():
        missing = pl.cymbal_event_missing(ev)
        if missing:
            skipped.append(f"{ev['event_key']} (missing {', '.join(missing)})")
            continue
        payload = pl.cymbal_event(ev)
        records.append(Record(ev["event_key"], payload, pl.payload_hash(payload)))
    out = sync_records(dest.log_name, records, client.create_events, **_kwargs(dest, run, log))
    out.skipped_ids = skipped
    return out


def push_orders(dest: Destination, client: Client, run: Run) -> SyncOutcome:
    log = SyncLog(dest.log_name)
    rows, items, skipped = _order_rows(run, log)
    records = []
    for row in rows:
        if dest.provider == "cymbal":
            missing = pl.cymbal_order_missing(row)
            if missing:
                skipped.append(f"{row['order_key']} (missing {', '.join(missing)})")
                continue
            payload = pl.cymbal_order(row, items.get(row["order_key"], []))
        else:
            if not pl.reachable(row):
                skipped.append(f"{row['order_key']} (no email or phone)")
                continue
            payload = pl.cordial_order(row, items.get(row["order_key"], []))
        records.append(Record(row["order_key"], payload, pl.payload_hash(payload)))
    send = client.create_orders if dest.provider == "cymbal" else _one_by_one(client.upsert_order)
    out = sync_records(dest.log_name, records, send, per_record=dest.provider == "cordial",
                       **_kwargs(dest, run, log))
    out.skipped_ids = skipped
    return out


def _one_by_one(post: Callable[[dict[str, Any]], Any]) -> Callable[[list[dict[str, Any]]], None]:
    def send(payloads: list[dict[str, Any]]) -> None:
        for p in payloads:
            post(p)

    return send


def push_contacts(dest: Destination, client: Client, run: Run) -> SyncOutcome:
    """Consenting buyers, with the opt-in decided per contact against this destination's log."""
    log = SyncLog(dest.log_name)
    state = log.state()
    log_exists = log.exists()
    fresh = consent.fresh_days()
    records, skipped, carried = [], [], []
    asserted = 0
    for row in inputs.contacts():
        key = consent.contact_key(row["contact_identity"])
        if dest.provider == "cordial" and not row["email"]:
            skipped.append(f"{key} (no email)")
            continue
        previous = state.get(key)
        if previous is None:  # history logged by an earlier version under the unkeyed id
            legacy = consent.legacy_contact_key(row["contact_identity"])
            previous = state.get(legacy)
            if previous is not None:
                carried.append(legacy)
        last_sent_at = previous.last_sent_at if previous is not None else None
        opt_in = consent.may_assert_opt_in(row["consent_answered_at"], last_sent_at, log_exists, run.now, fresh)
        payload = (pl.cymbal_contact if dest.provider == "cymbal" else pl.cordial_contact)(row, opt_in)
        digest = consent.content_hash(payload, row["consent_answered_at"])
        if previous is not None and previous.last_sent_hash == digest:
            opt_in = False  # unchanged: nothing is sent, so nothing is asserted
        asserted += opt_in
        records.append(Record(key, payload, digest))
    send = _one_by_one(client.upsert_contact) if dest.provider == "cordial" else client.create_contacts
    out = sync_records(dest.log_name, records, send, per_record=True, **_kwargs(dest, run, log))
    out.skipped_ids = skipped
    out.extra_metadata["opt_in_asserted"] = asserted
    if carried:
        # A legacy id is dropped once its contact was accepted under the keyed id.
        now_sent = {rid for rid, st in log.state().items() if st.status == SENT}
        done = {consent.legacy_contact_key(r["contact_identity"]) for r in inputs.contacts()
                if consent.contact_key(r["contact_identity"]) in now_sent}
        log.compact(forget=[legacy for legacy in carried if legacy in done])
    return out


def _push(dest: Destination, client: Client, run: Run) -> SyncOutcome:
    if dest.asset == "sync_cymbal_events":
        return push_events(client, run)
    if dest.asset.endswith("_orders"):
        return push_orders(dest, client, run)
    return push_contacts(dest, client, run)


def consent_questions_table() -> str:
    """The checkout question labels seen and which are taken as consent, as Markdown (labels only)."""
    rows = inputs.consent_questions()
    lines = ["| provider | question | id | consent question | answers | yes |", "|---|---|---|---|---|---|"]
    for r in rows:
        label = str(r["question_label"]).replace("|", "\\|")
        lines.append(f"| {r['provider']} | {label} | {r['question_id'] or ''} | "
                     f"{'yes' if r['is_consent_question'] else 'no'} | {r['answers']} | {r['yes_answers']} |")
    return "\n".join(lines)


# --- the guard ------------------------------------------------------------------------------------

def blocking_check_keys(model_names: Sequence[str]) -> list[dg.AssetCheckKey]:
    """The blocking checks (dbt tests of severity error) on these sync models."""
    from assets.dbt import marquee_dbt_models  # the dbt assets define the checks on the models

    keys = {inputs.model_key(n) for n in model_names}
    return sorted((spec.key for spec in marquee_dbt_models.check_specs if spec.asset_key in keys and spec.blocking),
                  key=lambda k: k.to_user_string())


def failed_blocking_checks(instance: dg.DagsterInstance, model_names: Sequence[str]) -> list[str]:
    """The blocking checks on these sync models whose latest evaluation did not pass."""
    check_keys = blocking_check_keys(model_names)
    if not check_keys:
        return []
    latest = instance.event_log_storage.get_latest_asset_check_execution_by_key(check_keys)
    failed = []
    for key in check_keys:
        record = latest.get(key)
        evaluation = getattr(getattr(record, "event", None), "asset_check_evaluation", None) if record else None
        if evaluation is not None and not evaluation.passed:
            failed.append(f"{key.asset_key.to_user_string()}: {key.name}")
    return failed


# --- the multi-asset ------------------------------------------------------------------------------

def _configured(context: dg.AssetExecutionContext, provider: str, client: Client) -> Client | None:
    if not client.configured():
        context.log.info(f"{provider}: skipped, not configured (set {client.credential_hint()}); nothing was sent.")
        return None
    return client


def _run(context: dg.AssetExecutionContext, config: SyncConfig) -> Run:
    window = context.partition_time_window
    keys = context.partition_keys
    return Run(partition=keys[0] if len(keys) == 1 else f"{keys[0]}..{keys[-1]}", run_id=context.run.run_id,
               batch=batch_size(config), concurrency=concurrency(config), window=(window.start, window.end),
               now=datetime.now(UTC))


def _chain(steps: list[tuple[Destination, Callable[[], SyncOutcome]]],
           results: dict[str, SyncOutcome | BaseException]) -> None:
    """One destination's pushes, in order (Cymbal orders name events sent just before them)."""
    for dest, step in steps:
        started = time.monotonic()
        try:
            outcome = step()
            outcome.extra_metadata["seconds"] = round(time.monotonic() - started, 2)
            results[dest.asset] = outcome
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread, which raises
            results[dest.asset] = exc


def _specs() -> list[dg.AssetSpec]:
    specs = []
    for dest in DESTINATIONS:
        deps = [inputs.model_key(n) for n in dest.inputs]
        if dest.asset == "sync_cymbal_orders":
            deps.append(dg.AssetKey("sync_cymbal_events"))
        specs.append(dg.AssetSpec(
            dest.asset, group_name=GROUP, kinds={dest.provider}, deps=deps, skippable=True,
            description=_DOCS[dest.asset]))
    return specs


_DOCS = {
    "sync_cymbal_events": "Every event of Ticket Tailor and Sympla (sync.sync_events) to Cymbal "
                          "`POST /v1/partners/events`: ids `tickettailor:ev_…` / `sympla:…`, start in UTC "
                          "(`2024-03-02T15:30:00Z`), status `live` or `canceled`. Not windowed: events are few "
                          "and the log makes a repeat free.",
    "sync_cymbal_orders": "Revenue-counting orders created in the partition window (sync.sync_orders) to Cymbal "
                          "`POST /v1/partners/orders`, in minor units with the ISO-4217 `currency_code`; an order "
                          "Cymbal already has is re-sent when it changes (a refund, a cancellation). "
                          "`marketing_opt_ins` is always null: orders never subscribe anyone.",
    "sync_cymbal_contacts": "Every buyer whose latest explicit answer to the consent question is yes "
                            "(sync.sync_contacts) to Cymbal `POST /v1/partners/contact`, one per request. The "
                            "opt-in is `true` only for an answer newer than the last successful send of that "
                            "contact (else null: an unsubscribe made in Cymbal is never overridden). Contact ids "
                            "in the log and metadata are keyed hashes (`ct_…`).",
    "sync_cordial_contacts": "The same consenting buyers, those with an email, to Cordial `upsertContact`; "
                             "`subscribeStatus: subscribed` only under the same rule as Cymbal's opt-in.",
    "sync_cordial_orders": "The orders synced to Cymbal, to Cordial `upsertOrder`: amounts in decimal major "
                           "units converted exactly from minor units, `purchaseDate` ISO-8601 UTC, `orderID` "
                           "namespaced by provider.",
}


@dg.multi_asset(
    name="reverse_sync",
    specs=_specs(),
    partitions_def=daily_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    can_subset=True,
)
def reverse_sync(context: dg.AssetExecutionContext, config: SyncConfig, cymbal: CymbalResource,
                 cordial: CordialResource) -> Iterator[dg.MaterializeResult]:
    """Push the selected sync assets; Cymbal and Cordial in parallel, each in order."""
    selected = [d for d in DESTINATIONS if dg.AssetKey(d.asset) in context.selected_asset_keys]
    blocked = failed_blocking_checks(context.instance, sorted({n for d in selected for n in d.inputs}))
    if blocked:
        raise dg.Failure(
            description=("reverse sync: not started, because blocking checks on its input models failed in their "
                         f"latest run: {'; '.join(blocked)}. Fix the data or the models and rebuild them "
                         "(marts_job / `marquee run`); nothing was sent."),
            allow_retries=False)
    run = _run(context, config)
    chains: dict[str, list[tuple[Destination, Callable[[], SyncOutcome]]]] = {}
    clients: dict[str, Client] = {"cymbal": cymbal, "cordial": cordial}
    for dest in selected:
        client = _configured(context, dest.provider, clients[dest.provider])
        if client is None:
            continue
        chains.setdefault(dest.provider, []).append((dest, functools.partial(_push, dest, client, run)))

    results: dict[str, SyncOutcome | BaseException] = {}
    threads = [threading.Thread(target=_chain, args=(steps, results), name=f"reverse-sync-{provider}")
               for provider, steps in chains.items()]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    questions = None
    problems: list[str] = []
    errors: list[BaseException] = []
    for dest in selected:
        result = results.get(dest.asset)
        if result is None:
            continue
        if isinstance(result, BaseException):
            errors.append(result)
            continue
        _log(context, result)
        if result.failed or result.stopped:
            problems.append(_failure_line(result))
            continue
        metadata = result.metadata()
        if dest.asset.endswith("_contacts"):
            questions = questions or consent_questions_table()
            metadata["consent_questions"] = dg.MetadataValue.md(questions)
        yield dg.MaterializeResult(asset_key=dest.asset, metadata=metadata)
    for error in errors:
        if isinstance(error, dg.Failure):  # auth refusals and the like carry their own message
            raise error
        if isinstance(error, inputs.SyncInputMissing):
            raise dg.Failure(description=str(error), allow_retries=False) from error
        raise error
    if problems:
        raise dg.Failure(description=" ".join(problems))


def _log(context: dg.AssetExecutionContext, out: SyncOutcome) -> None:
    context.log.info(f"{out.destination}: {out.sent} sent, {out.unchanged} unchanged, {out.failed} failed, "
                     f"{len(out.skipped_ids)} skipped, {out.requests} request(s) in "
                     f"{out.extra_metadata.get('seconds', 0):.1f}s")
    if out.skipped_ids:
        context.log.warning(f"{out.destination}: {len(out.skipped_ids)} record(s) cannot be sent and were not: "
                            f"{shown(out.skipped_ids)}")


def _failure_line(out: SyncOutcome) -> str:
    if out.stopped:
        return f"{out.stopped} ({out.sent} sent and logged, {out.failed} not accepted or not attempted.)"
    first = out.failed_ids[0]
    return (f"{out.destination}: {out.failed} record(s) were not accepted and will be retried next run "
            f"({out.sent} sent and logged, {out.unchanged} unchanged). Failed ids: {shown(out.failed_ids)}. "
            f"First reason: {out.reasons.get(first, '')}.")


def _no_failures_check(dest: Destination) -> dg.AssetChecksDefinition:
    @dg.asset_check(asset=dest.asset, name="no_failed_records",
                    description=f"No record's latest attempt to {dest.log_name} failed (per the sync log).")
    def _check() -> dg.AssetCheckResult:
        failed = sorted(rid for rid, st in SyncLog(dest.log_name).state().items() if st.status == FAILED)
        return dg.AssetCheckResult(
            passed=not failed,
            metadata={"failed": len(failed), **({"failed_ids": shown(failed)} if failed else {})},
        )

    return _check


SYNC_ASSETS = [reverse_sync]
SYNC_CHECKS = [_no_failures_check(d) for d in DESTINATIONS]
