"""The asset checks every raw entity gets: primary key unique and not null within the partition,
integral minor-unit money, and an empty quarantine (WARN)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc

from resources import lake
from resources.entity import QUARANTINE_SCHEMA, EntitySpec
from resources.partitions import daily_partitions, days_in


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

