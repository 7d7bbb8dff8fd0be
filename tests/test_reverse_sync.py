"""Reverse sync against the sandbox over real HTTP: the sandbox's record of what it accepted is the oracle.

Raw data is landed from the sandbox with the landing functions, the dbt models are built, then the
sync assets run for a two-day partition range. Expected payloads are computed here from the landed
`_raw` JSON with independent, simple code (DESIGN.md point 8 and the revenue rules), not from the
models or assets/reverse_sync.

The lake and the models are built once per module (`template`) and copied for each test, which
then changes what its story needs and rebuilds.
"""

from __future__ import annotations

import os
import re
import shutil
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import dagster as dg
import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from assets.dbt import export_models, prepare_build_database
from assets.dbt_project import dbt_env
from assets.reverse_sync.assets import SYNC_ASSETS, SYNC_CHECKS, blocking_check_keys
from assets.reverse_sync.consent import contact_key
from assets.reverse_sync.log import FAILED, SENT, SyncLog
from resources.http import ProviderResource
from sandbox import start_sandbox
from sandbox.sympla import MARKETING_QUESTION as SY_LABEL
from sandbox.tickettailor import MARKETING_QUESTION as TT_LABEL
from sandbox.tickettailor import NEGATED_MARKETING_QUESTION
from tests.dbt_inprocess import dbt

# runs dbt or the pipeline: left out of `make test-fast`; its module fixture is built once, on one worker
pytestmark = [pytest.mark.pipeline, pytest.mark.xdist_group("test_reverse_sync")]

TODAY = datetime.now(UTC).date()
# Three days ago: every sandbox answer is then older than a day (see the deleted-log test).
ANCHOR = TODAY - timedelta(days=3)
# Only the anchor day's orders are landed, synced over a two-day range: a day without data is empty.
DAYS = [ANCHOR]
START = ANCHOR - timedelta(days=1)
RANGE_TAGS = {"dagster/asset_partition_range_start": START.isoformat(),
              "dagster/asset_partition_range_end": ANCHOR.isoformat()}
YES = {"yes", "sim", "true", "1"}
LABELS = {TT_LABEL.casefold(), SY_LABEL.casefold()}
PII_KEY = "reverse-sync-test-key"


def build_models(data_dir: Path, command: str = "build") -> None:
    """What the dbt asset does, for the sync's models: raw views, `dbt build` of the sync models and
    their ancestors, export to the lake. The PII key reaches dbt's sessions through its plugin.
    `command="run"` rebuilds the models without their data tests (the template's build ran them;
    tests/test_dbt_sync.py is where they are exercised) and without reloading the seeds."""
    db = data_dir / "build" / "dbt.duckdb"
    prepare_build_database(db, data_dir / "lake")
    env = {**dbt_env(), "MARQUEE_DATA_DIR": str(data_dir), "MARQUEE_DBT_DATABASE": str(db),
           "MARQUEE_PII_HASH_KEY": PII_KEY, "DBT_TARGET_PATH": str(data_dir / "dbt_target"),
           "DBT_LOG_PATH": str(data_dir / "dbt_logs")}
    result = dbt([command, "--select", "+path:models/sync"], env)
    assert result.returncode == 0, result.stdout[-4000:]
    saved = os.environ.get("MARQUEE_PII_HASH_KEY")
    os.environ["MARQUEE_PII_HASH_KEY"] = PII_KEY
    try:
        export_models(db, data_dir / "lake")
    finally:
        if saved is None:
            os.environ.pop("MARQUEE_PII_HASH_KEY")
        else:
            os.environ["MARQUEE_PII_HASH_KEY"] = saved


def land(res: dict, what: str, days: list[date], provider: str) -> None:
    from assets import sympla, tickettailor

    getattr({"sympla": sympla, "tickettailor": tickettailor}[provider], f"land_{what}")(res[provider], days)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """The sandbox, and a data dir with ANCHOR's orders, the events and the participants landed and the
    models built (exact consent labels configured)."""
    mp = pytest.MonkeyPatch()
    template = tmp_path_factory.mktemp("reverse_sync") / "data"
    mp.setenv("MARQUEE_DATA_DIR", str(template))
    mp.setenv("MARQUEE_START_DATE", (TODAY - timedelta(days=120)).isoformat())
    mp.setenv("MARQUEE_CONSENT_LABEL", f"{TT_LABEL}|{SY_LABEL}")
    mp.setenv("MARQUEE_PII_HASH_KEY", PII_KEY)
    from assets.providers import build_resources

    with start_sandbox(anchor=ANCHOR) as sb:
        for key, value in sb.env.items():
            mp.setenv(key, value)
        res = build_resources()
        land(res, "orders", DAYS, "tickettailor")
        land(res, "events", [ANCHOR], "tickettailor")
        land(res, "events", [ANCHOR], "sympla")
        land(res, "orders", DAYS, "sympla")
        land(res, "participants", [ANCHOR - timedelta(days=45) + timedelta(days=i) for i in range(90)], "sympla")
        for r in res.values():
            if isinstance(r, ProviderResource):
                r.close()
        build_models(template)
        yield sb, template
    mp.undo()


@pytest.fixture
def sandbox(world, monkeypatch):
    """This test's copy of the template data dir, and the sandbox with an empty record of pushes."""
    sb, template = world
    data = Path(os.environ["MARQUEE_DATA_DIR"])
    shutil.copytree(template, data)
    monkeypatch.setenv("MARQUEE_START_DATE", (TODAY - timedelta(days=120)).isoformat())
    monkeypatch.setenv("MARQUEE_CONSENT_LABEL", f"{TT_LABEL}|{SY_LABEL}")
    monkeypatch.setenv("MARQUEE_PII_HASH_KEY", PII_KEY)
    monkeypatch.delenv("MARQUEE_CONSENT_FRESH_DAYS", raising=False)
    for key, value in sb.env.items():
        monkeypatch.setenv(key, value)
    sb.ctx.recorder.clear()
    yield sb


def rebuild() -> None:
    build_models(Path(os.environ["MARQUEE_DATA_DIR"]), command="run")


def run_sync(resources: dict | None = None, raise_on_error: bool = True, only: list[str] | None = None,
             instance: dg.DagsterInstance | None = None, tags: dict | None = None):
    from assets.providers import build_resources

    return dg.materialize([*SYNC_ASSETS, *SYNC_CHECKS], resources=resources or build_resources(),
                          tags=tags or RANGE_TAGS, raise_on_error=raise_on_error, instance=instance,
                          selection=dg.AssetSelection.assets(*only) if only else None)


def lake_rows(provider: str, entity: str) -> list[dict]:
    base = Path(os.environ["MARQUEE_DATA_DIR"]) / "lake" / "raw" / provider / entity
    rows: dict = {}
    for f in sorted(base.glob("date=*/*.parquet")):
        for row in pq.read_table(f).to_pylist():
            if row["id"] not in rows or row["_loaded_at"] >= rows[row["id"]]["_loaded_at"]:
                rows[row["id"]] = row
    return list(rows.values())


def add_raw_version(provider: str, entity: str, row: dict, raw: dict, **typed) -> None:
    """Land a newer version of a raw row (or a new row) next to the day's file, as a re-load would."""
    day_dir = Path(os.environ["MARQUEE_DATA_DIR"]) / "lake/raw" / provider / entity / f"date={row['_partition']}"
    newer = {**row, **typed, "_raw": orjson.dumps(raw).decode(), "_loaded_at": row["_loaded_at"] + timedelta(hours=1)}
    schema = pq.read_schema(next(day_dir.glob("*.parquet")))
    name = f"part-{row['id']}-{len(os.listdir(day_dir))}.parquet"
    pq.write_table(pa.Table.from_pylist([newer], schema=schema), day_dir / name)


def answer_of(questions, labels=LABELS) -> bool | None:
    """One order's consent answer: True yes, False any other non-blank answer, None unanswered; only
    the configured labels count, compared exactly (case and spacing aside)."""
    if isinstance(questions, dict):
        questions = [questions]
    answers = []
    for q in questions or []:
        text = " ".join((q.get("question") or q.get("name") or "").split()).casefold()
        answer = q.get("answer", q.get("value"))
        if text in labels and isinstance(answer, str) and answer.strip():
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
    lo = datetime(START.year, START.month, START.day, tzinfo=UTC)
    hi = lo + timedelta(days=2)
    tt = [orjson.loads(r["_raw"]) for r in lake_rows("tickettailor", "orders")]
    parts: dict = {}
    for p in lake_rows("sympla", "participants"):
        parts.setdefault(p["order_id"], []).append(orjson.loads(p["_raw"]))
    orders, answers = {}, []
    for o in tt:
        created = datetime.fromtimestamp(o["created_at"], UTC)
        if o["status"] == "completed" and lo <= created < hi:
            orders[f"tickettailor:{o['id']}"] = {"cents": o["total"], "currency": o["currency"]["code"].upper(),
                                                 "created": created}
        answers.append((created, f"tickettailor:{o['id']}", o["buyer_details"]["email"].lower(),
                        answer_of(o["buyer_details"].get("custom_questions"))))
    for row in lake_rows("sympla", "orders"):
        o = orjson.loads(row["_raw"])
        if o["order_status"] == "APPROVED" and lo <= row["order_date"] < hi:
            orders[f"sympla:{o['id']}"] = {"cents": int(Decimal(str(o["order_total_sale_price"])) * 100),
                                           "currency": "BRL", "created": row["order_date"]}
        answers.append((row["order_date"], f"sympla:{o['id']}", o["buyer_email"].lower(),
                        sympla_answer(o, parts.get(o["id"], []))))
    events = {f"tickettailor:{r['id']}": r["start_at"] for r in lake_rows("tickettailor", "events")}
    events |= {f"sympla:{r['id']}": r["start_date"] for r in lake_rows("sympla", "events")}
    return orders, latest_yes(answers), events


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


# --- the first run, and what changes afterwards ----------------------------------------------------

def test_first_run_sends_exactly_the_expected_payloads(sandbox):
    exp_orders, exp_contacts, exp_events = expected()
    assert exp_orders and exp_contacts and len(exp_events) > 2

    result = run_sync()
    assert result.success

    events = {e["id"]: e for e in received(sandbox, "cymbal", "events")}
    assert set(events) == set(exp_events)
    for eid, ev in events.items():
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z", ev["start_datetime"])
        assert datetime.fromisoformat(ev["start_datetime"].replace("Z", "+00:00")) == exp_events[eid]
        assert ev["status"] in ("live", "canceled") and ev["url"] and ev["image_url"] and ev["location"]

    orders = {o["id"]: o for o in received(sandbox, "cymbal", "orders")}
    assert set(orders) == set(exp_orders)
    for oid, o in orders.items():
        assert o["total"] == exp_orders[oid]["cents"]
        assert all(i["currency_code"] == exp_orders[oid]["currency"] for i in o["items"])
        assert o["event_id"] in exp_events
        assert o["marketing_opt_ins"] == {"email": None, "sms": None}, "an order never subscribes anyone"
    assert len({p["currency_code"] for p in orders.values()} | {"BRL"}) >= 3

    # Contacts: consenting buyers only; a first send of a fresh answer subscribes them.
    cy_contacts = received(sandbox, "cymbal", "contact")
    assert {c["email"].lower() for c in cy_contacts} == exp_contacts and len(cy_contacts) == len(exp_contacts)
    assert all(c["opt_ins"]["email"] is True for c in cy_contacts)
    co_contacts = received(sandbox, "cordial", "upsertContact")
    assert {c["identifiers"]["email"].lower() for c in co_contacts} == exp_contacts
    assert all(c["attributes"]["channels.email.subscribeStatus"] == "subscribed" for c in co_contacts)

    co_orders = {o["orderID"]: o for o in received(sandbox, "cordial", "upsertOrder")}
    assert set(co_orders) == set(exp_orders)
    for oid, o in co_orders.items():
        exponent = 0 if exp_orders[oid]["currency"] == "JPY" else 2
        text = orjson.dumps(o["totalAmount"]).decode()
        assert Decimal(text) == Decimal(exp_orders[oid]["cents"]).scaleb(-exponent), (oid, text)
        assert datetime.fromisoformat(o["purchaseDate"]) == exp_orders[oid]["created"]
        assert "marketingConsent" not in o["properties"]

    meta = sync_metadata(result)
    assert meta["sync_cymbal_orders"] == {"sent": len(exp_orders), "unchanged": 0, "failed": 0}
    assert meta["sync_cymbal_contacts"]["sent"] == len(exp_contacts)
    # No email in the log's ids, the metadata, or the log's reasons; contact ids are keyed hashes.
    for dest in ("cymbal_contacts", "cordial_contacts"):
        ids = {r["record_id"] for r in SyncLog(dest).rows()}
        assert not any("@" in i for i in ids)
        assert contact_key(f"email:{sorted(exp_contacts)[0]}") in ids
    assert "@" not in repr([e.materialization.metadata for e in result.get_asset_materialization_events()])
    questions = next(e.materialization.metadata["consent_questions"].value
                     for e in result.get_asset_materialization_events()
                     if e.asset_key.to_user_string() == "sync_cymbal_contacts")
    assert TT_LABEL in questions and NEGATED_MARKETING_QUESTION in questions


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
                  if orjson.loads(r["_raw"])["status"] == "completed" and r["refund_amount"] == 0)
    raw = {**orjson.loads(target["_raw"]), "refund_amount": 1000}
    add_raw_version("tickettailor", "orders", target, raw, refund_amount=1000)
    rebuild()

    sandbox.ctx.recorder.clear()
    assert run_sync().success
    oid = f"tickettailor:{raw['id']}"
    cy, co = received(sandbox, "cymbal", "orders"), received(sandbox, "cordial", "upsertOrder")
    assert [o["id"] for o in cy] == [oid] and cy[0]["refunded_amount"] == 1000
    assert [o["orderID"] for o in co] == [oid] and co[0]["properties"]["refundedAmount"] == 10
    assert received(sandbox, "cymbal", "contact") == [] and received(sandbox, "cymbal", "events") == []

    sandbox.ctx.recorder.clear()
    assert run_sync().success
    assert sandbox.ctx.recorder.items() == []


# --- consent ----------------------------------------------------------------------------------------

def _consenting_tt_order() -> dict:
    return next(r for r in lake_rows("tickettailor", "orders")
                if r["status"] == "completed"
                and answer_of(orjson.loads(r["_raw"])["buyer_details"].get("custom_questions")) is True)


def test_a_yes_then_no_buyer_whose_order_is_refunded_later_is_not_resubscribed(sandbox):
    first = _consenting_tt_order()
    raw = orjson.loads(first["_raw"])
    email = raw["buyer_details"]["email"]
    assert run_sync().success
    assert email.lower() in {c["email"].lower() for c in received(sandbox, "cymbal", "contact")}

    # Later the same buyer orders again and answers No...
    later = {**raw, "id": raw["id"] + "x", "created_at": raw["created_at"] + 3600,
             "buyer_details": {**raw["buyer_details"],
                               "custom_questions": [{"question": TT_LABEL, "answer": "No"}]}}
    add_raw_version("tickettailor", "orders", first, later, id=later["id"],
                    created_at=first["created_at"] + timedelta(hours=1),
                    buyer_custom_questions=[{"question": TT_LABEL, "answer": "No"}])
    # ... and then the first order (the one that said yes) is refunded.
    add_raw_version("tickettailor", "orders", first, {**raw, "refund_amount": 500}, refund_amount=500)
    rebuild()

    sandbox.ctx.recorder.clear()
    assert run_sync().success
    resent = {o["id"]: o for o in received(sandbox, "cymbal", "orders")}
    assert f"tickettailor:{raw['id']}" in resent, "the refund is sent"
    assert all(o["marketing_opt_ins"] == {"email": None, "sms": None} for o in resent.values())
    assert email.lower() not in {c["email"].lower() for c in received(sandbox, "cymbal", "contact")}
    cordial = {c["identifiers"]["email"].lower() for c in received(sandbox, "cordial", "upsertContact")}
    assert email.lower() not in cordial
    co = {o["orderID"]: o for o in received(sandbox, "cordial", "upsertOrder")}
    assert "marketingConsent" not in co[f"tickettailor:{raw['id']}"]["properties"]


def test_a_deleted_sync_log_never_resubscribes_an_old_answer(sandbox, monkeypatch):
    assert run_sync(only=["sync_cymbal_contacts", "sync_cordial_contacts"]).success
    sent_first = received(sandbox, "cymbal", "contact")
    assert sent_first and all(c["opt_ins"]["email"] is True for c in sent_first)

    # The log is lost, and by now every answer in the lake is older than the freshness window...
    shutil.rmtree(Path(os.environ["MARQUEE_DATA_DIR"]) / "lake" / "sync_log")
    monkeypatch.setenv("MARQUEE_CONSENT_FRESH_DAYS", "1")
    # ... except one buyer who just answered yes.
    first = _consenting_tt_order()
    raw = orjson.loads(first["_raw"])
    now = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
    fresh = {**raw, "id": "or_fresh", "created_at": int(now.timestamp()),
             "buyer_details": {**raw["buyer_details"], "email": "fresh.yes@example.com"}}
    add_raw_version("tickettailor", "orders", first, fresh, id="or_fresh", created_at=now,
                    buyer_email="fresh.yes@example.com")
    rebuild()

    sandbox.ctx.recorder.clear()
    assert run_sync(only=["sync_cymbal_contacts", "sync_cordial_contacts"]).success
    cy = {c["email"].lower(): c for c in received(sandbox, "cymbal", "contact")}
    co = {c["identifiers"]["email"].lower(): c for c in received(sandbox, "cordial", "upsertContact")}
    assert cy["fresh.yes@example.com"]["opt_ins"]["email"] is True
    assert co["fresh.yes@example.com"]["attributes"]["channels.email.subscribeStatus"] == "subscribed"
    old = [c for e, c in cy.items() if e != "fresh.yes@example.com"]
    assert old and all(c["opt_ins"] == {"email": None, "sms": None} for c in old)
    assert all("channels.email.subscribeStatus" not in c["attributes"]
               for e, c in co.items() if e != "fresh.yes@example.com")


def test_a_negated_question_is_never_consent(sandbox, monkeypatch):
    # The default (no label configured) takes "marketing" questions without a negation.
    monkeypatch.delenv("MARQUEE_CONSENT_LABEL")
    rebuild()
    negated_only = set()
    for r in lake_rows("tickettailor", "orders"):
        questions = orjson.loads(r["_raw"])["buyer_details"].get("custom_questions") or []
        ticked = any(q["question"] == NEGATED_MARKETING_QUESTION and q["answer"] == "Yes" for q in questions)
        if ticked and answer_of(questions) is not True:
            negated_only.add(r["buyer_email"].lower())
    assert negated_only, "the sandbox must give buyers who only ticked the negated question"
    assert run_sync(only=["sync_cymbal_contacts"]).success
    contacts = {c["email"].lower() for c in received(sandbox, "cymbal", "contact")}
    assert contacts and not contacts & negated_only
    _, exp_contacts, _ = expected()
    assert contacts == exp_contacts, "the default takes exactly the sandbox's two real questions"


def test_the_consent_label_is_exact_and_configurable(sandbox, monkeypatch):
    monkeypatch.setenv("MARQUEE_CONSENT_LABEL", "marketing")  # a substring of both labels: not a label
    rebuild()
    assert run_sync(only=["sync_cymbal_orders", "sync_cymbal_contacts", "sync_cordial_contacts"]).success
    assert received(sandbox, "cymbal", "contact") == [] and received(sandbox, "cordial", "upsertContact") == []
    assert received(sandbox, "cymbal", "orders")


# --- failures ---------------------------------------------------------------------------------------

def test_a_wrong_base_url_stops_the_destination_after_a_handful_of_requests(sandbox, monkeypatch):
    monkeypatch.setenv("CORDIAL_BASE_URL", os.environ["CORDIAL_BASE_URL"] + "/v9-wrong")
    exp_orders, _, _ = expected()
    before = sandbox.ctx.request_counts.get("cordial", 0)
    result = run_sync(raise_on_error=False, only=["sync_cordial_orders"])
    assert not result.success
    requests = sandbox.ctx.request_counts.get("cordial", 0) - before
    assert 1 <= requests <= 8, f"{requests} requests for {len(exp_orders)} orders: a 404 must stop, not go per record"
    message = next(e for e in result.all_events if e.is_step_failure).step_failure_data.error.message
    assert "CORDIAL_BASE_URL" in message and "POST /upsertOrder" in message and "404" in message
    state = SyncLog("cordial_orders").state()
    assert len(state) == len(exp_orders) and all(s.status == FAILED for s in state.values())
    assert sum(1 for s in state.values() if (s.reason or "").startswith("not attempted")) >= len(exp_orders) - 8
    assert not any("@" in (s.reason or "") for s in state.values())


def test_a_failed_destination_is_logged_fails_loudly_and_is_retried_next_run(sandbox):
    from assets.providers import build_resources
    from resources.cymbal import CymbalResource

    res = build_resources()
    # Cymbal unreachable (nothing listens on port 9): the core retries, then gives up.
    res["cymbal"] = CymbalResource(api_key="k", base_url="http://127.0.0.1:9/cymbal", max_retry_seconds=0.3,
                                   backoff_base_seconds=0.01, backoff_max_seconds=0.05, timeout_seconds=1)
    only = ["sync_cymbal_events", "sync_cymbal_contacts", "sync_cordial_orders"]
    result = run_sync(res, raise_on_error=False, only=only)
    assert not result.success
    message = next(e for e in result.all_events if e.is_step_failure).step_failure_data.error.message
    assert "cymbal_events" in message and "unavailable" in message
    assert received(sandbox, "cordial", "upsertOrder"), "Cordial went on in parallel and was logged"
    state = SyncLog("cymbal_events").state()
    assert state and all(s.status == FAILED and s.last_sent_hash is None for s in state.values())

    sandbox.ctx.recorder.clear()
    assert run_sync(only=only).success
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


def test_a_failed_blocking_check_on_the_inputs_stops_the_sync_before_any_request(sandbox):
    instance = dg.DagsterInstance.ephemeral()
    check = next(k for k in blocking_check_keys(["sync_orders"]) if "unique" in k.name)
    instance.report_runless_asset_event(dg.AssetCheckEvaluation(
        asset_key=check.asset_key, check_name=check.name, passed=False))
    before = push_requests(sandbox)
    result = run_sync(raise_on_error=False, instance=instance, only=["sync_cymbal_orders", "sync_cordial_orders"])
    assert not result.success and push_requests(sandbox) == before
    message = next(e for e in result.all_events if e.is_step_failure).step_failure_data.error.message
    assert "blocking checks" in message and check.name in message
    # Once the check passes again, the sync runs.
    instance.report_runless_asset_event(dg.AssetCheckEvaluation(
        asset_key=check.asset_key, check_name=check.name, passed=True))
    assert run_sync(instance=instance, only=["sync_cymbal_orders"]).success


def test_the_sync_refuses_to_run_before_the_models_exist(sandbox):
    shutil.rmtree(Path(os.environ["MARQUEE_DATA_DIR"]) / "lake" / "models")
    result = run_sync(raise_on_error=False, only=["sync_cymbal_orders"])
    assert not result.success
    message = next(e for e in result.all_events if e.is_step_failure).step_failure_data.error.message
    assert "sync.sync_orders has not been built yet" in message
    assert received(sandbox, "cymbal", "orders") == []


# --- consent that lands after the order's partition was synced ---------------------------------------

EARLY = ANCHOR - timedelta(days=25)  # the orders' creation day: an early partition
LATER_UNRELATED = [ANCHOR - timedelta(days=5), ANCHOR - timedelta(days=3)]  # no order of these days is landed
CONTACT_ASSETS = ["sync_cymbal_contacts", "sync_cordial_contacts"]


def run_partition(day: date, only: list[str]):
    from assets.providers import build_resources

    return dg.materialize([*SYNC_ASSETS], resources=build_resources(), partition_key=day.isoformat(),
                          selection=dg.AssetSelection.assets(*only))


def contact_emails(sb) -> tuple[list[str], list[str]]:
    return ([c["email"].lower() for c in received(sb, "cymbal", "contact")],
            [c["identifiers"]["email"].lower() for c in received(sb, "cordial", "upsertContact")])


def test_consent_landing_after_the_order_window_is_synced_by_a_later_partition(sandbox):
    """A Sympla buyer's answer is on their ticket, which lands with the event's participants, weeks
    after the order's own partition was synced: a later partition's run sends them, exactly once."""
    from assets.providers import build_resources

    data = Path(os.environ["MARQUEE_DATA_DIR"])
    for sub in ("lake", "build"):  # a fresh lake: the early orders only, no participants yet
        shutil.rmtree(data / sub)
    res = build_resources()
    land(res, "events", [ANCHOR], "sympla")
    land(res, "orders", [EARLY], "sympla")
    build_models(data)  # a fresh build database: seeds and all
    first = run_partition(EARLY, [*CONTACT_ASSETS, "sync_cymbal_orders"])
    assert first.success
    assert contact_emails(sandbox) == ([], []), "no participant landed: no Sympla answer is known"
    orders = received(sandbox, "cymbal", "orders")
    assert orders and all(o["marketing_opt_ins"] == {"email": None, "sms": None} for o in orders)

    # Weeks later the events start and their participants land, under the events' start days.
    start_days = sorted({r["start_date"].date() for r in lake_rows("sympla", "events")})
    land(res, "participants", start_days, "sympla")
    for r in res.values():
        if isinstance(r, ProviderResource):
            r.close()
    rebuild()
    consenting, answers = set(), []
    parts: dict = {}
    for p in lake_rows("sympla", "participants"):
        parts.setdefault(p["order_id"], []).append(orjson.loads(p["_raw"]))
    for row in lake_rows("sympla", "orders"):
        o = orjson.loads(row["_raw"])
        answers.append((row["order_date"], f"sympla:{o['id']}", o["buyer_email"].lower(),
                        sympla_answer(o, parts.get(o["id"], []))))
    consenting = latest_yes(answers)
    assert consenting, "the sandbox must give consenting Sympla buyers"

    sandbox.ctx.recorder.clear()
    later = run_partition(LATER_UNRELATED[0], [*CONTACT_ASSETS, "sync_cymbal_orders"])
    assert later.success
    cy, co = contact_emails(sandbox)
    assert sorted(cy) == sorted(consenting) and sorted(co) == sorted(consenting), "each exactly once"
    assert received(sandbox, "cymbal", "orders") == [], "the early orders are not re-sent for it"

    # Another partition, nothing changed: no request at all.
    sandbox.ctx.recorder.clear()
    before = push_requests(sandbox)
    assert run_partition(LATER_UNRELATED[1], CONTACT_ASSETS).success
    assert sandbox.ctx.recorder.items() == [] and push_requests(sandbox) == before


def test_contacts_logged_under_the_old_unkeyed_ids_are_carried_over_without_resubscribing(sandbox):
    """A log written by an earlier version keys contacts by an unkeyed sha256 of their email. Their
    history still counts (an old answer is not re-asserted), and the guessable ids are then dropped."""
    from assets.reverse_sync.consent import legacy_contact_key

    _, exp_contacts, _ = expected()
    email = sorted(exp_contacts)[0]
    legacy = legacy_contact_key(f"email:{email}")
    SyncLog("cymbal_contacts").append([(legacy, "an-old-payload-hash", SENT, None)], partition="old")
    SyncLog("cymbal_contacts").append([("ct_another_destination_record", "h", SENT, None)], partition="old")

    assert run_sync(only=["sync_cymbal_contacts"]).success
    sent = {c["email"].lower(): c for c in received(sandbox, "cymbal", "contact")}
    # Sent again once (its id changed), but its answer is older than that logged send: no opt-in.
    assert sent[email]["opt_ins"] == {"email": None, "sms": None}
    assert all(c["opt_ins"]["email"] is True for e, c in sent.items() if e != email)
    ids = {r["record_id"] for r in SyncLog("cymbal_contacts").rows()}
    assert legacy not in ids and contact_key(f"email:{email}") in ids
    assert "ct_another_destination_record" in ids, "only carried-over legacy ids are dropped"
