"""The per-entity lander: routes converted rows to their day's partition writer, quarantines what
does not fit, and commits every day of the window (an empty typed file for a day without rows)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any, TypeVar

import pyarrow as pa

from assets.landing.convert import RecordError, _quarantine_text, dumps
from resources import lake
from resources.entity import EntitySpec
from resources.jsonbody import unrepresentable
from resources.lakefs import Location

T = TypeVar("T")



@dataclass(frozen=True)
class SnapshotPlan:
    """Which day of a window a snapshot run writes, and what happens to the other days.

    - `target`: the one day written with the observation made now, or None (nothing to write).
    - `kept`: days other than `target` that already hold a snapshot file: left byte-for-byte as they are.
    - `absent`: days other than `target` without a file: left without one. An empty file would claim
      "a snapshot was taken that day and nothing existed", which nobody observed.
    """

    days: tuple[date, ...]
    today: date
    target: date | None
    kept: tuple[date, ...]
    absent: tuple[date, ...]
    why: str


@dataclass
class EntityResult:
    """What landing one entity over a window produced."""

    spec: EntitySpec
    days: list[date]
    rows: dict[date, int] = field(default_factory=dict)
    quarantined: dict[date, int] = field(default_factory=dict)
    reasons: dict[str, int] = field(default_factory=dict)
    paths: list[Location] = field(default_factory=list)
    # Set for snapshot entities: which day was written and which were kept or left absent.
    snapshot: SnapshotPlan | None = None

    @property
    def row_count(self) -> int:
        return sum(self.rows.values())

    @property
    def quarantine_count(self) -> int:
        return sum(self.quarantined.values())


class EntityLander:
    """Lands one entity for a set of days: converts pages, routes rows to their day, quarantines
    misfits, and commits every day (an empty typed file for a day without rows)."""

    def __init__(self, spec: EntitySpec, days: Sequence[date], loaded_at: datetime | None = None,
                 root: Path | str | None = None, row_group_rows: int | None = None,
                 budget: lake.BufferBudget | None = None) -> None:
        self.spec = spec
        self.days = list(days)
        self._day_set = set(self.days)
        self.loaded_at = loaded_at or lake.utc_now()
        self.root = root
        self.row_group_rows = row_group_rows
        # A multi-day lander keeps one writer per day; without a shared bound a year-long window of
        # days that never fill a row group would hold the whole window in memory.
        self.budget = budget if budget is not None else lake.BufferBudget()
        self._writers: dict[date, lake.PartitionWriter] = {}
        self._quarantine: dict[date, list[dict[str, Any]]] = {}
        self.result = EntityResult(spec, self.days)

    def writer(self, day: date) -> lake.PartitionWriter:
        if day not in self._writers:
            self._writers[day] = lake.PartitionWriter(self.spec, day, self.root, self.row_group_rows,
                                                      budget=self.budget)
        return self._writers[day]

    def quarantine(self, day: date, reason: str, raw: Any) -> None:
        raw_json = _quarantine_text(raw)
        # An exception's text can quote a broken string; the reason column must stay valid UTF-8.
        reason = reason.encode("utf-8", "backslashreplace").decode("utf-8")
        self._quarantine.setdefault(day, []).append(
            lake.quarantine_row(self.spec, day, reason, raw_json, self.loaded_at))
        self.result.quarantined[day] = self.result.quarantined.get(day, 0) + 1
        key = reason.split(":")[0][:80]
        self.result.reasons[key] = self.result.reasons.get(key, 0) + 1

    def add_page(self, items: Iterable[T], convert: Callable[[T], dict[str, Any]],
                 day: date | Callable[[dict[str, Any]], date],
                 raw: Callable[[T], Any] = lambda item: item) -> int:
        """Convert one page and append it to the day writers; returns rows accepted.

        `day` is the partition day for every row, or a function of the converted row. A record
        whose day falls outside this run's days is quarantined: it would otherwise land in a
        partition this run does not own. So is a record that cannot be kept as JSON text in `_raw`
        (a lone surrogate, an invalid UTF-8 byte, a number out of range: see resources/jsonbody.py),
        with the path of the bad spot as the reason; the rest of the page lands.
        """
        by_day: dict[date, list[dict[str, Any]]] = {}
        fallback_day = self.days[-1]
        for item in items:
            source = raw(item)
            # `_raw` first: it is the record as received, and a record that cannot be written as JSON
            # cannot be landed faithfully, whatever its typed columns say. It costs no extra pass.
            try:
                raw_json = dumps(source)
            except TypeError:
                self.quarantine(day if isinstance(day, date) else fallback_day,
                                f"cannot be represented: {unrepresentable(source) or 'not writable as JSON'}",
                                source)
                continue
            try:
                row = convert(item)
                row_day = day if isinstance(day, date) else day(row)
            except (RecordError, KeyError, TypeError, ValueError, AttributeError, ArithmeticError) as exc:
                self.quarantine(day if isinstance(day, date) else fallback_day,
                                f"{type(exc).__name__}: {exc}"[:500] if not isinstance(exc, RecordError)
                                else str(exc)[:500], source)
                continue
            if row_day not in self._day_set:
                self.quarantine(fallback_day, f"outside the partition window: belongs to {row_day}", source)
                continue
            row["_raw"] = raw_json
            row["_loaded_at"] = self.loaded_at
            row["_partition"] = row_day
            by_day.setdefault(row_day, []).append(row)
        accepted = 0
        for row_day, rows in by_day.items():
            bad = self.writer(row_day).write_rows(rows)
            for bad_row, reason in bad:
                self.quarantine(row_day, reason, bad_row["_raw"])
            accepted += len(rows) - len(bad)
            self.result.rows[row_day] = self.result.rows.get(row_day, 0) + len(rows) - len(bad)
        return accepted

    def add_table(self, day: date, table: pa.Table) -> None:
        """Carry already-landed rows (e.g. a partition being merged into) over unchanged."""
        self.writer(day).write_table(table)
        self.result.rows[day] = self.result.rows.get(day, 0) + table.num_rows

    def prepare(self) -> None:
        """Write and fsync every day's file under its temp name (the slow part of `commit`).
        Landers that must become visible together (an order day's orders, line items and issued
        tickets) are all prepared before any is committed, so a crash leaves a day mixed only if
        it strikes between a few renames."""
        for day in self.days:
            self.writer(day).prepare()

    def commit(self) -> EntityResult:
        """Make every day visible: all files prepared first, then renamed in day order, then each
        day's quarantine replaced. A crash before a day's rename leaves that day as it was."""
        self.prepare()
        for day in self.days:
            self.result.rows.setdefault(day, 0)
            self.result.paths.append(self.writer(day).commit())
        for day in self.days:
            lake.write_quarantine(self.spec, day, self._quarantine.get(day, []), self.root)
        return self.result

    def abort(self) -> None:
        """Drop every day's temp file (prepared or not); what was landed before stays as it was."""
        for w in self._writers.values():
            w.abort()

    def __enter__(self) -> EntityLander:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is not None:
            self.abort()


def merge_results(results: Iterable[EntityResult]) -> EntityResult | None:
    """Fold per-day results of one entity (landed day by day) into one."""
    merged: EntityResult | None = None
    for r in results:
        if merged is None:
            merged = EntityResult(r.spec, list(r.days), dict(r.rows), dict(r.quarantined), dict(r.reasons),
                                  list(r.paths))
            continue
        merged.days += [d for d in r.days if d not in merged.days]
        for d, n in r.rows.items():
            merged.rows[d] = merged.rows.get(d, 0) + n
        for d, n in r.quarantined.items():
            merged.quarantined[d] = merged.quarantined.get(d, 0) + n
        for k, n in r.reasons.items():
            merged.reasons[k] = merged.reasons.get(k, 0) + n
        merged.paths += r.paths
    return merged


