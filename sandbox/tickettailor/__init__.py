"""Ticket Tailor in the sandbox: `GET /v1/events`, `/v1/orders`, `/v1/issued_tickets` (and the
single-object reads), shaped field for field like the vendor doc's examples.

- `data.py`: the dataset, a pure function of the world's seed, scale and anchor (events, orders,
  tickets), and the facts the ground truth reads;
- `render.py`: those records as the API's JSON;
- `api.py`: routes, filters, pagination, the hourly rate limit and errors (`TickettailorSandbox`).
"""

from sandbox.tickettailor.api import DEFAULT_HOURLY_LIMIT, MAX_LIMIT, TickettailorSandbox, configure
from sandbox.tickettailor.data import (
    MARKETING_QUESTION,
    NEGATED_MARKETING_QUESTION,
    NEGATED_SHARE,
    ORDERS_PER_SCALE,
    PROVIDER,
    event_facts,
    n_orders,
    order_facts,
    ticket_facts,
)
from sandbox.tickettailor.render import _build_order as _build_order  # an order's JSON, read by tests

__all__ = [
    "DEFAULT_HOURLY_LIMIT",
    "MARKETING_QUESTION",
    "MAX_LIMIT",
    "NEGATED_MARKETING_QUESTION",
    "NEGATED_SHARE",
    "ORDERS_PER_SCALE",
    "PROVIDER",
    "TickettailorSandbox",
    "configure",
    "event_facts",
    "n_orders",
    "order_facts",
    "ticket_facts",
]
