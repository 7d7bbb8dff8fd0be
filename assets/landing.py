"""The machinery every raw landing asset shares: record conversion helpers, a per-entity lander that
routes converted rows to their day's partition writer and quarantines what does not fit, the
materialization metadata, and the generic asset checks.

A provider module only says how one record becomes one row (a converter) and which day it belongs
to; everything about files, quarantine, metadata and checks happens here, identically for all.

Snapshot entities (events, catalog variants, campaign analytics) go through `land_snapshot`, the one
place that decides which day of a window an observation of *now* may be written under (see
`plan_snapshot` for the rule).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, tzinfo
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import dagster as dg
import orjson
import pyarrow as pa
import pyarrow.compute as pc
from dagster import AssetExecutionContext

from pipelines.partitions import daily_partitions, day_spans, days_in
from resources import lake
from resources.jsonbody import quarantine_json, unrepresentable
from resources.registry import credential_hint
from resources.warehouse import QUARANTINE_SCHEMA, EntitySpec, duckdb_types

T = TypeVar("T")

# --- conversion helpers ---------------------------------------------------------------------------


class RecordError(ValueError):
    """A record that does not fit its entity's schema; the message is the quarantine reason."""


_MISSING = object()


def req(record: Any, *path: str) -> Any:
    """The value at `path`, which must be present (it may be null only if the docs say so)."""
    cur = record
    for i, key in enumerate(path):
        if not isinstance(cur, dict):
            raise RecordError(f"{'.'.join(path[:i]) or 'record'}: expected an object, got {type(cur).__name__}")
        cur = cur.get(key, _MISSING)
        if cur is _MISSING:
            raise RecordError(f"missing key {'.'.join(path)!r}")
    return cur


def opt(record: Any, *path: str) -> Any:
    """The value at `path`, or None when any level is absent or null (Sympla omits nulls)."""
    cur = record
    for i, key in enumerate(path):
        if cur is None:
            return None
        if not isinstance(cur, dict):
            raise RecordError(f"{'.'.join(path[:i]) or 'record'}: expected an object, got {type(cur).__name__}")
        cur = cur.get(key)
    return cur


def to_str(value: Any, name: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise RecordError(f"{name}: expected a string, got {type(value).__name__}")


def to_id(value: Any, name: str) -> str:
    """A required identifier (string as the API sends it)."""
    if value is None:
        raise RecordError(f"{name}: null identifier")
    if isinstance(value, str) and value:
        return value
    raise RecordError(f"{name}: expected a non-empty string id, got {type(value).__name__}")


def to_int(value: Any, name: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise RecordError(f"{name}: expected an integer, got bool")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and math.isfinite(value) and value == int(value):
        return int(value)
    raise RecordError(f"{name}: expected an integer, got {type(value).__name__} {value!r}"[:200])


def to_req_int(value: Any, name: str) -> int:
    out = to_int(value, name)
    if out is None:
        raise RecordError(f"{name}: null identifier")
    return out


def to_money_minor(value: Any, name: str) -> int | None:
    """Money the provider sends in minor units: an integer (an integral float is accepted as one)."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise RecordError(f"{name}: money is not integral minor units (bool)")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and math.isfinite(value) and value == int(value):
        return int(value)
    raise RecordError(f"{name}: money is not integral minor units ({value!r})"[:200])


def to_decimal(value: Any, name: str, places: int = 2) -> Decimal | None:
    """A decimal amount as sent (Sympla's reais), exactly: `Decimal(str(x))`, never float maths."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
        raise RecordError(f"{name}: expected a decimal number, got {type(value).__name__}")
    try:
        dec = Decimal(str(value).strip())
    except InvalidOperation as exc:
        raise RecordError(f"{name}: not a decimal number ({value!r})"[:200]) from exc
    if not dec.is_finite():
        raise RecordError(f"{name}: not a finite number")
    if dec != dec.quantize(Decimal(1).scaleb(-places)):
        raise RecordError(f"{name}: more than {places} decimal places ({value!r})"[:200])
    return dec.quantize(Decimal(1).scaleb(-places))


def to_bool(value: Any, name: str) -> bool | None:
    """Booleans as the providers spell them: true/false, "true"/"false", 0/1."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in ("true", "false", "1", "0"):
        return value.strip().lower() in ("true", "1")
    raise RecordError(f"{name}: expected a boolean, got {value!r}"[:200])


def ts_unix(value: Any, name: str) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise RecordError(f"{name}: expected a unix timestamp, got {type(value).__name__}")
    try:
        return datetime.fromtimestamp(value, UTC)
    except (OverflowError, OSError, ValueError) as exc:
        raise RecordError(f"{name}: unix timestamp out of range ({value!r})") from exc


def ts_text(value: Any, name: str, default_tz: tzinfo | str = UTC) -> datetime | None:
    """A date-time string in UTC. Accepts ISO-8601 (`T` or space, optional fraction, `Z` or offset)
    and bare dates; a value without offset is in `default_tz` (Sympla: the `timezone` asked for)."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise RecordError(f"{name}: expected a date-time string, got {type(value).__name__}")
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError as exc:
        raise RecordError(f"{name}: not a date-time ({value!r})"[:200]) from exc
    if parsed.tzinfo is None:
        zone = ZoneInfo(default_tz) if isinstance(default_tz, str) else default_tz
        parsed = parsed.replace(tzinfo=zone)
    return parsed.astimezone(UTC)


def child_list(record: Any, key: str) -> list[Any] | None:
    """A nested list of child records (`line_items`, `returnLines`...): the list, or None when absent
    or null. Anything else is a malformed record: a number or a string there must not be iterated
    (a string would fan out into one bogus child per character)."""
    value = record.get(key) if isinstance(record, dict) else None
    if value is None or isinstance(value, list):
        return value
    raise RecordError(f"{key}: expected a list, got {type(value).__name__}")


def to_str_list(value: Any, name: str) -> list[str] | None:
    if value is None:
        return None
    if not isinstance(value, list):
        raise RecordError(f"{name}: expected a list, got {type(value).__name__}")
    return [to_str(v, f"{name}[]") for v in value]


def questions(value: Any, name: str) -> list[dict[str, str | None]] | None:
    """Ticket Tailor custom questions: [{question, answer}]."""
    if value is None:
        return None
    if not isinstance(value, list):
        raise RecordError(f"{name}: expected a list, got {type(value).__name__}")
    out = []
    for q in value:
        if not isinstance(q, dict):
            raise RecordError(f"{name}[]: expected an object, got {type(q).__name__}")
        answer = q.get("answer")
        if isinstance(answer, bool | int | float):
            answer = str(answer).lower() if isinstance(answer, bool) else str(answer)
        out.append({"question": to_str(q.get("question"), f"{name}[].question"), "answer": to_str(answer, name)})
    return out


def dumps(record: Any) -> str:
    return orjson.dumps(record, option=orjson.OPT_NON_STR_KEYS).decode()


def _quarantine_text(raw: Any) -> str:
    """The raw record as text for the quarantine file, whatever it holds: a record that orjson
    cannot write (lone surrogates, out-of-range numbers) is written as ASCII JSON with escapes."""
    if isinstance(raw, str):
        try:
            raw.encode("utf-8")
            return raw
        except UnicodeEncodeError:
            return quarantine_json(raw)
    try:
        return dumps(raw)
    except TypeError:  # orjson.JSONEncodeError is a TypeError
        return quarantine_json(raw)


def utc_day(ts: datetime | None) -> date:
    if ts is None:
        raise RecordError("no timestamp to place the record in a daily partition")
    return ts.astimezone(UTC).date()


# --- the lander -----------------------------------------------------------------------------------


@dataclass
class EntityResult:
    """What landing one entity over a window produced."""

    spec: EntitySpec
    days: list[date]
    rows: dict[date, int] = field(default_factory=dict)
    quarantined: dict[date, int] = field(default_factory=dict)
    reasons: dict[str, int] = field(default_factory=dict)
    paths: list[Path] = field(default_factory=list)
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


# --- snapshots ------------------------------------------------------------------------------------

SNAPSHOT_RULE = ("snapshot partitions can only be taken on their own day: a run writes today's observation "
                 "under today (UTC) when today is in the window, otherwise under the window's last day if that "
                 "day has no snapshot yet; every existing snapshot is kept untouched and no other day gets a file")


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


def plan_snapshot(spec: EntitySpec, days: Sequence[date], today: date | None = None,
                  root: Path | str | None = None) -> SnapshotPlan:
    """Decide where a snapshot taken now may be written, for a window of `days`.

    A snapshot is an observation of *now*: the API cannot say what it looked like on a past day.
    - Today (UTC) in the window: write under today (re-running today replaces today's snapshot).
    - Otherwise (a backfill of past days): write under the window's last day only if that day has
      no snapshot file yet, so the models still have current events / catalog to join against.
    - Every other day is left as it is: an existing snapshot there is genuine history and is never
      overwritten with today's state; a day without one stays without one.
    A window wholly after today (not reachable with the project's partitions) writes nothing.
    """
    window = tuple(sorted(set(days)))
    if not window:
        raise ValueError("a snapshot needs at least one day in its window")
    today = today or lake.utc_now().date()

    def has_file(day: date) -> bool:
        return lake.partition_path(spec, day, root).exists()

    if today in window:
        target: date | None = today
        why = f"today ({today}) is in the window"
    elif window[-1] > today:
        target, why = None, f"the window starts after today ({today}): nothing can be observed yet"
    elif has_file(window[-1]):
        target = None
        why = (f"today ({today}) is outside the window and its last day ({window[-1]}) already holds a "
               "snapshot, which is kept")
    else:
        target = window[-1]
        why = f"today ({today}) is outside the window; its last day ({target}) had no snapshot yet"
    others = [d for d in window if d != target]
    kept = tuple(d for d in others if has_file(d))
    absent = tuple(d for d in others if d not in kept)
    return SnapshotPlan(window, today, target, kept, absent, why)


def day_ranges(days: Sequence[date]) -> str:
    """Compact text for a set of days: `2026-01-01..2026-01-31, 2026-02-03` (a year stays one line)."""
    runs = day_spans(list(days), max_days=max(len(days), 1))
    return ", ".join(r[0].isoformat() if len(r) == 1 else f"{r[0]}..{r[-1]}" for r in runs) or "none"


def land_snapshot(spec: EntitySpec, days: Sequence[date], pages: Callable[[], Iterable[Sequence[Any]]],
                  convert: Callable[[Any], dict[str, Any]], root: Path | str | None = None,
                  loaded_at: datetime | None = None, today: date | None = None,
                  log: Callable[[str], None] | None = None) -> EntityResult:
    """Land one snapshot entity for a window, under the rule of `plan_snapshot`: the provider's
    current state (`pages()`, fetched only if there is a day to write) goes to at most one day,
    and every other day of the window is left untouched. Logs one line for the days that get no
    file and why. The result's rows are the rows written by this run."""
    plan = plan_snapshot(spec, days, today, root)
    if plan.kept or plan.absent:
        parts = []
        if plan.kept:
            parts.append(f"kept the existing snapshot of {len(plan.kept)} day(s) ({day_ranges(plan.kept)})")
        if plan.absent:
            parts.append(f"left {len(plan.absent)} day(s) absent, no file ({day_ranges(plan.absent)})")
        written = f"written to {plan.target}" if plan.target else "nothing written"
        message = (f"{spec.name}: snapshot {written} because {plan.why}; snapshot partitions can only be taken "
                   f"on their own day, so {' and '.join(parts)}.")
        if log:
            log(message)
    if plan.target is None:
        return EntityResult(spec, [], snapshot=plan)
    with EntityLander(spec, [plan.target], loaded_at, root) as lander:
        for page in pages():
            lander.add_page(page, convert, plan.target)
        result = lander.commit()
    result.snapshot = plan
    return result


def snapshot_metadata(plan: SnapshotPlan) -> dict[str, Any]:
    return {
        "snapshot_written_to": plan.target.isoformat() if plan.target else "none",
        "snapshot_kept_days": dg.MetadataValue.int(len(plan.kept)),
        "snapshot_absent_days": dg.MetadataValue.int(len(plan.absent)),
        "snapshot_kept": day_ranges(plan.kept),
        "snapshot_reason": plan.why,
        "snapshot_note": SNAPSHOT_RULE,
    }


# --- Dagster glue ---------------------------------------------------------------------------------

def kinds(provider: str) -> set[str]:
    return {"python", "parquet", provider}


def window_days(context: AssetExecutionContext) -> list[date]:
    """The UTC days this run covers, from the partition time window (never the key), so a
    single-run backfill lands each of its days."""
    window = context.partition_time_window
    return days_in(window.start, window.end)


def provider_configured(context: AssetExecutionContext, provider: str, client: Any,
                        what: str) -> bool:
    """True if the client has credentials; otherwise log the one line that says what to set."""
    configured = bool(client is not None and client.configured())
    if not configured:
        context.log.info(
            f"{provider}: credentials not configured (set {credential_hint(provider)}); "
            f"skipping {what}."
        )
    return configured


def column_schema(spec: EntitySpec) -> dg.TableSchema:
    return dg.TableSchema(
        columns=[dg.TableColumn(name=col, type=typ) for col, typ in duckdb_types(spec.schema)],
        constraints=dg.TableConstraints(other=[f"primary key ({', '.join(spec.primary_key)}) within a partition"]),
    )


# Columns kept out of the UI preview: raw stays in the lake, the UI shows shape, not people.
_PREVIEW_HIDDEN = ("_raw", "email", "phone", "name", "barcode", "doc", "description", "detail", "custom",
                   "questions", "qr_code", "images", "options", "shipments", "url")


def preview_markdown(spec: EntitySpec, paths: Sequence[Path], limit: int = 5, max_cols: int = 8) -> str:
    cols = [c for c in spec.schema.names if c in spec.primary_key or not any(h in c for h in _PREVIEW_HIDDEN)]
    cols = [c for c in cols if c != "_loaded_at"][:max_cols]
    rows: list[dict[str, Any]] = []
    for path in paths:
        if len(rows) >= limit:
            break
        if not Path(path).exists():
            continue
        import pyarrow.parquet as pq

        pf = pq.ParquetFile(path)
        for i in range(pf.num_row_groups):
            rows += pf.read_row_group(i, columns=cols).slice(0, limit - len(rows)).to_pylist()
            if len(rows) >= limit:
                break
    if not rows:
        return "_no rows_"

    def cell(v: Any) -> str:
        text = "" if v is None else str(v)
        text = text.replace("|", "\\|").replace("\n", " ")
        return text if len(text) <= 40 else text[:37] + "..."

    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(cell(r.get(c)) for c in cols) + " |" for r in rows]
    return "\n".join(lines)


def materialize_result(result: EntityResult, extra: dict[str, Any] | None = None) -> dg.MaterializeResult:
    spec = result.spec
    meta: dict[str, Any] = {
        "dagster/row_count": dg.MetadataValue.int(result.row_count),
        "dagster/column_schema": column_schema(spec),
        "preview": dg.MetadataValue.md(preview_markdown(spec, [p for p in result.paths])),
        "quarantined": dg.MetadataValue.int(result.quarantine_count),
        "rows_by_day": dg.MetadataValue.json({d.isoformat(): n for d, n in sorted(result.rows.items())}),
        "primary_key": ", ".join(spec.primary_key),
    }
    if result.paths:
        meta["path"] = dg.MetadataValue.path(str(Path(result.paths[0]).parent.parent))
    if result.reasons:
        meta["quarantine_reasons"] = dg.MetadataValue.json(result.reasons)
    if result.snapshot is not None:
        meta.update(snapshot_metadata(result.snapshot))
    elif spec.snapshot:
        meta["snapshot_note"] = SNAPSHOT_RULE
    if extra:
        meta.update(extra)
    return dg.MaterializeResult(asset_key=spec.name, metadata=meta)


def asset_spec(spec: EntitySpec, deps: Sequence[str] = ()) -> dg.AssetSpec:
    return dg.AssetSpec(
        key=spec.name,
        description=spec.description,
        group_name=spec.provider,
        kinds=kinds(spec.provider),
        skippable=True,
        deps=list(deps),
        metadata={"dagster/column_schema": column_schema(spec), "primary_key": ", ".join(spec.primary_key)},
    )


# --- generic asset checks -------------------------------------------------------------------------


def _landed(spec: EntitySpec, days: Sequence[date], columns: list[str], area: str = "raw") -> tuple[pa.Table, list]:
    tables, missing = [], []
    for day in days:
        t = lake.read_partition(spec, day, columns=columns, area=area)
        if t is None:
            missing.append(day)
        else:
            tables.append(t)
    if not tables:
        schema = QUARANTINE_SCHEMA if area == "quarantine" else spec.schema
        return schema.empty_table().select(columns), missing
    return pa.concat_tables(tables), missing


def _check_days(context) -> list[date]:
    window = context.partition_time_window
    return days_in(window.start, window.end)


def duplicate_key_count(table: pa.Table, key: Sequence[str]) -> int:
    if table.num_rows == 0:
        return 0
    counts = table.group_by(list(key)).aggregate([([], "count_all")])
    return int(pc.sum(pc.greater(counts["count_all"], 1)).as_py() or 0)


def entity_checks(spec: EntitySpec) -> list[dg.AssetChecksDefinition]:
    """Primary key unique and not null within the partition, money integral (where the provider
    sends minor units), and an empty quarantine (WARN).

    A day of the window without a file fails a check, except for snapshots: they are only taken on
    their own day (see `plan_snapshot`), so most days of a backfill window rightly have none."""
    key = list(spec.primary_key)
    checks: list[dg.AssetChecksDefinition] = []

    def landed_ok(missing: list) -> bool:
        return spec.snapshot or not missing

    @dg.asset_check(asset=spec.name, name="pk_unique", partitions_def=daily_partitions,
                    description=f"({', '.join(key)}) is unique within the partition.")
    def pk_unique(context) -> dg.AssetCheckResult:
        # Each day's snapshot holds every key again: unique per day, not across the window.
        unique_by = [*key, "_partition"] if spec.snapshot else key
        table, missing = _landed(spec, _check_days(context), unique_by)
        dupes = duplicate_key_count(table, unique_by)
        return dg.AssetCheckResult(passed=dupes == 0 and landed_ok(missing),
                                   metadata={"duplicate_keys": dupes, "rows": table.num_rows,
                                             "days_not_landed": [d.isoformat() for d in missing]})

    @dg.asset_check(asset=spec.name, name="pk_not_null", partitions_def=daily_partitions,
                    description=f"({', '.join(key)}) is never null.")
    def pk_not_null(context) -> dg.AssetCheckResult:
        table, missing = _landed(spec, _check_days(context), key)
        nulls = sum(table.column(k).null_count for k in key)
        return dg.AssetCheckResult(passed=nulls == 0 and landed_ok(missing),
                                   metadata={"null_keys": nulls, "days_not_landed": [d.isoformat() for d in missing]})

    checks += [pk_unique, pk_not_null]

    if spec.money_minor_columns:
        money = list(spec.money_minor_columns)

        @dg.asset_check(asset=spec.name, name="money_integral", partitions_def=daily_partitions,
                        description=f"{', '.join(money)} are integral minor units, and no record was "
                                    "quarantined for non-integral money.")
        def money_integral(context) -> dg.AssetCheckResult:
            days = _check_days(context)
            table, missing = _landed(spec, days, money)
            bad_values = 0
            for col in money:
                arr = table.column(col)
                if not pa.types.is_integer(arr.type):
                    as_float = pc.cast(arr, pa.float64())
                    bad_values += int(pc.sum(pc.not_equal(pc.floor(as_float), as_float)).as_py() or 0)
            q, _ = _landed(spec, days, ["reason"], area="quarantine")
            quarantined = sum(1 for r in q.column("reason").to_pylist() if "integral minor units" in r)
            return dg.AssetCheckResult(passed=bad_values == 0 and quarantined == 0 and landed_ok(missing),
                                       metadata={"non_integral_values": bad_values,
                                                 "quarantined_for_money": quarantined})

        checks.append(money_integral)

    @dg.asset_check(asset=spec.name, name="quarantine_empty", partitions_def=daily_partitions,
                    description="No record of the partition was quarantined (see raw.quarantine).")
    def quarantine_empty(context) -> dg.AssetCheckResult:
        q, _ = _landed(spec, _check_days(context), ["reason"], area="quarantine")
        reasons: dict[str, int] = {}
        for r in q.column("reason").to_pylist():
            reasons[r[:80]] = reasons.get(r[:80], 0) + 1
        return dg.AssetCheckResult(passed=q.num_rows == 0, severity=dg.AssetCheckSeverity.WARN,
                                   metadata={"quarantined": q.num_rows, "reasons": dg.MetadataValue.json(reasons)})

    checks.append(quarantine_empty)
    return checks


def day_bounds(day: date) -> tuple[datetime, datetime]:
    start = datetime.combine(day, datetime.min.time(), UTC)
    return start, start + timedelta(days=1)
