"""Sympla in the sandbox: the public API v1.5.1 under `/sympla` (events, presentations, orders,
participants), following the vendor doc (provider-docs/004_*.txt).

- `data.py`: the dataset, a pure function of the world's seed, scale and anchor (events, orders,
  participants), and the facts the ground truth reads;
- `render.py`: those records as the API's JSON;
- `api.py`: routes, filters, sorting, pagination and errors (`SymplaSandbox`).
"""

from sandbox.sympla.api import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, ApiError, SymplaSandbox
from sandbox.sympla.data import (
    MARKETING_QUESTION,
    ORDERS_PER_SCALE,
    PROVIDER,
    SAO_PAULO,
    TICKET_TIERS,
    event_facts,
    order_facts,
    ticket_facts,
)
from sandbox.sympla.data import _event_plans as _event_plans  # the events' plans, read by tests

__all__ = [
    "DEFAULT_PAGE_SIZE",
    "MARKETING_QUESTION",
    "MAX_PAGE_SIZE",
    "ORDERS_PER_SCALE",
    "PROVIDER",
    "SAO_PAULO",
    "TICKET_TIERS",
    "ApiError",
    "SymplaSandbox",
    "event_facts",
    "order_facts",
    "ticket_facts",
]
