"""The Ticket Tailor sandbox generates each order's decisions twice: one order at a time on Python
ints (`_skeleton`, what the API serves) and many at a time on numpy arrays (`_skeleton_arrays`,
what the per-event index and the events' totals are built from). They must agree on every order,
or an event's `total_orders` and its listing would disagree with the orders themselves."""

from __future__ import annotations

from collections import Counter
from datetime import date

import numpy as np
import pytest

from sandbox import world as w
from sandbox.tickettailor import data

ANCHOR = date(2026, 3, 15)


def _scalar(world: w.World) -> list[tuple[int, int, int, str, int]]:
    out = []
    for i in range(data.n_orders(world)):
        s = data._skeleton(world, i)
        out.append((s.created_at, s.event, s.quantity, s.status, sum(not v for v in s.void)))
    return out


def _vectorised(world: w.World, chunk: int) -> list[tuple[int, int, int, str, int]]:
    n = data.n_orders(world)
    out = []
    for lo in range(0, n, chunk):
        sk = data._skeleton_arrays(world, lo, min(n, lo + chunk))
        assert sk.index.tolist() == list(range(lo, min(n, lo + chunk)))
        out.extend(zip(sk.created_at.tolist(), sk.event.tolist(), sk.quantity.tolist(),
                       [data._STATUSES[s] for s in sk.status.tolist()], sk.valid_tickets.tolist(), strict=True))
    return out


@pytest.mark.parametrize(("seed", "scale", "anchor"), [(7, 1, ANCHOR), (3, 4, date(2024, 2, 29)),
                                                       (11, 25, date(2025, 10, 26))])
def test_scalar_and_vectorised_generators_agree_on_every_order(seed, scale, anchor):
    world = w.World(seed=seed, scale=scale, anchor=anchor)
    scalar = _scalar(world)
    # Uneven chunks too: a chunk boundary must not shift anything.
    for chunk in (data.n_orders(world), 777):
        vectorised = _vectorised(world, chunk)
        first_bad = next((i for i, (a, b) in enumerate(zip(scalar, vectorised, strict=True)) if a != b), None)
        assert first_bad is None, (first_bad, scalar[first_bad], vectorised[first_bad])
    # Every branch of the thresholds is exercised, so agreement means something.
    assert {q for _, _, q, _, _ in scalar} == {1, 2, 3, 4}
    assert {s for _, _, _, s, _ in scalar} == set(data._STATUSES)
    assert any(v < q for _, _, q, s, v in scalar if s != "cancelled")  # a voided ticket in a live order
    seconds = [c % 86400 for c, *_ in scalar]
    assert any(s <= 110 for s in seconds) and any(s >= 86400 - 110 for s in seconds)  # both midnight squeezes


def test_the_index_matches_the_scalar_orders():
    world = w.World(seed=5, scale=3, anchor=ANCHOR)
    index = data._index(world)
    skeletons = [data._skeleton(world, i) for i in range(data.n_orders(world))]
    by_event: dict[int, list[int]] = {}
    for s in skeletons:
        by_event.setdefault(s.event, []).append(s.index)
    for e, arr in enumerate(index.by_event):
        assert arr.dtype == np.uint32
        assert arr.tolist() == by_event.get(e, [])
    assert index.orders == tuple(len(by_event.get(e, [])) for e in range(len(index.by_event)))
    valid = Counter()
    for s in skeletons:
        valid[s.event] += sum(not v for v in s.void)
    assert index.valid_tickets == tuple(valid[e] for e in range(len(index.by_event)))
