"""Ground truth: the marts the pipeline should produce, computed in plain Python from the
sandbox's own facts (no SQL), so end-to-end tests compare the warehouse with an independent
computation.

Sources, as the provider registry (`sandbox/providers.py`) declares them: `event_facts` /
`order_facts` / `ticket_facts` of every ticketing provider (Ticket Tailor and Sympla), the world's
Cymbal campaigns, and the campaign platform's analytics record per campaign
(`sandbox.cymbal.campaign_analytics(world, campaign) -> dict`, the API record).

Money is int minor units throughout; rates are floats only at the very end, as the mart's DOUBLE.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sandbox import world as w
from sandbox.providers import PROVIDERS, TicketingFacts


def _ticketing() -> list[TicketingFacts]:
    return [p.facts for p in PROVIDERS if p.facts is not None]


def event_facts(world: w.World) -> Iterator[w.EventFact]:
    for facts in _ticketing():
        yield from facts.event_facts(world)


def order_facts(world: w.World) -> Iterator[w.OrderFact]:
    for facts in _ticketing():
        yield from facts.order_facts(world)


def ticket_facts(world: w.World) -> Iterator[w.TicketFact]:
    for facts in _ticketing():
        yield from facts.ticket_facts(world)


def campaign_analytics(world: w.World, campaign: w.Campaign) -> dict[str, Any] | None:
    """The campaign platform's (Cymbal's) analytics record for `campaign`, as its API shows it.
    The marts below also accept None (no record: no Cymbal figures), which tests substitute."""
    for p in PROVIDERS:
        if p.campaign_analytics is not None:
            return p.campaign_analytics(world, campaign)
    raise LookupError("no provider in sandbox/providers.py declares campaign analytics")


def normalise_tag(tag: str | None) -> str | None:
    """DESIGN.md point 6: campaign tags match case-insensitively after trimming."""
    if tag is None:
        return None
    cleaned = tag.strip().lower()
    return cleaned or None


def _rate(numerator: int, denominator: int | None) -> float | None:
    return None if not denominator else numerator / denominator


def expected_attendance(world: w.World, start: date, end: date, now: datetime) -> list[dict[str, Any]]:
    """`marts.attendance` for events whose UTC start date is in [start, end], as of `now`."""
    events = [e for e in event_facts(world) if start <= e.starts_at.date() <= end]
    keys = {(e.provider, e.event_id) for e in events}
    issued: dict[tuple[str, str], int] = defaultdict(int)
    checked: dict[tuple[str, str], int] = defaultdict(int)
    for t in ticket_facts(world):
        key = (t.provider, t.event_id)
        if key not in keys:
            continue
        issued[key] += t.issued
        checked[key] += t.checked_in
    rows = []
    for e in sorted(events, key=lambda e: (e.provider, e.event_id)):
        key = (e.provider, e.event_id)
        n_issued, n_checked = issued[key], checked[key]
        rows.append({
            "provider": e.provider,
            "event_id": e.event_id,
            "event_name": e.name,
            "starts_at": e.starts_at,
            "tickets_issued": n_issued,
            "tickets_checked_in": n_checked,
            "no_shows": None if e.starts_at > now else n_issued - n_checked,
            "attendance_rate": _rate(n_checked, n_issued),
        })
    return rows


def _revenue_orders(world: w.World, start: date, end: date) -> Iterable[w.OrderFact]:
    return (o for o in order_facts(world) if o.counts_as_revenue and start <= o.created_at.date() <= end)


def expected_revenue(world: w.World, start: date, end: date) -> list[dict[str, Any]]:
    """`marts.revenue` for orders created on UTC dates in [start, end]."""
    groups: dict[tuple[str, str, str, date], list[int]] = defaultdict(lambda: [0, 0, 0])
    for o in _revenue_orders(world, start, end):
        acc = groups[(o.provider, o.event_id, o.currency, o.created_at.date())]
        acc[0] += 1
        acc[1] += o.gross_cents
        acc[2] += o.refunded_cents
    return [
        {
            "provider": provider,
            "event_id": event_id,
            "currency": currency,
            "order_date": order_date,
            "orders": n,
            "gross_cents": gross,
            "refunded_cents": refunded,
            "net_cents": gross - refunded,
        }
        for (provider, event_id, currency, order_date), (n, gross, refunded) in sorted(groups.items())
    ]


def expected_campaign_attribution(world: w.World, orders_start: date, orders_end: date,
                                  window_days: int = 7) -> list[dict[str, Any]]:
    """`marts.campaign_attribution`: one row per (campaign, currency): always one in the campaign's
    own currency (zeros when nothing is attributed, the only row carrying Cymbal's reported
    revenue), plus one per other currency its attributed orders were paid in. Only
    revenue-counting orders created on UTC dates in [orders_start, orders_end] are considered,
    because that is all the pipeline loaded."""
    by_tag: dict[str, list[w.OrderFact]] = defaultdict(list)
    for o in _revenue_orders(world, orders_start, orders_end):
        tag = normalise_tag(o.campaign_tag)
        if tag is not None:
            by_tag[tag].append(o)
    window = timedelta(days=window_days)
    rows = []
    # Only campaigns the analytics endpoint can list (sent before the world's end) reach the mart.
    for campaign in (c for c in world.campaigns if c.sent_at < world.end):
        analytics = campaign_analytics(world, campaign)
        clicks = None if analytics is None else analytics.get("num_links_clicked")
        reported = None if analytics is None else analytics.get("attributed_revenue")
        own_currency = ((analytics or {}).get("currency_code") or campaign.currency_code).upper()
        per_currency: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        for o in by_tag.get(normalise_tag(campaign.id) or "", []):
            if campaign.sent_at <= o.created_at < campaign.sent_at + window:
                acc = per_currency[o.currency]
                acc[0] += 1
                acc[1] += o.gross_cents
        # The campaign's own currency always has a row (zeros when nothing matched), so Cymbal's
        # reported figure is never dropped; other currencies appear only with attributed orders.
        per_currency.setdefault(own_currency, [0, 0])
        for currency, (n, revenue) in sorted(per_currency.items()):
            rows.append({
                "campaign_id": campaign.id,
                "campaign_name": campaign.name,
                "channel": campaign.type,
                "sent_at": campaign.sent_at,
                "currency": currency,
                "links_clicked": clicks,
                "reported_revenue_cents": reported if currency == own_currency else None,
                "attributed_orders": n,
                "attributed_revenue_cents": revenue,
                "conversion_rate": _rate(n, clicks),
            })
    return rows


# --- comparing a warehouse with the truth ----------------------------------------------------------

# (mart, grain, compared columns): the marts contract of DESIGN.md, as the end-to-end tests check it.
MART_CHECKS: tuple[tuple[str, tuple[str, ...], tuple[str, ...]], ...] = (
    ("attendance", ("provider", "event_id"),
     ("event_name", "starts_at", "tickets_issued", "tickets_checked_in", "no_shows", "attendance_rate")),
    ("revenue", ("provider", "event_id", "currency", "order_date"),
     ("orders", "gross_cents", "refunded_cents", "net_cents")),
    ("campaign_attribution", ("campaign_id", "currency"),
     ("campaign_name", "channel", "sent_at", "links_clicked", "reported_revenue_cents",
      "attributed_orders", "attributed_revenue_cents", "conversion_rate")),
)


def read_marts(warehouse: Any) -> dict[str, list[dict[str, Any]]]:
    """Every compared mart of a published catalog, read the way an analyst does (read-only).
    `warehouse`: the catalog's path, or an open DuckDB connection to it (one that can read an object
    store the caller has registered; the connection stays open)."""
    import duckdb

    own = not isinstance(warehouse, duckdb.DuckDBPyConnection)
    con = duckdb.connect(str(warehouse), read_only=True) if own else warehouse
    try:
        out = {}
        for name, _, _ in MART_CHECKS:
            rows = con.execute(f"select * from marts.{name}").fetchall()
            cols = [d[0] for d in con.description]
            out[name] = [dict(zip(cols, row, strict=True)) for row in rows]
        return out
    finally:
        if own:
            con.close()


def _norm(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).replace(microsecond=0)
    if isinstance(value, float):
        return round(value, 9)
    return value


def _keyed(rows: Iterable[dict[str, Any]], key_cols: tuple[str, ...], cols: tuple[str, ...]) -> dict:
    out: dict[tuple, dict[str, Any]] = {}
    for row in rows:
        key = tuple(_norm(row[c]) for c in key_cols)
        assert key not in out, f"duplicate grain {key}"
        out[key] = {c: _norm(row[c]) for c in cols}
    return out


def assert_rows_match(actual: Iterable[dict[str, Any]], expected: Iterable[dict[str, Any]],
                      key_cols: tuple[str, ...], cols: tuple[str, ...]) -> None:
    """Same grain keys, and every compared column equal (floats to 1e-9 relative)."""
    a, e = _keyed(actual, key_cols, cols), _keyed(expected, key_cols, cols)
    assert set(a) == set(e), f"missing {sorted(set(e) - set(a))[:5]} extra {sorted(set(a) - set(e))[:5]}"
    for key in e:
        for col in cols:
            av, ev = a[key][col], e[key][col]
            if isinstance(ev, float) and av is not None:
                assert math.isclose(av, ev, rel_tol=1e-9), (key, col, av, ev)
            else:
                assert av == ev, (key, col, av, ev)


def assert_marts_match(warehouse: Any, world: w.World, start: date, end: date,
                       marts: dict[str, list[dict[str, Any]]] | None = None) -> None:
    """The published marts equal this module's truth for a pipeline run over [start, end]."""
    marts = marts if marts is not None else read_marts(warehouse)
    now = datetime.now(UTC)
    expected = {
        # Tickets were loaded only for events starting inside the range, and the mart reports only
        # events whose start day's tickets were loaded: exactly the events the truth expects.
        "attendance": expected_attendance(world, start, end, now),
        "revenue": expected_revenue(world, start, end),
        "campaign_attribution": expected_campaign_attribution(world, start, end, 7),
    }
    for name, key_cols, cols in MART_CHECKS:
        assert_rows_match(marts[name], expected[name], key_cols, cols)
