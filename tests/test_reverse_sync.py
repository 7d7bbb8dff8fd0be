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
def sandbox(monkeypatch):
    monkeypatch.setenv("MARQUEE_START_DATE", "2026-01-01")
    monkeypatch.delenv("MARQUEE_CONSENT_LABEL", raising=False)
    with start_sandbox(anchor=ANCHOR) as sb:
        for key, value in sb.env.items():
            monkeypatch.setenv(key, value)
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
        yield sb


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


def answered_yes(questions, label="marketing") -> bool:
    if isinstance(questions, dict):
        questions = [questions]
    for q in questions or []:
        text = q.get("question") or q.get("name") or ""
        answer = q.get("answer", q.get("value"))
        if label in text.lower() and isinstance(answer, str) and answer.strip().lower() in YES:
            return True
    return False


def expected():
    """What should reach the destinations, from the landed raw JSON."""
    lo, hi = datetime(2026, 3, 13, tzinfo=UTC), datetime(2026, 3, 15, tzinfo=UTC)
    tt = [orjson.loads(r["_raw"]) for r in lake_rows("tickettailor", "orders")]
    tt = [o for o in tt if lo <= datetime.fromtimestamp(o["created_at"], UTC) < hi]
    sy_rows = [r for r in lake_rows("sympla", "orders") if lo <= r["order_date"] < hi]
    parts: dict = {}
    for p in lake_rows("sympla", "participants"):
        parts.setdefault(p["order_id"], []).append(orjson.loads(p["_raw"]))
    orders, contacts = {}, set()
    for o in tt:
        if o["status"] == "completed":
            orders[f"tickettailor:{o['id']}"] = {"cents": o["total"], "refund": o["refund_amount"],
                                                 "currency": o["currency"]["code"].upper(),
                                                 "created": datetime.fromtimestamp(o["created_at"], UTC),
                                                 "consent": answered_yes(o["buyer_details"].get("custom_questions"))}
        if answered_yes(o["buyer_details"].get("custom_questions")):
            contacts.add(o["buyer_details"]["email"].lower())
    for row in sy_rows:
        o = orjson.loads(row["_raw"])
        buyer = o["buyer_email"].lower()
        consent = any(p.get("email", "").lower() == buyer and answered_yes(p.get("custom_form"))
                      for p in parts.get(o["id"], []))
        if o["order_status"] == "APPROVED":
            orders[f"sympla:{o['id']}"] = {"cents": int(Decimal(str(o["order_total_sale_price"])) * 100),
                                           "refund": 0, "currency": "BRL", "created": row["order_date"],
                                           "consent": consent}
        if consent:
            contacts.add(buyer)
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
