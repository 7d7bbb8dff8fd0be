"""A raw entity: what the lake holds for one kind of record of one provider.

Its provider and name (which place the files in the lake: resources/lake.py), its typed columns,
its primary key, and which columns are money in minor units. Every raw row also carries `_raw`
(the record's JSON as received), `_loaded_at` and `_partition` (`META_FIELDS`). Declared by the
provider's asset module (`assets/<provider>.py`) and listed by assets/providers.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pyarrow as pa

# Columns every raw row carries after the typed ones (CONTRACT.md "The lake and the warehouse").
META_FIELDS: tuple[pa.Field, ...] = (
    pa.field("_raw", pa.string(), nullable=False),
    pa.field("_loaded_at", pa.timestamp("us", tz="UTC"), nullable=False),
    pa.field("_partition", pa.date32(), nullable=False),
)

QUARANTINE_SCHEMA = pa.schema(
    [
        pa.field("provider", pa.string(), nullable=False),
        pa.field("entity", pa.string(), nullable=False),
        pa.field("reason", pa.string(), nullable=False),
        *META_FIELDS,
    ]
)

@dataclass(frozen=True)
class EntitySpec:
    """One raw entity: where it lives in the lake, its typed columns and its key."""

    provider: str
    entity: str
    columns: pa.Schema  # the typed columns only; META_FIELDS are appended by `schema`
    primary_key: tuple[str, ...]
    # Columns that hold money in the provider's minor units (integers): checked to be integral.
    money_minor_columns: tuple[str, ...] = ()
    snapshot: bool = False  # one observation of "now", written under one day (assets/landing.plan_snapshot)
    description: str = ""
    extra: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        missing = [k for k in self.primary_key if k not in self.columns.names]
        if missing:
            raise ValueError(f"{self.name}: primary key columns {missing} are not in its schema")
        for col in self.money_minor_columns:
            if col not in self.columns.names:
                raise ValueError(f"{self.name}: money column {col!r} is not in its schema")

    @property
    def name(self) -> str:
        return f"{self.provider}_{self.entity}"

    @property
    def schema(self) -> pa.Schema:
        names = set(self.columns.names)
        clash = names & {f.name for f in META_FIELDS}
        if clash:
            raise ValueError(f"{self.name}: typed columns may not use reserved names {sorted(clash)}")
        return pa.schema([*self.columns, *META_FIELDS])
