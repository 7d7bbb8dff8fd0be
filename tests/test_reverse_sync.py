"""Reverse sync against the sandbox: the sandbox's record of what it accepted is the oracle.

Raw data is landed from the sandbox with the landing functions, then the five sync assets run for a
two-day partition range. Expected payload sets are computed here from the landed `_raw` JSON with
independent, simple code (DESIGN.md point 8 and the revenue rules), not with assets/sync_payloads.py.
"""

from __future__ import annotations

import os
import re
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import dagster as dg
import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from assets import reverse_sync as rs
from assets.sync_log import FAILED, SENT, SyncLog
from pipelines.sandbox import start_sandbox
from resources.errors import ProviderRequestError, ProviderUnavailableError

ANCHOR = date(2026, 3, 15)
# The sync runs over a two-day partition range (a single-run backfill); only the second day's orders
# are landed, which keeps the test short (every contact and Cordial record is one request) and shows
# that a day with no landed data is simply empty.
DAYS = [date(2026, 3, 14)]
RANGE_TAGS = {"dagster/asset_partition_range_start": "2026-03-13",
              "dagster/asset_partition_range_end": "2026-03-14"}
YES = {"yes", "sim", "true", "1"}


@pytest.fixture
def bare_sandbox(monkeypatch):
    """The sandbox with nothing landed yet: the test lands each entity when the story needs it."""
    monkeypatch.setenv("MARQUEE_START_DATE", "2026-01-01")
    monkeypatch.delenv("MARQUEE_CONSENT_LABEL", raising=False)
    with start_sandbox(anchor=ANCHOR) as sb:
        for key, value in sb.env.items():
            monkeypatch.setenv(key, value)
        yield sb


@pytest.fixture
def sandbox(bare_sandbox):
    """The sandbox with DAYS' orders, the events and the participants landed."""
    from assets import sympla, tickettailor
    from resources.registry import build_resources

    res = build_resources()
    tickettailor.land_orders(res["tickettailor"], DAYS)
    tickettailor.land_events(res["tickettailor"], [ANCHOR])
    sympla.land_events(res["sympla"], [ANCHOR])
    sympla.land_orders(res["sympla"], DAYS)
    sympla.land_participants(res["sympla"], [date(2026, 2, 1) + timedelta(days=i) for i in range(90)])
    for r in res.values():
        r.close()
    return bare_sandbox


def run_sync(resources: dict | None = None, raise_on_error: bool = True, only: list[str] | None = None):
    from resources.registry import build_resources

    return dg.materialize(rs.SYNC_ASSETS, resources=resources or build_resources(), tags=RANGE_TAGS,
                          raise_on_error=raise_on_error,
                          selection=dg.AssetSelection.assets(*only) if only else None)


def lake_rows(provider: str, entity: str) -> list[dict]:
    base = Path(os.environ["MARQUEE_DATA_DIR"]) / "lake" / "raw" / provider / entity
    rows: dict = {}
    for f in sorted(base.glob("date=*/*.parquet")):
        for row in pq.read_table(f).to_pylist():
            if row["id"] not in rows or row["_loaded_at"] >= rows[row["id"]]["_loaded_at"]:
                rows[row["id"]] = row
    return list(rows.values())


def answer_of(questions, label="marketing") -> bool | None:
    """One order's consent answer: True yes, False any other non-blank answer, None unanswered."""
    if isinstance(questions, dict):
        questions = [questions]
    answers = []
    for q in questions or []:
        text = q.get("question") or q.get("name") or ""
        answer = q.get("answer", q.get("value"))
        if label in text.lower() and isinstance(answer, str) and answer.strip():
            answers.append(answer.strip().lower())
    if any(a in YES for a in answers):
        return True
    return False if answers else None


def sympla_answer(order: dict, participants: list[dict]) -> bool | None:
    """A Sympla order's answer: the buyer's own participant(s) decide, a guest's answer never does."""
    buyer = order["buyer_email"].lower()
    answers = [answer_of(p.get("custom_form")) for p in participants if p.get("email", "").lower() == buyer]
    if True in answers:
        return True
    return False if False in answers else None


def latest_yes(answers: list[tuple[datetime, str, str, bool | None]]) -> set[str]:
    """Emails whose latest explicit answer, in creation order, is yes (no answer changes nothing)."""
    latest: dict[str, bool] = {}
    for _created, _order_key, email, answer in sorted(answers, key=lambda a: (a[0], a[1])):
        if answer is not None:
            latest[email] = answer
    return {email for email, answer in latest.items() if answer}


def expected():
    """What should reach the destinations, from the landed raw JSON."""
    lo, hi = datetime(2026, 3, 13, tzinfo=UTC), datetime(2026, 3, 15, tzinfo=UTC)
    # Orders: those created in the synced window. Contacts: every consenting buyer in the lake,
    # whatever their order's day (consent belongs to the person).
    tt = [orjson.loads(r["_raw"]) for r in lake_rows("tickettailor", "orders")]
    sy_rows = lake_rows("sympla", "orders")
    parts: dict = {}
    for p in lake_rows("sympla", "participants"):
        parts.setdefault(p["order_id"], []).append(orjson.loads(p["_raw"]))
    # A buyer is a contact iff their latest explicit answer (over both providers) is yes.
    orders, answers = {}, []
    for o in tt:
        created = datetime.fromtimestamp(o["created_at"], UTC)
        answer = answer_of(o["buyer_details"].get("custom_questions"))
        if o["status"] == "completed" and lo <= created < hi:
            orders[f"tickettailor:{o['id']}"] = {"cents": o["total"], "refund": o["refund_amount"],
                                                 "currency": o["currency"]["code"].upper(),
                                                 "created": created, "consent": answer is True}
        answers.append((created, f"tickettailor:{o['id']}", o["buyer_details"]["email"].lower(), answer))
    for row in sy_rows:
        o = orjson.loads(row["_raw"])
        answer = sympla_answer(o, parts.get(o["id"], []))
        if o["order_status"] == "APPROVED" and lo <= row["order_date"] < hi:
            orders[f"sympla:{o['id']}"] = {"cents": int(Decimal(str(o["order_total_sale_price"])) * 100),
                                           "refund": 0, "currency": "BRL", "created": row["order_date"],
                                           "consent": answer is True}
        answers.append((row["order_date"], f"sympla:{o['id']}", o["buyer_email"].lower(), answer))
    contacts = latest_yes(answers)
    events = {f"tickettailor:{r['id']}": r["start_at"] for r in lake_rows("tickettailor", "events")}
    events |= {f"sympla:{r['id']}": r["start_date"] for r in lake_rows("sympla", "events")}
    return orders, contacts, events


def received(sb, provider: str, endpoint: str) -> list[dict]:
    return [r.payload for r in sb.ctx.recorder.items(provider, endpoint)]


def push_requests(sb) -> int:
    return sum(sb.ctx.request_counts.get(p, 0) for p in ("cymbal", "cordial"))


def sync_metadata(result) -> dict[str, dict]:
    out = {}
    for event in result.get_asset_materialization_events():
        meta = event.materialization.metadata
        out[event.asset_key.to_user_string()] = {k: meta[k].value for k in ("sent", "unchanged", "failed")}
    return out


def test_first_run_sends_exactly_the_expected_payloads(sandbox):
    exp_orders, exp_contacts, exp_events = expected()
    assert exp_orders and exp_contacts and len(exp_events) > 2

    result = run_sync()
    assert result.success

    # Cymbal events: every event of both providers, UTC Z start equal to the landed start.
    events = {e["id"]: e for e in received(sandbox, "cymbal", "events")}
    assert set(events) == set(exp_events)
    for eid, ev in events.items():
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z", ev["start_datetime"])
        assert datetime.fromisoformat(ev["start_datetime"].replace("Z", "+00:00")) == exp_events[eid]
        assert ev["status"] in ("live", "canceled") and ev["url"] and ev["image_url"] and ev["location"]

    # Cymbal orders: exactly the revenue-counting orders, amounts in cents, currency codes on items.
    orders = {o["id"]: o for o in received(sandbox, "cymbal", "orders")}
    assert set(orders) == set(exp_orders)
    for oid, o in orders.items():
        assert o["total"] == exp_orders[oid]["cents"]
        assert all(i["currency_code"] == exp_orders[oid]["currency"] for i in o["items"])
        assert o["event_id"] in exp_events
        assert o["marketing_opt_ins"]["email"] is (True if exp_orders[oid]["consent"] else None), oid
    assert len({p["currency_code"] for p in orders.values()} | {"BRL"}) >= 3

    # Contacts: consenting buyers only, subscribed.
    cy_contacts = received(sandbox, "cymbal", "contact")
    assert {c["email"].lower() for c in cy_contacts} == exp_contacts
    assert len(cy_contacts) == len(exp_contacts)
    assert all(c["opt_ins"]["email"] is True for c in cy_contacts)
    co_contacts = received(sandbox, "cordial", "upsertContact")
    assert {c["identifiers"]["email"].lower() for c in co_contacts} == exp_contacts

    # Cordial orders: same ids; decimal major units exactly equal to cents / 10^exponent; ISO UTC date.
    co_orders = {o["orderID"]: o for o in received(sandbox, "cordial", "upsertOrder")}
    assert set(co_orders) == set(exp_orders)
    for oid, o in co_orders.items():
        exponent = 0 if exp_orders[oid]["currency"] == "JPY" else 2
        text = orjson.dumps(o["totalAmount"]).decode()
        assert Decimal(text) == Decimal(exp_orders[oid]["cents"]).scaleb(-exponent), (oid, text)
        assert datetime.fromisoformat(o["purchaseDate"]) == exp_orders[oid]["created"]
        assert o["purchaseDate"].endswith("+00:00")

    meta = sync_metadata(result)
    assert meta["sync_cymbal_orders"] == {"sent": len(exp_orders), "unchanged": 0, "failed": 0}
    assert meta["sync_cymbal_contacts"]["sent"] == len(exp_contacts)
    assert meta["sync_cordial_orders"]["sent"] == len(exp_orders)

    # Nothing in the logs' rows or the metadata carries an email.
    for dest in ("cymbal_contacts", "cordial_contacts"):
        assert not any("@" in r["record_id"] for r in SyncLog(dest).rows())
    assert "@" not in repr([e.materialization.metadata for e in result.get_asset_materialization_events()])


def test_second_run_sends_nothing_and_a_refund_is_resent_once(sandbox):
    assert run_sync().success
    before = push_requests(sandbox)
    n_received = len(sandbox.ctx.recorder.items())

    second = run_sync()
    assert second.success
    assert push_requests(sandbox) == before, "an unchanged re-run must not call the APIs"
    assert len(sandbox.ctx.recorder.items()) == n_received
    assert all(m["sent"] == 0 and m["failed"] == 0 for m in sync_metadata(second).values())

    # A refund lands for one completed Ticket Tailor order: a newer version of its raw row.
    target = next(r for r in lake_rows("tickettailor", "orders")
                  if orjson.loads(r["_raw"])["status"] == "completed" and r["refund_amount"] == 0
                  and date(2026, 3, 13) <= r["created_at"].date() <= date(2026, 3, 14))
    raw = orjson.loads(target["_raw"])
    raw["refund_amount"] = 1000
    day_dir = Path(os.environ["MARQUEE_DATA_DIR"]) / "lake/raw/tickettailor/orders" / f"date={target['_partition']}"
    newer = {**target, "_raw": orjson.dumps(raw).decode(), "refund_amount": 1000,
             "_loaded_at": target["_loaded_at"] + timedelta(hours=1)}
    schema = pq.read_schema(next(day_dir.glob("*.parquet")))
    pq.write_table(pa.Table.from_pylist([newer], schema=schema), day_dir / "part-refund.parquet")

    sandbox.ctx.recorder.clear()
    third = run_sync()
    assert third.success
    oid = f"tickettailor:{raw['id']}"
    cy = received(sandbox, "cymbal", "orders")
    co = received(sandbox, "cordial", "upsertOrder")
    assert [o["id"] for o in cy] == [oid] and cy[0]["refunded_amount"] == 1000
    assert [o["orderID"] for o in co] == [oid] and co[0]["properties"]["refundedAmount"] == 10
    assert received(sandbox, "cymbal", "contact") == [] and received(sandbox, "cymbal", "events") == []

    sandbox.ctx.recorder.clear()
    assert run_sync().success
    assert sandbox.ctx.recorder.items() == []


def test_failed_batch_is_logged_fails_loudly_and_is_retried_next_run(sandbox):
    from resources.cymbal import CymbalResource
    from resources.registry import build_resources

    res = build_resources()
    # Cymbal unreachable (nothing listens on port 9): the core retries, then gives up.
    res["cymbal"] = CymbalResource(api_key="k", base_url="http://127.0.0.1:9/cymbal", max_retry_seconds=0.3,
                                   backoff_base_seconds=0.01, backoff_max_seconds=0.05, timeout_seconds=1)
    only = ["sync_cymbal_events", "sync_cymbal_contacts", "sync_cordial_orders"]
    result = run_sync(res, raise_on_error=False, only=only)
    assert not result.success
    failures = [e for e in result.all_events if e.is_step_failure]
    assert {e.step_key for e in failures} >= {"sync_cymbal_events", "sync_cymbal_contacts"}
    message = next(e for e in failures if e.step_key == "sync_cymbal_events").step_failure_data.error.message
    assert "cymbal_events" in message and "tickettailor:ev_" in message
    # Cordial succeeded in the same run and was logged.
    assert received(sandbox, "cordial", "upsertOrder")
    state = SyncLog("cymbal_events").state()
    assert state and all(s.status == FAILED and s.last_sent_hash is None for s in state.values())

    # Next run with Cymbal back: the failed records go out, nothing else is re-sent.
    sandbox.ctx.recorder.clear()
    second = run_sync(only=only)
    assert second.success
    assert received(sandbox, "cordial", "upsertOrder") == []
    assert len(received(sandbox, "cymbal", "events")) == len(state)
    assert all(s.status == SENT for s in SyncLog("cymbal_events").state().values())


def test_cordial_unconfigured_is_skipped(sandbox, monkeypatch):
    monkeypatch.delenv("CORDIAL_API_KEY")
    result = run_sync(only=["sync_cordial_orders", "sync_cordial_contacts", "sync_cymbal_events"])
    assert result.success
    keys = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert "sync_cordial_orders" not in keys and "sync_cymbal_events" in keys
    assert received(sandbox, "cordial", "upsertOrder") == []


def test_consent_label_is_configurable(sandbox, monkeypatch):
    monkeypatch.setenv("MARQUEE_CONSENT_LABEL", "no question has this label")
    assert run_sync(only=["sync_cymbal_orders", "sync_cymbal_contacts", "sync_cordial_contacts"]).success
    assert received(sandbox, "cymbal", "contact") == []
    assert received(sandbox, "cordial", "upsertContact") == []
    orders = received(sandbox, "cymbal", "orders")
    assert orders and all(o["marketing_opt_ins"] == {"email": None, "sms": None} for o in orders)


# --- the engine, without HTTP -----------------------------------------------------------------------

def test_engine_isolates_a_rejected_record_and_retries_it():
    sent: list[list[str]] = []

    def send(batch):
        ids = [p["id"] for p in batch]
        if "r3" in ids:
            raise ProviderRequestError("cymbal: 422 validation error", provider="cymbal")
        sent.append(ids)

    records = [(f"r{i}", {"id": f"r{i}", "v": 1}) for i in range(8)]
    out = rs.sync_records("test_dest", records, send, batch=4)
    assert out.sent == 7 and out.failed_ids == ["r3"]
    assert sorted(i for b in sent for i in b) == sorted(f"r{i}" for i in range(8) if i != 3)
    # Re-run: only the failed one is tried again (and now accepted).
    sent.clear()
    out2 = rs.sync_records("test_dest", records, lambda b: sent.append([p["id"] for p in b]), batch=4)
    assert sent == [["r3"]] and out2.sent == 1 and out2.unchanged == 7


def test_engine_stops_when_destination_unavailable_and_logs_every_record():
    calls = []

    def send(batch):
        calls.append(batch)
        raise ProviderUnavailableError("cymbal: gave up after retries", provider="cymbal")

    records = [(f"r{i}", {"id": f"r{i}"}) for i in range(5)]
    out = rs.sync_records("test_down", records, send, batch=2)
    assert len(calls) == 1, "no further batches once the destination is unavailable"
    assert sorted(out.failed_ids) == [f"r{i}" for i in range(5)]
    state = SyncLog("test_down").state()
    assert {k for k, s in state.items() if s.status == FAILED} == {f"r{i}" for i in range(5)}
    assert all("gave up" in (s.reason or "") for s in state.values())


# --- consent that lands after the order's partition was synced ---------------------------------------

EARLY = date(2026, 2, 15)  # the orders' creation day: an early partition
LATER_UNRELATED = [date(2026, 3, 10), date(2026, 3, 12)]  # no order of these days is ever landed
CONTACT_ASSETS = ["sync_cymbal_contacts", "sync_cordial_contacts"]



def land(what: str, days: list[date], provider: str = "sympla") -> None:
    from assets import sympla, tickettailor
    from resources.registry import build_resources

    res = build_resources()
    module = {"sympla": sympla, "tickettailor": tickettailor}[provider]
    try:
        getattr(module, f"land_{what}")(res[provider], days)
    finally:
        for r in res.values():
            r.close()


def run_partition(day: date, only: list[str]):
    from resources.registry import build_resources

    return dg.materialize(rs.SYNC_ASSETS, resources=build_resources(), partition_key=day.isoformat(),
                          selection=dg.AssetSelection.assets(*only))


def sympla_buyers() -> tuple[set[str], set[str], dict[str, int]]:
    """(consenting buyer emails, other buyer emails, days from order to event start per consenting
    buyer) over every landed Sympla order, from the raw JSON; the buyer's own participant decides, and
    the buyer's latest explicit answer wins."""
    parts: dict = {}
    for p in lake_rows("sympla", "participants"):
        parts.setdefault(p["order_id"], []).append(orjson.loads(p["_raw"]))
    starts = {r["id"]: r["start_date"] for r in lake_rows("sympla", "events")}
    everyone, answers, gap = set(), [], {}
    for row in lake_rows("sympla", "orders"):
        o = orjson.loads(row["_raw"])
        buyer = o["buyer_email"].lower()
        everyone.add(buyer)
        answer = sympla_answer(o, parts.get(o["id"], []))
        answers.append((row["order_date"], f"sympla:{o['id']}", buyer, answer))
        if answer:
            gap[buyer] = max(gap.get(buyer, 0), (starts[o["event_id"]].date() - row["order_date"].date()).days)
    yes = latest_yes(answers)
    return yes, everyone - yes, {b: d for b, d in gap.items() if b in yes}


def tickettailor_buyers() -> tuple[set[str], set[str]]:
    """(consenting, other) Ticket Tailor buyer emails over every landed order: consent is on the order,
    and the buyer's latest explicit answer wins."""
    everyone, answers = set(), []
    for r in lake_rows("tickettailor", "orders"):
        o = orjson.loads(r["_raw"])
        email = o["buyer_details"]["email"].lower()
        everyone.add(email)
        answers.append((datetime.fromtimestamp(o["created_at"], UTC), f"tickettailor:{o['id']}", email,
                        answer_of(o["buyer_details"].get("custom_questions"))))
    yes = latest_yes(answers)
    return yes, everyone - yes


def contact_emails(sb) -> tuple[list[str], list[str]]:
    return ([c["email"].lower() for c in received(sb, "cymbal", "contact")],
            [c["identifiers"]["email"].lower() for c in received(sb, "cordial", "upsertContact")])


def test_consent_landing_after_the_order_window_is_synced_by_a_later_partition(bare_sandbox):
    sb = bare_sandbox
    land("events", [ANCHOR])
    land("orders", [EARLY])
    land("orders", [EARLY], provider="tickettailor")
    tt_yes, tt_others = tickettailor_buyers()
    assert tt_yes and tt_others

    # 1. The orders' own partition is synced before any participant landed: a Sympla buyer's consent
    #    is unknown, so only Ticket Tailor buyers (consent on the order) are contacts, and the Sympla
    #    orders carry no opt-in (null: leave as is, never "false").
    first = run_partition(EARLY, [*CONTACT_ASSETS, "sync_cymbal_orders"])
    assert first.success
    cy, co = contact_emails(sb)
    cy_seen, co_seen = list(cy), list(co)
    assert sorted(cy) == sorted(tt_yes) and sorted(co) == sorted(tt_yes)
    orders = [o for o in received(sb, "cymbal", "orders") if o["id"].startswith("sympla:")]
    assert orders and all(o["marketing_opt_ins"] == {"email": None, "sms": None} for o in orders)

    # 2. Weeks later the events start and their participants land, under the events' start days.
    event_ids = {orjson.loads(r["_raw"])["event_id"] for r in lake_rows("sympla", "orders")}
    start_days = sorted({r["start_date"].date() for r in lake_rows("sympla", "events") if r["id"] in event_ids})
    assert start_days and min(start_days) > EARLY + timedelta(days=8), "outside the orders' 8-day reload"
    land("participants", start_days)
    consenting, others, gap = sympla_buyers()
    assert consenting and others, "the sandbox must give both consenting and non-consenting buyers"
    assert max(gap.values()) > 8
    assert not consenting & tt_yes, "distinct people, so 'exactly once' below is about Sympla"

    # 3. The next run of a later partition with no orders of its own sends every consenting buyer.
    sb.ctx.recorder.clear()
    later = run_partition(LATER_UNRELATED[0], [*CONTACT_ASSETS, "sync_cymbal_orders"])
    assert later.success
    cy, co = contact_emails(sb)
    cy_seen += cy
    co_seen += co
    assert sorted(cy) == sorted(consenting), "each new consenting buyer exactly once, to Cymbal"
    assert sorted(co) == sorted(consenting), "each new consenting buyer exactly once, to Cordial"
    assert all(c["opt_ins"]["email"] is True for c in received(sb, "cymbal", "contact"))
    # Orders carry the opt-ins known when they were sent; the EARLY orders are not re-sent for it.
    assert received(sb, "cymbal", "orders") == []
    meta = sync_metadata(later)
    assert meta["sync_cymbal_contacts"]["sent"] == len(consenting)
    assert "@" not in repr([e.materialization.metadata for e in later.get_asset_materialization_events()])
    assert not any("@" in r["record_id"] for d in ("cymbal_contacts", "cordial_contacts")
                   for r in SyncLog(d).rows())

    # 4. Another run, of yet another partition, with nothing changed: no request at all.
    sb.ctx.recorder.clear()
    before = push_requests(sb)
    again = run_partition(LATER_UNRELATED[1], CONTACT_ASSETS)
    assert again.success
    assert sb.ctx.recorder.items() == [] and push_requests(sb) == before
    assert all(m["sent"] == 0 and m["failed"] == 0 for m in sync_metadata(again).values())
    assert sync_metadata(again)["sync_cymbal_contacts"]["unchanged"] == len(consenting | tt_yes)

    # Re-syncing the orders' own partition does not send the contacts a second time either.
    assert run_partition(EARLY, CONTACT_ASSETS).success
    cy, co = contact_emails(sb)
    assert cy == [] and co == []

    # A buyer whose latest answer is not a yes (no answer, "Não", or only a guest's "Sim") was never sent.
    never = (others | tt_others) - (consenting | tt_yes)
    assert never and not never & (set(cy_seen) | set(co_seen))
    assert len(cy_seen) == len(set(cy_seen)) and len(co_seen) == len(set(co_seen))
