"""What a landing asset tells Dagster: kinds, its window's days, the "not configured" line, and the
materialization metadata (row count, column schema, a preview, quarantine, snapshot plan, and the
figures a provider declares for an entity: numbers the UI plots over partitions and runs)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc
from dagster import AssetExecutionContext

from assets.landing.lander import EntityResult
from assets.landing.snapshot import SNAPSHOT_RULE, snapshot_metadata
from resources import lakefs
from resources.entity import EntitySpec
from resources.http import ProviderResource
from resources.lakefs import Location
from resources.partitions import days_in
from resources.warehouse import duckdb_types


def kinds(provider: str) -> set[str]:
    return {"python", "parquet", provider}


def window_days(context: AssetExecutionContext) -> list[date]:
    """The UTC days this run covers, from the partition time window (never the key), so a
    single-run backfill lands each of its days."""
    window = context.partition_time_window
    return days_in(window.start, window.end)


def provider_configured(context: AssetExecutionContext, client: ProviderResource, what: str) -> bool:
    """True if the client has credentials; otherwise log the one line that says what to set."""
    if client.configured():
        return True
    context.log.info(f"{client.provider_name}: credentials not configured (set {client.credential_hint()}); "
                     f"skipping {what}.")
    return False


def column_schema(spec: EntitySpec) -> dg.TableSchema:
    return dg.TableSchema(
        columns=[dg.TableColumn(name=col, type=typ) for col, typ in duckdb_types(spec.schema)],
        constraints=dg.TableConstraints(other=[f"primary key ({', '.join(spec.primary_key)}) within a partition"]),
    )


# Columns kept out of the UI preview: raw stays in the lake, the UI shows shape, not people.
_PREVIEW_HIDDEN = ("_raw", "email", "phone", "name", "barcode", "doc", "description", "detail", "custom",
                   "questions", "qr_code", "images", "options", "shipments", "url")


def preview_markdown(spec: EntitySpec, paths: Sequence[Location], limit: int = 5, max_cols: int = 8) -> str:
    cols = [c for c in spec.schema.names if c in spec.primary_key or not any(h in c for h in _PREVIEW_HIDDEN)]
    cols = [c for c in cols if c != "_loaded_at"][:max_cols]
    rows: list[dict[str, Any]] = []
    for path in paths:
        if len(rows) >= limit:
            break
        try:
            pf = lakefs.parquet_file(path)
        except FileNotFoundError:
            continue
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


# --- figures: numbers the UI plots over partitions and runs -----------------------------------------


@dataclass(frozen=True)
class Figures:
    """Numbers of what a run landed, one plain numeric metadata key per figure, so each becomes a
    series in the asset's *Plots* tab. The provider's asset module declares them (it knows what its
    columns mean); the framework computes them per day from the files the run committed, reading
    only `columns` (never `_raw`: figures carry no PII), and attaches each day's to its partition."""

    columns: tuple[str, ...]
    compute: Callable[[pa.Table], dict[str, dg.MetadataValue]]
    description: str  # what each key means, appended to the asset's description


def read_landed(spec: EntitySpec, paths: Sequence[Location], columns: Sequence[str]) -> pa.Table:
    """The rows of the committed partition files `paths`, only `columns`."""
    tables = [lakefs.read_table(path, columns=list(columns)) for path in paths]
    return pa.concat_tables(tables) if tables else spec.schema.empty_table().select(list(columns))


def figures_by_day(result: EntityResult, figures: Figures) -> dict[date, dict[str, dg.MetadataValue]]:
    """`figures` of each day the run committed (a day without rows too: its counts are 0)."""
    table = read_landed(result.spec, result.paths, [*figures.columns, "_partition"])
    return {day: figures.compute(table.filter(pc.equal(table["_partition"], pa.scalar(day, pa.date32()))))
            for day in sorted(result.rows)}


def minor_units_by_currency(table: pa.Table, amount: str, currency: str, label: str) -> dict[str, dg.MetadataValue]:
    """`{label} {CUR}`: the sum of the integer minor-unit column `amount` per upper-case currency code,
    a null amount counting 0. One key per currency: amounts in different currencies are never added."""
    if table.num_rows == 0:
        return {}
    keyed = pa.table({"currency": pc.utf8_upper(table[currency]), "amount": table[amount]})
    sums = (keyed.group_by("currency").aggregate([("amount", "sum", pc.ScalarAggregateOptions(min_count=0))])
            .sort_by("currency"))
    return {f"{label} {code if code is not None else '(no currency)'}": dg.MetadataValue.int(int(total))
            for code, total in zip(sums["currency"].to_pylist(), sums["amount_sum"].to_pylist(), strict=True)}


def materialize_result(result: EntityResult, extra: dict[str, Any] | None = None, *,
                       figures: Figures | None = None,
                       context: AssetExecutionContext | None = None) -> dg.MaterializeResult:
    """The materialization of one landed entity. With the asset's `context`, what is per day goes on
    that day's partition: each day's figures, and, when the run committed several days, each day's
    row count. Dagster gives every partition of a single-run backfill the result's own metadata, so
    a window total would be plotted once per day (the daily orders run covers 8 days); the total is
    `rows_in_run`. Dagster writes the events when the result is yielded, so this is called right
    before."""
    spec = result.spec
    per_day: dict[date, dict[str, dg.MetadataValue]] = {}
    if figures is not None:
        if context is None:
            raise ValueError(f"{spec.name}: figures are attached per partition, which needs the asset's context")
        per_day = figures_by_day(result, figures)
    row_count_per_day = context is not None and len(result.rows) > 1
    if row_count_per_day:
        for day, rows in result.rows.items():
            per_day.setdefault(day, {})["dagster/row_count"] = dg.MetadataValue.int(rows)
    if context is not None:
        for day, values in per_day.items():
            context.add_asset_metadata(values, asset_key=spec.name, partition_key=day.isoformat())
    meta: dict[str, Any] = {
        ("rows_in_run" if row_count_per_day else "dagster/row_count"): dg.MetadataValue.int(result.row_count),
        "dagster/column_schema": column_schema(spec),
        "preview": dg.MetadataValue.md(preview_markdown(spec, [p for p in result.paths])),
        "quarantined": dg.MetadataValue.int(result.quarantine_count),
        "rows_by_day": dg.MetadataValue.json({d.isoformat(): n for d, n in sorted(result.rows.items())}),
        "primary_key": ", ".join(spec.primary_key),
    }
    if result.paths:
        meta["path"] = dg.MetadataValue.path(str(lakefs.parent(lakefs.parent(result.paths[0]))))
    if result.reasons:
        meta["quarantine_reasons"] = dg.MetadataValue.json(result.reasons)
    if result.snapshot is not None:
        meta.update(snapshot_metadata(result.snapshot))
    elif spec.snapshot:
        meta["snapshot_note"] = SNAPSHOT_RULE
    if extra:
        meta.update(extra)
    return dg.MaterializeResult(asset_key=spec.name, metadata=meta)


def described(doc: str, figures: Figures | None) -> str:
    """An asset's description, with what its figures mean when it has any."""
    return f"{doc}\n\n{figures.description}" if figures is not None else doc


def asset_spec(spec: EntitySpec, deps: Sequence[str] = (), figures: Figures | None = None) -> dg.AssetSpec:
    return dg.AssetSpec(
        key=spec.name,
        description=described(spec.description, figures),
        group_name=spec.provider,
        kinds=kinds(spec.provider),
        skippable=True,
        deps=list(deps),
        metadata={"dagster/column_schema": column_schema(spec), "primary_key": ", ".join(spec.primary_key)},
    )


