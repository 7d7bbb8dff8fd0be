"""What a landing asset tells Dagster: kinds, its window's days, the "not configured" line, and the
materialization metadata (row count, column schema, a preview, quarantine, snapshot plan)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import Any

import dagster as dg
from dagster import AssetExecutionContext

from assets.landing.lander import EntityResult
from assets.landing.snapshot import SNAPSHOT_RULE, snapshot_metadata
from resources.entity import EntitySpec
from resources.http import ProviderResource
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


