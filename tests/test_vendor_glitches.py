"""Vendor glitches over real HTTP against the sandbox (issue 12): a reply without the documented
envelope is an error and never "zero records", a redirect is not followed, an oversized page stops
at the cap, broken bytes and malformed records are quarantined while the rest lands, and a day
already landed keeps its rows when a later run meets any of these."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, date
from typing import Any

import dagster as dg
import pytest

from assets import sympla as sy
from assets import tickettailor as tt
from resources import lake
from resources.cymbal import CymbalResource
from resources.cymbio import CymbioResource
from resources.errors import (
    ProviderRedirectError,
    ProviderResponseError,
    ProviderResponseTooLargeError,
    ProviderUnavailableError,
)
from resources.files import TMP_SUFFIX
from resources.http import MAX_PAGE_BYTES_ENV
from resources.sympla import SymplaResource
from resources.tickettailor import TicketTailorResource
from sandbox import start_sandbox
from sandbox import sympla as sy_sandbox
from sandbox import tickettailor as tt_sandbox
from tests.test_landing_tickettailor import content, run

ANCHOR = date(2026, 3, 15)
DAY = date(2026, 3, 10)  # a day with Ticket Tailor orders in the sandbox
FAST = dict(backoff_base_seconds=0.01, backoff_max_seconds=0.05, timeout_seconds=5.0, max_retry_seconds=20)


@pytest.fixture(scope="module")
def sb() -> Iterator[Any]:
    with start_sandbox(anchor=ANCHOR) as sandbox:
        yield sandbox


@pytest.fixture(autouse=True)
def _clean_faults(sb: Any) -> Iterator[None]:
    sb.set_faults("")
    yield
    sb.set_faults("")


def _clients(sb: Any, **kw: Any) -> dict[str, Any]:
    env = sb.env
    return {
        "tickettailor": TicketTailorResource(api_key=env["TICKETTAILOR_API_KEY"],
                                             base_url=env["TICKETTAILOR_BASE_URL"], **FAST, **kw),
        "sympla": SymplaResource(token=env["SYMPLA_TOKEN"], base_url=env["SYMPLA_BASE_URL"], **FAST, **kw),
        "cymbal": CymbalResource(api_key=env["CYMBAL_API_KEY"], base_url=env["CYMBAL_BASE_URL"], **FAST, **kw),
        "cymbio": CymbioResource(client_id=env["CYMBIO_CLIENT_ID"], client_secret=env["CYMBIO_CLIENT_SECRET"],
                                 retailer_id=env["CYMBIO_RETAILER_ID"], base_url=env["CYMBIO_BASE_URL"], **FAST, **kw),
    }


# provider -> (read the list, glitch scope, the endpoint as the error names it)
LISTS: dict[str, tuple[Callable[[Any, Any], Any], str, str]] = {
    "tickettailor": (lambda c, w: c.iter_orders(w.start, w.end), "/tickettailor/v1/orders", "GET /v1/orders"),
    "sympla": (lambda c, w: c.iter_events(), "/sympla/events", "GET /events"),
    "cymbal": (lambda c, w: c.iter_campaign_analytics(), "/cymbal/v1/partners/campaigns/analytics",
               "GET /v1/partners/campaigns/analytics"),
    "cymbio": (lambda c, w: c.iter_variants(), "/cymbio/v3/retailers", "GET /v3/retailers/{id}/variants"),
}

ENVELOPE_CASES = [
    *[(p, "empty", "an empty body") for p in LISTS],
    *[(p, "shapeless", "an empty object {}") for p in LISTS],
    ("tickettailor", "nulldata", "'data': null"),
    ("sympla", "nulldata", "'data': null"),
    ("cymbal", "nulldata", "'data': null"),
    ("cymbio", "nulldata", "an object with keys ['data'] where the docs promise a JSON array"),
    ("tickettailor", "bare_data", "no 'links'"),
    ("sympla", "bare_data", "no 'pagination'"),
    ("cymbal", "bare_data", "no 'page'"),
]


@pytest.mark.parametrize("provider,glitch,missing", ENVELOPE_CASES)
def test_a_reply_without_the_envelope_is_a_clear_error_not_zero_records(sb, provider, glitch, missing):
    read, scope, endpoint = LISTS[provider]
    plan = sb.set_faults(f"{glitch}:1@{scope}")
    with _clients(sb)[provider].session() as client, pytest.raises(ProviderResponseError) as info:
        list(read(client, sb.world))
    error = info.value
    assert not isinstance(error, ProviderUnavailableError)
    assert (error.provider, error.endpoint) == (provider, endpoint)
    message = str(error)
    assert message.startswith(f"{provider}: {endpoint} answered 200 with ") and missing in message
    assert "not \"no records\"" in message and f"{provider.upper()}_BASE_URL" in message
    assert plan.injected[glitch] == 3  # asked twice more, then stopped: not 12 times, not forever


@pytest.mark.parametrize("provider", list(LISTS))
def test_a_redirect_is_an_error_naming_where_it_went(sb, provider):
    read, scope, endpoint = LISTS[provider]
    plan = sb.set_faults(f"redirect:1@{scope}")
    with _clients(sb)[provider].session() as client, pytest.raises(ProviderRedirectError) as info:
        list(read(client, sb.world))
    message = str(info.value)
    assert f"{provider}: {endpoint} was redirected (301) to /{provider}/moved/" in message
    assert f"{provider.upper()}_BASE_URL" in message and plan.injected["redirect"] == 1


# --- the page-size cap ------------------------------------------------------------------------------


def _streamed(sb: Any) -> int:
    deadline = time.monotonic() + 10
    while not sb.ctx.streamed and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sb.ctx.streamed, "the sandbox never finished the oversized reply"
    return sb.ctx.streamed.pop()


@pytest.mark.parametrize("glitch,how", [("oversize", "announced 536,870,912 bytes"),
                                        ("oversize_chunked", "passed 262,144 bytes and was still going")])
def test_an_oversized_page_stops_at_the_cap_without_reading_it_whole(sb, glitch, how):
    # 512 MiB offered against a 256 KiB cap: a client that read the page whole would hold half a
    # gigabyte before noticing, and the sandbox would have written all of it.
    sb.ctx.streamed.clear()
    sb.set_faults(f"{glitch}:1:512@/tickettailor/v1/orders")
    client = _clients(sb, max_page_bytes=256 * 1024)["tickettailor"]
    with client.session(), pytest.raises(ProviderResponseTooLargeError) as info:
        list(client.iter_orders(sb.world.start, sb.world.end))
    message = str(info.value)
    assert message.startswith("tickettailor: GET /v1/orders answered a page that ") and how in message
    assert MAX_PAGE_BYTES_ENV in message and info.value.allow_retries is False
    assert _streamed(sb) < 32 * 1024 * 1024  # the client hung up long before the 512 MiB were sent


def test_the_cap_is_read_from_the_environment_by_the_configured_resources(sb, monkeypatch):
    for key, value in sb.env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv(MAX_PAGE_BYTES_ENV, str(128 * 1024))
    sb.set_faults("oversize_chunked:1:64@/tickettailor/v1/orders")
    result = run([tt.tickettailor_orders_assets], DAY.isoformat())
    assert not result.success
    assert "over the 131,072-byte cap" in _failure_text(result)
    assert lake.read_partition(tt.ORDERS, DAY) is None  # nothing committed for the day


# --- broken bytes and malformed records: quarantined, the rest lands --------------------------------


def _day_truth(sb: Any) -> set[str]:
    return {f.order_id for f in tt_sandbox.order_facts(sb.world) if f.created_at.astimezone(UTC).date() == DAY}


def _quarantine(spec: Any) -> list[dict[str, Any]]:
    table = lake.read_partition(spec, DAY, area="quarantine")
    return table.to_pylist() if table is not None else []


@pytest.mark.parametrize("glitch,reason", [
    ("surrogate", "cannot be represented: text that is not valid Unicode (lone surrogate or invalid UTF-8 byte) "
                  "at $.sandbox_glitch"),
    ("badutf8", "cannot be represented: text that is not valid Unicode (lone surrogate or invalid UTF-8 byte) "
                "at $.sandbox_glitch"),
    ("bignum", "cannot be represented: number out of range (1e400) at $.sandbox_glitch"),
])
def test_a_bad_byte_quarantines_its_record_and_the_day_lands(sb, glitch, reason):
    truth = _day_truth(sb)
    plan = sb.set_faults(f"{glitch}:1@/tickettailor/v1/orders")
    with _clients(sb)["tickettailor"].session() as client:
        result = tt.land_orders(client, [DAY])
    assert plan.injected[glitch] == 1  # one page, fetched once: the tolerant decoder needed no retry
    orders = result[tt.ORDERS.name]
    assert orders.quarantine_count == 1 and orders.row_count == len(truth) - 1
    (bad,) = _quarantine(tt.ORDERS)
    assert bad["reason"] == reason
    assert bad["_raw"].isascii() and '"sandbox_glitch"' in bad["_raw"]  # written with escapes, not dropped
    landed = set(lake.read_partition(tt.ORDERS, DAY).column("id").to_pylist())
    assert landed | {_raw_id(bad)} == truth and _raw_id(bad) not in landed


def _raw_id(row: dict[str, Any]) -> Any:
    import json

    return json.loads(row["_raw"])["id"]


def test_an_order_whose_line_items_are_not_a_list_is_quarantined_and_the_day_lands(sb):
    truth = _day_truth(sb)
    sb.set_faults("childlist:1@/tickettailor/v1/orders")  # line_items: 5, issued_tickets: 5
    with _clients(sb)["tickettailor"].session() as client:
        result = tt.land_orders(client, [DAY])
    orders = result[tt.ORDERS.name]
    assert orders.quarantine_count == 1 and orders.row_count == len(truth) - 1
    (bad,) = _quarantine(tt.ORDERS)
    assert bad["reason"] == "line_items: expected a list, got int"
    landed = lake.read_partition(tt.ORDERS, DAY)
    items = lake.read_partition(tt.ORDER_LINE_ITEMS, DAY)
    tickets = lake.read_partition(tt.ORDER_ISSUED_TICKETS, DAY)
    # The quarantined order fans out nothing; every landed order has all its children.
    assert set(items.column("order_id").to_pylist()) == set(landed.column("id").to_pylist())
    assert items.num_rows == sum(landed.column("line_item_count").to_pylist())
    assert tickets.num_rows == sum(landed.column("issued_ticket_count").to_pylist())
    assert _quarantine(tt.ORDER_LINE_ITEMS) == [] and _quarantine(tt.ORDER_ISSUED_TICKETS) == []


def test_a_list_valued_id_is_quarantined_and_the_day_lands(sb):
    truth = _day_truth(sb)
    sb.set_faults("listid:1@/tickettailor/v1/orders")
    with _clients(sb)["tickettailor"].session() as client:
        result = tt.land_orders(client, [DAY])
    orders = result[tt.ORDERS.name]
    assert orders.quarantine_count == 1 and orders.row_count == len(truth) - 1
    (bad,) = _quarantine(tt.ORDERS)
    assert bad["reason"] == "id: expected a non-empty string id, got list"
    assert set(lake.read_partition(tt.ORDERS, DAY).column("id").to_pylist()) | set(_raw_id(bad)) == truth


def _flat(pages: Any) -> list[dict[str, Any]]:
    return [r for page in pages for r in page]


def _ids(records: list[dict[str, Any]], key: str = "id") -> Counter:
    return Counter(r[key][0] if isinstance(r[key], list) else r[key] for r in records)


def test_list_valued_ids_on_every_page_neither_crash_loop_nor_lose_records(sb):
    """Every page's last record has a list id: the cursor of Ticket Tailor (the last record's id),
    and the boundary de-duplication of Sympla (page numbers) and Cymbio returns (offsets), all hold."""
    world = sb.world
    clients = _clients(sb)
    tt_client, sy_client, cy_client = clients["tickettailor"], clients["sympla"], clients["cymbio"]
    event_id = next(e.event_id for e in sy_sandbox.event_facts(world))
    reads = [
        (lambda: _flat(tt_client.iter_orders(world.start, world.end)), "/tickettailor/v1/orders", "id"),
        (lambda: _flat(sy_client.iter_participants(event_id)), "/sympla/events/", "id"),
        (lambda: _flat(cy_client.iter_returns_not_acknowledged()), "/cymbio/v3/retailers", "returnId"),
    ]
    for read, scope, key in reads:
        sb.set_faults("")
        clean = read()
        plan = sb.set_faults(f"listid:1@{scope}")
        glitched = read()
        assert _ids(glitched, key) == _ids(clean, key) and len(clean) > 1, scope  # each record exactly once
        assert sum(isinstance(r[key], list) for r in glitched) == plan.injected["listid"] >= 1, scope
        if key == "id" and scope.startswith("/tickettailor"):
            assert plan.injected["listid"] >= 3  # several pages, each ending on an unusable cursor


# --- a landed day keeps its rows when a later run meets a glitch --------------------------------------


def _failure_text(result: dg.ExecuteInProcessResult) -> str:
    failures = [e for e in result.all_events if e.is_step_failure]
    assert failures, "the run did not fail"
    error = failures[0].step_failure_data.error
    parts = []
    while error is not None:
        parts.append(error.message)
        error = error.cause
    return "\n".join(parts)


@pytest.mark.parametrize("glitch,missing", [("empty", "an empty body"), ("shapeless", "an empty object {}"),
                                            ("nulldata", "'data': null"), ("bare_data", "no 'links'"),
                                            ("redirect", "was redirected (301)")])
def test_a_landed_day_keeps_its_rows_when_a_later_reply_is_shapeless(sb, monkeypatch, glitch, missing):
    for key, value in sb.env.items():
        monkeypatch.setenv(key, value)
    assert run([tt.tickettailor_orders_assets], DAY.isoformat()).success
    specs = (tt.ORDERS, tt.ORDER_LINE_ITEMS, tt.ORDER_ISSUED_TICKETS)
    before = [content(s, DAY) for s in specs]
    assert before[0].num_rows == len(_day_truth(sb)) > 0

    sb.set_faults(f"{glitch}:1@/tickettailor/v1/orders")
    result = run([tt.tickettailor_orders_assets], DAY.isoformat())
    assert not result.success
    text = _failure_text(result)
    assert "tickettailor: GET /v1/orders" in text and missing in text
    for spec, kept in zip(specs, before, strict=True):
        assert content(spec, DAY).equals(kept), spec.name  # still every row, not 0
        assert not list(lake.partition_dir(spec, DAY).glob(f"*{TMP_SUFFIX}"))


def test_a_landed_sympla_day_keeps_its_rows_when_orders_come_back_null(sb, monkeypatch):
    for key, value in sb.env.items():
        monkeypatch.setenv(key, value)
    facts = Counter(f.created_at.astimezone(UTC).date() for f in sy_sandbox.order_facts(sb.world))
    day = date(2026, 3, 2)
    assert run([sy.sympla_orders], day.isoformat()).success
    before = content(sy.ORDERS, day)
    assert before.num_rows == facts[day] > 0
    sb.set_faults("nulldata:1@/sympla/events/")  # the per-event orders lists, not the events list
    result = run([sy.sympla_orders], day.isoformat())
    assert not result.success and "'data': null" in _failure_text(result)
    assert content(sy.ORDERS, day).equals(before)


def test_a_snapshot_taken_today_is_kept_when_a_later_read_is_shapeless(sb):
    from assets import cymbal as cb

    with _clients(sb)["cymbal"].session() as client:
        first = cb.land_campaign_analytics(client, [DAY], today=DAY)
        taken = lake.partition_path(cb.CAMPAIGN_ANALYTICS, DAY).read_bytes()
        assert first.row_count > 0
        sb.set_faults("nulldata:1@/cymbal/")
        with pytest.raises(ProviderResponseError, match="'data': null"):
            cb.land_campaign_analytics(client, [DAY], today=DAY)
    assert lake.partition_path(cb.CAMPAIGN_ANALYTICS, DAY).read_bytes() == taken


def test_cymbio_returns_are_never_acknowledged_off_a_shapeless_or_broken_page():
    from assets import cymbio as cy
    from sandbox import cymbio as cy_sandbox

    def pending(sandbox: Any) -> set[int]:
        return {r["returnId"] for r in cy_sandbox.current_returns(sandbox.ctx) if not r["acknowledged"]}

    with start_sandbox(anchor=ANCHOR) as fresh:
        client = _clients(fresh)["cymbio"]
        with client.session():
            first = pending(fresh)
            assert cy.land_returns(client, DAY).acknowledged and pending(fresh) == set()
            landed = lake.partition_path(cy.RETURNS, DAY).read_bytes()
            new = set(cy_sandbox.add_returns(fresh.ctx, 3))
            fresh.set_faults("shapeless:1@/cymbio/v3/retailers")
            with pytest.raises(ProviderResponseError, match="an empty object"):
                cy.land_returns(client, DAY)
            assert pending(fresh) == new  # nothing acknowledged on the strength of a shapeless page
            assert lake.partition_path(cy.RETURNS, DAY).read_bytes() == landed
            # One return arrives with an invalid UTF-8 byte: it is quarantined and stays on the API.
            fresh.set_faults("badutf8:1@/cymbio/v3/retailers")
            outcome = cy.land_returns(client, DAY)
    (bad,) = _quarantine(cy.RETURNS)
    assert "not valid Unicode" in bad["reason"]
    stuck = {_raw_returns_id(bad)}
    assert pending(fresh) == stuck and set(outcome.acknowledged) == new - stuck
    assert set(lake.read_partition(cy.RETURNS, DAY).column("return_id").to_pylist()) == (first | new) - stuck


def _raw_returns_id(row: dict[str, Any]) -> int:
    import json

    return json.loads(row["_raw"])["returnId"]
