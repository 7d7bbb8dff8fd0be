"""The project's partitions: daily, UTC, from MARQUEE_START_DATE.

One definition shared by every partitioned asset, so a backfill or `marquee run` range selects
the same keys across raw assets, marts and syncs.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import dagster as dg

from resources import settings

daily_partitions = dg.DailyPartitionsDefinition(
    start_date=settings.start_date().isoformat(),
    timezone="UTC",
    end_offset=1,  # today is a partition too: intraday loads of the current day are allowed
)


def window_bounds(start: date, end_inclusive: date) -> tuple[datetime, datetime]:
    """UTC half-open [start 00:00, end+1 00:00) for an inclusive range of days."""
    lo = datetime.combine(start, datetime.min.time(), UTC)
    hi = datetime.combine(end_inclusive + timedelta(days=1), datetime.min.time(), UTC)
    return lo, hi


def days_in(window_start: datetime, window_end: datetime) -> list[date]:
    """The UTC days a partition time window covers (one for a single partition, many for a
    single-run backfill)."""
    day = window_start.astimezone(UTC).date()
    last = (window_end.astimezone(UTC) - timedelta(microseconds=1)).date()
    out = []
    while day <= last:
        out.append(day)
        day += timedelta(days=1)
    return out


def day_spans(days: list[date], max_days: int) -> list[list[date]]:
    """`days`, sorted, cut into runs of consecutive days at most `max_days` long: for APIs that take
    a date range, one request series per span instead of one per day."""
    if max_days < 1:
        raise ValueError("max_days must be at least 1")
    spans: list[list[date]] = []
    for day in sorted(set(days)):
        if spans and day - spans[-1][-1] == timedelta(days=1) and len(spans[-1]) < max_days:
            spans[-1].append(day)
        else:
            spans.append([day])
    return spans
