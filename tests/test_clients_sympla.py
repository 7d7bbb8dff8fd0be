"""Sympla client against the sandbox over real HTTP on 127.0.0.1."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta

import pytest

from resources.errors import ProviderAuthError, ProviderRequestError
from resources.sympla import SymplaResource
from sandbox import start_sandbox
from sandbox import sympla as sy_sandbox

ANCHOR = date(2026, 3, 15)
# Retry-After: 0 on the 429s: honouring a real wait is tested in test_http_core; here it only cost time.
FAULTS = "429:0.08:0,5xx:0.1,reset:0.1,truncate:0.08,slow:0.05:0.6,repeat:0.4"


def client(sb) -> SymplaResource:
    return SymplaResource(token=sb.env["SYMPLA_TOKEN"], base_url=sb.env["SYMPLA_BASE_URL"],
                          backoff_base_seconds=0.05, backoff_max_seconds=0.2, timeout_seconds=0.4)


def flat(pages) -> list[dict]:
    return [r for page in pages for r in page]


def count(sb) -> int:
    return sb.ctx.request_counts.get("sympla", 0)


@pytest.fixture(scope="module")
def clean():
    with start_sandbox(anchor=ANCHOR) as sb:
        yield sb


@pytest.fixture(scope="module")
def baseline(clean):
    with client(clean).session() as c:
        events = flat(c.iter_events())
        orders = {e["id"]: flat(c.iter_orders(e["id"])) for e in events}
        participants = {e["id"]: flat(c.iter_participants(e["id"])) for e in events}
    return events, orders, participants


def test_events_are_all_of_the_organisers(clean, baseline):
    events, _, _ = baseline
    truth = {f.event_id for f in sy_sandbox.event_facts(clean.world)}
    assert {e["id"] for e in events} == truth and len(events) == len(truth)


def test_orders_every_status_in_utc_minimum_pages(clean, baseline):
    _, orders, _ = baseline
    facts = list(sy_sandbox.order_facts(clean.world))
    statuses = set()
    for event_id, got in orders.items():
        truth = {f.order_id: f for f in facts if f.event_id == event_id}
        assert len(got) == len(truth) and {o["id"] for o in got} == set(truth)
        for o in got:
            statuses.add(o["order_status"])
            # timezone=UTC: the API's local date-time is the fact's UTC instant.
            assert o["order_date"] == truth[o["id"]].created_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
        before = count(clean)
        with client(clean).session() as c:
            list(c.iter_orders(event_id))
        assert count(clean) - before == max(1, math.ceil(len(truth) / 200))  # page_size=200, the maximum
    assert {"APPROVED", "PENDING", "CANCELLED"} <= statuses  # status=true: not only approved


def test_order_windows_are_half_open_and_tile(clean, baseline):
    _, orders, _ = baseline
    event_id = max(orders, key=lambda k: len(orders[k]))
    dates = sorted(datetime.strptime(o["order_date"], "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
                   for o in orders[event_id])
    start = datetime.combine(dates[0].date(), datetime.min.time(), UTC)
    end = datetime.combine(dates[-1].date() + timedelta(days=1), datetime.min.time(), UTC)
    seen: list[str] = []
    with client(clean).session() as c:
        day = start
        while day < end:
            got = flat(c.iter_orders(event_id, day, day + timedelta(days=1)))
            expected = [o["id"] for o in orders[event_id]
                        if day <= datetime.strptime(o["order_date"], "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
                        < day + timedelta(days=1)]
            assert sorted(o["id"] for o in got) == sorted(expected)
            seen += [o["id"] for o in got]
            day += timedelta(days=1)
    assert sorted(seen) == sorted(o["id"] for o in orders[event_id])


def test_participants_include_cancelled(clean, baseline):
    _, orders, participants = baseline
    for event_id, got in participants.items():
        ids = [p["id"] for p in got]
        assert len(ids) == len(set(ids))
        order_status = {o["id"]: o["order_status"] for o in orders[event_id]}
        assert {p["order_status"] for p in got} <= {"A", "C"}
        assert {p["order_id"] for p in got if p["order_status"] == "C"} == \
            {i for i, s in order_status.items() if s == "CANCELLED"}


def test_faulty_run_returns_exactly_the_fault_free_records(baseline):
    events, orders, participants = baseline
    with start_sandbox(anchor=ANCHOR, faults=FAULTS) as sb, client(sb).session() as c:
        assert flat(c.iter_events()) == events
        for e in events:
            assert flat(c.iter_orders(e["id"])) == orders[e["id"]]
            assert flat(c.iter_participants(e["id"])) == participants[e["id"]]
        injected = sb.ctx.faults.injected
    for fault in ("429", "5xx", "reset", "truncate", "slow", "repeat"):
        assert injected.get(fault, 0) > 0, f"{fault} was never injected"


def test_bad_token_fails_fast_with_a_clear_error(clean):
    before = count(clean)
    with pytest.raises(ProviderAuthError) as info:
        list(SymplaResource(token="not-the-token-123", base_url=clean.env["SYMPLA_BASE_URL"]).iter_events())
    assert count(clean) - before == 1
    assert "SYMPLA_TOKEN" in str(info.value) and "Integra" in str(info.value)
    assert "not-the-token-123" not in str(info.value)


def test_documented_error_body_becomes_a_typed_error(clean):
    before = count(clean)
    with pytest.raises(ProviderRequestError) as info:
        list(client(clean).iter_orders("s999999"))
    assert count(clean) - before == 1 and info.value.status == 404
    assert "não encontrado" in str(info.value)  # the API's own message, from {"error": true, "message": ...}


# --- an error body with a 2xx status, and ids that cannot go into a path ------------------------------

TOKEN_HINT = "Minha Conta > Integrações"


@pytest.mark.parametrize("code,error,expected_code", [
    (401, ProviderAuthError, "401"), (403, ProviderAuthError, "403"),
    (500, ProviderRequestError, "500"), (404, ProviderRequestError, "404"),
])
def test_an_error_body_with_status_200_is_that_error_redacted_and_not_retried(code, error, expected_code):
    with start_sandbox(anchor=ANCHOR, faults=f"errorbody:1:{code}@/sympla/events") as sb, client(sb).session() as c:
        with pytest.raises(error) as info:
            list(c.iter_events())
        assert count(sb) == 1  # neither retried nor read as a shapeless page worth asking again
    exc = info.value
    token = sb.env["SYMPLA_TOKEN"]
    text = str(exc) + repr(exc) + exc.code + str(exc.args)
    assert token not in text and "***" in text  # the API echoed the s_token; we did not
    assert (exc.provider, exc.endpoint, exc.status, exc.code) == ("sympla", "GET /events", code, expected_code)
    if code in (401, 403):
        # The same "what to do" as a real 401/403, and final: no Dagster retry either.
        assert TOKEN_HINT in str(exc) and "Not retried" in str(exc) and exc.allow_retries is False
    else:
        assert f"answered with an error body (code {code})" in str(exc)


def test_event_ids_that_could_rewrite_the_path_are_refused_before_sending(clean):
    with client(clean).session() as c:
        before = count(clean)
        for bad in ("../../v1.5.1/events/1?x=#", "..", "a/b", "1?x=1"):
            with pytest.raises(ProviderRequestError, match="sympla: the event id .* cannot be used in a URL path"):
                list(c.iter_orders(bad))
            with pytest.raises(ProviderRequestError, match="cannot be used in a URL path"):
                list(c.iter_participants(bad))
        assert count(clean) == before  # nothing was sent
